//! Fake Bluesky PDS: the XRPC calls Herald makes (shared/platforms.md §2),
//! app-password sessions with rotating refresh tokens, the documented rate
//! limits and their `RateLimit-*` headers, and fault injection.
//!
//! It runs on its own OS thread with its own actix `System`, so it serves any
//! caller runtime (tests use a current-thread tokio runtime). All state sits
//! behind one `std::sync::Mutex` that no handler holds across an `.await`;
//! every request does O(1) work, so a benchmark can push 10,000 posts through.
//!
//! Where the PDS's exact behaviour is not documented the fake picks one and
//! says so: a `createRecord` with a record key already in use answers 400
//! `InvalidRequest` "Record already exists"; facet ranges outside the text are
//! refused (the real PDS only checks their shape); only `app.bsky.feed.post`
//! records are accepted; a rotated refresh token dies at once (no grace period);
//! a reply's root and parent must be records the fake holds, with their cids
//! (the real PDS only checks the shape; the AppView drops a bad reply); an
//! image embed must name a blob the account uploaded.
//!
//! It also answers `app.bsky.feed.getPostThread` as the PDS does by proxying
//! it to the AppView: the `threadViewPost` of a post with its `replies` down
//! to `depth` (default 6, at most 1000) and its `parent` chain up to
//! `parentHeight` (default 80); no pagination; `indexedAt` is when the fake
//! stored the record; a post that is missing or deleted is 400 `NotFound`.
//! [`FakeBluesky::set_feed_appview`] switches that proxying off, as on a PDS
//! with no AppView configured for feeds: `getPostThread` then answers 501
//! `MethodNotImplemented` (before any auth check) while notifications still work.
//!
//! `app.bsky.notification.listNotifications` (auth required) lists the
//! account's notifications newest first: `reasons` filters them (repeat the
//! parameter for several), `limit` is 1 to 100 (default 50; 400
//! `InvalidRequest` outside), `cursor` is opaque and stable when newer
//! notifications arrive (a bad one is 400 `InvalidRequest`); every page that
//! is not empty carries a cursor, so the end is an empty page without one,
//! as keyset paging on the AppView does. `isRead` is true only for
//! notifications indexed at or before a given `seenAt`. The fake makes
//! `reply` notifications only: when a post answers a post of another
//! account, that account is notified with `reasonSubject` = the parent
//! (the real AppView also notifies the authors of a few ancestors above the
//! parent; the fake does not). `indexedAt` is when the fake stored the reply
//! (the real AppView sorts by the earlier of `createdAt` and indexing time).
//! A deleted reply leaves the list.
//!
//! Public API, in short:
//! - start: [`FakeBluesky::start`]; [`FakeBluesky::base_url`] (the PDS URL).
//! - accounts: [`FakeBluesky::add_account`], [`FakeBluesky::set_app_password`],
//!   [`FakeBluesky::take_down`], [`FakeBluesky::revoke_app_password`] (the password
//!   and every session of the account die at once).
//! - the public: [`FakeBluesky::add_reply`] (another account, made on first
//!   use, answers a post; returns the reply's `at://` URI; the parent's author
//!   gets a `reply` notification), [`FakeBluesky::add_reply_at`] (the same
//!   with an older `createdAt`, indexed now).
//! - the AppView: [`FakeBluesky::set_feed_appview`] (off: `getPostThread` is 501).
//! - faults: [`FakeBluesky::revoke_refresh_tokens`], [`FakeBluesky::expire_access_tokens`],
//!   [`FakeBluesky::set_rate_limits`], [`FakeBluesky::fail_next`],
//!   [`FakeBluesky::rate_limit_next`] (both also hit `getPostThread` and
//!   `listNotifications`),
//!   [`FakeBluesky::drop_after_store_next`],
//!   [`FakeBluesky::stall_after_store_next`], [`FakeBluesky::set_latency`].
//! - media to download: [`FakeBluesky::image_url`], [`FakeBluesky::image_url_of_size`].
//! - inspection: [`FakeBluesky::posts`] (cid, reply root/parent, images with
//!   alt text, deleted flag), [`FakeBluesky::blobs_uploaded`],
//!   [`FakeBluesky::post_requests`], [`FakeBluesky::requests_to`], session counters.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use rand::Rng;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use unicode_segmentation::UnicodeSegmentation;

use crate::fakes::server::{bearer, dropped, sized_jpeg, FakeServer, Faults};
use crate::platforms::connector::tid;

const POST_COLLECTION: &str = "app.bsky.feed.post";
const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
/// Write points a create costs (UPDATE 2, DELETE 1).
const CREATE_POINTS: u32 = 3;
const ACCESS_LIFETIME: Duration = Duration::from_secs(2 * 3600);
/// The PDS accepts blobs up to 50 MB.
const MAX_BLOB_BYTES: usize = 50 * 1024 * 1024;
/// `app.bsky.embed.images`: 4 images, 1,000,000 bytes each.
const MAX_EMBED_IMAGES: usize = 4;
const MAX_IMAGE_BYTES: u64 = 1_000_000;
const REFRESH_LIFETIME: Duration = Duration::from_secs(90 * 24 * 3600);

/// One post the fake stored, as Herald sent it.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeRecord {
    pub did: String,
    pub handle: String,
    pub rkey: String,
    /// `at://<did>/app.bsky.feed.post/<rkey>`
    pub uri: String,
    pub text: String,
    pub langs: Vec<String>,
    /// `createdAt` exactly as sent.
    pub created_at: String,
    /// The record's `facets`, or `Null` when it had none.
    pub facets: Value,
    pub received_at: DateTime<Utc>,
    /// The record's CID, as `createRecord` and `getRecord` give it.
    pub cid: String,
    /// The record's `reply`, when it answers a post.
    pub reply: Option<FakeReply>,
    /// The images of an `app.bsky.embed.images` embed, in order.
    pub images: Vec<FakeImage>,
    /// Deleted with `deleteRecord`.
    pub deleted: bool,
}

/// The strong refs of a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeReply {
    pub root_uri: String,
    pub root_cid: String,
    pub parent_uri: String,
    pub parent_cid: String,
}

/// One image of a post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeImage {
    /// The blob's CID (`ref.$link`).
    pub cid: String,
    pub mime_type: String,
    pub size: u64,
    pub alt: String,
}

/// A fixed-window limit: `points` per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub points: u32,
    pub window: Duration,
}

/// The limits the fake enforces; `None` switches one off (and its headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Every XRPC request. The PDS counts per IP; every client of the fake is
    /// on loopback, so this is one shared budget. 3,000 per 5 minutes.
    pub global: Option<RateLimit>,
    /// `createSession` attempts per account: 30 per 5 minutes.
    pub create_session: Option<RateLimit>,
    /// Write points per DID: 5,000 per hour, a create costs 3.
    pub write_points: Option<RateLimit>,
}

impl RateLimits {
    const DOCUMENTED_WRITE_POINTS: RateLimit = RateLimit {
        points: 5000,
        window: Duration::from_secs(3600),
    };

    /// The numbers the Bluesky documentation gives (platforms.md §2.4).
    pub const DOCUMENTED: RateLimits = RateLimits {
        global: Some(RateLimit {
            points: 3000,
            window: Duration::from_secs(300),
        }),
        create_session: Some(RateLimit {
            points: 30,
            window: Duration::from_secs(300),
        }),
        write_points: Some(Self::DOCUMENTED_WRITE_POINTS),
    };

    /// No limits and no `RateLimit-*` headers: for benchmarks.
    pub const UNLIMITED: RateLimits = RateLimits {
        global: None,
        create_session: None,
        write_points: None,
    };
}

impl Default for RateLimits {
    fn default() -> Self {
        Self::DOCUMENTED
    }
}

/// A running fake PDS. Stops when dropped.
pub struct FakeBluesky {
    shared: Arc<Shared>,
    server: FakeServer,
}

impl FakeBluesky {
    /// Start the fake on `127.0.0.1` with a free port, on its own thread.
    pub async fn start() -> FakeBluesky {
        let shared = Arc::new(Shared::default());
        let server = FakeServer::bind("fake-bluesky")
            .serve(2, shared.clone(), MAX_BLOB_BYTES, |app| {
                app.route("/xrpc/{nsid}", web::route().to(xrpc))
                    .route("/fake/image.jpg", web::get().to(image))
                    .route("/fake/image/{size}", web::get().to(image));
            })
            .await;
        FakeBluesky { shared, server }
    }

