//! Keeping accounts usable before a crisis post needs them:
//! - **token refresh**: tokens that expire (X: 2 hours; LinkedIn, Instagram,
//!   Threads: 60 days) are renewed ahead of time. An instance takes a lease
//!   on the account in the store first, so two instances never refresh the
//!   same account at once (X's refresh tokens are single use), and the
//!   refresh runs under the account's credentials lock in this process.
//!   A refused refresh sets the account to `needs_reauth` with the reason.
//! - **preflight checks**: 24 hours and 1 hour before each scheduled
//!   delivery, its account's credentials are tried with one cheap call; a
//!   failure is logged (`account.check_failed`) and shown on the delivery
//!   and the account, long before the post is due. `POST
//!   /v1/accounts/{id}/check` runs the same check on demand.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde_json::json;

use super::sessions::Sessions;
use super::store::AccountRow;
use super::AccountStatus;
use crate::db::schema::{accounts, deliveries, delivery_checks};
use crate::db::{self, DbConnection, DbPool};
use crate::deliveries::DeliveryStatus;
use crate::log::{self, NewEvent};
use crate::platforms::{ConnectorError, Connectors, Platform};

/// The actor of what these jobs do, in the publish log.
const SYSTEM: &str = "system";
/// How long an instance holds an account while it refreshes it.
const REFRESH_LEASE: chrono::Duration = chrono::Duration::minutes(2);

/// How long before expiry a token is renewed: a quarter of X's 2-hour
/// tokens, a week of the 60-day ones.
pub fn refresh_lead(platform: Platform) -> chrono::Duration {
    match platform {
        Platform::X => chrono::Duration::minutes(30),
        _ => chrono::Duration::days(7),
    }
}

pub struct Lifecycle {
    pool: DbPool,
    sessions: Arc<Sessions>,
    connectors: Connectors,
    timeout: Duration,
}

/// The result of checking one account.
#[derive(Debug, Clone)]
pub struct CheckResult {
    pub account: AccountRow,
    pub checked_at: NaiveDateTime,
    pub error: Option<String>,
}

impl Lifecycle {
    pub fn new(
        pool: DbPool,
        sessions: Arc<Sessions>,
        connectors: Connectors,
        publish_timeout_s: u64,
    ) -> Arc<Self> {
        Arc::new(Self {
            pool,
            sessions,
            connectors,
            timeout: Duration::from_secs(publish_timeout_s + 5),
        })
    }

