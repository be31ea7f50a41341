//! The outbox sender: claims due calls under a lease (so several instances
//! share the outbox and a crashed one's calls are taken over), POSTs each
//! signed, records the try, and schedules the next one.
//!
//! A call is `POST <url>` with the stored JSON body and the headers
//! `Content-Type: application/json`, `Herald-Event: <event>`,
//! `Herald-Delivery: <call id>` (the same on every try: receivers
//! deduplicate on it, as a call whose answer was lost is sent again) and
//! `Herald-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`,
//! `t` being the time of this try (receivers refuse stale ones). Redirects
//! are not followed.

use std::error::Error as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use reqwest::header::CONTENT_TYPE;
use sha2::Sha256;

use super::outbox::{self, Claim, TryResult};
use super::OutboxStatus;
use crate::config::WebhookSettings;
use crate::crypto::SecretKey;
use crate::db::{self, DbPool};

/// Calls claimed and sent together (all at once, so one lease covers them).
pub const BATCH: i64 = 16;
/// A lease lasts the call's timeout plus this, time enough to record the try.
const LEASE_MARGIN_S: i64 = 60;
/// How often a sender deletes the calls older than `keep_s`, how many at a
/// time (one transaction each), and how many transactions per run: a longer
/// backlog goes on at the next runs, between sends.
const PURGE_EVERY: Duration = Duration::from_secs(3_600);
const PURGE_BATCH: i64 = 1_000;
const PURGE_BATCHES_PER_RUN: usize = 10;
/// Characters of the receiver's answer quoted in an error.
const BODY_EXCERPT_CHARS: usize = 200;
/// Longest stored error.
const ERROR_CHARS: usize = 400;

pub const USER_AGENT: &str = concat!("Herald/", env!("CARGO_PKG_VERSION"));

/// The `Herald-Signature` value: `t=<timestamp>,v1=<lowercase hex
/// HMAC-SHA256 of "<timestamp>.<body>" keyed with the secret>`.
///
/// A receiver recomputes `v1` from the raw body and the `t` it was given,
/// compares in constant time, and refuses a `t` more than a few minutes
/// from its own clock (a replayed call).
pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// Sends the outbox. Cheap to clone; clones share one "already running"
/// flag, so a periodic job that fires while a run is still going skips.
#[derive(Clone)]
pub struct Sender {
    pool: DbPool,
    key: SecretKey,
    http: reqwest::Client,
    settings: WebhookSettings,
    running: Arc<tokio::sync::Mutex<()>>,
    /// When this sender last deleted old calls (`None`: not yet).
    purged: Arc<std::sync::Mutex<Option<Instant>>>,
}

impl Sender {
    /// A sender with its own HTTP client: redirects off (a receiver cannot
    /// bounce a signed body elsewhere), each call bounded by `timeout_s`.
    pub fn new(pool: DbPool, key: SecretKey, settings: WebhookSettings) -> anyhow::Result<Self> {
        let timeout = Duration::from_secs(settings.timeout_s.max(1));
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .timeout(timeout)
            .build()?;
        Ok(Self {
            pool,
            key,
            http,
            settings,
            running: Arc::new(tokio::sync::Mutex::new(())),
            purged: Arc::new(std::sync::Mutex::new(None)),
        })
    }

    /// Send every call that is due now, [`BATCH`] at a time; returns how
    /// many were tried. Returns 0 at once when this sender is already running.
    pub async fn run_due(&self) -> anyhow::Result<usize> {
        let Ok(_running) = self.running.try_lock() else {
            return Ok(0);
        };
        let lease = chrono::Duration::seconds(
            i64::try_from(self.settings.timeout_s)
                .unwrap_or(3_600)
                .saturating_add(LEASE_MARGIN_S),
        );
        let mut tried = 0;
        loop {
            let now = db::now();
            let claims = db::blocking(&self.pool, move |conn| {
                outbox::claim_due(conn, now, now + lease, BATCH)
            })
            .await?;
            let claimed = claims.len();
            let results =
                futures_util::future::join_all(claims.into_iter().map(|c| self.send(c))).await;
            tried += claimed;
            // Every try is settled before an error is reported.
            results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
            if i64::try_from(claimed).unwrap_or(0) < BATCH {
                break;
            }
        }
        self.purge_if_due().await?;
        Ok(tried)
    }

