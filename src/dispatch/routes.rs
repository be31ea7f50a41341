//! The pause switch: `POST /v1/publishing/pause` holds every delivery (or
//! only routine ones, so crisis statements still go), `resume` lifts it.

use actix_web::{get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::deliveries::dto::Delivery;
use crate::deliveries::store;
use crate::http::auth::{Caller, Capability};
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::ApiJson;

/// What a pause holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PauseScope {
    /// Nothing is published.
    All,
    /// Routine statements are held; crisis statements still go.
    Routine,
}

impl PauseScope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Routine => "routine",
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PauseRequest {
    pub scope: PauseScope,
    /// Why (kept in the publish log).
    #[schema(
        min_length = 1,
        max_length = 500,
        example = "Product recall under way: hold routine posts"
    )]
    pub reason: String,
}

/// Whether publishing runs.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PublishingState {
    /// `true` while a pause is in force.
    pub paused: bool,
    pub scope: Option<PauseScope>,
    pub reason: Option<String>,
    /// Who paused or resumed last.
    pub changed_by: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub changed_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Number of deliveries per status.
    #[schema(value_type = Object, example = json!({"scheduled": 12, "published": 40}))]
    pub deliveries: std::collections::BTreeMap<String, i64>,
}

/// Answer to a pause or resume.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PauseResponse {
    #[serde(flatten)]
    pub state: PublishingState,
    /// Deliveries already handed to a network (or being checked with it):
    /// a pause cannot call them back.
    pub in_flight: Vec<Delivery>,
}

fn state_of(control: store::ControlRow, counts: Vec<(String, i64)>) -> PublishingState {
    let scope = match control.scope.as_deref() {
        Some("all") => Some(PauseScope::All),
        Some("routine") => Some(PauseScope::Routine),
        _ => None,
    };
    PublishingState {
        paused: scope.is_some(),
        scope,
        reason: control.reason,
        changed_by: control.changed_by,
        changed_at: control.changed_at.map(|t| t.and_utc()),
        deliveries: counts.into_iter().collect(),
    }
}

/// Whether publishing is paused, and deliveries by status.
#[utoipa::path(
    tag = "publishing",
    responses((status = 200, description = "The pause switch", body = PublishingState)),
    security(("api_key" = []))
)]
#[get("/publishing")]
pub async fn get_publishing(
    state: web::Data<AppState>,
    _caller: Caller,
) -> ApiResult<HttpResponse> {
    let (control, counts) = state
        .db(|conn| Ok((store::control(conn)?, store::count_by_status(conn)?)))
        .await?;
    Ok(HttpResponse::Ok().json(state_of(control, counts)))
}

async fn switch(
    state: web::Data<AppState>,
    caller: Caller,
    scope: Option<PauseScope>,
    reason: Option<String>,
) -> ApiResult<HttpResponse> {
    caller.require(Capability::Manage)?;
    let actor = caller.name;
    let (control, counts, in_flight) = state
        .db(move |conn| {
            let (_, in_flight) = store::set_pause(
                conn,
                &actor,
                scope.map(PauseScope::as_str),
                reason.as_deref(),
            )?;
            Ok((
                store::control(conn)?,
                store::count_by_status(conn)?,
                in_flight,
            ))
        })
        .await?;
    state.waker.wake();
    Ok(HttpResponse::Ok().json(PauseResponse {
        state: state_of(control, counts),
        in_flight: in_flight
            .into_iter()
            .map(Delivery::try_from)
            .collect::<ApiResult<Vec<_>>>()?,
    }))
}

/// Pause publishing (managers). Takes effect for every instance at once.
#[utoipa::path(
    tag = "publishing",
    request_body = PauseRequest,
    responses((status = 200, description = "Paused; lists what was already handed to a network", body = PauseResponse)),
    security(("api_key" = []))
)]
#[post("/publishing/pause")]
pub async fn pause_publishing(
    state: web::Data<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<PauseRequest>,
) -> ApiResult<HttpResponse> {
    let reason = body.reason.trim().to_string();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(ApiError::invalid(
            "reason",
            "give a reason of 1 to 500 characters",
        ));
    }
    switch(state, caller, Some(body.scope), Some(reason)).await
}

/// Resume publishing (managers). Deliveries held past their `max_lateness_s` stay `missed`.
#[utoipa::path(
    tag = "publishing",
    responses((status = 200, description = "Publishing runs", body = PauseResponse)),
    security(("api_key" = []))
)]
#[post("/publishing/resume")]
pub async fn resume_publishing(
    state: web::Data<AppState>,
    caller: Caller,
) -> ApiResult<HttpResponse> {
    switch(state, caller, None, None).await
}
