//! Bluesky connector (shared/platforms.md §2): an app-password session kept
//! in the account's credentials, posts made with `com.atproto.repo.createRecord`
//! under a record key Herald chose (the delivery's TID), and reconciliation
//! with `com.atproto.repo.getRecord` on that key.
//!
//! Sessions: `createSession` runs only when no session is stored, or when the
//! refresh token is dead. An access token that fails as expired (400 or 401
//! `ExpiredToken`, or any other sign that it no longer works) is renewed under
//! the account's credentials lock, and only if it is still the stored one: of
//! many concurrent publications of one account, one refreshes and the others
//! reuse its tokens. Each call is retried once with the renewed session.
//!
//! Duplicates cannot happen: a retry with the same record key fails with
//! "Record already exists", which the connector confirms with `getRecord` and
//! reports as the post it already made.
//!
//! `remote_id` is the post's `at://` URI. A reply (a later part of a thread)
//! needs strong refs (uri + cid) of its root and parent: the connector reads
//! the parent with `getRecord`, takes its cid, and copies the root from the
//! parent's own `reply.root` (the parent is the root when it answers nothing),
//! as the docs say; `ReplyTarget::root_id` is therefore not needed.
//! Images are downloaded, uploaded with `uploadBlob` (raw bytes) and embedded
//! as `app.bsky.embed.images` with their alt text (at most 4, 1,000,000 bytes
//! each). `delete` is `deleteRecord` (a record already gone is fine); `check`
//! is `getSession`.
//!
//! Replies: `app.bsky.feed.getPostThread` on the first part, through the PDS
//! (which proxies `app.bsky.*` calls to the AppView), with the deepest
//! `depth` the lexicon allows and no parents: every reply at any depth,
//! replies to later parts included, in one answer (the method has no
//! pagination). The account's own posts (by DID) and Herald's parts are
//! left out; deleted or blocked replies (`#notFoundPost`, `#blockedPost`)
//! are skipped. The thread is a whole snapshot each time, so the cursor is a
//! [`SnapshotCursor`] over the AppView's `indexedAt`. Answering a reply
//! (`answers_reply`) is an ordinary reply: the parent is the public's post,
//! its cid read with `getRecord` from its own repo, and the root copied from
//! its `reply.root` (our first part).
//!
//! When the PDS cannot serve the thread because no AppView is configured
//! for feeds (501 `MethodNotImplemented`, or 400/404 `MethodNotImplemented`
//! or `XRPCNotSupported`), that poll reads the account's notifications
//! instead (`app.bsky.notification.listNotifications?reasons=reply`, the way
//! the docs recommend for one account), with the same session handling.
//! A notification is ours when the reply's `reply.root` is the first part or
//! its `reasonSubject` is one of our parts; the account's own posts and
//! Herald's parts are left out, and a reply is mapped as in the thread. Only
//! the replies the AppView notifies are found this way: a reply to someone
//! else's reply, only if the AppView notifies the authors above its parent.
//! Pages of 100 are read newest first, following the cursor down to what the
//! last poll covered, and a bit further: the AppView sorts a notification by
//! the earlier of `createdAt` and indexing time, so a reply from a client
//! whose clock is behind lands below newer ones. That window (15 minutes, at
//! most 500 notifications) is read again each poll; a digest of our replies
//! in it tells whether anything arrived there late, in which case the whole
//! window is handed back. A poll reads at most 10 pages; a longer backlog is
//! read by the next polls from the AppView's cursor, before anything newer.
//! The cursor (`n:`…, `NoticeCursor`) is ignored by the thread path, as a
//! thread cursor is by the notification path: after a switch, replies are
//! handed back again rather than lost (the store keeps each once).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use linkify::{LinkFinder, LinkKind};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::connector::{
    answered, clip, download_image, found_or_rejected, reset_instant, retry_after_seconds,
    send_call, wait_for_reset,
};
use super::mastodon::SnapshotCursor;
use super::{
    AccountSession, Connector, ConnectorError, Credentials, FetchedReply, MediaItem, Post,
    Published, ReplyPage, ReplyQuery, ReplyTarget,
};

const DEFAULT_BASE_URL: &str = "https://bsky.social";
const POST_COLLECTION: &str = "app.bsky.feed.post";
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(60);
/// How long a refused login is answered from memory (same account, same
/// identifier and app password), so a queue of posts cannot burn the
/// account's `createSession` budget.
const REFUSED_LOGIN_MEMORY: Duration = Duration::from_secs(600);
/// Longest server message quoted in an error.
const MAX_MESSAGE: usize = 300;
/// `app.bsky.embed.images`: at most 4 images of at most 1,000,000 bytes.
const MAX_IMAGES: usize = 4;
const MAX_IMAGE_BYTES: usize = 1_000_000;
/// `getPostThread`'s deepest `depth` (lexicon: 0 to 1000, default 6).
const THREAD_DEPTH: &str = "1000";
/// `listNotifications`' largest `limit` (lexicon: 1 to 100, default 50).
const NOTIFICATION_PAGE: &str = "100";
/// Pages of notifications one poll reads; the next poll goes on from there.
const MAX_NOTIFICATION_PAGES: usize = 10;
/// The most notifications a poll reads again below the last top (half the
/// pages), so that a busy account's next poll still reaches it.
const NOTIFICATION_WINDOW: usize = 500;
/// How far below what the last poll covered the next one reads again, in
/// minutes. The AppView sorts a notification by the earlier of the reply's
/// `createdAt` and its indexing time, so a reply from a client whose clock
/// is behind lands below newer ones already read.
const NOTIFICATION_OVERLAP_MINUTES: i64 = 15;

/// Publishes to Bluesky (any PDS; `https://bsky.social` unless the account
/// names another base URL). Requests are bounded by the shared client's
/// timeout (`HERALD_PUBLISH_TIMEOUT_S`); a `createRecord` that times out is an
/// `Unknown` outcome.
#[derive(Clone)]
pub struct Bluesky {
    http: reqwest::Client,
    /// Per account id: the last refused login, shared by every clone.
    refused_logins: Arc<Mutex<HashMap<String, RefusedLogin>>>,
}

struct RefusedLogin {
    /// SHA-256 of the base URL, identifier and app password that were refused.
    fingerprint: [u8; 32],
    at: Instant,
    error: ConnectorError,
}

impl Bluesky {
    pub fn new(http: reqwest::Client) -> Self {
        Self {
            http,
            refused_logins: Arc::default(),
        }
    }
}

impl Connector for Bluesky {
    async fn publish(
        &self,
        account: &AccountSession,
        post: &Post,
    ) -> Result<Published, ConnectorError> {
        let base = base_url(account);
        if post.media.len() > MAX_IMAGES {
            return Err(ConnectorError::Rejected {
                message: format!(
                    "{} images: Bluesky allows at most {MAX_IMAGES} on one post",
                    post.media.len()
                ),
                status: None,
            });
        }
        let mut record = post_record(post, Utc::now());
        if let Some(target) = &post.reply_to {
            record["reply"] = self.reply_refs(account, &base, target).await?;
        }
        if !post.media.is_empty() {
            record["embed"] = self.image_embed(account, &base, &post.media).await?;
        }
        let call = Call::CreateRecord {
            rkey: &post.idempotency_key,
            record: &record,
        };
        let (reply, session) = self.call_with_session(account, &base, &call).await?;
        if reply.status == 200 {
            return published(&reply, &session).ok_or_else(|| ConnectorError::Unknown {
                message: "Bluesky accepted the post but its answer had no record URI".into(),
            });
        }
        if is_duplicate(&reply) {
            // An earlier attempt made the record: that post is the result.
            let found = self.find(account, &base, &post.idempotency_key).await?;
            return found_or_rejected(found, reply.describe(), reply.status);
        }
        Err(classify(&reply, Utc::now()))
    }

    async fn reconcile(
        &self,
        account: &AccountSession,
        post: &Post,
    ) -> Result<Option<Published>, ConnectorError> {
        self.find(account, &base_url(account), &post.idempotency_key)
            .await
    }

    /// `deleteRecord` on the post's repo and record key. Deleting a record
    /// that is already gone succeeds on the PDS; `RecordNotFound` is also fine.
    async fn delete(
        &self,
        account: &AccountSession,
        remote_id: &str,
    ) -> Result<(), ConnectorError> {
        let (repo, rkey) =
            post_uri_parts(remote_id.trim()).ok_or_else(|| ConnectorError::Rejected {
                message: format!("not a Bluesky post URI: {remote_id}"),
                status: None,
            })?;
        let base = base_url(account);
        let call = Call::DeleteRecord { repo, rkey };
        let (reply, _) = self.call_with_session(account, &base, &call).await?;
        if reply.status == 200 || reply.error == "RecordNotFound" {
            return Ok(());
        }
        Err(classify(&reply, Utc::now()))
    }

