//! Outbound webhooks: subscriptions (admins only), the signed outbox,
//! retries with backoff, giving up, a restart in the middle, removal, and the
//! events the publish log raises. A small recording receiver stands in for
//! the customer's endpoint; the sender is driven through the library.

use std::collections::VecDeque;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use diesel::prelude::*;
use herald::config::WebhookSettings;
use herald::crypto::SecretKey;
use herald::db::{self, ConnectionFactory, DatabaseUrl, DbConnection};
use herald::keys::Role;
use herald::webhooks::sender::Sender;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::helpers::{make_named_key, spawn_app_with, start, test_settings, TestApp};

const SECRET: &str = "whsec-outbound-0123456789";

/// Retries after 1 s, 2 s, 4 s…; calls time out after 3 s. The app's own
/// sender job stays idle (`job_s` of an hour): these tests drive a [`Sender`]
/// themselves and must not race it.
fn fast() -> WebhookSettings {
    WebhookSettings {
        job_s: 3_600,
        retry_s: 1,
        give_up_s: 3_600,
        timeout_s: 3,
        keep_s: 3_600,
    }
}

async fn app_with(settings: WebhookSettings) -> TestApp {
    spawn_app_with(move |s| s.webhooks = settings).await
}

fn sender(app: &TestApp, settings: WebhookSettings) -> Sender {
    let key = SecretKey::from_base64(&app.secret_key).unwrap();
    Sender::new(app.pool.clone(), key, settings).unwrap()
}

// ---------------------------------------------------------------- receiver

/// One request as the receiver saw it.
#[derive(Clone, Debug)]
struct Call {
    headers: Vec<(String, String)>,
    body: String,
    /// Unix seconds when it arrived.
    received_at: i64,
}

impl Call {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {name} header: {:?}", self.headers))
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// Answers: scripted statuses first, then `otherwise`.
struct Script {
    calls: Vec<Call>,
    answers: VecDeque<u16>,
    otherwise: u16,
}

/// A receiver on its own thread and actix system, stopped when dropped.
struct Receiver {
    url: String,
    script: Arc<Mutex<Script>>,
    handle: actix_web::dev::ServerHandle,
}

impl Receiver {
    async fn start(answers: &[u16], otherwise: u16) -> Receiver {
        Self::start_on(
            TcpListener::bind("127.0.0.1:0").unwrap(),
            answers,
            otherwise,
        )
        .await
    }

