//! `spawn_app()`: the real server on port 0 against a fresh database: a temp
//! SQLite file, or, when HERALD_TEST_DATABASE_URL is set, a new PostgreSQL
//! database made for this test and dropped afterwards.

use std::sync::atomic::{AtomicUsize, Ordering};

use diesel::prelude::*;
use herald::app::Application;
use herald::config::Settings;
use herald::db::{self, DatabaseUrl, DbPool};
use herald::keys::{self, Role};
use serde_json::{json, Value};

static KEY_COUNTER: AtomicUsize = AtomicUsize::new(0);

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub pool: DbPool,
    pub database_url: String,
    /// base64 credential key of this instance (a second instance must share it).
    pub secret_key: String,
    /// The key secret of an admin made at start.
    pub admin: String,
    _db: TestDatabase,
}

pub enum TestDatabase {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let TestDatabase::Postgres { admin_url, name } = self {
            if let Ok(mut conn) = PgConnection::establish(admin_url) {
                let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn);
            }
        }
    }
}

/// Point a PostgreSQL URL at another database.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let prefix = match base.rfind('/') {
        Some(i) if i > base.find("://").map_or(0, |j| j + 2) => &base[..i],
        _ => base,
    };
    match query {
        Some(q) => format!("{prefix}/{name}?{q}"),
        None => format!("{prefix}/{name}"),
    }
}

