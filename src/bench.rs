//! `herald bench dispatch`: how punctual and how fast the dispatcher is,
//! against a local fake Mastodon, with Herald running as a separate
//! `herald serve` process (so its peak RSS is its own).
//!
//! - *spread*: deliveries planned uniformly over a window: lateness of the
//!   request start (Herald's `lateness_ms`) and of the arrival at the fake.
//! - *burst*: deliveries all due at the same instant: throughput and lateness.
//! - *floor*: the same number of POSTs sent straight to the fake with the same
//!   HTTP client and concurrency, no Herald in between.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use crate::accounts::store::{self as accounts, NewAccount};
use crate::config::Settings;
use crate::crypto::SecretKey;
use crate::db::schema::deliveries;
use crate::db::{self, DatabaseUrl, DbPool};
use crate::deliveries::store::{self as store, ScheduleRequest};
use crate::fakes::mastodon::{FakeMastodon, FakeMastodonConfig};
use crate::platforms::Platform;
use crate::statements::store::{self as statements, NewStatement};
use crate::statements::Kind;

#[derive(Debug, Clone)]
pub struct Options {
    /// `None`: a SQLite file in a temporary folder.
    pub database_url: Option<String>,
    pub spread: usize,
    pub spread_window: Duration,
    pub burst: usize,
    pub concurrency: usize,
}

/// Percentiles of a sample, in milliseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Summary {
    pub n: usize,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

pub fn summarize(mut values: Vec<f64>) -> Summary {
    if values.is_empty() {
        return Summary::default();
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let pick = |q: f64| {
        let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
        values[rank - 1]
    };
    Summary {
        n: values.len(),
        p50: pick(0.50),
        p99: pick(0.99),
        max: values[values.len() - 1],
    }
}

struct Herald {
    child: tokio::process::Child,
    pid: u32,
}

impl Herald {
    fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }
}

async fn spawn_herald(url: &str, secret: &str, concurrency: usize) -> anyhow::Result<Herald> {
    let exe = std::env::current_exe()?;
    let child = tokio::process::Command::new(exe)
        .arg("serve")
        .env("HERALD_DATABASE_URL", url)
        .env("HERALD_BIND", "127.0.0.1:0")
        .env("HERALD_SECRET_KEY", secret)
        .env("HERALD_LOG", "error")
        .env("HERALD_DISPATCH_CONCURRENCY", concurrency.to_string())
        .env("HERALD_POOL_SIZE", "8")
        .kill_on_drop(true)
        .spawn()
        .context("start herald serve")?;
    let pid = child.id().context("herald serve exited at once")?;
    Ok(Herald { child, pid })
}

/// Store an approved statement with a Mastodon variant and one account on the fake.
fn setup(
    pool: &DbPool,
    secret: &SecretKey,
    fake: &str,
    token: &str,
) -> anyhow::Result<(String, String)> {
    let mut conn = pool.get()?;
    let statement = statements::create(
        &mut conn,
        "bench-author",
        NewStatement {
            title: "Bench".into(),
            kind: Kind::Crisis,
            severity: Some(crate::statements::Severity::Minor),
            language: Some("en".into()),
            variants: vec![(
                Platform::Mastodon,
                crate::statements::VariantContent::text("Service update: all systems are back."),
            )],
        },
    )?;
    let id = statement.row.id.clone();
    statements::submit(&mut conn, "bench-author", &id)?;
    statements::approve(&mut conn, "bench-approver", &id)?;
    let plaintext = serde_json::to_vec(&serde_json::json!({"access_token": token}))?;
    let account = accounts::create(
        &mut conn,
        "bench",
        NewAccount {
            platform: Platform::Mastodon,
            name: format!("bench-{}", db::new_id()),
            base_url: Some(fake.to_string()),
            max_characters: None,
            token_expires_at: None,
        },
        |row| secret.seal(&plaintext, row),
    )?;
    Ok((id, account.id))
}

/// Schedule `times.len()` deliveries of one statement to one account.
fn schedule_many(
    pool: &DbPool,
    statement: &str,
    account: &str,
    times: &[DateTime<Utc>],
) -> anyhow::Result<Vec<String>> {
    let mut conn = pool.get()?;
    let mut ids = Vec::with_capacity(times.len());
    for at in times {
        let rows = store::schedule(
            &mut conn,
            "bench",
            &ScheduleRequest {
                statement_id: statement.into(),
                account_ids: vec![account.into()],
                planned_at: *at,
                timezone: None,
                max_lateness_s: 3600,
                reply_to: Vec::new(),
            },
        )?;
        ids.extend(rows.into_iter().map(|r| r.idempotency_key));
    }
    Ok(ids)
}

