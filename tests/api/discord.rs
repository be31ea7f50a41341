//! The Discord connector against the fake Discord API (shared/platforms.md §9).

use std::time::Duration;

use chrono::Utc;
use herald::fakes::discord::{Bucket, FakeDiscord, FakeDiscordConfig, FakeWebhook};
use herald::platforms::discord::Discord;
use herald::platforms::{AccountSession, Connector, ConnectorError, MediaItem, Platform};

use crate::kit::{self, post};

fn session(hook: &FakeWebhook, bot: Option<(&str, Option<&str>)>) -> AccountSession {
    let mut values = vec![("webhook_url", hook.url.as_str())];
    if let Some((token, channel)) = bot {
        values.push(("bot_token", token));
        values.extend(channel.map(|channel| ("channel_id", channel)));
    }
    kit::session(Platform::Discord, None, &values)
}

fn connector(fake: &FakeDiscord) -> Discord {
    Discord::new(reqwest::Client::new(), &fake.api_url())
}

#[tokio::test]
async fn publishing_executes_the_webhook_with_wait_and_no_mentions_and_links_the_message() {
    let fake = FakeDiscord::start().await;
    let hook = fake.add_webhook("Kettle Co");
    let account = session(&hook, None);
    let text = "Stop using the K-200 kettle. @everyone https://example.org/recall";

    let published = connector(&fake)
        .publish(&account, &post(text))
        .await
        .unwrap();

    let messages = fake.messages();
    assert_eq!(messages.len(), 1);
    let message = &messages[0];
    assert_eq!(message.content, text);
    assert_eq!(message.webhook_id.as_deref(), Some(hook.id.as_str()));
    assert_eq!(
        message.allowed_mentions,
        Some(serde_json::json!({"parse": []})),
        "a statement never pings anyone"
    );
    assert_eq!(published.remote_id, message.id);
    assert_eq!(
        published.remote_url.as_deref(),
        Some(
            format!(
                "https://discord.com/channels/{}/{}/{}",
                hook.guild_id, hook.channel_id, message.id
            )
            .as_str()
        )
    );
    assert_eq!(published.pause_until, None, "4 of 5 remain in the bucket");
    // The guild id was learnt once, from the webhook object, and kept.
    {
        let mut credentials = account.credentials.lock().await;
        assert_eq!(credentials.get("guild_id"), Some(hook.guild_id.as_str()));
        assert_eq!(
            credentials.get("channel_id"),
            Some(hook.channel_id.as_str())
        );
        assert!(credentials.take_changed());
    }
    connector(&fake)
        .publish(&account, &post("again"))
        .await
        .unwrap();
    assert_eq!(fake.requests_to("GET", "/webhooks/"), 1);
}

#[tokio::test]
async fn a_thread_is_a_sequence_of_messages_and_reply_to_is_ignored() {
    let fake = FakeDiscord::start().await;
    let hook = fake.add_webhook("Kettle Co");
    let account = session(&hook, None);
    let ids = kit::publish_thread(&connector(&fake), &account, &kit::THREAD).await;
    let messages = fake.messages();
    let contents: Vec<&str> = messages.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(contents, kit::THREAD);
    let stored: Vec<&str> = messages.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(stored, ids.iter().map(String::as_str).collect::<Vec<_>>());
}

#[tokio::test]
async fn images_become_embeds_with_their_alt_text() {
    let fake = FakeDiscord::start().await;
    let hook = fake.add_webhook("Kettle Co");
    let mut p = post("Affected area:");
    p.media = vec![
        MediaItem {
            url: "https://example.org/map.png".into(),
            alt: Some("Map of the north district".into()),
            content_type: Some("image/png".into()),
        },
        MediaItem {
            url: "https://example.org/lot.jpg".into(),
            alt: None,
            content_type: None,
        },
    ];
    connector(&fake)
        .publish(&session(&hook, None), &p)
        .await
        .unwrap();
    let embeds = &fake.messages()[0].embeds;
    assert_eq!(embeds.len(), 2);
    assert_eq!(embeds[0]["image"]["url"], "https://example.org/map.png");
    assert_eq!(embeds[0]["description"], "Map of the north district");
    assert_eq!(embeds[1]["image"]["url"], "https://example.org/lot.jpg");
    assert!(embeds[1].get("description").is_none());
}

