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

    /// Seal and store credentials a connector changed (a refreshed token),
    /// with the token's new expiry when the caller knows it.
    pub async fn save(&self, session: &AccountSession, expires_at: Option<Option<DateTime<Utc>>>) {
        let values = {
            let mut credentials = session.credentials.lock().await;
            if !credentials.take_changed() && expires_at.is_none() {
                return;
            }
            credentials.values().clone()
        };
        let Ok(plain) = serde_json::to_vec(&values) else {
            return;
        };
        // Connectors keep a token's expiry as an `expires_at` credential:
        // the account's column follows it, so the refresh job sees it.
        let expires_at = expires_at.or_else(|| {
            values
                .get("expires_at")
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| Some(t.with_timezone(&Utc)))
        });
        let sealed = self.secret.seal(&plain, &session.id);
        let (pool, id) = (self.pool.clone(), session.id.clone());
        let saved = tokio::task::spawn_blocking(move || -> QueryResult<NaiveDateTime> {
            let mut conn = pool
                .get()
                .map_err(|e| diesel::result::Error::QueryBuilderError(e.to_string().into()))?;
            store_credentials(&mut conn, &id, &sealed, expires_at)
        })
        .await;
        match saved {
            Ok(Ok(updated_at)) => {
                let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(entry) = cache.get_mut(&session.id) {
                    entry.0 = updated_at;
                }
            }
            Ok(Err(error)) => {
                tracing::warn!(account = %session.id, %error, "saving refreshed credentials failed")
            }
            Err(error) => {
                tracing::warn!(account = %session.id, %error, "saving refreshed credentials failed")
            }
        }
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
