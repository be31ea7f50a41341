//! Webhook connector: an HTTP endpoint of the customer's own (intranet, status
//! page) receives each delivery as JSON.
//!
//! The request is `POST <url>` with `Content-Type: application/json`,
//! `Idempotency-Key` (the same for every attempt of one delivery),
//! `Herald-Delivery` (the delivery id) and, when the account has a `secret`,
//! `Herald-Signature: sha256=<hex HMAC-SHA256 of the exact body>`.
//!
//! **Receivers must deduplicate on `Idempotency-Key`.** A receiver cannot be
//! asked whether a delivery arrived, so after a timeout Herald reconciles by
//! sending the same delivery again with the same key; a receiver that stores
//! it twice shows it twice.
//!
//! A 2xx answer may carry JSON `{"id": "...", "url": "..."}`, kept as the
//! remote id and URL; otherwise the delivery id stands for the remote id.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde::Serialize;
use serde_json::Value;
use sha2::Sha256;

use super::{AccountSession, Connector, ConnectorError, Post, Published};

/// Wait after a 429 without a usable `Retry-After`.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Characters of a refusing body quoted in the error.
const BODY_EXCERPT: usize = 200;

/// Delivers posts to the account's `url` credential, signed with its optional `secret`.
#[derive(Clone)]
pub struct Webhook {
    http: reqwest::Client,
}

/// The JSON document a receiver gets.
#[derive(Serialize)]
struct Delivery<'a> {
    event: &'static str,
    delivery_id: &'a str,
    statement_id: &'a str,
    statement_version: i32,
    title: &'a str,
    kind: &'a str,
    platform: &'static str,
    account_id: &'a str,
    text: &'a str,
    language: Option<&'a str>,
    planned_at: String,
    sent_at: String,
    /// Which part of a thread (0: the first, or only, part).
    #[serde(skip_serializing_if = "is_zero")]
    part: usize,
    /// The id this receiver gave the part (or post) this one answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    in_reply_to: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    media: Vec<serde_json::Value>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Webhook {
    pub fn new(http: reqwest::Client) -> Self {
        Self { http }
    }

    async fn deliver(
        &self,
        account: &AccountSession,
        post: &Post,
    ) -> Result<Published, ConnectorError> {
        let (url, secret) = {
            let credentials = account.credentials.lock().await;
            let url = credentials
                .get("url")
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(str::to_string);
            let secret = credentials
                .get("secret")
                .filter(|s| !s.is_empty())
                .map(str::to_string);
            (url, secret)
        };
        let url = url.ok_or_else(|| ConnectorError::AuthRevoked {
            message: "the account has no webhook url: reconnect it".to_string(),
            status: None,
        })?;
        let url = match url::Url::parse(&url) {
            Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => parsed,
            // Never echo the URL: it may carry a token in its path or query.
            _ => {
                return Err(ConnectorError::Rejected {
                    message: "the account's webhook url is not an http(s) URL".to_string(),
                    status: None,
                })
            }
        };
        let body = delivery_body(account, post, Utc::now());
        let mut request = self
            .http
            .post(url)
            .header("Content-Type", "application/json")
            .header("Idempotency-Key", &post.idempotency_key)
            .header("Herald-Delivery", &post.delivery_id);
        if let Some(secret) = &secret {
            request = request.header("Herald-Signature", sign(secret.as_bytes(), &body));
        }
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|e| ConnectorError::from_reqwest(&e))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, Utc::now()));
        // The status line decides; a 2xx whose body cannot be read was still accepted.
        let text = response.text().await.unwrap_or_default();
        if status.is_success() {
            // Without an id from the receiver, a delivery is known by its
            // id, and a later part of a thread by its own key.
            let fallback = if post.part == 0 {
                &post.delivery_id
            } else {
                &post.idempotency_key
            };
            return Ok(published(&text, fallback));
        }
        Err(classify(status, retry_after, &text))
    }
}

impl Connector for Webhook {
    async fn publish(
        &self,
        account: &AccountSession,
        post: &Post,
    ) -> Result<Published, ConnectorError> {
        self.deliver(account, post).await
    }