pub fn fresh_database() -> (String, TestDatabase) {
    match std::env::var("HERALD_TEST_DATABASE_URL") {
        Ok(admin_url) if !admin_url.is_empty() => {
            let name = format!("herald_test_{}", uuid::Uuid::now_v7().simple());
            let mut conn = PgConnection::establish(&admin_url)
                .unwrap_or_else(|e| panic!("cannot reach HERALD_TEST_DATABASE_URL: {e}"));
            diesel::sql_query(format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .expect("create the test database");
            let url = with_database(&admin_url, &name);
            (url, TestDatabase::Postgres { admin_url, name })
        }
        _ => {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = dir.path().join("herald.db").to_string_lossy().into_owned();
            (url, TestDatabase::Sqlite(dir))
        }
    }
}

pub fn is_postgres() -> bool {
    std::env::var("HERALD_TEST_DATABASE_URL").is_ok_and(|v| !v.is_empty())
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Test settings against `database_url`, with a fast dispatcher (short
/// leases and timeouts, so crash recovery is seen within seconds).
pub fn test_settings(database_url: &str, secret_key: &str) -> Settings {
    Settings {
        database_url: DatabaseUrl::parse(database_url).unwrap(),
        bind: "127.0.0.1:0".into(),
        secret_key: Some(secret_key.to_string()),
        pool_size: 4,
        log_filter: "warn".into(),
        log_json: false,
        dispatch: herald::config::DispatchSettings {
            publish_timeout_s: 3,
            lease_s: 9,
            ..Default::default()
        },
        networks: Default::default(),
        // Jobs look for due work every second; the cadence itself is the
        // default one unless a test changes it.
        replies: herald::config::ReplySettings {
            job_s: 1,
            ..Default::default()
        },
        webhooks: herald::config::WebhookSettings {
            job_s: 1,
            retry_s: 1,
            ..Default::default()
        },
    }
}

/// A Herald on a fresh database, with settings adjusted by `tweak`.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let (database_url, guard) = fresh_database();
    let secret = herald::crypto::SecretKey::generate().to_base64();
    let mut settings = test_settings(&database_url, &secret);
    tweak(&mut settings);
    let pool = db::pool(
        &settings.database_url,
        2,
        std::time::Duration::from_secs(10),
    )
    .unwrap();
    let address = start(settings).await;
    let admin = make_key(&pool, Role::Admin);
    TestApp {
        address,
        client: reqwest::Client::new(),
        pool,
        database_url,
        secret_key: secret,
        admin,
        _db: guard,
    }
}

/// Start one more Herald instance on an existing database; returns its address.
pub async fn start(settings: Settings) -> String {
    let application = Application::build(settings)
        .await
        .expect("build the application");
    let address = format!("http://127.0.0.1:{}", application.port());
    tokio::spawn(application.run_until_stopped());
    address
}

/// Store a key with a unique name; returns (name, secret).
pub fn make_named_key(pool: &DbPool, role: Role) -> (String, String) {
    let n = KEY_COUNTER.fetch_add(1, Ordering::SeqCst);
    let name = format!("{}-{n}", role.as_str());
    let secret = keys::generate();
    let mut conn = pool.get().unwrap();
    keys::store::create(&mut conn, "test", &name, role, &secret).unwrap();
    (name, secret)
}

pub fn make_key(pool: &DbPool, role: Role) -> String {
    make_named_key(pool, role).1
}

/// A response read whole.
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    /// Assert a problem+json answer with this status; returns the problem.
    pub fn problem(&self, status: u16) -> Value {
        assert_eq!(
            self.status, status,
            "expected {status}, got {}: {}",
            self.status, self.text
        );
        assert_eq!(
            self.content_type, "application/problem+json",
            "{}",
            self.text
        );
        let p = self.json();
        assert_eq!(p["status"], status);
        assert!(p["detail"].as_str().is_some_and(|d| !d.is_empty()), "{p}");
        assert!(p["type"].as_str().is_some(), "{p}");
        assert!(p["title"].as_str().is_some(), "{p}");
        p
    }

    /// Assert a 422 whose `errors` name `field`.
    pub fn invalid(&self, field: &str) -> Value {
        let p = self.problem(422);
        let fields: Vec<&str> = p["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("no errors: {p}"))
            .iter()
            .filter_map(|e| e["field"].as_str())
            .collect();
        assert!(
            fields.contains(&field),
            "expected an error on {field}, got {fields:?}: {p}"
        );
        p
    }

    pub fn ok(&self) -> Value {
        assert!(
            (200..300).contains(&self.status),
            "expected success, got {}: {}",
            self.status,
            self.text
        );
        self.json()
    }
}

impl TestApp {
    pub fn key(&self, role: Role) -> String {
        make_key(&self.pool, role)
    }

    pub async fn send(&self, builder: reqwest::RequestBuilder) -> Reply {
        let response = builder.send().await.expect("request sent");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let text = response.text().await.unwrap_or_default();
        Reply {
            status,
            content_type,
            headers,
            text,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, key: &str, path: &str) -> Reply {
        self.send(self.client.get(self.url(path)).bearer_auth(key))
            .await
    }

    pub async fn post(&self, key: &str, path: &str, body: Value) -> Reply {
        self.send(
            self.client
                .post(self.url(path))
                .bearer_auth(key)
                .json(&body),
        )
        .await
    }

    /// POST with no body (actions such as submit and approve).
    pub async fn act(&self, key: &str, path: &str) -> Reply {
        self.send(self.client.post(self.url(path)).bearer_auth(key))
            .await
    }

    pub async fn patch(&self, key: &str, path: &str, body: Value) -> Reply {
        self.send(
            self.client
                .patch(self.url(path))
                .bearer_auth(key)
                .json(&body),
        )
        .await
    }

    pub async fn put(&self, key: &str, path: &str, body: Value) -> Reply {
        self.send(self.client.put(self.url(path)).bearer_auth(key).json(&body))
            .await
    }

    pub async fn delete(&self, key: &str, path: &str) -> Reply {
        self.send(self.client.delete(self.url(path)).bearer_auth(key))
            .await
    }

    /// Create a statement as `key`; returns its JSON.
    pub async fn create_statement(&self, key: &str, body: Value) -> Value {
        let reply = self.post(key, "/v1/statements", body).await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        reply.json()
    }

    /// A draft crisis statement with a mastodon and a bluesky variant.
    pub async fn draft(&self, key: &str, severity: &str) -> String {
        let s = self
            .create_statement(
                key,
                json!({
                    "title": "Kettle recall",
                    "kind": "crisis",
                    "severity": severity,
                    "variants": [
                        {"platform": "mastodon", "text": "We are recalling the K-200 kettle."},
                        {"platform": "bluesky", "text": "We are recalling the K-200 kettle."}
                    ]
                }),
            )
            .await;
        s["id"].as_str().unwrap().to_string()
    }

    /// A draft crisis statement, submitted for review by its author.
    pub async fn in_review(&self, author: &str, severity: &str) -> String {
        let id = self.draft(author, severity).await;
        let s = self
            .act(author, &format!("/v1/statements/{id}/submit"))
            .await
            .ok();
        assert_eq!(s["status"], "in_review");
        id
    }

    /// A statement approved by one fresh approver.
    pub async fn approved(&self, author: &str) -> String {
        let id = self.in_review(author, "moderate").await;
        let approver = self.key(Role::Approver);
        let s = self
            .act(&approver, &format!("/v1/statements/{id}/approve"))
            .await
            .ok();
        assert_eq!(s["status"], "approved");
        id
    }

    /// Every log action for a statement, oldest first.
    pub async fn log_actions(&self, statement_id: &str) -> Vec<(String, String)> {
        let page = self
            .get(
                &self.admin,
                &format!("/v1/log?statement_id={statement_id}&limit=200"),
            )
            .await
            .ok();
        let mut items: Vec<(String, String)> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["action"].as_str().unwrap().to_string(),
                    e["actor"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        items.reverse();
        items
    }
}

impl TestApp {
    /// An approved statement (one approver) with these `(platform, text)` variants.
    pub async fn approved_with(&self, kind: &str, variants: &[(&str, &str)]) -> String {
        let mut body = json!({
            "title": "Outage update",
            "kind": kind,
            "variants": variants
                .iter()
                .map(|(p, t)| json!({"platform": p, "text": t}))
                .collect::<Vec<_>>(),
        });
        if kind == "crisis" {
            body["severity"] = json!("moderate");
        }
        self.create_approved(body).await
    }

    /// An approved moderate crisis statement "K-200 recall" with these
    /// `variants` (JSON, as the API takes them); returns its id.
    pub async fn approved_crisis(&self, variants: Value) -> String {
        self.create_approved(json!({
            "title": "K-200 recall",
            "kind": "crisis",
            "severity": "moderate",
            "variants": variants,
        }))
        .await
    }

    /// Create the statement `body` as a fresh editor, submit it, and approve
    /// it as a fresh approver (one approval is enough for it); returns its id.
    pub async fn create_approved(&self, body: Value) -> String {
        let author = self.key(Role::Editor);
        let id = self.create_statement(&author, body).await["id"]
            .as_str()
            .unwrap()
            .to_string();
        self.act(&author, &format!("/v1/statements/{id}/submit"))
            .await
            .ok();
        let approver = self.key(Role::Approver);
        let s = self
            .act(&approver, &format!("/v1/statements/{id}/approve"))
            .await
            .ok();
        assert_eq!(s["status"], "approved", "{s}");
        id
    }

    /// Schedule `statement` to `account` now and wait (20 s at most) until
    /// the delivery is settled: neither scheduled nor publishing. Returns it.
    pub async fn publish_now(&self, statement: &str, account: &str) -> Value {
        let reply = self
            .schedule(statement, &[account], json!({"now": true}))
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        let id = reply.json()["deliveries"][0]["id"]
            .as_str()
            .unwrap()
            .to_string();
        self.wait_delivery(&id, 20, |d| {
            d["status"] != "scheduled" && d["status"] != "publishing"
        })
        .await
    }

    /// The actions of the latest 200 log entries, newest first.
    pub async fn recent_actions(&self) -> Vec<String> {
        self.get(&self.admin, "/v1/log?limit=200").await.ok()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap().to_string())
            .collect()
    }

    /// Start connecting an account of `platform` as the admin; returns the
    /// answer (`authorize_url`, `state`).
    pub async fn start_connect(&self, platform: &str, body: Value) -> Value {
        let started = self
            .post(
                &self.admin,
                &format!("/v1/accounts/connect/{platform}"),
                body,
            )
            .await;
        assert_eq!(started.status, 201, "{}", started.text);
        started.json()
    }

    /// Connect an account of `platform` through OAuth end to end: the fake
    /// approves at once and sends the browser back to Herald's callback,
    /// which answers the account. Returns it.
    pub async fn connect(&self, platform: &str, body: Value) -> Value {
        let started = self.start_connect(platform, body).await;
        let callback = crate::kit::approve(started["authorize_url"].as_str().unwrap())
            .await
            .location;
        assert!(
            callback.starts_with(&format!("{}/v1/oauth/callback?", self.address)),
            "{callback}"
        );
        let reply = self.send(self.client.get(&callback)).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        reply.json()
    }

    /// Poll an account until `done` holds (or panic after `secs`); returns it.
    pub async fn wait_account(&self, id: &str, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let a = self
                .get(&self.admin, &format!("/v1/accounts/{id}"))
                .await
                .ok();
            if done(&a) {
                return a;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the account never reached the expected state: {a}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    /// Move the account's token expiry to `from_now` in the store (inside
    /// the refresh lead, the refresh job takes it).
    pub fn expire_token_in(&self, account: &str, from_now: chrono::Duration) {
        use herald::db::schema::accounts;
        let mut conn = self.pool.get().unwrap();
        diesel::update(accounts::table.find(account))
            .set(accounts::token_expires_at.eq(Some(herald::db::now() + from_now)))
            .execute(&mut conn)
            .unwrap();
    }

    /// Add an account as the admin; returns its id.
    pub async fn add_account(
        &self,
        platform: &str,
        name: &str,
        base_url: Option<&str>,
        credentials: Value,
    ) -> String {
        let mut body = json!({"platform": platform, "name": name, "credentials": credentials});
        if let Some(url) = base_url {
            body["base_url"] = json!(url);
        }
        let reply = self.post(&self.admin, "/v1/accounts", body).await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        reply.json()["id"].as_str().unwrap().to_string()
    }

    /// Schedule `statement` to `accounts` with extra fields in `when`; returns the reply.
    pub async fn schedule(&self, statement: &str, accounts: &[&str], when: Value) -> Reply {
        let mut body = when;
        body["accounts"] = json!(accounts);
        let editor = self.key(Role::Editor);
        self.post(
            &editor,
            &format!("/v1/statements/{statement}/deliveries"),
            body,
        )
        .await
    }

    /// Poll a delivery until `done` holds (or panic after `secs`); returns it.
    pub async fn wait_delivery(&self, id: &str, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let d = self
                .get(&self.admin, &format!("/v1/deliveries/{id}"))
                .await
                .ok();
            if done(&d) {
                return d;
            }
            if std::time::Instant::now() > deadline {
                panic!("delivery never reached the expected state: {d}");
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Poll until the delivery has `status`.
    pub async fn wait_status(&self, id: &str, status: &str, secs: u64) -> Value {
        self.wait_delivery(id, secs, |d| d["status"] == status)
            .await
    }

    /// Count deliveries by status straight from the store.
    pub fn count_status(&self, status: &str) -> i64 {
        use herald::db::schema::deliveries;
        let mut conn = self.pool.get().unwrap();
        deliveries::table
            .filter(deliveries::status.eq(status))
            .count()
            .get_result(&mut conn)
            .unwrap()
    }
}

/// An RFC 3339 instant `ms` milliseconds from now.
pub fn in_ms(ms: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::milliseconds(ms))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// An HTTP server on its own thread and actix system, stopped when dropped.
pub struct LocalServer {
    /// `http://127.0.0.1:<port>` and the path given at start.
    pub url: String,
    handle: actix_web::dev::ServerHandle,
}

impl LocalServer {
    /// Bind a port on 127.0.0.1 and run the server `serve` makes on it.
    pub async fn start(
        path: &str,
        serve: impl FnOnce(std::net::TcpListener) -> actix_web::dev::Server + Send + 'static,
    ) -> LocalServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://127.0.0.1:{}{path}",
            listener.local_addr().unwrap().port()
        );
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = serve(listener);
                let _ = tx.send(server.handle());
                let _ = server.await;
            })
        });
        LocalServer {
            url,
            handle: rx.await.unwrap(),
        }
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}
