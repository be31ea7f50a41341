//! A fake Mastodon instance (shared/platforms.md §1) on a loopback port, with
//! fault injection. It serves what Herald's connector calls: posting with an
//! `Idempotency-Key` (replies with `in_reply_to_id`, images with
//! `media_ids[]`), media uploads (`POST /api/v2/media`, `GET /api/v1/media/:id`),
//! `DELETE /api/v1/statuses/:id`, the instance limits, `verify_credentials`,
//! an account's statuses, one status, a status's context
//! (`GET /api/v1/statuses/:id/context`: ancestors and descendants, at most
//! 4,096 descendants at any depth with a token, 60 down to depth 20
//! without, as the docs say; not paginated); the OAuth flow (`POST /api/v1/apps`,
//! `/.well-known/oauth-authorization-server`, `GET /oauth/authorize` that
//! auto-approves, `POST /oauth/token`, `POST /oauth/revoke`); per-account
//! rate limits with Mastodon's `X-RateLimit-*` headers; Mastodon's error bodies.
//!
//! Public API, in short:
//! - start: [`FakeMastodon::start`] / [`FakeMastodon::start_with`]; [`FakeMastodon::base_url`].
//! - users: [`FakeMastodon::add_account`] (returns a token with every scope);
//!   [`FakeMastodon::set_authorizing_account`] picks who approves `GET /oauth/authorize`
//!   (default: the account added last).
//! - OAuth: [`FakeMastodon::set_oauth_metadata`] (`false`: the metadata answers
//!   404 and PKCE parameters are ignored, like an instance before 4.3);
//!   [`FakeMastodon::apps`], [`FakeMastodon::token_requests`].
//! - the public: [`FakeMastodon::add_reply`] (another user answers a status;
//!   returns the reply's id; `author` `name@other.host` plays a remote user),
//!   [`FakeMastodon::add_reply_at`] (a reply fetched late from another server:
//!   its id comes from its older `created_at`, as Mastodon's snowflakes do);
//!   deleting a reply with [`FakeMastodon::delete_status`].
//! - faults: [`FakeMastodon::revoke`], [`FakeMastodon::fail_next`],
//!   [`FakeMastodon::rate_limit_next`] (both also hit context reads),
//!   [`FakeMastodon::drop_after_store_next`],
//!   [`FakeMastodon::stall_after_store_next`], [`FakeMastodon::set_latency`],
//!   [`FakeMastodon::set_max_characters`], [`FakeMastodon::set_media_processing`]
//!   (uploads answer 202 and need that many polls).
//! - media to download: [`FakeMastodon::image_url`], [`FakeMastodon::image_url_of_size`].
//! - inspection: [`FakeMastodon::posts`] (reply parents, media with alt text,
//!   deleted flag), [`FakeMastodon::media`], [`FakeMastodon::post_requests`],
//!   [`FakeMastodon::requests_to`]; [`FakeMastodon::seed_status`].
//!
//! The server runs on its own OS thread with its own actix system, so it
//! works under any caller runtime and keeps answering while the caller
//! blocks. Every handler does O(1) work under one lock (hash maps, an
//! append-only list of ids per account), so a burst of thousands of posts
//! measures the client, not the fake.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix_web::body::BoxBody;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::fakes::server::{
    bearer, jpeg_of_size, random_token, sized_jpeg, FakeServer, Faults, Outcome,
};
use crate::platforms::text::{http_url_ranges, mastodon_length};

/// How long Mastodon keeps an `Idempotency-Key` (platforms.md §1.3).
const IDEMPOTENCY_TTL: Duration = Duration::from_secs(3600);
/// Doorkeeper's default lifetime of an authorization code.
const CODE_TTL: Duration = Duration::from_secs(600);
/// `configuration.media_attachments.image_size_limit`.
const IMAGE_SIZE_LIMIT: usize = 16 * 1024 * 1024;
/// Mastodon's longest media description.
const MAX_DESCRIPTION: usize = 1500;
/// Mastodon's `max_media_attachments`.
const MAX_MEDIA: usize = 4;
/// `GET /api/v1/statuses/:id/context` with a token: descendants and depth.
const CONTEXT_LIMIT_AUTHENTICATED: (usize, usize) = (4096, usize::MAX);
/// The same without a token.
const CONTEXT_LIMIT_ANONYMOUS: (usize, usize) = (60, 20);

/// A per-account request budget, like Mastodon's rack-attack throttle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub limit: u32,
    /// Windows are aligned on multiples of this length since the epoch.
    pub window: Duration,
}

/// Settings of a [`FakeMastodon`].
#[derive(Debug, Clone)]
pub struct FakeMastodonConfig {
    /// `configuration.statuses.max_characters` (Mastodon's default is 500).
    pub max_characters: usize,
    /// `None` turns rate limiting (and its headers) off.
    pub rate_limit: Option<RateLimit>,
    /// HTTP workers of the fake.
    pub workers: usize,
}

impl Default for FakeMastodonConfig {
    /// Mastodon's documented defaults: 500 characters, 300 requests per 5 minutes per account.
    fn default() -> Self {
        Self {
            max_characters: 500,
            rate_limit: Some(RateLimit {
                limit: 300,
                window: Duration::from_secs(300),
            }),
            workers: 4,
        }
    }
}

/// A status the fake stored, as it received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeStatus {
    pub id: String,
    pub username: String,
    /// The `status` parameter, exactly as received.
    pub text: String,
    pub spoiler_text: String,
    pub idempotency_key: Option<String>,
    pub language: Option<String>,
    pub visibility: String,
    pub in_reply_to_id: Option<String>,
    /// When the request arrived (before any injected latency).
    pub received_at: DateTime<Utc>,
    /// The status's `created_at`.
    pub created_at: DateTime<Utc>,
    /// The attachments, in the order of `media_ids[]`.
    pub media: Vec<FakeMedia>,
    /// Deleted with `DELETE /api/v1/statuses/:id`.
    pub deleted: bool,
}

/// An uploaded media attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeMedia {
    pub id: String,
    /// The `description` (alt text), if one was sent.
    pub description: Option<String>,
    /// The `Content-Type` of the `file` part.
    pub content_type: String,
    pub filename: Option<String>,
    /// Size of the file in bytes.
    pub size: usize,
    /// The SHA-256 of the file, hex.
    pub sha256: String,
    /// The status it is attached to.
    pub status_id: Option<String>,
}

/// An app registered with `POST /api/v1/apps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeApp {
    pub name: String,
    pub website: Option<String>,
    pub redirect_uris: Vec<String>,
    pub scopes: Vec<String>,
    pub client_id: String,
    pub client_secret: String,
}

/// A running fake instance; stops when dropped.
pub struct FakeMastodon {
    shared: Arc<Shared>,
    server: FakeServer,
}

impl FakeMastodon {
    /// Start with [`FakeMastodonConfig::default`].
    pub async fn start() -> FakeMastodon {
        Self::start_with(FakeMastodonConfig::default()).await
    }

    /// Start on `127.0.0.1:<free port>` with `config`.
    pub async fn start_with(config: FakeMastodonConfig) -> FakeMastodon {
        let port = FakeServer::bind("fake-mastodon");
        let workers = config.workers;
        let shared = Arc::new(Shared::new(port.base_url(), config));
        let server = port
            .serve(
                workers,
                shared.clone(),
                IMAGE_SIZE_LIMIT + (1 << 16),
                |app| {
                    app.route("/api/v1/statuses", web::post().to(post_status))
                        .route("/api/v1/statuses/{id}", web::get().to(get_status))
                        .route(
                            "/api/v1/statuses/{id}/context",
                            web::get().to(status_context),
                        )
                        .route("/api/v1/statuses/{id}", web::delete().to(delete_status))
                        .route("/api/v2/media", web::post().to(upload_media))
                        .route("/api/v1/media/{id}", web::get().to(get_media))
                        .route("/api/v1/apps", web::post().to(create_app))
                        .route(
                            "/.well-known/oauth-authorization-server",
                            web::get().to(oauth_metadata),
                        )
                        .route("/oauth/authorize", web::get().to(oauth_authorize))
                        .route("/oauth/token", web::post().to(oauth_token))
                        .route("/oauth/revoke", web::post().to(oauth_revoke))
                        .route("/fake/image.jpg", web::get().to(image))
                        .route("/fake/image/{size}", web::get().to(image))
                        .route("/api/v2/instance", web::get().to(instance))
                        .route(
                            "/api/v1/accounts/verify_credentials",
                            web::get().to(verify_credentials),
                        )
                        .route(
                            "/api/v1/accounts/{id}/statuses",
                            web::get().to(account_statuses),
                        )
                        .default_service(web::to(not_found));
                },
            )
            .await;
        FakeMastodon { shared, server }
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        self.server.base_url().to_string()
    }

