//! The Telegram connector against the fake Bot API (shared/platforms.md §8).

use std::time::Duration;

use chrono::Utc;
use herald::fakes::telegram::{FakeTelegram, FakeTelegramConfig, FloodLimit};
use herald::platforms::telegram::Telegram;
use herald::platforms::{AccountSession, Connector, ConnectorError, MediaItem, Platform};

use crate::kit::{self, post};

fn session(fake: &FakeTelegram, token: &str, chat_id: &str) -> AccountSession {
    kit::session(
        Platform::Telegram,
        Some(&format!("{}/", fake.base_url())),
        &[("bot_token", token), ("chat_id", chat_id)],
    )
}

fn connector() -> Telegram {
    // The settings' API URL is a dead address: the account's base URL wins.
    Telegram::new(reqwest::Client::new(), "http://127.0.0.1:9")
}

/// A fake with one bot and one public channel `@kettle_news`.
async fn setup() -> (FakeTelegram, String, i64) {
    let fake = FakeTelegram::start().await;
    let token = fake.add_bot("herald_bot");
    let chat = fake.add_channel(&token, Some("kettle_news"));
    (fake, token, chat)
}

#[tokio::test]
async fn publishing_sends_plain_text_to_the_channel_and_links_the_public_message() {
    let (fake, token, chat) = setup().await;
    let text = "Stop using the K-200 kettle. Details: https://example.org/recall?lot=42 (lot #42!)";
    let published = connector()
        .publish(&session(&fake, &token, "@kettle_news"), &post(text))
        .await
        .unwrap();

    let messages = fake.messages();
    assert_eq!(messages.len(), 1);
    let message = &messages[0];
    assert_eq!(message.chat_id, chat);
    assert_eq!(message.text, text);
    assert_eq!(message.method, "sendMessage");
    assert_eq!(message.encoding, "json");
    assert_eq!(
        message.parse_mode, None,
        "plain text: nothing is read as markup"
    );
    assert_eq!(message.reply_to, None);
    assert_eq!(
        published.remote_id,
        format!("{chat}:{}", message.message_id)
    );
    assert_eq!(
        published.remote_url.as_deref(),
        Some(format!("https://t.me/kettle_news/{}", message.message_id).as_str())
    );
    let pause = published
        .pause_until
        .expect("one message per second per chat");
    let wait = (pause - Utc::now()).num_milliseconds();
    assert!((0..=1000).contains(&wait), "{wait} ms");
}

#[tokio::test]
async fn a_private_channel_by_numeric_id_has_no_public_link() {
    let fake = FakeTelegram::start().await;
    let token = fake.add_bot("herald_bot");
    let chat = fake.add_channel(&token, None);
    let published = connector()
        .publish(&session(&fake, &token, &chat.to_string()), &post("Hello"))
        .await
        .unwrap();
    assert_eq!(published.remote_id, format!("{chat}:1"));
    assert_eq!(published.remote_url, None);
}

#[tokio::test]
async fn a_three_part_thread_replies_to_each_previous_part() {
    let (fake, token, chat) = setup().await;
    let account = session(&fake, &token, "@kettle_news");
    let ids = kit::publish_thread(&connector(), &account, &kit::THREAD).await;
    let messages = fake.messages();
    assert_eq!(messages.len(), 3);
    assert_eq!(messages[0].reply_to, None);
    assert_eq!(messages[1].reply_to, Some(messages[0].message_id));
    assert_eq!(messages[2].reply_to, Some(messages[1].message_id));
    assert!(messages.iter().all(|m| m.chat_id == chat));
    assert_eq!(ids[2], format!("{chat}:{}", messages[2].message_id));
}

#[tokio::test]
async fn an_image_goes_out_as_a_photo_with_the_text_as_caption_or_as_a_large_preview() {
    let (fake, token, _) = setup().await;
    let account = session(&fake, &token, "@kettle_news");
    let image = MediaItem {
        url: "https://example.org/map.jpg".into(),
        alt: Some("Map of the affected area".into()),
        content_type: Some("image/jpeg".into()),
    };
    let mut short = post("Affected area: see the map.");
    short.media = vec![image.clone()];
    connector().publish(&account, &short).await.unwrap();

    // 1,025 UTF-16 units: too long for a caption (1,024), fine for a message.
    let mut long = post(&"a".repeat(1025));
    long.media = vec![image.clone()];
    connector().publish(&account, &long).await.unwrap();

    let messages = fake.messages();
    assert_eq!(messages[0].method, "sendPhoto");
    assert_eq!(messages[0].photo.as_deref(), Some(image.url.as_str()));
    assert_eq!(messages[0].text, short.text);
    assert_eq!(messages[1].method, "sendMessage");
    assert_eq!(messages[1].text, long.text);
    let preview = messages[1].link_preview.as_ref().unwrap();
    assert_eq!(preview["url"], image.url.as_str());
    assert_eq!(preview["prefer_large_media"], true);
}

