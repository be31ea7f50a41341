//! X connector (shared/platforms.md §3): Twitter API v2 with an OAuth 2.0
//! user-context token (authorization code + PKCE S256, confidential client).
//!
//! Credentials: `access_token` (2 h), `refresh_token` (rotating: each refresh
//! returns a new one and kills the old one), `expires_at` (RFC 3339),
//! `user_id` and `username` (from `GET /2/users/me`).
//!
//! Tokens: a token known to be expired is refreshed before the call; a 401
//! (the same answer for expired, invalid and revoked tokens) refreshes once,
//! under the account's credentials lock and only if the failed token is still
//! the stored one (of many concurrent publications of one account, one
//! refreshes and the others reuse its tokens), then the call is repeated once.
//! A refused refresh means the account must be reconnected (`AuthRevoked`).
//!
//! Publishing is `POST /2/tweets` (`reply.in_reply_to_tweet_id` for thread
//! parts, `media.media_ids` for images uploaded with `POST /2/media/upload`,
//! alt text with `POST /2/media/metadata`). X has no idempotency key; it
//! refuses an identical text from the same user with a 403 "duplicate
//! content". After an unknown outcome that 403 means the first attempt went
//! out, so the connector looks the post up in the user's timeline
//! (`GET /2/users/:id/tweets?start_time=<first attempt>`), matching the text
//! and the replied-to parent. `reconcile` does the same lookup.
//!
//! Replies: recent search, `GET /2/tweets/search/recent` with
//! `query=conversation_id:<first part>` (every post of the conversation at
//! any depth shares that id), the author expanded to its username. X's
//! polling pattern: results come newest first and are followed through
//! `next_token` (which never expires) to the end; the next poll passes the
//! `newest_id` of that sweep's first page as `since_id`. A sweep longer
//! than [`MAX_REPLY_PAGES`] pages stops there and its cursor resumes it
//! (same `since_id`, the pending `next_token`) on the next poll, so a reply
//! is never skipped at a page boundary. The user's own posts (by
//! `author_id`) and Herald's parts are left out. Recent search covers the
//! last 7 days, as long as Herald tracks a post. An answer to a reply is a
//! post with `reply.in_reply_to_tweet_id` = the reply.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::header::HeaderMap;
use serde_json::{json, Value};
use unicode_normalization::UnicodeNormalization;

use super::connector::{
    answered, clip, found_or_rejected, id_text, media_type, multipart_boundary, reset_instant,
    retry_after_seconds, send_call, wait_for_reset, DownloadedImage,
};
pub use super::connector::{multipart_body, sniff_image_type};
use super::text::web_link_ranges;
use super::{
    AccountSession, Connector, ConnectorError, Credentials, FetchedReply, Post, Published,
    ReplyPage, ReplyQuery,
};
use super::{ConnectRequest, Connected, OAuthApp, OAuthNetwork, TokenSet};
use crate::config::NetworkApp;

/// The scopes Herald asks for: post, read back (reconcile, replies), the
/// user's id and handle, a refresh token, and image uploads.
pub const SCOPES: [&str; 5] = [
    "tweet.read",
    "tweet.write",
    "users.read",
    "offline.access",
    "media.write",
];
/// Wait after a 429 that says nothing about when to come back.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(60);
/// A token this close to its expiry is refreshed before use.
const EXPIRY_MARGIN: chrono::Duration = chrono::Duration::seconds(60);
/// Posts created this long before the first attempt cannot be ours (clock skew margin).
const LOOKUP_MARGIN: chrono::Duration = chrono::Duration::minutes(1);
/// Largest page of a user's posts.
const PAGE_SIZE: usize = 100;
/// Pages read when looking a post up (1,000 posts since the first attempt).
const MAX_PAGES: usize = 10;
/// Images on one post.
const MAX_IMAGES: usize = 4;
/// Largest image `POST /2/media/upload` takes.
const MAX_IMAGE_BYTES: usize = 5 * 1024 * 1024;
/// Longest alt text X keeps.
const MAX_ALT_CHARS: usize = 1000;
/// Longest server message quoted in an error.
const MAX_MESSAGE: usize = 300;
/// X's answer to a repeated text.
const DUPLICATE_CONTENT: &str = "duplicate content";
/// Largest page of recent search (10 to 100).
const REPLY_PAGE_SIZE: usize = 100;
/// Pages one reply poll follows before it stops and resumes next time.
pub const MAX_REPLY_PAGES: usize = 10;
/// What a reply poll asks of each post and its author.
const REPLY_TWEET_FIELDS: &str =
    "author_id,created_at,conversation_id,in_reply_to_user_id,referenced_tweets";

/// The credential fields this connector reads and writes.
const ACCESS_TOKEN: &str = "access_token";
const REFRESH_TOKEN: &str = "refresh_token";
const EXPIRES_AT: &str = "expires_at";
const USER_ID: &str = "user_id";
const USERNAME: &str = "username";

/// Publishes to X with the account's OAuth 2.0 user token. The API base is
/// the account's `base_url` when set, else `app.api_url`.
#[derive(Clone)]
pub struct X {
    http: reqwest::Client,
    app: NetworkApp,
}

impl X {
    pub fn new(http: reqwest::Client, app: NetworkApp) -> Self {
        Self { http, app }
    }

    fn base(&self, account: &AccountSession) -> String {
        account
            .base_url
            .as_deref()
            .map(|b| b.trim().trim_end_matches('/'))
            .filter(|b| !b.is_empty())
            .unwrap_or(self.app.api_url.trim_end_matches('/'))
            .to_string()
    }

    /// `app.token_url` when set, else `{base}/2/oauth2/token`.
    fn token_url(&self, base: &str) -> String {
        self.app
            .token_url
            .clone()
            .unwrap_or_else(|| format!("{}/2/oauth2/token", base.trim_end_matches('/')))
    }

