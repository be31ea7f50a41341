//! The reply-collection job. Each published delivery on a network that has
//! replies gets a poll row; a tokio-cron-scheduler job takes the due ones
//! (leased, so instances share the work), asks the connector for what is
//! new since the stored cursor, and stores each reply once, scored and
//! triaged, with its webhook events, in one transaction with the new cursor.
//!
//! Cadence (settings `HERALD_REPLIES_*`): every minute during the first
//! hour, every 5 minutes until 24 h, hourly until 7 days, then never. A
//! network's rate-limit answer moves the next poll to its reset; a
//! per-account budget (`catalog::reply_budget`) keeps polling inside a
//! share of each network's read limit in this process.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use diesel::prelude::*;
use futures_util::stream::{self, StreamExt};

use super::spike::{self, Scope};
use super::store::{self, PollRow, ReplyRow};
use crate::accounts::lifecycle::mark_needs_reauth;
use crate::accounts::sessions::Sessions;
use crate::accounts::store::AccountRow;
use crate::accounts::AccountStatus;
use crate::config::ReplySettings;
use crate::db::schema::accounts;
use crate::db::{self, DbConnection, DbPool};
use crate::deliveries::store::DeliveryRow;
use crate::platforms::catalog::{self, reply_budget};
use crate::platforms::{ConnectorError, Connectors, FetchedReply, Platform, ReplyQuery};
use crate::sentiment;

/// Polls taken per run, and polled at once.
const BATCH: i64 = 100;
const CONCURRENCY: usize = 8;

pub struct Collector {
    pool: DbPool,
    sessions: Arc<Sessions>,
    connectors: Connectors,
    settings: ReplySettings,
    timeout: Duration,
    /// Per account: the instants of its recent reads (the budget window).
    budget: Mutex<HashMap<String, VecDeque<Instant>>>,
}

/// What one poll did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollReport {
    pub new_replies: usize,
    pub error: Option<String>,
}

impl Collector {
    pub fn new(
        pool: DbPool,
        sessions: Arc<Sessions>,
        connectors: Connectors,
        settings: ReplySettings,
        publish_timeout_s: u64,
    ) -> Arc<Self> {
        Arc::new(Self {
            pool,
            sessions,
            connectors,
            settings,
            timeout: Duration::from_secs(publish_timeout_s + 5),
            budget: Mutex::new(HashMap::new()),
        })
    }

