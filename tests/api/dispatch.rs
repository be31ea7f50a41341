//! The dispatcher against the fake networks: retries, rate limits, token
//! refresh, revocation, unknown outcomes, several instances, and a crash in
//! the middle of a fan-out. Every test counts what the fake accepted:
//! 0 lost, 0 duplicated.

use std::collections::HashSet;
use std::time::Duration;

use diesel::prelude::*;
use herald::fakes::bluesky::FakeBluesky;
use herald::fakes::mastodon::{FakeMastodon, FakeMastodonConfig};
use serde_json::{json, Value};

use crate::helpers::{is_postgres, spawn_app, spawn_app_with, test_settings, TestApp};

const TEXT: &str = "Update: the outage is over. Details at https://status.example.com/42";

async fn mastodon_setup(app: &TestApp, fake: &FakeMastodon) -> (String, String, String) {
    let token = fake.add_account("brand");
    let statement = app.approved_with("crisis", &[("mastodon", TEXT)]).await;
    let account = app
        .add_account(
            "mastodon",
            "Brand",
            Some(&fake.base_url()),
            json!({"access_token": token}),
        )
        .await;
    (statement, account, token)
}

async fn schedule_now(app: &TestApp, statement: &str, account: &str) -> String {
    let body = app
        .schedule(statement, &[account], json!({"now": true}))
        .await
        .ok();
    body["deliveries"][0]["id"].as_str().unwrap().to_string()
}

fn outcomes(delivery: &Value) -> Vec<String> {
    delivery["attempt_log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test]
async fn mastodon_publishes_with_the_idempotency_key_and_records_the_remote_post() {
    let app = spawn_app().await;
    let fake = FakeMastodon::start().await;
    let (statement, account, _) = mastodon_setup(&app, &fake).await;
    let id = schedule_now(&app, &statement, &account).await;
    let done = app.wait_status(&id, "published", 20).await;
    let posts = fake.posts();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].text, TEXT);
    assert_eq!(posts[0].visibility, "public");
    assert!(posts[0]
        .idempotency_key
        .as_deref()
        .is_some_and(|k| !k.is_empty()));
    assert_eq!(done["remote_id"], posts[0].id.as_str());
    assert_eq!(
        done["remote_url"],
        format!("{}/@brand/{}", fake.base_url(), posts[0].id).as_str()
    );
    let log = app
        .get(&app.admin, &format!("/v1/log?delivery_id={id}"))
        .await
        .ok();
    let published = &log["items"][0];
    assert_eq!(published["action"], "delivery.published");
    assert_eq!(published["details"]["remote_id"], posts[0].id.as_str());
    assert!(published["details"]["lateness_ms"].is_i64());
}

