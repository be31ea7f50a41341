//! A fake Instagram Graph API, "Instagram API with Instagram Login"
//! (shared/platforms.md §6), on a loopback port: the authorize page
//! (auto-approving), the token endpoint (`/oauth/access_token`, form POST),
//! the long-lived exchange (`/access_token`) and refresh
//! (`/refresh_access_token`), `/me`, media containers with their
//! `status_code` state machine, `media_publish` under a publishing cap,
//! media listing, permalinks, comments, comment deletion, and Graph's error
//! envelope.
//!
//! Quick use:
//! ```ignore
//! let ig = FakeInstagram::start().await;
//! let acct = ig.add_account("kettleco");        // FakeIgAccount { user_id, token }
//! let app = ig.app();                           // NetworkApp pointing here
//! ig.set_in_progress_polls(2);                  // containers answer IN_PROGRESS twice
//! // ... publish with credentials ig_user_id = acct.user_id, access_token = acct.token
//! ig.media();                                   // what was published
//! ```
//!
//! - One host serves the authorize page, the token endpoint and the API:
//!   [`app`](FakeInstagram::app) sets `api_url`, `auth_url` and `token_url`.
//! - The image URL is only stored (Meta fetches it; the fake does not).
//! - Tokens: `access_token` parameter or `Authorization: Bearer`. Long-lived
//!   tokens last 60 days; [`age_token`](FakeInstagram::age_token) backdates
//!   one (a refresh needs it ≥ 24 h old), [`expire_token`](FakeInstagram::expire_token)
//!   and [`revoke`](FakeInstagram::revoke) make it fail with 190.
//! - Faults (next writes = every POST to the API):
//!   [`fail_next`](FakeInstagram::fail_next), [`error_next`](FakeInstagram::error_next),
//!   [`drop_after_store_next`](FakeInstagram::drop_after_store_next) (a
//!   `media_publish` or comment is stored, then the connection is dropped),
//!   [`fail_container_next`](FakeInstagram::fail_container_next) (`ERROR` or
//!   `EXPIRED` containers), [`set_quota_total`](FakeInstagram::set_quota_total)
//!   (publishing cap over 24 h; 100 by default; over it `media_publish`
//!   answers code 9, subcode 2207042).
//! - Comments (platforms.md §6.6): `GET /{media}/comments` (top-level
//!   comments, newest first) and `GET /{comment}/replies` (oldest first),
//!   with `limit` and opaque `after`/`before` cursors naming an item (shared
//!   with the fake Facebook); `fields=…,replies{…}` expands each comment's
//!   first page of replies, with `paging.next` to `/{comment}/replies` when
//!   more follow. A reply has `parent_id`. `GET /{media}?fields=comments_count`
//!   counts comments and replies. Threads are one level deep: `POST
//!   /{reply}/replies` is refused with `(#100)` ([?]), and
//!   [`add_reply`](FakeInstagram::add_reply)`(parent, username, text)` (a
//!   member of the public comments on a media or replies to a comment;
//!   returns the id) puts a reply to a reply under the same comment.
//! - Paging: [`set_page_size`](FakeInstagram::set_page_size) caps every list
//!   page (100 by default). Faults on comment reads:
//!   [`fail_reads_next`](FakeInstagram::fail_reads_next) (code 2),
//!   [`rate_limit_reads_next`](FakeInstagram::rate_limit_reads_next) (code
//!   80002 with the usage header).
//! - Inspection: [`media`](FakeInstagram::media), [`comments`](FakeInstagram::comments),
//!   [`containers`](FakeInstagram::containers), [`requests_to`](FakeInstagram::requests_to).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::facebook::{
    cursor_of, graph_error, graph_time, injected_error, injected_failure, no_object, page_limit,
    paged, paged_by_id, params, segments, token, wants, GraphError, ReadFaults,
};
use crate::config::NetworkApp;
use crate::fakes::server::{dropped, random_token, FakeServer, Faults, Next};

pub const CLIENT_ID: &str = "fake-ig-client";
pub const CLIENT_SECRET: &str = "fake-ig-secret";
const CODE_TTL: Duration = Duration::from_secs(600);
const LONG_LIVED_SECONDS: i64 = 5_184_000;
const QUOTA_DURATION: i64 = 86_400;

/// An account made with [`FakeInstagram::add_account`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeIgAccount {
    /// The professional account id (`user_id` of `/me`, `<IG_ID>` of the API).
    pub user_id: String,
    pub username: String,
    /// A long-lived token, issued now.
    pub token: String,
}

