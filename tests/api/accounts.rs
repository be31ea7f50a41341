use diesel::prelude::*;
use herald::db::schema::{accounts, publish_log};
use herald::keys::Role;
use serde_json::json;

use crate::helpers::spawn_app;

const TOKEN: &str = "tok-Zq81-very-secret-value";

#[tokio::test]
async fn credentials_are_write_only_encrypted_at_rest_and_never_logged() {
    let app = spawn_app().await;
    let reply = app
        .post(
            &app.admin,
            "/v1/accounts",
            json!({
                "platform": "mastodon",
                "name": "Kettle Co",
                "base_url": "https://mastodon.example/",
                "credentials": {"access_token": TOKEN},
                "max_characters": 1000
            }),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert!(!reply.text.contains(TOKEN));
    let account = reply.json();
    assert_eq!(account["status"], "active");
    assert_eq!(account["base_url"], "https://mastodon.example");
    assert_eq!(account["max_characters"], 1000);
    assert!(account.get("credentials").is_none());
    let id = account["id"].as_str().unwrap().to_string();

    let fetched = app.get(&app.admin, &format!("/v1/accounts/{id}")).await;
    assert!(!fetched.text.contains(TOKEN));
    assert_eq!(fetched.json()["name"], "Kettle Co");

    let mut conn = app.pool.get().unwrap();
    let stored: Option<String> = accounts::table
        .find(&id)
        .select(accounts::credentials)
        .first(&mut conn)
        .unwrap();
    let stored = stored.unwrap();
    assert!(stored.starts_with("v1:"));
    assert!(!stored.contains(TOKEN));
    let details: Vec<String> = publish_log::table
        .select(publish_log::details)
        .load(&mut conn)
        .unwrap();
    assert!(details.iter().all(|d| !d.contains(TOKEN)));
    let log = app
        .get(&app.admin, &format!("/v1/log?account_id={id}"))
        .await
        .ok();
    assert_eq!(log["items"][0]["action"], "account.added");
}

#[tokio::test]
async fn missing_or_unknown_credentials_are_named() {
    let app = spawn_app().await;
    app.post(&app.admin, "/v1/accounts", json!({"platform": "bluesky", "name": "b", "credentials": {"identifier": "kettle.example"}}))
        .await
        .invalid("credentials.app_password");
    app.post(&app.admin, "/v1/accounts", json!({"platform": "telegram", "name": "t", "credentials": {"bot_token": "1:a", "chat_id": 5}}))
        .await
        .invalid("credentials.chat_id");
    app.post(
        &app.admin,
        "/v1/accounts",
        json!({"platform": "mastodon", "name": "m", "credentials": {"access_token": "t"}}),
    )
    .await
    .invalid("base_url");
    app.post(
        &app.admin,
        "/v1/accounts",
        json!({"platform": "sandbox", "name": "s", "base_url": "not a url"}),
    )
    .await
    .invalid("base_url");
    app.post(&app.admin, "/v1/accounts", json!({"platform": "x", "name": "x", "credentials": {"access_token": "t"}, "max_characters": 9}))
        .await
        .invalid("max_characters");
    app.post(
        &app.admin,
        "/v1/accounts",
        json!({"platform": "friendster", "name": "f"}),
    )
    .await
    .invalid("platform");
}

#[tokio::test]
async fn a_removed_account_disappears_and_its_credentials_are_erased() {
    let app = spawn_app().await;
    let a = app
        .post(&app.admin, "/v1/accounts", json!({"platform": "discord", "name": "ops", "credentials": {"webhook_url": "https://discord.example/api/webhooks/1/abc"}}))
        .await
        .ok();
    let id = a["id"].as_str().unwrap().to_string();
    app.post(&app.admin, "/v1/accounts", json!({"platform": "discord", "name": "ops", "credentials": {"webhook_url": "https://discord.example/api/webhooks/2/def"}}))
        .await
        .problem(409);
    let editor = app.key(Role::Editor);
    app.delete(&editor, &format!("/v1/accounts/{id}"))
        .await
        .problem(403);
    let reply = app.delete(&app.admin, &format!("/v1/accounts/{id}")).await;
    assert_eq!(reply.status, 204);
    app.get(&app.admin, &format!("/v1/accounts/{id}"))
        .await
        .problem(404);
    app.delete(&app.admin, &format!("/v1/accounts/{id}"))
        .await
        .problem(404);
    let list = app.get(&app.admin, "/v1/accounts").await.ok();
    assert!(list["items"].as_array().unwrap().is_empty());

    let mut conn = app.pool.get().unwrap();
    let stored: Option<String> = accounts::table
        .find(&id)
        .select(accounts::credentials)
        .first(&mut conn)
        .unwrap();
    assert!(stored.is_none());
    let log = app
        .get(&app.admin, &format!("/v1/log?account_id={id}"))
        .await
        .ok();
    assert_eq!(log["items"][0]["action"], "account.removed");
}

#[tokio::test]
async fn accounts_list_filters_by_status_and_platform() {
    let app = spawn_app().await;
    for (platform, name) in [("sandbox", "drill"), ("webhook", "intranet")] {
        let mut body = json!({"platform": platform, "name": name});
        if platform == "webhook" {
            body["credentials"] = json!({"url": "https://intranet.example/hook", "secret": "s"});
        }
        app.post(&app.admin, "/v1/accounts", body).await.ok();
    }
    let all = app.get(&app.admin, "/v1/accounts").await.ok();
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
    let sandbox = app
        .get(&app.admin, "/v1/accounts?platform=sandbox")
        .await
        .ok();
    assert_eq!(sandbox["items"][0]["name"], "drill");
    assert_eq!(sandbox["items"].as_array().unwrap().len(), 1);
    let reauth = app
        .get(&app.admin, "/v1/accounts?status=needs_reauth")
        .await
        .ok();
    assert!(reauth["items"].as_array().unwrap().is_empty());
    app.get(&app.admin, "/v1/accounts?status=gone")
        .await
        .invalid("status");
}

#[tokio::test]
async fn malformed_credentials_are_refused_without_echoing_them() {
    let app = spawn_app().await;
    let reply = app
        .post(&app.admin, "/v1/accounts", json!({"platform": "mastodon", "name": "m", "base_url": "https://m.example", "credentials": TOKEN}))
        .await;
    reply.invalid("credentials");
    assert!(!reply.text.contains(TOKEN));
    let reply = app
        .post(&app.admin, "/v1/accounts", json!({"platform": "mastodon", "name": "m", "base_url": "https://m.example", "credentials": {"access_token": [TOKEN]}}))
        .await;
    reply.invalid("credentials.access_token");
    assert!(!reply.text.contains(TOKEN));
}
