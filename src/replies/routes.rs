//! `/v1/replies`: the collected replies and their follow-up; answering one;
//! `/v1/statements/{id}/replies/summary`; `/v1/followups/stats`.

use std::collections::BTreeMap;

use actix_web::{get, patch, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::respond::{self, Answer};
use super::store::{self, FigureRow, FollowUpChange, ReplyFilter, ReplyRow};
use super::FollowUp;
use crate::app::AppState;
use crate::deliveries::dto::Delivery;
use crate::http::auth::{Caller, Capability};
use crate::http::error::{ApiError, ApiResult, FieldError};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::{idempotency, pagination, parse_id, query_instant};
use crate::platforms::Platform;
use crate::sentiment::courtesy::CourtesyIssue;
use crate::sentiment::{Label, Language};

/// A reply from the public to one of Herald's posts.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Reply {
    pub id: String,
    /// The delivery (post) it answers, directly or deeper in the conversation.
    pub delivery_id: String,
    pub statement_id: String,
    pub account_id: String,
    pub platform: Platform,
    /// The network's id of the reply.
    pub remote_id: String,
    /// The network's id of what it answers directly.
    pub parent_remote_id: Option<String>,
    /// Handle, or name where the network has no handle.
    pub author: String,
    /// Plain text.
    pub text: String,
    pub url: Option<String>,
    /// When it was written, on the network.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    /// When Herald collected it.
    #[schema(value_type = String, format = DateTime)]
    pub collected_at: DateTime<Utc>,
    /// Detected language (`fr`, `en`), absent when unsure.
    pub language: Option<Language>,
    pub sentiment: Label,
    /// From -1 (most negative) to 1 (most positive).
    pub score: f64,
    /// It asks something.
    pub question: bool,
    pub follow_up: FollowUp,
    /// Why it was queued for a response (`negative`, `question`, `negative question`).
    pub follow_up_reason: Option<String>,
    pub assignee: Option<String>,
    /// The first answer: Herald's published response, or when it was marked answered.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub first_response_at: Option<DateTime<Utc>>,
    /// Seconds from the reply to its first answer.
    pub response_time_s: Option<i64>,
}

impl From<ReplyRow> for Reply {
    fn from(row: ReplyRow) -> Self {
        Self {
            response_time_s: row.response_time_s(),
            platform: Platform::parse(&row.platform).unwrap_or(Platform::Sandbox),
            language: match row.language.as_deref() {
                Some("fr") => Some(Language::Fr),
                Some("en") => Some(Language::En),
                _ => None,
            },
            sentiment: Label::parse(&row.sentiment).unwrap_or(Label::Neutral),
            follow_up: FollowUp::parse(&row.follow_up).unwrap_or(FollowUp::New),
            first_response_at: row.first_response_at.map(|t| t.and_utc()),
            created_at: row.created_at.and_utc(),
            collected_at: row.collected_at.and_utc(),
            id: row.id,
            delivery_id: row.delivery_id,
            statement_id: row.statement_id,
            account_id: row.account_id,
            remote_id: row.remote_id,
            parent_remote_id: row.parent_remote_id,
            author: row.author,
            text: row.text,
            url: row.url,
            score: row.score,
            question: row.question,
            follow_up_reason: row.follow_up_reason,
            assignee: row.assignee,
        }
    }
}