/// A media container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeIgContainer {
    pub id: String,
    pub user_id: String,
    pub image_url: String,
    pub caption: String,
    pub alt_text: Option<String>,
    /// `IN_PROGRESS`, `FINISHED`, `ERROR`, `EXPIRED`, `PUBLISHED`.
    pub status_code: String,
    /// Status reads received.
    pub polls: usize,
}

/// A published media.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeIgMedia {
    pub id: String,
    pub user_id: String,
    pub container_id: Option<String>,
    pub caption: String,
    pub image_url: String,
    pub alt_text: Option<String>,
    pub timestamp: DateTime<Utc>,
    pub permalink: String,
}

/// A comment (or a reply to a comment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeIgComment {
    pub id: String,
    pub media_id: String,
    /// The comment this one replies to.
    pub parent_comment: Option<String>,
    pub user_id: String,
    /// The author's username (the account's, or a member of the public's).
    pub username: String,
    pub text: String,
    pub timestamp: DateTime<Utc>,
    pub deleted: bool,
}

/// A running fake; stops when dropped.
pub struct FakeInstagram {
    shared: Arc<Shared>,
    server: FakeServer,
}

impl FakeInstagram {
    pub async fn start() -> FakeInstagram {
        let port = FakeServer::bind("fake-instagram");
        let shared = Arc::new(Shared {
            base_url: port.base_url(),
            state: Mutex::new(State {
                quota_total: 100,
                next_id: 17_841_400_000_000_000,
                page_size: 100,
                ..State::default()
            }),
        });
        let server = port
            .serve(2, shared.clone(), 1 << 20, |app| {
                app.default_service(web::to(handle));
            })
            .await;
        FakeInstagram { shared, server }
    }

    pub fn base_url(&self) -> String {
        self.server.base_url().to_string()
    }

    /// The app registration to give the connector (every address here).
    pub fn app(&self) -> NetworkApp {
        NetworkApp {
            client_id: Some(CLIENT_ID.into()),
            client_secret: Some(CLIENT_SECRET.into()),
            api_url: self.base_url(),
            auth_url: self.base_url(),
            token_url: Some(format!("{}/oauth/access_token", self.server.base_url())),
        }
    }

    /// Create a professional account with a fresh long-lived token. The
    /// first account is the one the authorize page logs in.
    pub fn add_account(&self, username: &str) -> FakeIgAccount {
        let mut state = self.lock();
        let user_id = state.id();
        state.accounts.insert(user_id.clone(), username.to_string());
        if state.login_user.is_none() {
            state.login_user = Some(user_id.clone());
        }
        let token = state.issue(&user_id, true);
        FakeIgAccount {
            user_id,
            username: username.to_string(),
            token,
        }
    }

    /// The account the authorize page approves as.
    pub fn login_as(&self, user_id: &str) {
        self.lock().login_user = Some(user_id.to_string());
    }

    /// Move `token`'s issue time (and expiry) back by `by`.
    pub fn age_token(&self, token: &str, by: Duration) {
        let by = chrono::Duration::from_std(by).unwrap_or_default();
        if let Some(t) = self.lock().tokens.get_mut(token) {
            t.issued_at -= by;
            t.expires_at -= by;
        }
    }

    /// Make `token` expired (190/463).
    pub fn expire_token(&self, token: &str) {
        if let Some(t) = self.lock().tokens.get_mut(token) {
            t.expires_at = Utc::now() - chrono::Duration::seconds(1);
        }
    }

    /// Make `token` fail with 190 and `subcode` (None: invalid token).
    pub fn revoke(&self, token: &str, subcode: Option<i64>) {
        if let Some(t) = self.lock().tokens.get_mut(token) {
            t.revoked = Some(subcode);
        }
    }

    /// Whether `token` is currently accepted.
    pub fn token_works(&self, token: &str) -> bool {
        self.lock().check(Some(token)).is_ok()
    }

    /// New containers answer `IN_PROGRESS` to their first `n` status reads.
    pub fn set_in_progress_polls(&self, n: usize) {
        self.lock().in_progress_polls = n;
    }

    /// The next `n` containers end in `status` (`ERROR` or `EXPIRED`) instead of `FINISHED`.
    pub fn fail_container_next(&self, n: usize, status: &str) {
        self.lock().container_failures = (n, status.to_string());
    }

    /// Posts allowed per 24 h (`quota_total`).
    pub fn set_quota_total(&self, n: u64) {
        self.lock().quota_total = n;
    }

