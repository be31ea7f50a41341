//! `Idempotency-Key` on create endpoints (DESIGN §7): a client that retries a
//! create after a timeout gets the first answer back instead of a duplicate.
//! Keys are scoped to the calling key and the route, and kept 24 hours.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use diesel::prelude::*;
use sha2::{Digest, Sha256};

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use crate::app::AppState;
use crate::db::schema::idempotency_keys;
use crate::db::{self, DbConnection};

pub const HEADER: &str = "Idempotency-Key";
/// How long a key is remembered.
pub const RETENTION_HOURS: i64 = 24;

fn header_value(req: &HttpRequest) -> ApiResult<Option<String>> {
    let Some(value) = req.headers().get(HEADER) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::invalid(HEADER, "must be printable ASCII"))?
        .trim()
        .to_string();
    if value.is_empty() || value.len() > 255 {
        return Err(ApiError::invalid(HEADER, "must be 1 to 255 characters"));
    }
    Ok(Some(value))
}

/// Run a create (`make` returns the created resource) answering 201, or
/// replay the stored answer when the same key was used before with the same
/// request. The resource and the key are stored in one transaction.
pub async fn create<F>(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    caller: &Caller,
    fingerprint: serde_json::Value,
    make: F,
) -> ApiResult<HttpResponse>
where
    F: FnOnce(&mut DbConnection) -> ApiResult<serde_json::Value> + Send + 'static,
{
    let key = header_value(req)?;
    let route = format!(
        "{} {}",
        req.method(),
        req.match_pattern().unwrap_or_default()
    );
    let actor = caller.name.clone();
    let request_hash = hex::encode(Sha256::digest(fingerprint.to_string().as_bytes()));
    let (status, body) = state
        .db(move |conn| {
            let Some(key) = key else {
                return Ok((201u16, make(conn)?.to_string()));
            };
            db::write_tx(conn, |conn| {
                purge_expired(conn)?;
                let stored: Option<(String, i32, String)> = idempotency_keys::table
                    .find((&actor, &key, &route))
                    .select((
                        idempotency_keys::request_hash,
                        idempotency_keys::status,
                        idempotency_keys::body,
                    ))
                    .first(conn)
                    .optional()?;
                if let Some((hash, status, body)) = stored {
                    if hash != request_hash {
                        return Err(ApiError::invalid(
                            HEADER,
                            "this key was already used for a different request; use a new key",
                        ));
                    }
                    return Ok((u16::try_from(status).unwrap_or(201), body));
                }
                let body = make(conn)?.to_string();
                diesel::insert_into(idempotency_keys::table)
                    .values((
                        idempotency_keys::actor.eq(&actor),
                        idempotency_keys::key.eq(&key),
                        idempotency_keys::route.eq(&route),
                        idempotency_keys::request_hash.eq(&request_hash),
                        idempotency_keys::status.eq(201),
                        idempotency_keys::body.eq(&body),
                        idempotency_keys::created_at.eq(db::now()),
                    ))
                    .execute(conn)?;
                Ok((201, body))
            })
        })
        .await?;
    Ok(
        HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::CREATED))
            .content_type("application/json")
            .body(body),
    )
}

/// Remove keys past their retention; returns how many.
pub fn purge_expired(conn: &mut DbConnection) -> diesel::QueryResult<usize> {
    let cutoff = db::now() - chrono::Duration::hours(RETENTION_HOURS);
    diesel::delete(idempotency_keys::table.filter(idempotency_keys::created_at.lt(cutoff)))
        .execute(conn)
}
