//! The Bluesky connector against the fake PDS: sessions (one login, refresh
//! on both expired-token forms, fallback to one login), classification of
//! failures, record contents, and reconciliation by record key.

use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use chrono::Utc;
use futures_util::future::join_all;
use herald::fakes::bluesky::{FakeBluesky, RateLimit, RateLimits};
use herald::platforms::bluesky::Bluesky;
use herald::platforms::connector::{tid, ReplyPage};
use herald::platforms::{AccountSession, Connector, ConnectorError, Platform, Post};

use crate::kit::{self, image};

const HANDLE: &str = "city.bsky.social";
const PASSWORD: &str = "abcd-efgh-ijkl-mnop";

static CLOCK: AtomicU16 = AtomicU16::new(0);

fn connector() -> Bluesky {
    Bluesky::new(reqwest::Client::new())
}

fn account(fake: &FakeBluesky, handle: &str, password: &str) -> AccountSession {
    kit::session(
        Platform::Bluesky,
        Some(&fake.base_url()),
        &[("identifier", handle), ("app_password", password)],
    )
}

/// A fresh record key: Bluesky takes a TID as the idempotency key.
fn next_tid() -> String {
    tid(Utc::now(), CLOCK.fetch_add(1, Ordering::Relaxed) % 1024)
}

fn post(text: &str) -> Post {
    Post {
        idempotency_key: next_tid(),
        ..kit::post(text)
    }
}

/// A fake with one account, and that account as Herald holds it.
async fn setup() -> (FakeBluesky, AccountSession) {
    let fake = FakeBluesky::start().await;
    fake.add_account(HANDLE, PASSWORD);
    let account = account(&fake, HANDLE, PASSWORD);
    (fake, account)
}

async fn stored(account: &AccountSession, name: &str) -> Option<String> {
    account
        .credentials
        .lock()
        .await
        .get(name)
        .map(str::to_string)
}

/// Publish once so that a session is stored; forget the "changed" flag.
async fn signed_in(fake: &FakeBluesky, account: &AccountSession) {
    connector()
        .publish(account, &post("first"))
        .await
        .expect("the first post goes out");
    account.credentials.lock().await.take_changed();
    assert_eq!(fake.sessions_created(HANDLE), 1);
}

#[tokio::test]
async fn bluesky_first_publish_logs_in_once_and_stores_the_session() {
    let (fake, account) = setup().await;
    let did = fake.add_account(HANDLE, PASSWORD);
    let p = post("Roads closed north of the river.");
    let published = connector().publish(&account, &p).await.expect("published");

    assert_eq!(fake.sessions_created(HANDLE), 1);
    let mut credentials = account.credentials.lock().await;
    assert!(credentials.take_changed(), "the session must be saved");
    assert_eq!(credentials.get("did"), Some(did.as_str()));
    assert_eq!(credentials.get("handle"), Some(HANDLE));
    assert!(credentials.get("access_jwt").is_some_and(|t| t.len() > 20));
    assert!(credentials.get("refresh_jwt").is_some_and(|t| t.len() > 20));
    drop(credentials);

    let rkey = &p.idempotency_key;
    assert_eq!(
        published.remote_id,
        format!("at://{did}/app.bsky.feed.post/{rkey}")
    );
    assert_eq!(
        published.remote_url.as_deref(),
        Some(format!("https://bsky.app/profile/{HANDLE}/post/{rkey}").as_str())
    );
    assert_eq!(published.pause_until, None);

    // The second post reuses the session: no login, nothing new to save.
    connector()
        .publish(&account, &post("Second"))
        .await
        .expect("published");
    assert_eq!(fake.sessions_created(HANDLE), 1);
    assert!(!account.credentials.lock().await.take_changed());
    assert_eq!(fake.posts().len(), 2);
}

#[tokio::test]
async fn bluesky_twenty_concurrent_publications_share_one_login() {
    let (fake, account) = setup().await;
    let bluesky = connector();
    let posts: Vec<Post> = (0..20).map(|i| post(&format!("Update {i}"))).collect();
    let results = join_all(posts.iter().map(|p| bluesky.publish(&account, p))).await;

    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(fake.sessions_created(HANDLE), 1);
    assert_eq!(fake.posts().len(), 20);
    assert_eq!(fake.post_requests(), 20);
    let mut rkeys: Vec<String> = fake.posts().into_iter().map(|r| r.rkey).collect();
    rkeys.sort();
    let mut expected: Vec<String> = posts.iter().map(|p| p.idempotency_key.clone()).collect();
    expected.sort();
    assert_eq!(rkeys, expected);
}

#[tokio::test]
async fn bluesky_record_has_created_at_langs_and_facets_that_slice_the_url_by_bytes() {
    let (fake, account) = setup().await;
    let text = "Évacuation près du café 🚨 details: https://ville.example.fr/crue?z=2 now";
    let mut p = post(text);
    p.language = Some("fr".into());
    let before = Utc::now() - chrono::Duration::seconds(1);
    connector().publish(&account, &p).await.expect("published");

    let posts = fake.posts();
    let record = &posts[0];
    assert_eq!(record.text, text);
    assert_eq!(record.langs, vec!["fr".to_string()]);
    assert_eq!(record.rkey, p.idempotency_key);
    let created = chrono::DateTime::parse_from_rfc3339(&record.created_at).expect("RFC 3339");
    assert!(record.created_at.ends_with('Z'), "{}", record.created_at);
    assert!(created >= before && created <= Utc::now());

    let facets = record.facets.as_array().expect("facets");
    assert_eq!(facets.len(), 1);
    let start = facets[0]["index"]["byteStart"].as_u64().unwrap() as usize;
    let end = facets[0]["index"]["byteEnd"].as_u64().unwrap() as usize;
    let bytes = record.text.as_bytes();
    assert_eq!(
        std::str::from_utf8(&bytes[start..end]).unwrap(),
        "https://ville.example.fr/crue?z=2"
    );
    // Character offsets would be 6 bytes short (three 2-byte letters, one 4-byte emoji).
    assert_eq!(
        start,
        text.chars().take_while(|&c| c != 'h').count() + 6,
        "byte offsets, not character offsets"
    );
    assert_eq!(
        facets[0]["features"][0]["$type"],
        "app.bsky.richtext.facet#link"
    );
    assert_eq!(
        facets[0]["features"][0]["uri"],
        "https://ville.example.fr/crue?z=2"
    );
}

