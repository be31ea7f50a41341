//! LinkedIn connector (shared/platforms.md §4): the Posts API
//! (`POST /rest/posts`), comments for the later parts of a thread
//! (`POST /rest/socialActions/{post urn}/comments`), images through
//! `POST /rest/images?action=initializeUpload`, and OAuth 2.0 (authorization
//! code, no PKCE) for the tokens.
//!
//! Every `/rest/*` call sends `LinkedIn-Version: YYYYMM` (from the settings)
//! and `X-Restli-Protocol-Version: 2.0.0`.
//!
//! Credentials: `access_token`, `author_urn` (`urn:li:person:…` or
//! `urn:li:organization:…`), `expires_at` (RFC 3339), and, for apps of
//! LinkedIn's partner programs only, `refresh_token` + `refresh_expires_at`.
//! Access tokens live 60 days; refresh tokens 365 days from the first
//! authorization, and a refresh does not extend them. Without a refresh
//! token an expired token can only be replaced by reconnecting the account.
//!
//! `remote_id`: the post URN (`urn:li:share:…` / `urn:li:ugcPost:…`) for a
//! post, and `urn:li:comment:(<post urn>,<comment id>)` for a comment (a
//! later part of a thread): deleting a comment needs its post URN.
//!
//! Replies (platforms.md §4.6): comments are read with
//! `GET /rest/socialActions/{post urn}/comments?start&count` (a post's
//! first-level comments) and `GET /rest/socialActions/{comment urn}/comments`
//! (a comment's replies; threads are two levels deep), both paged by offset
//! and, as far as Herald relies on it, oldest first. Neither can be asked
//! for "only what is newer", so a poll first reads the post's
//! `commentsSummary` (`GET /rest/socialActions/{post urn}`): when neither
//! the first-level count nor the count of replies to comments moved, nothing
//! else is read. New first-level comments are read from the last offset (a
//! few places earlier, so a deleted comment does not make one skipped); when
//! replies to comments grew, the first-level comments are walked again and
//! the replies of each comment whose own `commentsSummary` grew are read from
//! their last offset: a new reply to an old comment is found. The cursor
//! (JSON) keeps the counts, the offsets and what each list already returned.
//! The author is the actor URN (LinkedIn has no handle). Reading needs
//! `r_organization_social` (organization posts) or the restricted
//! `r_member_social` (member posts): without it LinkedIn answers 403.
//!
//! Answering a comment from the follow-up queue (`answers_reply`) is a reply
//! to it: `POST /rest/socialActions/{comment urn}/comments` with
//! `parentComment`; when the comment is itself a reply (read with
//! `GET …/comments/{id}`), the answer goes under its first-level comment.
//!
//! Duplicates: LinkedIn has no idempotency key, but refuses identical
//! content with 422 "Content is a duplicate of urn:li:share:…". After an
//! unknown outcome, reconciliation lists the author's recent posts and
//! compares the commentary; where the app may not read them (member posts
//! need the restricted `r_member_social`), it sends the post again before
//! the deadline: a 201 is the first copy, a duplicate answer names it.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::connector::{answered, clip, retry_after_seconds, send_call, RawAnswer};
use super::graph::{Seen, MAX_REPLY_PAGES};
use super::{AccountSession, Connector, ConnectorError, Credentials, Post, Published, ReplyTarget};
use super::{ConnectRequest, Connected, OAuthApp, OAuthNetwork, TokenSet};
use super::{FetchedReply, ReplyPage, ReplyQuery};
use crate::config::NetworkApp;

/// Credential fields.
pub const ACCESS_TOKEN: &str = "access_token";
pub const AUTHOR_URN: &str = "author_urn";
pub const EXPIRES_AT: &str = "expires_at";
pub const REFRESH_TOKEN: &str = "refresh_token";
pub const REFRESH_EXPIRES_AT: &str = "refresh_expires_at";

/// Access tokens live 60 days; refresh tokens 365 days (platforms.md §4.1).
const ACCESS_LIFETIME: chrono::Duration = chrono::Duration::days(60);
const REFRESH_LIFETIME: chrono::Duration = chrono::Duration::days(365);
/// Posts created this long before the first attempt cannot be ours (clock skew).
const LOOKUP_MARGIN: chrono::Duration = chrono::Duration::minutes(2);
/// Recent posts listed by reconciliation (platforms.md §4.3).
const RECENT_POSTS: usize = 10;
const COMMENT_PAGE: usize = 100;
const MAX_COMMENT_PAGES: usize = 10;
/// Longest server message quoted in an error.
const MAX_MESSAGE: usize = 300;
/// A reply poll re-reads this many places before a list's last offset, so
/// that comments deleted in between do not make new ones skipped.
const OVERLAP: usize = 5;
const PUBLIC_BASE: &str = "https://www.linkedin.com";

const NO_REFRESH: &str =
    "the LinkedIn token expired and LinkedIn gives this app no refresh token: reconnect the account";

/// The scopes to post as a member, and those added to post as an organization.
pub const MEMBER_SCOPES: [&str; 3] = ["openid", "profile", "w_member_social"];
pub const ORGANIZATION_SCOPES: [&str; 2] = ["w_organization_social", "r_organization_social"];

/// Publishes to LinkedIn as a member or an organization.
#[derive(Clone)]
pub struct Linkedin {
    http: reqwest::Client,
    app: NetworkApp,
    version: String,
}

impl Linkedin {
    pub fn new(http: reqwest::Client, app: NetworkApp, version: &str) -> Self {
        Self {
            http,
            app,
            version: version.to_string(),
        }
    }

    /// The OAuth app with the scopes needed to post as `target`: a member
    /// (`None`, or anything but an organization URN), or an organization
    /// (`urn:li:organization:<id>`), which adds `w_organization_social` and
    /// `r_organization_social`.
    pub fn oauth_app_for(&self, target: Option<&str>) -> Option<OAuthApp> {
        let (client_id, client_secret) = self.app.client()?;
        let auth = self.app.auth_url.trim_end_matches('/');
        let mut scopes: Vec<String> = MEMBER_SCOPES.iter().map(|s| s.to_string()).collect();
        if target.and_then(organization_urn).is_some() {
            scopes.extend(ORGANIZATION_SCOPES.iter().map(|s| s.to_string()));
        }
        Some(OAuthApp {
            client_id: client_id.to_string(),
            client_secret: client_secret.to_string(),
            authorize_url: format!("{auth}/oauth/v2/authorization"),
            token_url: self
                .app
                .token_url
                .clone()
                .unwrap_or_else(|| format!("{auth}/oauth/v2/accessToken")),
            scopes,
            pkce: false,
            basic_auth: false,
            comma_scopes: false,
            token_via_get: false,
        })
    }

    fn base(&self, account: &AccountSession) -> String {
        account
            .base_url
            .as_deref()
            .map(str::trim)
            .filter(|b| !b.is_empty())
            .unwrap_or(&self.app.api_url)
            .trim_end_matches('/')
            .to_string()
    }

    /// A `/rest` request with the token and LinkedIn's versioning headers.
    fn rest(&self, builder: reqwest::RequestBuilder, token: &str) -> reqwest::RequestBuilder {
        builder
            .bearer_auth(token)
            .header("LinkedIn-Version", &self.version)
            .header("X-Restli-Protocol-Version", "2.0.0")
    }

