//! Outbound webhooks: subscriptions and a signed, retried outbox.
//!
//! An admin subscribes a URL to some events (`routes.rs`). When one happens,
//! [`enqueue`] writes one outbox row per subscribed webhook inside the
//! transaction that records the event, with the exact JSON body to send, so
//! nothing is lost if Herald stops and a retry sends the same bytes. The
//! [`sender::Sender`] claims due rows under a lease, POSTs them signed
//! (`Herald-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`), and retries
//! with a doubling delay until `give_up_s` after the event.
//!
//! This file holds the types and the rules (pure, unit-tested); the queries
//! are in `store.rs` (webhooks) and `outbox.rs` (calls).

pub mod outbox;
pub mod routes;
pub mod sender;
pub mod store;

use std::time::Duration;

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::http::error::FieldError;

pub use outbox::{enqueue, enqueue_for_log};
pub use sender::{signature, Sender};

/// Shortest and longest signing secret accepted, in characters.
pub const SECRET_CHARS: std::ops::RangeInclusive<usize> = 16..=256;
/// The longest wait between two tries of one call.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(3_600);

/// What a webhook can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum WebhookEvent {
    /// A delivery was published on its network.
    #[serde(rename = "delivery.published")]
    DeliveryPublished,
    /// A delivery failed for good.
    #[serde(rename = "delivery.failed")]
    DeliveryFailed,
    /// A delivery was not published within its lateness window.
    #[serde(rename = "delivery.missed")]
    DeliveryMissed,
    /// A reply to a published post was collected.
    #[serde(rename = "reply.received")]
    ReplyReceived,
    /// A reply needs an answer.
    #[serde(rename = "reply.needs_response")]
    ReplyNeedsResponse,
    /// The share of negative replies went over the threshold.
    #[serde(rename = "replies.negative_spike")]
    RepliesNegativeSpike,
    /// A network refused an account's credentials: someone must reconnect it.
    #[serde(rename = "account.needs_reauth")]
    AccountNeedsReauth,
}

impl WebhookEvent {
    pub const ALL: [WebhookEvent; 7] = [
        WebhookEvent::DeliveryPublished,
        WebhookEvent::DeliveryFailed,
        WebhookEvent::DeliveryMissed,
        WebhookEvent::ReplyReceived,
        WebhookEvent::ReplyNeedsResponse,
        WebhookEvent::RepliesNegativeSpike,
        WebhookEvent::AccountNeedsReauth,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::DeliveryPublished => "delivery.published",
            Self::DeliveryFailed => "delivery.failed",
            Self::DeliveryMissed => "delivery.missed",
            Self::ReplyReceived => "reply.received",
            Self::ReplyNeedsResponse => "reply.needs_response",
            Self::RepliesNegativeSpike => "replies.negative_spike",
            Self::AccountNeedsReauth => "account.needs_reauth",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == text)
    }

    /// The event a publish-log action raises, for the actions that raise one
    /// (the log row is the payload). Reply events are enqueued by the reply
    /// code itself, with the reply as payload.
    pub fn from_log_action(action: &str) -> Option<Self> {
        match action {
            "delivery.published" => Some(Self::DeliveryPublished),
            "delivery.failed" => Some(Self::DeliveryFailed),
            "delivery.missed" => Some(Self::DeliveryMissed),
            "account.needs_reauth" => Some(Self::AccountNeedsReauth),
            "replies.negative_spike" => Some(Self::RepliesNegativeSpike),
            _ => None,
        }
    }

    fn names() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }
}

/// Where an outbox row stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutboxStatus {
    /// Not delivered yet; tried again at `next_attempt_at`.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Given up: the receiver answered 410 Gone, or `give_up_s` passed.
    Failed,
    /// The webhook was removed before the call went through.
    Cancelled,
}

impl OutboxStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::Delivered,
            Self::Failed,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// A webhook URL: absolute http(s) with a host and no user info; plain http
/// only to this machine (`localhost`, `127.0.0.1`, `::1`), since the body and
/// its signature would otherwise cross the network in clear.
pub fn validate_url(text: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(text).map_err(|e| {
        format!("is not an absolute URL ({e}); give one such as https://example.org/hooks/herald")
    })?;
    let local = match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip == std::net::Ipv4Addr::LOCALHOST,
        Some(url::Host::Ipv6(ip)) => ip == std::net::Ipv6Addr::LOCALHOST,
        None => return Err("must name a host".into()),
    };
    match url.scheme() {
        "https" => {}
        "http" if local => {}
        "http" => {
            return Err(
                "must use https (plain http is accepted only for localhost, 127.0.0.1 and ::1)"
                    .into(),
            )
        }
        other => return Err(format!("must be an https URL (got scheme '{other}')")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "must not carry a user name or password: receivers authenticate Herald by the signature"
                .into(),
        );
    }
    Ok(url)
}

