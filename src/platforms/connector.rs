//! The contract between the dispatcher and a network (DESIGN §6).
//!
//! A connector turns one [`Post`] into one remote post and classifies every
//! failure so the dispatcher knows what to do next: wait (`RateLimited`),
//! retry with backoff (`Transient`), stop and ask an admin to reconnect
//! (`AuthRevoked`), give up (`Rejected`), or look the post up before doing
//! anything else (`Unknown`). Connectors never log credentials, and never
//! put them in an error message.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Platform;

/// Decrypted credentials of one account. `Debug` never prints values.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    values: BTreeMap<String, String>,
    changed: bool,
}

impl Credentials {
    pub fn new(values: BTreeMap<String, String>) -> Self {
        Self {
            values,
            changed: false,
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Store a value (a session token, say). Marks the credentials as changed,
    /// so the dispatcher seals and saves them after the call.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        if self.values.get(name) != Some(&value) {
            self.values.insert(name.to_string(), value);
            self.changed = true;
        }
    }

    pub fn remove(&mut self, name: &str) {
        if self.values.remove(name).is_some() {
            self.changed = true;
        }
    }

    /// Whether `set`/`remove` changed anything since the flag was last taken.
    pub fn changed(&self) -> bool {
        self.changed
    }

    /// Whether `set`/`remove` changed anything since the last call; resets the flag.
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    pub fn values(&self) -> &BTreeMap<String, String> {
        &self.values
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.values.keys()).finish()
    }
}

/// The account a post goes out with. One value per account is shared by all
/// concurrent publications of that account in this process, so a session
/// refresh (which rotates tokens) happens once, under the lock.
#[derive(Debug)]
pub struct AccountSession {
    pub id: String,
    pub platform: Platform,
    pub name: String,
    /// The account's base URL (self-hosted instance, PDS, fake server), if set.
    pub base_url: Option<String>,
    pub credentials: tokio::sync::Mutex<Credentials>,
}

impl AccountSession {
    pub fn new(
        id: &str,
        platform: Platform,
        name: &str,
        base_url: Option<&str>,
        credentials: Credentials,
    ) -> Self {
        Self {
            id: id.to_string(),
            platform,
            name: name.to_string(),
            base_url: base_url.map(str::to_string),
            credentials: tokio::sync::Mutex::new(credentials),
        }
    }
}

/// Where a part goes when it answers an earlier post: the rest of a thread,
/// or a correction. Ids are the connector's own `remote_id`s.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplyTarget {
    /// The first post of the thread (LinkedIn and Facebook comment on it).
    pub root_id: String,
    /// The post this one answers directly (X, Bluesky, Mastodon, Threads,
    /// Telegram reply to it).
    pub parent_id: String,
    /// `parent_id` is a reply from the public (a comment, as
    /// `Connector::replies` returned it), not one of Herald's posts: an
    /// answer from the follow-up queue. Facebook, Instagram and LinkedIn
    /// answer a comment differently from a post.
    pub answers_reply: bool,
}

/// What reply collection asks a network for: the replies to one published
/// post (and to its thread parts), newer than the last poll.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplyQuery {
    /// The post's `remote_id` (the first part of a thread).
    pub root_id: String,
    /// Every part's `remote_id`, the first included: Herald's own posts,
    /// which are not replies.
    pub own_ids: Vec<String>,
    /// What the previous poll returned as `ReplyPage::cursor`; `None` on the
    /// first poll.
    pub cursor: Option<String>,
    /// When the post went out.
    pub published_at: DateTime<Utc>,
}

/// One reply as the network shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchedReply {
    /// The network's id of the reply (unique per account).
    pub remote_id: String,
    /// The post or reply it answers, when the network says.
    pub parent_id: Option<String>,
    /// Handle (or display name where the network has no handle).
    pub author: String,
    /// Plain text (HTML already converted).
    pub text: String,
    pub created_at: DateTime<Utc>,
    pub url: Option<String>,
}

/// The replies found by one poll, and where the next poll starts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplyPage {
    pub replies: Vec<FetchedReply>,
    /// Stored and handed back as `ReplyQuery::cursor` next time; `None`
    /// keeps the previous cursor.
    pub cursor: Option<String>,
}

