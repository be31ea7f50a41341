//! Builders shared by the connector-level tests: a `Post`, an
//! `AccountSession`, and the OAuth dance against a fake network (authorize,
//! approve, read the code from the redirect); for reply collection, a
//! [`Poller`] of one post's replies, the [`answer`] to a reply, and the
//! assertions on a [`ReplyPage`] and on a failed poll.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::time::Duration;

use chrono::{DateTime, Utc};
use herald::platforms::{
    AccountSession, Connector, ConnectorError, Credentials, MediaItem, OAuthApp, Platform, Post,
    Published, ReplyPage, ReplyQuery, ReplyTarget, TokenSet,
};

/// A three-part thread for the thread tests.
pub const THREAD: [&str; 3] = [
    "1/3 Boil water notice.",
    "2/3 Area: north.",
    "3/3 Until Friday.",
];

/// The redirect URI the OAuth tests register.
pub const REDIRECT: &str = "https://herald.example/v1/oauth/callback";

/// A post of `text` planned now: part 0 of crisis statement `statement-1`
/// ("Recall", English), a fresh delivery and idempotency key, two hours to go.
pub fn post(text: &str) -> Post {
    post_at(text, Utc::now())
}

/// [`post`], planned at `planned_at` (its first attempt is now).
pub fn post_at(text: &str, planned_at: DateTime<Utc>) -> Post {
    let now = Utc::now();
    Post {
        delivery_id: uuid::Uuid::now_v7().to_string(),
        statement_id: "statement-1".into(),
        statement_version: 1,
        title: "Recall".into(),
        kind: "crisis".into(),
        text: text.into(),
        language: Some("en".into()),
        planned_at,
        idempotency_key: uuid::Uuid::now_v7().to_string(),
        first_attempt_at: now,
        deadline: now + chrono::Duration::hours(2),
        ..Default::default()
    }
}

/// Part `part` of a thread, answering `reply_to` as `(root, parent)` if set.
pub fn thread_part(text: &str, part: usize, reply_to: Option<(&str, &str)>) -> Post {
    Post {
        part,
        reply_to: reply_to.map(|(root, parent)| ReplyTarget {
            root_id: root.into(),
            parent_id: parent.into(),
            answers_reply: false,
        }),
        ..post(text)
    }
}

/// Credentials holding these `(name, value)` pairs.
pub fn credentials(values: &[(&str, &str)]) -> Credentials {
    Credentials::new(
        values
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    )
}

/// The "Kettle Co" account `acc-<platform>` as Herald holds it: its base URL
/// (if any) and these credentials.
pub fn session(
    platform: Platform,
    base_url: Option<&str>,
    values: &[(&str, &str)],
) -> AccountSession {
    AccountSession::new(
        &format!("acc-{}", platform.as_str()),
        platform,
        "Kettle Co",
        base_url,
        credentials(values),
    )
}

/// A browser that does not follow redirects, to read the authorize answer.
pub fn no_redirect() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Where an approved authorization sent the browser back.
pub struct Approved {
    /// The whole `Location` of the 302.
    pub location: String,
    /// Its query: `code`, `state`, …
    pub query: BTreeMap<String, String>,
}

impl Approved {
    pub fn code(&self) -> &str {
        &self.query["code"]
    }

    pub fn state(&self) -> &str {
        &self.query["state"]
    }
}

/// Open the authorize `url` (the fakes approve at once): asserts the 302 and
/// reads the redirect's `Location`.
pub async fn approve(url: &str) -> Approved {
    let answer = no_redirect().get(url).send().await.expect("authorize page");
    assert_eq!(answer.status(), 302, "{url}");
    let location = answer.headers()["location"].to_str().unwrap().to_string();
    let query = reqwest::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    Approved { location, query }
}

/// Authorize `app` for `redirect` and approve: returns the code and the PKCE
/// verifier (if the app uses one).
pub async fn oauth_code(app: &OAuthApp, redirect: &str) -> (String, Option<String>) {
    let authorization = app.authorize(redirect, "s").unwrap();
    let approved = approve(&authorization.url).await;
    assert_eq!(approved.state(), "s");
    (approved.code().to_string(), authorization.verifier)
}

