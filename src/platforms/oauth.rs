//! OAuth 2.0 authorization-code flow and token refresh, shared by every
//! network that uses it (X, LinkedIn, Facebook, Instagram, Threads,
//! Mastodon). Built on the `oauth2` crate; the HTTP calls go through
//! Herald's one reqwest client, so timeouts and TLS are the same as for
//! publishing.
//!
//! Each network describes its app with an [`OAuthApp`]; the differences the
//! networks' docs impose are settings of it: PKCE or not, client secret in
//! a Basic header (X) or in the form (the others), scopes joined by spaces
//! or by commas (Meta), and a token endpoint read with GET (Facebook).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use oauth2::basic::{BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenType};
use oauth2::{
    AccessToken, AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    EndpointNotSet, EndpointSet, HttpRequest, HttpResponse, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, RefreshToken, RequestTokenError, Scope, StandardRevocableToken,
    StandardTokenIntrospectionResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};

use super::ConnectorError;

/// How one network's OAuth app is reached and called.
#[derive(Debug, Clone)]
pub struct OAuthApp {
    pub client_id: String,
    pub client_secret: String,
    /// The page where the user authorizes Herald.
    pub authorize_url: String,
    pub token_url: String,
    pub scopes: Vec<String>,
    /// Send a PKCE S256 challenge (X, Mastodon ≥ 4.3).
    pub pkce: bool,
    /// Client credentials in an `Authorization: Basic` header (X's
    /// confidential clients) instead of the form body.
    pub basic_auth: bool,
    /// Join scopes with commas (Meta) instead of spaces.
    pub comma_scopes: bool,
    /// The token endpoint is read with GET and query parameters (Facebook's
    /// `/oauth/access_token`), not POSTed as a form.
    pub token_via_get: bool,
}

/// What the token endpoint answered. Networks differ (LinkedIn and Threads
/// send no `token_type`; Threads sends `user_id`), so every field but the
/// access token is optional, and unknown fields are kept in `extra`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "serde_json::Value")]
pub struct TokenSet {
    access_token: AccessToken,
    #[serde(default = "bearer")]
    token_type: BasicTokenType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_in: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_token: Option<RefreshToken>,
    #[serde(
        default,
        deserialize_with = "scopes_from_string",
        skip_serializing_if = "Option::is_none"
    )]
    scope: Option<Vec<Scope>>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// The fields of a token answer, as sent.
#[derive(Deserialize)]
struct TokenFields {
    access_token: AccessToken,
    #[serde(default = "bearer")]
    token_type: BasicTokenType,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<RefreshToken>,
    #[serde(default, deserialize_with = "scopes_from_string")]
    scope: Option<Vec<Scope>>,
    #[serde(flatten)]
    extra: serde_json::Map<String, serde_json::Value>,
}

impl TryFrom<serde_json::Value> for TokenSet {
    type Error = serde_json::Error;

    /// Instagram Login may wrap its answer in `{"data": [{…}]}`: take the
    /// first element then.
    fn try_from(value: serde_json::Value) -> Result<Self, Self::Error> {
        let value = match value {
            serde_json::Value::Object(mut map)
                if !map.contains_key("access_token") && map.contains_key("data") =>
            {
                match map.remove("data") {
                    Some(serde_json::Value::Array(mut items)) if !items.is_empty() => {
                        items.swap_remove(0)
                    }
                    Some(other) => other,
                    None => serde_json::Value::Null,
                }
            }
            other => other,
        };
        let f: TokenFields = serde_json::from_value(value)?;
        Ok(TokenSet {
            access_token: f.access_token,
            token_type: f.token_type,
            expires_in: f.expires_in,
            refresh_token: f.refresh_token,
            scope: f.scope,
            extra: f.extra,
        })
    }
}

fn bearer() -> BasicTokenType {
    BasicTokenType::Bearer
}

/// Scopes come space-separated (RFC 6749), comma-separated (Meta), or as a list.
fn scopes_from_string<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<Scope>>, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(d)?;
    Ok(match value {
        Some(serde_json::Value::String(s)) => Some(
            s.split([' ', ','])
                .filter(|p| !p.is_empty())
                .map(|p| Scope::new(p.to_string()))
                .collect(),
        ),
        Some(serde_json::Value::Array(items)) => Some(
            items
                .into_iter()
                .filter_map(|v| v.as_str().map(|s| Scope::new(s.to_string())))
                .collect(),
        ),
        _ => None,
    })
}

