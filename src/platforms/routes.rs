//! `POST /v1/variants/check`: live counters for front-ends, nothing stored.

use actix_web::{post, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Platform;
use crate::http::auth::Caller;
use crate::http::error::{ApiError, ApiResult, FieldError};
use crate::http::extract::ApiJson;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// The texts to measure, one per platform or several for the same one.
    pub variants: Vec<CheckVariant>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckVariant {
    pub platform: Platform,
    #[schema(
        example = "We are recalling batch 42 of our kettles. Details: https://example.com/recall"
    )]
    pub text: String,
    /// A limit other than the network's default (a Mastodon instance's `max_characters`).
    #[schema(minimum = 1, example = 500)]
    pub limit: Option<usize>,
}

/// How a text measures on one network.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckResult {
    pub platform: Platform,
    /// Length in the network's own unit.
    #[schema(example = 87)]
    pub used: usize,
    #[schema(example = 300)]
    pub limit: usize,
    /// The unit of `used` and `limit`.
    #[schema(example = "graphemes")]
    pub unit: String,
    /// True when the text can be posted as it is.
    pub ok: bool,
    /// Why it cannot (empty when `ok`).
    pub problems: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CheckResponse {
    pub variants: Vec<CheckResult>,
}

/// Measure texts against each network's rules without storing anything.
#[utoipa::path(
    tag = "statements",
    request_body = CheckRequest,
    responses((status = 200, description = "One result per variant, in request order", body = CheckResponse)),
    security(("api_key" = []))
)]
#[post("/variants/check")]
pub async fn check_variants(
    _caller: Caller,
    ApiJson(request): ApiJson<CheckRequest>,
) -> ApiResult<HttpResponse> {
    if request.variants.len() > 50 {
        return Err(ApiError::invalid(
            "variants",
            "at most 50 variants per check",
        ));
    }
    let mut errors = Vec::new();
    let mut results = Vec::new();
    for (i, variant) in request.variants.iter().enumerate() {
        let platform = variant.platform;
        if variant.limit == Some(0) {
            errors.push(FieldError::new(
                format!("variants[{i}].limit"),
                "must be at least 1",
            ));
            continue;
        }
        let report = super::check(platform, &variant.text, variant.limit);
        results.push(CheckResult {
            platform,
            used: report.used,
            limit: report.limit,
            unit: report.unit.to_string(),
            ok: report.ok(),
            problems: report.problems,
        });
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid_fields(errors));
    }
    Ok(HttpResponse::Ok().json(CheckResponse { variants: results }))
}