/// The next part of a thread whose earlier parts went out as `published`
/// (their remote ids, in order): it answers the last, rooted at the first.
pub fn next_part(text: &str, published: &[String]) -> Post {
    let reply_to = published
        .last()
        .map(|parent| (published[0].as_str(), parent.as_str()));
    thread_part(text, published.len(), reply_to)
}

/// An image at `url`, with alt text if given and no content type.
pub fn image(url: String, alt: Option<&str>) -> MediaItem {
    MediaItem {
        url,
        alt: alt.map(str::to_string),
        content_type: None,
    }
}

/// The wait, status and message of a `RateLimited` error (panics on any other).
pub fn rate_limited(error: &ConnectorError) -> (Duration, Option<u16>, &str) {
    match error {
        ConnectorError::RateLimited {
            retry_after,
            status,
            message,
        } => (*retry_after, *status, message),
        other => panic!("expected RateLimited, got {other:?}"),
    }
}

/// Asserts `error` is of this class and its message says `words`.
#[track_caller]
pub fn assert_error(error: &ConnectorError, class: &str, words: &str) {
    assert_eq!(error.class(), class, "{error:?}");
    assert!(error.to_string().contains(words), "{error}");
}

/// One run of the authorization code flow: the authorize URL and PKCE
/// verifier, where the browser was sent back, the code and its tokens.
pub struct CodeFlow {
    pub url: String,
    pub verifier: Option<String>,
    pub location: String,
    pub code: String,
    pub tokens: TokenSet,
}

/// Authorize `app` for `redirect` with the state `st4te`, approve, and
/// exchange the code (asserting the state comes back).
pub async fn code_flow(app: &OAuthApp, redirect: &str) -> CodeFlow {
    let authorization = app.authorize(redirect, "st4te").unwrap();
    let approved = approve(&authorization.url).await;
    assert_eq!(approved.state(), "st4te");
    let tokens = app
        .exchange_code(
            &reqwest::Client::new(),
            approved.code(),
            redirect,
            authorization.verifier.as_deref(),
        )
        .await
        .unwrap();
    CodeFlow {
        url: authorization.url,
        verifier: authorization.verifier,
        code: approved.code().to_string(),
        location: approved.location,
        tokens,
    }
}

/// Publish `texts` as a thread with `connector`, each part answering the one
/// before (see [`next_part`]); returns the parts' remote ids, in order.
pub async fn publish_thread(
    connector: &impl Connector,
    account: &AccountSession,
    texts: &[&str],
) -> Vec<String> {
    let mut ids = Vec::new();
    for text in texts {
        let published = connector
            .publish(account, &next_part(text, &ids))
            .await
            .unwrap();
        ids.push(published.remote_id);
    }
    ids
}

// --- replies ----------------------------------------------------------------------------------

/// The poll of the replies to a post whose parts went out as `ids` (the
/// first is the root), from `cursor`; published five minutes ago.
pub fn reply_query(ids: &[String], cursor: Option<String>) -> ReplyQuery {
    ReplyQuery {
        root_id: ids[0].clone(),
        own_ids: ids.to_vec(),
        cursor,
        published_at: Utc::now() - chrono::Duration::minutes(5),
    }
}

/// An answer from the follow-up queue: `text` in reply to the public's
/// reply `parent`, under the post `root`.
pub fn answer(root: &str, parent: &str, text: &str) -> Post {
    Post {
        reply_to: Some(ReplyTarget {
            root_id: root.into(),
            parent_id: parent.into(),
            answers_reply: true,
        }),
        ..post(text)
    }
}

/// The remote ids of a page's replies, in order.
pub fn reply_ids(page: &ReplyPage) -> Vec<String> {
    page.replies.iter().map(|r| r.remote_id.clone()).collect()
}

