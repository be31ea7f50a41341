//! One live session per account, shared by everything in this process that
//! talks to a network with it: the dispatcher, the token-refresh job, the
//! preflight check, retraction. Sharing it means one credentials lock per
//! account, so a token refresh (rotating, single-use refresh tokens) never
//! runs twice at once in a process; the refresh job also takes a lease in
//! the store, so it never runs twice at once across instances.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::store::AccountRow;
use crate::crypto::SecretKey;
use crate::db::schema::accounts;
use crate::db::{self, DbConnection, DbPool};
use crate::platforms::{AccountSession, Credentials, Platform};

pub struct Sessions {
    pool: DbPool,
    secret: SecretKey,
    cache: Mutex<HashMap<String, (NaiveDateTime, Arc<AccountSession>)>>,
}

impl Sessions {
    pub fn new(pool: DbPool, secret: SecretKey) -> Arc<Self> {
        Arc::new(Self {
            pool,
            secret,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The account's shared session, rebuilt when its stored row changed.
    pub fn get(&self, account: &AccountRow) -> Result<Arc<AccountSession>, String> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((updated_at, session)) = cache.get(&account.id) {
            if *updated_at >= account.updated_at {
                return Ok(session.clone());
            }
        }
        let platform = Platform::parse(&account.platform)
            .ok_or_else(|| format!("unknown platform '{}'", account.platform))?;
        let values = match &account.credentials {
            None => Default::default(),
            Some(sealed) => {
                let plain = self.secret.open(sealed, &account.id).map_err(|_| {
                    "the stored credentials cannot be decrypted with this HERALD_SECRET_KEY"
                        .to_string()
                })?;
                serde_json::from_slice(&plain)
                    .map_err(|_| "the stored credentials are unreadable".to_string())?
            }
        };
        let session = Arc::new(AccountSession::new(
            &account.id,
            platform,
            &account.name,
            account.base_url.as_deref(),
            Credentials::new(values),
        ));
        cache.insert(account.id.clone(), (account.updated_at, session.clone()));
        Ok(session)
    }

    /// The session's credentials sealed for the store, if a connector
    /// changed them (or the caller has a new expiry to record), with the
    /// token's expiry: the `expires_at` credential connectors keep, unless
    /// the caller knows better. Clears the changed mark.
    pub async fn sealed(
        &self,
        session: &AccountSession,
        expires_at: Option<Option<DateTime<Utc>>>,
    ) -> Option<Sealed> {
        let values = {
            let mut credentials = session.credentials.lock().await;
            if !credentials.take_changed() && expires_at.is_none() {
                return None;
            }
            credentials.values().clone()
        };
        let plain = serde_json::to_vec(&values).ok()?;
        let expires_at = expires_at.or_else(|| {
            values
                .get("expires_at")
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| Some(t.with_timezone(&Utc)))
        });
        Some(Sealed {
            account_id: session.id.clone(),
            credentials: self.secret.seal(&plain, &session.id),
            expires_at,
        })
    }

    /// Note that the account's row was written at `updated_at` by this
    /// process, so the cached session stays (it already holds those values).
    pub fn stored(&self, account_id: &str, updated_at: NaiveDateTime) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = cache.get_mut(account_id) {
            entry.0 = updated_at;
        }
    }

    /// Seal and store credentials a connector changed (a refreshed token),
    /// with the token's new expiry when the caller knows it.
    pub async fn save(&self, session: &AccountSession, expires_at: Option<Option<DateTime<Utc>>>) {
        let Some(sealed) = self.sealed(session, expires_at).await else {
            return;
        };
        let pool = self.pool.clone();
        let saved = tokio::task::spawn_blocking(move || -> QueryResult<NaiveDateTime> {
            let mut conn = pool
                .get()
                .map_err(|e| diesel::result::Error::QueryBuilderError(e.to_string().into()))?;
            sealed.store(&mut conn)
        })
        .await;
        match saved {
            Ok(Ok(updated_at)) => self.stored(&session.id, updated_at),
            Ok(Err(error)) => {
                tracing::warn!(account = %session.id, %error, "saving refreshed credentials failed")
            }
            Err(error) => {
                tracing::warn!(account = %session.id, %error, "saving refreshed credentials failed")
            }
        }
    }
}

/// Credentials ready for the store.
pub struct Sealed {
    pub account_id: String,
    pub credentials: String,
    /// `Some` when the token's expiry is known (`Some(None)`: it does not expire).
    pub expires_at: Option<Option<DateTime<Utc>>>,
}

impl Sealed {
    pub fn store(&self, conn: &mut DbConnection) -> QueryResult<NaiveDateTime> {
        store_credentials(conn, &self.account_id, &self.credentials, self.expires_at)
    }
}

/// Store sealed credentials (and, when given, the token's expiry).
pub fn store_credentials(
    conn: &mut DbConnection,
    account_id: &str,
    sealed: &str,
    expires_at: Option<Option<DateTime<Utc>>>,
) -> QueryResult<NaiveDateTime> {
    let now = db::now();
    let target = accounts::table.find(account_id);
    match expires_at {
        Some(expiry) => diesel::update(target)
            .set((
                accounts::credentials.eq(Some(sealed)),
                accounts::token_expires_at.eq(expiry.map(|t| t.naive_utc())),
                accounts::updated_at.eq(now),
            ))
            .execute(conn)?,
        None => diesel::update(target)
            .set((
                accounts::credentials.eq(Some(sealed)),
                accounts::updated_at.eq(now),
            ))
            .execute(conn)?,
    };
    Ok(now)
}
