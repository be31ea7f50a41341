//! What Facebook Pages and Instagram share (shared/platforms.md §5.4, §5.5,
//! §6.4, §6.5): Meta's Graph API error envelope
//! `{"error":{"message","type","code","error_subcode","error_user_title","error_user_msg","is_transient","fbtrace_id"}}`,
//! the JSON usage headers (`X-Business-Use-Case-Usage`, `X-App-Usage`,
//! `X-Page-Usage`), Graph timestamps, and the mapping of an answer to a
//! [`ConnectorError`].
//!
//! Meta throttles with HTTP 400 or 403, not 429: the class comes from
//! `error.code`, never from the status alone.
//!
//! Reply collection shares the list helpers: [`Paging`] (a page's `after`
//! cursor and `next` link, Threads included), [`read_forward`] (a list read
//! from a cursor, page after page, within [`MAX_REPLY_PAGES`]) and [`Seen`]
//! (what earlier polls returned of a list that has no "newer than" filter).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::connector::{self, answered, id_text, send_call};
use super::{ConnectorError, OAuthApp};
use crate::config::NetworkApp;

/// Wait when Meta throttles without saying for how long.
pub const DEFAULT_THROTTLE: Duration = Duration::from_secs(300);
/// Longest server message quoted in an error.
const MAX_MESSAGE: usize = 300;

/// The `error` object of a Graph answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GraphError {
    pub message: String,
    pub kind: String,
    pub code: i64,
    pub subcode: Option<i64>,
    /// `error_user_msg`: the text Meta means for people, when present.
    pub user_message: Option<String>,
    pub is_transient: bool,
}

