//! The Instagram connector against the fake Instagram Graph API (shared/platforms.md §6).

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use herald::fakes::instagram::{FakeIgAccount, FakeInstagram};
use herald::platforms::instagram::Instagram;
use herald::platforms::{
    AccountSession, ConnectRequest, Connector, ConnectorError, MediaItem, OAuthNetwork, Platform,
    Post,
};

use crate::kit;

fn connector(fake: &FakeInstagram) -> Instagram {
    Instagram::new(reqwest::Client::new(), fake.app())
        .with_container_polling(Duration::from_millis(10), 20)
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// An account whose token was issued `age` ago.
fn session(acct: &FakeIgAccount, age: chrono::Duration) -> AccountSession {
    let issued = Utc::now() - age;
    kit::session(
        Platform::Instagram,
        None,
        &[
            ("ig_user_id", &acct.user_id),
            ("access_token", &acct.token),
            ("token_issued_at", &rfc3339(issued)),
            ("expires_at", &rfc3339(issued + chrono::Duration::days(60))),
        ],
    )
}

/// A post with one image (Instagram posts need one).
fn post(text: &str) -> Post {
    Post {
        media: vec![MediaItem {
            url: "https://cdn.example.org/recall.jpg".into(),
            alt: Some("A kettle with a red cross".into()),
            content_type: Some("image/jpeg".into()),
        }],
        ..kit::post(text)
    }
}

async fn fake_account() -> (FakeInstagram, FakeIgAccount) {
    let fake = FakeInstagram::start().await;
    let acct = fake.add_account("kettleco");
    (fake, acct)
}

#[tokio::test]
async fn the_oauth_flow_gives_a_sixty_day_token_and_the_professional_account() {
    let (fake, acct) = fake_account().await;
    let ig = connector(&fake);
    let app = ig.oauth_app().expect("configured");
    let redirect = "http://herald.test/v1/oauth/callback";
    let flow = kit::code_flow(&app, redirect).await;
    assert!(flow.verifier.is_none(), "no PKCE");
    assert!(flow.url.contains("/oauth/authorize?"), "{}", flow.url);
    assert!(
        flow.url
            .contains("scope=instagram_business_basic%2Cinstagram_business_content_publish"),
        "{}",
        flow.url
    );
    let tokens = flow.tokens;
    assert_eq!(
        tokens.extra_str("user_id").as_deref(),
        Some(acct.user_id.as_str())
    );
    assert!(
        app.exchange_code(&reqwest::Client::new(), &flow.code, redirect, None)
            .await
            .is_err(),
        "codes are single-use"
    );
    let short = tokens.access_token().to_string();

    let connected = ig
        .connect(tokens, &ConnectRequest::default())
        .await
        .unwrap();
    let c = &connected.credentials;
    assert_eq!(c.get("ig_user_id"), Some(acct.user_id.as_str()));
    let long = c.get("access_token").unwrap();
    assert_ne!(long, short, "the long-lived token is stored");
    assert!(fake.token_works(long));
    assert_eq!(connected.remote_name.as_deref(), Some("@kettleco"));
    let days = (connected.expires_at.unwrap() - Utc::now()).num_days();
    assert!((59..=60).contains(&days), "{days}");
    assert!(c.get("expires_at").is_some() && c.get("token_issued_at").is_some());
}

#[tokio::test]
async fn an_image_post_is_a_container_polled_until_finished_then_published() {
    let (fake, acct) = fake_account().await;
    fake.set_in_progress_polls(2);
    let ig = connector(&fake);
    let p = post("Stop using the K-200 kettle.");
    let published = ig
        .publish(&session(&acct, chrono::Duration::hours(1)), &p)
        .await
        .unwrap();

    let media = fake.media();
    assert_eq!(media.len(), 1);
    assert_eq!(media[0].caption, p.text);
    assert_eq!(media[0].image_url, "https://cdn.example.org/recall.jpg");
    assert_eq!(
        media[0].alt_text.as_deref(),
        Some("A kettle with a red cross")
    );
    assert_eq!(published.remote_id, media[0].id);
    assert_eq!(
        published.remote_url.as_deref(),
        Some(media[0].permalink.as_str())
    );
    let containers = fake.containers();
    assert_eq!(containers.len(), 1);
    assert_eq!(containers[0].status_code, "PUBLISHED");
    assert_eq!(containers[0].polls, 3, "two IN_PROGRESS, then FINISHED");
    assert_eq!(
        fake.requests_to(&format!("/{}/content_publishing_limit", acct.user_id)),
        1
    );
}

#[tokio::test]
async fn no_image_or_a_failed_container_is_rejected() {
    let (fake, acct) = fake_account().await;
    let ig = connector(&fake);
    let account = session(&acct, chrono::Duration::hours(1));
    let mut p = post("Text only");
    p.media.clear();
    let error = ig.publish(&account, &p).await.unwrap_err();
    kit::assert_error(&error, "rejected", "Instagram needs an image");
    assert_eq!(fake.requests_to("/"), 0);

    fake.fail_container_next(1, "ERROR");
    let error = ig.publish(&account, &post("x")).await.unwrap_err();
    kit::assert_error(&error, "rejected", "ERROR");

    // Still IN_PROGRESS after every check: transient, nothing published.
    fake.set_in_progress_polls(100);
    let error = ig.publish(&account, &post("y")).await.unwrap_err();
    assert_eq!(error.class(), "transient", "{error}");
    assert!(fake.media().is_empty());
}

#[tokio::test]
async fn the_publishing_cap_waits_until_the_oldest_post_leaves_the_window() {
    let (fake, acct) = fake_account().await;
    fake.set_quota_total(2);
    fake.seed_media(
        &acct.user_id,
        "old",
        Utc::now() - chrono::Duration::hours(5),
    );
    fake.seed_media(
        &acct.user_id,
        "older",
        Utc::now() - chrono::Duration::hours(1),
    );
    let ig = connector(&fake);
    let error = ig
        .publish(&session(&acct, chrono::Duration::hours(1)), &post("x"))
        .await
        .unwrap_err();
    let (retry_after, _, message) = kit::rate_limited(&error);
    let hours = retry_after.as_secs_f64() / 3600.0;
    assert!((18.9..=19.01).contains(&hours), "{hours} h");
    assert!(message.contains("2 of 2"), "{message}");
    assert!(fake.containers().is_empty(), "nothing was sent");
}

#[tokio::test]
async fn refresh_waits_a_day_then_renews_and_stores_the_token() {
    let (fake, acct) = fake_account().await;
    let ig = connector(&fake);

    let young = session(&acct, chrono::Duration::hours(2));
    let expiry = ig.refresh(&young).await.unwrap().unwrap();
    assert_eq!(
        fake.requests_to("/refresh_access_token"),
        0,
        "too young: no call"
    );
    assert_eq!(
        young.credentials.lock().await.get("expires_at"),
        Some(rfc3339(expiry).as_str())
    );

    fake.age_token(&acct.token, Duration::from_secs(25 * 3600));
    let old = session(&acct, chrono::Duration::hours(25));
    let expiry = ig.refresh(&old).await.unwrap().unwrap();
    assert_eq!(fake.requests_to("/refresh_access_token"), 1);
    assert!((expiry - Utc::now()).num_days() >= 59);
    let mut credentials = old.credentials.lock().await;
    let token = credentials.get("access_token").unwrap().to_string();
    assert_ne!(token, acct.token);
    assert!(fake.token_works(&token));
    assert_eq!(
        credentials.get("expires_at"),
        Some(rfc3339(expiry).as_str())
    );
    assert!(credentials.take_changed(), "the dispatcher saves them");
}

#[tokio::test]
async fn expired_or_revoked_tokens_mean_reconnect() {
    let (fake, acct) = fake_account().await;
    let ig = connector(&fake);
    fake.revoke(&acct.token, Some(460));
    let error = ig
        .publish(&session(&acct, chrono::Duration::hours(1)), &post("x"))
        .await
        .unwrap_err();
    assert_eq!(error.class(), "auth_revoked", "{error}");
    assert!(!error.to_string().contains(&acct.token));

    // Known expired from the credentials: refused before any request.
    let expired = session(&acct, chrono::Duration::days(61));
    let before = fake.requests_to("/");
    assert_eq!(
        ig.check(&expired).await.unwrap_err().class(),
        "auth_revoked"
    );
    assert_eq!(
        ig.refresh(&expired).await.unwrap_err().class(),
        "auth_revoked"
    );
    assert_eq!(fake.requests_to("/"), before);

    // Expired at Instagram; the refresh is refused too: reconnect.
    let other = fake.add_account("other");
    fake.expire_token(&other.token);
    let error = ig
        .check(&session(&other, chrono::Duration::days(3)))
        .await
        .unwrap_err();
    assert_eq!(error.class(), "auth_revoked", "{error}");
}

#[tokio::test]
async fn a_correction_is_a_comment_that_can_be_deleted_unlike_the_post() {
    let (fake, acct) = fake_account().await;
    let ig = connector(&fake);
    let account = session(&acct, chrono::Duration::hours(1));
    let root = ig.publish(&account, &post("Recall.")).await.unwrap();

    // A text-only answer: no image.
    let correction = kit::thread_part(
        "Correction: lot 42 only.",
        0,
        Some((&root.remote_id, &root.remote_id)),
    );
    let comment = ig.publish(&account, &correction).await.unwrap();
    assert!(
        comment.remote_id.starts_with("comment:"),
        "{}",
        comment.remote_id
    );
    let comments = fake.comments();
    assert_eq!(comments.len(), 1);
    assert_eq!(comments[0].media_id, root.remote_id);
    assert_eq!(comments[0].text, "Correction: lot 42 only.");

    ig.delete(&account, &comment.remote_id).await.unwrap();
    ig.delete(&account, &comment.remote_id).await.unwrap();
    assert!(fake.comments()[0].deleted);
    let error = ig.delete(&account, &root.remote_id).await.unwrap_err();
    kit::assert_error(
        &error,
        "rejected",
        "Instagram does not let apps delete posts",
    );
}

#[tokio::test]
async fn an_unknown_publish_outcome_is_found_by_caption() {
    let (fake, acct) = fake_account().await;
    let ig = connector(&fake);
    let account = session(&acct, chrono::Duration::hours(1));
    let p = post("Update: the plant is closed today.");
    fake.seed_media(
        &acct.user_id,
        &p.text,
        Utc::now() - chrono::Duration::days(30),
    );
    assert_eq!(
        ig.reconcile(&account, &p).await.unwrap(),
        None,
        "last month's post is not it"
    );

    fake.drop_after_store_next(1);
    let error = ig.publish(&account, &p).await.unwrap_err();
    assert_eq!(error.class(), "unknown", "{error}");
    let found = ig.reconcile(&account, &p).await.unwrap().expect("found");
    let media = fake.media();
    assert_eq!(media.len(), 2);
    assert_eq!(found.remote_id, media[1].id);
    assert_eq!(
        found.remote_url.as_deref(),
        Some(media[1].permalink.as_str())
    );
    ig.check(&account).await.unwrap();
}

#[tokio::test]
async fn graph_errors_are_classified() {
    let (fake, acct) = fake_account().await;
    let ig = connector(&fake);
    let account = session(&acct, chrono::Duration::hours(1));
    fake.fail_next(1, 500);
    assert_eq!(
        ig.publish(&account, &post("x")).await.unwrap_err().class(),
        "transient"
    );
    fake.error_next(
        1,
        400,
        9004,
        Some(2207052),
        "The media could not be fetched from this URI",
    );
    let error = ig.publish(&account, &post("x")).await.unwrap_err();
    kit::assert_error(&error, "rejected", "could not be fetched");
    fake.error_next(1, 400, 1, Some(2207001), "Server error");
    assert_eq!(
        ig.publish(&account, &post("x")).await.unwrap_err().class(),
        "transient"
    );
    assert!(fake.media().is_empty());
}

#[tokio::test]
async fn a_cap_error_on_publish_waits_for_the_window_too() {
    let (fake, acct) = fake_account().await;
    fake.seed_media(
        &acct.user_id,
        "earlier",
        Utc::now() - chrono::Duration::hours(2),
    );
    fake.cap_next(1);
    let ig = connector(&fake);
    match ig
        .publish(&session(&acct, chrono::Duration::hours(1)), &post("x"))
        .await
        .unwrap_err()
    {
        ConnectorError::RateLimited { retry_after, .. } => {
            let hours = retry_after.as_secs_f64() / 3600.0;
            assert!((21.9..=22.01).contains(&hours), "{hours} h");
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    assert_eq!(fake.media().len(), 1, "only the seeded one");
    assert_eq!(
        fake.requests_to(&format!("/{}/content_publishing_limit", acct.user_id)),
        2,
        "before publishing, and after the cap error"
    );
}
