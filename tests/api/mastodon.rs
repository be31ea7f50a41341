//! The Mastodon connector against the fake instance (shared/platforms.md §1).

use std::time::Duration;

use chrono::{DateTime, Utc};
use herald::fakes::mastodon::{FakeMastodon, FakeMastodonConfig, RateLimit};
use herald::platforms::mastodon::{Mastodon, OAUTH_SCOPES};
use herald::platforms::{
    AccountSession, ConnectRequest, Connector, ConnectorError, Platform, Post,
};

use crate::kit::{self, image, REDIRECT};

fn session(fake: &FakeMastodon, token: &str) -> AccountSession {
    kit::session(
        Platform::Mastodon,
        Some(&format!("{}/", fake.base_url())),
        &[("access_token", token)],
    )
}

/// A post in British English (it goes out as `en`).
fn post(text: &str) -> Post {
    Post {
        language: Some("en-GB".into()),
        ..kit::post(text)
    }
}

/// A fake instance with the account `kettleco`, its token, and the account
/// as Herald holds it.
async fn setup() -> (FakeMastodon, String, AccountSession) {
    let fake = FakeMastodon::start().await;
    let token = fake.add_account("kettleco");
    let account = session(&fake, &token);
    (fake, token, account)
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
    let (fake, _, account) = setup().await;
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
    kit::assert_error(&unknown, "auth_revoked", "The access token is invalid");
    assert!(fake.posts().is_empty());
}

#[tokio::test]
async fn an_account_without_a_base_url_or_token_is_refused_before_any_request() {
    let fake = FakeMastodon::start().await;
    let no_base = kit::session(Platform::Mastodon, None, &[("access_token", "t")]);
    let error = connector()
        .publish(&no_base, &post("hi"))
        .await
        .unwrap_err();
    kit::assert_error(&error, "rejected", "no instance base URL");

    let no_token = kit::session(Platform::Mastodon, Some(&fake.base_url()), &[]);
    let error = connector()
        .publish(&no_token, &post("hi"))
        .await
        .unwrap_err();
    assert_eq!(error.class(), "auth_revoked");
    assert_eq!(fake.post_requests(), 0);
}

#[tokio::test]
async fn a_server_error_is_transient_and_stores_nothing() {
    let (fake, _, account) = setup().await;
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
    let (retry_after, status, message) = kit::rate_limited(&error);
    assert_eq!(status, Some(429));
    assert!(message.contains("Too many requests"), "{message}");
    let secs = retry_after.as_secs_f64();
    assert!((115.0..=120.5).contains(&secs), "retry after {secs} s");
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
    let (fake, _, account) = setup().await;
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
    let (fake, token, account) = setup().await;
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
    let (fake, token, account) = setup().await;
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

#[tokio::test]
async fn a_thread_of_three_parts_is_a_reply_chain() {
    let (fake, _, account) = setup().await;

    let ids = kit::publish_thread(
        &connector(),
        &account,
        &["1/3 Recall", "2/3 Lots", "3/3 Refund"],
    )
    .await;

    let posts = fake.posts();
    assert_eq!(posts.len(), 3);
    assert_eq!(posts[0].in_reply_to_id, None);
    assert_eq!(posts[1].in_reply_to_id.as_deref(), Some(ids[0].as_str()));
    assert_eq!(posts[2].in_reply_to_id.as_deref(), Some(ids[1].as_str()));
    assert_eq!(posts[2].id, ids[2]);

    // Answering a status that is gone is refused by the instance.
    let gone = connector()
        .publish(&account, &kit::thread_part("4/3", 3, Some(("123", "123"))))
        .await
        .unwrap_err();
    assert_eq!(gone.class(), "rejected");
    assert_eq!(gone.status(), Some(404));
}

#[tokio::test]
async fn images_are_uploaded_with_their_alt_text_and_attached_in_order() {
    let (fake, _, account) = setup().await;
    let mut p = post("The recalled kettle, front and back.");
    p.media = vec![
        image(fake.image_url(), Some("A white K-200 kettle, front")),
        image(fake.image_url_of_size(5000), None),
    ];

    let published = connector().publish(&account, &p).await.unwrap();

    let posts = fake.posts();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].id, published.remote_id);
    let media = &posts[0].media;
    assert_eq!(media.len(), 2);
    assert_eq!(
        media[0].description.as_deref(),
        Some("A white K-200 kettle, front")
    );
    assert_eq!(media[0].content_type, "image/jpeg");
    assert_eq!(media[0].size, 256);
    assert_eq!(media[1].description, None);
    assert_eq!(media[1].size, 5000);
    assert_eq!(fake.requests_to("/api/v2/media"), 2);
    assert_eq!(
        fake.requests_to("/api/v1/media/"),
        0,
        "ready at once: no poll"
    );
}

