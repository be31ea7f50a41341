//! A fake Threads API (shared/platforms.md §7) on a loopback port, with
//! fault injection. One server plays both hosts: the authorize page
//! (`threads.net`) and the Graph API (`graph.threads.net`).
//!
//! Served:
//! - `GET /oauth/authorize` (auto-approves: 302 to `redirect_uri?code&state`
//!   after checking `client_id`, `redirect_uri`, `response_type=code`);
//! - `POST /oauth/access_token` (form: `client_id`, `client_secret`, `code`,
//!   `grant_type=authorization_code`, `redirect_uri`; codes single-use, 10 min)
//!   → `{access_token, user_id}` (short-lived, 1 h);
//! - `GET /access_token?grant_type=th_exchange_token&client_secret&access_token`
//!   → `{access_token, token_type:"bearer", expires_in:5184000}`;
//! - `GET /refresh_access_token?grant_type=th_refresh_token&access_token`
//!   (long-lived, ≥ 24 h old, unexpired) → a new 60-day token;
//! - `GET /v1.0/me`, `GET /v1.0/{id}` (user, container `status,error_message`,
//!   or media `id,text,permalink,timestamp,replied_to,…`; `fields` honoured);
//! - `POST /v1.0/{user}/threads` (container: `media_type` TEXT/IMAGE,
//!   `text` ≤ 500 with emoji as UTF-8 bytes, ≤ 5 unique links
//!   (`THREADS_API__LINK_LIMIT_EXCEEDED`), `image_url`, `alt_text`,
//!   `reply_to_id`), `POST /v1.0/{user}/threads_publish` (`creation_id`;
//!   250 posts and 1,000 replies per rolling 24 h);
//! - `GET /v1.0/{user}/threads` and `/replies` (newest first; `since`,
//!   `until`, `limit` ≤ 100, cursor `after`; `paging.cursors` and `next`);
//! - `GET /v1.0/{media}/conversation` (every reply under a post, any
//!   depth, flat) and `GET /v1.0/{media}/replies` (the replies made to it):
//!   `reverse` (default `true`, newest first; `false`: oldest first), `fields`,
//!   `limit`, opaque `after`/`before` cursors naming a reply (they keep their
//!   place as replies come and go), `paging.next` when more follow;
//! - `GET /v1.0/{user}/threads_publishing_limit`;
//! - `DELETE /v1.0/{media}` → `{"success":true,"deleted_id"}` (100 a day).
//!
//! Parameters are read from the query and the form body (merged, as Graph
//! does); the token from `access_token` or `Authorization: Bearer`. Errors
//! use Graph's envelope `{"error":{message,type,code,error_subcode,fbtrace_id}}`:
//! bad or expired token 190 (expired: subcode 463; revoked: 460), missing
//! object 100/33, over a cap code 9 / subcode 2207042 (the Instagram
//! publishing-limit shape; Threads does not document its own).
//!
//! Public API: [`FakeThreads::start`] / [`FakeThreads::start_with`],
//! [`FakeThreads::base_url`], [`FakeThreads::client_id`] /
//! [`FakeThreads::client_secret`], [`FakeThreads::add_user`] (a user with a
//! long-lived token), [`FakeThreads::issue_token`], [`FakeThreads::age_token`],
//! [`FakeThreads::expire_token`], [`FakeThreads::revoke`]; faults
//! [`FakeThreads::fail_next`], [`FakeThreads::rate_limit_next`],
//! [`FakeThreads::drop_after_store_next`], [`FakeThreads::fail_containers_next`],
//! [`FakeThreads::set_processing_time`], [`FakeThreads::seed_post`]; the
//! public: [`FakeThreads::add_reply`]`(parent, username, text)` (a reply from
//! another user to a post or a reply; returns its id); reply reads:
//! [`FakeThreads::set_page_size`] (caps every list page, 100 by default),
//! [`FakeThreads::fail_reads_next`] (code 2), [`FakeThreads::rate_limit_reads_next`]
//! (a throttle code with the usage header); inspection
//! [`FakeThreads::posts`], [`FakeThreads::containers`],
//! [`FakeThreads::publish_requests`], [`FakeThreads::requests_to`].

// Handlers answer refusals with a ready `HttpResponse` (as the other fakes do).
#![allow(clippy::result_large_err)]

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use crate::fakes::facebook::{paged_by_id, ReadFaults};
use crate::fakes::server::{bearer, dropped, random_token, FakeServer, Faults, Next};
use crate::platforms::text::{threads_length, web_link_ranges, THREADS_MAX_LINKS};

const SHORT_LIVED: i64 = 3600;
const LONG_LIVED: i64 = 5_184_000;
const CODE_LIFE: i64 = 600;
const CONTAINER_LIFE: i64 = 86_400;
const MAX_TEXT: usize = 500;

/// Settings of a [`FakeThreads`].
#[derive(Debug, Clone)]
pub struct FakeThreadsConfig {
    pub client_id: String,
    pub client_secret: String,
    /// Posts per rolling window (Threads: 250).
    pub post_quota: u64,
    /// Replies per rolling window (Threads: 1,000).
    pub reply_quota: u64,
    /// Deletes per rolling window (Threads: 100).
    pub delete_quota: u64,
    /// The rolling window (Threads: 24 hours).
    pub quota_window: Duration,
    pub workers: usize,
}

impl Default for FakeThreadsConfig {
    fn default() -> Self {
        Self {
            client_id: "threads-app-id".into(),
            client_secret: "threads-app-secret".into(),
            post_quota: 250,
            reply_quota: 1000,
            delete_quota: 100,
            quota_window: Duration::from_secs(86_400),
            workers: 2,
        }
    }
}

/// A published post, as the fake stored it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeThreadsPost {
    pub id: String,
    pub user_id: String,
    pub username: String,
    pub text: String,
    /// `TEXT_POST` or `IMAGE`.
    pub media_type: String,
    pub image_url: Option<String>,
    pub alt_text: Option<String>,
    /// The media this one replies to.
    pub reply_to_id: Option<String>,
    pub container_id: String,
    pub permalink: String,
    pub published_at: DateTime<Utc>,
    pub deleted: bool,
}