    /// Create a user and return a fresh access token for it.
    pub fn add_account(&self, username: &str) -> String {
        let mut state = self.shared.lock();
        state.next_account += 1;
        let id = state.next_account;
        state.accounts.insert(
            id,
            Account {
                username: username.to_string(),
                acct: username.to_string(),
                created_at: Utc::now(),
                status_ids: Vec::new(),
                window: (0, 0),
            },
        );
        let token = random_secret();
        state.tokens.insert(
            token.clone(),
            TokenEntry {
                account_id: id,
                revoked: false,
                client_id: None,
            },
        );
        state.authorizing_account = Some(id);
        token
    }

    /// The user `author` (created on first use: a local user, or a remote
    /// one when it reads `name@host`) answers status `parent_id`, now.
    /// Returns the reply's id; `None` if `parent_id` is not a status here.
    pub fn add_reply(&self, parent_id: &str, author: &str, text: &str) -> Option<String> {
        let mut state = self.shared.lock();
        let now = Utc::now();
        let id = state.next_id();
        state.store_reply(id, parent_id, author, text, now)
    }

    /// Like [`FakeMastodon::add_reply`], for a reply written at `created_at`
    /// and fetched only now from its server: Mastodon derives the id of such
    /// a status from its `created_at`, so it sorts before replies seen earlier.
    pub fn add_reply_at(
        &self,
        parent_id: &str,
        author: &str,
        text: &str,
        created_at: DateTime<Utc>,
    ) -> Option<String> {
        let mut state = self.shared.lock();
        let id = ((created_at.timestamp_millis().max(0) as u64) << 16) | 0x7fff;
        if state.statuses.contains_key(&id) {
            return None;
        }
        state.store_reply(id, parent_id, author, text, created_at)
    }

    /// Delete status `id` (its author deleted it): it leaves every listing.
    pub fn delete_status(&self, id: &str) {
        let mut state = self.shared.lock();
        let Ok(id) = id.parse::<u64>() else {
            return;
        };
        let Some(account_id) = state.statuses.get_mut(&id).map(|s| {
            s.fake.deleted = true;
            s.account_id
        }) else {
            return;
        };
        if let Some(account) = state.accounts.get_mut(&account_id) {
            account.status_ids.retain(|s| *s != id);
        }
    }

    /// The user who approves `GET /oauth/authorize` (by default the account added last).
    pub fn set_authorizing_account(&self, username: &str) {
        let mut state = self.shared.lock();
        let id = state
            .accounts
            .iter()
            .find(|(_, a)| a.username == username)
            .map(|(id, _)| *id);
        if id.is_some() {
            state.authorizing_account = id;
        }
    }

    /// `true` (default): `/.well-known/oauth-authorization-server` lists
    /// `code_challenge_methods_supported: ["S256"]` and PKCE is enforced when a
    /// challenge is sent. `false`: an instance before 4.3: the metadata is a
    /// 404 and PKCE parameters are ignored.
    pub fn set_oauth_metadata(&self, enabled: bool) {
        self.shared.lock().oauth_metadata = enabled;
    }

    /// The apps registered with `POST /api/v1/apps`, oldest first.
    pub fn apps(&self) -> Vec<FakeApp> {
        self.shared.lock().apps.clone()
    }

    /// `POST /oauth/token` requests received.
    pub fn token_requests(&self) -> usize {
        self.requests_to("/oauth/token")
    }

    /// Whether `token` exists and has been revoked.
    pub fn is_revoked(&self, token: &str) -> bool {
        self.shared
            .lock()
            .tokens
            .get(token)
            .is_some_and(|t| t.revoked)
    }

    /// Uploads answer 202 (still processing) and `GET /api/v1/media/:id`
    /// answers 206 `polls` times before the attachment is ready. 0 (default):
    /// uploads answer 200, ready.
    pub fn set_media_processing(&self, polls: usize) {
        self.shared.lock().media_processing_polls = polls;
    }

    /// A small JPEG the fake serves (`GET /fake/image.jpg`), for media tests.
    pub fn image_url(&self) -> String {
        format!("{}/fake/image.jpg", self.server.base_url())
    }

    /// A JPEG of exactly `size` bytes (at least 4) the fake serves.
    pub fn image_url_of_size(&self, size: usize) -> String {
        format!("{}/fake/image/{size}", self.server.base_url())
    }

    /// The bytes [`FakeMastodon::image_url_of_size`] serves.
    pub fn image_bytes(size: usize) -> Vec<u8> {
        jpeg_of_size(size)
    }

    /// Every uploaded attachment, oldest first.
    pub fn media(&self) -> Vec<FakeMedia> {
        let state = self.shared.lock();
        state
            .media_order
            .iter()
            .filter_map(|id| state.media.get(id))
            .map(|m| m.fake.clone())
            .collect()
    }

    /// Revoke `token`: later calls with it get 401 "The access token was revoked".
    pub fn revoke(&self, token: &str) {
        if let Some(entry) = self.shared.lock().tokens.get_mut(token) {
            entry.revoked = true;
        }
    }

    /// The next `n` status posts or context reads get `status` (a 5xx) and
    /// store nothing.
    pub fn fail_next(&self, n: usize, status: u16) {
        self.shared.lock().faults.fail.arm(n, status);
    }

    /// The next `n` status posts or context reads get a 429 whose reset is
    /// `reset_in` from now, and store nothing.
    pub fn rate_limit_next(&self, n: usize, reset_in: Duration) {
        self.shared.lock().faults.rate_limit.arm(n, reset_in);
    }

    /// The next `n` status posts that create a status store it, then close the
    /// connection without answering.
    pub fn drop_after_store_next(&self, n: usize) {
        self.shared.lock().faults.drop_after_store.arm(n, ());
    }

    /// The next `n` status posts that create a status store it, then wait `stall` before answering.
    pub fn stall_after_store_next(&self, n: usize, stall: Duration) {
        self.shared.lock().faults.stall_after_store.arm(n, stall);
    }

    /// Every status post waits `latency` before it is handled.
    pub fn set_latency(&self, latency: Duration) {
        self.shared.lock().latency = latency;
    }

    /// Change `configuration.statuses.max_characters` and the length check.
    pub fn set_max_characters(&self, max: usize) {
        self.shared.lock().max_characters = max;
    }

    /// Add a status for the user of `token` as if it had been posted at
    /// `created_at` (to test lookups of old posts). Returns its id.
    pub fn seed_status(
        &self,
        token: &str,
        text: &str,
        created_at: DateTime<Utc>,
    ) -> Option<String> {
        let mut state = self.shared.lock();
        let account_id = state.tokens.get(token)?.account_id;
        let params = StatusParams {
            status: Some(text.to_string()),
            ..StatusParams::default()
        };
        let id = state.store(account_id, &params, None, created_at, created_at);
        Some(id.to_string())
    }

    /// Every stored status, oldest first.
    pub fn posts(&self) -> Vec<FakeStatus> {
        let state = self.shared.lock();
        state
            .all_ids
            .iter()
            .filter_map(|id| state.statuses.get(id))
            .map(|s| s.fake.clone())
            .collect()
    }

    /// `POST /api/v1/statuses` requests received, failed ones included.
    pub fn post_requests(&self) -> usize {
        self.shared.lock().post_requests
    }

    /// Requests received whose path starts with `path_prefix`.
    pub fn requests_to(&self, path_prefix: &str) -> usize {
        let state = self.shared.lock();
        state
            .requests_by_path
            .iter()
            .filter(|(path, _)| path.starts_with(path_prefix))
            .map(|(_, n)| n)
            .sum()
    }
}

// ---------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------

struct Shared {
    base_url: String,
    domain: String,
    state: Mutex<State>,
}

impl Shared {
    fn new(base_url: String, config: FakeMastodonConfig) -> Self {
        let domain = base_url.trim_start_matches("http://").to_string();
        // Snowflake-like ids: numeric, increasing, and far from small integers.
        let first_id = (Utc::now().timestamp_millis().max(0) as u64) << 16;
        Self {
            base_url,
            domain,
            state: Mutex::new(State {
                max_characters: config.max_characters,
                rate_limit: config.rate_limit,
                latency: Duration::ZERO,
                next_account: 100_000,
                next_status: first_id,
                tokens: HashMap::new(),
                accounts: HashMap::new(),
                statuses: HashMap::new(),
                all_ids: Vec::new(),
                children: HashMap::new(),
                idempotency: HashMap::new(),
                post_requests: 0,
                requests_by_path: HashMap::new(),
                faults: Faults::default(),
                media: HashMap::new(),
                media_order: Vec::new(),
                next_media: first_id,
                media_processing_polls: 0,
                apps: Vec::new(),
                codes: HashMap::new(),
                oauth_metadata: true,
                authorizing_account: None,
            }),
        }
    }