    async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut DbConnection) -> QueryResult<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        db::blocking(&self.pool, f).await
    }

    /// Renew every token that expires soon. Returns how many were renewed.
    pub async fn refresh_due(&self) -> anyhow::Result<usize> {
        let now = db::now();
        let due = self.db(move |conn| due_for_refresh(conn, now)).await?;
        let mut renewed = 0;
        for id in due {
            if self.refresh_one(&id).await? {
                renewed += 1;
            }
        }
        Ok(renewed)
    }

    /// Refresh one account if this instance wins its lease. Returns whether
    /// a new token was stored.
    pub async fn refresh_one(&self, account_id: &str) -> anyhow::Result<bool> {
        let id = account_id.to_string();
        let Some(account) = self.db(move |conn| take_refresh_lease(conn, &id)).await? else {
            return Ok(false);
        };
        let platform = account.platform()?;
        let session = match self.sessions.get(&account) {
            Ok(s) => s,
            Err(reason) => {
                self.needs_reauth(&account, &reason).await?;
                return Ok(false);
            }
        };
        let before = account.token_expires_at;
        let result = tokio::time::timeout(self.timeout, self.connectors.refresh(&session)).await;
        let result = result.unwrap_or_else(|_| {
            Err(ConnectorError::Unknown {
                message: "no answer from the network in time".into(),
            })
        });
        let (id, retry_at) = (account.id.clone(), |d| Some(db::now() + d));
        match result {
            Ok(expiry) => {
                // Renewed when the connector stored new credentials; a
                // network that will not renew yet (Meta's 24-hour rule)
                // leaves them as they were, and is tried again in an hour.
                let renewed = session.credentials.lock().await.changed();
                let sealed = self.sessions.sealed(&session, Some(expiry)).await;
                let next = if renewed {
                    None
                } else {
                    retry_at(chrono::Duration::hours(1))
                };
                let details = json!({
                    "platform": platform.as_str(),
                    "expires_at": expiry,
                    "previous_expires_at": before.map(|t| t.and_utc()),
                });
                // The new tokens, the lease and the log entry: one transaction.
                let updated_at = self
                    .db(move |conn| {
                        db::write_tx(conn, |conn| {
                            let updated_at = match &sealed {
                                Some(s) => Some(s.store(conn)?),
                                None => None,
                            };
                            release_refresh_lease(conn, &id, next)?;
                            if renewed {
                                log::store::append(
                                    conn,
                                    NewEvent::new(SYSTEM, "account.token_refreshed")
                                        .account(&id)
                                        .details(details),
                                )?;
                            }
                            Ok(updated_at)
                        })
                    })
                    .await?;
                if let Some(at) = updated_at {
                    self.sessions.stored(&account.id, at);
                }
                Ok(renewed)
            }
            Err(ConnectorError::AuthRevoked { message, .. })
            | Err(ConnectorError::Rejected { message, .. }) => {
                self.sessions.save(&session, None).await;
                self.needs_reauth(&account, &format!("token refresh refused: {message}"))
                    .await?;
                Ok(false)
            }
            Err(error) => {
                tracing::warn!(account = %account.id, %error, "token refresh failed; retrying in 5 minutes");
                let message = error.to_string();
                self.db(move |conn| {
                    release_refresh_lease(conn, &id, retry_at(chrono::Duration::minutes(5)))?;
                    log::store::append(
                        conn,
                        NewEvent::new(SYSTEM, "account.refresh_failed")
                            .account(&id)
                            .details(json!({"error": message, "retry_in_s": 300})),
                    )?;
                    Ok(())
                })
                .await?;
                Ok(false)
            }
        }
    }

    async fn needs_reauth(&self, account: &AccountRow, reason: &str) -> anyhow::Result<()> {
        let (id, reason) = (
            account.id.clone(),
            reason.chars().take(500).collect::<String>(),
        );
        self.db(move |conn| {
            db::write_tx(conn, |conn| {
                release_refresh_lease(conn, &id, None)?;
                mark_needs_reauth(conn, &id, &reason)
            })
        })
        .await
    }

    /// Check one account's credentials now: record the result on the
    /// account, log a failure, and set `needs_reauth` when the network says
    /// the credentials are dead.
    pub async fn check(&self, account: AccountRow, actor: &str) -> anyhow::Result<CheckResult> {
        let error = match self.sessions.get(&account) {
            Err(reason) => Some(ConnectorError::AuthRevoked {
                message: reason,
                status: None,
            }),
            Ok(session) => {
                let call = self.connectors.check(&session);
                let result = tokio::time::timeout(self.timeout, call)
                    .await
                    .unwrap_or_else(|_| {
                        Err(ConnectorError::Unknown {
                            message: "no answer from the network in time".into(),
                        })
                    });
                self.sessions.save(&session, None).await;
                result.err()
            }
        };
        let checked_at = db::now();
        let revoked = matches!(error, Some(ConnectorError::AuthRevoked { .. }));
        let message = error.map(|e| e.to_string());
        let (id, actor, m) = (account.id.clone(), actor.to_string(), message.clone());
        let platform = account.platform.clone();
        let account = self
            .db(move |conn| {
                db::write_tx(conn, |conn| {
                    diesel::update(accounts::table.find(&id))
                        .set((
                            accounts::checked_at.eq(Some(checked_at)),
                            accounts::check_error.eq(m.clone()),
                        ))
                        .execute(conn)?;
                    let (action, details) = match &m {
                        None => ("account.checked", json!({"platform": platform, "ok": true})),
                        Some(error) => (
                            "account.check_failed",
                            json!({"platform": platform, "ok": false, "error": error}),
                        ),
                    };
                    log::store::append(
                        conn,
                        NewEvent::new(&actor, action).account(&id).details(details),
                    )?;
                    if let (true, Some(error)) = (revoked, &m) {
                        mark_needs_reauth(conn, &id, &format!("preflight check: {error}"))?;
                    }
                    accounts::table
                        .find(&id)
                        .select(AccountRow::as_select())
                        .first(conn)
                })
            })
            .await?;
        Ok(CheckResult {
            account,
            checked_at,
            error: message,
        })
    }

    /// Check the accounts of deliveries due within 24 hours (and again
    /// within 1 hour) that have not had that check yet.
    pub async fn preflight_due(&self) -> anyhow::Result<usize> {
        let now = db::now();
        let due = self.db(move |conn| due_for_preflight(conn, now)).await?;
        let mut by_account: BTreeMap<String, Vec<(String, Vec<&'static str>)>> = BTreeMap::new();
        for (delivery, account, stages) in due {
            by_account
                .entry(account)
                .or_default()
                .push((delivery, stages));
        }
        let mut checked = 0;
        for (account_id, deliveries) in by_account {
            let id = account_id.clone();
            let account: Option<AccountRow> = self
                .db(move |conn| {
                    accounts::table
                        .find(&id)
                        .select(AccountRow::as_select())
                        .first(conn)
                        .optional()
                })
                .await?;
            let Some(account) = account else { continue };
            let result = if account.status == AccountStatus::Active.as_str() {
                self.check(account, SYSTEM).await?
            } else {
                // Not usable as it is: say so on the deliveries, no call needed.
                let error = format!(
                    "the account is {}{}",
                    account.status,
                    account
                        .status_reason
                        .as_deref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                );
                CheckResult {
                    checked_at: db::now(),
                    error: Some(error),
                    account,
                }
            };
            let (at, error) = (result.checked_at, result.error.clone());
            let ids: Vec<String> = deliveries.iter().map(|(d, _)| d.clone()).collect();
            self.db(move |conn| {
                for (delivery, stages) in &deliveries {
                    for stage in stages {
                        let inserted = diesel::insert_into(delivery_checks::table)
                            .values((
                                delivery_checks::delivery_id.eq(delivery),
                                delivery_checks::stage.eq(*stage),
                                delivery_checks::checked_at.eq(at),
                                delivery_checks::ok.eq(error.is_none()),
                                delivery_checks::error.eq(error.clone()),
                            ))
                            .execute(conn);
                        match inserted {
                            // Another instance checked it at the same time.
                            Err(diesel::result::Error::DatabaseError(
                                diesel::result::DatabaseErrorKind::UniqueViolation,
                                _,
                            )) => {}
                            other => {
                                other?;
                            }
                        }
                    }
                }
                Ok(())
            })
            .await?;
            if let Some(error) = &result.error {
                tracing::warn!(account = %account_id, deliveries = ids.len(), %error, "preflight check failed");
            }
            checked += 1;
        }
        Ok(checked)
    }
}