/// A user created with [`FakeThreads::add_user`].
#[derive(Debug, Clone)]
pub struct FakeThreadsUser {
    pub user_id: String,
    pub username: String,
    /// A long-lived token, issued now, valid 60 days.
    pub token: String,
}

/// A running fake; stops when dropped.
pub struct FakeThreads {
    shared: Arc<Shared>,
    server: FakeServer,
}

impl FakeThreads {
    pub async fn start() -> FakeThreads {
        Self::start_with(FakeThreadsConfig::default()).await
    }

    pub async fn start_with(config: FakeThreadsConfig) -> FakeThreads {
        let workers = config.workers;
        let port = FakeServer::bind("fake-threads");
        let shared = Arc::new(Shared {
            base_url: port.base_url(),
            state: Mutex::new(State::new(config)),
        });
        let server = port
            .serve(workers, shared.clone(), 1 << 20, |app| {
                app.route("/oauth/authorize", web::get().to(authorize))
                    .route("/oauth/access_token", web::post().to(code_token))
                    .route("/access_token", web::get().to(exchange_token))
                    .route("/refresh_access_token", web::get().to(refresh_token))
                    .route("/v1.0/{id}", web::get().to(get_object))
                    .route("/v1.0/{id}", web::delete().to(delete_object))
                    .route("/v1.0/{user}/threads", web::post().to(create_container))
                    .route("/v1.0/{user}/threads", web::get().to(list_threads))
                    .route("/v1.0/{user}/replies", web::get().to(list_replies))
                    .route("/v1.0/{id}/conversation", web::get().to(conversation))
                    .route(
                        "/v1.0/{user}/threads_publish",
                        web::post().to(publish_container),
                    )
                    .route(
                        "/v1.0/{user}/threads_publishing_limit",
                        web::get().to(publishing_limit),
                    )
                    .default_service(web::to(not_found));
            })
            .await;
        FakeThreads { shared, server }
    }

    /// `http://127.0.0.1:PORT`: use it as the API, auth and token base.
    pub fn base_url(&self) -> String {
        self.server.base_url().to_string()
    }

    pub fn client_id(&self) -> String {
        self.shared.lock().config.client_id.clone()
    }

    pub fn client_secret(&self) -> String {
        self.shared.lock().config.client_secret.clone()
    }

    /// Create a user with a long-lived token issued now (60 days). The
    /// authorize page approves as the most recently added user.
    pub fn add_user(&self, username: &str) -> FakeThreadsUser {
        let mut state = self.shared.lock();
        let id = state.next_id();
        state.users.insert(
            id,
            User {
                username: username.to_string(),
                posts: VecDeque::new(),
                replies: VecDeque::new(),
                deletes: VecDeque::new(),
                media: Vec::new(),
            },
        );
        state.approving_user = Some(id);
        let token = state.new_token(id, TokenKind::Long, Utc::now(), LONG_LIVED);
        FakeThreadsUser {
            user_id: id.to_string(),
            username: username.to_string(),
            token,
        }
    }

    /// A new long-lived token for `user_id`, issued `age` ago, valid for `lifetime` from issue.
    pub fn issue_token(&self, user_id: &str, age: Duration, lifetime: Duration) -> Option<String> {
        let mut state = self.shared.lock();
        let id = user_id
            .parse()
            .ok()
            .filter(|id| state.users.contains_key(id))?;
        let issued = Utc::now() - chrono::Duration::from_std(age).ok()?;
        Some(state.new_token(id, TokenKind::Long, issued, lifetime.as_secs() as i64))
    }

    /// Make `token` look `by` older (issued and expiring earlier).
    pub fn age_token(&self, token: &str, by: Duration) {
        let by = chrono::Duration::from_std(by).unwrap_or_default();
        if let Some(t) = self.shared.lock().tokens.get_mut(token) {
            t.issued_at -= by;
            t.expires_at -= by;
        }
    }

    /// `token` expires now (190/463 from then on).
    pub fn expire_token(&self, token: &str) {
        if let Some(t) = self.shared.lock().tokens.get_mut(token) {
            t.expires_at = Utc::now() - chrono::Duration::seconds(1);
        }
    }

    /// `token` is invalidated (190/460), as after a password change.
    pub fn revoke(&self, token: &str) {
        if let Some(t) = self.shared.lock().tokens.get_mut(token) {
            t.revoked = true;
        }
    }

    /// When `token` expires, if the fake knows it.
    pub fn token_expires_at(&self, token: &str) -> Option<DateTime<Utc>> {
        self.shared.lock().tokens.get(token).map(|t| t.expires_at)
    }

    /// The next `n` `threads_publish` calls fail with HTTP `status` (Graph
    /// code 2, `is_transient`) and publish nothing.
    pub fn fail_next(&self, n: usize, status: u16) {
        self.shared.lock().faults.fail.arm(n, status);
    }

    /// The next `n` `threads_publish` calls are throttled: HTTP 400 with
    /// Graph `code` (4, 17, 32, 613…) and, when `regain_minutes` is set, an
    /// `X-Business-Use-Case-Usage` header with `estimated_time_to_regain_access`.
    pub fn rate_limit_next(&self, n: usize, code: i64, regain_minutes: Option<u64>) {
        self.shared
            .lock()
            .faults
            .rate_limit
            .arm(n, (code, regain_minutes));
    }

    /// The next `n` `threads_publish` calls publish, then drop the connection.
    pub fn drop_after_store_next(&self, n: usize) {
        self.shared.lock().faults.drop_after_store.arm(n, ());
    }

    /// The next `n` containers end in `ERROR` with `error_message`.
    pub fn fail_containers_next(&self, n: usize, error_message: &str) {
        self.shared
            .lock()
            .fail_containers
            .arm(n, error_message.to_string());
    }

    /// IMAGE containers stay `IN_PROGRESS` this long (TEXT ones are ready at once).
    pub fn set_processing_time(&self, time: Duration) {
        self.shared.lock().processing = chrono::Duration::from_std(time).unwrap_or_default();
    }

