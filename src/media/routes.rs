//! `POST /v1/media` (upload an image), `GET /v1/media/{id}` (its facts),
//! `GET /v1/media/{id}/content` (the bytes, for the networks).

use actix_web::{get, http::header, post, web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::{MediaInfo, MAX_BYTES};
use crate::app::AppState;
use crate::http::auth::{Caller, Capability};
use crate::http::error::{ApiError, ApiResult};
use crate::http::parse_id;
use crate::log::{self, NewEvent};

#[derive(Debug, Serialize, ToSchema)]
pub struct MediaResponse {
    pub id: String,
    #[schema(example = "image/jpeg")]
    pub content_type: String,
    /// Size in bytes.
    pub size: i64,
    /// SHA-256 of the bytes (hex).
    pub sha256: String,
    /// Where the networks fetch it: use `media_id` in a variant's `media`.
    pub url: String,
    pub created_by: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: chrono::DateTime<chrono::Utc>,
}

fn response(state: &AppState, info: MediaInfo) -> MediaResponse {
    MediaResponse {
        url: format!("{}/v1/media/{}/content", state.public_url, info.id),
        id: info.id,
        content_type: info.content_type,
        size: info.size,
        sha256: info.sha256,
        created_by: info.created_by,
        created_at: info.created_at.and_utc(),
    }
}

/// Upload an image: the request body is the image itself, with its
/// `Content-Type` (`image/jpeg`, `image/png`, `image/gif` or `image/webp`),
/// at most 16 MiB. Each network's own limits are checked when a variant uses it.
#[utoipa::path(
    tag = "statements",
    request_body(content = Vec<u8>, content_type = "image/jpeg", description = "The image's bytes"),
    responses((status = 201, description = "Stored", body = MediaResponse)),
    security(("api_key" = []))
)]
#[post("/media")]
pub async fn upload_media(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    mut payload: web::Payload,
) -> ApiResult<HttpResponse> {
    caller.require(Capability::WriteStatements)?;
    let declared = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    if !["image/jpeg", "image/png", "image/gif", "image/webp"].contains(&declared.as_str()) {
        return Err(ApiError::UnsupportedMediaType(format!(
            "send the image itself with Content-Type image/jpeg, image/png, image/gif or image/webp (got '{declared}')"
        )));
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::BadRequest(format!("the upload broke off: {e}")))?;
        if bytes.len() + chunk.len() > MAX_BYTES {
            return Err(ApiError::PayloadTooLarge(format!(
                "an image may be at most {} MiB",
                MAX_BYTES / (1024 * 1024)
            )));
        }
        bytes.extend_from_slice(&chunk);
    }
    if bytes.is_empty() {
        return Err(ApiError::BadRequest(
            "the body is empty: send the image's bytes".into(),
        ));
    }
    match super::sniff(&bytes) {
        Some(actual) if actual == declared => {}
        Some(actual) => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "the body is {actual}, not the declared {declared}"
            )))
        }
        None => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "the body is not a {declared} image"
            )))
        }
    }
    let actor = caller.name.clone();
    let info = state
        .db(move |conn| {
            crate::db::write_tx(conn, |conn| {
                let info = super::insert(conn, &actor, &declared, &bytes)?;
                log::store::append(
                    conn,
                    NewEvent::new(&actor, "media.uploaded").details(json!({
                        "media_id": info.id,
                        "content_type": info.content_type,
                        "size": info.size,
                        "sha256": info.sha256,
                    })),
                )?;
                Ok::<_, ApiError>(info)
            })
        })
        .await?;
    Ok(HttpResponse::Created().json(response(&state, info)))
}

/// The facts of an uploaded image.
#[utoipa::path(
    tag = "statements",
    params(("id" = String, Path, description = "Media id")),
    responses((status = 200, description = "The image's facts", body = MediaResponse)),
    security(("api_key" = []))
)]
#[get("/media/{id}")]
pub async fn get_media(
    state: web::Data<AppState>,
    _caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id(&path, "image")?;
    let info = state
        .db(move |conn| {
            super::info(conn, &id)?
                .ok_or_else(|| ApiError::NotFound(format!("no image with id '{id}'")))
        })
        .await?;
    Ok(HttpResponse::Ok().json(response(&state, info)))
}

/// The image's bytes. Needs no key: the networks fetch it from here.
#[utoipa::path(
    tag = "statements",
    params(("id" = String, Path, description = "Media id")),
    responses((status = 200, description = "The image", content_type = "image/jpeg", body = Vec<u8>))
)]
#[get("/media/{id}/content")]
pub async fn media_content(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id(&path, "image")?;
    let (content_type, bytes) = state
        .db(move |conn| {
            super::content(conn, &id)?
                .ok_or_else(|| ApiError::NotFound(format!("no image with id '{id}'")))
        })
        .await?;
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, "public, max-age=86400, immutable"))
        .body(bytes))
}
