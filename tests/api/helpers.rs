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
    let (database_url, guard) = fresh_database();
    let settings = Settings {
        database_url: DatabaseUrl::parse(&database_url).unwrap(),
        bind: "127.0.0.1:0".into(),
        secret_key: Some(herald::crypto::SecretKey::generate().to_base64()),
        pool_size: 4,
        log_filter: "warn".into(),
        log_json: false,
    };
    let pool = db::pool(
        &settings.database_url,
        2,
        std::time::Duration::from_secs(10),
    )
    .unwrap();
    let application = Application::build(settings)
        .await
        .expect("build the application");
    let address = format!("http://127.0.0.1:{}", application.port());
    tokio::spawn(application.run_until_stopped());
    let admin = make_key(&pool, Role::Admin);
    TestApp {
        address,
        client: reqwest::Client::new(),
        pool,
        database_url,
        admin,
        _db: guard,
    }
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