    /// Add a published post (or reply, with `reply_to`) for the user of
    /// `token`, as if made at `at` (it counts in the rolling window).
    pub fn seed_post(
        &self,
        token: &str,
        text: &str,
        reply_to: Option<&str>,
        at: DateTime<Utc>,
    ) -> Option<String> {
        let mut state = self.shared.lock();
        let user = state.tokens.get(token)?.user_id;
        let container = state.next_id();
        let params = Params::from([
            ("media_type".to_string(), "TEXT".to_string()),
            ("text".to_string(), text.to_string()),
        ]);
        let mut params = params;
        if let Some(parent) = reply_to {
            params.insert("reply_to_id".into(), parent.to_string());
        }
        state
            .containers
            .insert(container, Container::new(user, &params, at, at, None));
        Some(state.publish(container, at).to_string())
    }

    /// A member of the public (`username`) replies to the post or reply
    /// `parent`, now. Returns the new reply's media id.
    ///
    /// # Panics
    /// When `parent` is not a live post of this fake.
    pub fn add_reply(&self, parent: &str, username: &str, text: &str) -> String {
        let mut state = self.shared.lock();
        let exists = parent
            .parse::<u64>()
            .ok()
            .and_then(|id| state.media.get(&id))
            .is_some_and(|m| !m.fake.deleted);
        if !exists {
            panic!("add_reply: the fake has no post {parent}");
        }
        let user = state.user_named(username);
        let container = state.next_id();
        let params = Params::from([
            ("media_type".to_string(), "TEXT".to_string()),
            ("text".to_string(), text.to_string()),
            ("reply_to_id".to_string(), parent.to_string()),
        ]);
        let now = Utc::now();
        state
            .containers
            .insert(container, Container::new(user, &params, now, now, None));
        state.publish(container, now).to_string()
    }

    /// Lists answer at most `n` items a page, whatever `limit` asks.
    pub fn set_page_size(&self, n: usize) {
        self.shared.lock().page_size = n.max(1);
    }

    /// The next `n` reply reads (`/{media}/conversation`, `/{media}/replies`)
    /// answer `status` with Graph code 2 (transient).
    pub fn fail_reads_next(&self, n: usize, status: u16) {
        self.shared.lock().read_faults.fail.arm(n, status);
    }

    /// The next `n` reply reads are throttled: HTTP 400 with Graph `code`
    /// (4, 17, 32, 613…) and an `X-Business-Use-Case-Usage` header saying
    /// access comes back in `regain_minutes` (none when 0).
    pub fn rate_limit_reads_next(&self, n: usize, code: i64, regain_minutes: u64) {
        self.shared
            .lock()
            .read_faults
            .rate_limit
            .arm(n, (code, regain_minutes));
    }

    /// Every published post, oldest first (deleted ones flagged).
    pub fn posts(&self) -> Vec<FakeThreadsPost> {
        let state = self.shared.lock();
        state
            .media_order
            .iter()
            .filter_map(|id| state.media.get(id))
            .map(|m| m.fake.clone())
            .collect()
    }

    /// Containers created (published or not).
    pub fn containers(&self) -> usize {
        self.shared.lock().containers.len()
    }

    /// `threads_publish` calls received, failed ones included.
    pub fn publish_requests(&self) -> usize {
        self.shared.lock().publish_requests
    }

    /// Requests whose path starts with `prefix`.
    pub fn requests_to(&self, prefix: &str) -> usize {
        let state = self.shared.lock();
        state
            .requests
            .iter()
            .filter(|(p, _)| p.starts_with(prefix))
            .map(|(_, n)| n)
            .sum()
    }
}

// ---------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------

type Params = HashMap<String, String>;

struct Shared {
    base_url: String,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum TokenKind {
    Short,
    Long,
}

struct Token {
    user_id: u64,
    kind: TokenKind,
    issued_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    revoked: bool,
}

struct User {
    username: String,
    /// Publish times in the rolling windows (oldest first).
    posts: VecDeque<DateTime<Utc>>,
    replies: VecDeque<DateTime<Utc>>,
    deletes: VecDeque<DateTime<Utc>>,
    /// Ids of the user's media, ascending.
    media: Vec<u64>,
}

struct Code {
    client_id: String,
    redirect_uri: String,
    user_id: u64,
    expires_at: DateTime<Utc>,
}

struct Container {
    user_id: u64,
    media_type: String,
    text: String,
    image_url: Option<String>,
    alt_text: Option<String>,
    reply_to: Option<u64>,
    created_at: DateTime<Utc>,
    ready_at: DateTime<Utc>,
    error: Option<String>,
    published: Option<u64>,
}

impl Container {
    fn new(
        user_id: u64,
        params: &Params,
        now: DateTime<Utc>,
        ready_at: DateTime<Utc>,
        error: Option<String>,
    ) -> Self {
        Self {
            user_id,
            media_type: params.get("media_type").cloned().unwrap_or_default(),
            text: params.get("text").cloned().unwrap_or_default(),
            image_url: params.get("image_url").cloned(),
            alt_text: params.get("alt_text").cloned().filter(|a| !a.is_empty()),
            reply_to: params.get("reply_to_id").and_then(|r| r.parse().ok()),
            created_at: now,
            ready_at,
            error,
            published: None,
        }
    }

    fn status(&self, now: DateTime<Utc>) -> &'static str {
        if self.published.is_some() {
            "PUBLISHED"
        } else if self.error.is_some() {
            "ERROR"
        } else if now - self.created_at > chrono::Duration::seconds(CONTAINER_LIFE) {
            "EXPIRED"
        } else if now < self.ready_at {
            "IN_PROGRESS"
        } else {
            "FINISHED"
        }
    }
}

struct Media {
    fake: FakeThreadsPost,
    shortcode: String,
}

struct State {
    config: FakeThreadsConfig,
    next: u64,
    processing: chrono::Duration,
    approving_user: Option<u64>,
    tokens: HashMap<String, Token>,
    codes: HashMap<String, Code>,
    users: HashMap<u64, User>,
    containers: HashMap<u64, Container>,
    media: HashMap<u64, Media>,
    media_order: Vec<u64>,
    /// The rate limit: (error code, minutes to regain access).
    faults: Faults<(i64, Option<u64>)>,
    /// Containers still to end in `ERROR`, with this message.
    fail_containers: Next<String>,
    publish_requests: usize,
    requests: HashMap<String, usize>,
    /// Largest page a list answers (see `set_page_size`).
    page_size: usize,
    read_faults: ReadFaults,
}

