//! Telegram comments (shared/platforms.md §8.6) against the fake Bot API:
//! one `getUpdates` consumer per bot stores the discussion groups' messages
//! with the bot's offset, and each delivery's poll reads its comments from
//! the store (`herald::replies::telegram`). Runs on SQLite, or on
//! PostgreSQL when HERALD_TEST_DATABASE_URL is set.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use diesel::prelude::*;
use herald::accounts::sessions::Sessions;
use herald::accounts::store::{self as account_store, AccountRow, NewAccount};
use herald::crypto::SecretKey;
use herald::db::{self, DatabaseUrl, DbPool};
use herald::fakes::telegram::{FakeTelegram, FakeTelegramConfig};
use herald::platforms::telegram::Telegram;
use herald::platforms::{AccountSession, Connector, Platform, Post, ReplyPage, ReplyTarget};
use herald::replies::telegram::{consume_updates, offset_of, replies_for, Consumed};
use serde_json::{json, Value};

use crate::helpers::{self, LocalServer, TestDatabase};
use crate::kit::{self, post};

/// A migrated database, the sessions over it, and the connector.
struct Env {
    pool: DbPool,
    key: SecretKey,
    sessions: Arc<Sessions>,
    telegram: Telegram,
    _db: TestDatabase,
}

impl Env {
    fn new() -> Env {
        let (url, guard) = helpers::fresh_database();
        let pool = db::pool(
            &DatabaseUrl::parse(&url).unwrap(),
            4,
            Duration::from_secs(10),
        )
        .unwrap();
        db::run_migrations(&mut pool.get().unwrap()).unwrap();
        let key = SecretKey::generate();
        let sessions = Sessions::new(
            pool.clone(),
            SecretKey::from_base64(&key.to_base64()).unwrap(),
        );
        Env {
            pool,
            key,
            sessions,
            // The settings' API URL is a dead address: the account's base URL wins.
            telegram: Telegram::new(reqwest::Client::new(), "http://127.0.0.1:9"),
            _db: guard,
        }
    }

    /// A Telegram account posting to `chat` as the bot of `token` at `base`.
    fn account(&self, name: &str, base: &str, token: &str, chat: &str) -> AccountRow {
        let plain = serde_json::to_vec(&json!({"bot_token": token, "chat_id": chat})).unwrap();
        let new = NewAccount {
            platform: Platform::Telegram,
            name: name.into(),
            base_url: Some(base.into()),
            max_characters: None,
            token_expires_at: None,
        };
        let mut conn = self.pool.get().unwrap();
        account_store::create(&mut conn, "test", new, |id| self.key.seal(&plain, id)).unwrap()
    }

    fn session(&self, account: &AccountRow) -> Arc<AccountSession> {
        self.sessions.get(account).unwrap()
    }

    async fn consume(&self) -> Consumed {
        consume_updates(&self.pool, &self.sessions, &self.telegram)
            .await
            .unwrap()
    }

    fn replies(
        &self,
        account: &AccountRow,
        root: &str,
        own: &[&str],
        cursor: Option<&str>,
    ) -> ReplyPage {
        let own: Vec<String> = own.iter().map(|s| s.to_string()).collect();
        let mut conn = self.pool.get().unwrap();
        replies_for(&mut conn, &account.id, root, &own, cursor).unwrap()
    }

    fn stored(&self) -> i64 {
        use herald::db::schema::telegram_comments;
        let mut conn = self.pool.get().unwrap();
        telegram_comments::table
            .count()
            .get_result(&mut conn)
            .unwrap()
    }
}

async fn fake() -> FakeTelegram {
    FakeTelegram::start_with(FakeTelegramConfig {
        flood: None,
        ..FakeTelegramConfig::default()
    })
    .await
}

/// The updates the fake still holds for `token` (a read without `offset`
/// confirms nothing).
async fn pending(fake: &FakeTelegram, token: &str) -> Vec<Value> {
    let answer: Value = reqwest::Client::new()
        .post(format!("{}/bot{token}/getUpdates", fake.base_url()))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["result"].as_array().unwrap().clone()
}

fn message_id(remote_id: &str) -> i64 {
    remote_id.rsplit_once(':').unwrap().1.parse().unwrap()
}

