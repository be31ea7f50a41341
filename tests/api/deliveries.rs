//! Scheduling, the delivery state machine and the pause switch, on the
//! built-in sandbox network.

use herald::keys::Role;
use serde_json::json;

use crate::helpers::{in_ms, spawn_app, TestApp};

async fn sandbox_setup(app: &TestApp, kind: &str) -> (String, String) {
    let statement = app
        .approved_with(
            kind,
            &[(
                "sandbox",
                "Our service is back. Thank you for your patience.",
            )],
        )
        .await;
    let account = app.add_account("sandbox", "Drill", None, json!({})).await;
    (statement, account)
}

#[tokio::test]
async fn a_statement_publishes_at_its_planned_instant_and_not_before() {
    let app = spawn_app().await;
    let (statement, account) = sandbox_setup(&app, "crisis").await;
    let reply = app
        .schedule(
            &statement,
            &[&account],
            json!({"at": in_ms(1500), "timezone": "Europe/Paris"}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let body = reply.json();
    let delivery = &body["deliveries"][0];
    assert_eq!(delivery["status"], "scheduled");
    assert_eq!(delivery["platform"], "sandbox");
    assert_eq!(delivery["timezone"], "Europe/Paris");
    assert_eq!(delivery["statement_version"], 1);
    let id = delivery["id"].as_str().unwrap();

    let done = app.wait_status(id, "published", 20).await;
    let planned =
        chrono::DateTime::parse_from_rfc3339(done["planned_at"].as_str().unwrap()).unwrap();
    let published =
        chrono::DateTime::parse_from_rfc3339(done["published_at"].as_str().unwrap()).unwrap();
    assert!(published >= planned, "published before its time: {done}");
    let lateness = done["lateness_ms"].as_i64().unwrap();
    assert!(lateness >= 0, "{done}");
    assert_eq!(done["attempts"], 1);
    assert_eq!(done["attempt_log"][0]["outcome"], "published");
    assert!(done["attempt_log"][0]["ended_at"].is_string());

    // The sandbox network holds exactly one post, with the variant's text.
    let posts = app
        .get(
            &app.admin,
            &format!("/v1/sandbox/posts?account_id={account}"),
        )
        .await
        .ok();
    let items = posts["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(
        items[0]["text"],
        "Our service is back. Thank you for your patience."
    );
    assert_eq!(items[0]["delivery_id"], id);
    assert_eq!(done["remote_id"], items[0]["id"]);
    let created =
        chrono::DateTime::parse_from_rfc3339(items[0]["created_at"].as_str().unwrap()).unwrap();
    assert!(created >= planned);
    let url = done["remote_url"].as_str().unwrap();
    app.get(&app.admin, url).await.ok();

    // The log tells the whole story, in order, in one chain.
    let actions: Vec<String> = app
        .log_actions(&statement)
        .await
        .into_iter()
        .map(|(a, _)| a)
        .collect();
    let tail: Vec<&str> = actions
        .iter()
        .map(String::as_str)
        .skip_while(|a| *a != "delivery.scheduled")
        .collect();
    assert_eq!(
        tail,
        [
            "delivery.scheduled",
            "delivery.claimed",
            "delivery.published"
        ]
    );
    app.get(&app.admin, "/v1/log/verify").await.ok();
}

#[tokio::test]
async fn scheduling_refuses_what_cannot_be_published() {
    let app = spawn_app().await;
    let editor = app.key(Role::Editor);
    let (statement, sandbox) = sandbox_setup(&app, "crisis").await;
    let mastodon = app
        .add_account(
            "mastodon",
            "Brand",
            Some("https://mastodon.example"),
            json!({"access_token": "t"}),
        )
        .await;

    // Not approved: 409.
    let draft = app.draft(&editor, "minor").await;
    app.schedule(&draft, &[&sandbox], json!({"now": true}))
        .await
        .problem(409);
    // No variant for the account's network.
    app.schedule(&statement, &[&sandbox, &mastodon], json!({"now": true}))
        .await
        .invalid("accounts[1]");
    // Unknown account, malformed id, duplicate.
    let ghost = uuid::Uuid::now_v7().to_string();
    app.schedule(&statement, &[&ghost], json!({"now": true}))
        .await
        .invalid("accounts[0]");
    app.schedule(&statement, &["nope"], json!({"now": true}))
        .await
        .invalid("accounts[0]");
    app.schedule(&statement, &[&sandbox, &sandbox], json!({"now": true}))
        .await
        .invalid("accounts[1]");
    app.schedule(&statement, &[], json!({"now": true}))
        .await
        .invalid("accounts");
    // Time: in the past, none, two at once, no offset, bad zone, DST gap.
    app.schedule(
        &statement,
        &[&sandbox],
        json!({"at": "2020-01-01T00:00:00Z"}),
    )
    .await
    .invalid("at");
    app.schedule(&statement, &[&sandbox], json!({}))
        .await
        .invalid("at");
    app.schedule(
        &statement,
        &[&sandbox],
        json!({"now": true, "at": in_ms(60_000)}),
    )
    .await
    .invalid("at");
    app.schedule(
        &statement,
        &[&sandbox],
        json!({"at": "2030-01-01T09:00:00"}),
    )
    .await
    .invalid("at");
    app.schedule(
        &statement,
        &[&sandbox],
        json!({"local_time": "2030-01-01T09:00", "timezone": "Europe/Pariss"}),
    )
    .await
    .invalid("timezone");
    let gap = app
        .schedule(
            &statement,
            &[&sandbox],
            json!({"local_time": "2030-03-31T02:30", "timezone": "Europe/Paris"}),
        )
        .await
        .invalid("local_time");
    assert!(gap["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("does not exist"));
    app.schedule(
        &statement,
        &[&sandbox],
        json!({"now": true, "max_lateness_s": 1}),
    )
    .await
    .invalid("max_lateness_s");
    // An account that needs reconnecting.
    {
        use diesel::prelude::*;
        use herald::db::schema::accounts;
        let mut conn = app.pool.get().unwrap();
        diesel::update(accounts::table.find(&sandbox))
            .set((
                accounts::status.eq("needs_reauth"),
                accounts::status_reason.eq(Some("test")),
            ))
            .execute(&mut conn)
            .unwrap();
    }
    let p = app
        .schedule(&statement, &[&sandbox], json!({"now": true}))
        .await
        .invalid("accounts[0]");
    assert!(p["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("needs_reauth"));
    // A viewer may not schedule.
    let viewer = app.key(Role::Viewer);
    app.send(
        app.client
            .post(app.url(&format!("/v1/statements/{statement}/deliveries")))
            .bearer_auth(viewer)
            .json(&json!({"accounts": [sandbox], "now": true})),
    )
    .await
    .problem(403);
    // Nothing was scheduled by any refused request.
    assert_eq!(
        app.count_status("scheduled") + app.count_status("published"),
        0
    );
}

#[tokio::test]
async fn local_times_follow_the_zone_rules_and_ambiguity_is_reported() {
    let app = spawn_app().await;
    let (statement, account) = sandbox_setup(&app, "routine").await;
    // Paris, clocks go back on 2030-10-27: 02:30 happens twice; the earlier is CEST (UTC+2).
    let body = app
        .schedule(
            &statement,
            &[&account],
            json!({"local_time": "2030-10-27T02:30", "timezone": "Europe/Paris"}),
        )
        .await
        .ok();
    assert_eq!(body["planned_at"], "2030-10-27T00:30:00Z");
    assert!(body["notice"].as_str().unwrap().contains("twice"), "{body}");
    // New York in summer (EDT, UTC-4) and winter (EST, UTC-5).
    let summer = app
        .schedule(
            &statement,
            &[&account],
            json!({"local_time": "2030-07-04T09:00:00", "timezone": "America/New_York"}),
        )
        .await
        .ok();
    assert_eq!(
        summer["deliveries"][0]["planned_at"],
        "2030-07-04T13:00:00Z"
    );
    assert!(summer["notice"].is_null());
    let winter = app
        .schedule(
            &statement,
            &[&account],
            json!({"local_time": "2030-12-04T09:00", "timezone": "America/New_York"}),
        )
        .await
        .ok();
    assert_eq!(winter["planned_at"], "2030-12-04T14:00:00Z");
    // An instant with an offset is kept as given.
    let at = app
        .schedule(
            &statement,
            &[&account],
            json!({"at": "2030-06-01T09:00:00+02:00"}),
        )
        .await
        .ok();
    assert_eq!(at["planned_at"], "2030-06-01T07:00:00Z");
    let list = app
        .get(&app.admin, &format!("/v1/deliveries?statement_id={statement}&from=2030-07-01T00:00:00Z&to=2030-12-31T00:00:00Z"))
        .await
        .ok();
    // July, the October night and December; not June.
    assert_eq!(list["items"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn cancel_and_reschedule_follow_the_state_machine() {
    let app = spawn_app().await;
    let (statement, account) = sandbox_setup(&app, "crisis").await;
    let editor = app.key(Role::Editor);
    let body = app
        .schedule(&statement, &[&account], json!({"at": in_ms(3_600_000)}))
        .await
        .ok();
    let id = body["deliveries"][0]["id"].as_str().unwrap().to_string();
    // Reschedule to a new time, then to now: it publishes.
    let moved = app
        .post(
            &editor,
            &format!("/v1/deliveries/{id}/reschedule"),
            json!({"local_time": "2031-01-15T10:00", "timezone": "Europe/Paris"}),
        )
        .await
        .ok();
    assert_eq!(moved["planned_at"], "2031-01-15T09:00:00Z");
    app.post(
        &editor,
        &format!("/v1/deliveries/{id}/reschedule"),
        json!({"at": "yesterday"}),
    )
    .await
    .invalid("at");
    app.post(
        &editor,
        &format!("/v1/deliveries/{id}/reschedule"),
        json!({"now": true}),
    )
    .await
    .ok();
    app.wait_status(&id, "published", 20).await;
    // Published: neither cancellable nor reschedulable.
    app.act(&editor, &format!("/v1/deliveries/{id}/cancel"))
        .await
        .problem(409);
    app.post(
        &editor,
        &format!("/v1/deliveries/{id}/reschedule"),
        json!({"now": true}),
    )
    .await
    .problem(409);
    // A second one is cancelled before its time and never published.
    let body = app
        .schedule(&statement, &[&account], json!({"at": in_ms(1500)}))
        .await
        .ok();
    let second = body["deliveries"][0]["id"].as_str().unwrap().to_string();
    let cancelled = app
        .act(&editor, &format!("/v1/deliveries/{second}/cancel"))
        .await
        .ok();
    assert_eq!(cancelled["status"], "cancelled");
    app.act(&editor, &format!("/v1/deliveries/{second}/cancel"))
        .await
        .problem(409);
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let after = app
        .get(&app.admin, &format!("/v1/deliveries/{second}"))
        .await
        .ok();
    assert_eq!(after["status"], "cancelled");
    assert_eq!(after["attempts"], 0);
    let posts = app.get(&app.admin, "/v1/sandbox/posts").await.ok();
    assert_eq!(posts["items"].as_array().unwrap().len(), 1);
    // Unknown ids.
    app.act(
        &editor,
        &format!("/v1/deliveries/{}/cancel", uuid::Uuid::now_v7()),
    )
    .await
    .problem(404);
    app.get(&app.admin, "/v1/deliveries/not-an-id")
        .await
        .problem(404);
    app.get(&app.admin, "/v1/deliveries?status=lost")
        .await
        .invalid("status");
}

#[tokio::test]
async fn pause_holds_deliveries_and_resume_releases_them() {
    let app = spawn_app().await;
    let (crisis, account) = sandbox_setup(&app, "crisis").await;
    let routine = app
        .approved_with("routine", &[("sandbox", "Try our new kettle colours!")])
        .await;
    let manager = app.key(Role::Manager);
    let editor = app.key(Role::Editor);
    // Only managers pause.
    app.post(
        &editor,
        "/v1/publishing/pause",
        json!({"scope": "all", "reason": "x"}),
    )
    .await
    .problem(403);
    app.post(
        &manager,
        "/v1/publishing/pause",
        json!({"scope": "some", "reason": "x"}),
    )
    .await
    .invalid("scope");
    app.post(
        &manager,
        "/v1/publishing/pause",
        json!({"scope": "all", "reason": " "}),
    )
    .await
    .invalid("reason");

    // Routine pause: the crisis statement goes, the cheerful one waits.
    let paused = app
        .post(
            &manager,
            "/v1/publishing/pause",
            json!({"scope": "routine", "reason": "Recall under way"}),
        )
        .await
        .ok();
    assert_eq!(paused["paused"], true);
    assert_eq!(paused["scope"], "routine");
    assert!(paused["in_flight"].as_array().unwrap().is_empty());
    let r = app
        .schedule(&routine, &[&account], json!({"now": true}))
        .await
        .ok();
    let routine_id = r["deliveries"][0]["id"].as_str().unwrap().to_string();
    let c = app
        .schedule(&crisis, &[&account], json!({"now": true}))
        .await
        .ok();
    let crisis_id = c["deliveries"][0]["id"].as_str().unwrap().to_string();
    app.wait_status(&crisis_id, "published", 20).await;
    let held = app
        .get(&app.admin, &format!("/v1/deliveries/{routine_id}"))
        .await
        .ok();
    assert_eq!(held["status"], "scheduled");
    assert_eq!(held["attempts"], 0);

    // Pause everything: a new crisis delivery waits too.
    app.post(
        &manager,
        "/v1/publishing/pause",
        json!({"scope": "all", "reason": "Legal review"}),
    )
    .await
    .ok();
    let c2 = app
        .schedule(&crisis, &[&account], json!({"now": true}))
        .await
        .ok();
    let crisis_2 = c2["deliveries"][0]["id"].as_str().unwrap().to_string();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let state = app.get(&editor, "/v1/publishing").await.ok();
    assert_eq!(state["scope"], "all");
    assert_eq!(state["reason"], "Legal review");
    assert_eq!(state["deliveries"]["scheduled"], 2);
    assert_eq!(
        app.get(&app.admin, &format!("/v1/deliveries/{crisis_2}"))
            .await
            .ok()["status"],
        "scheduled"
    );

    // Resume: both go out.
    let resumed = app.act(&manager, "/v1/publishing/resume").await.ok();
    assert_eq!(resumed["paused"], false);
    app.wait_status(&routine_id, "published", 20).await;
    app.wait_status(&crisis_2, "published", 20).await;

    let log = app
        .get(&app.admin, "/v1/log?action=publishing.*")
        .await
        .ok();
    let actions: Vec<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "publishing.resumed",
            "publishing.paused",
            "publishing.paused"
        ]
    );
    assert_eq!(log["items"][2]["details"]["reason"], "Recall under way");
}

#[tokio::test]
async fn a_delivery_held_past_its_window_is_missed_not_published_late() {
    let app = spawn_app().await;
    let (statement, account) = sandbox_setup(&app, "crisis").await;
    let manager = app.key(Role::Manager);
    app.post(
        &manager,
        "/v1/publishing/pause",
        json!({"scope": "all", "reason": "Hold"}),
    )
    .await
    .ok();
    let body = app
        .schedule(
            &statement,
            &[&account],
            json!({"now": true, "max_lateness_s": 10}),
        )
        .await
        .ok();
    let id = body["deliveries"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(body["deliveries"][0]["max_lateness_s"], 10);
    // Nothing is claimed while paused; after 10 s the window closes.
    tokio::time::sleep(std::time::Duration::from_secs(11)).await;
    app.act(&manager, "/v1/publishing/resume").await.ok();
    let missed = app.wait_status(&id, "missed", 40).await;
    assert_eq!(missed["attempts"], 0);
    assert!(missed["last_error"]
        .as_str()
        .unwrap()
        .contains("max_lateness_s"));
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    let posts = app.get(&app.admin, "/v1/sandbox/posts").await.ok();
    assert!(posts["items"].as_array().unwrap().is_empty());
    let actions: Vec<String> = app
        .log_actions(&statement)
        .await
        .into_iter()
        .map(|(a, _)| a)
        .collect();
    assert!(
        actions.contains(&"delivery.missed".to_string()),
        "{actions:?}"
    );
    // A missed delivery can be rescheduled on purpose.
    let editor = app.key(Role::Editor);
    app.post(
        &editor,
        &format!("/v1/deliveries/{id}/reschedule"),
        json!({"now": true}),
    )
    .await
    .ok();
    app.wait_status(&id, "published", 20).await;
}

#[tokio::test]
async fn pending_deliveries_follow_a_new_approved_version_and_a_retired_statement_cancels_them() {
    let app = spawn_app().await;
    let (statement, account) = sandbox_setup(&app, "crisis").await;
    let editor = app.key(Role::Editor);
    let body = app
        .schedule(&statement, &[&account], json!({"at": in_ms(4000)}))
        .await
        .ok();
    let id = body["deliveries"][0]["id"].as_str().unwrap().to_string();
    // Open a revision: the delivery is held while it is reviewed.
    let v2 = app
        .act(&editor, &format!("/v1/statements/{statement}/revise"))
        .await
        .ok();
    let v2_id = v2["id"].as_str().unwrap().to_string();
    app.put(
        &editor,
        &format!("/v1/statements/{v2_id}/variants/sandbox"),
        json!({"text": "Corrected: service restored at 10:40."}),
    )
    .await
    .ok();
    app.act(&editor, &format!("/v1/statements/{v2_id}/submit"))
        .await
        .ok();
    tokio::time::sleep(std::time::Duration::from_millis(5000)).await;
    assert_eq!(
        app.get(&app.admin, &format!("/v1/deliveries/{id}"))
            .await
            .ok()["status"],
        "scheduled"
    );
    let approver = app.key(Role::Approver);
    app.act(&approver, &format!("/v1/statements/{v2_id}/approve"))
        .await
        .ok();
    let done = app.wait_status(&id, "published", 20).await;
    assert_eq!(done["statement_id"], v2_id.as_str());
    assert_eq!(done["statement_version"], 2);
    let posts = app.get(&app.admin, "/v1/sandbox/posts").await.ok();
    assert_eq!(
        posts["items"][0]["text"],
        "Corrected: service restored at 10:40."
    );

    // Retiring cancels what is still pending.
    let later = app
        .schedule(&v2_id, &[&account], json!({"at": in_ms(3_600_000)}))
        .await
        .ok();
    let later_id = later["deliveries"][0]["id"].as_str().unwrap().to_string();
    let manager = app.key(Role::Manager);
    app.act(&manager, &format!("/v1/statements/{v2_id}/retire"))
        .await
        .ok();
    let cancelled = app
        .get(&app.admin, &format!("/v1/deliveries/{later_id}"))
        .await
        .ok();
    assert_eq!(cancelled["status"], "cancelled");
    assert!(cancelled["last_error"]
        .as_str()
        .unwrap()
        .contains("retired"));
}

#[tokio::test]
async fn scheduling_honours_an_idempotency_key() {
    let app = spawn_app().await;
    let (statement, account) = sandbox_setup(&app, "crisis").await;
    let editor = app.key(Role::Editor);
    let body = json!({"accounts": [account], "at": in_ms(3_600_000)});
    let send = || {
        app.send(
            app.client
                .post(app.url(&format!("/v1/statements/{statement}/deliveries")))
                .bearer_auth(&editor)
                .header("Idempotency-Key", "schedule-1")
                .json(&body),
        )
    };
    let first = send().await;
    let second = send().await;
    assert_eq!(first.status, 201);
    assert_eq!(second.status, 201);
    assert_eq!(
        first.json()["deliveries"][0]["id"],
        second.json()["deliveries"][0]["id"]
    );
    assert_eq!(app.count_status("scheduled"), 1);
}

#[tokio::test]
async fn removing_an_account_cancels_what_was_scheduled_on_it() {
    let app = spawn_app().await;
    let (statement, account) = sandbox_setup(&app, "crisis").await;
    let body = app
        .schedule(&statement, &[&account], json!({"at": in_ms(3_600_000)}))
        .await
        .ok();
    let id = body["deliveries"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        app.delete(&app.admin, &format!("/v1/accounts/{account}"))
            .await
            .status,
        204
    );
    let cancelled = app
        .get(&app.admin, &format!("/v1/deliveries/{id}"))
        .await
        .ok();
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["last_error"], "the account was removed");
    let log = app
        .get(&app.admin, &format!("/v1/log?delivery_id={id}"))
        .await
        .ok();
    assert_eq!(log["items"][0]["action"], "delivery.cancelled");
}