    /// The next `n` writes answer `status` with Graph code 2 (transient).
    pub fn fail_next(&self, n: usize, status: u16) {
        self.lock().faults.fail.arm(n, status);
    }

    /// The next `n` writes answer `status` with this Graph error.
    pub fn error_next(
        &self,
        n: usize,
        status: u16,
        code: i64,
        subcode: Option<i64>,
        message: &str,
    ) {
        self.lock()
            .error
            .arm(n, (status, code, subcode, message.to_string()));
    }

    /// The next `n` `media_publish` calls answer the publishing-cap error
    /// (code 9, subcode 2207042) whatever the quota says.
    pub fn cap_next(&self, n: usize) {
        self.lock().cap = n;
    }

    /// The next `n` `media_publish` or comment writes store, then drop the connection.
    pub fn drop_after_store_next(&self, n: usize) {
        self.lock().faults.drop_after_store.arm(n, ());
    }

    /// Add a published media as if posted at `timestamp` (counts toward the cap).
    pub fn seed_media(&self, user_id: &str, caption: &str, timestamp: DateTime<Utc>) -> String {
        self.lock().publish(
            user_id,
            None,
            caption,
            "https://example.org/seed.jpg",
            None,
            timestamp,
        )
    }

    /// A member of the public (`username`) comments on the media `parent`,
    /// or replies to the comment `parent`, now. Instagram threads are one
    /// level deep: a reply to a reply goes under the same comment, as the app
    /// does it. Returns the new comment's id.
    ///
    /// # Panics
    /// When `parent` is neither a media nor a live comment of this fake.
    pub fn add_reply(&self, parent: &str, username: &str, text: &str) -> String {
        let mut state = self.lock();
        let (media_id, parent_comment) = if let Some(m) = state.media.get(parent) {
            (m.id.clone(), None)
        } else if let Some(c) = state.comments.get(parent).filter(|c| !c.deleted) {
            let top = c.parent_comment.clone().unwrap_or_else(|| c.id.clone());
            (c.media_id.clone(), Some(top))
        } else {
            panic!("add_reply: the fake has no media or comment {parent}");
        };
        let user_id = state.public_user(username);
        state.comment(&media_id, parent_comment, &user_id, username, text)
    }

    /// Lists answer at most `n` items a page, whatever `limit` asks.
    pub fn set_page_size(&self, n: usize) {
        self.lock().page_size = n.max(1);
    }

    /// The next `n` comment reads (`GET /{media}/comments`,
    /// `GET /{comment}/replies`, and the media's `comments_count`) answer
    /// `status` with Graph code 2 (transient).
    pub fn fail_reads_next(&self, n: usize, status: u16) {
        self.lock().read_faults.fail.arm(n, status);
    }

    /// The next `n` comment reads are throttled: HTTP 400, code 80002
    /// (Instagram's business-use-case limit), and an
    /// `X-Business-Use-Case-Usage` header saying access comes back in
    /// `regain_minutes` (none when 0).
    pub fn rate_limit_reads_next(&self, n: usize, regain_minutes: u64) {
        self.lock()
            .read_faults
            .rate_limit
            .arm(n, (80002, regain_minutes));
    }

    pub fn media(&self) -> Vec<FakeIgMedia> {
        let state = self.lock();
        state
            .media_order
            .iter()
            .filter_map(|id| state.media.get(id).cloned())
            .collect()
    }

    pub fn comments(&self) -> Vec<FakeIgComment> {
        let state = self.lock();
        state
            .comment_order
            .iter()
            .filter_map(|id| state.comments.get(id).cloned())
            .collect()
    }

    pub fn containers(&self) -> Vec<FakeIgContainer> {
        let state = self.lock();
        state
            .container_order
            .iter()
            .filter_map(|id| state.containers.get(id).cloned())
            .collect()
    }

    /// Requests whose path (without a version prefix) starts with `prefix`.
    pub fn requests_to(&self, prefix: &str) -> usize {
        let state = self.lock();
        state
            .requests
            .iter()
            .filter(|(p, _)| p.starts_with(prefix))
            .map(|(_, n)| n)
            .sum()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
    }
}

// ---------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------

