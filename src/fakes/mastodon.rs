//! A fake Mastodon instance (shared/platforms.md §1) on a loopback port, with
//! fault injection. It serves what Herald's connector calls: posting with an
//! `Idempotency-Key`, the instance limits, `verify_credentials`, an account's
//! statuses, one status; per-account rate limits with Mastodon's
//! `X-RateLimit-*` headers; Mastodon's error bodies.
//!
//! The server runs on its own OS thread with its own actix system, so it
//! works under any caller runtime and keeps answering while the caller
//! blocks. Every handler does O(1) work under one lock (hash maps, an
//! append-only list of ids per account), so a burst of thousands of posts
//! measures the client, not the fake.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix_web::body::BoxBody;
use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpResponseBuilder, HttpServer};
use chrono::{DateTime, SecondsFormat, Utc};
use rand::distributions::{Alphanumeric, DistString};
use serde_json::{json, Value};

use crate::platforms::text::{http_url_ranges, mastodon_length};

/// How long Mastodon keeps an `Idempotency-Key` (platforms.md §1.3).
const IDEMPOTENCY_TTL: Duration = Duration::from_secs(3600);

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
}

/// A running fake instance; stops when dropped.
pub struct FakeMastodon {
    base_url: String,
    shared: Arc<Shared>,
    handle: ServerHandle,
}

impl FakeMastodon {
    /// Start with [`FakeMastodonConfig::default`].
    pub async fn start() -> FakeMastodon {
        Self::start_with(FakeMastodonConfig::default()).await
    }

