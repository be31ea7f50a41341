//! A fake Facebook Graph API (shared/platforms.md §5) on a loopback port:
//! Facebook Login (auto-approving dialog, GET token endpoint, long-lived
//! exchange), Pages with their tokens, posting to a Page feed, photos,
//! comments, reading published posts and comments, deleting, and Graph's
//! error envelope, throttling codes and usage headers, with fault injection.
//!
//! Quick use:
//! ```ignore
//! let fb = FakeFacebook::start().await;
//! let user = fb.add_user("Ada");                     // logs in at the dialog
//! let page = fb.add_page(&user, "Kettle Co");        // FakePage { id, token }
//! let app = fb.app();                                // NetworkApp pointing here
//! // ... publish with credentials page_id = page.id, page_access_token = page.token
//! fb.posts();                                        // what was stored
//! ```
//!
//! - One host serves everything: use [`FakeFacebook::base_url`] as `api_url`
//!   and `auth_url` (an optional `/vNN.N` version prefix is accepted).
//! - Tokens are read from the `access_token` parameter (query, form or JSON
//!   body) or an `Authorization: Bearer`/`OAuth` header.
//! - Parameters come as query, form or JSON body, merged like Graph does.
//! - Fault injection (next writes = `POST` to feed, photos, comments):
//!   [`fail_next`](FakeFacebook::fail_next) (code 2, `is_transient`),
//!   [`rate_limit_next`](FakeFacebook::rate_limit_next) (code 80001, HTTP 400,
//!   `X-Business-Use-Case-Usage` with `estimated_time_to_regain_access`),
//!   [`error_next`](FakeFacebook::error_next) (any Graph error),
//!   [`drop_after_store_next`](FakeFacebook::drop_after_store_next) (stored,
//!   then the connection is dropped), [`revoke`](FakeFacebook::revoke) (190
//!   with a subcode), [`set_usage`](FakeFacebook::set_usage).
//! - Duplicate detection: a feed post whose message equals the Page's latest
//!   feed post gets `(#506) Duplicate status message`.
//! - Comments (platforms.md §5.6): `GET /{id}/comments` with `filter`
//!   (`toplevel`, the default: the object's own comments; `stream`: every
//!   comment under a post at any depth, flat), `order` (`chronological` by
//!   default, or `reverse_chronological`), `fields` (`from{id,name}`,
//!   `parent{id}` on replies to comments, `permalink_url`, …), `limit`, and
//!   opaque `after`/`before` cursors naming an item, as Graph's do (a cursor
//!   keeps its place when comments are added or deleted; an unknown cursor
//!   is `(#100)`). `paging.next` only when more items follow.
//! - The public: [`add_reply`](FakeFacebook::add_reply)`(parent, author,
//!   text)` adds a comment from a member of the public (a display name; its
//!   `from` is a user of its own) on a post or a comment, and returns its id.
//!   An answer from the Page to a comment is `POST /{comment-id}/comments`;
//!   [`posts`](FakeFacebook::posts) shows it with that comment as `parent_id`.
//! - Paging: [`set_page_size`](FakeFacebook::set_page_size) caps every list
//!   page (100 by default) so tests can force several pages.
//! - Faults on comment reads: [`fail_reads_next`](FakeFacebook::fail_reads_next)
//!   (code 2, any status), [`rate_limit_reads_next`](FakeFacebook::rate_limit_reads_next)
//!   (code 80001 with the usage header); a revoked token fails reads as it
//!   fails writes.
//! - Inspection: [`posts`](FakeFacebook::posts) (feed posts, photos and
//!   comments with their parent, author, image, alt text, deleted flag),
//!   [`post_requests`](FakeFacebook::post_requests),
//!   [`requests_to`](FakeFacebook::requests_to).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::config::NetworkApp;
use crate::fakes::server::{dropped, random_token, FakeServer, Faults, Next};

pub const CLIENT_ID: &str = "fake-fb-client";
pub const CLIENT_SECRET: &str = "fake-fb-secret";
/// How long an authorization code may be exchanged.
const CODE_TTL: Duration = Duration::from_secs(600);

// ---------------------------------------------------------------------------------------------
// Helpers shared with the fake Instagram
// ---------------------------------------------------------------------------------------------

/// Request parameters: the query, then a form or JSON body (body wins).
pub(crate) fn params(req: &HttpRequest, body: &[u8]) -> HashMap<String, String> {
    let mut out: HashMap<String, String> = form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect();
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with("application/json") {
        if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) {
            for (k, v) in map {
                let text = match v {
                    Value::String(s) => s,
                    Value::Null => continue,
                    other => other.to_string(),
                };
                out.insert(k, text);
            }
        }
    } else if !body.is_empty() {
        for (k, v) in form_urlencoded::parse(body) {
            out.insert(k.into_owned(), v.into_owned());
        }
    }
    out
}

