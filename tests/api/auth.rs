use herald::keys::Role;
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn a_request_without_a_key_is_refused_with_401_and_a_bearer_challenge() {
    let app = spawn_app().await;
    let reply = app.send(app.client.get(app.url("/v1/statements"))).await;
    reply.problem(401);
    assert_eq!(reply.headers.get("www-authenticate").unwrap(), "Bearer");
}

#[tokio::test]
async fn an_unknown_key_or_a_malformed_header_is_refused_with_401() {
    let app = spawn_app().await;
    app.get("hrld_not-a-real-key", "/v1/statements")
        .await
        .problem(401);
    let reply = app
        .send(
            app.client
                .get(app.url("/v1/statements"))
                .header("Authorization", "Basic YTpi"),
        )
        .await;
    reply.problem(401);
}

/// The role matrix of DESIGN §7, one request per capability.
#[tokio::test]
async fn each_role_may_do_exactly_what_the_matrix_allows() {
    let app = spawn_app().await;
    let author = app.key(Role::Editor);
    for role in Role::ALL {
        let key = app.key(role);
        // Read statements: everyone.
        assert_eq!(
            app.get(&key, "/v1/statements").await.status,
            200,
            "{role:?} read"
        );

        // Write statements: editor, manager, admin.
        let create = app
            .post(
                &key,
                "/v1/statements",
                json!({"title": "t", "kind": "routine", "variants": []}),
            )
            .await;
        let may_write = matches!(role, Role::Editor | Role::Manager | Role::Admin);
        if may_write {
            assert_eq!(create.status, 201, "{role:?} write: {}", create.text);
        } else {
            create.problem(403);
        }

        // Approve: approver, manager, admin.
        let id = app.in_review(&author, "minor").await;
        let approve = app.act(&key, &format!("/v1/statements/{id}/approve")).await;
        if matches!(role, Role::Approver | Role::Manager | Role::Admin) {
            assert_eq!(approve.status, 200, "{role:?} approve: {}", approve.text);
        } else {
            approve.problem(403);
        }

        // Publish log: manager, admin.
        let log = app.get(&key, "/v1/log").await;
        if matches!(role, Role::Manager | Role::Admin) {
            assert_eq!(log.status, 200, "{role:?} log");
        } else {
            log.problem(403);
        }

        // Accounts and keys: admin.
        let account = app
            .post(
                &key,
                "/v1/accounts",
                json!({"platform": "sandbox", "name": format!("drill {role:?}")}),
            )
            .await;
        let keys = app.get(&key, "/v1/keys").await;
        if role == Role::Admin {
            assert_eq!(account.status, 201, "{}", account.text);
            assert_eq!(keys.status, 200);
        } else {
            account.problem(403);
            keys.problem(403);
        }
        // Reading accounts: everyone (editors choose accounts when scheduling).
        assert_eq!(
            app.get(&key, "/v1/accounts").await.status,
            200,
            "{role:?} accounts"
        );
    }
}

#[tokio::test]
async fn a_403_names_the_role_and_what_it_lacks() {
    let app = spawn_app().await;
    let viewer = app.key(Role::Viewer);
    let p = app
        .post(
            &viewer,
            "/v1/statements",
            json!({"title": "t", "kind": "routine"}),
        )
        .await
        .problem(403);
    let detail = p["detail"].as_str().unwrap();
    assert!(detail.contains("viewer"), "{detail}");
}

#[tokio::test]
async fn keys_made_and_revoked_over_the_api_work_at_once_and_show_their_secret_once() {
    let app = spawn_app().await;
    let created = app
        .post(
            &app.admin,
            "/v1/keys",
            json!({"name": "carol", "role": "editor"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let body = created.json();
    let secret = body["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("hrld_"));
    assert_eq!(app.get(&secret, "/v1/statements").await.status, 200);

    let listed = app.get(&app.admin, "/v1/keys").await.ok();
    assert!(
        !listed.to_string().contains(&secret),
        "a listing never shows a secret"
    );

    app.act(&app.admin, "/v1/keys/carol/revoke").await.ok();
    app.get(&secret, "/v1/statements").await.problem(401);
    app.act(&app.admin, "/v1/keys/carol/revoke")
        .await
        .problem(409);
    app.post(
        &app.admin,
        "/v1/keys",
        json!({"name": "carol", "role": "viewer"}),
    )
    .await
    .problem(409);
    app.post(
        &app.admin,
        "/v1/keys",
        json!({"name": "bad name", "role": "viewer"}),
    )
    .await
    .invalid("name");
}