struct Shared {
    base_url: String,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct TokenEntry {
    user_id: String,
    long_lived: bool,
    issued_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    revoked: Option<Option<i64>>,
}

struct CodeEntry {
    user_id: String,
    redirect_uri: String,
    issued: Instant,
}

#[derive(Default)]
struct State {
    next_id: u64,
    accounts: HashMap<String, String>,
    login_user: Option<String>,
    tokens: HashMap<String, TokenEntry>,
    codes: HashMap<String, CodeEntry>,
    containers: HashMap<String, FakeIgContainer>,
    container_order: Vec<String>,
    in_progress_polls: usize,
    container_failures: (usize, String),
    /// Per container: status reads left before the final status.
    pending: HashMap<String, (usize, String)>,
    media: HashMap<String, FakeIgMedia>,
    media_order: Vec<String>,
    comments: HashMap<String, FakeIgComment>,
    comment_order: Vec<String>,
    quota_total: u64,
    faults: Faults,
    error: Next<GraphError>,
    /// `media_publish` calls still to refuse with the publishing cap.
    cap: usize,
    requests: HashMap<String, usize>,
    /// Largest page a list answers (see `set_page_size`).
    page_size: usize,
    read_faults: ReadFaults,
    /// Members of the public who commented: username → user id.
    publics: HashMap<String, String>,
}

impl State {
    fn id(&mut self) -> String {
        self.next_id += 1 + (self.next_id % 7);
        self.next_id.to_string()
    }

    fn issue(&mut self, user_id: &str, long_lived: bool) -> String {
        let token = format!("IG{}", random_token(48));
        let now = Utc::now();
        let life = if long_lived { LONG_LIVED_SECONDS } else { 3600 };
        self.tokens.insert(
            token.clone(),
            TokenEntry {
                user_id: user_id.to_string(),
                long_lived,
                issued_at: now,
                expires_at: now + chrono::Duration::seconds(life),
                revoked: None,
            },
        );
        token
    }

    #[allow(clippy::result_large_err)]
    fn check(&self, token: Option<&str>) -> Result<String, HttpResponse> {
        let Some(token) = token else {
            return Err(graph_error(
                400,
                190,
                None,
                "An active access token must be used to query information about the current user.",
            ));
        };
        let Some(entry) = self.tokens.get(token) else {
            return Err(graph_error(
                400,
                190,
                None,
                "Invalid OAuth access token - Cannot parse access token",
            ));
        };
        if let Some(subcode) = entry.revoked {
            return Err(graph_error(
                400,
                190,
                subcode,
                "Error validating access token: The user has not authorized application.",
            ));
        }
        if entry.expires_at <= Utc::now() {
            return Err(graph_error(
                400,
                190,
                Some(463),
                "Error validating access token: Session has expired.",
            ));
        }
        Ok(entry.user_id.clone())
    }

    fn publish(
        &mut self,
        user_id: &str,
        container: Option<&str>,
        caption: &str,
        image_url: &str,
        alt_text: Option<&str>,
        at: DateTime<Utc>,
    ) -> String {
        let id = self.id();
        self.media.insert(
            id.clone(),
            FakeIgMedia {
                id: id.clone(),
                user_id: user_id.to_string(),
                container_id: container.map(str::to_string),
                caption: caption.to_string(),
                image_url: image_url.to_string(),
                alt_text: alt_text.map(str::to_string),
                timestamp: at,
                permalink: format!("https://www.instagram.com/p/{}/", random_token(11)),
            },
        );
        self.media_order.push(id.clone());
        id
    }

    /// Media of `user_id` in the last 24 h.
    fn quota_usage(&self, user_id: &str) -> u64 {
        let since = Utc::now() - chrono::Duration::seconds(QUOTA_DURATION);
        self.media
            .values()
            .filter(|m| m.user_id == user_id && m.timestamp > since)
            .count() as u64
    }

    fn write_fault(&mut self) -> Option<HttpResponse> {
        injected_failure(&mut self.faults.fail).or_else(|| injected_error(&mut self.error))
    }

    fn media_json(&self, m: &FakeIgMedia, params: &HashMap<String, String>) -> Value {
        let mut v = json!({"id": m.id});
        if wants(params, "caption") {
            v["caption"] = json!(m.caption);
        }
        if wants(params, "timestamp") {
            v["timestamp"] = json!(graph_time(m.timestamp));
        }
        if wants(params, "permalink") {
            v["permalink"] = json!(m.permalink);
        }
        if wants(params, "media_type") {
            v["media_type"] = json!("IMAGE");
        }
        if wants(params, "media_url") {
            v["media_url"] = json!(m.image_url);
        }
        if wants(params, "alt_text") {
            v["alt_text"] = json!(m.alt_text);
        }
        if wants(params, "comments_count") {
            v["comments_count"] = json!(self.comments_count(&m.id));
        }
        v
    }

    /// The user id of the member of the public named `username`.
    fn public_user(&mut self, username: &str) -> String {
        if let Some(id) = self.publics.get(username) {
            return id.clone();
        }
        let id = self.id();
        self.publics.insert(username.to_string(), id.clone());
        id
    }

