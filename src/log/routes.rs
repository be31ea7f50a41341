//! Publish-log routes, for managers and admins.

use actix_web::{get, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::store::{self, LogFilter};
use super::LogEntry;
use crate::app::AppState;
use crate::http::auth::{Caller, Capability};
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::ApiQuery;
use crate::http::pagination;
use crate::http::query_instant as instant;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// Such as `statement.approved`; `statement.*` selects every statement action.
    pub action: Option<String>,
    /// Key name.
    pub actor: Option<String>,
    pub statement_id: Option<String>,
    pub account_id: Option<String>,
    pub delivery_id: Option<String>,
    /// Events at or after this instant (RFC 3339 with offset).
    #[param(format = DateTime)]
    pub from: Option<String>,
    /// Events before this instant (RFC 3339 with offset).
    #[param(format = DateTime)]
    pub to: Option<String>,
    /// Page size, default 50 (the CSV export ignores it and returns every match).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LogPage {
    pub items: Vec<LogEntry>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VerifyResponse {
    /// True when every event verifies.
    pub ok: bool,
    /// Events checked (up to the first bad one).
    pub events: i64,
    /// The first event that does not verify.
    pub first_bad_seq: Option<i64>,
    pub reason: Option<String>,
}

fn filter_of(query: &LogQuery) -> ApiResult<LogFilter> {
    Ok(LogFilter {
        action: query.action.clone(),
        actor: query.actor.clone(),
        statement_id: query.statement_id.clone(),
        account_id: query.account_id.clone(),
        delivery_id: query.delivery_id.clone(),
        from: instant("from", &query.from)?,
        to: instant("to", &query.to)?,
    })
}

/// Read the publish log, newest first.
#[utoipa::path(
    tag = "log",
    params(LogQuery),
    responses((status = 200, description = "A page of events", body = LogPage)),
    security(("api_key" = []))
)]
#[get("/log")]
pub async fn list_log(
    state: web::Data<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<LogQuery>,
) -> ApiResult<HttpResponse> {
    caller.require(Capability::Manage)?;
    let filter = filter_of(&query)?;
    let limit = pagination::limit(query.limit)?;
    let before = pagination::seq_cursor(query.cursor.as_deref())?;
    let rows = state
        .db(move |conn| Ok(store::list(conn, &filter, before, limit + 1)?))
        .await?;
    let (rows, next_cursor) = pagination::paginate(rows, limit, |r| r.seq.to_string());
    Ok(HttpResponse::Ok().json(LogPage {
        items: rows.into_iter().map(|r| r.into_entry()).collect(),
        next_cursor,
    }))
}

/// Spreadsheet programs run cells that start with these as formulas.
fn spreadsheet_safe(value: &str) -> String {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_string()
    }
}

/// Export the publish log as CSV (same filters, every matching event, oldest last).
#[utoipa::path(
    tag = "log",
    params(LogQuery),
    responses((status = 200, description = "CSV with a header row", content_type = "text/csv", body = String)),
    security(("api_key" = []))
)]
#[get("/log.csv")]
pub async fn export_log_csv(
    state: web::Data<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<LogQuery>,
) -> ApiResult<HttpResponse> {
    caller.require(Capability::Manage)?;
    let filter = filter_of(&query)?;
    pagination::limit(query.limit)?;
    let csv = state
        .db(move |conn| {
            let mut out = csv::Writer::from_writer(Vec::new());
            out.write_record([
                "seq",
                "at",
                "actor",
                "action",
                "statement_id",
                "account_id",
                "delivery_id",
                "details",
                "prev_hash",
                "hash",
            ])
            .map_err(ApiError::internal)?;
            let mut before = None;
            loop {
                let rows = store::list(conn, &filter, before, 1_000)?;
                let Some(last) = rows.last() else { break };
                before = Some(last.seq);
                for r in &rows {
                    out.write_record([
                        r.seq.to_string(),
                        super::format_instant(r.at),
                        spreadsheet_safe(&r.actor),
                        spreadsheet_safe(&r.action),
                        r.statement_id.clone().unwrap_or_default(),
                        r.account_id.clone().unwrap_or_default(),
                        r.delivery_id.clone().unwrap_or_default(),
                        spreadsheet_safe(&r.details),
                        r.prev_hash.clone(),
                        r.hash.clone(),
                    ])
                    .map_err(ApiError::internal)?;
                }
            }
            out.into_inner().map_err(ApiError::internal)
        })
        .await?;
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            "Content-Disposition",
            "attachment; filename=\"herald-log.csv\"",
        ))
        .body(csv))
}

/// Check the hash chain of the whole log.
#[utoipa::path(
    tag = "log",
    responses((status = 200, description = "Whether the chain is intact, and where it breaks", body = VerifyResponse)),
    security(("api_key" = []))
)]
#[get("/log/verify")]
pub async fn verify_log(state: web::Data<AppState>, caller: Caller) -> ApiResult<HttpResponse> {
    caller.require(Capability::Manage)?;
    let outcome = state.db(|conn| Ok(store::verify(conn)?)).await?;
    let body = match outcome {
        Ok(events) => VerifyResponse {
            ok: true,
            events,
            first_bad_seq: None,
            reason: None,
        },
        Err(broken) => VerifyResponse {
            ok: false,
            events: broken.seq - 1,
            first_bad_seq: Some(broken.seq),
            reason: Some(broken.reason),
        },
    };
    Ok(HttpResponse::Ok().json(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_like_cells_are_defused() {
        assert_eq!(spreadsheet_safe("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(spreadsheet_safe("alice"), "alice");
    }

    #[test]
    fn instants_need_an_offset_and_survive_an_unencoded_plus() {
        assert!(instant("from", &Some("2026-11-23T09:00:00Z".into()))
            .unwrap()
            .is_some());
        assert!(instant("from", &Some("2026-11-23T10:00:00 01:00".into()))
            .unwrap()
            .is_some());
        assert!(instant("from", &Some("2026-11-23T09:00:00".into())).is_err());
        assert!(instant("from", &Some("yesterday".into())).is_err());
    }
}
