//! Reply tracking end to end on the sandbox network: collection (once, with
//! sentiment and triage), the follow-up queue, answers through the
//! dispatcher with the courtesy check, templates, service levels and the
//! negative-spike warning.

use std::time::Duration;

use herald::keys::Role;
use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, TestApp};

/// A published sandbox post; returns (statement id, delivery, account id).
async fn published(app: &TestApp, text: &str) -> (String, Value, String) {
    let account = app.add_account("sandbox", "Drill", None, json!({})).await;
    let statement = app
        .approved_crisis(json!([{"platform": "sandbox", "text": text}]))
        .await;
    let delivery = app.publish_now(&statement, &account).await;
    assert_eq!(delivery["status"], "published", "{delivery}");
    (statement, delivery, account)
}

/// The public answers sandbox post `parent`; returns the reply's post id.
async fn public_reply(app: &TestApp, parent: &str, author: &str, text: &str) -> String {
    let reply = app
        .post(
            &app.admin,
            &format!("/v1/sandbox/posts/{parent}/replies"),
            json!({"author": author, "text": text}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.json()["id"].as_str().unwrap().to_string()
}

/// Wait (at most `secs`) until `GET path` lists at least `n` items.
async fn wait_items(app: &TestApp, path: &str, n: usize, secs: u64) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let page = app.get(&app.admin, path).await.ok();
        let items = page["items"].as_array().cloned().unwrap_or_default();
        if items.len() >= n || std::time::Instant::now() > deadline {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn poll_count(app: &TestApp, delivery: &str) -> i32 {
    let mut conn = app.pool.get().unwrap();
    herald::replies::collector::poll_count(&mut conn, delivery).unwrap()
}

/// Wait (10 s at most) until `delivery` has been polled `more` more times.
async fn wait_more_polls(app: &TestApp, delivery: &str, more: i32) {
    let target = poll_count(app, delivery) + more;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while poll_count(app, delivery) < target {
        assert!(std::time::Instant::now() < deadline, "polling goes on");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn by_author<'a>(items: &'a [Value], author: &str) -> &'a Value {
    items
        .iter()
        .find(|r| r["author"] == author)
        .unwrap_or_else(|| panic!("a reply by {author} in {items:?}"))
}

#[tokio::test]
async fn replies_are_collected_once_scored_and_triaged() {
    // Poll every second so several polls happen during the test.
    let app = spawn_app_with(|s| s.replies.fast_s = 1).await;
    let (statement, delivery, account) = published(&app, "Batch 42 kettles are recalled.").await;
    let post = delivery["remote_id"].as_str().unwrap();
    let angry = public_reply(
        &app,
        post,
        "angry",
        "This is a disgrace, your kettles are dangerous and you hid it. Terrible.",
    )
    .await;
    public_reply(&app, post, "asker", "Is batch 41 affected too?").await;
    public_reply(
        &app,
        &angry,
        "fan",
        "Thank you for the quick and honest recall, great job!",
    )
    .await;

    let path = format!("/v1/replies?statement_id={statement}");
    let items = wait_items(&app, &path, 3, 15).await;
    assert_eq!(items.len(), 3, "{items:?}");
    let angry_reply = by_author(&items, "angry");
    assert_eq!(angry_reply["sentiment"], "negative", "{angry_reply}");
    assert!(angry_reply["score"].as_f64().unwrap() < 0.0);
    assert_eq!(angry_reply["follow_up"], "needs_response");
    assert_eq!(angry_reply["parent_remote_id"], post);
    assert_eq!(angry_reply["delivery_id"], delivery["id"]);
    assert_eq!(angry_reply["account_id"], account.as_str());
    assert_eq!(angry_reply["platform"], "sandbox");
    assert_eq!(angry_reply["language"], "en");
    let asker = by_author(&items, "asker");
    assert!(asker["question"].as_bool().unwrap());
    assert_eq!(asker["follow_up"], "needs_response");
    assert_eq!(asker["follow_up_reason"], "question");
    let fan = by_author(&items, "fan");
    assert_eq!(fan["sentiment"], "positive", "{fan}");
    assert_eq!(fan["follow_up"], "new");
    assert_eq!(
        fan["parent_remote_id"],
        angry.as_str(),
        "nested replies are found"
    );

    // Later polls fetch nothing new: each reply is stored once.
    wait_more_polls(&app, delivery["id"].as_str().unwrap(), 2).await;
    let again = app.get(&app.admin, &path).await.ok();
    assert_eq!(again["items"].as_array().unwrap().len(), 3, "{again}");

    // A new reply shows up on a later poll, and only it is added.
    public_reply(
        &app,
        post,
        "late",
        "Merci pour l'information, c'est très clair.",
    )
    .await;
    let items = wait_items(&app, &path, 4, 10).await;
    assert_eq!(items.len(), 4);
    let late = by_author(&items, "late");
    assert_eq!(late["language"], "fr");
    assert_eq!(items[0]["author"], "late", "newest collected first");

    // Filters and paging.
    let negative = app
        .get(&app.admin, &format!("{path}&sentiment=negative"))
        .await
        .ok();
    assert_eq!(negative["items"].as_array().unwrap().len(), 1);
    let queue = app
        .get(&app.admin, &format!("{path}&follow_up=needs_response"))
        .await
        .ok();
    assert_eq!(queue["items"].as_array().unwrap().len(), 2);
    let first = app.get(&app.admin, &format!("{path}&limit=3")).await.ok();
    assert_eq!(first["items"].as_array().unwrap().len(), 3);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = app
        .get(&app.admin, &format!("{path}&limit=3&cursor={cursor}"))
        .await
        .ok();
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert!(second["next_cursor"].is_null());
    assert_eq!(second["items"][0]["author"], items[3]["author"]);

    // Bad filters name the field.
    let bad = app.get(&app.admin, "/v1/replies?sentiment=angry").await;
    bad.invalid("sentiment");
    let bad = app.get(&app.admin, "/v1/replies?follow_up=open").await;
    bad.invalid("follow_up");
    let bad = app.get(&app.admin, "/v1/replies?from=yesterday").await;
    bad.invalid("from");
    let bad = app.get(&app.admin, "/v1/replies?statement_id=42").await;
    bad.invalid("statement_id");

    // The summary counts by sentiment and follow-up, per network.
    let summary = app
        .get(
            &app.admin,
            &format!("/v1/statements/{statement}/replies/summary"),
        )
        .await
        .ok();
    assert_eq!(summary["total"], 4, "{summary}");
    assert_eq!(summary["sentiment"]["negative"], 1);
    assert!(summary["sentiment"]["positive"].as_u64().unwrap() >= 1);
    assert_eq!(summary["follow_up"]["needs_response"], 2);
    assert_eq!(summary["networks"][0]["platform"], "sandbox");
    assert_eq!(summary["networks"][0]["total"], 4);
}

#[tokio::test]
async fn collection_survives_a_restart_without_duplicates() {
    let app = spawn_app_with(|s| s.replies.fast_s = 1).await;
    let (statement, delivery, _) = published(&app, "Outage resolved.").await;
    let post = delivery["remote_id"].as_str().unwrap();
    public_reply(&app, post, "a", "Finally. Three hours without service.").await;
    let path = format!("/v1/replies?statement_id={statement}");
    assert_eq!(wait_items(&app, &path, 1, 15).await.len(), 1);

    // A second instance on the same store, with its own collector: the
    // stored cursor and the unique key keep each reply once.
    let mut settings = crate::helpers::test_settings(&app.database_url, &app.secret_key);
    settings.replies.fast_s = 1;
    let other = crate::helpers::start(settings).await;
    public_reply(&app, post, "b", "Thanks for the update").await;
    assert_eq!(wait_items(&app, &path, 2, 15).await.len(), 2);
    wait_more_polls(&app, delivery["id"].as_str().unwrap(), 3).await;
    let all = app.get(&app.admin, &path).await.ok();
    assert_eq!(all["items"].as_array().unwrap().len(), 2, "{all}");
    drop(other);
}

#[tokio::test]
async fn the_cadence_is_kept() {
    // Default cadence: once a minute in the first hour; the job looks every second.
    let app = spawn_app_with(|_| {}).await;
    let (_, delivery, _) = published(&app, "Statement.").await;
    let id = delivery["id"].as_str().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while poll_count(&app, id) < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the first poll comes at once"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(poll_count(&app, id), 1, "no second poll within the minute");
}

/// A reply waiting for an answer: (app, statement, reply id, the reply).
async fn with_needs_response() -> (TestApp, String, String, Value) {
    let app = spawn_app_with(|s| s.replies.fast_s = 1).await;
    let (statement, delivery, _) = published(&app, "We recall batch 42.").await;
    let post = delivery["remote_id"].as_str().unwrap();
    public_reply(
        &app,
        post,
        "ana",
        "Why did nobody warn me? My kettle is in batch 42!",
    )
    .await;
    let items = wait_items(
        &app,
        &format!("/v1/replies?statement_id={statement}"),
        1,
        15,
    )
    .await;
    let reply = items[0].clone();
    assert_eq!(reply["follow_up"], "needs_response", "{reply}");
    let id = reply["id"].as_str().unwrap().to_string();
    (app, statement, id, reply)
}

#[tokio::test]
async fn a_reply_is_answered_once_through_the_dispatcher() {
    let (app, statement, id, reply) = with_needs_response().await;
    let editor = app.key(Role::Editor);

    // Assign it.
    let bad = app
        .patch(
            &editor,
            &format!("/v1/replies/{id}"),
            json!({"follow_up": "assigned"}),
        )
        .await;
    bad.invalid("assignee");
    let assigned = app
        .patch(
            &editor,
            &format!("/v1/replies/{id}"),
            json!({"follow_up": "assigned", "assignee": "marie"}),
        )
        .await
        .ok();
    assert_eq!(assigned["follow_up"], "assigned");
    assert_eq!(assigned["assignee"], "marie");
    let viewer = app.key(Role::Viewer);
    let refused = app
        .patch(
            &viewer,
            &format!("/v1/replies/{id}"),
            json!({"follow_up": "dismissed"}),
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.text);

    // Discourteous answers are refused with what to change.
    for text in [
        "Maybe read the instructions before complaining.",
        "WE ALREADY TOLD EVERYONE ABOUT THIS RECALL",
        "Stop whining, you idiot.",
    ] {
        let refused = app
            .post(
                &editor,
                &format!("/v1/replies/{id}/respond"),
                json!({"text": text}),
            )
            .await;
        let problem = refused.invalid("text");
        assert!(
            problem["errors"][0]["message"].as_str().unwrap().len() > 20,
            "{problem}"
        );
    }
    // Only an approver may force one.
    let forced = app
        .post(
            &editor,
            &format!("/v1/replies/{id}/respond"),
            json!({"text": "Stop whining, you idiot.", "force": true}),
        )
        .await;
    assert_eq!(forced.status, 403, "{}", forced.text);
    let bad = app
        .post(&editor, &format!("/v1/replies/{id}/respond"), json!({}))
        .await;
    bad.invalid("text");

    // A courteous answer is published once, as a reply to the public's post.
    let answer = app
        .send(
            app.client
                .post(app.url(&format!("/v1/replies/{id}/respond")))
                .bearer_auth(&editor)
                .header("Idempotency-Key", "answer-1")
                .json(&json!({"text": "We are sorry, @ana. Please check https://example.com/recall: we will replace your kettle."})),
        )
        .await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    let answer = answer.json();
    assert_eq!(answer["delivery"]["kind"], "response");
    let delivery_id = answer["delivery"]["id"].as_str().unwrap().to_string();
    // The same request again (a client retry) does not send a second answer.
    let again = app
        .send(
            app.client
                .post(app.url(&format!("/v1/replies/{id}/respond")))
                .bearer_auth(&editor)
                .header("Idempotency-Key", "answer-1")
                .json(&json!({"text": "We are sorry, @ana. Please check https://example.com/recall: we will replace your kettle."})),
        )
        .await;
    assert_eq!(again.json()["delivery"]["id"], delivery_id.as_str());
    let published = app.wait_status(&delivery_id, "published", 20).await;
    let posted = published["remote_id"].as_str().unwrap();
    let post = app
        .get(&app.admin, &format!("/v1/sandbox/posts/{posted}"))
        .await
        .ok();
    assert_eq!(post["in_reply_to"], reply["remote_id"]);
    assert!(post["text"]
        .as_str()
        .unwrap()
        .starts_with("We are sorry, @ana."));

    // The reply is answered, with its response time; our answer is not
    // collected as a reply.
    let detail = app.get(&app.admin, &format!("/v1/replies/{id}")).await.ok();
    assert_eq!(detail["reply"]["follow_up"], "answered", "{detail}");
    assert!(detail["reply"]["response_time_s"].as_i64().unwrap() >= 0);
    assert_eq!(detail["responses"].as_array().unwrap().len(), 1);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let all = app
        .get(&app.admin, &format!("/v1/replies?statement_id={statement}"))
        .await
        .ok();
    assert_eq!(all["items"].as_array().unwrap().len(), 1, "{all}");

    // Service levels show it, by network and by assignee.
    let stats = app.get(&app.admin, "/v1/followups/stats").await.ok();
    assert_eq!(stats["total"], 1, "{stats}");
    assert_eq!(stats["response_time"]["answered"], 1);
    assert!(stats["response_time"]["median_s"].as_i64().is_some());
    assert_eq!(stats["networks"][0]["platform"], "sandbox");
    assert_eq!(stats["assignees"][0]["assignee"], "marie");
    assert_eq!(stats["assignees"][0]["response_time"]["answered"], 1);
    let bad = app
        .get(
            &app.admin,
            "/v1/followups/stats?from=2026-12-01T00:00:00Z&to=2026-11-01T00:00:00Z",
        )
        .await;
    bad.invalid("from");

    // Logged: the assignment, the answer, the reply answered.
    let actions = app.recent_actions().await;
    for action in ["reply.follow_up_changed", "reply.answered"] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} in {actions:?}"
        );
    }
}

