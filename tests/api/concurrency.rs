use futures_util::future::join_all;
use herald::db::{self, DatabaseUrl};
use herald::keys::Role;
use serde_json::json;

use crate::helpers::{fresh_database, spawn_app};

#[tokio::test]
async fn simultaneous_approvals_of_a_severe_statement_count_exactly_two() {
    let app = spawn_app().await;
    let editor = app.key(Role::Editor);
    let id = app.in_review(&editor, "severe").await;
    let approvers: Vec<String> = (0..6).map(|_| app.key(Role::Approver)).collect();
    let path = format!("/v1/statements/{id}/approve");
    let replies = join_all(approvers.iter().map(|key| app.act(key, &path))).await;
    let accepted = replies.iter().filter(|r| r.status == 200).count();
    for reply in replies.iter().filter(|r| r.status != 200) {
        reply.problem(409);
    }
    assert_eq!(accepted, 2, "exactly two approvals are accepted");
    let s = app.get(&editor, &format!("/v1/statements/{id}")).await.ok();
    assert_eq!(s["status"], "approved");
    assert_eq!(s["approvals"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn simultaneous_writes_keep_the_publish_log_chain_linear() {
    let app = spawn_app().await;
    let editor = app.key(Role::Editor);
    let bodies: Vec<_> = (0..24)
        .map(|i| json!({"title": format!("t{i}"), "kind": "routine", "variants": [{"platform": "sandbox", "text": "x"}]}))
        .collect();
    let replies = join_all(
        bodies
            .into_iter()
            .map(|b| app.post(&editor, "/v1/statements", b)),
    )
    .await;
    assert!(replies.iter().all(|r| r.status == 201));
    let verify = app.get(&app.admin, "/v1/log/verify").await.ok();
    assert_eq!(verify["ok"], true, "{verify}");
    let created = app
        .get(&app.admin, "/v1/log?action=statement.created&limit=100")
        .await
        .ok();
    assert_eq!(created["items"].as_array().unwrap().len(), 24);
}

#[test]
fn several_instances_migrating_one_database_at_once_all_succeed() {
    let (url, _guard) = fresh_database();
    let url = DatabaseUrl::parse(&url).unwrap();
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut conn = db::ConnectionFactory::new(url).connect().unwrap();
                db::run_migrations(&mut conn).map_err(|e| e.to_string())
            })
        })
        .collect();
    let outcomes: Vec<Result<Vec<String>, String>> =
        handles.into_iter().map(|h| h.join().unwrap()).collect();
    for outcome in &outcomes {
        assert!(outcome.is_ok(), "{outcome:?}");
    }
    let applied: usize = outcomes.iter().map(|o| o.as_ref().unwrap().len()).sum();
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite"))
        .unwrap()
        .count();
    assert_eq!(applied, migrations, "each migration ran once in all");
}