#[tokio::test]
async fn comments_in_the_discussion_group_become_replies_oldest_first_with_their_parents() {
    let env = Env::new();
    let fake = fake().await;
    let token = fake.add_bot("herald_bot");
    let channel = fake.add_channel(&token, Some("kettle_news"));
    let group = fake.add_discussion_group(&token, channel);
    let account = env.account("news", &fake.base_url(), &token, "@kettle_news");
    let session = env.session(&account);

    let parts = kit::publish_thread(&env.telegram, &session, &kit::THREAD[..2]).await;
    let (root, second) = (parts[0].clone(), parts[1].clone());
    let first = fake
        .add_reply(&root, "alice", "Is the tap water safe?")
        .unwrap();
    let on_second = fake.add_reply(&second, "bob", "Which streets?").unwrap();
    let nested = fake
        .add_reply(&first, "carol", "Same question here")
        .unwrap();
    // Herald answers the first comment; then the public answers Herald.
    let answer = env
        .telegram
        .publish(
            &session,
            &Post {
                reply_to: Some(ReplyTarget {
                    root_id: root.clone(),
                    parent_id: first.clone(),
                    answers_reply: true,
                }),
                ..post("Boil it for one minute.")
            },
        )
        .await
        .unwrap()
        .remote_id;
    let thanks = fake.add_reply(&answer, "alice", "Thanks!").unwrap();
    let before = Utc::now();

    let consumed = env.consume().await;
    assert!(consumed.failures.is_empty(), "{:?}", consumed.failures);
    assert_eq!(
        consumed.stored, 6,
        "two automatic forwards and four comments"
    );
    assert_eq!(fake.requests_to("getUpdates"), 1);

    let own = [root.as_str(), second.as_str(), answer.as_str()];
    let page = env.replies(&account, &root, &own, None);
    let got: Vec<(&str, Option<&str>, &str, &str)> = page
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
    assert_eq!(
        got,
        vec![
            (
                first.as_str(),
                Some(root.as_str()),
                "alice",
                "Is the tap water safe?"
            ),
            (
                on_second.as_str(),
                Some(second.as_str()),
                "bob",
                "Which streets?"
            ),
            (
                nested.as_str(),
                Some(first.as_str()),
                "carol",
                "Same question here"
            ),
            (thanks.as_str(), Some(answer.as_str()), "alice", "Thanks!"),
        ],
        "oldest first, each under what it answers; Herald's answer is not a reply"
    );
    assert!(page
        .replies
        .iter()
        .all(|r| r.remote_id.starts_with(&format!("{group}:"))));
    // The public channel's comment links.
    assert_eq!(
        page.replies[0].url.as_deref(),
        Some(
            format!(
                "https://t.me/kettle_news/{}?comment={}",
                message_id(&root),
                message_id(&first)
            )
            .as_str()
        )
    );
    assert_eq!(
        page.replies[1].url.as_deref(),
        Some(
            format!(
                "https://t.me/kettle_news/{}?comment={}",
                message_id(&second),
                message_id(&on_second)
            )
            .as_str()
        )
    );
    for reply in &page.replies {
        let age = (before - reply.created_at).num_seconds();
        assert!(
            (0..60).contains(&age),
            "created_at from the message date: {age} s"
        );
    }
    assert_eq!(page.cursor, Some(message_id(&thanks).to_string()));

    // Nothing new: nothing returned, and the cursor stays.
    let again = env.replies(&account, &root, &own, page.cursor.as_deref());
    assert!(again.replies.is_empty());
    assert_eq!(again.cursor, None);

    // The next run confirms what was stored: the fake no longer holds it.
    assert_eq!(
        pending(&fake, &token).await.len(),
        6,
        "not confirmed until the next call"
    );
    let second_run = env.consume().await;
    assert_eq!(second_run.stored, 0);
    assert!(
        pending(&fake, &token).await.is_empty(),
        "confirmed for good"
    );
    assert_eq!(env.stored(), 6, "stored once");

    // A new comment comes alone after the cursor.
    let late = fake
        .add_reply(&second, "dave", "Still no water on Elm St.")
        .unwrap();
    assert_eq!(env.consume().await.stored, 1);
    let next = env.replies(&account, &root, &own, page.cursor.as_deref());
    assert_eq!(next.replies.len(), 1);
    assert_eq!(next.replies[0].remote_id, late);
    assert_eq!(next.replies[0].parent_id.as_deref(), Some(second.as_str()));
    assert_eq!(next.cursor, Some(message_id(&late).to_string()));

    // Another statement's comments are not this one's.
    let other = env
        .telegram
        .publish(&session, &post("Roads closed north of the river."))
        .await
        .unwrap()
        .remote_id;
    fake.add_reply(&other, "erin", "Which roads?").unwrap();
    env.consume().await;
    let mine = env.replies(&account, &root, &own, next.cursor.as_deref());
    assert!(mine.replies.is_empty(), "{:?}", mine.replies);
    let theirs = env.replies(&account, &other, &[&other], None);
    assert_eq!(theirs.replies.len(), 1);
    assert_eq!(theirs.replies[0].author, "erin");
}