/// An image attached to a post.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MediaItem {
    /// Where the network (Instagram, Threads, Facebook) or the connector can
    /// fetch the image: a public `https` URL.
    pub url: String,
    /// Alternative text, kept wherever the network has a field for it.
    pub alt: Option<String>,
    /// `image/jpeg`, `image/png`, … when known.
    pub content_type: Option<String>,
}

/// One publication of one statement variant to one account. A thread is
/// published as one `Post` per part: part 0 first, then each later part
/// with `reply_to` set.
#[derive(Debug, Clone, Default)]
pub struct Post {
    pub delivery_id: String,
    pub statement_id: String,
    pub statement_version: i32,
    pub title: String,
    /// `crisis` or `routine`.
    pub kind: String,
    pub text: String,
    /// BCP-47 language tag of the text, such as `en` or `fr`.
    pub language: Option<String>,
    pub planned_at: DateTime<Utc>,
    /// Chosen before the first attempt and kept for every attempt of this
    /// delivery: the Mastodon `Idempotency-Key`, the Bluesky record key (a
    /// TID, see [`tid`]), the webhook's delivery key.
    pub idempotency_key: String,
    /// When the first attempt of this delivery started: reconciliation looks
    /// for the post from this instant on.
    pub first_attempt_at: DateTime<Utc>,
    /// Past this instant the post must not go out any more (`max_lateness_s`):
    /// reconciliation may then look the post up, never send it again.
    pub deadline: DateTime<Utc>,
    /// Which part of a thread this is (0 for the first, or only, part).
    pub part: usize,
    /// The earlier post this part answers (the rest of a thread, a correction).
    pub reply_to: Option<ReplyTarget>,
    /// Images to attach, in order.
    pub media: Vec<MediaItem>,
}

/// An account connected through OAuth: what the connector keeps of it.
#[derive(Debug, Clone, Default)]
pub struct Connected {
    /// The credentials to store (sealed): tokens, user or page ids.
    pub credentials: Credentials,
    /// The account's name on the network (`@handle`, Page name), for display.
    pub remote_name: Option<String>,
    /// When the access token stops working, if it does.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A post the network accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub remote_id: String,
    pub remote_url: Option<String>,
    /// The network said this account's budget is spent until then (rate-limit
    /// headers with nothing remaining): the dispatcher sends nothing more for
    /// the account before that instant.
    pub pause_until: Option<DateTime<Utc>>,
}

/// Why a call did not produce a post. `status` is the HTTP status, when one came back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectorError {
    /// Over the network's rate limit: try again after `retry_after`.
    #[error("rate limited: {message}")]
    RateLimited {
        retry_after: Duration,
        message: String,
        status: Option<u16>,
    },
    /// Worth retrying with backoff (5xx, connection refused before sending).
    #[error("transient failure: {message}")]
    Transient {
        message: String,
        status: Option<u16>,
    },
    /// The token expired and could not be refreshed within this call; retry.
    #[error("authorization expired: {message}")]
    AuthExpired {
        message: String,
        status: Option<u16>,
    },
    /// The credentials no longer work: an admin must reconnect the account.
    #[error("authorization revoked: {message}")]
    AuthRevoked {
        message: String,
        status: Option<u16>,
    },
    /// The network refused the post for good (validation, permissions).
    #[error("rejected: {message}")]
    Rejected {
        message: String,
        status: Option<u16>,
    },
    /// The request may have reached the network (timeout, connection dropped
    /// after sending): reconcile before any retry.
    #[error("outcome unknown: {message}")]
    Unknown { message: String },
}

