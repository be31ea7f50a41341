//! The dispatch loop (DESIGN §5): sleep until the next due delivery (or until
//! woken by a nearer one), claim due deliveries as leases, publish each
//! through its connector, and settle the outcomes in batched transactions.
//!
//! Exactly once: the claim transaction records the attempt (with the
//! delivery's idempotency key, chosen at scheduling) before the network is
//! called. If this process dies after the call, the lease expires, the
//! delivery becomes `unknown` and is reconciled with the network before any
//! new attempt.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDateTime, Utc};
use rand::Rng;
use tokio::sync::{mpsc, watch, Notify, OwnedSemaphorePermit, Semaphore};

use super::policy::{self, Attempt};
use crate::accounts::store::AccountRow;
use crate::config::DispatchSettings;
use crate::crypto::SecretKey;
use crate::db::{DbConnection, DbPool};
use crate::deliveries::store::{self as deliveries, Claim, Outcome, Reconciled, Settle};
use crate::platforms::{
    AccountSession, ConnectorError, Connectors, Credentials, Platform, Post, Published,
};

/// Claims per transaction.
const CLAIM_BATCH: usize = 256;
/// Outcomes per settling transaction.
const SETTLE_BATCH: usize = 512;
/// How often the loop marks overdue deliveries missed (the claim never takes them).
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// Longest idle sleep: also how soon a delivery scheduled by another
/// instance, or released by a change elsewhere, is seen.
const IDLE: Duration = Duration::from_millis(500);

/// What [`Dispatcher::call`] asks of a connector.
#[derive(Clone, Copy)]
enum Call {
    Publish,
    Reconcile,
}

/// Wakes the dispatch loop (a nearer delivery was scheduled, publishing resumed).
#[derive(Clone, Default)]
pub struct Waker(Arc<Notify>);

impl Waker {
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

pub struct Dispatcher {
    pool: DbPool,
    secret: SecretKey,
    connectors: Connectors,
    owner: String,
    settings: DispatchSettings,
    waker: Waker,
    permits: Arc<Semaphore>,
    outcomes: mpsc::UnboundedSender<Outcome>,
    /// One session per account, rebuilt when the stored row changes.
    sessions: Mutex<HashMap<String, (NaiveDateTime, Arc<AccountSession>)>>,
    /// Accounts whose rate-limit budget is spent, until when.
    holds: Mutex<HashMap<String, DateTime<Utc>>>,
}

/// A running dispatcher: stop it to let in-flight publications finish.
pub struct DispatcherHandle {
    pub dispatcher: Arc<Dispatcher>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl DispatcherHandle {
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

impl Dispatcher {
    pub fn start(
        pool: DbPool,
        secret: SecretKey,
        connectors: Connectors,
        settings: DispatchSettings,
        waker: Waker,
    ) -> DispatcherHandle {
        let owner = format!(
            "{}:{}:{}",
            hostname(),
            std::process::id(),
            &crate::db::new_id()[24..]
        );
        let (tx, rx) = mpsc::unbounded_channel();
        let (stop, stopped) = watch::channel(false);
        let dispatcher = Arc::new(Dispatcher {
            pool,
            secret,
            connectors,
            owner,
            permits: Arc::new(Semaphore::new(settings.concurrency)),
            settings,
            waker,
            outcomes: tx,
            sessions: Mutex::new(HashMap::new()),
            holds: Mutex::new(HashMap::new()),
        });
        tracing::info!(owner = %dispatcher.owner, "dispatcher started");
        let settler = tokio::spawn(dispatcher.clone().settle_loop(rx));
        let looper = tokio::spawn(dispatcher.clone().run(stopped));
        DispatcherHandle {
            dispatcher,
            stop,
            tasks: vec![looper, settler],
        }
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut DbConnection) -> diesel::QueryResult<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<T> {
            let mut conn = pool.get()?;
            Ok(f(&mut conn)?)
        })
        .await?
    }

    fn lease(&self) -> chrono::Duration {
        chrono::Duration::seconds(self.settings.lease_s as i64)
    }

