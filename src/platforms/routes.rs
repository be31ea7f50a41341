//! `POST /v1/variants/check`: live counters for front-ends, nothing stored.

use actix_web::{get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::Platform;
use crate::accounts;
use crate::app::AppState;
use crate::http::auth::Caller;
use crate::http::error::{ApiError, ApiResult, FieldError};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::{pagination, parse_id};

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
    /// Measure against this account's own limit (a Mastodon instance's
    /// `max_characters`); an explicit `limit` wins.
    pub account_id: Option<String>,
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
    state: web::Data<AppState>,
    _caller: Caller,
    ApiJson(request): ApiJson<CheckRequest>,
) -> ApiResult<HttpResponse> {
    if request.variants.len() > 50 {
        return Err(ApiError::invalid(
            "variants",
            "at most 50 variants per check",
        ));
    }
    let account_ids: Vec<(usize, String)> = request
        .variants
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.account_id.clone().map(|id| (i, id)))
        .collect();
    let accounts = state
        .db(move |conn| {
            let mut found = Vec::new();
            for (i, id) in account_ids {
                let row = match uuid::Uuid::parse_str(&id) {
                    Ok(_) => accounts::store::find(conn, &id)?,
                    Err(_) => None,
                };
                found.push((i, id, row));
            }
            Ok(found)
        })
        .await?;
    let mut errors = Vec::new();
    let mut account_limits = vec![None; request.variants.len()];
    for (i, id, row) in accounts {
        let field = format!("variants[{i}].account_id");
        match row {
            None => errors.push(FieldError::new(field, format!("no account with id '{id}'"))),
            Some(row) if row.platform != request.variants[i].platform.as_str() => {
                errors.push(FieldError::new(
                    field,
                    format!(
                        "the account is on {}, not {}",
                        row.platform, request.variants[i].platform
                    ),
                ))
            }
            Some(row) => {
                account_limits[i] = row.max_characters.and_then(|n| usize::try_from(n).ok())
            }
        }
    }
    let mut results = Vec::new();
    for (i, variant) in request.variants.iter().enumerate() {
        if variant.limit == Some(0) {
            errors.push(FieldError::new(
                format!("variants[{i}].limit"),
                "must be at least 1",
            ));
            continue;
        }
        let limit = variant.limit.or(account_limits[i]);
        let report = super::check(variant.platform, &variant.text, limit);
        results.push(CheckResult {
            platform: variant.platform,
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

/// A post on the built-in sandbox network.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SandboxPostResponse {
    pub id: String,
    pub account_id: String,
    pub delivery_id: Option<String>,
    pub text: String,
    pub language: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Where the post can be read in Herald's API.
    pub url: String,
    /// The sandbox post this one answers (a thread's earlier part, a corrected post).
    pub in_reply_to: Option<String>,
    /// Images, as the networks would fetch them.
    #[schema(value_type = Vec<Object>)]
    pub media: Vec<serde_json::Value>,
    /// On a reply from the public: who wrote it (absent on the account's own posts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
}

impl From<super::sandbox::SandboxPost> for SandboxPostResponse {
    fn from(post: super::sandbox::SandboxPost) -> Self {
        Self {
            url: post.url(),
            id: post.id,
            account_id: post.account_id,
            delivery_id: post.delivery_id,
            text: post.text,
            language: post.language,
            created_at: post.created_at.and_utc(),
            in_reply_to: post.in_reply_to,
            media: post
                .media
                .as_deref()
                .and_then(|m| serde_json::from_str(m).ok())
                .unwrap_or_default(),
            author: post.author,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SandboxPostPage {
    pub items: Vec<SandboxPostResponse>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListSandboxPosts {
    pub account_id: Option<String>,
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Posts published to the sandbox network, newest first.
#[utoipa::path(
    tag = "sandbox",
    params(ListSandboxPosts),
    responses((status = 200, description = "A page of sandbox posts", body = SandboxPostPage)),
    security(("api_key" = []))
)]
#[get("/sandbox/posts")]
pub async fn list_sandbox_posts(
    state: web::Data<AppState>,
    _caller: Caller,
    ApiQuery(query): ApiQuery<ListSandboxPosts>,
) -> ApiResult<HttpResponse> {
    let limit = pagination::limit(query.limit)?;
    let before = pagination::id_cursor(query.cursor.as_deref())?;
    let account = query.account_id.clone();
    let rows = state
        .db(move |conn| {
            Ok(super::sandbox::list(
                conn,
                account.as_deref(),
                before.as_deref(),
                limit + 1,
            )?)
        })
        .await?;
    let (rows, next_cursor) = pagination::paginate(rows, limit, |p| p.id.clone());
    Ok(HttpResponse::Ok().json(SandboxPostPage {
        items: rows.into_iter().map(SandboxPostResponse::from).collect(),
        next_cursor,
    }))
}

/// One sandbox post.
#[utoipa::path(
    tag = "sandbox",
    params(("id" = String, Path, description = "Sandbox post id")),
    responses((status = 200, description = "The post", body = SandboxPostResponse)),
    security(("api_key" = []))
)]
#[get("/sandbox/posts/{id}")]
pub async fn get_sandbox_post(
    state: web::Data<AppState>,
    _caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id(&path, "sandbox post")?;
    let post = state
        .db(move |conn| {
            super::sandbox::find(conn, &id)?
                .ok_or_else(|| ApiError::NotFound(format!("no sandbox post with id '{id}'")))
        })
        .await?;
    Ok(HttpResponse::Ok().json(SandboxPostResponse::from(post)))
}

/// A reply from the public to a sandbox post, to drill reply tracking.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SandboxReplyRequest {
    /// The member of the public who answers (a handle).
    #[schema(example = "@angry_customer")]
    pub author: String,
    #[schema(example = "Is my kettle in batch 42? Why did nobody warn me?")]
    pub text: String,
}

/// Simulate the public: post a reply under a sandbox post (or under an
/// earlier reply). Reply tracking collects it like a reply on a real network.
#[utoipa::path(
    tag = "sandbox",
    params(("id" = String, Path, description = "Sandbox post (or reply) answered")),
    request_body = SandboxReplyRequest,
    responses((status = 201, description = "The reply", body = SandboxPostResponse)),
    security(("api_key" = []))
)]
#[post("/sandbox/posts/{id}/replies")]
pub async fn reply_to_sandbox_post(
    state: web::Data<AppState>,
    _caller: Caller,
    path: web::Path<String>,
    ApiJson(body): ApiJson<SandboxReplyRequest>,
) -> ApiResult<HttpResponse> {
    let id = parse_id(&path, "sandbox post")?;
    let mut errors = Vec::new();
    let author = body.author.trim().to_string();
    if author.is_empty() || author.chars().count() > 100 {
        errors.push(FieldError::new("author", "must be 1 to 100 characters"));
    }
    if body.text.trim().is_empty() || body.text.chars().count() > 5_000 {
        errors.push(FieldError::new(
            "text",
            "must be 1 to 5,000 characters, not blank",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid_fields(errors));
    }
    let text = body.text;
    let reply = state
        .db(move |conn| {
            let parent = super::sandbox::find(conn, &id)?
                .ok_or_else(|| ApiError::NotFound(format!("no sandbox post with id '{id}'")))?;
            Ok(super::sandbox::add_reply(conn, &parent, &author, &text)?)
        })
        .await?;
    Ok(HttpResponse::Created().json(SandboxPostResponse::from(reply)))
}

/// Every network Herald knows.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlatformList {
    pub platforms: Vec<super::catalog::PlatformInfo>,
}

/// Every network: how accounts connect, whether this Herald is configured
/// for it, its text and media rules, and what it allows (threads, replies,
/// delete, edit).
#[utoipa::path(
    tag = "accounts",
    responses((status = 200, description = "The eleven networks", body = PlatformList)),
    security(("api_key" = []))
)]
#[get("/platforms")]
pub async fn list_platforms(
    state: web::Data<AppState>,
    _caller: Caller,
) -> ApiResult<HttpResponse> {
    let platforms = Platform::ALL
        .into_iter()
        .map(|p| {
            let mut info = super::catalog::info(p);
            if let Some(var) = super::catalog::client_settings(p) {
                let configured = state.connectors.oauth_app(p).is_some();
                info.configured = configured;
                if !configured {
                    info.not_configured = Some(format!(
                        "not configured: set {var}_CLIENT_ID and {var}_CLIENT_SECRET to the app registered with {}",
                        info.name
                    ));
                }
            }
            info
        })
        .collect();
    Ok(HttpResponse::Ok().json(PlatformList { platforms }))
}