    /// The state, even if a panicking thread poisoned the lock (the fake never panics while holding it).
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct TokenEntry {
    account_id: u64,
    revoked: bool,
    /// The app that obtained it through OAuth (`None`: made by `add_account`).
    client_id: Option<String>,
}

struct StoredMedia {
    account_id: u64,
    /// Polls still to answer 206 before the attachment is ready.
    polls_left: usize,
    fake: FakeMedia,
}

/// An authorization code waiting for `POST /oauth/token`.
struct Code {
    client_id: String,
    redirect_uri: String,
    account_id: u64,
    scopes: String,
    challenge: Option<String>,
    issued: Instant,
}

struct Account {
    username: String,
    /// `username` for a local user, `username@host` for a remote one.
    acct: String,
    created_at: DateTime<Utc>,
    /// Ids of the account's statuses, ascending (ids only grow).
    status_ids: Vec<u64>,
    /// Rate-limit window index and requests counted in it.
    window: (i64, u32),
}

struct StoredStatus {
    account_id: u64,
    content: String,
    fake: FakeStatus,
}

struct State {
    max_characters: usize,
    rate_limit: Option<RateLimit>,
    latency: Duration,
    next_account: u64,
    next_status: u64,
    tokens: HashMap<String, TokenEntry>,
    accounts: HashMap<u64, Account>,
    statuses: HashMap<u64, StoredStatus>,
    all_ids: Vec<u64>,
    /// Status id → the ids of the statuses answering it, ascending.
    children: HashMap<u64, Vec<u64>>,
    /// (account id, key) → (status id, when the key was stored).
    idempotency: HashMap<(u64, String), (u64, Instant)>,
    post_requests: usize,
    requests_by_path: HashMap<String, usize>,
    faults: Faults<Duration>,
    media: HashMap<u64, StoredMedia>,
    media_order: Vec<u64>,
    next_media: u64,
    media_processing_polls: usize,
    apps: Vec<FakeApp>,
    codes: HashMap<String, Code>,
    oauth_metadata: bool,
    authorizing_account: Option<u64>,
}

#[derive(Default)]
struct StatusParams {
    status: Option<String>,
    visibility: Option<String>,
    language: Option<String>,
    in_reply_to_id: Option<String>,
    spoiler_text: Option<String>,
    media_ids: Vec<String>,
}

/// `X-RateLimit-*` values of one answer.
struct RateHeaders {
    limit: u32,
    remaining: u32,
    reset: DateTime<Utc>,
}

impl RateHeaders {
    fn apply(&self, builder: &mut HttpResponseBuilder) {
        builder
            .insert_header(("X-RateLimit-Limit", self.limit.to_string()))
            .insert_header(("X-RateLimit-Remaining", self.remaining.to_string()))
            .insert_header((
                "X-RateLimit-Reset",
                self.reset.to_rfc3339_opts(SecondsFormat::Micros, true),
            ));
    }
}

fn error(status: StatusCode, message: &str, rate: Option<&RateHeaders>) -> HttpResponse {
    let mut builder = HttpResponse::build(status);
    if let Some(rate) = rate {
        rate.apply(&mut builder);
    }
    builder.json(json!({ "error": message }))
}

fn ok_json(body: Value, rate: Option<&RateHeaders>) -> HttpResponse {
    let mut builder = HttpResponse::Ok();
    if let Some(rate) = rate {
        rate.apply(&mut builder);
    }
    builder.json(body)
}

impl State {
    fn count_request(&mut self, path: &str) {
        *self.requests_by_path.entry(path.to_string()).or_insert(0) += 1;
    }

    /// Resolve the caller's token and charge its rate limit. `Ok(None)`: no
    /// token was sent and `required` is false.
    // The error is the answer to send; boxing it would buy nothing here.
    #[allow(clippy::result_large_err)]
    fn authenticate(
        &mut self,
        req: &HttpRequest,
        required: bool,
    ) -> Result<Option<(u64, Option<RateHeaders>)>, HttpResponse> {
        if !req.headers().contains_key("authorization") {
            if !required {
                return Ok(None);
            }
            return Err(error(
                StatusCode::UNAUTHORIZED,
                "The access token is invalid",
                None,
            ));
        }
        // A header that is not a bearer token names no account.
        let token = bearer(req).unwrap_or_default();
        let account_id = match self.tokens.get(token) {
            Some(entry) if entry.revoked => {
                return Err(error(
                    StatusCode::UNAUTHORIZED,
                    "The access token was revoked",
                    None,
                ))
            }
            Some(entry) => entry.account_id,
            None => {
                return Err(error(
                    StatusCode::UNAUTHORIZED,
                    "The access token is invalid",
                    None,
                ))
            }
        };
        let Some(limit) = self.rate_limit else {
            return Ok(Some((account_id, None)));
        };
        let Some(account) = self.accounts.get_mut(&account_id) else {
            return Err(error(
                StatusCode::UNAUTHORIZED,
                "The access token is invalid",
                None,
            ));
        };
        // rack-attack: fixed windows aligned on the epoch; the reset keeps the
        // current sub-second part (hence Mastodon's `…:00.019685Z`).
        let now = Utc::now();
        let window_ms = (limit.window.as_millis() as i64).max(1);
        let now_ms = now.timestamp_millis();
        let index = now_ms.div_euclid(window_ms);
        if account.window.0 != index {
            account.window = (index, 0);
        }
        account.window.1 = account.window.1.saturating_add(1);
        let rate = RateHeaders {
            limit: limit.limit,
            remaining: limit.limit.saturating_sub(account.window.1),
            reset: now + chrono::Duration::milliseconds(window_ms - now_ms.rem_euclid(window_ms)),
        };
        if account.window.1 > limit.limit {
            return Err(error(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many requests",
                Some(&rate),
            ));
        }
        Ok(Some((account_id, Some(rate))))
    }

    /// An armed failure or 429 (`fail_next`, `rate_limit_next`), counted down.
    fn injected_fault(&mut self, rate: Option<&RateHeaders>) -> Option<HttpResponse> {
        if let Some(status) = self.faults.fail.take() {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return Some(error(status, "Injected failure", rate));
        }
        let reset_in = self.faults.rate_limit.take()?;
        let limited = RateHeaders {
            limit: self.rate_limit.map_or(300, |l| l.limit),
            remaining: 0,
            reset: Utc::now()
                + chrono::Duration::from_std(reset_in)
                    .unwrap_or_else(|_| chrono::Duration::seconds(300)),
        };
        Some(error(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many requests",
            Some(&limited),
        ))
    }

    /// The statuses answering `id`, depth first (each level by id), at
    /// most `limit` of them down to `max_depth`; a deleted status hides
    /// its own answers, as its row is gone.
    fn descendants(&self, id: u64, limit: usize, max_depth: usize) -> Vec<u64> {
        let visible = |id: &u64| self.statuses.get(id).is_some_and(|s| !s.fake.deleted);
        let children = |id: u64| {
            self.children
                .get(&id)
                .into_iter()
                .flatten()
                .rev()
                .copied()
                .collect::<Vec<u64>>()
        };
        let mut out = Vec::new();
        let mut stack: Vec<(u64, usize)> = children(id).into_iter().map(|c| (c, 1)).collect();
        while let Some((child, depth)) = stack.pop() {
            if out.len() >= limit {
                break;
            }
            if !visible(&child) {
                continue;
            }
            out.push(child);
            if depth < max_depth {
                stack.extend(children(child).into_iter().map(|c| (c, depth + 1)));
            }
        }
        out
    }

    /// The statuses `id` answers, the thread's first status first.
    fn ancestors(&self, id: u64) -> Vec<u64> {
        let mut out = Vec::new();
        let mut current = id;
        while let Some(parent) = self
            .statuses
            .get(&current)
            .and_then(|s| s.fake.in_reply_to_id.as_deref())
            .and_then(|p| p.parse::<u64>().ok())
        {
            if out.contains(&parent) || self.statuses.get(&parent).is_none_or(|s| s.fake.deleted) {
                break;
            }
            out.push(parent);
            current = parent;
        }
        out.reverse();
        out
    }