async fn expired_token_is_refreshed_once(status: u16) {
    let (fake, account) = setup().await;
    signed_in(&fake, &account).await;
    let access = stored(&account, "access_jwt").await;
    let refresh = stored(&account, "refresh_jwt").await;

    fake.expire_access_tokens(status);
    connector()
        .publish(&account, &post("After expiry"))
        .await
        .expect("the post goes out after a refresh");

    assert_eq!(fake.sessions_refreshed(HANDLE), 1);
    assert_eq!(fake.sessions_created(HANDLE), 1, "no new login");
    assert_eq!(fake.posts().len(), 2);
    assert!(account.credentials.lock().await.take_changed());
    assert_ne!(stored(&account, "access_jwt").await, access);
    assert_ne!(stored(&account, "refresh_jwt").await, refresh);
}

#[tokio::test]
async fn bluesky_expired_token_400_from_the_pds_is_refreshed_and_the_post_goes_out() {
    expired_token_is_refreshed_once(400).await;
}

#[tokio::test]
async fn bluesky_expired_token_401_from_the_appview_is_refreshed_and_the_post_goes_out() {
    expired_token_is_refreshed_once(401).await;
}

#[tokio::test]
async fn bluesky_concurrent_publications_with_an_expired_token_refresh_once() {
    let (fake, account) = setup().await;
    signed_in(&fake, &account).await;
    fake.expire_access_tokens(400);
    let bluesky = connector();
    let posts: Vec<Post> = (0..10).map(|i| post(&format!("Wave {i}"))).collect();
    let results = join_all(posts.iter().map(|p| bluesky.publish(&account, p))).await;

    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(fake.sessions_refreshed(HANDLE), 1);
    assert_eq!(fake.sessions_created(HANDLE), 1);
    assert_eq!(fake.posts().len(), 11);
}

#[tokio::test]
async fn bluesky_a_dead_refresh_token_falls_back_to_one_login() {
    let (fake, account) = setup().await;
    signed_in(&fake, &account).await;
    let refresh = stored(&account, "refresh_jwt").await;
    fake.expire_access_tokens(400);
    fake.revoke_refresh_tokens(HANDLE);

    connector()
        .publish(&account, &post("After a new login"))
        .await
        .expect("published after logging in again");

    assert_eq!(fake.sessions_refreshed(HANDLE), 0);
    assert_eq!(fake.sessions_created(HANDLE), 2, "exactly one more login");
    assert_ne!(stored(&account, "refresh_jwt").await, refresh);
    assert!(account.credentials.lock().await.take_changed());
    assert_eq!(fake.posts().len(), 2);
}

fn assert_no_secrets(error: &ConnectorError, secrets: &[Option<String>]) {
    let text = format!("{error} {error:?}");
    assert!(!text.contains(PASSWORD), "{text}");
    for secret in secrets.iter().flatten() {
        assert!(!text.contains(secret.as_str()), "{text}");
    }
}

#[tokio::test]
async fn bluesky_a_refused_app_password_is_auth_revoked() {
    let (fake, _) = setup().await;
    let wrong = account(&fake, HANDLE, "wrong-pass-word-xxxx");
    let error = connector()
        .publish(&wrong, &post("Never sent"))
        .await
        .unwrap_err();
    assert_eq!(
        error,
        ConnectorError::AuthRevoked {
            message: "the app password was refused; reconnect the account".into(),
            status: Some(401),
        }
    );
    assert_eq!(fake.post_requests(), 0);
    assert_no_secrets(&error, &[Some("wrong-pass-word-xxxx".into())]);
}

#[tokio::test]
async fn bluesky_concurrent_publications_with_a_refused_password_try_one_login() {
    let (fake, _) = setup().await;
    let wrong = account(&fake, HANDLE, "wrong-pass-word-xxxx");
    let bluesky = connector();
    let posts: Vec<Post> = (0..10).map(|i| post(&format!("Queued {i}"))).collect();
    let results = join_all(posts.iter().map(|p| bluesky.publish(&wrong, p))).await;

    assert!(
        results
            .iter()
            .all(|r| r.as_ref().is_err_and(|e| e.class() == "auth_revoked")),
        "{results:?}"
    );
    assert_eq!(fake.login_attempts(HANDLE), 1, "the refusal is remembered");
    assert_eq!(fake.post_requests(), 0);

    // Once the admin gives the right password, Herald logs in again.
    let fixed = account(&fake, HANDLE, PASSWORD);
    bluesky
        .publish(&fixed, &post("Reconnected"))
        .await
        .expect("published");
    assert_eq!(fake.login_attempts(HANDLE), 2);
}

