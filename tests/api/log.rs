use std::process::Command;

use diesel::prelude::*;
use herald::keys::Role;
use serde_json::json;

use crate::helpers::{is_postgres, make_named_key, spawn_app};

#[tokio::test]
async fn every_change_is_logged_with_its_actor_and_the_chain_verifies() {
    let app = spawn_app().await;
    let (author_name, author) = make_named_key(&app.pool, Role::Editor);
    let (approver_name, approver) = make_named_key(&app.pool, Role::Approver);
    let id = app.in_review(&author, "minor").await;
    app.act(&approver, &format!("/v1/statements/{id}/approve"))
        .await
        .ok();
    app.act(&author, &format!("/v1/statements/{id}/retire"))
        .await
        .ok();

    let actions = app.log_actions(&id).await;
    let expected = [
        ("statement.created", &author_name),
        ("statement.submitted", &author_name),
        ("statement.approved", &approver_name),
        ("statement.retired", &author_name),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(a, n)| (a.to_string(), n.to_string()))
        .collect();
    assert_eq!(actions, expected);

    let verify = app.get(&app.admin, "/v1/log/verify").await.ok();
    assert_eq!(verify["ok"], true);
    assert!(verify["events"].as_i64().unwrap() >= 6, "{verify}");
}

#[tokio::test]
async fn the_log_filters_by_action_actor_and_time_and_pages() {
    let app = spawn_app().await;
    let (name, editor) = make_named_key(&app.pool, Role::Editor);
    for _ in 0..3 {
        app.draft(&editor, "minor").await;
    }
    let created = app
        .get(&app.admin, "/v1/log?action=statement.created")
        .await
        .ok();
    assert_eq!(created["items"].as_array().unwrap().len(), 3);
    let mine = app
        .get(&app.admin, &format!("/v1/log?actor={name}&limit=2"))
        .await
        .ok();
    assert_eq!(mine["items"].as_array().unwrap().len(), 2);
    let next = mine["next_cursor"].as_str().unwrap();
    let rest = app
        .get(
            &app.admin,
            &format!("/v1/log?actor={name}&limit=2&cursor={next}"),
        )
        .await
        .ok();
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert!(rest["next_cursor"].is_null());
    assert!(
        mine["items"][0]["seq"].as_i64() > mine["items"][1]["seq"].as_i64(),
        "newest first"
    );

    let future = app
        .get(&app.admin, "/v1/log?from=2999-01-01T00:00:00Z")
        .await
        .ok();
    assert!(future["items"].as_array().unwrap().is_empty());
    let past = app
        .get(&app.admin, "/v1/log?to=2000-01-01T00:00:00%2B01:00")
        .await
        .ok();
    assert!(past["items"].as_array().unwrap().is_empty());
    let all = app
        .get(
            &app.admin,
            "/v1/log?from=2000-01-01T00:00:00Z&to=2999-01-01T00:00:00Z",
        )
        .await
        .ok();
    assert!(all["items"].as_array().unwrap().len() >= 4);
}

#[tokio::test]
async fn the_csv_export_has_a_header_and_one_row_per_event() {
    let app = spawn_app().await;
    let id = app.draft(&app.admin, "minor").await;
    app.put(
        &app.admin,
        &format!("/v1/statements/{id}/variants/x"),
        json!({"text": "=cmd|' /C calc'!A0"}),
    )
    .await
    .ok();
    let reply = app
        .get(&app.admin, &format!("/v1/log.csv?statement_id={id}"))
        .await;
    assert_eq!(reply.status, 200);
    assert!(reply.content_type.starts_with("text/csv"));
    let mut reader = csv::Reader::from_reader(reply.text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    assert_eq!(&headers[0], "seq");
    assert_eq!(&headers[3], "action");
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(&rows[0][3], "statement.edited");
    assert_eq!(&rows[1][3], "statement.created");
    let viewer = app.key(Role::Viewer);
    app.get(&viewer, "/v1/log.csv").await.problem(403);
}

#[tokio::test]
async fn an_edited_row_breaks_the_chain_and_both_checks_name_it() {
    let app = spawn_app().await;
    for _ in 0..3 {
        app.draft(&app.admin, "minor").await;
    }
    {
        let mut conn = app.pool.get().unwrap();
        // Someone with database access defeats the append-only guard and rewrites history.
        let drop_guard = if is_postgres() {
            "DROP TRIGGER publish_log_no_change ON publish_log"
        } else {
            "DROP TRIGGER publish_log_no_update"
        };
        diesel::sql_query(drop_guard).execute(&mut conn).unwrap();
        diesel::sql_query("UPDATE publish_log SET actor = 'mallory' WHERE seq = 3")
            .execute(&mut conn)
            .unwrap();
    }
    let verify = app.get(&app.admin, "/v1/log/verify").await.ok();
    assert_eq!(verify["ok"], false);
    assert_eq!(verify["first_bad_seq"], 3);
    assert_eq!(verify["events"], 2);

    let out = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["log", "verify"])
        .env("HERALD_DATABASE_URL", &app.database_url)
        .env("HERALD_LOG", "error")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("seq 3"), "{stdout}");
}