    fn store(
        &mut self,
        account_id: u64,
        params: &StatusParams,
        idempotency_key: Option<&str>,
        received_at: DateTime<Utc>,
        created_at: DateTime<Utc>,
    ) -> u64 {
        let id = self.next_id();
        self.store_as(
            id,
            account_id,
            params,
            idempotency_key,
            received_at,
            created_at,
        );
        id
    }

    fn next_id(&mut self) -> u64 {
        self.next_status += 1;
        self.next_status
    }

    /// A reply by `author` (an account made on first use) to `parent_id`.
    fn store_reply(
        &mut self,
        id: u64,
        parent_id: &str,
        author: &str,
        text: &str,
        created_at: DateTime<Utc>,
    ) -> Option<String> {
        let parent = parent_id.parse::<u64>().ok()?;
        if self.statuses.get(&parent).is_none_or(|s| s.fake.deleted) {
            return None;
        }
        let author = author.trim_start_matches('@');
        let existing = self
            .accounts
            .iter()
            .find(|(_, a)| a.acct == author)
            .map(|(id, _)| *id);
        let account_id = match existing {
            Some(account_id) => account_id,
            None => {
                self.next_account += 1;
                let account_id = self.next_account;
                let username = author.split('@').next().unwrap_or(author).to_string();
                self.accounts.insert(
                    account_id,
                    Account {
                        username,
                        acct: author.to_string(),
                        created_at,
                        status_ids: Vec::new(),
                        window: (0, 0),
                    },
                );
                account_id
            }
        };
        let params = StatusParams {
            status: Some(text.to_string()),
            in_reply_to_id: Some(parent.to_string()),
            ..StatusParams::default()
        };
        self.store_as(id, account_id, &params, None, Utc::now(), created_at);
        Some(id.to_string())
    }

    fn store_as(
        &mut self,
        id: u64,
        account_id: u64,
        params: &StatusParams,
        idempotency_key: Option<&str>,
        received_at: DateTime<Utc>,
        created_at: DateTime<Utc>,
    ) {
        let text = params.status.clone().unwrap_or_default();
        let username = self
            .accounts
            .get(&account_id)
            .map(|a| a.username.clone())
            .unwrap_or_default();
        let fake = FakeStatus {
            id: id.to_string(),
            username,
            text: text.clone(),
            spoiler_text: params.spoiler_text.clone().unwrap_or_default(),
            idempotency_key: idempotency_key.map(str::to_string),
            language: params.language.clone().filter(|l| !l.is_empty()),
            visibility: params
                .visibility
                .clone()
                .unwrap_or_else(|| "public".to_string()),
            in_reply_to_id: params.in_reply_to_id.clone().filter(|r| !r.is_empty()),
            received_at,
            created_at,
            media: Vec::new(),
            deleted: false,
        };
        self.statuses.insert(
            id,
            StoredStatus {
                account_id,
                content: render_content(&text),
                fake,
            },
        );
        self.all_ids.push(id);
        if let Some(account) = self.accounts.get_mut(&account_id) {
            let at = account.status_ids.partition_point(|s| *s < id);
            account.status_ids.insert(at, id);
        }
        if let Some(parent) = params
            .in_reply_to_id
            .as_deref()
            .and_then(|p| p.parse::<u64>().ok())
        {
            let children = self.children.entry(parent).or_default();
            let at = children.partition_point(|c| *c < id);
            children.insert(at, id);
        }
        // Like PostStatusService: the account's own unattached, processed
        // uploads among the first four ids; unknown ids are ignored.
        let mut attached = Vec::new();
        for media_id in params.media_ids.iter().take(MAX_MEDIA) {
            let Ok(media_id) = media_id.parse::<u64>() else {
                continue;
            };
            if let Some(media) = self.media.get_mut(&media_id) {
                if media.account_id == account_id && media.fake.status_id.is_none() {
                    media.fake.status_id = Some(id.to_string());
                    attached.push(media.fake.clone());
                }
            }
        }
        if let Some(stored) = self.statuses.get_mut(&id) {
            stored.fake.media = attached;
        }
        if let Some(key) = idempotency_key {
            self.idempotency
                .insert((account_id, key.to_string()), (id, Instant::now()));
        }
    }

    fn account_json(&self, base_url: &str, id: u64) -> Value {
        match self.accounts.get(&id) {
            Some(a) => json!({
                "id": id.to_string(),
                "username": a.username,
                "acct": a.acct,
                "display_name": a.username,
                "locked": false,
                "bot": false,
                "created_at": a.created_at.to_rfc3339_opts(SecondsFormat::Millis, true),
                "note": "",
                "url": format!("{base_url}/@{}", a.acct),
                "statuses_count": a.status_ids.len(),
            }),
            None => Value::Null,
        }
    }

    fn status_json(&self, base_url: &str, id: u64) -> Value {
        let Some(s) = self.statuses.get(&id) else {
            return Value::Null;
        };
        let f = &s.fake;
        json!({
            "id": f.id,
            "created_at": f.created_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            "in_reply_to_id": f.in_reply_to_id,
            "in_reply_to_account_id": Value::Null,
            "sensitive": !f.spoiler_text.is_empty(),
            "spoiler_text": f.spoiler_text,
            "visibility": f.visibility,
            "language": f.language,
            "uri": format!("{base_url}/users/{}/statuses/{}", f.username, f.id),
            "url": format!(
                "{base_url}/@{}/{}",
                self.accounts.get(&s.account_id).map_or(f.username.as_str(), |a| a.acct.as_str()),
                f.id
            ),
            "replies_count": self.children.get(&id).map_or(0, |children| {
                children
                    .iter()
                    .filter(|c| self.statuses.get(c).is_some_and(|s| !s.fake.deleted))
                    .count()
            }),
            "reblogs_count": 0,
            "favourites_count": 0,
            "edited_at": Value::Null,
            "content": s.content,
            "reblog": Value::Null,
            "account": self.account_json(base_url, s.account_id),
            "media_attachments": f.media.iter().map(|m| media_json(base_url, m, true)).collect::<Vec<_>>(),
            "mentions": [],
            "tags": [],
            "emojis": [],
            "card": Value::Null,
            "poll": Value::Null,
        })
    }

    /// The whole of `POST /api/v1/statuses` after the injected latency, under the lock.
    fn post_status(
        &mut self,
        base_url: &str,
        req: &HttpRequest,
        body: &[u8],
        received_at: DateTime<Utc>,
    ) -> Outcome {
        let (account_id, rate) = match self.authenticate(req, true) {
            Ok(Some(auth)) => auth,
            Ok(None) => {
                return Outcome::Answer(error(
                    StatusCode::UNAUTHORIZED,
                    "The access token is invalid",
                    None,
                ))
            }
            Err(response) => return Outcome::Answer(response),
        };
        let rate = rate.as_ref();
        if let Some(response) = self.injected_fault(rate) {
            return Outcome::Answer(response);
        }
        let content_type = super::server::content_type(req);
        let params = match parse_params(&content_type, body) {
            Ok(params) => params,
            Err((status, message)) => return Outcome::Answer(error(status, message, rate)),
        };
        if let Some(reply_to) = params.in_reply_to_id.as_deref().filter(|r| !r.is_empty()) {
            let exists = reply_to
                .parse::<u64>()
                .ok()
                .and_then(|id| self.statuses.get(&id))
                .is_some_and(|s| !s.fake.deleted);
            if !exists {
                return Outcome::Answer(error(
                    StatusCode::NOT_FOUND,
                    "The post you are trying to reply to does not appear to exist.",
                    rate,
                ));
            }
        }
        let key = req
            .headers()
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .filter(|k| !k.trim().is_empty())
            .map(str::to_string);
        // Mastodon answers a known key with the original status before validating anything.
        if let Some(key) = &key {
            if let Some(&(id, at)) = self.idempotency.get(&(account_id, key.clone())) {
                if at.elapsed() < IDEMPOTENCY_TTL && self.statuses.contains_key(&id) {
                    return Outcome::Answer(ok_json(self.status_json(base_url, id), rate));
                }
            }
        }
        if params.media_ids.len() > MAX_MEDIA {
            let message = format!("Cannot attach more than {MAX_MEDIA} files");
            return Outcome::Answer(error(StatusCode::UNPROCESSABLE_ENTITY, &message, rate));
        }
        let processing = params.media_ids.iter().any(|m| {
            m.parse::<u64>()
                .ok()
                .and_then(|id| self.media.get(&id))
                .is_some_and(|m| m.account_id == account_id && m.polls_left > 0)
        });
        if processing {
            return Outcome::Answer(error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Cannot attach files that have not finished processing. Try again in a moment!",
                rate,
            ));
        }
        let text = params.status.as_deref().unwrap_or("");
        if text.trim().is_empty() && params.media_ids.is_empty() {
            return Outcome::Answer(error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Validation failed: Text can't be blank",
                rate,
            ));
        }
        let counted = format!("{}{text}", params.spoiler_text.as_deref().unwrap_or(""));
        if mastodon_length(&counted) > self.max_characters {
            let message = format!(
                "Validation failed: Text character limit of {} exceeded",
                self.max_characters
            );
            return Outcome::Answer(error(StatusCode::UNPROCESSABLE_ENTITY, &message, rate));
        }
        if let Some(visibility) = params.visibility.as_deref() {
            if !matches!(visibility, "public" | "unlisted" | "private" | "direct") {
                let message = format!("'{visibility}' is not a valid visibility");
                return Outcome::Answer(error(StatusCode::UNPROCESSABLE_ENTITY, &message, rate));
            }
        }
        let id = self.store(account_id, &params, key.as_deref(), received_at, Utc::now());
        let response = ok_json(self.status_json(base_url, id), rate);
        self.faults.after_store(response)
    }
}

