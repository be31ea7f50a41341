//! The Facebook Pages connector against the fake Graph API (shared/platforms.md §5).

use std::time::Duration;

use chrono::Utc;
use herald::fakes::facebook::{FakeFacebook, FakePage};
use herald::platforms::facebook::Facebook;
use herald::platforms::{
    AccountSession, ConnectRequest, Connector, ConnectorError, Credentials, MediaItem,
    OAuthNetwork, Platform,
};

use crate::kit::{self, post};

fn connector(fake: &FakeFacebook) -> Facebook {
    Facebook::new(reqwest::Client::new(), fake.app())
}

fn session(page: &FakePage) -> AccountSession {
    kit::session(
        Platform::Facebook,
        None,
        &[("page_id", &page.id), ("page_access_token", &page.token)],
    )
}

/// Go through the dialog (auto-approved) and exchange the code.
pub async fn login(
    app: &herald::platforms::OAuthApp,
    redirect: &str,
) -> herald::platforms::TokenSet {
    let (code, _) = kit::oauth_code(app, redirect).await;
    app.exchange_code(&reqwest::Client::new(), &code, redirect, None)
        .await
        .unwrap()
}

async fn page_fake() -> (FakeFacebook, FakePage) {
    let fake = FakeFacebook::start().await;
    let user = fake.add_user("Ada");
    let page = fake.add_page(&user, "Kettle Co");
    (fake, page)
}

#[tokio::test]
async fn the_oauth_flow_connects_the_only_page_with_its_page_token() {
    let (fake, page) = page_fake().await;
    let fb = connector(&fake);
    let app = fb.oauth_app().expect("configured");
    let redirect = "http://herald.test/v1/oauth/callback";
    let flow = kit::code_flow(&app, redirect).await;
    assert!(flow.verifier.is_none(), "Facebook Login: no PKCE");
    assert!(flow.url.contains("/dialog/oauth?"), "{}", flow.url);
    assert!(
        flow.url
            .contains("scope=pages_show_list%2Cpages_manage_posts"),
        "{}",
        flow.url
    );
    // The code is single-use.
    let again = app
        .exchange_code(&reqwest::Client::new(), &flow.code, redirect, None)
        .await;
    assert!(again.is_err());

    let connected = fb
        .connect(flow.tokens, &ConnectRequest::default())
        .await
        .unwrap();
    assert_eq!(connected.credentials.get("page_id"), Some(page.id.as_str()));
    assert_eq!(
        connected.credentials.get("page_access_token"),
        Some(page.token.as_str())
    );
    assert_eq!(connected.remote_name.as_deref(), Some("Kettle Co"));
    assert_eq!(connected.expires_at, None, "Page tokens do not expire");
    assert_eq!(
        fake.requests_to("/oauth/access_token"),
        3,
        "code ×2, exchange"
    );
    assert_eq!(fake.requests_to("/me/accounts"), 1);
}

#[tokio::test]
async fn several_pages_need_a_target_and_the_target_picks_one() {
    let fake = FakeFacebook::start().await;
    let user = fake.add_user("Ada");
    let a = fake.add_page(&user, "Kettle Co");
    let b = fake.add_page(&user, "Kettle Support");
    let fb = connector(&fake);
    let app = fb.oauth_app().unwrap();
    let redirect = "http://herald.test/cb";
    let error = fb
        .connect(login(&app, redirect).await, &ConnectRequest::default())
        .await
        .unwrap_err();
    assert_eq!(error.class(), "rejected");
    let text = error.to_string();
    assert!(
        text.contains(&a.id) && text.contains("Kettle Support"),
        "{text}"
    );
    assert!(
        !text.contains(&a.token) && !text.contains(&b.token),
        "{text}"
    );

    let request = ConnectRequest {
        target: Some(b.id.clone()),
        ..Default::default()
    };
    let connected = fb
        .connect(login(&app, redirect).await, &request)
        .await
        .unwrap();
    assert_eq!(connected.credentials.get("page_id"), Some(b.id.as_str()));
    assert_eq!(connected.remote_name.as_deref(), Some("Kettle Support"));
}