    /// `getSession` with the access token (logging in or refreshing first,
    /// as publishing does).
    async fn check(&self, account: &AccountSession) -> Result<(), ConnectorError> {
        let base = base_url(account);
        let (reply, _) = self
            .call_with_session(account, &base, &Call::GetSession)
            .await?;
        if reply.status == 200 {
            return Ok(());
        }
        Err(classify(&reply, Utc::now()))
    }

    /// `getPostThread` on the first part (or, where the PDS has no feed
    /// AppView, the account's reply notifications): the replies not by the
    /// account, oldest first, those the cursor has not covered.
    async fn replies(
        &self,
        account: &AccountSession,
        query: &ReplyQuery,
    ) -> Result<ReplyPage, ConnectorError> {
        let root = query.root_id.trim();
        if post_uri_parts(root).is_none() {
            return Err(ConnectorError::Rejected {
                message: format!("not a Bluesky post URI: {root}"),
                status: None,
            });
        }
        let base = base_url(account);
        let (reply, session) = self
            .call_with_session(account, &base, &Call::GetPostThread { uri: root })
            .await?;
        if feed_appview_missing(&reply) {
            return self.notification_replies(account, &base, query).await;
        }
        if reply.status != 200 {
            if reply.error == "NotFound" {
                return Err(ConnectorError::Rejected {
                    message: format!(
                        "the post no longer exists on Bluesky ({})",
                        reply.describe()
                    ),
                    status: Some(reply.status),
                });
            }
            return Err(classify(&reply, Utc::now()));
        }
        let mut found = Vec::new();
        if let Some(replies) = reply.body["thread"]["replies"].as_array() {
            collect_replies(replies, &mut found);
        }
        let found = found
            .into_iter()
            .filter(|(did, _, reply)| {
                did != &session.did && !query.own_ids.contains(&reply.remote_id)
            })
            .map(|(_, key, reply)| (key, reply))
            .collect();
        // A notification cursor says nothing about the thread.
        let cursor = query.cursor.as_deref().filter(|c| !NoticeCursor::is_one(c));
        Ok(SnapshotCursor::select(found, cursor))
    }
}

impl Bluesky {
    /// The replies among the account's `reply` notifications, from where
    /// the cursor says the last poll stopped (see the module doc).
    async fn notification_replies(
        &self,
        account: &AccountSession,
        base: &str,
        query: &ReplyQuery,
    ) -> Result<ReplyPage, ConnectorError> {
        // Nothing indexed before the post went out (less the overlap) answers it.
        let start = query.published_at - overlap();
        match query.cursor.as_deref().and_then(NoticeCursor::parse) {
            Some(NoticeCursor::Behind {
                top,
                window,
                floor,
                resume,
            }) => match self.walk(account, base, query, Some(&resume), floor).await {
                Ok(walked) => Ok(walked.backlog_page(top, window, floor)),
                // The AppView no longer takes its own cursor: read down
                // from the newest again.
                Err(ConnectorError::Rejected { .. }) => {
                    let walked = self.walk(account, base, query, None, floor).await?;
                    Ok(walked.top_down_page(None, floor, start))
                }
                Err(error) => Err(error),
            },
            Some(NoticeCursor::Caught { top, window }) => {
                let walked = self.walk(account, base, query, None, window.from).await?;
                Ok(walked.top_down_page(Some((top, window)), window.from, start))
            }
            // First poll, or a thread cursor: everything since the post.
            None => {
                let walked = self.walk(account, base, query, None, start).await?;
                Ok(walked.top_down_page(None, start, start))
            }
        }
    }

    /// Read notification pages from `from` (the newest without it) until
    /// one indexed at or before `stop`, the end, or the page limit.
    async fn walk(
        &self,
        account: &AccountSession,
        base: &str,
        query: &ReplyQuery,
        from: Option<&str>,
        stop: DateTime<Utc>,
    ) -> Result<Walked, ConnectorError> {
        let mut cursor = from.map(str::to_string);
        let mut walked = Walked::default();
        let mut read = 0usize;
        for _ in 0..MAX_NOTIFICATION_PAGES {
            let call = Call::ListNotifications {
                cursor: cursor.as_deref(),
            };
            let (reply, session) = self.call_with_session(account, base, &call).await?;
            if reply.status != 200 {
                return Err(notification_failure(&reply));
            }
            let page = reply.body["notifications"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            let mut reached = false;
            for notice in page {
                let at = timestamp(&notice["indexedAt"]);
                if at.is_some_and(|at| at <= stop) {
                    reached = true;
                    continue;
                }
                if let Some(at) = at {
                    read += 1;
                    if read == NOTIFICATION_WINDOW {
                        walked.nth = Some(at);
                    }
                    walked.newest = walked.newest.max(Some(at));
                    walked.lowest = Some(walked.lowest.map_or(at, |low| low.min(at)));
                }
                if let Some(found) = our_reply(notice, query, &session.did) {
                    walked.found.push(found);
                }
            }
            match reply.body["cursor"].as_str().filter(|c| !c.is_empty()) {
                Some(next) if !reached && !page.is_empty() && Some(next) != cursor.as_deref() => {
                    cursor = Some(next.to_string());
                }
                _ => return Ok(walked),
            }
        }
        walked.resume = cursor;
        Ok(walked)
    }
}

/// What one walk down the notifications found.
#[derive(Debug, Default)]
struct Walked {
    /// Our replies.
    found: Vec<Notice>,
    /// The newest and the oldest `indexedAt` of the notifications read.
    newest: Option<DateTime<Utc>>,
    lowest: Option<DateTime<Utc>>,
    /// The `indexedAt` of the [`NOTIFICATION_WINDOW`]th notification read.
    nth: Option<DateTime<Utc>>,
    /// The AppView's cursor of the next page, when the page limit stopped
    /// the walk first.
    resume: Option<String>,
}

/// One reply found among the notifications.
#[derive(Debug)]
struct Notice {
    /// The notification's `indexedAt`, when readable.
    at: Option<DateTime<Utc>>,
    /// The reply's share of a [`Window`] digest.
    hash: u64,
    /// Sort key, as in the thread.
    key: String,
    reply: FetchedReply,
}

/// The notifications the next poll reads again: those indexed after `from`
/// and up to the cursor's top, of which our replies sum to `digest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    from: DateTime<Utc>,
    digest: u64,
}

impl Walked {
    /// A walk from the newest notification down to `stop`, after a poll
    /// that read everything down to `previous`'s window (when there is
    /// one): the replies that window does not already account for.
    fn top_down_page(
        self,
        previous: Option<(DateTime<Utc>, Window)>,
        stop: DateTime<Utc>,
        start: DateTime<Utc>,
    ) -> ReplyPage {
        let Some(top) = self.newest.max(previous.map(|(top, _)| top)) else {
            return reply_page(self.found, None);
        };
        // The window goes back the overlap, but holds no more than this
        // walk read, and no more than NOTIFICATION_WINDOW notifications.
        let mut from = (top - overlap()).max(start).max(stop);
        from = from.max(self.nth.unwrap_or(from));
        if self.resume.is_some() {
            from = from.max(self.lowest.unwrap_or(from));
        }
        let window = Window {
            from,
            digest: digest_between(&self.found, from, top),
        };
        let Walked {
            mut found, resume, ..
        } = self;
        if let Some(resume) = resume {
            let cursor = NoticeCursor::Behind {
                top,
                window,
                floor: stop,
                resume,
            };
            return reply_page(found, Some(cursor));
        }
        if let Some((old_top, old)) = previous {
            // Replies seen before are dropped only if the old window is
            // exactly as it was: a late arrival in it (a client whose clock
            // is behind) hands the whole window back.
            if digest_between(&found, old.from, old_top) == old.digest {
                found.retain(|n| n.at.is_none_or(|at| at > old_top));
            }
        }
        reply_page(found, Some(NoticeCursor::Caught { top, window }))
    }

    /// A walk that went on below `top` after a poll stopped at the page
    /// limit: everything it found is new.
    fn backlog_page(self, top: DateTime<Utc>, window: Window, floor: DateTime<Utc>) -> ReplyPage {
        let cursor = match self.resume {
            Some(resume) => NoticeCursor::Behind {
                top,
                window,
                floor,
                resume,
            },
            None => NoticeCursor::Caught { top, window },
        };
        reply_page(self.found, Some(cursor))
    }
}