    async fn start_on(listener: TcpListener, answers: &[u16], otherwise: u16) -> Receiver {
        let url = format!(
            "http://127.0.0.1:{}/hooks/herald",
            listener.local_addr().unwrap().port()
        );
        let script = Arc::new(Mutex::new(Script {
            calls: Vec::new(),
            answers: answers.iter().copied().collect(),
            otherwise,
        }));
        let data = web::Data::from(script.clone());
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(data.clone())
                        .default_service(web::to(record))
                })
                .workers(1)
                .disable_signals()
                .listen(listener)
                .unwrap()
                .run();
                let _ = tx.send(server.handle());
                let _ = server.await;
            })
        });
        Receiver {
            url,
            script,
            handle: rx.await.unwrap(),
        }
    }

    fn calls(&self) -> Vec<Call> {
        self.script.lock().unwrap().calls.clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

async fn record(
    req: HttpRequest,
    body: web::Bytes,
    script: web::Data<Mutex<Script>>,
) -> HttpResponse {
    let mut script = script.lock().unwrap();
    script.calls.push(Call {
        headers: req
            .headers()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
        body: String::from_utf8(body.to_vec()).unwrap(),
        received_at: chrono::Utc::now().timestamp(),
    });
    let status = script.answers.pop_front().unwrap_or(script.otherwise);
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
        .body(format!("answer {status}"))
}

/// Check `Herald-Signature` independently of Herald's code: HMAC-SHA256 of
/// `"<t>.<body>"` keyed with `secret`. Returns `t` when the signature holds.
fn verified_timestamp(secret: &str, header: &str, body: &str) -> Option<i64> {
    let (t, v1) = header.split_once(',')?;
    let t: i64 = t.strip_prefix("t=")?.parse().ok()?;
    let v1 = hex::decode(v1.strip_prefix("v1=")?).ok()?;
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    mac.verify_slice(&v1).ok().map(|_| t)
}

// ----------------------------------------------------------------- helpers

/// Subscribe `url` to `events` as the admin; returns the webhook's id.
async fn subscribe(app: &TestApp, url: &str, events: &[&str]) -> String {
    let reply = app
        .post(
            &app.admin,
            "/v1/webhooks",
            json!({"url": url, "events": events, "secret": SECRET}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.json()["id"].as_str().unwrap().to_string()
}

/// Queue an event the way Herald's own code does: inside a write transaction.
fn enqueue(app: &TestApp, event: &str, data: Value) -> usize {
    let mut conn = app.pool.get().unwrap();
    db::write_tx(&mut conn, |conn| {
        herald::webhooks::enqueue(conn, event, data)
    })
    .unwrap()
}

/// The webhook's calls as the API shows them (newest first).
async fn calls(app: &TestApp, hook: &str, query: &str) -> Vec<Value> {
    app.get(
        &app.admin,
        &format!("/v1/webhooks/{hook}/deliveries{query}"),
    )
    .await
    .ok()["items"]
        .as_array()
        .unwrap()
        .clone()
}

/// Run the sender until the webhook's calls satisfy `done` (or panic after `secs`).
async fn send_until(
    app: &TestApp,
    sender: &Sender,
    hook: &str,
    secs: u64,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        sender.run_due().await.unwrap();
        let items = calls(app, hook, "").await;
        if done(&items) {
            return items;
        }
        assert!(
            Instant::now() < deadline,
            "the calls never got there: {items:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn instant(v: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a time: {v}")))
        .unwrap()
}

// ------------------------------------------------------------------- tests

#[tokio::test]
async fn only_admins_manage_webhooks_and_wrong_input_names_the_field() {
    let app = app_with(fast()).await;
    let good = json!({"url": "https://ops.example.org/hooks", "events": ["delivery.failed"], "secret": SECRET});
    for role in [Role::Viewer, Role::Editor, Role::Approver, Role::Manager] {
        let key = app.key(role);
        app.post(&key, "/v1/webhooks", good.clone())
            .await
            .problem(403);
        app.get(&key, "/v1/webhooks").await.problem(403);
    }
    let id = subscribe(&app, "https://ops.example.org/hooks", &["delivery.failed"]).await;
    let manager = app.key(Role::Manager);
    for path in [
        format!("/v1/webhooks/{id}"),
        format!("/v1/webhooks/{id}/deliveries"),
    ] {
        app.get(&manager, &path).await.problem(403);
    }
    app.delete(&manager, &format!("/v1/webhooks/{id}"))
        .await
        .problem(403);

    let post = |body: Value| app.post(&app.admin, "/v1/webhooks", body);
    let with = |field: &str, value: Value| {
        let mut body = good.clone();
        body[field] = value;
        body
    };
    let p = post(with("url", json!("http://ops.example.org/hooks")))
        .await
        .invalid("url");
    assert!(
        p["detail"].as_str().unwrap().contains("https")
            && p["detail"].as_str().unwrap().contains("localhost"),
        "{p}"
    );
    for url in [
        "ftp://ops.example.org/h",
        "/hooks",
        "not a url",
        "https://u:p@ops.example.org/h",
    ] {
        post(with("url", json!(url))).await.invalid("url");
    }
    post(with("events", json!([]))).await.invalid("events");
    let p = post(with(
        "events",
        json!(["delivery.published", "delivery.sent"]),
    ))
    .await
    .invalid("events[1]");
    assert!(
        p["detail"].as_str().unwrap().contains("delivery.sent"),
        "{p}"
    );
    post(with(
        "events",
        json!(["reply.received", "account.needs_reauth", "reply.received"]),
    ))
    .await
    .invalid("events[2]");
    let short = "tooshort-secret";
    let p = post(with("secret", json!(short))).await.invalid("secret");
    assert!(!p.to_string().contains(short), "the secret is echoed: {p}");
    post(with("secret", json!("x".repeat(257))))
        .await
        .invalid("secret");
    post(with("secret", json!(12345678901234567890u64)))
        .await
        .invalid("secret");
    post(json!({"url": "https://ops.example.org/h", "events": ["delivery.failed"]}))
        .await
        .invalid("secret");
    // Every wrong field at once.
    let p = post(json!({"url": "http://10.1.2.3/h", "events": ["nope"], "secret": "s"}))
        .await
        .problem(422);
    let fields: Vec<&str> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["url", "events[0]", "secret"]);
    // Plain http is fine to this machine.
    for url in [
        "http://localhost:9/h",
        "http://127.0.0.1:9/h",
        "http://[::1]:9/h",
    ] {
        let reply = post(with("url", json!(url))).await;
        assert_eq!(reply.status, 201, "{url}: {}", reply.text);
    }
}