#[tokio::test]
async fn a_revoked_token_a_kicked_bot_and_a_missing_chat_mean_reconnect() {
    let (fake, token, chat) = setup().await;
    let connector = connector();

    fake.kick(&token, chat);
    let kicked = connector
        .publish(&session(&fake, &token, "@kettle_news"), &post("hi"))
        .await
        .unwrap_err();
    assert_eq!(kicked.class(), "auth_revoked", "{kicked}");
    assert_eq!(kicked.status(), Some(403));
    assert!(kicked.to_string().contains("bot was kicked"), "{kicked}");

    let missing = connector
        .publish(&session(&fake, &token, "@nobody_here"), &post("hi"))
        .await
        .unwrap_err();
    kit::assert_error(&missing, "auth_revoked", "chat not found");

    let other = fake.add_channel(&token, Some("other_news"));
    fake.forbid_posting(&token, other);
    let read_only = connector
        .publish(&session(&fake, &token, "@other_news"), &post("hi"))
        .await
        .unwrap_err();
    kit::assert_error(&read_only, "auth_revoked", "not enough rights");

    fake.revoke(&token);
    let revoked = connector
        .publish(&session(&fake, &token, "@kettle_news"), &post("hi"))
        .await
        .unwrap_err();
    assert_eq!(revoked.class(), "auth_revoked");
    assert_eq!(revoked.status(), Some(401));
    for error in [&kicked, &missing, &read_only, &revoked] {
        assert!(
            !error.to_string().contains(&token),
            "the token never appears"
        );
    }
    assert!(fake.messages().is_empty());
}

#[tokio::test]
async fn a_malformed_token_is_refused_before_any_request() {
    let (fake, _, _) = setup().await;
    let error = connector()
        .publish(
            &session(&fake, "12345/../../x", "@kettle_news"),
            &post("hi"),
        )
        .await
        .unwrap_err();
    assert_eq!(error.class(), "auth_revoked");
    assert!(!error.to_string().contains("12345/"), "{error}");
    assert_eq!(fake.send_requests(), 0);
}

#[tokio::test]
async fn flood_control_answers_429_with_retry_after_and_stores_nothing() {
    let fake = FakeTelegram::start_with(FakeTelegramConfig {
        flood: Some(FloodLimit {
            per_second: 1.0,
            burst: 1,
        }),
        ..FakeTelegramConfig::default()
    })
    .await;
    let token = fake.add_bot("herald_bot");
    fake.add_channel(&token, Some("kettle_news"));
    let account = session(&fake, &token, "@kettle_news");

    connector().publish(&account, &post("one")).await.unwrap();
    let error = connector()
        .publish(&account, &post("two"))
        .await
        .unwrap_err();
    let (retry_after, status, message) = kit::rate_limited(&error);
    assert_eq!(status, Some(429));
    assert_eq!(retry_after, Duration::from_secs(1));
    assert!(
        message.contains("Too Many Requests: retry after 1"),
        "{message}"
    );

    fake.rate_limit_next(1, 17);
    let injected = connector()
        .publish(&account, &post("three"))
        .await
        .unwrap_err();
    assert!(
        matches!(injected, ConnectorError::RateLimited { retry_after, .. } if retry_after == Duration::from_secs(17)),
        "{injected:?}"
    );
    assert_eq!(fake.messages().len(), 1);
}

#[tokio::test]
async fn server_errors_are_transient_and_bad_text_is_rejected_with_telegrams_words() {
    let (fake, token, _) = setup().await;
    let account = session(&fake, &token, "@kettle_news");
    fake.fail_next(1, 502);
    let error = connector()
        .publish(&account, &post("hi"))
        .await
        .unwrap_err();
    assert_eq!(error.class(), "transient");
    assert_eq!(error.status(), Some(502));

    // 4,097 UTF-16 units: 2,049 emoji (each two units).
    let long = connector()
        .publish(&account, &post(&"🚨".repeat(2049)))
        .await
        .unwrap_err();
    kit::assert_error(&long, "rejected", "message is too long");

    let empty = connector()
        .publish(&account, &post("  "))
        .await
        .unwrap_err();
    kit::assert_error(&empty, "rejected", "message text is empty");
    assert!(fake.messages().is_empty());
}

