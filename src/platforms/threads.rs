//! Threads connector (shared/platforms.md §7): Meta's Threads API on
//! `graph.threads.net`.
//!
//! Publishing is two steps: create a media container (`POST
//! /v1.0/{user-id}/threads` with `media_type=TEXT`, or `IMAGE` with
//! `image_url` and `alt_text`; `reply_to_id` for thread parts and replies),
//! wait until its `status` is `FINISHED`, then `POST
//! /v1.0/{user-id}/threads_publish` with `creation_id`. The permalink comes
//! from `GET /v1.0/{media-id}?fields=permalink`. The access token goes in
//! the `access_token` query parameter, as in every example of the docs; a
//! POST carries its parameters both in the query (as the docs' examples do)
//! and in a form body (as `-d alt_text=…` does), which the Graph API merges.
//!
//! Idempotency: Threads has no key, but a container publishes at most once.
//! The connector remembers the container of each (account, part key) in
//! memory: a retry of the same part first looks at that container
//! (`PUBLISHED` → find the post; `FINISHED` → publish *that* container) and
//! only makes a new one when the old one failed or expired. `reconcile`
//! does the same, then falls back to listing the user's recent threads (or
//! replies) and matching the text (and the parent).
//!
//! Tokens: the long-lived token (60 days) is renewed with `GET
//! /refresh_access_token?grant_type=th_refresh_token` once it is at least
//! 24 hours old and before it expires (`issued_at` and `expires_at` are kept
//! in the credentials). An expired token cannot be renewed: Graph code 190
//! means the account must be reconnected.
//!
//! Replies (platforms.md §7.6): `GET /v1.0/{media-id}/conversation?reverse=false`
//! lists every reply under the post at any depth, flat and oldest first,
//! each with `replied_to` (what it answers). The poll's cursor is Graph's
//! `after` cursor of the last page read: handed back, it makes Threads
//! answer only the replies made since, a new answer deep in an old branch
//! included (the list is ordered by time, not by branch). The account's own
//! posts (thread parts, answers) are left out by id and by username (read
//! once from `/me` when the credentials do not hold it). Answering a reply
//! from the follow-up queue is a reply to it (`reply_to_id`), like any part.
//!
//! Limits: 250 posts and 1,000 replies per rolling 24 hours (read from
//! `threads_publishing_limit`, never hard-coded: the wait is until the oldest
//! post of the window leaves it), Graph throttling codes 4/17/32/613, and
//! Meta's JSON usage headers when they are present.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

use super::connector::{answered, clip, id_text, send_call};
use super::graph;
use super::{AccountSession, Connector, ConnectorError, Credentials, Post, Published};
use super::{ConnectRequest, Connected, OAuthApp, OAuthNetwork, TokenSet};
use super::{FetchedReply, ReplyPage, ReplyQuery};
use crate::config::NetworkApp;

/// The Graph API version Herald calls.
const VERSION: &str = "v1.0";
/// What Threads asks for, comma-joined in the authorize URL.
pub const SCOPES: [&str; 5] = [
    "threads_basic",
    "threads_content_publish",
    "threads_manage_replies",
    "threads_read_replies",
    "threads_delete",
];

/// Credential fields the connector reads and writes.
pub const ACCESS_TOKEN: &str = "access_token";
pub const USER_ID: &str = "user_id";
pub const USERNAME: &str = "username";
/// RFC 3339: when the long-lived token stops working.
pub const EXPIRES_AT: &str = "expires_at";
/// RFC 3339: when the token was issued (a refresh needs it 24 hours old).
pub const ISSUED_AT: &str = "issued_at";

/// A token must be this old before Threads refreshes it.
const MIN_REFRESH_AGE: chrono::Duration = chrono::Duration::hours(24);
/// Publishing renews the token on its own when it expires within this.
const REFRESH_MARGIN: chrono::Duration = chrono::Duration::days(7);
/// A long-lived token's life when the answer does not say (60 days).
const LONG_LIVED_SECONDS: i64 = 5_184_000;
/// How long container-status polling may take before the publish is
/// reported transient (the container is kept and reused by the retry).
const DEFAULT_CONTAINER_WAIT: Duration = Duration::from_secs(30);
/// A throttle that says nothing about its length.
const DEFAULT_THROTTLE: Duration = Duration::from_secs(300);
/// Over a daily cap whose window could not be read.
const DEFAULT_QUOTA_WAIT: Duration = Duration::from_secs(3600);
/// Longest server message quoted in an error.
const MAX_MESSAGE: usize = 300;
/// Pages read when looking a post up (100 posts each).
const MAX_PAGES: usize = 5;
/// Looking a post up starts this long before the first attempt (clock skew).
const LOOKUP_SLACK: chrono::Duration = chrono::Duration::minutes(10);
/// Replies asked for per page when collecting them.
const REPLY_PAGE: &str = "100";
/// The reply fields reply collection reads (platforms.md §7.6).
const REPLY_FIELDS: &str =
    "id,text,username,permalink,timestamp,media_type,replied_to,root_post,is_reply,hide_status";
/// Containers remembered per process (oldest dropped first).
const MAX_REMEMBERED: usize = 10_000;
/// A container not published within 24 hours expires.
const CONTAINER_LIFE: Duration = Duration::from_secs(24 * 3600);

/// Publishes to Threads (`https://graph.threads.net` unless the account or
/// the settings name another API address).
#[derive(Clone)]
pub struct Threads {
    http: reqwest::Client,
    app: NetworkApp,
    container_wait: Duration,
    /// (account id, part key) → the container made for that part.
    containers: Arc<Mutex<Remembered>>,
}

/// (account id, part key) → (container id, when it was made).
type Remembered = HashMap<(String, String), (String, Instant)>;

impl Threads {
    pub fn new(http: reqwest::Client, app: NetworkApp) -> Self {
        Self {
            http,
            app,
            container_wait: DEFAULT_CONTAINER_WAIT,
            containers: Arc::default(),
        }
    }

    /// How long to wait for a container to be `FINISHED` (default 30 s).
    pub fn with_container_wait(mut self, wait: Duration) -> Self {
        self.container_wait = wait;
        self
    }

    fn base(&self, account: &AccountSession) -> String {
        let base = account
            .base_url
            .as_deref()
            .filter(|b| !b.trim().is_empty())
            .unwrap_or(&self.app.api_url);
        base.trim().trim_end_matches('/').to_string()
    }
}

// ---------------------------------------------------------------------------------------------
// Answers, errors and usage headers
// ---------------------------------------------------------------------------------------------

/// What a call may have done if its answer was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    /// Reads, container creation, deletes: safe to repeat.
    Safe,
    /// `threads_publish`: the post may be out.
    Publish,
}

/// Meta's usage headers (`X-App-Usage`, `X-Business-Use-Case-Usage`,
/// `X-Page-Usage`): the highest percentage used, and the longest
/// `estimated_time_to_regain_access` (minutes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Usage {
    max_percent: u64,
    regain_minutes: u64,
}

