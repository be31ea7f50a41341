use herald::keys::Role;
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn creating_a_statement_returns_a_draft_with_a_counter_per_variant() {
    let app = spawn_app().await;
    let editor = app.key(Role::Editor);
    let s = app
        .create_statement(
            &editor,
            json!({
                "title": "  Outage on payments  ",
                "kind": "crisis",
                "severity": "severe",
                "variants": [
                    {"platform": "x", "text": "Payments are down. Updates: https://status.example.com/incidents/2026-11-23"},
                    {"platform": "telegram", "text": "Payments are down 😟"}
                ]
            }),
        )
        .await;
    assert_eq!(s["status"], "draft");
    assert_eq!(s["version"], 1);
    assert_eq!(s["title"], "Outage on payments");
    assert_eq!(s["approvals_required"], 2);
    let x = s["variants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["platform"] == "x")
        .unwrap();
    // "Payments are down. Updates: " is 28, the URL counts 23.
    assert_eq!(x["used"], 28 + 23);
    assert_eq!(x["limit"], 280);
    let telegram = s["variants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["platform"] == "telegram")
        .unwrap();
    assert_eq!(
        telegram["used"],
        18 + 2,
        "an emoji outside the BMP is two UTF-16 units"
    );
    assert_eq!(telegram["limit"], 4096);

    let id = s["id"].as_str().unwrap();
    let fetched = app.get(&editor, &format!("/v1/statements/{id}")).await.ok();
    assert_eq!(fetched["id"], id);
    assert_eq!(fetched["variants"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_crisis_without_severity_is_moderate_and_routine_statements_have_none() {
    let app = spawn_app().await;
    let s = app
        .create_statement(&app.admin, json!({"title": "t", "kind": "crisis"}))
        .await;
    assert_eq!(s["severity"], "moderate");
    let r = app
        .create_statement(&app.admin, json!({"title": "t", "kind": "routine"}))
        .await;
    assert!(r["severity"].is_null());
    app.post(
        &app.admin,
        "/v1/statements",
        json!({"title": "t", "kind": "routine", "severity": "minor"}),
    )
    .await
    .invalid("severity");
}

#[tokio::test]
async fn two_variants_for_one_platform_are_refused() {
    let app = spawn_app().await;
    app.post(
        &app.admin,
        "/v1/statements",
        json!({"title": "t", "kind": "routine", "variants": [
            {"platform": "discord", "text": "a"}, {"platform": "discord", "text": "b"}
        ]}),
    )
    .await
    .invalid("variants[1].platform");
}

#[tokio::test]
async fn lists_filter_by_status_and_kind_and_page_with_a_cursor() {
    let app = spawn_app().await;
    let editor = app.key(Role::Editor);
    let mut ids = Vec::new();
    for i in 0..5 {
        let kind = if i % 2 == 0 { "crisis" } else { "routine" };
        let s = app
            .create_statement(&editor, json!({"title": format!("s{i}"), "kind": kind, "variants": [{"platform": "sandbox", "text": "hi"}]}))
            .await;
        ids.push(s["id"].as_str().unwrap().to_string());
    }
    app.act(&editor, &format!("/v1/statements/{}/submit", ids[0]))
        .await
        .ok();

    let page1 = app.get(&editor, "/v1/statements?limit=2").await.ok();
    let got: Vec<&str> = page1["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, [ids[4].as_str(), ids[3].as_str()], "newest first");
    let cursor = page1["next_cursor"].as_str().unwrap();
    let page2 = app
        .get(&editor, &format!("/v1/statements?limit=2&cursor={cursor}"))
        .await
        .ok();
    let got2: Vec<&str> = page2["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(got2, [ids[2].as_str(), ids[1].as_str()]);
    let cursor = page2["next_cursor"].as_str().unwrap();
    let page3 = app
        .get(&editor, &format!("/v1/statements?limit=2&cursor={cursor}"))
        .await
        .ok();
    assert_eq!(page3["items"].as_array().unwrap().len(), 1);
    assert!(page3["next_cursor"].is_null());

    let routine = app.get(&editor, "/v1/statements?kind=routine").await.ok();
    assert_eq!(routine["items"].as_array().unwrap().len(), 2);
    let in_review = app
        .get(&editor, "/v1/statements?status=in_review")
        .await
        .ok();
    let items = in_review["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], ids[0].as_str());
    app.get(&editor, "/v1/statements?status=published")
        .await
        .invalid("status");
}

#[tokio::test]
async fn a_draft_can_be_edited_and_its_variants_replaced_or_removed() {
    let app = spawn_app().await;
    let editor = app.key(Role::Editor);
    let id = app.draft(&editor, "minor").await;
    let s = app
        .patch(
            &editor,
            &format!("/v1/statements/{id}"),
            json!({"title": "Kettle recall (update)", "severity": "severe"}),
        )
        .await
        .ok();
    assert_eq!(s["title"], "Kettle recall (update)");
    assert_eq!(s["severity"], "severe");
    assert_eq!(s["approvals_required"], 2);

    let s = app
        .put(
            &editor,
            &format!("/v1/statements/{id}/variants/discord"),
            json!({"text": "Recall: stop using the K-200."}),
        )
        .await
        .ok();
    assert_eq!(s["variants"].as_array().unwrap().len(), 3);
    let s = app
        .put(
            &editor,
            &format!("/v1/statements/{id}/variants/discord"),
            json!({"text": "Recall!"}),
        )
        .await
        .ok();
    let discord = s["variants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["platform"] == "discord")
        .unwrap()
        .clone();
    assert_eq!(discord["text"], "Recall!");
    let s = app
        .delete(&editor, &format!("/v1/statements/{id}/variants/mastodon"))
        .await
        .ok();
    let platforms: Vec<&str> = s["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["platform"].as_str().unwrap())
        .collect();
    assert_eq!(platforms, ["bluesky", "discord"]);
    app.delete(&editor, &format!("/v1/statements/{id}/variants/mastodon"))
        .await
        .invalid("platform");

    let s = app
        .patch(
            &editor,
            &format!("/v1/statements/{id}"),
            json!({"kind": "routine"}),
        )
        .await
        .ok();
    assert_eq!(s["kind"], "routine");
    assert!(
        s["severity"].is_null(),
        "switching to routine drops the severity"
    );

    let actions: Vec<String> = app
        .log_actions(&id)
        .await
        .into_iter()
        .map(|(a, _)| a)
        .collect();
    assert_eq!(
        actions.iter().filter(|a| *a == "statement.edited").count(),
        5
    );
}

#[tokio::test]
async fn approved_content_is_frozen_and_in_review_content_too() {
    let app = spawn_app().await;
    let editor = app.key(Role::Editor);
    let id = app.in_review(&editor, "minor").await;
    app.patch(
        &editor,
        &format!("/v1/statements/{id}"),
        json!({"title": "x"}),
    )
    .await
    .problem(409);

    let approver = app.key(Role::Approver);
    app.act(&approver, &format!("/v1/statements/{id}/approve"))
        .await
        .ok();
    let p = app
        .patch(
            &editor,
            &format!("/v1/statements/{id}"),
            json!({"title": "x"}),
        )
        .await
        .problem(409);
    assert!(p["detail"].as_str().unwrap().contains("revise"), "{p}");
    app.put(
        &editor,
        &format!("/v1/statements/{id}/variants/x"),
        json!({"text": "x"}),
    )
    .await
    .problem(409);
    app.delete(&editor, &format!("/v1/statements/{id}/variants/bluesky"))
        .await
        .problem(409);
    app.act(&editor, &format!("/v1/statements/{id}/submit"))
        .await
        .problem(409);

    let s = app.get(&editor, &format!("/v1/statements/{id}")).await.ok();
    assert_eq!(s["title"], "Kettle recall");
    assert_eq!(s["status"], "approved");
}

#[tokio::test]
async fn revising_an_approved_statement_makes_a_linked_draft_and_approval_supersedes_the_old_one() {
    let app = spawn_app().await;
    let editor = app.key(Role::Editor);
    let v1 = app.approved(&editor).await;
    let reviser = app.key(Role::Editor);
    let reply = app
        .act(&reviser, &format!("/v1/statements/{v1}/revise"))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let v2 = reply.json();
    let v2_id = v2["id"].as_str().unwrap().to_string();
    assert_ne!(v2_id, v1);
    assert_eq!(v2["version"], 2);
    assert_eq!(v2["status"], "draft");
    assert_eq!(v2["previous_version_id"], v1.as_str());
    assert_eq!(v2["lineage_id"], v1.as_str());
    assert_eq!(
        v2["variants"].as_array().unwrap().len(),
        2,
        "variants are copied"
    );

    app.act(&editor, &format!("/v1/statements/{v1}/revise"))
        .await
        .problem(409);

    app.put(
        &reviser,
        &format!("/v1/statements/{v2_id}/variants/mastodon"),
        json!({"text": "Update: batch 43 too."}),
    )
    .await
    .ok();
    app.act(&reviser, &format!("/v1/statements/{v2_id}/submit"))
        .await
        .ok();
    let old = app.get(&editor, &format!("/v1/statements/{v1}")).await.ok();
    assert_eq!(
        old["status"], "approved",
        "the old version stays approved until the new one is"
    );

    let approver = app.key(Role::Approver);
    app.act(&approver, &format!("/v1/statements/{v2_id}/approve"))
        .await
        .ok();
    let old = app.get(&editor, &format!("/v1/statements/{v1}")).await.ok();
    assert_eq!(old["status"], "superseded");
    let versions = app
        .get(&editor, &format!("/v1/statements?lineage_id={v1}"))
        .await
        .ok();
    assert_eq!(versions["items"].as_array().unwrap().len(), 2);

    let actions: Vec<String> = app
        .log_actions(&v1)
        .await
        .into_iter()
        .map(|(a, _)| a)
        .collect();
    assert!(
        actions.contains(&"statement.superseded".to_string()),
        "{actions:?}"
    );
    let actions: Vec<String> = app
        .log_actions(&v2_id)
        .await
        .into_iter()
        .map(|(a, _)| a)
        .collect();
    assert_eq!(actions[0], "statement.revised");
}

#[tokio::test]
async fn drafts_cannot_be_revised_and_retired_statements_stay_retired() {
    let app = spawn_app().await;
    let id = app.draft(&app.admin, "minor").await;
    app.act(&app.admin, &format!("/v1/statements/{id}/revise"))
        .await
        .problem(409);
    let s = app
        .act(&app.admin, &format!("/v1/statements/{id}/retire"))
        .await
        .ok();
    assert_eq!(s["status"], "retired");
    assert!(s["retired_at"].is_string());
    app.act(&app.admin, &format!("/v1/statements/{id}/retire"))
        .await
        .problem(409);
    app.act(&app.admin, &format!("/v1/statements/{id}/submit"))
        .await
        .problem(409);
}

#[tokio::test]
async fn submitting_needs_at_least_one_variant() {
    let app = spawn_app().await;
    let s = app
        .create_statement(&app.admin, json!({"title": "empty", "kind": "routine"}))
        .await;
    let id = s["id"].as_str().unwrap();
    app.act(&app.admin, &format!("/v1/statements/{id}/submit"))
        .await
        .invalid("variants");
}

#[tokio::test]
async fn a_statement_may_name_its_language() {
    let app = crate::helpers::spawn_app().await;
    let editor = app.key(herald::keys::Role::Editor);
    let body = |language: serde_json::Value| {
        serde_json::json!({"title": "Recall", "kind": "routine", "language": language,
            "variants": [{"platform": "sandbox", "text": "Hello"}]})
    };
    app.post(
        &editor,
        "/v1/statements",
        body(serde_json::json!("english")),
    )
    .await
    .invalid("language");
    let created = app
        .create_statement(&editor, body(serde_json::json!("pt-BR")))
        .await;
    assert_eq!(created["language"], "pt-BR");
    let id = created["id"].as_str().unwrap();
    let before = created["content_sha256"].clone();
    let changed = app
        .patch(
            &editor,
            &format!("/v1/statements/{id}"),
            serde_json::json!({"language": "PT"}),
        )
        .await
        .ok();
    assert_eq!(changed["language"], "pt");
    assert_ne!(
        changed["content_sha256"], before,
        "the language is part of the approved content"
    );
    let cleared = app
        .patch(
            &editor,
            &format!("/v1/statements/{id}"),
            serde_json::json!({"language": null}),
        )
        .await
        .ok();
    assert!(cleared["language"].is_null());
    let untouched = app
        .patch(
            &editor,
            &format!("/v1/statements/{id}"),
            serde_json::json!({"title": "Recall 2"}),
        )
        .await
        .ok();
    assert!(untouched["language"].is_null());
}
