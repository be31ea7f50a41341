//! The X connector against the fake X API: the OAuth code flow with PKCE,
//! publishing (threads, images with alt text), token expiry and rotation,
//! revoked tokens, rate limits, duplicates after an unknown outcome,
//! reconciliation, delete and check.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use herald::fakes::x::{FakeX, FakeXConfig, FakeXLimits, FakeXUser, RateLimit};
use herald::platforms::x::X;
use herald::platforms::{
    AccountSession, ConnectRequest, Connector, ConnectorError, Credentials, MediaItem,
    OAuthNetwork, Platform, Post,
};

use crate::kit::{self, post, REDIRECT};

const USER: &str = "cityhall";

fn connector(fake: &FakeX) -> X {
    X::new(reqwest::Client::new(), fake.network_app())
}

fn credentials_of(user: &FakeXUser, expires_at: DateTime<Utc>) -> Credentials {
    kit::credentials(&[
        ("access_token", &user.access_token),
        ("refresh_token", &user.refresh_token),
        ("user_id", &user.id),
        ("username", &user.username),
        ("expires_at", &expires_at.to_rfc3339()),
    ])
}

fn session(credentials: Credentials) -> AccountSession {
    // No base_url: the connector uses the app's api_url (the fake).
    AccountSession::new("acct-x", Platform::X, USER, None, credentials)
}

/// A fake with one user, and that user's account as Herald holds it.
async fn setup() -> (FakeX, AccountSession, FakeXUser) {
    setup_with(FakeXConfig::default()).await
}

async fn setup_with(config: FakeXConfig) -> (FakeX, AccountSession, FakeXUser) {
    let fake = FakeX::start_with(config).await;
    let user = fake.add_user(USER);
    let account = session(credentials_of(
        &user,
        Utc::now() + chrono::Duration::hours(2),
    ));
    (fake, account, user)
}

/// Part `part` of a thread, answering `parent` in the thread of `root`.
fn reply(text: &str, root: &str, parent: &str, part: usize) -> Post {
    kit::thread_part(text, part, Some((root, parent)))
}

async fn stored(account: &AccountSession, name: &str) -> Option<String> {
    account
        .credentials
        .lock()
        .await
        .get(name)
        .map(str::to_string)
}