/// Read `status`, `visibility`, … from a JSON or form body (Rails accepts both).
fn parse_params(
    content_type: &str,
    body: &[u8],
) -> Result<StatusParams, (StatusCode, &'static str)> {
    let mut params = StatusParams::default();
    if content_type.starts_with("application/json") {
        let value: Value = serde_json::from_slice(body).map_err(|_| {
            (
                StatusCode::BAD_REQUEST,
                "Error occurred while parsing request parameters",
            )
        })?;
        let Value::Object(map) = value else {
            return Err((
                StatusCode::BAD_REQUEST,
                "Error occurred while parsing request parameters",
            ));
        };
        let field = |name: &str| match map.get(name) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        params.status = field("status");
        params.visibility = field("visibility");
        params.language = field("language");
        params.in_reply_to_id = field("in_reply_to_id");
        params.spoiler_text = field("spoiler_text");
        if let Some(Value::Array(ids)) = map.get("media_ids") {
            params.media_ids = ids
                .iter()
                .filter_map(|v| match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect();
        }
    } else if content_type.is_empty()
        || content_type.starts_with("application/x-www-form-urlencoded")
    {
        for (name, value) in form_urlencoded::parse(body) {
            if name == "media_ids[]" || name == "media_ids" {
                params.media_ids.push(value.into_owned());
                continue;
            }
            let slot = match name.as_ref() {
                "status" => &mut params.status,
                "visibility" => &mut params.visibility,
                "language" => &mut params.language,
                "in_reply_to_id" => &mut params.in_reply_to_id,
                "spoiler_text" => &mut params.spoiler_text,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(value.into_owned());
            }
        }
    } else {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "This fake accepts form-urlencoded or JSON bodies",
        ));
    }
    Ok(params)
}

/// The HTML Mastodon makes of a plain-text status: escaped, http(s) links as
/// `<a>` with Mastodon's invisible/ellipsis spans, paragraphs (blank lines)
/// as `<p>`, single newlines as `<br />`.
pub fn render_content(text: &str) -> String {
    let text = text.trim().replace("\r\n", "\n").replace('\r', "\n");
    let mut html = String::with_capacity(text.len() + 16);
    let mut paragraphs = Vec::new();
    let mut rest = text.as_str();
    // Rails `simple_format`: paragraphs are separated by two or more newlines.
    while let Some(at) = rest.find("\n\n") {
        paragraphs.push(&rest[..at]);
        rest = rest[at..].trim_start_matches('\n');
    }
    paragraphs.push(rest);
    for paragraph in paragraphs {
        html.push_str("<p>");
        let mut last = 0;
        for (start, end) in http_url_ranges(paragraph) {
            push_escaped(&mut html, &paragraph[last..start]);
            push_link(&mut html, &paragraph[start..end]);
            last = end;
        }
        push_escaped(&mut html, &paragraph[last..]);
        html.push_str("</p>");
    }
    html
}

fn push_escaped(html: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => html.push_str("&amp;"),
            '<' => html.push_str("&lt;"),
            '>' => html.push_str("&gt;"),
            '"' => html.push_str("&quot;"),
            '\'' => html.push_str("&#39;"),
            '\n' => html.push_str("<br />"),
            c => html.push(c),
        }
    }
}

fn push_link(html: &mut String, url: &str) {
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    let visible_end = rest.char_indices().nth(30).map_or(rest.len(), |(i, _)| i);
    let (visible, hidden) = rest.split_at(visible_end);
    html.push_str("<a href=\"");
    push_escaped(html, url);
    html.push_str("\" target=\"_blank\" rel=\"nofollow noopener noreferrer\" translate=\"no\"><span class=\"invisible\">");
    push_escaped(html, scheme);
    html.push_str(if hidden.is_empty() {
        "</span><span class=\"\">"
    } else {
        "</span><span class=\"ellipsis\">"
    });
    push_escaped(html, visible);
    html.push_str("</span><span class=\"invisible\">");
    push_escaped(html, hidden);
    html.push_str("</span></a>");
}

// ---------------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------------

async fn post_status(
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
    let outcome = shared
        .lock()
        .post_status(&shared.base_url, &req, &body, received_at);
    outcome.respond("fake Mastodon").await
}

async fn get_status(
    req: HttpRequest,
    path: web::Path<String>,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let mut state = shared.lock();
    state.count_request(req.path());
    let rate = match state.authenticate(&req, false) {
        Ok(auth) => auth.and_then(|(_, rate)| rate),
        Err(response) => return response,
    };
    match path.parse::<u64>() {
        Ok(id) if state.statuses.get(&id).is_some_and(|s| !s.fake.deleted) => {
            ok_json(state.status_json(&shared.base_url, id), rate.as_ref())
        }
        _ => error(StatusCode::NOT_FOUND, "Record not found", rate.as_ref()),
    }
}

/// `GET /api/v1/statuses/:id/context`: `{ancestors, descendants}`, not
/// paginated. With a token, up to 4,096 descendants at any depth; without,
/// 60 down to depth 20. A status that is gone is a 404.
async fn status_context(
    req: HttpRequest,
    path: web::Path<String>,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let mut state = shared.lock();
    state.count_request(req.path());
    let auth = match state.authenticate(&req, false) {
        Ok(auth) => auth,
        Err(response) => return response,
    };
    let rate = auth.as_ref().and_then(|(_, rate)| rate.as_ref());
    if let Some(response) = state.injected_fault(rate) {
        return response;
    }
    let id = path
        .parse::<u64>()
        .ok()
        .filter(|id| state.statuses.get(id).is_some_and(|s| !s.fake.deleted));
    let Some(id) = id else {
        return error(StatusCode::NOT_FOUND, "Record not found", rate);
    };
    let (limit, max_depth) = if auth.is_some() {
        CONTEXT_LIMIT_AUTHENTICATED
    } else {
        CONTEXT_LIMIT_ANONYMOUS
    };
    let base = &shared.base_url;
    let list = |ids: Vec<u64>| -> Vec<Value> {
        ids.into_iter()
            .map(|id| state.status_json(base, id))
            .collect()
    };
    let body = json!({
        "ancestors": list(state.ancestors(id)),
        "descendants": list(state.descendants(id, limit, max_depth)),
    });
    ok_json(body, rate)
}

async fn instance(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let mut state = shared.lock();
    state.count_request(req.path());
    HttpResponse::Ok().json(json!({
        "domain": shared.domain,
        "title": "Fake Mastodon",
        "version": "4.3.0",
        "source_url": "https://github.com/mastodon/mastodon",
        "description": "A fake Mastodon instance for Herald's tests.",
        "configuration": {
            "urls": { "streaming": format!("ws://{}", shared.domain) },
            "statuses": {
                "max_characters": state.max_characters,
                "max_media_attachments": 4,
                "characters_reserved_per_url": 23,
            },
            "media_attachments": { "image_size_limit": 16_777_216 },
        },
        "registrations": { "enabled": false, "approval_required": false },
    }))
}

async fn verify_credentials(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let mut state = shared.lock();
    state.count_request(req.path());
    match state.authenticate(&req, true) {
        Ok(Some((account_id, rate))) => ok_json(
            state.account_json(&shared.base_url, account_id),
            rate.as_ref(),
        ),
        Ok(None) => error(
            StatusCode::UNAUTHORIZED,
            "The access token is invalid",
            None,
        ),
        Err(response) => response,
    }
}

