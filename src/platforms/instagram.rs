//! Instagram connector (shared/platforms.md §6), "Instagram API with
//! Instagram Login" on `graph.instagram.com`.
//!
//! - Connect: OAuth code (no PKCE, comma-joined scopes) at
//!   `www.instagram.com/oauth/authorize`, token POSTed as a form to
//!   `api.instagram.com/oauth/access_token` (short-lived, 1 h), exchanged
//!   with `GET /access_token?grant_type=ig_exchange_token` for a 60-day token;
//!   `GET /me?fields=user_id,username` names the professional account.
//! - Refresh: `GET /refresh_access_token?grant_type=ig_refresh_token`, only
//!   once the token is at least 24 h old and before it expires; there is no
//!   separate refresh token. Done under the account's credentials lock.
//! - Publish (an image is required): check the publishing cap
//!   (`content_publishing_limit`), create a container
//!   (`POST /{ig-user-id}/media` with `image_url`, `caption`, `alt_text`),
//!   poll it (`GET /{container}?fields=status_code`) until `FINISHED`
//!   (bounded), publish it (`POST /{ig-user-id}/media_publish`), then read its
//!   `permalink`. POST bodies are JSON with the token in an
//!   `Authorization: Bearer` header (as the Instagram Login guides show);
//!   GET and DELETE carry it as the `access_token` parameter.
//! - Replies (corrections; Instagram has no threads) are comments:
//!   `POST /{media-id}/comments` with `message`.
//! - `remote_id`: a published media id as Graph gives it (digits); a comment
//!   is `comment:<comment-id>`, so `delete` can tell them apart: the API
//!   cannot delete published media, but a comment can be deleted.
//! - Replies (platforms.md §6.6): `GET /{media-id}/comments` with
//!   `fields=…,replies{…}` (each comment with its first replies), then
//!   `GET /{comment-id}/replies` for the rest of a long thread. The list
//!   has no "newer than" parameter and its order is not documented, so a
//!   poll first reads the media's `comments_count` (comments and replies):
//!   unchanged since the last poll, nothing more is read; grown by `n`, the
//!   comments are walked until `n` new ones are found (or the list ends), a
//!   new reply to an old comment included. The cursor (JSON) keeps that
//!   count, what was already returned ([`graph::Seen`]), and where an
//!   unfinished walk resumes. Instagram threads are one level deep: a reply's
//!   parent is its comment. Comments have no address of their own in the
//!   API: a reply's `url` is the media's permalink.
//! - Answering a comment from the follow-up queue (`answers_reply`):
//!   `POST /{ig-comment-id}/replies` on that comment, or on the comment it
//!   belongs to when it is itself a reply (`parent_id`).

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::graph::{self, Reply, Seen, TokenKind};
use super::{AccountSession, Connector, ConnectorError, Post, Published};
use super::{ConnectRequest, Connected, Credentials, OAuthApp, OAuthNetwork, TokenSet};
use super::{FetchedReply, ReplyPage, ReplyQuery, ReplyTarget};
use crate::config::NetworkApp;

const NETWORK: &str = "Instagram";
const DEFAULT_TOKEN_URL: &str = "https://api.instagram.com/oauth/access_token";
/// The scopes Herald asks for (platforms.md §6.1).
pub const SCOPES: [&str; 3] = [
    "instagram_business_basic",
    "instagram_business_content_publish",
    "instagram_business_manage_comments",
];
/// A token younger than this cannot be refreshed.
const MIN_REFRESH_AGE: chrono::Duration = chrono::Duration::hours(24);
/// Long-lived tokens last 60 days (used when an answer has no `expires_in`).
const LONG_LIVED: chrono::Duration = chrono::Duration::days(60);
/// Wait when the publishing cap is reached and the freeing time is unknown.
const CAP_DEFAULT_WAIT: Duration = Duration::from_secs(3600);
/// Reconciliation looks this far before the first attempt (clock skew).
const LOOKBACK_SECONDS: i64 = 120;
/// Pages of results read when looking a post up.
const MAX_PAGES: usize = 5;
/// Prefix of a comment's `remote_id`.
pub const COMMENT_PREFIX: &str = "comment:";
/// Comments (and replies) asked for per page when collecting replies.
const REPLY_PAGE: &str = "50";
/// The fields of a comment, and of its first replies, read when collecting replies.
const THREAD_FIELDS: &str =
    "id,text,timestamp,username,from,parent_id,replies{id,text,timestamp,username,from,parent_id}";

/// Credential fields.
pub const IG_USER_ID: &str = "ig_user_id";
pub const ACCESS_TOKEN: &str = "access_token";
/// RFC 3339: when the access token expires.
pub const EXPIRES_AT: &str = "expires_at";
/// RFC 3339: when the access token was issued (refreshes need it ≥ 24 h old).
pub const TOKEN_ISSUED_AT: &str = "token_issued_at";
pub const USERNAME: &str = "username";

#[derive(Clone)]
pub struct Instagram {
    http: reqwest::Client,
    app: NetworkApp,
    poll_interval: Duration,
    max_polls: u32,
}

impl Instagram {
    pub fn new(http: reqwest::Client, app: NetworkApp) -> Self {
        Self {
            http,
            app,
            poll_interval: Duration::from_secs(1),
            max_polls: 30,
        }
    }

