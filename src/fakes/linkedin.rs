//! A fake LinkedIn (shared/platforms.md §4) on a loopback port, with fault
//! injection. One server plays both `www.linkedin.com` (OAuth) and
//! `api.linkedin.com` (REST): point `NetworkApp.api_url` and `auth_url` (or
//! an account's `base_url`) at [`FakeLinkedin::base_url`].
//!
//! Served:
//! - `GET /oauth/v2/authorization`: auto-approves as the member chosen with
//!   [`FakeLinkedin::authorize_as`] (default: the last member added); checks
//!   `response_type=code`, `client_id`, `redirect_uri`, `scope`; answers 302
//!   to `redirect_uri?code=…&state=…`.
//! - `POST /oauth/v2/accessToken` (form; `client_id` and `client_secret` in
//!   the body): `authorization_code` (codes single-use, 30 minutes) and
//!   `refresh_token` (only when refresh tokens are on: a new 60-day access
//!   token, the *same* refresh token, whose 365-day expiry is not extended).
//! - `GET /v2/userinfo` (needs `openid`).
//! - `/rest/*`, which all need `LinkedIn-Version` among the accepted
//!   versions (else 426) and a valid Bearer token (else 401 with LinkedIn's
//!   body: `INVALID_ACCESS_TOKEN` 65600, `EXPIRED_ACCESS_TOKEN` 65601,
//!   `REVOKED_ACCESS_TOKEN` 65602). Calls without `X-Restli-Protocol-Version:
//!   2.0.0` are counted ([`FakeLinkedin::missing_restli_headers`]):
//!   - `POST /rest/posts`: 201, empty body, `x-restli-id: urn:li:share:…`;
//!     identical commentary of the same author → 422 "Content is a duplicate
//!     of urn:li:share:…"; commentary over 3,000 characters → 422; an author
//!     the token may not post as → 403 `ACCESS_DENIED`.
//!   - `GET /rest/posts?q=author&author=…&count=…&start=…` and
//!     `GET /rest/posts/{urn}`: need `r_organization_social` and a role for an
//!     organization; member posts are readable only after
//!     [`FakeLinkedin::set_member_posts_readable`] (`r_member_social` is restricted).
//!   - `DELETE /rest/posts/{urn}`: 204; unknown or deleted → 404.
//!   - `POST /rest/socialActions/{urn}/comments` (201, `x-restli-id` = the
//!     comment URN `urn:li:comment:(urn:li:activity:N,ID)`, body = the
//!     comment), `GET …/comments?start&count`, `DELETE …/comments/{id}?actor=…` (204).
//!     The activity of `urn:li:share:N` is `urn:li:activity:N`; either names
//!     the post in a `socialActions` path.
//!   - Replies to comments (platforms.md §4.6): `POST
//!     /rest/socialActions/{comment urn}/comments` with `parentComment` (the
//!     path's comment) and `object` (the post); threads are two levels deep,
//!     so a `parentComment` that is itself a reply gets 422.
//!     `GET /rest/socialActions/{comment urn}/comments` lists a comment's
//!     replies. Lists are oldest first, paged by `start`/`count` (at most
//!     100, or [`FakeLinkedin::set_page_size`]) with `paging.total`; each
//!     comment has `commentsSummary` (its replies) and, for a reply,
//!     `parentComment`. `GET /rest/socialActions/{urn}/comments/{id}` reads
//!     one comment; `GET /rest/socialActions/{urn}` gives the post's (or
//!     comment's) `commentsSummary` (`totalFirstLevelComments`,
//!     `aggregatedTotalComments`). Reading needs the post to be readable
//!     (`r_organization_social` and a role for an organization's post).
//!   - The public: [`FakeLinkedin::add_reply`]`(parent, actor, text)` comments
//!     on a post or replies to a comment (a reply to a reply goes under its
//!     first-level comment) as `actor`; returns the comment URN.
//!   - Faults on those reads: [`FakeLinkedin::fail_reads_next`],
//!     [`FakeLinkedin::rate_limit_reads_next`] (429, `Retry-After` only if asked).
//!   - `POST /rest/images?action=initializeUpload` → `{value:{uploadUrl,image}}`;
//!     `PUT /dms-uploads/{id}` (Bearer) stores the bytes.
//! - `GET /media/test.jpg`: a small JPEG ([`FakeLinkedin::image_url`]).
//!
//! Rate limits: LinkedIn's are daily and send no headers;
//! [`FakeLinkedin::rate_limit_next`] makes the next writes answer 429 (with
//! a `Retry-After` only if asked).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::fakes::server::{bearer, jfif, random_token, FakeServer, Faults, Outcome};

/// The client id and secret the fake accepts unless [`FakeLinkedin::set_client`] changes them.
pub const CLIENT_ID: &str = "herald-linkedin-client";
pub const CLIENT_SECRET: &str = "herald-linkedin-secret";
/// The version Herald sends by default; accepted with every month from 202410 to 202612.
pub const VERSION: &str = "202510";
const ACCESS_LIFETIME_S: i64 = 60 * 24 * 3600;
const REFRESH_LIFETIME_S: i64 = 365 * 24 * 3600;
const CODE_LIFETIME: Duration = Duration::from_secs(30 * 60);
const MAX_COMMENTARY: usize = 3000;

/// A member the fake knows, with an access token made for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeMember {
    /// The OpenID `sub`.
    pub sub: String,
    /// `urn:li:person:<sub>`.
    pub urn: String,
    pub name: String,
    /// A 60-day token with `openid profile w_member_social`
    /// (and the organization scopes), without a refresh token.
    pub access_token: String,
}

/// A post the fake stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakePost {
    pub urn: String,
    pub author: String,
    /// The `commentary`, exactly as received (escaped little text).
    pub commentary: String,
    pub visibility: String,
    /// `content.media.id` and `content.media.altText`.
    pub image: Option<String>,
    pub alt_text: Option<String>,
    /// The `LinkedIn-Version` of the request.
    pub version: String,
    pub created_at: DateTime<Utc>,
    pub deleted: bool,
}