/// `GET /api/v1/accounts/:id/statuses`: newest first; `max_id` and `since_id`
/// are exclusive bounds; `min_id` returns the statuses just after it (still
/// newest first, as Mastodon does); `limit` defaults to 20, at most 40.
async fn account_statuses(
    req: HttpRequest,
    path: web::Path<String>,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let mut state = shared.lock();
    state.count_request(req.path());
    let rate = match state.authenticate(&req, false) {
        Ok(auth) => auth.and_then(|(_, rate)| rate),
        Err(response) => return response,
    };
    let rate = rate.as_ref();
    let account_id = path.parse::<u64>().ok();
    let Some((account_id, account)) =
        account_id.and_then(|id| state.accounts.get(&id).map(|a| (id, a)))
    else {
        return error(StatusCode::NOT_FOUND, "Record not found", rate);
    };
    let mut limit = 20usize;
    let (mut max_id, mut since_id, mut min_id) = (None, None, None);
    for (name, value) in form_urlencoded::parse(req.query_string().as_bytes()) {
        match name.as_ref() {
            "limit" => {
                if let Ok(n) = value.parse::<usize>() {
                    limit = n.clamp(1, 40);
                }
            }
            "max_id" => max_id = value.parse::<u64>().ok(),
            "since_id" => since_id = value.parse::<u64>().ok(),
            "min_id" => min_id = value.parse::<u64>().ok(),
            _ => {}
        }
    }
    let ids = &account.status_ids;
    let upper = max_id.map_or(ids.len(), |max| ids.partition_point(|&id| id < max));
    let lower = since_id
        .or(min_id)
        .map_or(0, |low| ids.partition_point(|&id| id <= low))
        .min(upper);
    let page: Vec<u64> = if min_id.is_some() && since_id.is_none() {
        ids[lower..upper]
            .iter()
            .take(limit)
            .rev()
            .copied()
            .collect()
    } else {
        ids[lower..upper]
            .iter()
            .rev()
            .take(limit)
            .copied()
            .collect()
    };
    let base = &shared.base_url;
    let body: Vec<Value> = page.iter().map(|&id| state.status_json(base, id)).collect();
    let mut builder = HttpResponse::Ok();
    if let Some(rate) = rate {
        rate.apply(&mut builder);
    }
    if let (Some(newest), Some(oldest)) = (page.first(), page.last()) {
        let url = format!("{base}/api/v1/accounts/{account_id}/statuses?limit={limit}");
        builder.insert_header((
            "Link",
            format!("<{url}&max_id={oldest}>; rel=\"next\", <{url}&min_id={newest}>; rel=\"prev\""),
        ));
    }
    builder.json(body)
}

/// Resolve a required token: the account and rate headers, or the answer to send.
#[allow(clippy::result_large_err)]
fn required_auth(
    state: &mut State,
    req: &HttpRequest,
) -> Result<(u64, Option<RateHeaders>), HttpResponse> {
    match state.authenticate(req, true)? {
        Some(auth) => Ok(auth),
        None => Err(error(
            StatusCode::UNAUTHORIZED,
            "The access token is invalid",
            None,
        )),
    }
}

/// An attachment as the API shows it; `url` is null while processing.
fn media_json(base_url: &str, m: &FakeMedia, ready: bool) -> Value {
    let file = format!("{base_url}/system/media_attachments/files/{}", m.id);
    json!({
        "id": m.id,
        "type": "image",
        "url": if ready { Value::from(format!("{file}/original.jpg")) } else { Value::Null },
        "preview_url": format!("{file}/small.jpg"),
        "remote_url": Value::Null,
        "text_url": Value::Null,
        "meta": {},
        "description": m.description,
        "blurhash": Value::Null,
    })
}

/// `DELETE /api/v1/statuses/:id`: the caller's own status, answered with
/// its source `text` (for "delete and redraft"); anything else is a 404.
async fn delete_status(
    req: HttpRequest,
    path: web::Path<String>,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let mut state = shared.lock();
    state.count_request(req.path());
    let (account_id, rate) = match required_auth(&mut state, &req) {
        Ok(auth) => auth,
        Err(response) => return response,
    };
    let rate = rate.as_ref();
    let id = path.parse::<u64>().ok().filter(|id| {
        state
            .statuses
            .get(id)
            .is_some_and(|s| s.account_id == account_id && !s.fake.deleted)
    });
    let Some(id) = id else {
        return error(StatusCode::NOT_FOUND, "Record not found", rate);
    };
    let mut body = state.status_json(&shared.base_url, id);
    if let Some(stored) = state.statuses.get_mut(&id) {
        stored.fake.deleted = true;
        body["text"] = Value::from(stored.fake.text.clone());
    }
    if let Some(account) = state.accounts.get_mut(&account_id) {
        if let Ok(at) = account.status_ids.binary_search(&id) {
            account.status_ids.remove(at);
        }
    }
    ok_json(body, rate)
}

/// `POST /api/v2/media`: multipart `file` (an image) and `description`.
/// 200 when ready, 202 (url null) while "processing" (see `set_media_processing`).
async fn upload_media(
    req: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let mut state = shared.lock();
    state.count_request(req.path());
    let (account_id, rate) = match required_auth(&mut state, &req) {
        Ok(auth) => auth,
        Err(response) => return response,
    };
    let rate = rate.as_ref();
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let parts = match parse_multipart(content_type, &body) {
        Ok(parts) => parts,
        Err(message) => return error(StatusCode::UNPROCESSABLE_ENTITY, message, rate),
    };
    let Some(file) = parts
        .iter()
        .find(|p| p.name == "file" && p.filename.is_some())
    else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Validation failed: File can't be blank",
            rate,
        );
    };
    let file_type = file.content_type.clone().unwrap_or_default();
    if !file_type.starts_with("image/") || file.data.is_empty() {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Validation failed: File content type is invalid",
            rate,
        );
    }
    if file.data.len() > IMAGE_SIZE_LIMIT {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Validation failed: File file size must be less than 16 MB",
            rate,
        );
    }
    let description = parts
        .iter()
        .find(|p| p.name == "description")
        .map(|p| String::from_utf8_lossy(&p.data).into_owned());
    if description
        .as_deref()
        .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION)
    {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Validation failed: Description is too long (maximum is 1500 characters)",
            rate,
        );
    }
    state.next_media += 1;
    let id = state.next_media;
    let polls_left = state.media_processing_polls;
    let fake = FakeMedia {
        id: id.to_string(),
        description,
        content_type: file_type,
        filename: file.filename.clone(),
        size: file.data.len(),
        sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&file.data)),
        status_id: None,
    };
    let body = media_json(&shared.base_url, &fake, polls_left == 0);
    state.media.insert(
        id,
        StoredMedia {
            account_id,
            polls_left,
            fake,
        },
    );
    state.media_order.push(id);
    if polls_left == 0 {
        return ok_json(body, rate);
    }
    let mut builder = HttpResponse::Accepted();
    if let Some(rate) = rate {
        rate.apply(&mut builder);
    }
    builder.json(body)
}

/// `GET /api/v1/media/:id`: 206 while processing, then 200 with the `url`.
async fn get_media(
    req: HttpRequest,
    path: web::Path<String>,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let mut state = shared.lock();
    state.count_request(req.path());
    let (account_id, rate) = match required_auth(&mut state, &req) {
        Ok(auth) => auth,
        Err(response) => return response,
    };
    let rate = rate.as_ref();
    let media = path
        .parse::<u64>()
        .ok()
        .and_then(|id| state.media.get_mut(&id))
        .filter(|m| m.account_id == account_id);
    let Some(media) = media else {
        return error(StatusCode::NOT_FOUND, "Record not found", rate);
    };
    let ready = media.polls_left == 0;
    media.polls_left = media.polls_left.saturating_sub(1);
    let body = media_json(&shared.base_url, &media.fake, ready);
    let mut builder = if ready {
        HttpResponse::Ok()
    } else {
        HttpResponse::build(StatusCode::PARTIAL_CONTENT)
    };
    if let Some(rate) = rate {
        rate.apply(&mut builder);
    }
    builder.json(body)
}

/// An OAuth error body (`error`, `error_description`).
fn oauth_error(status: StatusCode, code: &str, description: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({"error": code, "error_description": description}))
}

fn invalid_client() -> HttpResponse {
    oauth_error(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method.",
    )
}

fn invalid_grant() -> HttpResponse {
    oauth_error(
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client.",
    )
}