/// The token of a request: `access_token` parameter, or a Bearer/OAuth header.
pub(crate) fn token(req: &HttpRequest, params: &HashMap<String, String>) -> Option<String> {
    if let Some(t) = params.get("access_token").filter(|t| !t.is_empty()) {
        return Some(t.clone());
    }
    let header = req.headers().get("authorization")?.to_str().ok()?;
    let (scheme, value) = header.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("oauth"))
        .then(|| value.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// Path segments, without an optional leading `vNN.N` version.
pub(crate) fn segments(path: &str) -> Vec<String> {
    let mut parts: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let versioned = parts.first().is_some_and(|first| {
        first.len() > 1
            && first.starts_with('v')
            && first[1..].chars().all(|c| c.is_ascii_digit() || c == '.')
    });
    if versioned {
        parts.remove(0);
    }
    parts
}

fn percent_decode(s: &str) -> String {
    form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// A Graph error answer.
pub(crate) fn graph_error(
    status: u16,
    code: i64,
    subcode: Option<i64>,
    message: &str,
) -> HttpResponse {
    let mut error = json!({
        "message": message,
        "type": if code == 190 || code == 102 || code == 104 { "OAuthException" } else { "GraphMethodException" },
        "code": code,
        "fbtrace_id": random_token(11),
    });
    if let Some(sub) = subcode {
        error["error_subcode"] = json!(sub);
    }
    if matches!(code, 1 | 2) {
        error["is_transient"] = json!(true);
    }
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST))
        .json(json!({ "error": error }))
}

/// `(#100) … does not exist` for an unknown object.
pub(crate) fn no_object(id: &str) -> HttpResponse {
    graph_error(
        400,
        100,
        Some(33),
        &format!("Unsupported request. Object with ID '{id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation"),
    )
}

/// A Graph error to inject: HTTP status, code, subcode, message.
pub(crate) type GraphError = (u16, i64, Option<i64>, String);

/// The transient error (code 2) of an armed `fail` fault.
pub(crate) fn injected_failure(fail: &mut Next<u16>) -> Option<HttpResponse> {
    fail.take().map(|status| {
        graph_error(
            status,
            2,
            None,
            "An unexpected error has occurred. Please retry your request later.",
        )
    })
}

/// The Graph error of an armed `error_next` fault.
pub(crate) fn injected_error(error: &mut Next<GraphError>) -> Option<HttpResponse> {
    error
        .take()
        .map(|(status, code, subcode, message)| graph_error(status, code, subcode, &message))
}

/// Graph's time format: `2026-11-25T09:00:00+0000`.
pub(crate) fn graph_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%z").to_string()
}

/// `since`/`until` parameters: epoch seconds or a date.
pub(crate) fn param_time(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(secs) = text.trim().parse::<i64>() {
        return DateTime::from_timestamp(secs, 0);
    }
    crate::platforms::graph::parse_time(text)
}

/// The `limit` of a list request: 25 by default, at most `max` (and 100).
pub(crate) fn page_limit(params: &HashMap<String, String>, max: usize) -> usize {
    params
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(25)
        .clamp(1, max.clamp(1, 100))
}

/// One Graph page of `items` from `offset` (the `after` cursor is the
/// offset), at most `max` items.
pub(crate) fn paged(
    base_url: &str,
    req: &HttpRequest,
    params: &HashMap<String, String>,
    items: Vec<Value>,
    max: usize,
) -> Value {
    let limit = page_limit(params, max);
    let offset = params
        .get("after")
        .and_then(|a| a.parse::<usize>().ok())
        .unwrap_or(0);
    let end = (offset + limit).min(items.len());
    let page: Vec<Value> = items
        .get(offset..end)
        .map(<[Value]>::to_vec)
        .unwrap_or_default();
    let mut body = json!({ "data": page });
    if !page.is_empty() {
        body["paging"] =
            json!({"cursors": {"before": offset.to_string(), "after": end.to_string()}});
        if end < items.len() {
            let mut query: Vec<(String, String)> = params
                .iter()
                .filter(|(k, _)| k.as_str() != "after")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            query.push(("after".into(), end.to_string()));
            let query = serde_urlencoded::to_string(&query).unwrap_or_default();
            body["paging"]["next"] = json!(format!("{base_url}{}?{query}", req.path()));
        }
    }
    body
}

/// The opaque cursor Graph would give for the list item `id`.
pub(crate) fn cursor_of(id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("cursor:{id}"))
}

/// The item a cursor made by [`cursor_of`] names.
fn id_of_cursor(cursor: &str) -> Option<String> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor.trim()).ok()?;
    String::from_utf8(bytes)
        .ok()?
        .strip_prefix("cursor:")
        .map(str::to_string)
}