impl ConnectorError {
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::RateLimited { status, .. }
            | Self::Transient { status, .. }
            | Self::AuthExpired { status, .. }
            | Self::AuthRevoked { status, .. }
            | Self::Rejected { status, .. } => *status,
            Self::Unknown { .. } => None,
        }
    }

    /// Short class name, stored with each attempt: `rate_limited`, `transient`, ...
    pub fn class(&self) -> &'static str {
        match self {
            Self::RateLimited { .. } => "rate_limited",
            Self::Transient { .. } => "transient",
            Self::AuthExpired { .. } => "auth_expired",
            Self::AuthRevoked { .. } => "auth_revoked",
            Self::Rejected { .. } => "rejected",
            Self::Unknown { .. } => "unknown",
        }
    }

    /// Classify a reqwest failure: a request that surely never left (bad URL,
    /// connection refused) is transient; anything after it may have been
    /// received (timeout, reset, unreadable body) is unknown.
    pub fn from_reqwest(error: &reqwest::Error) -> Self {
        let message = describe_reqwest(error);
        if error.is_builder() {
            Self::Rejected {
                message,
                status: None,
            }
        } else if error.is_connect() {
            Self::Transient {
                message,
                status: None,
            }
        } else {
            Self::Unknown { message }
        }
    }

    /// Classify a reqwest failure of one call: as [`Self::from_reqwest`], but
    /// a call that cannot have published anything (`is_write` false) is
    /// `Transient`, not `Unknown`.
    pub fn from_call(error: &reqwest::Error, is_write: bool) -> Self {
        let error = Self::from_reqwest(error);
        if is_write {
            error
        } else {
            error.retryable()
        }
    }

    /// For a call that changes nothing visible (a read, an upload, an
    /// idempotent call): an `Unknown` outcome is only `Transient`, since
    /// trying again is safe.
    pub fn retryable(self) -> Self {
        match self {
            Self::Unknown { message } => Self::Transient {
                message,
                status: None,
            },
            other => other,
        }
    }
}

/// One HTTP answer as it came: status, headers and body.
#[derive(Debug, Clone, Default)]
pub struct RawAnswer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub bytes: Vec<u8>,
}

/// Send `request` and read the whole answer. A failure on the way is
/// classified by [`ConnectorError::from_call`]: `Unknown` only for a write.
pub async fn send_call(
    request: reqwest::RequestBuilder,
    is_write: bool,
) -> Result<RawAnswer, ConnectorError> {
    let failed = |error: reqwest::Error| ConnectorError::from_call(&error, is_write);
    let response = request.send().await.map_err(failed)?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.map_err(failed)?;
    Ok(RawAnswer {
        status,
        headers,
        bytes: bytes.into(),
    })
}

