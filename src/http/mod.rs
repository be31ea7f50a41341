//! Shared HTTP plumbing: auth and roles, problem+json errors, extractors,
//! pagination, idempotency, the route table and the OpenAPI document.

pub mod auth;
pub mod error;
pub mod extract;
pub mod health;
pub mod idempotency;
pub mod openapi;
pub mod pagination;

use actix_web::{HttpRequest, HttpResponse};

use crate::{accounts, keys, log, platforms, statements};
use error::ApiError;

/// Parse a resource id from a path: anything but a UUID names nothing (404).
pub fn parse_id(raw: &str, what: &str) -> Result<String, ApiError> {
    uuid::Uuid::parse_str(raw)
        .map(|u| u.to_string())
        .map_err(|_| ApiError::NotFound(format!("no {what} with id '{raw}' (ids are UUIDs)")))
}

/// Every `/v1` route. The OpenAPI document is derived from this list.
pub fn v1_routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(statements::routes::create_statement)
        .service(statements::routes::list_statements)
        .service(statements::routes::get_statement)
        .service(statements::routes::update_statement)
        .service(statements::routes::put_variant)
        .service(statements::routes::delete_variant)
        .service(statements::routes::submit_statement)
        .service(statements::routes::approve_statement)
        .service(statements::routes::reject_statement)
        .service(statements::routes::retire_statement)
        .service(statements::routes::revise_statement)
        .service(platforms::routes::check_variants)
        .service(accounts::routes::create_account)
        .service(accounts::routes::list_accounts)
        .service(accounts::routes::get_account)
        .service(accounts::routes::delete_account)
        .service(log::routes::list_log)
        .service(log::routes::export_log_csv)
        .service(log::routes::verify_log)
        .service(keys::routes::create_key)
        .service(keys::routes::list_keys)
        .service(keys::routes::revoke_key);
}

/// Routes outside `/v1`.
pub fn root_routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(health::healthz).service(health::readyz);
}

/// Unknown paths and methods answer a problem, not an empty 404.
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    use actix_web::ResponseError;
    ApiError::NotFound(format!("no route for {} {}", req.method(), req.path())).error_response()
}