    /// Store a comment (a reply when `parent` is set) made now; its id.
    fn comment(
        &mut self,
        media_id: &str,
        parent: Option<String>,
        user_id: &str,
        username: &str,
        text: &str,
    ) -> String {
        let id = self.id();
        self.comments.insert(
            id.clone(),
            FakeIgComment {
                id: id.clone(),
                media_id: media_id.to_string(),
                parent_comment: parent,
                user_id: user_id.to_string(),
                username: username.to_string(),
                text: text.to_string(),
                timestamp: Utc::now(),
                deleted: false,
            },
        );
        self.comment_order.push(id.clone());
        id
    }

    /// A comment's fields (all of them, as the fake does not trim); a
    /// reply has `parent_id`.
    fn comment_json(&self, c: &FakeIgComment) -> Value {
        let mut v = json!({
            "id": c.id,
            "text": c.text,
            "timestamp": graph_time(c.timestamp),
            "username": c.username,
            "from": {"id": c.user_id, "username": c.username},
        });
        if let Some(parent) = &c.parent_comment {
            v["parent_id"] = json!(parent);
        }
        v
    }

    /// Comments made on `media_id` (`None`) or replies to the comment
    /// `parent`: every id in creation order, deleted ones included.
    fn thread(&self, media_id: &str, parent: Option<&str>) -> Vec<String> {
        self.comment_order
            .iter()
            .filter_map(|id| self.comments.get(id))
            .filter(|c| c.media_id == media_id && c.parent_comment.as_deref() == parent)
            .map(|c| c.id.clone())
            .collect()
    }

    /// The live comments and replies on a media (`comments_count`).
    fn comments_count(&self, media_id: &str) -> usize {
        self.comments
            .values()
            .filter(|c| c.media_id == media_id && !c.deleted)
            .count()
    }

    /// A comment with the `replies{…}` field expanded: its first page of
    /// replies (oldest first) and, when more follow, `paging.next` to
    /// `/{comment}/replies`.
    fn comment_with_replies(
        &self,
        base: &str,
        c: &FakeIgComment,
        params: &HashMap<String, String>,
    ) -> Value {
        let mut v = self.comment_json(c);
        if !wants(params, "replies") {
            return v;
        }
        let ids = self.thread(&c.media_id, Some(&c.id));
        let live: Vec<&FakeIgComment> = ids
            .iter()
            .filter_map(|id| self.comments.get(id))
            .filter(|r| !r.deleted)
            .collect();
        let limit = page_limit(&HashMap::new(), self.page_size);
        let page: Vec<&FakeIgComment> = live.iter().take(limit).copied().collect();
        let mut replies = json!({
            "data": page.iter().map(|r| self.comment_json(r)).collect::<Vec<_>>(),
        });
        if let (Some(first), Some(last)) = (page.first(), page.last()) {
            replies["paging"] = json!({"cursors": {
                "before": cursor_of(&first.id),
                "after": cursor_of(&last.id),
            }});
            if live.len() > page.len() {
                let mut query = vec![
                    ("fields".to_string(), inner_fields(params, "replies")),
                    ("after".to_string(), cursor_of(&last.id)),
                ];
                if let Some(token) = params.get("access_token") {
                    query.push(("access_token".to_string(), token.clone()));
                }
                let query = serde_urlencoded::to_string(&query).unwrap_or_default();
                replies["paging"]["next"] = json!(format!("{base}/{}/replies?{query}", c.id));
            }
        }
        v["replies"] = replies;
        v
    }
}

// ---------------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------------

/// The sub-fields asked for `field` in a `fields` list (`replies{id,text}`
/// → `id,text`); `id` when none are named.
fn inner_fields(params: &HashMap<String, String>, field: &str) -> String {
    let fields = params.get("fields").map(String::as_str).unwrap_or("");
    let prefix = format!("{field}{{");
    fields
        .find(&prefix)
        .map(|start| &fields[start + prefix.len()..])
        .and_then(|rest| rest.split_once('}'))
        .map(|(inner, _)| inner.to_string())
        .filter(|inner| !inner.is_empty())
        .unwrap_or_else(|| "id".into())
}

/// The error shape of `api.instagram.com/oauth/access_token`.
fn oauth_error(message: &str) -> HttpResponse {
    HttpResponse::BadRequest()
        .json(json!({"error_type": "OAuthException", "code": 400, "error_message": message}))
}

async fn handle(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let segs = segments(req.path());
    let params = params(&req, &body);
    let base = shared.base_url.clone();
    let mut state = shared.lock();
    *state
        .requests
        .entry(format!("/{}", segs.join("/")))
        .or_default() += 1;
    let method = req.method().as_str().to_string();
    let seg: Vec<&str> = segs.iter().map(String::as_str).collect();
    match (method.as_str(), seg.as_slice()) {
        ("GET", ["oauth", "authorize"]) => authorize(&mut state, &params),
        ("POST", ["oauth", "access_token"]) => code_exchange(&mut state, &params),
        ("GET", ["access_token"]) => {
            if params.get("grant_type").map(String::as_str) != Some("ig_exchange_token") {
                return graph_error(400, 100, None, "Unsupported grant_type");
            }
            if params.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET) {
                return graph_error(
                    400,
                    101,
                    None,
                    "Error validating application. Invalid application secret.",
                );
            }
            let user_id = match state.check(params.get("access_token").map(String::as_str)) {
                Ok(u) => u,
                Err(response) => return response,
            };
            let token = state.issue(&user_id, true);
            HttpResponse::Ok().json(json!({"access_token": token, "token_type": "bearer", "expires_in": LONG_LIVED_SECONDS}))
        }
        ("GET", ["refresh_access_token"]) => {
            if params.get("grant_type").map(String::as_str) != Some("ig_refresh_token") {
                return graph_error(400, 100, None, "Unsupported grant_type");
            }
            let old = params.get("access_token").cloned().unwrap_or_default();
            let user_id = match state.check(Some(&old)) {
                Ok(u) => u,
                Err(response) => return response,
            };
            let entry = state.tokens.get(&old).expect("checked");
            if !entry.long_lived {
                return graph_error(400, 100, None, "Only long-lived tokens can be refreshed");
            }
            if Utc::now() - entry.issued_at < chrono::Duration::hours(24) {
                return graph_error(
                    400,
                    100,
                    None,
                    "The access token is less than 24 hours old and cannot be refreshed yet",
                );
            }
            let token = state.issue(&user_id, true);
            HttpResponse::Ok().json(json!({"access_token": token, "token_type": "bearer", "expires_in": LONG_LIVED_SECONDS}))
        }
        _ => {
            let user = match state.check(token(&req, &params).as_deref()) {
                Ok(u) => u,
                Err(response) => return response,
            };
            api(&mut state, &base, &req, &method, &seg, &params, &user)
        }
    }
}

