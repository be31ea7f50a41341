//! Answering a reply from the follow-up queue. The answer is checked (the
//! network's text rules, and courtesy: aggressive, insulting,
//! sarcastic-blame or all-caps wording is refused unless an approver forces
//! it), then queued as a delivery of kind `response` that the dispatcher
//! publishes like any other (exactly once, rate limits obeyed), as a reply
//! to the public's post. Once it is out, the reply is `answered`.

use diesel::prelude::*;
use serde_json::json;

use super::store::{self, ReplyRow};
use crate::accounts::store::AccountRow;
use crate::accounts::AccountStatus;
use crate::db::schema::{accounts, deliveries, responses, statements, variants};
use crate::db::{self, DbConnection};
use crate::deliveries::store::{event, DeliveryRow, NewDelivery, RESPONSE_KIND};
use crate::deliveries::DeliveryStatus;
use crate::http::error::{ApiError, FieldError};
use crate::log;
use crate::platforms::{self, catalog, Platform};
use crate::sentiment::courtesy::{self, CourtesyIssue};

/// What to answer with.
#[derive(Debug, Clone)]
pub struct Answer {
    pub text: Option<String>,
    pub template_id: Option<String>,
    /// Send despite the courtesy check (approvers only; the route checks).
    pub force: bool,
    /// The answer's deadline after now.
    pub max_lateness_s: i32,
}

/// What was queued.
#[derive(Debug, Clone)]
pub struct Queued {
    pub delivery: DeliveryRow,
    pub reply: ReplyRow,
    pub text: String,
    /// The courtesy findings an approver overrode (empty otherwise).
    pub overridden: Vec<CourtesyIssue>,
}