    async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut swept = Instant::now() - SWEEP_EVERY;
        loop {
            if *stop.borrow() {
                break;
            }
            if swept.elapsed() >= SWEEP_EVERY {
                swept = Instant::now();
                if let Err(error) = self.sweep().await {
                    tracing::warn!(%error, "marking overdue deliveries missed failed");
                }
            }
            // When busy, claim in batches, not one by one as permits free up:
            // wait for a quarter of them (or 2 ms if some are free already).
            let mut free = self.permits.available_permits();
            let min_batch = (self.settings.concurrency / 4).max(1);
            if free < min_batch {
                tokio::select! {
                    permit = self.permits.clone().acquire_many_owned(min_batch as u32) => drop(permit),
                    _ = tokio::time::sleep(Duration::from_millis(2)), if free > 0 => {}
                    _ = stop.changed() => continue,
                }
                free = self.permits.available_permits();
                if free == 0 {
                    continue;
                }
            }
            let want = free.min(CLAIM_BATCH);
            let claim_started = Utc::now();
            let (owner, lease) = (self.owner.clone(), self.lease());
            let claimed = self
                .db(move |conn| deliveries::claim_due(conn, &owner, want as i64, lease))
                .await;
            let count = match claimed {
                Ok(claims) => {
                    let count = claims.len();
                    for claim in claims {
                        match self.permits.clone().try_acquire_owned() {
                            Ok(permit) => {
                                tokio::spawn(self.clone().publish(claim, permit));
                            }
                            // Cannot happen (we claimed no more than the free
                            // permits); the lease would be rescued if it did.
                            Err(_) => tracing::error!("no permit for a claimed delivery"),
                        }
                    }
                    count
                }
                Err(error) => {
                    tracing::warn!(%error, "claiming due deliveries failed");
                    0
                }
            };
            if count == want {
                continue;
            }
            // What was due at the claim and not taken is held; sleep until
            // the next delivery falls due (zero if one did meanwhile).
            let after = crate::db::truncate_micros(claim_started.naive_utc());
            let next = self
                .db(move |conn| deliveries::next_due_after(conn, after))
                .await
                .ok()
                .flatten();
            let wait = next.map_or(IDLE, |at| {
                (at.and_utc() - Utc::now())
                    .to_std()
                    .unwrap_or_default()
                    .min(IDLE)
            });
            if wait.is_zero() {
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.waker.0.notified() => {}
                _ = stop.changed() => {}
            }
        }
        tracing::info!(owner = %self.owner, "dispatcher stopping");
        // Let in-flight publications finish, so their outcomes are settled.
        let _ = self
            .permits
            .acquire_many(self.settings.concurrency as u32)
            .await;
    }