/// A Graph error answer.
fn graph_error(status: u16, code: i64, subcode: Option<i64>, message: &str) -> HttpResponse {
    let mut error = json!({
        "message": message,
        "type": if code == 190 { "OAuthException" } else { "THApiException" },
        "code": code,
        "fbtrace_id": random_token(11),
    });
    if let Some(subcode) = subcode {
        error["error_subcode"] = json!(subcode);
    }
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST))
        .json(json!({ "error": error }))
}

fn missing_object(id: &str, verb: &str) -> HttpResponse {
    graph_error(
        400,
        100,
        Some(33),
        &format!(
            "Unsupported {verb} request. Object with ID '{id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation."
        ),
    )
}

/// Query and form body, merged (the query wins, as the first value does).
fn params(req: &HttpRequest, body: &[u8]) -> Params {
    let mut out = Params::new();
    for (k, v) in form_urlencoded::parse(req.query_string().as_bytes()) {
        out.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    let form = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_none_or(|c| c.starts_with("application/x-www-form-urlencoded"));
    if form {
        for (k, v) in form_urlencoded::parse(body) {
            out.entry(k.into_owned()).or_insert_with(|| v.into_owned());
        }
    }
    out
}

fn shortcode(id: u64) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut n = id;
    let mut out = Vec::new();
    while n > 0 {
        out.push(ALPHABET[(n % 64) as usize]);
        n /= 64;
    }
    out.reverse();
    String::from_utf8_lossy(&out).into_owned()
}

fn prune(window: &mut VecDeque<DateTime<Utc>>, since: DateTime<Utc>) {
    while window.front().is_some_and(|t| *t <= since) {
        window.pop_front();
    }
}

/// Threads' count: unique URLs in the text.
fn unique_links(text: &str) -> usize {
    web_link_ranges(text)
        .into_iter()
        .map(|(s, e)| text[s..e].to_ascii_lowercase())
        .collect::<HashSet<_>>()
        .len()
}

impl State {
    fn new(config: FakeThreadsConfig) -> Self {
        Self {
            config,
            next: 17_841_400_000_000_000,
            processing: chrono::Duration::zero(),
            approving_user: None,
            tokens: HashMap::new(),
            codes: HashMap::new(),
            users: HashMap::new(),
            containers: HashMap::new(),
            media: HashMap::new(),
            media_order: Vec::new(),
            faults: Faults::default(),
            fail_containers: Next::default(),
            publish_requests: 0,
            requests: HashMap::new(),
            page_size: 100,
            read_faults: ReadFaults::default(),
        }
    }

    /// The user named `username`, made (without a token) if new.
    fn user_named(&mut self, username: &str) -> u64 {
        if let Some((id, _)) = self.users.iter().find(|(_, u)| u.username == username) {
            return *id;
        }
        let id = self.next_id();
        self.users.insert(
            id,
            User {
                username: username.to_string(),
                posts: VecDeque::new(),
                replies: VecDeque::new(),
                deletes: VecDeque::new(),
                media: Vec::new(),
            },
        );
        id
    }

    fn next_id(&mut self) -> u64 {
        self.next += 1 + (self.next % 7);
        self.next
    }

    fn count(&mut self, req: &HttpRequest) {
        *self.requests.entry(req.path().to_string()).or_default() += 1;
    }