#[tokio::test]
async fn a_deleted_webhook_or_a_reset_token_means_reconnect_and_the_url_never_leaks() {
    let fake = FakeDiscord::start().await;
    let hook = fake.add_webhook("Kettle Co");
    let other = fake.add_webhook("Other");

    fake.reset_webhook_token(&hook.id).unwrap();
    let reset = connector(&fake)
        .publish(&session(&hook, None), &post("hi"))
        .await
        .unwrap_err();
    assert_eq!(reset.class(), "auth_revoked");
    assert_eq!(reset.status(), Some(401));
    assert!(reset.to_string().contains("50027"), "{reset}");

    fake.delete_webhook(&other.id);
    let deleted = connector(&fake)
        .publish(&session(&other, None), &post("hi"))
        .await
        .unwrap_err();
    assert_eq!(deleted.class(), "auth_revoked");
    assert_eq!(deleted.status(), Some(404));
    assert!(
        deleted.to_string().contains("10015 Unknown Webhook"),
        "{deleted}"
    );

    for error in [&reset, &deleted] {
        let text = error.to_string();
        assert!(
            !text.contains(&hook.token) && !text.contains(&other.token),
            "{text}"
        );
        assert!(!text.contains("/webhooks/"), "{text}");
    }
    assert!(fake.messages().is_empty());
}

#[tokio::test]
async fn a_webhook_url_that_is_not_one_is_refused_without_quoting_it() {
    let fake = FakeDiscord::start().await;
    let account = kit::session(
        Platform::Discord,
        None,
        &[("webhook_url", "https://example.org/hooks/secret-value")],
    );
    let error = connector(&fake)
        .publish(&account, &post("hi"))
        .await
        .unwrap_err();
    assert_eq!(error.class(), "auth_revoked");
    assert!(!error.to_string().contains("secret-value"), "{error}");
}