    /// `http://127.0.0.1:<port>`: the account's PDS URL.
    pub fn base_url(&self) -> String {
        self.server.base_url().to_string()
    }

    /// Create an account (or reset the app password of an existing handle);
    /// returns its DID, `did:plc:` and 24 base32 characters.
    pub fn add_account(&self, handle: &str, app_password: &str) -> String {
        let handle = handle.to_ascii_lowercase();
        let mut state = self.shared.lock();
        if let Some(did) = state.dids_by_handle.get(&handle).cloned() {
            if let Some(account) = state.accounts.get_mut(&did) {
                account.app_password = app_password.to_string();
            }
            return did;
        }
        let did = format!("did:plc:{}", random_base32(24));
        state.dids_by_handle.insert(handle.clone(), did.clone());
        state.accounts.insert(
            did.clone(),
            Account {
                did: did.clone(),
                handle,
                app_password: app_password.to_string(),
                taken_down: false,
                login_attempts: 0,
                sessions_created: 0,
                sessions_refreshed: 0,
            },
        );
        did
    }

    /// Change an account's app password (the user revoked the old one).
    pub fn set_app_password(&self, handle: &str, app_password: &str) {
        self.shared.with_account(handle, |account| {
            account.app_password = app_password.to_string();
        });
    }

    /// The user revoked Herald's app password: the password changes and
    /// every session of the account dies (access tokens unknown, refresh
    /// tokens revoked).
    pub fn revoke_app_password(&self, handle: &str) {
        let mut state = self.shared.lock();
        let Some(did) = state.did_of(handle) else {
            return;
        };
        if let Some(account) = state.accounts.get_mut(&did) {
            account.app_password = format!("revoked-{}", random_base32(16));
        }
        state.access_tokens.retain(|_, t| t.did != did);
        for token in state.refresh_tokens.values_mut() {
            if token.did == did {
                token.revoked = true;
            }
        }
    }

    /// A small JPEG the fake serves (`GET /fake/image.jpg`, 256 bytes).
    pub fn image_url(&self) -> String {
        format!("{}/fake/image.jpg", self.server.base_url())
    }

    /// A JPEG of exactly `size` bytes the fake serves.
    pub fn image_url_of_size(&self, size: usize) -> String {
        format!("{}/fake/image/{size}", self.server.base_url())
    }

    /// Blobs uploaded with `uploadBlob` (all accounts).
    pub fn blobs_uploaded(&self) -> usize {
        self.shared.lock().blobs.len()
    }

    /// Requests received for the XRPC method `nsid` (e.g. `com.atproto.repo.deleteRecord`).
    pub fn requests_to(&self, nsid: &str) -> usize {
        self.shared
            .lock()
            .requests_by_nsid
            .get(nsid)
            .copied()
            .unwrap_or(0)
    }

    /// Suspend the account: its sessions and logins answer `AccountTakedown`.
    pub fn take_down(&self, handle: &str) {
        self.shared
            .with_account(handle, |account| account.taken_down = true);
    }

    /// Revoke every refresh token of the account: `refreshSession` answers
    /// 400 `ExpiredToken` "Token has been revoked".
    pub fn revoke_refresh_tokens(&self, handle: &str) {
        let mut state = self.shared.lock();
        let Some(did) = state.did_of(handle) else {
            return;
        };
        for token in state.refresh_tokens.values_mut() {
            if token.did == did {
                token.revoked = true;
            }
        }
    }

    /// Expire every access token issued so far. `status` picks the form:
    /// 400 as the PDS answers, 401 as a call proxied to the AppView answers.
    pub fn expire_access_tokens(&self, status: u16) {
        let mut state = self.shared.lock();
        for token in state.access_tokens.values_mut() {
            token.expired = Some(status);
        }
    }

    /// Replace the rate limits (and start fresh windows).
    pub fn set_rate_limits(&self, limits: RateLimits) {
        let mut state = self.shared.lock();
        state.limits = limits;
        state.windows.clear();
    }

    /// The next `n` authenticated `createRecord`, `getPostThread` or
    /// `listNotifications` calls fail with `status` (5xx:
    /// `InternalServerError` and friends) and store nothing.
    pub fn fail_next(&self, n: usize, status: u16) {
        let mut state = self.shared.lock();
        state.faults.fail.arm(n, status);
    }

    /// The next `n` authenticated `createRecord`, `getPostThread` or
    /// `listNotifications` calls get 429 `RateLimitExceeded` with
    /// `RateLimit-Reset` `reset_in` from now.
    pub fn rate_limit_next(&self, n: usize, reset_in: Duration) {
        let mut state = self.shared.lock();
        state.faults.rate_limit.arm(n, reset_in);
    }

    /// The next `n` successful `createRecord` calls store the record, then
    /// close the connection without a response.
    pub fn drop_after_store_next(&self, n: usize) {
        self.shared.lock().faults.drop_after_store.arm(n, ());
    }

    /// The next `n` successful `createRecord` calls store the record, then
    /// wait `stall` before answering.
    pub fn stall_after_store_next(&self, n: usize, stall: Duration) {
        let mut state = self.shared.lock();
        state.faults.stall_after_store.arm(n, stall);
    }

    /// Wait this long before handling every request.
    pub fn set_latency(&self, latency: Duration) {
        self.shared.lock().latency = latency;
    }

    /// Whether the PDS proxies `app.bsky.feed.*` calls to an AppView (on by
    /// default). Off, `getPostThread` answers 501 `MethodNotImplemented`
    /// "Method Not Implemented"; `listNotifications` still answers.
    pub fn set_feed_appview(&self, on: bool) {
        self.shared.lock().no_feed_appview = !on;
    }

    /// The account `handle` (made on first use) answers the post
    /// `parent_uri` now. Returns the reply's URI; `None` if the parent is
    /// not a post the fake holds.
    pub fn add_reply(&self, parent_uri: &str, handle: &str, text: &str) -> Option<String> {
        self.add_reply_at(parent_uri, handle, text, Utc::now())
    }

    /// Like [`FakeBluesky::add_reply`], with the record's `createdAt` set to
    /// `created_at` (the client's clock); it is indexed now.
    pub fn add_reply_at(
        &self,
        parent_uri: &str,
        handle: &str,
        text: &str,
        created_at: DateTime<Utc>,
    ) -> Option<String> {
        let did = self.add_account_if_missing(handle);
        let mut state = self.shared.lock();
        let parent = state.find_post(parent_uri)?;
        let parent_ref = json!({"uri": parent.public.uri, "cid": parent.cid});
        let root_ref = parent
            .value
            .get("reply")
            .and_then(|r| r.get("root"))
            .cloned()
            .unwrap_or_else(|| parent_ref.clone());
        let created_at = created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let value = json!({
            "$type": POST_COLLECTION,
            "text": text,
            "createdAt": created_at,
            "reply": {"root": root_ref, "parent": parent_ref},
        });
        let reply = FakeReply {
            root_uri: root_ref["uri"].as_str().unwrap_or_default().to_string(),
            root_cid: root_ref["cid"].as_str().unwrap_or_default().to_string(),
            parent_uri: parent.public.uri.clone(),
            parent_cid: parent.cid.clone(),
        };
        let rkey = state.next_tid();
        let post = CheckedPost {
            text: text.to_string(),
            langs: Vec::new(),
            created_at,
        };
        let (uri, _) = insert_record(&mut state, &did, rkey, value, post, Some(reply), Vec::new());
        Some(uri)
    }

    fn add_account_if_missing(&self, handle: &str) -> String {
        let existing = self.shared.lock().did_of(handle);
        existing.unwrap_or_else(|| self.add_account(handle, &random_base32(19)))
    }

    /// Every stored post, in the order they arrived.
    pub fn posts(&self) -> Vec<FakeRecord> {
        self.shared
            .lock()
            .records
            .iter()
            .map(|r| r.public.clone())
            .collect()
    }

    /// How many `createRecord` requests arrived (whatever their outcome).
    pub fn post_requests(&self) -> usize {
        self.shared.lock().post_requests
    }

    /// Successful `createSession` calls of the account (logins).
    pub fn sessions_created(&self, handle: &str) -> usize {
        let state = self.shared.lock();
        state
            .did_of(handle)
            .and_then(|did| state.accounts.get(&did))
            .map_or(0, |a| a.sessions_created)
    }

    /// Every `createSession` call naming the account, refused ones included.
    pub fn login_attempts(&self, handle: &str) -> usize {
        let state = self.shared.lock();
        state
            .did_of(handle)
            .and_then(|did| state.accounts.get(&did))
            .map_or(0, |a| a.login_attempts)
    }

