//! Statement routes: parse, authorize, call the store, answer.

use actix_web::http::StatusCode;
use actix_web::{delete, get, patch, post, put, web, HttpResponse};

use super::dto::{
    validate_variants, CreateStatement, ListStatements, PutVariant, RejectStatement, StatementPage,
    StatementResponse, UpdateStatement,
};
use super::store::{self, ListFilter, NewStatement, Statement, StatementError, StatementPatch};
use super::{effective_severity, validate_language, validate_title};
use crate::app::AppState;
use crate::db::DbConnection;
use crate::http::auth::{Caller, Capability};
use crate::http::error::{ApiError, ApiResult, FieldError};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::{pagination, parse_id};
use crate::platforms::Platform;

fn statement_id(raw: &str) -> ApiResult<String> {
    parse_id(raw, "statement")
}

fn platform_in_path(raw: &str) -> ApiResult<Platform> {
    Platform::parse(raw).ok_or_else(|| ApiError::invalid("platform", Platform::unknown(raw)))
}

/// A checked language tag; a bad one is added to `errors`.
fn language_field(given: &Option<String>, errors: &mut Vec<FieldError>) -> Option<String> {
    let tag = given.as_deref()?;
    validate_language(tag)
        .map_err(|m| errors.push(FieldError::new("language", m)))
        .ok()
}

fn ok(statement: Statement) -> HttpResponse {
    HttpResponse::Ok().json(StatementResponse::from(statement))
}

/// The shape of every body-less action on a statement: check the role, parse
/// the id, run the store transition, answer with the statement as it now is.
async fn transition(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    capability: Capability,
    action: fn(&mut DbConnection, &str, &str) -> Result<Statement, StatementError>,
    status: StatusCode,
) -> ApiResult<HttpResponse> {
    caller.require(capability)?;
    let id = statement_id(&path)?;
    let actor = caller.name;
    let statement = state.db(move |conn| Ok(action(conn, &actor, &id)?)).await?;
    Ok(HttpResponse::build(status).json(StatementResponse::from(statement)))
}

/// Create a draft statement.
#[utoipa::path(
    tag = "statements",
    request_body = CreateStatement,
    params(("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe creation: the same key and body return the first answer")),
    responses((status = 201, description = "Created as a draft", body = StatementResponse)),
    security(("api_key" = []))
)]
#[post("/statements")]
pub async fn create_statement(
    state: web::Data<AppState>,
    caller: Caller,
    req: actix_web::HttpRequest,
    ApiJson(body): ApiJson<CreateStatement>,
) -> ApiResult<HttpResponse> {
    caller.require(Capability::WriteStatements)?;
    let mut errors = Vec::new();
    let title = validate_title(&body.title)
        .map_err(|m| errors.push(FieldError::new("title", m)))
        .ok();
    let severity = effective_severity(body.kind, body.severity)
        .map_err(|m| errors.push(FieldError::new("severity", m)))
        .ok()
        .flatten();
    let variants = validate_variants(&body.variants, "variants")
        .map_err(|e| errors.extend(e))
        .ok();
    let language = language_field(&body.language, &mut errors);
    let (Some(title), Some(variants), true) = (title, variants, errors.is_empty()) else {
        return Err(ApiError::invalid_fields(errors));
    };
    check_uploaded_media(&state, &variants, "variants").await?;
    let new = NewStatement {
        title,
        kind: body.kind,
        severity,
        language,
        variants,
    };
    let fingerprint = serde_json::json!({
        "title": new.title, "kind": new.kind, "severity": new.severity,
        "language": new.language, "variants": body.variants,
    });
    let actor = caller.name.clone();
    crate::http::idempotency::create(&state, &req, &caller, fingerprint, move |conn| {
        let statement = store::create(conn, &actor, new)?;
        serde_json::to_value(StatementResponse::from(statement)).map_err(ApiError::internal)
    })
    .await
}

/// List statements, newest first.
#[utoipa::path(
    tag = "statements",
    params(ListStatements),
    responses((status = 200, description = "A page of statements", body = StatementPage)),
    security(("api_key" = []))
)]
#[get("/statements")]
pub async fn list_statements(
    state: web::Data<AppState>,
    _caller: Caller,
    ApiQuery(query): ApiQuery<ListStatements>,
) -> ApiResult<HttpResponse> {
    let limit = pagination::limit(query.limit)?;
    let before = pagination::id_cursor(query.cursor.as_deref())?;
    let filter = ListFilter {
        status: query.status,
        kind: query.kind,
        lineage_id: query.lineage_id,
    };
    let rows = state
        .db(move |conn| Ok(store::list(conn, &filter, before.as_deref(), limit + 1)?))
        .await?;
    let (items, next_cursor) = pagination::paginate(rows, limit, |s| s.row.id.clone());
    Ok(HttpResponse::Ok().json(StatementPage {
        items: items.into_iter().map(StatementResponse::from).collect(),
        next_cursor,
    }))
}

