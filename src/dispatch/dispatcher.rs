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

use chrono::{DateTime, Utc};
use rand::Rng;
use tokio::sync::{mpsc, watch, Notify, OwnedSemaphorePermit, Semaphore};

use super::policy::{self, Attempt};
use crate::accounts::sessions::Sessions;
use crate::config::DispatchSettings;
use crate::db::{self, DbConnection, DbPool};
use crate::deliveries::store::RemotePart;
use crate::deliveries::store::{self as deliveries, Claim, Outcome, Reconciled, Settle};
use crate::platforms::connector::part_key;
use crate::platforms::{
    AccountSession, ConnectorError, Connectors, MediaItem, Post, Published, ReplyTarget,
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
    sessions: Arc<Sessions>,
    connectors: Connectors,
    /// Where the networks fetch images uploaded to Herald (`<public URL>/v1/media`).
    media_base: String,
    owner: String,
    settings: DispatchSettings,
    waker: Waker,
    permits: Arc<Semaphore>,
    outcomes: mpsc::UnboundedSender<Outcome>,
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
        sessions: Arc<Sessions>,
        connectors: Connectors,
        settings: DispatchSettings,
        waker: Waker,
        public_url: &str,
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
            sessions,
            connectors,
            media_base: format!("{public_url}/v1/media"),
            owner,
            permits: Arc::new(Semaphore::new(settings.concurrency)),
            settings,
            waker,
            outcomes: tx,
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
        db::blocking(&self.pool, f).await
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

    /// The post for part `part` of `claim`: its text, key, reply target and
    /// (on the first part) images.
    fn post(&self, claim: &Claim, part: usize, reply_to: Option<ReplyTarget>) -> Post {
        let d = &claim.delivery;
        let content = &claim.content;
        let text = content.parts().nth(part).unwrap_or_default().to_string();
        let media = if part == 0 {
            content
                .media
                .iter()
                .map(|m| MediaItem {
                    url: match (&m.url, &m.media_id) {
                        (Some(url), _) => url.clone(),
                        (None, Some(id)) => format!("{}/{id}/content", self.media_base),
                        (None, None) => String::new(),
                    },
                    alt: m.alt.clone(),
                    content_type: None,
                })
                .filter(|m| !m.url.is_empty())
                .collect()
        } else {
            Vec::new()
        };
        Post {
            delivery_id: d.id.clone(),
            statement_id: d.statement_id.clone(),
            statement_version: d.statement_version,
            title: claim.title.clone(),
            kind: d.kind.clone(),
            text,
            language: claim.language.clone(),
            planned_at: d.planned_at.and_utc(),
            idempotency_key: part_key(&d.idempotency_key, part),
            first_attempt_at: d.first_attempt_at.unwrap_or(d.planned_at).and_utc(),
            deadline: d.deadline.and_utc(),
            part,
            reply_to,
            media,
        }
    }

    /// What part `part` answers: the part before it (the thread's first
    /// part as root), or, for the first part of a correction, the post
    /// being corrected.
    fn reply_target(claim: &Claim, done: &[RemotePart]) -> Option<ReplyTarget> {
        match (done.first(), done.last()) {
            (Some(first), Some(last)) => Some(ReplyTarget {
                root_id: claim
                    .reply_to
                    .as_ref()
                    .map_or_else(|| first.id.clone(), |t| t.root_id.clone()),
                parent_id: last.id.clone(),
                answers_reply: false,
            }),
            _ => claim.reply_to.clone(),
        }
    }

    /// Call the account's connector for `claim`, bounded in time; save the
    /// session if the connector refreshed it.
    async fn call(&self, claim: &Claim, call: Call) -> Result<Option<Published>, ConnectorError> {
        let session =
            self.sessions
                .get(&claim.account)
                .map_err(|reason| ConnectorError::AuthRevoked {
                    message: reason,
                    status: None,
                })?;
        let limit = Duration::from_secs(self.settings.publish_timeout_s + 5);
        let result = self.parts(claim, call, &session, limit).await;
        self.sessions.save(&session, None).await;
        result
    }

    /// Publish (or reconcile, then publish the rest of) every part of the
    /// claim's variant, from the first one not yet on the network. Each
    /// part of a thread is recorded as soon as it is out, so a retry or a
    /// reconciliation never sends a part twice.
    async fn parts(
        &self,
        claim: &Claim,
        call: Call,
        session: &AccountSession,
        limit: Duration,
    ) -> Result<Option<Published>, ConnectorError> {
        let total = claim.content.parts().count();
        let mut done = claim.delivery.progress();
        let mut last: Option<Published> = None;
        let mut first_call = Some(call);
        while done.len() < total {
            let part = done.len();
            let post = self.post(claim, part, Self::reply_target(claim, &done));
            let step = match first_call.take().unwrap_or(Call::Publish) {
                Call::Publish => {
                    tokio::time::timeout(limit, self.connectors.publish(session, &post))
                        .await
                        .map(|r| r.map(Some))
                }
                Call::Reconcile => {
                    tokio::time::timeout(limit, self.connectors.reconcile(session, &post)).await
                }
            };
            let published = match step {
                Err(_) => {
                    return Err(ConnectorError::Unknown {
                        message: "no answer from the network in time".into(),
                    })
                }
                Ok(Err(error)) => return Err(error),
                // Reconciliation: this part surely is not out; publishing may go on.
                Ok(Ok(None)) => return Ok(None),
                Ok(Ok(Some(p))) => p,
            };
            done.push(RemotePart {
                id: published.remote_id.clone(),
                url: published.remote_url.clone(),
            });
            if total > 1 {
                let (owner, id, parts) =
                    (self.owner.clone(), claim.delivery.id.clone(), done.clone());
                if let Err(error) = self
                    .db(move |conn| deliveries::save_progress(conn, &owner, &id, &parts))
                    .await
                {
                    tracing::warn!(delivery = %claim.delivery.id, %error, "recording thread progress failed");
                }
            }
            last = Some(published);
            if part + 1 < total && Utc::now() > claim.delivery.deadline.and_utc() {
                return Err(ConnectorError::Rejected {
                    message: format!(
                        "the window closed after {} of {total} parts of the thread",
                        part + 1
                    ),
                    status: None,
                });
            }
        }
        let first = done.first().cloned();
        Ok(match (first, last) {
            (Some(first), Some(last)) => Some(Published {
                remote_id: first.id,
                remote_url: first.url,
                pause_until: last.pause_until,
            }),
            // Every part was already out (recorded before a crash).
            (Some(first), None) => Some(Published {
                remote_id: first.id,
                remote_url: first.url,
                pause_until: None,
            }),
            _ => None,
        })
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
