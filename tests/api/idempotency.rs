use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn repeating_a_create_with_the_same_idempotency_key_returns_the_first_answer() {
    let app = spawn_app().await;
    let body = json!({"title": "Recall", "kind": "crisis", "variants": [{"platform": "sandbox", "text": "hi"}]});
    let send = |body: serde_json::Value| {
        app.client
            .post(app.url("/v1/statements"))
            .bearer_auth(&app.admin)
            .header("Idempotency-Key", "retry-1")
            .json(&body)
    };
    let first = app.send(send(body.clone())).await;
    assert_eq!(first.status, 201, "{}", first.text);
    let second = app.send(send(body.clone())).await;
    assert_eq!(second.status, 201);
    assert_eq!(first.json()["id"], second.json()["id"]);
    let list = app.get(&app.admin, "/v1/statements").await.ok();
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        1,
        "no duplicate was created"
    );

    let mut changed = body.clone();
    changed["title"] = json!("Other");
    app.send(send(changed)).await.invalid("Idempotency-Key");

    let without = app.post(&app.admin, "/v1/statements", body).await;
    assert_eq!(without.status, 201);
    assert_ne!(without.json()["id"], first.json()["id"]);
}