#[tokio::test]
async fn a_thread_is_a_feed_post_with_comments_from_the_page() {
    let (fake, page) = page_fake().await;
    let fb = connector(&fake);
    let account = session(&page);

    let root = fb
        .publish(&account, &post("1/3 Stop using the K-200."))
        .await
        .unwrap();
    assert!(root.remote_id.starts_with(&format!("{}_", page.id)));
    assert!(root.remote_url.as_deref().unwrap().contains("/posts/"));
    let mut parent = root.remote_id.clone();
    for (part, text) in [(1, "2/3 Refunds at any shop."), (2, "3/3 Details soon.")] {
        let p = kit::thread_part(text, part, Some((&root.remote_id, &parent)));
        let published = fb.publish(&account, &p).await.unwrap();
        parent = published.remote_id;
    }

    let stored = fake.posts();
    assert_eq!(stored.len(), 3);
    assert_eq!(stored[0].kind, "feed");
    assert_eq!(stored[0].message, "1/3 Stop using the K-200.");
    for comment in &stored[1..] {
        assert_eq!(comment.kind, "comment");
        assert_eq!(comment.parent_id.as_deref(), Some(root.remote_id.as_str()));
        assert_eq!(comment.page_id, page.id);
    }

    // Delete a comment and the post; deleting again is fine.
    fb.delete(&account, &parent).await.unwrap();
    fb.delete(&account, &root.remote_id).await.unwrap();
    fb.delete(&account, &root.remote_id).await.unwrap();
    let stored = fake.posts();
    assert!(stored[0].deleted && stored[2].deleted && !stored[1].deleted);
}

#[tokio::test]
async fn an_image_goes_out_as_a_photo_with_caption_and_alt_text() {
    let (fake, page) = page_fake().await;
    let fb = connector(&fake);
    let mut p = post("Recall notice attached.");
    p.media = vec![MediaItem {
        url: "https://cdn.example.org/recall.jpg".into(),
        alt: Some("A kettle with a red cross".into()),
        content_type: Some("image/jpeg".into()),
    }];
    let published = fb.publish(&session(&page), &p).await.unwrap();
    let stored = fake.posts();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].kind, "photo");
    assert_eq!(stored[0].message, "Recall notice attached.");
    assert_eq!(
        stored[0].image_url.as_deref(),
        Some("https://cdn.example.org/recall.jpg")
    );
    assert_eq!(
        stored[0].alt_text.as_deref(),
        Some("A kettle with a red cross")
    );
    assert_eq!(
        published.remote_id, stored[0].id,
        "the Page post, not the photo"
    );
}

#[tokio::test]
async fn token_failures_mean_reconnect_and_never_show_the_token() {
    let (fake, page) = page_fake().await;
    let fb = connector(&fake);
    for subcode in [Some(463), Some(460), Some(458), None] {
        fake.revoke(&page.token, subcode);
        let error = fb.publish(&session(&page), &post("hi")).await.unwrap_err();
        assert_eq!(error.class(), "auth_revoked", "{subcode:?}");
        assert!(error.to_string().contains("reconnect"), "{error}");
        assert!(!error.to_string().contains(&page.token));
        assert_eq!(
            fb.check(&session(&page)).await.unwrap_err().class(),
            "auth_revoked"
        );
    }
    assert!(fake.posts().is_empty());
    assert_eq!(fb.refresh(&session(&page)).await.unwrap(), None);
}