/// The reply as webhook subscribers receive it.
pub fn payload(row: &ReplyRow) -> serde_json::Value {
    serde_json::to_value(Reply::from(row.clone())).unwrap_or_default()
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReplyPage {
    pub items: Vec<Reply>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListReplies {
    /// Replies to any version of this statement.
    pub statement_id: Option<String>,
    pub delivery_id: Option<String>,
    pub account_id: Option<String>,
    pub platform: Option<String>,
    /// `negative`, `neutral` or `positive`.
    pub sentiment: Option<String>,
    /// `new`, `needs_response`, `assigned`, `answered` or `dismissed`.
    pub follow_up: Option<String>,
    pub assignee: Option<String>,
    /// Written at or after (RFC 3339).
    pub from: Option<String>,
    /// Written before (RFC 3339).
    pub to: Option<String>,
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

fn optional_id(field: &str, raw: &Option<String>) -> Result<Option<String>, FieldError> {
    raw.as_deref()
        .map(|r| {
            uuid::Uuid::parse_str(r)
                .map(|u| u.to_string())
                .map_err(|_| FieldError::new(field, format!("'{r}' is not an id")))
        })
        .transpose()
}

/// Replies, newest collected first.
#[utoipa::path(
    tag = "replies",
    params(ListReplies),
    responses((status = 200, description = "A page of replies", body = ReplyPage)),
    security(("api_key" = []))
)]
#[get("/replies")]
pub async fn list_replies(
    state: web::Data<AppState>,
    _caller: Caller,
    ApiQuery(query): ApiQuery<ListReplies>,
) -> ApiResult<HttpResponse> {
    let limit = pagination::limit(query.limit)?;
    let before = pagination::id_cursor(query.cursor.as_deref())?;
    let mut errors = Vec::new();
    let mut id = |field: &str, raw: &Option<String>| {
        optional_id(field, raw).unwrap_or_else(|e| {
            errors.push(e);
            None
        })
    };
    let statement_id = id("statement_id", &query.statement_id);
    let delivery_id = id("delivery_id", &query.delivery_id);
    let account_id = id("account_id", &query.account_id);
    if let Some(s) = &query.sentiment {
        if Label::parse(s).is_none() {
            errors.push(FieldError::new(
                "sentiment",
                format!("'{s}' is not one of negative, neutral, positive"),
            ));
        }
    }
    if let Some(f) = &query.follow_up {
        if FollowUp::parse(f).is_none() {
            errors.push(FieldError::new(
                "follow_up",
                format!("'{f}' is not one of new, needs_response, assigned, answered, dismissed"),
            ));
        }
    }
    if let Some(p) = &query.platform {
        if Platform::parse(p).is_none() {
            errors.push(FieldError::new("platform", Platform::unknown(p)));
        }
    }
    let from = query_instant("from", &query.from).map_err(|e| errors.push(field_of(e)));
    let to = query_instant("to", &query.to).map_err(|e| errors.push(field_of(e)));
    if !errors.is_empty() {
        return Err(ApiError::invalid_fields(errors));
    }
    let mut filter = ReplyFilter {
        lineage_id: None,
        delivery_id,
        account_id,
        platform: query.platform.clone(),
        sentiment: query.sentiment.clone(),
        follow_up: query.follow_up.clone(),
        assignee: query.assignee.clone(),
        from: from.ok().flatten(),
        to: to.ok().flatten(),
    };
    let rows = state
        .db(move |conn| {
            if let Some(statement) = statement_id {
                // An unknown statement has no replies (an empty page).
                filter.lineage_id = Some(store::lineage_of(conn, &statement)?.unwrap_or(statement));
            }
            Ok(store::list(conn, &filter, before.as_deref(), limit + 1)?)
        })
        .await?;
    let (rows, next_cursor) = pagination::paginate(rows, limit, |r| r.id.clone());
    Ok(HttpResponse::Ok().json(ReplyPage {
        items: rows.into_iter().map(Reply::from).collect(),
        next_cursor,
    }))
}

/// The field error inside a one-field validation error.
fn field_of(error: ApiError) -> FieldError {
    match error {
        ApiError::Validation { mut errors, .. } if !errors.is_empty() => errors.remove(0),
        other => FieldError::new("query", other.to_string()),
    }
}

/// A reply with the answers Herald sent to it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplyDetail {
    pub reply: Reply,
    /// Answers sent (or on their way) through Herald, oldest first.
    pub responses: Vec<Delivery>,
}

/// One reply.
#[utoipa::path(
    tag = "replies",
    params(("id" = String, Path, description = "Reply id")),
    responses((status = 200, description = "The reply", body = ReplyDetail)),
    security(("api_key" = []))
)]
#[get("/replies/{id}")]
pub async fn get_reply(
    state: web::Data<AppState>,
    _caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id(&path, "reply")?;
    let (reply, answers) = state
        .db(move |conn| {
            let reply = store::find(conn, &id)?
                .ok_or_else(|| ApiError::NotFound(format!("no reply with id '{id}'")))?;
            Ok((reply, store::responses_of(conn, &id)?))
        })
        .await?;
    Ok(HttpResponse::Ok().json(ReplyDetail {
        reply: Reply::from(reply),
        responses: answers
            .into_iter()
            .map(Delivery::try_from)
            .collect::<ApiResult<Vec<_>>>()?,
    }))
}

/// A follow-up change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchReply {
    pub follow_up: FollowUp,
    /// Who handles it; required for `assigned` unless already set.
    #[schema(example = "marie")]
    pub assignee: Option<String>,
}

