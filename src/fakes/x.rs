//! A fake X API v2 (shared/platforms.md §3) on a loopback port, with fault
//! injection. It serves what Herald's X connector calls, in the documented
//! shapes: the OAuth 2.0 pages and token endpoint (authorization code with
//! PKCE, confidential client in a Basic header, rotating refresh tokens),
//! `GET /2/users/me`, `POST /2/tweets`, `DELETE /2/tweets/:id`,
//! `GET /2/users/:id/tweets`, `GET /2/tweets/search/recent` (the
//! `conversation_id:<id>` operator only; newest first, `since_id`/`until_id`,
//! `start_time`/`end_time`, `max_results` 10–100, `next_token` pages that
//! never expire, the last 7 days only, `expansions=author_id` with
//! `includes.users`), `POST /2/media/upload` and
//! `POST /2/media/metadata`; X's error bodies; per-user rate limits with
//! `x-rate-limit-*` headers on every authenticated answer; the 403
//! "duplicate content" for a text the same user posted recently.
//!
//! # Public API
//! - [`FakeX::start`] / [`FakeX::start_with`] ([`FakeXConfig`]: client id and
//!   secret, [`FakeXLimits`], code and token lifetimes, duplicate window,
//!   length limit, `edit_history_post_ids` naming).
//! - Addresses: [`FakeX::base_url`] (API and authorize pages alike),
//!   [`FakeX::network_app`] (a configured `NetworkApp` pointing here),
//!   [`FakeX::image_url`] / [`FakeX::png_url`] (small test images).
//! - Users and tokens: [`FakeX::add_user`] (returns ids and a token pair with
//!   every scope), [`FakeX::issue_tokens`], [`FakeX::set_authorizing_user`]
//!   (who the auto-approving authorize page signs in; default the first user).
//! - Token faults: [`FakeX::expire_access_tokens`], [`FakeX::expire_access_token`],
//!   [`FakeX::revoke`] (one token), [`FakeX::revoke_user`] (all of a user's
//!   tokens), [`FakeX::expire_codes`].
//! - The public: [`FakeX::add_reply`] (another user, made on first use,
//!   answers a post; returns the reply's id); [`FakeX::set_search_page_size`]
//!   (recent search answers fewer posts per page than `max_results` asks,
//!   as the docs allow, so tests can force several pages).
//! - Request faults on `POST /2/tweets` and `GET /2/tweets/search/recent`:
//!   [`FakeX::fail_next`],
//!   [`FakeX::rate_limit_next`] (problem JSON), [`FakeX::rate_limit_next_legacy`]
//!   (`{"errors":[{"code":88}]}`), [`FakeX::faults_after`] (those faults
//!   wait for some requests first: a failure on page 2 of a search);
//!   on `POST /2/tweets` only:
//!   [`FakeX::drop_after_store_next`],
//!   [`FakeX::stall_after_store_next`], [`FakeX::set_latency`].
//! - Inspection: [`FakeX::posts`] (text as sent, reply parent, media, deleted),
//!   [`FakeX::media`] (uploads with alt text), [`FakeX::seed_post`],
//!   [`FakeX::post_requests`], [`FakeX::requests_to`], [`FakeX::refreshes`],
//!   [`FakeX::token_requests`].
//!
//! Choices where the docs are silent: a rotated refresh token dies at once
//! while the access token issued with it stays valid until it expires; the
//! duplicate check compares the exact text of the user's posts of the last
//! 24 hours (configurable), deleted ones excluded; a reply to a missing post
//! and unknown media ids are 400 `invalid-request`; a too-long text is 400
//! `invalid-request`; `DELETE` of a missing post is 404 `resource-not-found`.
//! The timeline answers texts as X does: `&`, `<`, `>` escaped, links
//! replaced by `https://t.co/…`, and a t.co link appended for media.
//!
//! The server runs on its own OS thread with its own actix system, so it
//! works under any caller runtime; every handler does O(1) work (bar the
//! timeline page) under one lock that is never held across an `.await`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix_web::body::BoxBody;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};
use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::config::NetworkApp;
use crate::fakes::server::{bearer, jfif, random_token, FakeServer, Faults, Outcome, TEST_PNG};
use crate::platforms::text::{web_link_ranges, x_weighted_length};

/// A per-user budget on one endpoint, in fixed windows aligned on the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub limit: u32,
    pub window: Duration,
}

impl RateLimit {
    const fn per_15_min(limit: u32) -> Option<RateLimit> {
        Some(RateLimit {
            limit,
            window: Duration::from_secs(900),
        })
    }
}

/// Per-user limits of each endpoint (platforms.md §3.4); `None` switches one
/// off (and its headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FakeXLimits {
    /// `POST /2/tweets`: 100 per 15 minutes.
    pub create_post: Option<RateLimit>,
    /// `DELETE /2/tweets/:id`: 50 per 15 minutes.
    pub delete_post: Option<RateLimit>,
    /// `GET /2/users/:id/tweets`: 900 per 15 minutes.
    pub user_posts: Option<RateLimit>,
    /// `GET /2/users/me`: 75 per 15 minutes.
    pub me: Option<RateLimit>,
    /// `POST /2/media/upload` and `/2/media/metadata`: 500 per 15 minutes.
    pub media: Option<RateLimit>,
    /// `GET /2/tweets/search/recent`: 300 per 15 minutes.
    pub search: Option<RateLimit>,
}

impl Default for FakeXLimits {
    fn default() -> Self {
        Self {
            create_post: RateLimit::per_15_min(100),
            delete_post: RateLimit::per_15_min(50),
            user_posts: RateLimit::per_15_min(900),
            me: RateLimit::per_15_min(75),
            media: RateLimit::per_15_min(500),
            search: RateLimit::per_15_min(300),
        }
    }
}

/// Settings of a [`FakeX`].
#[derive(Debug, Clone)]
pub struct FakeXConfig {
    pub client_id: String,
    pub client_secret: String,
    pub limits: FakeXLimits,
    /// Authorization codes die this long after approval (X: 30 s).
    pub code_ttl: Duration,
    /// Access tokens live this long (X: 2 h).
    pub token_ttl: Duration,
    /// A text the same user posted this recently is a duplicate.
    pub duplicate_window: Duration,
    /// Longest text in twitter-text weighted units.
    pub max_weighted_length: usize,
    /// Name the create answer's history field `edit_history_post_ids` (the
    /// current OpenAPI) instead of `edit_history_tweet_ids`.
    pub post_ids_field: bool,
    pub workers: usize,
}

impl Default for FakeXConfig {
    fn default() -> Self {
        Self {
            client_id: "herald-x-client".into(),
            client_secret: "herald-x-secret".into(),
            limits: FakeXLimits::default(),
            code_ttl: Duration::from_secs(30),
            token_ttl: Duration::from_secs(2 * 3600),
            duplicate_window: Duration::from_secs(24 * 3600),
            max_weighted_length: 280,
            post_ids_field: false,
            workers: 4,
        }
    }
}

/// A user and a token pair issued to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeXUser {
    pub id: String,
    pub username: String,
    pub access_token: String,
    pub refresh_token: String,
}

/// A post the fake stored, as Herald sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeXPost {
    pub id: String,
    pub user_id: String,
    pub username: String,
    /// The `text` exactly as received.
    pub text: String,
    /// `reply.in_reply_to_tweet_id`.
    pub reply_to: Option<String>,
    pub media_ids: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub deleted: bool,
}

/// An uploaded image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeXMedia {
    pub id: String,
    pub user_id: String,
    pub media_category: String,
    pub content_type: String,
    pub size: usize,
    pub alt_text: Option<String>,
}

/// A running fake; stops when dropped.
pub struct FakeX {
    shared: Arc<Shared>,
    server: FakeServer,
}

const MAX_IMAGE_BYTES: usize = 5 * 1024 * 1024;
const ALL_SCOPES: &str = "tweet.read tweet.write users.read offline.access media.write";
const KNOWN_SCOPES: [&str; 12] = [
    "tweet.read",
    "tweet.write",
    "tweet.moderate.write",
    "users.read",
    "follows.read",
    "follows.write",
    "offline.access",
    "media.write",
    "like.read",
    "like.write",
    "list.read",
    "bookmark.read",
];

