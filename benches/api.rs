//! `cargo bench --bench api`: how fast Herald measures texts and answers the
//! statement API, on the real server and a real database (a temp SQLite file,
//! or PostgreSQL when HERALD_BENCH_DATABASE_URL names a database to use).
//! Results are written down in docs/BENCHMARKS.md.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use herald::app::Application;
use herald::config::Settings;
use herald::db::{self, DatabaseUrl};
use herald::keys::{self, Role};
use herald::platforms::{self, Platform};
use serde_json::json;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn report(name: &str, mut samples: Vec<Duration>, wall: Duration) {
    samples.sort();
    let n = samples.len();
    println!(
        "{name:<44} n={n:<5} p50={:>8.2?} p95={:>8.2?} p99={:>8.2?} max={:>8.2?} throughput={:>7.0}/s",
        percentile(&samples, 0.50),
        percentile(&samples, 0.95),
        percentile(&samples, 0.99),
        samples[n - 1],
        n as f64 / wall.as_secs_f64()
    );
}

/// One `POST /v1/statements`: how long it took and the new id.
async fn create_statement(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    body: &serde_json::Value,
) -> (Duration, String) {
    let t = Instant::now();
    let r = client
        .post(format!("{base}/v1/statements"))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: serde_json::Value = r.json().await.unwrap();
    (t.elapsed(), v["id"].as_str().unwrap().to_string())
}

fn bench_text_rules() {
    let text = "Rappel produit 🚨 : la bouilloire K-200 (lot 42) 👨‍👩‍👧 est rappelée. 日本語のお客様へ。 \
                Détails et remboursement : https://example.com/recall/k-200?lang=fr @support@mastodon.example";
    for platform in Platform::ALL {
        let rounds = 20_000;
        let start = Instant::now();
        let mut used = 0;
        for _ in 0..rounds {
            used +=
                std::hint::black_box(platforms::check(platform, std::hint::black_box(text), None))
                    .used;
        }
        let per = start.elapsed() / rounds;
        println!(
            "text check {:<10} {:>8.2?} per check ({} units)",
            platform.as_str(),
            per,
            used / rounds as usize
        );
    }
}

async fn bench_http() {
    let dir = tempfile::tempdir().unwrap();
    let url = std::env::var("HERALD_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| dir.path().join("bench.db").to_string_lossy().into_owned());
    let settings = Settings {
        database_url: DatabaseUrl::parse(&url).unwrap(),
        bind: "127.0.0.1:0".into(),
        secret_key: Some(herald::crypto::SecretKey::generate().to_base64()),
        pool_size: 8,
        log_filter: "error".into(),
        log_json: false,
        dispatch: herald::config::DispatchSettings::default(),
        networks: Default::default(),
        replies: Default::default(),
        webhooks: Default::default(),
    };
    println!("database: {}", settings.database_url.display());
    let pool = db::pool(&settings.database_url, 2, Duration::from_secs(10)).unwrap();
    let app = Application::build(settings).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let stamp = uuid::Uuid::now_v7().simple().to_string();
    let make = |role: Role, tag: &str| {
        let secret = keys::generate();
        let mut conn = pool.get().unwrap();
        keys::store::create(&mut conn, "bench", &format!("{tag}-{stamp}"), role, &secret).unwrap();
        secret
    };
    let editor = make(Role::Editor, "editor");
    let approver = make(Role::Approver, "approver");
    let client = reqwest::Client::new();
    let body = json!({
        "title": "K-200 kettle recall", "kind": "crisis", "severity": "moderate",
        "variants": [
            {"platform": "mastodon", "text": "We are recalling the K-200 kettle (batch 42). Refunds: https://example.com/recall"},
            {"platform": "bluesky", "text": "We are recalling the K-200 kettle (batch 42). Refunds: example.com/recall"},
            {"platform": "x", "text": "We are recalling the K-200 kettle (batch 42) 🚨 https://example.com/recall"}
        ]
    });

    // Sequential creates: latency of one write (text rules, transaction, log append).
    let mut ids = Vec::new();
    let mut samples = Vec::new();
    let wall = Instant::now();
    for _ in 0..500 {
        let (took, id) = create_statement(&client, &base, &editor, &body).await;
        samples.push(took);
        ids.push(id);
    }
    report("POST /v1/statements (sequential)", samples, wall.elapsed());

    // 16 clients at once: writes contend for the database.
    let wall = Instant::now();
    let timings = join_all((0..16).map(|_| {
        let client = client.clone();
        let base = base.clone();
        let editor = editor.clone();
        let body = body.clone();
        async move {
            let mut samples = Vec::new();
            for _ in 0..50 {
                samples.push(create_statement(&client, &base, &editor, &body).await.0);
            }
            samples
        }
    }))
    .await;
    report(
        "POST /v1/statements (16 concurrent)",
        timings.concat(),
        wall.elapsed(),
    );

    // Reads: a page of 50 statements with their variants.
    let mut samples = Vec::new();
    let wall = Instant::now();
    for _ in 0..300 {
        let t = Instant::now();
        let r = client
            .get(format!("{base}/v1/statements?limit=50"))
            .bearer_auth(&editor)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
        samples.push(t.elapsed());
    }
    report("GET /v1/statements?limit=50", samples, wall.elapsed());

    // The review path: submit then approve.
    let mut samples = Vec::new();
    let wall = Instant::now();
    for id in ids.iter().take(200) {
        let t = Instant::now();
        let r = client
            .post(format!("{base}/v1/statements/{id}/submit"))
            .bearer_auth(&editor)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let r = client
            .post(format!("{base}/v1/statements/{id}/approve"))
            .bearer_auth(&approver)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        samples.push(t.elapsed());
    }
    report("submit + approve (2 requests)", samples, wall.elapsed());

    // Verifying the whole publish log.
    let t = Instant::now();
    let mut conn = pool.get().unwrap();
    let events = herald::log::store::verify(&mut conn).unwrap().unwrap();
    println!("log verify: {events} events in {:.2?}", t.elapsed());
}

#[tokio::main]
async fn main() {
    bench_text_rules();
    bench_http().await;
}