#[tokio::test]
async fn an_upload_still_processing_is_polled_until_ready() {
    let (fake, _, account) = setup().await;
    fake.set_media_processing(1);
    let mut p = post("Photo of the lot number.");
    p.media = vec![image(fake.image_url(), Some("Lot number 42 on the base"))];

    connector().publish(&account, &p).await.unwrap();

    assert_eq!(fake.requests_to("/api/v1/media/"), 2, "206 once, then 200");
    let posts = fake.posts();
    assert_eq!(posts[0].media.len(), 1);
    assert_eq!(
        posts[0].media[0].description.as_deref(),
        Some("Lot number 42 on the base")
    );
}

#[tokio::test]
async fn images_that_cannot_go_out_are_rejected_before_posting() {
    let (fake, _, account) = setup().await;

    let mut five = post("too many");
    five.media = (0..5).map(|_| image(fake.image_url(), None)).collect();
    let error = connector().publish(&account, &five).await.unwrap_err();
    kit::assert_error(&error, "rejected", "at most 4");

    let mut missing = post("missing image");
    missing.media = vec![image(
        format!("{}/nothing.jpg?sig=s3cret", fake.base_url()),
        None,
    )];
    let error = connector().publish(&account, &missing).await.unwrap_err();
    kit::assert_error(&error, "rejected", "image 1");
    assert!(!error.to_string().contains("s3cret"), "{error}");
    assert!(fake.posts().is_empty());
}

#[tokio::test]
async fn delete_removes_the_status_and_a_gone_status_counts_as_deleted() {
    let (fake, token, account) = setup().await;
    let published = connector()
        .publish(&account, &post("Posted by mistake"))
        .await
        .unwrap();

    connector()
        .delete(&account, &published.remote_id)
        .await
        .unwrap();
    let posts = fake.posts();
    assert!(posts[0].deleted);
    let status = reqwest::get(format!(
        "{}/api/v1/statuses/{}",
        fake.base_url(),
        published.remote_id
    ))
    .await
    .unwrap()
    .status();
    assert_eq!(status, 404);

    // Again: the instance answers 404, which is fine.
    connector()
        .delete(&account, &published.remote_id)
        .await
        .unwrap();
    assert_eq!(fake.requests_to("/api/v1/statuses/"), 3);

    fake.revoke(&token);
    let error = connector()
        .delete(&account, &published.remote_id)
        .await
        .unwrap_err();
    assert_eq!(error.class(), "auth_revoked");
}

#[tokio::test]
async fn check_verifies_the_credentials() {
    let (fake, token, account) = setup().await;
    connector().check(&account).await.unwrap();
    assert_eq!(fake.requests_to("/api/v1/accounts/verify_credentials"), 1);

    fake.revoke(&token);
    let error = connector().check(&account).await.unwrap_err();
    assert_eq!(error.class(), "auth_revoked");
    assert_eq!(error.status(), Some(401));
}