/// One Graph page of a list whose cursors name items, as Graph's comment
/// cursors do: a cursor keeps its place when items are added before or
/// after it, or when its own item is deleted. `order` is every id of the
/// list in order (deleted ones included); `show` renders an item, or `None`
/// to skip it (deleted). `after` gives the items after the cursor's,
/// `before` the `limit` items before it. A cursor the list does not know is
/// Graph's `(#100)` error.
#[allow(clippy::result_large_err)]
pub(crate) fn paged_by_id(
    base_url: &str,
    req: &HttpRequest,
    params: &HashMap<String, String>,
    order: &[String],
    show: impl Fn(&str) -> Option<Value>,
    max: usize,
) -> Result<Value, HttpResponse> {
    let limit = page_limit(params, max);
    let position = |name: &str| -> Result<Option<usize>, HttpResponse> {
        let Some(cursor) = params.get(name).filter(|c| !c.is_empty()) else {
            return Ok(None);
        };
        id_of_cursor(cursor)
            .and_then(|id| order.iter().position(|o| *o == id))
            .map(Some)
            .ok_or_else(|| {
                graph_error(
                    400,
                    100,
                    None,
                    &format!("(#100) The {name} cursor is not valid for this list"),
                )
            })
    };
    let visible: Vec<(usize, Value)> = order
        .iter()
        .enumerate()
        .filter_map(|(i, id)| show(id).map(|v| (i, v)))
        .collect();
    let page: Vec<(usize, Value)> = match (position("after")?, position("before")?) {
        (Some(after), _) => visible
            .into_iter()
            .filter(|(i, _)| *i > after)
            .take(limit)
            .collect(),
        (None, Some(before)) => {
            let earlier: Vec<(usize, Value)> =
                visible.into_iter().filter(|(i, _)| *i < before).collect();
            let skip = earlier.len().saturating_sub(limit);
            earlier.into_iter().skip(skip).collect()
        }
        (None, None) => visible.into_iter().take(limit).collect(),
    };
    let (Some(first), Some(last)) = (page.first().map(|p| p.0), page.last().map(|p| p.0)) else {
        return Ok(json!({ "data": [] }));
    };
    let has = |keep: &dyn Fn(usize) -> bool| {
        order
            .iter()
            .enumerate()
            .any(|(i, id)| keep(i) && show(id).is_some())
    };
    let link = |name: &str, cursor: &str| {
        let mut query: Vec<(String, String)> = params
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "after" | "before"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        query.push((name.into(), cursor.to_string()));
        query.sort();
        let query = serde_urlencoded::to_string(&query).unwrap_or_default();
        format!("{base_url}{}?{query}", req.path())
    };
    let before = cursor_of(&order[first]);
    let after = cursor_of(&order[last]);
    let mut paging = json!({"cursors": {"before": before, "after": after}});
    if has(&|i| i > last) {
        paging["next"] = json!(link("after", &after));
    }
    if has(&|i| i < first) {
        paging["previous"] = json!(link("before", &before));
    }
    let data: Vec<Value> = page.into_iter().map(|(_, v)| v).collect();
    Ok(json!({ "data": data, "paging": paging }))
}

/// A throttled answer: HTTP 400 with Graph `code` and an
/// `X-Business-Use-Case-Usage` header of `kind` (`pages`, `instagram`, …)
/// whose `estimated_time_to_regain_access` is `minutes` (none when 0).
pub(crate) fn throttled(code: i64, kind: &str, minutes: u64) -> HttpResponse {
    let mut response = graph_error(
        400,
        code,
        None,
        "There have been too many calls from this account. Wait a bit and try again.",
    );
    let header = json!({"0": [{"type": kind, "call_count": 100, "total_cputime": 10, "total_time": 10, "estimated_time_to_regain_access": minutes}]});
    if let Ok(value) = header.to_string().parse() {
        response.headers_mut().insert(
            actix_web::http::header::HeaderName::from_static("x-business-use-case-usage"),
            value,
        );
    }
    response
}

/// Faults injected into the reads of replies (comment lists): a transient
/// Graph error (code 2) with an HTTP status, or a throttle (code, minutes).
#[derive(Debug, Clone, Default)]
pub(crate) struct ReadFaults {
    pub fail: Next<u16>,
    pub rate_limit: Next<(i64, u64)>,
}

impl ReadFaults {
    /// The answer of a due fault; `kind` names the usage header's budget.
    pub fn take(&mut self, kind: &str) -> Option<HttpResponse> {
        if let Some(response) = injected_failure(&mut self.fail) {
            return Some(response);
        }
        self.rate_limit
            .take()
            .map(|(code, minutes)| throttled(code, kind, minutes))
    }
}

/// Whether the comma list `fields` names `field`.
pub(crate) fn wants(params: &HashMap<String, String>, field: &str) -> bool {
    params.get("fields").is_some_and(|f| {
        f.split(',')
            .any(|x| x.trim().split('{').next() == Some(field))
    })
}

// ---------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------

/// A Page created with [`FakeFacebook::add_page`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakePage {
    pub id: String,
    pub name: String,
    /// The Page access token.
    pub token: String,
}

/// A post, photo or comment as the fake stored it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeFbPost {
    /// `<page-id>_<n>` for feed posts and photos, `<n>_<m>` for comments.
    pub id: String,
    pub page_id: String,
    /// `feed`, `photo` or `comment`.
    pub kind: String,
    /// `message` (feed, comment) or `caption` (photo).
    pub message: String,
    /// The object a comment is on.
    pub parent_id: Option<String>,
    /// The photo `url`, or a comment's `attachment_url`.
    pub image_url: Option<String>,
    pub alt_text: Option<String>,
    pub created_time: DateTime<Utc>,
    pub deleted: bool,
    pub permalink_url: String,
    /// A comment from the public ([`FakeFacebook::add_reply`]): its
    /// author's user id and name. `None`: made by the Page.
    pub from_id: Option<String>,
    pub from_name: Option<String>,
}

/// A running fake Graph API; stops when dropped.
pub struct FakeFacebook {
    shared: Arc<Shared>,
    server: FakeServer,
}

impl FakeFacebook {
    pub async fn start() -> FakeFacebook {
        let port = FakeServer::bind("fake-facebook");
        let shared = Arc::new(Shared {
            base_url: port.base_url(),
            state: Mutex::new(State::default()),
        });
        let server = port
            .serve(2, shared.clone(), 1 << 20, |app| {
                app.default_service(web::to(handle));
            })
            .await;
        FakeFacebook { shared, server }
    }

