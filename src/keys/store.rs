//! API-key queries.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::json;

use super::Role;
use crate::db::schema::api_keys;
use crate::db::{self, DbConnection};
use crate::log::{self, NewEvent};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_keys)]
pub struct KeyRow {
    pub id: String,
    pub name: String,
    pub role: String,
    pub key_hash: String,
    pub key_prefix: String,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    pub revoked_at: Option<NaiveDateTime>,
    pub revoked_by: Option<String>,
}

/// A key as the rest of Herald sees it (never its secret or digest).
#[derive(Debug, Clone)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub key_prefix: String,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    pub revoked_at: Option<NaiveDateTime>,
}

impl TryFrom<KeyRow> for ApiKey {
    type Error = diesel::result::Error;

    fn try_from(row: KeyRow) -> Result<Self, Self::Error> {
        let role = Role::parse(&row.role).ok_or_else(|| {
            diesel::result::Error::DeserializationError(
                format!("unknown role '{}' stored for key '{}'", row.role, row.name).into(),
            )
        })?;
        Ok(ApiKey {
            id: row.id,
            name: row.name,
            role,
            key_prefix: row.key_prefix,
            created_by: row.created_by,
            created_at: row.created_at,
            revoked_at: row.revoked_at,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("a key named '{0}' already exists (names stay reserved after revocation)")]
    NameTaken(String),
    #[error("no key named '{0}'")]
    NotFound(String),
    #[error("the key '{0}' is already revoked")]
    AlreadyRevoked(String),
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

/// Store a new key (given in clear, stored as a digest) and log `key.created`.
pub fn create(
    conn: &mut DbConnection,
    actor: &str,
    name: &str,
    role: Role,
    secret: &str,
) -> Result<ApiKey, KeyError> {
    db::write_tx(conn, |conn| {
        let taken: i64 = api_keys::table
            .filter(api_keys::name.eq(name))
            .count()
            .get_result(conn)?;
        if taken > 0 {
            return Err(KeyError::NameTaken(name.to_string()));
        }
        let row = KeyRow {
            id: db::new_id(),
            name: name.to_string(),
            role: role.as_str().to_string(),
            key_hash: super::digest(secret),
            key_prefix: secret.chars().take(super::KEY_PREFIX.len() + 4).collect(),
            created_by: actor.to_string(),
            created_at: db::now(),
            revoked_at: None,
            revoked_by: None,
        };
        diesel::insert_into(api_keys::table)
            .values(&row)
            .execute(conn)?;
        log::store::append(
            conn,
            NewEvent::new(actor, "key.created")
                .details(json!({ "key_id": row.id, "name": name, "role": role.as_str() })),
        )?;
        Ok(ApiKey::try_from(row)?)
    })
}

/// Revoke by name and log `key.revoked`. The key is refused from its next request on.
pub fn revoke(conn: &mut DbConnection, actor: &str, name: &str) -> Result<ApiKey, KeyError> {
    db::write_tx(conn, |conn| {
        let row: KeyRow = api_keys::table
            .filter(api_keys::name.eq(name))
            .select(KeyRow::as_select())
            .first(conn)
            .optional()?
            .ok_or_else(|| KeyError::NotFound(name.to_string()))?;
        db::lock_row(conn, db::LockableTable::ApiKeys, &row.id)?;
        if row.revoked_at.is_some() {
            return Err(KeyError::AlreadyRevoked(name.to_string()));
        }
        let now = db::now();
        diesel::update(api_keys::table.filter(api_keys::id.eq(&row.id)))
            .set((
                api_keys::revoked_at.eq(Some(now)),
                api_keys::revoked_by.eq(Some(actor)),
            ))
            .execute(conn)?;
        log::store::append(
            conn,
            NewEvent::new(actor, "key.revoked")
                .details(json!({ "key_id": row.id, "name": name, "role": row.role })),
        )?;
        let mut key = ApiKey::try_from(row)?;
        key.revoked_at = Some(now);
        Ok(key)
    })
}

/// Every key, newest first.
pub fn list(conn: &mut DbConnection) -> QueryResult<Vec<ApiKey>> {
    api_keys::table
        .order(api_keys::id.desc())
        .select(KeyRow::as_select())
        .load(conn)?
        .into_iter()
        .map(ApiKey::try_from)
        .collect()
}

/// The unrevoked key with this digest, if any.
pub fn find_active_by_digest(conn: &mut DbConnection, digest: &str) -> QueryResult<Option<ApiKey>> {
    api_keys::table
        .filter(api_keys::key_hash.eq(digest))
        .filter(api_keys::revoked_at.is_null())
        .select(KeyRow::as_select())
        .first(conn)
        .optional()?
        .map(ApiKey::try_from)
        .transpose()
}