#[tokio::test]
async fn webhooks_are_created_listed_read_and_removed_and_the_secret_never_shows() {
    let app = app_with(fast()).await;
    let (admin_name, admin) = make_named_key(&app.pool, Role::Admin);
    let reply = app
        .post(
            &admin,
            "/v1/webhooks",
            json!({"url": "https://ops.example.org/hooks/herald",
                   "events": ["delivery.published", "replies.negative_spike"],
                   "secret": SECRET}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert!(!reply.text.contains(SECRET));
    let hook = reply.json();
    let id = hook["id"].as_str().unwrap().to_string();
    assert_eq!(hook["url"], "https://ops.example.org/hooks/herald");
    assert_eq!(
        hook["events"],
        json!(["delivery.published", "replies.negative_spike"])
    );
    assert_eq!(hook["created_by"], admin_name.as_str());
    assert!(hook["removed_at"].is_null());
    assert!(hook.get("secret").is_none(), "{hook}");

    // Stored sealed with the credential key, bound to the webhook's id.
    let sealed: String = {
        use herald::db::schema::webhooks;
        let mut conn = app.pool.get().unwrap();
        webhooks::table
            .find(&id)
            .select(webhooks::secret)
            .first(&mut conn)
            .unwrap()
    };
    assert!(!sealed.contains(SECRET));
    let key = SecretKey::from_base64(&app.secret_key).unwrap();
    assert_eq!(key.open(&sealed, &id).unwrap(), SECRET.as_bytes());
    assert!(key.open(&sealed, "another-id").is_err());

    // An Idempotency-Key makes a retried create answer the first webhook.
    let again = |key: &'static str| {
        app.send(
            app.client
                .post(app.url("/v1/webhooks"))
                .bearer_auth(&admin)
                .header("Idempotency-Key", key)
                .json(&json!({"url": "https://two.example.org/h", "events": ["delivery.failed"], "secret": SECRET})),
        )
    };
    let second = again("create-2").await.ok();
    assert_eq!(again("create-2").await.ok()["id"], second["id"]);
    let second = second["id"].as_str().unwrap().to_string();

    let got = app.get(&admin, &format!("/v1/webhooks/{id}")).await.ok();
    assert_eq!(got, hook);
    let page = app.get(&admin, "/v1/webhooks?limit=1").await.ok();
    assert_eq!(page["items"][0]["id"], second.as_str());
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest = app
        .get(&admin, &format!("/v1/webhooks?limit=1&cursor={cursor}"))
        .await
        .ok();
    assert_eq!(rest["items"][0]["id"], id.as_str());
    assert!(rest["next_cursor"].is_null());

    let gone = app.delete(&admin, &format!("/v1/webhooks/{id}")).await;
    assert_eq!(gone.status, 204, "{}", gone.text);
    let listed = app.get(&admin, "/v1/webhooks").await.ok();
    let ids: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [second.as_str()]);
    let removed = app.get(&admin, &format!("/v1/webhooks/{id}")).await.ok();
    assert!(removed["removed_at"].is_string(), "{removed}");
    app.delete(&admin, &format!("/v1/webhooks/{id}"))
        .await
        .problem(409);
    let unknown = uuid::Uuid::now_v7();
    app.get(&admin, &format!("/v1/webhooks/{unknown}"))
        .await
        .problem(404);
    app.delete(&admin, &format!("/v1/webhooks/{unknown}"))
        .await
        .problem(404);
    app.get(&admin, &format!("/v1/webhooks/{unknown}/deliveries"))
        .await
        .problem(404);
    app.get(&admin, "/v1/webhooks/not-an-id").await.problem(404);

    // Logged with the caller as actor, never with the secret.
    let log = app.get(&app.admin, "/v1/log?action=webhook.*").await;
    assert!(!log.text.contains(SECRET));
    let entries: Vec<(String, String, String)> = log.ok()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_string(),
                e["actor"].as_str().unwrap().to_string(),
                e["details"]["webhook_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected = [
        ("webhook.removed", &id),
        ("webhook.created", &second),
        ("webhook.created", &id),
    ]
    .map(|(a, w)| (a.to_string(), admin_name.clone(), w.clone()));
    assert_eq!(entries, expected);
    app.get(&app.admin, "/v1/log/verify").await.ok();
}