    async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut DbConnection) -> QueryResult<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        db::blocking(&self.pool, f).await
    }

    /// One run of the job: start tracking newly published posts, poll the
    /// due ones, close negative episodes that are over. Returns the number
    /// of new replies.
    pub async fn run_due(&self) -> anyhow::Result<usize> {
        self.consume_telegram().await?;
        let now = db::now();
        let since = store::before(now, self.settings.track_s);
        let platforms: Vec<&'static str> = Platform::ALL
            .into_iter()
            .filter(|p| catalog::info(*p).replies)
            .map(Platform::as_str)
            .collect();
        self.db(move |conn| store::start_polls(conn, &platforms, since))
            .await?;
        let lease_until = now + chrono::Duration::seconds(self.timeout.as_secs() as i64 * 4 + 30);
        let polls = self
            .db(move |conn| store::claim_polls(conn, now, lease_until, BATCH))
            .await?;
        let found: Vec<anyhow::Result<PollReport>> = stream::iter(polls)
            .map(|poll| self.poll(poll))
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut total = 0;
        for report in found {
            match report {
                Ok(report) => total += report.new_replies,
                Err(error) => tracing::warn!(%error, "reply poll failed"),
            }
        }
        let settings = self.settings.clone();
        self.db(move |conn| {
            for scope in spike::open_scopes(conn)? {
                crate::deliveries::store::tx(conn, |conn| {
                    spike::check(conn, &scope, db::now(), &settings)
                })?;
            }
            Ok(())
        })
        .await?;
        Ok(total)
    }

    /// Poll one delivery now (it must be leased by this caller).
    pub async fn poll(&self, poll: PollRow) -> anyhow::Result<PollReport> {
        let delivery_id = poll.delivery_id.clone();
        let loaded = self
            .db(
                move |conn| -> QueryResult<Option<(DeliveryRow, AccountRow, Vec<String>)>> {
                    let Some(delivery) = crate::deliveries::store::find(conn, &delivery_id)? else {
                        return Ok(None);
                    };
                    let account: AccountRow = accounts::table
                        .find(&delivery.account_id)
                        .select(AccountRow::as_select())
                        .first(conn)?;
                    let own = store::own_ids_under(conn, &delivery_id)?;
                    Ok(Some((delivery, account, own)))
                },
            )
            .await?;
        let now = db::now();
        let Some((delivery, account, answers)) = loaded else {
            self.finish(
                &poll,
                None,
                None,
                Some("the delivery no longer exists"),
                false,
            )
            .await?;
            return Ok(PollReport::default());
        };
        let next = next_poll(poll.published_at, now, &self.settings);
        if delivery.status != "published" || delivery.retracted_at.is_some() {
            // Retracted: nothing left to answer.
            self.finish(&poll, None, None, None, false).await?;
            return Ok(PollReport::default());
        }
        if account.removed_at.is_some() || account.status != AccountStatus::Active.as_str() {
            // Wait for the account to be reconnected; keep the cadence.
            let error = format!("the account is {}", account.status);
            self.finish(&poll, None, next, Some(&error), false).await?;
            return Ok(PollReport {
                new_replies: 0,
                error: Some(error),
            });
        }
        let platform = Platform::parse(&account.platform);
        if let Some(wait) = platform.and_then(|p| self.spend_budget(&account.id, p)) {
            let at = now + chrono::Duration::from_std(wait).unwrap_or_default();
            self.finish(&poll, None, Some(at), None, false).await?;
            return Ok(PollReport::default());
        }
        let session = self
            .sessions
            .get(&account)
            .map_err(|e| anyhow::anyhow!("account {}: {e}", account.id))?;
        let parts = delivery.parts();
        let Some(root) = parts.first() else {
            self.finish(
                &poll,
                None,
                None,
                Some("the delivery has no remote post"),
                false,
            )
            .await?;
            return Ok(PollReport::default());
        };
        let query = ReplyQuery {
            root_id: root.id.clone(),
            own_ids: parts.iter().map(|p| p.id.clone()).chain(answers).collect(),
            cursor: poll.cursor.clone(),
            published_at: poll.published_at.and_utc(),
        };
        let answer = if platform == Some(Platform::Telegram) {
            // From the store `consume_updates` fills: never getUpdates per delivery.
            let (account_id, query) = (account.id.clone(), query.clone());
            Ok(self
                .db(move |conn| {
                    super::telegram::replies_for(
                        conn,
                        &account_id,
                        &query.root_id,
                        &query.own_ids,
                        query.cursor.as_deref(),
                    )
                })
                .await?)
        } else {
            tokio::time::timeout(self.timeout, self.connectors.replies(&session, &query))
                .await
                .unwrap_or_else(|_| {
                    Err(ConnectorError::Transient {
                        message: "the network did not answer in time".into(),
                        status: None,
                    })
                })
        };
        self.sessions.save(&session, None).await;
        match answer {
            Ok(page) => {
                let new_replies = self
                    .store(
                        &poll,
                        &delivery,
                        &query.own_ids,
                        page.replies,
                        page.cursor,
                        next,
                    )
                    .await?;
                Ok(PollReport {
                    new_replies,
                    error: None,
                })
            }
            Err(error) => {
                let message = error.to_string();
                let retry_at = match &error {
                    ConnectorError::RateLimited { retry_after, .. } => Some(
                        now + chrono::Duration::from_std(*retry_after)
                            .unwrap_or_else(|_| chrono::Duration::hours(1)),
                    ),
                    // Discord reads with the bot token, which publishing
                    // (through the webhook) does not need: only the polls stop.
                    ConnectorError::AuthRevoked { .. } if platform == Some(Platform::Discord) => {
                        next
                    }
                    ConnectorError::AuthRevoked { .. } => {
                        let account_id = account.id.clone();
                        let reason = message.clone();
                        self.db(move |conn| mark_needs_reauth(conn, &account_id, &reason))
                            .await?;
                        next
                    }
                    _ => next,
                };
                // Past the tracking period a failure still ends the polls.
                let retry_at = next.and(retry_at);
                self.finish(&poll, None, retry_at, Some(&message), true)
                    .await?;
                Ok(PollReport {
                    new_replies: 0,
                    error: Some(message),
                })
            }
        }
    }

    /// Telegram: read each bot's update queue once per run (one queue per
    /// bot, confirmed as it is read); the polls then read the store.
    async fn consume_telegram(&self) -> anyhow::Result<()> {
        let consumed = match super::telegram::consume_updates(
            &self.pool,
            &self.sessions,
            &self.connectors.telegram,
        )
        .await
        {
            Ok(consumed) => consumed,
            Err(error) => {
                tracing::warn!(%error, "storing telegram comments failed");
                return Ok(());
            }
        };
        for failure in consumed.failures {
            // A refused bot token fails publishing the same way.
            if matches!(failure.error, ConnectorError::AuthRevoked { .. }) {
                let reason = failure.error.to_string();
                let ids = failure.account_ids;
                self.db(move |conn| {
                    for id in &ids {
                        mark_needs_reauth(conn, id, &reason)?;
                    }
                    Ok(())
                })
                .await?;
            }
        }
        Ok(())
    }

    async fn finish(
        &self,
        poll: &PollRow,
        cursor: Option<String>,
        next: Option<NaiveDateTime>,
        error: Option<&str>,
        polled: bool,
    ) -> anyhow::Result<()> {
        let id = poll.delivery_id.clone();
        let error = error.map(str::to_string);
        self.db(move |conn| {
            store::finish_poll(conn, &id, cursor.as_deref(), next, error.as_deref(), polled)
        })
        .await
    }

    /// Store what a poll found, in one transaction with the new cursor:
    /// each new reply scored and triaged, its webhook events queued, and
    /// the tone of its statement and account checked.
    async fn store(
        &self,
        poll: &PollRow,
        delivery: &DeliveryRow,
        own_ids: &[String],
        found: Vec<FetchedReply>,
        cursor: Option<String>,
        next: Option<NaiveDateTime>,
    ) -> anyhow::Result<usize> {
        let now = db::now();
        let own: HashSet<&String> = own_ids.iter().collect();
        let rows: Vec<ReplyRow> = found
            .into_iter()
            .filter(|r| !own.contains(&r.remote_id))
            .map(|r| scored(delivery, r, now))
            .collect();
        let delivery_id = poll.delivery_id.clone();
        let account_id = delivery.account_id.clone();
        let lineage = delivery.lineage_id.clone();
        let settings = self.settings.clone();
        self.db(move |conn| {
            crate::deliveries::store::tx(conn, |conn| {
                let candidates: Vec<String> = rows.iter().map(|r| r.remote_id.clone()).collect();
                let own = store::own_remote_ids(conn, &account_id, &candidates)?;
                let rows = rows
                    .into_iter()
                    .filter(|r| !own.contains(&r.remote_id))
                    .collect();
                let inserted = store::insert_new(conn, rows)?;
                for reply in &inserted {
                    let payload = super::routes::payload(reply);
                    crate::webhooks::enqueue(conn, "reply.received", payload.clone())?;
                    if reply.follow_up == super::FollowUp::NeedsResponse.as_str() {
                        crate::webhooks::enqueue(conn, "reply.needs_response", payload)?;
                    }
                }
                store::finish_poll(conn, &delivery_id, cursor.as_deref(), next, None, true)?;
                if !inserted.is_empty() {
                    spike::check(conn, &Scope::Statement(lineage), now, &settings)?;
                    spike::check(conn, &Scope::Account(account_id), now, &settings)?;
                }
                Ok(inserted.len())
            })
        })
        .await
    }

    /// Take one read from the account's budget; `Some(wait)` when it is
    /// spent (the wait until the oldest read leaves the window).
    fn spend_budget(&self, account_id: &str, platform: Platform) -> Option<Duration> {
        let (calls, window_s) = reply_budget(platform)?;
        let mut budget = self.budget.lock().unwrap_or_else(|p| p.into_inner());
        let reads = budget.entry(account_id.to_string()).or_default();
        take_read(
            reads,
            Instant::now(),
            calls as usize,
            Duration::from_secs(window_s),
        )
    }
}

