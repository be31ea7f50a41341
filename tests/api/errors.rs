use herald::keys::Role;
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn malformed_json_is_a_400_problem() {
    let app = spawn_app().await;
    let reply = app
        .send(
            app.client
                .post(app.url("/v1/statements"))
                .bearer_auth(&app.admin)
                .header("Content-Type", "application/json")
                .body("{\"title\": "),
        )
        .await;
    reply.problem(400);
    let empty = app
        .send(
            app.client
                .post(app.url("/v1/statements"))
                .bearer_auth(&app.admin)
                .header("Content-Type", "application/json"),
        )
        .await;
    empty.problem(400);
}

#[tokio::test]
async fn unknown_fields_and_wrong_types_name_the_field() {
    let app = spawn_app().await;
    app.post(
        &app.admin,
        "/v1/statements",
        json!({"title": "t", "kind": "routine", "colour": "red"}),
    )
    .await
    .invalid("colour");
    app.post(
        &app.admin,
        "/v1/statements",
        json!({"title": 5, "kind": "routine"}),
    )
    .await
    .invalid("title");
    app.post(&app.admin, "/v1/statements", json!({"kind": "routine"}))
        .await
        .invalid("title");
    app.post(
        &app.admin,
        "/v1/statements",
        json!({"title": "t", "kind": "routine", "variants": [{"platform": "x"}]}),
    )
    .await
    .invalid("variants[0].text");
    app.post(&app.admin, "/v1/statements", json!({"title": "t", "kind": "routine", "variants": [{"platform": "myspace", "text": "x"}]}))
        .await
        .invalid("variants[0].platform");
    app.post(
        &app.admin,
        "/v1/statements",
        json!({"title": "   ", "kind": "routine"}),
    )
    .await
    .invalid("title");
}

#[tokio::test]
async fn an_oversized_body_is_a_413_and_a_non_json_body_a_415() {
    let app = spawn_app().await;
    let huge = "a".repeat(300 * 1024);
    app.post(&app.admin, "/v1/statements", json!({"title": "t", "kind": "routine", "variants": [{"platform": "sandbox", "text": huge}]}))
        .await
        .problem(413);
    let reply = app
        .send(
            app.client
                .post(app.url("/v1/statements"))
                .bearer_auth(&app.admin)
                .header("Content-Type", "text/plain")
                .body("title=t"),
        )
        .await;
    reply.problem(415);
}

#[tokio::test]
async fn invalid_ids_unknown_statements_and_unknown_routes_are_404_problems() {
    let app = spawn_app().await;
    let p = app
        .get(&app.admin, "/v1/statements/not-an-id")
        .await
        .problem(404);
    assert!(p["detail"].as_str().unwrap().contains("not-an-id"));
    app.get(
        &app.admin,
        "/v1/statements/01937e5c-0000-7000-8000-000000000000",
    )
    .await
    .problem(404);
    app.act(
        &app.admin,
        "/v1/statements/01937e5c-0000-7000-8000-000000000000/approve",
    )
    .await
    .problem(404);
    app.get(&app.admin, "/v1/accounts/42").await.problem(404);
    app.get(&app.admin, "/v1/nothing-here").await.problem(404);
}

#[tokio::test]
async fn an_unknown_platform_in_a_path_is_named() {
    let app = spawn_app().await;
    let id = app.draft(&app.admin, "minor").await;
    app.put(
        &app.admin,
        &format!("/v1/statements/{id}/variants/myspace"),
        json!({"text": "x"}),
    )
    .await
    .invalid("platform");
}

#[tokio::test]
async fn bad_query_parameters_are_named() {
    let app = spawn_app().await;
    let viewer = app.key(Role::Viewer);
    app.get(&viewer, "/v1/statements?limit=0")
        .await
        .invalid("limit");
    app.get(&viewer, "/v1/statements?limit=ten")
        .await
        .invalid("limit");
    app.get(&viewer, "/v1/statements?cursor=garbage")
        .await
        .invalid("cursor");
    app.get(&viewer, "/v1/statements?stauts=draft")
        .await
        .invalid("stauts");
    app.get(&app.admin, "/v1/log?from=yesterday")
        .await
        .invalid("from");
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = spawn_app().await;
    let health = app.send(app.client.get(app.url("/healthz"))).await.ok();
    assert_eq!(health["status"], "ok");
    let ready = app.send(app.client.get(app.url("/readyz"))).await.ok();
    let expected = if crate::helpers::is_postgres() {
        "postgres"
    } else {
        "sqlite"
    };
    assert_eq!(ready["database"], expected);
}

#[tokio::test]
async fn a_known_path_with_another_method_is_a_405_with_allow() {
    let app = spawn_app().await;
    let reply = app.delete(&app.admin, "/v1/statements").await;
    reply.problem(405);
    assert_eq!(reply.headers.get("allow").unwrap(), "GET, POST");
    let id = app.draft(&app.admin, "minor").await;
    let reply = app.act(&app.admin, &format!("/v1/statements/{id}")).await;
    reply.problem(405);
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_and_status() {
    let app = spawn_app().await;
    let id = app.draft(&app.admin, "minor").await;
    app.get(&app.admin, &format!("/v1/statements/{id}"))
        .await
        .ok();
    app.get(&app.admin, "/v1/statements/not-an-id")
        .await
        .problem(404);
    let reply = app.send(app.client.get(app.url("/metrics"))).await;
    assert_eq!(reply.status, 200);
    assert!(reply.content_type.starts_with("text/plain"));
    let text = reply.text;
    assert!(
        text.contains(
            r#"http_requests_total{method="GET",route="/v1/statements/{id}",status="200"}"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"route="/v1/statements/{id}",status="404""#),
        "{text}"
    );
    assert!(!text.contains(&id), "ids never become label values");
    assert!(
        text.contains("http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(text.contains("herald_db_pool_connections"), "{text}");
}