impl oauth2::TokenResponse for TokenSet {
    type TokenType = BasicTokenType;
    fn access_token(&self) -> &AccessToken {
        &self.access_token
    }
    fn token_type(&self) -> &BasicTokenType {
        &self.token_type
    }
    fn expires_in(&self) -> Option<Duration> {
        self.expires_in.map(Duration::from_secs)
    }
    fn refresh_token(&self) -> Option<&RefreshToken> {
        self.refresh_token.as_ref()
    }
    fn scopes(&self) -> Option<&Vec<Scope>> {
        self.scope.as_ref()
    }
}

impl TokenSet {
    pub fn access_token(&self) -> &str {
        self.access_token.secret()
    }

    /// The refresh token, if the network sent a non-empty one.
    pub fn refresh_token(&self) -> Option<&str> {
        self.refresh_token
            .as_ref()
            .map(|t| t.secret().as_str())
            .filter(|t| !t.is_empty())
    }

    pub fn expires_in(&self) -> Option<u64> {
        self.expires_in
    }

    /// When the access token expires, counted from `now`.
    pub fn expires_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.expires_in
            .and_then(|s| i64::try_from(s).ok())
            .map(|s| now + chrono::Duration::seconds(s))
    }

    pub fn scopes(&self) -> Vec<String> {
        self.scope.iter().flatten().map(|s| s.to_string()).collect()
    }

    /// A string field of the answer beyond the standard ones (`user_id`, …).
    pub fn extra_str(&self, name: &str) -> Option<String> {
        match self.extra.get(name)? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
}

type Client = oauth2::Client<
    BasicErrorResponse,
    TokenSet,
    StandardTokenIntrospectionResponse<oauth2::EmptyExtraTokenFields, BasicTokenType>,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// An authorization request: send the user to `url`; keep `verifier` (if
/// any) server-side until the callback.
#[derive(Debug, Clone)]
pub struct Authorization {
    pub url: String,
    pub verifier: Option<String>,
}

impl OAuthApp {
    fn client(&self, redirect_uri: Option<&str>) -> Result<Client, ConnectorError> {
        let bad = |what: &str, e: &dyn std::fmt::Display| ConnectorError::Rejected {
            message: format!("the {what} URL is invalid: {e}"),
            status: None,
        };
        let mut client = oauth2::Client::new(ClientId::new(self.client_id.clone()))
            .set_client_secret(ClientSecret::new(self.client_secret.clone()))
            .set_auth_uri(
                AuthUrl::new(self.authorize_url.clone()).map_err(|e| bad("authorize", &e))?,
            )
            .set_token_uri(TokenUrl::new(self.token_url.clone()).map_err(|e| bad("token", &e))?)
            .set_auth_type(if self.basic_auth {
                AuthType::BasicAuth
            } else {
                AuthType::RequestBody
            });
        if let Some(uri) = redirect_uri {
            client = client.set_redirect_uri(
                RedirectUrl::new(uri.to_string()).map_err(|e| bad("redirect", &e))?,
            );
        }
        Ok(client)
    }

    fn scope_list(&self) -> Vec<Scope> {
        if self.comma_scopes {
            vec![Scope::new(self.scopes.join(","))]
        } else {
            self.scopes.iter().cloned().map(Scope::new).collect()
        }
    }

    /// The address to send the user to, with `state` and (if the network
    /// supports it) a fresh PKCE S256 challenge.
    pub fn authorize(
        &self,
        redirect_uri: &str,
        state: &str,
    ) -> Result<Authorization, ConnectorError> {
        let client = self.client(Some(redirect_uri))?;
        let state = state.to_string();
        let mut request = client
            .authorize_url(|| CsrfToken::new(state))
            .add_scopes(self.scope_list());
        let mut verifier = None;
        if self.pkce {
            let (challenge, v) = PkceCodeChallenge::new_random_sha256();
            request = request.set_pkce_challenge(challenge);
            verifier = Some(v.secret().clone());
        }
        let (url, _) = request.url();
        Ok(Authorization {
            url: url.to_string(),
            verifier,
        })
    }

