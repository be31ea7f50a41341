use herald::keys::Role;
use serde_json::json;

use crate::helpers::{make_named_key, spawn_app};

#[tokio::test]
async fn the_author_cannot_approve_their_own_statement_whatever_their_role() {
    let app = spawn_app().await;
    let manager = app.key(Role::Manager);
    let id = app.in_review(&manager, "minor").await;
    let p = app
        .act(&manager, &format!("/v1/statements/{id}/approve"))
        .await
        .problem(403);
    assert!(p["detail"].as_str().unwrap().contains("four eyes"), "{p}");
    let s = app
        .get(&manager, &format!("/v1/statements/{id}"))
        .await
        .ok();
    assert_eq!(s["status"], "in_review");
    assert!(s["approvals"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn anyone_who_edited_a_version_counts_as_its_author() {
    let app = spawn_app().await;
    let author = app.key(Role::Editor);
    let (_, manager) = make_named_key(&app.pool, Role::Manager);
    let id = app.draft(&author, "minor").await;
    app.put(
        &manager,
        &format!("/v1/statements/{id}/variants/x"),
        json!({"text": "edited by the manager"}),
    )
    .await
    .ok();
    app.act(&author, &format!("/v1/statements/{id}/submit"))
        .await
        .ok();
    app.act(&manager, &format!("/v1/statements/{id}/approve"))
        .await
        .problem(403);
}

#[tokio::test]
async fn one_approval_is_enough_for_minor_moderate_and_routine_statements() {
    let app = spawn_app().await;
    let editor = app.key(Role::Editor);
    for body in [
        json!({"title": "a", "kind": "crisis", "severity": "minor", "variants": [{"platform": "sandbox", "text": "a"}]}),
        json!({"title": "b", "kind": "crisis", "severity": "moderate", "variants": [{"platform": "sandbox", "text": "b"}]}),
        json!({"title": "c", "kind": "routine", "variants": [{"platform": "sandbox", "text": "c"}]}),
    ] {
        let id = app.create_statement(&editor, body).await["id"]
            .as_str()
            .unwrap()
            .to_string();
        app.act(&editor, &format!("/v1/statements/{id}/submit"))
            .await
            .ok();
        let approver = app.key(Role::Approver);
        let s = app
            .act(&approver, &format!("/v1/statements/{id}/approve"))
            .await
            .ok();
        assert_eq!(s["status"], "approved");
        assert!(s["approved_at"].is_string());
        assert_eq!(s["approvals"].as_array().unwrap().len(), 1);
    }
}

#[tokio::test]
async fn a_severe_crisis_needs_two_distinct_approvers() {
    let app = spawn_app().await;
    let editor = app.key(Role::Editor);
    let id = app.in_review(&editor, "severe").await;
    let (first_name, first) = make_named_key(&app.pool, Role::Approver);
    let s = app
        .act(&first, &format!("/v1/statements/{id}/approve"))
        .await
        .ok();
    assert_eq!(s["status"], "in_review", "one approval is not enough");
    assert_eq!(s["approvals"][0]["approver"], first_name.as_str());

    app.act(&first, &format!("/v1/statements/{id}/approve"))
        .await
        .problem(409);
    let s = app.get(&editor, &format!("/v1/statements/{id}")).await.ok();
    assert_eq!(
        s["status"], "in_review",
        "the same approver twice does not count twice"
    );

    let second = app.key(Role::Manager);
    let s = app
        .act(&second, &format!("/v1/statements/{id}/approve"))
        .await
        .ok();
    assert_eq!(s["status"], "approved");
    assert_eq!(s["approvals"].as_array().unwrap().len(), 2);
    app.act(&app.admin, &format!("/v1/statements/{id}/approve"))
        .await
        .problem(409);
}

#[tokio::test]
async fn a_draft_cannot_be_approved_before_it_is_submitted() {
    let app = spawn_app().await;
    let editor = app.key(Role::Editor);
    let id = app.draft(&editor, "minor").await;
    let approver = app.key(Role::Approver);
    app.act(&approver, &format!("/v1/statements/{id}/approve"))
        .await
        .problem(409);
}

#[tokio::test]
async fn a_rejection_needs_a_reason_and_editing_returns_the_statement_to_draft() {
    let app = spawn_app().await;
    let editor = app.key(Role::Editor);
    let approver = app.key(Role::Approver);
    let id = app.in_review(&editor, "severe").await;
    app.act(&approver, &format!("/v1/statements/{id}/approve"))
        .await
        .ok();

    app.post(
        &approver,
        &format!("/v1/statements/{id}/reject"),
        json!({"reason": "  "}),
    )
    .await
    .invalid("reason");
    let s = app
        .post(
            &approver,
            &format!("/v1/statements/{id}/reject"),
            json!({"reason": "Name the batch numbers"}),
        )
        .await
        .ok();
    assert_eq!(s["status"], "rejected");
    assert_eq!(s["rejection_reason"], "Name the batch numbers");
    assert!(
        s["approvals"].as_array().unwrap().is_empty(),
        "a rejection discards earlier approvals"
    );

    let s = app
        .put(
            &editor,
            &format!("/v1/statements/{id}/variants/mastodon"),
            json!({"text": "Batches 41-43 are recalled."}),
        )
        .await
        .ok();
    assert_eq!(s["status"], "draft");
    let s = app
        .act(&editor, &format!("/v1/statements/{id}/submit"))
        .await
        .ok();
    assert_eq!(s["status"], "in_review");
    assert!(s["rejection_reason"].is_null());
    app.act(&approver, &format!("/v1/statements/{id}/approve"))
        .await
        .ok();
    let other = app.key(Role::Approver);
    let s = app
        .act(&other, &format!("/v1/statements/{id}/approve"))
        .await
        .ok();
    assert_eq!(s["status"], "approved");

    let actions = app.log_actions(&id).await;
    let names: Vec<&str> = actions.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(
        names,
        [
            "statement.created",
            "statement.submitted",
            "statement.approved",
            "statement.rejected",
            "statement.edited",
            "statement.submitted",
            "statement.approved",
            "statement.approved",
        ]
    );
}

#[tokio::test]
async fn editors_cannot_reject_and_only_statements_in_review_can_be_rejected() {
    let app = spawn_app().await;
    let editor = app.key(Role::Editor);
    let id = app.draft(&editor, "minor").await;
    app.post(
        &editor,
        &format!("/v1/statements/{id}/reject"),
        json!({"reason": "no"}),
    )
    .await
    .problem(403);
    let approver = app.key(Role::Approver);
    app.post(
        &approver,
        &format!("/v1/statements/{id}/reject"),
        json!({"reason": "no"}),
    )
    .await
    .problem(409);
}