#[tokio::test]
async fn an_approver_may_force_an_answer_and_it_is_logged() {
    let (app, _, id, _) = with_needs_response().await;
    // A manager both edits and approves.
    let editor_and_approver = app.key(Role::Manager);
    let forced = app
        .post(
            &editor_and_approver,
            &format!("/v1/replies/{id}/respond"),
            json!({"text": "AS ANNOUNCED, BATCH 42 IS RECALLED. CHECK THE SITE.", "force": true}),
        )
        .await;
    assert_eq!(forced.status, 201, "{}", forced.text);
    assert_eq!(forced.json()["overridden"][0]["kind"], "all_caps");
    // While it is on its way, a second answer is refused.
    let second = app
        .post(
            &editor_and_approver,
            &format!("/v1/replies/{id}/respond"),
            json!({"text": "Sorry for the trouble."}),
        )
        .await;
    if second.status != 201 {
        assert_eq!(second.status, 409, "{}", second.text);
    }
    let actions = app.recent_actions().await;
    assert!(
        actions.iter().any(|a| a == "reply.courtesy_overridden"),
        "{actions:?}"
    );
}

#[tokio::test]
async fn approved_templates_answer_with_the_author() {
    let (app, _, id, _) = with_needs_response().await;
    let template = app
        .create_approved(json!({
            "title": "Batch 42 answer",
            "kind": "response",
            "variants": [{"platform": "sandbox", "text": "Hello @{author}, thank you for asking: batch 42 is recalled, see https://example.com/recall"}],
        }))
        .await;
    // A template is never scheduled on its own.
    let account = app.add_account("sandbox", "Other", None, json!({})).await;
    let refused = app
        .schedule(&template, &[&account], json!({"now": true}))
        .await;
    assert_eq!(refused.status, 409, "{}", refused.text);

    let editor = app.key(Role::Editor);
    let answer = app
        .post(
            &editor,
            &format!("/v1/replies/{id}/respond"),
            json!({"template_id": template}),
        )
        .await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    assert_eq!(
        answer.json()["text"],
        "Hello @ana, thank you for asking: batch 42 is recalled, see https://example.com/recall"
    );
    // A crisis statement is not a template; an unknown id is named.
    let crisis = app
        .approved_crisis(json!([{"platform": "sandbox", "text": "x"}]))
        .await;
    let bad = app
        .post(
            &editor,
            &format!("/v1/replies/{id}/respond"),
            json!({"template_id": crisis}),
        )
        .await;
    bad.invalid("template_id");
}