    fn app_for(&self, base: &str) -> Option<OAuthApp> {
        let (client_id, client_secret) = self.app.client()?;
        Some(OAuthApp {
            client_id: client_id.to_string(),
            client_secret: client_secret.to_string(),
            authorize_url: format!(
                "{}/i/oauth2/authorize",
                self.app.auth_url.trim_end_matches('/')
            ),
            token_url: self.token_url(base),
            scopes: SCOPES.iter().map(|s| s.to_string()).collect(),
            pkce: true,
            basic_auth: true,
            comma_scopes: false,
            token_via_get: false,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Answers, rate limits, classification
// ---------------------------------------------------------------------------------------------

/// An API answer: status, rate-limit headers, JSON body (or `Null`), and
/// the error text X gave.
#[derive(Debug, Clone, Default)]
struct Reply {
    status: u16,
    limits: RateHeaders,
    body: Value,
    message: String,
}

impl Reply {
    /// "X answered 403: You are not allowed …", never longer than a few hundred characters.
    fn describe(&self) -> String {
        answered("X", self.status, &clip(&self.message, MAX_MESSAGE))
    }

    fn is_duplicate(&self) -> bool {
        self.status == 403
            && self
                .message
                .to_ascii_lowercase()
                .contains(DUPLICATE_CONTENT)
    }
}

/// The error text of an X answer, whatever its shape: problem JSON
/// (`detail`, `title`), the v1-style `errors[].message`, v2 `errors[]`
/// problems (`detail`), or OAuth's `error_description`.
fn error_message(body: &Value, raw: &str) -> String {
    let text = |v: &Value, name: &str| {
        v.get(name)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let mut parts: Vec<String> = Vec::new();
    if let Some(detail) = text(body, "detail").or_else(|| text(body, "title")) {
        parts.push(detail);
    }
    if let Some(errors) = body.get("errors").and_then(Value::as_array) {
        for e in errors.iter().take(3) {
            if let Some(m) = text(e, "message").or_else(|| text(e, "detail")) {
                if !parts.contains(&m) {
                    parts.push(m);
                }
            }
        }
    }
    if parts.is_empty() {
        if let Some(error) = text(body, "error") {
            parts.push(match text(body, "error_description") {
                Some(d) => format!("{error}: {d}"),
                None => error,
            });
        }
    }
    if parts.is_empty() && !body.is_object() {
        let excerpt: String = raw.trim().chars().take(200).collect();
        if !excerpt.is_empty() {
            parts.push(excerpt);
        }
    }
    parts.join("; ")
}

/// The `x-rate-limit-*` headers (epoch-second resets), the 24-hour caps
/// where X sends them, and `Retry-After`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct RateHeaders {
    remaining: Option<u64>,
    reset: Option<DateTime<Utc>>,
    user_day_remaining: Option<u64>,
    user_day_reset: Option<DateTime<Utc>>,
    app_day_remaining: Option<u64>,
    app_day_reset: Option<DateTime<Utc>>,
    retry_after: Option<Duration>,
}

impl RateHeaders {
    fn parse(headers: &HeaderMap, now: DateTime<Utc>) -> Self {
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let number = |name: &str| text(name).and_then(|v| v.trim().parse::<u64>().ok());
        let instant = |name: &str| text(name).and_then(|v| reset_instant(v, now));
        Self {
            remaining: number("x-rate-limit-remaining"),
            reset: instant("x-rate-limit-reset"),
            user_day_remaining: number("x-user-limit-24hour-remaining"),
            user_day_reset: instant("x-user-limit-24hour-reset"),
            app_day_remaining: number("x-app-limit-24hour-remaining"),
            app_day_reset: instant("x-app-limit-24hour-reset"),
            retry_after: retry_after_seconds(text("retry-after")),
        }
    }

    /// The latest reset among the budgets that are spent (remaining 0).
    fn spent_until(&self) -> Option<DateTime<Utc>> {
        [
            (self.remaining, self.reset),
            (self.user_day_remaining, self.user_day_reset),
            (self.app_day_remaining, self.app_day_reset),
        ]
        .into_iter()
        .filter(|(remaining, _)| *remaining == Some(0))
        .filter_map(|(_, reset)| reset)
        .max()
    }

    /// How long to wait after a 429: until the reset of the spent budget
    /// (else `x-rate-limit-reset`), at least a second; else `Retry-After`;
    /// else a minute.
    fn retry_after(&self, now: DateTime<Utc>) -> Duration {
        wait_for_reset(
            self.spent_until().or(self.reset),
            self.retry_after,
            now,
            DEFAULT_RETRY_AFTER,
        )
    }
}

/// Classify an answer that is not a success. A 401 that reaches this point
/// came with a refreshed token, or with no way to refresh.
fn classify(reply: &Reply, now: DateTime<Utc>) -> ConnectorError {
    let status = Some(reply.status);
    let message = reply.describe();
    match reply.status {
        429 => ConnectorError::RateLimited {
            retry_after: reply.limits.retry_after(now),
            message,
            status,
        },
        401 => ConnectorError::AuthRevoked {
            message: format!("{message} (the token is refused: reconnect the account)"),
            status,
        },
        408 | 500..=599 => ConnectorError::Transient { message, status },
        _ => ConnectorError::Rejected { message, status },
    }
}

// ---------------------------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------------------------

/// What a call needs from the credentials.
#[derive(Debug, Clone)]
struct Auth {
    token: String,
    user_id: Option<String>,
    username: Option<String>,
}

impl Auth {
    fn stored(credentials: &Credentials) -> Result<Auth, ConnectorError> {
        let token = credentials
            .get(ACCESS_TOKEN)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ConnectorError::AuthRevoked {
                message: "the account has no access_token: reconnect it".into(),
                status: None,
            })?;
        Ok(Auth {
            token: token.to_string(),
            user_id: credentials
                .get(USER_ID)
                .filter(|v| !v.is_empty())
                .map(str::to_string),
            username: credentials
                .get(USERNAME)
                .filter(|v| !v.is_empty())
                .map(str::to_string),
        })
    }
}

fn stored_expiry(credentials: &Credentials) -> Option<DateTime<Utc>> {
    credentials
        .get(EXPIRES_AT)
        .and_then(|v| DateTime::parse_from_rfc3339(v.trim()).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn has_refresh_token(credentials: &Credentials) -> bool {
    credentials
        .get(REFRESH_TOKEN)
        .is_some_and(|t| !t.is_empty())
}

/// Store a token answer: the access token, the new refresh token (never an
/// empty or missing one over a stored one), and the expiry.
fn store_tokens(
    credentials: &mut Credentials,
    tokens: &TokenSet,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    credentials.set(ACCESS_TOKEN, tokens.access_token());
    if let Some(refresh) = tokens.refresh_token() {
        credentials.set(REFRESH_TOKEN, refresh);
    }
    let expires_at = tokens.expires_at(now);
    match expires_at {
        Some(at) => credentials.set(EXPIRES_AT, at.to_rfc3339_opts(SecondsFormat::Secs, true)),
        None => credentials.remove(EXPIRES_AT),
    }
    expires_at
}

impl X {
    /// The stored token, refreshed first (under the lock) if it is known to
    /// have expired and a refresh token is held.
    async fn auth(&self, account: &AccountSession, base: &str) -> Result<Auth, ConnectorError> {
        let mut credentials = account.credentials.lock().await;
        let expired =
            stored_expiry(&credentials).is_some_and(|at| at - EXPIRY_MARGIN <= Utc::now());
        if expired && has_refresh_token(&credentials) {
            self.refresh_locked(&mut credentials, base).await?;
        }
        Auth::stored(&credentials)
    }

    /// Replace a token that X refused (`failed`): if another task has
    /// already replaced it, use theirs; else refresh once.
    async fn renew(
        &self,
        account: &AccountSession,
        base: &str,
        failed: &str,
    ) -> Result<Auth, ConnectorError> {
        let mut credentials = account.credentials.lock().await;
        let current = Auth::stored(&credentials)?;
        if current.token != failed {
            return Ok(current);
        }
        if !has_refresh_token(&credentials) {
            return Err(ConnectorError::AuthRevoked {
                message:
                    "X refused the access token and the account has no refresh token: reconnect it"
                        .into(),
                status: Some(401),
            });
        }
        self.refresh_locked(&mut credentials, base).await?;
        Auth::stored(&credentials)
    }

    /// The `refresh_token` grant, with the credentials lock held by the caller.
    async fn refresh_locked(
        &self,
        credentials: &mut Credentials,
        base: &str,
    ) -> Result<Option<DateTime<Utc>>, ConnectorError> {
        let refresh = credentials
            .get(REFRESH_TOKEN)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .ok_or_else(|| ConnectorError::AuthRevoked {
                message: "the account has no refresh token: reconnect it".into(),
                status: None,
            })?;
        let app = self
            .app_for(base)
            .ok_or_else(|| ConnectorError::AuthRevoked {
                message: "the X app (HERALD_X_CLIENT_ID and HERALD_X_CLIENT_SECRET) is not configured, so the token cannot be refreshed".into(),
                status: None,
            })?;
        let tokens = app
            .refresh(&self.http, &refresh)
            .await
            .map_err(|e| match e {
                ConnectorError::AuthRevoked { message, status } => ConnectorError::AuthRevoked {
                    message: format!(
                        "X refused to refresh the token ({message}): reconnect the account"
                    ),
                    status,
                },
                // The refresh may have gone through (and rotated the refresh
                // token); nothing was posted, so the post itself is not in doubt.
                ConnectorError::Unknown { message } => ConnectorError::AuthExpired {
                    message: format!("refreshing the token failed: {message}"),
                    status: None,
                },
                other => other,
            })?;
        Ok(store_tokens(credentials, &tokens, Utc::now()))
    }

    /// Send what `build` makes with the stored token; on a 401, renew the
    /// token once and send once more. `write`: the request may publish
    /// something, so a failure after sending is an unknown outcome.
    async fn call<F>(
        &self,
        account: &AccountSession,
        base: &str,
        write: bool,
        build: F,
    ) -> Result<(Reply, Auth), ConnectorError>
    where
        F: Fn(&str) -> reqwest::RequestBuilder,
    {
        let auth = self.auth(account, base).await?;
        let reply = self.send(build(&auth.token), write).await?;
        if reply.status != 401 {
            return Ok((reply, auth));
        }
        let auth = self.renew(account, base, &auth.token).await?;
        let reply = self.send(build(&auth.token), write).await?;
        Ok((reply, auth))
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        write: bool,
    ) -> Result<Reply, ConnectorError> {
        let answer = send_call(request, write).await?;
        let status = answer.status;
        let limits = RateHeaders::parse(&answer.headers, Utc::now());
        let bytes = answer.bytes;
        let raw = String::from_utf8_lossy(&bytes);
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let message = if (200..300).contains(&status) {
            String::new()
        } else {
            error_message(&body, &raw)
        };
        Ok(Reply {
            status,
            limits,
            body,
            message,
        })
    }

    /// `GET /2/users/me` with `token`: the user's id and username.
    async fn me_with(&self, base: &str, token: &str) -> Result<(String, String), ConnectorError> {
        let reply = self
            .send(
                self.http
                    .get(format!("{base}/2/users/me"))
                    .bearer_auth(token),
                false,
            )
            .await?;
        if reply.status != 200 {
            return Err(classify(&reply, Utc::now()));
        }
        user_of(&reply.body).ok_or_else(|| ConnectorError::Transient {
            message: "X answered /2/users/me without a user id and username".into(),
            status: Some(200),
        })
    }

    /// The user's id (and name), from the credentials or `GET /2/users/me`
    /// (then stored).
    async fn user(
        &self,
        account: &AccountSession,
        base: &str,
        auth: &Auth,
    ) -> Result<(String, Option<String>), ConnectorError> {
        if let Some(id) = &auth.user_id {
            return Ok((id.clone(), auth.username.clone()));
        }
        let (reply, _) = self
            .call(account, base, false, |token| {
                self.http
                    .get(format!("{base}/2/users/me"))
                    .bearer_auth(token)
            })
            .await?;
        if reply.status != 200 {
            return Err(classify(&reply, Utc::now()));
        }
        let (id, username) = user_of(&reply.body).ok_or_else(|| ConnectorError::Transient {
            message: "X answered /2/users/me without a user id and username".into(),
            status: Some(200),
        })?;
        let mut credentials = account.credentials.lock().await;
        credentials.set(USER_ID, id.clone());
        credentials.set(USERNAME, username.clone());
        Ok((id, Some(username)))
    }
}

fn user_of(body: &Value) -> Option<(String, String)> {
    let data = body.get("data")?;
    let id = id_text(data.get("id")?)?;
    let username = data.get("username")?.as_str()?.to_string();
    Some((id, username))
}

/// `https://x.com/{username}/status/{id}` (`i` when the username is unknown).
pub fn post_url(username: Option<&str>, id: &str) -> String {
    let user = username.filter(|u| !u.is_empty()).unwrap_or("i");
    format!("https://x.com/{user}/status/{id}")
}

/// A post id as X makes them: digits only (also keeps paths safe).
fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_digit())
}

// ---------------------------------------------------------------------------------------------
// Publishing
// ---------------------------------------------------------------------------------------------

/// The `POST /2/tweets` body: text, the replied-to post, media ids. Nothing
/// else (the endpoint rejects unknown properties).
pub fn tweet_body(text: &str, in_reply_to: Option<&str>, media_ids: &[String]) -> Value {
    let mut body = json!({ "text": text });
    if let Some(parent) = in_reply_to {
        body["reply"] = json!({ "in_reply_to_tweet_id": parent });
    }
    if !media_ids.is_empty() {
        body["media"] = json!({ "media_ids": media_ids });
    }
    body
}

impl X {
    /// Download one image with the shared client.
    async fn download(&self, url: &str) -> Result<DownloadedImage, ConnectorError> {
        let parsed = url::Url::parse(url).map_err(|_| ConnectorError::Rejected {
            message: "an image URL is not a valid URL".into(),
            status: None,
        })?;
        let host = parsed.host_str().unwrap_or("").to_string();
        let response = self
            .http
            .get(parsed)
            .send()
            .await
            .map_err(|e| ConnectorError::from_call(&e, false))?;
        let status = response.status().as_u16();
        let header_type = media_type(response.headers());
        if !(200..300).contains(&status) {
            let message = format!("downloading an image from {host} answered {status}");
            return Err(if status == 408 || status == 429 || status >= 500 {
                ConnectorError::Transient {
                    message,
                    status: Some(status),
                }
            } else {
                ConnectorError::Rejected {
                    message,
                    status: Some(status),
                }
            });
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ConnectorError::from_call(&e, false))?;
        if bytes.len() > MAX_IMAGE_BYTES {
            return Err(ConnectorError::Rejected {
                message: format!(
                    "an image is {} bytes; X takes images up to {MAX_IMAGE_BYTES} bytes",
                    bytes.len()
                ),
                status: None,
            });
        }
        let content_type = sniff_image_type(&bytes)
            .map(str::to_string)
            .or(header_type.filter(|t| t.starts_with("image/")))
            .ok_or_else(|| ConnectorError::Rejected {
                message: format!(
                    "the file downloaded from {host} is not a JPEG, PNG, GIF or WebP image"
                ),
                status: None,
            })?;
        Ok(DownloadedImage {
            bytes: bytes.to_vec(),
            content_type,
        })
    }

    /// Upload each image (`POST /2/media/upload`, `media_category=tweet_image`)
    /// and set its alt text (`POST /2/media/metadata`). Returns the media ids.
    async fn upload_media(
        &self,
        account: &AccountSession,
        base: &str,
        post: &Post,
    ) -> Result<Vec<String>, ConnectorError> {
        if post.media.len() > MAX_IMAGES {
            return Err(ConnectorError::Rejected {
                message: format!(
                    "X takes at most {MAX_IMAGES} images on a post; this one has {}",
                    post.media.len()
                ),
                status: None,
            });
        }
        let mut ids = Vec::with_capacity(post.media.len());
        for (index, item) in post.media.iter().enumerate() {
            let mut image = self.download(&item.url).await?;
            if let Some(declared) = item.content_type.as_deref() {
                if sniff_image_type(&image.bytes).is_none() && declared.starts_with("image/") {
                    image.content_type = declared.to_string();
                }
            }
            let boundary = multipart_boundary();
            let extension = image.content_type.trim_start_matches("image/").to_string();
            let filename = format!("image{index}.{extension}");
            let body = multipart_body(
                &boundary,
                &[
                    ("media_category", "tweet_image"),
                    ("media_type", &image.content_type),
                ],
                ("media", &filename, &image.content_type, &image.bytes),
            );
            let content_type = format!("multipart/form-data; boundary={boundary}");
            let (reply, _) = self
                .call(account, base, false, |token| {
                    self.http
                        .post(format!("{base}/2/media/upload"))
                        .bearer_auth(token)
                        .header(reqwest::header::CONTENT_TYPE, content_type.clone())
                        .body(body.clone())
                })
                .await?;
            if !(200..300).contains(&reply.status) {
                return Err(classify(&reply, Utc::now()).retryable());
            }
            let data = &reply.body["data"];
            let id = id_text(&data["id"])
                .or_else(|| id_text(&reply.body["media_id_string"]))
                .or_else(|| id_text(&data["media_id_string"]))
                .ok_or_else(|| ConnectorError::Transient {
                    message: "X answered the media upload without a media id".into(),
                    status: Some(reply.status),
                })?;
            if let Some(alt) = item.alt.as_deref().map(str::trim).filter(|a| !a.is_empty()) {
                self.set_alt_text(account, base, &id, alt).await?;
            }
            ids.push(id);
        }
        Ok(ids)
    }

    /// `POST /2/media/metadata` `{"id", "metadata":{"alt_text":{"text"}}}`. A
    /// refused alt text does not stop the post (it goes out without it);
    /// anything temporary fails the attempt so it is retried.
    async fn set_alt_text(
        &self,
        account: &AccountSession,
        base: &str,
        media_id: &str,
        alt: &str,
    ) -> Result<(), ConnectorError> {
        let alt: String = alt.chars().take(MAX_ALT_CHARS).collect();
        let body = json!({ "id": media_id, "metadata": { "alt_text": { "text": alt } } });
        let (reply, _) = self
            .call(account, base, false, |token| {
                self.http
                    .post(format!("{base}/2/media/metadata"))
                    .bearer_auth(token)
                    .json(&body)
            })
            .await?;
        if (200..300).contains(&reply.status) {
            return Ok(());
        }
        match classify(&reply, Utc::now()).retryable() {
            ConnectorError::Rejected { message, .. } => {
                tracing::warn!(%message, "X refused an image's alt text; posting without it");
                Ok(())
            }
            other => Err(other),
        }
    }

    /// `POST /2/tweets`.
    async fn create_tweet(
        &self,
        account: &AccountSession,
        base: &str,
        post: &Post,
        media_ids: &[String],
    ) -> Result<(Reply, Auth), ConnectorError> {
        let parent = post.reply_to.as_ref().map(|r| r.parent_id.as_str());
        if let Some(parent) = parent {
            if !valid_id(parent) {
                return Err(ConnectorError::Rejected {
                    message: format!("'{parent}' is not an X post id to reply to"),
                    status: None,
                });
            }
        }
        let body = tweet_body(&post.text, parent, media_ids);
        self.call(account, base, true, |token| {
            self.http
                .post(format!("{base}/2/tweets"))
                .bearer_auth(token)
                .json(&body)
        })
        .await
    }
}

// ---------------------------------------------------------------------------------------------
// Looking a post up
// ---------------------------------------------------------------------------------------------

/// Text as compared for reconciliation. X answers with the text NFC-normalised,
/// `&`, `<` and `>` escaped as HTML entities, links replaced by t.co links
/// (and a t.co link appended for attached media), and a reply to someone else
/// may start with auto-added @mentions. So: entities decoded, NFC, every link
/// replaced by one placeholder, whitespace runs folded, trimmed.
pub fn comparable_text(text: &str) -> String {
    let decoded = text
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    let normalized: String = decoded.nfc().collect();
    let mut out = String::with_capacity(normalized.len());
    let mut last = 0;
    for (start, end) in web_link_ranges(&normalized) {
        out.push_str(&normalized[last..start]);
        out.push_str("\u{1}link\u{1}");
        last = end;
    }
    out.push_str(&normalized[last..]);
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether a post of the timeline (`remote`, comparable text) is `ours`.
fn same_text(remote: &str, ours: &str, has_media: bool) -> bool {
    const LINK: &str = "\u{1}link\u{1}";
    let mut candidates = vec![remote.to_string()];
    if has_media {
        if let Some(stripped) = remote.strip_suffix(LINK) {
            candidates.push(stripped.trim_end().to_string());
        }
    }
    if !ours.starts_with('@') {
        // Auto-populated leading mentions of a reply.
        for c in candidates.clone() {
            let mut rest = c.as_str();
            while let Some(after) = rest.strip_prefix('@') {
                rest = after.split_once(' ').map_or("", |(_, r)| r);
            }
            if rest.len() != c.len() {
                candidates.push(rest.to_string());
            }
        }
    }
    candidates.iter().any(|c| c == ours)
}

/// The id of the post `tweet` replies to (`referenced_tweets[type=replied_to]`).
fn replied_to(tweet: &Value) -> Option<String> {
    tweet
        .get("referenced_tweets")?
        .as_array()?
        .iter()
        .find(|r| r.get("type").and_then(Value::as_str) == Some("replied_to"))
        .and_then(|r| r.get("id"))
        .and_then(id_text)
}

impl X {
    /// Look for `post` in the user's timeline since its first attempt (less
    /// a margin): same text, same replied-to parent. The oldest match wins:
    /// it is the closest to the first attempt.
    async fn find(
        &self,
        account: &AccountSession,
        base: &str,
        post: &Post,
    ) -> Result<Option<Published>, ConnectorError> {
        let auth = self.auth(account, base).await?;
        let (user_id, username) = self
            .user(account, base, &auth)
            .await
            .map_err(ConnectorError::retryable)?;
        if !valid_id(&user_id) {
            return Err(ConnectorError::AuthRevoked {
                message: "the account's user_id is not an X user id: reconnect it".into(),
                status: None,
            });
        }
        let start =
            (post.first_attempt_at - LOOKUP_MARGIN).to_rfc3339_opts(SecondsFormat::Secs, true);
        let wanted = comparable_text(&post.text);
        let parent = post.reply_to.as_ref().map(|r| r.parent_id.clone());
        let mut found: Option<String> = None;
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut query: Vec<(&str, String)> = vec![
                ("max_results", PAGE_SIZE.to_string()),
                ("start_time", start.clone()),
                (
                    "tweet.fields",
                    "created_at,conversation_id,referenced_tweets".to_string(),
                ),
            ];
            if let Some(t) = &token {
                query.push(("pagination_token", t.clone()));
            }
            let (reply, _) = self
                .call(account, base, false, |bearer| {
                    self.http
                        .get(format!("{base}/2/users/{user_id}/tweets"))
                        .query(&query)
                        .bearer_auth(bearer)
                })
                .await?;
            if reply.status != 200 {
                return Err(classify(&reply, Utc::now()).retryable());
            }
            let tweets = reply.body["data"].as_array().cloned().unwrap_or_default();
            for tweet in &tweets {
                let Some(id) = tweet.get("id").and_then(id_text) else {
                    continue;
                };
                let text = tweet.get("text").and_then(Value::as_str).unwrap_or("");
                if same_text(&comparable_text(text), &wanted, !post.media.is_empty())
                    && replied_to(tweet) == parent
                {
                    found = Some(id);
                }
            }
            match reply.body["meta"]["next_token"].as_str() {
                Some(next) if !next.is_empty() && !tweets.is_empty() => {
                    token = Some(next.to_string())
                }
                _ => {
                    return Ok(found.map(|id| Published {
                        remote_url: Some(post_url(username.as_deref(), &id)),
                        remote_id: id,
                        pause_until: None,
                    }))
                }
            }
        }
        match found {
            Some(id) => Ok(Some(Published {
                remote_url: Some(post_url(username.as_deref(), &id)),
                remote_id: id,
                pause_until: None,
            })),
            None => Err(ConnectorError::Transient {
                message: format!(
                    "looked through {} posts without reaching the first attempt",
                    MAX_PAGES * PAGE_SIZE
                ),
                status: None,
            }),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The connector
// ---------------------------------------------------------------------------------------------

impl Connector for X {
    async fn publish(
        &self,
        account: &AccountSession,
        post: &Post,
    ) -> Result<Published, ConnectorError> {
        let base = self.base(account);
        let media_ids = self.upload_media(account, &base, post).await?;
        let (reply, auth) = self.create_tweet(account, &base, post, &media_ids).await?;
        if (200..300).contains(&reply.status) {
            let data = &reply.body["data"];
            let id = id_text(&data["id"]).ok_or_else(|| ConnectorError::Unknown {
                message: format!("X answered {} without a post id", reply.status),
            })?;
            return Ok(Published {
                remote_url: Some(post_url(auth.username.as_deref(), &id)),
                remote_id: id,
                pause_until: reply.limits.spent_until(),
            });
        }
        if reply.is_duplicate() {
            // X refuses the same text twice: after an attempt whose outcome
            // was unknown, that attempt most likely went out. Find it.
            let found = self.find(account, &base, post).await?;
            return found_or_rejected(found, reply.describe(), reply.status);
        }
        Err(classify(&reply, Utc::now()))
    }

    async fn reconcile(
        &self,
        account: &AccountSession,
        post: &Post,
    ) -> Result<Option<Published>, ConnectorError> {
        let base = self.base(account);
        self.find(account, &base, post).await
    }

    async fn delete(
        &self,
        account: &AccountSession,
        remote_id: &str,
    ) -> Result<(), ConnectorError> {
        if !valid_id(remote_id) {
            return Err(ConnectorError::Rejected {
                message: format!("'{remote_id}' is not an X post id"),
                status: None,
            });
        }
        let base = self.base(account);
        let (reply, _) = self
            .call(account, &base, false, |token| {
                self.http
                    .delete(format!("{base}/2/tweets/{remote_id}"))
                    .bearer_auth(token)
            })
            .await?;
        match reply.status {
            200..=299 if reply.body["data"]["deleted"] == Value::Bool(false) => {
                Err(ConnectorError::Transient {
                    message: "X answered that the post was not deleted".into(),
                    status: Some(reply.status),
                })
            }
            200..=299 => Ok(()),
            404 => Ok(()),
            _ => Err(classify(&reply, Utc::now())),
        }
    }

    async fn check(&self, account: &AccountSession) -> Result<(), ConnectorError> {
        let base = self.base(account);
        let (reply, _) = self
            .call(account, &base, false, |token| {
                self.http
                    .get(format!("{base}/2/users/me"))
                    .bearer_auth(token)
            })
            .await?;
        if reply.status != 200 {
            return Err(classify(&reply, Utc::now()));
        }
        if let Some((id, username)) = user_of(&reply.body) {
            let mut credentials = account.credentials.lock().await;
            credentials.set(USER_ID, id);
            credentials.set(USERNAME, username);
        }
        Ok(())
    }

    /// Recent search of the conversation, newest first, every page of the
    /// sweep (bounded; see the module notes); the replies oldest first.
    async fn replies(
        &self,
        account: &AccountSession,
        query: &ReplyQuery,
    ) -> Result<ReplyPage, ConnectorError> {
        let root = query.root_id.trim();
        if !valid_id(root) {
            return Err(ConnectorError::Rejected {
                message: format!("'{root}' is not an X post id"),
                status: None,
            });
        }
        let base = self.base(account);
        let auth = self.auth(account, &base).await?;
        let (user_id, _) = self
            .user(account, &base, &auth)
            .await
            .map_err(ConnectorError::retryable)?;
        let mut sweep = ReplyCursor::parse(query.cursor.as_deref());
        let mut found: Vec<FetchedReply> = Vec::new();
        let mut restarts = 0;
        let mut pages = 0;
        while pages < MAX_REPLY_PAGES {
            pages += 1;
            let params = sweep.params(root);
            let (reply, _) = self
                .call(account, &base, false, |bearer| {
                    self.http
                        .get(format!("{base}/2/tweets/search/recent"))
                        .query(&params)
                        .bearer_auth(bearer)
                })
                .await?;
            if reply.status == 400 && restarts < 2 {
                // A pending token, or a `since_id` past the 7 days of recent
                // search, that X no longer takes: sweep again from the last
                // complete poll, then from scratch (a repeat is stored once).
                if sweep.next_token.take().is_some() {
                    sweep.newest = None;
                    restarts += 1;
                    continue;
                }
                if sweep.since_id.take().is_some() {
                    restarts += 1;
                    continue;
                }
            }
            if reply.status != 200 {
                let error = classify(&reply, Utc::now()).retryable();
                if found.is_empty() {
                    return Err(error);
                }
                // Keep what was read; the cursor resumes at the failed page.
                tracing::warn!(%error, "X reply poll stopped early; resuming next time");
                return Ok(sweep.page(found));
            }
            let users = usernames(&reply.body);
            for tweet in reply.body["data"].as_array().into_iter().flatten() {
                let Some(found_reply) = search_reply(tweet, &users) else {
                    continue;
                };
                let own = tweet["author_id"].as_str() == Some(user_id.as_str())
                    || query.own_ids.contains(&found_reply.remote_id);
                if !own {
                    found.push(found_reply);
                }
            }
            let meta = &reply.body["meta"];
            if sweep.newest.is_none() {
                sweep.newest = meta["newest_id"].as_str().map(str::to_string);
            }
            match meta["next_token"].as_str().filter(|t| !t.is_empty()) {
                Some(next) => sweep.next_token = Some(next.to_string()),
                None => {
                    sweep.finish();
                    return Ok(sweep.page(found));
                }
            }
        }
        Ok(sweep.page(found))
    }

    /// The `refresh_token` grant, under the account's credentials lock.
    /// Without a refresh token, the stored expiry stands.
    async fn refresh(
        &self,
        account: &AccountSession,
    ) -> Result<Option<DateTime<Utc>>, ConnectorError> {
        let base = self.base(account);
        let mut credentials = account.credentials.lock().await;
        if !has_refresh_token(&credentials) {
            return Ok(stored_expiry(&credentials));
        }
        self.refresh_locked(&mut credentials, &base).await
    }
}

// ---------------------------------------------------------------------------------------------
// Replies
// ---------------------------------------------------------------------------------------------

/// Where a reply poll stands. Written as the cursor: `<since_id>` between
/// sweeps (`-` before the first one ended with a result), or
/// `<since_id> <newest_id> <next_token>` in the middle of a sweep.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplyCursor {
    /// Posts up to this id were handed back by complete sweeps.
    pub since_id: Option<String>,
    /// The newest id of the current sweep (its first page's `newest_id`).
    pub newest: Option<String>,
    /// The page the current sweep goes on with.
    pub next_token: Option<String>,
}

impl ReplyCursor {
    /// A stored cursor; anything unreadable starts afresh (a repeat is
    /// stored once, a gap would be lost).
    pub fn parse(cursor: Option<&str>) -> ReplyCursor {
        let id = |s: &str| valid_id(s).then(|| s.to_string());
        let parts: Vec<&str> = cursor.unwrap_or("").split_whitespace().collect();
        match parts.as_slice() {
            [since] => ReplyCursor {
                since_id: id(since),
                ..ReplyCursor::default()
            },
            [since, newest, token] if valid_id(newest) && (*since == "-" || valid_id(since)) => {
                ReplyCursor {
                    since_id: id(since),
                    newest: id(newest),
                    next_token: Some(token.to_string()),
                }
            }
            _ => ReplyCursor::default(),
        }
    }

    /// The query of the next page.
    fn params(&self, root: &str) -> Vec<(&'static str, String)> {
        let mut params = vec![
            ("query", format!("conversation_id:{root}")),
            ("max_results", REPLY_PAGE_SIZE.to_string()),
            ("tweet.fields", REPLY_TWEET_FIELDS.to_string()),
            ("expansions", "author_id".to_string()),
            ("user.fields", "username".to_string()),
        ];
        if let Some(since) = &self.since_id {
            params.push(("since_id", since.clone()));
        }
        if let Some(token) = &self.next_token {
            params.push(("next_token", token.clone()));
        }
        params
    }

    /// The sweep reached its last page: the next one starts after its newest post.
    fn finish(&mut self) {
        if let Some(newest) = self.newest.take() {
            self.since_id = Some(newest);
        }
        self.next_token = None;
    }

    /// The cursor as stored: `None` when nothing changed.
    pub fn encode(&self) -> Option<String> {
        match (&self.next_token, &self.newest) {
            (Some(token), Some(newest)) => Some(format!(
                "{} {newest} {token}",
                self.since_id.as_deref().unwrap_or("-")
            )),
            _ => self.since_id.clone(),
        }
    }

    /// The poll's answer: `found` oldest first, and this cursor.
    fn page(&self, mut found: Vec<FetchedReply>) -> ReplyPage {
        found.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then(a.remote_id.len().cmp(&b.remote_id.len()))
                .then(a.remote_id.cmp(&b.remote_id))
        });
        found.dedup_by(|a, b| a.remote_id == b.remote_id);
        ReplyPage {
            replies: found,
            cursor: self.encode(),
        }
    }
}

/// `includes.users`: user id → username.
fn usernames(body: &Value) -> std::collections::HashMap<String, String> {
    body["includes"]["users"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| Some((id_text(&u["id"])?, u["username"].as_str()?.to_string())))
        .collect()
}

/// A post of the search as a reply: its username, its text with X's
/// entities (`&amp;`, `&lt;`, `&gt;`) decoded, the post it replies to.
fn search_reply(
    tweet: &Value,
    users: &std::collections::HashMap<String, String>,
) -> Option<FetchedReply> {
    let id = id_text(&tweet["id"])?;
    let author = tweet["author_id"]
        .as_str()
        .and_then(|a| users.get(a))
        .cloned();
    let text = tweet["text"]
        .as_str()
        .unwrap_or_default()
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    Some(FetchedReply {
        url: Some(post_url(author.as_deref(), &id)),
        parent_id: replied_to(tweet),
        author: author.unwrap_or_default(),
        text,
        created_at: tweet["created_at"]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map_or_else(Utc::now, |t| t.with_timezone(&Utc)),
        remote_id: id,
    })
}

impl OAuthNetwork for X {
    fn oauth_app(&self) -> Option<OAuthApp> {
        self.app_for(&self.app.api_url)
    }

    /// Fetch the user (`GET /2/users/me`) and keep the tokens, expiry,
    /// user id and username.
    async fn connect(
        &self,
        tokens: TokenSet,
        request: &ConnectRequest,
    ) -> Result<Connected, ConnectorError> {
        let base = request
            .base_url
            .as_deref()
            .map(|b| b.trim().trim_end_matches('/'))
            .filter(|b| !b.is_empty())
            .unwrap_or(self.app.api_url.trim_end_matches('/'))
            .to_string();
        let (user_id, username) = self.me_with(&base, tokens.access_token()).await?;
        let mut credentials = Credentials::default();
        let expires_at = store_tokens(&mut credentials, &tokens, Utc::now());
        credentials.set(USER_ID, user_id);
        credentials.set(USERNAME, username.clone());
        Ok(Connected {
            credentials,
            remote_name: Some(format!("@{username}")),
            expires_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn the_tweet_body_has_only_documented_properties() {
        assert_eq!(tweet_body("hi", None, &[]), json!({"text": "hi"}));
        assert_eq!(
            tweet_body("part 2", Some("123"), &["9".to_string(), "10".to_string()]),
            json!({
                "text": "part 2",
                "reply": {"in_reply_to_tweet_id": "123"},
                "media": {"media_ids": ["9", "10"]},
            })
        );
    }

    #[test]
    fn rate_limit_headers_give_the_wait_and_the_pause() {
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap();
        let reset = (now.timestamp() + 300).to_string();
        let parsed = RateHeaders::parse(
            &headers(&[
                ("x-rate-limit-limit", "100"),
                ("x-rate-limit-remaining", "0"),
                ("x-rate-limit-reset", &reset),
            ]),
            now,
        );
        assert_eq!(parsed.remaining, Some(0));
        assert_eq!(
            parsed.spent_until(),
            Some(now + chrono::Duration::seconds(300))
        );
        assert_eq!(parsed.retry_after(now), Duration::from_secs(300));

        // Budget left: no pause, but a 429 still waits for the reset.
        let left = RateHeaders::parse(
            &headers(&[
                ("x-rate-limit-remaining", "7"),
                ("x-rate-limit-reset", &reset),
            ]),
            now,
        );
        assert_eq!(left.spent_until(), None);
        assert_eq!(left.retry_after(now), Duration::from_secs(300));

        // The 24-hour user cap, when spent, is the later reset.
        let day = (now.timestamp() + 3600).to_string();
        let capped = RateHeaders::parse(
            &headers(&[
                ("x-rate-limit-remaining", "50"),
                ("x-rate-limit-reset", &reset),
                ("x-user-limit-24hour-remaining", "0"),
                ("x-user-limit-24hour-reset", &day),
            ]),
            now,
        );
        assert_eq!(capped.retry_after(now), Duration::from_secs(3600));

        assert_eq!(RateHeaders::default().retry_after(now), DEFAULT_RETRY_AFTER);
        let past = RateHeaders {
            reset: Some(now - chrono::Duration::seconds(5)),
            ..RateHeaders::default()
        };
        assert_eq!(past.retry_after(now), Duration::from_secs(1));
        assert_eq!(
            reset_instant("30", now),
            Some(now + chrono::Duration::seconds(30))
        );
        assert_eq!(reset_instant("soon", now), None);
    }

    fn reply(status: u16, body: Value) -> Reply {
        let raw = body.to_string();
        Reply {
            status,
            message: error_message(&body, &raw),
            body,
            limits: RateHeaders::default(),
        }
    }

    #[test]
    fn every_error_shape_gives_its_message() {
        let duplicate = reply(
            403,
            json!({"detail": "You are not allowed to create a Tweet with duplicate content.", "type": "about:blank", "title": "Forbidden", "status": 403}),
        );
        assert!(duplicate.is_duplicate());
        assert_eq!(
            duplicate.describe(),
            "X answered 403: You are not allowed to create a Tweet with duplicate content."
        );
        let legacy = reply(
            429,
            json!({"errors": [{"code": 88, "message": "Rate limit exceeded"}]}),
        );
        assert_eq!(legacy.message, "Rate limit exceeded");
        let invalid = reply(
            400,
            json!({"errors": [{"parameters": {}, "message": "text: too long"}], "title": "Invalid Request", "detail": "One or more parameters to your request was invalid.", "type": "https://api.x.com/2/problems/invalid-request"}),
        );
        assert_eq!(
            invalid.message,
            "One or more parameters to your request was invalid.; text: too long"
        );
        let oauth = reply(
            400,
            json!({"error": "invalid_request", "error_description": "Value passed for the token was invalid."}),
        );
        assert_eq!(
            oauth.message,
            "invalid_request: Value passed for the token was invalid."
        );
        let long = reply(400, json!({"detail": "x".repeat(1000)}));
        assert!(long.describe().len() < 400);
        assert_eq!(
            error_message(&Value::Null, "<html>Bad gateway"),
            "<html>Bad gateway"
        );
    }

    #[test]
    fn failures_are_classified_as_platforms_md_says() {
        let now = Utc::now();
        let class = |status: u16, body: Value| classify(&reply(status, body), now).class();
        assert_eq!(
            class(429, json!({"title": "Too Many Requests"})),
            "rate_limited"
        );
        assert_eq!(class(401, json!({"title": "Unauthorized"})), "auth_revoked");
        assert_eq!(
            class(
                403,
                json!({"detail": "You are not permitted to perform this action."})
            ),
            "rejected"
        );
        assert_eq!(class(400, json!({"detail": "Invalid"})), "rejected");
        assert_eq!(
            class(503, json!({"title": "Service Unavailable"})),
            "transient"
        );
        assert_eq!(class(404, Value::Null), "rejected");
        assert!(!reply(
            403,
            json!({"detail": "You are not permitted to perform this action."})
        )
        .is_duplicate());
    }

    #[test]
    fn timeline_text_matches_what_was_sent() {
        let ours = comparable_text("Fish & <chips> at https://example.org/menu?a=1 now");
        let theirs = comparable_text("Fish &amp; &lt;chips&gt; at https://t.co/AbC123 now");
        assert_eq!(ours, theirs);
        assert!(same_text(&theirs, &ours, false));
        // Attached media add a trailing t.co link.
        let with_media = comparable_text("Road closed https://t.co/xyz");
        let sent = comparable_text("Road closed");
        assert!(same_text(&with_media, &sent, true));
        assert!(!same_text(&with_media, &sent, false));
        // Auto-populated reply mentions.
        assert!(same_text(
            &comparable_text("@city @mayor Update 2"),
            &comparable_text("Update 2"),
            false
        ));
        assert!(!same_text(
            &comparable_text("Update 3"),
            &comparable_text("Update 2"),
            false
        ));
        // NFC: a decomposed é equals the composed one.
        assert_eq!(comparable_text("cafe\u{301}"), comparable_text("café"));
    }

    #[test]
    fn replied_to_reads_referenced_tweets() {
        let tweet = json!({"id": "2", "referenced_tweets": [{"type": "quoted", "id": "7"}, {"type": "replied_to", "id": "1"}]});
        assert_eq!(replied_to(&tweet).as_deref(), Some("1"));
        assert_eq!(replied_to(&json!({"id": "3"})), None);
    }

    #[test]
    fn urls_ids_and_image_types() {
        assert_eq!(post_url(Some("city"), "42"), "https://x.com/city/status/42");
        assert_eq!(post_url(None, "42"), "https://x.com/i/status/42");
        assert!(valid_id("1880028106020515840"));
        assert!(!valid_id("12/../34"));
        assert!(!valid_id(""));
        assert_eq!(
            sniff_image_type(&[0xFF, 0xD8, 0xFF, 0xE0]),
            Some("image/jpeg")
        );
        assert_eq!(
            sniff_image_type(b"\x89PNG\r\n\x1a\n...."),
            Some("image/png")
        );
        assert_eq!(
            sniff_image_type(b"RIFF\0\0\0\0WEBPVP8 "),
            Some("image/webp")
        );
        assert_eq!(sniff_image_type(b"GIF89a.."), Some("image/gif"));
        assert_eq!(sniff_image_type(b"<html>"), None);
    }

    #[test]
    fn multipart_bodies_have_crlf_boundaries_and_the_file_part() {
        let body = multipart_body(
            "b0",
            &[("media_category", "tweet_image")],
            ("media", "a.jpg", "image/jpeg", b"\xFF\xD8\xFF"),
        );
        let mut expected = b"--b0\r\nContent-Disposition: form-data; name=\"media_category\"\r\n\r\ntweet_image\r\n--b0\r\nContent-Disposition: form-data; name=\"media\"; filename=\"a.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n".to_vec();
        expected.extend_from_slice(b"\xFF\xD8\xFF\r\n--b0--\r\n");
        assert_eq!(body, expected);
    }

    #[test]
    fn token_answers_never_drop_a_stored_refresh_token() {
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap();
        let mut credentials = Credentials::default();
        credentials.set(REFRESH_TOKEN, "old-refresh");
        let tokens: TokenSet = serde_json::from_value(json!({"access_token": "A2", "token_type": "bearer", "expires_in": 7200, "refresh_token": ""})).unwrap();
        let at = store_tokens(&mut credentials, &tokens, now);
        assert_eq!(at, Some(now + chrono::Duration::hours(2)));
        assert_eq!(credentials.get(REFRESH_TOKEN), Some("old-refresh"));
        assert_eq!(credentials.get(ACCESS_TOKEN), Some("A2"));
        assert_eq!(credentials.get(EXPIRES_AT), Some("2026-11-25T11:00:00Z"));
        assert_eq!(stored_expiry(&credentials), at);
        let rotated: TokenSet = serde_json::from_value(json!({"access_token": "A3", "token_type": "bearer", "expires_in": 7200, "refresh_token": "new-refresh"})).unwrap();
        store_tokens(&mut credentials, &rotated, now);
        assert_eq!(credentials.get(REFRESH_TOKEN), Some("new-refresh"));
    }

    #[test]
    fn reply_cursors_round_trip_and_a_strange_one_starts_afresh() {
        let between = ReplyCursor::parse(Some("1700"));
        assert_eq!(between.since_id.as_deref(), Some("1700"));
        assert_eq!(between.encode().as_deref(), Some("1700"));
        let mid = ReplyCursor::parse(Some("1700 1800 b26v89c19zqg8o3f"));
        assert_eq!(mid.newest.as_deref(), Some("1800"));
        assert_eq!(mid.next_token.as_deref(), Some("b26v89c19zqg8o3f"));
        assert_eq!(mid.encode().as_deref(), Some("1700 1800 b26v89c19zqg8o3f"));
        let first = ReplyCursor::parse(Some("- 1800 tok"));
        assert_eq!(first.since_id, None);
        assert_eq!(first.encode().as_deref(), Some("- 1800 tok"));
        let mut done = mid.clone();
        done.finish();
        assert_eq!(done.encode().as_deref(), Some("1800"));
        assert_eq!(
            ReplyCursor::parse(Some("not an id")),
            ReplyCursor::default()
        );
        assert_eq!(ReplyCursor::parse(None).encode(), None);
        let params = mid.params("42");
        assert!(params.contains(&("query", "conversation_id:42".to_string())));
        assert!(params.contains(&("since_id", "1700".to_string())));
        assert!(params.contains(&("next_token", "b26v89c19zqg8o3f".to_string())));
    }

    #[test]
    fn a_search_result_becomes_a_reply_with_its_username_and_parent() {
        let users = usernames(&json!({"includes": {"users": [
            {"id": "7", "name": "Bob B", "username": "bob"}
        ]}}));
        let tweet = json!({
            "id": "99",
            "text": "@cityhall a &amp; b &lt;c&gt;",
            "author_id": "7",
            "created_at": "2026-01-01T09:00:00.000Z",
            "referenced_tweets": [{"type": "quoted", "id": "5"}, {"type": "replied_to", "id": "42"}],
        });
        let reply = search_reply(&tweet, &users).unwrap();
        assert_eq!(reply.author, "bob");
        assert_eq!(reply.text, "@cityhall a & b <c>");
        assert_eq!(reply.parent_id.as_deref(), Some("42"));
        assert_eq!(reply.url.as_deref(), Some("https://x.com/bob/status/99"));
        let unknown = search_reply(&json!({"id": "100", "author_id": "8"}), &users).unwrap();
        assert_eq!(unknown.url.as_deref(), Some("https://x.com/i/status/100"));
    }

    #[test]
    fn the_oauth_app_follows_the_docs() {
        let mut app = NetworkApp {
            api_url: "https://api.x.com".into(),
            auth_url: "https://x.com".into(),
            ..NetworkApp::default()
        };
        let x = X::new(reqwest::Client::new(), app.clone());
        assert!(x.oauth_app().is_none());
        app.client_id = Some("cid".into());
        app.client_secret = Some("secret".into());
        let oauth = X::new(reqwest::Client::new(), app.clone())
            .oauth_app()
            .unwrap();
        assert_eq!(oauth.authorize_url, "https://x.com/i/oauth2/authorize");
        assert_eq!(oauth.token_url, "https://api.x.com/2/oauth2/token");
        assert!(oauth.pkce && oauth.basic_auth && !oauth.comma_scopes);
        assert_eq!(
            oauth.scopes.join(" "),
            "tweet.read tweet.write users.read offline.access media.write"
        );
        app.token_url = Some("https://proxy.example/token".into());
        let oauth = X::new(reqwest::Client::new(), app).oauth_app().unwrap();
        assert_eq!(oauth.token_url, "https://proxy.example/token");
    }
}