/// The events of a subscription: at least one, each known, none twice.
/// Errors name `events` or `events[i]`.
pub fn validate_events(given: &[String]) -> Result<Vec<WebhookEvent>, Vec<FieldError>> {
    if given.is_empty() {
        return Err(vec![FieldError::new(
            "events",
            format!("must name at least one event: {}", WebhookEvent::names()),
        )]);
    }
    let mut events = Vec::with_capacity(given.len());
    let mut errors = Vec::new();
    for (i, name) in given.iter().enumerate() {
        match WebhookEvent::parse(name) {
            None => errors.push(FieldError::new(
                format!("events[{i}]"),
                format!(
                    "'{name}' is not an event; use one of: {}",
                    WebhookEvent::names()
                ),
            )),
            Some(event) if events.contains(&event) => errors.push(FieldError::new(
                format!("events[{i}]"),
                format!("'{name}' is listed twice"),
            )),
            Some(event) => events.push(event),
        }
    }
    if errors.is_empty() {
        Ok(events)
    } else {
        Err(errors)
    }
}

/// The signing secret: a string of 16 to 256 characters. The message never
/// quotes it.
pub fn validate_secret(given: &serde_json::Value) -> Result<String, String> {
    let serde_json::Value::String(secret) = given else {
        return Err("must be a string of 16 to 256 characters".into());
    };
    let n = secret.chars().count();
    if !SECRET_CHARS.contains(&n) {
        return Err(format!(
            "must be 16 to 256 characters (got {n}); use a long random value"
        ));
    }
    Ok(secret.clone())
}

/// What becomes of an outbox row after one try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Delivered,
    /// Try again at this instant.
    Retry(NaiveDateTime),
    Failed,
}

/// The rule after try number `attempts` (from 1) ended with HTTP `status`
/// (`None`: no answer): 2xx is delivered; 410 Gone gives up at once; anything
/// else waits `retry_s · 2^(attempts-1)` (at most an hour), unless
/// `give_up_s` after the event has passed. The last wait is cut short so
/// that one try happens at the give-up instant.
pub fn next_step(
    status: Option<u16>,
    attempts: i32,
    created_at: NaiveDateTime,
    now: NaiveDateTime,
    retry_s: u64,
    give_up_s: u64,
) -> Next {
    match status {
        Some(s) if (200..300).contains(&s) => return Next::Delivered,
        Some(410) => return Next::Failed,
        _ => {}
    }
    let give_up_at = created_at + seconds(give_up_s);
    if now >= give_up_at {
        return Next::Failed;
    }
    let retry_at = now
        + chrono::Duration::from_std(retry_delay(retry_s, attempts))
            .unwrap_or(chrono::Duration::hours(1));
    Next::Retry(retry_at.min(give_up_at))
}

/// `retry_s · 2^(attempts-1)`, at most [`MAX_RETRY_DELAY`].
pub fn retry_delay(retry_s: u64, attempts: i32) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1))
        .unwrap_or(0)
        .min(32);
    let delay = retry_s.saturating_mul(1u64 << doublings);
    Duration::from_secs(delay).min(MAX_RETRY_DELAY)
}