#[tokio::test]
async fn throttling_is_rate_limited_by_code_not_status() {
    let (fake, page) = page_fake().await;
    let fb = connector(&fake);
    let account = session(&page);

    fake.rate_limit_next(1, 7);
    let error = fb.publish(&account, &post("hi")).await.unwrap_err();
    let (retry_after, status, _) = kit::rate_limited(&error);
    assert_eq!(status, Some(400));
    assert_eq!(retry_after, Duration::from_secs(7 * 60));
    fake.error_next(1, 403, 4, None, "(#4) Application request limit reached");
    match fb.publish(&account, &post("hi")).await.unwrap_err() {
        ConnectorError::RateLimited { retry_after, .. } => {
            assert_eq!(retry_after, Duration::from_secs(300), "default 5 min")
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    fake.error_next(1, 403, 200, None, "(#200) Permissions error");
    let error = fb.publish(&account, &post("hi")).await.unwrap_err();
    kit::assert_error(&error, "rejected", "permission");
    fake.error_next(
        1,
        400,
        368,
        None,
        "Temporarily blocked for policies violations",
    );
    assert_eq!(
        fb.publish(&account, &post("hi")).await.unwrap_err().class(),
        "rejected"
    );
    fake.fail_next(1, 500);
    assert_eq!(
        fb.publish(&account, &post("hi")).await.unwrap_err().class(),
        "transient"
    );
    assert!(fake.posts().is_empty());

    // Usage at 100 %: the post goes out, and the account pauses.
    fake.set_usage(100, 3);
    let published = fb.publish(&account, &post("hi")).await.unwrap();
    let pause = published.pause_until.expect("paused");
    let secs = (pause - Utc::now()).num_seconds();
    assert!((170..=180).contains(&secs), "{secs}");
}

#[tokio::test]
async fn an_unknown_outcome_is_reconciled_and_a_duplicate_is_the_same_post() {
    let (fake, page) = page_fake().await;
    let fb = connector(&fake);
    let account = session(&page);
    let p = post("Update: the plant is closed today.");

    // Nothing sent yet: surely absent.
    assert_eq!(fb.reconcile(&account, &p).await.unwrap(), None);

    fake.drop_after_store_next(1);
    let error = fb.publish(&account, &p).await.unwrap_err();
    assert_eq!(error.class(), "unknown", "{error}");
    let found = fb.reconcile(&account, &p).await.unwrap().expect("found");
    assert_eq!(found.remote_id, fake.posts()[0].id);

    // Publishing again hits (#506) and answers the existing post.
    let again = fb.publish(&account, &p).await.unwrap();
    assert_eq!(again.remote_id, found.remote_id);
    assert_eq!(fake.posts().len(), 1);

    // A lost comment is found among the root's comments.
    let c = kit::thread_part("More soon.", 1, Some((&found.remote_id, &found.remote_id)));
    assert_eq!(fb.reconcile(&account, &c).await.unwrap(), None);
    fake.drop_after_store_next(1);
    assert_eq!(
        fb.publish(&account, &c).await.unwrap_err().class(),
        "unknown"
    );
    let comment = fb.reconcile(&account, &c).await.unwrap().expect("found");
    assert_eq!(comment.remote_id, fake.posts()[1].id);
}

#[tokio::test]
async fn reconciliation_ignores_posts_from_before_the_first_attempt() {
    let (fake, page) = page_fake().await;
    let fb = connector(&fake);
    let p = post("Same words as last year.");
    fake.seed_post(&page.id, &p.text, Utc::now() - chrono::Duration::days(300));
    assert_eq!(fb.reconcile(&session(&page), &p).await.unwrap(), None);
    fb.check(&session(&page)).await.unwrap();
}

#[tokio::test]
async fn missing_credentials_are_refused_before_any_request() {
    let fake = FakeFacebook::start().await;
    let fb = connector(&fake);
    let empty = AccountSession::new("a", Platform::Facebook, "x", None, Credentials::default());
    let error = fb.publish(&empty, &post("hi")).await.unwrap_err();
    assert_eq!(error.class(), "auth_revoked");
    assert_eq!(fake.post_requests(), 0);
}

// ---------------------------------------------------------------------------------------------
// Replies (issue 5)
// ---------------------------------------------------------------------------------------------

fn stored(fake: &FakeFacebook, id: &str) -> herald::fakes::facebook::FakeFbPost {
    fake.posts()
        .into_iter()
        .find(|p| p.id == id)
        .expect("stored")
}

/// A Page of a fake, its connector and account, and the Page's post
/// "Recall." (its remote id).
async fn page_post() -> (FakeFacebook, FakePage, Facebook, AccountSession, String) {
    let (fake, page) = page_fake().await;
    let fb = connector(&fake);
    let account = session(&page);
    let root = fb
        .publish(&account, &post("Recall."))
        .await
        .unwrap()
        .remote_id;
    (fake, page, fb, account, root)
}

#[tokio::test]
async fn replies_at_any_depth_come_oldest_first_and_each_poll_only_brings_the_new_ones() {
    let (fake, page) = page_fake().await;
    let fb = connector(&fake);
    let account = session(&page);
    let ids = kit::publish_thread(&fb, &account, &kit::THREAD).await;
    let poller = kit::Poller::new(&fb, &account, &ids);

    let a = fake.add_reply(&ids[0], "Bea Martin", "Is tap water safe?");
    let b = fake.add_reply(&ids[2], "Carl Diaz", "Which Friday?");
    let c = fake.add_reply(&a, "Dan Wu", "Boil it, Bea.");
    let first = poller.poll(None).await;
    // The Page's own thread parts are not replies.
    kit::assert_replies(
        &first,
        &[
            (&a, &ids[0], "Bea Martin", "Is tap water safe?"),
            (&b, &ids[2], "Carl Diaz", "Which Friday?"),
            (&c, &a, "Dan Wu", "Boil it, Bea."),
        ],
    );
    for reply in &first.replies {
        let s = stored(&fake, &reply.remote_id);
        assert_eq!(reply.url.as_deref(), Some(s.permalink_url.as_str()));
        assert_eq!(reply.created_at.timestamp(), s.created_time.timestamp());
    }
    let reply_url = first.replies[2].url.clone().unwrap();
    assert!(reply_url.contains("reply_comment_id="), "{reply_url}");
    let cursor = first.cursor.clone().expect("a cursor");

    // Nothing new: nothing returned, and the cursor is kept.
    let none = poller.quiet(Some(cursor.clone())).await;
    assert_eq!(none.cursor, None);

    // A new answer to the OLD first comment, a new comment on the post, and
    // the Page answering: only the public's two, in order.
    let d = fake.add_reply(&a, "Eve Roy", "Bea, see the notice.");
    fb.publish(
        &account,
        &kit::answer(&ids[0], &b, "This Friday, the 28th."),
    )
    .await
    .unwrap();
    let e = fake.add_reply(&ids[0], "Fay Lam", "Thanks.");
    let second = poller.poll(Some(cursor)).await;
    kit::assert_replies(
        &second,
        &[
            (&d, &a, "Eve Roy", "Bea, see the notice."),
            (&e, &ids[0], "Fay Lam", "Thanks."),
        ],
    );
    assert!(second.cursor.is_some());
    let requests = fake.requests_to(&format!("/{}/comments", ids[0]));
    assert!(requests >= 3, "{requests}");
}

#[tokio::test]
async fn a_poll_follows_every_page_up_to_its_budget_and_the_next_one_resumes() {
    let (fake, _, fb, account, root) = page_post().await;
    let poller = kit::Poller::new(&fb, &account, std::slice::from_ref(&root));
    fake.set_page_size(2);
    let mut added = Vec::new();
    for n in 0..7 {
        added.push(fake.add_reply(&root, "Gil", &format!("Question {n}")));
    }
    let all = poller.poll(None).await;
    assert_eq!(kit::reply_ids(&all), added, "four pages of two");

    // Twelve more, a page of one each: ten pages in this poll, the rest in the next.
    fake.set_page_size(1);
    let mut more = Vec::new();
    for n in 0..12 {
        more.push(fake.add_reply(&added[n % 7], "Hana", &format!("Answer {n}")));
    }
    let before = fake.requests_to(&format!("/{root}/comments"));
    let first = poller.poll(all.cursor.clone()).await;
    assert_eq!(
        fake.requests_to(&format!("/{root}/comments")) - before,
        10,
        "at most ten pages a poll"
    );
    let rest = poller.poll(first.cursor.clone()).await;
    assert_eq!(first.replies.len(), 10);
    let got = [kit::reply_ids(&first), kit::reply_ids(&rest)].concat();
    assert_eq!(got, more, "none lost, none twice");
}

#[tokio::test]
async fn reading_replies_is_throttled_failed_and_revoked_like_publishing() {
    let (fake, page, fb, account, root) = page_post().await;
    let poller = kit::Poller::new(&fb, &account, std::slice::from_ref(&root));
    fake.add_reply(&root, "Bea", "Hello?");

    // Meta throttles with 400, not 429.
    fake.rate_limit_reads_next(1, 7);
    let wait = Duration::from_secs(7 * 60)..=Duration::from_secs(7 * 60);
    kit::assert_throttled(&poller.fail(None).await, 400, wait, "");

    fake.fail_reads_next(1, 503);
    kit::assert_transient(&poller.fail(None).await, 503);

    // The fault is spent: the poll works again.
    assert_eq!(poller.poll(None).await.replies.len(), 1);

    fake.revoke(&page.token, Some(460));
    kit::assert_revoked(&poller.fail(None).await, "reconnect", &page.token);
}

#[tokio::test]
async fn an_answer_is_a_comment_on_the_comment_and_is_reconciled_once() {
    let (fake, _, fb, account, root) = page_post().await;
    let question = fake.add_reply(&root, "Bea", "Where do I bring it?");

    let sent = fb
        .publish(
            &account,
            &kit::answer(&root, &question, "To any shop, Bea."),
        )
        .await
        .unwrap();
    let s = stored(&fake, &sent.remote_id);
    assert_eq!(s.kind, "comment");
    assert_eq!(s.parent_id.as_deref(), Some(question.as_str()));
    assert_eq!(s.from_id, None, "from the Page");
    assert!(fake.requests_to(&format!("/{question}/comments")) >= 1);

    // Lost answer: reconciliation finds it; no second copy.
    let lost = kit::answer(&root, &question, "Or by post.");
    let found =
        kit::lost_then_reconciled(&fb, &fb, &account, &lost, || fake.drop_after_store_next(1))
            .await;
    let copies: Vec<_> = fake
        .posts()
        .into_iter()
        .filter(|p| p.message == "Or by post.")
        .collect();
    assert_eq!(copies.len(), 1);
    assert_eq!(found.remote_id, copies[0].id);
    assert_eq!(copies[0].parent_id.as_deref(), Some(question.as_str()));
}
