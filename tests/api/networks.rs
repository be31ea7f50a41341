//! Every network through Herald's API, dispatcher and store: the platform
//! list, OAuth connection (and its bad states), threads, media, retraction,
//! corrections, preflight checks and token refresh, against the fakes.

use std::time::Duration;

use herald::fakes::x::FakeX;
use herald::keys::Role;
use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, TestApp};
use crate::kit;

async fn x_app(fake: &FakeX, jobs_s: u64) -> TestApp {
    let app = fake.network_app();
    spawn_app_with(move |s| {
        s.networks.x = app;
        s.dispatch.account_jobs_s = jobs_s;
    })
    .await
}

#[tokio::test]
async fn the_platform_list_has_all_eleven_networks_and_says_which_need_settings() {
    let fake = FakeX::start().await;
    let app = x_app(&fake, 60).await;
    let viewer = app.key(Role::Viewer);
    let list = app.get(&viewer, "/v1/platforms").await.ok();
    let platforms = list["platforms"].as_array().unwrap();
    let names: Vec<&str> = platforms
        .iter()
        .map(|p| p["platform"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "mastodon",
            "bluesky",
            "x",
            "threads",
            "linkedin",
            "facebook",
            "instagram",
            "telegram",
            "discord",
            "webhook",
            "sandbox"
        ]
    );
    let of = |name: &str| {
        platforms
            .iter()
            .find(|p| p["platform"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(of("x")["configured"], true);
    assert_eq!(of("x")["connect"], "oauth");
    assert_eq!(of("x")["text"]["limit"], 280);
    assert_eq!(of("x")["thread"], "reply");
    let linkedin = of("linkedin");
    assert_eq!(linkedin["configured"], false);
    assert!(linkedin["not_configured"]
        .as_str()
        .unwrap()
        .contains("HERALD_LINKEDIN_CLIENT_ID"));
    assert_eq!(linkedin["thread"], "comment");
    let instagram = of("instagram");
    assert_eq!(instagram["media"]["required"], true);
    assert_eq!(instagram["delete"], false);
    assert_eq!(of("telegram")["connect"], "credentials");
    assert_eq!(of("telegram")["configured"], true);
    assert_eq!(of("mastodon")["configured"], true);
    // Where replies come from, or why there are none.
    assert!(of("bluesky")["replies_note"]
        .as_str()
        .unwrap()
        .contains("notifications"));
    assert_eq!(of("webhook")["replies"], false);
    assert!(of("mastodon")["replies_note"].is_null());
    for p in platforms {
        for field in ["replies", "delete", "edit", "publishes"] {
            assert!(p[field].is_boolean(), "{p}");
        }
    }
}

#[tokio::test]
async fn an_x_account_connects_through_oauth_and_the_state_works_once() {
    let fake = FakeX::start().await;
    fake.add_user("kettleco");
    let app = x_app(&fake, 60).await;

    // A network without a client id cannot be connected.
    let refused = app
        .post(
            &app.admin,
            "/v1/accounts/connect/linkedin",
            json!({"name": "Kettle Co"}),
        )
        .await;
    assert!(refused.invalid("platform")["detail"]
        .as_str()
        .unwrap()
        .contains("HERALD_LINKEDIN_CLIENT_ID"));
    // Credential-only networks say how to add them.
    app.post(
        &app.admin,
        "/v1/accounts/connect/telegram",
        json!({"name": "t"}),
    )
    .await
    .invalid("platform");
    // Admins only.
    let editor = app.key(Role::Editor);
    assert_eq!(
        app.post(&editor, "/v1/accounts/connect/x", json!({"name": "n"}))
            .await
            .status,
        403
    );

    let started = app
        .start_connect("x", json!({"name": "Kettle Co on X"}))
        .await;
    let url = reqwest::Url::parse(started["authorize_url"].as_str().unwrap()).unwrap();
    let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(query["state"], started["state"].as_str().unwrap());
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(
        query["redirect_uri"],
        format!("{}/v1/oauth/callback", app.address)
    );

    let callback = kit::approve(url.as_str()).await.location;
    let reply = app.client.get(&callback).send().await.unwrap();
    assert_eq!(reply.status().as_u16(), 200);
    let account: Value = reply.json().await.unwrap();
    assert_eq!(account["platform"], "x");
    assert_eq!(account["status"], "active");
    assert_eq!(account["remote_name"], "@kettleco");
    assert!(account["token_expires_at"].is_string());
    assert!(account.get("credentials").is_none());
    let logged = app.recent_actions().await;
    assert!(logged.contains(&"account.connect_started".to_string()));
    assert!(logged.contains(&"account.connected".to_string()));

    // The same state again: refused, nothing stored.
    let again = app.client.get(&callback).send().await.unwrap();
    assert_eq!(again.status().as_u16(), 400);
    let problem: Value = again.json().await.unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains("already used"),
        "{problem}"
    );
    // A state Herald never gave.
    let forged = app
        .client
        .get(format!(
            "{}/v1/oauth/callback?code=abc&state=forged",
            app.address
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 400);
    // No state at all.
    let bare = app
        .client
        .get(format!("{}/v1/oauth/callback?code=abc", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status().as_u16(), 400);

    // An expired state.
    let started = app.start_connect("x", json!({"name": "Second"})).await;
    {
        use diesel::prelude::*;
        use herald::db::schema::oauth_states;
        let mut conn = app.pool.get().unwrap();
        diesel::update(oauth_states::table.find(started["state"].as_str().unwrap()))
            .set(oauth_states::expires_at.eq(herald::db::now() - chrono::Duration::minutes(1)))
            .execute(&mut conn)
            .unwrap();
    }
    let callback = kit::approve(started["authorize_url"].as_str().unwrap())
        .await
        .location;
    let expired = app.client.get(&callback).send().await.unwrap();
    assert_eq!(expired.status().as_u16(), 400);
    let problem: Value = expired.json().await.unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains("expired"),
        "{problem}"
    );

    // The user refusing on the network's page.
    let started = app.start_connect("x", json!({"name": "Third"})).await;
    let denied = app
        .client
        .get(format!(
            "{}/v1/oauth/callback?error=access_denied&state={}",
            app.address,
            started["state"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status().as_u16(), 400);

    // Exactly one account came of all this.
    let accounts = app.get(&app.admin, "/v1/accounts?platform=x").await.ok();
    assert_eq!(accounts["items"].as_array().unwrap().len(), 1);

    // Connecting again under the same name reconnects that account.
    let again = app.connect("x", json!({"name": "Kettle Co on X"})).await;
    assert_eq!(again["id"], account["id"]);
}

#[tokio::test]
async fn a_thread_goes_out_as_a_reply_chain_and_a_retraction_deletes_every_part() {
    let fake = FakeX::start().await;
    fake.add_user("kettleco");
    let app = x_app(&fake, 60).await;
    let account = app.connect("x", json!({"name": "Kettle Co"})).await;
    let account = account["id"].as_str().unwrap();
    let statement = app
        .approved_crisis(
            json!([{"platform": "x", "text": "1/3 We are recalling the K-200 kettle.",
                "thread": ["2/3 Stop using it now.", "3/3 Refunds: https://example.com/recall"]}]),
        )
        .await;
    let delivery = app.publish_now(&statement, account).await;
    assert_eq!(delivery["status"], "published", "{delivery}");
    let parts = delivery["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 3);
    let posts = fake.posts();
    assert_eq!(posts.len(), 3);
    assert_eq!(posts[0].reply_to, None);
    assert_eq!(posts[1].reply_to.as_deref(), Some(posts[0].id.as_str()));
    assert_eq!(posts[2].reply_to.as_deref(), Some(posts[1].id.as_str()));
    assert_eq!(delivery["remote_id"], posts[0].id.as_str());
    assert_eq!(parts[2]["id"], posts[2].id.as_str());

    // Editors cannot retract; managers can.
    let editor = app.key(Role::Editor);
    let path = format!("/v1/statements/{statement}/retract");
    assert_eq!(
        app.post(&editor, &path, json!({"reason": "wrong"}))
            .await
            .status,
        403
    );
    let manager = app.key(Role::Manager);
    app.post(&manager, &path, json!({})).await.invalid("reason");
    let reply = app
        .post(&manager, &path, json!({"reason": "Wrong batch numbers"}))
        .await
        .ok();
    assert_eq!(reply["retracted"], 1, "{reply}");
    assert_eq!(reply["deliveries"][0]["outcome"], "retracted");
    assert!(fake.posts().iter().all(|p| p.deleted));
    let d = app
        .get(
            &manager,
            &format!("/v1/deliveries/{}", delivery["id"].as_str().unwrap()),
        )
        .await
        .ok();
    assert_eq!(d["status"], "retracted");
    assert!(d["retracted_at"].is_string());
    // A second retraction finds it done.
    let again = app
        .post(&manager, &path, json!({"reason": "again"}))
        .await
        .ok();
    assert_eq!(again["deliveries"][0]["outcome"], "already_retracted");
    let logged = app.recent_actions().await;
    assert!(logged.contains(&"delivery.retracted".to_string()));
    assert!(logged.contains(&"statement.retracted".to_string()));
}

#[tokio::test]
async fn a_correction_answers_each_published_post() {
    let fake = FakeX::start().await;
    fake.add_user("kettleco");
    let app = x_app(&fake, 60).await;
    let account = app.connect("x", json!({"name": "Kettle Co"})).await;
    let account = account["id"].as_str().unwrap();
    let sandbox = app.add_account("sandbox", "Drill", None, json!({})).await;
    let statement = app.approved_crisis(json!([{"platform": "x", "text": "Batch 42 is affected.", "thread": ["Details follow."]},
               {"platform": "sandbox", "text": "Batch 42 is affected."}]),
    )
    .await;
    let reply = app
        .schedule(&statement, &[account, &sandbox], json!({"now": true}))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    for d in reply.json()["deliveries"].as_array().unwrap() {
        app.wait_status(d["id"].as_str().unwrap(), "published", 20)
            .await;
    }
    let correction = app
        .approved_crisis(json!([{"platform": "x", "text": "Correction: batches 42 and 43."}]))
        .await;
    let manager = app.key(Role::Manager);
    let path = format!("/v1/statements/{statement}/correct");
    app.post(&manager, &path, json!({"correction_id": "nope"}))
        .await
        .invalid("correction_id");
    let reply = app
        .post(&manager, &path, json!({"correction_id": correction}))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let body = reply.json();
    // The sandbox post has no variant in the correction: said so.
    assert_eq!(body["skipped"].as_array().unwrap().len(), 1);
    assert!(body["skipped"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("sandbox"));
    let fix = body["deliveries"][0]["id"].as_str().unwrap().to_string();
    let fix = app.wait_status(&fix, "published", 20).await;
    let posts = fake.posts();
    assert_eq!(posts.len(), 3);
    // It answers the last part of the thread.
    assert_eq!(posts[2].text, "Correction: batches 42 and 43.");
    assert_eq!(posts[2].reply_to.as_deref(), Some(posts[1].id.as_str()));
    assert!(fix["reply_to_delivery_id"].is_string());
    assert!(app
        .recent_actions()
        .await
        .contains(&"statement.corrected".to_string()));
}

#[tokio::test]
async fn an_uploaded_image_is_checked_served_and_reaches_the_network() {
    let fake = FakeX::start().await;
    fake.add_user("kettleco");
    let app = x_app(&fake, 60).await;
    let editor = app.key(Role::Editor);
    let jpeg: Vec<u8> = [0xFF, 0xD8, 0xFF, 0xE0, 0, 16, b'J', b'F', b'I', b'F', 0]
        .into_iter()
        .chain(std::iter::repeat_n(7u8, 500))
        .collect();
    let upload = |bytes: Vec<u8>, ct: &'static str| {
        app.client
            .post(app.url("/v1/media"))
            .bearer_auth(&editor)
            .header("content-type", ct)
            .body(bytes)
    };
    // Lies about the type, or no image at all: refused.
    let wrong = app.send(upload(jpeg.clone(), "image/png")).await;
    assert_eq!(wrong.status, 415, "{}", wrong.text);
    let text = app.send(upload(b"hello".to_vec(), "text/plain")).await;
    assert_eq!(text.status, 415);
    let stored = app.send(upload(jpeg.clone(), "image/jpeg")).await;
    assert_eq!(stored.status, 201, "{}", stored.text);
    let media = stored.json();
    assert_eq!(media["size"], 511);
    // Served without a key, byte for byte.
    let served = reqwest::get(media["url"].as_str().unwrap()).await.unwrap();
    assert_eq!(served.headers()["content-type"], "image/jpeg");
    assert_eq!(served.bytes().await.unwrap().to_vec(), jpeg);

    // A variant naming an unknown upload is refused, naming the field.
    let bad = app
        .post(
            &editor,
            "/v1/statements",
            json!({"title": "t", "kind": "routine", "variants": [{"platform": "x", "text": "t",
                "media": [{"media_id": uuid::Uuid::now_v7().to_string()}]}]}),
        )
        .await;
    bad.invalid("variants[0].media[0].media_id");
    // Instagram needs an image.
    let bad = app
        .post(
            &editor,
            "/v1/statements",
            json!({"title": "t", "kind": "routine", "variants": [{"platform": "instagram", "text": "t"}]}),
        )
        .await;
    bad.invalid("variants[0].media");

    let account = app.connect("x", json!({"name": "Kettle Co"})).await;
    let statement = app.approved_crisis(json!([{"platform": "x", "text": "The affected kettle:",
                "media": [{"media_id": media["id"], "alt": "A K-200 kettle, batch number on its base"}]}]),
    )
    .await;
    let d = app
        .publish_now(&statement, account["id"].as_str().unwrap())
        .await;
    assert_eq!(d["status"], "published", "{d}");
    let uploaded = fake.media();
    assert_eq!(uploaded.len(), 1);
    assert_eq!(
        uploaded[0].alt_text.as_deref(),
        Some("A K-200 kettle, batch number on its base")
    );
    assert_eq!(fake.posts()[0].media_ids, vec![uploaded[0].id.clone()]);
}

#[tokio::test]
async fn a_preflight_check_finds_revoked_credentials_long_before_the_post() {
    let fake = FakeX::start().await;
    let user = fake.add_user("kettleco");
    let app = x_app(&fake, 1).await;
    let account = app.connect("x", json!({"name": "Kettle Co"})).await;
    let account = account["id"].as_str().unwrap().to_string();

    let editor = app.key(Role::Editor);
    let ok = app
        .post(&editor, &format!("/v1/accounts/{account}/check"), json!({}))
        .await
        .ok();
    assert_eq!(ok["ok"], true, "{ok}");

    // A delivery 30 minutes ahead: both checks (24 h and 1 h) are due.
    let statement = app
        .approved_crisis(json!([{"platform": "x", "text": "Planned update"}]))
        .await;
    let at = (chrono::Utc::now() + chrono::Duration::minutes(30)).to_rfc3339();
    let reply = app
        .schedule(&statement, &[&account], json!({"at": at}))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let delivery = reply.json()["deliveries"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let d = app
        .wait_delivery(&delivery, 15, |d| {
            d["preflight"].as_array().is_some_and(|c| c.len() == 2)
        })
        .await;
    assert!(
        d["preflight"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["ok"] == true),
        "{d}"
    );

    // The user revokes Herald on the network: the check says so.
    fake.revoke_user(&user.username);
    let failed = app
        .post(&editor, &format!("/v1/accounts/{account}/check"), json!({}))
        .await
        .ok();
    assert_eq!(failed["ok"], false, "{failed}");
    assert!(failed["error"].is_string());
    assert_eq!(failed["account"]["status"], "needs_reauth");
    assert!(failed["account"]["check_error"].is_string());
    assert!(app
        .recent_actions()
        .await
        .contains(&"account.check_failed".to_string()));
    let listed = app
        .get(&editor, "/v1/accounts?status=needs_reauth")
        .await
        .ok();
    assert_eq!(listed["items"][0]["id"], account.as_str());
}

#[tokio::test]
async fn the_refresh_job_renews_an_expiring_x_token_once_and_marks_a_dead_one() {
    let fake = FakeX::start().await;
    fake.add_user("kettleco");
    let app = x_app(&fake, 1).await;
    let account = app.connect("x", json!({"name": "Kettle Co"})).await;
    let id = account["id"].as_str().unwrap().to_string();
    assert_eq!(fake.refreshes(), 0);

    // The token now expires in 10 minutes: inside X's 30-minute lead.
    app.expire_token_in(&id, chrono::Duration::minutes(10));
    let renewed = app
        .wait_account(&id, 15, |a| {
            let expires =
                chrono::DateTime::parse_from_rfc3339(a["token_expires_at"].as_str().unwrap())
                    .unwrap();
            expires > chrono::Utc::now() + chrono::Duration::minutes(90)
        })
        .await;
    assert_eq!(renewed["status"], "active");
    // A few more job runs: the new token is not due, so no second refresh.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(fake.refreshes(), 1);
    assert!(app
        .recent_actions()
        .await
        .contains(&"account.token_refreshed".to_string()));

    // The renewed (rotated) credentials publish.
    let statement = app
        .approved_crisis(json!([{"platform": "x", "text": "After refresh"}]))
        .await;
    let d = app.publish_now(&statement, &id).await;
    assert_eq!(d["status"], "published", "{d}");

    // The user revokes Herald: the next refresh fails, and the account says why.
    fake.revoke_user("kettleco");
    app.expire_token_in(&id, chrono::Duration::minutes(10));
    let account = app
        .wait_account(&id, 15, |a| a["status"] == "needs_reauth")
        .await;
    assert!(
        account["status_reason"]
            .as_str()
            .unwrap()
            .contains("token refresh refused"),
        "{account}"
    );
    let listed = app
        .get(&app.admin, "/v1/accounts?status=needs_reauth")
        .await
        .ok();
    assert_eq!(listed["items"][0]["id"], id.as_str());
    assert!(app
        .recent_actions()
        .await
        .contains(&"account.needs_reauth".to_string()));
}

#[tokio::test]
async fn mastodon_accounts_connect_with_one_app_registration_per_instance() {
    use herald::fakes::mastodon::FakeMastodon;
    let fake = FakeMastodon::start().await;
    fake.add_account("kettleco");
    let app = crate::helpers::spawn_app().await;
    // The instance is required.
    app.post(
        &app.admin,
        "/v1/accounts/connect/mastodon",
        json!({"name": "m"}),
    )
    .await
    .invalid("base_url");
    let first = app
        .connect(
            "mastodon",
            json!({"name": "Kettle Co", "base_url": fake.base_url()}),
        )
        .await;
    assert_eq!(first["platform"], "mastodon");
    assert_eq!(
        first["max_characters"], 500,
        "the instance's own limit: {first}"
    );
    assert!(
        first["remote_name"]
            .as_str()
            .unwrap()
            .starts_with("@kettleco@"),
        "{first}"
    );
    fake.add_account("kettlehelp");
    fake.set_authorizing_account("kettlehelp");
    let second = app
        .connect(
            "mastodon",
            json!({"name": "Kettle Co help", "base_url": fake.base_url()}),
        )
        .await;
    assert_ne!(first["id"], second["id"]);
    // Herald registered itself once on the instance and reused it.
    assert_eq!(fake.apps().len(), 1);

    // The connected account publishes a thread.
    let statement = app
        .approved_crisis(
            json!([{"platform": "mastodon", "text": "Part one", "thread": ["Part two"]}]),
        )
        .await;
    let d = app
        .publish_now(&statement, first["id"].as_str().unwrap())
        .await;
    assert_eq!(d["status"], "published", "{d}");
    let posts = fake.posts();
    assert_eq!(posts.len(), 2);
    assert_eq!(
        posts[1].in_reply_to_id.as_deref(),
        Some(posts[0].id.as_str())
    );
}

/// The request log names the callback without its query: the authorization
/// code in it is a credential, however short-lived.
#[tokio::test]
async fn the_request_log_never_shows_an_authorization_code() {
    let app = crate::helpers::spawn_app().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut serve = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("serve")
        .env("HERALD_DATABASE_URL", &app.database_url)
        .env("HERALD_SECRET_KEY", &app.secret_key)
        .env("HERALD_BIND", format!("127.0.0.1:{port}"))
        .env("HERALD_LOG", "info")
        .env("HERALD_DISPATCH", "false")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start herald serve");
    let base = format!("http://127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while reqwest::get(format!("{base}/healthz")).await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "herald serve never answered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reply = reqwest::get(format!(
        "{base}/v1/oauth/callback?code=SECRET-CODE-4711&state=unknown-state"
    ))
    .await
    .unwrap();
    assert_eq!(reply.status().as_u16(), 400);
    serve.start_kill().unwrap();
    let out = serve.wait_with_output().await.unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        log.contains("/v1/oauth/callback"),
        "the request is logged: {log}"
    );
    assert!(!log.contains("SECRET-CODE-4711"), "{log}");
    assert!(!log.contains("unknown-state"), "{log}");
}

/// A post whose account was removed from Herald cannot be deleted by it:
/// the retraction says so, and where to act.
#[tokio::test]
async fn retracting_a_post_of_a_removed_account_says_it_must_be_done_by_hand() {
    let app = crate::helpers::spawn_app().await;
    let account = app.add_account("sandbox", "Drill", None, json!({})).await;
    let statement = app
        .approved_crisis(json!([{"platform": "sandbox", "text": "Recall"}]))
        .await;
    let d = app.publish_now(&statement, &account).await;
    assert_eq!(d["status"], "published", "{d}");
    assert_eq!(
        app.delete(&app.admin, &format!("/v1/accounts/{account}"))
            .await
            .status,
        204
    );
    let manager = app.key(Role::Manager);
    let reply = app
        .post(
            &manager,
            &format!("/v1/statements/{statement}/retract"),
            json!({"reason": "wrong"}),
        )
        .await
        .ok();
    assert_eq!(reply["not_possible"], 1, "{reply}");
    assert_eq!(reply["deliveries"][0]["outcome"], "not_possible");
    assert!(reply["deliveries"][0]["error"]
        .as_str()
        .unwrap()
        .contains("by hand"));
    let d = app
        .get(
            &manager,
            &format!("/v1/deliveries/{}", d["id"].as_str().unwrap()),
        )
        .await
        .ok();
    assert_eq!(d["status"], "published");
    assert!(d["retraction_error"].is_string());
}