fn authorize(state: &mut State, params: &HashMap<String, String>) -> HttpResponse {
    if params.get("client_id").map(String::as_str) != Some(CLIENT_ID) {
        return HttpResponse::BadRequest().body("Invalid platform app");
    }
    let Some(redirect_uri) = params.get("redirect_uri").filter(|r| r.starts_with("http")) else {
        return HttpResponse::BadRequest().body("Invalid redirect_uri");
    };
    if params.get("response_type").map(String::as_str) != Some("code") {
        return HttpResponse::BadRequest().body("response_type must be code");
    }
    let Some(user_id) = state.login_user.clone() else {
        return HttpResponse::BadRequest().body("no account to log in (add_account first)");
    };
    let code = random_token(40);
    state.codes.insert(
        code.clone(),
        CodeEntry {
            user_id,
            redirect_uri: redirect_uri.clone(),
            issued: Instant::now(),
        },
    );
    let mut location = url::Url::parse(redirect_uri).expect("checked above");
    location.query_pairs_mut().append_pair("code", &code);
    if let Some(s) = params.get("state") {
        location.query_pairs_mut().append_pair("state", s);
    }
    HttpResponse::Found()
        .insert_header(("Location", location.to_string()))
        .finish()
}

fn code_exchange(state: &mut State, params: &HashMap<String, String>) -> HttpResponse {
    if params.get("client_id").map(String::as_str) != Some(CLIENT_ID)
        || params.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET)
    {
        return oauth_error("Invalid platform app");
    }
    if params.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return oauth_error("Unsupported grant_type");
    }
    // Instagram appends `#_` to codes in the redirect; accept it either way.
    let code = params
        .get("code")
        .map(|c| c.trim_end_matches("#_").to_string())
        .unwrap_or_default();
    let Some(entry) = state.codes.remove(&code) else {
        return oauth_error("This authorization code has been used");
    };
    if entry.issued.elapsed() > CODE_TTL {
        return oauth_error("This authorization code has expired");
    }
    if params.get("redirect_uri") != Some(&entry.redirect_uri) {
        return oauth_error("Error validating verification code. Please make sure your redirect_uri is identical to the one you used in the OAuth dialog request");
    }
    let token = state.issue(&entry.user_id, false);
    let user_id: u64 = entry.user_id.parse().unwrap_or(0);
    HttpResponse::Ok().json(json!({
        "access_token": token,
        "user_id": user_id,
        "permissions": "instagram_business_basic,instagram_business_content_publish,instagram_business_manage_comments",
    }))
}