    /// `http://127.0.0.1:PORT` (API, dialog and token endpoint).
    pub fn base_url(&self) -> String {
        self.server.base_url().to_string()
    }

    /// The app registration to give the connector: client id and secret,
    /// every address pointing at this fake.
    pub fn app(&self) -> NetworkApp {
        NetworkApp {
            client_id: Some(CLIENT_ID.into()),
            client_secret: Some(CLIENT_SECRET.into()),
            api_url: self.base_url(),
            auth_url: self.base_url(),
            token_url: None,
        }
    }

    /// Create a Facebook user; the first one is the one the dialog logs in
    /// (see [`login_as`](Self::login_as)). Returns the user id.
    pub fn add_user(&self, name: &str) -> String {
        let mut state = self.lock();
        state.next_id += 1;
        let id = format!("{}", 10_000_000_000u64 + state.next_id);
        state.users.insert(id.clone(), name.to_string());
        if state.login_user.is_none() {
            state.login_user = Some(id.clone());
        }
        id
    }

    /// The user the OAuth dialog approves as.
    pub fn login_as(&self, user_id: &str) {
        self.lock().login_user = Some(user_id.to_string());
    }

    /// Create a Page managed by `user_id`, with its Page token.
    pub fn add_page(&self, user_id: &str, name: &str) -> FakePage {
        let mut state = self.lock();
        state.next_id += 1;
        let id = format!("{}", 100_000_000_000_000u64 + state.next_id);
        let token = format!("EAAP{}", random_token(40));
        state.pages.insert(
            id.clone(),
            PageEntry {
                name: name.to_string(),
                token: token.clone(),
                managers: vec![user_id.to_string()],
            },
        );
        state.tokens.insert(
            token.clone(),
            TokenEntry {
                subject: Subject::Page(id.clone()),
                revoked: None,
            },
        );
        FakePage {
            id,
            name: name.to_string(),
            token,
        }
    }

    /// Make `token` fail with code 190 and `subcode` (463 expired, 460
    /// password changed, 458 app removed, None: invalid).
    pub fn revoke(&self, token: &str, subcode: Option<i64>) {
        if let Some(entry) = self.lock().tokens.get_mut(token) {
            entry.revoked = Some(subcode);
        }
    }

    /// The next `n` writes answer `status` with Graph code 2 (transient) and store nothing.
    pub fn fail_next(&self, n: usize, status: u16) {
        self.lock().faults.fail.arm(n, status);
    }

    /// The next `n` writes are throttled: HTTP 400, code 80001, and an
    /// `X-Business-Use-Case-Usage` header saying access comes back in
    /// `regain_minutes` (none when 0).
    pub fn rate_limit_next(&self, n: usize, regain_minutes: u64) {
        self.lock().faults.rate_limit.arm(n, regain_minutes);
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

    /// The next `n` writes store the post, then drop the connection.
    pub fn drop_after_store_next(&self, n: usize) {
        self.lock().faults.drop_after_store.arm(n, ());
    }

    /// Every answer carries usage headers at `percent` (call count); at 100
    /// or more, `estimated_time_to_regain_access` is `regain_minutes`.
    pub fn set_usage(&self, percent: u32, regain_minutes: u64) {
        self.lock().usage = Some((percent, regain_minutes));
    }

    /// Add a feed post to `page_id` as if made at `created_time`.
    pub fn seed_post(&self, page_id: &str, message: &str, created_time: DateTime<Utc>) -> String {
        let mut state = self.lock();
        state.store(page_id, "feed", message, None, None, None, created_time)
    }

    /// A member of the public (`author`, a display name: Facebook has no
    /// handles) comments on the post or comment `parent`, now. Returns the
    /// comment's id (`<post>_<n>`).
    ///
    /// # Panics
    /// When `parent` is not a live post or comment of this fake.
    pub fn add_reply(&self, parent: &str, author: &str, text: &str) -> String {
        let mut state = self.lock();
        let Some(page_id) = state
            .posts
            .get(parent)
            .filter(|p| !p.deleted)
            .map(|p| p.page_id.clone())
        else {
            panic!("add_reply: the fake has no post or comment {parent}");
        };
        let from_id = state.public_user(author);
        let id = state.store(
            &page_id,
            "comment",
            text,
            Some(parent),
            None,
            None,
            Utc::now(),
        );
        if let Some(comment) = state.posts.get_mut(&id) {
            comment.from_id = Some(from_id);
            comment.from_name = Some(author.to_string());
        }
        id
    }

    /// Lists answer at most `n` items a page, whatever `limit` asks (to
    /// make tests read several pages).
    pub fn set_page_size(&self, n: usize) {
        self.lock().page_size = n.max(1);
    }

    /// The next `n` comment reads (`GET /{id}/comments`) answer `status`
    /// with Graph code 2 (transient).
    pub fn fail_reads_next(&self, n: usize, status: u16) {
        self.lock().read_faults.fail.arm(n, status);
    }

    /// The next `n` comment reads are throttled: HTTP 400, code 80001, and
    /// an `X-Business-Use-Case-Usage` header saying access comes back in
    /// `regain_minutes` (none when 0).
    pub fn rate_limit_reads_next(&self, n: usize, regain_minutes: u64) {
        self.lock()
            .read_faults
            .rate_limit
            .arm(n, (80001, regain_minutes));
    }

    /// Every stored object, oldest first.
    pub fn posts(&self) -> Vec<FakeFbPost> {
        let state = self.lock();
        state
            .order
            .iter()
            .filter_map(|id| state.posts.get(id).cloned())
            .collect()
    }

    /// Write requests (POST to feed, photos, comments), failed ones included.
    pub fn post_requests(&self) -> usize {
        self.lock().post_requests
    }

    /// Requests whose path (without the version prefix) starts with `prefix`.
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
    fn base(&self) -> String {
        self.base_url.clone()
    }
}

#[derive(Clone, PartialEq, Eq)]
enum Subject {
    User(String),
    Page(String),
}

struct TokenEntry {
    subject: Subject,
    /// `Some(subcode)`: answers 190 with that subcode.
    revoked: Option<Option<i64>>,
}

struct PageEntry {
    name: String,
    token: String,
    managers: Vec<String>,
}

struct CodeEntry {
    user_id: String,
    redirect_uri: String,
    issued: Instant,
}

struct State {
    next_id: u64,
    users: HashMap<String, String>,
    login_user: Option<String>,
    pages: HashMap<String, PageEntry>,
    tokens: HashMap<String, TokenEntry>,
    codes: HashMap<String, CodeEntry>,
    posts: HashMap<String, FakeFbPost>,
    order: Vec<String>,
    /// The rate limit: minutes to regain access.
    faults: Faults<u64>,
    error: Next<GraphError>,
    usage: Option<(u32, u64)>,
    post_requests: usize,
    requests: HashMap<String, usize>,
    /// Largest page a list answers (see `set_page_size`).
    page_size: usize,
    read_faults: ReadFaults,
    /// Members of the public who commented: name → user id.
    publics: HashMap<String, String>,
}

impl Default for State {
    fn default() -> Self {
        Self {
            next_id: 0,
            users: HashMap::new(),
            login_user: None,
            pages: HashMap::new(),
            tokens: HashMap::new(),
            codes: HashMap::new(),
            posts: HashMap::new(),
            order: Vec::new(),
            faults: Faults::default(),
            error: Next::default(),
            usage: None,
            post_requests: 0,
            requests: HashMap::new(),
            page_size: 100,
            read_faults: ReadFaults::default(),
            publics: HashMap::new(),
        }
    }
}

impl State {
    /// The user id of the member of the public named `name`.
    fn public_user(&mut self, name: &str) -> String {
        if let Some(id) = self.publics.get(name) {
            return id.clone();
        }
        self.next_id += 1;
        let id = format!("{}", 10_000_000_000u64 + self.next_id);
        self.publics.insert(name.to_string(), id.clone());
        id
    }