impl GraphError {
    /// Read the envelope of `body`, if it is one.
    pub fn parse(body: &Value) -> Option<GraphError> {
        let error = body.get("error")?;
        if !error.is_object() {
            return None;
        }
        let int = |name: &str| {
            error.get(name).and_then(|v| {
                v.as_i64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            })
        };
        let text = |name: &str| {
            error
                .get(name)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        Some(GraphError {
            message: text("message").unwrap_or_default(),
            kind: text("type").unwrap_or_default(),
            code: int("code").unwrap_or(0),
            subcode: int("error_subcode"),
            user_message: text("error_user_msg"),
            is_transient: error
                .get("is_transient")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }

    /// A token-level failure (190 invalid/expired/revoked token, 102 session).
    pub fn is_token_error(&self) -> bool {
        matches!(self.code, 190 | 102)
    }

    /// A throttle code: 4 (app), 17 (user), 32 (Page), 613, 80000–80014 (BUC).
    pub fn is_throttle(&self) -> bool {
        matches!(self.code, 4 | 17 | 32 | 613 | 80000..=80014)
    }

    /// A missing permission: 10 and 200–299.
    pub fn is_permission(&self) -> bool {
        self.code == 10 || (200..=299).contains(&self.code)
    }

    /// The object does not exist (any more): code 100 subcode 33, or 803.
    pub fn is_missing_object(&self) -> bool {
        (self.code == 100 && self.subcode == Some(33)) || self.code == 803
    }

    /// Duplicate status message (Facebook).
    pub fn is_duplicate(&self) -> bool {
        self.code == 506
    }
}

/// The usage headers of one answer.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// Largest `estimated_time_to_regain_access` (given in minutes) of the
    /// `X-Business-Use-Case-Usage` entries, when above zero.
    pub regain_access: Option<Duration>,
    /// Largest percentage of any budget used (call count, CPU time, total
    /// time) over the usage headers.
    pub max_percent: Option<f64>,
}

impl Usage {
    pub fn parse(headers: &reqwest::header::HeaderMap) -> Usage {
        let mut usage = Usage::default();
        let mut note = |value: &Value| {
            for field in [
                "call_count",
                "total_cputime",
                "total_time",
                "acc_id_util_pct",
            ] {
                if let Some(p) = value.get(field).and_then(number) {
                    usage.max_percent = Some(usage.max_percent.map_or(p, |m: f64| m.max(p)));
                }
            }
            if let Some(minutes) = value
                .get("estimated_time_to_regain_access")
                .and_then(number)
            {
                if minutes > 0.0 {
                    let wait = Duration::from_secs_f64((minutes * 60.0).min(86_400.0 * 7.0));
                    usage.regain_access = Some(usage.regain_access.map_or(wait, |w| w.max(wait)));
                }
            }
        };
        let json = |name: &str| -> Option<Value> {
            let text = headers.get(name)?.to_str().ok()?;
            serde_json::from_str(text).ok()
        };
        if let Some(Value::Object(by_id)) = json("x-business-use-case-usage") {
            for entries in by_id.values() {
                match entries {
                    Value::Array(items) => items.iter().for_each(&mut note),
                    other => note(other),
                }
            }
        }
        for name in ["x-app-usage", "x-page-usage", "x-ad-account-usage"] {
            if let Some(value) = json(name) {
                note(&value);
            }
        }
        usage
    }

    /// After a success: the account's budget is spent (some budget at 100 %
    /// or more) until then.
    pub fn pause_until(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.max_percent? < 100.0 {
            return None;
        }
        let wait = self.regain_access.unwrap_or(DEFAULT_THROTTLE);
        Some(now + chrono::Duration::from_std(wait).ok()?)
    }
}

fn number(value: &Value) -> Option<f64> {
    value
        .as_f64()
        .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
        .filter(|n| n.is_finite())
}

/// One Graph answer, read.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub error: Option<GraphError>,
    pub usage: Usage,
}

impl Reply {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status) && self.error.is_none()
    }

    /// A string (or numeric) field of the body.
    pub fn str(&self, name: &str) -> Option<String> {
        text_field(&self.body, name)
    }

    /// "Facebook answered 400 (#190/460): message", at most a few hundred characters.
    pub fn describe(&self, network: &str) -> String {
        let Some(error) = &self.error else {
            let text = match &self.body {
                Value::Null => String::new(),
                other => clip(&other.to_string()),
            };
            return answered(network, self.status, &text);
        };
        let code = match error.subcode {
            Some(sub) => format!("#{}/{sub}", error.code),
            None => format!("#{}", error.code),
        };
        let mut message = clip(&error.message);
        if let Some(user) = &error.user_message {
            if !message.contains(user.as_str()) {
                message = format!("{message} ({})", clip(user));
            }
        }
        format!("{network} answered {} ({code}): {message}", self.status)
    }
}

/// A string field of `value`; numbers are given as their decimal text
/// (Graph ids are strings, but fakes and old versions send numbers).
pub fn text_field(value: &Value, name: &str) -> Option<String> {
    id_text(value.get(name)?)
}

fn clip(text: &str) -> String {
    connector::clip(text, MAX_MESSAGE)
}

/// Send `request` and read the answer. A failure on the way is `Unknown`
/// for a write (it may have been received), `Transient` for a read.
pub async fn send(
    request: reqwest::RequestBuilder,
    is_write: bool,
) -> Result<Reply, ConnectorError> {
    let answer = send_call(request, is_write).await?;
    let status = answer.status;
    let usage = Usage::parse(&answer.headers);
    let bytes = answer.bytes;
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let error = GraphError::parse(&body).or_else(|| {
        // A non-2xx answer without an envelope (a proxy's page): keep the status.
        (!(200..300).contains(&status)).then(GraphError::default)
    });
    Ok(Reply {
        status,
        body,
        error,
        usage,
    })
}

/// `GET {base}/{path}` with `query` and the token as `access_token`: a read.
pub async fn get(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    path: &str,
    query: &[(&str, &str)],
) -> Result<Reply, ConnectorError> {
    let mut fields: Vec<(&str, &str)> = query.to_vec();
    fields.push(("access_token", token));
    send(http.get(format!("{base}/{path}")).query(&fields), false).await
}

