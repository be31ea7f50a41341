//! Account queries. Credentials arrive here already sealed.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::json;

use super::AccountStatus;
use crate::db::schema::accounts;
use crate::db::{self, DbConnection};
use crate::log::{self, NewEvent};
use crate::platforms::Platform;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = accounts)]
pub struct AccountRow {
    pub id: String,
    pub platform: String,
    pub name: String,
    pub base_url: Option<String>,
    pub status: String,
    pub status_reason: Option<String>,
    pub credentials: Option<String>,
    pub max_characters: Option<i32>,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub removed_at: Option<NaiveDateTime>,
    /// The account's own name on the network (`@handle`, Page name).
    pub remote_name: Option<String>,
    /// When its access token stops working, if it does (refreshed before).
    pub token_expires_at: Option<NaiveDateTime>,
    /// The last preflight check, and its failure if it failed.
    pub checked_at: Option<NaiveDateTime>,
    pub check_error: Option<String>,
}

impl AccountRow {
    pub fn platform(&self) -> QueryResult<Platform> {
        Platform::parse(&self.platform).ok_or_else(|| corrupt("platform", &self.platform))
    }

    pub fn status(&self) -> QueryResult<AccountStatus> {
        AccountStatus::parse(&self.status).ok_or_else(|| corrupt("status", &self.status))
    }
}

fn corrupt(what: &str, value: &str) -> diesel::result::Error {
    diesel::result::Error::DeserializationError(
        format!("stored account {what} '{value}' is unknown").into(),
    )
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("no account with id '{0}'")]
    NotFound(String),
    #[error("an account named '{name}' on {platform} already exists ({id})")]
    Duplicate {
        platform: String,
        name: String,
        id: String,
    },
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

/// A new account; `seal` turns the row id into the sealed credentials.
pub struct NewAccount {
    pub platform: Platform,
    pub name: String,
    pub base_url: Option<String>,
    pub max_characters: Option<i32>,
    /// From an `expires_at` credential, when one is given.
    pub token_expires_at: Option<NaiveDateTime>,
}

pub fn create(
    conn: &mut DbConnection,
    actor: &str,
    new: NewAccount,
    seal: impl FnOnce(&str) -> String,
) -> Result<AccountRow, AccountError> {
    db::write_tx(conn, |conn| {
        let existing: Option<String> = accounts::table
            .filter(accounts::platform.eq(new.platform.as_str()))
            .filter(accounts::name.eq(&new.name))
            .filter(accounts::removed_at.is_null())
            .select(accounts::id)
            .first(conn)
            .optional()?;
        if let Some(id) = existing {
            return Err(AccountError::Duplicate {
                platform: new.platform.as_str().into(),
                name: new.name.clone(),
                id,
            });
        }
        let id = db::new_id();
        let now = db::now();
        let row = AccountRow {
            credentials: Some(seal(&id)),
            id,
            platform: new.platform.as_str().into(),
            name: new.name.clone(),
            base_url: new.base_url.clone(),
            status: AccountStatus::Active.as_str().into(),
            status_reason: None,
            max_characters: new.max_characters,
            created_by: actor.into(),
            created_at: now,
            updated_at: now,
            removed_at: None,
            remote_name: None,
            token_expires_at: new.token_expires_at,
            checked_at: None,
            check_error: None,
        };
        diesel::insert_into(accounts::table)
            .values(&row)
            .execute(conn)?;
        log::store::append(
            conn,
            NewEvent::new(actor, "account.added")
                .account(&row.id)
                .details(json!({
                    "platform": row.platform,
                    "name": row.name,
                    "base_url": row.base_url,
                })),
        )?;
        Ok(row)
    })
}

/// A live (not removed) account.
pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<AccountRow>> {
    accounts::table
        .find(id)
        .filter(accounts::removed_at.is_null())
        .select(AccountRow::as_select())
        .first(conn)
        .optional()
}

#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Option<AccountStatus>,
    pub platform: Option<Platform>,
}

pub fn list(
    conn: &mut DbConnection,
    filter: &ListFilter,
    before: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<AccountRow>> {
    let mut query = accounts::table
        .filter(accounts::removed_at.is_null())
        .into_boxed();
    if let Some(status) = filter.status {
        query = query.filter(accounts::status.eq(status.as_str()));
    }
    if let Some(platform) = filter.platform {
        query = query.filter(accounts::platform.eq(platform.as_str()));
    }
    if let Some(before) = before {
        query = query.filter(accounts::id.lt(before.to_string()));
    }
    query
        .order(accounts::id.desc())
        .limit(limit)
        .select(AccountRow::as_select())
        .load(conn)
}

/// Remove an account: its credentials are erased at once, the row stays (as
/// `disabled`, hidden from the API) so the history that names it still reads.
pub fn remove(conn: &mut DbConnection, actor: &str, id: &str) -> Result<(), AccountError> {
    db::write_tx(conn, |conn| {
        db::lock_row(conn, db::LockableTable::Accounts, id)?;
        let row = find(conn, id)?.ok_or_else(|| AccountError::NotFound(id.to_string()))?;
        let now = db::now();
        diesel::update(accounts::table.find(id))
            .set((
                accounts::credentials.eq(None::<String>),
                accounts::status.eq(AccountStatus::Disabled.as_str()),
                accounts::status_reason.eq(Some("removed")),
                accounts::removed_at.eq(Some(now)),
                accounts::updated_at.eq(now),
            ))
            .execute(conn)?;
        log::store::append(
            conn,
            NewEvent::new(actor, "account.removed")
                .account(id)
                .details(json!({
                    "platform": row.platform,
                    "name": row.name,
                })),
        )?;
        // Nothing is published with a removed account.
        crate::deliveries::store::cancel_pending(
            conn,
            actor,
            crate::deliveries::store::Owner::Account(id),
            "the account was removed",
        )?;
        Ok(())
    })
}