    /// Send a request and read its answer. Only a write can have an unknown
    /// outcome; any other request that fails on the way is transient.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        is_write: bool,
    ) -> Result<Reply, ConnectorError> {
        let RawAnswer {
            status,
            headers,
            bytes,
        } = send_call(request, is_write).await?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Reply {
            status,
            headers,
            body,
            text,
        })
    }

    /// The stored token and author; a token known to be expired is
    /// refreshed first when a refresh token is held.
    async fn auth(&self, account: &AccountSession) -> Result<Auth, ConnectorError> {
        let mut credentials = account.credentials.lock().await;
        let author = credentials
            .get(AUTHOR_URN)
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .ok_or_else(|| ConnectorError::AuthRevoked {
                message: "the account has no author_urn: reconnect it".into(),
                status: None,
            })?;
        if credentials.get(ACCESS_TOKEN).is_none_or(str::is_empty) {
            return Err(ConnectorError::AuthRevoked {
                message: "the account has no access_token: reconnect it".into(),
                status: None,
            });
        }
        let expired = stored_time(&credentials, EXPIRES_AT).is_some_and(|at| at <= Utc::now());
        if expired && has_refresh_token(&credentials) {
            self.refresh_locked(&mut credentials).await?;
        }
        let token = credentials
            .get(ACCESS_TOKEN)
            .unwrap_or_default()
            .to_string();
        Ok(Auth { token, author })
    }

    /// Make a call with `auth`'s token; if LinkedIn says the token expired,
    /// renew it once (under the credentials lock) and repeat the call once.
    async fn call<F>(
        &self,
        account: &AccountSession,
        auth: &mut Auth,
        is_write: bool,
        build: F,
    ) -> Result<Reply, ConnectorError>
    where
        F: Fn(&str) -> reqwest::RequestBuilder,
    {
        let reply = self.send(build(&auth.token), is_write).await?;
        if reply.token_problem() != Some(TokenProblem::Expired) {
            return Ok(reply);
        }
        auth.token = self.renew(account, &auth.token).await?;
        self.send(build(&auth.token), is_write).await
    }

    /// Replace an access token that `failed` as expired: use another task's
    /// new token if there is one, else refresh (if a refresh token is held).
    async fn renew(
        &self,
        account: &AccountSession,
        failed: &str,
    ) -> Result<String, ConnectorError> {
        let mut credentials = account.credentials.lock().await;
        if let Some(current) = credentials.get(ACCESS_TOKEN) {
            if current != failed && !current.is_empty() {
                return Ok(current.to_string());
            }
        }
        if !has_refresh_token(&credentials) {
            return Err(ConnectorError::AuthRevoked {
                message: NO_REFRESH.into(),
                status: Some(401),
            });
        }
        self.refresh_locked(&mut credentials).await?;
        Ok(credentials
            .get(ACCESS_TOKEN)
            .unwrap_or_default()
            .to_string())
    }

    /// `grant_type=refresh_token`, with the lock held by the caller. Stores
    /// the new access token and its expiry; keeps the refresh token's own
    /// expiry (LinkedIn does not extend it) and never drops a refresh token.
    async fn refresh_locked(
        &self,
        credentials: &mut Credentials,
    ) -> Result<DateTime<Utc>, ConnectorError> {
        let refresh = credentials
            .get(REFRESH_TOKEN)
            .unwrap_or_default()
            .to_string();
        let now = Utc::now();
        if stored_time(credentials, REFRESH_EXPIRES_AT).is_some_and(|at| at <= now) {
            return Err(ConnectorError::AuthRevoked {
                message: "the LinkedIn refresh token expired (it lasts 365 days from the first \
                          authorization): reconnect the account"
                    .into(),
                status: None,
            });
        }
        let app = self
            .oauth_app_for(None)
            .ok_or_else(|| ConnectorError::AuthRevoked {
                message: "cannot refresh the LinkedIn token: the LinkedIn client id and secret \
                          are not configured"
                    .into(),
                status: None,
            })?;
        let tokens = app.refresh(&self.http, &refresh).await?;
        let now = Utc::now();
        let expires = tokens.expires_at(now).unwrap_or(now + ACCESS_LIFETIME);
        credentials.set(ACCESS_TOKEN, tokens.access_token());
        credentials.set(EXPIRES_AT, rfc3339(expires));
        if let Some(new_refresh) = tokens.refresh_token() {
            credentials.set(REFRESH_TOKEN, new_refresh);
        }
        if credentials.get(REFRESH_EXPIRES_AT).is_none() {
            if let Some(at) = refresh_expiry(&tokens, now) {
                credentials.set(REFRESH_EXPIRES_AT, rfc3339(at));
            }
        }
        Ok(expires)
    }

    /// `POST /rest/posts`. `reconciling`: a duplicate answer is the post an
    /// earlier attempt made.
    async fn create_post(
        &self,
        account: &AccountSession,
        base: &str,
        auth: &mut Auth,
        post: &Post,
        reconciling: bool,
    ) -> Result<Published, ConnectorError> {
        let media = match post.media.first() {
            Some(item) => Some((
                self.upload_image(account, base, auth, &item.url, item.content_type.as_deref())
                    .await?,
                item.alt.clone(),
            )),
            None => None,
        };
        let body = post_body(&auth.author, &post.text, media);
        let url = format!("{base}/rest/posts");
        let reply = self
            .call(account, auth, true, |t| {
                self.rest(self.http.post(&url), t).json(&body)
            })
            .await?;
        if matches!(reply.status, 200 | 201) {
            let urn = reply.created_id().ok_or_else(|| ConnectorError::Unknown {
                message: "LinkedIn accepted the post but sent no x-restli-id".into(),
            })?;
            return Ok(published_post(&urn));
        }
        if reply.is_duplicate() {
            let urn = urn_in(&reply.message());
            return match (urn, reconciling) {
                (Some(urn), true) => Ok(published_post(&urn)),
                (Some(urn), false) => {
                    self.duplicate(account, base, auth, post, &urn, &reply)
                        .await
                }
                (None, _) => Err(ConnectorError::Rejected {
                    message: reply.describe(),
                    status: Some(reply.status),
                }),
            };
        }
        Err(classify(&reply, Utc::now(), true))
    }

    /// A duplicate answer outside reconciliation: the post is ours (an
    /// earlier attempt whose answer was lost or was a 5xx) when it was
    /// created since the first attempt; otherwise it is an older identical post.
    async fn duplicate(
        &self,
        account: &AccountSession,
        base: &str,
        auth: &mut Auth,
        post: &Post,
        urn: &str,
        reply: &Reply,
    ) -> Result<Published, ConnectorError> {
        let url = format!("{base}/rest/posts/{}", encode(urn));
        let found = self
            .call(account, auth, false, |t| self.rest(self.http.get(&url), t))
            .await;
        if let Ok(found) = found {
            let created = found.body.get("createdAt").and_then(Value::as_i64);
            if found.status == 200
                && created.is_some_and(|ms| {
                    ms >= (post.first_attempt_at - LOOKUP_MARGIN).timestamp_millis()
                })
            {
                return Ok(published_post(urn));
            }
        }
        Err(ConnectorError::Rejected {
            message: format!(
                "LinkedIn refused the post as a duplicate of {urn}, an earlier identical post ({})",
                reply.describe()
            ),
            status: Some(reply.status),
        })
    }

    /// Download an image and upload it to LinkedIn; returns its `urn:li:image:…`.
    async fn upload_image(
        &self,
        account: &AccountSession,
        base: &str,
        auth: &mut Auth,
        source: &str,
        content_type: Option<&str>,
    ) -> Result<String, ConnectorError> {
        let transient = |e: reqwest::Error| ConnectorError::Transient {
            message: format!(
                "could not download the image: {}",
                super::connector::describe_reqwest(&e)
            ),
            status: None,
        };
        let response = self.http.get(source).send().await.map_err(transient)?;
        let status = response.status();
        if !status.is_success() {
            let message = format!("could not download the image: its server answered {status}");
            return Err(if status.is_server_error() {
                ConnectorError::Transient {
                    message,
                    status: None,
                }
            } else {
                ConnectorError::Rejected {
                    message,
                    status: None,
                }
            });
        }
        let content_type = content_type
            .map(str::to_string)
            .or_else(|| {
                response
                    .headers()
                    .get(reqwest::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            })
            .unwrap_or_else(|| "application/octet-stream".into());
        let bytes = response.bytes().await.map_err(transient)?;

        let url = format!("{base}/rest/images?action=initializeUpload");
        let body = json!({"initializeUploadRequest": {"owner": auth.author}});
        let reply = self
            .call(account, auth, false, |t| {
                self.rest(self.http.post(&url), t).json(&body)
            })
            .await?;
        if !matches!(reply.status, 200 | 201) {
            return Err(classify(&reply, Utc::now(), false));
        }
        let value = &reply.body["value"];
        let (Some(upload_url), Some(image)) =
            (value["uploadUrl"].as_str(), value["image"].as_str())
        else {
            return Err(ConnectorError::Transient {
                message: "LinkedIn's initializeUpload answer had no uploadUrl or image".into(),
                status: Some(reply.status),
            });
        };
        let upload = self
            .http
            .put(upload_url)
            .bearer_auth(&auth.token)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(bytes);
        let uploaded = self.send(upload, false).await?;
        if !(200..300).contains(&uploaded.status) {
            return Err(classify(&uploaded, Utc::now(), false));
        }
        Ok(image.to_string())
    }

    /// A later part of a thread: a comment on the thread's first post.
    async fn comment(
        &self,
        account: &AccountSession,
        base: &str,
        auth: &mut Auth,
        target: &ReplyTarget,
        text: &str,
    ) -> Result<Published, ConnectorError> {
        let root = post_urn_of(&target.root_id).to_string();
        let url = format!("{base}/rest/socialActions/{}/comments", encode(&root));
        let body = json!({"actor": auth.author, "object": root, "message": {"text": text}});
        self.post_comment(account, auth, &url, &body, &root).await
    }

    /// POST a comment `body` to `url` (a `socialActions/.../comments`
    /// collection): the comment as published under post `root`.
    async fn post_comment(
        &self,
        account: &AccountSession,
        auth: &mut Auth,
        url: &str,
        body: &Value,
        root: &str,
    ) -> Result<Published, ConnectorError> {
        let reply = self
            .call(account, auth, true, |t| {
                self.rest(self.http.post(url), t).json(body)
            })
            .await?;
        if !matches!(reply.status, 200 | 201) {
            return Err(classify(&reply, Utc::now(), true));
        }
        let id = reply.comment_id().ok_or_else(|| ConnectorError::Unknown {
            message: "LinkedIn accepted the comment but sent no comment id".into(),
        })?;
        Ok(published_comment(root, &id))
    }

    /// The author's recent posts (`q=author`), newest first.
    async fn recent_posts(
        &self,
        account: &AccountSession,
        base: &str,
        auth: &mut Auth,
        count: usize,
    ) -> Result<Reply, ConnectorError> {
        let url = format!(
            "{base}/rest/posts?author={}&q=author&count={count}",
            encode(&auth.author)
        );
        self.call(account, auth, false, |t| self.rest(self.http.get(&url), t))
            .await
    }

    async fn reconcile_post(
        &self,
        account: &AccountSession,
        base: &str,
        auth: &mut Auth,
        post: &Post,
    ) -> Result<Option<Published>, ConnectorError> {
        let reply = self.recent_posts(account, base, auth, RECENT_POSTS).await?;
        let now = Utc::now();
        if reply.status == 403 {
            // No permission to read the author's posts (member posts need
            // r_member_social): sending again is safe, LinkedIn refuses a
            // duplicate and names the first copy.
            if now > post.deadline {
                return Err(ConnectorError::Unknown {
                    message: "LinkedIn lets this app not read the author's posts, and the post's \
                              deadline has passed: cannot tell whether it went out"
                        .into(),
                });
            }
            return self
                .create_post(account, base, auth, post, true)
                .await
                .map(Some);
        }
        if reply.status != 200 {
            return Err(classify(&reply, now, false));
        }
        let cutoff = (post.first_attempt_at - LOOKUP_MARGIN).timestamp_millis();
        let wanted = escape_little_text(&post.text);
        let elements = reply.body["elements"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut found = None;
        let mut oldest: Option<i64> = None;
        for element in &elements {
            let created = element["createdAt"]
                .as_i64()
                .or(element["publishedAt"].as_i64());
            if let Some(c) = created {
                oldest = Some(oldest.map_or(c, |o: i64| o.min(c)));
            }
            let ours = element["commentary"].as_str() == Some(wanted.as_str())
                && element["author"].as_str().is_none_or(|a| a == auth.author)
                && element["lifecycleState"].as_str() != Some("DELETED")
                && created.is_none_or(|c| c >= cutoff);
            if ours {
                // The oldest match is the closest to the first attempt.
                if let Some(id) = element["id"].as_str() {
                    found = Some(id.to_string());
                }
            }
        }
        if let Some(urn) = found {
            return Ok(Some(published_post(&urn)));
        }
        if elements.len() >= RECENT_POSTS && oldest.is_none_or(|o| o >= cutoff) {
            return Err(ConnectorError::Unknown {
                message: format!(
                    "the author's {RECENT_POSTS} most recent posts are all newer than the first \
                     attempt: cannot tell whether it went out"
                ),
            });
        }
        Ok(None)
    }

    async fn reconcile_comment(
        &self,
        account: &AccountSession,
        base: &str,
        auth: &mut Auth,
        post: &Post,
        target: &ReplyTarget,
    ) -> Result<Option<Published>, ConnectorError> {
        let root = post_urn_of(&target.root_id).to_string();
        // A thread part is a comment on the post; an answer, a reply to the
        // comment it answers (or to that comment's first-level comment).
        let list_on = if target.answers_reply {
            self.thread_of(account, base, auth, &target.parent_id)
                .await?
        } else {
            root.clone()
        };
        let cutoff = (post.first_attempt_at - LOOKUP_MARGIN).timestamp_millis();
        let mut start = 0;
        for _ in 0..MAX_COMMENT_PAGES {
            let url = format!(
                "{base}/rest/socialActions/{}/comments?start={start}&count={COMMENT_PAGE}",
                encode(&list_on),
            );
            let reply = self
                .call(account, auth, false, |t| self.rest(self.http.get(&url), t))
                .await?;
            if reply.status == 403 {
                return Err(ConnectorError::Unknown {
                    message: "LinkedIn lets this app not read the post's comments: cannot tell \
                              whether the comment went out"
                        .into(),
                });
            }
            if reply.status == 404 {
                // The thread's first post is gone: so is any comment on it.
                return Ok(None);
            }
            if reply.status != 200 {
                return Err(classify(&reply, Utc::now(), false));
            }
            let elements = reply.body["elements"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for element in &elements {
                let created = element["created"]["time"].as_i64();
                let ours = element["actor"].as_str() == Some(auth.author.as_str())
                    && element["message"]["text"].as_str() == Some(post.text.as_str())
                    && created.is_none_or(|c| c >= cutoff);
                if ours {
                    let id = comment_id_from(&element["id"])
                        .or_else(|| comment_id_from(&element["commentUrn"]))
                        .or_else(|| comment_id_from(&element["$URN"]));
                    if let Some(id) = id {
                        return Ok(Some(published_comment(&root, &id)));
                    }
                }
            }
            start += elements.len();
            if last_page(&reply.body, elements.len(), start) {
                return Ok(None);
            }
        }
        Err(ConnectorError::Unknown {
            message: "the post has too many comments to look through".into(),
        })
    }

    /// An answer from the follow-up queue: a reply to the comment
    /// `target.parent_id` (or to its first-level comment), on the post
    /// `target.root_id`.
    async fn answer(
        &self,
        account: &AccountSession,
        base: &str,
        auth: &mut Auth,
        target: &ReplyTarget,
        text: &str,
    ) -> Result<Published, ConnectorError> {
        let root = post_urn_of(&target.root_id).to_string();
        let parent = self
            .thread_of(account, base, auth, &target.parent_id)
            .await?;
        let url = format!("{base}/rest/socialActions/{}/comments", encode(&parent));
        let body = json!({
            "actor": auth.author,
            "object": root,
            "parentComment": parent,
            "message": {"text": text},
        });
        self.post_comment(account, auth, &url, &body, &root).await
    }

    /// The first-level comment a reply to `comment` goes under: `comment`
    /// itself, or its `parentComment` when it is a reply (threads are two
    /// levels deep). One read of the comment.
    async fn thread_of(
        &self,
        account: &AccountSession,
        base: &str,
        auth: &mut Auth,
        comment: &str,
    ) -> Result<String, ConnectorError> {
        let Some((post, id)) = parse_comment_urn(comment) else {
            return Err(ConnectorError::Rejected {
                message: format!("'{comment}' is not a LinkedIn comment URN"),
                status: None,
            });
        };
        let url = format!(
            "{base}/rest/socialActions/{}/comments/{}",
            encode(post),
            encode(id)
        );
        let reply = self
            .call(account, auth, false, |t| self.rest(self.http.get(&url), t))
            .await?;
        if reply.status == 404 {
            return Err(ConnectorError::Rejected {
                message: format!("the LinkedIn comment {comment} no longer exists"),
                status: Some(404),
            });
        }
        if reply.status != 200 {
            return Err(classify(&reply, Utc::now(), false));
        }
        Ok(reply.body["parentComment"]
            .as_str()
            .filter(|p| parse_comment_urn(p).is_some())
            .unwrap_or(comment)
            .to_string())
    }

    /// A `GET` of comments, with the token renewed if it expired; any other
    /// answer than 200 is an error.
    async fn read(
        &self,
        account: &AccountSession,
        auth: &mut Auth,
        url: &str,
    ) -> Result<Reply, ConnectorError> {
        let reply = self
            .call(account, auth, false, |t| self.rest(self.http.get(url), t))
            .await?;
        if reply.status != 200 {
            return Err(classify(&reply, Utc::now(), false));
        }
        Ok(reply)
    }

    /// One poll of the replies to `query.root_id`; see the module
    /// documentation.
    async fn poll(
        &self,
        account: &AccountSession,
        query: &ReplyQuery,
    ) -> Result<ReplyPage, ConnectorError> {
        let base = self.base(account);
        let mut auth = self.auth(account).await?;
        let root = post_urn_of(&query.root_id).to_string();
        if !root.starts_with("urn:li:") {
            return Err(ConnectorError::Rejected {
                message: format!("'{}' is not a LinkedIn post URN", query.root_id),
                status: None,
            });
        }
        let before = query
            .cursor
            .as_deref()
            .and_then(|c| serde_json::from_str::<PollCursor>(c).ok())
            .unwrap_or_default();
        let summary = self
            .read(
                account,
                &mut auth,
                &format!("{base}/rest/socialActions/{}", encode(&root)),
            )
            .await?;
        let counts = &summary.body["commentsSummary"];
        let first = counts["totalFirstLevelComments"].as_u64();
        let deep = match (first, counts["aggregatedTotalComments"].as_u64()) {
            (Some(f), Some(all)) => Some(all.saturating_sub(f)),
            _ => None,
        };
        let scan = before.scan.is_some() || deep.is_none() || deep != before.deep;
        if !scan && first.is_some() && first == before.first {
            return Ok(ReplyPage::default());
        }
        let mut poll = Poll {
            query,
            root: root.clone(),
            author: auth.author.clone(),
            cursor: before.clone(),
            budget: MAX_REPLY_PAGES - 1,
            replies: Vec::new(),
        };
        let mut index = match before.scan {
            Some(at) if scan => at,
            _ if scan => 0,
            _ => before.top.n.saturating_sub(OVERLAP),
        };
        // Set again below if this scan does not finish either.
        poll.cursor.scan = None;
        // Walk the first-level comments; while scanning, read the replies
        // of those whose own count grew.
        let finished = 'walk: loop {
            if poll.budget == 0 {
                break false;
            }
            poll.budget -= 1;
            let url = format!(
                "{base}/rest/socialActions/{}/comments?start={index}&count={COMMENT_PAGE}",
                encode(&root)
            );
            let page = self.read(account, &mut auth, &url).await?;
            let elements = page.body["elements"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for (k, element) in elements.iter().enumerate() {
                let Some(comment) = poll.take(element) else {
                    continue;
                };
                if scan {
                    let replies = element["commentsSummary"]["aggregatedTotalComments"]
                        .as_u64()
                        .or(element["commentsSummary"]["totalFirstLevelComments"].as_u64());
                    let known = poll.cursor.nested.get(&comment.id).map_or(0, |l| l.n);
                    if replies.is_none_or(|r| r as usize != known) {
                        let done = self
                            .read_thread(account, &base, &mut auth, &mut poll, &comment)
                            .await?;
                        if !done {
                            poll.cursor.scan = Some(index + k);
                            break 'walk false;
                        }
                    }
                }
            }
            index += elements.len();
            poll.cursor.top.n = poll.cursor.top.n.max(index);
            poll.cursor.top.seen.settle();
            if last_page(&page.body, elements.len(), index) {
                break true;
            }
        };
        if finished {
            poll.cursor.first = first;
            if scan {
                poll.cursor.deep = deep;
                poll.cursor.scan = None;
            }
        } else if scan && poll.cursor.scan.is_none() {
            poll.cursor.scan = Some(index);
        }
        let mut replies = poll.replies;
        // Times are to the millisecond: comment ids, which grow, break ties.
        let key = |r: &FetchedReply| {
            let id = parse_comment_urn(&r.remote_id).map_or("", |(_, id)| id);
            (r.created_at, id.len(), id.to_string())
        };
        replies.sort_by_key(key);
        Ok(ReplyPage {
            replies,
            cursor: serde_json::to_string(&poll.cursor).ok(),
        })
    }

    /// Read the replies to the first-level `comment` from its last offset.
    /// `false` when the page budget ran out first (what was read is kept).
    async fn read_thread(
        &self,
        account: &AccountSession,
        base: &str,
        auth: &mut Auth,
        poll: &mut Poll<'_>,
        comment: &Listed,
    ) -> Result<bool, ConnectorError> {
        let mut list = poll.cursor.nested.remove(&comment.id).unwrap_or_default();
        let mut start = list.n.saturating_sub(OVERLAP);
        let done = loop {
            if poll.budget == 0 {
                break false;
            }
            poll.budget -= 1;
            let url = format!(
                "{base}/rest/socialActions/{}/comments?start={start}&count={COMMENT_PAGE}",
                encode(&comment.urn)
            );
            let page = match self.read(account, auth, &url).await {
                Ok(page) => page,
                Err(error) => {
                    poll.cursor.nested.insert(comment.id.clone(), list);
                    return Err(error);
                }
            };
            let elements = page.body["elements"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for element in &elements {
                poll.take_reply(element, comment, &mut list.seen);
            }
            start += elements.len();
            list.n = list.n.max(start);
            list.seen.settle();
            if last_page(&page.body, elements.len(), start) {
                break true;
            }
        };
        poll.cursor.nested.insert(comment.id.clone(), list);
        Ok(done)
    }

    /// `GET /v2/userinfo` (OpenID Connect): the member's `sub` and name.
    async fn userinfo(&self, base: &str, token: &str) -> Result<Reply, ConnectorError> {
        self.send(
            self.http
                .get(format!("{base}/v2/userinfo"))
                .bearer_auth(token),
            false,
        )
        .await
    }
}

/// The cursor of LinkedIn reply polls (stored as JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct PollCursor {
    /// The post's first-level comments.
    #[serde(default)]
    top: ListCursor,
    /// The replies of each first-level comment that has some, by comment id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    nested: BTreeMap<String, ListCursor>,
    /// `totalFirstLevelComments` when the first-level list was last read
    /// to its end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    first: Option<u64>,
    /// Replies to comments (`aggregatedTotalComments` minus the first-level
    /// ones) when they were last all read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deep: Option<u64>,
    /// Where an unfinished read of the replies to comments goes on (offset
    /// in the first-level list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scan: Option<usize>,
}

/// How far one comment list was read, and what it already returned.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct ListCursor {
    /// Elements read (the next offset).
    #[serde(default)]
    n: usize,
    #[serde(default)]
    seen: Seen,
}

/// A listed comment's id, URN and, for one of Herald's, its `remote_id`.
struct Listed {
    id: String,
    urn: String,
    /// What a reply to this comment names as its parent.
    parent_ref: String,
}

/// One reply poll under way.
struct Poll<'a> {
    query: &'a ReplyQuery,
    /// The post URN.
    root: String,
    /// The account's actor URN (its own comments are not replies).
    author: String,
    cursor: PollCursor,
    /// Requests left in this poll.
    budget: usize,
    replies: Vec<FetchedReply>,
}

