//! The built-in `sandbox` network: posts are kept in Herald's own store and
//! listed at `GET /v1/sandbox/posts`. It needs no credentials, so a newcomer
//! can run the whole flow, and a crisis cell can drill, without a social
//! account. Publishing is idempotent on the delivery's key, like Mastodon.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{AccountSession, Connector, ConnectorError, Post, Published};
use crate::db::schema::sandbox_posts;
use crate::db::{self, DbConnection, DbPool};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = sandbox_posts)]
pub struct SandboxPost {
    pub id: String,
    pub account_id: String,
    pub delivery_id: Option<String>,
    pub idempotency_key: String,
    pub text: String,
    pub language: Option<String>,
    pub created_at: NaiveDateTime,
    /// The sandbox post this one answers (a thread's earlier part, a corrected post).
    pub in_reply_to: Option<String>,
    /// Images: JSON `[{url, alt}]`.
    pub media: Option<String>,
}

impl SandboxPost {
    pub fn url(&self) -> String {
        format!("/v1/sandbox/posts/{}", self.id)
    }

    fn published(&self) -> Published {
        Published {
            remote_id: self.id.clone(),
            remote_url: Some(self.url()),
            pause_until: None,
        }
    }
}

#[derive(Clone)]
pub struct Sandbox {
    pool: DbPool,
}

impl Sandbox {
    pub fn new(pool: DbPool) -> Self {
        Self { pool }
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut DbConnection) -> QueryResult<T> + Send + 'static,
    ) -> Result<T, ConnectorError> {
        let pool = self.pool.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().map_err(|e| e.to_string())?;
            f(&mut conn).map_err(|e| e.to_string())
        })
        .await;
        match outcome {
            Ok(Ok(value)) => Ok(value),
            // The store is local: a failure is worth retrying.
            Ok(Err(message)) => Err(ConnectorError::Transient {
                message: format!("sandbox store: {message}"),
                status: None,
            }),
            Err(join) => Err(ConnectorError::Unknown {
                message: format!("sandbox store task: {join}"),
            }),
        }
    }
}

pub fn by_key(conn: &mut DbConnection, key: &str) -> QueryResult<Option<SandboxPost>> {
    sandbox_posts::table
        .filter(sandbox_posts::idempotency_key.eq(key))
        .select(SandboxPost::as_select())
        .first(conn)
        .optional()
}

pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<SandboxPost>> {
    sandbox_posts::table
        .find(id)
        .select(SandboxPost::as_select())
        .first(conn)
        .optional()
}

/// Newest first; `before` is an id cursor.
pub fn list(
    conn: &mut DbConnection,
    account_id: Option<&str>,
    before: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<SandboxPost>> {
    let mut query = sandbox_posts::table.into_boxed();
    if let Some(account) = account_id {
        query = query.filter(sandbox_posts::account_id.eq(account.to_string()));
    }
    if let Some(before) = before {
        query = query.filter(sandbox_posts::id.lt(before.to_string()));
    }
    query
        .order(sandbox_posts::id.desc())
        .limit(limit)
        .select(SandboxPost::as_select())
        .load(conn)
}

impl Connector for Sandbox {
    async fn publish(
        &self,
        account: &AccountSession,
        post: &Post,
    ) -> Result<Published, ConnectorError> {
        let row = SandboxPost {
            id: db::new_id(),
            account_id: account.id.clone(),
            delivery_id: Some(post.delivery_id.clone()),
            idempotency_key: post.idempotency_key.clone(),
            text: post.text.clone(),
            language: post.language.clone(),
            created_at: db::now(),
            in_reply_to: post.reply_to.as_ref().map(|r| r.parent_id.clone()),
            media: (!post.media.is_empty()).then(|| {
                serde_json::Value::Array(
                    post.media
                        .iter()
                        .map(|m| serde_json::json!({"url": m.url, "alt": m.alt}))
                        .collect(),
                )
                .to_string()
            }),
        };
        let stored = self
            .run(move |conn| {
                db::write_tx(conn, |conn| {
                    if let Some(existing) = by_key(conn, &row.idempotency_key)? {
                        return Ok(existing);
                    }
                    diesel::insert_into(sandbox_posts::table)
                        .values(&row)
                        .execute(conn)?;
                    Ok(row)
                })
            })
            .await?;
        Ok(stored.published())
    }

    async fn reconcile(
        &self,
        _account: &AccountSession,
        post: &Post,
    ) -> Result<Option<Published>, ConnectorError> {
        let key = post.idempotency_key.clone();
        let found = self.run(move |conn| by_key(conn, &key)).await?;
        Ok(found.map(|p| p.published()))
    }

    async fn delete(
        &self,
        _account: &AccountSession,
        remote_id: &str,
    ) -> Result<(), ConnectorError> {
        let id = remote_id.to_string();
        self.run(move |conn| {
            diesel::delete(sandbox_posts::table.find(id))
                .execute(conn)
                .map(|_| ())
        })
        .await
    }

    /// The sandbox needs no credentials: it always works.
    async fn check(&self, _account: &AccountSession) -> Result<(), ConnectorError> {
        Ok(())
    }
}