    #[allow(clippy::too_many_arguments)]
    fn store(
        &mut self,
        page_id: &str,
        kind: &str,
        message: &str,
        parent: Option<&str>,
        image: Option<&str>,
        alt: Option<&str>,
        at: DateTime<Utc>,
    ) -> String {
        self.next_id += 1;
        let n = 500_000_000_000u64 + self.next_id;
        let id = match parent {
            Some(parent) => {
                let post_part = parent.rsplit('_').next().unwrap_or(parent);
                format!("{post_part}_{n}")
            }
            None => format!("{page_id}_{n}"),
        };
        let permalink_url = match parent {
            Some(parent) => {
                // On the thread's post; a reply names its comment too.
                let root = root_of(self, parent).to_string();
                let post_n = root.rsplit('_').next().unwrap_or(&root);
                let post = format!("https://www.facebook.com/{page_id}/posts/{post_n}");
                if parent == root {
                    format!("{post}?comment_id={n}")
                } else {
                    let parent_n = parent.rsplit('_').next().unwrap_or(parent);
                    format!("{post}?comment_id={parent_n}&reply_comment_id={n}")
                }
            }
            None => format!("https://www.facebook.com/{page_id}/posts/{n}"),
        };
        self.posts.insert(
            id.clone(),
            FakeFbPost {
                id: id.clone(),
                page_id: page_id.to_string(),
                kind: kind.to_string(),
                message: message.to_string(),
                parent_id: parent.map(str::to_string),
                image_url: image.map(str::to_string),
                alt_text: alt.map(str::to_string),
                created_time: at,
                deleted: false,
                permalink_url,
                from_id: None,
                from_name: None,
            },
        );
        self.order.push(id.clone());
        id
    }

    fn post_json(&self, post: &FakeFbPost, params: &HashMap<String, String>) -> Value {
        let mut v = json!({ "id": post.id });
        if wants(params, "message") {
            v["message"] = json!(post.message);
        }
        if wants(params, "created_time") {
            v["created_time"] = json!(graph_time(post.created_time));
        }
        if wants(params, "permalink_url") {
            v["permalink_url"] = json!(post.permalink_url);
        }
        if wants(params, "from") {
            v["from"] = match (&post.from_id, &post.from_name) {
                (Some(id), Some(name)) => json!({"id": id, "name": name}),
                _ => {
                    let name = self
                        .pages
                        .get(&post.page_id)
                        .map(|p| p.name.clone())
                        .unwrap_or_default();
                    json!({"id": post.page_id, "name": name})
                }
            };
        }
        if wants(params, "parent") {
            if let Some(parent) = &post.parent_id {
                if self.posts.get(parent).is_some_and(|p| p.kind == "comment") {
                    v["parent"] = json!({"id": parent});
                }
            }
        }
        v
    }

