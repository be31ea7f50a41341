//! Connected accounts: where a statement's variants are published. Their
//! credentials are write-only: sealed with the secret key before they reach
//! the store, never returned and never logged.

pub mod connect;
pub mod lifecycle;
pub mod routes;
pub mod sessions;
pub mod store;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::platforms::Platform;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    /// Credentials work as far as Herald knows.
    Active,
    /// The network refused the credentials: an admin must reconnect the account.
    NeedsReauth,
    /// Switched off, or removed.
    Disabled,
}

impl AccountStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::NeedsReauth => "needs_reauth",
            Self::Disabled => "disabled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Active, Self::NeedsReauth, Self::Disabled]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// Credential fields a network accepts beyond the required ones.
pub fn optional_credentials(platform: Platform) -> &'static [&'static str] {
    match platform {
        Platform::X => &["refresh_token", "expires_at", "user_id", "username"],
        Platform::Threads => &["refresh_token", "expires_at", "username", "issued_at"],
        Platform::Linkedin => &["refresh_token", "expires_at", "refresh_expires_at"],
        Platform::Instagram => &["expires_at", "token_issued_at", "username"],
        Platform::Webhook => &["secret"],
        Platform::Discord => &["bot_token", "channel_id", "guild_id"],
        _ => &[],
    }
}

/// Longest value of one credential field.
const MAX_CREDENTIAL_CHARS: usize = 8_192;

/// Check the credentials object for `platform`: only string values, every
/// required field present, no unknown field. Errors are `(field, message)`.
pub fn validate_credentials(
    platform: Platform,
    credentials: &serde_json::Map<String, serde_json::Value>,
) -> Result<BTreeMap<String, String>, Vec<(String, String)>> {
    let required = platform.required_credentials();
    let optional = optional_credentials(platform);
    let mut errors = Vec::new();
    let mut clean = BTreeMap::new();
    for (name, value) in credentials {
        let field = format!("credentials.{name}");
        if !required.contains(&name.as_str()) && !optional.contains(&name.as_str()) {
            let mut known: Vec<&str> = required.iter().chain(optional).copied().collect();
            known.sort_unstable();
            let message = if known.is_empty() {
                format!("{platform} accounts take no credentials")
            } else {
                format!(
                    "unknown credential for {platform}: expected {}",
                    known.join(", ")
                )
            };
            errors.push((field, message));
            continue;
        }
        match value.as_str() {
            Some(text) if text.trim().is_empty() => {
                errors.push((field, "must not be empty".into()))
            }
            Some(text) if text.len() > MAX_CREDENTIAL_CHARS => errors.push((
                field,
                format!("must be at most {MAX_CREDENTIAL_CHARS} bytes"),
            )),
            Some(text) => {
                clean.insert(name.clone(), text.to_string());
            }
            None => errors.push((field, "must be a string".into())),
        }
    }
    for name in required {
        if !credentials.contains_key(*name) {
            errors.push((
                format!("credentials.{name}"),
                format!("is required for {platform} accounts"),
            ));
        }
    }
    for name in ["url", "webhook_url"] {
        if let Some(url) = clean.get(name) {
            if let Err(message) = validate_http_url(url) {
                errors.push((format!("credentials.{name}"), message));
            }
        }
    }
    if errors.is_empty() {
        Ok(clean)
    } else {
        Err(errors)
    }
}

/// An absolute http(s) URL with a host.
pub fn validate_http_url(text: &str) -> Result<(), String> {
    let url = url::Url::parse(text).map_err(|e| format!("is not a valid URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be an http or https URL".into());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("must name a host".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn required_credentials_must_be_present_strings() {
        assert!(
            validate_credentials(Platform::Mastodon, &map(json!({"access_token": "t"}))).is_ok()
        );
        let errors =
            validate_credentials(Platform::Bluesky, &map(json!({"identifier": 5}))).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|(f, _)| f.as_str()).collect();
        assert!(fields.contains(&"credentials.identifier"));
        assert!(fields.contains(&"credentials.app_password"));
    }

    #[test]
    fn unknown_credentials_are_refused() {
        let errors = validate_credentials(
            Platform::Mastodon,
            &map(json!({"access_token": "t", "acess_token": "t"})),
        )
        .unwrap_err();
        assert_eq!(errors[0].0, "credentials.acess_token");
        assert!(validate_credentials(Platform::Sandbox, &map(json!({}))).is_ok());
        assert!(validate_credentials(Platform::Sandbox, &map(json!({"x": "y"}))).is_err());
    }

    #[test]
    fn webhook_urls_must_be_http() {
        assert!(validate_credentials(
            Platform::Webhook,
            &map(json!({"url": "https://intranet.example/hook"}))
        )
        .is_ok());
        assert!(validate_credentials(Platform::Webhook, &map(json!({"url": "ftp://x"}))).is_err());
        assert!(
            validate_credentials(Platform::Webhook, &map(json!({"url": "not a url"}))).is_err()
        );
    }

    #[test]
    fn statuses_round_trip() {
        for s in [
            AccountStatus::Active,
            AccountStatus::NeedsReauth,
            AccountStatus::Disabled,
        ] {
            assert_eq!(AccountStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }
}