    /// Exchange an authorization code for tokens.
    pub async fn exchange_code(
        &self,
        http: &reqwest::Client,
        code: &str,
        redirect_uri: &str,
        verifier: Option<&str>,
    ) -> Result<TokenSet, ConnectorError> {
        let client = self.client(Some(redirect_uri))?;
        let mut request = client.exchange_code(AuthorizationCode::new(code.to_string()));
        if let Some(v) = verifier {
            request = request.set_pkce_verifier(PkceCodeVerifier::new(v.to_string()));
        }
        let transport = Transport::new(http, self.token_via_get);
        let result = request.request_async(&|r| transport.call(r)).await;
        transport.classify(result, false)
    }

    /// Trade a refresh token for a new access token (and, where the network
    /// rotates them, a new refresh token).
    pub async fn refresh(
        &self,
        http: &reqwest::Client,
        refresh_token: &str,
    ) -> Result<TokenSet, ConnectorError> {
        let client = self.client(None)?;
        let token = RefreshToken::new(refresh_token.to_string());
        let transport = Transport::new(http, self.token_via_get);
        let result = client
            .exchange_refresh_token(&token)
            .request_async(&|r| transport.call(r))
            .await;
        transport.classify(result, true)
    }
}

/// oauth2's HTTP calls, made with Herald's client; remembers the last status
/// so a failure can be classified.
struct Transport {
    http: reqwest::Client,
    via_get: bool,
    status: Arc<Mutex<Option<u16>>>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct TransportError(String, bool);

impl Transport {
    fn new(http: &reqwest::Client, via_get: bool) -> Self {
        Self {
            http: http.clone(),
            via_get,
            status: Arc::new(Mutex::new(None)),
        }
    }

    fn call(
        &self,
        request: HttpRequest,
    ) -> impl std::future::Future<Output = Result<HttpResponse, TransportError>> + Send + 'static
    {
        let http = self.http.clone();
        let via_get = self.via_get;
        let status_slot = self.status.clone();
        async move {
            let (parts, body) = request.into_parts();
            let mut url = reqwest::Url::parse(&parts.uri.to_string())
                .map_err(|e| TransportError(format!("bad token URL: {e}"), false))?;
            let mut builder = if via_get {
                // Facebook reads the token endpoint with GET: the form goes in the query.
                let form: Vec<(String, String)> =
                    serde_urlencoded::from_bytes(&body).unwrap_or_default();
                url.query_pairs_mut().extend_pairs(form);
                http.get(url)
            } else {
                http.request(parts.method.clone(), url).body(body)
            };
            for (name, value) in parts.headers.iter() {
                if via_get && name == reqwest::header::CONTENT_TYPE {
                    continue;
                }
                builder = builder.header(name, value);
            }
            let response = builder.send().await.map_err(|e| {
                TransportError(super::connector::describe_reqwest(&e), e.is_connect())
            })?;
            let status = response.status();
            *status_slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(status.as_u16());
            let mut out = HttpResponse::new(Vec::new());
            *out.status_mut() = status;
            for (name, value) in response.headers() {
                out.headers_mut().append(name.clone(), value.clone());
            }
            let bytes = response
                .bytes()
                .await
                .map_err(|e| TransportError(super::connector::describe_reqwest(&e), false))?;
            *out.body_mut() = bytes.to_vec();
            Ok(out)
        }
    }

