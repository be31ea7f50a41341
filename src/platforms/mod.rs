//! The social networks Herald publishes to: their names, text rules and
//! connectors. Nothing outside this folder knows a network's rules or talks
//! to a network.

pub mod bluesky;
pub mod connector;
pub mod mastodon;
pub mod routes;
pub mod sandbox;
pub mod text;
pub mod webhook;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use connector::{AccountSession, ConnectorError, Credentials, Post, Published};
pub use text::{check, default_limit, TextReport};

use std::future::Future;

/// One network's way of publishing (DESIGN §6).
pub trait Connector: Send + Sync {
    /// Publish `post` with `account`. Returns the remote post, or a classified error.
    fn publish(
        &self,
        account: &AccountSession,
        post: &Post,
    ) -> impl Future<Output = Result<Published, ConnectorError>> + Send;

    /// After an `Unknown` outcome: find out whether `post` went out.
    /// `Ok(Some)` means it is on the network (possibly published by this very
    /// call, as Mastodon's idempotent retry does), `Ok(None)` that it surely is
    /// not (publishing again cannot duplicate it), `Err` that the question
    /// could not be answered yet.
    fn reconcile(
        &self,
        account: &AccountSession,
        post: &Post,
    ) -> impl Future<Output = Result<Option<Published>, ConnectorError>> + Send;
}

/// Every connector, built once per process and shared by the dispatcher.
#[derive(Clone)]
pub struct Connectors {
    pub mastodon: mastodon::Mastodon,
    pub bluesky: bluesky::Bluesky,
    pub webhook: webhook::Webhook,
    pub sandbox: sandbox::Sandbox,
}

impl Connectors {
    pub fn new(http: reqwest::Client, sandbox: sandbox::Sandbox) -> Self {
        Self {
            mastodon: mastodon::Mastodon::new(http.clone()),
            bluesky: bluesky::Bluesky::new(http.clone()),
            webhook: webhook::Webhook::new(http),
            sandbox,
        }
    }

    /// Whether Herald can publish to `platform` yet.
    pub fn supports(platform: Platform) -> bool {
        matches!(
            platform,
            Platform::Mastodon | Platform::Bluesky | Platform::Webhook | Platform::Sandbox
        )
    }

    pub async fn publish(
        &self,
        account: &AccountSession,
        post: &Post,
    ) -> Result<Published, ConnectorError> {
        match account.platform {
            Platform::Mastodon => self.mastodon.publish(account, post).await,
            Platform::Bluesky => self.bluesky.publish(account, post).await,
            Platform::Webhook => self.webhook.publish(account, post).await,
            Platform::Sandbox => self.sandbox.publish(account, post).await,
            other => Err(unsupported(other)),
        }
    }

    pub async fn reconcile(
        &self,
        account: &AccountSession,
        post: &Post,
    ) -> Result<Option<Published>, ConnectorError> {
        match account.platform {
            Platform::Mastodon => self.mastodon.reconcile(account, post).await,
            Platform::Bluesky => self.bluesky.reconcile(account, post).await,
            Platform::Webhook => self.webhook.reconcile(account, post).await,
            Platform::Sandbox => self.sandbox.reconcile(account, post).await,
            other => Err(unsupported(other)),
        }
    }
}

fn unsupported(platform: Platform) -> ConnectorError {
    ConnectorError::Rejected {
        message: format!("Herald cannot publish to {platform} yet"),
        status: None,
    }
}

/// A network Herald can publish to.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    Mastodon,
    Bluesky,
    X,
    Threads,
    Linkedin,
    Facebook,
    Instagram,
    Telegram,
    Discord,
    /// An HTTP endpoint of the customer's own (intranet, status page).
    Webhook,
    /// Built-in network that keeps posts locally: for trying Herald and for drills.
    Sandbox,
}

impl Platform {
    pub const ALL: [Platform; 11] = [
        Platform::Mastodon,
        Platform::Bluesky,
        Platform::X,
        Platform::Threads,
        Platform::Linkedin,
        Platform::Facebook,
        Platform::Instagram,
        Platform::Telegram,
        Platform::Discord,
        Platform::Webhook,
        Platform::Sandbox,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Mastodon => "mastodon",
            Platform::Bluesky => "bluesky",
            Platform::X => "x",
            Platform::Threads => "threads",
            Platform::Linkedin => "linkedin",
            Platform::Facebook => "facebook",
            Platform::Instagram => "instagram",
            Platform::Telegram => "telegram",
            Platform::Discord => "discord",
            Platform::Webhook => "webhook",
            Platform::Sandbox => "sandbox",
        }
    }

    pub fn parse(s: &str) -> Option<Platform> {
        Platform::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// "unknown platform 'foo': expected one of mastodon, bluesky, …"
    pub fn unknown(s: &str) -> String {
        let names: Vec<&str> = Platform::ALL.iter().map(|p| p.as_str()).collect();
        format!(
            "unknown platform '{s}': expected one of {}",
            names.join(", ")
        )
    }

    /// The credential fields an account on this network must provide
    /// (`POST /v1/accounts`). Connectors (later issues) read them.
    pub fn required_credentials(self) -> &'static [&'static str] {
        match self {
            Platform::Mastodon => &["access_token"],
            Platform::Bluesky => &["identifier", "app_password"],
            Platform::X => &["access_token"],
            Platform::Threads => &["access_token", "user_id"],
            Platform::Linkedin => &["access_token", "author_urn"],
            Platform::Facebook => &["page_id", "page_access_token"],
            Platform::Instagram => &["ig_user_id", "access_token"],
            Platform::Telegram => &["bot_token", "chat_id"],
            Platform::Discord => &["webhook_url"],
            Platform::Webhook => &["url"],
            Platform::Sandbox => &[],
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod platform_tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for p in Platform::ALL {
            assert_eq!(Platform::parse(p.as_str()), Some(p));
            assert_eq!(serde_json::to_value(p).unwrap(), p.as_str());
        }
        assert_eq!(Platform::parse("myspace"), None);
        assert!(Platform::unknown("myspace").contains("mastodon"));
    }
}