    /// Who `token` is, or the Graph error to answer.
    #[allow(clippy::result_large_err)]
    fn authenticate(&self, token: Option<&str>) -> Result<Subject, HttpResponse> {
        let Some(token) = token else {
            return Err(graph_error(
                400,
                104,
                None,
                "An access token is required to request this resource.",
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
            let message = match subcode {
                Some(463) => "Error validating access token: Session has expired.",
                Some(460) => "Error validating access token: The session has been invalidated because the user changed their password.",
                Some(458) => "Error validating access token: The user has not authorized application.",
                _ => "The access token could not be decrypted",
            };
            return Err(graph_error(400, 190, subcode, message));
        }
        Ok(entry.subject.clone())
    }

    fn issue_user_token(&mut self, user_id: &str) -> String {
        let token = format!("EAAU{}", random_token(40));
        self.tokens.insert(
            token.clone(),
            TokenEntry {
                subject: Subject::User(user_id.to_string()),
                revoked: None,
            },
        );
        token
    }

    /// An injected fault for a write, if one is due.
    fn write_fault(&mut self) -> Option<HttpResponse> {
        if let Some(response) = injected_failure(&mut self.faults.fail) {
            return Some(response);
        }
        if let Some(minutes) = self.faults.rate_limit.take() {
            return Some(throttled(80001, "pages", minutes));
        }
        injected_error(&mut self.error)
    }
}

// ---------------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------------

async fn handle(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let segs = segments(req.path());
    let params = params(&req, &body);
    let base = shared.base();
    let mut state = shared.lock();
    *state
        .requests
        .entry(format!("/{}", segs.join("/")))
        .or_default() += 1;
    let usage = state.usage;
    let method = req.method().as_str().to_string();
    let seg: Vec<&str> = segs.iter().map(String::as_str).collect();
    let mut response = match (method.as_str(), seg.as_slice()) {
        ("GET", ["dialog", "oauth"]) => dialog(&mut state, &params),
        ("GET", ["oauth", "access_token"]) => access_token(&mut state, &params),
        _ => {
            let token = token(&req, &params);
            match state.authenticate(token.as_deref()) {
                Err(response) => {
                    if method == "POST" {
                        state.post_requests += 1;
                    }
                    response
                }
                Ok(subject) => api(&mut state, &base, &req, &method, &seg, &params, subject),
            }
        }
    };
    if let Some((percent, minutes)) = usage {
        let regain = if percent >= 100 { minutes } else { 0 };
        let buc = json!({"0": [{"type": "pages", "call_count": percent, "total_cputime": 1, "total_time": 1, "estimated_time_to_regain_access": regain}]});
        let app = json!({"call_count": percent, "total_cputime": 1, "total_time": 1});
        for (name, value) in [("x-business-use-case-usage", buc), ("x-app-usage", app)] {
            if let Ok(v) = value.to_string().parse() {
                response
                    .headers_mut()
                    .insert(actix_web::http::header::HeaderName::from_static(name), v);
            }
        }
    }
    response
}

fn dialog(state: &mut State, params: &HashMap<String, String>) -> HttpResponse {
    if params.get("client_id").map(String::as_str) != Some(CLIENT_ID) {
        return HttpResponse::BadRequest().body("Invalid App ID");
    }
    let Some(redirect_uri) = params.get("redirect_uri").filter(|r| r.starts_with("http")) else {
        return HttpResponse::BadRequest().body("redirect_uri is missing or invalid");
    };
    if params.get("response_type").is_some_and(|r| r != "code") {
        return HttpResponse::BadRequest().body("unsupported response_type");
    }
    let Some(user_id) = state.login_user.clone() else {
        return HttpResponse::BadRequest().body("no user to log in (add_user first)");
    };
    let code = random_token(32);
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
    if let Some(state_param) = params.get("state") {
        location.query_pairs_mut().append_pair("state", state_param);
    }
    HttpResponse::Found()
        .insert_header(("Location", location.to_string()))
        .finish()
}

fn access_token(state: &mut State, params: &HashMap<String, String>) -> HttpResponse {
    let client_ok = params.get("client_id").map(String::as_str) == Some(CLIENT_ID)
        && params.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET);
    if !client_ok {
        return graph_error(400, 1, None, "Error validating client secret.");
    }
    if params.get("grant_type").map(String::as_str) == Some("fb_exchange_token") {
        let short = params.get("fb_exchange_token").cloned().unwrap_or_default();
        let user = match state.authenticate(Some(&short)) {
            Ok(Subject::User(user)) => user,
            Ok(Subject::Page(_)) => {
                return graph_error(400, 100, None, "Invalid fb_exchange_token")
            }
            Err(response) => return response,
        };
        let token = state.issue_user_token(&user);
        return HttpResponse::Ok()
            .json(json!({"access_token": token, "token_type": "bearer", "expires_in": 5_183_944}));
    }
    let code = params.get("code").cloned().unwrap_or_default();
    let Some(entry) = state.codes.remove(&code) else {
        return graph_error(
            400,
            100,
            Some(36009),
            "This authorization code has been used.",
        );
    };
    if entry.issued.elapsed() > CODE_TTL {
        return graph_error(
            400,
            100,
            Some(36007),
            "This authorization code has expired.",
        );
    }
    if params.get("redirect_uri") != Some(&entry.redirect_uri) {
        return graph_error(400, 100, Some(36008), "Error validating verification code. Please make sure your redirect_uri is identical to the one you used in the OAuth dialog request");
    }
    let token = state.issue_user_token(&entry.user_id);
    HttpResponse::Ok()
        .json(json!({"access_token": token, "token_type": "bearer", "expires_in": 5183}))
}

fn api(
    state: &mut State,
    base: &str,
    req: &HttpRequest,
    method: &str,
    seg: &[&str],
    params: &HashMap<String, String>,
    subject: Subject,
) -> HttpResponse {
    match (method, seg) {
        ("GET", ["me", "accounts"]) => {
            let Subject::User(user) = &subject else {
                return graph_error(
                    400,
                    100,
                    None,
                    "(#100) Tried accessing nonexisting field (accounts) on node type (Page)",
                );
            };
            let mut items: Vec<(String, Value)> = state
                .pages
                .iter()
                .filter(|(_, p)| p.managers.contains(user))
                .map(|(id, p)| {
                    (id.clone(), json!({"id": id, "name": p.name, "access_token": p.token, "category": "Company", "tasks": ["ANALYZE", "ADVERTISE", "MODERATE", "CREATE_CONTENT", "MANAGE"]}))
                })
                .collect();
            items.sort_by(|a, b| a.0.cmp(&b.0));
            HttpResponse::Ok().json(paged(
                base,
                req,
                params,
                items.into_iter().map(|(_, v)| v).collect(),
                state.page_size,
            ))
        }
        ("GET", ["me"]) => match &subject {
            Subject::User(user) => {
                HttpResponse::Ok().json(json!({"id": user, "name": state.users.get(user)}))
            }
            Subject::Page(page) => HttpResponse::Ok()
                .json(json!({"id": page, "name": state.pages.get(page).map(|p| p.name.clone())})),
        },
        ("POST", [object, edge @ ("feed" | "photos" | "comments")]) => {
            state.post_requests += 1;
            write(state, object, edge, params, &subject)
        }
        ("GET", [page, "published_posts" | "feed" | "posts"]) => {
            if !state.pages.contains_key(*page) {
                return no_object(page);
            }
            let since = params.get("since").and_then(|s| param_time(s));
            let until = params.get("until").and_then(|s| param_time(s));
            let items: Vec<Value> = state
                .order
                .iter()
                .rev()
                .filter_map(|id| state.posts.get(id))
                .filter(|p| p.page_id == *page && p.kind != "comment" && !p.deleted)
                .filter(|p| since.is_none_or(|s| p.created_time >= s))
                .filter(|p| until.is_none_or(|u| p.created_time <= u))
                .map(|p| state.post_json(p, params))
                .collect();
            HttpResponse::Ok().json(paged(base, req, params, items, state.page_size))
        }
        ("GET", [object, "comments"]) => {
            if let Some(fault) = state.read_faults.take("pages") {
                return fault;
            }
            if state.posts.get(*object).is_none_or(|p| p.deleted) {
                return no_object(object);
            }
            // `toplevel` (the default): the object's own comments;
            // `stream`: every comment under it at any depth, flat.
            let stream = params.get("filter").map(String::as_str) == Some("stream");
            let mut order: Vec<String> = state
                .order
                .iter()
                .filter_map(|id| state.posts.get(id))
                .filter(|p| p.kind == "comment")
                .filter(|p| {
                    let parent = p.parent_id.as_deref();
                    parent == Some(*object) || (stream && root_of(state, &p.id) == *object)
                })
                .map(|p| p.id.clone())
                .collect();
            if params.get("order").map(String::as_str) == Some("reverse_chronological") {
                order.reverse();
            }
            let show = |id: &str| {
                state
                    .posts
                    .get(id)
                    .filter(|p| !p.deleted)
                    .map(|p| state.post_json(p, params))
            };
            match paged_by_id(base, req, params, &order, show, state.page_size) {
                Ok(body) => HttpResponse::Ok().json(body),
                Err(response) => response,
            }
        }
        ("GET", [object]) => {
            if let Some(page) = state.pages.get(*object) {
                return HttpResponse::Ok().json(json!({"id": object, "name": page.name}));
            }
            match state.posts.get(*object).filter(|p| !p.deleted) {
                Some(post) => HttpResponse::Ok().json(state.post_json(post, params)),
                None => no_object(object),
            }
        }
        ("DELETE", [object]) => {
            let Some(post) = state.posts.get(*object).filter(|p| !p.deleted) else {
                return no_object(object);
            };
            if subject != Subject::Page(post.page_id.clone()) {
                return graph_error(403, 200, None, "(#200) Permissions error");
            }
            if let Some(post) = state.posts.get_mut(*object) {
                post.deleted = true;
            }
            HttpResponse::Ok().json(json!({"success": true}))
        }
        _ => graph_error(400, 100, None, &format!("Unsupported {method} request.")),
    }
}

/// The first non-comment ancestor of a comment.
fn root_of<'a>(state: &'a State, id: &'a str) -> &'a str {
    let mut current = id;
    for _ in 0..16 {
        match state.posts.get(current) {
            Some(p) if p.kind == "comment" => match &p.parent_id {
                Some(parent) => current = parent,
                None => break,
            },
            _ => break,
        }
    }
    current
}

fn write(
    state: &mut State,
    object: &str,
    edge: &str,
    params: &HashMap<String, String>,
    subject: &Subject,
) -> HttpResponse {
    if let Some(fault) = state.write_fault() {
        return fault;
    }
    let page_id = match edge {
        "comments" => {
            let Some(target) = state.posts.get(object).filter(|p| !p.deleted) else {
                return no_object(object);
            };
            target.page_id.clone()
        }
        _ => {
            if !state.pages.contains_key(object) {
                return no_object(object);
            }
            object.to_string()
        }
    };
    if *subject != Subject::Page(page_id.clone()) {
        return graph_error(403, 200, None, "(#200) If posting to a Page, requires both pages_read_engagement and pages_manage_posts permission with page token");
    }
    let text = |name: &str| {
        params
            .get(name)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    };
    let (message, image, alt) = match edge {
        "feed" => {
            let Some(message) = text("message") else {
                return graph_error(400, 100, None, "(#100) Missing message or attachment.");
            };
            let latest = state
                .order
                .iter()
                .rev()
                .filter_map(|id| state.posts.get(id))
                .find(|p| p.page_id == page_id && p.kind == "feed" && !p.deleted);
            if latest.is_some_and(|p| p.message == message) {
                return graph_error(400, 506, None, "(#506) Duplicate status message");
            }
            (message.to_string(), None, None)
        }
        "photos" => {
            let Some(url) = text("url") else {
                return graph_error(400, 324, None, "(#324) Requires upload file");
            };
            (
                text("caption")
                    .or(text("message"))
                    .unwrap_or("")
                    .to_string(),
                Some(url.to_string()),
                text("alt_text_custom").map(str::to_string),
            )
        }
        _ => {
            let attachment = text("attachment_url");
            let Some(message) = text("message").or(attachment.map(|_| "")) else {
                return graph_error(400, 100, None, "(#100) Missing message or attachment.");
            };
            (message.to_string(), attachment.map(str::to_string), None)
        }
    };
    let kind = match edge {
        "feed" => "feed",
        "photos" => "photo",
        _ => "comment",
    };
    let parent = (edge == "comments").then_some(object);
    let id = state.store(
        &page_id,
        kind,
        &message,
        parent,
        image.as_deref(),
        alt.as_deref(),
        Utc::now(),
    );
    if state.faults.drop_after_store.take().is_some() {
        return dropped("fake Facebook");
    }
    let post = state.posts.get(&id).cloned().expect("just stored");
    let mut answer = json!({ "id": post.id });
    if kind == "photo" {
        // A photo answers its own id and the Page post it made.
        state.next_id += 1;
        answer =
            json!({"id": format!("{}", 700_000_000_000u64 + state.next_id), "post_id": post.id});
    }
    if wants(params, "permalink_url") {
        answer["permalink_url"] = json!(post.permalink_url);
    }
    HttpResponse::Ok().json(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_stripped_from_paths() {
        assert_eq!(segments("/v23.0/123/feed"), vec!["123", "feed"]);
        assert_eq!(segments("/123_456"), vec!["123_456"]);
        assert_eq!(segments("/video/x"), vec!["video", "x"]);
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn id_cursors_keep_their_place_when_items_come_and_go() {
        let req = actix_web::test::TestRequest::get()
            .uri("/v23.0/1_2/comments")
            .to_http_request();
        let order: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        let gone = ["b"];
        let show = |id: &str| (!gone.contains(&id)).then(|| json!({ "id": id }));
        let ask = |pairs: &[(&str, String)]| {
            let params: HashMap<String, String> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect();
            paged_by_id("http://fake", &req, &params, &order, show, 100)
        };
        let ids = |body: &Value| -> Vec<String> {
            body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["id"].as_str().unwrap().to_string())
                .collect()
        };
        let first = ask(&[("limit", "2".into())]).unwrap();
        assert_eq!(ids(&first), ["a", "c"], "deleted items are skipped");
        assert!(first["paging"]["next"]
            .as_str()
            .unwrap()
            .starts_with("http://fake/v23.0/1_2/comments?"));
        let after = first["paging"]["cursors"]["after"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(id_of_cursor(&after).as_deref(), Some("c"));
        let next = ask(&[("limit", "2".into()), ("after", after)]).unwrap();
        assert_eq!(ids(&next), ["d"]);
        assert!(next["paging"].get("next").is_none());
        assert!(next["paging"]["previous"].is_string());
        // A cursor on a deleted item still has its place.
        let on_b = ask(&[("after", cursor_of("b"))]).unwrap();
        assert_eq!(ids(&on_b), ["c", "d"]);
        let before_d = ask(&[("before", cursor_of("d")), ("limit", "1".into())]).unwrap();
        assert_eq!(ids(&before_d), ["c"]);
        let nothing = ask(&[("after", cursor_of("d"))]).unwrap();
        assert_eq!(nothing, json!({"data": []}));
        assert_eq!(ask(&[("after", "junk".into())]).unwrap_err().status(), 400);
    }

    #[test]
    fn graph_times_have_no_colon_in_the_offset() {
        let t = DateTime::from_timestamp(1_764_061_200, 0).unwrap();
        assert_eq!(graph_time(t), "2025-11-25T09:00:00+0000");
        assert_eq!(param_time("1764061200"), Some(t));
    }
}
