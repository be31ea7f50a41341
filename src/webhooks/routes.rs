//! Webhook routes (admin): subscribe a URL to events, list, read, remove,
//! and read a webhook's calls with their tries.

use actix_web::{delete, get, post, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::store::{self, AttemptRow, OutboxRow, WebhookError, WebhookRow};
use super::{validate_events, validate_secret, validate_url, OutboxStatus, WebhookEvent};
use crate::app::AppState;
use crate::http::auth::{Caller, Capability};
use crate::http::error::{ApiError, ApiResult, FieldError, Problem};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::{idempotency, pagination, parse_id};

impl From<WebhookError> for ApiError {
    fn from(error: WebhookError) -> Self {
        match error {
            WebhookError::NotFound(_) => ApiError::NotFound(error.to_string()),
            WebhookError::AlreadyRemoved(_) => ApiError::Conflict(error.to_string()),
            WebhookError::Db(e) => e.into(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// Where calls go: https (plain http only to localhost, 127.0.0.1 or ::1).
    #[schema(format = "uri", example = "https://ops.example.org/hooks/herald")]
    pub url: String,
    /// The events to receive, at least one, none twice.
    #[schema(value_type = Vec<WebhookEvent>, example = json!(["delivery.published", "delivery.failed"]))]
    pub events: Vec<String>,
    /// Write-only: the HMAC-SHA256 key of `Herald-Signature`, 16 to 256
    /// characters. Stored encrypted, never returned or logged.
    #[schema(value_type = String, min_length = 16, max_length = 256, example = "a-long-random-shared-secret")]
    pub secret: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookResponse {
    pub id: String,
    pub url: String,
    pub events: Vec<WebhookEvent>,
    /// The key that created it.
    pub created_by: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Set once removed: no call is made for it any more.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub removed_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl TryFrom<WebhookRow> for WebhookResponse {
    type Error = ApiError;

    fn try_from(row: WebhookRow) -> ApiResult<Self> {
        Ok(WebhookResponse {
            events: row.events()?,
            id: row.id,
            url: row.url,
            created_by: row.created_by,
            created_at: row.created_at.and_utc(),
            removed_at: row.removed_at.map(|t| t.and_utc()),
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookPage {
    pub items: Vec<WebhookResponse>,
    pub next_cursor: Option<String>,
}

/// One try of a call.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookAttempt {
    /// From 1.
    pub number: i32,
    /// When the request was sent.
    #[schema(value_type = String, format = DateTime)]
    pub at: chrono::DateTime<chrono::Utc>,
    /// The receiver's HTTP status; absent when it did not answer.
    #[schema(example = 200)]
    pub status: Option<i32>,
    /// What went wrong.
    #[schema(example = "HTTP 503 Service Unavailable")]
    pub error: Option<String>,
    /// How long the receiver took to answer.
    pub duration_ms: i64,
}

impl From<AttemptRow> for WebhookAttempt {
    fn from(a: AttemptRow) -> Self {
        WebhookAttempt {
            number: a.number,
            at: a.at.and_utc(),
            status: a.status,
            error: a.error,
            duration_ms: a.duration_ms,
        }
    }
}

/// One call of a webhook: an event to deliver, and how it went.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookDelivery {
    /// Also the `Herald-Delivery` header and the body's `id`.
    pub id: String,
    pub webhook_id: String,
    pub event: WebhookEvent,
    pub status: OutboxStatus,
    /// Tries so far.
    pub attempts: i32,
    /// When it is tried next (pending only).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_attempt_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The HTTP status of the last try, if the receiver answered.
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: chrono::DateTime<chrono::Utc>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub delivered_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The JSON body sent on every try: `{id, event, created_at, data}`.
    #[schema(value_type = Object)]
    pub body: serde_json::Value,
    /// Every try, oldest first.
    pub attempt_log: Vec<WebhookAttempt>,
}

impl WebhookDelivery {
    fn new(row: OutboxRow, attempts: Vec<AttemptRow>) -> ApiResult<Self> {
        let status = row.status()?;
        let event = WebhookEvent::parse(&row.event).ok_or_else(|| {
            ApiError::internal(format!(
                "outbox row {} has the unknown event '{}'",
                row.id, row.event
            ))
        })?;
        Ok(WebhookDelivery {
            body: serde_json::from_str(&row.payload)
                .unwrap_or(serde_json::Value::String(row.payload.clone())),
            id: row.id,
            webhook_id: row.webhook_id,
            event,
            status,
            attempts: row.attempts,
            next_attempt_at: row.next_attempt_at.map(|t| t.and_utc()),
            last_status: row.last_status,
            last_error: row.last_error,
            created_at: row.created_at.and_utc(),
            delivered_at: row.delivered_at.map(|t| t.and_utc()),
            attempt_log: attempts.into_iter().map(WebhookAttempt::from).collect(),
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookDeliveryPage {
    pub items: Vec<WebhookDelivery>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// Page size, default 50.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListDeliveries {
    /// Only calls in this state.
    pub status: Option<OutboxStatus>,
    /// Page size, default 50.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Subscribe a URL to events. Each call is signed with `secret`
/// (`Herald-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`)
/// and retried with a doubling delay for `HERALD_WEBHOOKS_GIVE_UP_S` (24 h).
#[utoipa::path(
    tag = "webhooks",
    request_body = CreateWebhook,
    params(("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe creation")),
    responses((status = 201, description = "Subscribed (the secret is never shown)", body = WebhookResponse)),
    security(("api_key" = []))
)]
#[post("/webhooks")]
pub async fn create_webhook(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    ApiJson(body): ApiJson<CreateWebhook>,
) -> ApiResult<HttpResponse> {
    caller.require(Capability::Administer)?;
    let mut errors = Vec::new();
    let url = match validate_url(body.url.trim()) {
        Ok(url) => Some(url.to_string()),
        Err(message) => {
            errors.push(FieldError::new("url", message));
            None
        }
    };
    let events = match validate_events(&body.events) {
        Ok(events) => Some(events),
        Err(list) => {
            errors.extend(list);
            None
        }
    };
    let secret = match validate_secret(&body.secret) {
        Ok(secret) => Some(secret),
        Err(message) => {
            errors.push(FieldError::new("secret", message));
            None
        }
    };
    let (Some(url), Some(events), Some(secret), true) = (url, events, secret, errors.is_empty())
    else {
        return Err(ApiError::invalid_fields(errors));
    };
    // The fingerprint leaves the secret out: it is stored (hashed) in clear.
    let fingerprint = serde_json::json!({ "url": url, "events": events });
    let key = state.secret.clone();
    let actor = caller.name.clone();
    idempotency::create(&state, &req, &caller, fingerprint, move |conn| {
        let row = store::create(conn, &actor, &url, &events, |id| {
            key.seal(secret.as_bytes(), id)
        })?;
        serde_json::to_value(WebhookResponse::try_from(row)?).map_err(ApiError::internal)
    })
    .await
}

/// The webhooks in force (removed ones are left out), newest first.
#[utoipa::path(
    tag = "webhooks",
    params(Page),
    responses(
        (status = 200, description = "A page of webhooks", body = WebhookPage),
        (status = 403, description = "Only admins manage webhooks", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
#[get("/webhooks")]
pub async fn list_webhooks(
    state: web::Data<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<Page>,
) -> ApiResult<HttpResponse> {
    caller.require(Capability::Administer)?;
    let limit = pagination::limit(query.limit)?;
    let before = pagination::id_cursor(query.cursor.as_deref())?;
    let rows = state
        .db(move |conn| Ok(store::list(conn, before.as_deref(), limit + 1)?))
        .await?;
    let (rows, next_cursor) = pagination::paginate(rows, limit, |r| r.id.clone());
    let items = rows
        .into_iter()
        .map(WebhookResponse::try_from)
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(HttpResponse::Ok().json(WebhookPage { items, next_cursor }))
}

/// One webhook, removed or not (never its secret).
#[utoipa::path(
    tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    responses(
        (status = 200, description = "The webhook", body = WebhookResponse),
        (status = 403, description = "Only admins manage webhooks", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
#[get("/webhooks/{id}")]
pub async fn get_webhook(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    caller.require(Capability::Administer)?;
    let id = parse_id(&path, "webhook")?;
    let row = found(&state, id).await?;
    Ok(HttpResponse::Ok().json(WebhookResponse::try_from(row)?))
}

async fn found(state: &web::Data<AppState>, id: String) -> ApiResult<WebhookRow> {
    state
        .db(move |conn| store::find(conn, &id)?.ok_or_else(|| WebhookError::NotFound(id).into()))
        .await
}

/// Remove a webhook: no more calls; its pending calls are cancelled. Its
/// calls stay readable.
#[utoipa::path(
    tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 204, description = "Removed")),
    security(("api_key" = []))
)]
#[delete("/webhooks/{id}")]
pub async fn delete_webhook(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    caller.require(Capability::Administer)?;
    let id = parse_id(&path, "webhook")?;
    let actor = caller.name;
    state
        .db(move |conn| Ok(store::remove(conn, &actor, &id)?))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A webhook's calls, newest first, each with every try (time, HTTP status,
/// error, duration). Settled calls are kept `HERALD_WEBHOOKS_KEEP_S` (30
/// days by default); pending ones until they settle.
#[utoipa::path(
    tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id"), ListDeliveries),
    responses(
        (status = 200, description = "A page of calls", body = WebhookDeliveryPage),
        (status = 403, description = "Only admins manage webhooks", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
#[get("/webhooks/{id}/deliveries")]
pub async fn list_webhook_deliveries(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    ApiQuery(query): ApiQuery<ListDeliveries>,
) -> ApiResult<HttpResponse> {
    caller.require(Capability::Administer)?;
    let id = parse_id(&path, "webhook")?;
    let limit = pagination::limit(query.limit)?;
    let before = pagination::id_cursor(query.cursor.as_deref())?;
    let status = query.status;
    let rows = state
        .db(move |conn| {
            if store::find(conn, &id)?.is_none() {
                return Err(WebhookError::NotFound(id).into());
            }
            Ok(store::deliveries(
                conn,
                &id,
                status,
                before.as_deref(),
                limit + 1,
            )?)
        })
        .await?;
    let (rows, next_cursor) = pagination::paginate(rows, limit, |(r, _)| r.id.clone());
    let items = rows
        .into_iter()
        .map(|(row, attempts)| WebhookDelivery::new(row, attempts))
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(HttpResponse::Ok().json(WebhookDeliveryPage { items, next_cursor }))
}