impl Usage {
    fn parse(headers: &reqwest::header::HeaderMap) -> Self {
        let mut usage = Usage::default();
        for name in ["x-app-usage", "x-business-use-case-usage", "x-page-usage"] {
            for value in headers.get_all(name) {
                if let Some(json) = value
                    .to_str()
                    .ok()
                    .and_then(|v| serde_json::from_str::<Value>(v).ok())
                {
                    usage.absorb(&json);
                }
            }
        }
        usage
    }

    /// Walk any JSON shape: objects of counters, maps of lists of objects.
    fn absorb(&mut self, value: &Value) {
        match value {
            Value::Object(map) => {
                for (key, v) in map {
                    let number = v
                        .as_f64()
                        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()));
                    match (key.as_str(), number) {
                        (
                            "call_count" | "total_cputime" | "total_time" | "acc_id_util_pct",
                            Some(n),
                        ) => self.max_percent = self.max_percent.max(n.max(0.0).ceil() as u64),
                        ("estimated_time_to_regain_access", Some(n)) => {
                            self.regain_minutes = self.regain_minutes.max(n.max(0.0).ceil() as u64)
                        }
                        _ => self.absorb(v),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| self.absorb(v)),
            _ => {}
        }
    }

    /// How long the headers say to stay away, if they say so.
    fn wait(&self) -> Option<Duration> {
        if self.regain_minutes > 0 {
            Some(Duration::from_secs(self.regain_minutes * 60))
        } else if self.max_percent >= 100 {
            Some(DEFAULT_THROTTLE)
        } else {
            None
        }
    }
}

/// One HTTP answer of the Graph API.
#[derive(Debug, Clone, Default)]
struct Answer {
    status: u16,
    body: Value,
    usage: Usage,
}

impl Answer {
    fn ok(&self) -> bool {
        (200..300).contains(&self.status) && self.body.get("error").is_none()
    }

    fn str_field(&self, name: &str) -> Option<String> {
        id_text(self.body.get(name)?)
    }

    fn error(&self) -> GraphError {
        GraphError::from_body(self.status, &self.body)
    }

    /// The failure this answer means (no quota lookup), without `secret`.
    fn failure(&self, secret: Option<&str>) -> ConnectorError {
        let error = self.error();
        simple_error(&error, classify(&error), &self.usage, secret)
    }
}

/// Graph's error envelope `{"error":{message,type,code,error_subcode,…}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct GraphError {
    status: u16,
    code: Option<i64>,
    subcode: Option<i64>,
    message: String,
    transient: bool,
}