fn query(url: &str) -> BTreeMap<String, String> {
    reqwest::Url::parse(url)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Follow the authorize URL without redirects and read `code` and `state`
/// from the `Location` the fake answers.
async fn approve(url: &str) -> (String, String) {
    let approved = kit::approve(url).await;
    let location = &approved.location;
    assert!(location.starts_with(REDIRECT), "{location}");
    (approved.code().to_string(), approved.state().to_string())
}

fn assert_no_secrets(error: &ConnectorError, secrets: &[&str]) {
    let text = format!("{error} {error:?}");
    for secret in secrets {
        assert!(!text.contains(secret), "{text}");
    }
}

#[tokio::test]
async fn x_oauth_code_flow_with_pkce_connects_the_account_and_it_can_post() {
    let fake = FakeX::start().await;
    fake.add_user(USER);
    let x = connector(&fake);
    let http = reqwest::Client::new();
    let app = x.oauth_app().expect("configured");
    let authorization = app.authorize(REDIRECT, "st4te-123").unwrap();
    let q = query(&authorization.url);
    assert!(authorization
        .url
        .starts_with(&format!("{}/i/oauth2/authorize?", fake.base_url())));
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(
        q["scope"],
        "tweet.read tweet.write users.read offline.access media.write"
    );
    let verifier = authorization.verifier.clone().expect("PKCE verifier");

    let (code, state) = approve(&authorization.url).await;
    assert_eq!(state, "st4te-123");
    // A wrong verifier is refused, and burns the code.
    let (bad_code, _) = approve(&authorization.url).await;
    let refused = app
        .exchange_code(&http, &bad_code, REDIRECT, Some("not-the-verifier"))
        .await
        .unwrap_err();
    assert_eq!(refused.class(), "rejected", "{refused}");

    let tokens = app
        .exchange_code(&http, &code, REDIRECT, Some(&verifier))
        .await
        .expect("tokens");
    assert_eq!(tokens.expires_in(), Some(7200));
    assert!(tokens.refresh_token().is_some());
    // Codes are single-use.
    let again = app
        .exchange_code(&http, &code, REDIRECT, Some(&verifier))
        .await
        .unwrap_err();
    assert_eq!(again.class(), "rejected");

    let before = Utc::now();
    let connected = x
        .connect(tokens.clone(), &ConnectRequest::default())
        .await
        .expect("connected");
    assert_eq!(connected.remote_name.as_deref(), Some("@cityhall"));
    let expires = connected.expires_at.expect("expiry");
    let lifetime = (expires - before).num_seconds();
    assert!((7195..=7205).contains(&lifetime), "{lifetime}");
    let c = &connected.credentials;
    assert_eq!(c.get("access_token"), Some(tokens.access_token()));
    assert_eq!(c.get("refresh_token"), tokens.refresh_token());
    assert_eq!(c.get("user_id"), fake.user_id(USER).as_deref());
    assert_eq!(c.get("username"), Some(USER));
    let stored_expiry = DateTime::parse_from_rfc3339(c.get("expires_at").unwrap()).unwrap();
    assert!(
        (stored_expiry.with_timezone(&Utc) - expires)
            .num_seconds()
            .abs()
            <= 1
    );

    let account = session(connected.credentials.clone());
    let published = x
        .publish(&account, &post("Connected through OAuth"))
        .await
        .expect("published");
    assert_eq!(fake.posts()[0].id, published.remote_id);
}

#[tokio::test]
async fn x_an_authorization_code_dies_30_seconds_after_approval() {
    let fake = FakeX::start().await;
    fake.add_user(USER);
    let app = connector(&fake).oauth_app().unwrap();
    let authorization = app.authorize(REDIRECT, "s").unwrap();
    let (code, _) = approve(&authorization.url).await;
    fake.expire_codes();
    let error = app
        .exchange_code(
            &reqwest::Client::new(),
            &code,
            REDIRECT,
            authorization.verifier.as_deref(),
        )
        .await
        .unwrap_err();
    kit::assert_error(&error, "rejected", "invalid_request");
}

#[tokio::test]
async fn x_the_token_endpoint_wants_the_client_in_a_basic_header() {
    let fake = FakeX::start().await;
    let user = fake.add_user(USER);
    let answer = reqwest::Client::new()
        .post(format!("{}/2/oauth2/token", fake.base_url()))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", user.refresh_token.as_str()),
            ("client_id", fake.client_id().as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 401);
    // The refresh token was not spent by the refused call.
    let tokens = connector(&fake)
        .oauth_app()
        .unwrap()
        .refresh(&reqwest::Client::new(), &user.refresh_token)
        .await
        .expect("refreshed with Basic auth");
    assert_ne!(tokens.refresh_token(), Some(user.refresh_token.as_str()));
}

#[tokio::test]
async fn x_publish_posts_the_text_and_links_to_the_post() {
    let (fake, account, user) = setup().await;
    let text = "Roads closed north of the river & <bridge> shut. https://city.example/flood";
    let published = connector(&fake)
        .publish(&account, &post(text))
        .await
        .expect("published");
    let posts = fake.posts();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].text, text, "sent exactly, not escaped");
    assert_eq!(posts[0].user_id, user.id);
    assert_eq!(posts[0].reply_to, None);
    assert_eq!(published.remote_id, posts[0].id);
    assert!(published.remote_id.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(
        published.remote_url.as_deref(),
        Some(format!("https://x.com/cityhall/status/{}", posts[0].id).as_str())
    );
    assert_eq!(published.pause_until, None);
    assert!(!account.credentials.lock().await.take_changed());
}

#[tokio::test]
async fn x_a_post_without_a_stored_username_links_through_i() {
    let (fake, _, user) = setup().await;
    let mut credentials = credentials_of(&user, Utc::now() + chrono::Duration::hours(2));
    credentials.remove("username");
    let account = session(credentials);
    let published = connector(&fake)
        .publish(&account, &post("No handle known"))
        .await
        .unwrap();
    assert_eq!(
        published.remote_url,
        Some(format!("https://x.com/i/status/{}", published.remote_id))
    );
}

#[tokio::test]
async fn x_a_three_part_thread_replies_to_each_previous_part() {
    let (fake, account, _) = setup().await;
    let ids = kit::publish_thread(
        &connector(&fake),
        &account,
        &["Thread 1/3", "Thread 2/3", "Thread 3/3"],
    )
    .await;
    let posts = fake.posts();
    assert_eq!(posts.len(), 3);
    assert_eq!(posts[0].reply_to, None);
    assert_eq!(posts[1].reply_to.as_deref(), Some(ids[0].as_str()));
    assert_eq!(posts[2].reply_to.as_deref(), Some(ids[1].as_str()));
    assert_eq!(posts[2].id, ids[2]);
}

