//! Review transitions: submit, approve (four eyes, two approvers for a
//! severe crisis), reject, retire, revise.

use diesel::prelude::*;
use serde_json::json;

use super::{
    get, get_for, insert_draft, set_status, ApprovalRow, Lineage, NewStatement, Result, Statement,
    StatementError,
};
use crate::db::schema::{approvals, statements};
use crate::db::{self, DbConnection};
use crate::log::{self, NewEvent};
use crate::statements::Status;

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
                    "content_sha256": statement.content_digest(),
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
                    "content_sha256": statement.content_digest(),
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
            // Pending deliveries now publish the new version.
            crate::deliveries::store::follow_new_version(
                conn,
                actor,
                &old.row.id,
                id,
                statement.row.version,
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
                    "content_sha256": statement.content_digest(),
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
        crate::deliveries::store::cancel_pending(
            conn,
            actor,
            crate::deliveries::store::Owner::Statement(id),
            "the statement was retired",
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
        let draft = NewStatement {
            title: old.row.title.clone(),
            kind: old.kind,
            severity: old.severity,
            language: old.row.language.clone(),
            variants: old
                .variants
                .iter()
                .map(|(p, v)| (*p, v.content()))
                .collect(),
        };
        let lineage = Lineage {
            lineage_id: old.row.lineage_id.clone(),
            version,
            previous_version_id: id.to_string(),
        };
        let new_id = insert_draft(conn, actor, &draft, Some(lineage))?;
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
