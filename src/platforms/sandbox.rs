//! The built-in `sandbox` network: posts are kept in Herald's own store and
//! listed at `GET /v1/sandbox/posts`. It needs no credentials, so a newcomer
//! can run the whole flow, and a crisis cell can drill, without a social
//! account. Publishing is idempotent on the delivery's key, like Mastodon.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{
    AccountSession, Connector, ConnectorError, FetchedReply, Post, Published, ReplyPage, ReplyQuery,
};
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
    /// Set on a reply from the public (`POST /v1/sandbox/posts/{id}/replies`):
    /// who wrote it. `None` on the account's own posts.
    pub author: Option<String>,
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
            author: None,
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

    /// The public's replies anywhere under the post, oldest first. The
    /// cursor is the newest reply id seen (ids grow with time).
    async fn replies(
        &self,
        _account: &AccountSession,
        query: &ReplyQuery,
    ) -> Result<ReplyPage, ConnectorError> {
        let query = query.clone();
        let found = self
            .run(move |conn| replies_under(conn, &query.root_id, query.cursor.as_deref()))
            .await?;
        let cursor = found.last().map(|r| r.id.clone());
        Ok(ReplyPage {
            replies: found
                .into_iter()
                .map(|r| FetchedReply {
                    url: Some(r.url()),
                    remote_id: r.id,
                    parent_id: r.in_reply_to,
                    author: r.author.unwrap_or_default(),
                    text: r.text,
                    created_at: r.created_at.and_utc(),
                })
                .collect(),
            cursor,
        })
    }
}

/// Replies from the public at any depth under `root`, newer than `after`,
/// oldest first (one query per level of the conversation).
pub fn replies_under(
    conn: &mut DbConnection,
    root: &str,
    after: Option<&str>,
) -> QueryResult<Vec<SandboxPost>> {
    let mut found = Vec::new();
    let mut level = vec![root.to_string()];
    let mut seen = std::collections::HashSet::new();
    while !level.is_empty() && seen.len() < 10_000 {
        let children: Vec<SandboxPost> = sandbox_posts::table
            .filter(sandbox_posts::in_reply_to.eq_any(&level))
            .select(SandboxPost::as_select())
            .load(conn)?;
        level = Vec::new();
        for child in children {
            if seen.insert(child.id.clone()) {
                level.push(child.id.clone());
                if child.author.is_some() && after.is_none_or(|a| child.id.as_str() > a) {
                    found.push(child);
                }
            }
        }
    }
    found.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(found)
}

/// A member of the public answers sandbox post `parent`.
pub fn add_reply(
    conn: &mut DbConnection,
    parent: &SandboxPost,
    author: &str,
    text: &str,
) -> QueryResult<SandboxPost> {
    let row = SandboxPost {
        id: db::new_id(),
        account_id: parent.account_id.clone(),
        delivery_id: None,
        idempotency_key: db::new_id(),
        text: text.to_string(),
        language: None,
        created_at: db::now(),
        in_reply_to: Some(parent.id.clone()),
        media: None,
        author: Some(author.to_string()),
    };
    diesel::insert_into(sandbox_posts::table)
        .values(&row)
        .execute(conn)?;
    Ok(row)
}