/// A comment the fake stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeComment {
    pub id: String,
    /// `urn:li:comment:(urn:li:activity:<n>,<id>)`.
    pub urn: String,
    /// The post URN commented on.
    pub object: String,
    /// A reply to a comment (a nested comment): that comment's URN. LinkedIn
    /// threads are two levels deep, so it is always a first-level comment.
    pub parent: Option<String>,
    pub actor: String,
    pub text: String,
    pub created_at: DateTime<Utc>,
    pub deleted: bool,
}

/// An image uploaded through `initializeUpload` and the upload URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeImage {
    pub urn: String,
    pub owner: String,
    pub content_type: Option<String>,
    /// The uploaded bytes (`None` until the PUT).
    pub bytes: Option<Vec<u8>>,
}

/// A running fake; stops when dropped.
pub struct FakeLinkedin {
    shared: Arc<Shared>,
    server: FakeServer,
}

impl FakeLinkedin {
    /// Start on `127.0.0.1:<free port>`.
    pub async fn start() -> FakeLinkedin {
        let port = FakeServer::bind("fake-linkedin");
        let shared = Arc::new(Shared {
            base_url: port.base_url(),
            state: Mutex::new(State::new()),
        });
        let server = port
            .serve(2, shared.clone(), 16 << 20, |app| {
                app.route("/oauth/v2/authorization", web::get().to(authorize))
                    .route("/oauth/v2/accessToken", web::post().to(access_token))
                    .route("/v2/userinfo", web::get().to(userinfo))
                    .route("/rest/posts", web::post().to(create_post))
                    .route("/rest/posts", web::get().to(find_posts))
                    .route("/rest/posts/{urn}", web::get().to(get_post))
                    .route("/rest/posts/{urn}", web::delete().to(delete_post))
                    .route(
                        "/rest/socialActions/{urn}/comments",
                        web::post().to(create_comment),
                    )
                    .route(
                        "/rest/socialActions/{urn}/comments",
                        web::get().to(list_comments),
                    )
                    .route(
                        "/rest/socialActions/{urn}/comments/{id}",
                        web::delete().to(delete_comment),
                    )
                    .route(
                        "/rest/socialActions/{urn}/comments/{id}",
                        web::get().to(get_comment),
                    )
                    .route("/rest/socialActions/{urn}", web::get().to(social_actions))
                    .route("/rest/images", web::post().to(initialize_upload))
                    .route("/dms-uploads/{id}", web::put().to(upload))
                    .route("/media/test.jpg", web::get().to(test_image))
                    .default_service(web::to(not_found));
            })
            .await;
        FakeLinkedin { shared, server }
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash: both the API and the OAuth base.
    pub fn base_url(&self) -> String {
        self.server.base_url().to_string()
    }

    /// A small JPEG the fake serves, for media tests.
    pub fn image_url(&self) -> String {
        format!("{}/media/test.jpg", self.server.base_url())
    }

    /// The bytes [`Self::image_url`] serves.
    pub fn image_bytes() -> Vec<u8> {
        jpeg()
    }

    /// Change the client id and secret the token endpoint accepts.
    pub fn set_client(&self, client_id: &str, client_secret: &str) {
        let mut state = self.shared.lock();
        state.client = (client_id.to_string(), client_secret.to_string());
    }

    /// Add a member; its token can post as itself and as the organizations it administers.
    pub fn add_member(&self, name: &str) -> FakeMember {
        let mut state = self.shared.lock();
        let sub = random_token(10);
        state.members.insert(sub.clone(), name.to_string());
        state.authorizing = Some(sub.clone());
        let scopes = [
            "openid",
            "profile",
            "w_member_social",
            "w_organization_social",
            "r_organization_social",
        ];
        let access_token =
            state.new_access_token(&sub, scopes.iter().map(|s| s.to_string()).collect());
        FakeMember {
            urn: format!("urn:li:person:{sub}"),
            sub,
            name: name.to_string(),
            access_token,
        }
    }

    /// A new token for the member `sub` with `scopes`, and a refresh token
    /// (365 days) when `with_refresh`. Returns (access, refresh).
    pub fn issue_token(
        &self,
        sub: &str,
        scopes: &[&str],
        with_refresh: bool,
    ) -> (String, Option<String>) {
        let mut state = self.shared.lock();
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        let access = state.new_access_token(sub, scopes.clone());
        let refresh = with_refresh.then(|| state.new_refresh_token(sub, scopes));
        (access, refresh)
    }

    /// Create an organization administered by the member `admin_sub`; returns its URN.
    pub fn add_organization(&self, admin_sub: &str) -> String {
        let mut state = self.shared.lock();
        state.next_org += 1;
        let urn = format!("urn:li:organization:{}", state.next_org);
        state
            .org_admins
            .insert(urn.clone(), HashSet::from([admin_sub.to_string()]));
        urn
    }

    /// The member the authorize endpoint approves as.
    pub fn authorize_as(&self, sub: &str) {
        self.shared.lock().authorizing = Some(sub.to_string());
    }

    /// Whether a code exchange also issues a refresh token (LinkedIn gives
    /// them to partner apps only). On by default.
    pub fn set_refresh_tokens(&self, on: bool) {
        self.shared.lock().issue_refresh = on;
    }

    /// The `LinkedIn-Version` values accepted (others get 426).
    pub fn set_accepted_versions(&self, versions: &[&str]) {
        self.shared.lock().versions = versions.iter().map(|v| v.to_string()).collect();
    }

    /// Whether the app may read member posts and their comments (the
    /// restricted `r_member_social`). Off by default.
    pub fn set_member_posts_readable(&self, on: bool) {
        self.shared.lock().member_posts_readable = on;
    }

    /// The next `n` post/comment creations answer `status` (a 5xx, say) and store nothing.
    pub fn fail_next(&self, n: usize, status: u16) {
        self.shared.lock().faults.fail.arm(n, status);
    }

    /// The next `n` post/comment creations answer 429 and store nothing;
    /// with a `Retry-After: <seconds>` header only when given (LinkedIn sends none).
    pub fn rate_limit_next(&self, n: usize, retry_after: Option<u64>) {
        self.shared.lock().faults.rate_limit.arm(n, retry_after);
    }

    /// The next `n` post/comment creations store, then drop the connection.
    pub fn drop_after_store_next(&self, n: usize) {
        self.shared.lock().faults.drop_after_store.arm(n, ());
    }

    /// A member of the public (`actor`, a person URN such as
    /// `urn:li:person:abc`: LinkedIn has no handles) comments on the post
    /// `parent`, or replies to the comment `parent` (its URN), now. Threads
    /// are two levels deep: a reply to a reply goes under the same
    /// first-level comment, as the website does it. Returns the new comment's
    /// URN.
    ///
    /// # Panics
    /// When `parent` is neither a live post nor a live comment of this fake.
    pub fn add_reply(&self, parent: &str, actor: &str, text: &str) -> String {
        let mut state = self.shared.lock();
        let (object, parent) = match state.target(parent) {
            Some(Target::Post(urn)) => (urn, None),
            Some(Target::Comment(i)) => {
                let c = &state.comments[i];
                (
                    c.object.clone(),
                    Some(c.parent.clone().unwrap_or(c.urn.clone())),
                )
            }
            None => panic!("add_reply: the fake has no post or comment {parent}"),
        };
        state.store_comment(&object, parent, actor, text).urn
    }

    /// Comment lists answer at most `n` elements a page, whatever `count`
    /// asks (to make tests read several pages).
    pub fn set_page_size(&self, n: usize) {
        self.shared.lock().page_size = n.max(1);
    }

    /// The next `n` comment reads (`GET /rest/socialActions/…`) answer
    /// `status` and return nothing.
    pub fn fail_reads_next(&self, n: usize, status: u16) {
        self.shared.lock().read_faults.fail.arm(n, status);
    }

    /// The next `n` comment reads answer 429, with a `Retry-After:
    /// <seconds>` header only when given (LinkedIn sends none).
    pub fn rate_limit_reads_next(&self, n: usize, retry_after: Option<u64>) {
        self.shared
            .lock()
            .read_faults
            .rate_limit
            .arm(n, retry_after);
    }

    /// Make an access token expired (401 `EXPIRED_ACCESS_TOKEN`).
    pub fn expire_token(&self, token: &str) {
        if let Some(t) = self.shared.lock().tokens.get_mut(token) {
            t.expires_at = Utc::now() - chrono::Duration::seconds(1);
        }
    }

    /// Revoke an access token (401 `REVOKED_ACCESS_TOKEN`).
    pub fn revoke_token(&self, token: &str) {
        if let Some(t) = self.shared.lock().tokens.get_mut(token) {
            t.revoked = true;
        }
    }

    /// Revoke a refresh token: refreshing with it gets 400 `invalid_grant`.
    pub fn revoke_refresh_token(&self, token: &str) {
        if let Some(t) = self.shared.lock().refresh_tokens.get_mut(token) {
            t.revoked = true;
        }
    }

    /// Every post, oldest first (deleted ones included, flagged).
    pub fn posts(&self) -> Vec<FakePost> {
        self.shared.lock().posts.clone()
    }

    /// Every comment, oldest first (deleted ones included, flagged).
    pub fn comments(&self) -> Vec<FakeComment> {
        self.shared.lock().comments.clone()
    }

    /// Every image initialized, in order.
    pub fn images(&self) -> Vec<FakeImage> {
        self.shared.lock().images.clone()
    }

    /// `POST /rest/posts` requests received, failed ones included.
    pub fn post_requests(&self) -> usize {
        self.shared.lock().post_requests
    }

    /// Requests whose path starts with `prefix` (e.g. `/oauth/v2/accessToken`).
    pub fn requests_to(&self, prefix: &str) -> usize {
        let state = self.shared.lock();
        state
            .requests
            .iter()
            .filter(|(path, _)| path.starts_with(prefix))
            .map(|(_, n)| n)
            .sum()
    }

    /// `/rest` requests that came without `X-Restli-Protocol-Version: 2.0.0`.
    pub fn missing_restli_headers(&self) -> usize {
        self.shared.lock().missing_restli
    }

    /// Successful `refresh_token` grants.
    pub fn refreshes(&self) -> usize {
        self.shared.lock().refreshes
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

struct AccessToken {
    sub: String,
    scopes: Vec<String>,
    expires_at: DateTime<Utc>,
    revoked: bool,
}

struct RefreshToken {
    sub: String,
    scopes: Vec<String>,
    expires_at: DateTime<Utc>,
    revoked: bool,
}

struct Code {
    sub: String,
    redirect_uri: String,
    scopes: Vec<String>,
    issued: Instant,
}

struct State {
    client: (String, String),
    versions: HashSet<String>,
    members: HashMap<String, String>,
    org_admins: HashMap<String, HashSet<String>>,
    next_org: u64,
    authorizing: Option<String>,
    issue_refresh: bool,
    member_posts_readable: bool,
    tokens: HashMap<String, AccessToken>,
    refresh_tokens: HashMap<String, RefreshToken>,
    codes: HashMap<String, Code>,
    posts: Vec<FakePost>,
    post_index: HashMap<String, usize>,
    comments: Vec<FakeComment>,
    images: Vec<FakeImage>,
    next_id: u64,
    post_requests: usize,
    requests: HashMap<String, usize>,
    missing_restli: usize,
    refreshes: usize,
    /// The rate limit: its `Retry-After` seconds, if any.
    faults: Faults<Option<u64>>,
    /// Faults of comment reads (same shapes as the writes').
    read_faults: Faults<Option<u64>>,
    /// Largest comment page (see `set_page_size`).
    page_size: usize,
}

/// What a `/rest/socialActions/{urn}` path names.
enum Target {
    /// A live post (its `urn:li:share:` URN; an activity URN names the
    /// share of the same number).
    Post(String),
    /// A live comment (its index in `comments`).
    Comment(usize),
}

/// Who is calling.
struct Caller {
    sub: String,
    scopes: Vec<String>,
}

impl Caller {
    fn has(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

/// What the write handlers do once the state is updated.
fn li_error(status: u16, service: i64, code: Option<&str>, message: &str) -> HttpResponse {
    let mut body = json!({"status": status, "serviceErrorCode": service, "message": message});
    if let Some(code) = code {
        body["code"] = Value::String(code.to_string());
    }
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST)).json(body)
}

/// LinkedIn's 429 (daily limits, no headers), with a `Retry-After` only
/// when asked.
fn too_many(retry_after: Option<u64>) -> HttpResponse {
    let mut response = li_error(
        429,
        101,
        Some("TOO_MANY_REQUESTS"),
        "Resource level throttle APPLICATION DAY limit for calls to this resource is reached.",
    );
    if let Some(seconds) = retry_after {
        response.headers_mut().insert(
            actix_web::http::header::RETRY_AFTER,
            actix_web::http::header::HeaderValue::from(seconds),
        );
    }
    response
}

fn oauth_error(status: u16, error: &str, description: &str) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST))
        .json(json!({"error": error, "error_description": description}))
}