/// Walk a Graph list from its first answer `reply` through the pages after
/// it (`paging.next`), at most `max_pages`, stopping when `visit` says so. A
/// failed page is classified by `fail`.
pub async fn walk_pages(
    http: &reqwest::Client,
    mut reply: Reply,
    max_pages: usize,
    fail: impl Fn(&Reply) -> ConnectorError,
    mut visit: impl FnMut(&Value) -> bool,
) -> Result<(), ConnectorError> {
    for _ in 0..max_pages {
        if !reply.ok() {
            return Err(fail(&reply));
        }
        let items = reply.body.get("data").and_then(Value::as_array);
        for item in items.into_iter().flatten() {
            if visit(item) {
                return Ok(());
            }
        }
        let next = reply
            .body
            .pointer("/paging/next")
            .and_then(Value::as_str)
            .map(str::to_string);
        let Some(next) = next.filter(|_| items.is_some_and(|i| !i.is_empty())) else {
            return Ok(());
        };
        // `paging.next` already carries the token and every parameter.
        reply = send(http.get(next), false).await?;
    }
    Ok(())
}

/// Requests one reply poll may make before it returns what it has, with a
/// cursor that resumes there (DESIGN: at most about ten pages per poll).
pub const MAX_REPLY_PAGES: usize = 10;

/// Where a Graph list page says the list goes on: `paging.cursors.after`
/// (the position after its last item) and `paging.next` (the ready-made URL
/// of the next page, present only when Graph has more).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Paging {
    pub after: Option<String>,
    pub next: Option<String>,
}

impl Paging {
    pub fn of(body: &Value) -> Paging {
        let text = |pointer: &str| {
            body.pointer(pointer)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        Paging {
            after: text("/paging/cursors/after"),
            next: text("/paging/next"),
        }
    }
}

/// A list read forward from a cursor, page after page.
#[derive(Debug, Clone, Default)]
pub struct Forward {
    /// Every item, in the order Graph gave them.
    pub items: Vec<Value>,
    /// The `after` cursor of the last page that had items: handed back, it
    /// makes Graph answer only what comes after them. `None` when no page
    /// had items (the caller keeps its cursor).
    pub after: Option<String>,
    /// The page budget ran out while Graph still had pages.
    pub more: bool,
}

/// Read a list forward from its first answer `reply` through `paging.next`,
/// at most `max_pages` answers (the first included). A failed page is
/// classified by `fail`; what was read before it is dropped, so the caller's
/// cursor does not move past anything it did not get.
pub async fn read_forward(
    http: &reqwest::Client,
    mut reply: Reply,
    max_pages: usize,
    fail: impl Fn(&Reply) -> ConnectorError,
) -> Result<Forward, ConnectorError> {
    let mut out = Forward::default();
    for page in 0..max_pages.max(1) {
        if !reply.ok() {
            return Err(fail(&reply));
        }
        let items = reply
            .body
            .get("data")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let paging = Paging::of(&reply.body);
        if items.is_empty() {
            return Ok(out);
        }
        out.items.extend(items);
        if paging.after.is_some() {
            out.after = paging.after;
        }
        let Some(next) = paging.next else {
            return Ok(out);
        };
        if page + 1 == max_pages.max(1) {
            out.more = true;
            return Ok(out);
        }
        // `paging.next` already carries the token and every parameter.
        reply = send(http.get(next), false).await?;
    }
    Ok(out)
}

/// What reply polls have already returned of a list that cannot be asked
/// for "only what is newer" (Instagram's comments, LinkedIn's): items
/// older than `since` were all returned, and `ids` are those at or after it
/// already returned, with their time. Times are in the list's own unit
/// (seconds, milliseconds). Kept in a poll's cursor (JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<i64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ids: BTreeMap<String, i64>,
}