/// The replies oldest first (by `created_at`, then key), and the cursor.
fn reply_page(mut found: Vec<Notice>, cursor: Option<NoticeCursor>) -> ReplyPage {
    found.sort_by(|a, b| {
        a.reply
            .created_at
            .cmp(&b.reply.created_at)
            .then_with(|| a.key.cmp(&b.key))
    });
    ReplyPage {
        replies: found.into_iter().map(|n| n.reply).collect(),
        cursor: cursor.map(|c| c.to_string()),
    }
}

/// The overlap a notification poll reads again below the last top.
fn overlap() -> chrono::Duration {
    chrono::Duration::minutes(NOTIFICATION_OVERLAP_MINUTES)
}

/// The digest of the replies indexed after `from` and up to `to`: a sum of
/// per-reply hashes (order does not matter).
fn digest_between(found: &[Notice], from: DateTime<Utc>, to: DateTime<Utc>) -> u64 {
    found
        .iter()
        .filter(|n| n.at.is_some_and(|at| from < at && at <= to))
        .fold(0u64, |sum, n| sum.wrapping_add(n.hash))
}

/// A notification that is a reply to our post: its root is our first
/// part, or it answers one of our parts; not by the account, not ours.
fn our_reply(notice: &Value, query: &ReplyQuery, did: &str) -> Option<Notice> {
    if notice["reason"].as_str() != Some("reply") {
        return None;
    }
    let root = query.root_id.trim();
    let in_thread = notice["record"]["reply"]["root"]["uri"].as_str() == Some(root)
        || notice["reasonSubject"]
            .as_str()
            .is_some_and(|subject| query.own_ids.iter().any(|id| id.trim() == subject));
    if !in_thread {
        return None;
    }
    let (author, key, reply) = thread_reply(notice)?;
    if author == did || query.own_ids.iter().any(|id| id.trim() == reply.remote_id) {
        return None;
    }
    let digest = Sha256::digest(reply.remote_id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    Some(Notice {
        at: timestamp(&notice["indexedAt"]),
        hash: u64::from_be_bytes(first),
        key,
        reply,
    })
}

/// A failed `listNotifications`: as any call, except that a PDS with no
/// AppView at all cannot give replies by either method.
fn notification_failure(reply: &Reply) -> ConnectorError {
    if feed_appview_missing(reply) {
        return ConnectorError::Rejected {
            message: format!(
                "the PDS serves neither getPostThread nor listNotifications, so replies \
                 cannot be read ({})",
                reply.describe()
            ),
            status: Some(reply.status),
        };
    }
    classify(reply, Utc::now())
}

/// Where the notification path of [`Connector::replies`] stands between
/// polls, as `ReplyPage::cursor`: `n:` then the fields, space-separated.
#[derive(Debug, Clone, PartialEq, Eq)]
enum NoticeCursor {
    /// Read down to the window below `top` (the newest `indexedAt` seen).
    /// `n:<top> <window from> <window digest>`
    Caught { top: DateTime<Utc>, window: Window },
    /// A poll stopped at the page limit: the next one goes on from the
    /// AppView's `resume` cursor down to `floor`, then stands at `top`.
    /// `n:<top> <window from> <window digest> <floor> <resume>`
    Behind {
        top: DateTime<Utc>,
        window: Window,
        floor: DateTime<Utc>,
        resume: String,
    },
}

impl NoticeCursor {
    const PREFIX: &'static str = "n:";

    /// A cursor of the notification path (well formed or not).
    fn is_one(cursor: &str) -> bool {
        cursor.trim_start().starts_with(Self::PREFIX)
    }

    fn parse(cursor: &str) -> Option<NoticeCursor> {
        let rest = cursor.trim().strip_prefix(Self::PREFIX)?;
        let mut fields = rest.splitn(5, ' ');
        let time = |text: Option<&str>| timestamp(&Value::from(text?));
        let top = time(fields.next())?;
        let window = Window {
            from: time(fields.next())?,
            digest: u64::from_str_radix(fields.next()?, 16).ok()?,
        };
        match (fields.next(), fields.next()) {
            (None, _) => Some(NoticeCursor::Caught { top, window }),
            (floor, Some(resume)) if !resume.is_empty() => Some(NoticeCursor::Behind {
                top,
                window,
                floor: time(floor)?,
                resume: resume.to_string(),
            }),
            _ => None,
        }
    }
}

impl std::fmt::Display for NoticeCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let time = |t: &DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Micros, true);
        let (top, window) = match self {
            NoticeCursor::Caught { top, window } | NoticeCursor::Behind { top, window, .. } => {
                (top, window)
            }
        };
        write!(
            f,
            "{}{} {} {:016x}",
            Self::PREFIX,
            time(top),
            time(&window.from),
            window.digest
        )?;
        if let NoticeCursor::Behind { floor, resume, .. } = self {
            write!(f, " {} {resume}", time(floor))?;
        }
        Ok(())
    }
}

/// An RFC 3339 time of an XRPC answer, in UTC.
fn timestamp(value: &Value) -> Option<DateTime<Utc>> {
    value
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// The PDS cannot proxy `app.bsky.feed.*` calls: no AppView is configured
/// for feeds.
fn feed_appview_missing(reply: &Reply) -> bool {
    reply.status == 501
        || (matches!(reply.status, 400 | 404)
            && matches!(
                reply.error.as_str(),
                "MethodNotImplemented" | "XRPCNotSupported"
            ))
}

/// Walk a thread's `replies` (depth first): each post's author DID, its sort
/// key (`indexedAt`, then record key and URI) and the reply. Deleted and blocked replies,
/// which carry no post, end their branch.
fn collect_replies(replies: &[Value], out: &mut Vec<(String, String, FetchedReply)>) {
    for node in replies {
        let Some(post) = node.get("post").filter(|p| p.is_object()) else {
            continue;
        };
        if let Some(found) = thread_reply(post) {
            out.push(found);
        }
        if let Some(children) = node["replies"].as_array() {
            collect_replies(children, out);
        }
    }
}

/// One `postView` of a thread as a reply: its author's DID, its sort key,
/// and the reply (handle as author, `createdAt` unless it is later than the
/// AppView's `indexedAt`, the `bsky.app` URL).
fn thread_reply(post: &Value) -> Option<(String, String, FetchedReply)> {
    let uri = post["uri"].as_str().filter(|u| !u.is_empty())?;
    let did = post["author"]["did"].as_str().unwrap_or_default();
    let handle = post["author"]["handle"]
        .as_str()
        .filter(|h| !h.is_empty() && *h != "handle.invalid")
        .unwrap_or(did);
    let indexed_at = timestamp(&post["indexedAt"]);
    let created_at = match (timestamp(&post["record"]["createdAt"]), indexed_at) {
        (Some(created), Some(indexed)) => created.min(indexed),
        (created, indexed) => created.or(indexed).unwrap_or_else(Utc::now),
    };
    // Ties (same millisecond) fall to the record key, a TID the author's
    // client made from its clock.
    let key = format!(
        "{}|{}|{uri}",
        indexed_at
            .unwrap_or(created_at)
            .to_rfc3339_opts(SecondsFormat::Micros, true),
        rkey_of(uri).unwrap_or_default()
    );
    let reply = FetchedReply {
        remote_id: uri.to_string(),
        parent_id: post["record"]["reply"]["parent"]["uri"]
            .as_str()
            .map(str::to_string),
        author: handle.to_string(),
        text: post["record"]["text"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        created_at,
        url: rkey_of(uri).map(|rkey| post_url(handle, rkey)),
    };
    Some((did.to_string(), key, reply))
}

/// The session fields stored in the account's credentials.
const ACCESS_JWT: &str = "access_jwt";
const REFRESH_JWT: &str = "refresh_jwt";
const DID: &str = "did";
const HANDLE: &str = "handle";

#[derive(Debug, Clone)]
struct Session {
    access: String,
    did: String,
    handle: Option<String>,
}

impl Session {
    fn stored(credentials: &Credentials) -> Option<Session> {
        Some(Session {
            access: credentials.get(ACCESS_JWT)?.to_string(),
            did: credentials.get(DID)?.to_string(),
            handle: credentials.get(HANDLE).map(str::to_string),
        })
    }
}

/// The XRPC calls made with an access token.
enum Call<'a> {
    CreateRecord {
        rkey: &'a str,
        record: &'a Value,
    },
    GetRecord {
        rkey: &'a str,
    },
    /// A post of any repo (the parent of a reply).
    GetRecordOf {
        repo: &'a str,
        rkey: &'a str,
    },
    UploadBlob {
        bytes: &'a [u8],
        content_type: &'a str,
    },
    DeleteRecord {
        repo: &'a str,
        rkey: &'a str,
    },
    GetSession,
    /// `app.bsky.feed.getPostThread` of a post, as deep as allowed.
    GetPostThread {
        uri: &'a str,
    },
    /// `app.bsky.notification.listNotifications` of replies, a full page
    /// from `cursor` (the newest without one).
    ListNotifications {
        cursor: Option<&'a str>,
    },
}

/// An XRPC answer: status, body, the error name and message of a failure,
/// and the rate-limit headers.
#[derive(Debug, Clone, Default)]
struct Reply {
    status: u16,
    body: Value,
    error: String,
    message: String,
    limits: RateHeaders,
}

impl Reply {
    /// "400 InvalidRequest: …", never longer than a few hundred characters.
    fn describe(&self) -> String {
        let message = clip(&self.message, MAX_MESSAGE);
        if self.error.is_empty() {
            answered("Bluesky", self.status, &message)
        } else {
            answered(
                "Bluesky",
                format!("{} {}", self.status, self.error),
                &message,
            )
        }
    }
}

/// The `RateLimit-*` headers (epoch-second reset) and `Retry-After`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct RateHeaders {
    remaining: Option<u64>,
    reset: Option<DateTime<Utc>>,
    retry_after: Option<Duration>,
}