    fn window(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.config.quota_window).unwrap_or(chrono::Duration::days(1))
    }

    fn new_token(
        &mut self,
        user_id: u64,
        kind: TokenKind,
        issued_at: DateTime<Utc>,
        life: i64,
    ) -> String {
        let prefix = if kind == TokenKind::Short {
            "THS"
        } else {
            "THL"
        };
        let token = format!("{prefix}{}", random_token(40));
        self.tokens.insert(
            token.clone(),
            Token {
                user_id,
                kind,
                issued_at,
                expires_at: issued_at + chrono::Duration::seconds(life),
                revoked: false,
            },
        );
        token
    }

    /// Check a token: `Ok(user id)` or the Graph error.
    fn check_token(&self, token: Option<&str>) -> Result<u64, HttpResponse> {
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Err(graph_error(
                400,
                2500,
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
        if entry.revoked {
            return Err(graph_error(
                400,
                190,
                Some(460),
                "Error validating access token: The session has been invalidated because the user changed their password.",
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
        Ok(entry.user_id)
    }

    fn authenticate(&self, req: &HttpRequest, params: &Params) -> Result<u64, HttpResponse> {
        let token = params
            .get("access_token")
            .cloned()
            .or_else(|| bearer(req).map(str::to_string));
        self.check_token(token.as_deref())
    }

    /// The path's user (`me` or the token's own id).
    fn path_user(&self, path: &str, token_user: u64) -> Result<u64, HttpResponse> {
        if path == "me" || path.parse::<u64>().ok() == Some(token_user) {
            Ok(token_user)
        } else {
            Err(missing_object(path, "get"))
        }
    }

    fn publish(&mut self, container_id: u64, at: DateTime<Utc>) -> u64 {
        let id = self.next_id();
        let Some(container) = self.containers.get_mut(&container_id) else {
            return id;
        };
        container.published = Some(id);
        let user_id = container.user_id;
        let reply_to = container.reply_to;
        let (text, media_type, image_url, alt_text) = (
            container.text.clone(),
            container.media_type.clone(),
            container.image_url.clone(),
            container.alt_text.clone(),
        );
        let username = self
            .users
            .get(&user_id)
            .map(|u| u.username.clone())
            .unwrap_or_default();
        let code = shortcode(id);
        let fake = FakeThreadsPost {
            id: id.to_string(),
            user_id: user_id.to_string(),
            username: username.clone(),
            text,
            media_type: if media_type == "IMAGE" {
                "IMAGE".into()
            } else {
                "TEXT_POST".into()
            },
            image_url,
            alt_text,
            reply_to_id: reply_to.map(|r| r.to_string()),
            container_id: container_id.to_string(),
            permalink: format!("https://www.threads.net/@{username}/post/{code}"),
            published_at: at,
            deleted: false,
        };
        self.media.insert(
            id,
            Media {
                fake,
                shortcode: code,
            },
        );
        self.media_order.push(id);
        if let Some(user) = self.users.get_mut(&user_id) {
            user.media.push(id);
            if reply_to.is_some() {
                user.replies.push_back(at);
            } else {
                user.posts.push_back(at);
            }
        }
        id
    }

    fn media_json(&self, id: u64, fields: &[&str]) -> Value {
        let Some(m) = self.media.get(&id) else {
            return Value::Null;
        };
        let f = &m.fake;
        let mut full = Map::new();
        full.insert("id".into(), json!(f.id));
        full.insert("media_product_type".into(), json!("THREADS"));
        full.insert("media_type".into(), json!(f.media_type));
        if let Some(url) = &f.image_url {
            full.insert("media_url".into(), json!(url));
        }
        if let Some(alt) = &f.alt_text {
            full.insert("alt_text".into(), json!(alt));
        }
        full.insert("permalink".into(), json!(f.permalink));
        full.insert("owner".into(), json!({"id": f.user_id}));
        full.insert("username".into(), json!(f.username));
        full.insert("text".into(), json!(f.text));
        full.insert(
            "timestamp".into(),
            json!(f.published_at.format("%Y-%m-%dT%H:%M:%S+0000").to_string()),
        );
        full.insert("shortcode".into(), json!(m.shortcode));
        full.insert("is_quote_post".into(), json!(false));
        full.insert("hide_status".into(), json!("NOT_HUSHED"));
        full.insert("is_reply".into(), json!(f.reply_to_id.is_some()));
        if let Some(parent) = &f.reply_to_id {
            full.insert("replied_to".into(), json!({"id": parent}));
            full.insert("root_post".into(), json!({"id": self.root_of(id)}));
        }
        full.insert(
            "has_replies".into(),
            json!(self
                .media
                .values()
                .any(|o| !o.fake.deleted && o.fake.reply_to_id.as_deref() == Some(&f.id))),
        );
        pick(full, fields)
    }

    fn root_of(&self, mut id: u64) -> String {
        for _ in 0..1000 {
            match self
                .media
                .get(&id)
                .and_then(|m| m.fake.reply_to_id.as_deref())
                .and_then(|p| p.parse().ok())
            {
                Some(parent) => id = parent,
                None => break,
            }
        }
        id.to_string()
    }
}

/// The requested fields of `full` (always `id`); everything when none asked.
fn pick(full: Map<String, Value>, fields: &[&str]) -> Value {
    if fields.is_empty() {
        return Value::Object(full);
    }
    let mut out = Map::new();
    for (k, v) in full {
        if k == "id" || fields.contains(&k.as_str()) {
            out.insert(k, v);
        }
    }
    Value::Object(out)
}

fn field_list(params: &Params) -> Vec<&str> {
    params
        .get("fields")
        .map(|f| {
            f.split(',')
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// OAuth and tokens
// ---------------------------------------------------------------------------------------------

async fn authorize(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let mut state = shared.lock();
    state.count(&req);
    let p = params(&req, &[]);
    if p.get("client_id") != Some(&state.config.client_id) {
        return graph_error(
            400,
            101,
            None,
            "Error validating application. Invalid application ID.",
        );
    }
    if p.get("response_type").map(String::as_str) != Some("code") {
        return graph_error(400, 100, None, "Invalid response_type: expected code");
    }
    let Some(redirect) = p.get("redirect_uri").filter(|r| r.starts_with("http")) else {
        return graph_error(400, 100, None, "Invalid redirect_uri");
    };
    let Some(user_id) = state.approving_user else {
        return graph_error(400, 100, None, "No user to log in (call add_user first)");
    };
    let code = random_token(32);
    let client_id = state.config.client_id.clone();
    state.codes.insert(
        code.clone(),
        Code {
            client_id,
            redirect_uri: redirect.clone(),
            user_id,
            expires_at: Utc::now() + chrono::Duration::seconds(CODE_LIFE),
        },
    );
    let mut location = reqwest::Url::parse(redirect).expect("checked redirect");
    location.query_pairs_mut().append_pair("code", &code);
    if let Some(s) = p.get("state") {
        location.query_pairs_mut().append_pair("state", s);
    }
    HttpResponse::Found()
        .insert_header(("Location", location.to_string()))
        .finish()
}

async fn code_token(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let mut state = shared.lock();
    state.count(&req);
    let p = params(&req, &body);
    if p.get("client_id") != Some(&state.config.client_id)
        || p.get("client_secret") != Some(&state.config.client_secret)
    {
        return graph_error(400, 101, None, "Error validating client secret.");
    }
    if p.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return graph_error(400, 100, None, "Unsupported grant_type");
    }
    let Some(code) = p.get("code").and_then(|c| state.codes.remove(c)) else {
        return graph_error(
            400,
            100,
            Some(36009),
            "This authorization code has been used or is invalid.",
        );
    };
    if code.expires_at <= Utc::now() {
        return graph_error(
            400,
            100,
            Some(36007),
            "This authorization code has expired.",
        );
    }
    if Some(&code.redirect_uri) != p.get("redirect_uri") || code.client_id != state.config.client_id
    {
        return graph_error(400, 100, Some(36008), "Error validating verification code. Please make sure your redirect_uri is identical to the one you used in the OAuth dialog request");
    }
    let token = state.new_token(code.user_id, TokenKind::Short, Utc::now(), SHORT_LIVED);
    HttpResponse::Ok().json(json!({"access_token": token, "user_id": code.user_id}))
}

async fn exchange_token(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let mut state = shared.lock();
    state.count(&req);
    let p = params(&req, &[]);
    if p.get("grant_type").map(String::as_str) != Some("th_exchange_token") {
        return graph_error(400, 100, None, "Unsupported grant_type");
    }
    if p.get("client_secret") != Some(&state.config.client_secret) {
        return graph_error(400, 101, None, "Error validating client secret.");
    }
    let token = p.get("access_token").cloned();
    let user = match state.check_token(token.as_deref()) {
        Ok(user) => user,
        Err(response) => return response,
    };
    if state
        .tokens
        .get(token.as_deref().unwrap_or_default())
        .map(|t| t.kind)
        != Some(TokenKind::Short)
    {
        return graph_error(400, 100, None, "Only a short-lived token can be exchanged");
    }
    let long = state.new_token(user, TokenKind::Long, Utc::now(), LONG_LIVED);
    HttpResponse::Ok()
        .json(json!({"access_token": long, "token_type": "bearer", "expires_in": LONG_LIVED}))
}

async fn refresh_token(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let mut state = shared.lock();
    state.count(&req);
    let p = params(&req, &[]);
    if p.get("grant_type").map(String::as_str) != Some("th_refresh_token") {
        return graph_error(400, 100, None, "Unsupported grant_type");
    }
    let token = p.get("access_token").cloned();
    let user = match state.check_token(token.as_deref()) {
        Ok(user) => user,
        Err(response) => return response,
    };
    let Some(entry) = state.tokens.get(token.as_deref().unwrap_or_default()) else {
        return graph_error(400, 190, None, "Invalid OAuth access token");
    };
    if entry.kind != TokenKind::Long {
        return graph_error(400, 100, None, "Only a long-lived token can be refreshed");
    }
    if Utc::now() - entry.issued_at < chrono::Duration::hours(24) {
        return graph_error(
            400,
            100,
            None,
            "The token must be at least 24 hours old to be refreshed",
        );
    }
    let new = state.new_token(user, TokenKind::Long, Utc::now(), LONG_LIVED);
    HttpResponse::Ok()
        .json(json!({"access_token": new, "token_type": "bearer", "expires_in": LONG_LIVED}))
}

// ---------------------------------------------------------------------------------------------
// Graph
// ---------------------------------------------------------------------------------------------

async fn get_object(
    req: HttpRequest,
    path: web::Path<String>,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let mut state = shared.lock();
    state.count(&req);
    let p = params(&req, &[]);
    let token_user = match state.authenticate(&req, &p) {
        Ok(user) => user,
        Err(response) => return response,
    };
    let fields = field_list(&p);
    let id = path.as_str();
    if let Ok(user) = state.path_user(id, token_user) {
        let username = state
            .users
            .get(&user)
            .map(|u| u.username.clone())
            .unwrap_or_default();
        let mut full = Map::new();
        full.insert("id".into(), json!(user.to_string()));
        full.insert("username".into(), json!(username));
        full.insert("name".into(), json!(username));
        full.insert("threads_biography".into(), json!(""));
        return HttpResponse::Ok().json(pick(full, &fields));
    }
    let Ok(n) = id.parse::<u64>() else {
        return missing_object(id, "get");
    };
    let now = Utc::now();
    if let Some(c) = state.containers.get(&n).filter(|c| c.user_id == token_user) {
        let mut full = Map::new();
        full.insert("id".into(), json!(id));
        full.insert("status".into(), json!(c.status(now)));
        if let Some(message) = &c.error {
            full.insert("error_message".into(), json!(message));
        }
        return HttpResponse::Ok().json(pick(full, &fields));
    }
    match state.media.get(&n) {
        Some(m) if !m.fake.deleted => HttpResponse::Ok().json(state.media_json(n, &fields)),
        _ => missing_object(id, "get"),
    }
}

async fn create_container(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let mut state = shared.lock();
    state.count(&req);
    let p = params(&req, &body);
    let user = match state
        .authenticate(&req, &p)
        .and_then(|u| state.path_user(&path, u))
    {
        Ok(user) => user,
        Err(response) => return response,
    };
    let media_type = p.get("media_type").map(String::as_str).unwrap_or_default();
    let text = p.get("text").map(String::as_str).unwrap_or_default();
    match media_type {
        "TEXT" if text.trim().is_empty() => {
            return graph_error(400, 100, None, "Param text is required for media_type TEXT")
        }
        "TEXT" => {}
        "IMAGE" => {
            let ok = p
                .get("image_url")
                .is_some_and(|u| u.starts_with("http://") || u.starts_with("https://"));
            if !ok {
                return graph_error(
                    400,
                    100,
                    None,
                    "Param image_url is required for media_type IMAGE and must be a URL",
                );
            }
        }
        "" => return graph_error(400, 100, None, "Param media_type is required"),
        other => {
            return graph_error(
                400,
                100,
                None,
                &format!("Unsupported media_type for this fake: {other}"),
            )
        }
    }
    if threads_length(text) > MAX_TEXT {
        return graph_error(
            400,
            100,
            None,
            &format!("Param text must be at most {MAX_TEXT} characters long."),
        );
    }
    if unique_links(text) > THREADS_MAX_LINKS {
        return graph_error(
            400,
            100,
            None,
            "THREADS_API__LINK_LIMIT_EXCEEDED: a post may contain at most 5 links.",
        );
    }
    if let Some(parent) = p.get("reply_to_id").filter(|r| !r.is_empty()) {
        let exists = parent
            .parse::<u64>()
            .ok()
            .and_then(|id| state.media.get(&id))
            .is_some_and(|m| !m.fake.deleted);
        if !exists {
            return missing_object(parent, "post");
        }
    }
    let now = Utc::now();
    let ready_at = if media_type == "IMAGE" {
        now + state.processing
    } else {
        now
    };
    let error = state.fail_containers.take();
    let id = state.next_id();
    state
        .containers
        .insert(id, Container::new(user, &p, now, ready_at, error));
    HttpResponse::Ok().json(json!({"id": id.to_string()}))
}

async fn publish_container(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let outcome = {
        let mut state = shared.lock();
        state.count(&req);
        state.publish_requests += 1;
        publish_locked(&mut state, &req, &path, &body)
    };
    match outcome {
        Ok(response) => response,
        Err(()) => dropped("fake Threads"),
    }
}

fn publish_locked(
    state: &mut State,
    req: &HttpRequest,
    path: &str,
    body: &[u8],
) -> Result<HttpResponse, ()> {
    let p = params(req, body);
    let user = match state
        .authenticate(req, &p)
        .and_then(|u| state.path_user(path, u))
    {
        Ok(user) => user,
        Err(response) => return Ok(response),
    };
    if let Some(status) = state.faults.fail.take() {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        return Ok(HttpResponse::build(status).json(json!({"error": {
            "message": "An unexpected error has occurred. Please retry your request later.",
            "type": "THApiException", "code": 2, "is_transient": true, "fbtrace_id": "Fake"
        }})));
    }
    if let Some((code, regain)) = state.faults.rate_limit.take() {
        let mut builder = HttpResponse::BadRequest();
        if let Some(minutes) = regain {
            builder.insert_header((
                "X-Business-Use-Case-Usage",
                json!({ user.to_string(): [{"type": "threads", "call_count": 100, "total_cputime": 20,
                    "total_time": 20, "estimated_time_to_regain_access": minutes}] })
                .to_string(),
            ));
        }
        return Ok(builder.json(json!({"error": {
            "message": "Application request limit reached", "type": "OAuthException",
            "code": code, "is_transient": true, "fbtrace_id": "Fake"
        }})));
    }
    let Some(container_id) = p.get("creation_id").and_then(|c| c.parse::<u64>().ok()) else {
        return Ok(graph_error(400, 100, None, "Param creation_id is required"));
    };
    let now = Utc::now();
    let (status, reply) = match state.containers.get(&container_id) {
        Some(c) if c.user_id == user => (c.status(now), c.reply_to.is_some()),
        _ => return Ok(missing_object(&container_id.to_string(), "post")),
    };
    match status {
        "FINISHED" => {}
        "IN_PROGRESS" => {
            return Ok(graph_error(
                400,
                9007,
                Some(2207027),
                "The media is not ready for publishing, please wait for a moment.",
            ))
        }
        "PUBLISHED" => {
            return Ok(graph_error(
                400,
                100,
                None,
                "This container has already been published.",
            ))
        }
        "EXPIRED" => return Ok(graph_error(400, 100, None, "The container has expired.")),
        _ => {
            return Ok(graph_error(
                400,
                100,
                None,
                "The container failed to process.",
            ))
        }
    }
    let since = now - state.window();
    let (posts, replies) = (state.config.post_quota, state.config.reply_quota);
    if let Some(u) = state.users.get_mut(&user) {
        prune(&mut u.posts, since);
        prune(&mut u.replies, since);
        let full = if reply {
            u.replies.len() as u64 >= replies
        } else {
            u.posts.len() as u64 >= posts
        };
        if full {
            let what = if reply { "replies" } else { "posts" };
            return Ok(graph_error(
                400,
                9,
                Some(2207042),
                &format!("The user has reached the publishing limit of {what} in 24 hours."),
            ));
        }
    }
    let media = state.publish(container_id, now);
    if state.faults.drop_after_store.take().is_some() {
        return Err(());
    }
    Ok(HttpResponse::Ok().json(json!({"id": media.to_string()})))
}

async fn list_threads(
    req: HttpRequest,
    path: web::Path<String>,
    shared: web::Data<Shared>,
) -> HttpResponse {
    list(req, &path, &shared, false)
}

/// `/{user}/replies` (the user's own replies) or `/{media}/replies` (the
/// replies made directly to a post).
async fn list_replies(
    req: HttpRequest,
    path: web::Path<String>,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let on_media = {
        let state = shared.lock();
        match path.parse::<u64>() {
            Ok(id) => state.media.contains_key(&id),
            Err(_) => false,
        }
    };
    if on_media {
        return thread_list(req, &path, &shared, false);
    }
    list(req, &path, &shared, true)
}

async fn conversation(
    req: HttpRequest,
    path: web::Path<String>,
    shared: web::Data<Shared>,
) -> HttpResponse {
    thread_list(req, &path, &shared, true)
}

/// The replies to a post: at any depth (`conversation`) or only those made
/// to it. Flat, in publication order; `reverse` (default `true`) puts the
/// newest first. Paging by `limit` and opaque `after`/`before` cursors that
/// name a reply (shared with the fake Facebook).
fn thread_list(req: HttpRequest, path: &str, shared: &Shared, any_depth: bool) -> HttpResponse {
    let mut state = shared.lock();
    state.count(&req);
    let p = params(&req, &[]);
    if let Err(response) = state.authenticate(&req, &p) {
        return response;
    }
    if let Some(fault) = state.read_faults.take("threads") {
        return fault;
    }
    let Some(root) = path
        .parse::<u64>()
        .ok()
        .filter(|id| state.media.get(id).is_some_and(|m| !m.fake.deleted))
    else {
        return missing_object(path, "get");
    };
    let root_text = root.to_string();
    let mut order: Vec<String> = state
        .media_order
        .iter()
        .filter(|id| **id != root)
        .filter(|id| {
            let parent = state
                .media
                .get(id)
                .and_then(|m| m.fake.reply_to_id.as_deref());
            if any_depth {
                parent.is_some() && state.root_of(**id) == root_text
            } else {
                parent == Some(root_text.as_str())
            }
        })
        .map(|id| id.to_string())
        .collect();
    if p.get("reverse").map(String::as_str) != Some("false") {
        order.reverse();
    }
    let fields = field_list(&p);
    let show = |id: &str| {
        let n = id.parse::<u64>().ok()?;
        state
            .media
            .get(&n)
            .filter(|m| !m.fake.deleted)
            .map(|_| state.media_json(n, &fields))
    };
    match paged_by_id(&shared.base_url, &req, &p, &order, show, state.page_size) {
        Ok(body) => HttpResponse::Ok().json(body),
        Err(response) => response,
    }
}

/// Newest first; `since`/`until` (Unix seconds) bound `timestamp`;
/// `limit` (25 by default, at most 100); cursor `after` = last id seen.
fn list(req: HttpRequest, path: &str, shared: &Shared, replies: bool) -> HttpResponse {
    let mut state = shared.lock();
    state.count(&req);
    let p = params(&req, &[]);
    let user = match state
        .authenticate(&req, &p)
        .and_then(|u| state.path_user(path, u))
    {
        Ok(user) => user,
        Err(response) => return response,
    };
    let time = |name: &str| {
        p.get(name).and_then(|v| {
            v.parse::<i64>()
                .ok()
                .and_then(|s| DateTime::from_timestamp(s, 0))
                .or_else(|| {
                    DateTime::parse_from_rfc3339(v)
                        .ok()
                        .map(|t| t.with_timezone(&Utc))
                })
        })
    };
    let (since, until) = (time("since"), time("until"));
    let limit = p
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(25)
        .clamp(1, state.page_size.clamp(1, 100));
    let after = p.get("after").and_then(|a| a.parse::<u64>().ok());
    let fields = field_list(&p);
    let ids: Vec<u64> = state
        .users
        .get(&user)
        .map(|u| u.media.clone())
        .unwrap_or_default();
    let matching: Vec<u64> = ids
        .into_iter()
        .rev()
        .filter(|id| after.is_none_or(|a| *id < a))
        .filter(|id| {
            state.media.get(id).is_some_and(|m| {
                !m.fake.deleted
                    && m.fake.reply_to_id.is_some() == replies
                    && since.is_none_or(|s| m.fake.published_at >= s)
                    && until.is_none_or(|u| m.fake.published_at <= u)
            })
        })
        .collect();
    let page: Vec<u64> = matching.iter().take(limit).copied().collect();
    let data: Vec<Value> = page
        .iter()
        .map(|id| state.media_json(*id, &fields))
        .collect();
    let mut body = json!({ "data": data });
    if let (Some(first), Some(last)) = (page.first(), page.last()) {
        body["paging"] =
            json!({"cursors": {"before": first.to_string(), "after": last.to_string()}});
        if matching.len() > page.len() {
            let mut next = req.full_url();
            let pairs: Vec<(String, String)> = next
                .query_pairs()
                .filter(|(k, _)| k != "after")
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            next.query_pairs_mut()
                .clear()
                .extend_pairs(pairs)
                .append_pair("after", &last.to_string());
            body["paging"]["next"] = json!(next.to_string());
        }
    }
    HttpResponse::Ok().json(body)
}

async fn publishing_limit(
    req: HttpRequest,
    path: web::Path<String>,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let mut state = shared.lock();
    state.count(&req);
    let p = params(&req, &[]);
    let user = match state
        .authenticate(&req, &p)
        .and_then(|u| state.path_user(&path, u))
    {
        Ok(user) => user,
        Err(response) => return response,
    };
    let since = Utc::now() - state.window();
    let window = state.config.quota_window.as_secs();
    let (post_total, reply_total) = (state.config.post_quota, state.config.reply_quota);
    let (posts, replies) = match state.users.get_mut(&user) {
        Some(u) => {
            prune(&mut u.posts, since);
            prune(&mut u.replies, since);
            (u.posts.len(), u.replies.len())
        }
        None => (0, 0),
    };
    let mut full = Map::new();
    full.insert("quota_usage".into(), json!(posts));
    full.insert(
        "config".into(),
        json!({"quota_total": post_total, "quota_duration": window}),
    );
    full.insert("reply_quota_usage".into(), json!(replies));
    full.insert(
        "reply_config".into(),
        json!({"quota_total": reply_total, "quota_duration": window}),
    );
    let fields = field_list(&p);
    let mut entry = pick(full, &fields);
    if let Value::Object(map) = &mut entry {
        if !fields.contains(&"id") {
            map.remove("id");
        }
    }
    HttpResponse::Ok().json(json!({ "data": [entry] }))
}

async fn delete_object(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let mut state = shared.lock();
    state.count(&req);
    let p = params(&req, &body);
    let user = match state.authenticate(&req, &p) {
        Ok(user) => user,
        Err(response) => return response,
    };
    let id = path.as_str();
    let Some(n) = id.parse::<u64>().ok().filter(|n| {
        state
            .media
            .get(n)
            .is_some_and(|m| !m.fake.deleted && m.fake.user_id == user.to_string())
    }) else {
        return missing_object(id, "delete");
    };
    let since = Utc::now() - state.window();
    let total = state.config.delete_quota;
    if let Some(u) = state.users.get_mut(&user) {
        prune(&mut u.deletes, since);
        if u.deletes.len() as u64 >= total {
            return graph_error(
                400,
                9,
                Some(2207042),
                "The user has reached the limit of deletions in 24 hours.",
            );
        }
        u.deletes.push_back(Utc::now());
    }
    if let Some(m) = state.media.get_mut(&n) {
        m.fake.deleted = true;
    }
    HttpResponse::Ok().json(json!({"success": true, "deleted_id": id}))
}

async fn not_found(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    shared.lock().count(&req);
    graph_error(400, 100, None, "Unknown path components")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_counted_once_each() {
        assert_eq!(
            unique_links("a https://x.org b https://x.org c https://y.org"),
            2
        );
        assert_eq!(unique_links("no links"), 0);
    }

    #[test]
    fn shortcodes_are_url_safe_and_distinct() {
        let a = shortcode(17_841_400_000_000_123);
        let b = shortcode(17_841_400_000_000_124);
        assert_ne!(a, b);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    }

    #[test]
    fn containers_move_through_their_statuses() {
        let now = Utc::now();
        let params = Params::from([("media_type".to_string(), "IMAGE".to_string())]);
        let mut c = Container::new(1, &params, now, now + chrono::Duration::seconds(5), None);
        assert_eq!(c.status(now), "IN_PROGRESS");
        assert_eq!(c.status(now + chrono::Duration::seconds(6)), "FINISHED");
        assert_eq!(c.status(now + chrono::Duration::days(2)), "EXPIRED");
        c.published = Some(2);
        assert_eq!(c.status(now), "PUBLISHED");
        c.published = None;
        c.error = Some("UNKNOWN".into());
        assert_eq!(c.status(now + chrono::Duration::seconds(6)), "ERROR");
    }
}