impl Poll<'_> {
    /// A first-level comment: returned when new and not Herald's; in any
    /// case named for the replies under it.
    fn take(&mut self, element: &Value) -> Option<Listed> {
        let listed = self.listed(element)?;
        let mut seen = std::mem::take(&mut self.cursor.top.seen);
        let root = self.query.root_id.clone();
        self.keep(element, &listed, root, None, &mut seen);
        self.cursor.top.seen = seen;
        Some(listed)
    }

    /// A reply to the first-level comment `parent`.
    fn take_reply(&mut self, element: &Value, parent: &Listed, seen: &mut Seen) {
        if let Some(listed) = self.listed(element) {
            self.keep(
                element,
                &listed,
                parent.parent_ref.clone(),
                Some(parent),
                seen,
            );
        }
    }

    /// The id and URN of a listed comment, and how replies name it.
    fn listed(&self, element: &Value) -> Option<Listed> {
        let id = comment_id_from(&element["id"])
            .or_else(|| comment_id_from(&element["commentUrn"]))
            .or_else(|| comment_id_from(&element["$URN"]))?;
        let urn = element["commentUrn"]
            .as_str()
            .or(element["$URN"].as_str())
            .filter(|u| parse_comment_urn(u).is_some())
            .map(str::to_string)
            .unwrap_or_else(|| format!("urn:li:comment:({},{id})", self.root));
        let parent_ref = self
            .query
            .own_ids
            .iter()
            .find(|own| parse_comment_urn(own).is_some_and(|(_, own_id)| own_id == id))
            .cloned()
            .unwrap_or_else(|| urn.clone());
        Some(Listed {
            id,
            urn,
            parent_ref,
        })
    }

    /// Return `element` if `seen` says it is new and it is not Herald's.
    fn keep(
        &mut self,
        element: &Value,
        listed: &Listed,
        parent_id: String,
        thread: Option<&Listed>,
        seen: &mut Seen,
    ) {
        let at = element["created"]["time"].as_i64();
        let created_at = at
            .and_then(DateTime::from_timestamp_millis)
            .unwrap_or(self.query.published_at);
        let at = at.unwrap_or_else(|| created_at.timestamp_millis());
        if !seen.is_new(&listed.id, at) {
            return;
        }
        seen.note(&listed.id, at);
        let actor = element["actor"].as_str().unwrap_or_default().to_string();
        let own = actor == self.author
            || self.query.own_ids.iter().any(|own| {
                *own == listed.urn
                    || parse_comment_urn(own).is_some_and(|(_, own_id)| own_id == listed.id)
            });
        if own {
            return;
        }
        let page = format!("{PUBLIC_BASE}/feed/update/{}", self.root);
        let url = match thread {
            None => format!("{page}?commentUrn={}", encode(&listed.urn)),
            Some(top) => format!(
                "{page}?commentUrn={}&replyUrn={}",
                encode(&top.urn),
                encode(&listed.urn)
            ),
        };
        self.replies.push(FetchedReply {
            remote_id: listed.urn.clone(),
            parent_id: Some(parent_id),
            author: actor,
            text: element["message"]["text"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            created_at,
            url: Some(url),
        });
    }
}

