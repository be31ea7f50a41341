//! The Mastodon connector against the fake instance (shared/platforms.md §1).

use std::time::Duration;

use chrono::{DateTime, Utc};
use herald::fakes::mastodon::{FakeMastodon, FakeMastodonConfig, RateLimit};
use herald::platforms::mastodon::Mastodon;
use herald::platforms::{AccountSession, Connector, ConnectorError, Credentials, Platform, Post};

fn session(fake: &FakeMastodon, token: &str) -> AccountSession {
    let credentials = Credentials::new([("access_token".to_string(), token.to_string())].into());
    AccountSession::new(
        "acc-1",
        Platform::Mastodon,
        "Kettle Co",
        Some(&format!("{}/", fake.base_url())),
        credentials,
    )
}

fn post(text: &str) -> Post {
    let now = Utc::now();
    Post {
        delivery_id: uuid::Uuid::now_v7().to_string(),
        statement_id: "statement-1".into(),
        statement_version: 1,
        title: "Recall".into(),
        kind: "crisis".into(),
        text: text.into(),
        language: Some("en-GB".into()),
        planned_at: now,
        idempotency_key: uuid::Uuid::now_v7().to_string(),
        first_attempt_at: now,
        deadline: now + chrono::Duration::hours(2),
        ..Default::default()
    }
}

fn connector() -> Mastodon {
    Mastodon::new(reqwest::Client::new())
}

fn seconds_until(at: DateTime<Utc>) -> f64 {
    (at - Utc::now()).num_milliseconds() as f64 / 1000.0
}