    /// How often and how many times a container's status is read before
    /// giving up (default: every second, 30 times). Tests shorten it.
    pub fn with_container_polling(mut self, interval: Duration, max_polls: u32) -> Self {
        self.poll_interval = interval;
        self.max_polls = max_polls.max(1);
        self
    }

    fn base(&self, account: &AccountSession) -> String {
        graph::trim_base(account.base_url.as_deref().unwrap_or(&self.app.api_url))
    }
}

/// The account's id and token.
#[derive(Clone)]
struct Auth {
    base: String,
    user_id: String,
    token: String,
}

/// A `remote_id` read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteId<'a> {
    Media(&'a str),
    Comment(&'a str),
}

impl<'a> RemoteId<'a> {
    pub fn parse(remote_id: &'a str) -> RemoteId<'a> {
        match remote_id.strip_prefix(COMMENT_PREFIX) {
            Some(id) => RemoteId::Comment(id),
            None => RemoteId::Media(remote_id),
        }
    }
}

fn stored_time(credentials: &Credentials, name: &str) -> Option<DateTime<Utc>> {
    credentials
        .get(name)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Classify a failed answer. 2207xxx publishing failures are rejections
/// quoting Meta's message (2207001 is a server error: transient).
fn fail(reply: &Reply) -> ConnectorError {
    graph::classify(NETWORK, reply, TokenKind::InstagramUser)
}

fn is_cap(reply: &Reply) -> bool {
    reply
        .error
        .as_ref()
        .is_some_and(|e| e.code == 9 || e.subcode == Some(2207042))
}

fn invalid_id(id: &str) -> bool {
    id.is_empty() || id.contains(['/', '?', '#'])
}

/// Whether the token may be refreshed now: at least 24 h old (by its issue
/// time, or by its expiry minus 60 days) and not expired. Unknown ages are
/// tried.
fn refreshable(
    issued: Option<DateTime<Utc>>,
    expires: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> bool {
    if expires.is_some_and(|e| e <= now) {
        return false;
    }
    let issued = issued.or_else(|| expires.map(|e| e - LONG_LIVED));
    issued.is_none_or(|i| now - i >= MIN_REFRESH_AGE)
}

impl Instagram {
    async fn auth(&self, account: &AccountSession) -> Result<Auth, ConnectorError> {
        let credentials = account.credentials.lock().await;
        let (Some(user_id), Some(token)) = (
            credentials.get(IG_USER_ID).filter(|s| !s.is_empty()),
            credentials.get(ACCESS_TOKEN).filter(|s| !s.is_empty()),
        ) else {
            return Err(ConnectorError::AuthRevoked {
                message:
                    "the account has no Instagram user id or access token; reconnect the account"
                        .into(),
                status: None,
            });
        };
        if stored_time(&credentials, EXPIRES_AT).is_some_and(|e| e <= Utc::now()) {
            return Err(ConnectorError::AuthRevoked {
                message: "the Instagram token expired; reconnect the account".into(),
                status: None,
            });
        }
        Ok(Auth {
            base: self.base(account),
            user_id: user_id.to_string(),
            token: token.to_string(),
        })
    }

    async fn get(
        &self,
        auth: &Auth,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Reply, ConnectorError> {
        graph::get(&self.http, &auth.base, &auth.token, path, query).await
    }

    async fn post_json(
        &self,
        auth: &Auth,
        path: &str,
        body: &Value,
        is_write: bool,
    ) -> Result<Reply, ConnectorError> {
        let request = self
            .http
            .post(format!("{}/{path}", auth.base))
            .bearer_auth(&auth.token)
            .json(body);
        graph::send(request, is_write).await
    }

    /// Make a call with the stored token; on a token failure (190), renew the
    /// token once under the credentials lock (another task may already have
    /// done so) and repeat the call once.
    async fn with_token<F, Fut>(
        &self,
        account: &AccountSession,
        call: F,
    ) -> Result<(Reply, Auth), ConnectorError>
    where
        F: Fn(Auth) -> Fut,
        Fut: std::future::Future<Output = Result<Reply, ConnectorError>>,
    {
        let auth = self.auth(account).await?;
        let reply = call(auth.clone()).await?;
        if !reply.error.as_ref().is_some_and(|e| e.is_token_error()) {
            return Ok((reply, auth));
        }
        let renewed = {
            let mut credentials = account.credentials.lock().await;
            match credentials.get(ACCESS_TOKEN) {
                Some(stored) if stored != auth.token => Some(stored.to_string()),
                _ => {
                    let now = Utc::now();
                    if refreshable(
                        stored_time(&credentials, TOKEN_ISSUED_AT),
                        stored_time(&credentials, EXPIRES_AT),
                        now,
                    ) {
                        match self.refresh_locked(&auth.base, &mut credentials, now).await {
                            Ok(_) => credentials.get(ACCESS_TOKEN).map(str::to_string),
                            Err(ConnectorError::AuthRevoked { .. }) => None,
                            Err(other) => return Err(other),
                        }
                    } else {
                        None
                    }
                }
            }
        };
        let Some(token) = renewed else {
            return Err(fail(&reply));
        };
        let auth = Auth { token, ..auth };
        let reply = call(auth.clone()).await?;
        Ok((reply, auth))
    }

    /// `ig_refresh_token` with the stored token; stores the new token, its
    /// expiry and issue time. The caller holds the credentials lock.
    async fn refresh_locked(
        &self,
        base: &str,
        credentials: &mut Credentials,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, ConnectorError> {
        let Some(token) = credentials.get(ACCESS_TOKEN).filter(|t| !t.is_empty()) else {
            return Err(ConnectorError::AuthRevoked {
                message: "the account has no Instagram access token; reconnect the account".into(),
                status: None,
            });
        };
        let request = self
            .http
            .get(format!("{base}/refresh_access_token"))
            .query(&[("grant_type", "ig_refresh_token"), ("access_token", token)]);
        let reply = graph::send(request, false).await?;
        if !reply.ok() {
            let error = fail(&reply);
            return Err(match error {
                // A refused refresh (bad or expired token): reconnect.
                ConnectorError::Rejected { message, status } if reply.status < 500 => {
                    ConnectorError::AuthRevoked {
                        message: format!("{message} — reconnect the account"),
                        status,
                    }
                }
                other => other,
            });
        }
        let Some(new_token) = reply.str("access_token") else {
            return Err(ConnectorError::Transient {
                message: "Instagram's token refresh answered without a token".into(),
                status: Some(reply.status),
            });
        };
        let expires_at = expires_from(&reply.body, now);
        credentials.set(ACCESS_TOKEN, new_token);
        credentials.set(EXPIRES_AT, rfc3339(expires_at));
        credentials.set(TOKEN_ISSUED_AT, rfc3339(now));
        Ok(expires_at)
    }

    /// Check the publishing cap; `Err(RateLimited)` until the window frees.
    /// A failed check does not stop the publication (the API enforces the cap
    /// itself); it only returns the error to use if `force` is set.
    async fn check_cap(&self, auth: &Auth, force: bool) -> Result<(), ConnectorError> {
        let reply = self
            .get(
                auth,
                &format!("{}/content_publishing_limit", auth.user_id),
                &[("fields", "quota_usage,config")],
            )
            .await;
        let reply = match reply {
            Ok(r) if r.ok() => r,
            _ if force => {
                return Err(cap_error(CAP_DEFAULT_WAIT, None, None));
            }
            _ => return Ok(()),
        };
        let entry = reply
            .body
            .pointer("/data/0")
            .cloned()
            .unwrap_or(Value::Null);
        let usage = entry.get("quota_usage").and_then(Value::as_u64);
        let total = entry.pointer("/config/quota_total").and_then(Value::as_u64);
        let duration = entry
            .pointer("/config/quota_duration")
            .and_then(Value::as_u64)
            .unwrap_or(86_400);
        let full = matches!((usage, total), (Some(u), Some(t)) if u >= t);
        if !full && !force {
            return Ok(());
        }
        // When does the window free? When enough of the posts of the last
        // `duration` seconds age out of it.
        let over = match (usage, total) {
            (Some(u), Some(t)) if u >= t => (u - t + 1) as usize,
            _ => 1,
        };
        let now = Utc::now();
        let since = now - chrono::Duration::seconds(duration as i64);
        let mut times: Vec<DateTime<Utc>> = Vec::new();
        let _ = self
            .list(
                auth,
                &format!("{}/media", auth.user_id),
                &[("fields", "id,timestamp"), ("limit", "100")],
                |item| match item
                    .get("timestamp")
                    .and_then(Value::as_str)
                    .and_then(graph::parse_time)
                {
                    Some(t) if t >= since => {
                        times.push(t);
                        false
                    }
                    Some(_) => true,
                    None => false,
                },
            )
            .await;
        times.sort();
        let wait = times
            .get(over - 1)
            .map(|t| *t + chrono::Duration::seconds(duration as i64) - now)
            .and_then(|d| d.to_std().ok())
            .map(|d| d.max(Duration::from_secs(1)))
            .unwrap_or(CAP_DEFAULT_WAIT);
        Err(cap_error(wait, usage, total))
    }

    /// Read a list and the pages after it (`paging.next`), at most
    /// [`MAX_PAGES`], stopping when `visit` says so.
    async fn list(
        &self,
        auth: &Auth,
        path: &str,
        query: &[(&str, &str)],
        visit: impl FnMut(&Value) -> bool,
    ) -> Result<(), ConnectorError> {
        let reply = self.get(auth, path, query).await?;
        graph::walk_pages(&self.http, reply, MAX_PAGES, fail, visit).await
    }

    /// The public address of a media (best effort).
    async fn permalink(&self, auth: &Auth, media_id: &str) -> Option<String> {
        let reply = self
            .get(auth, media_id, &[("fields", "permalink")])
            .await
            .ok()?;
        reply.ok().then(|| reply.str("permalink")).flatten()
    }

    /// Wait for a container to be `FINISHED` (bounded).
    async fn wait_for_container(
        &self,
        auth: &Auth,
        container: &str,
    ) -> Result<ContainerState, ConnectorError> {
        for attempt in 0..self.max_polls {
            if attempt > 0 {
                tokio::time::sleep(self.poll_interval).await;
            }
            let reply = self
                .get(auth, container, &[("fields", "status_code,status")])
                .await?;
            if !reply.ok() {
                return Err(fail(&reply));
            }
            match reply.str("status_code").as_deref() {
                Some("FINISHED") => return Ok(ContainerState::Finished),
                Some("PUBLISHED") => return Ok(ContainerState::Published),
                Some(code @ ("ERROR" | "EXPIRED")) => {
                    let detail = reply
                        .str("status")
                        .map(|s| format!(": {s}"))
                        .unwrap_or_default();
                    return Err(ConnectorError::Rejected {
                        message: format!(
                            "Instagram could not prepare the image (container {code}){detail}"
                        ),
                        status: Some(reply.status),
                    });
                }
                _ => {}
            }
        }
        Err(ConnectorError::Transient {
            message: format!(
                "Instagram was still preparing the image after {} checks; nothing was published",
                self.max_polls
            ),
            status: None,
        })
    }

    /// The published media whose caption is `post.text`, since the first
    /// attempt; or the account's comment with that text on the reply target.
    async fn find(&self, auth: &Auth, post: &Post) -> Result<Option<Published>, ConnectorError> {
        let since = post.first_attempt_at - chrono::Duration::seconds(LOOKBACK_SECONDS);
        let mut found: Option<String> = None;
        if let Some(target) = &post.reply_to {
            let RemoteId::Media(media) = RemoteId::parse(&target.root_id) else {
                return Ok(None);
            };
            return self
                .find_comment(auth, &format!("{media}/comments"), post)
                .await;
        }
        self.list(
            auth,
            &format!("{}/media", auth.user_id),
            &[
                ("fields", "id,caption,timestamp,permalink"),
                ("limit", "50"),
            ],
            |item| {
                let caption = item.get("caption").and_then(Value::as_str).unwrap_or("");
                match item
                    .get("timestamp")
                    .and_then(Value::as_str)
                    .and_then(graph::parse_time)
                {
                    // Newest first: past the window, stop.
                    Some(t) if t < since => return true,
                    _ => {}
                }
                if graph::same_text(caption, &post.text) {
                    found = graph::text_field(item, "id");
                    return found.is_some();
                }
                false
            },
        )
        .await?;
        let Some(id) = found else { return Ok(None) };
        let remote_url = self.permalink(auth, &id).await;
        Ok(Some(Published {
            remote_id: id,
            remote_url,
            pause_until: None,
        }))
    }
}

impl Instagram {
    /// The account's comment carrying `post.text` made since the first
    /// attempt, in the list at `path` (a media's comments or a comment's
    /// replies).
    async fn find_comment(
        &self,
        auth: &Auth,
        path: &str,
        post: &Post,
    ) -> Result<Option<Published>, ConnectorError> {
        let since = post.first_attempt_at - chrono::Duration::seconds(LOOKBACK_SECONDS);
        let mut found: Option<String> = None;
        self.list(
            auth,
            path,
            &[
                ("fields", "id,text,timestamp,from,username"),
                ("limit", "50"),
            ],
            |item| {
                let text = item.get("text").and_then(Value::as_str).unwrap_or("");
                let mine = item
                    .pointer("/from/id")
                    .and_then(Value::as_str)
                    .is_none_or(|id| id == auth.user_id);
                let recent = item
                    .get("timestamp")
                    .and_then(Value::as_str)
                    .and_then(graph::parse_time)
                    .is_none_or(|t| t >= since);
                if mine && recent && graph::same_text(text, &post.text) {
                    found = graph::text_field(item, "id");
                    return found.is_some();
                }
                false
            },
        )
        .await?;
        Ok(found.map(|id| Published {
            remote_id: format!("{COMMENT_PREFIX}{id}"),
            remote_url: None,
            pause_until: None,
        }))
    }
}

enum ContainerState {
    Finished,
    Published,
}

fn cap_error(wait: Duration, usage: Option<u64>, total: Option<u64>) -> ConnectorError {
    let used = match (usage, total) {
        (Some(u), Some(t)) => format!(" ({u} of {t} posts in 24 h)"),
        _ => String::new(),
    };
    ConnectorError::RateLimited {
        retry_after: wait,
        message: format!("Instagram's publishing limit is reached{used}"),
        status: None,
    }
}

/// `expires_in` (seconds) of a token answer, from `now`; 60 days if absent.
fn expires_from(body: &Value, now: DateTime<Utc>) -> DateTime<Utc> {
    body.get("expires_in")
        .and_then(|v| {
            v.as_i64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        })
        .filter(|s| *s > 0)
        .map_or(now + LONG_LIVED, |s| now + chrono::Duration::seconds(s))
}

impl Connector for Instagram {
    async fn publish(
        &self,
        account: &AccountSession,
        post: &Post,
    ) -> Result<Published, ConnectorError> {
        if let Some(target) = &post.reply_to {
            return self.comment(account, post, target).await;
        }
        let Some(image) = post.media.first() else {
            return Err(ConnectorError::Rejected {
                message: "Instagram needs an image: add one to the statement".into(),
                status: None,
            });
        };
        let auth = self.auth(account).await?;
        self.check_cap(&auth, false).await?;
        let mut body = json!({ "image_url": image.url, "caption": post.text });
        if let Some(alt) = image.alt.as_deref().filter(|a| !a.trim().is_empty()) {
            body["alt_text"] = json!(alt);
        }
        let path = format!("{}/media", auth.user_id);
        // A container is not a post: a lost answer here publishes nothing, so
        // it is transient, not unknown.
        let (reply, auth) = self
            .with_token(account, |a| {
                let (path, body) = (path.clone(), body.clone());
                async move { self.post_json(&a, &path, &body, false).await }
            })
            .await?;
        if !reply.ok() {
            return Err(fail(&reply));
        }
        let Some(container) = reply.str("id") else {
            return Err(ConnectorError::Transient {
                message: "Instagram created no media container (no id in its answer)".into(),
                status: Some(reply.status),
            });
        };
        let mut usage = reply.usage;
        let media_id = match self.wait_for_container(&auth, &container).await? {
            ContainerState::Finished => {
                let reply = self
                    .post_json(
                        &auth,
                        &format!("{}/media_publish", auth.user_id),
                        &json!({ "creation_id": container }),
                        true,
                    )
                    .await?;
                if !reply.ok() {
                    if is_cap(&reply) {
                        return Err(self
                            .check_cap(&auth, true)
                            .await
                            .err()
                            .unwrap_or_else(|| fail(&reply)));
                    }
                    return Err(fail(&reply));
                }
                usage = reply.usage;
                reply.str("id")
            }
            ContainerState::Published => None,
        };
        let Some(media_id) = media_id else {
            // Published, but the answer did not say as what: look it up.
            return match self.find(&auth, post).await? {
                Some(found) => Ok(found),
                None => Err(ConnectorError::Unknown {
                    message: "Instagram published the container but did not give the media id"
                        .into(),
                }),
            };
        };
        let remote_url = self.permalink(&auth, &media_id).await;
        Ok(Published {
            remote_id: media_id,
            remote_url,
            pause_until: usage.pause_until(Utc::now()),
        })
    }

    /// Instagram has no idempotency key, and `reconcile` only gets the
    /// `Post` (not the container id of the lost attempt): it lists the
    /// account's media (`GET /{ig-user-id}/media?fields=id,caption,timestamp`)
    /// and matches the caption among those published since the first
    /// attempt. Not found means `media_publish` did not happen: the container
    /// of the lost attempt is left to expire (24 h) and a new one is made.
    /// Comments are matched by text on the target media.
    async fn reconcile(
        &self,
        account: &AccountSession,
        post: &Post,
    ) -> Result<Option<Published>, ConnectorError> {
        let auth = self.auth(account).await?;
        if let Some(target) = post.reply_to.as_ref().filter(|t| t.answers_reply) {
            // An answer is among the replies of the comment it went under.
            let thread = self.thread_of(account, &target.parent_id).await?;
            return self
                .find_comment(&auth, &format!("{thread}/replies"), post)
                .await;
        }
        self.find(&auth, post).await
    }

    async fn delete(
        &self,
        account: &AccountSession,
        remote_id: &str,
    ) -> Result<(), ConnectorError> {
        let RemoteId::Comment(comment) = RemoteId::parse(remote_id) else {
            return Err(ConnectorError::Rejected {
                message: "Instagram does not let apps delete posts: remove it in the Instagram app"
                    .into(),
                status: None,
            });
        };
        if invalid_id(comment) {
            return Err(ConnectorError::Rejected {
                message: format!("'{remote_id}' is not an Instagram comment id"),
                status: None,
            });
        }
        let (reply, _) = self
            .with_token(account, |a| async move {
                let request = self
                    .http
                    .delete(format!("{}/{comment}", a.base))
                    .query(&[("access_token", a.token.as_str())]);
                graph::send(request, false).await
            })
            .await?;
        if reply.ok() || reply.error.as_ref().is_some_and(|e| e.is_missing_object()) {
            return Ok(());
        }
        Err(fail(&reply))
    }

    async fn check(&self, account: &AccountSession) -> Result<(), ConnectorError> {
        let (reply, _) = self
            .with_token(account, |a| async move {
                self.get(&a, "me", &[("fields", "user_id,username")]).await
            })
            .await?;
        if reply.ok() {
            Ok(())
        } else {
            Err(fail(&reply))
        }
    }

    /// New comments and replies on the media, oldest first, without the
    /// account's own. See the module documentation for the cursor.
    async fn replies(
        &self,
        account: &AccountSession,
        query: &ReplyQuery,
    ) -> Result<ReplyPage, ConnectorError> {
        self.poll(account, query).await
    }

    /// Renew the long-lived token (`ig_refresh_token`) under the credentials
    /// lock. A token younger than 24 h cannot be refreshed: its current
    /// expiry is returned without calling. An expired token cannot be
    /// refreshed either: `AuthRevoked` (reconnect).
    async fn refresh(
        &self,
        account: &AccountSession,
    ) -> Result<Option<DateTime<Utc>>, ConnectorError> {
        let base = self.base(account);
        let mut credentials = account.credentials.lock().await;
        let now = Utc::now();
        let expires = stored_time(&credentials, EXPIRES_AT);
        let issued = stored_time(&credentials, TOKEN_ISSUED_AT);
        if expires.is_some_and(|e| e <= now) {
            return Err(ConnectorError::AuthRevoked {
                message: "the Instagram token expired; reconnect the account".into(),
                status: None,
            });
        }
        if !refreshable(issued, expires, now) {
            return Ok(expires);
        }
        self.refresh_locked(&base, &mut credentials, now)
            .await
            .map(Some)
    }
}

impl Instagram {
    /// A comment on the target media (or a reply to a comment); an answer
    /// from the follow-up queue is a reply to the comment it answers.
    async fn comment(
        &self,
        account: &AccountSession,
        post: &Post,
        target: &ReplyTarget,
    ) -> Result<Published, ConnectorError> {
        let path = if target.answers_reply {
            let comment = self.thread_of(account, &target.parent_id).await?;
            format!("{comment}/replies")
        } else {
            match RemoteId::parse(&target.root_id) {
                RemoteId::Media(media) if !invalid_id(media) => format!("{media}/comments"),
                RemoteId::Comment(comment) if !invalid_id(comment) => {
                    format!("{comment}/replies")
                }
                _ => {
                    return Err(ConnectorError::Rejected {
                        message: format!("'{}' is not an Instagram media id", target.root_id),
                        status: None,
                    })
                }
            }
        };
        let body = json!({ "message": post.text });
        let (reply, _) = self
            .with_token(account, |a| {
                let (path, body) = (path.clone(), body.clone());
                async move { self.post_json(&a, &path, &body, true).await }
            })
            .await?;
        if !reply.ok() {
            return Err(fail(&reply));
        }
        let Some(id) = reply.str("id") else {
            return Err(ConnectorError::Unknown {
                message: "Instagram accepted the comment but its answer had no id".into(),
            });
        };
        Ok(Published {
            remote_id: format!("{COMMENT_PREFIX}{id}"),
            remote_url: None,
            pause_until: reply.usage.pause_until(Utc::now()),
        })
    }
}

impl Instagram {
    /// The comment a reply to `comment_id` goes under: the comment itself,
    /// or, when it is a reply, the comment it belongs to (threads are one
    /// level deep). One read of its `parent_id`.
    async fn thread_of(
        &self,
        account: &AccountSession,
        comment_id: &str,
    ) -> Result<String, ConnectorError> {
        let id = comment_id
            .strip_prefix(COMMENT_PREFIX)
            .unwrap_or(comment_id);
        if invalid_id(id) {
            return Err(ConnectorError::Rejected {
                message: format!("'{comment_id}' is not an Instagram comment id"),
                status: None,
            });
        }
        let (reply, _) = self
            .with_token(account, |a| async move {
                self.get(&a, id, &[("fields", "id,parent_id")]).await
            })
            .await?;
        if !reply.ok() {
            return Err(fail(&reply));
        }
        Ok(reply.str("parent_id").unwrap_or_else(|| id.to_string()))
    }

    /// One poll of the replies to `query.root_id`; see the module
    /// documentation.
    async fn poll(
        &self,
        account: &AccountSession,
        query: &ReplyQuery,
    ) -> Result<ReplyPage, ConnectorError> {
        let media = match RemoteId::parse(&query.root_id) {
            RemoteId::Media(media) if !invalid_id(media) => media.to_string(),
            _ => {
                return Err(ConnectorError::Rejected {
                    message: format!("'{}' is not an Instagram media id", query.root_id),
                    status: None,
                })
            }
        };
        let before = query
            .cursor
            .as_deref()
            .and_then(|c| serde_json::from_str::<PollCursor>(c).ok())
            .unwrap_or_default();
        let (reply, auth) = self
            .with_token(account, |a| {
                let media = media.clone();
                async move {
                    self.get(&a, &media, &[("fields", "comments_count,permalink")])
                        .await
                }
            })
            .await?;
        if !reply.ok() {
            return Err(fail(&reply));
        }
        let total = reply.body.get("comments_count").and_then(Value::as_u64);
        if total.is_some() && total == before.count && before.resume.is_none() {
            return Ok(ReplyPage::default());
        }
        let own_name = account
            .credentials
            .lock()
            .await
            .get(USERNAME)
            .map(str::to_string);
        let mut walk = Walk {
            query,
            seen: before.seen.clone(),
            expected: total.map(|t| t.saturating_sub(before.count.unwrap_or(0))),
            found: 0,
            picked: HashSet::new(),
            replies: Vec::new(),
            url: reply.str("permalink"),
            own_id: auth.user_id.clone(),
            own_name,
        };
        let mut budget = graph::MAX_REPLY_PAGES - 1;
        let mut after = before.resume.clone();
        let from_top = after.is_none();
        let path = format!("{media}/comments");
        let ended = loop {
            if budget == 0 {
                break false;
            }
            budget -= 1;
            let mut params = vec![("fields", THREAD_FIELDS), ("limit", REPLY_PAGE)];
            if let Some(cursor) = after.as_deref() {
                params.push(("after", cursor));
            }
            let page = self.get(&auth, &path, &params).await?;
            if !page.ok() {
                return Err(fail(&page));
            }
            let items = page
                .body
                .get("data")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let mut cut = false;
            for item in &items {
                let Some(id) = graph::text_field(item, "id") else {
                    continue;
                };
                walk.consider(item, None);
                let thread = item.get("replies");
                for reply in thread
                    .and_then(|r| r.get("data"))
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    walk.consider(reply, Some(&id));
                }
                // A long thread goes on at `/{comment}/replies`.
                let mut next = thread.map(graph::Paging::of).and_then(|p| p.next);
                while let Some(url) = next.take() {
                    if budget == 0 {
                        cut = true;
                        break;
                    }
                    budget -= 1;
                    let more = graph::send(self.http.get(url), false).await?;
                    if !more.ok() {
                        return Err(fail(&more));
                    }
                    for reply in more
                        .body
                        .get("data")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        walk.consider(reply, Some(&id));
                    }
                    next = graph::Paging::of(&more.body).next;
                }
                if cut {
                    break;
                }
            }
            if cut {
                // Read this page again next time (what was found is in `seen`).
                break false;
            }
            if walk.accounted() {
                break true;
            }
            let paging = graph::Paging::of(&page.body);
            match (paging.next, paging.after) {
                (Some(_), Some(cursor)) if !items.is_empty() => after = Some(cursor),
                _ => break true,
            }
        };
        let mut seen = walk.seen.clone();
        let count = before.count.unwrap_or(0) + walk.found;
        let cursor = if ended && (from_top || walk.accounted()) {
            // Everything new was found: the next poll starts afresh.
            seen.settle();
            PollCursor {
                count: total.or(Some(count)),
                seen,
                resume: None,
            }
        } else {
            // Part of the list is left: the next poll goes on from there
            // (or starts over from the top when the end was reached).
            PollCursor {
                count: Some(count),
                seen,
                resume: if ended { None } else { after },
            }
        };
        let mut replies = walk.replies;
        // Timestamps are to the second: Graph ids, which grow, break ties.
        replies.sort_by(|a, b| {
            (a.created_at, a.remote_id.len(), &a.remote_id).cmp(&(
                b.created_at,
                b.remote_id.len(),
                &b.remote_id,
            ))
        });
        Ok(ReplyPage {
            replies,
            cursor: serde_json::to_string(&cursor).ok(),
        })
    }
}

/// The cursor of Instagram reply polls (stored as JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct PollCursor {
    /// `comments_count` once every comment it counts was seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    count: Option<u64>,
    /// What was already returned.
    #[serde(default)]
    seen: Seen,
    /// The `after` cursor where an unfinished walk goes on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resume: Option<String>,
}

/// One walk through a media's comments.
struct Walk<'a> {
    query: &'a ReplyQuery,
    seen: Seen,
    /// New comments and replies `comments_count` says there are.
    expected: Option<u64>,
    /// New ones met so far (the account's own included: they are counted).
    found: u64,
    /// Ids met in this walk (a page read twice counts once).
    picked: HashSet<String>,
    replies: Vec<FetchedReply>,
    /// The media's permalink.
    url: Option<String>,
    own_id: String,
    own_name: Option<String>,
}

impl Walk<'_> {
    /// Take a comment (`parent`: `None`) or a reply if it is new.
    fn consider(&mut self, item: &Value, parent: Option<&str>) {
        let Some(id) = graph::text_field(item, "id") else {
            return;
        };
        let created_at = item
            .get("timestamp")
            .and_then(Value::as_str)
            .and_then(graph::parse_time)
            .unwrap_or(self.query.published_at);
        let at = created_at.timestamp();
        if !self.seen.is_new(&id, at) || !self.picked.insert(id.clone()) {
            return;
        }
        self.seen.note(&id, at);
        self.found += 1;
        let from_id = item.get("from").and_then(|f| graph::text_field(f, "id"));
        let username = graph::text_field(item, "username").or_else(|| {
            item.get("from")
                .and_then(|f| graph::text_field(f, "username"))
        });
        let own = from_id.as_deref() == Some(self.own_id.as_str())
            || (username.is_some() && username == self.own_name)
            || self
                .query
                .own_ids
                .iter()
                .any(|own| own.strip_prefix(COMMENT_PREFIX).unwrap_or(own) == id);
        if own {
            return;
        }
        // A reply to one of Herald's comments names it as Herald does.
        let parent_id = match parent
            .map(str::to_string)
            .or_else(|| graph::text_field(item, "parent_id"))
        {
            Some(comment) => {
                let ours = format!("{COMMENT_PREFIX}{comment}");
                if self.query.own_ids.contains(&ours) {
                    ours
                } else {
                    comment
                }
            }
            None => self.query.root_id.clone(),
        };
        self.replies.push(FetchedReply {
            remote_id: id,
            parent_id: Some(parent_id),
            author: username.unwrap_or_default(),
            text: graph::text_field(item, "text").unwrap_or_default(),
            created_at,
            url: self.url.clone(),
        });
    }

    /// Every new comment `comments_count` announced was met.
    fn accounted(&self) -> bool {
        self.expected.is_some_and(|e| self.found >= e)
    }
}

impl OAuthNetwork for Instagram {
    fn oauth_app(&self) -> Option<OAuthApp> {
        let token_url = DEFAULT_TOKEN_URL.to_string();
        graph::oauth_app(&self.app, &SCOPES, "oauth/authorize", token_url, false)
    }

    /// Exchange the short-lived token for a 60-day one, then read the
    /// professional account's id and username.
    async fn connect(
        &self,
        tokens: TokenSet,
        request: &ConnectRequest,
    ) -> Result<Connected, ConnectorError> {
        let (_, client_secret) = graph::app_client(&self.app, NETWORK)?;
        let base = graph::trim_base(request.base_url.as_deref().unwrap_or(&self.app.api_url));
        let now = Utc::now();
        let exchange = self.http.get(format!("{base}/access_token")).query(&[
            ("grant_type", "ig_exchange_token"),
            ("client_secret", client_secret),
            ("access_token", tokens.access_token()),
        ]);
        let reply = graph::send(exchange, false).await?;
        if !reply.ok() {
            return Err(fail(&reply));
        }
        let Some(token) = reply.str("access_token") else {
            return Err(ConnectorError::Rejected {
                message: "Instagram's token exchange answered without an access token".into(),
                status: Some(reply.status),
            });
        };
        let expires_at = expires_from(&reply.body, now);
        let auth = Auth {
            base,
            user_id: String::new(),
            token: token.clone(),
        };
        let me = self
            .get(&auth, "me", &[("fields", "user_id,username")])
            .await?;
        if !me.ok() {
            return Err(fail(&me));
        }
        let Some(user_id) = me
            .str("user_id")
            .or_else(|| tokens.extra_str("user_id"))
            .or_else(|| me.str("id"))
        else {
            return Err(ConnectorError::Rejected {
                message: "Instagram did not say which account the token is for".into(),
                status: Some(me.status),
            });
        };
        if let Some(target) = request
            .target
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            if target != user_id {
                return Err(ConnectorError::Rejected {
                    message: format!("this Instagram login is for account {user_id}, not {target}"),
                    status: None,
                });
            }
        }
        let username = me.str("username");
        let mut credentials = Credentials::default();
        credentials.set(IG_USER_ID, user_id);
        credentials.set(ACCESS_TOKEN, token);
        credentials.set(EXPIRES_AT, rfc3339(expires_at));
        credentials.set(TOKEN_ISSUED_AT, rfc3339(now));
        if let Some(name) = &username {
            credentials.set(USERNAME, name.clone());
        }
        credentials.take_changed();
        Ok(Connected {
            credentials,
            remote_name: username.map(|u| format!("@{u}")),
            expires_at: Some(expires_at),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn remote_ids_tell_media_from_comments() {
        assert_eq!(
            RemoteId::parse("17895695668004550"),
            RemoteId::Media("17895695668004550")
        );
        assert_eq!(RemoteId::parse("comment:1790"), RemoteId::Comment("1790"));
    }

    #[test]
    fn a_walk_counts_every_new_comment_and_returns_the_publics_only() {
        let query = ReplyQuery {
            root_id: "100".into(),
            own_ids: vec!["100".into(), "comment:200".into()],
            cursor: None,
            published_at: Utc::now(),
        };
        let mut walk = Walk {
            query: &query,
            seen: Seen::default(),
            expected: Some(3),
            found: 0,
            picked: HashSet::new(),
            replies: Vec::new(),
            url: Some("https://www.instagram.com/p/x/".into()),
            own_id: "9".into(),
            own_name: Some("kettleco".into()),
        };
        let at = "2026-11-25T09:00:00+0000";
        walk.consider(
            &json!({"id": "200", "text": "Lot 42", "timestamp": at, "from": {"id": "9"}}),
            None,
        );
        walk.consider(
            &json!({"id": "201", "text": "Thanks", "timestamp": at, "username": "bea"}),
            Some("200"),
        );
        assert!(!walk.accounted());
        walk.consider(
            &json!({"id": "201", "text": "Thanks", "timestamp": at, "username": "bea"}),
            Some("200"),
        );
        walk.consider(
            &json!({"id": "202", "text": "Hi", "timestamp": at, "username": "carl"}),
            None,
        );
        assert!(walk.accounted(), "the account's own comment counts too");
        let rows: Vec<(&str, Option<&str>)> = walk
            .replies
            .iter()
            .map(|r| (r.remote_id.as_str(), r.parent_id.as_deref()))
            .collect();
        assert_eq!(rows, [("201", Some("comment:200")), ("202", Some("100"))]);
        let cursor = PollCursor {
            count: Some(3),
            seen: walk.seen.clone(),
            resume: None,
        };
        let json = serde_json::to_string(&cursor).unwrap();
        assert_eq!(serde_json::from_str::<PollCursor>(&json).unwrap(), cursor);
    }

    #[test]
    fn tokens_refresh_only_when_a_day_old_and_unexpired() {
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap();
        let h = chrono::Duration::hours;
        assert!(!refreshable(Some(now - h(23)), Some(now + h(1000)), now));
        assert!(refreshable(Some(now - h(25)), Some(now + h(1000)), now));
        assert!(!refreshable(Some(now - h(2000)), Some(now - h(1)), now));
        // No issue time: estimated from the expiry (60 days).
        assert!(!refreshable(None, Some(now + LONG_LIVED - h(2)), now));
        assert!(refreshable(None, Some(now + LONG_LIVED - h(30)), now));
        assert!(refreshable(None, None, now));
    }

    #[test]
    fn token_answers_give_an_expiry() {
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap();
        assert_eq!(
            expires_from(&json!({"expires_in": 5183944}), now),
            now + chrono::Duration::seconds(5183944)
        );
        assert_eq!(expires_from(&json!({}), now), now + LONG_LIVED);
    }

    #[test]
    fn the_oauth_app_uses_instagram_login_without_pkce() {
        let app = NetworkApp {
            client_id: Some("cid".into()),
            client_secret: Some("sec".into()),
            api_url: "https://graph.instagram.com".into(),
            auth_url: "https://www.instagram.com".into(),
            token_url: None,
        };
        let oauth = Instagram::new(reqwest::Client::new(), app)
            .oauth_app()
            .unwrap();
        assert_eq!(
            oauth.authorize_url,
            "https://www.instagram.com/oauth/authorize"
        );
        assert_eq!(oauth.token_url, DEFAULT_TOKEN_URL);
        assert!(!oauth.pkce && oauth.comma_scopes && !oauth.token_via_get);
    }
}