#[tokio::test]
async fn a_call_carries_the_event_and_a_fresh_signature_receivers_can_check() {
    let app = app_with(fast()).await;
    let receiver = Receiver::start(&[], 204).await;
    let hook = subscribe(&app, &receiver.url, &["reply.received"]).await;
    let data = json!({"reply_id": "r-1", "text": "Merci, c'est réparé ✓"});
    assert_eq!(enqueue(&app, "reply.received", data.clone()), 1);
    assert_eq!(
        enqueue(&app, "delivery.failed", json!({})),
        0,
        "not subscribed"
    );

    let items = send_until(&app, &sender(&app, fast()), &hook, 10, |items| {
        items.iter().all(|c| c["status"] == "delivered")
    })
    .await;
    let got = receiver.calls();
    assert_eq!(got.len(), 1);
    let call = &got[0];
    let outbox = &items[0];
    assert_eq!(call.header("content-type"), "application/json");
    assert!(call.header("user-agent").starts_with("Herald"), "{call:?}");
    assert_eq!(call.header("herald-event"), "reply.received");
    assert_eq!(
        call.header("herald-delivery"),
        outbox["id"].as_str().unwrap()
    );

    let t = verified_timestamp(SECRET, call.header("herald-signature"), &call.body)
        .unwrap_or_else(|| panic!("bad signature: {call:?}"));
    assert!((call.received_at - t).abs() <= 5, "stale timestamp {t}");
    assert_eq!(
        verified_timestamp(
            "another-secret-0123456",
            call.header("herald-signature"),
            &call.body
        ),
        None
    );
    let body = call.json();
    assert_eq!(body["id"], outbox["id"]);
    assert_eq!(body["event"], "reply.received");
    assert_eq!(body["data"], data);
    assert_eq!(instant(&body["created_at"]), instant(&outbox["created_at"]));
    assert_eq!(outbox["body"], body);

    assert_eq!(outbox["webhook_id"], hook.as_str());
    assert_eq!(outbox["event"], "reply.received");
    assert_eq!(outbox["attempts"], 1);
    assert_eq!(outbox["last_status"], 204);
    assert!(outbox["last_error"].is_null());
    assert!(outbox["next_attempt_at"].is_null());
    assert!(instant(&outbox["delivered_at"]) >= instant(&outbox["created_at"]));
    let tries = outbox["attempt_log"].as_array().unwrap();
    assert_eq!(tries.len(), 1);
    assert_eq!(tries[0]["number"], 1);
    assert_eq!(tries[0]["status"], 204);
    assert!(tries[0]["duration_ms"].as_i64().unwrap() >= 0);
}

