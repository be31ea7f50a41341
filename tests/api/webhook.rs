//! The webhook connector against a small recording receiver.

use std::collections::VecDeque;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use chrono::Utc;
use herald::platforms::webhook::{verify, Webhook};
use herald::platforms::{AccountSession, Connector, ConnectorError, Credentials, Platform, Post};
use serde_json::Value;

use crate::helpers::LocalServer;
use crate::kit;

const SECRET: &str = "whsec-4f1c9a";

/// One request as the receiver saw it.
#[derive(Clone)]
struct Received {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A scripted answer: status, headers, body.
type Answer = (u16, Vec<(&'static str, String)>, String);

#[derive(Default)]
struct Log {
    received: Vec<Received>,
    answers: VecDeque<Answer>,
}

/// A receiver on its own thread and actix system: records every request and
/// answers from a script (200 with an id once the script is empty).
struct Receiver {
    url: String,
    log: Arc<Mutex<Log>>,
    _server: LocalServer,
}

impl Receiver {
    async fn start() -> Receiver {
        let log = Arc::new(Mutex::new(Log::default()));
        let data = web::Data::from(log.clone());
        let server = LocalServer::start("/hooks/herald", move |listener| {
            HttpServer::new(move || {
                App::new()
                    .app_data(data.clone())
                    .default_service(web::to(record))
            })
            .workers(1)
            .disable_signals()
            .listen(listener)
            .unwrap()
            .run()
        })
        .await;
        Receiver {
            url: server.url.clone(),
            log,
            _server: server,
        }
    }

    fn answer_next(&self, status: u16, headers: Vec<(&'static str, String)>, body: &str) {
        self.log
            .lock()
            .unwrap()
            .answers
            .push_back((status, headers, body.to_string()));
    }

    fn received(&self) -> Vec<Received> {
        self.log.lock().unwrap().received.clone()
    }
}

async fn record(req: HttpRequest, body: web::Bytes, log: web::Data<Mutex<Log>>) -> HttpResponse {
    let mut log = log.lock().unwrap();
    log.received.push(Received {
        headers: req
            .headers()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
        body: body.to_vec(),
    });
    let (status, headers, body) = log.answers.pop_front().unwrap_or_else(|| {
        (
            200,
            vec![],
            r#"{"id":"rcv-1","url":"https://status.example/rcv-1"}"#.to_string(),
        )
    });
    let mut response = HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap());
    for (name, value) in headers {
        response.insert_header((name, value));
    }
    response.body(body)
}

fn account(url: &str, secret: Option<&str>) -> AccountSession {
    let mut values = vec![("url", url)];
    values.extend(secret.map(|secret| ("secret", secret)));
    AccountSession {
        id: "acc-hook".into(),
        name: "Intranet".into(),
        ..kit::session(Platform::Webhook, None, &values)
    }
}

/// Delivery `del-42` of version 3 of statement `st-7`, planned a minute ago.
fn post() -> Post {
    Post {
        delivery_id: "del-42".into(),
        statement_id: "st-7".into(),
        statement_version: 3,
        title: "Kettle recall".into(),
        idempotency_key: "idem-42".into(),
        ..kit::post_at(
            "Stop using the K-200 kettle. Ünïcode & \"quotes\".",
            Utc::now() - chrono::Duration::minutes(1),
        )
    }
}

fn webhook() -> Webhook {
    Webhook::new(reqwest::Client::new())
}

#[tokio::test]
async fn a_delivery_is_signed_json_with_its_headers_and_the_answer_gives_the_remote_id() {
    let receiver = Receiver::start().await;
    let post = post();

    let published = webhook()
        .publish(&account(&receiver.url, Some(SECRET)), &post)
        .await
        .unwrap();
    assert_eq!(published.remote_id, "rcv-1");
    assert_eq!(
        published.remote_url.as_deref(),
        Some("https://status.example/rcv-1")
    );

    let received = receiver.received();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("idempotency-key"), Some("idem-42"));
    assert_eq!(request.header("herald-delivery"), Some("del-42"));
    let signature = request.header("herald-signature").expect("signed");
    assert!(signature.starts_with("sha256="));
    assert!(verify(SECRET.as_bytes(), &request.body, signature));
    assert!(!verify(b"wrong secret", &request.body, signature));

    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(body["event"], "delivery.publish");
    assert_eq!(body["delivery_id"], "del-42");
    assert_eq!(body["statement_id"], "st-7");
    assert_eq!(body["statement_version"], 3);
    assert_eq!(body["title"], "Kettle recall");
    assert_eq!(body["kind"], "crisis");
    assert_eq!(body["platform"], "webhook");
    assert_eq!(body["account_id"], "acc-hook");
    assert_eq!(body["text"], post.text);
    assert_eq!(body["language"], "en");
    for field in ["planned_at", "sent_at"] {
        let at = body[field].as_str().unwrap();
        assert!(at.ends_with('Z'), "{field}: {at}");
        assert!(
            chrono::DateTime::parse_from_rfc3339(at).is_ok(),
            "{field}: {at}"
        );
    }
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(body["planned_at"].as_str().unwrap()).unwrap(),
        post.planned_at
    );
}

#[tokio::test]
async fn without_a_secret_there_is_no_signature_and_the_delivery_id_stands_for_the_remote_id() {
    let receiver = Receiver::start().await;
    receiver.answer_next(204, vec![], "");

    let published = webhook()
        .publish(&account(&receiver.url, None), &post())
        .await
        .unwrap();
    assert_eq!(published.remote_id, "del-42");
    assert_eq!(published.remote_url, None);
    assert_eq!(receiver.received()[0].header("herald-signature"), None);
}

#[tokio::test]
async fn refusals_are_classified_by_status() {
    let receiver = Receiver::start().await;
    let account = account(&receiver.url, Some(SECRET));
    receiver.answer_next(500, vec![], "database down");
    receiver.answer_next(410, vec![], "");
    receiver.answer_next(429, vec![("Retry-After", "17".to_string())], "slow down");
    receiver.answer_next(400, vec![], &"bad field ".repeat(100));
    receiver.answer_next(401, vec![], "");

    let transient = webhook().publish(&account, &post()).await.unwrap_err();
    kit::assert_error(&transient, "transient", "database down");

    let gone = webhook().publish(&account, &post()).await.unwrap_err();
    assert_eq!(gone.class(), "auth_revoked");
    assert_eq!(gone.status(), Some(410));

    let error = webhook().publish(&account, &post()).await.unwrap_err();
    let (retry_after, status, _) = kit::rate_limited(&error);
    assert_eq!(retry_after, Duration::from_secs(17));
    assert_eq!(status, Some(429));

    match webhook().publish(&account, &post()).await.unwrap_err() {
        ConnectorError::Rejected { message, status } => {
            assert_eq!(status, Some(400));
            assert!(message.contains("bad field"));
            assert!(
                message.len() < 260,
                "an excerpt, not the whole body: {}",
                message.len()
            );
        }
        other => panic!("expected Rejected, got {other:?}"),
    }

    let refused = webhook().publish(&account, &post()).await.unwrap_err();
    kit::assert_error(&refused, "auth_revoked", "refused Herald's credentials");
    assert_eq!(receiver.received().len(), 5);
}

#[tokio::test]
async fn reconcile_sends_the_same_delivery_again_with_the_same_key() {
    let receiver = Receiver::start().await;
    let account = account(&receiver.url, Some(SECRET));
    let post = post();

    webhook().publish(&account, &post).await.unwrap();
    let again = webhook().reconcile(&account, &post).await.unwrap();
    assert_eq!(again.map(|p| p.remote_id).as_deref(), Some("rcv-1"));

    let received = receiver.received();
    assert_eq!(received.len(), 2);
    assert_eq!(
        received[0].header("idempotency-key"),
        received[1].header("idempotency-key")
    );
    assert!(verify(
        SECRET.as_bytes(),
        &received[1].body,
        received[1].header("herald-signature").unwrap()
    ));
}

#[tokio::test]
async fn an_unreachable_endpoint_is_transient_and_a_missing_url_needs_a_reconnect() {
    // Bind then drop a port so nothing listens on it.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let error = webhook()
        .publish(
            &account(&format!("http://127.0.0.1:{port}/hook"), None),
            &post(),
        )
        .await
        .unwrap_err();
    assert_eq!(error.class(), "transient", "{error:?}");

    let no_url = AccountSession::new(
        "acc-hook",
        Platform::Webhook,
        "Intranet",
        None,
        Credentials::default(),
    );
    assert_eq!(
        webhook()
            .publish(&no_url, &post())
            .await
            .unwrap_err()
            .class(),
        "auth_revoked"
    );
    let not_http = webhook()
        .publish(
            &account("ftp://files.example/?token=secret-in-url", None),
            &post(),
        )
        .await
        .unwrap_err();
    assert_eq!(not_http.class(), "rejected");
    assert!(!not_http.to_string().contains("secret-in-url"));
}

/// A thread whose second part fails once: the retry goes on from that part
/// with its own key; the first part is never sent twice.
#[tokio::test]
async fn a_thread_interrupted_by_a_failure_resumes_at_the_part_that_failed() {
    use crate::helpers::spawn_app;
    use herald::keys::Role;
    use serde_json::json;

    let receiver = Receiver::start().await;
    receiver.answer_next(200, vec![], r#"{"id":"p0"}"#);
    receiver.answer_next(503, vec![], "busy");
    receiver.answer_next(200, vec![], r#"{"id":"p1"}"#);
    receiver.answer_next(200, vec![], r#"{"id":"p2"}"#);
    let app = spawn_app().await;
    let account = app
        .add_account("webhook", "Intranet", None, json!({"url": receiver.url}))
        .await;
    let author = app.key(Role::Editor);
    let id = app
        .create_statement(
            &author,
            json!({"title": "t", "kind": "routine", "variants": [
                {"platform": "webhook", "text": "one", "thread": ["two", "three"]}]}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.act(&author, &format!("/v1/statements/{id}/submit"))
        .await
        .ok();
    let approver = app.key(Role::Approver);
    app.act(&approver, &format!("/v1/statements/{id}/approve"))
        .await
        .ok();
    let reply = app.schedule(&id, &[&account], json!({"now": true})).await;
    let delivery = reply.json()["deliveries"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let d = app.wait_status(&delivery, "published", 20).await;
    let ids: Vec<&str> = d["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["p0", "p1", "p2"]);
    assert_eq!(d["remote_id"], "p0");

    let received = receiver.received();
    assert_eq!(received.len(), 4, "part 0 once, part 1 twice, part 2 once");
    let bodies: Vec<Value> = received
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    let texts: Vec<&str> = bodies.iter().map(|b| b["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["one", "two", "two", "three"]);
    assert_eq!(bodies[1]["in_reply_to"], "p0");
    assert_eq!(bodies[3]["in_reply_to"], "p1");
    assert_eq!(bodies[3]["part"], 2);
    // Every attempt of one part carries that part's key; parts differ.
    let keys: Vec<&str> = received
        .iter()
        .map(|r| r.header("idempotency-key").unwrap())
        .collect();
    assert_eq!(keys[1], keys[2]);
    assert_ne!(keys[0], keys[1]);
    assert_ne!(keys[2], keys[3]);
    assert_eq!(d["attempt_log"].as_array().unwrap().len(), 2);
}