#[tokio::test]
async fn x_images_are_uploaded_with_their_alt_text_and_attached() {
    let (fake, account, user) = setup().await;
    let mut p = post("Evacuation map attached");
    p.media = vec![
        MediaItem {
            url: fake.image_url(),
            alt: Some("Map of the evacuation zone, north of the river".into()),
            content_type: Some("image/jpeg".into()),
        },
        MediaItem {
            url: fake.png_url(),
            alt: None,
            content_type: None,
        },
    ];
    let published = connector(&fake).publish(&account, &p).await.unwrap();
    let media = fake.media();
    assert_eq!(media.len(), 2);
    assert_eq!(media[0].content_type, "image/jpeg");
    assert_eq!(media[0].media_category, "tweet_image");
    assert_eq!(
        media[0].alt_text.as_deref(),
        Some("Map of the evacuation zone, north of the river")
    );
    assert_eq!(media[1].content_type, "image/png");
    assert_eq!(media[1].alt_text, None);
    assert!(media.iter().all(|m| m.user_id == user.id));
    let posts = fake.posts();
    assert_eq!(posts[0].id, published.remote_id);
    assert_eq!(
        posts[0].media_ids,
        media.iter().map(|m| m.id.clone()).collect::<Vec<_>>()
    );

    // More than four images are refused before anything is sent.
    let mut five = post("Too many images");
    five.media = vec![
        MediaItem {
            url: fake.image_url(),
            ..Default::default()
        };
        5
    ];
    let error = connector(&fake).publish(&account, &five).await.unwrap_err();
    assert_eq!(error.class(), "rejected");
    assert_eq!(fake.media().len(), 2);
    // An image URL that does not answer an image is refused.
    let mut broken = post("Broken image");
    broken.media = vec![MediaItem {
        url: format!("{}/fake/missing.jpg", fake.base_url()),
        ..Default::default()
    }];
    let error = connector(&fake)
        .publish(&account, &broken)
        .await
        .unwrap_err();
    assert_eq!(error.class(), "rejected", "{error}");
    assert_eq!(fake.posts().len(), 1);
}

#[tokio::test]
async fn x_an_expired_token_is_refreshed_once_and_the_old_refresh_token_dies() {
    let (fake, account, user) = setup().await;
    fake.expire_access_tokens();
    let x = connector(&fake);
    let published = x.publish(&account, &post("After expiry")).await;
    assert!(published.is_ok(), "{published:?}");
    assert_eq!(fake.refreshes(), 1);
    assert_eq!(fake.posts().len(), 1);
    assert!(account.credentials.lock().await.take_changed());
    let access = stored(&account, "access_token").await.unwrap();
    let refresh = stored(&account, "refresh_token").await.unwrap();
    assert_ne!(access, user.access_token);
    assert_ne!(refresh, user.refresh_token);
    let expires_at = stored(&account, "expires_at").await.unwrap();
    let expires_at = DateTime::parse_from_rfc3339(&expires_at).unwrap();
    assert!(expires_at > Utc::now() + chrono::Duration::minutes(119));

    // Rotation: the refresh token used is dead.
    let old = x
        .oauth_app()
        .unwrap()
        .refresh(&reqwest::Client::new(), &user.refresh_token)
        .await
        .unwrap_err();
    kit::assert_error(
        &old,
        "auth_revoked",
        "Value passed for the token was invalid.",
    );
}

#[tokio::test]
async fn x_a_token_known_to_be_expired_is_refreshed_before_the_call() {
    let (fake, _, user) = setup().await;
    let account = session(credentials_of(
        &user,
        Utc::now() - chrono::Duration::minutes(5),
    ));
    fake.expire_access_tokens();
    connector(&fake)
        .publish(&account, &post("Refreshed first"))
        .await
        .unwrap();
    assert_eq!(fake.refreshes(), 1);
    assert_eq!(fake.post_requests(), 1, "no 401 round trip");
}

#[tokio::test]
async fn x_concurrent_publications_with_an_expired_token_refresh_once() {
    let (fake, account, _) = setup().await;
    fake.expire_access_tokens();
    let x = connector(&fake);
    let posts: Vec<Post> = (0..10).map(|i| post(&format!("Wave {i}"))).collect();
    let results = join_all(posts.iter().map(|p| x.publish(&account, p))).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(fake.refreshes(), 1);
    assert_eq!(fake.posts().len(), 10);
}