#[tokio::test]
async fn a_429_waits_the_bodys_retry_after_and_a_spent_bucket_pauses_the_account() {
    let fake = FakeDiscord::start_with(FakeDiscordConfig {
        webhook_bucket: Some(Bucket {
            limit: 2,
            window: Duration::from_secs(30),
        }),
        ..FakeDiscordConfig::default()
    })
    .await;
    let hook = fake.add_webhook("Kettle Co");
    let account = session(&hook, None);

    fake.rate_limit_next(1, Duration::from_millis(1500), false);
    let injected = connector(&fake)
        .publish(&account, &post("one"))
        .await
        .unwrap_err();
    let (retry_after, status, message) = kit::rate_limited(&injected);
    assert_eq!(status, Some(429));
    assert_eq!(retry_after, Duration::from_millis(1500));
    assert!(message.contains("You are being rate limited."), "{message}");

    let first = connector(&fake)
        .publish(&account, &post("one"))
        .await
        .unwrap();
    assert_eq!(first.pause_until, None);
    let second = connector(&fake)
        .publish(&account, &post("two"))
        .await
        .unwrap();
    let pause = second.pause_until.expect("remaining 0 pauses the account");
    let secs = (pause - Utc::now()).num_milliseconds() as f64 / 1000.0;
    assert!((25.0..=30.5).contains(&secs), "pause for {secs} s");

    let third = connector(&fake)
        .publish(&account, &post("three"))
        .await
        .unwrap_err();
    match third {
        ConnectorError::RateLimited { retry_after, .. } => {
            let secs = retry_after.as_secs_f64();
            assert!((25.0..=30.5).contains(&secs), "retry after {secs} s");
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    assert_eq!(fake.messages().len(), 2);
}

#[tokio::test]
async fn validation_permission_and_server_errors_are_classified() {
    let fake = FakeDiscord::start().await;
    let hook = fake.add_webhook("Kettle Co");
    let account = session(&hook, None);

    let long = connector(&fake)
        .publish(&account, &post(&"a".repeat(2001)))
        .await
        .unwrap_err();
    assert_eq!(long.class(), "rejected");
    assert_eq!(long.status(), Some(400));
    assert!(
        long.to_string()
            .contains("content: Must be 2000 or fewer in length."),
        "{long}"
    );

    fake.deny_next(1);
    let denied = connector(&fake)
        .publish(&account, &post("hi"))
        .await
        .unwrap_err();
    kit::assert_error(&denied, "rejected", "50013 Missing Permissions");

    fake.fail_next(1, 502);
    let down = connector(&fake)
        .publish(&account, &post("hi"))
        .await
        .unwrap_err();
    assert_eq!(down.class(), "transient");
    assert_eq!(down.status(), Some(502));
    assert!(fake.messages().is_empty());
}

#[tokio::test]
async fn after_a_dropped_connection_the_bot_finds_the_message_and_nothing_is_resent() {
    let fake = FakeDiscord::start().await;
    let hook = fake.add_webhook("Kettle Co");
    let bot = fake.add_bot();
    let account = session(&hook, Some((&bot, Some(&hook.channel_id))));
    let post = post("Evacuate building C now.");
    // Someone quotes the statement in the channel: not ours.
    fake.post_as_user(&hook.channel_id, "Evacuate building C now.");
    fake.drop_after_store_next(1);

    let error = connector(&fake).publish(&account, &post).await.unwrap_err();
    assert_eq!(error.class(), "unknown", "{error:?}");

    let found = connector(&fake)
        .reconcile(&account, &post)
        .await
        .unwrap()
        .expect("found");
    let ours = fake
        .messages()
        .into_iter()
        .find(|m| m.webhook_id.is_some())
        .unwrap();
    assert_eq!(found.remote_id, ours.id);
    assert_eq!(fake.execute_requests(), 1, "reconcile never sends");
    assert_eq!(fake.messages().len(), 2);
    assert_eq!(fake.requests_to("GET", "/channels/"), 1);
}

#[tokio::test]
async fn reconcile_is_none_when_the_message_is_absent_and_pages_through_a_busy_channel() {
    let fake = FakeDiscord::start().await;
    let hook = fake.add_webhook("Kettle Co");
    let bot = fake.add_bot();
    // No channel_id given: the connector asks the webhook which channel it posts in.
    let account = session(&hook, Some((&bot, None)));
    let mut p = post("Water is safe to drink again.");
    p.first_attempt_at = Utc::now() - chrono::Duration::minutes(30);
    // Before the attempt (less the margin): the same text, not ours.
    fake.seed_webhook_message(&hook.id, &p.text, Utc::now() - chrono::Duration::hours(2))
        .unwrap();
    for i in 0..150 {
        fake.post_as_user(&hook.channel_id, &format!("chatter {i}"));
    }
    assert_eq!(
        connector(&fake).reconcile(&account, &p).await.unwrap(),
        None
    );
    assert_eq!(fake.requests_to("GET", "/channels/"), 2, "two pages of 100");

    fake.seed_webhook_message(&hook.id, &p.text, Utc::now())
        .unwrap();
    let found = connector(&fake)
        .reconcile(&account, &p)
        .await
        .unwrap()
        .expect("found");
    assert_eq!(found.remote_id, fake.messages().last().unwrap().id);
    assert!(
        found.remote_url.is_some(),
        "the guild was learnt from the webhook"
    );
}

#[tokio::test]
async fn without_a_bot_the_outcome_stays_unknown_and_a_bad_bot_token_is_explained() {
    let fake = FakeDiscord::start().await;
    let hook = fake.add_webhook("Kettle Co");
    let p = post("hi");
    let error = connector(&fake)
        .reconcile(&session(&hook, None), &p)
        .await
        .unwrap_err();
    kit::assert_error(&error, "unknown", "cannot read messages back");

    let revoked = fake.add_bot();
    fake.revoke_bot(&revoked);
    let account = session(&hook, Some((&revoked, Some(&hook.channel_id))));
    let error = connector(&fake).reconcile(&account, &p).await.unwrap_err();
    kit::assert_error(&error, "unknown", "bot_token");
    assert!(!error.to_string().contains(&revoked));
    assert_eq!(fake.execute_requests(), 0);
}

#[tokio::test]
async fn delete_removes_the_message_and_a_gone_one_counts_as_deleted() {
    let fake = FakeDiscord::start().await;
    let hook = fake.add_webhook("Kettle Co");
    let account = session(&hook, None);
    let published = connector(&fake)
        .publish(&account, &post("Wrong lot"))
        .await
        .unwrap();

    connector(&fake)
        .delete(&account, &published.remote_id)
        .await
        .unwrap();
    assert!(fake.messages()[0].deleted);
    connector(&fake)
        .delete(&account, &published.remote_id)
        .await
        .unwrap();
    let bad = connector(&fake)
        .delete(&account, "../../x")
        .await
        .unwrap_err();
    assert_eq!(bad.class(), "rejected");

    fake.delete_webhook(&hook.id);
    let gone = connector(&fake)
        .delete(&account, &published.remote_id)
        .await
        .unwrap_err();
    assert_eq!(gone.class(), "auth_revoked");
}

#[tokio::test]
async fn check_reads_the_webhook_and_the_bot_when_there_is_one() {
    let fake = FakeDiscord::start().await;
    let hook = fake.add_webhook("Kettle Co");
    let bot = fake.add_bot();
    let account = session(&hook, Some((&bot, None)));
    connector(&fake).check(&account).await.unwrap();
    assert_eq!(fake.requests_to("GET", "/webhooks/"), 1);
    assert_eq!(fake.requests_to("GET", "/channels/"), 1);
    assert_eq!(
        account.credentials.lock().await.get("guild_id"),
        Some(hook.guild_id.as_str())
    );

    fake.revoke_bot(&bot);
    let bad_bot = connector(&fake).check(&account).await.unwrap_err();
    kit::assert_error(&bad_bot, "auth_revoked", "bot_token");

    fake.delete_webhook(&hook.id);
    let gone = connector(&fake)
        .check(&session(&hook, None))
        .await
        .unwrap_err();
    assert_eq!(gone.class(), "auth_revoked");
    assert_eq!(fake.execute_requests(), 0, "check posts nothing");
}

#[tokio::test]
async fn the_fake_answers_without_wait_with_204_and_reads_pages_like_discord() {
    let fake = FakeDiscord::start().await;
    let hook = fake.add_webhook("Kettle Co");
    let bot = fake.add_bot();
    let http = reqwest::Client::new();

    let no_wait = http
        .post(&hook.url)
        .json(&serde_json::json!({"content": "no wait"}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_wait.status(), 204);
    assert_eq!(no_wait.headers()["x-ratelimit-limit"], "5");
    assert_eq!(no_wait.headers()["x-ratelimit-remaining"], "4");
    assert!(no_wait.headers().contains_key("x-ratelimit-bucket"));

    let empty = http
        .post(format!("{}?wait=true", hook.url))
        .json(&serde_json::json!({"content": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(empty.status(), 400);
    let body: serde_json::Value = empty.json().await.unwrap();
    assert_eq!(body["code"], 50006);

    let versioned = hook.url.replace("/api/webhooks/", "/api/v10/webhooks/");
    let message: serde_json::Value = http
        .post(format!("{versioned}?wait=true"))
        .json(&serde_json::json!({"content": "second"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(message["webhook_id"], hook.id.as_str());
    assert_eq!(message["channel_id"], hook.channel_id.as_str());

    let page: Vec<serde_json::Value> = http
        .get(format!(
            "{}/channels/{}/messages?limit=1",
            fake.api_url(),
            hook.channel_id
        ))
        .header("Authorization", format!("Bot {bot}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0]["content"], "second", "newest first");
    let anonymous = http
        .get(format!(
            "{}/channels/{}/messages",
            fake.api_url(),
            hook.channel_id
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let body: serde_json::Value = anonymous.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"message": "401: Unauthorized", "code": 0})
    );
}

// --- replies ----------------------------------------------------------------------------------

/// A fake with a webhook and a bot reading its channel, and the account
/// holding both.
async fn with_bot() -> (FakeDiscord, FakeWebhook, AccountSession) {
    let fake = FakeDiscord::start().await;
    let hook = fake.add_webhook("Kettle Co");
    let bot = fake.add_bot();
    let account = session(&hook, Some((&bot, Some(&hook.channel_id))));
    (fake, hook, account)
}

/// A webhook, a bot, a three-part statement (a sequence of messages), and
/// the public: a reply to the first part, one to the second, one to that
/// reply, plus chatter and a reply to the chatter that are not ours.
async fn thread_with_replies() -> (
    FakeDiscord,
    FakeWebhook,
    AccountSession,
    Vec<String>,
    Vec<String>,
) {
    let (fake, hook, account) = with_bot().await;
    let ids = kit::publish_thread(&connector(&fake), &account, &kit::THREAD).await;
    let chatter = fake.post_as_user(&hook.channel_id, "anyone going to the match?");
    let first = fake
        .add_reply(&ids[0], "alice", "Is the tap water safe?")
        .unwrap();
    fake.add_reply(&chatter, "zed", "yes!").unwrap();
    let second = fake
        .add_reply(&ids[1], "bob", "Which streets, <north>?")
        .unwrap();
    let third = fake.add_reply(&second, "carol", "Mine too.").unwrap();
    (fake, hook, account, ids, vec![first, second, third])
}

/// A fake whose account holds a bot, and one statement published to it.
async fn with_bot_and_post(text: &str) -> (FakeDiscord, FakeWebhook, AccountSession, String) {
    let (fake, hook, account) = with_bot().await;
    let root = connector(&fake)
        .publish(&account, &post(text))
        .await
        .unwrap()
        .remote_id;
    (fake, hook, account, root)
}

#[tokio::test]
async fn discord_replies_need_a_bot() {
    let fake = FakeDiscord::start().await;
    let hook = fake.add_webhook("Kettle Co");
    let account = session(&hook, None);
    let discord = connector(&fake);
    let root = discord
        .publish(&account, &post("Statement."))
        .await
        .unwrap()
        .remote_id;
    let error = kit::Poller::new(&discord, &account, &[root])
        .fail(None)
        .await;
    kit::assert_error(&error, "rejected", "bot_token");
    assert_eq!(fake.requests_to("GET", "/channels/"), 0);
}

#[tokio::test]
async fn discord_replies_are_the_messages_answering_our_parts_or_their_replies() {
    let (fake, hook, account, ids, replies) = thread_with_replies().await;
    let discord = connector(&fake);

    let page = kit::Poller::new(&discord, &account, &ids).poll(None).await;

    kit::assert_replies(
        &page,
        &[
            (&replies[0], &ids[0], "alice", "Is the tap water safe?"),
            (&replies[1], &ids[1], "bob", "Which streets, <north>?"),
            (&replies[2], &replies[1], "carol", "Mine too."),
        ],
    );
    assert_eq!(
        page.replies[0].url.as_deref(),
        Some(
            format!(
                "https://discord.com/channels/{}/{}/{}",
                hook.guild_id, hook.channel_id, replies[0]
            )
            .as_str()
        )
    );
    let messages = fake.messages();
    for reply in &page.replies {
        let message = messages.iter().find(|m| m.id == reply.remote_id).unwrap();
        assert_eq!(
            reply.created_at.timestamp_micros(),
            message.timestamp.timestamp_micros()
        );
    }
    let newest = messages.last().unwrap().id.clone();
    assert_eq!(
        page.cursor.as_deref(),
        Some(format!("{newest} {}", replies.join(",")).as_str())
    );
}

#[tokio::test]
async fn discord_the_cursor_reads_only_new_messages_and_still_knows_earlier_replies() {
    let (fake, _, account, ids, replies) = thread_with_replies().await;
    let discord = connector(&fake);
    let poller = kit::Poller::new(&discord, &account, &ids);
    let first = poller.poll(None).await;
    let quiet = poller.quiet(first.cursor.clone()).await;

    // A reply to a reply found by the previous poll, and one to a part.
    let deep = fake.add_reply(&replies[2], "dave", "Same here.").unwrap();
    let fourth = fake.add_reply(&ids[2], "erin", "Until when?").unwrap();
    let next = poller.poll(quiet.cursor.clone()).await;
    kit::assert_replies(
        &next,
        &[
            (&deep, &replies[2], "dave", "Same here."),
            (&fourth, &ids[2], "erin", "Until when?"),
        ],
    );
    // Every read started after the newest message already read.
    let after: Vec<&str> = next.cursor.as_deref().unwrap().split(' ').collect();
    assert_eq!(after.len(), 2);
    assert!(after[1].split(',').any(|id| id == deep));
}

#[tokio::test]
async fn discord_a_poll_follows_the_pages_of_a_busy_channel() {
    let (fake, hook, account, root) = with_bot_and_post("Road closed.").await;
    let mut expected = Vec::new();
    for i in 0..250 {
        fake.post_as_user(&hook.channel_id, &format!("chatter {i}"));
        if i % 50 == 0 {
            expected.push(fake.add_reply(&root, &format!("user{i}"), "why?").unwrap());
        }
    }

    let discord = connector(&fake);
    let page = kit::Poller::new(&discord, &account, &[root])
        .poll(None)
        .await;

    assert_eq!(kit::reply_ids(&page), expected);
    assert_eq!(
        fake.requests_to("GET", "/channels/"),
        3,
        "255 messages: 3 pages"
    );
}

#[tokio::test]
async fn discord_reading_replies_maps_429_5xx_and_a_revoked_bot() {
    let (fake, hook, _, ids, _) = thread_with_replies().await;
    let bot = fake.add_bot();
    let account = session(&hook, Some((&bot, Some(&hook.channel_id))));
    let discord = connector(&fake);
    let poller = kit::Poller::new(&discord, &account, &ids);
    // The bot's user id is asked once, before the faults are armed.
    poller.poll(None).await;

    fake.rate_limit_next(1, Duration::from_millis(2500), false);
    let wait = Duration::from_millis(2500)..=Duration::from_millis(2500);
    kit::assert_throttled(
        &poller.fail(None).await,
        429,
        wait,
        "You are being rate limited",
    );

    fake.fail_next(1, 502);
    kit::assert_transient(&poller.fail(None).await, 502);

    fake.revoke_bot(&bot);
    let error = poller.fail(None).await;
    kit::assert_revoked(&error, "bot_token", &bot);
    assert_eq!(error.status(), Some(401));
}

#[tokio::test]
async fn discord_a_rate_limit_on_a_later_page_keeps_what_was_read() {
    let (fake, hook, account, root) = with_bot_and_post("Road closed.").await;
    let early = fake.add_reply(&root, "early", "first!").unwrap();
    for i in 0..120 {
        fake.post_as_user(&hook.channel_id, &format!("chatter {i}"));
    }
    let late = fake.add_reply(&root, "late", "still closed?").unwrap();
    // `/users/@me` and page 1 go through; page 2 is limited.
    fake.faults_after(2);
    fake.rate_limit_next(1, Duration::from_secs(1), false);

    let discord = connector(&fake);
    let poller = kit::Poller::new(&discord, &account, &[root]);
    let partial = poller.poll(None).await;
    assert_eq!(kit::reply_ids(&partial), vec![early]);
    let rest = poller.poll(partial.cursor.clone()).await;
    assert_eq!(kit::reply_ids(&rest), vec![late]);
}

#[tokio::test]
async fn discord_answering_a_reply_is_a_bot_reply_that_notifies_only_its_author() {
    let (fake, hook, account, ids, replies) = thread_with_replies().await;
    let discord = connector(&fake);
    let poller = kit::Poller::new(&discord, &account, &ids);
    let cursor = poller.poll(None).await.cursor;
    let answer = kit::answer(&ids[0], &replies[0], "Yes, it is safe again. @everyone");

    let published = discord.publish(&account, &answer).await.unwrap();

    let messages = fake.messages();
    let sent = messages
        .iter()
        .find(|m| m.id == published.remote_id)
        .unwrap();
    assert!(sent.by_bot && sent.webhook_id.is_none());
    assert_eq!(sent.reference.as_deref(), Some(replies[0].as_str()));
    assert_eq!(sent.channel_id, hook.channel_id);
    assert_eq!(
        sent.allowed_mentions,
        Some(serde_json::json!({"parse": [], "replied_user": true}))
    );
    assert_eq!(sent.nonce.as_ref().map(String::len), Some(25));
    assert_eq!(fake.execute_requests(), 3, "the webhook did not send it");
    assert_eq!(fake.requests_to("POST", "/channels/"), 1);

    // The same delivery again (a retry): the nonce returns the same message.
    let again = discord.publish(&account, &answer).await.unwrap();
    assert_eq!(again.remote_id, published.remote_id);
    // Reconciling after an unknown outcome finds it.
    let found = discord.reconcile(&account, &answer).await.unwrap();
    assert_eq!(
        found.map(|p| p.remote_id),
        Some(published.remote_id.clone())
    );
    assert_eq!(fake.messages().len(), messages.len(), "no duplicate");

    // The bot's own answer is never collected, even if the query omits it.
    poller.quiet(cursor).await;

    // Without a bot, an answer cannot be made.
    let webhook_only = session(&hook, None);
    let error = discord.publish(&webhook_only, &answer).await.unwrap_err();
    kit::assert_error(&error, "rejected", "needs a bot");
}
