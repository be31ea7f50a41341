use crate::helpers::spawn_app;

const DOCUMENT: &str = include_str!("../../openapi/openapi.json");

#[test]
fn the_committed_document_is_what_the_code_generates() {
    let generated = herald::http::openapi::document_json();
    if generated != DOCUMENT && std::env::var("HERALD_UPDATE_OPENAPI").is_ok() {
        std::fs::write(
            concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json"),
            &generated,
        )
        .unwrap();
        return;
    }
    assert!(
        generated == DOCUMENT,
        "openapi/openapi.json is stale: run `cargo run -- openapi > openapi/openapi.json`"
    );
}

#[test]
fn every_route_is_documented_with_its_errors() {
    let doc: serde_json::Value = serde_json::from_str(DOCUMENT).unwrap();
    let expected = [
        ("post", "/v1/statements"),
        ("get", "/v1/statements"),
        ("get", "/v1/statements/{id}"),
        ("patch", "/v1/statements/{id}"),
        ("put", "/v1/statements/{id}/variants/{platform}"),
        ("delete", "/v1/statements/{id}/variants/{platform}"),
        ("post", "/v1/statements/{id}/submit"),
        ("post", "/v1/statements/{id}/approve"),
        ("post", "/v1/statements/{id}/reject"),
        ("post", "/v1/statements/{id}/retire"),
        ("post", "/v1/statements/{id}/revise"),
        ("post", "/v1/variants/check"),
        ("post", "/v1/accounts"),
        ("get", "/v1/accounts"),
        ("get", "/v1/accounts/{id}"),
        ("delete", "/v1/accounts/{id}"),
        ("get", "/v1/log"),
        ("get", "/v1/log.csv"),
        ("get", "/v1/log/verify"),
        ("post", "/v1/keys"),
        ("get", "/v1/keys"),
        ("post", "/v1/keys/{name}/revoke"),
        ("post", "/v1/sandbox/posts/{id}/replies"),
        ("get", "/v1/replies"),
        ("get", "/v1/replies/{id}"),
        ("patch", "/v1/replies/{id}"),
        ("post", "/v1/replies/{id}/respond"),
        ("get", "/v1/statements/{id}/replies/summary"),
        ("get", "/v1/followups/stats"),
        ("post", "/v1/webhooks"),
        ("get", "/v1/webhooks"),
        ("get", "/v1/webhooks/{id}"),
        ("delete", "/v1/webhooks/{id}"),
        ("get", "/v1/webhooks/{id}/deliveries"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
    ];
    for (method, path) in expected {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is missing");
        if path.starts_with("/v1/") {
            let responses = op["responses"].as_object().unwrap();
            assert!(responses.contains_key("401"), "{method} {path} lacks 401");
            assert!(responses.contains_key("422"), "{method} {path} lacks 422");
            let problem = &responses["401"]["content"]["application/problem+json"];
            assert!(
                problem.is_object(),
                "{method} {path}: errors are problem+json"
            );
            assert!(!op["security"].is_null(), "{method} {path} lacks security");
        }
    }
    for schema in [
        "StatementResponse",
        "CreateStatement",
        "Problem",
        "FieldError",
        "LogEntry",
        "AccountResponse",
    ] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "schema {schema} missing"
        );
    }
}

#[tokio::test]
async fn the_server_serves_the_document_and_an_offline_docs_page() {
    let app = spawn_app().await;
    let served = app.send(app.client.get(app.url("/openapi.json"))).await;
    assert_eq!(served.status, 200);
    let served: serde_json::Value = serde_json::from_str(&served.text).unwrap();
    let committed: serde_json::Value = serde_json::from_str(DOCUMENT).unwrap();
    assert_eq!(served, committed);
    let docs = app.send(app.client.get(app.url("/docs/"))).await;
    assert_eq!(docs.status, 200);
    assert!(docs.text.contains("swagger"), "the page is Swagger UI");
    assert!(
        !docs.text.contains("cdn."),
        "the page loads nothing from a CDN"
    );
    let script = app
        .send(app.client.get(app.url("/docs/swagger-ui-bundle.js")))
        .await;
    assert_eq!(
        script.status, 200,
        "the UI's JavaScript is served from the binary"
    );
}