fn denied(what: &str) -> HttpResponse {
    li_error(
        403,
        100,
        Some("ACCESS_DENIED"),
        &format!("Not enough permissions to access: {what}"),
    )
}

/// Undo percent-encoding of a path segment or query value.
fn decode(value: &str) -> String {
    form_urlencoded::parse(format!("v={}", value.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| value.to_string())
}

fn query(req: &HttpRequest) -> HashMap<String, String> {
    form_urlencoded::parse(req.query_string().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn person(sub: &str) -> String {
    format!("urn:li:person:{sub}")
}

impl State {
    fn new() -> Self {
        let mut versions = HashSet::new();
        for year in 2024..=2026 {
            for month in 1..=12 {
                let v = format!("{year}{month:02}");
                if v.as_str() >= "202410" {
                    versions.insert(v);
                }
            }
        }
        Self {
            client: (CLIENT_ID.into(), CLIENT_SECRET.into()),
            versions,
            members: HashMap::new(),
            org_admins: HashMap::new(),
            next_org: 2_414_000,
            authorizing: None,
            issue_refresh: true,
            member_posts_readable: false,
            tokens: HashMap::new(),
            refresh_tokens: HashMap::new(),
            codes: HashMap::new(),
            posts: Vec::new(),
            post_index: HashMap::new(),
            comments: Vec::new(),
            images: Vec::new(),
            next_id: 7_260_000_000_000_000_000,
            post_requests: 0,
            requests: HashMap::new(),
            missing_restli: 0,
            refreshes: 0,
            faults: Faults::default(),
            read_faults: Faults::default(),
            page_size: 100,
        }
    }

    /// The post or comment `urn` names, if it is live.
    fn target(&self, urn: &str) -> Option<Target> {
        if let Some(inner) = urn
            .strip_prefix("urn:li:comment:(")
            .and_then(|rest| rest.strip_suffix(')'))
        {
            // The comment's post may be named by its share or its activity.
            let (post, id) = inner.rsplit_once(',')?;
            let Some(Target::Post(post)) = self.target(post) else {
                return None;
            };
            return self
                .comments
                .iter()
                .position(|c| !c.deleted && c.id == id && c.object == post)
                .map(Target::Comment);
        }
        let post = match urn.strip_prefix("urn:li:activity:") {
            Some(n) => format!("urn:li:share:{n}"),
            None => urn.to_string(),
        };
        self.live_post(&post).map(|p| Target::Post(p.urn.clone()))
    }

    /// Store a comment made now on the post `object` (a reply to `parent`
    /// when set).
    fn store_comment(
        &mut self,
        object: &str,
        parent: Option<String>,
        actor: &str,
        text: &str,
    ) -> FakeComment {
        let activity = object.rsplit(':').next().unwrap_or_default().to_string();
        let id = self.next_id().to_string();
        let comment = FakeComment {
            urn: format!("urn:li:comment:(urn:li:activity:{activity},{id})"),
            id,
            object: object.to_string(),
            parent,
            actor: actor.to_string(),
            text: text.to_string(),
            created_at: Utc::now(),
            deleted: false,
        };
        self.comments.push(comment.clone());
        comment
    }

    /// The live replies to the comment `urn`.
    fn replies_to(&self, urn: &str) -> usize {
        self.comments
            .iter()
            .filter(|c| !c.deleted && c.parent.as_deref() == Some(urn))
            .count()
    }

    /// Injected failures of a comment read; `None`: go on.
    fn read_fault(&mut self) -> Option<HttpResponse> {
        if let Some(retry_after) = self.read_faults.rate_limit.take() {
            return Some(too_many(retry_after));
        }
        self.read_faults
            .fail
            .take()
            .map(|status| li_error(status, 0, None, "Internal Server Error"))
    }

    fn count(&mut self, req: &HttpRequest) {
        *self.requests.entry(req.path().to_string()).or_insert(0) += 1;
    }

    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn new_access_token(&mut self, sub: &str, scopes: Vec<String>) -> String {
        let token = format!("AQV{}", random_token(60));
        self.tokens.insert(
            token.clone(),
            AccessToken {
                sub: sub.to_string(),
                scopes,
                expires_at: Utc::now() + chrono::Duration::seconds(ACCESS_LIFETIME_S),
                revoked: false,
            },
        );
        token
    }

    fn new_refresh_token(&mut self, sub: &str, scopes: Vec<String>) -> String {
        let token = format!("AQX{}", random_token(60));
        self.refresh_tokens.insert(
            token.clone(),
            RefreshToken {
                sub: sub.to_string(),
                scopes,
                expires_at: Utc::now() + chrono::Duration::seconds(REFRESH_LIFETIME_S),
                revoked: false,
            },
        );
        token
    }

    /// The Bearer token's member, or LinkedIn's 401.
    #[allow(clippy::result_large_err)]
    fn bearer(&self, req: &HttpRequest) -> Result<Caller, HttpResponse> {
        let Some(token) = bearer(req) else {
            return Err(li_error(401, 401, None, "Empty oauth2_access_token"));
        };
        match self.tokens.get(token) {
            None => Err(li_error(
                401,
                65600,
                Some("INVALID_ACCESS_TOKEN"),
                "Invalid access token",
            )),
            Some(t) if t.revoked => Err(li_error(
                401,
                65602,
                Some("REVOKED_ACCESS_TOKEN"),
                "The token used in the request has been revoked by the user",
            )),
            Some(t) if t.expires_at <= Utc::now() => Err(li_error(
                401,
                65601,
                Some("EXPIRED_ACCESS_TOKEN"),
                "The token used in the request has expired",
            )),
            Some(t) => Ok(Caller {
                sub: t.sub.clone(),
                scopes: t.scopes.clone(),
            }),
        }
    }

    /// Checks of every `/rest` call: the version, then the token.
    #[allow(clippy::result_large_err)]
    fn rest(&mut self, req: &HttpRequest) -> Result<(Caller, String), HttpResponse> {
        self.count(req);
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.trim().to_string())
        };
        if header("x-restli-protocol-version").as_deref() != Some("2.0.0") {
            self.missing_restli += 1;
        }
        let version = match header("linkedin-version") {
            None => {
                return Err(li_error(
                    426,
                    0,
                    Some("VERSION_MISSING"),
                    "A version must be present. Please specify a version by adding the LinkedIn-Version header.",
                ))
            }
            Some(v) if !self.versions.contains(&v) => {
                return Err(li_error(
                    426,
                    0,
                    Some("NONEXISTENT_VERSION"),
                    &format!("Requested version {v} is not active"),
                ))
            }
            Some(v) => v,
        };
        Ok((self.bearer(req)?, version))
    }

    fn is_admin(&self, sub: &str, org: &str) -> bool {
        self.org_admins.get(org).is_some_and(|a| a.contains(sub))
    }

    fn can_write_as(&self, caller: &Caller, author: &str) -> bool {
        if author == person(&caller.sub) {
            caller.has("w_member_social")
        } else {
            caller.has("w_organization_social") && self.is_admin(&caller.sub, author)
        }
    }

    fn can_read_as(&self, caller: &Caller, author: &str) -> bool {
        if author == person(&caller.sub) {
            self.member_posts_readable
        } else {
            caller.has("r_organization_social") && self.is_admin(&caller.sub, author)
        }
    }

    /// Injected failures of a write; `None`: go on.
    fn fault(&mut self) -> Option<HttpResponse> {
        if let Some(retry_after) = self.faults.rate_limit.take() {
            return Some(too_many(retry_after));
        }
        if let Some(status) = self.faults.fail.take() {
            return Some(li_error(status, 0, None, "Internal Server Error"));
        }
        None
    }

    fn take_drop(&mut self) -> bool {
        self.faults.drop_after_store.take().is_some()
    }

    fn live_post(&self, urn: &str) -> Option<&FakePost> {
        self.post_index
            .get(urn)
            .map(|&i| &self.posts[i])
            .filter(|p| !p.deleted)
    }

    fn create_post(&mut self, req: &HttpRequest, body: &[u8]) -> Outcome {
        self.post_requests += 1;
        let (caller, version) = match self.rest(req) {
            Ok(c) => c,
            Err(r) => return Outcome::Answer(r),
        };
        let Ok(body) = serde_json::from_slice::<Value>(body) else {
            return Outcome::Answer(li_error(400, 0, None, "Unable to parse the request body"));
        };
        let Some(author) = body["author"].as_str().map(str::to_string) else {
            return Outcome::Answer(li_error(
                422,
                0,
                None,
                "/author :: field is required but not found and has no default value",
            ));
        };
        if !self.can_write_as(&caller, &author) {
            return Outcome::Answer(denied("partnerApiPostsExternal.CREATE.20251001"));
        }
        let commentary = body["commentary"].as_str().unwrap_or_default().to_string();
        let count = commentary.chars().count();
        if count > MAX_COMMENTARY {
            return Outcome::Answer(li_error(
                422,
                0,
                None,
                &format!("/commentary :: length {count} exceeds the maximum allowed length of {MAX_COMMENTARY}"),
            ));
        }
        let visibility = body["visibility"].as_str().unwrap_or_default().to_string();
        if !matches!(
            visibility.as_str(),
            "PUBLIC" | "CONNECTIONS" | "LOGGED_IN" | "CONTAINER"
        ) || body["distribution"]["feedDistribution"].as_str().is_none()
            || !matches!(body["lifecycleState"].as_str(), Some("PUBLISHED" | "DRAFT"))
        {
            return Outcome::Answer(li_error(
                422,
                0,
                None,
                "visibility, distribution.feedDistribution and lifecycleState are required",
            ));
        }
        let media = &body["content"]["media"];
        let image = media["id"].as_str().map(str::to_string);
        if let Some(image) = &image {
            let uploaded = self
                .images
                .iter()
                .any(|i| &i.urn == image && i.owner == author && i.bytes.is_some());
            if !uploaded {
                return Outcome::Answer(li_error(
                    422,
                    0,
                    None,
                    &format!("/content/media/id :: {image} is not an uploaded image of {author}"),
                ));
            }
        }
        if commentary.trim().is_empty() && image.is_none() {
            return Outcome::Answer(li_error(422, 0, None, "/commentary :: must not be empty"));
        }
        if let Some(existing) = self
            .posts
            .iter()
            .find(|p| !p.deleted && p.author == author && p.commentary == commentary)
        {
            let message = format!("Content is a duplicate of {}", existing.urn);
            return Outcome::Answer(li_error(422, 0, None, &message));
        }
        if let Some(response) = self.fault() {
            return Outcome::Answer(response);
        }
        let urn = format!("urn:li:share:{}", self.next_id());
        self.post_index.insert(urn.clone(), self.posts.len());
        self.posts.push(FakePost {
            urn: urn.clone(),
            author,
            commentary,
            visibility,
            image,
            alt_text: media["altText"].as_str().map(str::to_string),
            version,
            created_at: Utc::now(),
            deleted: false,
        });
        if self.take_drop() {
            return Outcome::Drop;
        }
        Outcome::Answer(
            HttpResponse::Created()
                .insert_header(("x-restli-id", urn.clone()))
                .insert_header(("x-linkedin-id", urn))
                .finish(),
        )
    }

    fn post_json(post: &FakePost) -> Value {
        let mut json = json!({
            "id": post.urn,
            "author": post.author,
            "commentary": post.commentary,
            "visibility": post.visibility,
            "distribution": {"feedDistribution": "MAIN_FEED", "targetEntities": [], "thirdPartyDistributionChannels": []},
            "lifecycleState": "PUBLISHED",
            "isReshareDisabledByAuthor": false,
            "createdAt": post.created_at.timestamp_millis(),
            "publishedAt": post.created_at.timestamp_millis(),
            "lastModifiedAt": post.created_at.timestamp_millis(),
        });
        if let Some(image) = &post.image {
            json["content"] = json!({"media": {"id": image, "altText": post.alt_text}});
        }
        json
    }

    fn comment_json(&self, comment: &FakeComment) -> Value {
        let replies = self.replies_to(&comment.urn);
        let mut json = json!({
            "id": comment.id,
            "commentUrn": comment.urn,
            "$URN": comment.urn,
            "actor": comment.actor,
            "object": comment.object,
            "message": {"text": comment.text, "attributes": []},
            "created": {"actor": comment.actor, "time": comment.created_at.timestamp_millis()},
            "lastModified": {"actor": comment.actor, "time": comment.created_at.timestamp_millis()},
            "commentsSummary": {"totalFirstLevelComments": replies, "aggregatedTotalComments": replies, "selectedComments": []},
        });
        if let Some(parent) = &comment.parent {
            json["parentComment"] = json!(parent);
        }
        json
    }

    /// `POST /rest/socialActions/{target}/comments`: a comment on a post,
    /// or (target a comment URN, with `parentComment`) a reply to a
    /// first-level comment.
    fn create_comment(&mut self, req: &HttpRequest, target: &str, body: &[u8]) -> Outcome {
        let caller = match self.rest(req) {
            Ok((c, _)) => c,
            Err(r) => return Outcome::Answer(r),
        };
        let Ok(body) = serde_json::from_slice::<Value>(body) else {
            return Outcome::Answer(li_error(400, 0, None, "Unable to parse the request body"));
        };
        let actor = body["actor"].as_str().unwrap_or_default().to_string();
        let text = body["message"]["text"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let (object, parent) = match self.target(target) {
            Some(Target::Post(urn)) => {
                if body["object"].as_str() != Some(target) && body["object"].as_str() != Some(&urn)
                {
                    return Outcome::Answer(li_error(
                        400,
                        0,
                        None,
                        "/object :: must be the URN of the path",
                    ));
                }
                (urn, None)
            }
            Some(Target::Comment(i)) => {
                let c = &self.comments[i];
                if body["parentComment"].as_str() != Some(target) {
                    return Outcome::Answer(li_error(
                        400,
                        0,
                        None,
                        "/parentComment :: must be the comment URN of the path",
                    ));
                }
                if c.parent.is_some() {
                    return Outcome::Answer(li_error(
                        422,
                        0,
                        None,
                        "/parentComment :: must be a first-level comment",
                    ));
                }
                let object = body["object"].as_str().and_then(|o| match self.target(o) {
                    Some(Target::Post(urn)) => Some(urn),
                    _ => None,
                });
                if object.as_deref() != Some(c.object.as_str()) {
                    return Outcome::Answer(li_error(
                        400,
                        0,
                        None,
                        "/object :: must be the post the parent comment is on",
                    ));
                }
                (c.object.clone(), Some(c.urn.clone()))
            }
            None => return Outcome::Answer(li_error(404, 0, None, &format!("{target} not found"))),
        };
        if text.trim().is_empty() {
            return Outcome::Answer(li_error(422, 0, None, "/message/text :: must not be empty"));
        }
        if !self.can_write_as(&caller, &actor) {
            return Outcome::Answer(denied("partnerApiSocialActions.CREATE.20251001"));
        }
        if let Some(response) = self.fault() {
            return Outcome::Answer(response);
        }
        let comment = self.store_comment(&object, parent, &actor, &text);
        let json = self.comment_json(&comment);
        let urn = comment.urn.clone();
        if self.take_drop() {
            return Outcome::Drop;
        }
        Outcome::Answer(
            HttpResponse::Created()
                .insert_header(("x-restli-id", urn))
                .json(json),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------------

async fn authorize(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let mut state = shared.lock();
    state.count(&req);
    let q = query(&req);
    let get = |name: &str| q.get(name).map(String::as_str).unwrap_or_default();
    if get("response_type") != "code" {
        return oauth_error(400, "invalid_request", "response_type must be code");
    }
    if get("client_id") != state.client.0 {
        return oauth_error(401, "invalid_client", "The client_id is not valid");
    }
    let redirect = get("redirect_uri");
    let Ok(mut location) = url::Url::parse(redirect) else {
        return oauth_error(400, "invalid_request", "redirect_uri is missing or invalid");
    };
    if q.contains_key("code_challenge") {
        return oauth_error(400, "invalid_request", "LinkedIn does not use PKCE here");
    }
    let scopes: Vec<String> = get("scope")
        .split([' ', ','])
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if scopes.is_empty() {
        return oauth_error(400, "invalid_request", "scope is required");
    }
    let Some(sub) = state.authorizing.clone() else {
        return oauth_error(400, "invalid_request", "no member is signed in to the fake");
    };
    let code = random_token(40);
    state.codes.insert(
        code.clone(),
        Code {
            sub,
            redirect_uri: redirect.to_string(),
            scopes,
            issued: Instant::now(),
        },
    );
    location
        .query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", get("state"));
    HttpResponse::Found()
        .insert_header(("location", location.to_string()))
        .finish()
}

async fn access_token(
    req: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let mut state = shared.lock();
    state.count(&req);
    let form: HashMap<String, String> = form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let get = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
    if get("client_id") != state.client.0 || get("client_secret") != state.client.1 {
        return oauth_error(
            401,
            "invalid_client",
            "Client authentication failed: client_id and client_secret go in the form body",
        );
    }
    let now = Utc::now();
    match get("grant_type") {
        "authorization_code" => {
            let Some(code) = state.codes.remove(get("code")) else {
                return oauth_error(
                    400,
                    "invalid_grant",
                    "The provided authorization grant is invalid, expired or revoked",
                );
            };
            if code.issued.elapsed() > CODE_LIFETIME {
                return oauth_error(400, "invalid_grant", "The authorization code expired");
            }
            if code.redirect_uri != get("redirect_uri") {
                return oauth_error(400, "invalid_request", "redirect_uri does not match");
            }
            let access = state.new_access_token(&code.sub, code.scopes.clone());
            let mut answer = json!({
                "access_token": access,
                "expires_in": ACCESS_LIFETIME_S,
                "scope": code.scopes.join(","),
            });
            if state.issue_refresh {
                let refresh = state.new_refresh_token(&code.sub, code.scopes);
                answer["refresh_token"] = Value::String(refresh);
                answer["refresh_token_expires_in"] = json!(REFRESH_LIFETIME_S);
            }
            HttpResponse::Ok().json(answer)
        }
        "refresh_token" => {
            let token = get("refresh_token").to_string();
            let (sub, scopes, expires_at) = match state.refresh_tokens.get(&token) {
                Some(r) if !r.revoked && r.expires_at > now => {
                    (r.sub.clone(), r.scopes.clone(), r.expires_at)
                }
                _ => {
                    return oauth_error(
                        400,
                        "invalid_grant",
                        "The provided authorization grant or refresh token is invalid, expired or revoked",
                    )
                }
            };
            let access = state.new_access_token(&sub, scopes.clone());
            state.refreshes += 1;
            HttpResponse::Ok().json(json!({
                "access_token": access,
                "expires_in": ACCESS_LIFETIME_S,
                "refresh_token": token,
                "refresh_token_expires_in": (expires_at - now).num_seconds(),
                "scope": scopes.join(","),
            }))
        }
        other => oauth_error(
            400,
            "unsupported_grant_type",
            &format!("grant_type '{other}' is not supported"),
        ),
    }
}

async fn userinfo(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let mut state = shared.lock();
    state.count(&req);
    let caller = match state.bearer(&req) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if !caller.has("openid") {
        return denied("/v2/userinfo (the openid scope is missing)");
    }
    let name = state.members.get(&caller.sub).cloned().unwrap_or_default();
    let (given, family) = name.split_once(' ').unwrap_or((name.as_str(), ""));
    HttpResponse::Ok().json(json!({
        "sub": caller.sub,
        "name": name,
        "given_name": given,
        "family_name": family,
        "locale": {"country": "US", "language": "en"},
        "email_verified": true,
    }))
}

async fn create_post(
    req: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let outcome = shared.lock().create_post(&req, &body);
    outcome.respond("fake LinkedIn").await
}

async fn find_posts(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let mut state = shared.lock();
    let caller = match state.rest(&req) {
        Ok((c, _)) => c,
        Err(r) => return r,
    };
    let q = query(&req);
    if q.get("q").map(String::as_str) != Some("author") {
        return li_error(400, 0, None, "q=author is required");
    }
    let author = q.get("author").cloned().unwrap_or_default();
    if !state.can_read_as(&caller, &author) {
        return denied("partnerApiPostsExternal.FINDER-author.20251001");
    }
    let start: usize = q.get("start").and_then(|s| s.parse().ok()).unwrap_or(0);
    let count: usize = q
        .get("count")
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
        .clamp(1, 100);
    let all: Vec<&FakePost> = state
        .posts
        .iter()
        .rev()
        .filter(|p| !p.deleted && p.author == author)
        .collect();
    let elements: Vec<Value> = all
        .iter()
        .skip(start)
        .take(count)
        .map(|p| State::post_json(p))
        .collect();
    HttpResponse::Ok().json(json!({
        "elements": elements,
        "paging": {"start": start, "count": count, "total": all.len(), "links": []},
    }))
}

async fn get_post(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let mut state = shared.lock();
    let caller = match state.rest(&req) {
        Ok((c, _)) => c,
        Err(r) => return r,
    };
    let urn = decode(req.match_info().query("urn"));
    let Some(post) = state.live_post(&urn).cloned() else {
        return li_error(404, 0, None, &format!("{urn} not found"));
    };
    if !state.can_read_as(&caller, &post.author) {
        return denied("partnerApiPostsExternal.GET.20251001");
    }
    HttpResponse::Ok().json(State::post_json(&post))
}

async fn delete_post(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let mut state = shared.lock();
    let caller = match state.rest(&req) {
        Ok((c, _)) => c,
        Err(r) => return r,
    };
    let urn = decode(req.match_info().query("urn"));
    let Some(author) = state.live_post(&urn).map(|p| p.author.clone()) else {
        return li_error(404, 0, None, &format!("{urn} not found"));
    };
    if !state.can_write_as(&caller, &author) {
        return denied("partnerApiPostsExternal.DELETE.20251001");
    }
    if let Some(&i) = state.post_index.get(&urn) {
        state.posts[i].deleted = true;
    }
    HttpResponse::NoContent().finish()
}

async fn create_comment(
    req: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let target = decode(req.match_info().query("urn"));
    let outcome = shared.lock().create_comment(&req, &target, &body);
    outcome.respond("fake LinkedIn").await
}

/// The checks of every comment read: version, token, injected faults, a
/// live target, and the right to read the post's social actions. Returns
/// the target.
#[allow(clippy::result_large_err)]
fn comment_read(state: &mut State, req: &HttpRequest, what: &str) -> Result<Target, HttpResponse> {
    let (caller, _) = state.rest(req)?;
    if let Some(response) = state.read_fault() {
        return Err(response);
    }
    let urn = decode(req.match_info().query("urn"));
    let target = state
        .target(&urn)
        .ok_or_else(|| li_error(404, 0, None, &format!("{urn} not found")))?;
    let post = match &target {
        Target::Post(post) => post.clone(),
        Target::Comment(i) => state.comments[*i].object.clone(),
    };
    let author = state
        .live_post(&post)
        .map(|p| p.author.clone())
        .unwrap_or_default();
    if !state.can_read_as(&caller, &author) {
        return Err(denied(what));
    }
    Ok(target)
}

/// `GET /rest/socialActions/{post or comment}/comments?start&count`: a
/// post's first-level comments, or a comment's replies, oldest first,
/// paged by offset.
async fn list_comments(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let mut state = shared.lock();
    let target = match comment_read(&mut state, &req, "partnerApiSocialActions.GET_ALL.20251001") {
        Ok(t) => t,
        Err(r) => return r,
    };
    let q = query(&req);
    let start: usize = q.get("start").and_then(|s| s.parse().ok()).unwrap_or(0);
    let count: usize = q
        .get("count")
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
        .clamp(1, state.page_size.clamp(1, 100));
    let all: Vec<&FakeComment> = state
        .comments
        .iter()
        .filter(|c| !c.deleted)
        .filter(|c| match &target {
            Target::Post(post) => c.object == *post && c.parent.is_none(),
            Target::Comment(i) => c.parent.as_deref() == Some(state.comments[*i].urn.as_str()),
        })
        .collect();
    let elements: Vec<Value> = all
        .iter()
        .skip(start)
        .take(count)
        .map(|c| state.comment_json(c))
        .collect();
    HttpResponse::Ok().json(json!({
        "elements": elements,
        "paging": {"start": start, "count": count, "total": all.len(), "links": []},
    }))
}

/// `GET /rest/socialActions/{post or comment}/comments/{id}`: one comment.
async fn get_comment(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let mut state = shared.lock();
    let target = match comment_read(&mut state, &req, "partnerApiSocialActions.GET.20251001") {
        Ok(t) => t,
        Err(r) => return r,
    };
    let post = match &target {
        Target::Post(post) => post.clone(),
        Target::Comment(i) => state.comments[*i].object.clone(),
    };
    let id = decode(req.match_info().query("id"));
    match state
        .comments
        .iter()
        .find(|c| !c.deleted && c.object == post && c.id == id)
    {
        Some(c) => HttpResponse::Ok().json(state.comment_json(c)),
        None => li_error(404, 0, None, &format!("comment {id} on {post} not found")),
    }
}

/// `GET /rest/socialActions/{post or comment}`: its social metadata, with
/// `commentsSummary` (first-level comments and all comments at any depth).
async fn social_actions(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let mut state = shared.lock();
    let target = match comment_read(&mut state, &req, "partnerApiSocialActions.GET.20251001") {
        Ok(t) => t,
        Err(r) => return r,
    };
    let urn = decode(req.match_info().query("urn"));
    let (first, all) = match &target {
        Target::Post(post) => {
            let live = state
                .comments
                .iter()
                .filter(|c| !c.deleted && c.object == *post);
            let (mut first, mut all) = (0, 0);
            for c in live {
                all += 1;
                if c.parent.is_none() {
                    first += 1;
                }
            }
            (first, all)
        }
        Target::Comment(i) => {
            let n = state.replies_to(&state.comments[*i].urn);
            (n, n)
        }
    };
    HttpResponse::Ok().json(json!({
        "target": urn,
        "commentsSummary": {"totalFirstLevelComments": first, "aggregatedTotalComments": all, "selectedComments": []},
        "likesSummary": {"totalLikes": 0, "aggregatedTotalLikes": 0, "likedByCurrentUser": false, "selectedLikes": []},
    }))
}

async fn delete_comment(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let mut state = shared.lock();
    let caller = match state.rest(&req) {
        Ok((c, _)) => c,
        Err(r) => return r,
    };
    let object = decode(req.match_info().query("urn"));
    let id = decode(req.match_info().query("id"));
    let actor = query(&req).get("actor").cloned().unwrap_or_default();
    let Some(index) = state
        .comments
        .iter()
        .position(|c| !c.deleted && c.object == object && c.id == id)
    else {
        return li_error(404, 0, None, &format!("comment {id} on {object} not found"));
    };
    if state.comments[index].actor != actor || !state.can_write_as(&caller, &actor) {
        return denied("partnerApiSocialActions.DELETE.20251001");
    }
    state.comments[index].deleted = true;
    HttpResponse::NoContent().finish()
}

async fn initialize_upload(
    req: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let mut state = shared.lock();
    let caller = match state.rest(&req) {
        Ok((c, _)) => c,
        Err(r) => return r,
    };
    if query(&req).get("action").map(String::as_str) != Some("initializeUpload") {
        return li_error(400, 0, None, "action=initializeUpload is required");
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(owner) = body["initializeUploadRequest"]["owner"].as_str() else {
        return li_error(422, 0, None, "/initializeUploadRequest/owner is required");
    };
    if !state.can_write_as(&caller, owner) {
        return denied("partnerApiImages.ACTION-initializeUpload.20251001");
    }
    let id = state.next_id();
    let urn = format!("urn:li:image:D4E{id}");
    state.images.push(FakeImage {
        urn: urn.clone(),
        owner: owner.to_string(),
        content_type: None,
        bytes: None,
    });
    let expires = (Utc::now() + chrono::Duration::days(1)).timestamp_millis();
    HttpResponse::Ok().json(json!({
        "value": {
            "uploadUrlExpiresAt": expires,
            "uploadUrl": format!("{}/dms-uploads/D4E{id}", shared.base_url),
            "image": urn,
        }
    }))
}

async fn upload(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let mut state = shared.lock();
    state.count(&req);
    if let Err(response) = state.bearer(&req) {
        return response;
    }
    let urn = format!("urn:li:image:{}", req.match_info().query("id"));
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    match state.images.iter_mut().find(|i| i.urn == urn) {
        Some(image) if !body.is_empty() => {
            image.bytes = Some(body.to_vec());
            image.content_type = content_type;
            HttpResponse::Created().finish()
        }
        Some(_) => li_error(400, 0, None, "empty upload"),
        None => li_error(404, 0, None, "unknown upload URL"),
    }
}

async fn test_image(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    shared.lock().count(&req);
    HttpResponse::Ok().content_type("image/jpeg").body(jpeg())
}

async fn not_found(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    shared.lock().count(&req);
    li_error(404, 0, None, &format!("No route for {}", req.path()))
}

/// A JPEG-looking file: SOI, a JFIF APP0 segment, 100 bytes of filler, EOI.
fn jpeg() -> Vec<u8> {
    jfif(100)
}