#[tokio::test]
async fn an_upgraded_group_moves_the_account_to_the_supergroup_and_sends_once() {
    let fake = FakeTelegram::start().await;
    let token = fake.add_bot("herald_bot");
    let group = fake.add_group(&token);
    let supergroup = fake.migrate_group(group);
    let account = session(&fake, &token, &group.to_string());

    let published = connector()
        .publish(&account, &post("Shelter open."))
        .await
        .unwrap();

    assert_eq!(published.remote_id, format!("{supergroup}:1"));
    let messages = fake.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].chat_id, supergroup);
    assert_eq!(fake.send_requests(), 2);
    let mut credentials = account.credentials.lock().await;
    assert_eq!(
        credentials.get("chat_id"),
        Some(supergroup.to_string().as_str())
    );
    assert!(
        credentials.take_changed(),
        "the dispatcher saves the new chat id"
    );
}

#[tokio::test]
async fn after_a_dropped_connection_the_outcome_stays_unknown_and_nothing_is_resent() {
    let (fake, token, _) = setup().await;
    let account = session(&fake, &token, "@kettle_news");
    let post = post("Evacuate building C now.");
    fake.drop_after_store_next(1);

    let error = connector().publish(&account, &post).await.unwrap_err();
    assert_eq!(error.class(), "unknown", "{error:?}");
    assert_eq!(
        fake.messages().len(),
        1,
        "the message went out before the drop"
    );

    let reconciled = connector().reconcile(&account, &post).await.unwrap_err();
    kit::assert_error(&reconciled, "unknown", "Telegram cannot be asked");
    assert_eq!(fake.send_requests(), 1, "reconcile never sends again");
    assert_eq!(fake.messages().len(), 1);
}

#[tokio::test]
async fn a_stall_past_the_client_timeout_is_unknown_and_names_no_url() {
    let (fake, token, _) = setup().await;
    fake.stall_after_store_next(1, Duration::from_secs(3));
    let impatient = Telegram::new(
        reqwest::Client::builder()
            .timeout(Duration::from_millis(300))
            .build()
            .unwrap(),
        "http://127.0.0.1:9",
    );
    let error = impatient
        .publish(&session(&fake, &token, "@kettle_news"), &post("hi"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ConnectorError::Unknown { message } if message.contains("timed out")),
        "{error:?}"
    );
    assert!(!error.to_string().contains(&token));
    assert!(!error.to_string().contains("/bot"));
}

#[tokio::test]
async fn a_refused_connection_is_transient_and_names_no_url() {
    let fake = FakeTelegram::start().await;
    let token = fake.add_bot("herald_bot");
    let account = kit::session(
        Platform::Telegram,
        None,
        &[("bot_token", &token), ("chat_id", "@kettle_news")],
    );
    let error = connector()
        .publish(&account, &post("hi"))
        .await
        .unwrap_err();
    assert_eq!(error.class(), "transient", "{error:?}");
    assert!(!error.to_string().contains(&token), "{error}");
}

#[tokio::test]
async fn delete_removes_the_message_and_a_gone_one_counts_as_deleted() {
    let (fake, token, chat) = setup().await;
    let account = session(&fake, &token, "@kettle_news");
    let published = connector()
        .publish(&account, &post("Wrong lot number"))
        .await
        .unwrap();

    connector()
        .delete(&account, &published.remote_id)
        .await
        .unwrap();
    assert!(fake.messages()[0].deleted);
    connector()
        .delete(&account, &published.remote_id)
        .await
        .unwrap();
    connector()
        .delete(&account, &format!("{chat}:999"))
        .await
        .unwrap();

    let old = connector()
        .publish(&account, &post("Old news"))
        .await
        .unwrap();
    let message_id = fake.messages()[1].message_id;
    fake.age_message(chat, message_id, chrono::Duration::hours(49));
    let error = connector()
        .delete(&account, &old.remote_id)
        .await
        .unwrap_err();
    kit::assert_error(&error, "rejected", "message can't be deleted");
    assert!(error.to_string().contains("48 hours"), "{error}");
    assert!(!fake.messages()[1].deleted);

    let bad = connector().delete(&account, "not-an-id").await.unwrap_err();
    assert_eq!(bad.class(), "rejected");
}