#[tokio::test]
async fn x_a_revoked_token_asks_for_a_reconnect() {
    let (fake, account, user) = setup().await;
    fake.revoke_user(USER);
    let error = connector(&fake)
        .publish(&account, &post("Revoked"))
        .await
        .unwrap_err();
    kit::assert_error(&error, "auth_revoked", "reconnect");
    assert_no_secrets(&error, &[&user.access_token, &user.refresh_token]);
    assert!(fake.posts().is_empty());
    // The stored refresh token is kept (never replaced by nothing).
    assert_eq!(
        stored(&account, "refresh_token").await.as_deref(),
        Some(user.refresh_token.as_str())
    );
    let check = connector(&fake).check(&account).await.unwrap_err();
    assert_eq!(check.class(), "auth_revoked");
}

#[tokio::test]
async fn x_a_401_without_a_refresh_token_asks_for_a_reconnect() {
    let (fake, _, user) = setup().await;
    let account = session(Credentials::new(BTreeMap::from([(
        "access_token".to_string(),
        user.access_token.clone(),
    )])));
    fake.expire_access_token(&user.access_token);
    let error = connector(&fake)
        .publish(&account, &post("No refresh"))
        .await
        .unwrap_err();
    assert_eq!(error.class(), "auth_revoked");
    assert_eq!(fake.refreshes(), 0);
}

#[tokio::test]
async fn x_refresh_rotates_the_tokens_and_returns_the_new_expiry() {
    let (fake, account, user) = setup().await;
    let x = connector(&fake);
    let expiry = x.refresh(&account).await.unwrap().expect("an expiry");
    let lifetime = (expiry - Utc::now()).num_seconds();
    assert!((7190..=7200).contains(&lifetime), "{lifetime}");
    assert_eq!(fake.refreshes(), 1);
    let rotated = stored(&account, "refresh_token").await.unwrap();
    assert_ne!(rotated, user.refresh_token);
    assert!(account.credentials.lock().await.take_changed());
    // The new tokens work; the old access token still does until it expires.
    x.check(&account).await.unwrap();
    // A second refresh uses the rotated token.
    x.refresh(&account).await.unwrap();
    assert_eq!(fake.refreshes(), 2);
    fake.revoke(&stored(&account, "refresh_token").await.unwrap());
    let error = x.refresh(&account).await.unwrap_err();
    assert_eq!(error.class(), "auth_revoked");
}

#[tokio::test]
async fn x_a_429_is_rate_limited_until_the_reset_whatever_the_body() {
    let (fake, account, _) = setup().await;
    let x = connector(&fake);
    for legacy in [false, true] {
        if legacy {
            fake.rate_limit_next_legacy(1, Duration::from_secs(120));
        } else {
            fake.rate_limit_next(1, Duration::from_secs(120));
        }
        let error = x
            .publish(&account, &post(&format!("Limited {legacy}")))
            .await
            .unwrap_err();
        let ConnectorError::RateLimited {
            retry_after,
            message,
            status,
        } = &error
        else {
            panic!("expected rate limited, got {error:?}");
        };
        assert_eq!(*status, Some(429));
        let wait = retry_after.as_secs_f64();
        assert!((118.0..=121.0).contains(&wait), "{wait}");
        if legacy {
            assert!(message.contains("Rate limit exceeded"), "{message}");
        } else {
            assert!(message.contains("Too Many Requests"), "{message}");
        }
    }
    assert!(fake.posts().is_empty());
}

#[tokio::test]
async fn x_the_last_post_of_the_window_pauses_the_account_and_the_next_is_limited() {
    let config = FakeXConfig {
        limits: FakeXLimits {
            create_post: Some(RateLimit {
                limit: 2,
                window: Duration::from_secs(900),
            }),
            ..FakeXLimits::default()
        },
        ..FakeXConfig::default()
    };
    let (fake, account, _) = setup_with(config).await;
    let x = connector(&fake);
    let first = x.publish(&account, &post("One")).await.unwrap();
    assert_eq!(first.pause_until, None);
    let second = x.publish(&account, &post("Two")).await.unwrap();
    let pause = second.pause_until.expect("remaining 0 pauses the account");
    let until = (pause - Utc::now()).num_seconds();
    assert!((0..=901).contains(&until), "{until}");
    let third = x.publish(&account, &post("Three")).await.unwrap_err();
    let ConnectorError::RateLimited { retry_after, .. } = third else {
        panic!("{third:?}");
    };
    assert!(retry_after.as_secs() <= 901);
    assert_eq!(fake.posts().len(), 2);
}