/// Active accounts whose token expires within their lead time and that no
/// instance holds.
fn due_for_refresh(conn: &mut DbConnection, now: NaiveDateTime) -> QueryResult<Vec<String>> {
    let horizon = now + chrono::Duration::days(7);
    let rows: Vec<(String, String, Option<NaiveDateTime>)> = accounts::table
        .filter(accounts::removed_at.is_null())
        .filter(accounts::status.eq(AccountStatus::Active.as_str()))
        .filter(accounts::token_expires_at.le(horizon))
        .filter(
            accounts::refresh_lease_until
                .is_null()
                .or(accounts::refresh_lease_until.lt(now)),
        )
        .select((accounts::id, accounts::platform, accounts::token_expires_at))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter(|(_, platform, expires)| {
            let lead = Platform::parse(platform).map_or(chrono::Duration::days(7), refresh_lead);
            expires.is_some_and(|e| e <= now + lead)
        })
        .map(|(id, _, _)| id)
        .collect())
}

/// Take the account for a refresh, unless another instance holds it.
/// Returns the account as stored now (its newest credentials).
fn take_refresh_lease(conn: &mut DbConnection, id: &str) -> QueryResult<Option<AccountRow>> {
    let now = db::now();
    let taken = diesel::update(
        accounts::table
            .find(id)
            .filter(accounts::removed_at.is_null())
            .filter(
                accounts::refresh_lease_until
                    .is_null()
                    .or(accounts::refresh_lease_until.lt(now)),
            ),
    )
    .set(accounts::refresh_lease_until.eq(Some(now + REFRESH_LEASE)))
    .execute(conn)?;
    if taken != 1 {
        return Ok(None);
    }
    accounts::table
        .find(id)
        .select(AccountRow::as_select())
        .first(conn)
        .optional()
}