/// A sliding-window budget of `calls` reads per `window`: record a read at
/// `now`, or say how long until one is allowed.
fn take_read(
    reads: &mut VecDeque<Instant>,
    now: Instant,
    calls: usize,
    window: Duration,
) -> Option<Duration> {
    while reads
        .front()
        .is_some_and(|t| now.duration_since(*t) >= window)
    {
        reads.pop_front();
    }
    if reads.len() >= calls {
        let oldest = reads.front().copied().unwrap_or(now);
        return Some(window.saturating_sub(now.duration_since(oldest)));
    }
    reads.push_back(now);
    None
}

/// A fetched reply, scored and triaged, ready for the store.
fn scored(delivery: &DeliveryRow, reply: FetchedReply, now: NaiveDateTime) -> ReplyRow {
    let sentiment = sentiment::analyze(&reply.text);
    let question = sentiment::is_question(&reply.text);
    let (follow_up, reason) = super::triage(&sentiment, question);
    ReplyRow {
        id: db::new_id(),
        delivery_id: delivery.id.clone(),
        statement_id: delivery.statement_id.clone(),
        lineage_id: delivery.lineage_id.clone(),
        account_id: delivery.account_id.clone(),
        platform: delivery.platform.clone(),
        remote_id: reply.remote_id,
        parent_remote_id: reply.parent_id,
        author: reply.author,
        text: reply.text,
        url: reply.url,
        created_at: db::truncate_micros(reply.created_at.naive_utc()),
        collected_at: now,
        language: sentiment.language.map(|l| l.as_str().to_string()),
        sentiment: sentiment.label.as_str().to_string(),
        score: sentiment.score,
        question,
        follow_up: follow_up.as_str().to_string(),
        follow_up_reason: reason,
        assignee: None,
        first_response_at: None,
        updated_at: now,
    }
}