impl GraphError {
    fn from_body(status: u16, body: &Value) -> Self {
        let error = body.get("error");
        let int = |name: &str| {
            error.and_then(|e| e.get(name)).and_then(|v| {
                v.as_i64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            })
        };
        let text = |name: &str| {
            error
                .and_then(|e| e.get(name))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let mut message = text("message");
        let user_message = text("error_user_msg");
        if !user_message.is_empty() && !message.contains(&user_message) {
            message = if message.is_empty() {
                user_message
            } else {
                format!("{message} ({user_message})")
            };
        }
        if message.is_empty() {
            if let Some(s) = error.and_then(Value::as_str) {
                message = s.to_string();
            }
        }
        GraphError {
            status,
            code: int("code"),
            subcode: int("error_subcode"),
            message,
            transient: error
                .and_then(|e| e.get("is_transient"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
        }
    }

    /// "Threads answered 400 (code 100/33): …", without any token.
    fn describe(&self, secret: Option<&str>) -> String {
        let mut message = clip(&self.message, MAX_MESSAGE);
        if let Some(secret) = secret.filter(|s| s.len() >= 8) {
            message = message.replace(secret, "***");
        }
        let code = match (self.code, self.subcode) {
            (Some(c), Some(s)) => format!(" (code {c}/{s})"),
            (Some(c), None) => format!(" (code {c})"),
            _ => String::new(),
        };
        answered("Threads", format!("{}{code}", self.status), &message)
    }

    fn is_gone(&self) -> bool {
        self.status == 404
            || (self.code == Some(100) && self.subcode == Some(33))
            || self.message.to_ascii_lowercase().contains("does not exist")
    }
}

/// What a failed call means for the dispatcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// The token is invalid, expired or revoked: reconnect.
    Auth,
    /// A permission is missing (code 10, 200–299).
    Permission,
    /// Call throttling (codes 4, 17, 32, 613, 800xx, HTTP 429).
    Throttled,
    /// A posting cap (250 posts / 1,000 replies / 100 deletes a day).
    Quota,
    Transient,
    Rejected,
}

fn classify(error: &GraphError) -> Class {
    let code = error.code.unwrap_or(0);
    let subcode = error.subcode.unwrap_or(0);
    let lower = error.message.to_ascii_lowercase();
    if matches!(code, 190 | 102) {
        return Class::Auth;
    }
    if code == 9 || subcode == 2207042 {
        return Class::Quota;
    }
    if matches!(code, 4 | 17 | 32 | 613) || (80000..=80099).contains(&code) || error.status == 429 {
        return Class::Throttled;
    }
    if code == 10 || (200..=299).contains(&code) {
        return Class::Permission;
    }
    if subcode == 2207051 {
        return Class::Rejected;
    }
    if matches!(code, 1 | 2) || error.transient || error.status >= 500 || error.status == 408 {
        return Class::Transient;
    }
    if error.status == 401 && error.code.is_none() {
        return Class::Auth;
    }
    if lower.contains("publishing limit") || lower.contains("posting limit") {
        return Class::Quota;
    }
    Class::Rejected
}

/// A failure that needs no quota lookup.
fn simple_error(
    error: &GraphError,
    class: Class,
    usage: &Usage,
    secret: Option<&str>,
) -> ConnectorError {
    let status = Some(error.status);
    let message = error.describe(secret);
    match class {
        Class::Auth => ConnectorError::AuthRevoked {
            message: format!("{message}; reconnect the Threads account"),
            status,
        },
        Class::Permission => ConnectorError::Rejected {
            message: format!("{message}; the Threads app lacks a permission"),
            status,
        },
        Class::Throttled | Class::Quota => ConnectorError::RateLimited {
            retry_after: usage.wait().unwrap_or(DEFAULT_THROTTLE),
            message,
            status,
        },
        Class::Transient => ConnectorError::Transient { message, status },
        Class::Rejected => ConnectorError::Rejected { message, status },
    }
}

// ---------------------------------------------------------------------------------------------
// Pure helpers
// ---------------------------------------------------------------------------------------------

/// `{base}/{segments…}?{query}`, with each segment escaped.
fn endpoint(
    base: &str,
    segments: &[&str],
    query: &[(&str, &str)],
) -> Result<reqwest::Url, ConnectorError> {
    let mut url = reqwest::Url::parse(base).map_err(|e| ConnectorError::Rejected {
        message: format!("the Threads API address is invalid: {e}"),
        status: None,
    })?;
    {
        let mut path = url
            .path_segments_mut()
            .map_err(|_| ConnectorError::Rejected {
                message: "the Threads API address cannot take a path".into(),
                status: None,
            })?;
        path.pop_if_empty();
        for segment in segments {
            path.push(segment);
        }
    }
    if !query.is_empty() {
        url.query_pairs_mut().extend_pairs(query);
    }
    Ok(url)
}

/// Threads timestamps: Graph's (`2024-07-07T20:15:00+0000`, or RFC 3339),
/// or Unix seconds.
fn parse_time(value: &str) -> Option<DateTime<Utc>> {
    graph::parse_time(value).or_else(|| {
        value
            .trim()
            .parse::<i64>()
            .ok()
            .and_then(|s| DateTime::from_timestamp(s, 0))
    })
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The container's parameters for one part.
fn container_params(post: &Post) -> Result<Vec<(&'static str, String)>, ConnectorError> {
    if post.media.len() > 1 {
        return Err(ConnectorError::Rejected {
            message: format!(
                "Herald publishes one image per Threads post; this part has {}",
                post.media.len()
            ),
            status: None,
        });
    }
    let mut params = Vec::new();
    match post.media.first() {
        Some(image) => {
            params.push(("media_type", "IMAGE".to_string()));
            params.push(("image_url", image.url.clone()));
            if let Some(alt) = image.alt.as_deref().filter(|a| !a.trim().is_empty()) {
                params.push(("alt_text", alt.to_string()));
            }
            if !post.text.trim().is_empty() {
                params.push(("text", post.text.clone()));
            }
        }
        None => {
            params.push(("media_type", "TEXT".to_string()));
            params.push(("text", post.text.clone()));
        }
    }
    if let Some(reply) = &post.reply_to {
        params.push(("reply_to_id", reply.parent_id.clone()));
    }
    Ok(params)
}

/// Whether publishing should renew the token first: at least 24 hours
/// old, not expired, and expiring within the margin.
fn due_for_refresh(
    issued: Option<DateTime<Utc>>,
    expires: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> bool {
    match (issued, expires) {
        (Some(issued), Some(expires)) => {
            now - issued >= MIN_REFRESH_AGE && expires > now && expires - now < REFRESH_MARGIN
        }
        _ => false,
    }
}

/// Wait until the oldest post of a full rolling window leaves it.
fn quota_wait(oldest: Option<DateTime<Utc>>, window: Duration, now: DateTime<Utc>) -> Duration {
    match oldest.and_then(|t| chrono::Duration::from_std(window).ok().map(|w| t + w)) {
        Some(frees) => {
            let ms = (frees - now).num_milliseconds().max(0) as u64;
            Duration::from_millis(ms).max(Duration::from_secs(1))
        }
        None => DEFAULT_QUOTA_WAIT.min(window.max(Duration::from_secs(1))),
    }
}

/// `{"data":[{quota_usage, config:{quota_total, quota_duration}, reply_…}]}`:
/// (usage, total, window) for posts or replies.
fn read_quota(body: &Value, replies: bool) -> Option<(u64, u64, Duration)> {
    let entry = body.get("data").and_then(|d| d.get(0)).unwrap_or(body);
    let (usage_field, config_field) = if replies {
        ("reply_quota_usage", "reply_config")
    } else {
        ("quota_usage", "config")
    };
    let number = |v: Option<&Value>| {
        v.and_then(|v| {
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        })
    };
    let usage = number(entry.get(usage_field))?;
    let config = entry.get(config_field)?;
    let total = number(config.get("quota_total"))?;
    let window = number(config.get("quota_duration")).unwrap_or(86_400);
    Some((usage, total, Duration::from_secs(window.max(1))))
}

/// Find `post` among listed items (`data` of `/threads` or `/replies`).
fn find_in_page(items: &[Value], post: &Post) -> Option<(String, Option<String>)> {
    let parent = post.reply_to.as_ref().map(|r| r.parent_id.as_str());
    items.iter().find_map(|item| {
        let id = item.get("id").and_then(id_text)?;
        let text = item.get("text").and_then(Value::as_str).unwrap_or_default();
        if !graph::same_text(text, &post.text) {
            return None;
        }
        let replied_to = item
            .get("replied_to")
            .and_then(|r| r.get("id").and_then(id_text).or_else(|| id_text(r)));
        match (parent, replied_to.as_deref()) {
            (Some(want), Some(got)) if want != got => return None,
            (None, Some(_)) => return None,
            _ => {}
        }
        let permalink = item
            .get("permalink")
            .and_then(Value::as_str)
            .map(str::to_string);
        Some((id, permalink))
    })
}

// ---------------------------------------------------------------------------------------------
// Calls
// ---------------------------------------------------------------------------------------------

/// The token and user of one call.
#[derive(Clone)]
struct Auth {
    token: String,
    user_id: String,
}

impl Threads {
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        effect: Effect,
    ) -> Result<Answer, ConnectorError> {
        let answer = send_call(request, effect == Effect::Publish).await?;
        let status = answer.status;
        let usage = Usage::parse(&answer.headers);
        let bytes = answer.bytes;
        let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            let text = String::from_utf8_lossy(&bytes);
            let excerpt: String = text.chars().take(MAX_MESSAGE).collect();
            if (200..300).contains(&status) {
                Value::Null
            } else {
                serde_json::json!({"error": {"message": excerpt}})
            }
        });
        Ok(Answer {
            status,
            body,
            usage,
        })
    }

    async fn get(
        &self,
        base: &str,
        segments: &[&str],
        query: &[(&str, &str)],
        token: &str,
    ) -> Result<Answer, ConnectorError> {
        let mut all = query.to_vec();
        all.push(("access_token", token));
        let url = endpoint(base, segments, &all)?;
        self.send(self.http.get(url), Effect::Safe).await
    }

    /// A Graph POST: parameters in the query and in a form body.
    async fn post_form(
        &self,
        base: &str,
        segments: &[&str],
        params: &[(&str, String)],
        token: &str,
        effect: Effect,
    ) -> Result<Answer, ConnectorError> {
        let mut query: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        query.push(("access_token", token));
        let url = endpoint(base, segments, &query)?;
        let body: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let body = serde_urlencoded::to_string(&body).unwrap_or_default();
        let request = self
            .http
            .post(url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body);
        self.send(request, effect).await
    }

    /// The account's token and user id, renewing the token first when it
    /// is due (a failed renewal that is not a revocation is ignored: the
    /// current token still works).
    async fn auth(&self, account: &AccountSession, base: &str) -> Result<Auth, ConnectorError> {
        let mut credentials = account.credentials.lock().await;
        let now = Utc::now();
        let issued = credentials.get(ISSUED_AT).and_then(parse_time);
        let expires = credentials.get(EXPIRES_AT).and_then(parse_time);
        if due_for_refresh(issued, expires, now) {
            match self.refresh_locked(&mut credentials, base, now).await {
                Err(e @ ConnectorError::AuthRevoked { .. }) => return Err(e),
                Err(error) => {
                    tracing::warn!(account = %account.id, %error, "renewing the Threads token failed")
                }
                Ok(_) => {}
            }
        }
        let Some(token) = credentials
            .get(ACCESS_TOKEN)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
        else {
            return Err(ConnectorError::AuthRevoked {
                message: "the Threads account has no access token; reconnect it".into(),
                status: None,
            });
        };
        let user_id = credentials
            .get(USER_ID)
            .filter(|u| !u.trim().is_empty())
            .unwrap_or("me")
            .trim()
            .to_string();
        Ok(Auth { token, user_id })
    }

    /// `th_refresh_token`, under the credentials lock held by the caller.
    async fn refresh_locked(
        &self,
        credentials: &mut Credentials,
        base: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, ConnectorError> {
        let expires = credentials.get(EXPIRES_AT).and_then(parse_time);
        if expires.is_some_and(|e| e <= now) {
            return Err(ConnectorError::AuthRevoked {
                message: "the Threads token expired: reconnect".into(),
                status: None,
            });
        }
        let issued = credentials.get(ISSUED_AT).and_then(parse_time);
        if issued.is_some_and(|i| now - i < MIN_REFRESH_AGE) {
            return Ok(expires);
        }
        let Some(token) = credentials.get(ACCESS_TOKEN).map(str::to_string) else {
            return Err(ConnectorError::AuthRevoked {
                message: "the Threads account has no access token; reconnect it".into(),
                status: None,
            });
        };
        let answer = self
            .get(
                base,
                &["refresh_access_token"],
                &[("grant_type", "th_refresh_token")],
                &token,
            )
            .await?;
        if !answer.ok() {
            return Err(answer.failure(Some(&token)));
        }
        let expires = store_long_lived(credentials, &answer.body, now)?;
        Ok(Some(expires))
    }

    /// Create the container of `post`; remember it for retries.
    async fn create_container(
        &self,
        account: &AccountSession,
        base: &str,
        auth: &Auth,
        post: &Post,
    ) -> Result<String, ConnectorError> {
        let params = container_params(post)?;
        let answer = self
            .post_form(
                base,
                &[VERSION, &auth.user_id, "threads"],
                &params,
                &auth.token,
                Effect::Safe,
            )
            .await?;
        if !answer.ok() {
            return Err(self.failure(base, auth, &answer, post).await);
        }
        let container = answer
            .str_field("id")
            .ok_or_else(|| ConnectorError::Transient {
                message: "Threads made a container but its answer had no id".into(),
                status: Some(answer.status),
            })?;
        self.remember(account, post, &container);
        Ok(container)
    }

    /// The container's `status` and `error_message`.
    async fn container_status(
        &self,
        base: &str,
        auth: &Auth,
        container: &str,
    ) -> Result<(String, String), ConnectorError> {
        let answer = self
            .get(
                base,
                &[VERSION, container],
                &[("fields", "id,status,error_message")],
                &auth.token,
            )
            .await?;
        if !answer.ok() {
            return Err(answer.failure(Some(&auth.token)));
        }
        let text = |name: &str| answer.str_field(name).unwrap_or_default();
        // `status_code` is Instagram's name for it; accept both.
        let status = Some(text("status"))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| text("status_code"));
        Ok((status.to_ascii_uppercase(), text("error_message")))
    }

    /// Poll until the container is `FINISHED` (bounded).
    async fn wait_finished(
        &self,
        account: &AccountSession,
        base: &str,
        auth: &Auth,
        post: &Post,
        container: &str,
    ) -> Result<(), ConnectorError> {
        let started = Instant::now();
        let mut delay = Duration::from_millis(200);
        loop {
            let (status, error_message) = self.container_status(base, auth, container).await?;
            match status.as_str() {
                "FINISHED" => return Ok(()),
                "ERROR" | "EXPIRED" => {
                    self.forget(account, post);
                    let reason = if error_message.is_empty() {
                        "no reason given".to_string()
                    } else {
                        error_message
                    };
                    return Err(ConnectorError::Rejected {
                        message: format!("Threads could not prepare the post ({status}): {reason}"),
                        status: None,
                    });
                }
                "PUBLISHED" => {
                    return Err(ConnectorError::Unknown {
                        message: "the Threads container is already published".into(),
                    })
                }
                _ => {}
            }
            let elapsed = started.elapsed();
            if elapsed >= self.container_wait {
                return Err(ConnectorError::Transient {
                    message: format!(
                        "Threads is still preparing the post after {} s",
                        elapsed.as_secs()
                    ),
                    status: None,
                });
            }
            tokio::time::sleep(delay.min(self.container_wait - elapsed)).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    /// `threads_publish` a ready container, then read its permalink.
    async fn publish_container(
        &self,
        account: &AccountSession,
        base: &str,
        auth: &Auth,
        post: &Post,
        container: &str,
    ) -> Result<Published, ConnectorError> {
        let answer = self
            .post_form(
                base,
                &[VERSION, &auth.user_id, "threads_publish"],
                &[("creation_id", container.to_string())],
                &auth.token,
                Effect::Publish,
            )
            .await?;
        if !answer.ok() {
            return Err(self.failure(base, auth, &answer, post).await);
        }
        let Some(media_id) = answer.str_field("id") else {
            return Err(ConnectorError::Unknown {
                message: "Threads accepted the post but its answer had no id".into(),
            });
        };
        self.forget(account, post);
        let pause_until = answer
            .usage
            .wait()
            .and_then(|w| chrono::Duration::from_std(w).ok().map(|w| Utc::now() + w));
        let remote_url = self.permalink(base, auth, &media_id).await;
        Ok(Published {
            remote_id: media_id,
            remote_url,
            pause_until,
        })
    }

    /// The post's public address; `None` when it cannot be read now.
    async fn permalink(&self, base: &str, auth: &Auth, media_id: &str) -> Option<String> {
        let answer = self
            .get(
                base,
                &[VERSION, media_id],
                &[("fields", "id,permalink")],
                &auth.token,
            )
            .await
            .ok()?;
        answer.ok().then(|| answer.str_field("permalink")).flatten()
    }

    /// Classify a failed container or publish call; over a posting cap,
    /// wait until the rolling window frees.
    async fn failure(
        &self,
        base: &str,
        auth: &Auth,
        answer: &Answer,
        post: &Post,
    ) -> ConnectorError {
        let error = answer.error();
        let class = classify(&error);
        if !matches!(class, Class::Throttled | Class::Quota) {
            return simple_error(&error, class, &answer.usage, Some(&auth.token));
        }
        let message = error.describe(Some(&auth.token));
        let status = Some(error.status);
        if let Some(wait) = answer.usage.wait() {
            return ConnectorError::RateLimited {
                retry_after: wait,
                message,
                status,
            };
        }
        let retry_after = match self.cap_wait(base, auth, post.reply_to.is_some()).await {
            Some(wait) => wait,
            None if class == Class::Quota => DEFAULT_QUOTA_WAIT,
            None => DEFAULT_THROTTLE,
        };
        ConnectorError::RateLimited {
            retry_after,
            message,
            status,
        }
    }

    /// When the posting cap is full: how long until its oldest post leaves
    /// the rolling window. `None` when the cap is not full (or unreadable).
    async fn cap_wait(&self, base: &str, auth: &Auth, replies: bool) -> Option<Duration> {
        let answer = self
            .get(
                base,
                &[VERSION, &auth.user_id, "threads_publishing_limit"],
                &[(
                    "fields",
                    "quota_usage,config,reply_quota_usage,reply_config",
                )],
                &auth.token,
            )
            .await
            .ok()?;
        if !answer.ok() {
            return None;
        }
        let (usage, total, window) = read_quota(&answer.body, replies)?;
        if usage < total {
            return None;
        }
        let now = Utc::now();
        let since = now - chrono::Duration::from_std(window).ok()?;
        let edge = if replies { "replies" } else { "threads" };
        let oldest = match self.list_since(base, auth, edge, since).await {
            Ok(items) => items
                .iter()
                .filter_map(|i| {
                    i.get("timestamp")
                        .and_then(Value::as_str)
                        .and_then(parse_time)
                })
                .filter(|t| *t >= since)
                .min(),
            Err(_) => None,
        };
        Some(quota_wait(oldest, window, now))
    }

    /// Every item of `/{user}/{edge}` since `since` (bounded paging).
    async fn list_since(
        &self,
        base: &str,
        auth: &Auth,
        edge: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<Value>, ConnectorError> {
        let since = since.timestamp().to_string();
        let mut items = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut query = vec![
                ("fields", "id,text,timestamp,permalink,replied_to,is_reply"),
                ("since", since.as_str()),
                ("limit", "100"),
            ];
            if let Some(cursor) = after.as_deref() {
                query.push(("after", cursor));
            }
            let answer = self
                .get(base, &[VERSION, &auth.user_id, edge], &query, &auth.token)
                .await?;
            if !answer.ok() {
                return Err(answer.failure(Some(&auth.token)));
            }
            let page = answer
                .body
                .get("data")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let empty = page.is_empty();
            items.extend(page);
            let paging = answer.body.get("paging");
            let has_next = paging.and_then(|p| p.get("next")).is_some();
            after = paging
                .and_then(|p| p.get("cursors"))
                .and_then(|c| c.get("after"))
                .and_then(id_text);
            if empty || !has_next || after.is_none() {
                break;
            }
        }
        Ok(items)
    }

    /// Look `post` up among the user's recent replies or threads.
    async fn find_listed(
        &self,
        base: &str,
        auth: &Auth,
        post: &Post,
    ) -> Result<Option<Published>, ConnectorError> {
        let since = post.first_attempt_at - LOOKUP_SLACK;
        let edges: &[&str] = if post.reply_to.is_some() {
            &["replies", "threads"]
        } else {
            &["threads"]
        };
        for edge in edges {
            let items = self.list_since(base, auth, edge, since).await?;
            if let Some((id, permalink)) = find_in_page(&items, post) {
                let remote_url = match permalink {
                    Some(url) => Some(url),
                    None => self.permalink(base, auth, &id).await,
                };
                return Ok(Some(Published {
                    remote_id: id,
                    remote_url,
                    pause_until: None,
                }));
            }
        }
        Ok(None)
    }

    fn key(account: &AccountSession, post: &Post) -> (String, String) {
        (account.id.clone(), post.idempotency_key.clone())
    }

    fn remember(&self, account: &AccountSession, post: &Post, container: &str) {
        let mut map = self.containers.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_REMEMBERED {
            map.retain(|_, (_, at)| at.elapsed() < CONTAINER_LIFE);
            if map.len() >= MAX_REMEMBERED {
                if let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, (_, at))| *at)
                    .map(|(k, _)| k.clone())
                {
                    map.remove(&oldest);
                }
            }
        }
        map.insert(
            Self::key(account, post),
            (container.to_string(), Instant::now()),
        );
    }

    fn remembered(&self, account: &AccountSession, post: &Post) -> Option<String> {
        let map = self.containers.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&Self::key(account, post))
            .filter(|(_, at)| at.elapsed() < CONTAINER_LIFE)
            .map(|(c, _)| c.clone())
    }