impl FakeX {
    /// Start with [`FakeXConfig::default`].
    pub async fn start() -> FakeX {
        Self::start_with(FakeXConfig::default()).await
    }

    /// Start on `127.0.0.1:<free port>` with `config`.
    pub async fn start_with(config: FakeXConfig) -> FakeX {
        let workers = config.workers;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(config)),
        });
        let server = FakeServer::bind("fake-x")
            .serve(workers, shared.clone(), 8 << 20, |app| {
                app.route("/i/oauth2/authorize", web::get().to(authorize))
                    .route("/2/oauth2/token", web::post().to(token))
                    .route("/2/oauth2/revoke", web::post().to(revoke))
                    .route("/2/users/me", web::get().to(users_me))
                    .route("/2/users/{id}/tweets", web::get().to(user_posts))
                    .route("/2/tweets", web::post().to(create_post))
                    .route("/2/tweets/search/recent", web::get().to(search_recent))
                    .route("/2/tweets/{id}", web::delete().to(delete_post))
                    .route("/2/media/upload", web::post().to(upload_media))
                    .route("/2/media/metadata", web::post().to(media_metadata))
                    .route("/fake/image.jpg", web::get().to(jpeg))
                    .route("/fake/image.png", web::get().to(png))
                    .default_service(web::to(not_found));
            })
            .await;
        FakeX { shared, server }
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash: the API base and the
    /// authorize pages' base alike.
    pub fn base_url(&self) -> String {
        self.server.base_url().to_string()
    }

    /// X's app settings pointing at this fake, with its client id and secret.
    pub fn network_app(&self) -> NetworkApp {
        let state = self.lock();
        NetworkApp {
            client_id: Some(state.config.client_id.clone()),
            client_secret: Some(state.config.client_secret.clone()),
            api_url: self.base_url(),
            auth_url: self.base_url(),
            token_url: None,
        }
    }

    pub fn client_id(&self) -> String {
        self.lock().config.client_id.clone()
    }

    pub fn client_secret(&self) -> String {
        self.lock().config.client_secret.clone()
    }

    /// A small JPEG served by the fake.
    pub fn image_url(&self) -> String {
        format!("{}/fake/image.jpg", self.server.base_url())
    }

    /// A 1×1 PNG served by the fake.
    pub fn png_url(&self) -> String {
        format!("{}/fake/image.png", self.server.base_url())
    }

    /// Create a user (or take the existing one of that name) and issue it a
    /// token pair with every scope Herald asks for.
    pub fn add_user(&self, username: &str) -> FakeXUser {
        let mut state = self.lock();
        let user_id = state.user_named(username);
        state.issue_pair(user_id, ALL_SCOPES)
    }

    /// Another token pair for an existing user (`None`: no such user).
    pub fn issue_tokens(&self, username: &str) -> Option<FakeXUser> {
        let mut state = self.lock();
        let user_id = *state.usernames.get(username)?;
        Some(state.issue_pair(user_id, ALL_SCOPES))
    }

    /// The user the authorize page approves as (created if needed).
    pub fn set_authorizing_user(&self, username: &str) {
        let mut state = self.lock();
        let id = state.user_named(username);
        state.authorizing_user = Some(id);
    }

    /// The id of user `username`.
    pub fn user_id(&self, username: &str) -> Option<String> {
        self.lock().usernames.get(username).map(u64::to_string)
    }

    /// Every access token issued so far expires now (401 from then on).
    pub fn expire_access_tokens(&self) {
        let now = Utc::now();
        for entry in self.lock().access.values_mut() {
            entry.expires_at = entry.expires_at.min(now);
        }
    }

    /// `token` expires now.
    pub fn expire_access_token(&self, token: &str) {
        if let Some(entry) = self.lock().access.get_mut(token) {
            entry.expires_at = Utc::now();
        }
    }

    /// Revoke one token, access or refresh.
    pub fn revoke(&self, token: &str) {
        let mut state = self.lock();
        if let Some(entry) = state.access.get_mut(token) {
            entry.revoked = true;
        }
        if let Some(entry) = state.refresh.get_mut(token) {
            entry.dead = true;
        }
    }

    /// Revoke every token of `username` (the user removed the app).
    pub fn revoke_user(&self, username: &str) {
        let mut state = self.lock();
        let Some(&id) = state.usernames.get(username) else {
            return;
        };
        for entry in state.access.values_mut().filter(|e| e.user_id == id) {
            entry.revoked = true;
        }
        for entry in state.refresh.values_mut().filter(|e| e.user_id == id) {
            entry.dead = true;
        }
    }

    /// Every authorization code issued so far expires now.
    pub fn expire_codes(&self) {
        let now = Utc::now();
        for code in self.lock().codes.values_mut() {
            code.expires_at = now;
        }
    }

    /// The next `n` `POST /2/tweets` or recent searches get `status` and
    /// store nothing.
    pub fn fail_next(&self, n: usize, status: u16) {
        self.lock().faults.fail.arm(n, status);
    }

    /// The next `n` `POST /2/tweets` or recent searches get a 429 (problem
    /// JSON) whose `x-rate-limit-reset` is `reset_in` from now, and store
    /// nothing.
    pub fn rate_limit_next(&self, n: usize, reset_in: Duration) {
        self.lock().faults.rate_limit.arm(n, (reset_in, false));
    }

    /// Like [`FakeX::rate_limit_next`] with the documented v1-style body
    /// `{"errors":[{"code":88,"message":"Rate limit exceeded"}]}`.
    pub fn rate_limit_next_legacy(&self, n: usize, reset_in: Duration) {
        self.lock().faults.rate_limit.arm(n, (reset_in, true));
    }

    /// The next `n` `POST /2/tweets` that create a post store it, then close
    /// the connection without answering.
    pub fn drop_after_store_next(&self, n: usize) {
        self.lock().faults.drop_after_store.arm(n, ());
    }

    /// The next `n` `POST /2/tweets` that create a post store it, then wait
    /// `stall` before answering.
    pub fn stall_after_store_next(&self, n: usize, stall: Duration) {
        self.lock().faults.stall_after_store.arm(n, stall);
    }

    /// Every `POST /2/tweets` waits `latency` before it is handled.
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// Add a post for `username` as if made at `created_at`. Returns its id.
    pub fn seed_post(
        &self,
        username: &str,
        text: &str,
        created_at: DateTime<Utc>,
        reply_to: Option<&str>,
    ) -> Option<String> {
        let mut state = self.lock();
        let user_id = *state.usernames.get(username)?;
        let reply_to = reply_to.and_then(|r| r.parse::<u64>().ok());
        Some(
            state
                .store_post(user_id, text, reply_to, Vec::new(), created_at)
                .to_string(),
        )
    }

    /// The user `username` (made on first use) answers post `parent_id`
    /// now. Returns the reply's id; `None` if the parent is not a live post.
    pub fn add_reply(&self, parent_id: &str, username: &str, text: &str) -> Option<String> {
        let mut state = self.lock();
        let parent = parent_id
            .parse::<u64>()
            .ok()
            .filter(|id| state.posts.get(id).is_some_and(|p| !p.deleted))?;
        let user_id = state.user_named(username);
        Some(
            state
                .store_post(user_id, text, Some(parent), Vec::new(), Utc::now())
                .to_string(),
        )
    }

    /// The faults armed with `fail_next` / `rate_limit_next` start only
    /// after `requests` more requests to the endpoints they hit.
    pub fn faults_after(&self, requests: usize) {
        self.lock().fault_skip = requests;
    }

    /// Recent search answers at most `n` posts per page (at least 1),
    /// whatever `max_results` asks; `None` (default) gives `max_results`.
    pub fn set_search_page_size(&self, n: Option<usize>) {
        self.lock().search_page_size = n.map(|n| n.max(1));
    }

    /// Every post, oldest first, deleted ones included.
    pub fn posts(&self) -> Vec<FakeXPost> {
        let state = self.lock();
        state
            .post_order
            .iter()
            .filter_map(|id| state.posts.get(id))
            .map(|p| FakeXPost {
                id: p.id.to_string(),
                user_id: p.user_id.to_string(),
                username: state.users.get(&p.user_id).cloned().unwrap_or_default(),
                text: p.text.clone(),
                reply_to: p.reply_to.map(|r| r.to_string()),
                media_ids: p.media_ids.iter().map(u64::to_string).collect(),
                created_at: p.created_at,
                deleted: p.deleted,
            })
            .collect()
    }

    /// Every upload, oldest first.
    pub fn media(&self) -> Vec<FakeXMedia> {
        let state = self.lock();
        state
            .media_order
            .iter()
            .filter_map(|id| state.media.get(id))
            .cloned()
            .collect()
    }

    /// `POST /2/tweets` requests received, failed ones included.
    pub fn post_requests(&self) -> usize {
        self.lock().post_requests
    }

    /// Requests received whose path starts with `path_prefix`.
    pub fn requests_to(&self, path_prefix: &str) -> usize {
        self.lock()
            .requests_by_path
            .iter()
            .filter(|(path, _)| path.starts_with(path_prefix))
            .map(|(_, n)| n)
            .sum()
    }

    /// Successful `refresh_token` grants.
    pub fn refreshes(&self) -> usize {
        self.lock().refreshes
    }

    /// Requests to the token endpoint, failed ones included.
    pub fn token_requests(&self) -> usize {
        self.requests_to("/2/oauth2/token")
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
    }
}