impl Seen {
    /// Whether the item `id` made at `at` was not returned yet.
    pub fn is_new(&self, id: &str, at: i64) -> bool {
        self.since.is_none_or(|since| at >= since) && !self.ids.contains_key(id)
    }

    /// Remember that the item `id` made at `at` was returned.
    pub fn note(&mut self, id: &str, at: i64) {
        self.ids.insert(id.to_string(), at);
    }

    /// Every item up to the newest noted one has now been returned: move
    /// `since` to it and forget the ids before it (the ones at it stay, as
    /// another item may share its time).
    pub fn settle(&mut self) {
        let Some(newest) = self.ids.values().copied().max() else {
            return;
        };
        let since = self.since.map_or(newest, |s| s.max(newest));
        self.since = Some(since);
        self.ids.retain(|_, at| *at >= since);
    }
}

/// The app's client id and secret, or `Rejected` naming `network`'s app.
pub fn app_client<'a>(
    app: &'a NetworkApp,
    network: &str,
) -> Result<(&'a str, &'a str), ConnectorError> {
    app.client().ok_or_else(|| ConnectorError::Rejected {
        message: format!("the {network} app's client id and secret are not configured"),
        status: None,
    })
}

/// The OAuth app of a Meta network (Facebook Login, Instagram Login,
/// Threads): no PKCE, comma-joined scopes, the client secret in the body;
/// the authorize page at `{auth_url}/{authorize_path}`, the token endpoint
/// from the settings or else `default_token_url`.
pub fn oauth_app(
    app: &NetworkApp,
    scopes: &[&str],
    authorize_path: &str,
    default_token_url: String,
    token_via_get: bool,
) -> Option<OAuthApp> {
    let (client_id, client_secret) = app.client()?;
    Some(OAuthApp {
        client_id: client_id.to_string(),
        client_secret: client_secret.to_string(),
        authorize_url: format!("{}/{authorize_path}", trim_base(&app.auth_url)),
        token_url: app.token_url.clone().unwrap_or(default_token_url),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        pkce: false,
        basic_auth: false,
        comma_scopes: true,
        token_via_get,
    })
}

/// How token failures (190/102) are read by the caller's network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A Facebook Page token: it does not expire, so even "expired" (463)
    /// means the admin must reconnect.
    Page,
    /// An Instagram user token: expired or invalid, it cannot be renewed
    /// (`ig_refresh_token` needs a valid token), so the admin reconnects.
    InstagramUser,
}

/// Classify a failed Graph answer (shared/platforms.md §5.4–5.5, §6.5).
pub fn classify(network: &str, reply: &Reply, tokens: TokenKind) -> ConnectorError {
    let status = Some(reply.status);
    let message = reply.describe(network);
    let Some(error) = reply.error.as_ref().filter(|e| e.code != 0) else {
        return by_status(reply, message);
    };
    if error.is_token_error() {
        let hint = match (error.subcode, tokens) {
            (Some(463), TokenKind::Page) => "the Page token expired; reconnect the account",
            (Some(463), TokenKind::InstagramUser) => {
                "the Instagram token expired; reconnect the account"
            }
            (Some(460), _) => "the password changed; reconnect the account",
            (Some(458), _) => "the app was removed; reconnect the account",
            (Some(459), _) => "the user must log in on the website first, then reconnect",
            _ => "the token no longer works; reconnect the account",
        };
        return ConnectorError::AuthRevoked {
            message: format!("{message} — {hint}"),
            status,
        };
    }
    if error.is_throttle() || reply.status == 429 {
        return ConnectorError::RateLimited {
            retry_after: reply.usage.regain_access.unwrap_or(DEFAULT_THROTTLE),
            message,
            status,
        };
    }
    if error.is_permission() {
        return ConnectorError::Rejected {
            message: format!("{message} — a permission is missing; reconnect and grant it"),
            status,
        };
    }
    if error.code == 368 {
        return ConnectorError::Rejected {
            message: format!("{message} — the account is temporarily blocked from posting"),
            status,
        };
    }
    if matches!(error.code, 1 | 2) || error.is_transient || error.subcode == Some(2207001) {
        return ConnectorError::Transient { message, status };
    }
    if reply.status >= 500 {
        return ConnectorError::Transient { message, status };
    }
    ConnectorError::Rejected { message, status }
}