/// Release the lease; `until` keeps the account aside until then.
fn release_refresh_lease(
    conn: &mut DbConnection,
    id: &str,
    until: Option<NaiveDateTime>,
) -> QueryResult<()> {
    diesel::update(accounts::table.find(id))
        .set(accounts::refresh_lease_until.eq(until))
        .execute(conn)?;
    Ok(())
}

/// Set an active account to `needs_reauth` with the reason, and log it.
pub fn mark_needs_reauth(conn: &mut DbConnection, id: &str, reason: &str) -> QueryResult<()> {
    let changed = diesel::update(
        accounts::table
            .find(id)
            .filter(accounts::status.eq(AccountStatus::Active.as_str())),
    )
    .set((
        accounts::status.eq(AccountStatus::NeedsReauth.as_str()),
        accounts::status_reason.eq(Some(reason)),
        accounts::updated_at.eq(db::now()),
    ))
    .execute(conn)?;
    if changed > 0 {
        log::store::append(
            conn,
            NewEvent::new(SYSTEM, "account.needs_reauth")
                .account(id)
                .details(json!({"reason": reason})),
        )?;
    }
    Ok(())
}

/// Most deliveries one preflight run looks at (the next run takes the rest).
const PREFLIGHT_BATCH: i64 = 1_000;

/// Scheduled deliveries due within 24 hours whose check for that stage
/// has not run: `(delivery, account, stages)`.
#[allow(clippy::type_complexity)]
fn due_for_preflight(
    conn: &mut DbConnection,
    now: NaiveDateTime,
) -> QueryResult<Vec<(String, String, Vec<&'static str>)>> {
    let mut due: Vec<(String, String, Vec<&'static str>)> = Vec::new();
    for (stage, within) in [
        ("24h", chrono::Duration::hours(24)),
        ("1h", chrono::Duration::hours(1)),
    ] {
        let done = delivery_checks::table
            .filter(delivery_checks::delivery_id.eq(deliveries::id))
            .filter(delivery_checks::stage.eq(stage));
        let rows: Vec<(String, String)> = deliveries::table
            .filter(deliveries::status.eq(DeliveryStatus::Scheduled.as_str()))
            .filter(deliveries::planned_at.gt(now))
            .filter(deliveries::planned_at.le(now + within))
            .filter(diesel::dsl::not(diesel::dsl::exists(done)))
            .order(deliveries::planned_at.asc())
            .limit(PREFLIGHT_BATCH)
            .select((deliveries::id, deliveries::account_id))
            .load(conn)?;
        for (id, account) in rows {
            match due.iter_mut().find(|(d, _, _)| *d == id) {
                Some((_, _, stages)) => stages.push(stage),
                None => due.push((id, account, vec![stage])),
            }
        }
    }
    Ok(due)
}

/// One preflight check of a delivery's account.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = delivery_checks)]
pub struct CheckRow {
    /// `24h` or `1h`.
    pub stage: String,
    pub checked_at: NaiveDateTime,
    pub ok: bool,
    pub error: Option<String>,
}

/// The preflight checks of a delivery, oldest first.
pub fn checks_of(conn: &mut DbConnection, delivery_id: &str) -> QueryResult<Vec<CheckRow>> {
    delivery_checks::table
        .filter(delivery_checks::delivery_id.eq(delivery_id))
        .order(delivery_checks::checked_at.asc())
        .select(CheckRow::as_select())
        .load(conn)
}

/// When an expiring token must be renewed by (for the account page).
pub fn renew_by(platform: Platform, expires: DateTime<Utc>) -> DateTime<Utc> {
    expires - refresh_lead(platform)
}