impl RateHeaders {
    fn parse(headers: &reqwest::header::HeaderMap, now: DateTime<Utc>) -> Self {
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        Self {
            remaining: text("ratelimit-remaining").and_then(|v| v.trim().parse().ok()),
            reset: text("ratelimit-reset").and_then(|v| reset_instant(v, now)),
            retry_after: retry_after_seconds(text("retry-after")),
        }
    }
}

/// How long to wait after a 429: until `RateLimit-Reset` (at least 1 s),
/// else `Retry-After`, else a minute.
fn retry_after(limits: &RateHeaders, now: DateTime<Utc>) -> Duration {
    wait_for_reset(limits.reset, limits.retry_after, now, DEFAULT_RETRY_AFTER)
}

impl Bluesky {
    /// Make `call` with the stored session (logging in first if there is
    /// none); if the access token no longer works, renew the session once
    /// and repeat the call once.
    async fn call_with_session(
        &self,
        account: &AccountSession,
        base: &str,
        call: &Call<'_>,
    ) -> Result<(Reply, Session), ConnectorError> {
        let session = self.session(account, base).await?;
        let reply = self.execute(base, call, &session).await?;
        if !needs_new_session(&reply) {
            return Ok((reply, session));
        }
        let session = self.renew_session(account, base, &session.access).await?;
        let reply = self.execute(base, call, &session).await?;
        if needs_new_session(&reply) {
            return Err(classify(&reply, Utc::now()));
        }
        Ok((reply, session))
    }

    async fn execute(
        &self,
        base: &str,
        call: &Call<'_>,
        session: &Session,
    ) -> Result<Reply, ConnectorError> {
        let (request, is_write) = match call {
            Call::CreateRecord { rkey, record } => (
                self.http
                    .post(xrpc_url(base, "com.atproto.repo.createRecord"))
                    .json(&json!({
                        "repo": session.did,
                        "collection": POST_COLLECTION,
                        "rkey": rkey,
                        "record": record,
                    })),
                true,
            ),
            Call::GetRecord { rkey } => (
                self.http
                    .get(xrpc_url(base, "com.atproto.repo.getRecord"))
                    .query(&[
                        ("repo", session.did.as_str()),
                        ("collection", POST_COLLECTION),
                        ("rkey", rkey),
                    ]),
                false,
            ),
            Call::GetRecordOf { repo, rkey } => (
                self.http
                    .get(xrpc_url(base, "com.atproto.repo.getRecord"))
                    .query(&[
                        ("repo", *repo),
                        ("collection", POST_COLLECTION),
                        ("rkey", rkey),
                    ]),
                false,
            ),
            Call::UploadBlob {
                bytes,
                content_type,
            } => (
                self.http
                    .post(xrpc_url(base, "com.atproto.repo.uploadBlob"))
                    .header(reqwest::header::CONTENT_TYPE, *content_type)
                    .body(bytes.to_vec()),
                false,
            ),
            // Deleting twice is harmless: a failure on the way can be retried.
            Call::DeleteRecord { repo, rkey } => (
                self.http
                    .post(xrpc_url(base, "com.atproto.repo.deleteRecord"))
                    .json(&json!({
                        "repo": repo,
                        "collection": POST_COLLECTION,
                        "rkey": rkey,
                    })),
                false,
            ),
            Call::GetSession => (
                self.http
                    .get(xrpc_url(base, "com.atproto.server.getSession")),
                false,
            ),
            Call::GetPostThread { uri } => (
                self.http
                    .get(xrpc_url(base, "app.bsky.feed.getPostThread"))
                    .query(&[
                        ("uri", *uri),
                        ("depth", THREAD_DEPTH),
                        ("parentHeight", "0"),
                    ]),
                false,
            ),
            Call::ListNotifications { cursor } => {
                let mut query = vec![("reasons", "reply"), ("limit", NOTIFICATION_PAGE)];
                if let Some(cursor) = cursor {
                    query.push(("cursor", cursor));
                }
                (
                    self.http
                        .get(xrpc_url(base, "app.bsky.notification.listNotifications"))
                        .query(&query),
                    false,
                )
            }
        };
        self.send(request.bearer_auth(&session.access), is_write)
            .await
    }