#[tokio::test]
async fn a_negative_spike_is_warned_once_per_episode() {
    let app = spawn_app_with(|s| {
        s.replies.fast_s = 1;
        s.replies.spike_min_replies = 3;
        s.replies.spike_share_pct = 40;
    })
    .await;
    let (statement, delivery, _) = published(&app, "Service is down.").await;
    let post = delivery["remote_id"].as_str().unwrap();
    public_reply(
        &app,
        post,
        "p1",
        "Thanks for telling us, great transparency",
    )
    .await;
    public_reply(&app, post, "p2", "Good luck to the team, you are great").await;
    public_reply(&app, post, "p3", "Merci, bon courage à l'équipe !").await;
    let path = format!("/v1/replies?statement_id={statement}");
    assert_eq!(wait_items(&app, &path, 3, 15).await.len(), 3);
    let spikes = |actions: &[String]| {
        actions
            .iter()
            .filter(|a| *a == "replies.negative_spike")
            .count()
    };
    assert_eq!(
        spikes(&app.recent_actions().await),
        0,
        "a positive tone is no spike"
    );

    for (i, text) in [
        "This is terrible, the worst service ever",
        "Awful. I hate this company, what a disaster",
        "Honteux, service nul et scandaleux",
    ]
    .iter()
    .enumerate()
    {
        public_reply(&app, post, &format!("n{i}"), text).await;
    }
    let items = wait_items(&app, &path, 6, 15).await;
    assert_eq!(
        items
            .iter()
            .filter(|r| r["sentiment"] == "negative")
            .count(),
        3,
        "{items:?}"
    );
    // 3 of 6 negative (50 % > 40 %): one warning for the statement and one
    // for the account.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(spikes(&app.recent_actions().await), 2);
    // More negative replies in the same episode: no new warning.
    public_reply(&app, post, "n9", "Still down. Pathetic and useless.").await;
    assert_eq!(wait_items(&app, &path, 7, 15).await.len(), 7);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(spikes(&app.recent_actions().await), 2);
}