    /// Successful `refreshSession` calls of the account.
    pub fn sessions_refreshed(&self, handle: &str) -> usize {
        let state = self.shared.lock();
        state
            .did_of(handle)
            .and_then(|did| state.accounts.get(&did))
            .map_or(0, |a| a.sessions_refreshed)
    }
}

// --- state -------------------------------------------------------------------------------------

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not take the fake down with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn with_account(&self, handle: &str, change: impl FnOnce(&mut Account)) {
        let mut state = self.lock();
        if let Some(did) = state.did_of(handle) {
            if let Some(account) = state.accounts.get_mut(&did) {
                change(account);
            }
        }
    }
}

struct Account {
    did: String,
    handle: String,
    app_password: String,
    taken_down: bool,
    login_attempts: usize,
    sessions_created: usize,
    sessions_refreshed: usize,
}

struct AccessToken {
    did: String,
    /// `Some(status)` once expired: the status of the `ExpiredToken` answer.
    expired: Option<u16>,
}

struct RefreshToken {
    did: String,
    revoked: bool,
}

struct StoredRecord {
    public: FakeRecord,
    cid: String,
    value: Value,
}

/// A `reply` notification: record `record` (an index in `records`)
/// answered the recipient's post `reason_subject`.
struct Notification {
    seq: u64,
    record: usize,
    reason_subject: String,
}

struct Window {
    started: Instant,
    reset_epoch: u64,
    used: u32,
}

/// What one limiter says about a request: the `RateLimit-*` header values.
#[derive(Debug, Clone, Copy)]
struct Quota {
    limit: u32,
    remaining: u32,
    reset_epoch: u64,
    window_secs: u64,
}

#[derive(Default)]
struct State {
    accounts: HashMap<String, Account>,
    dids_by_handle: HashMap<String, String>,
    access_tokens: HashMap<String, AccessToken>,
    refresh_tokens: HashMap<String, RefreshToken>,
    records: Vec<StoredRecord>,
    record_index: HashMap<(String, String), usize>,
    /// Post URI → the indices (in `records`) of the posts answering it.
    children: HashMap<String, Vec<usize>>,
    /// Recipient DID → its notifications, oldest first (`seq` ascending).
    notifications: HashMap<String, Vec<Notification>>,
    /// The `seq` of the next notification.
    next_notification: u64,
    /// `getPostThread` answers 501, as a PDS with no feed AppView.
    no_feed_appview: bool,
    post_requests: usize,
    /// (DID, blob CID) → (MIME type, size).
    blobs: HashMap<(String, String), (String, u64)>,
    requests_by_nsid: HashMap<String, usize>,
    faults: Faults<Duration>,
    /// Waited before handling every request.
    latency: Duration,
    limits: RateLimits,
    windows: HashMap<(&'static str, String), Window>,
    last_tid_micros: i64,
}

impl State {
    /// The live post an `at://<did or handle>/app.bsky.feed.post/<rkey>` names.
    fn find_post(&self, uri: &str) -> Option<&StoredRecord> {
        let rest = uri.strip_prefix("at://")?;
        let mut parts = rest.split('/');
        let did = self.did_of(parts.next()?)?;
        if parts.next()? != POST_COLLECTION {
            return None;
        }
        let rkey = parts.next()?;
        if parts.next().is_some() {
            return None;
        }
        let index = *self.record_index.get(&(did, rkey.to_string()))?;
        self.records.get(index).filter(|r| !r.public.deleted)
    }

    /// The DID of a handle or DID.
    fn did_of(&self, identifier: &str) -> Option<String> {
        if identifier.starts_with("did:") {
            return self
                .accounts
                .contains_key(identifier)
                .then(|| identifier.to_string());
        }
        self.dids_by_handle
            .get(&identifier.to_ascii_lowercase())
            .cloned()
    }

    /// Take `points` from the limiter `name` for `key`. `None` when the
    /// limiter is off; `Err` (nothing taken) when the budget is spent.
    fn consume(
        &mut self,
        name: &'static str,
        key: &str,
        points: u32,
    ) -> Option<Result<Quota, Quota>> {
        let config = match name {
            "global" => self.limits.global,
            "create_session" => self.limits.create_session,
            _ => self.limits.write_points,
        }?;
        let now = Instant::now();
        let window = self
            .windows
            .entry((name, key.to_string()))
            .or_insert_with(|| new_window(now, config.window));
        if now.duration_since(window.started) >= config.window {
            *window = new_window(now, config.window);
        }
        let allowed = window.used.saturating_add(points) <= config.points;
        if allowed {
            window.used += points;
        }
        let quota = Quota {
            limit: config.points,
            remaining: config.points.saturating_sub(window.used),
            reset_epoch: window.reset_epoch,
            window_secs: config.window.as_secs().max(1),
        };
        Some(if allowed { Ok(quota) } else { Err(quota) })
    }

    fn issue_session(&mut self, did: &str) -> (String, String) {
        let access = jwt("at+jwt", "com.atproto.access", did, ACCESS_LIFETIME);
        let refresh = jwt("refresh+jwt", "com.atproto.refresh", did, REFRESH_LIFETIME);
        self.access_tokens.insert(
            access.clone(),
            AccessToken {
                did: did.to_string(),
                expired: None,
            },
        );
        self.refresh_tokens.insert(
            refresh.clone(),
            RefreshToken {
                did: did.to_string(),
                revoked: false,
            },
        );
        (access, refresh)
    }

    /// A record key that sorts after every one made before.
    fn next_tid(&mut self) -> String {
        let micros = Utc::now().timestamp_micros().max(self.last_tid_micros + 1);
        self.last_tid_micros = micros;
        let at = DateTime::from_timestamp_micros(micros).unwrap_or_else(Utc::now);
        tid(at, 0)
    }

    /// Check the access token of a request: the DID it belongs to, or the error.
    fn authenticate(&self, req: &HttpRequest) -> Result<String, Reply> {
        let token = bearer(req)
            .ok_or_else(|| Reply::error(401, "AuthMissing", "Authentication Required"))?;
        let Some(access) = self.access_tokens.get(token) else {
            let message = if self.refresh_tokens.contains_key(token) {
                "Bad token scope"
            } else {
                "Token could not be verified"
            };
            return Err(Reply::error(400, "InvalidToken", message));
        };
        if let Some(status) = access.expired {
            return Err(Reply::error(status, "ExpiredToken", "Token has expired"));
        }
        if self.accounts.get(&access.did).is_some_and(|a| a.taken_down) {
            return Err(Reply::error(
                400,
                "AccountTakedown",
                "Account has been taken down",
            ));
        }
        Ok(access.did.clone())
    }
}

fn new_window(now: Instant, length: Duration) -> Window {
    let reset = SystemTime::now() + length;
    let reset_epoch = reset
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0))
        .unwrap_or(0);
    Window {
        started: now,
        reset_epoch,
        used: 0,
    }
}

// --- HTTP --------------------------------------------------------------------------------------

/// What the fake answers, before it becomes an HTTP response.
struct Reply {
    status: u16,
    body: Value,
    quota: Option<Quota>,
    after: After,
}

enum After {
    Respond,
    DropConnection,
    Stall(Duration),
}

impl Reply {
    fn ok(body: Value) -> Self {
        Self {
            status: 200,
            body,
            quota: None,
            after: After::Respond,
        }
    }

    fn error(status: u16, error: &str, message: &str) -> Self {
        Self {
            status,
            body: json!({"error": error, "message": message}),
            quota: None,
            after: After::Respond,
        }
    }

    fn invalid(message: impl AsRef<str>) -> Self {
        Self::error(400, "InvalidRequest", message.as_ref())
    }

    fn rate_limited(quota: Quota) -> Self {
        Self::error(429, "RateLimitExceeded", "Rate Limit Exceeded").with_quota(quota)
    }

    fn with_quota(mut self, quota: Quota) -> Self {
        self.quota = Some(quota);
        self
    }
}

async fn xrpc(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let latency = shared.lock().latency;
    if !latency.is_zero() {
        actix_web::rt::time::sleep(latency).await;
    }
    let nsid = req.match_info().get("nsid").unwrap_or_default().to_string();
    let reply = {
        let mut state = shared.lock();
        route(&mut state, &nsid, &req, &body)
    };
    match reply.after {
        After::Respond => {}
        After::Stall(stall) => actix_web::rt::time::sleep(stall).await,
        After::DropConnection => return dropped("fake Bluesky"),
    }
    respond(reply)
}

