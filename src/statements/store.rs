//! Statement queries and transitions. Every change and its publish-log event
//! are written in one transaction.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::json;

use super::{edit_refusal, required_approvals, Kind, Severity, Status};
use crate::db::schema::{approvals, statements, variants};
use crate::db::{self, DbConnection};
use crate::log::{self, NewEvent};
use crate::platforms::Platform;

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = statements)]
#[diesel(treat_none_as_null = true)]
pub struct StatementRow {
    pub id: String,
    pub lineage_id: String,
    pub version: i32,
    pub previous_version_id: Option<String>,
    pub title: String,
    pub kind: String,
    pub severity: Option<String>,
    pub status: String,
    pub author: String,
    pub editors: String,
    pub rejection_reason: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub submitted_at: Option<NaiveDateTime>,
    pub approved_at: Option<NaiveDateTime>,
    pub retired_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = variants)]
pub struct VariantRow {
    pub statement_id: String,
    pub platform: String,
    pub text: String,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = approvals)]
pub struct ApprovalRow {
    pub statement_id: String,
    pub approver: String,
    pub approved_at: NaiveDateTime,
}

/// A statement version with its variants and the approvals of its current review.
#[derive(Debug, Clone)]
pub struct Statement {
    pub row: StatementRow,
    pub kind: Kind,
    pub severity: Option<Severity>,
    pub status: Status,
    pub editors: Vec<String>,
    pub variants: Vec<(Platform, VariantRow)>,
    pub approvals: Vec<ApprovalRow>,
}