#[tokio::test]
async fn bluesky_a_revoked_app_password_with_a_dead_session_is_auth_revoked() {
    let (fake, account) = setup().await;
    signed_in(&fake, &account).await;
    let secrets = [
        stored(&account, "access_jwt").await,
        stored(&account, "refresh_jwt").await,
    ];
    fake.expire_access_tokens(400);
    fake.revoke_refresh_tokens(HANDLE);
    fake.set_app_password(HANDLE, "a-new-app-password");

    let error = connector()
        .publish(&account, &post("Never sent"))
        .await
        .unwrap_err();
    assert_eq!(error.class(), "auth_revoked", "{error:?}");
    assert_eq!(fake.posts().len(), 1);
    assert_no_secrets(&error, &secrets);
}

#[tokio::test]
async fn bluesky_a_taken_down_account_is_auth_revoked_with_or_without_a_session() {
    let (fake, account) = setup().await;
    signed_in(&fake, &account).await;
    fake.take_down(HANDLE);

    let with_session = connector()
        .publish(&account, &post("Never sent"))
        .await
        .unwrap_err();
    assert_eq!(with_session.class(), "auth_revoked", "{with_session:?}");
    assert!(with_session.to_string().contains("AccountTakedown"));

    let fresh = account_without_session(&fake);
    let at_login = connector()
        .publish(&fresh, &post("Never sent"))
        .await
        .unwrap_err();
    assert_eq!(at_login.class(), "auth_revoked", "{at_login:?}");
    assert_eq!(fake.posts().len(), 1);
}

fn account_without_session(fake: &FakeBluesky) -> AccountSession {
    account(fake, HANDLE, PASSWORD)
}

#[tokio::test]
async fn bluesky_a_server_error_is_transient_and_stores_nothing() {
    let (fake, account) = setup().await;
    fake.fail_next(1, 503);
    let error = connector()
        .publish(&account, &post("Try again"))
        .await
        .unwrap_err();
    assert_eq!(error.class(), "transient", "{error:?}");
    assert_eq!(error.status(), Some(503));
    assert!(fake.posts().is_empty());

    // The next attempt of the same delivery goes through.
    connector()
        .publish(&account, &post("Try again"))
        .await
        .expect("published");
    assert_eq!(fake.posts().len(), 1);
}

#[tokio::test]
async fn bluesky_a_429_is_rate_limited_until_the_reset() {
    let (fake, account) = setup().await;
    fake.rate_limit_next(1, Duration::from_secs(120));
    let error = connector()
        .publish(&account, &post("Slow down"))
        .await
        .unwrap_err();
    let (retry_after, status, _) = kit::rate_limited(&error);
    assert_eq!(status, Some(429));
    assert!(
        (Duration::from_secs(118)..=Duration::from_secs(121)).contains(&retry_after),
        "{retry_after:?}"
    );
    assert!(fake.posts().is_empty());
}

#[tokio::test]
async fn bluesky_spent_write_points_pause_the_account_until_the_reset() {
    let (fake, account) = setup().await;
    fake.set_rate_limits(RateLimits {
        write_points: Some(RateLimit {
            points: 6,
            window: Duration::from_secs(600),
        }),
        ..RateLimits::DOCUMENTED
    });
    let first = connector()
        .publish(&account, &post("One"))
        .await
        .expect("one");
    assert_eq!(first.pause_until, None);
    let second = connector()
        .publish(&account, &post("Two"))
        .await
        .expect("two");
    let pause = second.pause_until.expect("no points left: pause");
    let ahead = pause - Utc::now();
    assert!(
        ahead > chrono::Duration::seconds(590) && ahead <= chrono::Duration::seconds(601),
        "{ahead:?}"
    );
    let third = connector()
        .publish(&account, &post("Three"))
        .await
        .unwrap_err();
    assert_eq!(third.class(), "rate_limited", "{third:?}");
    assert_eq!(fake.posts().len(), 2);
}

#[tokio::test]
async fn bluesky_a_text_over_300_graphemes_is_rejected_with_the_servers_reason() {
    let (fake, account) = setup().await;
    let error = connector()
        .publish(&account, &post(&"é".repeat(301)))
        .await
        .unwrap_err();
    assert_eq!(error.class(), "rejected", "{error:?}");
    assert_eq!(error.status(), Some(400));
    assert!(
        error
            .to_string()
            .contains("must not be longer than 300 graphemes"),
        "{error}"
    );
    assert!(fake.posts().is_empty());
}

#[tokio::test]
async fn bluesky_a_dropped_answer_is_unknown_and_reconcile_finds_the_one_record() {
    let (fake, account) = setup().await;
    let p = post("Shelter open at the school.");
    fake.drop_after_store_next(1);
    let error = connector().publish(&account, &p).await.unwrap_err();
    assert_eq!(error.class(), "unknown", "{error:?}");
    assert_eq!(fake.posts().len(), 1, "the fake stored it");

    let found = connector()
        .reconcile(&account, &p)
        .await
        .expect("reconciled")
        .expect("the post exists");
    assert_eq!(found.remote_id, fake.posts()[0].uri);
    assert!(found.remote_id.ends_with(&p.idempotency_key));
    assert_eq!(fake.posts().len(), 1);
}