    /// At most once per [`PURGE_EVERY`] (and on the first run), delete the
    /// settled calls older than `keep_s`, [`PURGE_BATCH`] per transaction and
    /// at most [`PURGE_BATCHES_PER_RUN`] transactions; when more are left,
    /// the next run goes on. Returns how many calls went.
    async fn purge_if_due(&self) -> anyhow::Result<usize> {
        {
            let mut purged = self.purged.lock().unwrap_or_else(|p| p.into_inner());
            if purged.is_some_and(|at| at.elapsed() < PURGE_EVERY) {
                return Ok(0);
            }
            *purged = Some(Instant::now());
        }
        // Bounded as the setting is (at most a year), so the sum never overflows.
        let keep_s = self.settings.keep_s.min(366 * 86_400);
        let keep = chrono::Duration::seconds(i64::try_from(keep_s).unwrap_or(0));
        let mut deleted = 0;
        let mut more_left = false;
        for _ in 0..PURGE_BATCHES_PER_RUN {
            let now = db::now();
            let before = now - keep;
            let gone = db::blocking(&self.pool, move |conn| {
                outbox::purge_settled(conn, before, now, PURGE_BATCH)
            })
            .await?;
            deleted += gone;
            more_left = i64::try_from(gone).unwrap_or(0) == PURGE_BATCH;
            if !more_left {
                break;
            }
        }
        if more_left {
            *self.purged.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
        if deleted > 0 {
            tracing::info!(
                deleted,
                keep_s = self.settings.keep_s,
                "old webhook calls deleted"
            );
        }
        Ok(deleted)
    }

    /// Make one call and record it.
    async fn send(&self, claim: Claim) -> anyhow::Result<()> {
        let result = self.call(&claim).await;
        let (id, webhook_id, event) = (claim.row.id, claim.row.webhook_id, claim.row.event);
        let (retry_s, give_up_s) = (self.settings.retry_s, self.settings.give_up_s);
        let error = result.error.clone();
        let call = id.clone();
        let status = db::blocking(&self.pool, move |conn| {
            outbox::settle(conn, &call, &result, retry_s, give_up_s)
        })
        .await?;
        match (status, error) {
            (OutboxStatus::Delivered, _) => {
                tracing::debug!(webhook_id, call = id, event, "webhook call delivered")
            }
            (status, Some(error)) => tracing::warn!(
                webhook_id,
                call = id,
                event,
                status = status.as_str(),
                error,
                "webhook call failed"
            ),
            (status, None) => {
                tracing::debug!(
                    webhook_id,
                    call = id,
                    status = status.as_str(),
                    "webhook call settled"
                )
            }
        }
        Ok(())
    }

    /// POST the call once; never fails, the outcome is in the result.
    async fn call(&self, claim: &Claim) -> TryResult {
        let at = db::now();
        let secret = self
            .key
            .open(&claim.sealed_secret, &claim.row.webhook_id)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok());
        let Some(secret) = secret else {
            return TryResult {
                at,
                status: None,
                error: Some(
                    "the webhook's secret does not open with this HERALD_SECRET_KEY; nothing was sent"
                        .into(),
                ),
                duration_ms: 0,
            };
        };
        let timestamp = at.and_utc().timestamp();
        let started = Instant::now();
        let sent = self
            .http
            .post(&claim.url)
            .header(CONTENT_TYPE, "application/json")
            .header("Herald-Event", &claim.row.event)
            .header("Herald-Delivery", &claim.row.id)
            .header(
                "Herald-Signature",
                signature(&secret, timestamp, &claim.row.payload),
            )
            .body(claim.row.payload.clone())
            .send()
            .await;
        let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        match sent {
            Ok(response) => {
                let status = response.status();
                let error = if status.is_success() {
                    None
                } else {
                    Some(describe_refusal(response).await)
                };
                TryResult {
                    at,
                    status: Some(status.as_u16()),
                    error,
                    duration_ms,
                }
            }
            Err(error) => TryResult {
                at,
                status: None,
                error: Some(describe_error(error, self.settings.timeout_s)),
                duration_ms,
            },
        }
    }
}

/// A non-2xx answer in words, with the start of its body.
async fn describe_refusal(mut response: reqwest::Response) -> String {
    let status = response.status();
    let mut text = match status.as_u16() {
        300..=399 => format!(
            "HTTP {status}: redirects are not followed; point the webhook at the final address"
        ),
        410 => format!("HTTP {status}: the receiver wants no more calls"),
        _ => format!("HTTP {status}"),
    };
    // Read no more than a little of the body: it is only quoted.
    let mut body = Vec::new();
    while body.len() < BODY_EXCERPT_CHARS * 4 {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    let excerpt: String = String::from_utf8_lossy(&body)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(BODY_EXCERPT_CHARS)
        .collect();
    if !excerpt.is_empty() {
        text.push_str(": ");
        text.push_str(&excerpt);
    }
    text
}

/// A failed request in words, without its URL (which may hold a token).
fn describe_error(error: reqwest::Error, timeout_s: u64) -> String {
    if error.is_timeout() {
        return format!("no answer within {timeout_s} s");
    }
    let prefix = if error.is_connect() {
        "could not connect"
    } else {
        "the request failed"
    };
    let error = error.without_url();
    let mut text = format!("{prefix}: {error}");
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text.chars().take(ERROR_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_an_independently_computed_vector() {
        // Expected values computed with Python's standard library:
        //   python3 -c 'import hmac,hashlib; print(hmac.new(
        //     b"herald-test-secret-0123456789",
        //     b"1767225600." + b"{\"event\":\"delivery.published\",\"id\":\"0190\"}",
        //     hashlib.sha256).hexdigest())'
        assert_eq!(
            signature(
                "herald-test-secret-0123456789",
                1_767_225_600,
                r#"{"event":"delivery.published","id":"0190"}"#
            ),
            "t=1767225600,v1=999669625c19e42a050ad9cc776f9fec0eb44c108e6e2e4da9170c6306bad148"
        );
        // The same with UTF-8 in the secret and the body (both hashed as UTF-8 bytes):
        //   hmac.new("sécret-ünïcode-1234".encode(),
        //     "1767225600.{\"text\":\"Ça va ✓\"}".encode(), hashlib.sha256).hexdigest()
        assert_eq!(
            signature(
                "sécret-ünïcode-1234",
                1_767_225_600,
                r#"{"text":"Ça va ✓"}"#
            ),
            "t=1767225600,v1=a8fdf1a9f83869a6bbf226c2706b2274eaebd5903d185039c82324f1f9ddb45e"
        );
    }

    #[test]
    fn the_timestamp_and_the_secret_change_the_signature() {
        let body = r#"{"id":"x"}"#;
        let base = signature("0123456789abcdef", 1_000, body);
        assert_ne!(base, signature("0123456789abcdef", 1_001, body));
        assert_ne!(base, signature("0123456789abcdeF", 1_000, body));
        assert_ne!(base, signature("0123456789abcdef", 1_000, r#"{"id":"y"}"#));
    }
}