    fn forget(&self, account: &AccountSession, post: &Post) {
        self.containers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&Self::key(account, post));
    }

    /// What an earlier attempt's container says about `post`:
    /// `Some(Ok(published))` it went out (or was just published from that
    /// container), `Some(Err)` it cannot be told, `None` no usable container.
    async fn resume(
        &self,
        account: &AccountSession,
        base: &str,
        auth: &Auth,
        post: &Post,
        may_send: bool,
    ) -> Option<Result<Published, ConnectorError>> {
        let container = self.remembered(account, post)?;
        let (status, _) = match self.container_status(base, auth, &container).await {
            Ok(status) => status,
            Err(ConnectorError::Rejected { .. }) => {
                self.forget(account, post);
                return None;
            }
            Err(error) => return Some(Err(error)),
        };
        match status.as_str() {
            "PUBLISHED" => Some(match self.find_listed(base, auth, post).await {
                Ok(Some(published)) => {
                    self.forget(account, post);
                    Ok(published)
                }
                Ok(None) => Err(ConnectorError::Transient {
                    message: "the Threads post is published but not listed yet".into(),
                    status: None,
                }),
                Err(error) => Err(error),
            }),
            "FINISHED" | "IN_PROGRESS" if may_send => {
                if status != "FINISHED" {
                    if let Err(error) = self
                        .wait_finished(account, base, auth, post, &container)
                        .await
                    {
                        return Some(Err(error));
                    }
                }
                Some(
                    self.publish_container(account, base, auth, post, &container)
                        .await,
                )
            }
            "FINISHED" | "IN_PROGRESS" => None,
            _ => {
                self.forget(account, post);
                None
            }
        }
    }
}