fn respond(reply: Reply) -> HttpResponse {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut builder = HttpResponse::build(status);
    if let Some(q) = reply.quota {
        builder
            .insert_header(("RateLimit-Limit", q.limit.to_string()))
            .insert_header(("RateLimit-Remaining", q.remaining.to_string()))
            .insert_header(("RateLimit-Reset", q.reset_epoch.to_string()))
            .insert_header((
                "RateLimit-Policy",
                format!("{};w={}", q.limit, q.window_secs),
            ));
    }
    builder.json(reply.body)
}

fn route(state: &mut State, nsid: &str, req: &HttpRequest, body: &[u8]) -> Reply {
    let global = state.consume("global", "loopback", 1);
    if let Some(Err(quota)) = global {
        return Reply::rate_limited(quota);
    }
    *state.requests_by_nsid.entry(nsid.to_string()).or_insert(0) += 1;
    let is_post = req.method() == actix_web::http::Method::POST;
    let reply = match (nsid, is_post) {
        ("com.atproto.server.createSession", true) => create_session(state, body),
        ("com.atproto.server.refreshSession", true) => refresh_session(state, req),
        ("com.atproto.server.getSession", false) => get_session(state, req),
        ("com.atproto.repo.createRecord", true) => create_record(state, req, body),
        ("com.atproto.repo.getRecord", false) => get_record(state, req),
        ("com.atproto.repo.uploadBlob", true) => upload_blob(state, req, body),
        ("com.atproto.repo.deleteRecord", true) => delete_record(state, req, body),
        ("app.bsky.feed.getPostThread", false) if state.no_feed_appview => {
            Reply::error(501, "MethodNotImplemented", "Method Not Implemented")
        }
        ("app.bsky.feed.getPostThread", false) => get_post_thread(state, req),
        ("app.bsky.notification.listNotifications", false) => list_notifications(state, req),
        (
            "com.atproto.server.createSession"
            | "com.atproto.server.refreshSession"
            | "com.atproto.server.getSession"
            | "com.atproto.repo.createRecord"
            | "com.atproto.repo.getRecord"
            | "com.atproto.repo.uploadBlob"
            | "com.atproto.repo.deleteRecord"
            | "app.bsky.feed.getPostThread"
            | "app.bsky.notification.listNotifications",
            _,
        ) => Reply::invalid(format!(
            "Incorrect HTTP method ({}) for {nsid}",
            req.method()
        )),
        _ => Reply::error(501, "MethodNotImplemented", "Method Not Implemented"),
    };
    match (reply.quota, global) {
        (None, Some(Ok(quota))) => reply.with_quota(quota),
        _ => reply,
    }
}

fn create_session(state: &mut State, body: &[u8]) -> Reply {
    let input = match input_object(body) {
        Ok(input) => input,
        Err(reply) => return reply,
    };
    let (identifier, password) = match (
        string_field(&input, "Input", "identifier"),
        string_field(&input, "Input", "password"),
    ) {
        (Ok(i), Ok(p)) => (i, p),
        (Err(reply), _) | (_, Err(reply)) => return reply,
    };
    let did = state.did_of(&identifier);
    if let Some(account) = did.as_ref().and_then(|d| state.accounts.get_mut(d)) {
        account.login_attempts += 1;
    }
    let key = did
        .clone()
        .unwrap_or_else(|| identifier.to_ascii_lowercase());
    let quota = match state.consume("create_session", &key, 1) {
        Some(Err(quota)) => return Reply::rate_limited(quota),
        Some(Ok(quota)) => Some(quota),
        None => None,
    };
    let with_quota = |reply: Reply| match quota {
        Some(q) => reply.with_quota(q),
        None => reply,
    };
    let refused = || {
        Reply::error(
            401,
            "AuthenticationRequired",
            "Invalid identifier or password",
        )
    };
    let Some(account) = did.as_ref().and_then(|d| state.accounts.get_mut(d)) else {
        return with_quota(refused());
    };
    if account.app_password != password {
        return with_quota(refused());
    }
    if account.taken_down {
        return with_quota(Reply::error(
            400,
            "AccountTakedown",
            "Account has been taken down",
        ));
    }
    account.sessions_created += 1;
    let (did, handle) = (account.did.clone(), account.handle.clone());
    let (access, refresh) = state.issue_session(&did);
    with_quota(Reply::ok(json!({
        "accessJwt": access,
        "refreshJwt": refresh,
        "handle": handle,
        "did": did,
        "active": true,
    })))
}

fn refresh_session(state: &mut State, req: &HttpRequest) -> Reply {
    let Some(token) = bearer(req).map(str::to_string) else {
        return Reply::error(401, "AuthMissing", "Authentication Required");
    };
    let Some(refresh) = state.refresh_tokens.get(&token) else {
        let message = if state.access_tokens.contains_key(&token) {
            "Invalid token type"
        } else {
            "Token could not be verified"
        };
        return Reply::error(400, "InvalidToken", message);
    };
    if refresh.revoked {
        return Reply::error(400, "ExpiredToken", "Token has been revoked");
    }
    let did = refresh.did.clone();
    let Some(account) = state.accounts.get_mut(&did) else {
        return Reply::error(400, "InvalidToken", "Token could not be verified");
    };
    if account.taken_down {
        return Reply::error(400, "AccountTakedown", "Account has been taken down");
    }
    account.sessions_refreshed += 1;
    let handle = account.handle.clone();
    if let Some(old) = state.refresh_tokens.get_mut(&token) {
        old.revoked = true;
    }
    let (access, refresh) = state.issue_session(&did);
    Reply::ok(json!({
        "accessJwt": access,
        "refreshJwt": refresh,
        "handle": handle,
        "did": did,
        "active": true,
    }))
}

fn create_record(state: &mut State, req: &HttpRequest, body: &[u8]) -> Reply {
    state.post_requests += 1;
    let did = match state.authenticate(req) {
        Ok(did) => did,
        Err(reply) => return reply,
    };
    if let Some(status) = state.faults.fail.take() {
        let status = if (500..600).contains(&status) {
            status
        } else {
            500
        };
        return Reply::error(status, server_error_name(status), "Internal Server Error");
    }
    if let Some(reset_in) = state.faults.rate_limit.take() {
        let config = state
            .limits
            .write_points
            .unwrap_or(RateLimits::DOCUMENTED_WRITE_POINTS);
        return Reply::rate_limited(Quota {
            limit: config.points,
            remaining: 0,
            reset_epoch: new_window(Instant::now(), reset_in).reset_epoch,
            window_secs: config.window.as_secs().max(1),
        });
    }
    let quota = match state.consume("write_points", &did, CREATE_POINTS) {
        Some(Err(quota)) => return Reply::rate_limited(quota),
        Some(Ok(quota)) => Some(quota),
        None => None,
    };
    let reply = store_record(state, &did, body);
    match quota {
        Some(q) => reply.with_quota(q),
        None => reply,
    }
}