/// The token and author of one call.
struct Auth {
    token: String,
    author: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenProblem {
    Expired,
    Revoked,
}

/// A LinkedIn answer.
#[derive(Debug, Clone, Default)]
struct Reply {
    status: u16,
    headers: HeaderMap,
    body: Value,
    text: String,
}

impl Reply {
    fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or_default()
    }

    fn service_code(&self) -> Option<i64> {
        self.body["serviceErrorCode"].as_i64()
    }

    fn message(&self) -> String {
        match self.body["message"].as_str() {
            Some(m) => m.to_string(),
            None if self.body.is_null() => self.text.trim().chars().take(MAX_MESSAGE).collect(),
            None => String::new(),
        }
    }

    /// "LinkedIn answered 422 CODE: message", never longer than a few hundred characters.
    fn describe(&self) -> String {
        let full = self.message();
        let message = clip(&full, MAX_MESSAGE);
        let code = self.code();
        if code.is_empty() {
            answered("LinkedIn", self.status, &message)
        } else {
            answered("LinkedIn", format!("{} {code}", self.status), &message)
        }
    }

    fn token_problem(&self) -> Option<TokenProblem> {
        if self.status != 401 {
            return None;
        }
        let expired = self.code() == "EXPIRED_ACCESS_TOKEN"
            || self.service_code() == Some(65601)
            || (self.code().is_empty()
                && self.service_code() != Some(65602)
                && self.message().to_ascii_lowercase().contains("expired"));
        Some(if expired {
            TokenProblem::Expired
        } else {
            TokenProblem::Revoked
        })
    }