#[tokio::test]
async fn the_log_refuses_updates_and_deletes() {
    let app = spawn_app().await;
    app.draft(&app.admin, "minor").await;
    let mut conn = app.pool.get().unwrap();
    assert!(diesel::sql_query("UPDATE publish_log SET actor = 'x'")
        .execute(&mut conn)
        .is_err());
    assert!(diesel::sql_query("DELETE FROM publish_log")
        .execute(&mut conn)
        .is_err());
}

#[tokio::test]
async fn review_events_carry_the_digest_of_the_exact_content_reviewed() {
    let app = spawn_app().await;
    let editor = app.key(Role::Editor);
    let id = app.in_review(&editor, "minor").await;
    let approver = app.key(Role::Approver);
    let approved = app
        .act(&approver, &format!("/v1/statements/{id}/approve"))
        .await
        .ok();
    let digest = approved["content_sha256"].as_str().unwrap().to_string();
    assert_eq!(digest.len(), 64);
    let log = app
        .get(&app.admin, &format!("/v1/log?statement_id={id}"))
        .await
        .ok();
    let details_of = |action: &str| {
        log["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["action"] == action)
            .unwrap()["details"]
            .clone()
    };
    assert_eq!(
        details_of("statement.submitted")["content_sha256"],
        digest.as_str()
    );
    assert_eq!(
        details_of("statement.approved")["content_sha256"],
        digest.as_str()
    );

    let reviser = app.key(Role::Editor);
    let v2 = app
        .act(&reviser, &format!("/v1/statements/{id}/revise"))
        .await
        .ok();
    assert_eq!(
        v2["content_sha256"],
        digest.as_str(),
        "a revision starts from the same content"
    );
    let v2_id = v2["id"].as_str().unwrap();
    let edited = app
        .put(
            &reviser,
            &format!("/v1/statements/{v2_id}/variants/bluesky"),
            json!({"text": "Batch 43 too."}),
        )
        .await
        .ok();
    assert_ne!(edited["content_sha256"], digest.as_str());
    let log = app
        .get(
            &app.admin,
            &format!("/v1/log?statement_id={v2_id}&action=statement.edited"),
        )
        .await
        .ok();
    assert_eq!(log["items"][0]["details"]["text"], "Batch 43 too.");
}

#[tokio::test]
async fn an_action_ending_in_a_star_selects_a_family_of_actions() {
    let app = spawn_app().await;
    let id = app.draft(&app.admin, "minor").await;
    app.act(&app.admin, &format!("/v1/statements/{id}/submit"))
        .await
        .ok();
    let statement_events = app.get(&app.admin, "/v1/log?action=statement.*").await.ok();
    let actions: Vec<&str> = statement_events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["statement.submitted", "statement.created"]);
    let key_events = app.get(&app.admin, "/v1/log?action=key.*").await.ok();
    assert!(key_events["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["action"].as_str().unwrap().starts_with("key.")));
    assert!(!key_events["items"].as_array().unwrap().is_empty());
    let none = app.get(&app.admin, "/v1/log?action=stat_ment.*").await.ok();
    assert!(
        none["items"].as_array().unwrap().is_empty(),
        "_ is not a wildcard"
    );
}