impl Threads {
    /// The account's username: from the credentials, else read from `/me`
    /// (and kept in the credentials).
    async fn own_username(
        &self,
        account: &AccountSession,
        base: &str,
        auth: &Auth,
    ) -> Result<Option<String>, ConnectorError> {
        if let Some(name) = account
            .credentials
            .lock()
            .await
            .get(USERNAME)
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            return Ok(Some(name.to_string()));
        }
        let me = self
            .get(
                base,
                &[VERSION, "me"],
                &[("fields", "id,username")],
                &auth.token,
            )
            .await?;
        if !me.ok() {
            return Err(me.failure(Some(&auth.token)));
        }
        let name = me.str_field("username").filter(|n| !n.is_empty());
        if let Some(name) = &name {
            account.credentials.lock().await.set(USERNAME, name.clone());
        }
        Ok(name)
    }
}

/// One item of `/conversation` as a reply; `None` for the account's own
/// posts and items without an id.
fn to_reply(item: &Value, query: &ReplyQuery, own_name: Option<&str>) -> Option<FetchedReply> {
    let id = item.get("id").and_then(id_text)?;
    let username = item
        .get("username")
        .and_then(Value::as_str)
        .map(str::to_string);
    if query.own_ids.contains(&id) || (own_name.is_some() && username.as_deref() == own_name) {
        return None;
    }
    let parent_id = item
        .get("replied_to")
        .and_then(|r| r.get("id").and_then(id_text).or_else(|| id_text(r)))
        .unwrap_or_else(|| query.root_id.clone());
    let created_at = item
        .get("timestamp")
        .and_then(Value::as_str)
        .and_then(parse_time)
        .unwrap_or(query.published_at);
    Some(FetchedReply {
        remote_id: id,
        parent_id: Some(parent_id),
        author: username.unwrap_or_default(),
        text: item
            .get("text")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        created_at,
        url: item
            .get("permalink")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

/// Store a long-lived token answer `{access_token, token_type, expires_in}`.
fn store_long_lived(
    credentials: &mut Credentials,
    body: &Value,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, ConnectorError> {
    let token = body
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ConnectorError::Rejected {
            message: "Threads sent no access token".into(),
            status: None,
        })?;
    let seconds = body
        .get("expires_in")
        .and_then(|v| {
            v.as_i64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        })
        .filter(|s| *s > 0)
        .unwrap_or(LONG_LIVED_SECONDS);
    // Whole seconds, so the expiry returned is the one stored.
    let now = DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now);
    let expires = now + chrono::Duration::seconds(seconds);
    credentials.set(ACCESS_TOKEN, token);
    credentials.set(EXPIRES_AT, rfc3339(expires));
    credentials.set(ISSUED_AT, rfc3339(now));
    Ok(expires)
}

impl Connector for Threads {
    async fn publish(
        &self,
        account: &AccountSession,
        post: &Post,
    ) -> Result<Published, ConnectorError> {
        let base = self.base(account);
        let auth = self.auth(account, &base).await?;
        // A retry of this part reuses its container: it publishes once.
        if let Some(result) = self.resume(account, &base, &auth, post, true).await {
            return result;
        }
        let container = self.create_container(account, &base, &auth, post).await?;
        self.wait_finished(account, &base, &auth, post, &container)
            .await?;
        self.publish_container(account, &base, &auth, post, &container)
            .await
    }

    async fn reconcile(
        &self,
        account: &AccountSession,
        post: &Post,
    ) -> Result<Option<Published>, ConnectorError> {
        let base = self.base(account);
        let auth = self.auth(account, &base).await?;
        let may_send = Utc::now() < post.deadline;
        if let Some(result) = self.resume(account, &base, &auth, post, may_send).await {
            return result.map(Some);
        }
        self.find_listed(&base, &auth, post).await
    }

    async fn delete(
        &self,
        account: &AccountSession,
        remote_id: &str,
    ) -> Result<(), ConnectorError> {
        let base = self.base(account);
        let auth = self.auth(account, &base).await?;
        let url = endpoint(
            &base,
            &[VERSION, remote_id.trim()],
            &[("access_token", &auth.token)],
        )?;
        let answer = self.send(self.http.delete(url), Effect::Safe).await?;
        if answer.ok() {
            let refused = answer.body.get("success").and_then(Value::as_bool) == Some(false);
            return if refused {
                Err(ConnectorError::Rejected {
                    message: "Threads did not delete the post".into(),
                    status: Some(answer.status),
                })
            } else {
                Ok(())
            };
        }
        let error = answer.error();
        let class = classify(&error);
        if error.is_gone() && !matches!(class, Class::Auth | Class::Permission) {
            return Ok(());
        }
        if class == Class::Quota {
            return Err(ConnectorError::RateLimited {
                retry_after: answer.usage.wait().unwrap_or(DEFAULT_QUOTA_WAIT),
                message: error.describe(Some(&auth.token)),
                status: Some(error.status),
            });
        }
        Err(simple_error(
            &error,
            class,
            &answer.usage,
            Some(&auth.token),
        ))
    }

    async fn check(&self, account: &AccountSession) -> Result<(), ConnectorError> {
        let base = self.base(account);
        let auth = self.auth(account, &base).await?;
        let answer = self
            .get(
                &base,
                &[VERSION, "me"],
                &[("fields", "id,username")],
                &auth.token,
            )
            .await?;
        if !answer.ok() {
            return Err(answer.failure(Some(&auth.token)));
        }
        if let Some(username) = answer.str_field("username") {
            account.credentials.lock().await.set(USERNAME, username);
        }
        Ok(())
    }

    async fn refresh(
        &self,
        account: &AccountSession,
    ) -> Result<Option<DateTime<Utc>>, ConnectorError> {
        let base = self.base(account);
        let mut credentials = account.credentials.lock().await;
        self.refresh_locked(&mut credentials, &base, Utc::now())
            .await
    }

    /// Every reply under the post (at any depth) made after the cursor,
    /// oldest first, without the account's own. See the module
    /// documentation for the cursor.
    async fn replies(
        &self,
        account: &AccountSession,
        query: &ReplyQuery,
    ) -> Result<ReplyPage, ConnectorError> {
        let base = self.base(account);
        let auth = self.auth(account, &base).await?;
        let root = query.root_id.trim();
        if root.is_empty() {
            return Err(ConnectorError::Rejected {
                message: "no Threads post id to read the replies of".into(),
                status: None,
            });
        }
        let own_name = self.own_username(account, &base, &auth).await?;
        let mut after = query.cursor.clone().filter(|c| !c.is_empty());
        let mut cursor = None;
        let mut items: Vec<Value> = Vec::new();
        for _ in 0..graph::MAX_REPLY_PAGES {
            let mut params = vec![
                ("reverse", "false"),
                ("fields", REPLY_FIELDS),
                ("limit", REPLY_PAGE),
            ];
            if let Some(a) = after.as_deref() {
                params.push(("after", a));
            }
            let answer = self
                .get(
                    &base,
                    &[VERSION, root, "conversation"],
                    &params,
                    &auth.token,
                )
                .await?;
            if !answer.ok() {
                return Err(answer.failure(Some(&auth.token)));
            }
            let page = answer
                .body
                .get("data")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if page.is_empty() {
                break;
            }
            items.extend(page);
            let paging = graph::Paging::of(&answer.body);
            if paging.after.is_some() {
                cursor = paging.after.clone();
            }
            if paging.next.is_none() || paging.after.is_none() {
                break;
            }
            after = paging.after;
        }
        let mut replies: Vec<FetchedReply> = items
            .iter()
            .filter_map(|item| to_reply(item, query, own_name.as_deref()))
            .collect();
        replies.sort_by_key(|r| r.created_at);
        Ok(ReplyPage { replies, cursor })
    }
}

impl OAuthNetwork for Threads {
    fn oauth_app(&self) -> Option<OAuthApp> {
        let api = graph::trim_base(&self.app.api_url);
        let token_url = format!("{api}/oauth/access_token");
        graph::oauth_app(&self.app, &SCOPES, "oauth/authorize", token_url, false)
    }

    async fn connect(
        &self,
        tokens: TokenSet,
        request: &ConnectRequest,
    ) -> Result<Connected, ConnectorError> {
        let Some((_, client_secret)) = self.app.client() else {
            return Err(ConnectorError::Rejected {
                message: "the Threads app is not configured (client id and secret)".into(),
                status: None,
            });
        };
        let base = request
            .base_url
            .as_deref()
            .filter(|b| !b.trim().is_empty())
            .unwrap_or(&self.app.api_url)
            .trim()
            .trim_end_matches('/')
            .to_string();
        let short = tokens.access_token().to_string();
        // Short-lived (1 hour) → long-lived (60 days).
        let answer = self
            .get(
                &base,
                &["access_token"],
                &[
                    ("grant_type", "th_exchange_token"),
                    ("client_secret", client_secret),
                ],
                &short,
            )
            .await?;
        if !answer.ok() {
            let mut failure = answer.failure(Some(&short));
            if let ConnectorError::AuthRevoked { message, status } = failure {
                failure = ConnectorError::Rejected { message, status };
            }
            return Err(failure);
        }
        let now = Utc::now();
        let mut credentials = Credentials::default();
        let expires = store_long_lived(&mut credentials, &answer.body, now)?;
        let token = credentials
            .get(ACCESS_TOKEN)
            .unwrap_or_default()
            .to_string();
        let me = self
            .get(
                &base,
                &[VERSION, "me"],
                &[("fields", "id,username")],
                &token,
            )
            .await?;
        if !me.ok() {
            return Err(me.failure(Some(&token)));
        }
        let user_id = me
            .str_field("id")
            .or_else(|| tokens.extra_str("user_id"))
            .ok_or_else(|| ConnectorError::Rejected {
                message: "Threads did not say which user the token belongs to".into(),
                status: None,
            })?;
        credentials.set(USER_ID, user_id);
        let username = me.str_field("username");
        if let Some(name) = &username {
            credentials.set(USERNAME, name.clone());
        }
        Ok(Connected {
            credentials,
            remote_name: username.map(|u| format!("@{u}")),
            expires_at: Some(expires),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platforms::{MediaItem, ReplyTarget};
    use chrono::TimeZone;
    use serde_json::json;

    fn error(status: u16, body: Value) -> GraphError {
        GraphError::from_body(status, &body)
    }

    fn graph(status: u16, code: i64, subcode: Option<i64>) -> GraphError {
        let mut e =
            json!({"message": "m", "type": "OAuthException", "code": code, "fbtrace_id": "x"});
        if let Some(s) = subcode {
            e["error_subcode"] = json!(s);
        }
        error(status, json!({ "error": e }))
    }

    #[test]
    fn conversation_items_become_replies_without_the_accounts_own() {
        let query = ReplyQuery {
            root_id: "10".into(),
            own_ids: vec!["10".into(), "11".into()],
            cursor: None,
            published_at: Utc::now(),
        };
        let item = json!({"id": "12", "text": "Safe?", "username": "bea", "permalink": "https://threads/p/1",
            "timestamp": "2026-11-25T09:00:00+0000", "replied_to": {"id": "11"}});
        let reply = to_reply(&item, &query, Some("kettleco")).unwrap();
        assert_eq!(reply.parent_id.as_deref(), Some("11"));
        assert_eq!(reply.author, "bea");
        assert_eq!(reply.url.as_deref(), Some("https://threads/p/1"));
        let top = json!({"id": "13", "text": "Hi"});
        assert_eq!(
            to_reply(&top, &query, None).unwrap().parent_id.as_deref(),
            Some("10")
        );
        let mine = json!({"id": "14", "username": "kettleco"});
        assert!(to_reply(&mine, &query, Some("kettleco")).is_none());
        assert!(to_reply(&json!({"id": "11"}), &query, None).is_none());
    }

    #[test]
    fn graph_codes_are_classified_as_the_docs_say() {
        assert_eq!(classify(&graph(400, 190, Some(463))), Class::Auth);
        assert_eq!(classify(&graph(400, 190, None)), Class::Auth);
        assert_eq!(classify(&graph(403, 10, None)), Class::Permission);
        assert_eq!(classify(&graph(403, 200, None)), Class::Permission);
        assert_eq!(classify(&graph(403, 299, None)), Class::Permission);
        assert_eq!(classify(&graph(400, 4, None)), Class::Throttled);
        assert_eq!(classify(&graph(400, 17, None)), Class::Throttled);
        assert_eq!(classify(&graph(400, 32, None)), Class::Throttled);
        assert_eq!(classify(&graph(400, 613, None)), Class::Throttled);
        assert_eq!(classify(&graph(400, 9, Some(2207042))), Class::Quota);
        assert_eq!(classify(&graph(400, 100, Some(2207051))), Class::Rejected);
        assert_eq!(classify(&graph(500, 1, None)), Class::Transient);
        assert_eq!(classify(&graph(503, 2, None)), Class::Transient);
        assert_eq!(classify(&graph(400, 100, None)), Class::Rejected);
        assert_eq!(
            classify(&error(502, json!({"error": {"message": "<html>"}}))),
            Class::Transient
        );
        assert_eq!(classify(&error(429, Value::Null)), Class::Throttled);
        let transient = error(400, json!({"error": {"code": 100, "is_transient": true}}));
        assert_eq!(classify(&transient), Class::Transient);
    }

    #[test]
    fn error_messages_name_the_code_and_hide_the_token() {
        let e = error(
            400,
            json!({"error": {"message": "Invalid token EAAGsecret123", "code": 190, "error_subcode": 460}}),
        );
        let text = e.describe(Some("EAAGsecret123"));
        assert_eq!(
            text,
            "Threads answered 400 (code 190/460): Invalid token ***"
        );
        let long = error(
            400,
            json!({"error": {"message": "x".repeat(1000), "code": 100}}),
        );
        assert!(long.describe(None).chars().count() < 400);
        let converted = simple_error(&e, Class::Auth, &Usage::default(), Some("EAAGsecret123"));
        assert_eq!(converted.class(), "auth_revoked");
        assert!(!converted.to_string().contains("EAAGsecret123"));
    }

    #[test]
    fn gone_posts_are_recognised() {
        assert!(graph(400, 100, Some(33)).is_gone());
        assert!(error(404, Value::Null).is_gone());
        assert!(!graph(400, 100, None).is_gone());
    }

    #[test]
    fn usage_headers_are_read_leniently() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            "x-app-usage",
            r#"{"call_count":12,"total_cputime":5,"total_time":7}"#
                .parse()
                .unwrap(),
        );
        assert_eq!(Usage::parse(&headers).wait(), None);
        headers.insert(
            "x-business-use-case-usage",
            r#"{"123":[{"type":"threads","call_count":100,"total_cputime":10,"total_time":10,"estimated_time_to_regain_access":7}]}"#
                .parse()
                .unwrap(),
        );
        let usage = Usage::parse(&headers);
        assert_eq!(usage.max_percent, 100);
        assert_eq!(usage.wait(), Some(Duration::from_secs(7 * 60)));
        let mut full = reqwest::header::HeaderMap::new();
        full.insert("x-app-usage", r#"{"call_count":"101"}"#.parse().unwrap());
        assert_eq!(Usage::parse(&full).wait(), Some(DEFAULT_THROTTLE));
        let mut junk = reqwest::header::HeaderMap::new();
        junk.insert("x-app-usage", "not json".parse().unwrap());
        assert_eq!(Usage::parse(&junk), Usage::default());
    }

    #[test]
    fn threads_timestamps_parse() {
        let at = Utc.with_ymd_and_hms(2024, 7, 7, 20, 15, 0).unwrap();
        assert_eq!(parse_time("2024-07-07T20:15:00+0000"), Some(at));
        assert_eq!(parse_time("2024-07-07T20:15:00Z"), Some(at));
        assert_eq!(parse_time("2024-07-07T22:15:00+02:00"), Some(at));
        assert_eq!(parse_time(&at.timestamp().to_string()), Some(at));
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn endpoints_escape_segments_and_keep_a_base_path() {
        let url = endpoint(
            "http://127.0.0.1:9/prefix/",
            &[VERSION, "12/34", "threads"],
            &[("text", "a b&c"), ("access_token", "t")],
        )
        .unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9/prefix/v1.0/12%2F34/threads?text=a+b%26c&access_token=t"
        );
        assert!(endpoint("not a url", &[], &[]).is_err());
    }

    fn post(text: &str) -> Post {
        let at = Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap();
        Post {
            text: text.into(),
            idempotency_key: "k".into(),
            first_attempt_at: at,
            deadline: at + chrono::Duration::hours(1),
            ..Default::default()
        }
    }

    #[test]
    fn container_parameters_follow_the_part() {
        let text = container_params(&post("Hello")).unwrap();
        assert_eq!(
            text,
            vec![
                ("media_type", "TEXT".to_string()),
                ("text", "Hello".to_string())
            ]
        );
        let mut reply = post("More");
        reply.reply_to = Some(ReplyTarget {
            root_id: "1".into(),
            parent_id: "2".into(),
            answers_reply: false,
        });
        reply.media = vec![MediaItem {
            url: "https://example.org/a.jpg".into(),
            alt: Some("A map".into()),
            content_type: Some("image/jpeg".into()),
        }];
        let image = container_params(&reply).unwrap();
        assert_eq!(
            image,
            vec![
                ("media_type", "IMAGE".to_string()),
                ("image_url", "https://example.org/a.jpg".to_string()),
                ("alt_text", "A map".to_string()),
                ("text", "More".to_string()),
                ("reply_to_id", "2".to_string()),
            ]
        );
        reply.media.push(reply.media[0].clone());
        assert_eq!(container_params(&reply).unwrap_err().class(), "rejected");
    }

    #[test]
    fn refresh_is_due_only_for_old_tokens_near_expiry() {
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap();
        let days = chrono::Duration::days;
        assert!(due_for_refresh(
            Some(now - days(55)),
            Some(now + days(5)),
            now
        ));
        assert!(!due_for_refresh(
            Some(now - days(10)),
            Some(now + days(50)),
            now
        ));
        assert!(!due_for_refresh(
            Some(now - chrono::Duration::hours(2)),
            Some(now + days(1)),
            now
        ));
        assert!(!due_for_refresh(
            Some(now - days(61)),
            Some(now - days(1)),
            now
        ));
        assert!(!due_for_refresh(None, Some(now + days(1)), now));
    }

    #[test]
    fn a_full_window_frees_when_its_oldest_post_leaves_it() {
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap();
        let day = Duration::from_secs(86_400);
        let oldest = now - chrono::Duration::hours(23);
        assert_eq!(
            quota_wait(Some(oldest), day, now),
            Duration::from_secs(3600)
        );
        assert_eq!(
            quota_wait(Some(now - chrono::Duration::hours(30)), day, now),
            Duration::from_secs(1)
        );
        assert_eq!(quota_wait(None, day, now), DEFAULT_QUOTA_WAIT);
        let body = json!({"data": [{
            "quota_usage": 250, "config": {"quota_total": 250, "quota_duration": 86400},
            "reply_quota_usage": 3, "reply_config": {"quota_total": 1000, "quota_duration": 86400}
        }]});
        assert_eq!(read_quota(&body, false), Some((250, 250, day)));
        assert_eq!(read_quota(&body, true), Some((3, 1000, day)));
        assert_eq!(read_quota(&json!({"data": []}), false), None);
    }

    #[test]
    fn listed_posts_match_on_text_and_parent() {
        let items = vec![
            json!({"id": "1", "text": "Other", "timestamp": "2026-11-25T09:00:01+0000"}),
            json!({"id": "2", "text": "Hello\r\n", "permalink": "https://www.threads.net/@a/post/X"}),
            json!({"id": "3", "text": "Part two", "replied_to": {"id": "9"}}),
            json!({"id": "4", "text": "Part two", "replied_to": {"id": "2"}}),
        ];
        assert_eq!(
            find_in_page(&items, &post("Hello")),
            Some(("2".into(), Some("https://www.threads.net/@a/post/X".into())))
        );
        let mut part = post("Part two");
        part.reply_to = Some(ReplyTarget {
            root_id: "2".into(),
            parent_id: "2".into(),
            answers_reply: false,
        });
        assert_eq!(find_in_page(&items, &part), Some(("4".into(), None)));
        assert_eq!(find_in_page(&items, &post("Part two")), None);
        assert_eq!(find_in_page(&items, &post("Absent")), None);
    }

    #[test]
    fn the_oauth_app_uses_comma_scopes_no_pkce_and_the_documented_urls() {
        let mut app = NetworkApp {
            client_id: None,
            client_secret: None,
            api_url: "https://graph.threads.net/".into(),
            auth_url: "https://threads.net".into(),
            token_url: None,
        };
        assert!(Threads::new(reqwest::Client::new(), app.clone())
            .oauth_app()
            .is_none());
        app.client_id = Some("cid".into());
        app.client_secret = Some("sec".into());
        let oauth = Threads::new(reqwest::Client::new(), app)
            .oauth_app()
            .unwrap();
        assert_eq!(oauth.authorize_url, "https://threads.net/oauth/authorize");
        assert_eq!(
            oauth.token_url,
            "https://graph.threads.net/oauth/access_token"
        );
        assert!(!oauth.pkce && oauth.comma_scopes && !oauth.basic_auth && !oauth.token_via_get);
        let url = oauth.authorize("https://h/cb", "st").unwrap().url;
        assert!(url.contains(
            "scope=threads_basic%2Cthreads_content_publish%2Cthreads_manage_replies%2Cthreads_read_replies%2Cthreads_delete"
        ), "{url}");
    }

    #[test]
    fn long_lived_answers_store_token_expiry_and_issue_time() {
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap();
        let mut c = Credentials::default();
        let exp = store_long_lived(
            &mut c,
            &json!({"access_token": "LL", "token_type": "bearer", "expires_in": 5183944}),
            now,
        )
        .unwrap();
        assert_eq!(exp, now + chrono::Duration::seconds(5_183_944));
        assert_eq!(c.get(ACCESS_TOKEN), Some("LL"));
        assert_eq!(c.get(ISSUED_AT), Some("2026-11-25T09:00:00Z"));
        assert_eq!(c.get(EXPIRES_AT).and_then(parse_time), Some(exp));
        assert!(store_long_lived(&mut c, &json!({"access_token": ""}), now).is_err());
        assert_eq!(c.get(ACCESS_TOKEN), Some("LL"));
    }
}