    fn is_duplicate(&self) -> bool {
        matches!(self.status, 400 | 409 | 422)
            && (self.message().to_ascii_lowercase().contains("duplicate")
                || self.code().to_ascii_uppercase().contains("DUPLICATE"))
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| decode(v.trim()))
            .filter(|v| !v.is_empty())
    }

    /// The URN of a created post: `x-restli-id` (or `x-linkedin-id`), else the body's `id`.
    fn created_id(&self) -> Option<String> {
        self.header("x-restli-id")
            .or_else(|| self.header("x-linkedin-id"))
            .or_else(|| self.body["id"].as_str().map(str::to_string))
            .filter(|id| id.starts_with("urn:"))
    }

    /// The id of a created comment, from the header or the body, whichever
    /// form it takes (`123`, or `urn:li:comment:(urn:li:activity:…,123)`).
    fn comment_id(&self) -> Option<String> {
        self.header("x-restli-id")
            .and_then(|h| comment_id_from(&Value::String(h)))
            .or_else(|| {
                self.header("x-linkedin-id")
                    .and_then(|h| comment_id_from(&Value::String(h)))
            })
            .or_else(|| comment_id_from(&self.body["id"]))
            .or_else(|| comment_id_from(&self.body["commentUrn"]))
            .or_else(|| comment_id_from(&self.body["$URN"]))
    }
}