fn api(
    state: &mut State,
    base: &str,
    req: &HttpRequest,
    method: &str,
    seg: &[&str],
    params: &HashMap<String, String>,
    user: &str,
) -> HttpResponse {
    if method == "POST" {
        if let Some(fault) = state.write_fault() {
            return fault;
        }
    }
    let text = |name: &str| {
        params
            .get(name)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    };
    let not_yours = || {
        graph_error(
            403,
            10,
            None,
            "(#10) Application does not have permission for this action",
        )
    };
    match (method, seg) {
        ("GET", ["me"]) => {
            let username = state.accounts.get(user).cloned().unwrap_or_default();
            let app_scoped = format!("{}", user.parse::<u64>().unwrap_or(0) / 3);
            HttpResponse::Ok()
                .json(json!({"id": app_scoped, "user_id": user, "username": username}))
        }
        ("POST", [owner, "media"]) => {
            if *owner != user {
                return not_yours();
            }
            let Some(image_url) = text("image_url") else {
                return graph_error(
                    400,
                    100,
                    Some(2207052),
                    "The media could not be fetched from this URI: image_url is required",
                );
            };
            let caption = text("caption").unwrap_or("");
            if caption.chars().count() > 2200 {
                return graph_error(
                    400,
                    100,
                    None,
                    "The caption is too long (at most 2,200 characters)",
                );
            }
            let id = state.id();
            let final_status = if state.container_failures.0 > 0 {
                state.container_failures.0 -= 1;
                state.container_failures.1.clone()
            } else {
                "FINISHED".to_string()
            };
            let polls = state.in_progress_polls;
            let status_code = if polls == 0 {
                final_status.clone()
            } else {
                "IN_PROGRESS".into()
            };
            state.pending.insert(id.clone(), (polls, final_status));
            state.containers.insert(
                id.clone(),
                FakeIgContainer {
                    id: id.clone(),
                    user_id: user.to_string(),
                    image_url: image_url.to_string(),
                    caption: caption.to_string(),
                    alt_text: text("alt_text").map(str::to_string),
                    status_code,
                    polls: 0,
                },
            );
            state.container_order.push(id.clone());
            HttpResponse::Ok().json(json!({"id": id}))
        }
        ("POST", [owner, "media_publish"]) => {
            if *owner != user {
                return not_yours();
            }
            let creation = text("creation_id").unwrap_or("").to_string();
            let Some(container) = state
                .containers
                .get(&creation)
                .filter(|c| c.user_id == user)
                .cloned()
            else {
                return no_object(&creation);
            };
            match container.status_code.as_str() {
                "FINISHED" => {}
                "IN_PROGRESS" => return graph_error(400, 9007, Some(2207027), "Media ID is not available: the media is not ready for publishing, please wait for a moment"),
                "PUBLISHED" => return graph_error(400, 9007, Some(2207006), "The media has already been published"),
                other => return graph_error(400, 9007, Some(2207001), &format!("The container is {other}")),
            }
            let forced = state.cap > 0;
            if forced {
                state.cap -= 1;
            }
            if forced || state.quota_usage(user) >= state.quota_total {
                return graph_error(400, 9, Some(2207042), "Application request limit reached: you reached the maximum number of posts that can be published in 24 hours");
            }
            let id = state.publish(
                user,
                Some(&creation),
                &container.caption,
                &container.image_url,
                container.alt_text.as_deref(),
                Utc::now(),
            );
            if let Some(c) = state.containers.get_mut(&creation) {
                c.status_code = "PUBLISHED".into();
            }
            if state.faults.drop_after_store.take().is_some() {
                return dropped("fake Instagram");
            }
            HttpResponse::Ok().json(json!({"id": id}))
        }
        ("GET", [owner, "media"]) => {
            if *owner != user {
                return not_yours();
            }
            let items: Vec<Value> = state
                .media_order
                .iter()
                .rev()
                .filter_map(|id| state.media.get(id))
                .filter(|m| m.user_id == user)
                .map(|m| state.media_json(m, params))
                .collect();
            HttpResponse::Ok().json(paged(base, req, params, items, state.page_size))
        }
        ("GET", [owner, "content_publishing_limit"]) => {
            if *owner != user {
                return not_yours();
            }
            let mut entry = json!({"quota_usage": state.quota_usage(user)});
            if wants(params, "config") {
                entry["config"] =
                    json!({"quota_total": state.quota_total, "quota_duration": QUOTA_DURATION});
            }
            HttpResponse::Ok().json(json!({"data": [entry]}))
        }
        ("POST", [object, edge @ ("comments" | "replies")]) => {
            let Some(message) = text("message") else {
                return graph_error(400, 100, None, "(#100) The parameter message is required");
            };
            let (media_id, parent) = if *edge == "comments" {
                match state.media.get(*object) {
                    Some(m) => (m.id.clone(), None),
                    None => return no_object(object),
                }
            } else {
                match state.comments.get(*object).filter(|c| !c.deleted) {
                    // Threads are one level deep: answer the comment a
                    // reply belongs to.
                    Some(c) if c.parent_comment.is_some() => {
                        return graph_error(
                            400,
                            100,
                            None,
                            "(#100) Replies can only be made to top-level comments",
                        )
                    }
                    Some(c) => (c.media_id.clone(), Some(c.id.clone())),
                    None => return no_object(object),
                }
            };
            let username = state.accounts.get(user).cloned().unwrap_or_default();
            let id = state.comment(&media_id, parent, user, &username, message);
            if state.faults.drop_after_store.take().is_some() {
                return dropped("fake Instagram");
            }
            HttpResponse::Ok().json(json!({"id": id}))
        }
        ("GET", [object, edge @ ("comments" | "replies")]) => {
            if let Some(fault) = state.read_faults.take("instagram") {
                return fault;
            }
            // A media's comments come newest first, a comment's replies
            // oldest first (platforms.md §6.6 does not say; [?]).
            let order: Vec<String> = if *edge == "comments" && state.media.contains_key(*object) {
                let mut ids = state.thread(object, None);
                ids.reverse();
                ids
            } else if let Some(c) = state.comments.get(*object).filter(|c| !c.deleted) {
                let media_id = c.media_id.clone();
                state.thread(&media_id, Some(object))
            } else {
                return no_object(object);
            };
            let show = |id: &str| {
                state
                    .comments
                    .get(id)
                    .filter(|c| !c.deleted)
                    .map(|c| state.comment_with_replies(base, c, params))
            };
            match paged_by_id(base, req, params, &order, show, state.page_size) {
                Ok(body) => HttpResponse::Ok().json(body),
                Err(response) => response,
            }
        }
        ("GET", [object]) => {
            if let Some(c) = state.containers.get_mut(*object) {
                c.polls += 1;
                // The first `n` reads answer IN_PROGRESS, then the final status.
                if let Some((left, final_status)) = state.pending.get_mut(*object) {
                    if *left > 0 {
                        *left -= 1;
                    } else if c.status_code == "IN_PROGRESS" {
                        c.status_code = final_status.clone();
                    }
                }
                let c = c.clone();
                let mut v = json!({"id": c.id, "status_code": c.status_code});
                if wants(params, "status") {
                    v["status"] = json!(match c.status_code.as_str() {
                        "ERROR" => "Error: the image could not be processed (2207003)",
                        "EXPIRED" => "Expired: the container was not published within 24 hours",
                        "IN_PROGRESS" => "In progress",
                        "PUBLISHED" => "Published",
                        _ => "Finished",
                    });
                }
                return HttpResponse::Ok().json(v);
            }
            if state.media.contains_key(*object) && wants(params, "comments_count") {
                if let Some(fault) = state.read_faults.take("instagram") {
                    return fault;
                }
            }
            if let Some(m) = state.media.get(*object) {
                return HttpResponse::Ok().json(state.media_json(m, params));
            }
            if let Some(c) = state.comments.get(*object).filter(|c| !c.deleted) {
                return HttpResponse::Ok().json(state.comment_json(c));
            }
            no_object(object)
        }
        ("DELETE", [object]) => {
            if state.media.contains_key(*object) {
                return graph_error(400, 100, None, "Unsupported delete request.");
            }
            let Some(c) = state.comments.get_mut(*object).filter(|c| !c.deleted) else {
                return no_object(object);
            };
            if c.user_id != user {
                return not_yours();
            }
            c.deleted = true;
            HttpResponse::Ok().json(json!({"success": true}))
        }
        _ => graph_error(400, 100, None, &format!("Unsupported {method} request.")),
    }
}