// ---------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------

struct Shared {
    state: Mutex<State>,
}

impl Shared {
    /// The state, even if a panicking thread poisoned the lock.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct AccessEntry {
    user_id: u64,
    expires_at: DateTime<Utc>,
    revoked: bool,
    scopes: Vec<String>,
}

struct RefreshEntry {
    user_id: u64,
    dead: bool,
    scopes: String,
}

struct CodeEntry {
    user_id: u64,
    redirect_uri: String,
    challenge: String,
    method: String,
    scopes: String,
    expires_at: DateTime<Utc>,
    used: bool,
}

struct StoredPost {
    id: u64,
    user_id: u64,
    text: String,
    reply_to: Option<u64>,
    conversation_id: u64,
    media_ids: Vec<u64>,
    created_at: DateTime<Utc>,
    deleted: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Endpoint {
    CreatePost,
    DeletePost,
    UserPosts,
    Me,
    Media,
    Search,
}

struct State {
    config: FakeXConfig,
    latency: Duration,
    next_user: u64,
    next_id: u64,
    users: HashMap<u64, String>,
    usernames: HashMap<String, u64>,
    authorizing_user: Option<u64>,
    access: HashMap<String, AccessEntry>,
    refresh: HashMap<String, RefreshEntry>,
    codes: HashMap<String, CodeEntry>,
    posts: HashMap<u64, StoredPost>,
    post_order: Vec<u64>,
    /// Per user: post ids, ascending.
    user_posts: HashMap<u64, Vec<u64>>,
    /// Per conversation id: post ids, ascending.
    conversations: HashMap<u64, Vec<u64>>,
    /// Recent search's largest page, whatever `max_results` asks.
    search_page_size: Option<usize>,
    /// Requests that pass before the armed faults apply.
    fault_skip: usize,
    /// (user, text) → newest post id with that text.
    texts: HashMap<(u64, String), u64>,
    media: HashMap<u64, FakeXMedia>,
    media_order: Vec<u64>,
    /// (user, endpoint) → (window index, requests in it).
    windows: HashMap<(u64, Endpoint), (i64, u32)>,
    /// The rate limit: (reset in, legacy body).
    faults: Faults<(Duration, bool)>,
    post_requests: usize,
    refreshes: usize,
    requests_by_path: HashMap<String, usize>,
}

/// `x-rate-limit-*` values of one answer.
struct RateHeaders {
    limit: u32,
    remaining: u32,
    reset: DateTime<Utc>,
}

impl RateHeaders {
    fn apply(&self, builder: &mut HttpResponseBuilder) {
        let reset = self.reset.timestamp() + i64::from(self.reset.timestamp_subsec_nanos() > 0);
        builder
            .insert_header(("x-rate-limit-limit", self.limit.to_string()))
            .insert_header(("x-rate-limit-remaining", self.remaining.to_string()))
            .insert_header(("x-rate-limit-reset", reset.to_string()));
    }
}

impl State {
    fn new(config: FakeXConfig) -> Self {
        // Snowflake-like ids: numeric, increasing, far from small integers.
        let first_id = (Utc::now().timestamp_millis().max(0) as u64) << 22;
        Self {
            config,
            latency: Duration::ZERO,
            next_user: 1_500_000_000_000_000_000,
            next_id: first_id,
            users: HashMap::new(),
            usernames: HashMap::new(),
            authorizing_user: None,
            access: HashMap::new(),
            refresh: HashMap::new(),
            codes: HashMap::new(),
            posts: HashMap::new(),
            post_order: Vec::new(),
            user_posts: HashMap::new(),
            conversations: HashMap::new(),
            search_page_size: None,
            fault_skip: 0,
            texts: HashMap::new(),
            media: HashMap::new(),
            media_order: Vec::new(),
            windows: HashMap::new(),
            faults: Faults::default(),
            post_requests: 0,
            refreshes: 0,
            requests_by_path: HashMap::new(),
        }
    }

    fn count_request(&mut self, path: &str) {
        *self.requests_by_path.entry(path.to_string()).or_insert(0) += 1;
    }

    fn user_named(&mut self, username: &str) -> u64 {
        if let Some(&id) = self.usernames.get(username) {
            return id;
        }
        self.next_user += 1;
        let id = self.next_user;
        self.users.insert(id, username.to_string());
        self.usernames.insert(username.to_string(), id);
        id
    }

    fn issue_access(&mut self, user_id: u64, scopes: &str) -> String {
        let token = random_token(64);
        let ttl = chrono::Duration::from_std(self.config.token_ttl)
            .unwrap_or_else(|_| chrono::Duration::hours(2));
        self.access.insert(
            token.clone(),
            AccessEntry {
                user_id,
                expires_at: Utc::now() + ttl,
                revoked: false,
                scopes: scopes.split_whitespace().map(str::to_string).collect(),
            },
        );
        token
    }

    fn issue_refresh(&mut self, user_id: u64, scopes: &str) -> String {
        let token = random_token(64);
        self.refresh.insert(
            token.clone(),
            RefreshEntry {
                user_id,
                dead: false,
                scopes: scopes.to_string(),
            },
        );
        token
    }

    fn issue_pair(&mut self, user_id: u64, scopes: &str) -> FakeXUser {
        FakeXUser {
            id: user_id.to_string(),
            username: self.users.get(&user_id).cloned().unwrap_or_default(),
            access_token: self.issue_access(user_id, scopes),
            refresh_token: self.issue_refresh(user_id, scopes),
        }
    }

    /// The token answer of a grant: 2 h access token, a refresh token only
    /// with `offline.access`.
    fn token_answer(&mut self, user_id: u64, scopes: &str) -> Value {
        let access = self.issue_access(user_id, scopes);
        let mut body = json!({
            "token_type": "bearer",
            "expires_in": self.config.token_ttl.as_secs(),
            "access_token": access,
            "scope": scopes,
        });
        if scopes.split_whitespace().any(|s| s == "offline.access") {
            body["refresh_token"] = json!(self.issue_refresh(user_id, scopes));
        }
        body
    }