/// Move a reply in the follow-up queue (editors). Every change is logged
/// (`reply.follow_up_changed`).
#[utoipa::path(
    tag = "replies",
    params(("id" = String, Path, description = "Reply id")),
    request_body = PatchReply,
    responses((status = 200, description = "The reply", body = Reply)),
    security(("api_key" = []))
)]
#[patch("/replies/{id}")]
pub async fn patch_reply(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    ApiJson(body): ApiJson<PatchReply>,
) -> ApiResult<HttpResponse> {
    caller.require(Capability::WriteStatements)?;
    let id = parse_id(&path, "reply")?;
    let assignee = match body.assignee.as_deref().map(str::trim) {
        Some("") => return Err(ApiError::invalid("assignee", "must not be blank")),
        Some(a) if a.chars().count() > 100 => {
            return Err(ApiError::invalid("assignee", "at most 100 characters"))
        }
        other => other.map(str::to_string),
    };
    let change = FollowUpChange {
        follow_up: body.follow_up,
        assignee,
    };
    let actor = caller.name.clone();
    let reply = state
        .db(move |conn| {
            crate::deliveries::store::tx(conn, |conn| {
                let reply = store::find(conn, &id)?
                    .ok_or_else(|| ApiError::NotFound(format!("no reply with id '{id}'")))?;
                if change.follow_up == FollowUp::Assigned
                    && change.assignee.is_none()
                    && reply.assignee.is_none()
                {
                    return Err(ApiError::invalid(
                        "assignee",
                        "say who handles it: assigned needs an assignee",
                    ));
                }
                Ok(store::change_follow_up(conn, &actor, &reply, &change)?.0)
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(Reply::from(reply)))
}

/// An answer to a reply.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RespondRequest {
    /// The answer (or use `template_id`).
    #[schema(
        example = "We are sorry, @ana. Batch 42 is being recalled: https://example.com/recall"
    )]
    pub text: Option<String>,
    /// An approved statement of kind `response` whose variant for the
    /// reply's network is the answer; `{author}` is filled in.
    pub template_id: Option<String>,
    /// Send despite the courtesy check (approvers only; logged).
    #[serde(default)]
    pub force: bool,
    /// How late the answer may go out (10 s to 7 days; default 900).
    pub max_lateness_s: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RespondResponse {
    /// The answer's delivery: published by the dispatcher like any post.
    pub delivery: Delivery,
    pub reply: Reply,
    /// The answer's text as it will be published.
    pub text: String,
    /// Courtesy findings an approver overrode with `force`.
    pub overridden: Vec<CourtesyIssue>,
}

/// Answer a reply on its network (editors). The text is checked against the
/// network's rules and for courtesy: aggressive, insulting, sarcastic-blame
/// or all-caps wording gets a 422 saying what to change, unless an approver
/// sends `force: true` (logged). Honours `Idempotency-Key`.
#[utoipa::path(
    tag = "replies",
    params(("id" = String, Path, description = "Reply id")),
    request_body = RespondRequest,
    responses(
        (status = 201, description = "The answer is queued for publication", body = RespondResponse),
        (status = 409, description = "An answer is already on its way, or the account is not active"),
        (status = 422, description = "Discourteous or invalid text, naming what to change"),
    ),
    security(("api_key" = []))
)]
#[post("/replies/{id}/respond")]
pub async fn respond_to_reply(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    path: web::Path<String>,
    ApiJson(body): ApiJson<RespondRequest>,
) -> ApiResult<HttpResponse> {
    caller.require(Capability::WriteStatements)?;
    if body.force {
        caller.require(Capability::Approve).map_err(|_| {
            ApiError::Forbidden(
                "only an approver (roles approver, manager, admin) may force an answer past \
                 the courtesy check"
                    .into(),
            )
        })?;
    }
    let id = parse_id(&path, "reply")?;
    let mut errors = Vec::new();
    if let Some(text) = &body.text {
        if text.trim().is_empty() {
            errors.push(FieldError::new("text", "must not be blank"));
        }
    }
    let template_id = match &body.template_id {
        Some(raw) => match uuid::Uuid::parse_str(raw) {
            Ok(u) => Some(u.to_string()),
            Err(_) => {
                errors.push(FieldError::new(
                    "template_id",
                    format!("'{raw}' is not a statement id"),
                ));
                None
            }
        },
        None => None,
    };
    if body.text.is_some() == body.template_id.is_some() {
        errors.push(FieldError::new(
            "text",
            "give either text or template_id (exactly one)",
        ));
    }
    let max_lateness_s = body
        .max_lateness_s
        .unwrap_or(i64::from(state.max_lateness_s));
    use crate::deliveries::{MAX_LATENESS_S, MIN_LATENESS_S};
    if !(MIN_LATENESS_S..=MAX_LATENESS_S).contains(&max_lateness_s) {
        errors.push(FieldError::new(
            "max_lateness_s",
            format!("must be between {MIN_LATENESS_S} and {MAX_LATENESS_S} seconds"),
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid_fields(errors));
    }
    let answer = Answer {
        text: body.text.clone(),
        template_id,
        force: body.force,
        max_lateness_s: max_lateness_s as i32,
    };
    let fingerprint = serde_json::json!({
        "reply_id": id, "text": body.text, "template_id": body.template_id,
        "force": body.force, "max_lateness_s": max_lateness_s,
    });
    let actor = caller.name.clone();
    let response = idempotency::create(&state, &req, &caller, fingerprint, move |conn| {
        let queued = respond::queue(conn, &actor, &id, &answer)?;
        serde_json::to_value(RespondResponse {
            delivery: Delivery::try_from(queued.delivery)?,
            reply: Reply::from(queued.reply),
            text: queued.text,
            overridden: queued.overridden,
        })
        .map_err(ApiError::internal)
    })
    .await?;
    state.waker.wake();
    Ok(response)
}

// ---------------------------------------------------------------- figures

/// Replies by sentiment.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct SentimentCounts {
    pub negative: u64,
    pub neutral: u64,
    pub positive: u64,
}

