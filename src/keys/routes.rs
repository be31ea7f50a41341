//! Key management over HTTP (admin), the same operations as `herald keys`.

use actix_web::{get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::store::{self, ApiKey, KeyError};
use super::Role;
use crate::app::AppState;
use crate::http::auth::{Caller, Capability};
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::ApiJson;

impl From<KeyError> for ApiError {
    fn from(error: KeyError) -> Self {
        match error {
            KeyError::NameTaken(_) | KeyError::AlreadyRevoked(_) => {
                ApiError::Conflict(error.to_string())
            }
            KeyError::NotFound(_) => ApiError::NotFound(error.to_string()),
            KeyError::Db(e) => e.into(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// The actor name in the publish log: letters, digits and `. _ @ -`.
    #[schema(pattern = "^[A-Za-z0-9._@-]{1,64}$", example = "alice")]
    pub name: String,
    pub role: Role,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyResponse {
    pub id: String,
    pub name: String,
    pub role: Role,
    /// The first characters of the key, to recognise it.
    #[schema(example = "hrld_Ab3x")]
    pub key_prefix: String,
    pub created_by: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: chrono::DateTime<chrono::Utc>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<ApiKey> for KeyResponse {
    fn from(k: ApiKey) -> Self {
        KeyResponse {
            id: k.id,
            name: k.name,
            role: k.role,
            key_prefix: k.key_prefix,
            created_by: k.created_by,
            created_at: k.created_at.and_utc(),
            revoked_at: k.revoked_at.map(|t| t.and_utc()),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub key: KeyResponse,
    /// The secret, shown this once: Herald keeps only its digest.
    #[schema(example = "hrld_Ab3x…")]
    pub secret: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    pub items: Vec<KeyResponse>,
}

/// Create an API key; the secret is in this response only.
#[utoipa::path(
    tag = "keys",
    request_body = CreateKey,
    responses((status = 201, description = "Created", body = CreatedKey)),
    security(("api_key" = []))
)]
#[post("/keys")]
pub async fn create_key(
    state: web::Data<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateKey>,
) -> ApiResult<HttpResponse> {
    caller.require(Capability::Administer)?;
    super::validate_name(&body.name).map_err(|m| ApiError::invalid("name", m))?;
    let secret = super::generate();
    let actor = caller.name;
    let for_store = secret.clone();
    let key = state
        .db(move |conn| {
            Ok(store::create(
                conn, &actor, &body.name, body.role, &for_store,
            )?)
        })
        .await?;
    Ok(HttpResponse::Created()
        .insert_header(("Cache-Control", "no-store"))
        .json(CreatedKey {
            key: key.into(),
            secret,
        }))
}

/// Every key, revoked ones included (never a secret).
#[utoipa::path(
    tag = "keys",
    responses((status = 200, description = "All keys", body = KeyList)),
    security(("api_key" = []))
)]
#[get("/keys")]
pub async fn list_keys(state: web::Data<AppState>, caller: Caller) -> ApiResult<HttpResponse> {
    caller.require(Capability::Administer)?;
    let keys = state.db(|conn| Ok(store::list(conn)?)).await?;
    Ok(HttpResponse::Ok().json(KeyList {
        items: keys.into_iter().map(KeyResponse::from).collect(),
    }))
}

/// Revoke a key by name: refused from its next request on.
#[utoipa::path(
    tag = "keys",
    params(("name" = String, Path, description = "Key name")),
    responses((status = 200, description = "Revoked", body = KeyResponse)),
    security(("api_key" = []))
)]
#[post("/keys/{name}/revoke")]
pub async fn revoke_key(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    caller.require(Capability::Administer)?;
    let name = path.into_inner();
    if super::validate_name(&name).is_err() {
        return Err(KeyError::NotFound(name).into());
    }
    let actor = caller.name;
    let key = state
        .db(move |conn| Ok(store::revoke(conn, &actor, &name)?))
        .await?;
    Ok(HttpResponse::Ok().json(KeyResponse::from(key)))
}