    /// Resolve the bearer token; check its scopes; charge the endpoint's budget.
    // The error is the answer to send; boxing it would buy nothing here.
    #[allow(clippy::result_large_err)]
    fn authenticate(
        &mut self,
        req: &HttpRequest,
        endpoint: Endpoint,
        scopes: &[&str],
    ) -> Result<(u64, Option<RateHeaders>), HttpResponse> {
        let token = bearer(req).unwrap_or_default();
        let now = Utc::now();
        let entry = match self.access.get(token) {
            Some(e) if !e.revoked && e.expires_at > now => e,
            _ => return Err(unauthorized()),
        };
        let user_id = entry.user_id;
        if let Some(missing) = scopes
            .iter()
            .find(|s| !entry.scopes.iter().any(|have| have == *s))
        {
            return Err(problem(
                StatusCode::FORBIDDEN,
                "Forbidden",
                &format!("The token lacks the scope '{missing}' this endpoint requires."),
                "https://api.x.com/2/problems/client-forbidden",
                None,
            ));
        }
        let limit = match endpoint {
            Endpoint::CreatePost => self.config.limits.create_post,
            Endpoint::DeletePost => self.config.limits.delete_post,
            Endpoint::UserPosts => self.config.limits.user_posts,
            Endpoint::Me => self.config.limits.me,
            Endpoint::Media => self.config.limits.media,
            Endpoint::Search => self.config.limits.search,
        };
        let Some(limit) = limit else {
            return Ok((user_id, None));
        };
        let window_ms = (limit.window.as_millis() as i64).max(1);
        let now_ms = now.timestamp_millis();
        let index = now_ms.div_euclid(window_ms);
        let slot = self
            .windows
            .entry((user_id, endpoint))
            .or_insert((index, 0));
        if slot.0 != index {
            *slot = (index, 0);
        }
        slot.1 = slot.1.saturating_add(1);
        let rate = RateHeaders {
            limit: limit.limit,
            remaining: limit.limit.saturating_sub(slot.1),
            reset: now + chrono::Duration::milliseconds(window_ms - now_ms.rem_euclid(window_ms)),
        };
        if slot.1 > limit.limit {
            return Err(too_many_requests(&rate, false));
        }
        Ok((user_id, Some(rate)))
    }

    fn store_post(
        &mut self,
        user_id: u64,
        text: &str,
        reply_to: Option<u64>,
        media_ids: Vec<u64>,
        created_at: DateTime<Utc>,
    ) -> u64 {
        self.next_id += 1 + (rand::random::<u64>() % 4096);
        let id = self.next_id;
        let conversation_id = reply_to
            .and_then(|r| self.posts.get(&r))
            .map_or(id, |p| p.conversation_id);
        self.posts.insert(
            id,
            StoredPost {
                id,
                user_id,
                text: text.to_string(),
                reply_to,
                conversation_id,
                media_ids,
                created_at,
                deleted: false,
            },
        );
        self.post_order.push(id);
        let ids = self.user_posts.entry(user_id).or_default();
        // Seeded posts may be older than the newest: keep ids ascending by id.
        let at = ids.partition_point(|&other| other < id);
        ids.insert(at, id);
        let thread = self.conversations.entry(conversation_id).or_default();
        let at = thread.partition_point(|&other| other < id);
        thread.insert(at, id);
        self.texts.insert((user_id, text.to_string()), id);
        id
    }

    /// An armed `fail_next` or `rate_limit_next`, counted down; `limit` is
    /// the endpoint's budget shown in the 429's headers.
    fn injected_fault(
        &mut self,
        rate: Option<&RateHeaders>,
        limit: Option<RateLimit>,
        received_at: DateTime<Utc>,
    ) -> Option<HttpResponse> {
        if self.fault_skip > 0 {
            self.fault_skip -= 1;
            return None;
        }
        if let Some(status) = self.faults.fail.take() {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            let title = status.canonical_reason().unwrap_or("Error");
            return Some(problem(status, title, title, "about:blank", rate));
        }
        let (reset_in, legacy) = self.faults.rate_limit.take()?;
        let limited = RateHeaders {
            limit: limit.map_or(100, |l| l.limit),
            remaining: 0,
            reset: received_at
                + chrono::Duration::from_std(reset_in)
                    .unwrap_or_else(|_| chrono::Duration::seconds(900)),
        };
        Some(too_many_requests(&limited, legacy))
    }

    fn is_duplicate(&self, user_id: u64, text: &str, now: DateTime<Utc>) -> bool {
        let window = chrono::Duration::from_std(self.config.duplicate_window)
            .unwrap_or_else(|_| chrono::Duration::hours(24));
        self.texts
            .get(&(user_id, text.to_string()))
            .and_then(|id| self.posts.get(id))
            .is_some_and(|p| !p.deleted && now - p.created_at < window)
    }

    /// A post as the API shows it, with the fields asked for.
    fn post_json(&self, post: &StoredPost, fields: &[&str]) -> Value {
        let mut out = json!({
            "id": post.id.to_string(),
            "text": rendered_text(post),
            "edit_history_tweet_ids": [post.id.to_string()],
        });
        for field in fields {
            match *field {
                "created_at" => {
                    out["created_at"] =
                        json!(post.created_at.to_rfc3339_opts(SecondsFormat::Millis, true))
                }
                "conversation_id" => {
                    out["conversation_id"] = json!(post.conversation_id.to_string())
                }
                "author_id" => out["author_id"] = json!(post.user_id.to_string()),
                "referenced_tweets" => {
                    if let Some(parent) = post.reply_to {
                        out["referenced_tweets"] =
                            json!([{ "type": "replied_to", "id": parent.to_string() }]);
                    }
                }
                "in_reply_to_user_id" => {
                    if let Some(parent) = post.reply_to.and_then(|r| self.posts.get(&r)) {
                        out["in_reply_to_user_id"] = json!(parent.user_id.to_string());
                    }
                }
                "attachments" if !post.media_ids.is_empty() => {
                    let keys: Vec<String> =
                        post.media_ids.iter().map(|m| format!("3_{m}")).collect();
                    out["attachments"] = json!({ "media_keys": keys });
                }
                _ => {}
            }
        }
        out
    }
}

/// The text as X shows it: `&`, `<`, `>` escaped, every link a t.co link,
/// and a t.co link for attached media.
fn rendered_text(post: &StoredPost) -> String {
    let mut out = String::with_capacity(post.text.len());
    let mut last = 0;
    for (n, (start, end)) in web_link_ranges(&post.text).into_iter().enumerate() {
        push_escaped(&mut out, &post.text[last..start]);
        out.push_str(&tco(post.id, n));
        last = end;
    }
    push_escaped(&mut out, &post.text[last..]);
    if !post.media_ids.is_empty() {
        out.push(' ');
        out.push_str(&tco(post.id, 99));
    }
    out
}

fn push_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
}

fn tco(id: u64, n: usize) -> String {
    let digest = Sha256::digest(format!("{id}/{n}").as_bytes());
    let code: String = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(digest)
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(10)
        .collect();
    format!("https://t.co/{code}")
}

// ---------------------------------------------------------------------------------------------
// Answers
// ---------------------------------------------------------------------------------------------

fn problem(
    status: StatusCode,
    title: &str,
    detail: &str,
    kind: &str,
    rate: Option<&RateHeaders>,
) -> HttpResponse {
    let mut builder = HttpResponse::build(status);
    if let Some(rate) = rate {
        rate.apply(&mut builder);
    }
    builder
        .content_type("application/problem+json")
        .json(json!({
            "title": title,
            "detail": detail,
            "type": kind,
            "status": status.as_u16(),
        }))
}

/// The same 401 for a missing, unknown, expired or revoked token.
fn unauthorized() -> HttpResponse {
    problem(
        StatusCode::UNAUTHORIZED,
        "Unauthorized",
        "Unauthorized",
        "about:blank",
        None,
    )
}

/// 400 `invalid-request` with one parameter error.
fn invalid_request(message: &str, rate: Option<&RateHeaders>) -> HttpResponse {
    let mut builder = HttpResponse::BadRequest();
    if let Some(rate) = rate {
        rate.apply(&mut builder);
    }
    builder
        .content_type("application/problem+json")
        .json(json!({
            "errors": [{ "parameters": {}, "message": message }],
            "title": "Invalid Request",
            "detail": "One or more parameters to your request was invalid.",
            "type": "https://api.x.com/2/problems/invalid-request",
        }))
}

fn too_many_requests(rate: &RateHeaders, legacy: bool) -> HttpResponse {
    let mut builder = HttpResponse::TooManyRequests();
    rate.apply(&mut builder);
    if legacy {
        builder.json(json!({"errors": [{"code": 88, "message": "Rate limit exceeded"}]}))
    } else {
        builder
            .content_type("application/problem+json")
            .json(json!({
                "title": "Too Many Requests",
                "detail": "Too Many Requests",
                "type": "about:blank",
                "status": 429,
            }))
    }
}

fn ok_json(status: StatusCode, body: Value, rate: Option<&RateHeaders>) -> HttpResponse {
    let mut builder = HttpResponse::build(status);
    if let Some(rate) = rate {
        rate.apply(&mut builder);
    }
    builder.json(body)
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "error": error, "error_description": description }))
}