/// Replies by follow-up status.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct FollowUpCounts {
    pub new: u64,
    pub needs_response: u64,
    pub assigned: u64,
    pub answered: u64,
    pub dismissed: u64,
}

/// Time to first response, over the replies that have one (nearest-rank
/// percentiles, in seconds).
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct ResponseTimes {
    pub answered: u64,
    pub median_s: Option<i64>,
    pub p90_s: Option<i64>,
}

#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Figures {
    pub total: u64,
    pub sentiment: SentimentCounts,
    pub follow_up: FollowUpCounts,
    pub response_time: ResponseTimes,
}

impl Figures {
    fn of<'a>(rows: impl IntoIterator<Item = &'a FigureRow>) -> Self {
        let mut f = Figures::default();
        let mut times = Vec::new();
        for row in rows {
            f.total += 1;
            match row.sentiment.as_str() {
                "negative" => f.sentiment.negative += 1,
                "positive" => f.sentiment.positive += 1,
                _ => f.sentiment.neutral += 1,
            }
            match FollowUp::parse(&row.follow_up) {
                Some(FollowUp::New) | None => f.follow_up.new += 1,
                Some(FollowUp::NeedsResponse) => f.follow_up.needs_response += 1,
                Some(FollowUp::Assigned) => f.follow_up.assigned += 1,
                Some(FollowUp::Answered) => f.follow_up.answered += 1,
                Some(FollowUp::Dismissed) => f.follow_up.dismissed += 1,
            }
            if let Some(t) = row.first_response_at {
                times.push((t - row.created_at).num_seconds().max(0));
            }
        }
        times.sort_unstable();
        f.response_time = ResponseTimes {
            answered: times.len() as u64,
            median_s: nearest_rank(&times, 50),
            p90_s: nearest_rank(&times, 90),
        };
        f
    }
}

/// The nearest-rank percentile `p` of sorted `values`.
pub fn nearest_rank(sorted: &[i64], p: usize) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NetworkFigures {
    pub platform: Platform,
    #[serde(flatten)]
    pub figures: Figures,
}

fn by_network(rows: &[FigureRow]) -> Vec<NetworkFigures> {
    let mut groups: BTreeMap<&str, Vec<&FigureRow>> = BTreeMap::new();
    for row in rows {
        groups.entry(row.platform.as_str()).or_default().push(row);
    }
    groups
        .into_iter()
        .filter_map(|(platform, rows)| {
            Some(NetworkFigures {
                platform: Platform::parse(platform)?,
                figures: Figures::of(rows),
            })
        })
        .collect()
}

/// The replies to a statement (every version), by sentiment and follow-up,
/// overall and per network.
#[derive(Debug, Serialize, ToSchema)]
pub struct RepliesSummary {
    pub statement_id: String,
    #[serde(flatten)]
    pub overall: Figures,
    pub networks: Vec<NetworkFigures>,
}

