//! The LinkedIn connector against its fake (shared/platforms.md §4): OAuth
//! connect (member and organization), posts with escaped little text,
//! threads as comments, images, token expiry with and without a refresh
//! token, classification, reconciliation after an unknown outcome, delete.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use herald::config::NetworkApp;
use herald::fakes::linkedin::{FakeLinkedin, FakeMember, CLIENT_ID, CLIENT_SECRET, VERSION};
use herald::platforms::linkedin::{parse_comment_urn, Linkedin};
use herald::platforms::{
    AccountSession, ConnectRequest, Connector, ConnectorError, MediaItem, OAuthNetwork, Platform,
    Post,
};

use crate::kit::{self, post, REDIRECT};

fn app(fake: &FakeLinkedin) -> NetworkApp {
    NetworkApp {
        client_id: Some(CLIENT_ID.into()),
        client_secret: Some(CLIENT_SECRET.into()),
        api_url: fake.base_url(),
        auth_url: fake.base_url(),
        token_url: None,
    }
}

fn connector(fake: &FakeLinkedin) -> Linkedin {
    Linkedin::new(reqwest::Client::new(), app(fake), VERSION)
}

fn account(fake: &FakeLinkedin, values: &[(&str, &str)]) -> AccountSession {
    kit::session(Platform::Linkedin, Some(&fake.base_url()), values)
}

fn member_account(fake: &FakeLinkedin, member: &FakeMember) -> AccountSession {
    account(
        fake,
        &[
            ("access_token", &member.access_token),
            ("author_urn", &member.urn),
        ],
    )
}

/// `member` posting as the organization `org`.
fn org_account(fake: &FakeLinkedin, member: &FakeMember, org: &str) -> AccountSession {
    account(
        fake,
        &[("access_token", &member.access_token), ("author_urn", org)],
    )
}

async fn stored(account: &AccountSession, name: &str) -> Option<String> {
    account
        .credentials
        .lock()
        .await
        .get(name)
        .map(str::to_string)
}

fn time(value: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value)
        .unwrap()
        .with_timezone(&Utc)
}

fn days_from_now(at: DateTime<Utc>) -> i64 {
    (at - Utc::now() + chrono::Duration::hours(1)).num_days()
}

/// The whole code flow: authorize (auto-approved), read the code from the
/// redirect, exchange it, connect.
async fn oauth_connect(
    fake: &FakeLinkedin,
    target: Option<&str>,
) -> (herald::platforms::Connected, String) {
    let linkedin = connector(fake);
    let oauth = linkedin.oauth_app_for(target).expect("configured");
    let flow = kit::code_flow(&oauth, REDIRECT).await;
    assert!(flow.verifier.is_none(), "LinkedIn uses no PKCE");
    // Codes are single-use.
    let again = oauth
        .exchange_code(&reqwest::Client::new(), &flow.code, REDIRECT, None)
        .await
        .unwrap_err();
    assert_eq!(again.class(), "rejected", "{again}");
    let request = ConnectRequest {
        base_url: None,
        target: target.map(str::to_string),
    };
    (
        linkedin.connect(flow.tokens, &request).await.unwrap(),
        flow.url,
    )
}

#[tokio::test]
async fn connecting_a_member_stores_its_urn_tokens_and_expiries() {
    let fake = FakeLinkedin::start().await;
    let member = fake.add_member("Ada Lovelace");
    let (connected, url) = oauth_connect(&fake, None).await;

    let authorize = url::Url::parse(&url).unwrap();
    assert_eq!(authorize.path(), "/oauth/v2/authorization");
    let query: BTreeMap<String, String> = authorize.query_pairs().into_owned().collect();
    assert_eq!(query["scope"], "openid profile w_member_social");
    assert_eq!(query["response_type"], "code");

    let credentials = &connected.credentials;
    assert_eq!(credentials.get("author_urn"), Some(member.urn.as_str()));
    assert_eq!(connected.remote_name.as_deref(), Some("Ada Lovelace"));
    let expires = time(credentials.get("expires_at").unwrap());
    assert_eq!(days_from_now(expires), 60);
    assert_eq!(
        connected.expires_at.map(|e| e.timestamp()),
        Some(expires.timestamp())
    );
    assert!(credentials.get("refresh_token").is_some());
    assert_eq!(
        days_from_now(time(credentials.get("refresh_expires_at").unwrap())),
        365
    );
    assert_eq!(fake.requests_to("/v2/userinfo"), 1);

    // The credentials work.
    let account = account(
        &fake,
        &credentials
            .values()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect::<Vec<_>>(),
    );
    connector(&fake).check(&account).await.unwrap();
    connector(&fake)
        .publish(&account, &post("Connected."))
        .await
        .unwrap();
    assert_eq!(fake.posts()[0].author, member.urn);
}