fn seconds(s: u64) -> chrono::Duration {
    chrono::Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 1_000))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_round_trip_through_text_and_serde() {
        for event in WebhookEvent::ALL {
            assert_eq!(WebhookEvent::parse(event.as_str()), Some(event));
            assert_eq!(serde_json::to_value(event).unwrap(), json!(event.as_str()));
        }
        assert_eq!(WebhookEvent::parse("delivery.scheduled"), None);
    }

    #[test]
    fn only_the_five_log_actions_raise_events() {
        let raised: Vec<_> = [
            "delivery.published",
            "delivery.failed",
            "delivery.missed",
            "account.needs_reauth",
            "replies.negative_spike",
            "reply.received",
            "delivery.claimed",
            "webhook.created",
        ]
        .into_iter()
        .filter_map(WebhookEvent::from_log_action)
        .map(WebhookEvent::as_str)
        .collect();
        assert_eq!(
            raised,
            [
                "delivery.published",
                "delivery.failed",
                "delivery.missed",
                "account.needs_reauth",
                "replies.negative_spike"
            ]
        );
    }

    #[test]
    fn urls_must_be_https_except_on_this_machine() {
        assert!(validate_url("https://hooks.example.org/herald?x=1").is_ok());
        for local in [
            "http://localhost:8080/h",
            "http://127.0.0.1:9/h",
            "http://[::1]:9/h",
        ] {
            assert!(validate_url(local).is_ok(), "{local}");
        }
        let error = validate_url("http://hooks.example.org/herald").unwrap_err();
        assert!(
            error.contains("https") && error.contains("localhost"),
            "{error}"
        );
        assert!(validate_url("http://10.0.0.1/h").is_err());
        assert!(validate_url("ftp://example.org/h").is_err());
        assert!(validate_url("/relative/path").is_err());
        assert!(validate_url("not a url").is_err());
        assert!(validate_url("https://user:pw@example.org/h").is_err());
    }

    #[test]
    fn events_name_the_wrong_entry() {
        let ok = validate_events(&["reply.received".into(), "delivery.missed".into()]).unwrap();
        assert_eq!(
            ok,
            [WebhookEvent::ReplyReceived, WebhookEvent::DeliveryMissed]
        );
        let fields = |given: &[&str]| -> Vec<String> {
            let given: Vec<String> = given.iter().map(|s| s.to_string()).collect();
            validate_events(&given)
                .unwrap_err()
                .into_iter()
                .map(|e| e.field)
                .collect()
        };
        assert_eq!(fields(&[]), ["events"]);
        assert_eq!(
            fields(&["delivery.published", "delivery.sent"]),
            ["events[1]"]
        );
        assert_eq!(
            fields(&["reply.received", "delivery.failed", "reply.received"]),
            ["events[2]"]
        );
    }

    #[test]
    fn secrets_are_16_to_256_characters_and_never_quoted() {
        assert!(validate_secret(&json!("0123456789abcdef")).is_ok());
        assert!(validate_secret(&json!("é".repeat(256))).is_ok());
        let error = validate_secret(&json!("short-secret")).unwrap_err();
        assert!(!error.contains("short-secret"), "{error}");
        assert!(validate_secret(&json!("x".repeat(257))).is_err());
        assert!(validate_secret(&json!(1234567890123456789u64)).is_err());
        assert!(validate_secret(&json!(null)).is_err());
    }

    fn at(s: i64) -> NaiveDateTime {
        chrono::DateTime::from_timestamp(1_800_000_000 + s, 0)
            .unwrap()
            .naive_utc()
    }

    #[test]
    fn delays_double_from_retry_s_up_to_an_hour() {
        let delays: Vec<u64> = (1..=6).map(|n| retry_delay(10, n).as_secs()).collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 320]);
        assert_eq!(retry_delay(10, 10).as_secs(), 3_600);
        assert_eq!(retry_delay(10, i32::MAX), MAX_RETRY_DELAY);
        assert_eq!(retry_delay(10, 0).as_secs(), 10);
    }

    #[test]
    fn the_answer_decides_what_comes_next() {
        let day = 86_400;
        assert_eq!(
            next_step(Some(204), 1, at(0), at(0), 10, day),
            Next::Delivered
        );
        assert_eq!(next_step(Some(410), 1, at(0), at(0), 10, day), Next::Failed);
        assert_eq!(
            next_step(Some(500), 3, at(0), at(100), 10, day),
            Next::Retry(at(140))
        );
        assert_eq!(
            next_step(None, 1, at(0), at(5), 10, day),
            Next::Retry(at(15))
        );
        // A redirect is not followed: it counts as a failure.
        assert_eq!(
            next_step(Some(301), 1, at(0), at(0), 10, day),
            Next::Retry(at(10))
        );
    }

    #[test]
    fn tries_stop_once_give_up_s_has_passed_with_one_last_try_at_the_limit() {
        assert_eq!(
            next_step(Some(500), 5, at(0), at(90), 10, 100),
            Next::Retry(at(100))
        );
        assert_eq!(
            next_step(Some(500), 6, at(0), at(100), 10, 100),
            Next::Failed
        );
        assert_eq!(next_step(None, 1, at(0), at(500), 10, 100), Next::Failed);
        // Success still counts after the limit.
        assert_eq!(
            next_step(Some(200), 9, at(0), at(500), 10, 100),
            Next::Delivered
        );
    }
}