#[tokio::test]
async fn a_receiver_that_fails_twice_gets_the_same_call_on_the_third_try() {
    let app = app_with(fast()).await;
    let receiver = Receiver::start(&[500, 503], 200).await;
    let hook = subscribe(&app, &receiver.url, &["account.needs_reauth"]).await;
    enqueue(&app, "account.needs_reauth", json!({"account_id": "a-1"}));

    let items = send_until(&app, &sender(&app, fast()), &hook, 20, |items| {
        items[0]["status"] == "delivered"
    })
    .await;
    let call = &items[0];
    assert_eq!(call["attempts"], 3);
    let tries = call["attempt_log"].as_array().unwrap();
    let statuses: Vec<i64> = tries
        .iter()
        .map(|t| t["status"].as_i64().unwrap())
        .collect();
    assert_eq!(statuses, [500, 503, 200]);
    let numbers: Vec<i64> = tries
        .iter()
        .map(|t| t["number"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [1, 2, 3]);
    assert!(
        tries[0]["error"].as_str().unwrap().contains("HTTP 500"),
        "{call}"
    );
    assert!(
        tries[1]["error"].as_str().unwrap().contains("503"),
        "{call}"
    );
    assert!(tries[2]["error"].is_null());
    // The delay doubles: 1 s, then 2 s (retry_s = 1).
    let at: Vec<_> = tries.iter().map(|t| instant(&t["at"])).collect();
    assert!(
        at[1] - at[0] >= chrono::Duration::milliseconds(1_000),
        "{at:?}"
    );
    assert!(
        at[2] - at[1] >= chrono::Duration::milliseconds(2_000),
        "{at:?}"
    );

    // Three requests, the same call each time: same id and bytes, each signed anew.
    let got = receiver.calls();
    assert_eq!(got.len(), 3);
    for request in &got {
        assert_eq!(
            request.header("herald-delivery"),
            call["id"].as_str().unwrap()
        );
        assert_eq!(request.body, got[0].body);
        assert!(
            verified_timestamp(SECRET, request.header("herald-signature"), &request.body).is_some()
        );
    }
    let stamps: Vec<i64> = got
        .iter()
        .map(|r| verified_timestamp(SECRET, r.header("herald-signature"), &r.body).unwrap())
        .collect();
    assert!(stamps[2] > stamps[0], "{stamps:?}");
}

#[tokio::test]
async fn calls_stop_once_give_up_s_has_passed() {
    let settings = WebhookSettings {
        give_up_s: 2,
        ..fast()
    };
    let app = app_with(settings.clone()).await;
    let receiver = Receiver::start(&[], 500).await;
    let hook = subscribe(&app, &receiver.url, &["delivery.missed"]).await;
    enqueue(&app, "delivery.missed", json!({"delivery_id": "d-1"}));
    let sender = sender(&app, settings);

    let items = send_until(&app, &sender, &hook, 20, |items| {
        items[0]["status"] == "failed"
    })
    .await;
    let call = &items[0];
    let tries = call["attempt_log"].as_array().unwrap();
    assert!(tries.len() >= 2, "{call}");
    assert_eq!(call["attempts"].as_u64().unwrap() as usize, tries.len());
    assert_eq!(call["last_status"], 500);
    assert!(call["next_attempt_at"].is_null());
    // The last try is not before the give-up instant.
    let last = instant(&tries.last().unwrap()["at"]);
    assert!(
        last - instant(&call["created_at"]) >= chrono::Duration::seconds(2),
        "{call}"
    );
    // Nothing more is sent.
    let sent = receiver.calls().len();
    assert_eq!(sent, tries.len());
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    sender.run_due().await.unwrap();
    assert_eq!(receiver.calls().len(), sent);
    assert_eq!(calls(&app, &hook, "?status=failed").await.len(), 1);
    assert!(calls(&app, &hook, "?status=pending").await.is_empty());
}

/// Wait until the calls made so far are over a second old, then a sender
/// that keeps settled calls one second (its first run deletes them).
async fn after_a_second_keeping_one(app: &TestApp) -> Sender {
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    sender(
        app,
        WebhookSettings {
            keep_s: 1,
            ..fast()
        },
    )
}

#[tokio::test]
async fn settled_calls_older_than_keep_s_are_deleted_with_their_tries_pending_ones_stay() {
    use herald::db::schema::{webhook_attempts, webhook_deliveries};
    let app = app_with(fast()).await;
    let ok = Receiver::start(&[], 204).await;
    let down = Receiver::start(&[], 503).await;
    let done = subscribe(&app, &ok.url, &["delivery.missed"]).await;
    let failing = subscribe(&app, &down.url, &["delivery.missed"]).await;
    assert_eq!(
        enqueue(&app, "delivery.missed", json!({"delivery_id": "d-1"})),
        2
    );
    let first = sender(&app, fast());
    send_until(&app, &first, &done, 10, |items| {
        items[0]["status"] == "delivered"
    })
    .await;
    send_until(&app, &first, &failing, 10, |items| {
        items[0]["attempts"].as_u64() >= Some(1)
    })
    .await;
    let tries = |hook: &str| -> i64 {
        let mut conn = app.pool.get().unwrap();
        webhook_attempts::table
            .inner_join(
                webhook_deliveries::table
                    .on(webhook_deliveries::id.eq(webhook_attempts::delivery_id)),
            )
            .filter(webhook_deliveries::webhook_id.eq(hook))
            .count()
            .get_result(&mut *conn)
            .unwrap()
    };
    assert_eq!(tries(&done), 1);

    // A sender keeping one second: its first run deletes the delivered call
    // and its try once they are older than that, and leaves the pending one.
    let purging = after_a_second_keeping_one(&app).await;
    purging.run_due().await.unwrap();
    assert!(calls(&app, &done, "").await.is_empty());
    assert_eq!(tries(&done), 0);
    let pending = calls(&app, &failing, "").await;
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0]["status"], "pending");
    assert!(tries(&failing) >= 1);
}

#[tokio::test]
async fn a_long_backlog_of_old_calls_is_deleted_over_several_runs() {
    use herald::db::schema::webhook_deliveries;
    let app = app_with(fast()).await;
    // 101 subscriptions × 100 events: 10,100 calls, more than one run deletes.
    for i in 0..101 {
        subscribe(
            &app,
            &format!("http://127.0.0.1:9/hook-{i}"),
            &["delivery.missed"],
        )
        .await;
    }
    {
        let mut conn = app.pool.get().unwrap();
        db::write_tx(&mut conn, |conn| {
            for n in 0..100 {
                herald::webhooks::enqueue(conn, "delivery.missed", json!({"n": n}))?;
            }
            diesel::update(webhook_deliveries::table)
                .set(webhook_deliveries::status.eq("delivered"))
                .execute(conn)
        })
        .unwrap();
    }
    let left = || -> i64 {
        let mut conn = app.pool.get().unwrap();
        webhook_deliveries::table
            .count()
            .get_result(&mut *conn)
            .unwrap()
    };
    assert_eq!(left(), 10_100);
    let purging = after_a_second_keeping_one(&app).await;
    // Ten transactions of a thousand in one run, then the next run goes on
    // without waiting for the hour.
    purging.run_due().await.unwrap();
    assert_eq!(left(), 100);
    purging.run_due().await.unwrap();
    assert_eq!(left(), 0);
}