#[tokio::test]
async fn sandbox_replies_are_validated() {
    let app = spawn_app_with(|_| {}).await;
    let (_, delivery, _) = published(&app, "Hello.").await;
    let post = delivery["remote_id"].as_str().unwrap();
    let reply = |to: String, body: Value| {
        let app = &app;
        async move {
            app.post(&app.admin, &format!("/v1/sandbox/posts/{to}/replies"), body)
                .await
        }
    };
    reply(post.into(), json!({"author": " ", "text": "x"}))
        .await
        .invalid("author");
    reply(post.into(), json!({"author": "a", "text": ""}))
        .await
        .invalid("text");
    let missing = reply(
        uuid::Uuid::now_v7().to_string(),
        json!({"author": "a", "text": "b"}),
    )
    .await;
    assert_eq!(missing.status, 404);
    let missing = app
        .get(&app.admin, &format!("/v1/replies/{}", uuid::Uuid::now_v7()))
        .await;
    assert_eq!(missing.status, 404);
}

/// The whole loop against the fake Mastodon: publish, collect (HTML to
/// text, our own posts left out), answer with a mention, and a rate limit
/// that moves the next poll to the reset instead of hammering.
#[tokio::test]
async fn mastodon_replies_are_collected_and_answered_through_herald() {
    use herald::fakes::mastodon::FakeMastodon;
    let fake = FakeMastodon::start().await;
    let app = spawn_app_with(|s| s.replies.fast_s = 1).await;
    let token = fake.add_account("brand");
    let statement = app
        .approved_with("crisis", &[("mastodon", "Batch 42 is recalled.")])
        .await;
    let account = app
        .add_account(
            "mastodon",
            "Brand",
            Some(&fake.base_url()),
            json!({"access_token": token}),
        )
        .await;
    let delivery = app.publish_now(&statement, &account).await;
    assert_eq!(delivery["status"], "published", "{delivery}");
    let post = delivery["remote_id"].as_str().unwrap().to_string();
    let reply_id = fake
        .add_reply(
            &post,
            "jo@other.example",
            "Why was I not told? This is unacceptable!",
        )
        .unwrap();

    let path = format!("/v1/replies?statement_id={statement}");
    let items = wait_items(&app, &path, 1, 15).await;
    assert_eq!(items.len(), 1, "{items:?}");
    let reply = &items[0];
    assert_eq!(reply["author"], "jo@other.example");
    assert_eq!(reply["remote_id"], reply_id.as_str());
    assert_eq!(reply["parent_remote_id"], post.as_str());
    assert_eq!(
        reply["text"], "Why was I not told? This is unacceptable!",
        "HTML converted"
    );
    assert_eq!(reply["follow_up"], "needs_response");

    // The answer goes out as a reply to Jo's status, mentioning Jo.
    let editor = app.key(Role::Editor);
    let id = reply["id"].as_str().unwrap();
    let answer = app
        .post(
            &editor,
            &format!("/v1/replies/{id}/respond"),
            json!({"text": "We are sorry. Your refund is at https://example.com/recall"}),
        )
        .await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    let answer_delivery = answer.json()["delivery"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.wait_status(&answer_delivery, "published", 20).await;
    let sent: Vec<_> = fake
        .posts()
        .into_iter()
        .filter(|p| p.in_reply_to_id.as_deref() == Some(reply_id.as_str()))
        .collect();
    assert_eq!(sent.len(), 1, "answered exactly once");
    assert!(
        sent[0].text.starts_with("@jo@other.example We are sorry."),
        "{}",
        sent[0].text
    );

    // Our answer is not collected as a reply on the next polls.
    wait_more_polls(&app, delivery["id"].as_str().unwrap(), 2).await;
    let all = app.get(&app.admin, &path).await.ok();
    assert_eq!(all["items"].as_array().unwrap().len(), 1, "{all}");

    // A rate limit: the poll waits for Mastodon's reset instead of polling
    // every second.
    let before = fake.requests_to("/api/v1/statuses/");
    fake.rate_limit_next(1, Duration::from_secs(30));
    tokio::time::sleep(Duration::from_secs(4)).await;
    let during = fake.requests_to("/api/v1/statuses/") - before;
    assert!(
        during <= 2,
        "{during} context reads during a 30 s rate limit"
    );
    let mut conn = app.pool.get().unwrap();
    let poll = herald::replies::store::poll_of(&mut conn, delivery["id"].as_str().unwrap())
        .unwrap()
        .unwrap();
    assert!(poll.last_error.unwrap_or_default().contains("rate limited"));
    assert!(poll.next_poll_at > herald::db::now() + chrono::Duration::seconds(20));
}

/// Telegram through Herald: the collector reads the bot's update queue once
/// per run, and the comments in the channel's discussion group show up as
/// replies to the channel post.
#[tokio::test]
async fn telegram_comments_are_collected_through_herald() {
    use herald::fakes::telegram::FakeTelegram;
    let fake = FakeTelegram::start().await;
    let api = fake.base_url();
    let app = spawn_app_with(|s| {
        s.networks.telegram_api_url = api;
        s.replies.fast_s = 1;
    })
    .await;
    let token = fake.add_bot("herald_bot");
    let channel = fake.add_channel(&token, Some("kettle_news"));
    fake.add_discussion_group(&token, channel);
    let account = app
        .add_account(
            "telegram",
            "Kettle news",
            None,
            json!({"bot_token": token, "chat_id": "@kettle_news"}),
        )
        .await;
    let statement = app
        .approved_with("crisis", &[("telegram", "Batch 42 is recalled.")])
        .await;
    let delivery = app.publish_now(&statement, &account).await;
    assert_eq!(delivery["status"], "published", "{delivery}");
    let post = delivery["remote_id"].as_str().unwrap();
    let comment = fake
        .add_reply(post, "alice", "Is batch 41 affected too?")
        .unwrap();
    fake.add_reply(&comment, "bob", "Same question, no answer yet. Terrible.")
        .unwrap();
    let items = wait_items(
        &app,
        &format!("/v1/replies?statement_id={statement}"),
        2,
        15,
    )
    .await;
    assert_eq!(items.len(), 2, "{items:?}");
    let alice = by_author(&items, "alice");
    assert_eq!(alice["parent_remote_id"], post);
    assert_eq!(alice["follow_up"], "needs_response");
    let bob = by_author(&items, "bob");
    assert_eq!(bob["parent_remote_id"], comment.as_str());
    assert!(bob["url"]
        .as_str()
        .unwrap()
        .starts_with("https://t.me/kettle_news/"));
}