fn store_record(state: &mut State, did: &str, body: &[u8]) -> Reply {
    let input = match input_object(body) {
        Ok(input) => input,
        Err(reply) => return reply,
    };
    let (repo, collection) = match (
        string_field(&input, "Input", "repo"),
        string_field(&input, "Input", "collection"),
    ) {
        (Ok(r), Ok(c)) => (r, c),
        (Err(reply), _) | (_, Err(reply)) => return reply,
    };
    let Some(record) = input.get("record").and_then(Value::as_object) else {
        return Reply::invalid(r#"Input must have the property "record""#);
    };
    let rkey = match input.get("rkey") {
        None | Some(Value::Null) => None,
        Some(Value::String(rkey)) if is_record_key(rkey) => Some(rkey.clone()),
        Some(_) => return Reply::invalid("Input/rkey must be a valid Record Key"),
    };
    let validate = input.get("validate").and_then(Value::as_bool) != Some(false);
    match state.did_of(&repo) {
        None => return Reply::invalid(format!("Could not find repo: {repo}")),
        Some(owner) if owner != did => {
            return Reply::error(401, "AuthenticationRequired", "Authentication Required")
        }
        Some(_) => {}
    }
    if collection != POST_COLLECTION {
        return Reply::invalid(format!("Lexicon not found: lex:{collection}"));
    }
    let post = match check_post(record, validate) {
        Ok(post) => post,
        Err(message) => return Reply::invalid(message),
    };
    let reply_refs = match check_reply(state, record, validate) {
        Ok(reply) => reply,
        Err(message) => return Reply::invalid(message),
    };
    let images = match check_images(state, did, record, validate) {
        Ok(images) => images,
        Err(message) => return Reply::invalid(message),
    };
    let rkey = match rkey {
        Some(rkey) => rkey,
        None => state.next_tid(),
    };
    let key = (did.to_string(), rkey.clone());
    if state.record_index.contains_key(&key) {
        return Reply::invalid("Record already exists");
    }
    let value = Value::Object(record.clone());
    let (uri, cid) = insert_record(state, did, rkey, value, post, reply_refs, images);
    let rev = state.next_tid();
    let mut reply = Reply::ok(json!({
        "uri": uri,
        "cid": cid,
        "commit": {"cid": cid_of(&json!({"rev": rev})), "rev": rev},
        "validationStatus": if validate { "valid" } else { "unknown" },
    }));
    let faults = &mut state.faults;
    if faults.drop_after_store.take().is_some() {
        reply.after = After::DropConnection;
    } else if let Some(stall) = faults.stall_after_store.take() {
        reply.after = After::Stall(stall);
    }
    reply
}

/// Store a post record of `did` under `rkey` (not taken): its URI and CID.
fn insert_record(
    state: &mut State,
    did: &str,
    rkey: String,
    value: Value,
    post: CheckedPost,
    reply: Option<FakeReply>,
    images: Vec<FakeImage>,
) -> (String, String) {
    let cid = cid_of(&value);
    let uri = format!("at://{did}/{POST_COLLECTION}/{rkey}");
    let handle = state
        .accounts
        .get(did)
        .map(|a| a.handle.clone())
        .unwrap_or_default();
    let index = state.records.len();
    state
        .record_index
        .insert((did.to_string(), rkey.clone()), index);
    if let Some(reply) = &reply {
        // The parent's URI as stored (a DID, never a handle).
        let (parent, parent_did) = state
            .find_post(&reply.parent_uri)
            .map(|p| (p.public.uri.clone(), Some(p.public.did.clone())))
            .unwrap_or_else(|| (reply.parent_uri.clone(), None));
        state
            .children
            .entry(parent.clone())
            .or_default()
            .push(index);
        // The parent's author hears of the reply, unless it answers itself.
        if let Some(recipient) = parent_did.filter(|d| d != did) {
            let seq = state.next_notification;
            state.next_notification += 1;
            state
                .notifications
                .entry(recipient)
                .or_default()
                .push(Notification {
                    seq,
                    record: index,
                    reason_subject: parent,
                });
        }
    }
    state.records.push(StoredRecord {
        public: FakeRecord {
            did: did.to_string(),
            handle,
            rkey,
            uri: uri.clone(),
            text: post.text,
            langs: post.langs,
            created_at: post.created_at,
            facets: value.get("facets").cloned().unwrap_or(Value::Null),
            received_at: Utc::now(),
            cid: cid.clone(),
            reply,
            images,
            deleted: false,
        },
        cid: cid.clone(),
        value,
    });
    (uri, cid)
}

/// `app.bsky.feed.getPostThread` (proxied to the AppView): the thread of
/// `uri` with replies down to `depth` and parents up to `parentHeight`.
fn get_post_thread(state: &mut State, req: &HttpRequest) -> Reply {
    if let Err(reply) = state.authenticate(req) {
        return reply;
    }
    if let Some(reply) = read_fault(state) {
        return reply;
    }
    let params: HashMap<String, String> = match serde_urlencoded::from_str(req.query_string()) {
        Ok(params) => params,
        Err(_) => return Reply::invalid("Invalid query string"),
    };
    let Some(uri) = params.get("uri") else {
        return Reply::invalid(r#"Params must have the property "uri""#);
    };
    let bound = |name: &str, default: usize| -> Result<usize, Reply> {
        match params.get(name) {
            None => Ok(default),
            Some(v) => match v.parse::<usize>() {
                Ok(n) if n <= 1000 => Ok(n),
                Ok(_) => Err(Reply::invalid(format!(
                    "{name} can not be greater than 1000"
                ))),
                Err(_) => Err(Reply::invalid(format!("{name} must be an integer"))),
            },
        }
    };
    let (depth, parent_height) = match (bound("depth", 6), bound("parentHeight", 80)) {
        (Ok(d), Ok(p)) => (d, p),
        (Err(reply), _) | (_, Err(reply)) => return reply,
    };
    let Some(index) = state
        .find_post(uri)
        .and_then(|p| {
            state
                .record_index
                .get(&(p.public.did.clone(), p.public.rkey.clone()))
        })
        .copied()
    else {
        return Reply::error(400, "NotFound", &format!("Post not found: {uri}"));
    };
    let mut thread = thread_view(state, index, depth);
    let mut node = &mut thread;
    let mut current = index;
    for _ in 0..parent_height {
        let Some(parent) = state.records[current]
            .public
            .reply
            .as_ref()
            .and_then(|r| state.find_post(&r.parent_uri))
            .and_then(|p| {
                state
                    .record_index
                    .get(&(p.public.did.clone(), p.public.rkey.clone()))
            })
            .copied()
        else {
            break;
        };
        node["parent"] = thread_view(state, parent, 0);
        node = &mut node["parent"];
        current = parent;
    }
    Reply::ok(json!({"thread": thread}))
}

/// The armed 5xx or 429 of an authenticated read (`getPostThread`,
/// `listNotifications`), if any.
fn read_fault(state: &mut State) -> Option<Reply> {
    if let Some(status) = state.faults.fail.take() {
        let status = if (500..600).contains(&status) {
            status
        } else {
            500
        };
        return Some(Reply::error(
            status,
            server_error_name(status),
            "Internal Server Error",
        ));
    }
    let reset_in = state.faults.rate_limit.take()?;
    let limit = state.limits.global.map_or(3000, |l| l.points);
    Some(Reply::rate_limited(Quota {
        limit,
        remaining: 0,
        reset_epoch: new_window(Instant::now(), reset_in).reset_epoch,
        window_secs: reset_in.as_secs().max(1),
    }))
}

/// `app.bsky.notification.listNotifications`: the account's notifications,
/// newest first, `limit` (1 to 100, default 50) per page after `cursor`.
fn list_notifications(state: &mut State, req: &HttpRequest) -> Reply {
    let did = match state.authenticate(req) {
        Ok(did) => did,
        Err(reply) => return reply,
    };
    if let Some(reply) = read_fault(state) {
        return reply;
    }
    let params: Vec<(String, String)> = match serde_urlencoded::from_str(req.query_string()) {
        Ok(params) => params,
        Err(_) => return Reply::invalid("Invalid query string"),
    };
    let param = |name: &str| {
        params
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let limit = match param("limit").map(str::parse::<i64>) {
        None => 50,
        Some(Ok(n)) if n > 100 => return Reply::invalid("limit can not be greater than 100"),
        Some(Ok(n)) if n < 1 => return Reply::invalid("limit can not be less than 1"),
        Some(Ok(n)) => n as usize,
        Some(Err(_)) => return Reply::invalid("limit must be an integer"),
    };
    let before = match param("cursor") {
        None => u64::MAX,
        Some(cursor) => match parse_notification_cursor(cursor) {
            Some(seq) => seq,
            None => return Reply::invalid("Malformed cursor"),
        },
    };
    let seen_at = match param("seenAt").map(DateTime::parse_from_rfc3339) {
        None => None,
        Some(Ok(at)) => Some(at.with_timezone(&Utc)),
        Some(Err(_)) => return Reply::invalid("seenAt must be a valid datetime"),
    };
    let reasons: Vec<&str> = params
        .iter()
        .filter(|(k, _)| k == "reasons" || k == "reasons[]")
        .map(|(_, v)| v.as_str())
        .collect();
    let list = state
        .notifications
        .get(&did)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let end = list.partition_point(|n| n.seq < before);
    let page: Vec<&Notification> = list[..end]
        .iter()
        .rev()
        .filter(|_| reasons.is_empty() || reasons.contains(&"reply"))
        .take(limit)
        .collect();
    let cursor = page.last().map(|n| {
        let at = state.records[n.record].public.received_at;
        format!("{}::{:x}", at.timestamp_millis(), n.seq)
    });
    let notifications: Vec<Value> = page
        .iter()
        .filter(|n| !state.records[n.record].public.deleted)
        .map(|n| {
            let record = &state.records[n.record];
            let public = &record.public;
            json!({
                "uri": public.uri,
                "cid": record.cid,
                "author": {"did": public.did, "handle": public.handle, "displayName": public.handle},
                "reason": "reply",
                "reasonSubject": n.reason_subject,
                "record": record.value,
                "isRead": seen_at.is_some_and(|seen| public.received_at <= seen),
                "indexedAt": public.received_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "labels": [],
            })
        })
        .collect();
    let mut body = json!({"notifications": notifications});
    if let Some(cursor) = cursor {
        body["cursor"] = json!(cursor);
    }
    Reply::ok(body)
}

/// The `seq` a `listNotifications` cursor (`<millis>::<seq in hex>`) points at.
fn parse_notification_cursor(cursor: &str) -> Option<u64> {
    let (millis, seq) = cursor.split_once("::")?;
    millis.parse::<i64>().ok()?;
    u64::from_str_radix(seq, 16).ok()
}

/// A `#threadViewPost` of record `index`, its live replies down to `depth`
/// levels (oldest first; no `replies` at depth 0).
fn thread_view(state: &State, index: usize, depth: usize) -> Value {
    let record = &state.records[index];
    let live: Vec<usize> = state
        .children
        .get(&record.public.uri)
        .into_iter()
        .flatten()
        .copied()
        .filter(|&i| !state.records[i].public.deleted)
        .collect();
    let public = &record.public;
    let mut view = json!({
        "$type": "app.bsky.feed.defs#threadViewPost",
        "post": {
            "uri": public.uri,
            "cid": record.cid,
            "author": {"did": public.did, "handle": public.handle, "displayName": public.handle},
            "record": record.value,
            "replyCount": live.len(),
            "repostCount": 0,
            "likeCount": 0,
            "quoteCount": 0,
            "indexedAt": public.received_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "labels": [],
        },
    });
    if depth > 0 {
        view["replies"] = Value::Array(
            live.into_iter()
                .map(|i| thread_view(state, i, depth - 1))
                .collect(),
        );
    }
    view
}

fn get_record(state: &mut State, req: &HttpRequest) -> Reply {
    if req.headers().contains_key("authorization") {
        // Optional auth: a token that is sent must be good.
        if let Err(reply) = state.authenticate(req) {
            return reply;
        }
    }
    let params: HashMap<String, String> = match serde_urlencoded::from_str(req.query_string()) {
        Ok(params) => params,
        Err(_) => return Reply::invalid("Invalid query string"),
    };
    let mut wanted = Vec::with_capacity(3);
    for name in ["repo", "collection", "rkey"] {
        match params.get(name) {
            Some(value) => wanted.push(value.as_str()),
            None => return Reply::invalid(format!(r#"Params must have the property "{name}""#)),
        }
    }
    let (repo, collection, rkey) = (wanted[0], wanted[1], wanted[2]);
    let Some(did) = state.did_of(repo) else {
        return Reply::invalid(format!("Could not find repo: {repo}"));
    };
    let uri = format!("at://{did}/{collection}/{rkey}");
    let found = (collection == POST_COLLECTION)
        .then(|| state.record_index.get(&(did.clone(), rkey.to_string())))
        .flatten()
        .and_then(|&i| state.records.get(i));
    match found {
        Some(record) => Reply::ok(json!({"uri": uri, "cid": record.cid, "value": record.value})),
        None => Reply::error(
            400,
            "RecordNotFound",
            &format!("Could not locate record: {uri}"),
        ),
    }
}

/// `com.atproto.server.getSession`: who the access token belongs to.
fn get_session(state: &mut State, req: &HttpRequest) -> Reply {
    let did = match state.authenticate(req) {
        Ok(did) => did,
        Err(reply) => return reply,
    };
    let handle = state
        .accounts
        .get(&did)
        .map(|a| a.handle.clone())
        .unwrap_or_default();
    Reply::ok(json!({"handle": handle, "did": did, "active": true}))
}

/// `com.atproto.repo.uploadBlob`: the raw body, typed by `Content-Type`.
fn upload_blob(state: &mut State, req: &HttpRequest, body: &[u8]) -> Reply {
    let did = match state.authenticate(req) {
        Ok(did) => did,
        Err(reply) => return reply,
    };
    let mime = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|v| !v.is_empty() && v != "application/octet-stream");
    let Some(mime) = mime else {
        return Reply::invalid("Blob upload needs a Content-Type");
    };
    if body.is_empty() {
        return Reply::invalid("Request body is empty");
    }
    let cid = blob_cid(body);
    let size = body.len() as u64;
    state.blobs.insert((did, cid.clone()), (mime.clone(), size));
    Reply::ok(json!({"blob": {
        "$type": "blob",
        "ref": {"$link": cid},
        "mimeType": mime,
        "size": size,
    }}))
}

/// `com.atproto.repo.deleteRecord`: 1 write point; a record that does not
/// exist is a no-op (200), as on the PDS.
fn delete_record(state: &mut State, req: &HttpRequest, body: &[u8]) -> Reply {
    let did = match state.authenticate(req) {
        Ok(did) => did,
        Err(reply) => return reply,
    };
    let input = match input_object(body) {
        Ok(input) => input,
        Err(reply) => return reply,
    };
    let (repo, collection, rkey) = match (
        string_field(&input, "Input", "repo"),
        string_field(&input, "Input", "collection"),
        string_field(&input, "Input", "rkey"),
    ) {
        (Ok(r), Ok(c), Ok(k)) => (r, c, k),
        (Err(reply), _, _) | (_, Err(reply), _) | (_, _, Err(reply)) => return reply,
    };
    match state.did_of(&repo) {
        None => return Reply::invalid(format!("Could not find repo: {repo}")),
        Some(owner) if owner != did => {
            return Reply::error(401, "AuthenticationRequired", "Authentication Required")
        }
        Some(_) => {}
    }
    let quota = match state.consume("write_points", &did, 1) {
        Some(Err(quota)) => return Reply::rate_limited(quota),
        Some(Ok(quota)) => Some(quota),
        None => None,
    };
    let key = (did.clone(), rkey);
    let removed = (collection == POST_COLLECTION)
        .then(|| state.record_index.remove(&key))
        .flatten();
    let reply = match removed {
        Some(i) => {
            if let Some(record) = state.records.get_mut(i) {
                record.public.deleted = true;
            }
            let rev = state.next_tid();
            Reply::ok(json!({"commit": {"cid": cid_of(&json!({"rev": rev})), "rev": rev}}))
        }
        None => Reply::ok(json!({})),
    };
    match quota {
        Some(q) => reply.with_quota(q),
        None => reply,
    }
}

/// `GET /fake/image.jpg` and `GET /fake/image/{size}`: a JPEG to download.
async fn image(req: HttpRequest) -> HttpResponse {
    sized_jpeg(&req)
}

// --- record validation (app.bsky.feed.post lexicon) ------------------------------------------------

/// A strong ref (`{uri, cid}`) at `path` of a reply; the error names the path.
fn check_strong_ref(value: Option<&Value>, path: &str) -> Result<(String, String), String> {
    let value = value.ok_or_else(|| format!(r#"Record/reply must have the property "{path}""#))?;
    let field = |name: &str| {
        value
            .get(name)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .ok_or_else(|| format!(r#"Record/reply/{path} must have the property "{name}""#))
    };
    let (uri, cid) = (field("uri")?, field("cid")?);
    if !uri.starts_with("at://") {
        return Err(format!("Record/reply/{path}/uri must be a valid at-uri"));
    }
    Ok((uri, cid))
}

/// The record's `reply`: both strong refs present; root and parent must be
/// posts the fake holds, with their current cids.
fn check_reply(
    state: &State,
    record: &Map<String, Value>,
    validate: bool,
) -> Result<Option<FakeReply>, String> {
    let Some(reply) = record.get("reply") else {
        return Ok(None);
    };
    let invalid = |detail: String| format!("Invalid {POST_COLLECTION} record: {detail}");
    let (root_uri, root_cid) = check_strong_ref(reply.get("root"), "root").map_err(invalid)?;
    let (parent_uri, parent_cid) =
        check_strong_ref(reply.get("parent"), "parent").map_err(invalid)?;
    if validate {
        for (uri, cid, path) in [
            (&root_uri, &root_cid, "root"),
            (&parent_uri, &parent_cid, "parent"),
        ] {
            let held = uri
                .strip_prefix("at://")
                .and_then(|rest| {
                    let mut parts = rest.split('/');
                    let did = state.did_of(parts.next()?)?;
                    let collection = parts.next()?;
                    let rkey = parts.next()?;
                    (collection == POST_COLLECTION).then_some((did, rkey.to_string()))
                })
                .and_then(|key| state.record_index.get(&key))
                .and_then(|&i| state.records.get(i));
            match held {
                Some(record) if record.cid == *cid => {}
                Some(_) => return Err(format!("Record/reply/{path}/cid does not match {uri}")),
                None => return Err(format!("Record/reply/{path} is not a known post: {uri}")),
            }
        }
    }
    Ok(Some(FakeReply {
        root_uri,
        root_cid,
        parent_uri,
        parent_cid,
    }))
}

/// The images of an `app.bsky.embed.images` embed: at most 4, each with
/// `alt` and a blob of at most 1,000,000 bytes that the account uploaded.
/// Other embed types are kept unchecked.
fn check_images(
    state: &State,
    did: &str,
    record: &Map<String, Value>,
    validate: bool,
) -> Result<Vec<FakeImage>, String> {
    let Some(embed) = record.get("embed") else {
        return Ok(Vec::new());
    };
    let invalid = |detail: String| format!("Invalid {POST_COLLECTION} record: {detail}");
    if embed.get("$type").and_then(Value::as_str) != Some("app.bsky.embed.images") {
        return Ok(Vec::new());
    }
    let images = embed
        .get("images")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid(r#"Record/embed must have the property "images""#.into()))?;
    if validate && images.len() > MAX_EMBED_IMAGES {
        return Err(invalid(format!(
            "Record/embed/images must not have more than {MAX_EMBED_IMAGES} elements"
        )));
    }
    let mut out = Vec::with_capacity(images.len());
    for (i, image) in images.iter().enumerate() {
        let path = format!("Record/embed/images/{i}");
        let alt = image
            .get("alt")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!(r#"{path} must have the property "alt""#)))?;
        let blob = image
            .get("image")
            .ok_or_else(|| invalid(format!(r#"{path} must have the property "image""#)))?;
        let cid = blob
            .get("ref")
            .and_then(|r| r.get("$link"))
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("{path}/image should be a blob ref")))?;
        let mime_type = blob
            .get("mimeType")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let size = blob.get("size").and_then(Value::as_u64).unwrap_or(0);
        if validate {
            if !mime_type.starts_with("image/") {
                return Err(invalid(format!(
                    "{path}/image mime type not accepted: {mime_type}"
                )));
            }
            if size > MAX_IMAGE_BYTES {
                return Err(invalid(format!(
                    "{path}/image file too large. {MAX_IMAGE_BYTES} bytes maximum"
                )));
            }
            match state.blobs.get(&(did.to_string(), cid.to_string())) {
                Some((stored_mime, stored_size))
                    if stored_mime == mime_type && *stored_size == size => {}
                Some(_) => return Err(format!("Blob does not match its ref: {cid}")),
                None => return Err(format!("Could not find blob: {cid}")),
            }
        }
        out.push(FakeImage {
            cid: cid.to_string(),
            mime_type: mime_type.to_string(),
            size,
            alt: alt.to_string(),
        });
    }
    Ok(out)
}

#[derive(Debug)]
struct CheckedPost {
    text: String,
    langs: Vec<String>,
    created_at: String,
}

/// Validate a post record the way the PDS does; the error is the message of
/// the 400 `InvalidRequest`.
fn check_post(record: &Map<String, Value>, validate: bool) -> Result<CheckedPost, String> {
    match record.get("$type").and_then(Value::as_str) {
        Some(POST_COLLECTION) => {}
        other => {
            return Err(format!(
                "Invalid $type: expected {POST_COLLECTION}, got {}",
                other.unwrap_or("undefined")
            ))
        }
    }
    let invalid = |detail: String| format!("Invalid {POST_COLLECTION} record: {detail}");
    let text = match record.get("text") {
        Some(Value::String(text)) => text.clone(),
        Some(_) => return Err(invalid("Record/text must be a string".into())),
        None => return Err(invalid(r#"Record must have the property "text""#.into())),
    };
    let created_at = match record.get("createdAt") {
        Some(Value::String(at)) => at.clone(),
        Some(_) => return Err(invalid("Record/createdAt must be a string".into())),
        None => {
            return Err(invalid(
                r#"Record must have the property "createdAt""#.into(),
            ))
        }
    };
    let langs: Vec<String> = match record.get("langs") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|l| l.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| invalid("Record/langs must be an array of strings".into()))?,
        Some(_) => return Err(invalid("Record/langs must be an array".into())),
    };
    if !validate {
        return Ok(CheckedPost {
            text,
            langs,
            created_at,
        });
    }
    if text.len() > 3000 {
        return Err(invalid(
            "Record/text must not be longer than 3000 characters".into(),
        ));
    }
    if text.graphemes(true).count() > 300 {
        return Err(invalid(
            "Record/text must not be longer than 300 graphemes".into(),
        ));
    }
    if DateTime::parse_from_rfc3339(&created_at).is_err() {
        return Err(invalid(
            "Record/createdAt must be an valid atproto datetime (both RFC-3339 and ISO-8601)"
                .into(),
        ));
    }
    if langs.len() > 3 {
        return Err(invalid(
            "Record/langs must not have more than 3 elements".into(),
        ));
    }
    match record.get("facets") {
        None => {}
        Some(Value::Array(facets)) => {
            for (i, facet) in facets.iter().enumerate() {
                check_facet(facet, text.len())
                    .map_err(|e| invalid(format!("Record/facets/{i}{e}")))?;
            }
        }
        Some(_) => return Err(invalid("Record/facets must be an array".into())),
    }
    Ok(CheckedPost {
        text,
        langs,
        created_at,
    })
}

/// One facet: a byte range inside the text and at least one typed feature.
/// The error is the rest of the path and what is wrong with it.
fn check_facet(facet: &Value, text_len: usize) -> Result<(), String> {
    let index = facet
        .get("index")
        .ok_or(r#" must have the property "index""#)?;
    let offset = |name: &str| {
        index
            .get(name)
            .and_then(Value::as_u64)
            .ok_or_else(|| format!("/index/{name} must be a non-negative integer"))
    };
    let (start, end) = (offset("byteStart")?, offset("byteEnd")?);
    if start >= end || end > text_len as u64 {
        return Err(format!(
            "/index is out of range: byteStart {start}, byteEnd {end}, text of {text_len} bytes"
        ));
    }
    let features = facet
        .get("features")
        .and_then(Value::as_array)
        .ok_or(r#" must have the property "features""#)?;
    for (j, feature) in features.iter().enumerate() {
        let kind = feature
            .get("$type")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("/features/{j}/$type must be a string"))?;
        if kind == "app.bsky.richtext.facet#link"
            && feature.get("uri").and_then(Value::as_str).is_none()
        {
            return Err(format!("/features/{j}/uri must be a string"));
        }
    }
    Ok(())
}

// --- helpers -----------------------------------------------------------------------------------

fn input_object(body: &[u8]) -> Result<Map<String, Value>, Reply> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Reply::invalid("Input must be an object")),
        Err(_) => Err(Reply::invalid("Request body is not valid JSON")),
    }
}

fn string_field(input: &Map<String, Value>, path: &str, name: &str) -> Result<String, Reply> {
    match input.get(name) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(Reply::invalid(format!("{path}/{name} must be a string"))),
        None => Err(Reply::invalid(format!(
            r#"{path} must have the property "{name}""#
        ))),
    }
}

/// Record key syntax: 1–512 of `A-Za-z0-9 . - _ : ~`, but not `.` or `..`.
fn is_record_key(rkey: &str) -> bool {
    (1..=512).contains(&rkey.len())
        && rkey != "."
        && rkey != ".."
        && rkey
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:~".contains(&b))
}

fn server_error_name(status: u16) -> &'static str {
    match status {
        501 => "MethodNotImplemented",
        502 => "UpstreamFailure",
        503 => "NotEnoughResources",
        504 => "UpstreamTimeout",
        _ => "InternalServerError",
    }
}

fn random_base32(len: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| char::from(BASE32[rng.gen_range(0..BASE32.len())]))
        .collect()
}

/// A CID-shaped string (`bafyrei` + 52 base32 characters) from the content's hash.
fn cid_of(value: &Value) -> String {
    let digest = Sha256::digest(value.to_string().as_bytes());
    let mut bits = 0u32;
    let mut acc = 0u32;
    let mut out = String::from("bafyrei");
    for byte in digest {
        acc = (acc << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[((acc >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(BASE32[((acc << (5 - bits)) & 31) as usize]));
    }
    out
}

/// A raw-blob CID (`bafkrei` + 52 base32 characters) of `bytes`.
fn blob_cid(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut bits = 0u32;
    let mut acc = 0u32;
    let mut out = String::from("bafkrei");
    for byte in digest {
        acc = (acc << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[((acc >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(BASE32[((acc << (5 - bits)) & 31) as usize]));
    }
    out
}

/// A JWT-shaped token with the claims the PDS puts in (`scope`, `sub`, `iat`,
/// `exp`, `jti`) and a random signature; the fake only looks tokens up.
fn jwt(typ: &str, scope: &str, did: &str, lifetime: Duration) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let now = Utc::now().timestamp();
    let header = json!({"typ": typ, "alg": "HS256"});
    let claims = json!({
        "scope": scope,
        "sub": did,
        "aud": "did:web:fake.bsky.local",
        "iat": now,
        "exp": now + lifetime.as_secs() as i64,
        "jti": random_base32(20),
    });
    let signature: [u8; 32] = rand::thread_rng().gen();
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(text: &str) -> Map<String, Value> {
        let value = json!({"$type": POST_COLLECTION, "text": text, "createdAt": "2026-11-25T09:00:00.000Z"});
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn a_post_of_300_graphemes_passes_and_301_fails() {
        assert!(check_post(&post(&"é".repeat(300)), true).is_ok());
        let err = check_post(&post(&"a".repeat(301)), true).unwrap_err();
        assert!(
            err.ends_with("Record/text must not be longer than 300 graphemes"),
            "{err}"
        );
    }

    #[test]
    fn missing_fields_are_named_by_path() {
        let mut record = post("hi");
        record.remove("createdAt");
        let err = check_post(&record, true).unwrap_err();
        assert_eq!(
            err,
            r#"Invalid app.bsky.feed.post record: Record must have the property "createdAt""#
        );
        record.insert("$type".into(), json!("app.bsky.feed.like"));
        let err = check_post(&record, true).unwrap_err();
        assert!(err.starts_with("Invalid $type"), "{err}");
    }

    #[test]
    fn facets_must_lie_inside_the_text() {
        let mut record = post("hi there");
        let facet = |start: u64, end: u64| {
            json!([{"index": {"byteStart": start, "byteEnd": end},
                     "features": [{"$type": "app.bsky.richtext.facet#link", "uri": "https://x.y"}]}])
        };
        record.insert("facets".into(), facet(0, 8));
        assert!(check_post(&record, true).is_ok());
        record.insert("facets".into(), facet(3, 9));
        assert!(check_post(&record, true).is_err());
        record.insert("facets".into(), facet(4, 4));
        assert!(check_post(&record, true).is_err());
    }

    #[test]
    fn record_keys_follow_the_syntax() {
        assert!(is_record_key("3kf2577exva2x"));
        assert!(is_record_key("self"));
        assert!(!is_record_key(".."));
        assert!(!is_record_key("a/b"));
        assert!(!is_record_key(""));
    }

    /// A state with the accounts `me.test` and `you.test`, a post of `me`,
    /// and a session of `me`: the state, the post's URI and the access token.
    fn state_with_a_post() -> (State, String, String) {
        let mut state = State::default();
        for (did, handle) in [("did:plc:me", "me.test"), ("did:plc:you", "you.test")] {
            state.dids_by_handle.insert(handle.into(), did.into());
            state.accounts.insert(
                did.into(),
                Account {
                    did: did.into(),
                    handle: handle.into(),
                    app_password: "pw".into(),
                    taken_down: false,
                    login_attempts: 0,
                    sessions_created: 0,
                    sessions_refreshed: 0,
                },
            );
        }
        let root = insert_post(&mut state, "did:plc:me", "Boil water notice.", None);
        let (access, _) = state.issue_session("did:plc:me");
        (state, root, access)
    }

    /// Store a post of `did`, answering `parent` (a post the state holds).
    fn insert_post(state: &mut State, did: &str, text: &str, parent: Option<&str>) -> String {
        let reply = parent.map(|parent| {
            let held = state.find_post(parent).unwrap();
            let (parent_uri, parent_cid) = (held.public.uri.clone(), held.cid.clone());
            let (root_uri, root_cid) = match &held.public.reply {
                Some(r) => (r.root_uri.clone(), r.root_cid.clone()),
                None => (parent_uri.clone(), parent_cid.clone()),
            };
            FakeReply {
                root_uri,
                root_cid,
                parent_uri,
                parent_cid,
            }
        });
        let mut value = json!({"$type": POST_COLLECTION, "text": text, "createdAt": "2026-11-25T09:00:00.000Z"});
        if let Some(r) = &reply {
            value["reply"] = json!({
                "root": {"uri": r.root_uri, "cid": r.root_cid},
                "parent": {"uri": r.parent_uri, "cid": r.parent_cid},
            });
        }
        let checked = CheckedPost {
            text: text.into(),
            langs: Vec::new(),
            created_at: "2026-11-25T09:00:00.000Z".into(),
        };
        let rkey = state.next_tid();
        insert_record(state, did, rkey, value, checked, reply, Vec::new()).0
    }

    fn list(state: &mut State, access: &str, query: &str) -> Reply {
        let req = actix_web::test::TestRequest::get()
            .uri(&format!(
                "/xrpc/app.bsky.notification.listNotifications?{query}"
            ))
            .insert_header(("authorization", format!("Bearer {access}")))
            .to_http_request();
        list_notifications(state, &req)
    }

    fn uris(reply: &Reply) -> Vec<String> {
        reply.body["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["uri"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn replies_to_the_accounts_posts_are_notified_newest_first_in_pages() {
        let (mut state, root, access) = state_with_a_post();
        let first = insert_post(&mut state, "did:plc:you", "When?", Some(&root));
        let second = insert_post(&mut state, "did:plc:you", "Where?", Some(&root));
        // Neither a reply to someone else's reply nor our own thread part notifies us.
        insert_post(&mut state, "did:plc:you", "Also me", Some(&first));
        let ours = insert_post(&mut state, "did:plc:me", "2/2", Some(&root));
        let third = insert_post(&mut state, "did:plc:you", "Thanks", Some(&ours));

        let page = list(&mut state, &access, "reasons=reply&limit=2");
        assert_eq!(page.status, 200);
        assert_eq!(uris(&page), vec![third.clone(), second.clone()]);
        let notice = &page.body["notifications"][0];
        assert_eq!(notice["reason"], "reply");
        assert_eq!(notice["reasonSubject"], ours.as_str());
        assert_eq!(notice["author"]["handle"], "you.test");
        assert_eq!(notice["record"]["reply"]["root"]["uri"], root.as_str());
        assert_eq!(notice["isRead"], false);
        let cursor = page.body["cursor"].as_str().unwrap().to_string();

        // A newer notification does not move the pages already handed out.
        insert_post(&mut state, "did:plc:you", "Late", Some(&root));
        let next = list(&mut state, &access, &format!("limit=2&cursor={cursor}"));
        assert_eq!(uris(&next), vec![first]);
        let cursor = next.body["cursor"].as_str().unwrap().to_string();
        let end = list(&mut state, &access, &format!("limit=2&cursor={cursor}"));
        assert!(uris(&end).is_empty());
        assert!(end.body.get("cursor").is_none(), "{}", end.body);

        assert!(uris(&list(&mut state, &access, "reasons=mention")).is_empty());
        assert_eq!(
            uris(&list(&mut state, &access, "")).len(),
            4,
            "default limit 50"
        );
    }

    #[test]
    fn list_notifications_refuses_a_bad_limit_or_cursor_and_needs_auth() {
        let (mut state, _, access) = state_with_a_post();
        for query in [
            "limit=0",
            "limit=101",
            "limit=ten",
            "cursor=nope",
            "seenAt=yesterday",
        ] {
            let reply = list(&mut state, &access, query);
            assert_eq!(reply.status, 400, "{query}");
            assert_eq!(reply.body["error"], "InvalidRequest", "{query}");
        }
        assert_eq!(list(&mut state, &access, "limit=100").status, 200);
        assert_eq!(list(&mut state, &access, "limit=1").status, 200);
        let anonymous = actix_web::test::TestRequest::get()
            .uri("/xrpc/app.bsky.notification.listNotifications")
            .to_http_request();
        assert_eq!(list_notifications(&mut state, &anonymous).status, 401);
    }

    #[test]
    fn cids_and_dids_have_the_expected_shape() {
        let cid = cid_of(&json!({"a": 1}));
        assert!(cid.starts_with("bafyrei"));
        assert_eq!(cid.len(), 7 + 52);
        assert_eq!(random_base32(24).len(), 24);
    }
}
