//! The Threads connector against the fake Threads API (shared/platforms.md §7).

use std::time::Duration;

use chrono::{DateTime, Utc};
use herald::config::NetworkApp;
use herald::fakes::threads::{FakeThreads, FakeThreadsConfig, FakeThreadsUser};
use herald::platforms::threads::Threads;
use herald::platforms::{
    AccountSession, ConnectRequest, Connector, ConnectorError, MediaItem, OAuthNetwork, Platform,
    Post,
};

use crate::kit::{self, post};

fn app(fake: &FakeThreads) -> NetworkApp {
    NetworkApp {
        client_id: Some(fake.client_id()),
        client_secret: Some(fake.client_secret()),
        api_url: fake.base_url(),
        auth_url: fake.base_url(),
        token_url: None,
    }
}

fn connector(fake: &FakeThreads) -> Threads {
    Threads::new(reqwest::Client::new(), app(fake)).with_container_wait(Duration::from_secs(5))
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn session_with(
    fake: &FakeThreads,
    user: &FakeThreadsUser,
    token: &str,
    extra: &[(&str, String)],
) -> AccountSession {
    let mut values = vec![("access_token", token), ("user_id", user.user_id.as_str())];
    values.extend(extra.iter().map(|(k, v)| (*k, v.as_str())));
    kit::session(
        Platform::Threads,
        Some(&format!("{}/", fake.base_url())),
        &values,
    )
}

fn session(fake: &FakeThreads, user: &FakeThreadsUser) -> AccountSession {
    session_with(fake, user, &user.token, &[])
}

/// A fake with the user `kettleco`, that user's account, and the connector.
async fn setup() -> (FakeThreads, FakeThreadsUser, AccountSession, Threads) {
    let fake = FakeThreads::start().await;
    let user = fake.add_user("kettleco");
    let account = session(&fake, &user);
    let threads = connector(&fake);
    (fake, user, account, threads)
}

/// A 60-day token issued `age_days` ago, and the account holding it with
/// that issue time and expiry.
fn aged_session(
    fake: &FakeThreads,
    user: &FakeThreadsUser,
    age_days: u64,
) -> (String, AccountSession) {
    let now = Utc::now();
    let token = fake
        .issue_token(
            &user.user_id,
            Duration::from_secs(age_days * 86_400),
            Duration::from_secs(60 * 86_400),
        )
        .unwrap();
    let age = chrono::Duration::days(age_days as i64);
    let account = session_with(
        fake,
        user,
        &token,
        &[
            ("issued_at", rfc3339(now - age)),
            (
                "expires_at",
                rfc3339(now - age + chrono::Duration::days(60)),
            ),
        ],
    );
    (token, account)
}

/// Part `part` of a thread, answering `parent` in the thread of `root`.
fn reply(text: &str, root: &str, parent: &str, part: usize) -> Post {
    kit::thread_part(text, part, Some((root, parent)))
}

#[tokio::test]
async fn the_oauth_code_flow_connects_with_a_long_lived_token() {
    let fake = FakeThreads::start().await;
    let user = fake.add_user("kettleco");
    let threads = connector(&fake);
    let oauth = threads.oauth_app().expect("configured");
    let redirect = "https://herald.example/v1/oauth/callback";
    let flow = kit::code_flow(&oauth, redirect).await;
    assert!(flow.verifier.is_none(), "Threads offers no PKCE");
    assert!(flow
        .url
        .starts_with(&format!("{}/oauth/authorize?", fake.base_url())));
    assert!(flow.location.starts_with(redirect));

    let tokens = flow.tokens;
    assert_eq!(
        tokens.extra_str("user_id").as_deref(),
        Some(user.user_id.as_str())
    );
    let reused = oauth
        .exchange_code(&reqwest::Client::new(), &flow.code, redirect, None)
        .await
        .unwrap_err();
    assert_eq!(reused.class(), "rejected", "codes are single-use: {reused}");

    let short = tokens.access_token().to_string();
    let connected = threads
        .connect(tokens, &ConnectRequest::default())
        .await
        .unwrap();
    let c = &connected.credentials;
    assert_eq!(connected.remote_name.as_deref(), Some("@kettleco"));
    assert_eq!(c.get("user_id"), Some(user.user_id.as_str()));
    assert_eq!(c.get("username"), Some("kettleco"));
    let long = c.get("access_token").unwrap().to_string();
    assert_ne!(long, short, "the short-lived token was exchanged");
    let expires = connected.expires_at.unwrap();
    let days = (expires - Utc::now()).num_hours() as f64 / 24.0;
    assert!((59.0..=60.1).contains(&days), "{days}");
    assert_eq!(c.get("expires_at"), Some(rfc3339(expires).as_str()));
    assert!(c.get("issued_at").is_some());
    assert_eq!(
        fake.token_expires_at(&long)
            .map(|e| (e - expires).num_seconds().abs() < 5),
        Some(true)
    );

    // The stored credentials publish.
    let account = AccountSession::new(
        "acc-oauth",
        Platform::Threads,
        "Kettle Co",
        Some(&fake.base_url()),
        connected.credentials.clone(),
    );
    threads
        .publish(&account, &post("Connected."))
        .await
        .unwrap();
    threads.check(&account).await.unwrap();
}

#[tokio::test]
async fn publishing_makes_a_text_container_then_publishes_it() {
    let fake = FakeThreads::start().await;
    let user = fake.add_user("kettleco");
    let post =
        post("Stop using the K-200 kettle. 🚨\nDetails: https://example.org/recall?lot=42&x=1");

    let published = connector(&fake)
        .publish(&session(&fake, &user), &post)
        .await
        .unwrap();

    let stored = fake.posts();
    assert_eq!(stored.len(), 1);
    let p = &stored[0];
    assert_eq!(p.text, post.text);
    assert_eq!(p.media_type, "TEXT_POST");
    assert_eq!(p.user_id, user.user_id);
    assert_eq!(p.reply_to_id, None);
    assert_eq!(published.remote_id, p.id);
    assert_eq!(published.remote_url.as_deref(), Some(p.permalink.as_str()));
    assert!(p
        .permalink
        .starts_with("https://www.threads.net/@kettleco/post/"));
    assert_eq!(published.pause_until, None);
    assert_eq!(fake.containers(), 1);
    assert_eq!(fake.publish_requests(), 1);
}

#[tokio::test]
async fn a_three_part_thread_replies_to_each_previous_part() {
    let (fake, _, account, threads) = setup().await;

    let ids = kit::publish_thread(
        &threads,
        &account,
        &["1/3 Recall notice.", "2/3 Which models.", "3/3 Refunds."],
    )
    .await;

    let stored = fake.posts();
    assert_eq!(stored.len(), 3);
    assert_eq!(stored[0].reply_to_id, None);
    assert_eq!(stored[1].reply_to_id.as_deref(), Some(ids[0].as_str()));
    assert_eq!(stored[2].reply_to_id.as_deref(), Some(ids[1].as_str()));
    assert_eq!(stored[2].id, ids[2]);

    // A reply to a post that is gone is refused.
    let orphan = threads
        .publish(&account, &reply("4/3", &ids[0], "999", 3))
        .await
        .unwrap_err();
    assert_eq!(orphan.class(), "rejected", "{orphan}");
}

#[tokio::test]
async fn an_image_keeps_its_alt_text_and_waits_for_the_container() {
    let fake = FakeThreads::start().await;
    fake.set_processing_time(Duration::from_millis(400));
    let user = fake.add_user("kettleco");
    let mut post = post("The affected kettle.");
    post.media = vec![MediaItem {
        url: "https://cdn.example.org/k200.jpg".into(),
        alt: Some("A white K-200 kettle with a red recall sticker".into()),
        content_type: Some("image/jpeg".into()),
    }];

    let published = connector(&fake)
        .publish(&session(&fake, &user), &post)
        .await
        .unwrap();

    let stored = fake.posts();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].media_type, "IMAGE");
    assert_eq!(
        stored[0].image_url.as_deref(),
        Some("https://cdn.example.org/k200.jpg")
    );
    assert_eq!(
        stored[0].alt_text.as_deref(),
        Some("A white K-200 kettle with a red recall sticker")
    );
    assert_eq!(stored[0].text, "The affected kettle.");
    assert_eq!(published.remote_id, stored[0].id);
    assert!(
        fake.requests_to(&format!("/v1.0/{}", stored[0].container_id)) >= 2,
        "polled"
    );
}

