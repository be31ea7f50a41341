//! The scheduler: the dispatch loop that publishes deliveries on time
//! (`dispatcher.rs`), the rules for retries (`policy.rs`), the pause switch
//! (`routes.rs`), and the periodic work tokio-cron-scheduler runs: lease
//! rescue, reconciliation of unknown outcomes, a safety sweep for missed
//! deliveries, token refresh and preflight checks of accounts
//! (`accounts::lifecycle`), reply collection (`replies::collector`),
//! outbound webhooks (`webhooks::sender`), and housekeeping.

pub mod dispatcher;
pub mod policy;
pub mod routes;

use std::future::Future;
use std::sync::Arc;

use tokio_cron_scheduler::{Job, JobScheduler};

pub use dispatcher::{Dispatcher, DispatcherHandle, Waker};

use crate::accounts::lifecycle::Lifecycle;
use crate::db::DbPool;
use crate::replies::collector::Collector;

/// The periodic work besides the dispatcher's, and how often each runs.
pub struct Periodic {
    pub lifecycle: Arc<Lifecycle>,
    pub account_jobs_every: std::time::Duration,
    pub collector: Arc<Collector>,
    pub replies_every: std::time::Duration,
    pub webhooks: Arc<crate::webhooks::Sender>,
    pub webhooks_every: std::time::Duration,
}

pub struct Scheduler {
    inner: JobScheduler,
    dispatcher: Option<DispatcherHandle>,
}

/// When a job runs: on a cron schedule, or every so often.
enum When<'a> {
    Cron(&'a str),
    Every(std::time::Duration),
}

/// A job running `work` on each tick; failures are logged, never fatal.
fn job<F, Fut>(when: When<'_>, name: &'static str, work: F) -> anyhow::Result<Job>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<usize>> + Send + 'static,
{
    let work = Arc::new(work);
    let run = move |_id, _scheduler| -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
        let work = work.clone();
        Box::pin(async move {
            match work().await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(job = name, count = n, "periodic work done"),
                Err(error) => tracing::warn!(job = name, %error, "periodic work failed"),
            }
        })
    };
    Ok(match when {
        When::Cron(schedule) => Job::new_async(schedule, run)?,
        When::Every(every) => Job::new_repeated_async(every, run)?,
    })
}

impl Scheduler {
    /// Start the periodic work, and the dispatcher's when there is one.
    pub async fn start(
        pool: DbPool,
        dispatcher: Option<DispatcherHandle>,
        periodic: Periodic,
    ) -> anyhow::Result<Self> {
        let Periodic {
            lifecycle,
            account_jobs_every,
            collector,
            replies_every,
            webhooks,
            webhooks_every,
        } = periodic;
        let inner = JobScheduler::new().await?;
        inner
            .add(job(
                When::Every(webhooks_every),
                "webhook-outbox",
                move || {
                    let w = webhooks.clone();
                    async move { w.run_due().await }
                },
            )?)
            .await?;
        inner
            .add(job(
                When::Every(replies_every),
                "reply-collection",
                move || {
                    let c = collector.clone();
                    async move { c.run_due().await }
                },
            )?)
            .await?;
        let l = lifecycle.clone();
        inner
            .add(job(
                When::Every(account_jobs_every),
                "token-refresh",
                move || {
                    let l = l.clone();
                    async move { l.refresh_due().await }
                },
            )?)
            .await?;
        let l = lifecycle;
        inner
            .add(job(
                When::Every(account_jobs_every),
                "preflight",
                move || {
                    let l = l.clone();
                    async move { l.preflight_due().await }
                },
            )?)
            .await?;
        inner
            .add(job(
                When::Cron("0 */10 * * * *"),
                "idempotency-purge",
                move || {
                    let pool = pool.clone();
                    async move {
                        tokio::task::spawn_blocking(move || -> anyhow::Result<usize> {
                            let mut conn = pool.get()?;
                            Ok(crate::http::idempotency::purge_expired(&mut conn)?)
                        })
                        .await?
                    }
                },
            )?)
            .await?;
        if let Some(handle) = &dispatcher {
            let d = handle.dispatcher.clone();
            inner
                .add(job(
                    When::Cron("*/5 * * * * *"),
                    "lease-rescue",
                    move || {
                        let d = d.clone();
                        async move { d.rescue_leases().await }
                    },
                )?)
                .await?;
            let d = handle.dispatcher.clone();
            inner
                .add(job(When::Cron("*/2 * * * * *"), "reconcile", move || {
                    let d = d.clone();
                    async move { d.reconcile_unknown().await }
                })?)
                .await?;
            let d = handle.dispatcher.clone();
            inner
                .add(job(
                    When::Cron("*/30 * * * * *"),
                    "missed-sweep",
                    move || {
                        let d = d.clone();
                        async move { d.sweep().await }
                    },
                )?)
                .await?;
        }
        inner.start().await?;
        Ok(Self { inner, dispatcher })
    }

    /// Stop the periodic work, then the dispatcher (in-flight posts finish).
    pub async fn shutdown(mut self) {
        if let Err(error) = self.inner.shutdown().await {
            tracing::warn!(%error, "scheduler did not stop cleanly");
        }
        if let Some(handle) = self.dispatcher.take() {
            handle.stop().await;
        }
    }
}