/// Fill a template's placeholders. Only `{author}` exists; any other
/// `{name}` is an error naming it.
pub fn render(template: &str, reply: &ReplyRow) -> Result<String, String> {
    let mut out = String::with_capacity(template.len() + reply.author.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close)
                if after[..close]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                let name = &after[..close];
                match name {
                    "author" => out.push_str(&reply.author),
                    "" => out.push_str("{}"),
                    other => {
                        return Err(format!(
                            "unknown placeholder {{{other}}}: only {{author}} is available"
                        ))
                    }
                }
                rest = &after[close + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Mastodon notifies people of the posts that mention them, not of every
/// reply: an answer there starts with `@author` unless it already names
/// them.
pub fn mention_for(platform: Platform, author: &str, text: String) -> String {
    let handle = format!("@{author}");
    if platform != Platform::Mastodon || author.is_empty() || text.contains(&handle) {
        return text;
    }
    format!("{handle} {text}")
}

/// Check and queue the answer to `reply_id`, logging it, in one transaction.
pub fn queue(
    conn: &mut DbConnection,
    actor: &str,
    reply_id: &str,
    answer: &Answer,
) -> Result<Queued, ApiError> {
    crate::deliveries::store::tx(conn, |conn| {
        let reply = store::find(conn, reply_id)?
            .ok_or_else(|| ApiError::NotFound(format!("no reply with id '{reply_id}'")))?;
        let platform = Platform::parse(&reply.platform)
            .ok_or_else(|| ApiError::internal(format!("unknown platform {}", reply.platform)))?;
        if !catalog::info(platform).replies {
            return Err(ApiError::Conflict(format!(
                "Herald cannot answer on {}",
                reply.platform
            )));
        }
        let text = match (&answer.text, &answer.template_id) {
            (Some(text), None) => text.clone(),
            (None, Some(template)) => template_text(conn, template, &reply)?,
            _ => {
                return Err(ApiError::invalid(
                    "text",
                    "give either text or template_id (exactly one)",
                ))
            }
        };
        let text = mention_for(platform, &reply.author, text);
        let account: AccountRow = accounts::table
            .find(&reply.account_id)
            .select(AccountRow::as_select())
            .first(conn)?;
        if account.removed_at.is_some() || account.status != AccountStatus::Active.as_str() {
            return Err(ApiError::Conflict(format!(
                "account '{}' is {}: reconnect it before answering",
                account.name,
                if account.removed_at.is_some() {
                    "removed"
                } else {
                    account.status.as_str()
                }
            )));
        }
        let limit = account.max_characters.map(|n| n as usize);
        let report = platforms::check(platform, &text, limit);
        if !report.ok() {
            return Err(ApiError::invalid_fields(
                report
                    .problems
                    .iter()
                    .map(|p| FieldError::new("text", p.clone()))
                    .collect(),
            ));
        }
        let issues = courtesy::check(&text);
        if !issues.is_empty() && !answer.force {
            return Err(ApiError::invalid_fields(
                issues
                    .iter()
                    .map(|i| {
                        FieldError::new(
                            "text",
                            format!(
                                "{} (\"{}\"): {}",
                                i.kind.replace('_', " "),
                                i.excerpt,
                                i.advice
                            ),
                        )
                    })
                    .collect(),
            ));
        }
        // One answer at a time: a second click must not send it twice.
        let pending: Option<String> = deliveries::table
            .inner_join(responses::table.on(responses::delivery_id.eq(deliveries::id)))
            .filter(responses::reply_id.eq(&reply.id))
            .filter(deliveries::status.eq_any([
                DeliveryStatus::Scheduled.as_str(),
                DeliveryStatus::Publishing.as_str(),
                DeliveryStatus::Unknown.as_str(),
            ]))
            .select(deliveries::id)
            .first(conn)
            .optional()?;
        if let Some(pending) = pending {
            return Err(ApiError::Conflict(format!(
                "an answer to this reply is already on its way (delivery {pending}); \
                 wait for it, or cancel it first"
            )));
        }
        let source = crate::deliveries::store::find(conn, &reply.delivery_id)?
            .ok_or_else(|| ApiError::internal("the reply's delivery is gone"))?;
        let row = DeliveryRow::scheduled(NewDelivery {
            statement_id: source.statement_id.clone(),
            lineage_id: source.lineage_id.clone(),
            statement_version: source.statement_version,
            account_id: reply.account_id.clone(),
            platform: reply.platform.clone(),
            kind: RESPONSE_KIND.into(),
            planned_at: db::now(),
            timezone: None,
            max_lateness_s: answer.max_lateness_s,
            created_by: actor.into(),
            reply_to_delivery_id: None,
            nth: 0,
        });
        diesel::insert_into(deliveries::table)
            .values(&row)
            .execute(conn)?;
        diesel::insert_into(responses::table)
            .values((
                responses::delivery_id.eq(&row.id),
                responses::reply_id.eq(&reply.id),
                responses::text.eq(&text),
                responses::template_id.eq(&answer.template_id),
                responses::forced.eq(answer.force && !issues.is_empty()),
                responses::created_by.eq(actor),
                responses::created_at.eq(row.created_at),
            ))
            .execute(conn)?;
        log::store::append(
            conn,
            event(actor, "delivery.scheduled", &row).details(json!({
                "kind": RESPONSE_KIND,
                "reply_id": reply.id,
                "platform": row.platform,
                "template_id": answer.template_id,
                "text": text,
                "max_lateness_s": row.max_lateness_s,
            })),
        )?;
        if !issues.is_empty() {
            log::store::append(
                conn,
                reply
                    .event(actor, "reply.courtesy_overridden")
                    .details(json!({
                        "reply_id": reply.id,
                        "response_delivery_id": row.id,
                        "issues": issues,
                    })),
            )?;
        }
        Ok(Queued {
            delivery: row,
            reply,
            text,
            overridden: if answer.force { issues } else { Vec::new() },
        })
    })
}

/// The text of an approved response template for the reply's network.
fn template_text(
    conn: &mut DbConnection,
    template_id: &str,
    reply: &ReplyRow,
) -> Result<String, ApiError> {
    let template: Option<(String, String)> = statements::table
        .find(template_id)
        .select((statements::kind, statements::status))
        .first(conn)
        .optional()?;
    let Some((kind, status)) = template else {
        return Err(ApiError::invalid(
            "template_id",
            format!("no statement with id '{template_id}'"),
        ));
    };
    if kind != RESPONSE_KIND {
        return Err(ApiError::invalid(
            "template_id",
            format!("statement '{template_id}' is a {kind} statement, not a response template"),
        ));
    }
    if status != "approved" {
        return Err(ApiError::invalid(
            "template_id",
            format!("the template is {status}: only an approved template can be used"),
        ));
    }
    let text: Option<String> = variants::table
        .find((template_id, &reply.platform))
        .select(variants::text)
        .first(conn)
        .optional()?;
    let text = text.ok_or_else(|| {
        ApiError::invalid(
            "template_id",
            format!("the template has no {} variant", reply.platform),
        )
    })?;
    render(&text, reply).map_err(|message| ApiError::invalid("template_id", message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(author: &str) -> ReplyRow {
        let now = db::now();
        ReplyRow {
            id: db::new_id(),
            delivery_id: db::new_id(),
            statement_id: db::new_id(),
            lineage_id: db::new_id(),
            account_id: db::new_id(),
            platform: "mastodon".into(),
            remote_id: "1".into(),
            parent_remote_id: None,
            author: author.into(),
            text: "?".into(),
            url: None,
            created_at: now,
            collected_at: now,
            language: None,
            sentiment: "neutral".into(),
            score: 0.0,
            question: true,
            follow_up: "needs_response".into(),
            follow_up_reason: None,
            assignee: None,
            first_response_at: None,
            updated_at: now,
        }
    }

    #[test]
    fn templates_fill_the_author() {
        assert_eq!(
            render("Hello @{author}, we are sorry.", &reply("ana")).as_deref(),
            Ok("Hello @ana, we are sorry.")
        );
        assert_eq!(
            render("{author} {author}", &reply("b")).as_deref(),
            Ok("b b")
        );
    }

    #[test]
    fn mastodon_answers_mention_the_author() {
        assert_eq!(
            mention_for(Platform::Mastodon, "ana@example.social", "Sorry.".into()),
            "@ana@example.social Sorry."
        );
        assert_eq!(
            mention_for(Platform::Mastodon, "ana", "Hello @ana, sorry.".into()),
            "Hello @ana, sorry."
        );
        assert_eq!(
            mention_for(Platform::Bluesky, "ana", "Sorry.".into()),
            "Sorry."
        );
    }

    #[test]
    fn unknown_placeholders_are_named_and_braces_kept() {
        let error = render("Hi {name}", &reply("ana")).unwrap_err();
        assert!(error.contains("{name}"), "{error}");
        assert_eq!(
            render("a { b } {} c", &reply("x")).as_deref(),
            Ok("a { b } {} c")
        );
    }
}