#[tokio::test]
async fn bluesky_a_stalled_answer_times_out_as_unknown_and_reconciles() {
    let (fake, account) = setup().await;
    signed_in(&fake, &account).await;
    let p = post("Water safe to drink again.");
    fake.stall_after_store_next(1, Duration::from_secs(3));
    let impatient = Bluesky::new(
        reqwest::Client::builder()
            .timeout(Duration::from_millis(300))
            .build()
            .unwrap(),
    );
    let error = impatient.publish(&account, &p).await.unwrap_err();
    assert_eq!(error.class(), "unknown", "{error:?}");
    let found = impatient.reconcile(&account, &p).await.expect("reconciled");
    assert!(found.is_some_and(|f| f.remote_id.ends_with(&p.idempotency_key)));
    assert_eq!(fake.posts().len(), 2);
}

#[tokio::test]
async fn bluesky_reconcile_of_a_post_never_sent_is_none() {
    let (fake, account) = setup().await;
    let found = connector()
        .reconcile(&account, &post("Never sent"))
        .await
        .expect("answered");
    assert_eq!(found, None);
    assert_eq!(fake.post_requests(), 0);
}

#[tokio::test]
async fn bluesky_reconcile_refreshes_an_expired_token() {
    let (fake, account) = setup().await;
    let p = post("Bridge reopened.");
    let published = connector().publish(&account, &p).await.expect("published");
    fake.expire_access_tokens(401);
    let found = connector().reconcile(&account, &p).await.expect("answered");
    assert_eq!(found.map(|f| f.remote_id), Some(published.remote_id));
    assert_eq!(fake.sessions_refreshed(HANDLE), 1);
}

#[tokio::test]
async fn bluesky_publishing_again_with_the_same_rkey_returns_the_existing_post() {
    let (fake, account) = setup().await;
    let p = post("Boil water notice lifted.");
    let first = connector().publish(&account, &p).await.expect("published");
    let again = connector()
        .publish(&account, &p)
        .await
        .expect("not a duplicate");
    assert_eq!(again.remote_id, first.remote_id);
    assert_eq!(again.remote_url, first.remote_url);
    assert_eq!(fake.post_requests(), 2);
    assert_eq!(fake.posts().len(), 1, "still one record");
}

// --- the fake itself -----------------------------------------------------------------------------

