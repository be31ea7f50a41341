//! Statement queries. Reads live here; content edits in `edit.rs`, review
//! transitions in `review.rs`. Every change and its publish-log event are
//! written in one transaction.

mod edit;
mod review;

pub use edit::{create, delete_variant, put_variant, update, NewStatement, StatementPatch};
pub use review::{approve, reject, retire, revise, submit};

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{required_approvals, Kind, Severity, Status, VariantContent};
use crate::db::schema::{approvals, statements, variants};
use crate::db::{self, DbConnection};
use crate::platforms::Platform;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = statements)]
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
    pub language: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = variants)]
pub struct VariantRow {
    pub statement_id: String,
    pub platform: String,
    pub text: String,
    pub updated_at: NaiveDateTime,
    /// Later parts of a thread: a JSON array of strings.
    pub thread: Option<String>,
    /// Images: a JSON array of `MediaRef`.
    pub media: Option<String>,
}

impl VariantRow {
    /// The variant's content. Unreadable JSON (never written by Herald) reads as none.
    pub fn content(&self) -> VariantContent {
        VariantContent {
            text: self.text.clone(),
            thread: self
                .thread
                .as_deref()
                .and_then(|t| serde_json::from_str(t).ok())
                .unwrap_or_default(),
            media: self
                .media
                .as_deref()
                .and_then(|t| serde_json::from_str(t).ok())
                .unwrap_or_default(),
        }
    }
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

    /// SHA-256 (hex) of the content a review is about: title, kind, severity
    /// and every variant. Review events carry it, so the log proves which
    /// exact text was submitted and approved.
    pub fn content_digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut content = serde_json::json!({
            "title": self.row.title,
            "kind": self.kind.as_str(),
            "severity": self.severity.map(Severity::as_str),
            "variants": self
                .variants
                .iter()
                .map(|(p, v)| {
                    let c = v.content();
                    // Threads and images were added later: a variant
                    // without them digests as it always did.
                    if c.thread.is_empty() && c.media.is_empty() {
                        serde_json::json!([p.as_str(), c.text])
                    } else {
                        serde_json::json!([p.as_str(), c.text, {"thread": c.thread, "media": c.media}])
                    }
                })
                .collect::<Vec<_>>(),
        });
        // Added with the language field: digests of statements without one
        // stay what they were.
        if let Some(language) = &self.row.language {
            content["language"] = serde_json::json!(language);
        }
        hex::encode(Sha256::digest(content.to_string().as_bytes()))
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

pub(super) type Result<T> = std::result::Result<T, StatementError>;

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

pub(super) fn get(conn: &mut DbConnection, id: &str) -> Result<Statement> {
    find(conn, id)?.ok_or_else(|| StatementError::NotFound(id.to_string()))
}

/// Load a statement inside a write transaction, holding its row until commit,
/// and check it is in one of the `allowed` states for `action`.
pub(super) fn get_for(
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

/// The version a new draft continues: its lineage, its number, its predecessor.
pub(super) struct Lineage {
    pub lineage_id: String,
    pub version: i32,
    pub previous_version_id: String,
}

/// Insert a draft version with its variants, authored by `actor`; returns its id.
/// Without a `lineage` it is version 1 of a new statement.
pub(super) fn insert_draft(
    conn: &mut DbConnection,
    actor: &str,
    draft: &NewStatement,
    lineage: Option<Lineage>,
) -> QueryResult<String> {
    let id = db::new_id();
    let now = db::now();
    let (lineage_id, version, previous_version_id) = match lineage {
        Some(l) => (l.lineage_id, l.version, Some(l.previous_version_id)),
        None => (id.clone(), 1, None),
    };
    let row = StatementRow {
        id: id.clone(),
        lineage_id,
        version,
        previous_version_id,
        title: draft.title.clone(),
        kind: draft.kind.as_str().into(),
        severity: draft.severity.map(|s| s.as_str().into()),
        status: Status::Draft.as_str().into(),
        author: actor.into(),
        editors: serde_json::json!([actor]).to_string(),
        rejection_reason: None,
        created_at: now,
        updated_at: now,
        submitted_at: None,
        approved_at: None,
        retired_at: None,
        language: draft.language.clone(),
    };
    diesel::insert_into(statements::table)
        .values(&row)
        .execute(conn)?;
    insert_variants(conn, &id, &draft.variants, now)?;
    Ok(id)
}

pub(super) fn insert_variants(
    conn: &mut DbConnection,
    statement_id: &str,
    list: &[(Platform, VariantContent)],
    now: NaiveDateTime,
) -> QueryResult<()> {
    let rows: Vec<VariantRow> = list
        .iter()
        .map(|(platform, content)| variant_row(statement_id, *platform, content, now))
        .collect();
    for row in rows {
        diesel::insert_into(variants::table)
            .values(&row)
            .execute(conn)?;
    }
    Ok(())
}

pub(super) fn variant_row(
    statement_id: &str,
    platform: Platform,
    content: &VariantContent,
    now: NaiveDateTime,
) -> VariantRow {
    let json = |empty: bool, value: serde_json::Value| (!empty).then(|| value.to_string());
    VariantRow {
        statement_id: statement_id.into(),
        platform: platform.as_str().into(),
        text: content.text.clone(),
        updated_at: now,
        thread: json(content.thread.is_empty(), serde_json::json!(content.thread)),
        media: json(content.media.is_empty(), serde_json::json!(content.media)),
    }
}

pub(super) fn set_status(conn: &mut DbConnection, id: &str, status: Status) -> QueryResult<()> {
    diesel::update(statements::table.find(id))
        .set((
            statements::status.eq(status.as_str()),
            statements::updated_at.eq(db::now()),
        ))
        .execute(conn)?;
    Ok(())
}