/// register_app → oauth_app → authorize → the 302 → exchange_code → connect.
async fn oauth_end_to_end(pkce: bool) {
    let fake = FakeMastodon::start().await;
    fake.set_oauth_metadata(pkce);
    fake.add_account("kettleco");
    let http = reqwest::Client::new();
    let mastodon = Mastodon::new(http.clone());

    let (client_id, client_secret) = mastodon
        .register_app(&fake.base_url(), "Herald", REDIRECT, OAUTH_SCOPES)
        .await
        .unwrap();
    let apps = fake.apps();
    assert_eq!(apps.len(), 1);
    assert_eq!(apps[0].name, "Herald");
    assert_eq!(apps[0].redirect_uris, vec![REDIRECT.to_string()]);
    assert_eq!(apps[0].website.as_deref(), Some("https://herald.example"));
    assert_eq!(apps[0].scopes.join(" "), OAUTH_SCOPES);

    let app = mastodon
        .oauth_app(&format!("{}/", fake.base_url()), &client_id, &client_secret)
        .await;
    assert_eq!(app.pkce, pkce);
    assert!(!app.basic_auth);
    assert_eq!(
        app.authorize_url,
        format!("{}/oauth/authorize", fake.base_url())
    );
    assert_eq!(app.token_url, format!("{}/oauth/token", fake.base_url()));

    let authorization = app.authorize(REDIRECT, "st4te").unwrap();
    assert_eq!(authorization.verifier.is_some(), pkce);
    let approved = kit::approve(&authorization.url).await;
    assert!(approved.location.starts_with(REDIRECT));
    assert_eq!(approved.state(), "st4te");
    let code = approved.code().to_string();

    if pkce {
        // The challenge is checked: no verifier, no token (and the code is spent).
        let refused = app
            .exchange_code(&http, &code, REDIRECT, None)
            .await
            .unwrap_err();
        kit::assert_error(&refused, "rejected", "invalid_grant");
        let again = app.authorize(REDIRECT, "st4te2").unwrap();
        let code = kit::approve(&again.url).await.code().to_string();
        let tokens = app
            .exchange_code(&http, &code, REDIRECT, again.verifier.as_deref())
            .await
            .unwrap();
        finish_connect(&fake, &mastodon, &app, &http, &code, tokens).await;
    } else {
        let tokens = app
            .exchange_code(&http, &code, REDIRECT, authorization.verifier.as_deref())
            .await
            .unwrap();
        finish_connect(&fake, &mastodon, &app, &http, &code, tokens).await;
    }
}

async fn finish_connect(
    fake: &FakeMastodon,
    mastodon: &Mastodon,
    app: &herald::platforms::OAuthApp,
    http: &reqwest::Client,
    code: &str,
    tokens: herald::platforms::TokenSet,
) {
    assert_eq!(
        tokens.refresh_token(),
        None,
        "Mastodon tokens do not expire"
    );
    // Codes are single-use.
    let reuse = app
        .exchange_code(http, code, REDIRECT, None)
        .await
        .unwrap_err();
    assert!(reuse.to_string().contains("invalid_grant"), "{reuse}");

    let request = ConnectRequest {
        base_url: Some(fake.base_url()),
        target: None,
    };
    let connected = mastodon.connect(tokens.clone(), &request).await.unwrap();
    let host = fake.base_url().trim_start_matches("http://").to_string();
    assert_eq!(
        connected.remote_name.as_deref(),
        Some(format!("@kettleco@{host}").as_str())
    );
    assert_eq!(connected.expires_at, None);
    assert_eq!(
        connected.credentials.get("access_token"),
        Some(tokens.access_token())
    );

    // The new token publishes as the user who approved.
    let account = session(fake, tokens.access_token());
    connector()
        .publish(&account, &post("Hello from Herald"))
        .await
        .unwrap();
    assert_eq!(fake.posts()[0].username, "kettleco");

    let missing = mastodon
        .connect(tokens, &ConnectRequest::default())
        .await
        .unwrap_err();
    assert_eq!(missing.class(), "rejected");
}

#[tokio::test]
async fn oauth_connects_an_account_with_pkce_on_a_4_3_instance() {
    oauth_end_to_end(true).await;
}

#[tokio::test]
async fn oauth_connects_an_account_without_pkce_on_an_older_instance() {
    oauth_end_to_end(false).await;
}