/// Counts of a statement's replies by sentiment and follow-up status, per
/// network, with its response times.
#[utoipa::path(
    tag = "replies",
    params(("id" = String, Path, description = "Statement id (any version)")),
    responses((status = 200, description = "The summary", body = RepliesSummary)),
    security(("api_key" = []))
)]
#[get("/statements/{id}/replies/summary")]
pub async fn replies_summary(
    state: web::Data<AppState>,
    _caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id(&path, "statement")?;
    let statement_id = id.clone();
    let rows = state
        .db(move |conn| {
            let lineage = store::lineage_of(conn, &id)?
                .ok_or_else(|| ApiError::NotFound(format!("no statement with id '{id}'")))?;
            Ok(store::figures_of_lineage(conn, &lineage)?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(RepliesSummary {
        statement_id,
        overall: Figures::of(&rows),
        networks: by_network(&rows),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// Replies written at or after (RFC 3339); default 7 days before `to`.
    pub from: Option<String>,
    /// Replies written before (RFC 3339); default now.
    pub to: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AssigneeFigures {
    /// `null`: replies nobody was assigned.
    pub assignee: Option<String>,
    #[serde(flatten)]
    pub figures: Figures,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StatementFigures {
    /// The statement's lineage (shared by its versions).
    pub lineage_id: String,
    #[serde(flatten)]
    pub figures: Figures,
}

/// Service levels of the follow-up queue over a period.
#[derive(Debug, Serialize, ToSchema)]
pub struct FollowupStats {
    #[schema(value_type = String, format = DateTime)]
    pub from: DateTime<Utc>,
    #[schema(value_type = String, format = DateTime)]
    pub to: DateTime<Utc>,
    #[serde(flatten)]
    pub overall: Figures,
    pub networks: Vec<NetworkFigures>,
    pub assignees: Vec<AssigneeFigures>,
    pub statements: Vec<StatementFigures>,
}

/// Follow-up service levels: time to first response (median, p90) and
/// queue counts, overall, by network, by assignee and by statement.
#[utoipa::path(
    tag = "replies",
    params(StatsQuery),
    responses((status = 200, description = "The figures", body = FollowupStats)),
    security(("api_key" = []))
)]
#[get("/followups/stats")]
pub async fn followup_stats(
    state: web::Data<AppState>,
    _caller: Caller,
    ApiQuery(query): ApiQuery<StatsQuery>,
) -> ApiResult<HttpResponse> {
    let to = query_instant("to", &query.to)?.unwrap_or_else(crate::db::now);
    let from =
        query_instant("from", &query.from)?.unwrap_or_else(|| to - chrono::Duration::days(7));
    if from >= to {
        return Err(ApiError::invalid("from", "must be before to"));
    }
    let rows = state
        .db(move |conn| Ok(store::figures_between(conn, from, to)?))
        .await?;
    let mut assignees: BTreeMap<Option<&str>, Vec<&FigureRow>> = BTreeMap::new();
    let mut statements: BTreeMap<&str, Vec<&FigureRow>> = BTreeMap::new();
    for row in &rows {
        assignees
            .entry(row.assignee.as_deref())
            .or_default()
            .push(row);
        statements
            .entry(row.lineage_id.as_str())
            .or_default()
            .push(row);
    }
    Ok(HttpResponse::Ok().json(FollowupStats {
        from: from.and_utc(),
        to: to.and_utc(),
        overall: Figures::of(&rows),
        networks: by_network(&rows),
        assignees: assignees
            .into_iter()
            .map(|(assignee, rows)| AssigneeFigures {
                assignee: assignee.map(str::to_string),
                figures: Figures::of(rows),
            })
            .collect(),
        statements: statements
            .into_iter()
            .map(|(lineage, rows)| StatementFigures {
                lineage_id: lineage.to_string(),
                figures: Figures::of(rows),
            })
            .collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        assert_eq!(nearest_rank(&[], 50), None);
        assert_eq!(nearest_rank(&[7], 90), Some(7));
        let values: Vec<i64> = (1..=10).collect();
        assert_eq!(nearest_rank(&values, 50), Some(5));
        assert_eq!(nearest_rank(&values, 90), Some(9));
        assert_eq!(nearest_rank(&[10, 20], 50), Some(10));
    }
}