#[tokio::test]
async fn a_mastodon_account_takes_its_instances_character_limit() {
    let app = spawn_app().await;
    let fake = FakeMastodon::start_with(FakeMastodonConfig {
        max_characters: 1000,
        ..FakeMastodonConfig::default()
    })
    .await;
    let token = fake.add_account("brand");
    let account = app
        .add_account(
            "mastodon",
            "Big instance",
            Some(&fake.base_url()),
            json!({"access_token": token}),
        )
        .await;
    let read = app
        .get(&app.admin, &format!("/v1/accounts/{account}"))
        .await
        .ok();
    assert_eq!(read["max_characters"], 1000);
    // An explicit limit wins over the instance's.
    let mut body = json!({"platform": "mastodon", "name": "Explicit", "base_url": fake.base_url(),
        "credentials": {"access_token": token}, "max_characters": 700});
    let created = app.post(&app.admin, "/v1/accounts", body.take()).await.ok();
    assert_eq!(created["max_characters"], 700);
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff_until_the_post_goes_out() {
    let app = spawn_app().await;
    let fake = FakeMastodon::start().await;
    let (statement, account, _) = mastodon_setup(&app, &fake).await;
    fake.fail_next(2, 503);
    let id = schedule_now(&app, &statement, &account).await;
    let done = app.wait_status(&id, "published", 30).await;
    assert_eq!(outcomes(&done), ["transient", "transient", "published"]);
    assert_eq!(done["attempt_log"][0]["http_status"], 503);
    assert_eq!(fake.posts().len(), 1);
    let actions: Vec<String> = app
        .log_actions(&statement)
        .await
        .into_iter()
        .map(|(a, _)| a)
        .collect();
    assert_eq!(actions.iter().filter(|a| *a == "delivery.retry").count(), 2);
}

#[tokio::test]
async fn a_429_waits_for_the_rate_limit_reset_before_trying_again() {
    let app = spawn_app().await;
    let fake = FakeMastodon::start().await;
    let (statement, account, _) = mastodon_setup(&app, &fake).await;
    fake.rate_limit_next(1, Duration::from_secs(3));
    let id = schedule_now(&app, &statement, &account).await;
    let done = app.wait_status(&id, "published", 30).await;
    assert_eq!(outcomes(&done), ["rate_limited", "published"]);
    assert_eq!(done["attempt_log"][0]["http_status"], 429);
    let ended =
        chrono::DateTime::parse_from_rfc3339(done["attempt_log"][0]["ended_at"].as_str().unwrap())
            .unwrap();
    let retried = chrono::DateTime::parse_from_rfc3339(
        done["attempt_log"][1]["started_at"].as_str().unwrap(),
    )
    .unwrap();
    assert!(
        retried - ended >= chrono::Duration::milliseconds(2000),
        "retried {} ms after the 429, before the reset",
        (retried - ended).num_milliseconds()
    );
    assert_eq!(fake.posts().len(), 1);
}

#[tokio::test]
async fn a_rejected_post_fails_at_once_with_the_networks_reason() {
    let app = spawn_app().await;
    let fake = FakeMastodon::start().await;
    let (statement, account, _) = mastodon_setup(&app, &fake).await;
    fake.set_max_characters(20);
    let id = schedule_now(&app, &statement, &account).await;
    let done = app.wait_status(&id, "failed", 20).await;
    assert_eq!(outcomes(&done), ["rejected"]);
    assert_eq!(done["attempt_log"][0]["http_status"], 422);
    assert!(
        done["last_error"]
            .as_str()
            .unwrap()
            .contains("character limit"),
        "{done}"
    );
    assert!(fake.posts().is_empty());
}

#[tokio::test]
async fn a_revoked_token_fails_the_delivery_and_asks_for_a_reconnect() {
    let app = spawn_app().await;
    let fake = FakeMastodon::start().await;
    let (statement, account, token) = mastodon_setup(&app, &fake).await;
    fake.revoke(&token);
    let id = schedule_now(&app, &statement, &account).await;
    let done = app.wait_status(&id, "failed", 20).await;
    assert_eq!(outcomes(&done), ["auth_revoked"]);
    assert!(
        done["last_error"].as_str().unwrap().contains("revoked"),
        "{done}"
    );
    assert!(!done["last_error"].as_str().unwrap().contains(&token));
    let accounts = app
        .get(&app.admin, "/v1/accounts?status=needs_reauth")
        .await
        .ok();
    assert_eq!(accounts["items"][0]["id"], account.as_str());
    assert!(accounts["items"][0]["status_reason"]
        .as_str()
        .unwrap()
        .contains("revoked"));
    // New deliveries to that account are refused until it is reconnected.
    app.schedule(&statement, &[&account], json!({"now": true}))
        .await
        .invalid("accounts[0]");
    let log = app
        .get(&app.admin, "/v1/log?action=account.needs_reauth")
        .await
        .ok();
    assert_eq!(log["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn an_unknown_outcome_is_reconciled_without_a_duplicate() {
    let app = spawn_app().await;
    let fake = FakeMastodon::start().await;
    let (statement, account, _) = mastodon_setup(&app, &fake).await;
    // The post is stored, but the answer never arrives.
    fake.drop_after_store_next(1);
    let id = schedule_now(&app, &statement, &account).await;
    let done = app.wait_status(&id, "published", 30).await;
    assert_eq!(outcomes(&done)[0], "unknown");
    let posts = fake.posts();
    assert_eq!(posts.len(), 1, "one post on the network");
    assert_eq!(done["remote_id"], posts[0].id.as_str());
    let log = app
        .get(&app.admin, &format!("/v1/log?delivery_id={id}"))
        .await
        .ok();
    let actions: Vec<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"delivery.unknown"), "{actions:?}");
    assert_eq!(log["items"][0]["details"]["reconciled"], true);
}

#[tokio::test]
async fn an_outcome_that_stays_unknown_fails_asking_for_a_check_and_is_never_resent() {
    let app = spawn_app_with(|s| s.dispatch.max_reconcile_tries = 2).await;
    let fake = FakeMastodon::start().await;
    let (statement, account, _) = mastodon_setup(&app, &fake).await;
    fake.drop_after_store_next(1);
    let id = schedule_now(&app, &statement, &account).await;
    app.wait_status(&id, "unknown", 20).await;
    // The network cannot be reached any more: every check fails.
    let requests = fake.post_requests();
    drop(fake);
    let done = app.wait_status(&id, "failed", 60).await;
    assert!(
        done["last_error"]
            .as_str()
            .unwrap()
            .starts_with("outcome unknown, check the account before reposting"),
        "{done}"
    );
    assert_eq!(done["attempts"], 1, "never published again");
    assert_eq!(requests, 1);
    let log = app
        .get(&app.admin, &format!("/v1/log?delivery_id={id}"))
        .await
        .ok();
    assert_eq!(log["items"][0]["action"], "delivery.failed");
    assert_eq!(log["items"][0]["details"]["class"], "unknown");
}

#[tokio::test]
async fn a_stalled_answer_times_out_and_is_reconciled_without_a_duplicate() {
    let app = spawn_app().await;
    let fake = FakeMastodon::start().await;
    let (statement, account, _) = mastodon_setup(&app, &fake).await;
    // Longer than the test instance's 3 s publish timeout.
    fake.stall_after_store_next(1, Duration::from_secs(5));
    let id = schedule_now(&app, &statement, &account).await;
    let done = app.wait_status(&id, "published", 40).await;
    assert_eq!(outcomes(&done)[0], "unknown");
    assert_eq!(fake.posts().len(), 1);
}

async fn bluesky_setup(app: &TestApp) -> (FakeBluesky, String, String) {
    let fake = FakeBluesky::start().await;
    fake.add_account("brand.example.com", "app-pass-1234");
    let statement = app.approved_with("crisis", &[("bluesky", TEXT)]).await;
    let account = app
        .add_account(
            "bluesky",
            "Brand",
            Some(&fake.base_url()),
            json!({"identifier": "brand.example.com", "app_password": "app-pass-1234"}),
        )
        .await;
    (fake, statement, account)
}

fn stored_credentials(app: &TestApp, account: &str) -> serde_json::Map<String, Value> {
    use herald::db::schema::accounts;
    let mut conn = app.pool.get().unwrap();
    let sealed: Option<String> = accounts::table
        .find(account)
        .select(accounts::credentials)
        .first(&mut conn)
        .unwrap();
    let key = herald::crypto::SecretKey::from_base64(&app.secret_key).unwrap();
    let plain = key.open(&sealed.unwrap(), account).unwrap();
    serde_json::from_slice(&plain).unwrap()
}

#[tokio::test]
async fn bluesky_logs_in_once_keeps_the_session_and_refreshes_an_expired_token() {
    let app = spawn_app().await;
    let (fake, statement, account) = bluesky_setup(&app).await;
    let first = schedule_now(&app, &statement, &account).await;
    app.wait_status(&first, "published", 20).await;
    assert_eq!(fake.sessions_created("brand.example.com"), 1);
    // The session is stored sealed with the account, next to the app password.
    let stored = stored_credentials(&app, &account);
    assert!(stored["access_jwt"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(stored["refresh_jwt"].is_string());
    let old_refresh = stored["refresh_jwt"].clone();

    // Both expired-token forms: refreshed once each, never a new login.
    for status in [400, 401] {
        fake.expire_access_tokens(status);
        let id = schedule_now(&app, &statement, &account).await;
        let done = app.wait_status(&id, "published", 20).await;
        assert_eq!(outcomes(&done), ["published"], "{done}");
    }
    assert_eq!(fake.sessions_created("brand.example.com"), 1);
    assert_eq!(fake.sessions_refreshed("brand.example.com"), 2);
    assert_ne!(
        stored_credentials(&app, &account)["refresh_jwt"],
        old_refresh
    );
    let records = fake.posts();
    assert_eq!(records.len(), 3);
    let rkeys: HashSet<&str> = records.iter().map(|r| r.rkey.as_str()).collect();
    assert_eq!(rkeys.len(), 3);
    // The URL in the text is a clickable link facet.
    let facet = &records[0].facets[0];
    let (start, end) = (
        facet["index"]["byteStart"].as_u64().unwrap() as usize,
        facet["index"]["byteEnd"].as_u64().unwrap() as usize,
    );
    assert_eq!(
        &records[0].text.as_bytes()[start..end],
        b"https://status.example.com/42"
    );
}

#[tokio::test]
async fn bluesky_an_unknown_outcome_is_reconciled_by_record_key() {
    let app = spawn_app().await;
    let (fake, statement, account) = bluesky_setup(&app).await;
    fake.drop_after_store_next(1);
    let id = schedule_now(&app, &statement, &account).await;
    let done = app.wait_status(&id, "published", 30).await;
    assert_eq!(outcomes(&done)[0], "unknown");
    let records = fake.posts();
    assert_eq!(records.len(), 1);
    assert_eq!(done["remote_id"], records[0].uri.as_str());
}

#[tokio::test]
async fn the_statements_language_goes_out_to_mastodon_and_bluesky() {
    let app = spawn_app().await;
    let mastodon = FakeMastodon::start().await;
    let (bluesky, _, bluesky_account) = bluesky_setup(&app).await;
    let token = mastodon.add_account("marque");
    let mastodon_account = app
        .add_account(
            "mastodon",
            "Marque",
            Some(&mastodon.base_url()),
            json!({"access_token": token}),
        )
        .await;
    let author = app.key(herald::keys::Role::Editor);
    let text = "Le service est rétabli. Merci de votre patience.";
    let created = app
        .create_statement(
            &author,
            json!({"title": "Rétablissement", "kind": "crisis", "language": "fr",
                   "variants": [{"platform": "mastodon", "text": text}, {"platform": "bluesky", "text": text}]}),
        )
        .await;
    assert_eq!(created["language"], "fr");
    let id = created["id"].as_str().unwrap();
    app.act(&author, &format!("/v1/statements/{id}/submit"))
        .await
        .ok();
    let approver = app.key(herald::keys::Role::Approver);
    app.act(&approver, &format!("/v1/statements/{id}/approve"))
        .await
        .ok();
    let body = app
        .schedule(
            id,
            &[&mastodon_account, &bluesky_account],
            json!({"now": true}),
        )
        .await
        .ok();
    for d in body["deliveries"].as_array().unwrap() {
        app.wait_status(d["id"].as_str().unwrap(), "published", 20)
            .await;
    }
    assert_eq!(mastodon.posts()[0].language.as_deref(), Some("fr"));
    assert_eq!(bluesky.posts()[0].langs, ["fr"]);
}

/// Schedule `n` deliveries of one statement to one account at `at`, through the store.
fn schedule_bulk(
    app: &TestApp,
    statement: &str,
    account: &str,
    n: usize,
    at: chrono::DateTime<chrono::Utc>,
) -> Vec<String> {
    use herald::deliveries::store::{self, ScheduleRequest};
    let mut conn = app.pool.get().unwrap();
    (0..n)
        .map(|_| {
            store::schedule(
                &mut conn,
                "test",
                &ScheduleRequest {
                    statement_id: statement.into(),
                    account_ids: vec![account.into()],
                    planned_at: at,
                    timezone: None,
                    max_lateness_s: 3600,
                    reply_to: Vec::new(),
                },
            )
            .unwrap()
            .remove(0)
            .id
        })
        .collect()
}

async fn wait_all_published(app: &TestApp, n: i64, secs: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let published = app.count_status("published");
        if published == n {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{published} of {n} published; failed {} unknown {} publishing {} scheduled {}",
            app.count_status("failed"),
            app.count_status("unknown"),
            app.count_status("publishing"),
            app.count_status("scheduled")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn assert_exactly_once(fake: &FakeMastodon, n: usize) {
    let posts = fake.posts();
    let keys: HashSet<String> = posts
        .iter()
        .filter_map(|p| p.idempotency_key.clone())
        .collect();
    assert_eq!(keys.len(), n, "every delivery reached the network");
    assert_eq!(posts.len(), n, "no delivery reached the network twice");
}

#[tokio::test]
async fn two_dispatchers_on_one_database_publish_each_delivery_exactly_once() {
    let app = spawn_app().await;
    let fake = FakeMastodon::start_with(FakeMastodonConfig {
        rate_limit: None,
        ..FakeMastodonConfig::default()
    })
    .await;
    let (statement, account, _) = mastodon_setup(&app, &fake).await;
    // A second instance on the same database, sharing the credential key.
    crate::helpers::start(test_settings(&app.database_url, &app.secret_key)).await;
    let at = chrono::Utc::now() + chrono::Duration::seconds(3);
    let n = if is_postgres() { 1000 } else { 300 };
    schedule_bulk(&app, &statement, &account, n, at);
    wait_all_published(&app, n as i64, 120).await;
    assert_exactly_once(&fake, n);
    assert_eq!(fake.post_requests(), n, "no delivery was sent twice");
    let owners: HashSet<String> = {
        use herald::db::schema::delivery_attempts;
        let mut conn = app.pool.get().unwrap();
        delivery_attempts::table
            .select(delivery_attempts::owner)
            .distinct()
            .load(&mut conn)
            .unwrap()
            .into_iter()
            .collect()
    };
    assert!(!owners.is_empty() && owners.len() <= 2, "{owners:?}");
    app.get(&app.admin, "/v1/log/verify").await.ok();
}

#[tokio::test]
async fn a_dispatcher_killed_mid_fan_out_and_restarted_loses_and_duplicates_nothing() {
    let app = spawn_app().await;
    let fake = FakeMastodon::start_with(FakeMastodonConfig {
        rate_limit: None,
        ..FakeMastodonConfig::default()
    })
    .await;
    // Slow enough that the fan-out is still running when the process dies.
    fake.set_latency(Duration::from_millis(100));
    let (statement, account, _) = mastodon_setup(&app, &fake).await;
    let n = 1000;
    let at = chrono::Utc::now() + chrono::Duration::seconds(2);
    schedule_bulk(&app, &statement, &account, n, at);
    let spawn = || {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"))
            .arg("serve")
            .env("HERALD_DATABASE_URL", &app.database_url)
            .env("HERALD_SECRET_KEY", &app.secret_key)
            .env("HERALD_BIND", "127.0.0.1:0")
            .env("HERALD_LOG", "error")
            .env("HERALD_DISPATCH_CONCURRENCY", "32")
            .env("HERALD_PUBLISH_TIMEOUT_S", "3")
            .env("HERALD_LEASE_S", "9")
            .kill_on_drop(true)
            .spawn()
            .expect("start herald serve")
    };
    let mut first = spawn();
    // SIGKILL once a good part, not all, has gone out.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while fake.post_requests() < 300 {
        assert!(
            std::time::Instant::now() < deadline,
            "the fan-out never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.start_kill().unwrap();
    first.wait().await.unwrap();
    let sent_before_crash = fake.post_requests();
    assert!(
        sent_before_crash < n,
        "the crash came too late to test anything"
    );
    let in_flight = app.count_status("publishing");
    let mut second = spawn();
    wait_all_published(&app, n as i64, 180).await;
    second.start_kill().unwrap();
    second.wait().await.unwrap();
    assert_exactly_once(&fake, n);
    eprintln!(
        "crash test: {sent_before_crash} requests before the kill, {in_flight} deliveries in flight, {} requests in all",
        fake.post_requests()
    );
}