    /// Send a request and read its answer. Only a post (`is_write`) can
    /// have an unknown outcome; any other request that fails on the way
    /// is transient.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        is_write: bool,
    ) -> Result<Reply, ConnectorError> {
        let answer = send_call(request, is_write).await?;
        let status = answer.status;
        let limits = RateHeaders::parse(&answer.headers, Utc::now());
        let bytes = answer.bytes;
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let text = |name: &str| {
            body.get(name)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        Ok(Reply {
            status,
            error: text("error"),
            message: text("message"),
            body,
            limits,
        })
    }

    /// The stored session, or a new one from the app password. The lock is
    /// held while logging in, so concurrent publications log in once.
    async fn session(
        &self,
        account: &AccountSession,
        base: &str,
    ) -> Result<Session, ConnectorError> {
        let mut credentials = account.credentials.lock().await;
        match Session::stored(&credentials) {
            Some(session) => Ok(session),
            None => self.login(account, base, &mut credentials).await,
        }
    }

    /// Replace a session whose access token `failed`: if another task has
    /// already replaced it, use theirs; else refresh; if the refresh token is
    /// dead, log in once with the app password.
    async fn renew_session(
        &self,
        account: &AccountSession,
        base: &str,
        failed: &str,
    ) -> Result<Session, ConnectorError> {
        let mut credentials = account.credentials.lock().await;
        if let Some(session) = Session::stored(&credentials) {
            if session.access != failed {
                return Ok(session);
            }
        }
        if let Some(refresh) = credentials.get(REFRESH_JWT).map(str::to_string) {
            let request = self
                .http
                .post(xrpc_url(base, "com.atproto.server.refreshSession"))
                .bearer_auth(refresh);
            let reply = self.send(request, false).await?;
            if reply.status == 200 {
                return store_session(&mut credentials, &reply.body).ok_or_else(unreadable_session);
            }
            if !refresh_token_is_dead(&reply) {
                return Err(classify_session_failure(&reply));
            }
            credentials.remove(ACCESS_JWT);
            credentials.remove(REFRESH_JWT);
        }
        self.login(account, base, &mut credentials).await
    }

    /// `createSession` with the identifier and app password the admin gave.
    /// A refusal is remembered for a while: the same credentials are not
    /// tried again by the next publication of the account.
    async fn login(
        &self,
        account: &AccountSession,
        base: &str,
        credentials: &mut Credentials,
    ) -> Result<Session, ConnectorError> {
        let (Some(identifier), Some(password)) = (
            credentials.get("identifier"),
            credentials.get("app_password"),
        ) else {
            return Err(ConnectorError::AuthRevoked {
                message: "the account has no identifier or app password; reconnect the account"
                    .into(),
                status: None,
            });
        };
        let fingerprint: [u8; 32] = Sha256::new()
            .chain_update(base)
            .chain_update([0])
            .chain_update(identifier)
            .chain_update([0])
            .chain_update(password)
            .finalize()
            .into();
        if let Some(error) = self.refused_before(&account.id, &fingerprint) {
            return Err(error);
        }
        let request = self
            .http
            .post(xrpc_url(base, "com.atproto.server.createSession"))
            .json(&json!({"identifier": identifier, "password": password}));
        let reply = self.send(request, false).await?;
        if reply.status != 200 {
            let error = classify_session_failure(&reply);
            if matches!(error, ConnectorError::AuthRevoked { .. }) {
                self.remember_refusal(&account.id, fingerprint, &error);
            }
            return Err(error);
        }
        store_session(credentials, &reply.body).ok_or_else(unreadable_session)
    }

    fn refused_before(&self, account_id: &str, fingerprint: &[u8; 32]) -> Option<ConnectorError> {
        let refused = self
            .refused_logins
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        refused
            .get(account_id)
            .filter(|r| &r.fingerprint == fingerprint && r.at.elapsed() < REFUSED_LOGIN_MEMORY)
            .map(|r| r.error.clone())
    }

    fn remember_refusal(&self, account_id: &str, fingerprint: [u8; 32], error: &ConnectorError) {
        let mut refused = self
            .refused_logins
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        refused.retain(|_, r| r.at.elapsed() < REFUSED_LOGIN_MEMORY);
        refused.insert(
            account_id.to_string(),
            RefusedLogin {
                fingerprint,
                at: Instant::now(),
                error: error.clone(),
            },
        );
    }

    /// The `reply` of a record answering `target.parent_id`: the parent's
    /// strong ref from `getRecord`, and the root copied from the parent's own
    /// `reply.root` (or the parent itself when it is a top-level post).
    async fn reply_refs(
        &self,
        account: &AccountSession,
        base: &str,
        target: &ReplyTarget,
    ) -> Result<Value, ConnectorError> {
        let parent_uri = target.parent_id.trim();
        let (repo, rkey) = post_uri_parts(parent_uri).ok_or_else(|| ConnectorError::Rejected {
            message: format!("the post to answer is not a Bluesky post URI: {parent_uri}"),
            status: None,
        })?;
        let (reply, _) = self
            .call_with_session(account, base, &Call::GetRecordOf { repo, rkey })
            .await?;
        if reply.error == "RecordNotFound" {
            return Err(ConnectorError::Rejected {
                message: format!("the post to answer no longer exists on Bluesky: {parent_uri}"),
                status: Some(reply.status),
            });
        }
        if reply.status != 200 {
            return Err(classify(&reply, Utc::now()));
        }
        let parent = strong_ref(&reply.body).ok_or_else(|| ConnectorError::Transient {
            message: "Bluesky returned the post to answer without its uri and cid".into(),
            status: Some(200),
        })?;
        let root = reply
            .body
            .get("value")
            .and_then(|v| v.get("reply"))
            .and_then(|r| r.get("root"))
            .and_then(strong_ref)
            .unwrap_or_else(|| parent.clone());
        Ok(json!({"root": root, "parent": parent}))
    }

    /// Download and upload every image; the `app.bsky.embed.images` embed.
    async fn image_embed(
        &self,
        account: &AccountSession,
        base: &str,
        media: &[MediaItem],
    ) -> Result<Value, ConnectorError> {
        let mut images = Vec::with_capacity(media.len());
        for (index, item) in media.iter().enumerate() {
            let number = index + 1;
            let image =
                download_image(&self.http, item, number, MAX_IMAGE_BYTES, "Bluesky").await?;
            let call = Call::UploadBlob {
                bytes: &image.bytes,
                content_type: &image.content_type,
            };
            let (reply, _) = self.call_with_session(account, base, &call).await?;
            if reply.status != 200 {
                return Err(classify(&reply, Utc::now()));
            }
            let blob = reply
                .body
                .get("blob")
                .filter(|b| b.is_object())
                .cloned()
                .ok_or_else(|| ConnectorError::Transient {
                    message: format!("Bluesky stored image {number} but returned no blob"),
                    status: Some(200),
                })?;
            images.push(json!({"image": blob, "alt": item.alt.as_deref().unwrap_or("")}));
        }
        Ok(json!({"$type": "app.bsky.embed.images", "images": images}))
    }

    /// Look the post up by its record key: `Some` if it exists.
    async fn find(
        &self,
        account: &AccountSession,
        base: &str,
        rkey: &str,
    ) -> Result<Option<Published>, ConnectorError> {
        let (reply, session) = self
            .call_with_session(account, base, &Call::GetRecord { rkey })
            .await?;
        if reply.status == 200 {
            return published(&reply, &session).map(Some).ok_or_else(|| {
                ConnectorError::Transient {
                    message: "Bluesky returned the record without its URI".into(),
                    status: Some(200),
                }
            });
        }
        if reply.error == "RecordNotFound" {
            return Ok(None);
        }
        Err(match classify(&reply, Utc::now()) {
            // A lookup changes nothing: whatever it hit can be tried again.
            ConnectorError::Unknown { message } => ConnectorError::Transient {
                message,
                status: Some(reply.status),
            },
            other => other,
        })
    }
}

/// Store the tokens of a `createSession`/`refreshSession` answer.
fn store_session(credentials: &mut Credentials, body: &Value) -> Option<Session> {
    let field = |name: &str| body.get(name).and_then(Value::as_str);
    let (access, refresh, did) = (field("accessJwt")?, field("refreshJwt")?, field("did")?);
    credentials.set(ACCESS_JWT, access);
    credentials.set(REFRESH_JWT, refresh);
    credentials.set(DID, did);
    if let Some(handle) = field("handle") {
        credentials.set(HANDLE, handle);
    }
    Some(Session {
        access: access.to_string(),
        did: did.to_string(),
        handle: field("handle").map(str::to_string),
    })
}

fn unreadable_session() -> ConnectorError {
    ConnectorError::Transient {
        message: "Bluesky's session answer had no tokens".into(),
        status: Some(200),
    }
}

fn base_url(account: &AccountSession) -> String {
    account
        .base_url
        .as_deref()
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .unwrap_or(DEFAULT_BASE_URL)
        .trim_end_matches('/')
        .to_string()
}

fn xrpc_url(base: &str, nsid: &str) -> String {
    format!("{base}/xrpc/{nsid}")
}

/// The `app.bsky.feed.post` record for `post`, created at `now`.
fn post_record(post: &Post, now: DateTime<Utc>) -> Value {
    let mut record = json!({
        "$type": POST_COLLECTION,
        "text": post.text,
        "createdAt": now.to_rfc3339_opts(SecondsFormat::Millis, true),
    });
    if let Some(language) = post.language.as_deref().filter(|l| !l.trim().is_empty()) {
        record["langs"] = json!([language.trim()]);
    }
    let facets = link_facets(&post.text);
    if !facets.is_empty() {
        record["facets"] = Value::Array(facets);
    }
    record
}

/// The post a `createRecord` or `getRecord` answer names.
fn published(reply: &Reply, session: &Session) -> Option<Published> {
    let uri = reply.body.get("uri").and_then(Value::as_str)?;
    let rkey = rkey_of(uri)?;
    let author = session.handle.as_deref().unwrap_or(&session.did);
    Some(Published {
        remote_id: uri.to_string(),
        remote_url: Some(post_url(author, rkey)),
        pause_until: match reply.limits.remaining {
            Some(0) => reply.limits.reset,
            _ => None,
        },
    })
}

/// `{uri, cid}` of a `getRecord` answer or a stored strong ref.
fn strong_ref(value: &Value) -> Option<Value> {
    let uri = value.get("uri").and_then(Value::as_str)?;
    let cid = value.get("cid").and_then(Value::as_str)?;
    (!uri.is_empty() && !cid.is_empty()).then(|| json!({"uri": uri, "cid": cid}))
}

/// The repo (DID or handle) and record key of an `app.bsky.feed.post` URI.
fn post_uri_parts(uri: &str) -> Option<(&str, &str)> {
    let rest = uri.strip_prefix("at://")?;
    let mut parts = rest.split('/');
    let (repo, collection, rkey) = (parts.next()?, parts.next()?, parts.next()?);
    (parts.next().is_none()
        && !repo.is_empty()
        && collection == POST_COLLECTION
        && !rkey.is_empty())
    .then_some((repo, rkey))
}

/// The record key: the last segment of an `at://` URI.
fn rkey_of(uri: &str) -> Option<&str> {
    let rest = uri.strip_prefix("at://")?;
    let (_, rkey) = rest.rsplit_once('/')?;
    (!rkey.is_empty()).then_some(rkey)
}

/// `https://bsky.app/profile/<handle or did>/post/<rkey>`
fn post_url(author: &str, rkey: &str) -> String {
    format!("https://bsky.app/profile/{author}/post/{rkey}")
}