#[tokio::test]
async fn bluesky_fake_answers_with_rate_limit_headers_and_xrpc_errors() {
    let fake = FakeBluesky::start().await;
    fake.add_account(HANDLE, PASSWORD);
    let http = reqwest::Client::new();
    let url = |nsid: &str| format!("{}/xrpc/{nsid}", fake.base_url());

    let login = http
        .post(url("com.atproto.server.createSession"))
        .json(&serde_json::json!({"identifier": HANDLE, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    assert_eq!(login.headers()["ratelimit-limit"], "30");
    assert_eq!(login.headers()["ratelimit-remaining"], "29");
    assert_eq!(login.headers()["ratelimit-policy"], "30;w=300");
    let reset: i64 = login.headers()["ratelimit-reset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (reset - Utc::now().timestamp() - 300).abs() <= 2,
        "epoch seconds"
    );
    let session: serde_json::Value = login.json().await.unwrap();
    assert!(session["did"].as_str().unwrap().starts_with("did:plc:"));
    assert_eq!(
        session["did"].as_str().unwrap().len(),
        "did:plc:".len() + 24
    );

    let missing = http
        .post(url("com.atproto.repo.createRecord"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 401);
    let body: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(body["error"], "AuthMissing");

    let access = session["accessJwt"].as_str().unwrap();
    let out_of_range = http
        .post(url("com.atproto.repo.createRecord"))
        .bearer_auth(access)
        .json(&serde_json::json!({
            "repo": session["did"], "collection": "app.bsky.feed.post",
            "record": {"$type": "app.bsky.feed.post", "text": "hi", "createdAt": "2026-11-25T09:00:00.000Z",
                       "facets": [{"index": {"byteStart": 0, "byteEnd": 3},
                                   "features": [{"$type": "app.bsky.richtext.facet#link", "uri": "https://a.b"}]}]}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(out_of_range.status(), 400);
    assert_eq!(out_of_range.headers()["ratelimit-policy"], "5000;w=3600");
    assert_eq!(out_of_range.headers()["ratelimit-remaining"], "4997");
    let body: serde_json::Value = out_of_range.json().await.unwrap();
    assert_eq!(body["error"], "InvalidRequest");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("Record/facets/0/index"));
    assert!(fake.posts().is_empty());
}

#[tokio::test]
async fn bluesky_fake_allows_30_logins_per_five_minutes() {
    let fake = FakeBluesky::start().await;
    fake.add_account(HANDLE, PASSWORD);
    let http = reqwest::Client::new();
    let url = format!("{}/xrpc/com.atproto.server.createSession", fake.base_url());
    let body = serde_json::json!({"identifier": HANDLE, "password": PASSWORD});
    for _ in 0..30 {
        let ok = http.post(&url).json(&body).send().await.unwrap();
        assert_eq!(ok.status(), 200);
    }
    let over = http.post(&url).json(&body).send().await.unwrap();
    assert_eq!(over.status(), 429);
    let error: serde_json::Value = over.json().await.unwrap();
    assert_eq!(
        error,
        serde_json::json!({"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"})
    );
    assert_eq!(fake.sessions_created(HANDLE), 30);

    // A benchmark can switch the limits off.
    fake.set_rate_limits(RateLimits::UNLIMITED);
    let free = http.post(&url).json(&body).send().await.unwrap();
    assert_eq!(free.status(), 200);
    assert!(free.headers().get("ratelimit-limit").is_none());
}

/// Part `n` of a thread, answering `(root, parent)`.
fn part(text: &str, n: usize, reply_to: Option<(&str, &str)>) -> Post {
    Post {
        idempotency_key: next_tid(),
        ..kit::thread_part(text, n, reply_to)
    }
}

#[tokio::test]
async fn bluesky_a_thread_of_three_parts_carries_root_and_parent_strong_refs() {
    let (fake, account) = setup().await;
    let first = connector()
        .publish(&account, &part("1/3 Flood warning", 0, None))
        .await
        .unwrap();
    let second = connector()
        .publish(
            &account,
            &part(
                "2/3 Roads closed",
                1,
                Some((&first.remote_id, &first.remote_id)),
            ),
        )
        .await
        .unwrap();
    let third = connector()
        .publish(
            &account,
            &part(
                "3/3 Shelters open",
                2,
                Some((&first.remote_id, &second.remote_id)),
            ),
        )
        .await
        .unwrap();

    let posts = fake.posts();
    assert_eq!(posts.len(), 3);
    let (root, middle, last) = (&posts[0], &posts[1], &posts[2]);
    assert_eq!(root.uri, first.remote_id);
    assert_eq!(last.uri, third.remote_id);
    assert_eq!(root.reply, None);
    let reply = middle.reply.as_ref().expect("part 2 is a reply");
    assert_eq!(
        (reply.root_uri.as_str(), reply.root_cid.as_str()),
        (root.uri.as_str(), root.cid.as_str())
    );
    assert_eq!(
        (reply.parent_uri.as_str(), reply.parent_cid.as_str()),
        (root.uri.as_str(), root.cid.as_str())
    );
    let reply = last.reply.as_ref().expect("part 3 is a reply");
    assert_eq!(
        (reply.root_uri.as_str(), reply.root_cid.as_str()),
        (root.uri.as_str(), root.cid.as_str())
    );
    assert_eq!(
        (reply.parent_uri.as_str(), reply.parent_cid.as_str()),
        (middle.uri.as_str(), middle.cid.as_str())
    );

    // The parent is gone: the reply cannot be made.
    connector()
        .delete(&account, &third.remote_id)
        .await
        .unwrap();
    let error = connector()
        .publish(
            &account,
            &part("4/3", 3, Some((&first.remote_id, &third.remote_id))),
        )
        .await
        .unwrap_err();
    kit::assert_error(&error, "rejected", "no longer exists");
}

#[tokio::test]
async fn bluesky_images_are_uploaded_as_blobs_and_embedded_with_alt_text() {
    let (fake, account) = setup().await;
    let mut p = post("Flood map and shelter list");
    p.media = vec![
        image(fake.image_url(), Some("Map of the flooded streets")),
        image(fake.image_url_of_size(1_000_000), None),
    ];

    connector().publish(&account, &p).await.unwrap();

    let posts = fake.posts();
    assert_eq!(posts.len(), 1);
    let images = &posts[0].images;
    assert_eq!(images.len(), 2);
    assert_eq!(images[0].alt, "Map of the flooded streets");
    assert_eq!(images[0].mime_type, "image/jpeg");
    assert_eq!(images[0].size, 256);
    assert!(images[0].cid.starts_with("bafkrei"));
    assert_eq!(images[1].alt, "", "no alt text is an empty alt");
    assert_eq!(images[1].size, 1_000_000);
    assert_eq!(fake.blobs_uploaded(), 2);
}

#[tokio::test]
async fn bluesky_images_over_the_limits_are_rejected_before_anything_is_posted() {
    let (fake, account) = setup().await;
    let mut big = post("too big");
    big.media = vec![image(fake.image_url_of_size(1_000_001), Some("big"))];
    let error = connector().publish(&account, &big).await.unwrap_err();
    assert_eq!(error.class(), "rejected");
    assert!(
        error.to_string().contains("image 1") && error.to_string().contains("1000000 bytes"),
        "{error}"
    );

    let mut five = post("too many");
    five.media = (0..5).map(|_| image(fake.image_url(), None)).collect();
    let error = connector().publish(&account, &five).await.unwrap_err();
    kit::assert_error(&error, "rejected", "at most 4");
    assert!(fake.posts().is_empty());
    assert_eq!(fake.blobs_uploaded(), 0);
}

#[tokio::test]
async fn bluesky_delete_removes_the_record_and_a_gone_record_is_fine() {
    let (fake, account) = setup().await;
    let p = post("Posted by mistake");
    let published = connector().publish(&account, &p).await.unwrap();

    connector()
        .delete(&account, &published.remote_id)
        .await
        .unwrap();
    assert!(fake.posts()[0].deleted);
    assert_eq!(
        connector().reconcile(&account, &p).await.unwrap(),
        None,
        "getRecord no longer finds it"
    );
    connector()
        .delete(&account, &published.remote_id)
        .await
        .unwrap();
    assert_eq!(fake.requests_to("com.atproto.repo.deleteRecord"), 2);

    let error = connector()
        .delete(&account, "https://bsky.app/x")
        .await
        .unwrap_err();
    assert_eq!(error.class(), "rejected");
}

#[tokio::test]
async fn bluesky_check_reads_the_session_refreshing_it_when_expired() {
    let (fake, account) = setup().await;
    connector().check(&account).await.unwrap();
    assert_eq!(
        fake.sessions_created(HANDLE),
        1,
        "no session yet: one login"
    );
    assert_eq!(fake.requests_to("com.atproto.server.getSession"), 1);

    fake.expire_access_tokens(400);
    connector().check(&account).await.unwrap();
    assert_eq!(fake.sessions_refreshed(HANDLE), 1);
    assert_eq!(fake.sessions_created(HANDLE), 1);

    fake.revoke_app_password(HANDLE);
    let error = connector().check(&account).await.unwrap_err();
    assert_eq!(error.class(), "auth_revoked");
}

// --- replies ----------------------------------------------------------------------------------

/// Publish `texts` as a thread (each part answering the one before), with
/// the record keys (TIDs) Bluesky needs.
async fn publish_thread(account: &AccountSession, texts: &[&str]) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for text in texts {
        let next = Post {
            idempotency_key: next_tid(),
            ..kit::next_part(text, &ids)
        };
        let published = connector().publish(account, &next).await.unwrap();
        ids.push(published.remote_id);
    }
    ids
}

/// A three-part thread with replies from the public: to the first part,
/// to the second, and a reply to that reply.
async fn thread_with_replies() -> (FakeBluesky, AccountSession, Vec<String>, Vec<String>) {
    let (fake, account) = setup().await;
    let ids = publish_thread(&account, &kit::THREAD).await;
    let first = fake
        .add_reply(&ids[0], "alice.bsky.social", "Is the tap water safe? 🚰")
        .unwrap();
    let second = fake
        .add_reply(&ids[1], "bob.example.com", "Which streets exactly?")
        .unwrap();
    let third = fake
        .add_reply(&second, "carol.bsky.social", "Mine too.")
        .unwrap();
    (fake, account, ids, vec![first, second, third])
}

#[tokio::test]
async fn bluesky_replies_come_oldest_first_at_any_depth_without_our_posts() {
    let (fake, account, ids, replies) = thread_with_replies().await;
    let bluesky = connector();

    let page = kit::Poller::new(&bluesky, &account, &ids).poll(None).await;

    assert_thread_replies(&fake, &page, &ids, &replies, true);
    assert_eq!(fake.requests_to("app.bsky.feed.getPostThread"), 1);
}

/// `page` holds the replies of [`thread_with_replies`], oldest first, as
/// the fake stored them: Alice's and Bob's, and Carol's answer to Bob when
/// `with_carol`.
fn assert_thread_replies(
    fake: &FakeBluesky,
    page: &ReplyPage,
    ids: &[String],
    replies: &[String],
    with_carol: bool,
) {
    let mut expected = vec![
        (
            replies[0].as_str(),
            ids[0].as_str(),
            "alice.bsky.social",
            "Is the tap water safe? 🚰",
        ),
        (
            replies[1].as_str(),
            ids[1].as_str(),
            "bob.example.com",
            "Which streets exactly?",
        ),
    ];
    if with_carol {
        expected.push((&replies[2], &replies[1], "carol.bsky.social", "Mine too."));
    }
    kit::assert_replies(page, &expected);
    let rkey = replies[0].rsplit('/').next().unwrap();
    assert_eq!(
        page.replies[0].url.as_deref(),
        Some(format!("https://bsky.app/profile/alice.bsky.social/post/{rkey}").as_str())
    );
    let posts = fake.posts();
    for reply in &page.replies {
        let record = posts.iter().find(|p| p.uri == reply.remote_id).unwrap();
        let created = chrono::DateTime::parse_from_rfc3339(&record.created_at).unwrap();
        assert_eq!(reply.created_at, created);
        assert_eq!(
            record.reply.as_ref().unwrap().root_uri,
            ids[0],
            "rooted at our post"
        );
    }
}

#[tokio::test]
async fn bluesky_the_cursor_hands_back_only_new_replies_and_reaches_deep_ones() {
    let (fake, account, ids, replies) = thread_with_replies().await;
    let bluesky = connector();
    let poller = kit::Poller::new(&bluesky, &account, &ids);
    let first = poller.poll(None).await;
    assert_eq!(first.replies.len(), 3);
    let again = poller.quiet(first.cursor.clone()).await;

    // Past getPostThread's default depth of 6: a chain ten deep under a reply.
    let mut parent = replies[2].clone();
    let mut chain = Vec::new();
    for n in 0..10 {
        parent = fake
            .add_reply(
                &parent,
                &format!("deep{n}.bsky.social"),
                &format!("level {n}"),
            )
            .unwrap();
        chain.push(parent.clone());
    }
    // A client whose clock is behind: createdAt before every reply seen.
    let behind = fake
        .add_reply_at(
            &ids[2],
            "slow.bsky.social",
            "Until which Friday?",
            Utc::now() - chrono::Duration::hours(2),
        )
        .unwrap();
    let next = poller.poll(again.cursor.clone()).await;
    let mut expected = vec![behind];
    expected.extend(chain);
    assert_eq!(kit::reply_ids(&next), expected, "oldest first by createdAt");

    poller.quiet(next.cursor.clone()).await;
}

#[tokio::test]
async fn bluesky_reading_replies_maps_429_5xx_expired_and_revoked_sessions() {
    let (fake, account, ids, _) = thread_with_replies().await;
    let bluesky = connector();
    let poller = kit::Poller::new(&bluesky, &account, &ids);

    fake.rate_limit_next(1, Duration::from_secs(90));
    let wait = Duration::from_secs(88)..=Duration::from_secs(91);
    kit::assert_throttled(&poller.fail(None).await, 429, wait, "RateLimitExceeded");

    fake.fail_next(1, 502);
    kit::assert_transient(&poller.fail(None).await, 502);

    // An expired access token (the AppView's 401 form) is refreshed once.
    fake.expire_access_tokens(401);
    assert_eq!(poller.poll(None).await.replies.len(), 3);
    assert_eq!(fake.sessions_refreshed(HANDLE), 1);

    fake.revoke_app_password(HANDLE);
    kit::assert_revoked(&poller.fail(None).await, "", PASSWORD);

    let (fake, account) = setup().await;
    let did = fake.add_account(HANDLE, PASSWORD);
    let missing = [format!("at://{did}/app.bsky.feed.post/3kzzzzzzzzzzz")];
    let gone = kit::Poller::new(&bluesky, &account, &missing)
        .fail(None)
        .await;
    kit::assert_error(&gone, "rejected", "NotFound");
}

#[tokio::test]
async fn bluesky_answering_a_reply_roots_at_our_post_with_the_publics_post_as_parent() {
    let (fake, account, ids, replies) = thread_with_replies().await;
    let bluesky = connector();
    let poller = kit::Poller::new(&bluesky, &account, &ids);
    let cursor = poller.poll(None).await.cursor;
    let answer = Post {
        idempotency_key: next_tid(),
        ..kit::answer(&ids[0], &replies[2], "Yes, on both sides of the river.")
    };

    let published = bluesky.publish(&account, &answer).await.unwrap();

    let posts = fake.posts();
    let record = posts.iter().find(|p| p.uri == published.remote_id).unwrap();
    let parent = posts.iter().find(|p| p.uri == replies[2]).unwrap();
    let root = posts.iter().find(|p| p.uri == ids[0]).unwrap();
    let refs = record.reply.as_ref().unwrap();
    assert_eq!(
        (&refs.parent_uri, &refs.parent_cid),
        (&parent.uri, &parent.cid)
    );
    assert_eq!((&refs.root_uri, &refs.root_cid), (&root.uri, &root.cid));
    assert_eq!(record.handle, HANDLE);

    // An unknown outcome reconciles to the same record, without a duplicate.
    let found = bluesky.reconcile(&account, &answer).await.unwrap();
    assert_eq!(
        found.map(|p| p.remote_id),
        Some(published.remote_id.clone())
    );
    assert_eq!(fake.posts().len(), posts.len());

    // The account's own answer is never collected as a reply.
    poller.quiet(cursor).await;
}

// --- replies from notifications (no feed AppView) ------------------------------------------------

const LIST_NOTIFICATIONS: &str = "app.bsky.notification.listNotifications";

/// [`thread_with_replies`] on a PDS that has no AppView for feeds.
async fn thread_without_feed_appview() -> (FakeBluesky, AccountSession, Vec<String>, Vec<String>) {
    let (fake, account, ids, replies) = thread_with_replies().await;
    fake.set_feed_appview(false);
    (fake, account, ids, replies)
}

/// `n` replies to `parent` from a few accounts, in order: their URIs.
fn many_replies(fake: &FakeBluesky, parent: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let handle = format!("fan{}.bsky.social", i % 7);
            fake.add_reply(parent, &handle, &format!("reply {i}"))
                .unwrap()
        })
        .collect()
}

#[tokio::test]
async fn bluesky_without_a_feed_appview_replies_come_from_notifications_oldest_first() {
    let (fake, account, ids, replies) = thread_without_feed_appview().await;
    // Not ours to collect: a reply in another of our threads, and the
    // account answering its own post.
    let other = publish_thread(&account, &["Another statement."]).await;
    fake.add_reply(&other[0], "dave.bsky.social", "Unrelated question")
        .unwrap();
    fake.add_reply(&ids[0], HANDLE, "Correction: north-east.")
        .unwrap();
    let bluesky = connector();

    let page = kit::Poller::new(&bluesky, &account, &ids).poll(None).await;

    // Carol answered Bob, not us: the fake AppView notifies only the
    // author of the parent.
    assert_thread_replies(&fake, &page, &ids, &replies, false);
    assert!(page.cursor.as_deref().unwrap().starts_with("n:"));
    assert_eq!(fake.requests_to("app.bsky.feed.getPostThread"), 1);
    // One page, then the empty page that ends the list.
    assert_eq!(fake.requests_to(LIST_NOTIFICATIONS), 2);
}

#[tokio::test]
async fn bluesky_the_notification_cursor_hands_back_only_new_replies_across_polls_and_pages() {
    let (fake, account) = setup().await;
    let ids = publish_thread(&account, &kit::THREAD).await;
    fake.set_feed_appview(false);
    let first = many_replies(&fake, &ids[0], 150);
    let bluesky = connector();
    let poller = kit::Poller::new(&bluesky, &account, &ids);

    let page = poller.poll(None).await;
    assert_eq!(kit::reply_ids(&page), first, "all 150, oldest first");
    assert!(
        fake.requests_to(LIST_NOTIFICATIONS) >= 2,
        "more than one page of 100"
    );
    let quiet = poller.quiet(page.cursor.clone()).await;

    let later = [
        fake.add_reply(&ids[2], "erin.bsky.social", "And the schools?")
            .unwrap(),
        fake.add_reply(&first[3], "frank.bsky.social", "Same here")
            .unwrap(),
        fake.add_reply(&ids[0], "gina.bsky.social", "Thanks.")
            .unwrap(),
    ];
    let next = poller.poll(quiet.cursor.clone()).await;
    // Frank answered a fan, not us: not notified.
    assert_eq!(
        kit::reply_ids(&next),
        vec![later[0].clone(), later[2].clone()]
    );
    poller.quiet(next.cursor.clone()).await;
}

#[tokio::test]
async fn bluesky_a_flood_of_notifications_is_read_over_several_polls_without_losing_any() {
    let (fake, account) = setup().await;
    let ids = publish_thread(&account, &kit::THREAD).await;
    fake.set_feed_appview(false);
    let flood = many_replies(&fake, &ids[0], 1050);
    let bluesky = connector();
    let poller = kit::Poller::new(&bluesky, &account, &ids);

    // At most ten pages a poll: the newest thousand first.
    let first = poller.poll(None).await;
    assert_eq!(fake.requests_to(LIST_NOTIFICATIONS), 10);
    assert_eq!(kit::reply_ids(&first), flood[50..].to_vec());
    let late = fake
        .add_reply(&ids[1], "late.bsky.social", "Still no water here")
        .unwrap();

    // The next poll goes on where the first stopped.
    let second = poller.poll(first.cursor.clone()).await;
    assert_eq!(kit::reply_ids(&second), flood[..50].to_vec());
    // Then what came in meanwhile, and nothing twice.
    let third = poller.poll(second.cursor.clone()).await;
    assert_eq!(kit::reply_ids(&third), vec![late]);
    poller.quiet(third.cursor.clone()).await;
}

#[tokio::test]
async fn bluesky_switching_between_thread_and_notifications_loses_no_reply() {
    let (fake, account, ids, replies) = thread_with_replies().await;
    let bluesky = connector();
    let poller = kit::Poller::new(&bluesky, &account, &ids);
    let thread = poller.poll(None).await;
    assert_eq!(thread.replies.len(), 3);

    // The AppView goes: the thread cursor means nothing to notifications,
    // so the notified replies come again (the store keeps them once).
    fake.set_feed_appview(false);
    let notified = poller.poll(thread.cursor.clone()).await;
    assert_eq!(
        kit::reply_ids(&notified),
        vec![replies[0].clone(), replies[1].clone()]
    );
    let new = fake
        .add_reply(&ids[0], "hana.bsky.social", "Is it over?")
        .unwrap();
    let next = poller.poll(notified.cursor.clone()).await;
    assert_eq!(kit::reply_ids(&next), vec![new.clone()]);

    // The AppView is back: the whole thread again, the deep reply included.
    fake.set_feed_appview(true);
    let back = poller.poll(next.cursor.clone()).await;
    let mut expected = replies.clone();
    expected.push(new);
    assert_eq!(kit::reply_ids(&back), expected);
    poller.quiet(back.cursor.clone()).await;
}

#[tokio::test]
async fn bluesky_reading_notifications_maps_429_5xx_expired_and_revoked_sessions() {
    let (fake, account, ids, _) = thread_without_feed_appview().await;
    let bluesky = connector();
    let poller = kit::Poller::new(&bluesky, &account, &ids);

    fake.rate_limit_next(1, Duration::from_secs(90));
    let wait = Duration::from_secs(88)..=Duration::from_secs(91);
    kit::assert_throttled(&poller.fail(None).await, 429, wait, "RateLimitExceeded");

    fake.fail_next(1, 503);
    kit::assert_transient(&poller.fail(None).await, 503);
    assert_eq!(fake.requests_to(LIST_NOTIFICATIONS), 2);

    // An expired access token (the PDS's 400 form) is refreshed once.
    fake.expire_access_tokens(400);
    assert_eq!(poller.poll(None).await.replies.len(), 2);
    assert_eq!(fake.sessions_refreshed(HANDLE), 1);
    assert_eq!(fake.sessions_created(HANDLE), 1);

    fake.revoke_app_password(HANDLE);
    kit::assert_revoked(&poller.fail(None).await, "", PASSWORD);
}

#[tokio::test]
async fn bluesky_fake_list_notifications_refuses_a_bad_limit() {
    let (fake, account, ids, replies) = thread_without_feed_appview().await;
    signed_in_for_reading(&account, &ids).await;
    let access = stored(&account, "access_jwt").await.unwrap();
    let http = reqwest::Client::new();
    let url = format!("{}/xrpc/{LIST_NOTIFICATIONS}", fake.base_url());
    let get = |query: &'static str| {
        http.get(format!("{url}?{query}"))
            .bearer_auth(&access)
            .send()
    };

    for query in ["limit=0", "limit=101", "limit=many"] {
        let refused = get(query).await.unwrap();
        assert_eq!(refused.status(), 400, "{query}");
        let body: serde_json::Value = refused.json().await.unwrap();
        assert_eq!(body["error"], "InvalidRequest", "{query}");
    }
    let one = get("reasons=reply&limit=1").await.unwrap();
    assert_eq!(one.status(), 200);
    let body: serde_json::Value = one.json().await.unwrap();
    assert_eq!(
        body["notifications"][0]["uri"],
        replies[1].as_str(),
        "newest first"
    );
    assert_eq!(body["notifications"][0]["reason"], "reply");
    assert_eq!(body["notifications"][0]["reasonSubject"], ids[1].as_str());
    assert!(body["cursor"].is_string());
    assert_eq!(get("limit=100").await.unwrap().status(), 200);

    let thread = http
        .get(format!(
            "{}/xrpc/app.bsky.feed.getPostThread?uri={}",
            fake.base_url(),
            ids[0]
        ))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(thread.status(), 501);
    let body: serde_json::Value = thread.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"error": "MethodNotImplemented", "message": "Method Not Implemented"})
    );
    let anonymous = http.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
}

/// Poll once so that the account holds a session.
async fn signed_in_for_reading(account: &AccountSession, ids: &[String]) {
    let bluesky = connector();
    kit::Poller::new(&bluesky, account, ids).poll(None).await;
}