fn by_status(reply: &Reply, message: String) -> ConnectorError {
    let status = Some(reply.status);
    match reply.status {
        429 => ConnectorError::RateLimited {
            retry_after: reply.usage.regain_access.unwrap_or(DEFAULT_THROTTLE),
            message,
            status,
        },
        401 => ConnectorError::AuthRevoked { message, status },
        s if s >= 500 => ConnectorError::Transient { message, status },
        _ => ConnectorError::Rejected { message, status },
    }
}

/// Graph timestamps: `2026-11-25T09:00:00+0000` (ISO 8601 without the colon)
/// or RFC 3339.
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%z"))
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The text Graph returns compared with the text sent: line endings and
/// surrounding white space may differ.
pub fn same_text(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.replace("\r\n", "\n").trim().to_string();
    norm(a) == norm(b)
}

/// `base` without its trailing slashes.
pub fn trim_base(base: &str) -> String {
    base.trim_end_matches('/').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use reqwest::header::HeaderMap;
    use serde_json::json;

    fn reply(status: u16, body: Value) -> Reply {
        Reply {
            status,
            error: GraphError::parse(&body),
            body,
            usage: Usage::default(),
        }
    }

    fn err(code: i64, subcode: Option<i64>) -> Value {
        let mut e = json!({"message": "Something", "type": "OAuthException", "code": code, "fbtrace_id": "A1"});
        if let Some(s) = subcode {
            e["error_subcode"] = json!(s);
        }
        json!({ "error": e })
    }

    #[test]
    fn the_envelope_is_read_with_string_or_number_codes() {
        let e = GraphError::parse(&json!({"error":{"message":"Bad","type":"OAuthException","code":"190","error_subcode":460,"error_user_msg":"Log in again","is_transient":false}})).unwrap();
        assert_eq!(e.code, 190);
        assert_eq!(e.subcode, Some(460));
        assert_eq!(e.user_message.as_deref(), Some("Log in again"));
        assert!(GraphError::parse(&json!({"id": "1"})).is_none());
        assert!(GraphError::parse(&json!({"error": "invalid_grant"})).is_none());
    }

    #[test]
    fn token_permission_throttle_block_and_transient_codes_are_told_apart() {
        let c = |status, body| classify("Facebook", &reply(status, body), TokenKind::Page).class();
        assert_eq!(c(400, err(190, Some(463))), "auth_revoked");
        assert_eq!(c(400, err(190, Some(460))), "auth_revoked");
        assert_eq!(c(400, err(190, None)), "auth_revoked");
        assert_eq!(c(400, err(102, None)), "auth_revoked");
        assert_eq!(c(403, err(10, None)), "rejected");
        assert_eq!(c(403, err(200, None)), "rejected");
        assert_eq!(c(403, err(299, None)), "rejected");
        for code in [4, 17, 32, 613, 80001] {
            assert_eq!(c(400, err(code, None)), "rate_limited", "code {code}");
        }
        assert_eq!(c(400, err(368, None)), "rejected");
        assert_eq!(c(500, err(1, None)), "transient");
        assert_eq!(c(500, err(2, None)), "transient");
        assert_eq!(c(400, err(9, Some(2207001))), "transient");
        assert_eq!(c(400, err(100, None)), "rejected");
        assert_eq!(c(502, Value::Null), "transient");
        assert_eq!(c(429, Value::Null), "rate_limited");
        let revoked = classify(
            "Facebook",
            &reply(400, err(190, Some(463))),
            TokenKind::Page,
        );
        assert!(revoked.to_string().contains("reconnect"), "{revoked}");
        assert!(revoked.to_string().contains("#190/463"), "{revoked}");
    }

    #[test]
    fn throttles_wait_for_the_buc_estimate_in_minutes_or_five_minutes() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-business-use-case-usage",
            r#"{"112233":[{"type":"pages","call_count":100,"total_cputime":20,"total_time":30,"estimated_time_to_regain_access":7}]}"#
                .parse()
                .unwrap(),
        );
        headers.insert(
            "x-app-usage",
            r#"{"call_count":12,"total_cputime":5,"total_time":7}"#
                .parse()
                .unwrap(),
        );
        let usage = Usage::parse(&headers);
        assert_eq!(usage.regain_access, Some(Duration::from_secs(420)));
        assert_eq!(usage.max_percent, Some(100.0));
        let mut r = reply(400, err(80001, None));
        r.usage = usage;
        match classify("Facebook", &r, TokenKind::Page) {
            ConnectorError::RateLimited { retry_after, .. } => {
                assert_eq!(retry_after, Duration::from_secs(420))
            }
            other => panic!("{other:?}"),
        }
        let r = reply(403, err(4, None));
        match classify("Facebook", &r, TokenKind::Page) {
            ConnectorError::RateLimited { retry_after, .. } => {
                assert_eq!(retry_after, DEFAULT_THROTTLE)
            }
            other => panic!("{other:?}"),
        }
        let now = Utc::now();
        assert_eq!(
            usage.pause_until(now),
            Some(now + chrono::Duration::seconds(420))
        );
        assert_eq!(Usage::default().pause_until(now), None);
        // Garbage headers are ignored.
        let mut bad = HeaderMap::new();
        bad.insert("x-business-use-case-usage", "not json".parse().unwrap());
        assert_eq!(Usage::parse(&bad), Usage::default());
    }

    #[test]
    fn graph_times_parse_with_or_without_the_colon() {
        let t = Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap();
        assert_eq!(parse_time("2026-11-25T09:00:00+0000"), Some(t));
        assert_eq!(parse_time("2026-11-25T09:00:00Z"), Some(t));
        assert_eq!(parse_time("2026-11-25T10:00:00+01:00"), Some(t));
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn seen_lists_return_each_item_once_across_polls() {
        let mut seen = Seen::default();
        assert!(seen.is_new("a", 10), "nothing returned yet");
        seen.note("a", 10);
        seen.note("b", 12);
        seen.note("c", 12);
        assert!(!seen.is_new("a", 10));
        seen.settle();
        assert_eq!(seen.since, Some(12));
        assert_eq!(seen.ids.keys().collect::<Vec<_>>(), ["b", "c"]);
        assert!(!seen.is_new("a", 10), "older than the newest returned");
        assert!(!seen.is_new("b", 12));
        assert!(seen.is_new("d", 12), "same time, not returned yet");
        assert!(seen.is_new("e", 13));
        // Settling with nothing new changes nothing.
        let before = seen.clone();
        seen.settle();
        assert_eq!(seen, before);
        let json = serde_json::to_string(&seen).unwrap();
        assert_eq!(serde_json::from_str::<Seen>(&json).unwrap(), seen);
        assert_eq!(serde_json::to_string(&Seen::default()).unwrap(), "{}");
    }

    #[test]
    fn paging_reads_the_after_cursor_and_the_next_page() {
        let body = json!({"data": [], "paging": {"cursors": {"before": "QQ", "after": "Wg"}, "next": "https://graph/x?after=Wg"}});
        assert_eq!(
            Paging::of(&body),
            Paging {
                after: Some("Wg".into()),
                next: Some("https://graph/x?after=Wg".into())
            }
        );
        assert_eq!(Paging::of(&json!({"data": []})), Paging::default());
    }

    #[test]
    fn texts_compare_across_line_endings() {
        assert!(same_text("a\r\nb ", "a\nb"));
        assert!(!same_text("a", "b"));
    }
}
