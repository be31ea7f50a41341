//! Liveness and readiness probes.

use std::time::Duration;

use actix_web::{get, web, HttpResponse};
use diesel::connection::SimpleConnection;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult};
use crate::app::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: String,
    /// `sqlite` or `postgres` (readiness only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
}

/// The process is up.
#[utoipa::path(tag = "health", responses((status = 200, description = "Alive", body = Health)))]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health {
        status: "ok".into(),
        database: None,
    })
}

/// The database answers: ready for traffic.
#[utoipa::path(
    tag = "health",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "The database does not answer", body = super::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let backend = state.backend;
    let pool = state.pool.clone();
    // A probe must answer quickly, not wait out the pool's usual timeout.
    web::block(move || {
        let mut conn = pool
            .get_timeout(Duration::from_secs(2))
            .map_err(|e| ApiError::Unavailable(format!("no database connection: {e}")))?;
        conn.batch_execute("SELECT 1")
            .map_err(|e| ApiError::Unavailable(format!("the database does not answer: {e}")))
    })
    .await??;
    Ok(HttpResponse::Ok().json(Health {
        status: "ok".into(),
        database: Some(backend.into()),
    }))
}