/// The access token no longer works: expired (400 or 401, PDS or AppView
/// form), unknown, or any other 401 except a takedown.
fn needs_new_session(reply: &Reply) -> bool {
    match reply.error.as_str() {
        "AccountTakedown" => false,
        "ExpiredToken" | "InvalidToken" => true,
        _ => reply.status == 401,
    }
}

/// `refreshSession` failed because the refresh token itself is expired,
/// revoked or unknown: only a new login helps.
fn refresh_token_is_dead(reply: &Reply) -> bool {
    matches!(reply.error.as_str(), "ExpiredToken" | "InvalidToken")
        || (reply.status == 401 && reply.error != "AccountTakedown")
}

/// The rkey is taken: an earlier attempt of this delivery made the record.
fn is_duplicate(reply: &Reply) -> bool {
    reply.status == 400
        && matches!(reply.error.as_str(), "InvalidRequest" | "InvalidSwap")
        && reply
            .message
            .to_ascii_lowercase()
            .contains("already exists")
}

/// A failed `createSession` or `refreshSession` (not a dead refresh token).
fn classify_session_failure(reply: &Reply) -> ConnectorError {
    let status = Some(reply.status);
    match (reply.status, reply.error.as_str()) {
        (429, _) | (500.., _) => classify(reply, Utc::now()),
        (_, "AccountTakedown") => classify(reply, Utc::now()),
        (_, "AuthFactorTokenRequired") => ConnectorError::AuthRevoked {
            message: "Bluesky asks for a sign-in code: give Herald an app password instead".into(),
            status,
        },
        (401, _) | (_, "AuthenticationRequired") => ConnectorError::AuthRevoked {
            message: "the app password was refused; reconnect the account".into(),
            status,
        },
        _ => ConnectorError::AuthRevoked {
            message: format!(
                "could not sign in ({}); reconnect the account",
                reply.describe()
            ),
            status,
        },
    }
}

/// Classify a failed call. An auth failure that reaches this point
/// happened with a renewed session.
fn classify(reply: &Reply, now: DateTime<Utc>) -> ConnectorError {
    let status = Some(reply.status);
    let message = reply.describe();
    if reply.error == "AccountTakedown" {
        return ConnectorError::AuthRevoked {
            message: format!("the account is taken down on Bluesky ({message})"),
            status,
        };
    }
    match reply.status {
        429 => ConnectorError::RateLimited {
            retry_after: retry_after(&reply.limits, now),
            message,
            status,
        },
        408 | 500.. => ConnectorError::Transient { message, status },
        _ if reply.error == "ExpiredToken" => ConnectorError::AuthExpired { message, status },
        _ if needs_new_session(reply) => ConnectorError::AuthRevoked { message, status },
        _ => ConnectorError::Rejected { message, status },
    }
}

/// Link facets for every web address in `text`, the way the Bluesky app
/// makes them: an `http(s)://` URL, or a bare domain with a known top-level
/// domain (linked as `https://…`), that starts the text or follows
/// whitespace or `(`. Offsets are UTF-8 byte offsets.
pub fn link_facets(text: &str) -> Vec<Value> {
    let mut finder = LinkFinder::new();
    finder.kinds(&[LinkKind::Url]);
    finder.url_must_have_scheme(false);
    finder
        .links(text)
        .filter(|link| {
            text[..link.start()]
                .chars()
                .next_back()
                .is_none_or(|c| c.is_whitespace() || c == '(')
        })
        .filter_map(|link| {
            let found = link.as_str();
            let uri = if has_web_scheme(found) {
                found.to_string()
            } else if !found.contains("://") && is_linkable_domain(found) {
                format!("https://{found}")
            } else {
                return None;
            };
            Some(json!({
                "index": {"byteStart": link.start(), "byteEnd": link.end()},
                "features": [{"$type": "app.bsky.richtext.facet#link", "uri": uri}],
            }))
        })
        .collect()
}