#[tokio::test]
async fn x_server_errors_are_transient_and_bad_requests_rejected_with_xs_message() {
    let (fake, account, _) = setup().await;
    let x = connector(&fake);
    fake.fail_next(1, 503);
    let error = x.publish(&account, &post("Later")).await.unwrap_err();
    assert_eq!(error.class(), "transient");
    assert_eq!(error.status(), Some(503));
    let long = "é".repeat(100) + &"漢".repeat(100);
    let error = x.publish(&account, &post(&long)).await.unwrap_err();
    assert_eq!(error.class(), "rejected");
    assert_eq!(error.status(), Some(400));
    assert!(error.to_string().contains("too long"), "{error}");
    let error = x
        .publish(&account, &reply("Orphan", "1", "12345", 1))
        .await
        .unwrap_err();
    kit::assert_error(&error, "rejected", "replying to");
    assert!(fake.posts().is_empty());
}

#[tokio::test]
async fn x_a_dropped_answer_is_unknown_and_reconcile_finds_the_one_post() {
    let (fake, account, _) = setup().await;
    let x = connector(&fake);
    fake.drop_after_store_next(1);
    let p = post("Shelter open at the school & gym: https://city.example/shelter");
    let error = x.publish(&account, &p).await.unwrap_err();
    assert_eq!(error.class(), "unknown", "{error}");
    assert_eq!(fake.posts().len(), 1);
    let found = x
        .reconcile(&account, &p)
        .await
        .expect("answered")
        .expect("found");
    assert_eq!(found.remote_id, fake.posts()[0].id);
    assert_eq!(
        found.remote_url,
        Some(format!("https://x.com/cityhall/status/{}", found.remote_id))
    );
    assert_eq!(fake.posts().len(), 1);
}

#[tokio::test]
async fn x_a_retry_after_an_unknown_outcome_meets_the_duplicate_and_returns_the_first_post() {
    let (fake, account, _) = setup().await;
    let x = connector(&fake);
    fake.drop_after_store_next(1);
    let mut p = post("Boil water notice for the east side");
    p.first_attempt_at = Utc::now() - chrono::Duration::seconds(30);
    assert_eq!(
        x.publish(&account, &p).await.unwrap_err().class(),
        "unknown"
    );
    let again = x.publish(&account, &p).await.expect("the first post");
    let posts = fake.posts();
    assert_eq!(posts.len(), 1, "no duplicate");
    assert_eq!(again.remote_id, posts[0].id);
    assert_eq!(fake.post_requests(), 2);
}

#[tokio::test]
async fn x_a_duplicate_of_an_older_post_is_rejected() {
    let (fake, account, _) = setup().await;
    fake.seed_post(
        USER,
        "Same words as last week",
        Utc::now() - chrono::Duration::hours(3),
        None,
    );
    let error = connector(&fake)
        .publish(&account, &post("Same words as last week"))
        .await
        .unwrap_err();
    kit::assert_error(&error, "rejected", "duplicate content");
    assert_eq!(fake.posts().len(), 1);
}

#[tokio::test]
async fn x_reconcile_is_none_for_a_post_never_sent_or_older_than_the_first_attempt() {
    let (fake, account, _) = setup().await;
    let x = connector(&fake);
    assert_eq!(x.reconcile(&account, &post("Never sent")).await, Ok(None));
    fake.seed_post(
        USER,
        "Old text",
        Utc::now() - chrono::Duration::hours(1),
        None,
    );
    assert_eq!(x.reconcile(&account, &post("Old text")).await, Ok(None));
    let q = fake.requests_to("/2/users/");
    assert!(q >= 2, "{q}");
}

#[tokio::test]
async fn x_reconcile_of_a_thread_part_matches_the_replied_to_parent() {
    let (fake, account, _) = setup().await;
    let x = connector(&fake);
    let a = x.publish(&account, &post("Root A")).await.unwrap();
    let b = x.publish(&account, &post("Root B")).await.unwrap();
    let p = reply("Same reply text", &b.remote_id, &b.remote_id, 1);
    // The same text under another parent is not ours.
    fake.seed_post(USER, "Same reply text", Utc::now(), Some(&a.remote_id));
    assert_eq!(x.reconcile(&account, &p).await, Ok(None));
    let id = fake
        .seed_post(USER, "Same reply text", Utc::now(), Some(&b.remote_id))
        .unwrap();
    let found = x.reconcile(&account, &p).await.unwrap().unwrap();
    assert_eq!(found.remote_id, id);
}