    /// Classify a token-endpoint failure. A refused grant while refreshing
    /// means the account must be reconnected; while exchanging a code, that
    /// the code is bad (a rejection).
    fn classify(
        &self,
        result: Result<TokenSet, RequestTokenError<TransportError, BasicErrorResponse>>,
        refreshing: bool,
    ) -> Result<TokenSet, ConnectorError> {
        let status = *self.status.lock().unwrap_or_else(|p| p.into_inner());
        let error = match result {
            Ok(tokens) if tokens.access_token().is_empty() => {
                return Err(ConnectorError::Rejected {
                    message: "the token endpoint sent an empty access token".into(),
                    status,
                })
            }
            Ok(tokens) => return Ok(tokens),
            Err(e) => e,
        };
        Err(match error {
            RequestTokenError::ServerResponse(body) => {
                let message = match body.error_description() {
                    Some(d) => format!("{}: {d}", body.error().as_ref()),
                    None => body.error().as_ref().to_string(),
                };
                oauth_refusal(status, message, refreshing)
            }
            RequestTokenError::Request(TransportError(message, connect)) => {
                if connect {
                    ConnectorError::Transient {
                        message,
                        status: None,
                    }
                } else {
                    ConnectorError::Unknown { message }
                }
            }
            RequestTokenError::Parse(_, body) => {
                let text = String::from_utf8_lossy(&body);
                let excerpt: String = text.chars().take(200).collect();
                let message = format!("unexpected answer from the token endpoint: {excerpt}");
                match status {
                    Some(429) => ConnectorError::RateLimited {
                        retry_after: Duration::from_secs(60),
                        message,
                        status,
                    },
                    Some(s) if s >= 500 => ConnectorError::Transient { message, status },
                    Some(200..=299) => ConnectorError::Rejected { message, status },
                    _ => oauth_refusal(status, message, refreshing),
                }
            }
            RequestTokenError::Other(message) => ConnectorError::Rejected { message, status },
        })
    }
}

fn oauth_refusal(status: Option<u16>, message: String, refreshing: bool) -> ConnectorError {
    match status {
        Some(429) => ConnectorError::RateLimited {
            retry_after: Duration::from_secs(60),
            message,
            status,
        },
        Some(s) if s >= 500 => ConnectorError::Transient { message, status },
        _ if refreshing => ConnectorError::AuthRevoked { message, status },
        _ => ConnectorError::Rejected { message, status },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(pkce: bool, comma: bool) -> OAuthApp {
        OAuthApp {
            client_id: "cid".into(),
            client_secret: "secret".into(),
            authorize_url: "https://example.org/oauth/authorize".into(),
            token_url: "https://example.org/oauth/token".into(),
            scopes: vec!["a.read".into(), "b.write".into()],
            pkce,
            basic_auth: false,
            comma_scopes: comma,
            token_via_get: false,
        }
    }

    fn query(url: &str) -> std::collections::HashMap<String, String> {
        reqwest::Url::parse(url)
            .unwrap()
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    #[test]
    fn authorize_urls_carry_state_scopes_and_a_s256_challenge_when_asked() {
        let a = app(true, false)
            .authorize("https://herald.example/v1/oauth/callback", "st4te")
            .unwrap();
        let q = query(&a.url);
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], "cid");
        assert_eq!(q["state"], "st4te");
        assert_eq!(q["scope"], "a.read b.write");
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(
            q["redirect_uri"],
            "https://herald.example/v1/oauth/callback"
        );
        let verifier = a.verifier.unwrap();
        let digest = <sha2::Sha256 as sha2::Digest>::digest(verifier.as_bytes());
        use base64::Engine;
        let expected = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
        assert_eq!(q["code_challenge"], expected);

        let b = app(false, true).authorize("https://h/cb", "s").unwrap();
        let q = query(&b.url);
        assert_eq!(q["scope"], "a.read,b.write");
        assert!(!q.contains_key("code_challenge"));
        assert!(b.verifier.is_none());
    }

    #[test]
    fn token_sets_accept_every_network_shape() {
        // LinkedIn: no token_type.
        let t: TokenSet = serde_json::from_str(
            r#"{"access_token":"A","expires_in":5184000,"refresh_token":"R","refresh_token_expires_in":31536000,"scope":"w_member_social,openid"}"#,
        )
        .unwrap();
        assert_eq!(t.access_token(), "A");
        assert_eq!(t.refresh_token(), Some("R"));
        assert_eq!(t.scopes(), vec!["w_member_social", "openid"]);
        assert_eq!(
            t.extra_str("refresh_token_expires_in").as_deref(),
            Some("31536000")
        );
        // Threads: user_id, no token_type.
        let t: TokenSet =
            serde_json::from_str(r#"{"access_token":"B","user_id":17841400000}"#).unwrap();
        assert_eq!(t.extra_str("user_id").as_deref(), Some("17841400000"));
        assert_eq!(t.refresh_token(), None);
        // An empty refresh token is no refresh token.
        let t: TokenSet = serde_json::from_str(
            r#"{"access_token":"C","token_type":"bearer","refresh_token":""}"#,
        )
        .unwrap();
        assert_eq!(t.refresh_token(), None);
        // Instagram Login's wrapped answer.
        let t: TokenSet = serde_json::from_str(
            r#"{"data":[{"access_token":"D","user_id":"1784","permissions":"instagram_business_basic"}]}"#,
        )
        .unwrap();
        assert_eq!(t.access_token(), "D");
        assert_eq!(t.extra_str("user_id").as_deref(), Some("1784"));
    }
}
