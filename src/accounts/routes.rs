//! Account routes. Reading needs any key (editors pick accounts when they
//! schedule); adding and removing need an admin.

use actix_web::{delete, get, post, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::store::{self, AccountError, AccountRow, ListFilter, NewAccount};
use super::{validate_credentials, validate_http_url, AccountStatus};
use crate::app::AppState;
use crate::http::auth::{Caller, Capability};
use crate::http::error::{ApiError, ApiResult, FieldError};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::{idempotency, pagination, parse_id};
use crate::platforms::Platform;

impl From<AccountError> for ApiError {
    fn from(error: AccountError) -> Self {
        match error {
            AccountError::NotFound(_) => ApiError::NotFound(error.to_string()),
            AccountError::Duplicate { .. } => ApiError::Conflict(error.to_string()),
            AccountError::Db(e) => e.into(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAccount {
    pub platform: Platform,
    /// A name people recognise, unique per platform.
    #[schema(
        min_length = 1,
        max_length = 100,
        example = "Kettle Co on mastodon.social"
    )]
    pub name: String,
    /// The network's API base URL (a Mastodon instance, a self-hosted PDS, a fake in tests).
    #[schema(format = "uri", example = "https://mastodon.social")]
    pub base_url: Option<String>,
    /// Write-only: encrypted at rest, never returned or logged. Fields per
    /// platform: mastodon `access_token`; bluesky `identifier`, `app_password`;
    /// x `access_token` (+`refresh_token`); threads `access_token`, `user_id`;
    /// linkedin `access_token`, `author_urn`; facebook `page_id`,
    /// `page_access_token`; instagram `ig_user_id`, `access_token`; telegram
    /// `bot_token`, `chat_id`; discord `webhook_url`; webhook `url`
    /// (+`secret`); sandbox none.
    #[serde(default)]
    #[schema(value_type = Object, example = json!({"access_token": "…"}))]
    pub credentials: serde_json::Value,
    /// Mastodon only: the instance's character limit. When not given, Herald
    /// reads it from the instance (`/api/v2/instance`); 500 if unreachable.
    #[schema(minimum = 1, maximum = 100000, example = 500)]
    pub max_characters: Option<i32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccountResponse {
    pub id: String,
    pub platform: Platform,
    pub name: String,
    pub base_url: Option<String>,
    pub status: AccountStatus,
    /// Why the account is not active.
    pub status_reason: Option<String>,
    pub max_characters: Option<i32>,
    /// The account's own name on the network (`@handle`, Page name), when known.
    pub remote_name: Option<String>,
    /// When the access token expires; Herald refreshes it before.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub token_expires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The last preflight check of the credentials.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub checked_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Why the last preflight check failed (absent when it passed).
    pub check_error: Option<String>,
    pub created_by: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: chrono::DateTime<chrono::Utc>,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl TryFrom<AccountRow> for AccountResponse {
    type Error = ApiError;

    fn try_from(row: AccountRow) -> ApiResult<Self> {
        Ok(AccountResponse {
            platform: row.platform()?,
            status: row.status()?,
            id: row.id,
            name: row.name,
            base_url: row.base_url,
            status_reason: row.status_reason,
            max_characters: row.max_characters,
            remote_name: row.remote_name,
            token_expires_at: row.token_expires_at.map(|t| t.and_utc()),
            checked_at: row.checked_at.map(|t| t.and_utc()),
            check_error: row.check_error,
            created_by: row.created_by,
            created_at: row.created_at.and_utc(),
            updated_at: row.updated_at.and_utc(),
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccountPage {
    pub items: Vec<AccountResponse>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListAccounts {
    pub status: Option<AccountStatus>,
    pub platform: Option<Platform>,
    /// Page size, default 50.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Connect an account by giving its credentials.
#[utoipa::path(
    tag = "accounts",
    request_body = CreateAccount,
    params(("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe creation")),
    responses((status = 201, description = "Added, status active", body = AccountResponse)),
    security(("api_key" = []))
)]
#[post("/accounts")]
pub async fn create_account(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    ApiJson(body): ApiJson<CreateAccount>,
) -> ApiResult<HttpResponse> {
    caller.require(Capability::Administer)?;
    let mut errors = Vec::new();
    let name = body.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 100 {
        errors.push(FieldError::new("name", "must be 1 to 100 characters"));
    }
    let base_url = body
        .base_url
        .as_deref()
        .map(str::trim)
        .map(|u| u.trim_end_matches('/').to_string());
    if let Some(url) = &base_url {
        if let Err(message) = validate_http_url(url) {
            errors.push(FieldError::new("base_url", message));
        }
    } else if body.platform == Platform::Mastodon {
        errors.push(FieldError::new(
            "base_url",
            "is required for mastodon: the instance's URL",
        ));
    }
    match body.max_characters {
        Some(_) if body.platform != Platform::Mastodon => errors.push(FieldError::new(
            "max_characters",
            "applies to mastodon accounts only",
        )),
        Some(n) if !(1..=100_000).contains(&n) => errors.push(FieldError::new(
            "max_characters",
            "must be between 1 and 100000",
        )),
        _ => {}
    }
    // Taken as any JSON and checked here, so that no parse error can echo a
    // secret back into a response or a log line.
    let empty = serde_json::Map::new();
    let given = match &body.credentials {
        serde_json::Value::Object(map) => map,
        serde_json::Value::Null => &empty,
        _ => {
            errors.push(FieldError::new(
                "credentials",
                "must be an object of strings",
            ));
            &empty
        }
    };
    let credentials = match validate_credentials(body.platform, given) {
        Ok(c) => Some(c),
        Err(list) => {
            errors.extend(list.into_iter().map(|(f, m)| FieldError::new(f, m)));
            None
        }
    };
    let (Some(credentials), true) = (credentials, errors.is_empty()) else {
        return Err(ApiError::invalid_fields(errors));
    };
    let plaintext = serde_json::to_vec(&credentials).map_err(ApiError::internal)?;
    // The fingerprint names which credential fields were sent, never their values.
    let fingerprint = serde_json::json!({
        "platform": body.platform, "name": name, "base_url": base_url,
        "max_characters": body.max_characters,
        "credential_fields": credentials.keys().collect::<Vec<_>>(),
    });
    // A Mastodon instance states its own limit: read it now, so variants are
    // checked against it. An unreachable instance keeps the default (500).
    let mut max_characters = body.max_characters;
    if let (Platform::Mastodon, None, Some(url)) = (body.platform, max_characters, &base_url) {
        let mastodon = crate::platforms::mastodon::Mastodon::new(state.http.clone());
        // Bounded, so an unreachable instance does not hold the admin's request.
        let lookup = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            mastodon.instance_limit(url),
        );
        match lookup.await {
            Ok(Ok(limit)) => max_characters = i32::try_from(limit).ok().filter(|n| *n > 0),
            Ok(Err(error)) => {
                tracing::warn!(%error, "could not read the instance's character limit")
            }
            Err(_) => tracing::warn!("the instance did not give its character limit within 5 s"),
        }
    }
    let token_expires_at = credentials
        .get("expires_at")
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.naive_utc());
    let new = NewAccount {
        platform: body.platform,
        name,
        base_url,
        max_characters,
        token_expires_at,
    };
    let secret = state.secret.clone();
    let actor = caller.name.clone();
    idempotency::create(&state, &req, &caller, fingerprint, move |conn| {
        let row = store::create(conn, &actor, new, |id| secret.seal(&plaintext, id))?;
        serde_json::to_value(AccountResponse::try_from(row)?).map_err(ApiError::internal)
    })
    .await
}

/// List connected accounts, newest first.
#[utoipa::path(
    tag = "accounts",
    params(ListAccounts),
    responses((status = 200, description = "A page of accounts", body = AccountPage)),
    security(("api_key" = []))
)]
#[get("/accounts")]
pub async fn list_accounts(
    state: web::Data<AppState>,
    _caller: Caller,
    ApiQuery(query): ApiQuery<ListAccounts>,
) -> ApiResult<HttpResponse> {
    let limit = pagination::limit(query.limit)?;
    let before = pagination::id_cursor(query.cursor.as_deref())?;
    let filter = ListFilter {
        status: query.status,
        platform: query.platform,
    };
    let rows = state
        .db(move |conn| Ok(store::list(conn, &filter, before.as_deref(), limit + 1)?))
        .await?;
    let (rows, next_cursor) = pagination::paginate(rows, limit, |r| r.id.clone());
    let items = rows
        .into_iter()
        .map(AccountResponse::try_from)
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(HttpResponse::Ok().json(AccountPage { items, next_cursor }))
}

/// One account (never its credentials).
#[utoipa::path(
    tag = "accounts",
    params(("id" = String, Path, description = "Account id")),
    responses((status = 200, description = "The account", body = AccountResponse)),
    security(("api_key" = []))
)]
#[get("/accounts/{id}")]
pub async fn get_account(
    state: web::Data<AppState>,
    _caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id(&path, "account")?;
    let row = state
        .db(move |conn| store::find(conn, &id)?.ok_or_else(|| AccountError::NotFound(id).into()))
        .await?;
    Ok(HttpResponse::Ok().json(AccountResponse::try_from(row)?))
}

/// Remove an account: its credentials are erased; its history stays in the log.
#[utoipa::path(
    tag = "accounts",
    params(("id" = String, Path, description = "Account id")),
    responses((status = 204, description = "Removed")),
    security(("api_key" = []))
)]
#[delete("/accounts/{id}")]
pub async fn delete_account(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    caller.require(Capability::Administer)?;
    let id = parse_id(&path, "account")?;
    let actor = caller.name;
    state
        .db(move |conn| Ok(store::remove(conn, &actor, &id)?))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The result of a preflight check.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountCheck {
    pub account_id: String,
    /// The credentials work.
    pub ok: bool,
    #[schema(value_type = String, format = DateTime)]
    pub checked_at: chrono::DateTime<chrono::Utc>,
    /// Why they do not.
    pub error: Option<String>,
    /// The account as it now is (`needs_reauth` if the network refused the credentials).
    pub account: AccountResponse,
}

/// Check now that an account's credentials work, with one cheap call to its
/// network. A failure is logged (`account.check_failed`); credentials the
/// network refuses set the account to `needs_reauth`.
#[utoipa::path(
    tag = "accounts",
    params(("id" = String, Path, description = "Account id")),
    responses((status = 200, description = "The check's result (ok or not)", body = AccountCheck)),
    security(("api_key" = []))
)]
#[post("/accounts/{id}/check")]
pub async fn check_account(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    caller.require(Capability::WriteStatements)?;
    let id = parse_id(&path, "account")?;
    let row = state
        .db(move |conn| store::find(conn, &id)?.ok_or_else(|| AccountError::NotFound(id).into()))
        .await?;
    let result = state
        .lifecycle
        .check(row, &caller.name)
        .await
        .map_err(|e| ApiError::Unavailable(format!("the check could not be recorded: {e}")))?;
    Ok(HttpResponse::Ok().json(AccountCheck {
        account_id: result.account.id.clone(),
        ok: result.error.is_none(),
        checked_at: result.checked_at.and_utc(),
        error: result.error,
        account: AccountResponse::try_from(result.account)?,
    }))
}