/// Wait until every delivery in `keys` is settled (published or not).
async fn wait_settled(pool: &DbPool, keys: &[String], limit: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    let keys = keys.to_vec();
    loop {
        let pool = pool.clone();
        let keys = keys.clone();
        let pending: i64 = tokio::task::spawn_blocking(move || -> anyhow::Result<i64> {
            let mut conn = pool.get()?;
            let mut pending = 0;
            for chunk in keys.chunks(500) {
                pending += deliveries::table
                    .filter(deliveries::idempotency_key.eq_any(chunk))
                    .filter(deliveries::status.eq_any(["scheduled", "publishing", "unknown"]))
                    .count()
                    .get_result::<i64>(&mut conn)?;
            }
            Ok(pending)
        })
        .await??;
        if pending == 0 {
            return Ok(());
        }
        if started.elapsed() > limit {
            anyhow::bail!("{pending} deliveries still pending after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the store says of one delivery: planned instant, `lateness_ms`, status.
type Settled = (NaiveDateTime, Option<i64>, String);

/// Idempotency key → what the store says of that delivery.
fn outcomes(pool: &DbPool, keys: &[String]) -> anyhow::Result<HashMap<String, Settled>> {
    let mut conn = pool.get()?;
    let mut map = HashMap::new();
    for chunk in keys.chunks(500) {
        let rows: Vec<(String, NaiveDateTime, Option<i64>, String)> = deliveries::table
            .filter(deliveries::idempotency_key.eq_any(chunk))
            .select((
                deliveries::idempotency_key,
                deliveries::planned_at,
                deliveries::lateness_ms,
                deliveries::status,
            ))
            .load(&mut conn)?;
        for (k, p, l, s) in rows {
            map.insert(k, (p, l, s));
        }
    }
    Ok(map)
}

pub struct PhaseReport {
    pub published: usize,
    pub failed: usize,
    /// Herald's request start minus the planned instant.
    pub request_lateness: Summary,
    /// Arrival at the fake minus the planned instant.
    pub arrival_lateness: Summary,
    /// First planned instant to the last arrival at the fake.
    pub makespan: Duration,
}

fn phase_report(
    fake: &FakeMastodon,
    pool: &DbPool,
    keys: &[String],
    first_planned: DateTime<Utc>,
) -> anyhow::Result<PhaseReport> {
    let outcomes = outcomes(pool, keys)?;
    let mut arrival = Vec::new();
    let mut last = first_planned;
    let mut seen = HashMap::new();
    for post in fake.posts() {
        let Some(key) = post.idempotency_key.as_ref() else {
            continue;
        };
        if let Some((planned, _, _)) = outcomes.get(key) {
            *seen.entry(key.clone()).or_insert(0usize) += 1;
            arrival.push(
                (post.received_at - planned.and_utc())
                    .num_microseconds()
                    .unwrap_or(0) as f64
                    / 1000.0,
            );
            last = last.max(post.received_at);
        }
    }
    if let Some((key, n)) = seen.iter().find(|(_, n)| **n > 1) {
        anyhow::bail!("delivery {key} reached the network {n} times");
    }
    let request: Vec<f64> = outcomes
        .values()
        .filter_map(|(_, l, _)| l.map(|ms| ms as f64))
        .collect();
    Ok(PhaseReport {
        published: outcomes
            .values()
            .filter(|(_, _, s)| s == "published")
            .count(),
        failed: outcomes
            .values()
            .filter(|(_, _, s)| s != "published")
            .count(),
        request_lateness: summarize(request),
        arrival_lateness: summarize(arrival),
        makespan: (last - first_planned).to_std().unwrap_or_default(),
    })
}

pub struct Report {
    pub backend: &'static str,
    pub spread: PhaseReport,
    pub burst: PhaseReport,
    pub floor: Duration,
    pub floor_n: usize,
    pub burst_n: usize,
    pub peak_rss_kib: Option<u64>,
    pub concurrency: usize,
}

impl Report {
    pub fn render(&self) -> String {
        let s = &self.spread;
        let b = &self.burst;
        let burst_rate = self.burst_n as f64 / b.makespan.as_secs_f64().max(1e-9);
        let floor_rate = self.floor_n as f64 / self.floor.as_secs_f64().max(1e-9);
        format!(
            "backend: {}, dispatch concurrency: {}\n\
             spread: {} published, {} not; request-start lateness ms p50 {:.1} p99 {:.1} max {:.1}; arrival lateness ms p50 {:.1} p99 {:.1} max {:.1}\n\
             burst: {} published, {} not; last published {:.2} s after the due instant; {:.0} deliveries/s; request-start lateness ms p50 {:.0} p99 {:.0}\n\
             floor: {} POSTs straight to the fake in {:.2} s: {:.0} requests/s\n\
             burst / floor: {:.0} %\n\
             herald peak RSS: {}\n",
            self.backend,
            self.concurrency,
            s.published,
            s.failed,
            s.request_lateness.p50,
            s.request_lateness.p99,
            s.request_lateness.max,
            s.arrival_lateness.p50,
            s.arrival_lateness.p99,
            s.arrival_lateness.max,
            b.published,
            b.failed,
            b.makespan.as_secs_f64(),
            burst_rate,
            b.request_lateness.p50,
            b.request_lateness.p99,
            self.floor_n,
            self.floor.as_secs_f64(),
            floor_rate,
            100.0 * burst_rate / floor_rate,
            self.peak_rss_kib
                .map(|k| format!("{:.1} MiB", k as f64 / 1024.0))
                .unwrap_or_else(|| "unknown".into()),
        )
    }
}

/// Send `n` posts straight to the fake with Herald's own client settings.
async fn floor(
    fake: &FakeMastodon,
    token: &str,
    n: usize,
    concurrency: usize,
) -> anyhow::Result<Duration> {
    let mut settings = Settings::from_sources(None, |_| None)?;
    settings.dispatch.concurrency = concurrency;
    let client = crate::app::http_client(&settings)?;
    let url = format!("{}/api/v1/statuses", fake.base_url());
    let gate = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let permit = gate.clone().acquire_owned().await?;
        let (client, url, token) = (client.clone(), url.clone(), token.to_string());
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let response = client
                .post(&url)
                .bearer_auth(token)
                .header("Idempotency-Key", format!("floor-{i}"))
                .form(&[
                    ("status", "Service update: all systems are back."),
                    ("visibility", "public"),
                ])
                .send()
                .await?;
            let ok = response.status().is_success();
            let _ = response.bytes().await?;
            anyhow::ensure!(ok, "the fake refused a floor post");
            Ok::<_, anyhow::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(started.elapsed())
}

pub async fn dispatch(options: Options) -> anyhow::Result<Report> {
    let dir = tempfile_dir()?;
    let url = options
        .database_url
        .clone()
        .unwrap_or_else(|| dir.join("bench.db").to_string_lossy().into_owned());
    let database = DatabaseUrl::parse(&url).map_err(|e| anyhow::anyhow!(e))?;
    let backend = database.backend();
    let secret = SecretKey::generate();
    let mut settings = Settings::from_sources(None, |_| None)?;
    settings.database_url = database;
    let pool = crate::app::open_store(&settings).await?;

    let fake = FakeMastodon::start_with(FakeMastodonConfig {
        rate_limit: None,
        workers: 2,
        ..FakeMastodonConfig::default()
    })
    .await;
    let token = fake.add_account("bench");
    let floor_token = fake.add_account("floor");
    let (statement, account) = {
        let (pool, secret, base, token) =
            (pool.clone(), secret.clone(), fake.base_url(), token.clone());
        tokio::task::spawn_blocking(move || setup(&pool, &secret, &base, &token)).await??
    };
    let herald = spawn_herald(&url, &secret.to_base64(), options.concurrency).await?;

    // Spread: planned uniformly over the window, starting after setup.
    let start = Utc::now()
        + chrono::Duration::seconds(3)
        + chrono::Duration::milliseconds(options.spread as i64 * 2);
    let step = options.spread_window.as_secs_f64() / options.spread.max(1) as f64;
    let times: Vec<DateTime<Utc>> = (0..options.spread)
        .map(|i| start + chrono::Duration::microseconds((i as f64 * step * 1e6) as i64))
        .collect();
    let spread_keys = {
        let (pool, statement, account) = (pool.clone(), statement.clone(), account.clone());
        tokio::task::spawn_blocking(move || schedule_many(&pool, &statement, &account, &times))
            .await??
    };
    wait_settled(
        &pool,
        &spread_keys,
        options.spread_window + Duration::from_secs(120),
    )
    .await?;
    let spread = phase_report(&fake, &pool, &spread_keys, start)?;

    // Burst: stored far ahead, then all moved to one instant.
    let far = Utc::now() + chrono::Duration::days(1);
    let burst_keys = {
        let (pool, statement, account) = (pool.clone(), statement.clone(), account.clone());
        let times = vec![far; options.burst];
        tokio::task::spawn_blocking(move || schedule_many(&pool, &statement, &account, &times))
            .await??
    };
    let due = Utc::now() + chrono::Duration::seconds(2);
    {
        let (pool, keys) = (pool.clone(), burst_keys.clone());
        let at = db::truncate_micros(due.naive_utc());
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let mut conn = pool.get()?;
            conn.transaction(|conn| {
                for chunk in keys.chunks(500) {
                    diesel::update(
                        deliveries::table.filter(deliveries::idempotency_key.eq_any(chunk)),
                    )
                    .set((
                        deliveries::planned_at.eq(at),
                        deliveries::next_attempt_at.eq(Some(at)),
                        deliveries::deadline.eq(at + chrono::Duration::hours(1)),
                    ))
                    .execute(conn)?;
                }
                diesel::QueryResult::Ok(())
            })?;
            Ok(())
        })
        .await??;
    }
    wait_settled(&pool, &burst_keys, Duration::from_secs(600)).await?;
    let burst = phase_report(&fake, &pool, &burst_keys, due)?;
    let peak_rss_kib = herald.peak_rss_kib();
    let mut child = herald.child;
    let _ = child.kill().await;

    let floor = floor(&fake, &floor_token, options.burst, options.concurrency).await?;
    drop(pool);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Report {
        backend,
        spread,
        burst,
        floor,
        floor_n: options.burst,
        burst_n: options.burst,
        peak_rss_kib,
        concurrency: options.concurrency,
    })
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("herald-bench-{}", db::new_id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let s = summarize((1..=100).map(f64::from).collect());
        assert_eq!((s.n, s.p50, s.p99, s.max), (100, 50.0, 99.0, 100.0));
        let one = summarize(vec![7.0]);
        assert_eq!((one.p50, one.p99, one.max), (7.0, 7.0, 7.0));
        assert_eq!(summarize(vec![]).n, 0);
    }
}

/// What `herald bench sentiment` measured: the scorer and the courtesy
/// check, in this process, on the texts of a file.
#[derive(Debug, Clone)]
pub struct SentimentReport {
    pub texts: usize,
    pub rounds: usize,
    /// Replies scored (language, label, question) per second.
    pub scored_per_s: f64,
    /// Microseconds per reply: median and p99 over the rounds' per-text means.
    pub scored_us: Summary,
    /// Answers checked for courtesy per second.
    pub courtesy_per_s: f64,
}

impl SentimentReport {
    pub fn render(&self) -> String {
        format!(
            "texts={} rounds={}\n\
             sentiment: {:.0} replies/s, {:.1} µs per reply (median of rounds; p99 {:.1} µs)\n\
             courtesy: {:.0} answers/s\n",
            self.texts,
            self.rounds,
            self.scored_per_s,
            self.scored_us.p50,
            self.scored_us.p99,
            self.courtesy_per_s,
        )
    }
}

/// Time `sentiment::analyze` + `is_question`, then `courtesy::check`, over
/// `texts` for `rounds` rounds (the first round also builds the lexicons, so
/// it is run once before timing).
pub fn sentiment(texts: &[String], rounds: usize) -> anyhow::Result<SentimentReport> {
    use crate::sentiment;
    anyhow::ensure!(!texts.is_empty(), "no text to score");
    let rounds = rounds.max(1);
    let mut sink = 0usize;
    for text in texts {
        sink += usize::from(sentiment::analyze(text).label == sentiment::Label::Negative);
    }
    let mut per_text_us = Vec::with_capacity(rounds);
    let started = Instant::now();
    for _ in 0..rounds {
        let round = Instant::now();
        for text in texts {
            let s = sentiment::analyze(text);
            sink += usize::from(s.label == sentiment::Label::Negative);
            sink += usize::from(sentiment::is_question(text));
        }
        per_text_us.push(round.elapsed().as_secs_f64() * 1e6 / texts.len() as f64);
    }
    let scored = started.elapsed().as_secs_f64();
    let started = Instant::now();
    for _ in 0..rounds {
        for text in texts {
            sink += sentiment::courtesy::check(text).len();
        }
    }
    let checked = started.elapsed().as_secs_f64();
    std::hint::black_box(sink);
    let n = (texts.len() * rounds) as f64;
    Ok(SentimentReport {
        texts: texts.len(),
        rounds,
        scored_per_s: n / scored,
        scored_us: summarize(per_text_us),
        courtesy_per_s: n / checked,
    })
}
