//! Content edits: create, change, add or remove variants. Only drafts and
//! rejected statements can change (a rejected one returns to draft).

use diesel::prelude::*;
use serde_json::json;

use super::{get, get_for, insert_draft, insert_variants, Result, Statement, StatementError};
use crate::db::schema::{statements, variants};
use crate::db::{self, DbConnection};
use crate::log::{self, NewEvent};
use crate::platforms::Platform;
use crate::statements::{edit_refusal, effective_severity, Kind, Severity, Status, VariantContent};

/// A validated new statement.
#[derive(Debug, Clone)]
pub struct NewStatement {
    pub title: String,
    pub kind: Kind,
    pub severity: Option<Severity>,
    /// BCP 47 tag of the text (sent to networks that take one).
    pub language: Option<String>,
    pub variants: Vec<(Platform, VariantContent)>,
}

pub fn create(conn: &mut DbConnection, actor: &str, new: NewStatement) -> Result<Statement> {
    db::write_tx(conn, |conn| {
        let id = insert_draft(conn, actor, &new, None)?;
        let platforms: Vec<&str> = new.variants.iter().map(|(p, _)| p.as_str()).collect();
        log::store::append(
            conn,
            NewEvent::new(actor, "statement.created")
                .statement(&id)
                .details(json!({
                    "title": new.title,
                    "kind": new.kind.as_str(),
                    "severity": new.severity.map(Severity::as_str),
                    "language": new.language,
                    "version": 1,
                    "platforms": platforms,
                })),
        )?;
        get(conn, &id)
    })
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
    /// `Some(None)` clears it.
    pub language: Option<Option<String>>,
    pub variants: Option<Vec<(Platform, VariantContent)>>,
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
            // Leaving crisis drops the severity; staying crisis keeps it.
            None if kind != Kind::Crisis => None,
            None => before.severity,
        };
        let severity =
            effective_severity(kind, wanted).map_err(|message| StatementError::Invalid {
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
        let language = patch
            .language
            .clone()
            .unwrap_or(before.row.language.clone());
        if language != before.row.language {
            changed.push("language");
        }
        diesel::update(statements::table.find(id))
            .set((
                statements::title.eq(patch.title.clone().unwrap_or(before.row.title.clone())),
                statements::kind.eq(kind.as_str()),
                statements::severity.eq(severity.map(Severity::as_str)),
                statements::language.eq(&language),
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
                    "language": language,
                    "variants": patch.variants.as_ref().map(|list| list
                        .iter()
                        .map(|(p, c)| variant_json(*p, c))
                        .collect::<Vec<_>>()),
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
    content: &VariantContent,
) -> Result<(Statement, bool)> {
    db::write_tx(conn, |conn| {
        let before = open_for_edit(conn, actor, id)?;
        let existed = before.variants.iter().any(|(p, _)| *p == platform);
        if existed {
            diesel::delete(variants::table.find((id, platform.as_str()))).execute(conn)?;
        }
        insert_variants(conn, id, &[(platform, content.clone())], db::now())?;
        log::store::append(
            conn,
            NewEvent::new(actor, "statement.edited")
                .statement(id)
                .details(json!({
                    "changed": ["variants"],
                    "platform": platform.as_str(),
                    "variant": if existed { "replaced" } else { "added" },
                    "text": content.text,
                    "thread": content.thread,
                    "media": content.media,
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

/// A variant as the publish log shows it (thread and media only when present).
fn variant_json(platform: Platform, content: &VariantContent) -> serde_json::Value {
    let mut v = json!({"platform": platform.as_str(), "text": content.text});
    if !content.thread.is_empty() {
        v["thread"] = json!(content.thread);
    }
    if !content.media.is_empty() {
        v["media"] = json!(content.media);
    }
    v
}