#[tokio::test]
async fn a_private_channel_links_the_comment_in_its_group_thread() {
    let env = Env::new();
    let fake = fake().await;
    let token = fake.add_bot("herald_bot");
    let channel = fake.add_channel(&token, None);
    let group = fake.add_discussion_group(&token, channel);
    let account = env.account("private", &fake.base_url(), &token, &channel.to_string());
    let root = env
        .telegram
        .publish(&env.session(&account), &post("Shelter open."))
        .await
        .unwrap()
        .remote_id;
    let comment = fake.add_reply(&root, "alice", "Where?").unwrap();
    env.consume().await;

    let page = env.replies(&account, &root, &[&root], None);
    assert_eq!(page.replies.len(), 1);
    let forward = fake
        .messages()
        .into_iter()
        .find(|m| m.forwarded_from.is_some())
        .unwrap();
    let internal = group.to_string().trim_start_matches("-100").to_string();
    assert_eq!(
        page.replies[0].url.as_deref(),
        Some(
            format!(
                "https://t.me/c/{internal}/{}?thread={}",
                message_id(&comment),
                forward.message_id
            )
            .as_str()
        )
    );
}

#[tokio::test]
async fn channels_sharing_one_bot_are_read_with_one_call_and_keep_their_own_comments() {
    let env = Env::new();
    let fake = fake().await;
    let shared = fake.add_bot("shared_bot");
    let north = fake.add_channel(&shared, Some("north_news"));
    let south = fake.add_channel(&shared, Some("south_news"));
    fake.add_discussion_group(&shared, north);
    fake.add_discussion_group(&shared, south);
    let other = fake.add_bot("other_bot");
    let east = fake.add_channel(&other, Some("east_news"));
    fake.add_discussion_group(&other, east);
    let base = fake.base_url();
    let accounts = [
        env.account("north", &base, &shared, "@north_news"),
        env.account("south", &base, &shared, "@south_news"),
        env.account("east", &base, &other, "@east_news"),
    ];
    let mut roots = Vec::new();
    for (account, words) in accounts.iter().zip(["North", "South", "East"]) {
        let root = env
            .telegram
            .publish(&env.session(account), &post(&format!("{words} update")))
            .await
            .unwrap()
            .remote_id;
        // Each channel's first post: the same message id in every channel.
        assert_eq!(message_id(&root), 1);
        fake.add_reply(&root, "alice", &format!("{words} question?"))
            .unwrap();
        roots.push(root);
    }

    let consumed = env.consume().await;
    assert!(consumed.failures.is_empty(), "{:?}", consumed.failures);
    assert_eq!(
        fake.requests_to("getUpdates"),
        2,
        "one call per bot, not per account"
    );
    // The shared bot's four messages for each of its two accounts, and two for east.
    assert_eq!(consumed.stored, 4 * 2 + 2);

    for ((account, root), words) in accounts.iter().zip(&roots).zip(["North", "South", "East"]) {
        let page = env.replies(account, root, &[root], None);
        let texts: Vec<&str> = page.replies.iter().map(|r| r.text.as_str()).collect();
        assert_eq!(
            texts,
            vec![format!("{words} question?")],
            "{}",
            account.name
        );
    }
    env.consume().await;
    assert!(pending(&fake, &shared).await.is_empty());
    assert!(pending(&fake, &other).await.is_empty());
}