/// A reqwest error as text, without the URL's query string (which could carry a token).
pub fn describe_reqwest(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else if error.is_body() || error.is_decode() {
        "could not read the response"
    } else if error.is_request() {
        "request failed"
    } else {
        "HTTP error"
    };
    match error.url() {
        Some(url) => format!(
            "{kind} ({}{})",
            url.host_str().unwrap_or(""),
            url.port().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        None => kind.to_string(),
    }
}

/// A Bluesky-style TID (timestamp identifier): 13 characters of base32-sortable
/// over 53 bits of microseconds since the epoch and 10 bits of clock id. Valid
/// as a record key, and sortable like the ids the network makes itself.
pub fn tid(at: DateTime<Utc>, clock_id: u16) -> String {
    const ALPHABET: &[u8; 32] = b"234567abcdefghijklmnopqrstuvwxyz";
    let micros = at.timestamp_micros().max(0) as u64 & ((1 << 53) - 1);
    let value = (micros << 10) | u64::from(clock_id & 0x3ff);
    let mut out = [0u8; 13];
    for (i, slot) in out.iter_mut().enumerate() {
        let shift = 5 * (12 - i);
        *slot = ALPHABET[((value >> shift) & 31) as usize];
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The idempotency key of part `part` of a thread whose first part has
/// `key`. Part 0 keeps the key; later parts get their own, derived so every
/// attempt of a part uses the same one. A TID key (Bluesky's record key)
/// stays a valid TID: its last character (clock-id bits) moves on by `part`.
pub fn part_key(key: &str, part: usize) -> String {
    const ALPHABET: &[u8; 32] = b"234567abcdefghijklmnopqrstuvwxyz";
    if part == 0 {
        return key.to_string();
    }
    let bytes = key.as_bytes();
    if bytes.len() == 13 && bytes.iter().all(|b| ALPHABET.contains(b)) {
        let last = ALPHABET.iter().position(|b| *b == bytes[12]).unwrap_or(0);
        let mut out = key[..12].to_string();
        out.push(ALPHABET[(last + part) % 32] as char);
        return out;
    }
    format!("{key}.{part}")
}

/// Parse a `Retry-After` header value given in seconds.
pub fn retry_after_seconds(value: Option<&str>) -> Option<Duration> {
    value?.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// After a refusal as a duplicate: the earlier post that made it, when it
/// was found; else the refusal stands (`Rejected`).
pub fn found_or_rejected(
    found: Option<Published>,
    message: String,
    status: u16,
) -> Result<Published, ConnectorError> {
    found.ok_or(ConnectorError::Rejected {
        message,
        status: Some(status),
    })
}

/// `text` cut to `max` characters, with `…` when something was cut.
pub fn clip(text: &str, max: usize) -> String {
    let mut out: String = text.chars().take(max).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

/// "{network} answered {what}", then ": {message}" when there is one.
pub fn answered(network: &str, what: impl std::fmt::Display, message: &str) -> String {
    if message.is_empty() {
        format!("{network} answered {what}")
    } else {
        format!("{network} answered {what}: {message}")
    }
}

/// Parse a rate-limit reset header given in Unix epoch seconds (X's
/// `x-rate-limit-reset`, Bluesky's `RateLimit-Reset`). A small value is read
/// as seconds from now, so a proxy that sends a delta does not become a wait
/// of zero.
pub fn reset_instant(value: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let seconds = value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)?;
    if seconds < 1_000_000_000.0 {
        return now.checked_add_signed(chrono::Duration::milliseconds((seconds * 1000.0) as i64));
    }
    DateTime::from_timestamp(seconds.ceil() as i64, 0)
}

/// How long to wait after a 429: until `reset` (at least a second), else
/// `retry_after` (at least a second), else `default`.
pub fn wait_for_reset(
    reset: Option<DateTime<Utc>>,
    retry_after: Option<Duration>,
    now: DateTime<Utc>,
    default: Duration,
) -> Duration {
    if let Some(reset) = reset {
        let wait = (reset - now).num_milliseconds().max(0) as u64;
        return Duration::from_millis(wait).max(Duration::from_secs(1));
    }
    retry_after.map_or(default, |d| d.max(Duration::from_secs(1)))
}

/// An id the API gives as a string, or as a number by a lenient server.
pub fn id_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The media type of an answer's `Content-Type` (no parameters, lower case).
pub fn media_type(headers: &reqwest::header::HeaderMap) -> Option<String> {
    headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
}

/// An image fetched from its `MediaItem::url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadedImage {
    pub bytes: Vec<u8>,
    /// `image/jpeg`, …: the item's own type, else sniffed from the bytes,
    /// else the server's `Content-Type`.
    pub content_type: String,
}

/// Download image number `number` (1-based, for messages) of a post, at most
/// `max_bytes` (more is `Rejected`: the network would refuse it). Failures
/// name the image by number, never by URL (a signed URL may carry a token).
/// Nothing is published by a download, so no failure is `Unknown`.
pub async fn download_image(
    http: &reqwest::Client,
    item: &MediaItem,
    number: usize,
    max_bytes: usize,
    network: &str,
) -> Result<DownloadedImage, ConnectorError> {
    let failed = |e: reqwest::Error| match ConnectorError::from_reqwest(&e) {
        ConnectorError::Rejected { .. } => ConnectorError::Rejected {
            message: format!("image {number} has an invalid URL"),
            status: None,
        },
        other => ConnectorError::Transient {
            message: format!(
                "could not download image {number}: {}",
                describe_reqwest(&e)
            ),
            status: other.status(),
        },
    };
    let too_big = |size: String| ConnectorError::Rejected {
        message: format!(
            "image {number} is {size} bytes: {network} accepts at most {max_bytes} bytes per image"
        ),
        status: None,
    };
    let mut response = http.get(&item.url).send().await.map_err(failed)?;
    let status = response.status();
    if !status.is_success() {
        let message = format!(
            "could not download image {number}: its address answered {}",
            status.as_u16()
        );
        return Err(match status.as_u16() {
            408 | 425 | 429 | 500..=599 => ConnectorError::Transient {
                message,
                status: None,
            },
            _ => ConnectorError::Rejected {
                message,
                status: None,
            },
        });
    }
    if let Some(length) = response.content_length() {
        if length > max_bytes as u64 {
            return Err(too_big(length.to_string()));
        }
    }
    let served_type = media_type(response.headers());
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(failed)? {
        bytes.extend_from_slice(&chunk);
        if bytes.len() > max_bytes {
            return Err(too_big(format!("more than {max_bytes}")));
        }
    }
    if bytes.is_empty() {
        return Err(ConnectorError::Rejected {
            message: format!("image {number} is empty"),
            status: None,
        });
    }
    let content_type = item
        .content_type
        .as_deref()
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .or_else(|| sniff_image_type(&bytes).map(str::to_string))
        .or(served_type)
        .unwrap_or_default();
    if !content_type.starts_with("image/") {
        return Err(ConnectorError::Rejected {
            message: format!("image {number} is not an image (type '{content_type}')"),
            status: None,
        });
    }
    Ok(DownloadedImage {
        bytes,
        content_type,
    })
}

/// The image type of `bytes` from their magic number (JPEG, PNG, GIF, WebP).
pub fn sniff_image_type(bytes: &[u8]) -> Option<&'static str> {
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

/// A fresh `multipart/form-data` boundary: `herald-` and 24 random letters
/// and digits.
pub fn multipart_boundary() -> String {
    format!(
        "herald-{}",
        rand::distributions::DistString::sample_string(
            &rand::distributions::Alphanumeric,
            &mut rand::thread_rng(),
            24
        )
    )
}

/// A `multipart/form-data` body with text fields and one file part
/// (`name`, `filename`, `content_type`, `bytes`).
pub fn multipart_body(
    boundary: &str,
    fields: &[(&str, &str)],
    file: (&str, &str, &str, &[u8]),
) -> Vec<u8> {
    let mut out = Vec::with_capacity(file.3.len() + 512);
    for (name, value) in fields {
        out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        out.extend_from_slice(
            format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
        );
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let (name, filename, content_type, bytes) = file;
    out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
    out.extend_from_slice(
        format!(
            "Content-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n"
        )
        .as_bytes(),
    );
    out.extend_from_slice(bytes);
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn tids_are_13_sortable_characters() {
        let a = tid(Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap(), 7);
        let b = tid(Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 1).unwrap(), 7);
        assert_eq!(a.len(), 13);
        assert!(a < b);
        // The first character of a TID is never above 'j' (top bit is 0).
        assert!(a.as_bytes()[0] <= b'j');
        assert!(a
            .bytes()
            .all(|c| b"234567abcdefghijklmnopqrstuvwxyz".contains(&c)));
    }

    #[test]
    fn credentials_debug_hides_values_and_tracks_changes() {
        let mut c = Credentials::new([("token".to_string(), "s3cret".to_string())].into());
        assert!(!format!("{c:?}").contains("s3cret"));
        assert!(!c.take_changed());
        c.set("token", "s3cret");
        assert!(!c.take_changed());
        c.set("token", "other");
        assert!(c.take_changed());
        assert!(!c.take_changed());
    }

    #[test]
    fn part_keys_are_stable_distinct_and_keep_tids_valid() {
        assert_eq!(part_key("abc", 0), "abc");
        assert_eq!(part_key("abc", 2), "abc.2");
        let t = tid(Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap(), 7);
        let keys: Vec<String> = (0..5).map(|p| part_key(&t, p)).collect();
        assert_eq!(keys[0], t);
        for k in &keys {
            assert_eq!(k.len(), 13);
            assert_eq!(&k[..12], &t[..12]);
        }
        let distinct: std::collections::HashSet<_> = keys.iter().collect();
        assert_eq!(distinct.len(), 5);
        assert_eq!(part_key(&t, 3), part_key(&t, 3));
    }

    #[test]
    fn retry_after_reads_seconds() {
        assert_eq!(
            retry_after_seconds(Some(" 30 ")),
            Some(Duration::from_secs(30))
        );
        assert_eq!(retry_after_seconds(Some("soon")), None);
        assert_eq!(retry_after_seconds(None), None);
    }
}