fn has_web_scheme(url: &str) -> bool {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// A bare address the Bluesky app links: its host is ASCII letters and
/// digits in dot-separated labels (starting with a letter) and ends in a
/// known top-level domain.
fn is_linkable_domain(found: &str) -> bool {
    let host = found
        .split(['/', '?', '#', ':'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let mut labels = host.split('.');
    let first_ok = labels
        .next()
        .is_some_and(|l| l.starts_with(|c: char| c.is_ascii_alphabetic()));
    let all_ok = host
        .split('.')
        .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric()));
    let tld = host.rsplit('.').next().unwrap_or_default();
    first_ok && all_ok && host.contains('.') && is_known_tld(tld)
}

/// Every country-code TLD, and the generic ones a public statement is likely
/// to use. The app checks the full IANA list; a rarer generic TLD is still
/// linked when written with `https://`.
fn is_known_tld(tld: &str) -> bool {
    const COUNTRY: &str =
        "ac ad ae af ag ai al am ao aq ar as at au aw ax az ba bb bd be bf bg bh bi \
        bj bm bn bo br bs bt bv bw by bz ca cc cd cf cg ch ci ck cl cm cn co cr cu cv cw cx cy cz \
        de dj dk dm do dz ec ee eg er es et eu fi fj fk fm fo fr ga gb gd ge gf gg gh gi gl gm gn \
        gp gq gr gs gt gu gw gy hk hm hn hr ht hu id ie il im in io iq ir is it je jm jo jp ke kg \
        kh ki km kn kp kr kw ky kz la lb lc li lk lr ls lt lu lv ly ma mc md me mg mh mk ml mm mn \
        mo mp mq mr ms mt mu mv mw mx my mz na nc ne nf ng ni nl no np nr nu nz om pa pe pf pg ph \
        pk pl pm pn pr ps pt pw py qa re ro rs ru rw sa sb sc sd se sg sh si sj sk sl sm sn so sr \
        ss st su sv sx sy sz tc td tf tg th tj tk tl tm tn to tr tt tv tw tz ua ug uk us uy uz va \
        vc ve vg vi vn vu wf ws ye yt za zm zw";
    const GENERIC: &str = "com org net edu gov mil int info biz name pro mobi aero coop museum \
        app dev page site online website web blog news social media live link cloud tech digital \
        network world global city town community health care help support center services \
        gouv bund paris berlin london nyc tokyo earth zone today one";
    tld.len() >= 2
        && COUNTRY
            .split_ascii_whitespace()
            .chain(GENERIC.split_ascii_whitespace())
            .any(|known| known == tld)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn facet_spans(text: &str) -> Vec<(String, String)> {
        link_facets(text)
            .iter()
            .map(|f| {
                let start = f["index"]["byteStart"].as_u64().unwrap() as usize;
                let end = f["index"]["byteEnd"].as_u64().unwrap() as usize;
                let uri = f["features"][0]["uri"].as_str().unwrap().to_string();
                (text[start..end].to_string(), uri)
            })
            .collect()
    }

    #[test]
    fn facet_offsets_are_utf8_bytes_not_characters() {
        let text = "Évacuation 🚨 près du café: https://ville.example.fr/alerte?z=1 maintenant";
        let facets = link_facets(text);
        assert_eq!(facets.len(), 1);
        let start = facets[0]["index"]["byteStart"].as_u64().unwrap() as usize;
        let end = facets[0]["index"]["byteEnd"].as_u64().unwrap() as usize;
        // 3 accented letters (2 bytes) and one emoji (4 bytes) come before the URL.
        let chars_before = text.chars().take_while(|&c| c != 'h').count();
        assert_eq!(start, chars_before + 3 + 3);
        assert_eq!(&text[start..end], "https://ville.example.fr/alerte?z=1");
        assert_eq!(
            facets[0]["features"][0],
            json!({"$type": "app.bsky.richtext.facet#link", "uri": "https://ville.example.fr/alerte?z=1"})
        );
    }

    #[test]
    fn trailing_punctuation_and_closing_brackets_stay_out_of_the_link() {
        assert_eq!(
            facet_spans("Read https://example.com/a. Then (see https://example.org/b)!"),
            vec![
                (
                    "https://example.com/a".into(),
                    "https://example.com/a".into()
                ),
                (
                    "https://example.org/b".into(),
                    "https://example.org/b".into()
                ),
            ]
        );
        assert_eq!(
            facet_spans("Wiki: https://en.wikipedia.org/wiki/Flood_(disambiguation)"),
            vec![(
                "https://en.wikipedia.org/wiki/Flood_(disambiguation)".into(),
                "https://en.wikipedia.org/wiki/Flood_(disambiguation)".into()
            )]
        );
    }

    #[test]
    fn bare_domains_with_a_known_tld_link_as_https() {
        assert_eq!(
            facet_spans("Updates at city.gov/alerts and bbc.co.uk, not notes.txt or v1.2"),
            vec![
                ("city.gov/alerts".into(), "https://city.gov/alerts".into()),
                ("bbc.co.uk".into(), "https://bbc.co.uk".into()),
            ]
        );
    }

    #[test]
    fn only_web_links_after_a_space_or_bracket_are_linked() {
        assert!(link_facets("mail help@example.com or ftp://example.com/x").is_empty());
        assert!(link_facets("see:https://example.com").is_empty());
        assert_eq!(facet_spans("HTTPS://EXAMPLE.COM").len(), 1);
        assert!(link_facets("no links here").is_empty());
    }

    fn post(text: &str, language: Option<&str>) -> Post {
        let at = Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap();
        Post {
            delivery_id: "d".into(),
            statement_id: "s".into(),
            statement_version: 1,
            title: "t".into(),
            kind: "crisis".into(),
            text: text.into(),
            language: language.map(str::to_string),
            planned_at: at,
            idempotency_key: crate::platforms::connector::tid(at, 1),
            first_attempt_at: at,
            deadline: at + chrono::Duration::hours(2),
            ..Default::default()
        }
    }

    #[test]
    fn the_record_has_type_text_millisecond_utc_time_langs_and_facets() {
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap();
        let record = post_record(&post("Go to https://example.com", Some("en")), now);
        assert_eq!(record["$type"], "app.bsky.feed.post");
        assert_eq!(record["createdAt"], "2026-11-25T09:00:00.000Z");
        assert_eq!(record["langs"], json!(["en"]));
        assert_eq!(record["facets"].as_array().map(Vec::len), Some(1));
        let plain = post_record(&post("no link", None), now);
        assert!(plain.get("langs").is_none() && plain.get("facets").is_none());
    }

    #[test]
    fn post_uris_split_into_repo_and_record_key() {
        assert_eq!(
            post_uri_parts("at://did:plc:abc/app.bsky.feed.post/3kf2577exva2x"),
            Some(("did:plc:abc", "3kf2577exva2x"))
        );
        assert_eq!(
            post_uri_parts("at://did:plc:abc/app.bsky.feed.like/3k"),
            None
        );
        assert_eq!(post_uri_parts("at://did:plc:abc/app.bsky.feed.post/"), None);
        assert_eq!(
            post_uri_parts("at://did:plc:abc/app.bsky.feed.post/a/b"),
            None
        );
        assert_eq!(post_uri_parts("https://bsky.app/profile/x/post/y"), None);
        assert_eq!(
            strong_ref(&json!({"uri": "at://d/app.bsky.feed.post/k", "cid": "bafy", "value": {}})),
            Some(json!({"uri": "at://d/app.bsky.feed.post/k", "cid": "bafy"}))
        );
        assert_eq!(
            strong_ref(&json!({"uri": "at://d/app.bsky.feed.post/k"})),
            None
        );
    }

    #[test]
    fn post_urls_use_the_record_key_of_the_uri() {
        let uri = "at://did:plc:abc/app.bsky.feed.post/3kf2577exva2x";
        assert_eq!(rkey_of(uri), Some("3kf2577exva2x"));
        assert_eq!(rkey_of("https://x/y"), None);
        assert_eq!(
            post_url("alice.bsky.social", "3kf2577exva2x"),
            "https://bsky.app/profile/alice.bsky.social/post/3kf2577exva2x"
        );
    }

    #[test]
    fn rate_limit_headers_give_the_wait_and_the_pause() {
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap();
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("RateLimit-Remaining", "0".parse().unwrap());
        headers.insert(
            "RateLimit-Reset",
            (now.timestamp() + 90).to_string().parse().unwrap(),
        );
        let parsed = RateHeaders::parse(&headers, now);
        assert_eq!(parsed.remaining, Some(0));
        assert_eq!(parsed.reset, Some(now + chrono::Duration::seconds(90)));
        assert_eq!(retry_after(&parsed, now), Duration::from_secs(90));
        // A reset already past still waits a second; none at all waits a minute.
        let past = RateHeaders {
            reset: Some(now - chrono::Duration::seconds(5)),
            ..RateHeaders::default()
        };
        assert_eq!(retry_after(&past, now), Duration::from_secs(1));
        assert_eq!(
            retry_after(&RateHeaders::default(), now),
            DEFAULT_RETRY_AFTER
        );
        let retry = RateHeaders {
            retry_after: Some(Duration::from_secs(30)),
            ..RateHeaders::default()
        };
        assert_eq!(retry_after(&retry, now), Duration::from_secs(30));
        // A draft-style delta is read as seconds from now.
        assert_eq!(
            reset_instant("120", now),
            Some(now + chrono::Duration::seconds(120))
        );
        assert_eq!(reset_instant("soon", now), None);
    }

    fn reply(status: u16, error: &str, message: &str) -> Reply {
        Reply {
            status,
            error: error.into(),
            message: message.into(),
            ..Reply::default()
        }
    }

    #[test]
    fn failures_are_classified_by_status_and_error_name() {
        let now = Utc::now();
        let class = |r: Reply| classify(&r, now).class();
        assert_eq!(class(reply(429, "RateLimitExceeded", "")), "rate_limited");
        assert_eq!(class(reply(502, "UpstreamFailure", "")), "transient");
        assert_eq!(
            class(reply(400, "ExpiredToken", "Token has expired")),
            "auth_expired"
        );
        assert_eq!(
            class(reply(401, "ExpiredToken", "Token has expired")),
            "auth_expired"
        );
        assert_eq!(class(reply(400, "InvalidToken", "")), "auth_revoked");
        assert_eq!(class(reply(401, "AuthMissing", "")), "auth_revoked");
        assert_eq!(class(reply(400, "AccountTakedown", "")), "auth_revoked");
        assert_eq!(
            class(reply(400, "InvalidRequest", "Record/text too long")),
            "rejected"
        );
        assert!(needs_new_session(&reply(400, "ExpiredToken", "")));
        assert!(needs_new_session(&reply(401, "ExpiredToken", "")));
        assert!(!needs_new_session(&reply(400, "InvalidRequest", "")));
        assert!(is_duplicate(&reply(
            400,
            "InvalidRequest",
            "Record already exists"
        )));
        assert!(!is_duplicate(&reply(
            400,
            "InvalidRequest",
            "Record/text too long"
        )));
    }

    #[test]
    fn session_failures_ask_for_a_reconnect_unless_they_are_temporary() {
        let refused = classify_session_failure(&reply(
            401,
            "AuthenticationRequired",
            "Invalid identifier or password",
        ));
        assert_eq!(
            refused,
            ConnectorError::AuthRevoked {
                message: "the app password was refused; reconnect the account".into(),
                status: Some(401),
            }
        );
        assert_eq!(
            classify_session_failure(&reply(429, "RateLimitExceeded", "")).class(),
            "rate_limited"
        );
        assert_eq!(
            classify_session_failure(&reply(503, "NotEnoughResources", "")).class(),
            "transient"
        );
        assert!(refresh_token_is_dead(&reply(
            400,
            "ExpiredToken",
            "Token has been revoked"
        )));
        assert!(!refresh_token_is_dead(&reply(400, "AccountTakedown", "")));
    }

    #[test]
    fn thread_replies_skip_deleted_and_blocked_posts_and_distrust_future_clocks() {
        let post = |uri: &str, handle: &str, created: &str, indexed: &str| {
            json!({
                "uri": uri,
                "cid": "bafy",
                "author": {"did": format!("did:plc:{handle}"), "handle": handle},
                "record": {
                    "text": format!("from {handle}"),
                    "createdAt": created,
                    "reply": {"parent": {"uri": "at://did:plc:me/app.bsky.feed.post/root"}},
                },
                "indexedAt": indexed,
            })
        };
        let replies = json!([
            {"$type": "app.bsky.feed.defs#notFoundPost", "uri": "at://x/app.bsky.feed.post/gone", "notFound": true},
            {"$type": "app.bsky.feed.defs#blockedPost", "uri": "at://x/app.bsky.feed.post/b", "blocked": true},
            {
                "$type": "app.bsky.feed.defs#threadViewPost",
                "post": post("at://did:plc:ann/app.bsky.feed.post/3a", "ann.test", "2030-01-01T00:00:00Z", "2026-01-01T09:00:00.000Z"),
                "replies": [{
                    "$type": "app.bsky.feed.defs#threadViewPost",
                    "post": post("at://did:plc:bo/app.bsky.feed.post/3b", "handle.invalid", "2026-01-01T08:59:00Z", "2026-01-01T09:01:00.000Z"),
                }],
            },
        ]);
        let mut out = Vec::new();
        collect_replies(replies.as_array().unwrap(), &mut out);
        assert_eq!(out.len(), 2);
        let (did, _, ann) = &out[0];
        assert_eq!(did, "did:plc:ann.test");
        assert_eq!(ann.author, "ann.test");
        assert_eq!(ann.text, "from ann.test");
        assert_eq!(
            ann.created_at,
            Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap(),
            "a createdAt in the future gives way to indexedAt"
        );
        assert_eq!(
            ann.parent_id.as_deref(),
            Some("at://did:plc:me/app.bsky.feed.post/root")
        );
        let (_, _, bo) = &out[1];
        assert_eq!(
            bo.author, "did:plc:handle.invalid",
            "an invalid handle falls back to the DID"
        );
        assert_eq!(
            bo.url.as_deref(),
            Some("https://bsky.app/profile/did:plc:handle.invalid/post/3b")
        );
    }

    #[test]
    fn a_pds_without_a_feed_appview_is_told_apart_from_other_failures() {
        assert!(feed_appview_missing(&reply(
            501,
            "MethodNotImplemented",
            ""
        )));
        assert!(feed_appview_missing(&reply(501, "", "")));
        assert!(feed_appview_missing(&reply(404, "XRPCNotSupported", "")));
        assert!(feed_appview_missing(&reply(
            400,
            "MethodNotImplemented",
            ""
        )));
        assert!(!feed_appview_missing(&reply(400, "NotFound", "")));
        assert!(!feed_appview_missing(&reply(404, "", "Not Found")));
        assert!(!feed_appview_missing(&reply(502, "UpstreamFailure", "")));
        assert!(!feed_appview_missing(&reply(429, "RateLimitExceeded", "")));
        assert_eq!(
            notification_failure(&reply(501, "MethodNotImplemented", "")).class(),
            "rejected"
        );
        assert_eq!(
            notification_failure(&reply(503, "NotEnoughResources", "")).class(),
            "transient"
        );
    }

    #[test]
    fn notice_cursors_round_trip_and_stay_apart_from_thread_cursors() {
        let at = |s: i64| Utc.timestamp_opt(1_790_000_000 + s, 123_456_000).unwrap();
        let window = Window {
            from: at(-900),
            digest: 0xfeed_0000_0000_0001,
        };
        let caught = NoticeCursor::Caught { top: at(0), window };
        let text = caught.to_string();
        assert!(
            text.starts_with("n:") && NoticeCursor::is_one(&text),
            "{text}"
        );
        assert_eq!(NoticeCursor::parse(&text), Some(caught));
        // The AppView's cursor is opaque: kept whole, spaces included.
        let behind = NoticeCursor::Behind {
            top: at(0),
            window,
            floor: at(-3600),
            resume: "1790000000000::3k2 x".into(),
        };
        assert_eq!(NoticeCursor::parse(&behind.to_string()), Some(behind));
        // A thread cursor is not one, and a notification cursor is never
        // taken for a thread cursor.
        let thread = "2026-11-25T09:00:00.000000Z|3kf|at://x 0123456789abcdef";
        assert_eq!(NoticeCursor::parse(thread), None);
        assert!(!NoticeCursor::is_one(thread));
        assert_eq!(NoticeCursor::parse("n:garbage"), None);
        assert_eq!(
            NoticeCursor::parse(&format!("{text} 2026-01-01T00:00:00Z")),
            None
        );
    }

    fn notice(uri: &str, did: &str, root: &str, subject: &str, indexed: &str) -> Value {
        json!({
            "uri": uri,
            "cid": "bafy",
            "author": {"did": did, "handle": format!("{}.test", &did[8..])},
            "reason": "reply",
            "reasonSubject": subject,
            "record": {
                "text": "hello",
                "createdAt": "2026-01-01T09:00:00.000Z",
                "reply": {"root": {"uri": root}, "parent": {"uri": subject}},
            },
            "isRead": false,
            "indexedAt": indexed,
        })
    }

    #[test]
    fn notifications_count_only_replies_in_our_thread_by_someone_else() {
        let root = "at://did:plc:me/app.bsky.feed.post/root";
        let part = "at://did:plc:me/app.bsky.feed.post/part2";
        let query = ReplyQuery {
            root_id: root.into(),
            own_ids: vec![root.into(), part.into()],
            ..ReplyQuery::default()
        };
        let at = "2026-01-01T09:00:01.000Z";
        let ours = |n: &Value| our_reply(n, &query, "did:plc:me").map(|n| n.reply);
        let alice = ours(&notice(
            "at://did:plc:ann/app.bsky.feed.post/a",
            "did:plc:ann",
            root,
            root,
            at,
        ))
        .unwrap();
        assert_eq!(alice.author, "ann.test");
        assert_eq!(alice.parent_id.as_deref(), Some(root));
        assert_eq!(
            alice.url.as_deref(),
            Some("https://bsky.app/profile/ann.test/post/a")
        );
        // Rooted elsewhere (a quote thread, say) but answering our part.
        assert!(ours(&notice(
            "at://did:plc:bo/app.bsky.feed.post/b",
            "did:plc:bo",
            "at://x/app.bsky.feed.post/r",
            part,
            at
        ))
        .is_some());
        // Another thread of ours; the account itself; one of our parts; a mention.
        let other = "at://did:plc:me/app.bsky.feed.post/other";
        assert!(ours(&notice(
            "at://did:plc:cy/app.bsky.feed.post/c",
            "did:plc:cy",
            other,
            other,
            at
        ))
        .is_none());
        assert!(ours(&notice(
            "at://did:plc:me/app.bsky.feed.post/d",
            "did:plc:me",
            root,
            root,
            at
        ))
        .is_none());
        assert!(ours(&notice(part, "did:plc:xx", root, root, at)).is_none());
        let mut mention = notice(
            "at://did:plc:ed/app.bsky.feed.post/e",
            "did:plc:ed",
            root,
            root,
            at,
        );
        mention["reason"] = json!("mention");
        assert!(ours(&mention).is_none());
    }

    #[test]
    fn a_late_reply_inside_the_window_hands_the_window_back() {
        let root = "at://did:plc:me/app.bsky.feed.post/root";
        let query = ReplyQuery {
            root_id: root.into(),
            own_ids: vec![root.into()],
            ..ReplyQuery::default()
        };
        let found = |specs: &[(&str, &str)]| Walked {
            found: specs
                .iter()
                .map(|(rkey, indexed)| {
                    let uri = format!("at://did:plc:ann/app.bsky.feed.post/{rkey}");
                    our_reply(
                        &notice(&uri, "did:plc:ann", root, root, indexed),
                        &query,
                        "did:plc:me",
                    )
                    .unwrap()
                })
                .collect(),
            newest: specs.iter().filter_map(|(_, t)| timestamp(&json!(t))).max(),
            ..Walked::default()
        };
        let start = timestamp(&json!("2026-01-01T08:00:00Z")).unwrap();
        let first = found(&[("a", "2026-01-01T09:00:00Z"), ("b", "2026-01-01T09:01:00Z")])
            .top_down_page(None, start, start);
        assert_eq!(first.replies.len(), 2);
        let Some(NoticeCursor::Caught { top, window }) =
            first.cursor.as_deref().and_then(NoticeCursor::parse)
        else {
            panic!("{first:?}")
        };
        assert_eq!(window.from, top - overlap(), "15 minutes back");

        // The same window and a newer reply: only the newer one.
        let next = found(&[
            ("a", "2026-01-01T09:00:00Z"),
            ("b", "2026-01-01T09:01:00Z"),
            ("c", "2026-01-01T09:02:00Z"),
        ])
        .top_down_page(Some((top, window)), window.from, start);
        let rkeys = |page: &ReplyPage| -> Vec<String> {
            page.replies
                .iter()
                .map(|r| rkey_of(&r.remote_id).unwrap().to_string())
                .collect()
        };
        assert_eq!(rkeys(&next), ["c"]);
        // A reply sorted into the old window (its author's clock is
        // behind): the whole window comes back, nothing is lost.
        let late = found(&[
            ("a", "2026-01-01T09:00:00Z"),
            ("z", "2026-01-01T09:00:30Z"),
            ("b", "2026-01-01T09:01:00Z"),
        ])
        .top_down_page(Some((top, window)), window.from, start);
        assert_eq!(late.replies.len(), 3);
    }

    #[test]
    fn long_server_messages_are_cut() {
        let long = "x".repeat(1000);
        let text = reply(400, "InvalidRequest", &long).describe();
        assert!(text.len() < 400, "{}", text.len());
        assert!(text.starts_with("Bluesky answered 400 InvalidRequest: xxx"));
    }
}