#[tokio::test]
async fn a_failed_store_confirms_nothing_and_the_comments_come_again() {
    let env = Env::new();
    let fake = fake().await;
    let token = fake.add_bot("herald_bot");
    let channel = fake.add_channel(&token, Some("kettle_news"));
    fake.add_discussion_group(&token, channel);
    let account = env.account("news", &fake.base_url(), &token, "@kettle_news");
    let root = env
        .telegram
        .publish(&env.session(&account), &post("Boil water notice."))
        .await
        .unwrap()
        .remote_id;
    let comment = fake.add_reply(&root, "alice", "Until when?").unwrap();
    // A first run stores the forward and the comment and the offset after them.
    env.consume().await;
    let key = env
        .telegram
        .bot_access(&env.session(&account))
        .await
        .unwrap()
        .key();
    let offset = |env: &Env| {
        offset_of(&mut env.pool.get().unwrap(), &key)
            .unwrap()
            .unwrap()
            .next_offset
    };
    let stored_offset = offset(&env);
    let later = fake.add_reply(&comment, "bob", "And the south?").unwrap();

    // The store fails after the fetch (its table is gone for a moment).
    let rename = |from: &str, to: &str| {
        diesel::sql_query(format!("ALTER TABLE {from} RENAME TO {to}"))
            .execute(&mut env.pool.get().unwrap())
            .unwrap();
    };
    rename("telegram_comments", "telegram_comments_away");
    let failed = consume_updates(&env.pool, &env.sessions, &env.telegram).await;
    rename("telegram_comments_away", "telegram_comments");
    assert!(failed.is_err(), "a store failure fails the run");
    assert_eq!(
        fake.requests_to("getUpdates"),
        2,
        "the updates were fetched"
    );
    assert_eq!(offset(&env), stored_offset, "the offset did not move");
    assert_eq!(
        pending(&fake, &token).await.len(),
        1,
        "the first run's updates are confirmed, the new one is not"
    );

    let consumed = env.consume().await;
    assert_eq!(consumed.stored, 1);
    assert!(offset(&env) > stored_offset);
    let page = env.replies(&account, &root, &[&root], None);
    let ids: Vec<&str> = page.replies.iter().map(|r| r.remote_id.as_str()).collect();
    assert_eq!(ids, vec![comment.as_str(), later.as_str()]);
    assert_eq!(page.replies[1].parent_id.as_deref(), Some(comment.as_str()));
}

#[tokio::test]
async fn a_webhook_or_a_revoked_token_fails_that_bot_only() {
    let env = Env::new();
    let fake = fake().await;
    let base = fake.base_url();
    let mut accounts = Vec::new();
    let mut tokens = Vec::new();
    for name in ["hooked", "revoked", "fine"] {
        let token = fake.add_bot(name);
        let channel = fake.add_channel(&token, Some(&format!("{name}_news")));
        fake.add_discussion_group(&token, channel);
        let account = env.account(name, &base, &token, &format!("@{name}_news"));
        let root = env
            .telegram
            .publish(&env.session(&account), &post("Update"))
            .await
            .unwrap()
            .remote_id;
        fake.add_reply(&root, "alice", "Question?").unwrap();
        accounts.push(account);
        tokens.push(token);
    }
    fake.set_webhook(&tokens[0], true);
    fake.revoke(&tokens[1]);

    let consumed = env.consume().await;
    assert_eq!(consumed.stored, 2, "the working bot's forward and comment");
    assert_eq!(consumed.failures.len(), 2);
    let failure = |account: &AccountRow| {
        consumed
            .failures
            .iter()
            .find(|f| f.account_ids == vec![account.id.clone()])
            .unwrap_or_else(|| panic!("no failure for {}", account.name))
    };
    let hooked = &failure(&accounts[0]).error;
    kit::assert_error(hooked, "rejected", "webhook");
    assert_eq!(hooked.status(), Some(409));
    let revoked = &failure(&accounts[1]).error;
    assert_eq!(revoked.class(), "auth_revoked");
    assert_eq!(revoked.status(), Some(401));
    for failure in &consumed.failures {
        for token in &tokens {
            assert!(!failure.error.to_string().contains(token.as_str()));
        }
    }
    assert_eq!(
        pending(&fake, &tokens[2]).await.len(),
        2,
        "stored, confirmed next time"
    );
}

#[tokio::test]
async fn a_rate_limit_is_waited_out_before_the_next_call() {
    let env = Env::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let server = LocalServer::start("", move |listener| {
        actix_web::HttpServer::new(move || {
            let counter = counter.clone();
            actix_web::App::new().default_service(actix_web::web::to(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async {
                    actix_web::HttpResponse::TooManyRequests().json(json!({
                        "ok": false,
                        "error_code": 429,
                        "description": "Too Many Requests: retry after 2",
                        "parameters": {"retry_after": 2},
                    }))
                }
            }))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run()
    })
    .await;
    env.account(
        "news",
        &server.url,
        "123456:AAsecret_token-value",
        "@kettle_news",
    );

    let first = env.consume().await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let (retry_after, status, _) = kit::rate_limited(&first.failures[0].error);
    assert_eq!(retry_after, Duration::from_secs(2));
    assert_eq!(status, Some(429));

    // Inside the wait: no call at all.
    let waiting = env.consume().await;
    assert!(waiting.failures.is_empty());
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "no call before retry_after"
    );

    tokio::time::sleep(Duration::from_millis(2_100)).await;
    env.consume().await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "called again once the wait is over"
    );
}