/// When to poll a post published at `published_at` next, seen at `now`:
/// `None` once it is older than the tracking period.
pub fn next_poll(
    published_at: NaiveDateTime,
    now: NaiveDateTime,
    s: &ReplySettings,
) -> Option<NaiveDateTime> {
    let age = (now - published_at).num_seconds().max(0) as u64;
    if age >= s.track_s {
        return None;
    }
    let every = if age < s.fast_until_s {
        s.fast_s
    } else if age < s.medium_until_s {
        s.medium_s
    } else {
        s.slow_s
    };
    Some(now + chrono::Duration::seconds(every as i64))
}

/// How many polls a delivery had, for the API and tests.
pub fn poll_count(conn: &mut DbConnection, delivery_id: &str) -> QueryResult<i32> {
    Ok(store::poll_of(conn, delivery_id)?.map_or(0, |p| p.polls))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cadence_slows_down_with_age_then_stops() {
        let s = ReplySettings::default();
        let t0 = db::now();
        let at = |age_s: i64| t0 + chrono::Duration::seconds(age_s);
        let gap = |age_s: i64| next_poll(t0, at(age_s), &s).map(|n| (n - at(age_s)).num_seconds());
        assert_eq!(gap(0), Some(60));
        assert_eq!(gap(3_599), Some(60));
        assert_eq!(gap(3_600), Some(300));
        assert_eq!(gap(86_399), Some(300));
        assert_eq!(gap(86_400), Some(3_600));
        assert_eq!(gap(7 * 86_400 - 1), Some(3_600));
        assert_eq!(gap(7 * 86_400), None);
    }

    #[test]
    fn the_budget_holds_reads_inside_the_window() {
        let t0 = Instant::now();
        let window = Duration::from_secs(300);
        let mut reads = VecDeque::new();
        for _ in 0..3 {
            assert_eq!(take_read(&mut reads, t0, 3, window), None);
        }
        // The fourth read waits for the first to leave the window.
        let later = t0 + Duration::from_secs(100);
        assert_eq!(
            take_read(&mut reads, later, 3, window),
            Some(Duration::from_secs(200))
        );
        assert_eq!(reads.len(), 3, "a refused read is not counted");
        let after = t0 + Duration::from_secs(300);
        assert_eq!(take_read(&mut reads, after, 3, window), None);
        assert_eq!(reads.len(), 1);
    }
}