/// One statement version with its variants and approvals.
#[utoipa::path(
    tag = "statements",
    params(("id" = String, Path, description = "Statement id")),
    responses((status = 200, description = "The statement", body = StatementResponse)),
    security(("api_key" = []))
)]
#[get("/statements/{id}")]
pub async fn get_statement(
    state: web::Data<AppState>,
    _caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = statement_id(&path)?;
    let found = state
        .db(move |conn| store::find(conn, &id)?.ok_or_else(|| StatementError::NotFound(id).into()))
        .await?;
    Ok(ok(found))
}

/// Edit a draft or rejected statement (a rejected one returns to draft).
#[utoipa::path(
    tag = "statements",
    params(("id" = String, Path, description = "Statement id")),
    request_body = UpdateStatement,
    responses((status = 200, description = "The statement as it now is", body = StatementResponse)),
    security(("api_key" = []))
)]
#[patch("/statements/{id}")]
pub async fn update_statement(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    ApiJson(body): ApiJson<UpdateStatement>,
) -> ApiResult<HttpResponse> {
    caller.require(Capability::WriteStatements)?;
    let id = statement_id(&path)?;
    let mut errors = Vec::new();
    let title = match &body.title {
        None => None,
        Some(t) => validate_title(t)
            .map_err(|m| errors.push(FieldError::new("title", m)))
            .ok(),
    };
    let variants = match &body.variants {
        None => None,
        Some(list) => validate_variants(list, "variants")
            .map_err(|e| errors.extend(e))
            .ok(),
    };
    let language = body
        .language
        .as_ref()
        .map(|given| language_field(given, &mut errors));
    if !errors.is_empty() {
        return Err(ApiError::invalid_fields(errors));
    }
    if let Some(list) = &variants {
        check_uploaded_media(&state, list, "variants").await?;
    }
    let patch = StatementPatch {
        title,
        kind: body.kind,
        severity: body.severity,
        language,
        variants,
    };
    let actor = caller.name;
    let statement = state
        .db(move |conn| Ok(store::update(conn, &actor, &id, patch)?))
        .await?;
    Ok(ok(statement))
}

/// Add or replace the variant for one platform.
#[utoipa::path(
    tag = "statements",
    params(
        ("id" = String, Path, description = "Statement id"),
        ("platform" = Platform, Path, description = "Network of the variant"),
    ),
    request_body = PutVariant,
    responses((status = 200, description = "The statement as it now is", body = StatementResponse)),
    security(("api_key" = []))
)]
#[put("/statements/{id}/variants/{platform}")]
pub async fn put_variant(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    ApiJson(body): ApiJson<PutVariant>,
) -> ApiResult<HttpResponse> {
    caller.require(Capability::WriteStatements)?;
    let (raw_id, raw_platform) = path.into_inner();
    let id = statement_id(&raw_id)?;
    let platform = platform_in_path(&raw_platform)?;
    let content = body.content();
    let errors = crate::statements::validate_content(platform, &content, "");
    if !errors.is_empty() {
        return Err(ApiError::invalid_fields(
            errors
                .into_iter()
                .map(|(f, m)| FieldError::new(f, m))
                .collect(),
        ));
    }
    check_uploaded_media(&state, &[(platform, content.clone())], "").await?;
    let actor = caller.name;
    let (statement, _created) = state
        .db(move |conn| Ok(store::put_variant(conn, &actor, &id, platform, &content)?))
        .await?;
    Ok(ok(statement))
}

/// Remove the variant for one platform.
#[utoipa::path(
    tag = "statements",
    params(
        ("id" = String, Path, description = "Statement id"),
        ("platform" = Platform, Path, description = "Network of the variant"),
    ),
    responses((status = 200, description = "The statement as it now is", body = StatementResponse)),
    security(("api_key" = []))
)]
#[delete("/statements/{id}/variants/{platform}")]
pub async fn delete_variant(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    caller.require(Capability::WriteStatements)?;
    let (raw_id, raw_platform) = path.into_inner();
    let id = statement_id(&raw_id)?;
    let platform = platform_in_path(&raw_platform)?;
    let actor = caller.name;
    let statement = state
        .db(move |conn| Ok(store::delete_variant(conn, &actor, &id, platform)?))
        .await?;
    Ok(ok(statement))
}