fn query_map(req: &HttpRequest) -> HashMap<String, String> {
    form_urlencoded::parse(req.query_string().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn content_type(req: &HttpRequest) -> String {
    req.headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// OAuth
// ---------------------------------------------------------------------------------------------

/// `GET /i/oauth2/authorize`: checks the request and approves at once,
/// redirecting to `redirect_uri?state=…&code=…`.
async fn authorize(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let mut state = shared.lock();
    state.count_request(req.path());
    let q = query_map(&req);
    let get = |name: &str| q.get(name).map(String::as_str).unwrap_or("");
    let refuse = |message: &str| {
        HttpResponse::BadRequest()
            .content_type("text/plain; charset=utf-8")
            .body(format!("Something went wrong: {message}"))
    };
    if get("response_type") != "code" {
        return refuse("response_type must be code");
    }
    if get("client_id") != state.config.client_id {
        return refuse("unknown client_id");
    }
    let redirect_uri = get("redirect_uri");
    if url::Url::parse(redirect_uri).is_err() {
        return refuse("redirect_uri must be an absolute URL");
    }
    let st = get("state");
    if st.is_empty() || st.len() > 500 {
        return refuse("state is required (at most 500 characters)");
    }
    let challenge = get("code_challenge");
    let method = match get("code_challenge_method") {
        "" | "plain" => "plain",
        "S256" | "s256" => "S256",
        _ => return refuse("code_challenge_method must be S256 or plain"),
    };
    if challenge.is_empty() {
        return refuse("code_challenge is required");
    }
    let scopes: Vec<&str> = get("scope").split_whitespace().collect();
    if scopes.is_empty() {
        return refuse("scope is required");
    }
    if let Some(unknown) = scopes.iter().find(|s| !KNOWN_SCOPES.contains(s)) {
        return refuse(&format!("unknown scope {unknown}"));
    }
    let user_id = match state
        .authorizing_user
        .or_else(|| state.users.keys().min().copied())
    {
        Some(id) => id,
        None => state.user_named("x_user"),
    };
    let code = random_token(48);
    let ttl = chrono::Duration::from_std(state.config.code_ttl)
        .unwrap_or_else(|_| chrono::Duration::seconds(30));
    state.codes.insert(
        code.clone(),
        CodeEntry {
            user_id,
            redirect_uri: redirect_uri.to_string(),
            challenge: challenge.to_string(),
            method: method.to_string(),
            scopes: scopes.join(" "),
            expires_at: Utc::now() + ttl,
            used: false,
        },
    );
    let mut location = url::Url::parse(redirect_uri).expect("checked above");
    location
        .query_pairs_mut()
        .append_pair("state", st)
        .append_pair("code", &code);
    HttpResponse::Found()
        .insert_header(("Location", location.to_string()))
        .finish()
}

/// The client of a Basic header (`client_id:client_secret`, each
/// form-urlencoded as RFC 6749 §2.3.1 says).
fn basic_client(req: &HttpRequest) -> Option<(String, String)> {
    let value = req.headers().get("authorization")?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    let unescape = |s: &str| {
        form_urlencoded::parse(format!("v={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((unescape(id), unescape(secret)))
}

fn invalid_token() -> HttpResponse {
    oauth_error(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "Value passed for the token was invalid.",
    )
}

/// `POST /2/oauth2/token`: `authorization_code` (PKCE checked, code single-use
/// and short-lived) and `refresh_token` (rotating) grants, for a confidential
/// client authenticating with a Basic header.
async fn token(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let mut state = shared.lock();
    state.count_request(req.path());
    if !content_type(&req).starts_with("application/x-www-form-urlencoded") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Content-Type must be application/x-www-form-urlencoded",
        );
    }
    let form: HashMap<String, String> = form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let get = |name: &str| form.get(name).map(String::as_str).unwrap_or("");
    match basic_client(&req) {
        Some((id, secret))
            if id == state.config.client_id && secret == state.config.client_secret => {}
        _ => {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "unauthorized_client",
                "Missing valid authorization header",
            )
        }
    }
    if !get("client_id").is_empty() && get("client_id") != state.config.client_id {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized_client",
            "client_id does not match the authorization header",
        );
    }
    match get("grant_type") {
        "authorization_code" => {
            let now = Utc::now();
            let Some(code) = state.codes.get_mut(get("code")) else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "Value passed for the authorization code was invalid.",
                );
            };
            let was_used = std::mem::replace(&mut code.used, true);
            let expected = match code.method.as_str() {
                "S256" => super::server::pkce_s256(get("code_verifier")),
                _ => get("code_verifier").to_string(),
            };
            if was_used
                || code.expires_at <= now
                || code.redirect_uri != get("redirect_uri")
                || get("code_verifier").is_empty()
                || expected != code.challenge
            {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "Value passed for the authorization code was invalid.",
                );
            }
            let (user_id, scopes) = (code.user_id, code.scopes.clone());
            HttpResponse::Ok().json(state.token_answer(user_id, &scopes))
        }
        "refresh_token" => {
            let Some(entry) = state.refresh.get_mut(get("refresh_token")) else {
                return invalid_token();
            };
            if entry.dead {
                return invalid_token();
            }
            entry.dead = true;
            let (user_id, scopes) = (entry.user_id, entry.scopes.clone());
            state.refreshes += 1;
            HttpResponse::Ok().json(state.token_answer(user_id, &scopes))
        }
        other => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            &format!("grant_type '{other}' is not supported"),
        ),
    }
}

/// `POST /2/oauth2/revoke` with `token`.
async fn revoke(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let mut state = shared.lock();
    state.count_request(req.path());
    let token = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    if let Some(entry) = state.access.get_mut(&token) {
        entry.revoked = true;
    }
    if let Some(entry) = state.refresh.get_mut(&token) {
        entry.dead = true;
    }
    HttpResponse::Ok().json(json!({ "revoked": true }))
}

// ---------------------------------------------------------------------------------------------
// API
// ---------------------------------------------------------------------------------------------

async fn users_me(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let mut state = shared.lock();
    state.count_request(req.path());
    let (user_id, rate) =
        match state.authenticate(&req, Endpoint::Me, &["users.read", "tweet.read"]) {
            Ok(auth) => auth,
            Err(response) => return response,
        };
    let username = state.users.get(&user_id).cloned().unwrap_or_default();
    ok_json(
        StatusCode::OK,
        json!({ "data": { "id": user_id.to_string(), "name": username, "username": username } }),
        rate.as_ref(),
    )
}

/// Check a `POST /2/tweets` body against the OpenAPI schema (the parts Herald
/// can touch: unknown properties refused at every level).
fn check_post_body(body: &Value) -> Result<(), String> {
    const TOP: [&str; 16] = [
        "card_uri",
        "community_id",
        "direct_message_deep_link",
        "edit_options",
        "for_super_followers_only",
        "geo",
        "made_with_ai",
        "media",
        "nullcast",
        "paid_partnership",
        "poll",
        "quote_tweet_id",
        "reply",
        "reply_settings",
        "share_with_followers",
        "text",
    ];
    let Value::Object(map) = body else {
        return Err("$: expected an object".into());
    };
    for key in map.keys() {
        if !TOP.contains(&key.as_str()) {
            return Err(format!(
                "$.{key}: is not defined in the schema and the schema does not allow additional properties"
            ));
        }
    }
    if let Some(text) = map.get("text") {
        if !text.is_string() {
            return Err("$.text: string found, expected".into());
        }
    }
    if let Some(reply) = map.get("reply") {
        let Value::Object(reply) = reply else {
            return Err("$.reply: expected an object".into());
        };
        for key in reply.keys() {
            if ![
                "in_reply_to_tweet_id",
                "exclude_reply_user_ids",
                "auto_populate_reply_metadata",
            ]
            .contains(&key.as_str())
            {
                return Err(format!(
                    "$.reply.{key}: is not defined in the schema and the schema does not allow additional properties"
                ));
            }
        }
        match reply.get("in_reply_to_tweet_id").and_then(Value::as_str) {
            Some(id) if is_numeric_id(id) => {}
            _ => return Err("$.reply.in_reply_to_tweet_id: must be a numeric string".into()),
        }
    }
    if let Some(media) = map.get("media") {
        let Value::Object(media) = media else {
            return Err("$.media: expected an object".into());
        };
        for key in media.keys() {
            if !["media_ids", "tagged_user_ids"].contains(&key.as_str()) {
                return Err(format!(
                    "$.media.{key}: is not defined in the schema and the schema does not allow additional properties"
                ));
            }
        }
        let ids = media
            .get("media_ids")
            .and_then(Value::as_array)
            .ok_or("$.media.media_ids: is required")?;
        if ids.is_empty() || ids.len() > 4 {
            return Err("$.media.media_ids: must have between 1 and 4 items".into());
        }
        if !ids.iter().all(|i| i.as_str().is_some_and(is_numeric_id)) {
            return Err("$.media.media_ids: items must be numeric strings".into());
        }
    }
    Ok(())
}

