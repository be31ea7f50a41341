//! The scheduler: tokio-cron-scheduler runs Herald's periodic work. It starts
//! with the server. Today it runs housekeeping; the delivery dispatcher, lease
//! rescue, reply polling and token refresh join it in later work.

use tokio_cron_scheduler::{Job, JobScheduler};

use crate::db::DbPool;

pub struct Scheduler {
    inner: JobScheduler,
}

impl Scheduler {
    pub async fn start(pool: DbPool) -> anyhow::Result<Self> {
        let inner = JobScheduler::new().await?;
        // Every 10 minutes: forget idempotency keys older than their retention.
        let job = Job::new_async("0 */10 * * * *", move |_id, _scheduler| {
            let pool = pool.clone();
            Box::pin(async move {
                let outcome = tokio::task::spawn_blocking(move || -> anyhow::Result<usize> {
                    let mut conn = pool.get()?;
                    Ok(crate::http::idempotency::purge_expired(&mut conn)?)
                })
                .await;
                match outcome {
                    Ok(Ok(0)) => {}
                    Ok(Ok(n)) => tracing::debug!(purged = n, "expired idempotency keys removed"),
                    Ok(Err(error)) => tracing::warn!(%error, "idempotency housekeeping failed"),
                    Err(error) => tracing::warn!(%error, "idempotency housekeeping panicked"),
                }
            })
        })?;
        inner.add(job).await?;
        inner.start().await?;
        Ok(Self { inner })
    }

    pub async fn shutdown(mut self) {
        if let Err(error) = self.inner.shutdown().await {
            tracing::warn!(%error, "scheduler did not stop cleanly");
        }
    }
}