    /// Start on `127.0.0.1:<free port>` with `config`.
    pub async fn start_with(config: FakeMastodonConfig) -> FakeMastodon {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake Mastodon port");
        let port = listener
            .local_addr()
            .expect("the fake Mastodon port")
            .port();
        let base_url = format!("http://127.0.0.1:{port}");
        let workers = config.workers.max(1);
        let shared = Arc::new(Shared::new(base_url.clone(), config));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let for_server = shared.clone();
        std::thread::Builder::new()
            .name(format!("fake-mastodon-{port}"))
            .spawn(move || {
                actix_web::rt::System::new().block_on(async move {
                    let data = web::Data::from(for_server);
                    let server = HttpServer::new(move || {
                        App::new()
                            .app_data(data.clone())
                            .app_data(web::PayloadConfig::new(1 << 20))
                            .route("/api/v1/statuses", web::post().to(post_status))
                            .route("/api/v1/statuses/{id}", web::get().to(get_status))
                            .route("/api/v2/instance", web::get().to(instance))
                            .route(
                                "/api/v1/accounts/verify_credentials",
                                web::get().to(verify_credentials),
                            )
                            .route(
                                "/api/v1/accounts/{id}/statuses",
                                web::get().to(account_statuses),
                            )
                            .default_service(web::to(not_found))
                    })
                    .workers(workers)
                    .backlog(4096)
                    .disable_signals()
                    .listen(listener)
                    .expect("listen on the fake Mastodon port")
                    .run();
                    let _ = tx.send(server.handle());
                    let _ = server.await;
                })
            })
            .expect("start the fake Mastodon thread");
        let handle = rx.await.expect("the fake Mastodon server started");
        FakeMastodon {
            base_url,
            shared,
            handle,
        }
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        self.base_url.clone()
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
                created_at: Utc::now(),
                status_ids: Vec::new(),
                window: (0, 0),
            },
        );
        let token = Alphanumeric.sample_string(&mut rand::thread_rng(), 43);
        state.tokens.insert(
            token.clone(),
            TokenEntry {
                account_id: id,
                revoked: false,
            },
        );
        token
    }

    /// Revoke `token`: later calls with it get 401 "The access token was revoked".
    pub fn revoke(&self, token: &str) {
        if let Some(entry) = self.shared.lock().tokens.get_mut(token) {
            entry.revoked = true;
        }
    }

    /// The next `n` status posts get `status` (a 5xx) and store nothing.
    pub fn fail_next(&self, n: usize, status: u16) {
        self.shared.lock().faults.fail = (n, status);
    }

    /// The next `n` status posts get a 429 whose reset is `reset_in` from now, and store nothing.
    pub fn rate_limit_next(&self, n: usize, reset_in: Duration) {
        self.shared.lock().faults.rate_limit = (n, reset_in);
    }

    /// The next `n` status posts that create a status store it, then close the
    /// connection without answering.
    pub fn drop_after_store_next(&self, n: usize) {
        self.shared.lock().faults.drop_after_store = n;
    }

    /// The next `n` status posts that create a status store it, then wait `stall` before answering.
    pub fn stall_after_store_next(&self, n: usize, stall: Duration) {
        self.shared.lock().faults.stall_after_store = (n, stall);
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

impl Drop for FakeMastodon {
    fn drop(&mut self) {
        // Sends the stop command now; the server thread ends on its own.
        drop(self.handle.stop(false));
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
                idempotency: HashMap::new(),
                post_requests: 0,
                requests_by_path: HashMap::new(),
                faults: Faults::default(),
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
}

struct Account {
    username: String,
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

#[derive(Default)]
struct Faults {
    fail: (usize, u16),
    rate_limit: (usize, Duration),
    drop_after_store: usize,
    stall_after_store: (usize, Duration),
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
    /// (account id, key) → (status id, when the key was stored).
    idempotency: HashMap<(u64, String), (u64, Instant)>,
    post_requests: usize,
    requests_by_path: HashMap<String, usize>,
    faults: Faults,
}

#[derive(Default)]
struct StatusParams {
    status: Option<String>,
    visibility: Option<String>,
    language: Option<String>,
    in_reply_to_id: Option<String>,
    spoiler_text: Option<String>,
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

/// What the status-post handler does after the state is updated.
enum PostOutcome {
    Answer(HttpResponse),
    Stall(HttpResponse, Duration),
    Drop,
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

fn bearer_token(req: &HttpRequest) -> Option<Option<String>> {
    let value = req.headers().get("authorization")?;
    let token = value.to_str().ok().and_then(|v| {
        let (scheme, token) = v.trim().split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_string())
    });
    Some(token)
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
        let token = match bearer_token(req) {
            None if !required => return Ok(None),
            None => {
                return Err(error(
                    StatusCode::UNAUTHORIZED,
                    "The access token is invalid",
                    None,
                ))
            }
            Some(token) => token.unwrap_or_default(),
        };
        let account_id = match self.tokens.get(&token) {
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

    fn store(
        &mut self,
        account_id: u64,
        params: &StatusParams,
        idempotency_key: Option<&str>,
        received_at: DateTime<Utc>,
        created_at: DateTime<Utc>,
    ) -> u64 {
        self.next_status += 1;
        let id = self.next_status;
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
            account.status_ids.push(id);
        }
        if let Some(key) = idempotency_key {
            self.idempotency
                .insert((account_id, key.to_string()), (id, Instant::now()));
        }
        id
    }

    fn account_json(&self, base_url: &str, id: u64) -> Value {
        match self.accounts.get(&id) {
            Some(a) => json!({
                "id": id.to_string(),
                "username": a.username,
                "acct": a.username,
                "display_name": a.username,
                "locked": false,
                "bot": false,
                "created_at": a.created_at.to_rfc3339_opts(SecondsFormat::Millis, true),
                "note": "",
                "url": format!("{base_url}/@{}", a.username),
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
            "url": format!("{base_url}/@{}/{}", f.username, f.id),
            "replies_count": 0,
            "reblogs_count": 0,
            "favourites_count": 0,
            "edited_at": Value::Null,
            "content": s.content,
            "reblog": Value::Null,
            "account": self.account_json(base_url, s.account_id),
            "media_attachments": [],
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
    ) -> PostOutcome {
        let (account_id, rate) = match self.authenticate(req, true) {
            Ok(Some(auth)) => auth,
            Ok(None) => {
                return PostOutcome::Answer(error(
                    StatusCode::UNAUTHORIZED,
                    "The access token is invalid",
                    None,
                ))
            }
            Err(response) => return PostOutcome::Answer(response),
        };
        let rate = rate.as_ref();
        if self.faults.fail.0 > 0 {
            self.faults.fail.0 -= 1;
            let status = StatusCode::from_u16(self.faults.fail.1)
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return PostOutcome::Answer(error(status, "Injected failure", rate));
        }
        if self.faults.rate_limit.0 > 0 {
            self.faults.rate_limit.0 -= 1;
            let limited = RateHeaders {
                limit: self.rate_limit.map_or(300, |l| l.limit),
                remaining: 0,
                reset: Utc::now()
                    + chrono::Duration::from_std(self.faults.rate_limit.1)
                        .unwrap_or_else(|_| chrono::Duration::seconds(300)),
            };
            return PostOutcome::Answer(error(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many requests",
                Some(&limited),
            ));
        }
        let content_type = req
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let params = match parse_params(&content_type, body) {
            Ok(params) => params,
            Err((status, message)) => return PostOutcome::Answer(error(status, message, rate)),
        };
        if let Some(reply_to) = params.in_reply_to_id.as_deref().filter(|r| !r.is_empty()) {
            let exists = reply_to
                .parse::<u64>()
                .is_ok_and(|id| self.statuses.contains_key(&id));
            if !exists {
                return PostOutcome::Answer(error(
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
                    return PostOutcome::Answer(ok_json(self.status_json(base_url, id), rate));
                }
            }
        }
        let text = params.status.as_deref().unwrap_or("");
        if text.trim().is_empty() {
            return PostOutcome::Answer(error(
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
            return PostOutcome::Answer(error(StatusCode::UNPROCESSABLE_ENTITY, &message, rate));
        }
        if let Some(visibility) = params.visibility.as_deref() {
            if !matches!(visibility, "public" | "unlisted" | "private" | "direct") {
                let message = format!("'{visibility}' is not a valid visibility");
                return PostOutcome::Answer(error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &message,
                    rate,
                ));
            }
        }
        let id = self.store(account_id, &params, key.as_deref(), received_at, Utc::now());
        if self.faults.drop_after_store > 0 {
            self.faults.drop_after_store -= 1;
            return PostOutcome::Drop;
        }
        let response = ok_json(self.status_json(base_url, id), rate);
        if self.faults.stall_after_store.0 > 0 {
            self.faults.stall_after_store.0 -= 1;
            return PostOutcome::Stall(response, self.faults.stall_after_store.1);
        }
        PostOutcome::Answer(response)
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
    } else if content_type.is_empty()
        || content_type.starts_with("application/x-www-form-urlencoded")
    {
        for (name, value) in form_urlencoded::parse(body) {
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
    match outcome {
        PostOutcome::Answer(response) => response,
        PostOutcome::Stall(response, stall) => {
            actix_web::rt::time::sleep(stall).await;
            response
        }
        // A body stream that fails before its first byte: actix drops the
        // connection without writing the response head.
        PostOutcome::Drop => HttpResponse::Ok().streaming(futures_util::stream::once(async {
            Err::<web::Bytes, std::io::Error>(std::io::Error::other(
                "fake Mastodon: connection dropped after storing the status",
            ))
        })),
    }
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
        Ok(id) if state.statuses.contains_key(&id) => {
            ok_json(state.status_json(&shared.base_url, id), rate.as_ref())
        }
        _ => error(StatusCode::NOT_FOUND, "Record not found", rate.as_ref()),
    }
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