impl Statement {
    pub fn required_approvals(&self) -> usize {
        required_approvals(self.kind, self.severity)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StatementError {
    #[error("no statement with id '{0}'")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

type Result<T> = std::result::Result<T, StatementError>;

fn corrupt(what: &str, value: &str) -> diesel::result::Error {
    diesel::result::Error::DeserializationError(
        format!("stored {what} '{value}' is unknown").into(),
    )
}

fn assemble(
    row: StatementRow,
    variant_rows: Vec<VariantRow>,
    approval_rows: Vec<ApprovalRow>,
) -> QueryResult<Statement> {
    let kind = Kind::parse(&row.kind).ok_or_else(|| corrupt("kind", &row.kind))?;
    let status = Status::parse(&row.status).ok_or_else(|| corrupt("status", &row.status))?;
    let severity = match &row.severity {
        None => None,
        Some(s) => Some(Severity::parse(s).ok_or_else(|| corrupt("severity", s))?),
    };
    let editors: Vec<String> =
        serde_json::from_str(&row.editors).map_err(|_| corrupt("editors", &row.editors))?;
    let mut variants = variant_rows
        .into_iter()
        .map(|v| {
            let platform =
                Platform::parse(&v.platform).ok_or_else(|| corrupt("platform", &v.platform))?;
            Ok((platform, v))
        })
        .collect::<QueryResult<Vec<_>>>()?;
    variants.sort_by_key(|(p, _)| *p);
    Ok(Statement {
        kind,
        severity,
        status,
        editors,
        variants,
        approvals: approval_rows,
        row,
    })
}

/// Load one statement version, or `None`.
pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<Statement>> {
    let Some(row) = statements::table
        .find(id)
        .select(StatementRow::as_select())
        .first(conn)
        .optional()?
    else {
        return Ok(None);
    };
    let variant_rows = variants::table
        .filter(variants::statement_id.eq(id))
        .select(VariantRow::as_select())
        .load(conn)?;
    let approval_rows = approvals::table
        .filter(approvals::statement_id.eq(id))
        .order(approvals::approved_at.asc())
        .select(ApprovalRow::as_select())
        .load(conn)?;
    assemble(row, variant_rows, approval_rows).map(Some)
}

fn get(conn: &mut DbConnection, id: &str) -> Result<Statement> {
    find(conn, id)?.ok_or_else(|| StatementError::NotFound(id.to_string()))
}

/// Load a statement inside a write transaction, holding its row until commit,
/// and check it is in one of the `allowed` states for `action`.
fn get_for(
    conn: &mut DbConnection,
    id: &str,
    allowed: &[Status],
    action: &str,
) -> Result<Statement> {
    db::lock_row(conn, db::LockableTable::Statements, id)?;
    let statement = get(conn, id)?;
    if !allowed.is_empty() && !allowed.contains(&statement.status) {
        let names: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
        return Err(StatementError::Conflict(format!(
            "only a statement that is {} can be {action}; this one is {}",
            names.join(" or "),
            statement.status.as_str()
        )));
    }
    Ok(statement)
}

#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Option<Status>,
    pub kind: Option<Kind>,
    pub lineage_id: Option<String>,
}

/// Newest first; `before` is the keyset cursor (an id).
pub fn list(
    conn: &mut DbConnection,
    filter: &ListFilter,
    before: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<Statement>> {
    let mut query = statements::table.into_boxed();
    if let Some(status) = filter.status {
        query = query.filter(statements::status.eq(status.as_str()));
    }
    if let Some(kind) = filter.kind {
        query = query.filter(statements::kind.eq(kind.as_str()));
    }
    if let Some(lineage) = &filter.lineage_id {
        query = query.filter(statements::lineage_id.eq(lineage.clone()));
    }
    if let Some(before) = before {
        query = query.filter(statements::id.lt(before.to_string()));
    }
    let rows: Vec<StatementRow> = query
        .order(statements::id.desc())
        .limit(limit)
        .select(StatementRow::as_select())
        .load(conn)?;
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let mut variants_by_id: HashMap<String, Vec<VariantRow>> = HashMap::new();
    for v in variants::table
        .filter(variants::statement_id.eq_any(&ids))
        .select(VariantRow::as_select())
        .load(conn)?
    {
        variants_by_id
            .entry(v.statement_id.clone())
            .or_default()
            .push(v);
    }
    let mut approvals_by_id: HashMap<String, Vec<ApprovalRow>> = HashMap::new();
    for a in approvals::table
        .filter(approvals::statement_id.eq_any(&ids))
        .order(approvals::approved_at.asc())
        .select(ApprovalRow::as_select())
        .load(conn)?
    {
        approvals_by_id
            .entry(a.statement_id.clone())
            .or_default()
            .push(a);
    }
    rows.into_iter()
        .map(|row| {
            let v = variants_by_id.remove(&row.id).unwrap_or_default();
            let a = approvals_by_id.remove(&row.id).unwrap_or_default();
            assemble(row, v, a)
        })
        .collect()
}

/// A validated new statement.
#[derive(Debug, Clone)]
pub struct NewStatement {
    pub title: String,
    pub kind: Kind,
    pub severity: Option<Severity>,
    pub variants: Vec<(Platform, String)>,
}

pub fn create(conn: &mut DbConnection, actor: &str, new: NewStatement) -> Result<Statement> {
    db::write_tx(conn, |conn| {
        let id = db::new_id();
        let now = db::now();
        let row = StatementRow {
            id: id.clone(),
            lineage_id: id.clone(),
            version: 1,
            previous_version_id: None,
            title: new.title.clone(),
            kind: new.kind.as_str().into(),
            severity: new.severity.map(|s| s.as_str().into()),
            status: Status::Draft.as_str().into(),
            author: actor.into(),
            editors: json!([actor]).to_string(),
            rejection_reason: None,
            created_at: now,
            updated_at: now,
            submitted_at: None,
            approved_at: None,
            retired_at: None,
        };
        diesel::insert_into(statements::table)
            .values(&row)
            .execute(conn)?;
        insert_variants(conn, &id, &new.variants, now)?;
        let platforms: Vec<&str> = new.variants.iter().map(|(p, _)| p.as_str()).collect();
        log::store::append(
            conn,
            NewEvent::new(actor, "statement.created")
                .statement(&id)
                .details(json!({
                    "title": new.title,
                    "kind": new.kind.as_str(),
                    "severity": new.severity.map(Severity::as_str),
                    "version": 1,
                    "platforms": platforms,
                })),
        )?;
        get(conn, &id)
    })
}

fn insert_variants(
    conn: &mut DbConnection,
    statement_id: &str,
    list: &[(Platform, String)],
    now: NaiveDateTime,
) -> QueryResult<()> {
    let rows: Vec<VariantRow> = list
        .iter()
        .map(|(platform, text)| VariantRow {
            statement_id: statement_id.into(),
            platform: platform.as_str().into(),
            text: text.clone(),
            updated_at: now,
        })
        .collect();
    for row in rows {
        diesel::insert_into(variants::table)
            .values(&row)
            .execute(conn)?;
    }
    Ok(())
}

/// Load a statement whose content is about to change: it must be a draft or
/// rejected. A rejected statement goes back to draft; the actor joins its editors.
fn open_for_edit(conn: &mut DbConnection, actor: &str, id: &str) -> Result<Statement> {
    let statement = get_for(conn, id, &[], "edited")?;
    if let Some(reason) = edit_refusal(statement.status) {
        return Err(StatementError::Conflict(reason.replace("{id}", id)));
    }
    let mut editors = statement.editors.clone();
    if !editors.iter().any(|e| e == actor) {
        editors.push(actor.to_string());
    }
    diesel::update(statements::table.find(id))
        .set((
            statements::status.eq(Status::Draft.as_str()),
            statements::editors.eq(json!(editors).to_string()),
            statements::updated_at.eq(db::now()),
        ))
        .execute(conn)?;
    Ok(statement)
}

/// Changes to the statement itself (title, kind, severity, all variants).
#[derive(Debug, Clone, Default)]
pub struct StatementPatch {
    pub title: Option<String>,
    pub kind: Option<Kind>,
    /// `Some(None)` clears it.
    pub severity: Option<Option<Severity>>,
    pub variants: Option<Vec<(Platform, String)>>,
}

pub fn update(
    conn: &mut DbConnection,
    actor: &str,
    id: &str,
    patch: StatementPatch,
) -> Result<Statement> {
    db::write_tx(conn, |conn| {
        let before = open_for_edit(conn, actor, id)?;
        let kind = patch.kind.unwrap_or(before.kind);
        let wanted = match patch.severity {
            Some(explicit) => explicit,
            // Switching to routine drops the severity; staying crisis keeps it.
            None if kind == Kind::Routine => None,
            None => before.severity,
        };
        let severity =
            super::effective_severity(kind, wanted).map_err(|message| StatementError::Invalid {
                field: "severity".into(),
                message,
            })?;
        let mut changed = Vec::new();
        if let Some(title) = &patch.title {
            if *title != before.row.title {
                changed.push("title");
            }
        }
        if kind != before.kind {
            changed.push("kind");
        }
        if severity != before.severity {
            changed.push("severity");
        }
        diesel::update(statements::table.find(id))
            .set((
                statements::title.eq(patch.title.clone().unwrap_or(before.row.title.clone())),
                statements::kind.eq(kind.as_str()),
                statements::severity.eq(severity.map(Severity::as_str)),
            ))
            .execute(conn)?;
        if let Some(list) = &patch.variants {
            diesel::delete(variants::table.filter(variants::statement_id.eq(id))).execute(conn)?;
            insert_variants(conn, id, list, db::now())?;
            changed.push("variants");
        }
        log::store::append(
            conn,
            NewEvent::new(actor, "statement.edited")
                .statement(id)
                .details(json!({
                    "changed": changed,
                    "title": patch.title,
                    "kind": kind.as_str(),
                    "severity": severity.map(Severity::as_str),
                    "status_before": before.status.as_str(),
                })),
        )?;
        get(conn, id)
    })
}

/// Create or replace the variant for one platform.
pub fn put_variant(
    conn: &mut DbConnection,
    actor: &str,
    id: &str,
    platform: Platform,
    text: &str,
) -> Result<(Statement, bool)> {
    db::write_tx(conn, |conn| {
        let before = open_for_edit(conn, actor, id)?;
        let existed = before.variants.iter().any(|(p, _)| *p == platform);
        if existed {
            diesel::update(variants::table.find((id, platform.as_str())))
                .set((variants::text.eq(text), variants::updated_at.eq(db::now())))
                .execute(conn)?;
        } else {
            insert_variants(conn, id, &[(platform, text.to_string())], db::now())?;
        }
        log::store::append(
            conn,
            NewEvent::new(actor, "statement.edited")
                .statement(id)
                .details(json!({
                    "changed": ["variants"],
                    "platform": platform.as_str(),
                    "variant": if existed { "replaced" } else { "added" },
                })),
        )?;
        Ok((get(conn, id)?, !existed))
    })
}

pub fn delete_variant(
    conn: &mut DbConnection,
    actor: &str,
    id: &str,
    platform: Platform,
) -> Result<Statement> {
    db::write_tx(conn, |conn| {
        let before = open_for_edit(conn, actor, id)?;
        if !before.variants.iter().any(|(p, _)| *p == platform) {
            return Err(StatementError::Invalid {
                field: "platform".into(),
                message: format!("the statement has no {platform} variant"),
            });
        }
        diesel::delete(variants::table.find((id, platform.as_str()))).execute(conn)?;
        log::store::append(
            conn,
            NewEvent::new(actor, "statement.edited")
                .statement(id)
                .details(json!({
                    "changed": ["variants"],
                    "platform": platform.as_str(),
                    "variant": "removed",
                })),
        )?;
        get(conn, id)
    })
}

fn set_status(conn: &mut DbConnection, id: &str, status: Status) -> QueryResult<()> {
    diesel::update(statements::table.find(id))
        .set((
            statements::status.eq(status.as_str()),
            statements::updated_at.eq(db::now()),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn submit(conn: &mut DbConnection, actor: &str, id: &str) -> Result<Statement> {
    db::write_tx(conn, |conn| {
        let statement = get_for(conn, id, &[Status::Draft, Status::Rejected], "submitted")?;
        if statement.variants.is_empty() {
            return Err(StatementError::Invalid {
                field: "variants".into(),
                message: "add at least one variant before submitting".into(),
            });
        }
        diesel::delete(approvals::table.filter(approvals::statement_id.eq(id))).execute(conn)?;
        let now = db::now();
        diesel::update(statements::table.find(id))
            .set((
                statements::status.eq(Status::InReview.as_str()),
                statements::submitted_at.eq(Some(now)),
                statements::rejection_reason.eq(None::<String>),
                statements::updated_at.eq(now),
            ))
            .execute(conn)?;
        log::store::append(
            conn,
            NewEvent::new(actor, "statement.submitted")
                .statement(id)
                .details(json!({
                    "version": statement.row.version,
                    "approvals_required": statement.required_approvals(),
                })),
        )?;
        get(conn, id)
    })
}

pub fn approve(conn: &mut DbConnection, actor: &str, id: &str) -> Result<Statement> {
    db::write_tx(conn, |conn| {
        let statement = get_for(conn, id, &[Status::InReview], "approved")?;
        if statement.editors.iter().any(|e| e == actor) {
            return Err(StatementError::Forbidden(format!(
                "'{actor}' wrote this statement and cannot approve it: another approver must (four eyes)"
            )));
        }
        if statement.approvals.iter().any(|a| a.approver == actor) {
            return Err(StatementError::Conflict(format!(
                "'{actor}' has already approved this statement; a severe crisis needs a second, different approver"
            )));
        }
        let now = db::now();
        diesel::insert_into(approvals::table)
            .values(&ApprovalRow {
                statement_id: id.into(),
                approver: actor.into(),
                approved_at: now,
            })
            .execute(conn)?;
        let count = statement.approvals.len() + 1;
        let required = statement.required_approvals();
        let complete = count >= required;
        // Take every row lock before the log append takes the write gate:
        // one lock order everywhere (rows, then gate) means no deadlock.
        let previous = match (&statement.row.previous_version_id, complete) {
            (Some(previous), true) => Some(get_for(conn, previous, &[], "superseded")?),
            _ => None,
        };
        if complete {
            diesel::update(statements::table.find(id))
                .set((
                    statements::status.eq(Status::Approved.as_str()),
                    statements::approved_at.eq(Some(now)),
                    statements::updated_at.eq(now),
                ))
                .execute(conn)?;
        }
        log::store::append(
            conn,
            NewEvent::new(actor, "statement.approved")
                .statement(id)
                .details(json!({
                    "version": statement.row.version,
                    "approvals": count,
                    "approvals_required": required,
                    "status": if complete { "approved" } else { "in_review" },
                })),
        )?;
        if let Some(old) = previous.filter(|old| old.status == Status::Approved) {
            set_status(conn, &old.row.id, Status::Superseded)?;
            log::store::append(
                conn,
                NewEvent::new(actor, "statement.superseded")
                    .statement(&old.row.id)
                    .details(json!({
                        "version": old.row.version,
                        "superseded_by": id,
                        "superseded_by_version": statement.row.version,
                    })),
            )?;
        }
        get(conn, id)
    })
}

pub fn reject(conn: &mut DbConnection, actor: &str, id: &str, reason: &str) -> Result<Statement> {
    db::write_tx(conn, |conn| {
        let statement = get_for(conn, id, &[Status::InReview], "rejected")?;
        diesel::delete(approvals::table.filter(approvals::statement_id.eq(id))).execute(conn)?;
        diesel::update(statements::table.find(id))
            .set((
                statements::status.eq(Status::Rejected.as_str()),
                statements::rejection_reason.eq(Some(reason)),
                statements::updated_at.eq(db::now()),
            ))
            .execute(conn)?;
        log::store::append(
            conn,
            NewEvent::new(actor, "statement.rejected")
                .statement(id)
                .details(json!({
                    "version": statement.row.version,
                    "reason": reason,
                    "approvals_discarded": statement.approvals.len(),
                })),
        )?;
        get(conn, id)
    })
}

pub fn retire(conn: &mut DbConnection, actor: &str, id: &str) -> Result<Statement> {
    db::write_tx(conn, |conn| {
        let statement = get_for(conn, id, &[], "retired")?;
        if statement.status == Status::Retired {
            return Err(StatementError::Conflict(
                "the statement is already retired".into(),
            ));
        }
        let now = db::now();
        diesel::update(statements::table.find(id))
            .set((
                statements::status.eq(Status::Retired.as_str()),
                statements::retired_at.eq(Some(now)),
                statements::updated_at.eq(now),
            ))
            .execute(conn)?;
        log::store::append(
            conn,
            NewEvent::new(actor, "statement.retired")
                .statement(id)
                .details(json!({
                    "version": statement.row.version,
                    "status_before": statement.status.as_str(),
                })),
        )?;
        get(conn, id)
    })
}

/// Copy an approved version into a new draft version linked to it.
pub fn revise(conn: &mut DbConnection, actor: &str, id: &str) -> Result<Statement> {
    db::write_tx(conn, |conn| {
        let old = get_for(conn, id, &[Status::Approved], "revised")?;
        let open: Option<String> = statements::table
            .filter(statements::previous_version_id.eq(id))
            .filter(statements::status.eq_any([
                Status::Draft.as_str(),
                Status::InReview.as_str(),
                Status::Rejected.as_str(),
            ]))
            .select(statements::id)
            .first(conn)
            .optional()?;
        if let Some(open) = open {
            return Err(StatementError::Conflict(format!(
                "a revision of this statement is already open: {open}"
            )));
        }
        let latest: Option<i32> = statements::table
            .filter(statements::lineage_id.eq(&old.row.lineage_id))
            .select(diesel::dsl::max(statements::version))
            .first(conn)?;
        let version = latest.unwrap_or(old.row.version) + 1;
        let new_id = db::new_id();
        let now = db::now();
        let row = StatementRow {
            id: new_id.clone(),
            lineage_id: old.row.lineage_id.clone(),
            version,
            previous_version_id: Some(id.to_string()),
            title: old.row.title.clone(),
            kind: old.row.kind.clone(),
            severity: old.row.severity.clone(),
            status: Status::Draft.as_str().into(),
            author: actor.into(),
            editors: json!([actor]).to_string(),
            rejection_reason: None,
            created_at: now,
            updated_at: now,
            submitted_at: None,
            approved_at: None,
            retired_at: None,
        };
        diesel::insert_into(statements::table)
            .values(&row)
            .execute(conn)?;
        let copied: Vec<(Platform, String)> = old
            .variants
            .iter()
            .map(|(p, v)| (*p, v.text.clone()))
            .collect();
        insert_variants(conn, &new_id, &copied, now)?;
        log::store::append(
            conn,
            NewEvent::new(actor, "statement.revised")
                .statement(&new_id)
                .details(json!({
                    "previous_version_id": id,
                    "version": version,
                })),
        )?;
        get(conn, &new_id)
    })
}
