//! Shared HTTP plumbing: auth and roles, problem+json errors, extractors,
//! pagination, idempotency, the route table and the OpenAPI document.

pub mod auth;
pub mod error;
pub mod extract;
pub mod health;
pub mod idempotency;
pub mod logging;
pub mod metrics;
pub mod openapi;
pub mod pagination;

use actix_web::{HttpRequest, HttpResponse};

use crate::{
    accounts, deliveries, dispatch, keys, log, media, platforms, replies, statements, webhooks,
};
use error::ApiError;

/// Parse a resource id from a path: anything but a UUID names nothing (404).
pub fn parse_id(raw: &str, what: &str) -> Result<String, ApiError> {
    uuid::Uuid::parse_str(raw)
        .map(|u| u.to_string())
        .map_err(|_| ApiError::NotFound(format!("no {what} with id '{raw}' (ids are UUIDs)")))
}

/// An optional RFC 3339 instant from a query string (`from`, `to`).
pub fn query_instant(
    field: &str,
    raw: &Option<String>,
) -> Result<Option<chrono::NaiveDateTime>, ApiError> {
    let Some(raw) = raw else { return Ok(None) };
    // An unencoded '+' in a query string arrives as a space.
    let repaired = raw.trim().replace(' ', "+");
    chrono::DateTime::parse_from_rfc3339(&repaired)
        .map(|t| Some(t.with_timezone(&chrono::Utc).naive_utc()))
        .map_err(|_| {
            ApiError::invalid(
                field,
                format!("'{raw}' is not an RFC 3339 instant such as 2026-11-23T09:00:00Z"),
            )
        })
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
        .service(accounts::routes::check_account)
        .service(accounts::connect::connect_account)
        .service(accounts::connect::oauth_callback)
        .service(log::routes::list_log)
        .service(log::routes::export_log_csv)
        .service(log::routes::verify_log)
        .service(keys::routes::create_key)
        .service(keys::routes::list_keys)
        .service(keys::routes::revoke_key)
        .service(deliveries::routes::schedule_deliveries)
        .service(deliveries::routes::list_deliveries)
        .service(deliveries::routes::get_delivery)
        .service(deliveries::routes::cancel_delivery)
        .service(deliveries::routes::reschedule_delivery)
        .service(deliveries::retract::retract_statement)
        .service(deliveries::retract::correct_statement)
        .service(dispatch::routes::get_publishing)
        .service(dispatch::routes::pause_publishing)
        .service(dispatch::routes::resume_publishing)
        .service(platforms::routes::list_sandbox_posts)
        .service(platforms::routes::get_sandbox_post)
        .service(platforms::routes::reply_to_sandbox_post)
        .service(platforms::routes::list_platforms)
        .service(replies::routes::list_replies)
        .service(replies::routes::get_reply)
        .service(replies::routes::patch_reply)
        .service(replies::routes::respond_to_reply)
        .service(replies::routes::replies_summary)
        .service(replies::routes::followup_stats)
        .service(media::routes::upload_media)
        .service(media::routes::get_media)
        .service(media::routes::media_content)
        .service(webhooks::routes::create_webhook)
        .service(webhooks::routes::list_webhooks)
        .service(webhooks::routes::get_webhook)
        .service(webhooks::routes::delete_webhook)
        .service(webhooks::routes::list_webhook_deliveries);
}

/// Routes outside `/v1`.
pub fn root_routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(health::healthz)
        .service(health::readyz)
        .service(metrics::metrics_page);
}

/// Unknown paths answer a 404 problem; a known path with another method a
/// 405 with `Allow`. The known paths are those of the OpenAPI document.
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    use actix_web::ResponseError;
    let error = match allowed_methods(req.path()) {
        Some(allow) if !allow.is_empty() => ApiError::MethodNotAllowed {
            detail: format!(
                "{} is not allowed on {}; use {}",
                req.method(),
                req.path(),
                allow.join(", ")
            ),
            allow,
        },
        _ => ApiError::NotFound(format!("no route for {} {}", req.method(), req.path())),
    };
    error.error_response()
}

/// The methods the API serves on `path`, if it matches a documented route.
fn allowed_methods(path: &str) -> Option<Vec<String>> {
    static ROUTES: std::sync::OnceLock<Vec<(String, Vec<String>)>> = std::sync::OnceLock::new();
    let routes = ROUTES.get_or_init(|| {
        openapi::document()
            .paths
            .paths
            .iter()
            .map(|(template, item)| {
                let methods = [
                    ("GET", item.get.is_some()),
                    ("POST", item.post.is_some()),
                    ("PUT", item.put.is_some()),
                    ("PATCH", item.patch.is_some()),
                    ("DELETE", item.delete.is_some()),
                ];
                let allow = methods
                    .iter()
                    .filter(|(_, present)| *present)
                    .map(|(m, _)| m.to_string())
                    .collect();
                (template.clone(), allow)
            })
            .collect()
    });
    routes
        .iter()
        .find(|(template, _)| path_matches(template, path))
        .map(|(_, allow)| allow.clone())
}

/// `/v1/statements/{id}` matches `/v1/statements/abc` (one non-empty segment per parameter).
fn path_matches(template: &str, path: &str) -> bool {
    let t: Vec<&str> = template.split('/').collect();
    let p: Vec<&str> = path.split('/').collect();
    t.len() == p.len()
        && t.iter().zip(&p).all(|(t, p)| {
            if t.starts_with('{') && t.ends_with('}') {
                !p.is_empty()
            } else {
                t == p
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_one_segment_per_parameter() {
        assert!(path_matches("/v1/statements/{id}", "/v1/statements/abc"));
        assert!(!path_matches("/v1/statements/{id}", "/v1/statements/"));
        assert!(!path_matches("/v1/statements/{id}", "/v1/statements/a/b"));
        assert!(path_matches("/v1/log.csv", "/v1/log.csv"));
    }

    #[test]
    fn known_paths_list_their_methods() {
        let allow = allowed_methods("/v1/statements/0190/variants/x").unwrap();
        assert_eq!(allow, ["PUT", "DELETE"]);
        assert!(allowed_methods("/v1/nowhere").is_none());
    }
}