/// The fields of a form or JSON body; JSON arrays give several values.
fn body_fields(content_type: &str, body: &[u8]) -> Option<HashMap<String, Vec<String>>> {
    let mut fields: HashMap<String, Vec<String>> = HashMap::new();
    if content_type.starts_with("application/json") {
        let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
            return None;
        };
        for (name, value) in map {
            let values = match value {
                Value::String(s) => vec![s],
                Value::Number(n) => vec![n.to_string()],
                Value::Bool(b) => vec![b.to_string()],
                Value::Array(items) => items
                    .into_iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect(),
                _ => continue,
            };
            fields.insert(name, values);
        }
    } else {
        for (name, value) in form_urlencoded::parse(body) {
            let name = name.trim_end_matches("[]").to_string();
            fields.entry(name).or_default().push(value.into_owned());
        }
    }
    Some(fields)
}

fn first<'f>(fields: &'f HashMap<String, Vec<String>>, name: &str) -> Option<&'f str> {
    fields
        .get(name)
        .and_then(|v| v.first())
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

/// Scopes Mastodon knows: the coarse ones and `read:*`/`write:*`/`admin:*` ones.
fn valid_scope(scope: &str) -> bool {
    matches!(scope, "read" | "write" | "follow" | "push" | "profile")
        || ["read:", "write:", "admin:read", "admin:write"]
            .iter()
            .any(|prefix| scope.starts_with(prefix) && scope.len() > prefix.len())
        || scope == "admin:read"
        || scope == "admin:write"
}

fn random_secret() -> String {
    random_token(43)
}

/// `POST /api/v1/apps`.
async fn create_app(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let mut state = shared.lock();
    state.count_request(req.path());
    let content_type = super::server::content_type(&req);
    let Some(fields) = body_fields(&content_type, &body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "Error occurred while parsing request parameters",
            None,
        );
    };
    let unprocessable = |message: &str| error(StatusCode::UNPROCESSABLE_ENTITY, message, None);
    let Some(name) = first(&fields, "client_name").map(str::to_string) else {
        return unprocessable("Validation failed: Application name can't be blank");
    };
    let redirect_uris: Vec<String> = fields
        .get("redirect_uris")
        .into_iter()
        .flatten()
        .flat_map(|v| v.split_whitespace())
        .map(str::to_string)
        .collect();
    if redirect_uris.is_empty() {
        return unprocessable("Validation failed: Redirect URI can't be blank");
    }
    let absolute = |uri: &str| {
        uri == "urn:ietf:wg:oauth:2.0:oob"
            || url::Url::parse(uri).is_ok_and(|u| u.fragment().is_none() && !u.cannot_be_a_base())
    };
    if !redirect_uris.iter().all(|u| absolute(u)) {
        return unprocessable("Validation failed: Redirect URI must be an absolute URI.");
    }
    let scopes: Vec<String> = first(&fields, "scopes")
        .unwrap_or("read")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    if scopes.is_empty() || !scopes.iter().all(|s| valid_scope(s)) {
        return unprocessable("Validation failed: Scopes is invalid");
    }
    let app = FakeApp {
        name,
        website: first(&fields, "website").map(str::to_string),
        redirect_uris,
        scopes,
        client_id: random_secret(),
        client_secret: random_secret(),
    };
    state.apps.push(app.clone());
    HttpResponse::Ok().json(json!({
        "id": state.apps.len().to_string(),
        "name": app.name,
        "website": app.website,
        "scopes": app.scopes,
        "redirect_uri": app.redirect_uris.join("\n"),
        "redirect_uris": app.redirect_uris,
        "client_id": app.client_id,
        "client_secret": app.client_secret,
        "client_secret_expires_at": 0,
        "vapid_key": "BCk-QqERU0q-CfYZjcuB6lnyyOYfJ2AifKqfeGIm7Z-HiTU5T9eTG5GxVA0_OH5mMlI4UkkDTpaZwozy0TzdZ2M=",
    }))
}

/// `GET /.well-known/oauth-authorization-server` (4.3+), or a 404 when
/// the fake plays an older instance.
async fn oauth_metadata(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let mut state = shared.lock();
    state.count_request(req.path());
    if !state.oauth_metadata {
        return error(StatusCode::NOT_FOUND, "Record not found", None);
    }
    let base = &shared.base_url;
    HttpResponse::Ok().json(json!({
        "issuer": format!("{base}/"),
        "service_documentation": "https://docs.joinmastodon.org/",
        "authorization_endpoint": format!("{base}/oauth/authorize"),
        "token_endpoint": format!("{base}/oauth/token"),
        "app_registration_endpoint": format!("{base}/api/v1/apps"),
        "revocation_endpoint": format!("{base}/oauth/revoke"),
        "userinfo_endpoint": format!("{base}/oauth/userinfo"),
        "scopes_supported": ["read", "write", "write:statuses", "write:media", "read:accounts",
            "read:statuses", "read:notifications", "follow", "push", "profile"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "code_challenge_methods_supported": ["S256"],
        "grant_types_supported": ["authorization_code", "client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
    }))
}

/// `redirect_uri` with `pairs` added to its query, as a 302.
fn redirect_to(redirect_uri: &str, pairs: &[(&str, &str)]) -> HttpResponse {
    let location = match url::Url::parse(redirect_uri) {
        Ok(mut url) => {
            {
                let mut query = url.query_pairs_mut();
                for (name, value) in pairs {
                    query.append_pair(name, value);
                }
            }
            url.to_string()
        }
        Err(_) => redirect_uri.to_string(),
    };
    HttpResponse::Found()
        .insert_header(("Location", location))
        .finish()
}

/// `GET /oauth/authorize`: checks the client, redirect URI, response type,
/// scopes and (4.3+) the PKCE method, then approves at once as the
/// authorizing account: 302 to `redirect_uri?code=…&state=…`.
async fn oauth_authorize(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let mut state = shared.lock();
    state.count_request(req.path());
    let query: HashMap<String, String> = form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect();
    let get = |name: &str| param(&query, name);
    let Some(app) = get("client_id")
        .and_then(|id| state.apps.iter().find(|a| a.client_id == id))
        .cloned()
    else {
        return invalid_client();
    };
    let redirect_uri = match get("redirect_uri") {
        Some(uri) if app.redirect_uris.iter().any(|u| u == uri) => uri.to_string(),
        None if app.redirect_uris.len() == 1 => app.redirect_uris[0].clone(),
        _ => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_redirect_uri",
                "The requested redirect uri is malformed or doesn't match client redirect URI.",
            )
        }
    };
    let state_param = get("state");
    let fail = |code: &str| {
        let mut pairs = vec![("error", code)];
        if let Some(s) = state_param {
            pairs.push(("state", s));
        }
        redirect_to(&redirect_uri, &pairs)
    };
    if get("response_type") != Some("code") {
        return fail("unsupported_response_type");
    }
    let scopes = get("scope").unwrap_or("read").to_string();
    if !scopes
        .split_whitespace()
        .all(|s| app.scopes.iter().any(|a| a == s))
    {
        return fail("invalid_scope");
    }
    let mut challenge = None;
    if state.oauth_metadata {
        if let Some(c) = get("code_challenge") {
            if get("code_challenge_method") != Some("S256") {
                return fail("invalid_request");
            }
            challenge = Some(c.to_string());
        }
    }
    let Some(account_id) = state.authorizing_account else {
        return error(StatusCode::BAD_REQUEST, "No user is signed in", None);
    };
    let code = random_secret();
    state.codes.insert(
        code.clone(),
        Code {
            client_id: app.client_id.clone(),
            redirect_uri: redirect_uri.clone(),
            account_id,
            scopes,
            challenge,
            issued: Instant::now(),
        },
    );
    let mut pairs = vec![("code", code.as_str())];
    if let Some(s) = state_param {
        pairs.push(("state", s));
    }
    redirect_to(&redirect_uri, &pairs)
}

fn param<'q>(query: &'q HashMap<String, String>, name: &str) -> Option<&'q str> {
    query
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

/// The app authenticated by `client_id` + `client_secret` in the body, or by
/// an `Authorization: Basic` header.
fn client_of(
    state: &State,
    req: &HttpRequest,
    fields: &HashMap<String, Vec<String>>,
) -> Option<FakeApp> {
    use base64::Engine;
    let basic = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        })
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|pair| {
            let (id, secret) = pair.split_once(':')?;
            let decode = |s: &str| {
                form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
            };
            Some((decode(id)?, decode(secret)?))
        });
    let (id, secret) = match basic {
        Some(pair) => pair,
        None => (
            first(fields, "client_id")?.to_string(),
            first(fields, "client_secret")?.to_string(),
        ),
    };
    state
        .apps
        .iter()
        .find(|a| a.client_id == id && a.client_secret == secret)
        .cloned()
}