#[tokio::test]
async fn a_410_gone_stops_the_calls_at_once() {
    let app = app_with(fast()).await;
    let receiver = Receiver::start(&[], 410).await;
    let hook = subscribe(&app, &receiver.url, &["delivery.failed"]).await;
    enqueue(&app, "delivery.failed", json!({}));
    let sender = sender(&app, fast());
    let items = send_until(&app, &sender, &hook, 10, |items| {
        items[0]["status"] != "pending"
    })
    .await;
    assert_eq!(items[0]["status"], "failed");
    assert_eq!(items[0]["attempts"], 1);
    assert_eq!(items[0]["last_status"], 410);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    sender.run_due().await.unwrap();
    assert_eq!(receiver.calls().len(), 1);
}

#[tokio::test]
async fn a_pending_call_survives_a_crash_and_is_delivered_by_the_next_instance() {
    let app = app_with(fast()).await;
    // The receiver's port, with nobody listening on it yet.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/hooks/herald");
    let hook = subscribe(&app, &url, &["delivery.published"]).await;
    enqueue(&app, "delivery.published", json!({"delivery_id": "d-9"}));

    // A Herald process tries while the receiver is down, and is killed.
    let mut first = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("serve")
        .env("HERALD_DATABASE_URL", &app.database_url)
        .env("HERALD_SECRET_KEY", &app.secret_key)
        .env("HERALD_BIND", "127.0.0.1:0")
        .env("HERALD_LOG", "error")
        .env("HERALD_WEBHOOKS_JOB_S", "1")
        .env("HERALD_WEBHOOKS_RETRY_S", "1")
        .env("HERALD_WEBHOOKS_TIMEOUT_S", "3")
        .kill_on_drop(true)
        .spawn()
        .expect("start herald serve");
    let deadline = Instant::now() + Duration::from_secs(20);
    while calls(&app, &hook, "").await[0]["attempts"] == 0 {
        assert!(Instant::now() < deadline, "the first process never tried");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.start_kill().unwrap();
    first.wait().await.unwrap();
    let items = calls(&app, &hook, "").await;
    assert_eq!(items[0]["status"], "pending", "{items:#?}");
    let error = items[0]["last_error"].as_str().unwrap();
    assert!(error.contains("connect"), "{error}");
    assert!(!error.contains(SECRET));
    assert!(items[0]["next_attempt_at"].is_string());

    // The receiver back up, and a new instance on the same database.
    let receiver =
        Receiver::start_on(TcpListener::bind(("127.0.0.1", port)).unwrap(), &[], 200).await;
    let mut settings = test_settings(&app.database_url, &app.secret_key);
    settings.webhooks = WebhookSettings { job_s: 1, ..fast() };
    let second = start(settings).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let call = loop {
        let page = app
            .send(
                app.client
                    .get(format!("{second}/v1/webhooks/{hook}/deliveries"))
                    .bearer_auth(&app.admin),
            )
            .await
            .ok();
        if page["items"][0]["status"] == "delivered" {
            break page["items"][0].clone();
        }
        assert!(Instant::now() < deadline, "never delivered: {page}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let tries = call["attempt_log"].as_array().unwrap();
    assert_eq!(call["attempts"].as_u64().unwrap() as usize, tries.len());
    let (last, before) = tries.split_last().unwrap();
    assert!(!before.is_empty());
    assert!(before.iter().all(|t| t["status"].is_null()), "{call}");
    assert_eq!(last["status"], 200);
    let got = receiver.calls();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].header("herald-delivery"),
        call["id"].as_str().unwrap()
    );
    assert_eq!(got[0].json()["data"]["delivery_id"], "d-9");
}

#[tokio::test]
async fn removing_a_webhook_cancels_its_pending_calls_only() {
    let app = app_with(fast()).await;
    let receiver = Receiver::start(&[], 200).await;
    let removed = subscribe(&app, &receiver.url, &["reply.needs_response"]).await;
    let kept = subscribe(&app, &receiver.url, &["reply.needs_response"]).await;
    assert_eq!(enqueue(&app, "reply.needs_response", json!({"n": 1})), 2);
    assert_eq!(enqueue(&app, "reply.needs_response", json!({"n": 2})), 2);

    let gone = app
        .delete(&app.admin, &format!("/v1/webhooks/{removed}"))
        .await;
    assert_eq!(gone.status, 204, "{}", gone.text);
    let cancelled = calls(&app, &removed, "?status=cancelled").await;
    assert_eq!(cancelled.len(), 2);
    assert!(cancelled.iter().all(|c| c["next_attempt_at"].is_null()));
    assert!(calls(&app, &removed, "?status=pending").await.is_empty());
    let log = app
        .get(&app.admin, "/v1/log?action=webhook.removed")
        .await
        .ok();
    assert_eq!(log["items"][0]["details"]["cancelled_calls"], 2);
    // No event reaches a removed webhook any more.
    assert_eq!(enqueue(&app, "reply.needs_response", json!({"n": 3})), 1);

    send_until(&app, &sender(&app, fast()), &kept, 10, |items| {
        items.len() == 3 && items.iter().all(|c| c["status"] == "delivered")
    })
    .await;
    assert_eq!(calls(&app, &removed, "").await.len(), 2);
    let got = receiver.calls();
    assert_eq!(got.len(), 3);
    assert!(got
        .iter()
        .all(|c| !c.body.contains(&removed) && c.json()["event"] == "reply.needs_response"));
    let page = app
        .get(
            &app.admin,
            &format!("/v1/webhooks/{kept}/deliveries?limit=2"),
        )
        .await
        .ok();
    assert_eq!(page["items"][0]["body"]["data"]["n"], 3, "newest first");
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest = calls(&app, &kept, &format!("?limit=2&cursor={cursor}")).await;
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0]["body"]["data"]["n"], 1);
    app.get(
        &app.admin,
        &format!("/v1/webhooks/{kept}/deliveries?status=sent"),
    )
    .await
    .invalid("status");
}

