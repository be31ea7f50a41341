//! Connecting accounts through OAuth 2.0 (authorization code): an admin
//! asks for an authorization address, the network's user approves Herald,
//! the network sends the browser back to `GET /v1/oauth/callback`, and
//! Herald exchanges the code, stores the tokens sealed and creates (or
//! reconnects) the account.
//!
//! The pending authorization (`state`, the PKCE verifier) is kept
//! server-side, sealed, single use, for 10 minutes. Mastodon has no central
//! app registry: Herald registers itself on each instance (`POST
//! /api/v1/apps`) once and keeps the client id and secret (sealed).

use actix_web::{get, post, web, HttpResponse};
use base64::Engine;
use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::routes::AccountResponse;
use super::store::AccountRow;
use super::{validate_http_url, AccountStatus};
use crate::app::AppState;
use crate::crypto::SecretKey;
use crate::db::schema::{accounts, oauth_apps, oauth_states};
use crate::db::{self, DbConnection};
use crate::http::auth::{Caller, Capability};
use crate::http::error::{ApiError, ApiResult, FieldError};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::log::{self, NewEvent};
use crate::platforms::catalog::{self, ConnectMethod};
use crate::platforms::{ConnectRequest, Connected, ConnectorError, OAuthApp, Platform};

/// How long an authorization may take.
pub const STATE_TTL_MINUTES: i64 = 10;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = oauth_states)]
pub struct PendingState {
    pub state: String,
    pub platform: String,
    pub name: String,
    pub base_url: Option<String>,
    pub target: Option<String>,
    pub redirect_uri: String,
    /// The PKCE verifier, sealed with the state as context.
    pub verifier: Option<String>,
    /// Reconnect this account instead of creating one.
    pub account_id: Option<String>,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub used_at: Option<NaiveDateTime>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectAccount {
    /// The account's name in Herald, unique per network. Connecting again
    /// with the name of an existing account reconnects it.
    #[schema(min_length = 1, max_length = 100, example = "Kettle Co on X")]
    pub name: String,
    /// Mastodon: the instance (required). Others: the API address, when not
    /// the network's own (a proxy, a test server).
    #[schema(format = "uri", example = "https://mastodon.social")]
    pub base_url: Option<String>,
    /// Where the network sends the browser back; default
    /// `<HERALD_PUBLIC_URL>/v1/oauth/callback`. It must be registered with
    /// the network's app.
    #[schema(format = "uri")]
    pub redirect_uri: Option<String>,
    /// Which Page or organization to post as: a Facebook Page id, a
    /// LinkedIn `urn:li:organization:<id>`. Default: the user's own account
    /// (LinkedIn), their only Page (Facebook).
    #[schema(example = "urn:li:organization:2414183")]
    pub target: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectResponse {
    /// Send the network's user (in a browser) to this address.
    pub authorize_url: String,
    /// The opaque value the network hands back to the callback.
    pub state: String,
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// Start connecting an account through OAuth (admins).
#[utoipa::path(
    tag = "accounts",
    request_body = ConnectAccount,
    params(("platform" = Platform, Path, description = "x, linkedin, facebook, instagram, threads or mastodon")),
    responses(
        (status = 201, description = "Send the user to `authorize_url`", body = ConnectResponse),
        (status = 502, description = "The Mastodon instance could not register Herald", body = crate::http::error::Problem),
    ),
    security(("api_key" = []))
)]
#[post("/accounts/connect/{platform}")]
pub async fn connect_account(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    ApiJson(body): ApiJson<ConnectAccount>,
) -> ApiResult<HttpResponse> {
    caller.require(Capability::Administer)?;
    let platform =
        Platform::parse(&path).ok_or_else(|| ApiError::NotFound(Platform::unknown(&path)))?;
    let info = catalog::info(platform);
    if info.connect != ConnectMethod::Oauth {
        return Err(ApiError::invalid(
            "platform",
            format!(
                "{} accounts do not connect through OAuth: add them with POST /v1/accounts and their credentials",
                info.name
            ),
        ));
    }
    let mut errors = Vec::new();
    let name = body.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 100 {
        errors.push(FieldError::new("name", "must be 1 to 100 characters"));
    }
    let base_url = clean_url(body.base_url.as_deref(), "base_url", &mut errors);
    if platform == Platform::Mastodon && base_url.is_none() && body.base_url.is_none() {
        errors.push(FieldError::new(
            "base_url",
            "is required for mastodon: the instance's URL",
        ));
    }
    let redirect_uri = clean_url(body.redirect_uri.as_deref(), "redirect_uri", &mut errors)
        .unwrap_or_else(|| format!("{}/v1/oauth/callback", state.public_url));
    let target = body
        .target
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    if target.as_ref().is_some_and(|t| t.len() > 200) {
        errors.push(FieldError::new("target", "must be at most 200 characters"));
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid_fields(errors));
    }
    let app = oauth_app(
        &state,
        platform,
        base_url.as_deref(),
        &redirect_uri,
        target.as_deref(),
    )
    .await?;
    let pending_state = random_state();
    let authorization = app
        .authorize(&redirect_uri, &pending_state)
        .map_err(|e| ApiError::invalid("redirect_uri", e.to_string()))?;
    let now = db::now();
    let expires_at = now + Duration::minutes(STATE_TTL_MINUTES);
    let sealed_verifier = authorization
        .verifier
        .as_ref()
        .map(|v| state.secret.seal(v.as_bytes(), &pending_state));
    let row = PendingState {
        state: pending_state.clone(),
        platform: platform.as_str().into(),
        name: name.clone(),
        base_url: base_url.clone(),
        target,
        redirect_uri,
        verifier: sealed_verifier,
        account_id: None,
        created_by: caller.name.clone(),
        created_at: now,
        expires_at,
        used_at: None,
    };
    let actor = caller.name.clone();
    state
        .db(move |conn| {
            db::write_tx(conn, |conn| {
                // Old, expired authorizations go as new ones come.
                diesel::delete(
                    oauth_states::table
                        .filter(oauth_states::expires_at.lt(now - Duration::days(1))),
                )
                .execute(conn)?;
                diesel::insert_into(oauth_states::table)
                    .values(&row)
                    .execute(conn)?;
                log::store::append(
                    conn,
                    NewEvent::new(&actor, "account.connect_started").details(json!({
                        "platform": row.platform,
                        "name": row.name,
                        "base_url": row.base_url,
                        "target": row.target,
                    })),
                )?;
                Ok::<(), ApiError>(())
            })
        })
        .await?;
    Ok(HttpResponse::Created().json(ConnectResponse {
        authorize_url: authorization.url,
        state: pending_state,
        expires_at: expires_at.and_utc(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Callback {
    /// The authorization code (absent when the user refused).
    pub code: Option<String>,
    /// The `state` of `POST /v1/accounts/connect/{platform}`.
    pub state: Option<String>,
    /// Set by the network when the user refused or the request was wrong.
    pub error: Option<String>,
    pub error_description: Option<String>,
    /// Sent by some networks (LinkedIn, Meta); ignored.
    #[serde(default)]
    #[param(ignore)]
    #[allow(dead_code)]
    pub error_reason: Option<String>,
}

/// Where the network sends the user back. Needs no API key: the single-use
/// `state` is the proof that an admin started this connection.
#[utoipa::path(
    tag = "accounts",
    params(Callback),
    responses(
        (status = 200, description = "Connected: the account", body = AccountResponse),
        (status = 400, description = "Unknown, used or expired state, or the user refused", body = crate::http::error::Problem),
        (status = 502, description = "The network refused the code or failed", body = crate::http::error::Problem),
    )
)]
#[get("/oauth/callback")]
pub async fn oauth_callback(
    state: web::Data<AppState>,
    ApiQuery(query): ApiQuery<Callback>,
) -> ApiResult<HttpResponse> {
    let Some(given_state) = query.state.filter(|s| !s.is_empty()) else {
        return Err(ApiError::BadRequest(
            "the callback has no state: start again with POST /v1/accounts/connect/{platform}"
                .into(),
        ));
    };
    if given_state.len() > 200 {
        return Err(ApiError::BadRequest(
            "unknown state: start the connection again".into(),
        ));
    }
    // Single use: the state is consumed before anything else happens.
    let pending = state.db(move |conn| take_state(conn, &given_state)).await?;
    let platform = Platform::parse(&pending.platform)
        .ok_or_else(|| ApiError::internal("a pending connection names an unknown network"))?;
    if let Some(error) = query.error {
        let detail = query.error_description.unwrap_or_default();
        record_failure(&state, &pending, &format!("{error} {detail}")).await;
        return Err(ApiError::BadRequest(format!(
            "{platform} did not authorize Herald: {error}{}{detail}",
            if detail.is_empty() { "" } else { ": " }
        )));
    }
    let Some(code) = query.code.filter(|c| !c.is_empty() && c.len() <= 2048) else {
        return Err(ApiError::BadRequest(
            "the callback has no authorization code".into(),
        ));
    };
    let verifier = match &pending.verifier {
        None => None,
        Some(sealed) => Some(
            String::from_utf8(state.secret.open(sealed, &pending.state).map_err(|_| {
                ApiError::BadRequest(
                    "this connection was started with another HERALD_SECRET_KEY: start again"
                        .into(),
                )
            })?)
            .map_err(ApiError::internal)?,
        ),
    };
    let app = oauth_app(
        &state,
        platform,
        pending.base_url.as_deref(),
        &pending.redirect_uri,
        pending.target.as_deref(),
    )
    .await?;
    let outcome = async {
        let tokens = app
            .exchange_code(
                &state.http,
                &code,
                &pending.redirect_uri,
                verifier.as_deref(),
            )
            .await?;
        let request = ConnectRequest {
            base_url: pending.base_url.clone(),
            target: pending.target.clone(),
        };
        state.connectors.connect(platform, tokens, &request).await
    }
    .await;
    let connected = match outcome {
        Ok(connected) => connected,
        Err(error) => {
            record_failure(&state, &pending, &error.to_string()).await;
            return Err(match error {
                ConnectorError::Rejected { message, .. }
                | ConnectorError::AuthRevoked { message, .. } => {
                    ApiError::BadGateway(format!("{platform} refused the connection: {message}"))
                }
                other => ApiError::BadGateway(format!(
                    "{platform} could not be reached to finish the connection: {other}; start again"
                )),
            });
        }
    };
    // A Mastodon instance states its own character limit (as when an
    // account is added with credentials); 500 when it does not answer.
    let mut max_characters = None;
    if let (Platform::Mastodon, Some(base)) = (platform, pending.base_url.as_deref()) {
        let lookup = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            state.connectors.mastodon.instance_limit(base),
        );
        if let Ok(Ok(limit)) = lookup.await {
            max_characters = i32::try_from(limit).ok().filter(|n| *n > 0);
        }
    }
    let secret = state.secret.clone();
    let row = state
        .db(move |conn| {
            save_connected(conn, &secret, &pending, platform, connected, max_characters)
        })
        .await?;
    Ok(HttpResponse::Ok().json(AccountResponse::try_from(row)?))
}

/// A fresh, unguessable state: 32 random bytes, base64url.
fn random_state() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn clean_url(raw: Option<&str>, field: &str, errors: &mut Vec<FieldError>) -> Option<String> {
    let url = raw?.trim().trim_end_matches('/').to_string();
    match validate_http_url(&url) {
        Ok(()) => Some(url),
        Err(message) => {
            errors.push(FieldError::new(field, message));
            None
        }
    }
}

/// The app to authorize with: configured (X, LinkedIn, Meta), or Herald's
/// registration on the Mastodon instance (made now if there is none yet).
async fn oauth_app(
    state: &AppState,
    platform: Platform,
    base_url: Option<&str>,
    redirect_uri: &str,
    target: Option<&str>,
) -> ApiResult<OAuthApp> {
    if platform != Platform::Mastodon {
        let app = match (platform, target) {
            // Posting as an organization needs the organization scopes.
            (Platform::Linkedin, Some(target)) => {
                state.connectors.linkedin.oauth_app_for(Some(target))
            }
            _ => state.connectors.oauth_app(platform),
        };
        return app.ok_or_else(|| {
            let var = catalog::client_settings(platform).unwrap_or("HERALD_<NETWORK>");
            ApiError::invalid(
                "platform",
                format!(
                    "{platform} is not configured on this Herald: set {var}_CLIENT_ID and {var}_CLIENT_SECRET (see GET /v1/platforms)"
                ),
            )
        });
    }
    let base = base_url
        .ok_or_else(|| ApiError::invalid("base_url", "is required for mastodon"))?
        .to_string();
    let (key_base, key_redirect) = (base.clone(), redirect_uri.to_string());
    let secret = state.secret.clone();
    let known = state
        .db(move |conn| Ok(mastodon_app(conn, &secret, &key_base, &key_redirect)?))
        .await?;
    let (client_id, client_secret) = match known {
        Some(app) => app,
        None => {
            let (id, client_secret) = state
                .connectors
                .mastodon
                .register_app(
                    &base,
                    &state.networks.mastodon_app_name,
                    redirect_uri,
                    crate::platforms::mastodon::OAUTH_SCOPES,
                )
                .await
                .map_err(|e| {
                    ApiError::BadGateway(format!(
                        "could not register Herald on the instance {base}: {e}"
                    ))
                })?;
            let sealed = state.secret.seal(client_secret.as_bytes(), &base);
            let (b, r, i) = (base.clone(), redirect_uri.to_string(), id.clone());
            let secret = state.secret.clone();
            // Two admins connecting to a new instance at once both register;
            // the first registration stored wins, and both use it.
            let stored = state
                .db(move |conn| {
                    db::write_tx(conn, |conn| {
                        if let Some(app) = mastodon_app(conn, &secret, &b, &r)? {
                            return Ok(Some(app));
                        }
                        save_mastodon_app(conn, &b, &r, &i, &sealed)?;
                        mastodon_app(conn, &secret, &b, &r)
                    })
                    .map_err(ApiError::from)
                })
                .await?;
            stored.unwrap_or((id, client_secret))
        }
    };
    Ok(state
        .connectors
        .mastodon
        .oauth_app(&base, &client_id, &client_secret)
        .await)
}

fn mastodon_app(
    conn: &mut DbConnection,
    secret: &SecretKey,
    base_url: &str,
    redirect_uri: &str,
) -> QueryResult<Option<(String, String)>> {
    let row: Option<(String, String)> = oauth_apps::table
        .filter(oauth_apps::platform.eq(Platform::Mastodon.as_str()))
        .filter(oauth_apps::base_url.eq(base_url))
        .filter(oauth_apps::redirect_uri.eq(redirect_uri))
        .select((oauth_apps::client_id, oauth_apps::client_secret))
        .first(conn)
        .optional()?;
    // A registration sealed with another key is as good as none: register again.
    Ok(row.and_then(|(id, sealed)| {
        let plain = secret.open(&sealed, base_url).ok()?;
        Some((id, String::from_utf8(plain).ok()?))
    }))
}

/// Store a registration, replacing one that cannot be read any more (sealed
/// with an earlier `HERALD_SECRET_KEY`).
fn save_mastodon_app(
    conn: &mut DbConnection,
    base_url: &str,
    redirect_uri: &str,
    client_id: &str,
    sealed_secret: &str,
) -> QueryResult<()> {
    diesel::delete(
        oauth_apps::table
            .filter(oauth_apps::platform.eq(Platform::Mastodon.as_str()))
            .filter(oauth_apps::base_url.eq(base_url))
            .filter(oauth_apps::redirect_uri.eq(redirect_uri)),
    )
    .execute(conn)?;
    diesel::insert_into(oauth_apps::table)
        .values((
            oauth_apps::platform.eq(Platform::Mastodon.as_str()),
            oauth_apps::base_url.eq(base_url),
            oauth_apps::redirect_uri.eq(redirect_uri),
            oauth_apps::client_id.eq(client_id),
            oauth_apps::client_secret.eq(sealed_secret),
            oauth_apps::created_at.eq(db::now()),
        ))
        .execute(conn)?;
    Ok(())
}

/// Consume a pending state: unknown, used and expired states are refused
/// (400), and a state is marked used before its code is exchanged.
fn take_state(conn: &mut DbConnection, state: &str) -> ApiResult<PendingState> {
    db::write_tx(conn, |conn| {
        let now = db::now();
        let row: Option<PendingState> = oauth_states::table
            .find(state)
            .select(PendingState::as_select())
            .first(conn)
            .optional()?;
        let Some(row) = row else {
            return Err(ApiError::BadRequest(
                "unknown state: this authorization was not started by this Herald; start again with POST /v1/accounts/connect/{platform}".into(),
            ));
        };
        if row.used_at.is_some() {
            return Err(ApiError::BadRequest(
                "this state was already used: each authorization works once; start again".into(),
            ));
        }
        if row.expires_at <= now {
            return Err(ApiError::BadRequest(format!(
                "this authorization expired (states last {STATE_TTL_MINUTES} minutes); start again"
            )));
        }
        let taken = diesel::update(
            oauth_states::table
                .find(state)
                .filter(oauth_states::used_at.is_null()),
        )
        .set(oauth_states::used_at.eq(Some(now)))
        .execute(conn)?;
        if taken != 1 {
            return Err(ApiError::BadRequest(
                "this state was already used: each authorization works once; start again".into(),
            ));
        }
        Ok(row)
    })
}

async fn record_failure(state: &AppState, pending: &PendingState, reason: &str) {
    let (actor, platform, name) = (
        pending.created_by.clone(),
        pending.platform.clone(),
        pending.name.clone(),
    );
    let reason: String = reason.chars().take(300).collect();
    let result = state
        .db(move |conn| {
            log::store::append(
                conn,
                NewEvent::new(&actor, "account.connect_failed").details(json!({
                    "platform": platform,
                    "name": name,
                    "reason": reason,
                })),
            )
            .map(|_| ())
            .map_err(ApiError::from)
        })
        .await;
    if let Err(error) = result {
        tracing::warn!(%error, "recording a failed connection");
    }
}

/// Create the account, or reconnect the live one of the same network and
/// name: new sealed credentials, status active, logged `account.connected`.
fn save_connected(
    conn: &mut DbConnection,
    secret: &SecretKey,
    pending: &PendingState,
    platform: Platform,
    connected: Connected,
    max_characters: Option<i32>,
) -> ApiResult<AccountRow> {
    let plaintext =
        serde_json::to_vec(connected.credentials.values()).map_err(ApiError::internal)?;
    db::write_tx(conn, |conn| {
        let now = db::now();
        let existing: Option<AccountRow> = accounts::table
            .filter(accounts::platform.eq(platform.as_str()))
            .filter(accounts::name.eq(&pending.name))
            .filter(accounts::removed_at.is_null())
            .select(AccountRow::as_select())
            .first(conn)
            .optional()?;
        let expires = connected.expires_at.map(|t| t.naive_utc());
        let (id, reconnected) = match existing {
            Some(row) => {
                db::lock_row(conn, db::LockableTable::Accounts, &row.id)?;
                diesel::update(accounts::table.find(&row.id))
                    .set((
                        accounts::credentials.eq(Some(secret.seal(&plaintext, &row.id))),
                        accounts::status.eq(AccountStatus::Active.as_str()),
                        accounts::status_reason.eq(None::<String>),
                        accounts::base_url.eq(pending.base_url.clone()),
                        accounts::remote_name.eq(connected.remote_name.clone()),
                        accounts::token_expires_at.eq(expires),
                        accounts::max_characters.eq(max_characters.or(row.max_characters)),
                        accounts::refresh_lease_until.eq(None::<NaiveDateTime>),
                        accounts::updated_at.eq(now),
                    ))
                    .execute(conn)?;
                (row.id, true)
            }
            None => {
                let id = db::new_id();
                diesel::insert_into(accounts::table)
                    .values((
                        accounts::id.eq(&id),
                        accounts::platform.eq(platform.as_str()),
                        accounts::name.eq(&pending.name),
                        accounts::base_url.eq(pending.base_url.clone()),
                        accounts::status.eq(AccountStatus::Active.as_str()),
                        accounts::credentials.eq(Some(secret.seal(&plaintext, &id))),
                        accounts::created_by.eq(&pending.created_by),
                        accounts::created_at.eq(now),
                        accounts::updated_at.eq(now),
                        accounts::remote_name.eq(connected.remote_name.clone()),
                        accounts::token_expires_at.eq(expires),
                        accounts::max_characters.eq(max_characters),
                    ))
                    .execute(conn)?;
                (id, false)
            }
        };
        log::store::append(
            conn,
            NewEvent::new(&pending.created_by, "account.connected")
                .account(&id)
                .details(json!({
                    "platform": platform.as_str(),
                    "name": pending.name,
                    "remote_name": connected.remote_name,
                    "reconnected": reconnected,
                    "token_expires_at": connected.expires_at,
                    "credential_fields": connected.credentials.values().keys().collect::<Vec<_>>(),
                })),
        )?;
        let row = super::store::find(conn, &id)?
            .ok_or_else(|| ApiError::internal("the connected account vanished"))?;
        Ok(row)
    })
}
