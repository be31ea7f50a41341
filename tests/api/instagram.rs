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

// ---------------------------------------------------------------------------------------------
// Replies (issue 5)
// ---------------------------------------------------------------------------------------------

/// A fake account, its connector and session, and a published image post
/// with a correction comment of the account: the `own_ids` of a delivery.
async fn published() -> (
    FakeInstagram,
    FakeIgAccount,
    Instagram,
    AccountSession,
    Vec<String>,
) {
    let (fake, acct) = fake_account().await;
    let ig = connector(&fake);
    let account = session(&acct, chrono::Duration::hours(1));
    let root = ig
        .publish(&account, &post("Recall."))
        .await
        .unwrap()
        .remote_id;
    let correction = kit::thread_part("Lot 42 only.", 1, Some((&root, &root)));
    let comment = ig.publish(&account, &correction).await.unwrap().remote_id;
    (fake, acct, ig, account, vec![root, comment])
}

/// The stored comment a `comment:<id>` remote id names.
fn stored_comment(
    fake: &FakeInstagram,
    remote_id: &str,
) -> herald::fakes::instagram::FakeIgComment {
    let id = remote_id.trim_start_matches("comment:");
    fake.comments().into_iter().find(|c| c.id == id).unwrap()
}

#[tokio::test]
async fn comments_and_replies_come_oldest_first_and_a_new_reply_to_an_old_comment_is_found() {
    let (fake, _, ig, account, own) = published().await;
    let poller = kit::Poller::new(&ig, &account, &own);
    let correction = own[1].trim_start_matches("comment:").to_string();

    let a = fake.add_reply(&own[0], "bea", "Which lots?");
    let b = fake.add_reply(&a, "carl", "Same question.");
    let c = fake.add_reply(&b, "dan", "Read the correction.");
    let d = fake.add_reply(&correction, "eve", "Thanks for the detail.");
    let first = poller.poll(None).await;
    // The account's own comment is not a reply.
    kit::assert_replies(
        &first,
        &[
            (&a, &own[0], "bea", "Which lots?"),
            (&b, &a, "carl", "Same question."),
            // Threads are one level deep: a reply to a reply is under the comment.
            (&c, &a, "dan", "Read the correction."),
            (&d, &own[1], "eve", "Thanks for the detail."),
        ],
    );
    let permalink = fake.media()[0].permalink.clone();
    for (reply, comment) in first.replies.iter().zip([&a, &b, &c, &d]) {
        let stored = stored_comment(&fake, comment);
        assert_eq!(reply.created_at.timestamp(), stored.timestamp.timestamp());
        assert_eq!(reply.url.as_deref(), Some(permalink.as_str()));
    }
    let cursor = first.cursor.clone().expect("a cursor");

    // Nothing new: one read of the count, nothing returned, cursor kept.
    let before = fake.requests_to(&format!("/{}/comments", own[0]));
    let none = poller.quiet(Some(cursor.clone())).await;
    assert_eq!(none.cursor, None);
    assert_eq!(fake.requests_to(&format!("/{}/comments", own[0])), before);

    // Bury the first comment three pages deep, then answer it.
    fake.set_page_size(2);
    let mut newer = Vec::new();
    for n in 0..5 {
        newer.push(fake.add_reply(&own[0], "fay", &format!("Comment {n}")));
    }
    let second = poller.poll(Some(cursor)).await;
    assert_eq!(kit::reply_ids(&second), newer);
    let late = fake.add_reply(&a, "gil", "Any news?");
    let third = poller.poll(second.cursor.clone()).await;
    kit::assert_replies(&third, &[(&late, &a, "gil", "Any news?")]);
    poller.quiet(third.cursor.clone()).await;
}