#[tokio::test]
async fn publishing_creates_a_public_status_with_the_text_language_and_idempotency_key() {
    let fake = FakeMastodon::start().await;
    let token = fake.add_account("kettleco");
    let post =
        post("Stop using the K-200 kettle.\n\nDetails: https://example.org/recall?lot=42&x=1");

    let published = connector()
        .publish(&session(&fake, &token), &post)
        .await
        .unwrap();

    let stored = fake.posts();
    assert_eq!(stored.len(), 1);
    let status = &stored[0];
    assert_eq!(status.text, post.text);
    assert_eq!(status.username, "kettleco");
    assert_eq!(
        status.language.as_deref(),
        Some("en"),
        "en-GB goes out as en"
    );
    assert_eq!(status.visibility, "public");
    assert_eq!(
        status.idempotency_key.as_deref(),
        Some(post.idempotency_key.as_str())
    );
    assert_eq!(published.remote_id, status.id);
    assert!(published.remote_id.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(
        published.remote_url.as_deref(),
        Some(format!("{}/@kettleco/{}", fake.base_url(), status.id).as_str())
    );
    assert_eq!(published.pause_until, None, "299 requests remain");
}

#[tokio::test]
async fn publishing_twice_with_the_same_idempotency_key_creates_one_status() {
    let fake = FakeMastodon::start().await;
    let token = fake.add_account("kettleco");
    let account = session(&fake, &token);
    let post = post("Update: the plant is closed today.");

    let first = connector().publish(&account, &post).await.unwrap();
    let second = connector().publish(&account, &post).await.unwrap();

    assert_eq!(first.remote_id, second.remote_id);
    assert_eq!(fake.post_requests(), 2);
    assert_eq!(fake.posts().len(), 1);

    let mut other = post.clone();
    other.idempotency_key = "another-delivery".into();
    let third = connector().publish(&account, &other).await.unwrap();
    assert_ne!(
        third.remote_id, first.remote_id,
        "Mastodon has no duplicate-text check"
    );
    assert_eq!(fake.posts().len(), 2);
}

#[tokio::test]
async fn a_text_over_the_instance_limit_is_rejected_with_mastodons_message() {
    let fake = FakeMastodon::start().await;
    fake.set_max_characters(100);
    let token = fake.add_account("kettleco");
    let account = session(&fake, &token);

    let error = connector()
        .publish(&account, &post(&"a".repeat(101)))
        .await
        .unwrap_err();
    match &error {
        ConnectorError::Rejected { message, status } => {
            assert_eq!(*status, Some(422));
            assert!(
                message.contains("Validation failed: Text character limit of 100 exceeded"),
                "{message}"
            );
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    // A long URL counts 23, so 77 letters + a space + a URL fit in 100.
    let url = "https://example.org/a/very/long/path/that/is/well/over/twenty/three/characters";
    let fits = format!("{} {url}", "a".repeat(76));
    connector().publish(&account, &post(&fits)).await.unwrap();
    let blank = connector()
        .publish(&account, &post("  \n "))
        .await
        .unwrap_err();
    assert!(blank.to_string().contains("Text can't be blank"), "{blank}");
    assert_eq!(fake.posts().len(), 1);
}

#[tokio::test]
async fn a_revoked_or_unknown_token_means_the_account_must_be_reconnected() {
    let fake = FakeMastodon::start().await;
    let token = fake.add_account("kettleco");
    fake.revoke(&token);

    let error = connector()
        .publish(&session(&fake, &token), &post("hi"))
        .await
        .unwrap_err();
    assert_eq!(error.class(), "auth_revoked");
    assert_eq!(error.status(), Some(401));
    assert!(
        error.to_string().contains("The access token was revoked"),
        "{error}"
    );
    assert!(
        !error.to_string().contains(&token),
        "the token never appears in a message"
    );

    let unknown = connector()
        .publish(&session(&fake, "not-a-token"), &post("hi"))
        .await
        .unwrap_err();
    assert_eq!(unknown.class(), "auth_revoked");
    assert!(
        unknown.to_string().contains("The access token is invalid"),
        "{unknown}"
    );
    assert!(fake.posts().is_empty());
}

#[tokio::test]
async fn an_account_without_a_base_url_or_token_is_refused_before_any_request() {
    let fake = FakeMastodon::start().await;
    let no_base = AccountSession::new(
        "acc-1",
        Platform::Mastodon,
        "Kettle Co",
        None,
        Credentials::new([("access_token".to_string(), "t".to_string())].into()),
    );
    let error = connector()
        .publish(&no_base, &post("hi"))
        .await
        .unwrap_err();
    assert_eq!(error.class(), "rejected");
    assert!(
        error.to_string().contains("no instance base URL"),
        "{error}"
    );

    let no_token = AccountSession::new(
        "acc-1",
        Platform::Mastodon,
        "Kettle Co",
        Some(&fake.base_url()),
        Credentials::default(),
    );
    let error = connector()
        .publish(&no_token, &post("hi"))
        .await
        .unwrap_err();
    assert_eq!(error.class(), "auth_revoked");
    assert_eq!(fake.post_requests(), 0);
}

#[tokio::test]
async fn a_server_error_is_transient_and_stores_nothing() {
    let fake = FakeMastodon::start().await;
    let token = fake.add_account("kettleco");
    let account = session(&fake, &token);
    fake.fail_next(1, 503);

    let error = connector()
        .publish(&account, &post("hi"))
        .await
        .unwrap_err();
    assert_eq!(error.class(), "transient");
    assert_eq!(error.status(), Some(503));
    assert!(fake.posts().is_empty());

    connector().publish(&account, &post("hi")).await.unwrap();
    assert_eq!(fake.posts().len(), 1);
}

#[tokio::test]
async fn a_429_is_rate_limited_until_the_reset_header() {
    let fake = FakeMastodon::start().await;
    let token = fake.add_account("kettleco");
    fake.rate_limit_next(1, Duration::from_secs(120));

    let error = connector()
        .publish(&session(&fake, &token), &post("hi"))
        .await
        .unwrap_err();
    match error {
        ConnectorError::RateLimited {
            retry_after,
            status,
            message,
        } => {
            assert_eq!(status, Some(429));
            assert!(message.contains("Too many requests"), "{message}");
            let secs = retry_after.as_secs_f64();
            assert!((115.0..=120.5).contains(&secs), "retry after {secs} s");
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    assert!(fake.posts().is_empty());
}

#[tokio::test]
async fn the_fakes_own_per_account_limit_answers_429_without_retry_after() {
    let fake = FakeMastodon::start_with(FakeMastodonConfig {
        rate_limit: Some(RateLimit {
            limit: 2,
            window: Duration::from_secs(3600),
        }),
        ..FakeMastodonConfig::default()
    })
    .await;
    let token = fake.add_account("kettleco");
    let account = session(&fake, &token);
    let first = connector().publish(&account, &post("one")).await.unwrap();
    assert_eq!(first.pause_until, None);

    // The second request spends the budget: the account pauses until the reset.
    let second = connector().publish(&account, &post("two")).await.unwrap();
    let pause = second.pause_until.expect("remaining 0 sets pause_until");
    let until = seconds_until(pause);
    assert!((0.0..=3600.0).contains(&until), "pause for {until} s");

    let raw = reqwest::Client::new()
        .post(format!("{}/api/v1/statuses", fake.base_url()))
        .bearer_auth(&token)
        .form(&[("status", "three")])
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 429);
    assert!(raw.headers().get("retry-after").is_none());
    assert_eq!(raw.headers()["x-ratelimit-remaining"], "0");
    let reset = raw.headers()["x-ratelimit-reset"]
        .to_str()
        .unwrap()
        .to_string();
    // Same window, so the same second (Mastodon keeps the sub-second part of "now").
    let reset_at = herald::platforms::mastodon::parse_rate_limit_reset(&reset, Utc::now()).unwrap();
    assert_eq!(reset_at.timestamp(), pause.timestamp());
    assert!(
        reset.ends_with('Z') && reset.split('.').nth(1).is_some_and(|f| f.len() == 7),
        "{reset}"
    );
    assert_eq!(
        raw.text().await.unwrap(),
        r#"{"error":"Too many requests"}"#
    );
    assert_eq!(fake.posts().len(), 2);
}

#[tokio::test]
async fn a_connection_dropped_after_storing_is_unknown_and_reconcile_returns_the_same_status() {
    let fake = FakeMastodon::start().await;
    let token = fake.add_account("kettleco");
    let account = session(&fake, &token);
    let post = post("Evacuate building C now.");
    fake.drop_after_store_next(1);

    let error = connector().publish(&account, &post).await.unwrap_err();
    assert_eq!(error.class(), "unknown", "{error:?}");
    assert_eq!(
        fake.posts().len(),
        1,
        "the status was stored before the drop"
    );

    let found = connector()
        .reconcile(&account, &post)
        .await
        .unwrap()
        .expect("found");
    assert_eq!(found.remote_id, fake.posts()[0].id);
    assert_eq!(
        fake.posts().len(),
        1,
        "the idempotent repeat created nothing"
    );
    assert_eq!(fake.post_requests(), 2);
}

#[tokio::test]
async fn a_stall_past_the_client_timeout_is_unknown() {
    let fake = FakeMastodon::start().await;
    let token = fake.add_account("kettleco");
    fake.stall_after_store_next(1, Duration::from_secs(3));
    let impatient = Mastodon::new(
        reqwest::Client::builder()
            .timeout(Duration::from_millis(400))
            .build()
            .unwrap(),
    );

    let error = impatient
        .publish(&session(&fake, &token), &post("hi"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ConnectorError::Unknown { message } if message.contains("timed out")),
        "{error:?}"
    );
    assert_eq!(fake.posts().len(), 1);
}

#[tokio::test]
async fn injected_latency_delays_every_post() {
    let fake = FakeMastodon::start().await;
    let token = fake.add_account("kettleco");
    fake.set_latency(Duration::from_millis(300));
    let started = std::time::Instant::now();
    connector()
        .publish(&session(&fake, &token), &post("hi"))
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    let status = &fake.posts()[0];
    assert!(status.created_at - status.received_at >= chrono::Duration::milliseconds(300));
}

#[tokio::test]
async fn reconcile_after_the_idempotency_hour_finds_the_status_by_listing_the_account() {
    let fake = FakeMastodon::start().await;
    let token = fake.add_account("kettleco");
    let account = session(&fake, &token);
    let mut post = post("Water is safe to drink again.\nThank you for your patience & care <3");
    post.first_attempt_at = Utc::now() - chrono::Duration::hours(2);
    // The post went out two hours ago, then 60 others: the lookup must page (40 a page).
    fake.seed_status(
        &token,
        &post.text,
        post.first_attempt_at + chrono::Duration::seconds(2),
    )
    .unwrap();
    for i in 0..60 {
        fake.seed_status(&token, &format!("Later update {i}"), Utc::now())
            .unwrap();
    }

    let found = connector()
        .reconcile(&account, &post)
        .await
        .unwrap()
        .expect("found");
    assert_eq!(found.remote_id, fake.posts()[0].id);
    assert_eq!(
        found.remote_url.as_deref(),
        Some(format!("{}/@kettleco/{}", fake.base_url(), found.remote_id).as_str())
    );
    assert_eq!(fake.post_requests(), 0, "no repeat after the hour");
    assert_eq!(fake.requests_to("/api/v1/accounts/verify_credentials"), 1);
    let listings = fake.requests_to("/api/v1/accounts/")
        - fake.requests_to("/api/v1/accounts/verify_credentials");
    assert_eq!(listings, 3, "two pages of statuses, then an empty one");
}

#[tokio::test]
async fn reconcile_after_the_hour_is_none_when_the_text_is_absent_or_older_than_the_attempt() {
    let fake = FakeMastodon::start().await;
    let token = fake.add_account("kettleco");
    let account = session(&fake, &token);
    let mut post = post("Shelter in place until 18:00.");
    post.first_attempt_at = Utc::now() - chrono::Duration::hours(2);
    // The same text went out long before this delivery began: not ours.
    fake.seed_status(&token, &post.text, Utc::now() - chrono::Duration::hours(3))
        .unwrap();
    fake.seed_status(&token, "Something else", Utc::now())
        .unwrap();

    assert_eq!(connector().reconcile(&account, &post).await.unwrap(), None);
    assert_eq!(fake.posts().len(), 2, "reconcile published nothing");
}

#[tokio::test]
async fn instance_limit_reads_the_configured_max_characters() {
    let fake = FakeMastodon::start_with(FakeMastodonConfig {
        max_characters: 5000,
        ..FakeMastodonConfig::default()
    })
    .await;
    assert_eq!(
        connector().instance_limit(&fake.base_url()).await.unwrap(),
        5000
    );
    fake.set_max_characters(1234);
    let with_slash = format!("{}/", fake.base_url());
    assert_eq!(connector().instance_limit(&with_slash).await.unwrap(), 1234);
}

#[tokio::test]
async fn the_fake_answers_json_bodies_lookups_and_missing_tokens_like_mastodon() {
    let fake = FakeMastodon::start().await;
    let token = fake.add_account("kettleco");
    let http = reqwest::Client::new();
    let base = fake.base_url();

    let created = http
        .post(format!("{base}/api/v1/statuses"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"status": "Line 1\nLine <2>", "language": "fr", "visibility": "unlisted"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200);
    assert_eq!(created.headers()["x-ratelimit-remaining"], "299");
    let status: serde_json::Value = created.json().await.unwrap();
    assert_eq!(status["content"], "<p>Line 1<br />Line &lt;2&gt;</p>");
    assert_eq!(status["visibility"], "unlisted");
    assert_eq!(status["language"], "fr");
    assert_eq!(status["account"]["username"], "kettleco");
    let created_at = status["created_at"].as_str().unwrap();
    assert!(created_at.ends_with('Z') && DateTime::parse_from_rfc3339(created_at).is_ok());
    let id = status["id"].as_str().unwrap();

    let fetched: serde_json::Value = http
        .get(format!("{base}/api/v1/statuses/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(fetched["id"], id);
    let missing = http
        .get(format!("{base}/api/v1/statuses/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.text().await.unwrap(),
        r#"{"error":"Record not found"}"#
    );

    let anonymous = http
        .post(format!("{base}/api/v1/statuses"))
        .form(&[("status", "hi")])
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let garbled = http
        .post(format!("{base}/api/v1/statuses"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(garbled.status(), 400);
    assert_eq!(fake.posts().len(), 1);
    assert_eq!(fake.post_requests(), 3);
}