/// An approved crisis statement for the sandbox and a sandbox account.
async fn sandbox(app: &TestApp) -> (String, String) {
    let statement = app
        .approved_with("crisis", &[("sandbox", "The K-200 kettle is recalled.")])
        .await;
    let account = app.add_account("sandbox", "Drill", None, json!({})).await;
    (statement, account)
}

#[tokio::test]
async fn a_published_delivery_reaches_the_subscribed_webhooks_through_the_running_app() {
    // The app sends its outbox by itself here, every second.
    let app = app_with(WebhookSettings { job_s: 1, ..fast() }).await;
    let receiver = Receiver::start(&[], 200).await;
    let hook = subscribe(&app, &receiver.url, &["delivery.published"]).await;
    let other = subscribe(&app, &receiver.url, &["delivery.failed"]).await;
    let (statement, account) = sandbox(&app).await;
    let delivery = app.publish_now(&statement, &account).await;
    assert_eq!(delivery["status"], "published", "{delivery}");

    let deadline = Instant::now() + Duration::from_secs(15);
    let items = loop {
        let items = calls(&app, &hook, "").await;
        if !items.is_empty() && items.iter().all(|c| c["status"] == "delivered") {
            break items;
        }
        assert!(Instant::now() < deadline, "never delivered: {items:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(items.len(), 1, "{items:#?}");
    assert!(calls(&app, &other, "").await.is_empty());
    let got = receiver.calls();
    assert_eq!(got.len(), 1);
    let body = got[0].json();
    assert_eq!(got[0].header("herald-event"), "delivery.published");
    assert_eq!(
        got[0].header("herald-delivery"),
        items[0]["id"].as_str().unwrap()
    );
    assert!(verified_timestamp(SECRET, got[0].header("herald-signature"), &got[0].body).is_some());
    assert_eq!(body["event"], "delivery.published");
    let data = &body["data"];
    assert_eq!(data["delivery_id"], delivery["id"]);
    assert_eq!(data["statement_id"], statement.as_str());
    assert_eq!(data["account_id"], account.as_str());
    assert_eq!(data["actor"], "system");
    assert!(data["details"].is_object(), "{data}");
    instant(&data["at"]);
}

/// A connection that lists every SQL statement it runs.
fn counted_connection(database_url: &str) -> (DbConnection, Arc<Mutex<Vec<String>>>) {
    use diesel::connection::InstrumentationEvent;
    let factory = ConnectionFactory::new(DatabaseUrl::parse(database_url).unwrap());
    let mut conn = factory.connect().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let instrumentation = move |event: InstrumentationEvent<'_>| {
        if let InstrumentationEvent::StartQuery { query, .. } = event {
            sink.lock().unwrap().push(query.to_string());
        }
    };
    conn.set_instrumentation(instrumentation);
    (conn, seen)
}

#[tokio::test]
async fn log_rows_raise_their_events_at_the_cost_of_one_query_or_none() {
    use herald::db::schema::{publish_log, webhook_deliveries};
    use herald::log::store::LogRow;
    let app = app_with(fast()).await;
    let (statement, account) = sandbox(&app).await;
    let delivery = app.publish_now(&statement, &account).await;
    assert_eq!(delivery["status"], "published", "{delivery}");
    // Subscribed after the publication: nothing was queued for it then.
    let hook = subscribe(&app, "http://127.0.0.1:9/h", &["delivery.published"]).await;
    let rows: Vec<LogRow> = {
        let mut conn = app.pool.get().unwrap();
        publish_log::table
            .order(publish_log::seq)
            .select(LogRow::as_select())
            .load(&mut conn)
            .unwrap()
    };
    let (quiet, raising): (Vec<LogRow>, Vec<LogRow>) = rows
        .into_iter()
        .partition(|r| herald::webhooks::WebhookEvent::from_log_action(&r.action).is_none());
    assert!(quiet.len() > 5);
    let published: Vec<LogRow> = raising
        .iter()
        .filter(|r| r.action == "delivery.published")
        .cloned()
        .collect();
    assert_eq!(published.len(), 1);

    let (mut conn, seen) = counted_connection(&app.database_url);
    herald::webhooks::enqueue_for_log(&mut conn, &quiet).unwrap();
    assert!(
        seen.lock().unwrap().is_empty(),
        "{:?}",
        seen.lock().unwrap()
    );

    // An event no webhook wants: one read of the webhooks, nothing written.
    let mut missed = published[0].clone();
    missed.action = "delivery.missed".into();
    herald::webhooks::enqueue_for_log(&mut conn, &[missed]).unwrap();
    assert_eq!(seen.lock().unwrap().len(), 1, "{:?}", seen.lock().unwrap());
    seen.lock().unwrap().clear();

    let mut batch = quiet.clone();
    batch.extend(published.iter().cloned());
    herald::webhooks::enqueue_for_log(&mut conn, &batch).unwrap();
    let statements = seen.lock().unwrap().clone();
    let reads = statements
        .iter()
        .filter(|q| q.trim_start().to_uppercase().starts_with("SELECT"))
        .count();
    assert_eq!(reads, 1, "{statements:?}");
    assert_eq!(statements.len(), 2, "one read, one insert: {statements:?}");

    let queued: Vec<(String, String, String)> = webhook_deliveries::table
        .filter(webhook_deliveries::webhook_id.eq(&hook))
        .select((
            webhook_deliveries::event,
            webhook_deliveries::status,
            webhook_deliveries::payload,
        ))
        .load(&mut conn)
        .unwrap();
    assert_eq!(queued.len(), 1);
    let (event, status, payload) = &queued[0];
    assert_eq!(
        (event.as_str(), status.as_str()),
        ("delivery.published", "pending")
    );
    let body: Value = serde_json::from_str(payload).unwrap();
    assert_eq!(body["data"]["delivery_id"], delivery["id"]);
    assert_eq!(body["data"]["statement_id"], statement.as_str());
    assert_eq!(
        body["data"]["details"],
        serde_json::from_str::<Value>(&published[0].details).unwrap()
    );
}

#[tokio::test]
async fn two_senders_share_the_outbox_and_send_each_call_once() {
    let app = app_with(fast()).await;
    let receiver = Receiver::start(&[], 200).await;
    let hook = subscribe(&app, &receiver.url, &["reply.received"]).await;
    let n = 40;
    for i in 0..n {
        enqueue(&app, "reply.received", json!({"n": i}));
    }
    let instance = || {
        let url = DatabaseUrl::parse(&app.database_url).unwrap();
        let pool = db::pool(&url, 2, Duration::from_secs(10)).unwrap();
        Sender::new(
            pool,
            SecretKey::from_base64(&app.secret_key).unwrap(),
            fast(),
        )
        .unwrap()
    };
    let (a, b) = (instance(), instance());
    let (sent_a, sent_b) = tokio::join!(a.run_due(), b.run_due());
    assert_eq!(sent_a.unwrap() + sent_b.unwrap(), n);

    let got = receiver.calls();
    let mut ids: Vec<&str> = got.iter().map(|c| c.header("herald-delivery")).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!((got.len(), ids.len()), (n, n));
    let delivered = calls(&app, &hook, "?status=delivered&limit=200").await;
    assert_eq!(delivered.len(), n);
    assert!(
        delivered.iter().all(|c| c["attempts"] == 1),
        "{delivered:#?}"
    );
}

#[tokio::test]
async fn a_call_whose_sender_died_is_taken_over_when_its_lease_runs_out() {
    let app = app_with(fast()).await;
    let receiver = Receiver::start(&[], 200).await;
    let hook = subscribe(&app, &receiver.url, &["delivery.failed"]).await;
    enqueue(&app, "delivery.failed", json!({}));
    // A sender claims it for one second, then dies before calling.
    let claimed = {
        let mut conn = app.pool.get().unwrap();
        let now = db::now();
        herald::webhooks::outbox::claim_due(&mut conn, now, now + chrono::Duration::seconds(1), 16)
            .unwrap()
    };
    assert_eq!(claimed.len(), 1);
    let sender = sender(&app, fast());
    assert_eq!(sender.run_due().await.unwrap(), 0, "the lease holds");
    assert!(receiver.calls().is_empty());
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let items = send_until(&app, &sender, &hook, 10, |items| {
        items[0]["status"] == "delivered"
    })
    .await;
    assert_eq!(items[0]["attempts"], 1);
    assert_eq!(receiver.calls().len(), 1);
}