fn is_numeric_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 19 && id.bytes().all(|b| b.is_ascii_digit())
}

impl State {
    /// The whole of `POST /2/tweets` after the injected latency, under the lock.
    fn create_post(
        &mut self,
        req: &HttpRequest,
        body: &[u8],
        received_at: DateTime<Utc>,
    ) -> Outcome {
        let (user_id, rate) = match self.authenticate(
            req,
            Endpoint::CreatePost,
            &["tweet.read", "tweet.write", "users.read"],
        ) {
            Ok(auth) => auth,
            Err(response) => return Outcome::Answer(response),
        };
        let rate = rate.as_ref();
        let limit = self.config.limits.create_post;
        if let Some(response) = self.injected_fault(rate, limit, received_at) {
            return Outcome::Answer(response);
        }
        if !content_type(req).starts_with("application/json") {
            return Outcome::Answer(invalid_request(
                "Content-Type must be application/json",
                rate,
            ));
        }
        let Ok(json) = serde_json::from_slice::<Value>(body) else {
            return Outcome::Answer(invalid_request("The body is not valid JSON", rate));
        };
        if let Err(message) = check_post_body(&json) {
            return Outcome::Answer(invalid_request(&message, rate));
        }
        let text = json["text"].as_str().unwrap_or("").to_string();
        let media_ids: Vec<u64> = json["media"]["media_ids"]
            .as_array()
            .map(|ids| {
                ids.iter()
                    .filter_map(|i| i.as_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        if text.trim().is_empty() && media_ids.is_empty() {
            return Outcome::Answer(invalid_request("$.text: a post needs text or media", rate));
        }
        if x_weighted_length(&text) > self.config.max_weighted_length {
            return Outcome::Answer(invalid_request(
                &format!(
                    "$.text: text is too long (at most {} weighted characters)",
                    self.config.max_weighted_length
                ),
                rate,
            ));
        }
        let reply_to = json["reply"]["in_reply_to_tweet_id"]
            .as_str()
            .and_then(|id| id.parse::<u64>().ok());
        if let Some(parent) = reply_to {
            if self.posts.get(&parent).is_none_or(|p| p.deleted) {
                return Outcome::Answer(invalid_request(
                    "The post you are replying to has been deleted or is not visible to you.",
                    rate,
                ));
            }
        }
        let owner = user_id.to_string();
        if media_ids
            .iter()
            .any(|m| self.media.get(m).is_none_or(|media| media.user_id != owner))
        {
            return Outcome::Answer(invalid_request("Your media IDs are invalid.", rate));
        }
        let now = Utc::now();
        if self.is_duplicate(user_id, &text, now) {
            return Outcome::Answer(problem(
                StatusCode::FORBIDDEN,
                "Forbidden",
                "You are not allowed to create a Tweet with duplicate content.",
                "about:blank",
                rate,
            ));
        }
        let id = self.store_post(user_id, &text, reply_to, media_ids, now);
        let history = if self.config.post_ids_field {
            "edit_history_post_ids"
        } else {
            "edit_history_tweet_ids"
        };
        let post = &self.posts[&id];
        let mut data = json!({ "id": id.to_string(), "text": rendered_text(post) });
        data[history] = json!([id.to_string()]);
        let response = ok_json(StatusCode::CREATED, json!({ "data": data }), rate);
        self.faults.after_store(response)
    }
}

async fn create_post(
    req: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse<BoxBody> {
    let received_at = Utc::now();
    let latency = {
        let mut state = shared.lock();
        state.post_requests += 1;
        state.count_request(req.path());
        state.latency
    };
    if !latency.is_zero() {
        actix_web::rt::time::sleep(latency).await;
    }
    let outcome = shared.lock().create_post(&req, &body, received_at);
    outcome.respond("fake X").await
}

async fn delete_post(
    req: HttpRequest,
    path: web::Path<String>,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let mut state = shared.lock();
    state.count_request(req.path());
    let (user_id, rate) = match state.authenticate(
        &req,
        Endpoint::DeletePost,
        &["tweet.read", "tweet.write", "users.read"],
    ) {
        Ok(auth) => auth,
        Err(response) => return response,
    };
    let rate = rate.as_ref();
    let id = path.parse::<u64>().ok();
    let Some(post) = id
        .and_then(|id| state.posts.get_mut(&id))
        .filter(|p| !p.deleted)
    else {
        return problem(
            StatusCode::NOT_FOUND,
            "Not Found Error",
            &format!("Could not find post with id: [{}].", path.as_str()),
            "https://api.x.com/2/problems/resource-not-found",
            rate,
        );
    };
    if post.user_id != user_id {
        return problem(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "You are not allowed to delete a post that is not yours.",
            "about:blank",
            rate,
        );
    }
    post.deleted = true;
    ok_json(StatusCode::OK, json!({ "data": { "deleted": true } }), rate)
}

/// The paging and bounds of a timeline or search request, checked as X
/// checks them: `max_results` within `sizes` (10 without it),
/// `start_time`/`end_time` (for a search, not before `oldest`),
/// `since_id`/`until_id`, and the page token named `token` (a search also
/// takes `pagination_token`).
struct ListQuery {
    max_results: usize,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    since: Option<u64>,
    until: Option<u64>,
    page_below: Option<u64>,
}

impl ListQuery {
    /// The query, or the message of X's 400 for its first bad parameter.
    fn parse(
        q: &HashMap<String, String>,
        sizes: std::ops::RangeInclusive<usize>,
        oldest: Option<DateTime<Utc>>,
        token: &str,
    ) -> Result<ListQuery, String> {
        let max_results = match q.get("max_results") {
            None => 10,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if sizes.contains(&n) => n,
                _ => {
                    return Err(format!(
                        "The `max_results` query parameter value [{v}] is not between {} and {}",
                        sizes.start(),
                        sizes.end()
                    ))
                }
            },
        };
        let time = |name: &str| -> Result<Option<DateTime<Utc>>, String> {
            let Some(v) = q.get(name) else {
                return Ok(None);
            };
            let t = DateTime::parse_from_rfc3339(v).map_err(|_| {
                format!(
                    "Invalid '{name}': '{v}'. '{name}' must be a timestamp (YYYY-MM-DDTHH:mm:ssZ)."
                )
            })?;
            if let Some(oldest) = oldest.filter(|o| t < *o) {
                return Err(format!(
                    "Invalid '{name}':'{v}'. '{name}' must be on or after {}",
                    oldest.to_rfc3339_opts(SecondsFormat::Secs, true)
                ));
            }
            Ok(Some(t.with_timezone(&Utc)))
        };
        let id = |name: &str| -> Result<Option<u64>, String> {
            q.get(name)
                .map(|v| {
                    v.parse::<u64>().map_err(|_| {
                        format!("The `{name}` query parameter value [{v}] is not valid")
                    })
                })
                .transpose()
        };
        let start = time("start_time")?;
        let end = time("end_time")?;
        let since = id("since_id")?;
        let until = id("until_id")?;
        let given = q.get(token).or_else(|| q.get("pagination_token"));
        let page_below = given
            .map(|t| {
                u64::from_str_radix(t, 36)
                    .map_err(|_| format!("The `{token}` query parameter value [{t}] is not valid"))
            })
            .transpose()?;
        Ok(ListQuery {
            max_results,
            start,
            end,
            since,
            until,
            page_below,
        })
    }

    /// Whether post `id`, written at `created_at`, is inside the bounds and
    /// below the page token.
    fn admits(&self, id: u64, created_at: DateTime<Utc>) -> bool {
        !(self.page_below.is_some_and(|below| id >= below)
            || self.since.is_some_and(|s| id <= s)
            || self.until.is_some_and(|u| id >= u)
            || self.end.is_some_and(|e| created_at >= e)
            || self.start.is_some_and(|s| created_at < s))
    }
}

/// `GET /2/users/:id/tweets`: newest first; `max_results` 5–100 (default
/// 10); `start_time`/`end_time` (RFC 3339), `since_id`/`until_id`
/// (exclusive), `pagination_token`; `tweet.fields` adds fields.
async fn user_posts(
    req: HttpRequest,
    path: web::Path<String>,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let mut state = shared.lock();
    state.count_request(req.path());
    let (_, rate) =
        match state.authenticate(&req, Endpoint::UserPosts, &["tweet.read", "users.read"]) {
            Ok(auth) => auth,
            Err(response) => return response,
        };
    let rate = rate.as_ref();
    let Some(owner) = path
        .parse::<u64>()
        .ok()
        .filter(|id| state.users.contains_key(id))
    else {
        return problem(
            StatusCode::NOT_FOUND,
            "Not Found Error",
            &format!("Could not find user with id: [{}].", path.as_str()),
            "https://api.x.com/2/problems/resource-not-found",
            rate,
        );
    };
    let q = query_map(&req);
    let list = match ListQuery::parse(&q, 5..=100, None, "pagination_token") {
        Ok(list) => list,
        Err(message) => return invalid_request(&message, rate),
    };
    let fields_text = q.get("tweet.fields").cloned().unwrap_or_default();
    let fields: Vec<&str> = fields_text.split(',').map(str::trim).collect();
    let ids = state.user_posts.get(&owner).cloned().unwrap_or_default();
    let mut page = Vec::new();
    let mut more = false;
    for id in ids.iter().rev() {
        let Some(post) = state.posts.get(id) else {
            continue;
        };
        if post.deleted || !list.admits(*id, post.created_at) {
            continue;
        }
        if page.len() == list.max_results {
            more = true;
            break;
        }
        page.push(*id);
    }
    let data: Vec<Value> = page
        .iter()
        .filter_map(|id| state.posts.get(id))
        .map(|p| state.post_json(p, &fields))
        .collect();
    let mut meta = json!({ "result_count": data.len() });
    if let (Some(newest), Some(oldest)) = (page.first(), page.last()) {
        meta["newest_id"] = json!(newest.to_string());
        meta["oldest_id"] = json!(oldest.to_string());
        if more {
            meta["next_token"] = json!(to_base36(*oldest));
        }
    }
    let body = if data.is_empty() {
        json!({ "meta": meta })
    } else {
        json!({ "data": data, "meta": meta })
    };
    ok_json(StatusCode::OK, body, rate)
}

/// Recent search covers this much of the past.
const SEARCH_WINDOW: chrono::Duration = chrono::Duration::days(7);

/// `GET /2/tweets/search/recent` with `query=conversation_id:<id>`: the
/// conversation's live posts of the last 7 days, newest first; `max_results`
/// 10–100 (default 10; fewer with `set_search_page_size`); `since_id`/
/// `until_id` (exclusive), `start_time`/`end_time`; `next_token` (or
/// `pagination_token`) continues below the page's oldest post, so the same
/// token gives the same page whenever it is used; `tweet.fields` adds
/// fields; `expansions=author_id` adds `includes.users` (id, name, username).
async fn search_recent(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let received_at = Utc::now();
    let mut state = shared.lock();
    state.count_request(req.path());
    let (_, rate) = match state.authenticate(&req, Endpoint::Search, &["tweet.read", "users.read"])
    {
        Ok(auth) => auth,
        Err(response) => return response,
    };
    let rate = rate.as_ref();
    let limit = state.config.limits.search;
    if let Some(response) = state.injected_fault(rate, limit, received_at) {
        return response;
    }
    let q = query_map(&req);
    let Some(query) = q.get("query").map(|v| v.trim().to_string()) else {
        return invalid_request("The `query` query parameter can not be empty", rate);
    };
    let Some(conversation) = query
        .strip_prefix("conversation_id:")
        .and_then(|id| id.parse::<u64>().ok())
    else {
        return invalid_request(
            &format!("This fake understands only `conversation_id:<id>` queries, not [{query}]"),
            rate,
        );
    };
    let oldest_allowed = received_at - SEARCH_WINDOW;
    let list = match ListQuery::parse(&q, 10..=100, Some(oldest_allowed), "next_token") {
        Ok(list) => list,
        Err(message) => return invalid_request(&message, rate),
    };
    let page_size = state
        .search_page_size
        .map_or(list.max_results, |n| n.min(list.max_results));
    let fields_text = q.get("tweet.fields").cloned().unwrap_or_default();
    let fields: Vec<&str> = fields_text.split(',').map(str::trim).collect();
    let ids = state
        .conversations
        .get(&conversation)
        .cloned()
        .unwrap_or_default();
    let mut page = Vec::new();
    let mut more = false;
    for id in ids.iter().rev() {
        let Some(post) = state.posts.get(id) else {
            continue;
        };
        if post.deleted || post.created_at < oldest_allowed || !list.admits(*id, post.created_at) {
            continue;
        }
        if page.len() == page_size {
            more = true;
            break;
        }
        page.push(*id);
    }
    let posts: Vec<&StoredPost> = page.iter().filter_map(|id| state.posts.get(id)).collect();
    let data: Vec<Value> = posts.iter().map(|p| state.post_json(p, &fields)).collect();
    let mut meta = json!({ "result_count": data.len() });
    if let (Some(newest), Some(oldest)) = (page.first(), page.last()) {
        meta["newest_id"] = json!(newest.to_string());
        meta["oldest_id"] = json!(oldest.to_string());
        if more {
            meta["next_token"] = json!(to_base36(*oldest));
        }
    }
    if data.is_empty() {
        return ok_json(StatusCode::OK, json!({ "meta": meta }), rate);
    }
    let mut body = json!({ "data": data, "meta": meta });
    let expansions = q.get("expansions").cloned().unwrap_or_default();
    if expansions.split(',').any(|e| e.trim() == "author_id") {
        let mut authors: Vec<u64> = posts.iter().map(|p| p.user_id).collect();
        authors.sort_unstable();
        authors.dedup();
        let users: Vec<Value> = authors
            .into_iter()
            .map(|id| {
                let name = state.users.get(&id).cloned().unwrap_or_default();
                json!({ "id": id.to_string(), "name": name, "username": name })
            })
            .collect();
        body["includes"] = json!({ "users": users });
    }
    ok_json(StatusCode::OK, body, rate)
}

fn to_base36(mut n: u64) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// One part of a `multipart/form-data` body.
#[derive(Debug, PartialEq, Eq)]
pub struct Part {
    pub name: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub data: Vec<u8>,
}

/// Split a `multipart/form-data` body (RFC 7578) into its parts.
pub fn parse_multipart(content_type: &str, body: &[u8]) -> Result<Vec<Part>, String> {
    let boundary = content_type
        .split(';')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("boundary="))
        .map(|b| b.trim_matches('"'))
        .filter(|b| !b.is_empty())
        .ok_or("the multipart Content-Type has no boundary")?;
    let delimiter = format!("--{boundary}").into_bytes();
    let find = |hay: &[u8], needle: &[u8], from: usize| -> Option<usize> {
        hay.get(from..)?
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|p| p + from)
    };
    let mut at = find(body, &delimiter, 0).ok_or("no multipart boundary in the body")?;
    let mut parts = Vec::new();
    loop {
        at += delimiter.len();
        if body.get(at..at + 2) == Some(b"--") {
            return Ok(parts);
        }
        if body.get(at..at + 2) != Some(b"\r\n") {
            return Err("a multipart boundary is not followed by CRLF".into());
        }
        at += 2;
        let head_end = find(body, b"\r\n\r\n", at).ok_or("a multipart part has no header end")?;
        let head = String::from_utf8_lossy(&body[at..head_end]).to_string();
        let data_start = head_end + 4;
        let mut closing = b"\r\n".to_vec();
        closing.extend_from_slice(&delimiter);
        let next = find(body, &closing, data_start).ok_or("a multipart part is not closed")?;
        let mut part = Part {
            name: String::new(),
            filename: None,
            content_type: None,
            data: body[data_start..next].to_vec(),
        };
        for line in head.split("\r\n") {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            if name.trim().eq_ignore_ascii_case("content-disposition") {
                for param in value.split(';').map(str::trim) {
                    if let Some(v) = param.strip_prefix("name=") {
                        part.name = v.trim_matches('"').to_string();
                    } else if let Some(v) = param.strip_prefix("filename=") {
                        part.filename = Some(v.trim_matches('"').to_string());
                    }
                }
            } else if name.trim().eq_ignore_ascii_case("content-type") {
                part.content_type = Some(value.trim().to_string());
            }
        }
        parts.push(part);
        at = next + 2;
    }
}

fn image_type(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

/// `POST /2/media/upload` (one-shot): multipart `media` + `media_category`
/// (optional `media_type`), or JSON with base64 `media`. Answers
/// `{"data":{"id","media_key","size","expires_after_secs","image":{…}}}`.
async fn upload_media(
    req: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let mut state = shared.lock();
    state.count_request(req.path());
    let (user_id, rate) = match state.authenticate(&req, Endpoint::Media, &["media.write"]) {
        Ok(auth) => auth,
        Err(response) => return response,
    };
    let rate = rate.as_ref();
    let ct = content_type(&req);
    let (bytes, category, media_type) = if ct.starts_with("multipart/form-data") {
        let parts = match parse_multipart(&ct, &body) {
            Ok(parts) => parts,
            Err(message) => return invalid_request(&message, rate),
        };
        let field = |name: &str| parts.iter().find(|p| p.name == name);
        let Some(media) = field("media") else {
            return invalid_request("$.media: is required", rate);
        };
        let text = |name: &str| field(name).map(|p| String::from_utf8_lossy(&p.data).to_string());
        (
            media.data.clone(),
            text("media_category"),
            text("media_type"),
        )
    } else if ct.starts_with("application/json") {
        let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let Some(bytes) = json["media"]
            .as_str()
            .and_then(|m| base64::engine::general_purpose::STANDARD.decode(m).ok())
        else {
            return invalid_request("$.media: must be base64 data", rate);
        };
        let text = |name: &str| json[name].as_str().map(str::to_string);
        (bytes, text("media_category"), text("media_type"))
    } else {
        return invalid_request(
            "Content-Type must be multipart/form-data or application/json",
            rate,
        );
    };
    let Some(category) = category else {
        return invalid_request("$.media_category: is required", rate);
    };
    if !["tweet_image", "dm_image", "subtitles"].contains(&category.as_str()) {
        return invalid_request(
            &format!(
                "$.media_category: '{category}' is not one of tweet_image, dm_image, subtitles"
            ),
            rate,
        );
    }
    if bytes.len() > MAX_IMAGE_BYTES {
        return invalid_request("$.media: images are limited to 5 MB", rate);
    }
    let Some(sniffed) = image_type(&bytes) else {
        return invalid_request("$.media: unsupported media type", rate);
    };
    if let Some(declared) = media_type.as_deref() {
        if declared != sniffed {
            return invalid_request(
                &format!("$.media_type: '{declared}' does not match the uploaded {sniffed}"),
                rate,
            );
        }
    }
    state.next_id += 1;
    let id = state.next_id;
    state.media.insert(
        id,
        FakeXMedia {
            id: id.to_string(),
            user_id: user_id.to_string(),
            media_category: category,
            content_type: sniffed.to_string(),
            size: bytes.len(),
            alt_text: None,
        },
    );
    state.media_order.push(id);
    ok_json(
        StatusCode::OK,
        json!({ "data": {
            "id": id.to_string(),
            "media_key": format!("3_{id}"),
            "size": bytes.len(),
            "expires_after_secs": 86_400,
            "image": { "image_type": sniffed, "w": 1, "h": 1 },
        }}),
        rate,
    )
}

/// `POST /2/media/metadata` `{"id", "metadata":{"alt_text":{"text"}}}`.
async fn media_metadata(
    req: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let mut state = shared.lock();
    state.count_request(req.path());
    let (user_id, rate) = match state.authenticate(&req, Endpoint::Media, &["media.write"]) {
        Ok(auth) => auth,
        Err(response) => return response,
    };
    let rate = rate.as_ref();
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(id) = json["id"].as_str().and_then(|i| i.parse::<u64>().ok()) else {
        return invalid_request("$.id: is required", rate);
    };
    let Some(alt) = json["metadata"]["alt_text"]["text"].as_str() else {
        return invalid_request("$.metadata.alt_text.text: is required", rate);
    };
    if alt.chars().count() > 1000 {
        return invalid_request("$.metadata.alt_text.text: at most 1000 characters", rate);
    }
    let Some(media) = state
        .media
        .get_mut(&id)
        .filter(|m| m.user_id == user_id.to_string())
    else {
        return problem(
            StatusCode::NOT_FOUND,
            "Not Found Error",
            &format!("Could not find media with id: [{id}]."),
            "https://api.x.com/2/problems/resource-not-found",
            rate,
        );
    };
    media.alt_text = Some(alt.to_string());
    ok_json(
        StatusCode::OK,
        json!({ "data": { "id": id.to_string(), "associated_metadata": { "alt_text": { "text": alt } } } }),
        rate,
    )
}

async fn jpeg(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    shared.lock().count_request(req.path());
    HttpResponse::Ok().content_type("image/jpeg").body(jfif(0))
}

async fn png(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    shared.lock().count_request(req.path());
    HttpResponse::Ok().content_type("image/png").body(TEST_PNG)
}

async fn not_found(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    shared.lock().count_request(req.path());
    problem(
        StatusCode::NOT_FOUND,
        "Not Found Error",
        "Not Found",
        "https://api.x.com/2/problems/resource-not-found",
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_properties_are_refused_at_every_level() {
        assert!(check_post_body(&json!({"text": "hi"})).is_ok());
        assert!(check_post_body(&json!({"text": "hi", "reply": {"in_reply_to_tweet_id": "12"}, "media": {"media_ids": ["3"]}})).is_ok());
        assert!(check_post_body(&json!({"text": "hi", "lang": "en"}))
            .unwrap_err()
            .contains("$.lang"));
        assert!(
            check_post_body(&json!({"text": "hi", "reply": {"in_reply_to_status_id": "1"}}))
                .unwrap_err()
                .contains("$.reply.in_reply_to_status_id")
        );
        assert!(check_post_body(
            &json!({"text": "hi", "media": {"media_ids": ["1","2","3","4","5"]}})
        )
        .is_err());
        assert!(
            check_post_body(&json!({"text": "hi", "reply": {"in_reply_to_tweet_id": 12}})).is_err()
        );
    }

    #[test]
    fn multipart_bodies_split_into_parts() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"media_category\"\r\n\r\ntweet_image\r\n--XyZ\r\nContent-Disposition: form-data; name=\"media\"; filename=\"a.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n\xFF\xD8\xFF\r\n\r\n--XyZ--\r\n";
        let parts = parse_multipart("multipart/form-data; boundary=XyZ", body).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "media_category");
        assert_eq!(parts[0].data, b"tweet_image");
        assert_eq!(parts[1].filename.as_deref(), Some("a.jpg"));
        assert_eq!(parts[1].content_type.as_deref(), Some("image/jpeg"));
        assert_eq!(parts[1].data, b"\xFF\xD8\xFF\r\n");
        assert!(parse_multipart("multipart/form-data", body).is_err());
    }

    #[test]
    fn texts_are_shown_escaped_with_tco_links() {
        let post = StoredPost {
            id: 42,
            user_id: 1,
            text: "Fish & chips <now> at https://example.org/menu".into(),
            reply_to: None,
            conversation_id: 42,
            media_ids: vec![7],
            created_at: Utc::now(),
            deleted: false,
        };
        let shown = rendered_text(&post);
        assert!(
            shown.starts_with("Fish &amp; chips &lt;now&gt; at https://t.co/"),
            "{shown}"
        );
        assert_eq!(shown.matches("https://t.co/").count(), 2);
        assert_eq!(to_base36(35), "z");
        assert_eq!(
            u64::from_str_radix(&to_base36(123_456_789), 36).unwrap(),
            123_456_789
        );
    }
}