#[tokio::test]
async fn connecting_an_organization_asks_for_the_organization_scopes() {
    let fake = FakeLinkedin::start().await;
    fake.set_refresh_tokens(false);
    let member = fake.add_member("Grace Hopper");
    let org = fake.add_organization(&member.sub);
    let (connected, url) = oauth_connect(&fake, Some(&org)).await;

    let query: BTreeMap<String, String> = url::Url::parse(&url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    assert_eq!(
        query["scope"],
        "openid profile w_member_social w_organization_social r_organization_social"
    );
    assert_eq!(connected.credentials.get("author_urn"), Some(org.as_str()));
    assert_eq!(connected.credentials.get("refresh_token"), None);
    assert_eq!(connected.credentials.get("refresh_expires_at"), None);
    assert_eq!(fake.requests_to("/v2/userinfo"), 0);

    let bad = connector(&fake)
        .connect(
            serde_json::from_str(r#"{"access_token":"x","expires_in":5184000}"#).unwrap(),
            &ConnectRequest {
                base_url: None,
                target: Some("urn:li:person:abc".into()),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(bad.class(), "rejected");
}

#[tokio::test]
async fn a_post_goes_out_public_with_escaped_commentary_and_versioned_headers() {
    let fake = FakeLinkedin::start().await;
    let member = fake.add_member("Kettle Co");
    let account = member_account(&fake, &member);
    let text = "Stop using the K-200 (lot #42) kettle_now! Info: https://example.org/recall?a=1&b=2 @team *urgent* ~x~ [1] {y} <z> a|b \\";

    let published = connector(&fake)
        .publish(&account, &post(text))
        .await
        .unwrap();

    let posts = fake.posts();
    assert_eq!(posts.len(), 1);
    let stored = &posts[0];
    assert_eq!(
        stored.commentary,
        "Stop using the K-200 \\(lot \\#42\\) kettle\\_now! Info: https://example.org/recall?a=1&b=2 \\@team \\*urgent\\* \\~x\\~ \\[1\\] \\{y\\} \\<z\\> a\\|b \\\\"
    );
    assert_eq!(stored.visibility, "PUBLIC");
    assert_eq!(stored.version, VERSION);
    assert_eq!(stored.author, member.urn);
    assert!(stored.urn.starts_with("urn:li:share:"));
    assert_eq!(published.remote_id, stored.urn);
    assert_eq!(
        published.remote_url.as_deref(),
        Some(format!("https://www.linkedin.com/feed/update/{}", stored.urn).as_str())
    );
    assert_eq!(published.pause_until, None);
    assert_eq!(fake.missing_restli_headers(), 0);
}

#[tokio::test]
async fn a_thread_is_a_post_and_comments_on_it_and_all_can_be_deleted() {
    let fake = FakeLinkedin::start().await;
    let member = fake.add_member("Kettle Co");
    let org = fake.add_organization(&member.sub);
    let account = org_account(&fake, &member, &org);
    let linkedin = connector(&fake);

    let root = linkedin
        .publish(&account, &post("Part 1 (of 3)"))
        .await
        .unwrap();
    let mut parent = root.remote_id.clone();
    let mut parts = Vec::new();
    for (i, text) in ["Part 2 #update", "Part 3"].iter().enumerate() {
        let part = kit::thread_part(text, i + 1, Some((&root.remote_id, &parent)));
        let published = linkedin.publish(&account, &part).await.unwrap();
        let (post_urn, _) = parse_comment_urn(&published.remote_id).unwrap();
        assert_eq!(post_urn, root.remote_id);
        assert!(published
            .remote_url
            .as_deref()
            .unwrap()
            .contains("?commentUrn=urn%3Ali%3Acomment%3A"));
        parent = published.remote_id.clone();
        parts.push(published);
    }

    let comments = fake.comments();
    assert_eq!(comments.len(), 2);
    for (comment, published) in comments.iter().zip(&parts) {
        assert_eq!(
            comment.object, root.remote_id,
            "every part comments on the root"
        );
        assert_eq!(comment.actor, org);
        assert_eq!(
            published.remote_id,
            format!("urn:li:comment:({},{})", root.remote_id, comment.id)
        );
    }
    assert_eq!(
        comments[0].text, "Part 2 #update",
        "comments are plain text"
    );
    assert_eq!(fake.posts()[0].commentary, "Part 1 \\(of 3\\)");

    linkedin
        .delete(&account, &parts[1].remote_id)
        .await
        .unwrap();
    assert!(fake.comments()[1].deleted);
    assert!(!fake.comments()[0].deleted);
    linkedin
        .delete(&account, &parts[1].remote_id)
        .await
        .expect("a comment already gone counts as deleted");
    linkedin.delete(&account, &root.remote_id).await.unwrap();
    assert!(fake.posts()[0].deleted);
    linkedin
        .delete(&account, &root.remote_id)
        .await
        .expect("a post already gone counts as deleted");
    let bad = linkedin.delete(&account, "12345").await.unwrap_err();
    assert_eq!(bad.class(), "rejected");
}

#[tokio::test]
async fn an_image_is_uploaded_and_attached_with_its_alt_text() {
    let fake = FakeLinkedin::start().await;
    let member = fake.add_member("Kettle Co");
    let account = member_account(&fake, &member);
    let mut with_image = post("See the affected lot numbers.");
    with_image.media = vec![MediaItem {
        url: fake.image_url(),
        alt: Some("A kettle label with the lot number".into()),
        content_type: Some("image/jpeg".into()),
    }];

    connector(&fake)
        .publish(&account, &with_image)
        .await
        .unwrap();

    let images = fake.images();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].owner, member.urn);
    assert_eq!(
        images[0].bytes.as_deref(),
        Some(FakeLinkedin::image_bytes().as_slice())
    );
    assert_eq!(images[0].content_type.as_deref(), Some("image/jpeg"));
    let stored = &fake.posts()[0];
    assert_eq!(stored.image.as_deref(), Some(images[0].urn.as_str()));
    assert_eq!(
        stored.alt_text.as_deref(),
        Some("A kettle label with the lot number")
    );
}

#[tokio::test]
async fn an_expired_token_is_refreshed_once_and_the_refresh_token_keeps_its_expiry() {
    let fake = FakeLinkedin::start().await;
    let member = fake.add_member("Kettle Co");
    let refresh_expires = "2027-01-01T00:00:00Z";
    let (access, refresh, account) = refreshable_account(
        &fake,
        &member,
        &[
            ("expires_at", "2099-01-01T00:00:00Z"),
            ("refresh_expires_at", refresh_expires),
        ],
    );
    fake.expire_token(&access);

    connector(&fake)
        .publish(&account, &post("After expiry"))
        .await
        .unwrap();

    assert_eq!(fake.refreshes(), 1);
    assert_eq!(fake.posts().len(), 1);
    let new_access = stored(&account, "access_token").await.unwrap();
    assert_ne!(new_access, access);
    assert_eq!(
        stored(&account, "refresh_token").await.as_deref(),
        Some(refresh.as_str())
    );
    assert_eq!(
        stored(&account, "refresh_expires_at").await.as_deref(),
        Some(refresh_expires),
        "a refresh does not extend the refresh token"
    );
    assert_eq!(
        days_from_now(time(&stored(&account, "expires_at").await.unwrap())),
        60
    );
    assert!(account.credentials.lock().await.take_changed());

    // The scheduled refresh renews again and returns the new expiry.
    let expiry = connector(&fake).refresh(&account).await.unwrap().unwrap();
    assert_eq!(days_from_now(expiry), 60);
    assert_eq!(fake.refreshes(), 2);

    // A dead refresh token means reconnecting.
    fake.revoke_refresh_token(&refresh);
    let current = stored(&account, "access_token").await.unwrap();
    fake.expire_token(&current);
    let error = connector(&fake)
        .publish(&account, &post("Again"))
        .await
        .unwrap_err();
    assert_eq!(error.class(), "auth_revoked", "{error}");
    assert!(!error.to_string().contains(&refresh));
}

#[tokio::test]
async fn a_token_known_to_be_expired_is_refreshed_before_the_call() {
    let fake = FakeLinkedin::start().await;
    let member = fake.add_member("Kettle Co");
    let (_, _, account) =
        refreshable_account(&fake, &member, &[("expires_at", "2020-01-01T00:00:00Z")]);
    connector(&fake).check(&account).await.unwrap();
    assert_eq!(fake.refreshes(), 1);
    assert_eq!(fake.requests_to("/v2/userinfo"), 1, "no failed call first");
    assert!(stored(&account, "refresh_expires_at").await.is_some());
}

#[tokio::test]
async fn without_a_refresh_token_an_expired_token_means_reconnecting() {
    let fake = FakeLinkedin::start().await;
    let member = fake.add_member("Kettle Co");
    let account = account_with_expiry(&fake, &member, "2099-01-01T00:00:00Z");
    // Nothing to renew: the stored expiry is returned.
    assert_eq!(
        connector(&fake).refresh(&account).await.unwrap(),
        Some(time("2099-01-01T00:00:00Z"))
    );
    fake.expire_token(&member.access_token);
    let error = connector(&fake)
        .publish(&account, &post("hi"))
        .await
        .unwrap_err();
    assert_eq!(
        error,
        ConnectorError::AuthRevoked {
            message: "the LinkedIn token expired and LinkedIn gives this app no refresh token: reconnect the account".into(),
            status: Some(401),
        }
    );
    assert_eq!(fake.refreshes(), 0);

    let expired = account_with_expiry(&fake, &member, "2020-01-01T00:00:00Z");
    let error = connector(&fake).refresh(&expired).await.unwrap_err();
    kit::assert_error(&error, "auth_revoked", "no refresh token");
}

/// A new token of `member` with a refresh token, and the account holding
/// both (and `extra`): returns the access token, the refresh token, the account.
fn refreshable_account(
    fake: &FakeLinkedin,
    member: &FakeMember,
    extra: &[(&str, &str)],
) -> (String, String, AccountSession) {
    let (access, refresh) = fake.issue_token(&member.sub, &["openid", "w_member_social"], true);
    let refresh = refresh.unwrap();
    let mut values = vec![
        ("access_token", access.as_str()),
        ("author_urn", member.urn.as_str()),
        ("refresh_token", refresh.as_str()),
    ];
    values.extend_from_slice(extra);
    let account = account(fake, &values);
    (access, refresh, account)
}

fn account_with_expiry(fake: &FakeLinkedin, member: &FakeMember, at: &str) -> AccountSession {
    account(
        fake,
        &[
            ("access_token", &member.access_token),
            ("author_urn", &member.urn),
            ("expires_at", at),
        ],
    )
}

#[tokio::test]
async fn revoked_tokens_and_missing_permissions_are_told_apart() {
    let fake = FakeLinkedin::start().await;
    let member = fake.add_member("Kettle Co");
    let other = fake.add_member("Someone Else");
    let foreign_org = fake.add_organization(&other.sub);
    let linkedin = connector(&fake);

    // Posting as an organization the member has no role on: permission missing.
    let not_admin = org_account(&fake, &member, &foreign_org);
    let error = linkedin.publish(&not_admin, &post("hi")).await.unwrap_err();
    assert_eq!(error.class(), "rejected");
    assert_eq!(error.status(), Some(403));
    assert!(
        error.to_string().contains("Not enough permissions"),
        "{error}"
    );

    let account = member_account(&fake, &member);
    fake.revoke_token(&member.access_token);
    let error = linkedin.publish(&account, &post("hi")).await.unwrap_err();
    assert_eq!(error.class(), "auth_revoked");
    assert_eq!(error.status(), Some(401));
    assert!(
        error.to_string().contains("REVOKED_ACCESS_TOKEN"),
        "{error}"
    );
    assert!(!error.to_string().contains(&member.access_token));
    assert_eq!(
        linkedin.check(&account).await.unwrap_err().class(),
        "auth_revoked"
    );

    let unknown = member_account(
        &fake,
        &FakeMember {
            access_token: "not-a-token".into(),
            ..member.clone()
        },
    );
    let error = linkedin.publish(&unknown, &post("hi")).await.unwrap_err();
    kit::assert_error(&error, "auth_revoked", "INVALID_ACCESS_TOKEN");
    assert!(fake.posts().is_empty());
}

#[tokio::test]
async fn rate_limits_wait_until_midnight_utc_unless_retry_after_says_otherwise() {
    let fake = FakeLinkedin::start().await;
    let member = fake.add_member("Kettle Co");
    let account = member_account(&fake, &member);
    let linkedin = connector(&fake);

    fake.rate_limit_next(1, None);
    let error = linkedin.publish(&account, &post("hi")).await.unwrap_err();
    let now = Utc::now();
    let midnight = (now.date_naive() + chrono::Duration::days(1))
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    let (retry_after, status, _) = kit::rate_limited(&error);
    assert_eq!(status, Some(429));
    let expected = (midnight - now).num_seconds() as f64;
    assert!(
        (retry_after.as_secs_f64() - expected).abs() < 5.0,
        "{retry_after:?}"
    );

    fake.rate_limit_next(1, Some(30));
    match linkedin.publish(&account, &post("hi")).await.unwrap_err() {
        ConnectorError::RateLimited { retry_after, .. } => {
            assert_eq!(retry_after, Duration::from_secs(30))
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }

    fake.fail_next(1, 503);
    let error = linkedin.publish(&account, &post("hi")).await.unwrap_err();
    assert_eq!(error.class(), "transient");
    assert!(fake.posts().is_empty());
    linkedin.publish(&account, &post("hi")).await.unwrap();
    assert_eq!(fake.posts().len(), 1);
}

#[tokio::test]
async fn after_a_lost_answer_reconciliation_finds_the_post_without_duplicating_it() {
    let fake = FakeLinkedin::start().await;
    let member = fake.add_member("Kettle Co");
    let account = member_account(&fake, &member);
    let linkedin = connector(&fake);

    // Member posts cannot be read (r_member_social is restricted): the
    // connector sends again, and LinkedIn's duplicate answer names the post.
    let first = post("Boil water until further notice.");
    fake.drop_after_store_next(1);
    let error = linkedin.publish(&account, &first).await.unwrap_err();
    assert_eq!(error.class(), "unknown", "{error}");
    let found = linkedin.reconcile(&account, &first).await.unwrap().unwrap();
    assert_eq!(fake.posts().len(), 1);
    assert_eq!(found.remote_id, fake.posts()[0].urn);
    assert_eq!(fake.post_requests(), 2);

    // Past the deadline it never sends again.
    let mut late = post("Never sent");
    late.deadline = Utc::now() - chrono::Duration::minutes(1);
    let error = linkedin.reconcile(&account, &late).await.unwrap_err();
    assert_eq!(error.class(), "unknown");
    assert_eq!(fake.post_requests(), 2);

    // A retry after a lost answer (publish again) is recognised too.
    let second = post("Second notice.");
    fake.drop_after_store_next(1);
    linkedin.publish(&account, &second).await.unwrap_err();
    fake.set_member_posts_readable(true);
    let again = linkedin.publish(&account, &second).await.unwrap();
    assert_eq!(fake.posts().len(), 2);
    assert_eq!(again.remote_id, fake.posts()[1].urn);

    // An older identical post is not ours.
    let mut old_text = post("Second notice.");
    old_text.first_attempt_at = Utc::now() + chrono::Duration::minutes(10);
    let error = linkedin.publish(&account, &old_text).await.unwrap_err();
    kit::assert_error(&error, "rejected", "duplicate");
}

#[tokio::test]
async fn reconciliation_lists_recent_posts_and_comments_when_it_may_read_them() {
    let fake = FakeLinkedin::start().await;
    let member = fake.add_member("Kettle Co");
    let org = fake.add_organization(&member.sub);
    let account = org_account(&fake, &member, &org);
    let linkedin = connector(&fake);

    let root = post("Plant closed (today) #safety");
    fake.drop_after_store_next(1);
    assert_eq!(
        linkedin.publish(&account, &root).await.unwrap_err().class(),
        "unknown"
    );
    let found = linkedin.reconcile(&account, &root).await.unwrap().unwrap();
    assert_eq!(found.remote_id, fake.posts()[0].urn);
    assert_eq!(fake.post_requests(), 1, "found by listing, not sent again");
    assert_eq!(
        linkedin
            .reconcile(&account, &post("never sent"))
            .await
            .unwrap(),
        None
    );

    let reply = kit::thread_part("More soon.", 1, Some((&found.remote_id, &found.remote_id)));
    assert_eq!(linkedin.reconcile(&account, &reply).await.unwrap(), None);
    fake.drop_after_store_next(1);
    assert_eq!(
        linkedin
            .publish(&account, &reply)
            .await
            .unwrap_err()
            .class(),
        "unknown"
    );
    let comment = linkedin.reconcile(&account, &reply).await.unwrap().unwrap();
    let stored = &fake.comments()[0];
    assert_eq!(
        comment.remote_id,
        format!("urn:li:comment:({},{})", found.remote_id, stored.id)
    );
    assert_eq!(fake.comments().len(), 1);
    linkedin.check(&account).await.unwrap();
}

#[tokio::test]
async fn an_unknown_linkedin_version_is_rejected_with_a_hint() {
    let fake = FakeLinkedin::start().await;
    let member = fake.add_member("Kettle Co");
    let account = member_account(&fake, &member);
    let old = Linkedin::new(reqwest::Client::new(), app(&fake), "202101");
    let error = old.publish(&account, &post("hi")).await.unwrap_err();
    assert_eq!(error.status(), Some(426));
    kit::assert_error(&error, "rejected", "HERALD_LINKEDIN_VERSION");
    fake.set_accepted_versions(&["202101"]);
    old.publish(&account, &post("hi")).await.unwrap();
}

#[tokio::test]
async fn concurrent_publications_with_an_expired_token_refresh_once() {
    let fake = FakeLinkedin::start().await;
    let member = fake.add_member("Kettle Co");
    let (access, _, account) = refreshable_account(&fake, &member, &[]);
    fake.expire_token(&access);
    let linkedin = connector(&fake);
    let posts: Vec<Post> = (0..6).map(|i| post(&format!("Update {i}"))).collect();
    let results =
        futures_util::future::join_all(posts.iter().map(|p| linkedin.publish(&account, p))).await;
    for result in results {
        result.unwrap();
    }
    assert_eq!(
        fake.refreshes(),
        1,
        "one refresh under the credentials lock"
    );
    assert_eq!(fake.posts().len(), 6);
}

// ---------------------------------------------------------------------------------------------
// Replies (issue 5)
// ---------------------------------------------------------------------------------------------

const BEA: &str = "urn:li:person:bea";
const CARL: &str = "urn:li:person:carl";
const DAN: &str = "urn:li:person:dan";

/// An organization account of a fake, its connector, and a published
/// three-part thread (a post and two comments).
async fn org_thread() -> (FakeLinkedin, AccountSession, Linkedin, Vec<String>) {
    let fake = FakeLinkedin::start().await;
    let member = fake.add_member("Kettle Co");
    let org = fake.add_organization(&member.sub);
    let account = org_account(&fake, &member, &org);
    let linkedin = connector(&fake);
    let ids = kit::publish_thread(&linkedin, &account, &kit::THREAD).await;
    (fake, account, linkedin, ids)
}

/// The stored comment a comment URN names.
fn stored_comment(fake: &FakeLinkedin, urn: &str) -> herald::fakes::linkedin::FakeComment {
    let (_, id) = parse_comment_urn(urn).unwrap();
    fake.comments().into_iter().find(|c| c.id == id).unwrap()
}

/// Polls with `poller` from `cursor` until a poll finds nothing (at most
/// `polls` times), each poll within ten requests: the ids found, the
/// cursor reached and the number of polls.
async fn poll_until_quiet(
    fake: &FakeLinkedin,
    poller: &kit::Poller<'_, Linkedin>,
    mut cursor: Option<String>,
    polls: usize,
) -> (Vec<String>, Option<String>, usize) {
    let mut got = Vec::new();
    for n in 1..=polls {
        let before = fake.requests_to("/rest/socialActions/");
        let page = poller.poll(cursor.clone()).await;
        assert!(fake.requests_to("/rest/socialActions/") - before <= 10);
        if page.replies.is_empty() {
            return (got, cursor, n);
        }
        got.extend(kit::reply_ids(&page));
        cursor = page.cursor.or(cursor);
    }
    panic!("the polls do not converge: {got:?}");
}

#[tokio::test]
async fn comments_and_replies_to_comments_come_oldest_first_then_only_new_ones() {
    let (fake, account, linkedin, ids) = org_thread().await;
    let poller = kit::Poller::new(&linkedin, &account, &ids);
    let a = fake.add_reply(&ids[0], BEA, "Is tap water safe?");
    let b = fake.add_reply(&ids[2], CARL, "Which Friday?");
    let c = fake.add_reply(&a, DAN, "Boil it, Bea.");
    // A reply to a reply goes under the first-level comment (two levels).
    let d = fake.add_reply(&c, CARL, "Thanks Dan.");
    let first = poller.poll(None).await;
    // The organization's own comments are not replies; a reply to a part
    // names it as Herald does.
    kit::assert_replies(
        &first,
        &[
            (&a, &ids[0], BEA, "Is tap water safe?"),
            (&b, &ids[2], CARL, "Which Friday?"),
            (&c, &a, DAN, "Boil it, Bea."),
            (&d, &a, CARL, "Thanks Dan."),
        ],
    );
    let comments = fake.comments();
    for reply in &first.replies {
        let stored = comments.iter().find(|c| c.urn == reply.remote_id).unwrap();
        assert_eq!(
            reply.created_at.timestamp_millis(),
            stored.created_at.timestamp_millis()
        );
        let url = reply.url.as_deref().unwrap();
        assert!(
            url.starts_with(&format!(
                "https://www.linkedin.com/feed/update/{}?commentUrn=",
                ids[0]
            )),
            "{url}"
        );
    }
    assert!(first.replies[2]
        .url
        .as_deref()
        .unwrap()
        .contains("&replyUrn="));
    let cursor = first.cursor.clone().expect("a cursor");

    // Nothing new: only the post's comment counts are read.
    let before = fake.requests_to("/rest/socialActions/");
    let none = poller.quiet(Some(cursor.clone())).await;
    assert_eq!(none.cursor, None);
    assert_eq!(fake.requests_to("/rest/socialActions/") - before, 1);

    // A new reply to the OLD first comment and a new comment on the post.
    let e = fake.add_reply(&a, BEA, "Is that still true?");
    let f = fake.add_reply(&ids[0], DAN, "Refunds where?");
    let second = poller.poll(Some(cursor)).await;
    kit::assert_replies(
        &second,
        &[
            (&e, &a, BEA, "Is that still true?"),
            (&f, &ids[0], DAN, "Refunds where?"),
        ],
    );
    poller.quiet(second.cursor.clone()).await;
    assert_eq!(fake.missing_restli_headers(), 0);
}

#[tokio::test]
async fn many_pages_are_read_in_polls_of_at_most_ten_requests_without_loss() {
    let (fake, account, linkedin, ids) = org_thread().await;
    let poller = kit::Poller::new(&linkedin, &account, &ids);
    fake.set_page_size(2);
    let a = fake.add_reply(&ids[0], BEA, "First");
    let mut expected = vec![a.clone()];
    for n in 0..5 {
        expected.push(fake.add_reply(&a, CARL, &format!("Reply {n}")));
    }
    for n in 0..4 {
        expected.push(fake.add_reply(&ids[0], DAN, &format!("Comment {n}")));
    }
    let (mut got, cursor, polls) = poll_until_quiet(&fake, &poller, None, 9).await;
    // Comments 2 and 3 of the page size: several requests in one poll.
    assert_eq!(polls, 2, "everything in the first poll");
    got.sort();
    expected.sort();
    assert_eq!(got, expected);

    // A page of one: the budget runs out, the next polls go on.
    fake.set_page_size(1);
    let mut more = Vec::new();
    for n in 0..12 {
        more.push(fake.add_reply(&ids[0], BEA, &format!("More {n}")));
    }
    more.push(fake.add_reply(&a, DAN, "Late reply"));
    let (mut got, _, polls) = poll_until_quiet(&fake, &poller, cursor, 7).await;
    assert!(polls > 2, "the budget spreads them over polls: {polls}");
    got.sort();
    more.sort();
    assert_eq!(got, more, "every new comment once");
}

#[tokio::test]
async fn reading_comments_is_rate_limited_failed_revoked_and_needs_the_read_permission() {
    let (fake, account, linkedin, ids) = org_thread().await;
    let poller = kit::Poller::new(&linkedin, &account, &ids);
    fake.add_reply(&ids[0], BEA, "Hello?");

    fake.rate_limit_reads_next(1, Some(30));
    let wait = Duration::from_secs(30)..=Duration::from_secs(30);
    kit::assert_throttled(&poller.fail(None).await, 429, wait, "");
    // Without a Retry-After: until midnight UTC.
    fake.rate_limit_reads_next(1, None);
    let wait = Duration::ZERO..=Duration::from_secs(86_400);
    kit::assert_throttled(&poller.fail(None).await, 429, wait, "");
    fake.fail_reads_next(1, 503);
    kit::assert_transient(&poller.fail(None).await, 503);
    assert_eq!(poller.poll(None).await.replies.len(), 1);
    let token = stored(&account, "access_token").await.unwrap();
    fake.revoke_token(&token);
    kit::assert_revoked(&poller.fail(None).await, "", &token);

    // A member's post: its comments need the restricted r_member_social.
    let member = fake.add_member("Ada");
    let account = member_account(&fake, &member);
    let root = linkedin.publish(&account, &post("Mine.")).await.unwrap();
    let error = kit::Poller::new(&linkedin, &account, &[root.remote_id])
        .fail(None)
        .await;
    kit::assert_error(&error, "rejected", "permission");
}

#[tokio::test]
async fn an_answer_is_a_reply_to_the_first_level_comment_and_is_reconciled_once() {
    let (fake, account, linkedin, ids) = org_thread().await;
    let question = fake.add_reply(&ids[0], BEA, "Refund?");
    let follow_up = fake.add_reply(&question, CARL, "Me too?");

    let sent = linkedin
        .publish(&account, &kit::answer(&ids[0], &question, "Yes, Bea."))
        .await
        .unwrap();
    let (post_urn, _) = parse_comment_urn(&sent.remote_id).unwrap();
    assert_eq!(post_urn, ids[0]);
    let stored_answer = stored_comment(&fake, &sent.remote_id);
    assert_eq!(stored_answer.parent.as_deref(), Some(question.as_str()));
    assert_eq!(stored_answer.object, ids[0]);

    // Answering a reply: under its first-level comment.
    let sent = linkedin
        .publish(
            &account,
            &kit::answer(&ids[0], &follow_up, "You too, Carl."),
        )
        .await
        .unwrap();
    let stored_answer = stored_comment(&fake, &sent.remote_id);
    assert_eq!(stored_answer.parent.as_deref(), Some(question.as_str()));

    // A lost answer is found among the comment's replies, not sent twice.
    let lost = kit::answer(&ids[0], &question, "Bring the receipt.");
    let found = kit::lost_then_reconciled(&linkedin, &linkedin, &account, &lost, || {
        fake.drop_after_store_next(1)
    })
    .await;
    let copies: Vec<_> = fake
        .comments()
        .into_iter()
        .filter(|c| c.text == "Bring the receipt.")
        .collect();
    assert_eq!(copies.len(), 1);
    assert_eq!(parse_comment_urn(&found.remote_id).unwrap().1, copies[0].id);

    // The organization's answers are not collected as replies.
    let page = kit::Poller::new(&linkedin, &account, &ids).poll(None).await;
    let authors: Vec<&str> = page.replies.iter().map(|r| r.author.as_str()).collect();
    assert_eq!(authors, [BEA, CARL]);
}