    /// The account's shared session, rebuilt when its stored row changed.
    fn session(&self, account: &AccountRow) -> Result<Arc<AccountSession>, String> {
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((updated_at, session)) = sessions.get(&account.id) {
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
        sessions.insert(account.id.clone(), (account.updated_at, session.clone()));
        Ok(session)
    }

    /// Seal and store credentials a connector changed (a refreshed session).
    async fn save_credentials(&self, session: &AccountSession) {
        let values = {
            let mut credentials = session.credentials.lock().await;
            if !credentials.take_changed() {
                return;
            }
            credentials.values().clone()
        };
        let Ok(plain) = serde_json::to_vec(&values) else {
            return;
        };
        let sealed = self.secret.seal(&plain, &session.id);
        let id = session.id.clone();
        match self
            .db(move |conn| deliveries::save_credentials(conn, &id, &sealed))
            .await
        {
            Ok(updated_at) => {
                let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(entry) = sessions.get_mut(&session.id) {
                    entry.0 = updated_at;
                }
            }
            Err(error) => {
                tracing::warn!(account = %session.id, %error, "saving a refreshed session failed")
            }
        }
    }

    fn post(&self, claim: &Claim) -> Post {
        let d = &claim.delivery;
        Post {
            delivery_id: d.id.clone(),
            statement_id: d.statement_id.clone(),
            statement_version: d.statement_version,
            title: claim.title.clone(),
            kind: d.kind.clone(),
            text: claim.text.clone(),
            language: claim.language.clone(),
            planned_at: d.planned_at.and_utc(),
            idempotency_key: d.idempotency_key.clone(),
            first_attempt_at: d.first_attempt_at.unwrap_or(d.planned_at).and_utc(),
            deadline: d.deadline.and_utc(),
            ..Default::default()
        }
    }

    /// Call the account's connector for `claim`, bounded in time; save the
    /// session if the connector refreshed it.
    async fn call(&self, claim: &Claim, call: Call) -> Result<Option<Published>, ConnectorError> {
        let session =
            self.session(&claim.account)
                .map_err(|reason| ConnectorError::AuthRevoked {
                    message: reason,
                    status: None,
                })?;
        let post = self.post(claim);
        let work = async {
            match call {
                Call::Publish => self.connectors.publish(&session, &post).await.map(Some),
                Call::Reconcile => self.connectors.reconcile(&session, &post).await,
            }
        };
        let limit = Duration::from_secs(self.settings.publish_timeout_s + 5);
        let result = tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
            Err(ConnectorError::Unknown {
                message: "no answer from the network in time".into(),
            })
        });
        self.save_credentials(&session).await;
        result
    }

    async fn publish(self: Arc<Self>, claim: Claim, _permit: OwnedSemaphorePermit) {
        let d = &claim.delivery;
        let attempt = Attempt {
            retries: d.retries,
            deadline: d.deadline.and_utc(),
            max_retries: self.settings.max_retries,
        };
        let started = Utc::now();
        let hold = self
            .holds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&d.account_id)
            .copied()
            .filter(|until| *until > started);
        let result = match hold {
            Some(until) => Err(ConnectorError::RateLimited {
                retry_after: (until - started).to_std().unwrap_or_default(),
                message: "the account's rate-limit budget is spent until its reset".into(),
                status: None,
            }),
            None => match self.call(&claim, Call::Publish).await {
                Ok(Some(published)) => Ok(published),
                Ok(None) => Err(ConnectorError::Unknown {
                    message: "the connector answered without a post".into(),
                }),
                Err(error) => Err(error),
            },
        };
        let now = Utc::now();
        self.note_holds(&d.account_id, &result, now);
        let jitter = rand::thread_rng().gen::<f64>();
        let settle = policy::decide(attempt, &result, started, now, jitter);
        match &settle {
            Settle::Published { remote_id, .. } => {
                tracing::info!(delivery = %d.id, %remote_id, lateness_ms = (started - d.planned_at.and_utc()).num_milliseconds(), "published")
            }
            other => tracing::warn!(delivery = %d.id, outcome = ?other, "attempt did not publish"),
        }
        let _ = self.outcomes.send(Outcome {
            delivery_id: d.id.clone(),
            attempt: d.attempts,
            settle,
        });
    }

    fn note_holds(
        &self,
        account: &str,
        result: &Result<Published, ConnectorError>,
        now: DateTime<Utc>,
    ) {
        let until = match result {
            Ok(p) => p.pause_until,
            Err(ConnectorError::RateLimited { retry_after, .. }) => {
                chrono::Duration::from_std(*retry_after)
                    .ok()
                    .map(|d| now + d)
            }
            Err(_) => None,
        };
        if let Some(until) = until.filter(|u| *u > now) {
            let mut holds = self.holds.lock().unwrap_or_else(|p| p.into_inner());
            let entry = holds.entry(account.to_string()).or_insert(until);
            *entry = (*entry).max(until);
        }
    }

    /// Write outcomes in batches; never drop one (retry until the store takes it).
    async fn settle_loop(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<Outcome>) {
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while batch.len() < SETTLE_BATCH {
                match rx.try_recv() {
                    Ok(outcome) => batch.push(outcome),
                    Err(_) => break,
                }
            }
            let mut delay = Duration::from_millis(50);
            loop {
                let (owner, outcomes) = (self.owner.clone(), batch.clone());
                match self
                    .db(move |conn| deliveries::settle(conn, &owner, &outcomes))
                    .await
                {
                    Ok(_) => break,
                    Err(error) => {
                        tracing::warn!(%error, pending = batch.len(), "settling outcomes failed; retrying");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                }
            }
            // A retry may be due sooner than the loop's current sleep.
            self.waker.wake();
        }
    }

    /// Rescue leases whose owner went silent (crash, stall).
    pub async fn rescue_leases(&self) -> anyhow::Result<usize> {
        let rescued = self.db(deliveries::rescue_expired_leases).await?;
        if !rescued.is_empty() {
            tracing::warn!(count = rescued.len(), "expired leases rescued; reconciling");
        }
        Ok(rescued.len())
    }

    /// Check `unknown` outcomes with the networks.
    pub async fn reconcile_unknown(self: &Arc<Self>) -> anyhow::Result<usize> {
        let (owner, lease) = (self.owner.clone(), self.lease());
        let claims = self
            .db(move |conn| deliveries::claim_unknown(conn, &owner, 64, lease))
            .await?;
        let count = claims.len();
        let mut tasks = Vec::with_capacity(count);
        for claim in claims {
            let this = self.clone();
            tasks.push(tokio::spawn(async move { this.reconcile_one(claim).await }));
        }
        for task in tasks {
            let _ = task.await;
        }
        Ok(count)
    }

    async fn reconcile_one(&self, claim: Claim) {
        let d = &claim.delivery;
        let outcome = self.call(&claim, Call::Reconcile).await;
        let reconciled = match outcome {
            Ok(Some(p)) => Reconciled::Found {
                remote_id: p.remote_id,
                remote_url: p.remote_url,
            },
            Ok(None) => Reconciled::Absent,
            Err(error) => {
                let jitter = rand::thread_rng().gen::<f64>();
                Reconciled::StillUnknown {
                    error: error.to_string(),
                    retry_at: Utc::now()
                        + chrono::Duration::from_std(policy::reconcile_backoff(
                            d.reconcile_tries,
                            jitter,
                        ))
                        .unwrap_or_default(),
                    give_up: d.reconcile_tries >= self.settings.max_reconcile_tries,
                }
            }
        };
        tracing::info!(delivery = %d.id, outcome = ?reconciled, "reconciled");
        let (owner, id) = (self.owner.clone(), d.id.clone());
        if let Err(error) = self
            .db(move |conn| deliveries::settle_reconciliation(conn, &owner, &id, reconciled))
            .await
        {
            tracing::warn!(delivery = %d.id, %error, "recording a reconciliation failed");
        }
        self.waker.wake();
    }

    /// Mark overdue deliveries missed, even while nothing is being claimed.
    pub async fn sweep(&self) -> anyhow::Result<usize> {
        let missed = self
            .db(|conn| {
                deliveries::tx(conn, |conn| {
                    deliveries::sweep_missed(conn, crate::db::now())
                })
            })
            .await?;
        Ok(missed.len())
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "herald".into())
}