#[tokio::test]
async fn check_proves_the_token_and_the_chat() {
    let (fake, token, chat) = setup().await;
    let account = session(&fake, &token, "@kettle_news");
    connector().check(&account).await.unwrap();
    assert_eq!(fake.requests_to("getMe"), 1);
    assert_eq!(fake.requests_to("getChat"), 1);

    let wrong_chat = connector()
        .check(&session(&fake, &token, "@nobody_here"))
        .await
        .unwrap_err();
    assert_eq!(wrong_chat.class(), "auth_revoked");

    fake.remove_bot(&token, chat);
    let removed = connector().check(&account).await.unwrap_err();
    kit::assert_error(&removed, "auth_revoked", "not a member");

    fake.revoke(&token);
    let revoked = connector().check(&account).await.unwrap_err();
    assert_eq!(revoked.class(), "auth_revoked");
    assert_eq!(revoked.status(), Some(401));
    assert_eq!(
        fake.requests_to("getChat"),
        3,
        "a dead token stops at getMe"
    );
    assert_eq!(fake.send_requests(), 0, "check sends nothing");
}

#[tokio::test]
async fn the_fake_takes_form_bodies_query_parameters_and_the_old_reply_field() {
    let (fake, token, chat) = setup().await;
    let http = reqwest::Client::new();
    let base = format!("{}/bot{token}", fake.base_url());

    let first: serde_json::Value = http
        .post(format!("{base}/sendMessage"))
        .form(&[
            ("chat_id", chat.to_string().as_str()),
            ("text", "form body"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first["ok"], true);
    assert_eq!(first["result"]["chat"]["username"], "kettle_news");
    assert_eq!(first["result"]["text"], "form body");
    let first_id = first["result"]["message_id"].as_i64().unwrap();

    let reply: serde_json::Value = http
        .get(format!(
            "{base}/sendMessage?chat_id=%40kettle_news&text=query&reply_to_message_id={first_id}"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(reply["result"]["reply_to_message"]["message_id"], first_id);

    let markdown = http
        .post(format!("{base}/sendMessage"))
        .json(
            &serde_json::json!({"chat_id": chat, "text": "Stay safe.", "parse_mode": "MarkdownV2"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(markdown.status(), 400);
    let body: serde_json::Value = markdown.json().await.unwrap();
    assert_eq!(body["ok"], false);
    assert_eq!(body["error_code"], 400);
    assert!(body["description"]
        .as_str()
        .unwrap()
        .starts_with("Bad Request: can't parse entities"));

    let missing_parent = http
        .post(format!("{base}/sendMessage"))
        .json(&serde_json::json!({"chat_id": chat, "text": "x", "reply_parameters": {"message_id": 999}}))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = missing_parent.json().await.unwrap();
    assert_eq!(
        body["description"],
        "Bad Request: message to be replied not found"
    );

    let unknown = http
        .post(format!("{base}/getUpdatez"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let unauthorized = http
        .post(format!("{}/bot1:nope/getMe", fake.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);
    assert_eq!(
        unauthorized.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({"ok": false, "error_code": 401, "description": "Unauthorized"})
    );
    let messages = fake.messages();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0].encoding, "form");
    assert_eq!(messages[1].encoding, "query");
    assert_eq!(messages[1].reply_to, Some(first_id));
}

// --- comments -----------------------------------------------------------------------------------

/// A channel with a linked discussion group, a statement published on the
/// channel, and a comment on it; the account, the statement, the comment.
async fn statement_with_a_comment() -> (FakeTelegram, String, i64, AccountSession, String, String) {
    let (fake, token, chat) = setup().await;
    let group = fake.add_discussion_group(&token, chat);
    let account = session(&fake, &token, "@kettle_news");
    let statement = connector()
        .publish(&account, &post("Boil water notice for the north."))
        .await
        .unwrap()
        .remote_id;
    let comment = fake
        .add_reply(&statement, "alice", "Is the tap water safe?")
        .unwrap();
    assert!(comment.starts_with(&format!("{group}:")), "{comment}");
    (fake, token, group, account, statement, comment)
}

#[tokio::test]
async fn telegram_replies_are_not_listed_by_the_connector() {
    let (_fake, _token, _group, account, statement, _) = statement_with_a_comment().await;
    let query = herald::platforms::ReplyQuery {
        root_id: statement.clone(),
        own_ids: vec![statement],
        cursor: None,
        published_at: Utc::now(),
    };
    let error = connector().replies(&account, &query).await.unwrap_err();
    kit::assert_error(&error, "rejected", "cannot be listed");
}

#[tokio::test]
async fn answering_a_comment_replies_to_it_in_the_discussion_group() {
    let (fake, _token, group, account, statement, comment) = statement_with_a_comment().await;
    let answer = herald::platforms::Post {
        reply_to: Some(herald::platforms::ReplyTarget {
            root_id: statement.clone(),
            parent_id: comment.clone(),
            answers_reply: true,
        }),
        ..post("Boil it for one minute, then it is safe.")
    };

    let published = connector().publish(&account, &answer).await.unwrap();

    let messages = fake.messages();
    let sent = messages.last().unwrap();
    assert_eq!(
        sent.chat_id, group,
        "answered in the group, not the channel"
    );
    assert_eq!(sent.text, answer.text);
    assert_eq!(
        Some(format!("{group}:{}", sent.reply_to.unwrap())),
        Some(comment.clone())
    );
    assert_eq!(published.remote_id, format!("{group}:{}", sent.message_id));
    // The comment hangs on the statement's automatic forward, and so does the answer.
    let forward = messages
        .iter()
        .find(|m| m.forwarded_from.is_some())
        .unwrap();
    assert_eq!(
        forward.forwarded_from.map(|(c, m)| format!("{c}:{m}")),
        Some(statement)
    );
    assert_eq!(sent.thread_id, Some(forward.message_id));

    let broken = herald::platforms::Post {
        reply_to: Some(herald::platforms::ReplyTarget {
            root_id: "x".into(),
            parent_id: "not-an-id".into(),
            answers_reply: true,
        }),
        ..post("hi")
    };
    let error = connector().publish(&account, &broken).await.unwrap_err();
    kit::assert_error(&error, "rejected", "not a Telegram message id");
}

#[tokio::test]
async fn the_fake_delivers_comments_as_updates_that_get_updates_confirms_for_good() {
    let (fake, token, group, _account, statement, comment) = statement_with_a_comment().await;
    let reply = fake.add_reply(&comment, "bob", "Mine too.").unwrap();
    let url = format!("{}/bot{token}/getUpdates", fake.base_url());
    let http = reqwest::Client::new();
    let get = |body: serde_json::Value| {
        let request = http.post(&url).json(&body);
        async move {
            request
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };

    let all = get(serde_json::json!({})).await;
    let updates = all["result"].as_array().unwrap();
    assert_eq!(
        updates.len(),
        3,
        "the forward, the comment, the reply: {all}"
    );
    let forward = &updates[0]["message"];
    assert_eq!(forward["is_automatic_forward"], true);
    assert_eq!(forward["chat"]["id"], group);
    let (channel, post) = statement.split_once(':').unwrap();
    assert_eq!(forward["forward_origin"]["chat"]["id"].to_string(), channel);
    assert_eq!(forward["forward_origin"]["message_id"].to_string(), post);
    let first = &updates[1]["message"];
    assert_eq!(first["from"]["username"], "alice");
    assert_eq!(
        first["reply_to_message"]["message_id"],
        forward["message_id"]
    );
    assert_eq!(first["message_thread_id"], forward["message_id"]);
    let second = &updates[2]["message"];
    assert_eq!(
        format!("{group}:{}", second["message_id"]),
        reply,
        "the reply to the comment"
    );
    assert_eq!(second["message_thread_id"], forward["message_id"]);

    // Reading again without an offset gives the same updates; an offset
    // confirms the earlier ones for every reader.
    assert_eq!(get(serde_json::json!({})).await, all);
    let next = updates[1]["update_id"].as_i64().unwrap() + 1;
    let rest = get(serde_json::json!({"offset": next, "limit": 100})).await;
    assert_eq!(rest["result"].as_array().unwrap().len(), 1);
    let again = get(serde_json::json!({})).await;
    assert_eq!(
        again["result"], rest["result"],
        "confirmed updates are gone"
    );

    fake.set_webhook(&token, true);
    let conflict = get(serde_json::json!({})).await;
    assert_eq!(conflict["error_code"], 409);

    // getChat shows the link both ways.
    let chat: serde_json::Value = http
        .post(format!("{}/bot{token}/getChat", fake.base_url()))
        .json(&serde_json::json!({"chat_id": "@kettle_news"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(chat["result"]["linked_chat_id"], group);
}