/// The form of an OAuth endpoint call and the app it authenticates as
/// (counted as a request), or the OAuth error to answer.
#[allow(clippy::result_large_err)] // answered at once, never carried around
fn authenticated_form(
    state: &mut State,
    req: &HttpRequest,
    body: &[u8],
) -> Result<(HashMap<String, Vec<String>>, FakeApp), HttpResponse> {
    state.count_request(req.path());
    let content_type = super::server::content_type(req);
    let Some(fields) = body_fields(&content_type, body) else {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The request is missing a required parameter.",
        ));
    };
    let Some(app) = client_of(state, req, &fields) else {
        return Err(invalid_client());
    };
    Ok((fields, app))
}

/// `POST /oauth/token` (`authorization_code` grant). Codes are single-use
/// and live 10 minutes; PKCE S256 is verified when the code has a challenge.
async fn oauth_token(
    req: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let mut state = shared.lock();
    let (fields, app) = match authenticated_form(&mut state, &req, &body) {
        Ok(form) => form,
        Err(refusal) => return refusal,
    };
    if first(&fields, "grant_type") != Some("authorization_code") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "The authorization grant type is not supported by the authorization server.",
        );
    }
    // Single use: the code is gone whatever happens next.
    let Some(code) = first(&fields, "code").and_then(|c| state.codes.remove(c)) else {
        return invalid_grant();
    };
    if code.client_id != app.client_id
        || code.issued.elapsed() > CODE_TTL
        || first(&fields, "redirect_uri") != Some(code.redirect_uri.as_str())
    {
        return invalid_grant();
    }
    if let Some(challenge) = &code.challenge {
        let verified = first(&fields, "code_verifier")
            .is_some_and(|v| super::server::pkce_s256(v) == *challenge);
        if !verified {
            return invalid_grant();
        }
    }
    let token = random_secret();
    state.tokens.insert(
        token.clone(),
        TokenEntry {
            account_id: code.account_id,
            revoked: false,
            client_id: Some(app.client_id),
        },
    );
    HttpResponse::Ok().json(json!({
        "access_token": token,
        "token_type": "Bearer",
        "scope": code.scopes,
        "created_at": Utc::now().timestamp(),
    }))
}

/// `POST /oauth/revoke` (`client_id`, `client_secret`, `token`): 200 `{}`,
/// idempotent; a token of another app is a 403.
async fn oauth_revoke(
    req: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let mut state = shared.lock();
    let (fields, app) = match authenticated_form(&mut state, &req, &body) {
        Ok(form) => form,
        Err(refusal) => return refusal,
    };
    let token = first(&fields, "token").unwrap_or("").to_string();
    if let Some(entry) = state.tokens.get_mut(&token) {
        if entry.client_id.as_deref() != Some(app.client_id.as_str()) {
            return oauth_error(
                StatusCode::FORBIDDEN,
                "unauthorized_client",
                "You are not authorized to revoke this token",
            );
        }
        entry.revoked = true;
    }
    HttpResponse::Ok().json(json!({}))
}

/// `GET /fake/image.jpg` (256 bytes) and `GET /fake/image/{size}`: a JPEG.
async fn image(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    shared.lock().count_request(req.path());
    sized_jpeg(&req)
}

/// One part of a `multipart/form-data` body.
struct Part {
    name: String,
    filename: Option<String>,
    content_type: Option<String>,
    data: Vec<u8>,
}

fn find_bytes(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Parse a `multipart/form-data` body (RFC 7578).
fn parse_multipart(content_type: &str, body: &[u8]) -> Result<Vec<Part>, &'static str> {
    if !content_type
        .to_ascii_lowercase()
        .starts_with("multipart/form-data")
    {
        return Err("Validation failed: File can't be blank");
    }
    let boundary = content_type
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))
        .map(|b| b.trim_matches('"'))
        .filter(|b| !b.is_empty())
        .ok_or("multipart body without a boundary")?;
    let delimiter = format!("--{boundary}");
    let start = find_bytes(body, delimiter.as_bytes()).ok_or("malformed multipart body")?;
    let mut rest = &body[start + delimiter.len()..];
    let next = format!("\r\n--{boundary}");
    let mut parts = Vec::new();
    loop {
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        rest = rest
            .strip_prefix(b"\r\n")
            .ok_or("malformed multipart body")?;
        let end = find_bytes(rest, next.as_bytes()).ok_or("malformed multipart body")?;
        let part = &rest[..end];
        rest = &rest[end + next.len()..];
        let split = find_bytes(part, b"\r\n\r\n").ok_or("malformed multipart part")?;
        let head = String::from_utf8_lossy(&part[..split]);
        let data = part[split + 4..].to_vec();
        let (mut name, mut filename, mut part_type) = (None, None, None);
        for line in head.split("\r\n") {
            let Some((header, value)) = line.split_once(':') else {
                continue;
            };
            if header.trim().eq_ignore_ascii_case("content-type") {
                part_type = Some(value.trim().to_ascii_lowercase());
            } else if header.trim().eq_ignore_ascii_case("content-disposition") {
                for attribute in value.split(';').skip(1) {
                    if let Some((key, v)) = attribute.trim().split_once('=') {
                        let v = v.trim().trim_matches('"').to_string();
                        match key.trim() {
                            "name" => name = Some(v),
                            "filename" => filename = Some(v),
                            _ => {}
                        }
                    }
                }
            }
        }
        parts.push(Part {
            name: name.ok_or("multipart part without a name")?,
            filename,
            content_type: part_type,
            data,
        });
    }
}

async fn not_found(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    shared.lock().count_request(req.path());
    error(StatusCode::NOT_FOUND, "Record not found", None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_is_escaped_html_with_paragraphs_and_line_breaks() {
        assert_eq!(
            render_content("Fish & <chips>\nsecond line\n\n\nnew \"paragraph\" it's"),
            "<p>Fish &amp; &lt;chips&gt;<br />second line</p><p>new &quot;paragraph&quot; it&#39;s</p>"
        );
    }

    #[test]
    fn links_keep_their_full_text_inside_spans() {
        let html =
            render_content("See https://example.org/a/very/long/path/that/goes/on?x=1&y=2 now");
        assert!(html.starts_with(
            "<p>See <a href=\"https://example.org/a/very/long/path/that/goes/on?x=1&amp;y=2\""
        ));
        assert!(html.contains("<span class=\"invisible\">https://</span><span class=\"ellipsis\">"));
        assert!(html.ends_with("</span></a> now</p>"));
    }

    #[test]
    fn multipart_bodies_give_their_parts() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"description\"\r\n\r\nA kettle\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"k.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n\xff\xd8\xff\r\n\xd9\r\n--XyZ--\r\n";
        let parts = parse_multipart("multipart/form-data; boundary=XyZ", body).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "description");
        assert_eq!(parts[0].data, b"A kettle");
        assert_eq!(parts[1].filename.as_deref(), Some("k.jpg"));
        assert_eq!(parts[1].content_type.as_deref(), Some("image/jpeg"));
        assert_eq!(parts[1].data, b"\xff\xd8\xff\r\n\xd9");
        assert!(parse_multipart("multipart/form-data", body).is_err());
        assert!(parse_multipart("multipart/form-data; boundary=XyZ", b"--XyZ\r\nbroken").is_err());
        let jpeg = jpeg_of_size(10);
        assert_eq!(jpeg.len(), 10);
        assert!(jpeg.starts_with(&[0xFF, 0xD8, 0xFF]) && jpeg.ends_with(&[0xFF, 0xD9]));
    }

    #[test]
    fn json_and_form_bodies_give_the_same_parameters() {
        let form = parse_params(
            "application/x-www-form-urlencoded",
            b"status=Hello+%26+bye&language=fr&status=ignored&media_ids[]=1",
        )
        .unwrap();
        let json = parse_params(
            "application/json; charset=utf-8",
            br#"{"status":"Hello & bye","language":"fr","in_reply_to_id":12}"#,
        )
        .unwrap();
        assert_eq!(form.status.as_deref(), Some("Hello & bye"));
        assert_eq!(json.status, form.status);
        assert_eq!(json.language, form.language);
        assert_eq!(json.in_reply_to_id.as_deref(), Some("12"));
        assert!(parse_params("application/json", b"[1]").is_err());
        assert!(parse_params("application/json", b"{").is_err());
    }
}