/// Submit a draft (or rejected) statement for approval.
#[utoipa::path(
    tag = "statements",
    params(("id" = String, Path, description = "Statement id")),
    responses((status = 200, description = "Now in review", body = StatementResponse)),
    security(("api_key" = []))
)]
#[post("/statements/{id}/submit")]
pub async fn submit_statement(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    transition(
        state,
        caller,
        path,
        Capability::WriteStatements,
        store::submit,
        StatusCode::OK,
    )
    .await
}

/// Approve a statement in review. Its editors may not; a severe crisis needs two approvers.
#[utoipa::path(
    tag = "statements",
    params(("id" = String, Path, description = "Statement id")),
    responses((status = 200, description = "Approval recorded; `status` is `approved` once enough approvers agreed", body = StatementResponse)),
    security(("api_key" = []))
)]
#[post("/statements/{id}/approve")]
pub async fn approve_statement(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    transition(
        state,
        caller,
        path,
        Capability::Approve,
        store::approve,
        StatusCode::OK,
    )
    .await
}

/// Reject a statement in review, with the reason.
#[utoipa::path(
    tag = "statements",
    params(("id" = String, Path, description = "Statement id")),
    request_body = RejectStatement,
    responses((status = 200, description = "Rejected; editing it returns it to draft", body = StatementResponse)),
    security(("api_key" = []))
)]
#[post("/statements/{id}/reject")]
pub async fn reject_statement(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    ApiJson(body): ApiJson<RejectStatement>,
) -> ApiResult<HttpResponse> {
    caller.require(Capability::Approve)?;
    let id = statement_id(&path)?;
    let reason = body.reason.trim().to_string();
    if reason.is_empty() {
        return Err(ApiError::invalid(
            "reason",
            "must not be empty: tell the author what to change",
        ));
    }
    if reason.chars().count() > 2_000 {
        return Err(ApiError::invalid(
            "reason",
            "must be at most 2000 characters",
        ));
    }
    let actor = caller.name;
    let statement = state
        .db(move |conn| Ok(store::reject(conn, &actor, &id, &reason)?))
        .await?;
    Ok(ok(statement))
}

/// Retire a statement: it can no longer be scheduled.
#[utoipa::path(
    tag = "statements",
    params(("id" = String, Path, description = "Statement id")),
    responses((status = 200, description = "Retired", body = StatementResponse)),
    security(("api_key" = []))
)]
#[post("/statements/{id}/retire")]
pub async fn retire_statement(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    transition(
        state,
        caller,
        path,
        Capability::WriteStatements,
        store::retire,
        StatusCode::OK,
    )
    .await
}

/// Start a new draft version of an approved statement (approved content is frozen).
#[utoipa::path(
    tag = "statements",
    params(("id" = String, Path, description = "Id of the approved version")),
    responses((status = 201, description = "The new draft version", body = StatementResponse)),
    security(("api_key" = []))
)]
#[post("/statements/{id}/revise")]
pub async fn revise_statement(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    transition(
        state,
        caller,
        path,
        Capability::WriteStatements,
        store::revise,
        StatusCode::CREATED,
    )
    .await
}

/// Images given by `media_id` must have been uploaded, and suit the
/// network: its image types and size limit (`GET /v1/platforms`).
async fn check_uploaded_media(
    state: &AppState,
    variants: &[(Platform, crate::statements::VariantContent)],
    prefix: &str,
) -> ApiResult<()> {
    let wanted: Vec<(String, Platform, String)> = variants
        .iter()
        .enumerate()
        .flat_map(|(i, (platform, content))| {
            content.media.iter().enumerate().filter_map(move |(j, m)| {
                let at = if prefix.is_empty() {
                    format!("media[{j}].media_id")
                } else {
                    format!("{prefix}[{i}].media[{j}].media_id")
                };
                m.media_id.clone().map(|id| (at, *platform, id))
            })
        })
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let errors = state
        .db(move |conn| {
            let mut errors = Vec::new();
            for (field, platform, id) in wanted {
                let rules = crate::platforms::catalog::info(platform);
                match crate::media::info(conn, &id)? {
                    None => errors.push(FieldError::new(
                        field,
                        format!("no uploaded image with id '{id}' (POST /v1/media)"),
                    )),
                    Some(info) if !rules.media.types.contains(&info.content_type.as_str()) => {
                        errors.push(FieldError::new(
                            field,
                            format!(
                                "{} does not take {} images (it takes {})",
                                rules.name,
                                info.content_type,
                                rules.media.types.join(", ")
                            ),
                        ))
                    }
                    Some(info) if info.size as u64 > rules.media.max_bytes => {
                        errors.push(FieldError::new(
                            field,
                            format!(
                                "the image is {} bytes; {} takes at most {}",
                                info.size, rules.name, rules.media.max_bytes
                            ),
                        ))
                    }
                    Some(_) => {}
                }
            }
            Ok(errors)
        })
        .await?;
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid_fields(errors))
    }
}