#[tokio::test]
async fn long_threads_and_many_pages_are_read_across_polls_without_loss() {
    let (fake, _, ig, account, own) = published().await;
    let poller = kit::Poller::new(&ig, &account, &own);
    fake.set_page_size(2);
    let top = fake.add_reply(&own[0], "bea", "Thread");
    let mut expected = vec![top.clone()];
    for n in 0..5 {
        expected.push(fake.add_reply(&top, "carl", &format!("Reply {n}")));
    }
    let first = poller.poll(None).await;
    assert_eq!(
        kit::reply_ids(&first),
        expected,
        "the thread's later replies from /replies"
    );
    assert!(fake.requests_to(&format!("/{top}/replies")) >= 2);

    // Fourteen new comments, one a page: the budget of ten requests stops
    // the first poll; the next goes on where it stopped.
    fake.set_page_size(1);
    let mut more = Vec::new();
    for n in 0..14 {
        more.push(fake.add_reply(&own[0], "dan", &format!("Comment {n}")));
    }
    let mut got = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor = first.cursor.clone();
    for _ in 0..3 {
        let page = poller.poll(cursor.clone()).await;
        sizes.push(page.replies.len());
        got.extend(kit::reply_ids(&page));
        cursor = page.cursor.or(cursor);
    }
    // The count read, then nine pages of one; the rest next time.
    assert_eq!(sizes, [9, 5, 0]);
    got.sort();
    more.sort();
    assert_eq!(got, more, "every new comment once");
}

#[tokio::test]
async fn reading_comments_is_throttled_failed_and_revoked_like_publishing() {
    let (fake, acct, ig, account, own) = published().await;
    let poller = kit::Poller::new(&ig, &account, &own);
    fake.add_reply(&own[0], "bea", "Hello?");

    fake.rate_limit_reads_next(1, 3);
    let wait = Duration::from_secs(180)..=Duration::from_secs(180);
    kit::assert_throttled(&poller.fail(None).await, 400, wait, "");
    fake.fail_reads_next(1, 500);
    kit::assert_transient(&poller.fail(None).await, 500);
    assert_eq!(poller.poll(None).await.replies.len(), 1);
    fake.revoke(&acct.token, Some(460));
    kit::assert_revoked(&poller.fail(None).await, "reconnect", &acct.token);
}

#[tokio::test]
async fn an_answer_is_a_reply_on_the_comment_and_is_reconciled_once() {
    let (fake, acct, ig, account, own) = published().await;
    let question = fake.add_reply(&own[0], "bea", "Refund?");
    let follow_up = fake.add_reply(&question, "carl", "Me too?");

    let sent = ig
        .publish(
            &account,
            &kit::answer(&own[0], &question, "Yes, at any shop."),
        )
        .await
        .unwrap();
    let stored = stored_comment(&fake, &sent.remote_id);
    assert_eq!(stored.parent_comment.as_deref(), Some(question.as_str()));
    assert_eq!(stored.user_id, acct.user_id);
    assert_eq!(fake.requests_to(&format!("/{question}/replies")), 1);

    // Answering a reply goes under its comment (threads are one level deep).
    let sent = ig
        .publish(
            &account,
            &kit::answer(&own[0], &follow_up, "You too, Carl."),
        )
        .await
        .unwrap();
    let stored = stored_comment(&fake, &sent.remote_id);
    assert_eq!(stored.parent_comment.as_deref(), Some(question.as_str()));

    // A lost answer is found, not sent twice.
    let lost = kit::answer(&own[0], &question, "Bring the receipt.");
    let found =
        kit::lost_then_reconciled(&ig, &ig, &account, &lost, || fake.drop_after_store_next(1))
            .await;
    let copies: Vec<_> = fake
        .comments()
        .into_iter()
        .filter(|c| c.text == "Bring the receipt.")
        .collect();
    assert_eq!(copies.len(), 1);
    assert_eq!(found.remote_id, format!("comment:{}", copies[0].id));

    // The account's answers are not collected as replies.
    let page = kit::Poller::new(&ig, &account, &own).poll(None).await;
    let authors: Vec<&str> = page.replies.iter().map(|r| r.author.as_str()).collect();
    assert_eq!(authors, ["bea", "carl"]);
}