    /// Sends the delivery again with the same `Idempotency-Key`: the receiver
    /// cannot be queried and must deduplicate on the key.
    async fn reconcile(
        &self,
        account: &AccountSession,
        post: &Post,
    ) -> Result<Option<Published>, ConnectorError> {
        // The receiver cannot be asked; past the window, sending again would
        // publish late, so the outcome stays unknown (and, after the
        // reconciliation tries, the delivery fails asking for a check).
        if Utc::now() > post.deadline {
            return Err(ConnectorError::Unknown {
                message: "the endpoint cannot be asked whether it received the delivery, and its window has passed".into(),
            });
        }
        self.deliver(account, post).await.map(Some)
    }

    /// A webhook receiver has no delete call: retraction says so.
    async fn delete(
        &self,
        _account: &AccountSession,
        _remote_id: &str,
    ) -> Result<(), ConnectorError> {
        Err(ConnectorError::Rejected {
            message: "a webhook cannot be asked to delete what it received; remove it on the receiving side".into(),
            status: None,
        })
    }

    /// Nothing to check without sending: the URL and secret are the credentials.
    async fn check(&self, _account: &AccountSession) -> Result<(), ConnectorError> {
        Ok(())
    }
}

fn instant(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The exact bytes sent (and signed) for `post`.
fn delivery_body(account: &AccountSession, post: &Post, sent_at: DateTime<Utc>) -> Vec<u8> {
    let delivery = Delivery {
        event: "delivery.publish",
        delivery_id: &post.delivery_id,
        statement_id: &post.statement_id,
        statement_version: post.statement_version,
        title: &post.title,
        kind: &post.kind,
        platform: "webhook",
        account_id: &account.id,
        text: &post.text,
        language: post.language.as_deref(),
        planned_at: instant(post.planned_at),
        sent_at: instant(sent_at),
        part: post.part,
        in_reply_to: post.reply_to.as_ref().map(|r| r.parent_id.as_str()),
        media: post
            .media
            .iter()
            .map(|m| serde_json::json!({"url": m.url, "alt": m.alt}))
            .collect(),
    };
    // Serialising plain strings and numbers cannot fail.
    serde_json::to_vec(&delivery).unwrap_or_default()
}

fn published(body: &str, delivery_id: &str) -> Published {
    let json = serde_json::from_str::<Value>(body).unwrap_or(Value::Null);
    let field = |name: &str| {
        json.get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    Published {
        remote_id: field("id").unwrap_or_else(|| delivery_id.to_string()),
        remote_url: field("url"),
        pause_until: None,
    }
}

fn classify(status: StatusCode, retry_after: Option<Duration>, body: &str) -> ConnectorError {
    let excerpt: String = body.trim().chars().take(BODY_EXCERPT).collect();
    let message = if excerpt.is_empty() {
        format!("the endpoint answered {}", status.as_u16())
    } else {
        format!("the endpoint answered {}: {excerpt}", status.as_u16())
    };
    let code = Some(status.as_u16());
    match status.as_u16() {
        429 => ConnectorError::RateLimited {
            retry_after: retry_after.unwrap_or(DEFAULT_RETRY_AFTER),
            message,
            status: code,
        },
        401 | 403 => ConnectorError::AuthRevoked {
            message: format!("the endpoint refused Herald's credentials ({message})"),
            status: code,
        },
        410 => ConnectorError::AuthRevoked {
            message: format!("the endpoint is gone ({message})"),
            status: code,
        },
        500..=599 => ConnectorError::Transient {
            message,
            status: code,
        },
        _ => ConnectorError::Rejected {
            message,
            status: code,
        },
    }
}

/// `Retry-After` as seconds or as an HTTP date; a date in the past means now.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// The `Herald-Signature` value for `body`: `sha256=` and the lowercase hex
/// HMAC-SHA256 of the exact body bytes with the account's secret.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = hmac_with(secret);
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether `signature` (a `Herald-Signature` value) is `body` signed with
/// `secret`. Compares in constant time; for receivers and tests.
pub fn verify(secret: &[u8], body: &[u8], signature: &str) -> bool {
    let Some(digest) = signature
        .trim()
        .strip_prefix("sha256=")
        .and_then(|h| hex::decode(h).ok())
    else {
        return false;
    };
    let mut mac = hmac_with(secret);
    mac.update(body);
    mac.verify_slice(&digest).is_ok()
}

fn hmac_with(secret: &[u8]) -> Hmac<Sha256> {
    <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes keys of any length")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platforms::{Credentials, Platform};
    use chrono::TimeZone;

    #[test]
    fn signatures_match_the_rfc_4231_vector_and_verify() {
        // RFC 4231 test case 2.
        let signature = sign(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            signature,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(verify(b"Jefe", b"what do ya want for nothing?", &signature));
        assert!(!verify(
            b"Jefe",
            b"what do ya want for nothing!",
            &signature
        ));
        assert!(!verify(
            b"other",
            b"what do ya want for nothing?",
            &signature
        ));
        assert!(!verify(
            b"Jefe",
            b"what do ya want for nothing?",
            "sha256=zz"
        ));
        assert!(!verify(
            b"Jefe",
            b"what do ya want for nothing?",
            signature.trim_start_matches("sha256=")
        ));
    }

    #[test]
    fn the_body_carries_the_delivery_with_utc_instants() {
        let account = AccountSession::new(
            "acc-1",
            Platform::Webhook,
            "intranet",
            None,
            Credentials::default(),
        );
        let planned = Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap();
        let post = Post {
            delivery_id: "del-1".into(),
            statement_id: "st-1".into(),
            statement_version: 2,
            title: "Recall".into(),
            kind: "crisis".into(),
            text: "Stop using the K-200.".into(),
            language: Some("en".into()),
            planned_at: planned,
            idempotency_key: "key-1".into(),
            first_attempt_at: planned,
            deadline: planned + chrono::Duration::hours(2),
            ..Default::default()
        };
        let body = delivery_body(
            &account,
            &post,
            planned + chrono::Duration::milliseconds(1500),
        );
        let json: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["event"], "delivery.publish");
        assert_eq!(json["platform"], "webhook");
        assert_eq!(json["account_id"], "acc-1");
        assert_eq!(json["statement_version"], 2);
        assert_eq!(json["planned_at"], "2026-11-25T09:00:00Z");
        assert_eq!(json["sent_at"], "2026-11-25T09:00:01.500Z");
    }

    #[test]
    fn retry_after_reads_seconds_or_an_http_date() {
        let now = Utc.with_ymd_and_hms(2015, 10, 21, 7, 27, 0).unwrap();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("later", now), None);
    }

    #[test]
    fn refusals_quote_at_most_200_characters() {
        let long = "x".repeat(1000);
        let error = classify(StatusCode::BAD_REQUEST, None, &long);
        assert_eq!(error.class(), "rejected");
        assert!(error.to_string().len() < 260);
        assert_eq!(classify(StatusCode::GONE, None, "").class(), "auth_revoked");
        assert_eq!(
            classify(StatusCode::UNAUTHORIZED, None, "").class(),
            "auth_revoked"
        );
        assert_eq!(
            classify(StatusCode::TOO_MANY_REQUESTS, None, ""),
            ConnectorError::RateLimited {
                retry_after: DEFAULT_RETRY_AFTER,
                message: "the endpoint answered 429".into(),
                status: Some(429)
            }
        );
    }

    #[test]
    fn the_answer_may_name_the_remote_id_and_url() {
        let p = published(
            r#"{"id":"r-9","url":"https://status.example/r-9"}"#,
            "del-1",
        );
        assert_eq!(p.remote_id, "r-9");
        assert_eq!(p.remote_url.as_deref(), Some("https://status.example/r-9"));
        let p = published("OK", "del-1");
        assert_eq!((p.remote_id.as_str(), p.remote_url), ("del-1", None));
    }
}