#[tokio::test]
async fn a_container_that_fails_is_rejected_with_its_error_message() {
    let fake = FakeThreads::start().await;
    let user = fake.add_user("kettleco");
    fake.fail_containers_next(1, "FAILED_DOWNLOADING_VIDEO");
    let error = connector(&fake)
        .publish(&session(&fake, &user), &post("hi"))
        .await
        .unwrap_err();
    match &error {
        ConnectorError::Rejected { message, .. } => {
            assert!(
                message.contains("ERROR") && message.contains("FAILED_DOWNLOADING_VIDEO"),
                "{message}"
            )
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert!(fake.posts().is_empty());
    assert_eq!(fake.publish_requests(), 0);
}

#[tokio::test]
async fn the_fake_enforces_the_text_rules_herald_measures() {
    let (fake, _, account, threads) = setup().await;

    let six: String = (1..=6)
        .map(|i| format!("https://example.org/{i} "))
        .collect();
    assert!(!herald::platforms::check(Platform::Threads, &six, None).ok());
    let error = threads.publish(&account, &post(&six)).await.unwrap_err();
    kit::assert_error(&error, "rejected", "THREADS_API__LINK_LIMIT_EXCEEDED");

    // 496 letters and one emoji of 4 bytes: exactly 500.
    let fits = format!("{}😀", "a".repeat(496));
    assert!(herald::platforms::check(Platform::Threads, &fits, None).ok());
    threads.publish(&account, &post(&fits)).await.unwrap();
    let over = format!("{}😀", "a".repeat(497));
    assert!(!herald::platforms::check(Platform::Threads, &over, None).ok());
    let error = threads.publish(&account, &post(&over)).await.unwrap_err();
    kit::assert_error(&error, "rejected", "code 100");
    assert_eq!(fake.posts().len(), 1);
}

#[tokio::test]
async fn an_old_token_is_refreshed_and_a_young_one_is_left_alone() {
    let fake = FakeThreads::start().await;
    let user = fake.add_user("kettleco");
    let threads = connector(&fake);
    let now = Utc::now();

    // Issued 55 days ago, 5 days left.
    let (old, account) = aged_session(&fake, &user, 55);
    let expires = threads.refresh(&account).await.unwrap().unwrap();
    let days = (expires - Utc::now()).num_hours() as f64 / 24.0;
    assert!((59.0..=60.1).contains(&days), "{days}");
    {
        let mut c = account.credentials.lock().await;
        assert!(c.take_changed());
        let new = c.get("access_token").unwrap();
        assert_ne!(new, old);
        assert_eq!(c.get("expires_at"), Some(rfc3339(expires).as_str()));
        let issued = chrono::DateTime::parse_from_rfc3339(c.get("issued_at").unwrap()).unwrap();
        assert!((Utc::now() - issued.with_timezone(&Utc)).num_seconds() < 10);
    }
    threads
        .publish(&account, &post("With the new token."))
        .await
        .unwrap();
    assert_eq!(fake.requests_to("/refresh_access_token"), 1);

    // The new token is young: no call, the current expiry comes back.
    assert_eq!(threads.refresh(&account).await.unwrap(), Some(expires));
    assert_eq!(fake.requests_to("/refresh_access_token"), 1);

    // An expired token cannot be refreshed.
    let expired = session_with(
        &fake,
        &user,
        &old,
        &[
            ("issued_at", rfc3339(now - chrono::Duration::days(61))),
            ("expires_at", rfc3339(now - chrono::Duration::hours(1))),
        ],
    );
    let error = threads.refresh(&expired).await.unwrap_err();
    assert_eq!(
        error,
        ConnectorError::AuthRevoked {
            message: "the Threads token expired: reconnect".into(),
            status: None
        }
    );
    assert_eq!(fake.requests_to("/refresh_access_token"), 1);
}

#[tokio::test]
async fn publishing_renews_a_token_close_to_expiry_first() {
    let fake = FakeThreads::start().await;
    let user = fake.add_user("kettleco");
    // Issued 58 days ago, 2 days left.
    let (old, account) = aged_session(&fake, &user, 58);
    connector(&fake)
        .publish(&account, &post("hello"))
        .await
        .unwrap();
    assert_eq!(fake.requests_to("/refresh_access_token"), 1);
    let c = account.credentials.lock().await;
    assert_ne!(c.get("access_token"), Some(old.as_str()));
}

#[tokio::test]
async fn a_revoked_or_expired_token_means_the_account_must_be_reconnected() {
    let fake = FakeThreads::start().await;
    let user = fake.add_user("kettleco");
    let threads = connector(&fake);
    fake.revoke(&user.token);
    let error = threads
        .publish(&session(&fake, &user), &post("hi"))
        .await
        .unwrap_err();
    kit::assert_error(&error, "auth_revoked", "190");
    assert!(!error.to_string().contains(&user.token));
    assert_eq!(
        threads
            .check(&session(&fake, &user))
            .await
            .unwrap_err()
            .class(),
        "auth_revoked"
    );

    let other = fake.add_user("other");
    fake.expire_token(&other.token);
    let error = threads
        .publish(&session(&fake, &other), &post("hi"))
        .await
        .unwrap_err();
    kit::assert_error(&error, "auth_revoked", "190/463");
    assert!(fake.posts().is_empty());
}

#[tokio::test]
async fn throttling_waits_as_long_as_the_usage_header_says() {
    let (fake, _, account, threads) = setup().await;
    let post = post("hi");
    fake.rate_limit_next(1, 4, Some(7));
    let error = threads.publish(&account, &post).await.unwrap_err();
    match error {
        ConnectorError::RateLimited { retry_after, .. } => {
            assert_eq!(retry_after, Duration::from_secs(7 * 60))
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    // The retry publishes the container already made: one container, one post.
    let published = threads.publish(&account, &post).await.unwrap();
    assert_eq!(fake.containers(), 1);
    assert_eq!(fake.posts().len(), 1);
    assert_eq!(fake.posts()[0].id, published.remote_id);
}

#[tokio::test]
async fn a_full_posting_window_waits_until_its_oldest_post_leaves_it() {
    let fake = FakeThreads::start_with(FakeThreadsConfig {
        post_quota: 3,
        ..FakeThreadsConfig::default()
    })
    .await;
    let user = fake.add_user("kettleco");
    let now = Utc::now();
    for hours in [23, 10, 1] {
        fake.seed_post(
            &user.token,
            &format!("old {hours}"),
            None,
            now - chrono::Duration::hours(hours),
        )
        .unwrap();
    }
    let account = session(&fake, &user);
    let threads = connector(&fake);
    let error = threads
        .publish(&account, &post("one too many"))
        .await
        .unwrap_err();
    let (retry_after, _, message) = kit::rate_limited(&error);
    let s = retry_after.as_secs();
    assert!((3590..=3601).contains(&s), "{s}");
    assert!(message.contains("publishing limit"), "{message}");
    assert_eq!(
        fake.requests_to(&format!("/v1.0/{}/threads_publishing_limit", user.user_id)),
        1
    );
    // Replies have their own cap: a reply still goes out.
    let first = fake.posts()[2].id.clone();
    threads
        .publish(&account, &reply("a reply", &first, &first, 1))
        .await
        .unwrap();
    assert_eq!(fake.posts().len(), 4);
}

#[tokio::test]
async fn a_server_error_on_publish_is_transient_and_the_retry_reuses_the_container() {
    let (fake, _, account, threads) = setup().await;
    let post = post("Update: the plant is closed today.");
    fake.fail_next(1, 503);
    let error = threads.publish(&account, &post).await.unwrap_err();
    assert_eq!(error.class(), "transient", "{error}");
    let published = threads.publish(&account, &post).await.unwrap();
    assert_eq!(fake.containers(), 1);
    assert_eq!(fake.posts().len(), 1);
    assert_eq!(fake.posts()[0].id, published.remote_id);
}

#[tokio::test]
async fn after_a_lost_answer_reconcile_finds_the_post_without_a_duplicate() {
    let (fake, _, account, threads) = setup().await;
    let post = post("Stop using the K-200 kettle.");
    fake.drop_after_store_next(1);
    let error = threads.publish(&account, &post).await.unwrap_err();
    assert_eq!(error.class(), "unknown", "{error}");
    assert_eq!(fake.posts().len(), 1);

    // Through the remembered container…
    let found = threads.reconcile(&account, &post).await.unwrap().unwrap();
    assert_eq!(found.remote_id, fake.posts()[0].id);
    assert_eq!(
        found.remote_url.as_deref(),
        Some(fake.posts()[0].permalink.as_str())
    );
    // …and by listing, in a process that never saw the container.
    let fresh = connector(&fake);
    let listed = fresh.reconcile(&account, &post).await.unwrap().unwrap();
    assert_eq!(listed.remote_id, found.remote_id);
    assert_eq!(fake.posts().len(), 1);
    assert_eq!(fake.publish_requests(), 1);

    // A part that never went out is surely absent.
    assert_eq!(
        fresh
            .reconcile(&account, &self::post("never sent"))
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn reconcile_finds_a_thread_part_among_the_replies_by_text_and_parent() {
    let (fake, user, account, threads) = setup().await;
    let first = threads
        .publish(&account, &post("1/2 Recall."))
        .await
        .unwrap();
    let other = threads
        .publish(&account, &post("Another post."))
        .await
        .unwrap();
    // The same text under another post must not match.
    threads
        .publish(
            &account,
            &reply("2/2 Refunds.", &other.remote_id, &other.remote_id, 1),
        )
        .await
        .unwrap();
    let part = reply("2/2 Refunds.", &first.remote_id, &first.remote_id, 1);
    fake.drop_after_store_next(1);
    assert_eq!(
        threads.publish(&account, &part).await.unwrap_err().class(),
        "unknown"
    );

    let found = connector(&fake)
        .reconcile(&account, &part)
        .await
        .unwrap()
        .unwrap();
    let stored = fake.posts();
    let real = stored.last().unwrap();
    assert_eq!(found.remote_id, real.id);
    assert_eq!(real.reply_to_id.as_deref(), Some(first.remote_id.as_str()));
    assert!(fake.requests_to(&format!("/v1.0/{}/replies", user.user_id)) >= 1);
}

#[tokio::test]
async fn reconcile_publishes_a_ready_container_only_before_the_deadline() {
    let (fake, _, account, threads) = setup().await;
    let mut late = post("Too late now.");
    fake.fail_next(1, 500);
    assert_eq!(
        threads.publish(&account, &late).await.unwrap_err().class(),
        "transient"
    );
    late.deadline = Utc::now() - chrono::Duration::seconds(1);
    assert_eq!(threads.reconcile(&account, &late).await.unwrap(), None);
    assert!(fake.posts().is_empty());

    let on_time = post("Still on time.");
    fake.fail_next(1, 500);
    assert_eq!(
        threads
            .publish(&account, &on_time)
            .await
            .unwrap_err()
            .class(),
        "transient"
    );
    let sent = threads
        .reconcile(&account, &on_time)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fake.posts().len(), 1);
    assert_eq!(fake.posts()[0].id, sent.remote_id);
    assert_eq!(fake.containers(), 2);
}

#[tokio::test]
async fn deleting_a_post_and_a_post_already_gone_both_succeed() {
    let (fake, user, account, threads) = setup().await;
    let published = threads
        .publish(&account, &post("Wrong statement."))
        .await
        .unwrap();

    threads
        .delete(&account, &published.remote_id)
        .await
        .unwrap();
    assert!(fake.posts()[0].deleted);
    threads
        .delete(&account, &published.remote_id)
        .await
        .unwrap();
    threads.delete(&account, "17841499999999999").await.unwrap();

    fake.revoke(&user.token);
    let error = threads
        .delete(&account, &published.remote_id)
        .await
        .unwrap_err();
    assert_eq!(error.class(), "auth_revoked");
}

#[tokio::test]
async fn the_delete_cap_is_a_rate_limit() {
    let fake = FakeThreads::start_with(FakeThreadsConfig {
        delete_quota: 1,
        ..FakeThreadsConfig::default()
    })
    .await;
    let user = fake.add_user("kettleco");
    let account = session(&fake, &user);
    let threads = connector(&fake);
    let a = threads.publish(&account, &post("a")).await.unwrap();
    let b = threads.publish(&account, &post("b")).await.unwrap();
    threads.delete(&account, &a.remote_id).await.unwrap();
    let error = threads.delete(&account, &b.remote_id).await.unwrap_err();
    assert_eq!(error.class(), "rate_limited", "{error}");
    assert!(!fake.posts()[1].deleted);
}

#[tokio::test]
async fn check_reads_the_profile() {
    let fake = FakeThreads::start().await;
    let user = fake.add_user("kettleco");
    let account = session(&fake, &user);
    connector(&fake).check(&account).await.unwrap();
    assert_eq!(
        account.credentials.lock().await.get("username"),
        Some("kettleco")
    );
    assert_eq!(fake.requests_to("/v1.0/me"), 1);
}

// ---------------------------------------------------------------------------------------------
// Replies (issue 5)
// ---------------------------------------------------------------------------------------------

/// [`setup`], and the account's post "Recall." (its remote id).
async fn setup_post() -> (
    FakeThreads,
    FakeThreadsUser,
    AccountSession,
    Threads,
    String,
) {
    let (fake, user, account, threads) = setup().await;
    let root = threads
        .publish(&account, &post("Recall."))
        .await
        .unwrap()
        .remote_id;
    (fake, user, account, threads, root)
}

#[tokio::test]
async fn the_conversation_gives_replies_at_any_depth_oldest_first_then_only_new_ones() {
    let (fake, _, account, threads) = setup().await;
    let ids = kit::publish_thread(&threads, &account, &kit::THREAD).await;
    let poller = kit::Poller::new(&threads, &account, &ids);

    let a = fake.add_reply(&ids[0], "bea", "Is it safe to shower?");
    let b = fake.add_reply(&ids[2], "carl", "Which Friday?");
    let c = fake.add_reply(&a, "dan", "Yes, Bea.");
    let first = poller.poll(None).await;
    // The thread's own parts are not replies.
    kit::assert_replies(
        &first,
        &[
            (&a, &ids[0], "bea", "Is it safe to shower?"),
            (&b, &ids[2], "carl", "Which Friday?"),
            (&c, &a, "dan", "Yes, Bea."),
        ],
    );
    let posts = fake.posts();
    for reply in &first.replies {
        let stored = posts.iter().find(|p| p.id == reply.remote_id).unwrap();
        assert_eq!(reply.url.as_deref(), Some(stored.permalink.as_str()));
        assert_eq!(
            reply.created_at.timestamp(),
            stored.published_at.timestamp()
        );
    }
    // The account's username was read once and kept.
    assert_eq!(
        account.credentials.lock().await.get("username"),
        Some("kettleco")
    );
    let cursor = first.cursor.clone().expect("a cursor");

    let none = poller.quiet(Some(cursor.clone())).await;
    assert_eq!(none.cursor, None);

    // A new answer deep in an OLD branch, the account answering, a new reply.
    let d = fake.add_reply(&c, "eve", "Thanks Dan.");
    threads
        .publish(&account, &kit::answer(&ids[0], &b, "This Friday."))
        .await
        .unwrap();
    let e = fake.add_reply(&ids[0], "fay", "Noted.");
    let second = poller.poll(Some(cursor)).await;
    kit::assert_replies(
        &second,
        &[
            (&d, &c, "eve", "Thanks Dan."),
            (&e, &ids[0], "fay", "Noted."),
        ],
    );
    assert_eq!(fake.requests_to("/v1.0/me"), 1, "username read once");
    assert!(fake.requests_to(&format!("/v1.0/{}/conversation", ids[0])) >= 3);
}

#[tokio::test]
async fn a_conversation_of_many_pages_is_read_in_bounded_polls_without_loss() {
    let (fake, _, account, threads, root) = setup_post().await;
    let poller = kit::Poller::new(&threads, &account, std::slice::from_ref(&root));
    fake.set_page_size(3);
    let mut expected = Vec::new();
    for n in 0..8 {
        let parent = expected.last().cloned().unwrap_or_else(|| root.clone());
        expected.push(fake.add_reply(&parent, "gil", &format!("Reply {n}")));
    }
    let all = poller.poll(None).await;
    assert_eq!(kit::reply_ids(&all), expected, "three pages");

    fake.set_page_size(1);
    let mut more = Vec::new();
    for n in 0..13 {
        more.push(fake.add_reply(&expected[n % 8], "hana", &format!("More {n}")));
    }
    let first = poller.poll(all.cursor.clone()).await;
    assert_eq!(first.replies.len(), 10, "ten pages a poll");
    let rest = poller.poll(first.cursor.clone()).await;
    let got = [kit::reply_ids(&first), kit::reply_ids(&rest)].concat();
    assert_eq!(got, more);
}

#[tokio::test]
async fn reading_the_conversation_is_throttled_failed_and_revoked_like_publishing() {
    let (fake, user, account, threads, root) = setup_post().await;
    let poller = kit::Poller::new(&threads, &account, std::slice::from_ref(&root));
    fake.add_reply(&root, "bea", "Hello?");

    fake.rate_limit_reads_next(1, 4, 7);
    let wait = Duration::from_secs(7 * 60)..=Duration::from_secs(7 * 60);
    kit::assert_throttled(&poller.fail(None).await, 400, wait, "");
    fake.fail_reads_next(1, 502);
    kit::assert_transient(&poller.fail(None).await, 502);
    assert_eq!(poller.poll(None).await.replies.len(), 1);
    fake.revoke(&user.token);
    kit::assert_revoked(&poller.fail(None).await, "reconnect", &user.token);
}

#[tokio::test]
async fn an_answer_replies_to_the_reply_and_a_lost_one_is_reconciled_once() {
    let (fake, _, account, threads, root) = setup_post().await;
    let question = fake.add_reply(&root, "bea", "Refund?");

    let sent = threads
        .publish(&account, &kit::answer(&root, &question, "Yes, Bea."))
        .await
        .unwrap();
    let stored = fake.posts();
    let stored = stored.iter().find(|p| p.id == sent.remote_id).unwrap();
    assert_eq!(stored.reply_to_id.as_deref(), Some(question.as_str()));
    assert_eq!(stored.username, "kettleco");

    let lost = kit::answer(&root, &question, "Any shop will do.");
    // Reconciled in a process that never saw the container: found by listing.
    let found = kit::lost_then_reconciled(&threads, &connector(&fake), &account, &lost, || {
        fake.drop_after_store_next(1)
    })
    .await;
    let copies: Vec<_> = fake
        .posts()
        .into_iter()
        .filter(|p| p.text == "Any shop will do.")
        .collect();
    assert_eq!(copies.len(), 1);
    assert_eq!(found.remote_id, copies[0].id);
    assert_eq!(copies[0].reply_to_id.as_deref(), Some(question.as_str()));
}