/// Whether a comment list page ending at offset `end` with `len` elements
/// is the last: empty, shorter than the `paging.count` LinkedIn applied
/// (it may give less than asked), or reaching `paging.total`.
fn last_page(body: &Value, len: usize, end: usize) -> bool {
    let count = body["paging"]["count"]
        .as_u64()
        .map_or(COMMENT_PAGE, |c| (c as usize).clamp(1, COMMENT_PAGE));
    let total = body["paging"]["total"].as_u64();
    len == 0 || len < count || total.is_some_and(|t| end as u64 >= t)
}

/// A comment id from a plain id (string or number) or a comment URN.
fn comment_id_from(value: &Value) -> Option<String> {
    let text = match value {
        Value::String(s) => decode(s.trim()),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    if let Some((_, id)) = parse_comment_urn(&text) {
        return Some(id.to_string());
    }
    (!text.is_empty() && !text.contains(':') && !text.contains(['(', ')', ',', '/']))
        .then_some(text)
}

/// `urn:li:comment:(<post urn>,<id>)` → (post urn, id).
pub fn parse_comment_urn(urn: &str) -> Option<(&str, &str)> {
    let inner = urn.strip_prefix("urn:li:comment:(")?.strip_suffix(')')?;
    let (post, id) = inner.rsplit_once(',')?;
    (!post.is_empty() && !id.is_empty()).then_some((post, id))
}

/// The post a `root_id` designates: the post itself, or the post of a comment.
fn post_urn_of(remote_id: &str) -> &str {
    parse_comment_urn(remote_id).map_or(remote_id, |(post, _)| post)
}

/// `urn:li:organization:<id>` (or a bare numeric organization id).
fn organization_urn(target: &str) -> Option<String> {
    let target = target.trim();
    if let Some(id) = target.strip_prefix("urn:li:organization:") {
        return (!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
            .then(|| target.to_string());
    }
    None
}

fn published_post(urn: &str) -> Published {
    Published {
        remote_id: urn.to_string(),
        remote_url: Some(format!("{PUBLIC_BASE}/feed/update/{urn}")),
        pause_until: None,
    }
}

fn published_comment(post_urn: &str, id: &str) -> Published {
    let remote_id = format!("urn:li:comment:({post_urn},{id})");
    Published {
        remote_url: Some(format!(
            "{PUBLIC_BASE}/feed/update/{post_urn}?commentUrn={}",
            encode(&remote_id)
        )),
        remote_id,
        pause_until: None,
    }
}

/// The body of `POST /rest/posts`.
fn post_body(author: &str, text: &str, media: Option<(String, Option<String>)>) -> Value {
    let mut body = json!({
        "author": author,
        "commentary": escape_little_text(text),
        "visibility": "PUBLIC",
        "distribution": {
            "feedDistribution": "MAIN_FEED",
            "targetEntities": [],
            "thirdPartyDistributionChannels": [],
        },
        "lifecycleState": "PUBLISHED",
        "isReshareDisabledByAuthor": false,
    });
    if let Some((image, alt)) = media {
        let mut media = json!({"id": image});
        if let Some(alt) = alt.filter(|a| !a.trim().is_empty()) {
            media["altText"] = Value::String(alt);
        }
        body["content"] = json!({"media": media});
    }
    body
}

/// LinkedIn's "little text" format: the reserved characters
/// `\ | { } @ [ ] ( ) < > # * _ ~` are escaped with a backslash, so the
/// text shows exactly as written (no mentions, hashtags or templates).
pub fn escape_little_text(text: &str) -> String {
    const RESERVED: [char; 15] = [
        '\\', '|', '{', '}', '@', '[', ']', '(', ')', '<', '>', '#', '*', '_', '~',
    ];
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if RESERVED.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The first `urn:li:…` in a message ("Content is a duplicate of urn:li:share:123").
pub fn urn_in(message: &str) -> Option<String> {
    let start = message.find("urn:li:")?;
    let urn: String = message[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-'))
        .collect();
    let urn = urn.trim_end_matches(':').to_string();
    (urn.matches(':').count() >= 3).then_some(urn)
}

/// Percent-encode a URN for a path segment or a query value.
pub fn encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// Undo percent-encoding (a header may carry an encoded URN).
fn decode(value: &str) -> String {
    if !value.contains('%') {
        return value.to_string();
    }
    form_urlencoded::parse(format!("v={}", value.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| value.to_string())
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn stored_time(credentials: &Credentials, name: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(credentials.get(name)?.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn has_refresh_token(credentials: &Credentials) -> bool {
    credentials
        .get(REFRESH_TOKEN)
        .is_some_and(|t| !t.trim().is_empty())
}

/// When the refresh token of a token answer expires.
fn refresh_expiry(tokens: &TokenSet, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    tokens.refresh_token()?;
    Some(
        tokens
            .extra_str("refresh_token_expires_in")
            .and_then(|s| s.parse::<i64>().ok())
            .map_or(now + REFRESH_LIFETIME, |s| {
                now + chrono::Duration::seconds(s)
            }),
    )
}

/// Until the next midnight UTC, when LinkedIn's daily limits reset.
fn until_midnight(now: DateTime<Utc>) -> Duration {
    let midnight = (now.date_naive() + chrono::Duration::days(1))
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc())
        .unwrap_or(now + chrono::Duration::days(1));
    (midnight - now)
        .to_std()
        .unwrap_or(Duration::ZERO)
        .max(Duration::from_secs(1))
}

/// Classify a failed call. `is_write`: the call may have created something.
fn classify(reply: &Reply, now: DateTime<Utc>, is_write: bool) -> ConnectorError {
    let status = Some(reply.status);
    let message = reply.describe();
    match reply.status {
        429 => ConnectorError::RateLimited {
            // LinkedIn documents no header: its limits are daily and reset
            // at midnight UTC. Honour a Retry-After should one come.
            retry_after: retry_after_seconds(
                reply.headers.get("retry-after").and_then(|v| v.to_str().ok()),
            )
            .unwrap_or_else(|| until_midnight(now)),
            message,
            status,
        },
        401 => match reply.token_problem() {
            Some(TokenProblem::Expired) => ConnectorError::AuthExpired { message, status },
            _ => ConnectorError::AuthRevoked {
                message: format!("{message}; reconnect the account"),
                status,
            },
        },
        403 => ConnectorError::Rejected {
            message: format!(
                "{message} (the token lacks a permission, or the member lacks a role on the organization)"
            ),
            status,
        },
        426 => ConnectorError::Rejected {
            message: format!(
                "{message} (LinkedIn-Version is unknown or retired: set HERALD_LINKEDIN_VERSION to a current YYYYMM)"
            ),
            status,
        },
        504 if is_write => ConnectorError::Unknown { message },
        408 | 500.. => ConnectorError::Transient { message, status },
        _ => ConnectorError::Rejected { message, status },
    }
}

impl Connector for Linkedin {
    async fn publish(
        &self,
        account: &AccountSession,
        post: &Post,
    ) -> Result<Published, ConnectorError> {
        let base = self.base(account);
        let mut auth = self.auth(account).await?;
        match &post.reply_to {
            Some(target) if target.answers_reply => {
                self.answer(account, &base, &mut auth, target, &post.text)
                    .await
            }
            Some(target) => {
                self.comment(account, &base, &mut auth, target, &post.text)
                    .await
            }
            None => {
                self.create_post(account, &base, &mut auth, post, false)
                    .await
            }
        }
    }

    async fn reconcile(
        &self,
        account: &AccountSession,
        post: &Post,
    ) -> Result<Option<Published>, ConnectorError> {
        let base = self.base(account);
        let mut auth = self.auth(account).await?;
        match &post.reply_to {
            Some(target) => {
                self.reconcile_comment(account, &base, &mut auth, post, target)
                    .await
            }
            None => self.reconcile_post(account, &base, &mut auth, post).await,
        }
    }

    async fn delete(
        &self,
        account: &AccountSession,
        remote_id: &str,
    ) -> Result<(), ConnectorError> {
        let base = self.base(account);
        let mut auth = self.auth(account).await?;
        let url = match parse_comment_urn(remote_id) {
            Some((post, id)) => format!(
                "{base}/rest/socialActions/{}/comments/{}?actor={}",
                encode(post),
                encode(id),
                encode(&auth.author)
            ),
            None if remote_id.starts_with("urn:li:") => {
                format!("{base}/rest/posts/{}", encode(remote_id))
            }
            None => {
                return Err(ConnectorError::Rejected {
                    message: format!("'{remote_id}' is not a LinkedIn post or comment URN"),
                    status: None,
                })
            }
        };
        let reply = self
            .call(account, &mut auth, false, |t| {
                self.rest(self.http.delete(&url), t)
            })
            .await?;
        match reply.status {
            200..=299 | 404 | 410 => Ok(()),
            _ => Err(classify(&reply, Utc::now(), false)),
        }
    }

    async fn check(&self, account: &AccountSession) -> Result<(), ConnectorError> {
        let base = self.base(account);
        let mut auth = self.auth(account).await?;
        if organization_urn(&auth.author).is_some() {
            let reply = self.recent_posts(account, &base, &mut auth, 1).await?;
            return match reply.status {
                200 => Ok(()),
                _ => Err(classify(&reply, Utc::now(), false)),
            };
        }
        let reply = self
            .call(account, &mut auth, false, |t| {
                self.http.get(format!("{base}/v2/userinfo")).bearer_auth(t)
            })
            .await?;
        if reply.status != 200 {
            return Err(classify(&reply, Utc::now(), false));
        }
        match reply.body["sub"].as_str() {
            Some(sub) if auth.author != format!("urn:li:person:{sub}") => {
                Err(ConnectorError::AuthRevoked {
                    message: format!(
                        "the LinkedIn token belongs to urn:li:person:{sub}, not to {}: reconnect the account",
                        auth.author
                    ),
                    status: Some(200),
                })
            }
            _ => Ok(()),
        }
    }

    /// New comments and replies under the post, oldest first, without the
    /// account's own. See the module documentation for the cursor.
    async fn replies(
        &self,
        account: &AccountSession,
        query: &ReplyQuery,
    ) -> Result<ReplyPage, ConnectorError> {
        self.poll(account, query).await
    }

    /// Renew the access token with the refresh token (partner apps only).
    /// Without one, nothing can be renewed: a valid token's expiry is
    /// returned, an expired one means the account must be reconnected.
    async fn refresh(
        &self,
        account: &AccountSession,
    ) -> Result<Option<DateTime<Utc>>, ConnectorError> {
        let mut credentials = account.credentials.lock().await;
        if has_refresh_token(&credentials) {
            return self.refresh_locked(&mut credentials).await.map(Some);
        }
        match stored_time(&credentials, EXPIRES_AT) {
            Some(at) if at <= Utc::now() => Err(ConnectorError::AuthRevoked {
                message: NO_REFRESH.into(),
                status: None,
            }),
            other => Ok(other),
        }
    }
}

impl OAuthNetwork for Linkedin {
    /// The app with the member scopes; see [`Linkedin::oauth_app_for`] to
    /// post as an organization.
    fn oauth_app(&self) -> Option<OAuthApp> {
        self.oauth_app_for(None)
    }

    async fn connect(
        &self,
        tokens: TokenSet,
        request: &ConnectRequest,
    ) -> Result<Connected, ConnectorError> {
        let base = request
            .base_url
            .as_deref()
            .map(str::trim)
            .filter(|b| !b.is_empty())
            .unwrap_or(&self.app.api_url)
            .trim_end_matches('/')
            .to_string();
        let now = Utc::now();
        let token = tokens.access_token().to_string();
        let (author, name) = match request.target.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            Some(target) => match organization_urn(target) {
                Some(urn) => (urn, None),
                None => {
                    return Err(ConnectorError::Rejected {
                        message: format!(
                            "a LinkedIn target must be an organization URN (urn:li:organization:<id>), not '{target}'"
                        ),
                        status: None,
                    })
                }
            },
            None => {
                let reply = self.userinfo(&base, &token).await?;
                if reply.status != 200 {
                    return Err(classify(&reply, now, false));
                }
                let sub = reply.body["sub"]
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| ConnectorError::Rejected {
                        message: "LinkedIn's userinfo gave no member id (sub)".into(),
                        status: Some(reply.status),
                    })?;
                let name = reply.body["name"].as_str().map(str::to_string);
                (format!("urn:li:person:{sub}"), name)
            }
        };
        let expires = tokens.expires_at(now).unwrap_or(now + ACCESS_LIFETIME);
        let mut credentials = Credentials::default();
        credentials.set(ACCESS_TOKEN, token);
        credentials.set(AUTHOR_URN, author.clone());
        credentials.set(EXPIRES_AT, rfc3339(expires));
        if let Some(refresh) = tokens.refresh_token() {
            credentials.set(REFRESH_TOKEN, refresh);
            if let Some(at) = refresh_expiry(&tokens, now) {
                credentials.set(REFRESH_EXPIRES_AT, rfc3339(at));
            }
        }
        Ok(Connected {
            credentials,
            remote_name: Some(name.unwrap_or(author)),
            expires_at: Some(expires),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn little_text_escapes_every_reserved_character_and_nothing_else() {
        assert_eq!(
            escape_little_text(r"a\b|c{d}e@f[g]h(i)j<k>l#m*n_o~p"),
            r"a\\b\|c\{d\}e\@f\[g\]h\(i\)j\<k\>l\#m\*n\_o\~p"
        );
        let plain =
            "Évacuation 🚨: go to https://example.org/a?b=1&c=2 now! \"quoted\" 50% off, $5.";
        assert_eq!(escape_little_text(plain), plain);
        assert_eq!(
            escape_little_text("#recall @ACME (K-200)"),
            r"\#recall \@ACME \(K-200\)"
        );
    }

    #[test]
    fn the_post_body_is_a_public_main_feed_post_with_optional_media() {
        let body = post_body("urn:li:person:abc", "Hi #all", None);
        assert_eq!(body["author"], "urn:li:person:abc");
        assert_eq!(body["commentary"], r"Hi \#all");
        assert_eq!(body["visibility"], "PUBLIC");
        assert_eq!(body["distribution"]["feedDistribution"], "MAIN_FEED");
        assert_eq!(body["distribution"]["targetEntities"], json!([]));
        assert_eq!(body["lifecycleState"], "PUBLISHED");
        assert_eq!(body["isReshareDisabledByAuthor"], false);
        assert!(body.get("content").is_none());
        let body = post_body(
            "urn:li:organization:5",
            "x",
            Some(("urn:li:image:C1".into(), Some("A kettle".into()))),
        );
        assert_eq!(
            body["content"],
            json!({"media": {"id": "urn:li:image:C1", "altText": "A kettle"}})
        );
    }

    #[test]
    fn comment_urns_round_trip_and_ids_are_read_in_every_form() {
        let p = published_comment("urn:li:share:42", "777");
        assert_eq!(p.remote_id, "urn:li:comment:(urn:li:share:42,777)");
        assert_eq!(
            parse_comment_urn(&p.remote_id),
            Some(("urn:li:share:42", "777"))
        );
        assert_eq!(post_urn_of(&p.remote_id), "urn:li:share:42");
        assert_eq!(post_urn_of("urn:li:share:42"), "urn:li:share:42");
        assert!(p
            .remote_url
            .unwrap()
            .starts_with("https://www.linkedin.com/feed/update/urn:li:share:42?commentUrn=urn%3Ali%3Acomment%3A%28"));
        assert_eq!(comment_id_from(&json!("777")).as_deref(), Some("777"));
        assert_eq!(comment_id_from(&json!(777)).as_deref(), Some("777"));
        assert_eq!(
            comment_id_from(&json!("urn:li:comment:(urn:li:activity:9,778)")).as_deref(),
            Some("778")
        );
        assert_eq!(
            comment_id_from(&json!(
                "urn%3Ali%3Acomment%3A%28urn%3Ali%3Aactivity%3A9%2C779%29"
            ))
            .as_deref(),
            Some("779")
        );
        assert_eq!(comment_id_from(&json!("urn:li:share:1")), None);
        assert_eq!(comment_id_from(&Value::Null), None);
    }

    #[test]
    fn duplicate_messages_name_the_first_post() {
        assert_eq!(
            urn_in("Content is a duplicate of urn:li:share:7123456789012345678").as_deref(),
            Some("urn:li:share:7123456789012345678")
        );
        assert_eq!(
            urn_in("Content is a duplicate of urn:li:ugcPost:99.").as_deref(),
            Some("urn:li:ugcPost:99")
        );
        assert_eq!(urn_in("duplicate"), None);
        assert_eq!(encode("urn:li:share:1"), "urn%3Ali%3Ashare%3A1");
        assert_eq!(decode("urn%3Ali%3Ashare%3A1"), "urn:li:share:1");
    }

    fn reply(status: u16, body: Value) -> Reply {
        Reply {
            status,
            body,
            ..Reply::default()
        }
    }

    #[test]
    fn failures_are_classified_by_status_and_code() {
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 22, 0, 0).unwrap();
        let class = |r: Reply| classify(&r, now, true);
        let expired = reply(
            401,
            json!({"status":401,"serviceErrorCode":65601,"code":"EXPIRED_ACCESS_TOKEN","message":"The token used in the request has expired"}),
        );
        assert_eq!(expired.token_problem(), Some(TokenProblem::Expired));
        assert_eq!(class(expired).class(), "auth_expired");
        let revoked = reply(
            401,
            json!({"status":401,"serviceErrorCode":65602,"code":"REVOKED_ACCESS_TOKEN","message":"The token used in the request has been revoked by the user"}),
        );
        assert_eq!(revoked.token_problem(), Some(TokenProblem::Revoked));
        assert_eq!(class(revoked).class(), "auth_revoked");
        let only_number = reply(
            401,
            json!({"status":401,"serviceErrorCode":65601,"message":"x"}),
        );
        assert_eq!(only_number.token_problem(), Some(TokenProblem::Expired));
        let empty = reply(
            401,
            json!({"message":"Empty oauth2_access_token","serviceErrorCode":401,"status":401}),
        );
        assert_eq!(class(empty).class(), "auth_revoked");
        let denied = class(reply(
            403,
            json!({"status":403,"serviceErrorCode":100,"code":"ACCESS_DENIED","message":"Not enough permissions to access: partnerApiPostsExternal.CREATE.20251001"}),
        ));
        assert_eq!(denied.class(), "rejected");
        assert!(
            denied.to_string().contains("Not enough permissions"),
            "{denied}"
        );
        match class(reply(
            429,
            json!({"status":429,"message":"Resource level throttle"}),
        )) {
            ConnectorError::RateLimited { retry_after, .. } => {
                assert_eq!(retry_after, Duration::from_secs(2 * 3600))
            }
            other => panic!("{other:?}"),
        }
        let mut with_header = reply(429, Value::Null);
        with_header
            .headers
            .insert("retry-after", "30".parse().unwrap());
        assert_eq!(
            class(with_header),
            ConnectorError::RateLimited {
                retry_after: Duration::from_secs(30),
                message: "LinkedIn answered 429".into(),
                status: Some(429)
            }
        );
        assert_eq!(class(reply(503, Value::Null)).class(), "transient");
        assert_eq!(class(reply(504, Value::Null)).class(), "unknown");
        assert_eq!(
            classify(&reply(504, Value::Null), now, false).class(),
            "transient"
        );
        assert!(class(reply(
            426,
            json!({"status":426,"message":"Requested version 20200101 is not active"})
        ))
        .to_string()
        .contains("HERALD_LINKEDIN_VERSION"));
        let dup = reply(
            422,
            json!({"status":422,"message":"Content is a duplicate of urn:li:share:5"}),
        );
        assert!(dup.is_duplicate());
        assert!(!reply(422, json!({"status":422,"message":"commentary too long"})).is_duplicate());
    }

    #[test]
    fn comment_pages_end_short_of_the_applied_count_or_at_the_total() {
        let page = |count: u64, total: u64| json!({"paging": {"start": 0, "count": count, "total": total}});
        assert!(!last_page(&page(10, 50), 10, 10));
        assert!(last_page(&page(10, 50), 7, 7), "short page");
        assert!(last_page(&page(10, 20), 10, 20), "total reached");
        assert!(last_page(&json!({}), 0, 0), "empty");
        assert!(
            !last_page(&json!({}), 100, 100),
            "no paging: a full page goes on"
        );
    }

    #[test]
    fn reply_cursors_round_trip_and_a_bad_one_starts_over() {
        let mut cursor = PollCursor {
            first: Some(3),
            deep: Some(1),
            ..PollCursor::default()
        };
        cursor.top.n = 3;
        cursor.top.seen.note("7", 1_000);
        cursor.nested.insert("7".into(), ListCursor::default());
        let json = serde_json::to_string(&cursor).unwrap();
        assert_eq!(serde_json::from_str::<PollCursor>(&json).unwrap(), cursor);
        assert!(serde_json::from_str::<PollCursor>("not json").is_err());
        assert_eq!(
            serde_json::from_str::<PollCursor>("{}").unwrap(),
            PollCursor::default()
        );
    }

    #[test]
    fn rate_limits_wait_until_midnight_utc() {
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 23, 59, 30).unwrap();
        assert_eq!(until_midnight(now), Duration::from_secs(30));
        let now = Utc.with_ymd_and_hms(2026, 12, 31, 0, 0, 0).unwrap();
        assert_eq!(until_midnight(now), Duration::from_secs(86_400));
    }

    #[test]
    fn organization_targets_add_the_organization_scopes() {
        let mut app = crate::config::NetworkSettings::default().linkedin;
        let linkedin = Linkedin::new(reqwest::Client::new(), app.clone(), "202510");
        assert!(linkedin.oauth_app().is_none(), "no client id, no app");
        app.client_id = Some("cid".into());
        app.client_secret = Some("sec".into());
        let linkedin = Linkedin::new(reqwest::Client::new(), app, "202510");
        let member = linkedin.oauth_app().unwrap();
        assert_eq!(
            member.authorize_url,
            "https://www.linkedin.com/oauth/v2/authorization"
        );
        assert_eq!(
            member.token_url,
            "https://www.linkedin.com/oauth/v2/accessToken"
        );
        assert_eq!(member.scopes, ["openid", "profile", "w_member_social"]);
        assert!(!member.pkce && !member.basic_auth);
        let org = linkedin
            .oauth_app_for(Some("urn:li:organization:2414183"))
            .unwrap();
        assert_eq!(
            org.scopes,
            [
                "openid",
                "profile",
                "w_member_social",
                "w_organization_social",
                "r_organization_social"
            ]
        );
        assert_eq!(organization_urn("urn:li:person:abc"), None);
        assert_eq!(organization_urn("urn:li:organization:"), None);
    }
}