/// Asserts `page` holds exactly these `(id, parent, author, text)` replies,
/// in this order (a reply without a parent never matches).
#[track_caller]
pub fn assert_replies(page: &ReplyPage, expected: &[(&str, &str, &str, &str)]) {
    let got: Vec<_> = page
        .replies
        .iter()
        .map(|r| {
            (
                r.remote_id.as_str(),
                r.parent_id.as_deref(),
                r.author.as_str(),
                r.text.as_str(),
            )
        })
        .collect();
    let expected: Vec<_> = expected
        .iter()
        .map(|&(id, parent, author, text)| (id, Some(parent), author, text))
        .collect();
    assert_eq!(got, expected, "(id, parent, author, text) of each reply");
}

/// Asserts `error` is `RateLimited` with this HTTP `status`, a wait within
/// `wait` and a message saying `words`.
#[track_caller]
pub fn assert_throttled(
    error: &ConnectorError,
    status: u16,
    wait: RangeInclusive<Duration>,
    words: &str,
) {
    let (retry_after, got_status, message) = rate_limited(error);
    assert_eq!(got_status, Some(status), "{error:?}");
    assert!(
        wait.contains(&retry_after),
        "{retry_after:?} not in {wait:?}"
    );
    assert!(message.contains(words), "{message}");
}

/// Asserts `error` is `transient`, from an answer of this HTTP `status`.
#[track_caller]
pub fn assert_transient(error: &ConnectorError, status: u16) {
    assert_eq!(error.class(), "transient", "{error:?}");
    assert_eq!(error.status(), Some(status), "{error:?}");
}

/// Asserts `error` is `auth_revoked`, says `words`, and does not show the
/// revoked `token`.
#[track_caller]
pub fn assert_revoked(error: &ConnectorError, words: &str, token: &str) {
    assert_error(error, "auth_revoked", words);
    assert!(!error.to_string().contains(token), "{error}");
    assert!(!format!("{error:?}").contains(token), "{error:?}");
}

/// Publishes `post` with `publisher` while the fake, armed by `lose`,
/// stores it and drops the answer: asserts `reconciler` finds nothing
/// before, the publish fails as `unknown`, and `reconciler` then finds the
/// post, which it returns.
pub async fn lost_then_reconciled(
    publisher: &impl Connector,
    reconciler: &impl Connector,
    account: &AccountSession,
    post: &Post,
    lose: impl FnOnce(),
) -> Published {
    let before = reconciler.reconcile(account, post).await.unwrap();
    assert_eq!(before, None, "not sent yet");
    lose();
    let error = publisher.publish(account, post).await.unwrap_err();
    assert_eq!(error.class(), "unknown", "{error:?}");
    match reconciler.reconcile(account, post).await {
        Ok(Some(found)) => found,
        other => panic!("the lost post should be found, got {other:?}"),
    }
}

/// Polls the replies to one post (its parts `ids`) with one connector and
/// account, as reply collection does.
pub struct Poller<'a, C> {
    pub connector: &'a C,
    pub account: &'a AccountSession,
    pub ids: Vec<String>,
}

impl<'a, C: Connector> Poller<'a, C> {
    pub fn new(connector: &'a C, account: &'a AccountSession, ids: &[String]) -> Self {
        Poller {
            connector,
            account,
            ids: ids.to_vec(),
        }
    }

    /// One poll from `cursor` (see [`reply_query`]); it must succeed.
    pub async fn poll(&self, cursor: Option<String>) -> ReplyPage {
        let query = reply_query(&self.ids, cursor);
        match self.connector.replies(self.account, &query).await {
            Ok(page) => page,
            Err(error) => panic!("the poll of {query:?} failed: {error:?}"),
        }
    }

    /// One poll from `cursor` that must fail: its error.
    pub async fn fail(&self, cursor: Option<String>) -> ConnectorError {
        let query = reply_query(&self.ids, cursor);
        match self.connector.replies(self.account, &query).await {
            Ok(page) => panic!("the poll of {query:?} should fail, got {page:?}"),
            Err(error) => error,
        }
    }

    /// One poll from `cursor` that must find nothing new: its page.
    pub async fn quiet(&self, cursor: Option<String>) -> ReplyPage {
        let page = self.poll(cursor).await;
        assert!(page.replies.is_empty(), "nothing new: {:?}", page.replies);
        page
    }
}