#[tokio::test]
async fn the_fake_token_endpoint_checks_the_client_and_revokes_tokens() {
    let fake = FakeMastodon::start().await;
    fake.add_account("kettleco");
    let http = reqwest::Client::new();
    let mastodon = Mastodon::new(http.clone());
    let (client_id, client_secret) = mastodon
        .register_app(&fake.base_url(), "Herald", REDIRECT, OAUTH_SCOPES)
        .await
        .unwrap();
    let mut app = mastodon
        .oauth_app(&fake.base_url(), &client_id, &client_secret)
        .await;
    let (code, verifier) = kit::oauth_code(&app, REDIRECT).await;

    let good_secret = std::mem::replace(&mut app.client_secret, "wrong".into());
    let refused = app
        .exchange_code(&http, &code, REDIRECT, verifier.as_deref())
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("invalid_client"), "{refused}");
    app.client_secret = good_secret;

    // An unknown client is refused without a redirect.
    let mut other = app.clone();
    other.client_id = "unknown".into();
    let answer = kit::no_redirect()
        .get(&other.authorize(REDIRECT, "s").unwrap().url)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);

    // Revocation: the app revokes its token, which then gets 401.
    let (code, verifier) = kit::oauth_code(&app, REDIRECT).await;
    let tokens = app
        .exchange_code(&http, &code, REDIRECT, verifier.as_deref())
        .await
        .unwrap();
    let revoke = http
        .post(format!("{}/oauth/revoke", fake.base_url()))
        .form(&[
            ("client_id", client_id.as_str()),
            ("client_secret", client_secret.as_str()),
            ("token", tokens.access_token()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 200);
    assert!(fake.is_revoked(tokens.access_token()));
    let error = connector()
        .check(&session(&fake, tokens.access_token()))
        .await
        .unwrap_err();
    assert_eq!(error.class(), "auth_revoked");
}

// --- replies ----------------------------------------------------------------------------------

/// A thread of three parts from `kettleco`, with the public's replies: one
/// to the first part, one from a remote user to the second, and one to
/// that reply. Returns the fake, the account, the parts and the replies.
async fn thread_with_replies() -> (FakeMastodon, AccountSession, Vec<String>, Vec<String>) {
    let (fake, _, account) = setup().await;
    let ids = kit::publish_thread(&connector(), &account, &kit::THREAD).await;
    let first = fake
        .add_reply(
            &ids[0],
            "alice",
            "Is the tap water safe & <really> boiled?\nThanks",
        )
        .unwrap();
    let second = fake
        .add_reply(
            &ids[1],
            "bob@other.example",
            "Which streets? See https://example.org/a/very/long/map/of/the/north/area",
        )
        .unwrap();
    let third = fake.add_reply(&second, "carol", "Mine too.").unwrap();
    (fake, account, ids, vec![first, second, third])
}

#[tokio::test]
async fn replies_come_oldest_first_at_any_depth_as_plain_text_without_our_statuses() {
    let (fake, account, ids, replies) = thread_with_replies().await;
    let before = Utc::now();
    let mastodon = connector();

    let page = kit::Poller::new(&mastodon, &account, &ids).poll(None).await;

    // The link keeps its full text, hidden spans included.
    kit::assert_replies(
        &page,
        &[
            (
                &replies[0],
                &ids[0],
                "alice",
                "Is the tap water safe & <really> boiled?\nThanks",
            ),
            (
                &replies[1],
                &ids[1],
                "bob@other.example",
                "Which streets? See https://example.org/a/very/long/map/of/the/north/area",
            ),
            (&replies[2], &replies[1], "carol", "Mine too."),
        ],
    );
    assert_eq!(
        page.replies[0].url.as_deref(),
        Some(format!("{}/@alice/{}", fake.base_url(), replies[0]).as_str())
    );
    let stored = fake.posts();
    for reply in &page.replies {
        let status = stored.iter().find(|s| s.id == reply.remote_id).unwrap();
        assert_eq!(
            reply.created_at.timestamp_millis(),
            status.created_at.timestamp_millis()
        );
        assert!(reply.created_at <= before);
    }
    assert!(page.cursor.is_some());
    assert_eq!(fake.requests_to("/api/v1/statuses/"), 1, "one context read");
}

#[tokio::test]
async fn the_cursor_hands_back_only_new_replies_even_when_a_late_one_sorts_before_it() {
    let (fake, account, ids, replies) = thread_with_replies().await;
    let mastodon = connector();
    let poller = kit::Poller::new(&mastodon, &account, &ids);
    let first = poller.poll(None).await;
    assert_eq!(first.replies.len(), 3);
    let again = poller.quiet(first.cursor.clone()).await;

    let fourth = fake
        .add_reply(&ids[2], "dave", "Until which Friday?")
        .unwrap();
    let fifth = fake
        .add_reply(&replies[0], "erin", "Boil it, yes.")
        .unwrap();
    let second = poller.poll(again.cursor.clone()).await;
    assert_eq!(kit::reply_ids(&second), vec![fourth, fifth.clone()]);

    // A reply written an hour ago on another server and fetched only now
    // has an older id than every reply seen: it is still handed back.
    let late = fake
        .add_reply_at(
            &ids[0],
            "frank@slow.example",
            "Late but there.",
            Utc::now() - chrono::Duration::hours(1),
        )
        .unwrap();
    assert!(late.len() < fifth.len() || late < fifth);
    let third = poller.poll(second.cursor.clone()).await;
    assert!(
        third.replies.iter().any(|r| r.remote_id == late),
        "{:?}",
        third.replies
    );
    assert_eq!(third.replies[0].remote_id, late, "oldest first");

    poller.quiet(third.cursor.clone()).await;
    assert_eq!(
        fake.requests_to("/api/v1/accounts/verify_credentials"),
        1,
        "the account id is asked once per token"
    );
}

#[tokio::test]
async fn a_large_deep_conversation_comes_whole_in_one_read() {
    let (fake, _, account) = setup().await;
    let root = connector()
        .publish(&account, &post("Water cut tonight."))
        .await
        .unwrap()
        .remote_id;
    // A chain 30 deep (past the 20 levels an anonymous read gets) and 50
    // flat replies (past its 60 descendants).
    let mut parent = root.clone();
    for n in 0..30 {
        parent = fake
            .add_reply(&parent, &format!("chain{n}"), &format!("level {n}"))
            .unwrap();
    }
    for n in 0..50 {
        fake.add_reply(&root, &format!("flat{n}"), "ok").unwrap();
    }
    let mastodon = connector();
    let page = kit::Poller::new(&mastodon, &account, std::slice::from_ref(&root))
        .poll(None)
        .await;
    assert_eq!(page.replies.len(), 80);
    assert!(page.replies.iter().any(|r| r.text == "level 29"));

    let anonymous: serde_json::Value = reqwest::get(format!(
        "{}/api/v1/statuses/{root}/context",
        fake.base_url()
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(anonymous["descendants"].as_array().unwrap().len(), 60);
}

#[tokio::test]
async fn reading_replies_maps_429_5xx_and_revoked_tokens_like_publishing() {
    let (fake, token, account) = setup().await;
    let root = connector()
        .publish(&account, &post("Statement."))
        .await
        .unwrap()
        .remote_id;
    // The account id is asked (and kept) before the faults are armed.
    let mastodon = connector();
    let poller = kit::Poller::new(&mastodon, &account, &[root]);
    poller.poll(None).await;

    fake.rate_limit_next(1, Duration::from_secs(90));
    let wait = Duration::from_secs(85)..=Duration::from_millis(90_500);
    kit::assert_throttled(&poller.fail(None).await, 429, wait, "Too many requests");

    fake.fail_next(1, 502);
    kit::assert_transient(&poller.fail(None).await, 502);

    fake.revoke(&token);
    let error = poller.fail(None).await;
    kit::assert_revoked(&error, "The access token was revoked", &token);
    assert_eq!(error.status(), Some(401));

    let other = session(&fake, &fake.add_account("other"));
    let gone = kit::Poller::new(&mastodon, &other, &["1".into()])
        .fail(None)
        .await;
    assert_eq!(gone.class(), "rejected");
    assert_eq!(gone.status(), Some(404));
}

#[tokio::test]
async fn answering_a_reply_is_a_status_in_reply_to_it_and_is_never_collected() {
    let (fake, account, ids, replies) = thread_with_replies().await;
    let mastodon = connector();
    let poller = kit::Poller::new(&mastodon, &account, &ids);
    let cursor = poller.poll(None).await.cursor;
    let answer = Post {
        language: Some("en-GB".into()),
        ..kit::answer(&ids[0], &replies[0], "@alice Yes: boil it for one minute.")
    };

    let published = mastodon.publish(&account, &answer).await.unwrap();

    let stored = fake.posts();
    let status = stored.iter().find(|s| s.id == published.remote_id).unwrap();
    assert_eq!(status.in_reply_to_id.as_deref(), Some(replies[0].as_str()));
    assert_eq!(status.username, "kettleco");
    assert_eq!(
        status.idempotency_key.as_deref(),
        Some(answer.idempotency_key.as_str())
    );
    // After an unknown outcome, reconciling finds the same status.
    let found = connector().reconcile(&account, &answer).await.unwrap();
    assert_eq!(
        found.map(|p| p.remote_id),
        Some(published.remote_id.clone())
    );
    assert_eq!(fake.posts().len(), stored.len(), "no duplicate");

    // The answer is the account's own: the next poll leaves it out, even
    // though the query does not list it.
    let next = poller.quiet(cursor).await;
    let reply_to_answer = fake
        .add_reply(&published.remote_id, "alice", "Thank you!")
        .unwrap();
    let next = poller.poll(next.cursor).await;
    kit::assert_replies(
        &next,
        &[(
            &reply_to_answer,
            &published.remote_id,
            "alice",
            "Thank you!",
        )],
    );
}