#[tokio::test]
async fn x_reconcile_pages_through_the_timeline_and_finds_images_posts() {
    let (fake, account, _) = setup().await;
    let x = connector(&fake);
    let mut p = post("Photo of the levee");
    p.media = vec![MediaItem {
        url: fake.image_url(),
        ..Default::default()
    }];
    p.first_attempt_at = Utc::now() - chrono::Duration::seconds(5);
    fake.drop_after_store_next(1);
    assert_eq!(
        x.publish(&account, &p).await.unwrap_err().class(),
        "unknown"
    );
    for i in 0..150 {
        fake.seed_post(USER, &format!("Later post {i}"), Utc::now(), None);
    }
    let found = x.reconcile(&account, &p).await.unwrap().unwrap();
    assert_eq!(found.remote_id, fake.posts()[0].id);
    assert!(fake.requests_to("/2/users/") >= 2, "two pages");
}

#[tokio::test]
async fn x_reconcile_without_a_stored_user_id_reads_it_first() {
    let (fake, _, user) = setup().await;
    let mut credentials = credentials_of(&user, Utc::now() + chrono::Duration::hours(2));
    credentials.remove("user_id");
    credentials.remove("username");
    let account = session(credentials);
    let x = connector(&fake);
    let published = x.publish(&account, &post("Who am I")).await.unwrap();
    let found = x
        .reconcile(&account, &post("Who am I"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.remote_id, published.remote_id);
    assert_eq!(stored(&account, "user_id").await, Some(user.id.clone()));
    assert_eq!(stored(&account, "username").await.as_deref(), Some(USER));
    assert_eq!(fake.requests_to("/2/users/me"), 1);
}

#[tokio::test]
async fn x_delete_removes_the_post_and_a_gone_post_counts_as_deleted() {
    let (fake, account, _) = setup().await;
    let x = connector(&fake);
    let published = x.publish(&account, &post("To be deleted")).await.unwrap();
    x.delete(&account, &published.remote_id).await.unwrap();
    assert!(fake.posts()[0].deleted);
    x.delete(&account, &published.remote_id)
        .await
        .expect("already gone is fine");
    let error = x.delete(&account, "12/../34").await.unwrap_err();
    assert_eq!(error.class(), "rejected");
    // After deletion the same text may go out again.
    x.publish(&account, &post("To be deleted")).await.unwrap();
    assert_eq!(fake.posts().len(), 2);
}

#[tokio::test]
async fn x_check_reads_the_user_and_refreshes_an_expired_token() {
    let (fake, account, _) = setup().await;
    let x = connector(&fake);
    x.check(&account).await.unwrap();
    assert_eq!(fake.refreshes(), 0);
    fake.expire_access_tokens();
    x.check(&account).await.unwrap();
    assert_eq!(fake.refreshes(), 1);
    assert_eq!(fake.requests_to("/2/users/me"), 3);
}

#[tokio::test]
async fn x_the_create_answer_may_name_its_history_field_edit_history_post_ids() {
    let config = FakeXConfig {
        post_ids_field: true,
        ..FakeXConfig::default()
    };
    let (fake, account, _) = setup_with(config).await;
    let answer = reqwest::Client::new()
        .post(format!("{}/2/tweets", fake.base_url()))
        .bearer_auth(stored(&account, "access_token").await.unwrap())
        .json(&serde_json::json!({"text": "raw"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 201);
    assert!(answer.headers().contains_key("x-rate-limit-remaining"));
    let body: serde_json::Value = answer.json().await.unwrap();
    assert!(body["data"]["edit_history_post_ids"].is_array(), "{body}");
    let published = connector(&fake)
        .publish(&account, &post("Through the connector"))
        .await
        .unwrap();
    assert_eq!(fake.posts()[1].id, published.remote_id);
}

#[tokio::test]
async fn x_the_fake_refuses_unknown_properties_and_missing_tokens() {
    let (fake, account, _) = setup().await;
    let http = reqwest::Client::new();
    let token = stored(&account, "access_token").await.unwrap();
    let answer = http
        .post(format!("{}/2/tweets", fake.base_url()))
        .bearer_auth(&token)
        .json(&serde_json::json!({"text": "hi", "lang": "en"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 400);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["type"], "https://api.x.com/2/problems/invalid-request");
    let answer = http
        .get(format!("{}/2/users/me", fake.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 401);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["title"], "Unauthorized");
    assert!(fake.posts().is_empty());
}

#[tokio::test]
async fn x_a_stalled_answer_times_out_as_unknown_and_reconciles() {
    let (fake, account, _) = setup().await;
    let impatient = X::new(
        reqwest::Client::builder()
            .timeout(Duration::from_millis(300))
            .build()
            .unwrap(),
        fake.network_app(),
    );
    fake.stall_after_store_next(1, Duration::from_secs(1));
    let p = post("Stalled answer");
    let error = impatient.publish(&account, &p).await.unwrap_err();
    assert_eq!(error.class(), "unknown", "{error}");
    let found = impatient.reconcile(&account, &p).await.unwrap().unwrap();
    assert_eq!(found.remote_id, fake.posts()[0].id);
    assert_eq!(fake.posts().len(), 1);
}

// --- replies ----------------------------------------------------------------------------------

/// A three-part thread with replies: to the first part, to the second
/// (with X's escaped characters), and a reply to that reply.
async fn thread_with_replies() -> (FakeX, AccountSession, Vec<String>, Vec<String>) {
    let (fake, account, _) = setup().await;
    let ids = kit::publish_thread(&connector(&fake), &account, &kit::THREAD).await;
    let first = fake
        .add_reply(&ids[0], "alice", "@cityhall Is the tap water safe?")
        .unwrap();
    let second = fake
        .add_reply(&ids[1], "bob", "@cityhall Streets <north> & south?")
        .unwrap();
    let third = fake.add_reply(&second, "carol", "@bob Mine too.").unwrap();
    (fake, account, ids, vec![first, second, third])
}

#[tokio::test]
async fn x_replies_come_from_recent_search_oldest_first_without_our_posts() {
    let (fake, account, ids, replies) = thread_with_replies().await;
    let x = connector(&fake);

    let page = kit::Poller::new(&x, &account, &ids).poll(None).await;

    // X's entities are decoded.
    kit::assert_replies(
        &page,
        &[
            (
                &replies[0],
                &ids[0],
                "alice",
                "@cityhall Is the tap water safe?",
            ),
            (
                &replies[1],
                &ids[1],
                "bob",
                "@cityhall Streets <north> & south?",
            ),
            (&replies[2], &replies[1], "carol", "@bob Mine too."),
        ],
    );
    assert_eq!(
        page.replies[2].url.as_deref(),
        Some(format!("https://x.com/carol/status/{}", replies[2]).as_str())
    );
    let posts = fake.posts();
    for reply in &page.replies {
        let stored = posts.iter().find(|p| p.id == reply.remote_id).unwrap();
        assert_eq!(
            reply.created_at.timestamp_millis(),
            stored.created_at.timestamp_millis()
        );
    }
    assert_eq!(
        page.cursor.as_deref(),
        Some(replies[2].as_str()),
        "since_id next time"
    );
    assert_eq!(fake.requests_to("/2/tweets/search/recent"), 1);
}

#[tokio::test]
async fn x_the_next_poll_asks_since_the_newest_and_gets_only_new_replies() {
    let (fake, account, ids, replies) = thread_with_replies().await;
    let x = connector(&fake);
    let poller = kit::Poller::new(&x, &account, &ids);
    let first = poller.poll(None).await;
    assert_eq!(first.replies.len(), 3);

    let quiet = poller.quiet(first.cursor.clone()).await;
    assert_eq!(quiet.cursor, first.cursor, "nothing new: the same cursor");

    let fourth = fake.add_reply(&ids[2], "dave", "Which Friday?").unwrap();
    let fifth = fake.add_reply(&replies[0], "erin", "Boil it.").unwrap();
    let next = poller.poll(first.cursor.clone()).await;
    assert_eq!(kit::reply_ids(&next), vec![fourth, fifth.clone()]);
    assert_eq!(next.cursor.as_deref(), Some(fifth.as_str()));
}

#[tokio::test]
async fn x_a_poll_follows_every_page_and_a_long_sweep_resumes_where_it_stopped() {
    let (fake, account, _) = setup().await;
    let x = connector(&fake);
    let root = x
        .publish(&account, &post("Water cut."))
        .await
        .unwrap()
        .remote_id;
    fake.set_search_page_size(Some(3));
    let mut all = Vec::new();
    for n in 0..8 {
        all.push(fake.add_reply(&root, &format!("user{n}"), "ok?").unwrap());
    }
    let poller = kit::Poller::new(&x, &account, std::slice::from_ref(&root));

    // 9 posts (the root included) in pages of 3: one poll reads them all.
    let page = poller.poll(None).await;
    assert_eq!(kit::reply_ids(&page), all);
    assert_eq!(fake.requests_to("/2/tweets/search/recent"), 3);

    // More than 10 pages: the poll stops after 10 and the next resumes.
    fake.set_search_page_size(Some(1));
    let mut more = Vec::new();
    for n in 0..14 {
        more.push(fake.add_reply(&root, &format!("late{n}"), "and?").unwrap());
    }
    let first = poller.poll(page.cursor.clone()).await;
    assert_eq!(kit::reply_ids(&first), more[4..].to_vec(), "the 10 newest");
    let cursor = first.cursor.clone().unwrap();
    assert!(cursor.contains(' '), "a sweep in progress: {cursor}");
    // A reply arriving between the two polls waits for the sweep after.
    let between = fake.add_reply(&root, "between", "hello").unwrap();
    let second = poller.poll(first.cursor.clone()).await;
    assert_eq!(
        kit::reply_ids(&second),
        more[..4].to_vec(),
        "the rest, nothing skipped"
    );
    assert_eq!(second.cursor.as_deref(), Some(more[13].as_str()));
    let third = poller.poll(second.cursor.clone()).await;
    assert_eq!(kit::reply_ids(&third), vec![between]);
}

#[tokio::test]
async fn x_reading_replies_maps_429_5xx_expired_and_revoked_tokens() {
    let (fake, account, ids, _) = thread_with_replies().await;
    let x = connector(&fake);
    let poller = kit::Poller::new(&x, &account, &ids);
    for legacy in [false, true] {
        if legacy {
            fake.rate_limit_next_legacy(1, Duration::from_secs(90));
        } else {
            fake.rate_limit_next(1, Duration::from_secs(90));
        }
        let wait = Duration::from_secs(88)..=Duration::from_secs(91);
        kit::assert_throttled(&poller.fail(None).await, 429, wait, "");
    }

    fake.fail_next(1, 503);
    kit::assert_transient(&poller.fail(None).await, 503);

    // An expired token is refreshed once and the read goes through.
    fake.expire_access_tokens();
    assert_eq!(poller.poll(None).await.replies.len(), 3);
    assert_eq!(fake.refreshes(), 1);

    fake.revoke_user(USER);
    let token = account
        .credentials
        .lock()
        .await
        .get("access_token")
        .unwrap()
        .to_string();
    kit::assert_revoked(&poller.fail(None).await, "reconnect", &token);
}

#[tokio::test]
async fn x_a_rate_limit_in_the_middle_of_a_sweep_keeps_what_was_read_and_resumes() {
    let (fake, account, _) = setup().await;
    let x = connector(&fake);
    let root = x
        .publish(&account, &post("Road closed."))
        .await
        .unwrap()
        .remote_id;
    let mut all = Vec::new();
    for n in 0..6 {
        all.push(fake.add_reply(&root, &format!("user{n}"), "why?").unwrap());
    }
    let poller = kit::Poller::new(&x, &account, &[root]);
    fake.set_search_page_size(Some(2));
    // The first page goes through, the second is limited.
    fake.faults_after(1);
    fake.rate_limit_next(1, Duration::from_secs(60));

    let partial = poller.poll(None).await;
    assert_eq!(
        kit::reply_ids(&partial),
        all[4..].to_vec(),
        "the page read is kept"
    );
    let cursor = partial.cursor.clone().unwrap();
    assert!(cursor.starts_with("- "), "{cursor}");

    let rest = poller.poll(partial.cursor.clone()).await;
    assert_eq!(kit::reply_ids(&rest), all[..4].to_vec());
    assert_eq!(rest.cursor.as_deref(), Some(all[5].as_str()));
    poller.quiet(rest.cursor.clone()).await;
}

#[tokio::test]
async fn x_answering_a_reply_is_a_post_in_reply_to_it_and_is_never_collected() {
    let (fake, account, ids, replies) = thread_with_replies().await;
    let x = connector(&fake);
    let poller = kit::Poller::new(&x, &account, &ids);
    let cursor = poller.poll(None).await.cursor;
    let answer = kit::answer(&ids[0], &replies[1], "@bob North of the river, both sides.");

    let published = x.publish(&account, &answer).await.unwrap();

    let posts = fake.posts();
    let stored = posts.iter().find(|p| p.id == published.remote_id).unwrap();
    assert_eq!(stored.reply_to.as_deref(), Some(replies[1].as_str()));
    assert_eq!(stored.username, USER);
    // After an unknown outcome, reconcile finds it (same text, same parent).
    let found = x.reconcile(&account, &answer).await.unwrap();
    assert_eq!(
        found.map(|p| p.remote_id),
        Some(published.remote_id.clone())
    );
    assert_eq!(fake.posts().len(), posts.len(), "no duplicate");

    // Our own answer is in the conversation but never a reply from the public.
    poller.quiet(cursor).await;
}
