//! What to do with the result of one attempt: pure rules, unit-tested.
//! Retries back off exponentially with full jitter; a retry that would land
//! past the delivery's deadline makes it `missed` instead.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::deliveries::store::Settle;
use crate::platforms::{ConnectorError, Published};

/// First backoff step; doubles per retry up to [`BACKOFF_CAP`].
pub const BACKOFF_BASE: Duration = Duration::from_secs(2);
pub const BACKOFF_CAP: Duration = Duration::from_secs(300);
/// First reconciliation check after an unknown outcome.
pub const RECONCILE_FIRST: Duration = Duration::from_secs(2);

/// The facts about a delivery that the decision needs.
#[derive(Debug, Clone, Copy)]
pub struct Attempt {
    pub retries: i32,
    pub deadline: DateTime<Utc>,
    pub max_retries: i32,
}

/// Full-jitter backoff: uniform in [step/2, step] where step = base·2^n, capped.
pub fn backoff(retries: i32, jitter: f64) -> Duration {
    let exp = u32::try_from(retries.clamp(0, 20)).unwrap_or(0);
    let step = BACKOFF_BASE
        .saturating_mul(2u32.saturating_pow(exp))
        .min(BACKOFF_CAP);
    step.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// Decide the next state after one publish call. `jitter` is in [0, 1].
pub fn decide(
    attempt: Attempt,
    result: &Result<Published, ConnectorError>,
    request_started_at: DateTime<Utc>,
    now: DateTime<Utc>,
    jitter: f64,
) -> Settle {
    let error = match result {
        Ok(published) => {
            return Settle::Published {
                remote_id: published.remote_id.clone(),
                remote_url: published.remote_url.clone(),
                request_started_at,
                reconciled: false,
            }
        }
        Err(e) => e,
    };
    let class = error.class();
    let http_status = error.status();
    let message = error.to_string();
    let retry_at = |wait: Duration, counts: bool| {
        let at = now + to_chrono(wait);
        if at > attempt.deadline {
            Settle::Missed {
                class,
                error: format!(
                    "{message}; the next try ({}) would be past the publishing window",
                    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ),
                http_status,
            }
        } else {
            Settle::Retry {
                at,
                class,
                error: message.clone(),
                http_status,
                counts,
            }
        }
    };
    match error {
        ConnectorError::RateLimited { retry_after, .. } => retry_at(*retry_after, false),
        ConnectorError::Transient { .. } | ConnectorError::AuthExpired { .. } => {
            if attempt.retries >= attempt.max_retries {
                Settle::Failed {
                    class,
                    error: format!("{message} (gave up after {} retries)", attempt.retries),
                    http_status,
                    revoke_account: false,
                }
            } else {
                retry_at(backoff(attempt.retries, jitter), true)
            }
        }
        ConnectorError::AuthRevoked { .. } => Settle::Failed {
            class,
            error: format!("{message}: an admin must reconnect the account"),
            http_status,
            revoke_account: true,
        },
        ConnectorError::Rejected { .. } => Settle::Failed {
            class,
            error: message,
            http_status,
            revoke_account: false,
        },
        ConnectorError::Unknown { .. } => Settle::Unknown {
            error: message,
            reconcile_at: now + to_chrono(RECONCILE_FIRST),
        },
    }
}

/// When to check an unknown outcome again after `tries` failed checks.
pub fn reconcile_backoff(tries: i32, jitter: f64) -> Duration {
    backoff(tries.saturating_sub(1), jitter).max(RECONCILE_FIRST)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap()
    }

    fn attempt(retries: i32) -> Attempt {
        Attempt {
            retries,
            deadline: now() + chrono::Duration::minutes(15),
            max_retries: 6,
        }
    }

    fn transient() -> Result<Published, ConnectorError> {
        Err(ConnectorError::Transient {
            message: "503".into(),
            status: Some(503),
        })
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        assert_eq!(backoff(0, 1.0), Duration::from_secs(2));
        assert_eq!(backoff(0, 0.0), Duration::from_secs(1));
        assert_eq!(backoff(3, 1.0), Duration::from_secs(16));
        assert_eq!(backoff(30, 1.0), BACKOFF_CAP);
        assert!(backoff(2, 0.3) < backoff(2, 0.9));
    }

    #[test]
    fn transient_failures_retry_until_the_cap() {
        match decide(attempt(0), &transient(), now(), now(), 1.0) {
            Settle::Retry { at, counts, .. } => {
                assert_eq!(at, now() + chrono::Duration::seconds(2));
                assert!(counts);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decide(attempt(6), &transient(), now(), now(), 1.0),
            Settle::Failed {
                revoke_account: false,
                ..
            }
        ));
    }

    #[test]
    fn rate_limits_wait_as_told_and_do_not_count() {
        let limited = Err(ConnectorError::RateLimited {
            retry_after: Duration::from_secs(90),
            message: "429".into(),
            status: Some(429),
        });
        match decide(attempt(6), &limited, now(), now(), 0.5) {
            Settle::Retry { at, counts, .. } => {
                assert_eq!(at, now() + chrono::Duration::seconds(90));
                assert!(!counts);
            }
            other => panic!("{other:?}"),
        }
        let too_long = Err(ConnectorError::RateLimited {
            retry_after: Duration::from_secs(3600),
            message: "429".into(),
            status: Some(429),
        });
        assert!(matches!(
            decide(attempt(0), &too_long, now(), now(), 0.5),
            Settle::Missed {
                class: "rate_limited",
                ..
            }
        ));
    }

    #[test]
    fn revoked_rejected_and_unknown() {
        let revoked = Err(ConnectorError::AuthRevoked {
            message: "The access token was revoked".into(),
            status: Some(401),
        });
        assert!(matches!(
            decide(attempt(0), &revoked, now(), now(), 0.5),
            Settle::Failed {
                revoke_account: true,
                http_status: Some(401),
                ..
            }
        ));
        let rejected = Err(ConnectorError::Rejected {
            message: "Validation failed".into(),
            status: Some(422),
        });
        assert!(matches!(
            decide(attempt(0), &rejected, now(), now(), 0.5),
            Settle::Failed {
                revoke_account: false,
                ..
            }
        ));
        let unknown = Err(ConnectorError::Unknown {
            message: "timed out".into(),
        });
        assert!(matches!(
            decide(attempt(0), &unknown, now(), now(), 0.5),
            Settle::Unknown { .. }
        ));
    }

    #[test]
    fn success_carries_the_request_start() {
        let ok = Ok(Published {
            remote_id: "1".into(),
            remote_url: None,
            pause_until: None,
        });
        let started = now() - chrono::Duration::milliseconds(40);
        match decide(attempt(0), &ok, started, now(), 0.5) {
            Settle::Published {
                request_started_at, ..
            } => assert_eq!(request_started_at, started),
            other => panic!("{other:?}"),
        }
    }
}
