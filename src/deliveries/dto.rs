//! Request and response shapes of the delivery API.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::plan::WhenRequest;
use super::store::{AttemptRow, DeliveryError, DeliveryRow};
use super::DeliveryStatus;
use crate::http::error::{ApiError, ApiResult, FieldError};
use crate::platforms::Platform;

impl From<DeliveryError> for ApiError {
    fn from(error: DeliveryError) -> Self {
        match error {
            DeliveryError::NotFound(_) => ApiError::NotFound(error.to_string()),
            DeliveryError::Conflict(m) => ApiError::Conflict(m),
            DeliveryError::Invalid(errors) => ApiError::invalid_fields(
                errors
                    .into_iter()
                    .map(|(f, m)| FieldError::new(f, m))
                    .collect(),
            ),
            DeliveryError::Db(e) => e.into(),
        }
    }
}

fn utc(t: NaiveDateTime) -> DateTime<Utc> {
    t.and_utc()
}

/// Schedule an approved statement: one delivery per account. Give exactly
/// one of `at`, `local_time` (with `timezone`) or `now`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleDeliveries {
    /// Account ids; the statement needs a variant for each one's network.
    #[schema(min_items = 1, max_items = 100)]
    pub accounts: Vec<String>,
    /// An instant with its offset.
    #[schema(example = "2026-11-25T18:00:00+01:00")]
    pub at: Option<String>,
    /// A wall-clock time in `timezone`, without offset.
    #[schema(example = "2026-11-25T18:00")]
    pub local_time: Option<String>,
    /// IANA time zone name: required with `local_time`, kept for display with `at`.
    #[schema(example = "Europe/Paris")]
    pub timezone: Option<String>,
    /// Publish as soon as possible.
    pub now: Option<bool>,
    /// Past this many seconds after the planned time the delivery is `missed`
    /// instead of published late. Default from the settings (900).
    #[schema(minimum = 10, maximum = 604800)]
    pub max_lateness_s: Option<i64>,
}

impl ScheduleDeliveries {
    pub fn when(&self) -> WhenRequest {
        WhenRequest {
            at: self.at.clone(),
            local_time: self.local_time.clone(),
            timezone: self.timezone.clone(),
            now: self.now,
        }
    }
}

/// A new time for a delivery: exactly one of `at`, `local_time` (with `timezone`) or `now`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RescheduleDelivery {
    #[schema(example = "2026-11-25T18:30:00+01:00")]
    pub at: Option<String>,
    #[schema(example = "2026-11-25T18:30")]
    pub local_time: Option<String>,
    #[schema(example = "Europe/Paris")]
    pub timezone: Option<String>,
    pub now: Option<bool>,
}

impl RescheduleDelivery {
    pub fn when(&self) -> WhenRequest {
        WhenRequest {
            at: self.at.clone(),
            local_time: self.local_time.clone(),
            timezone: self.timezone.clone(),
            now: self.now,
        }
    }
}

/// One statement version going out to one account.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Delivery {
    pub id: String,
    /// The statement version it publishes (moves to a newer approved version).
    pub statement_id: String,
    pub statement_version: i32,
    pub account_id: String,
    pub platform: Platform,
    /// `crisis` or `routine` (a `routine` pause holds routine deliveries only).
    pub kind: String,
    /// When it should go out (UTC).
    #[schema(value_type = String, format = DateTime)]
    pub planned_at: DateTime<Utc>,
    /// The time zone it was planned in, when one was given.
    pub timezone: Option<String>,
    pub max_lateness_s: i32,
    /// Past this instant it is `missed`, not published.
    #[schema(value_type = String, format = DateTime)]
    pub deadline: DateTime<Utc>,
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: i32,
    /// When the next attempt (or reconciliation check) is due.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_attempt_at: Option<DateTime<Utc>>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub published_at: Option<DateTime<Utc>>,
    /// Start of the successful request minus the planned instant.
    pub lateness_ms: Option<i64>,
    /// The post's id on the network.
    pub remote_id: Option<String>,
    pub remote_url: Option<String>,
    /// Every part on the network, first first (a thread has several).
    pub parts: Vec<PublishedPart>,
    /// A correction: the delivery whose post this one answers.
    pub reply_to_delivery_id: Option<String>,
    /// When a retraction deleted it from the network.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub retracted_at: Option<DateTime<Utc>>,
    /// Why the last retraction could not delete it.
    pub retraction_error: Option<String>,
    /// Why the last attempt did not publish, or why it failed, was missed or cancelled.
    pub last_error: Option<String>,
    pub created_by: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
}

/// One published part of a delivery.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PublishedPart {
    /// The part's id on the network.
    pub id: String,
    pub url: Option<String>,
}

impl TryFrom<DeliveryRow> for Delivery {
    type Error = ApiError;

    fn try_from(row: DeliveryRow) -> ApiResult<Self> {
        let parts = row
            .parts()
            .into_iter()
            .map(|p| PublishedPart {
                id: p.id,
                url: p.url,
            })
            .collect();
        Ok(Delivery {
            parts,
            reply_to_delivery_id: row.reply_to_delivery_id.clone(),
            retracted_at: row.retracted_at.map(utc),
            retraction_error: row.retraction_error.clone(),
            status: row.status()?,
            platform: Platform::parse(&row.platform)
                .ok_or_else(|| ApiError::internal("stored platform is unknown"))?,
            id: row.id,
            statement_id: row.statement_id,
            statement_version: row.statement_version,
            account_id: row.account_id,
            kind: row.kind,
            planned_at: utc(row.planned_at),
            timezone: row.timezone,
            max_lateness_s: row.max_lateness_s,
            deadline: utc(row.deadline),
            attempts: row.attempts,
            next_attempt_at: row.next_attempt_at.map(utc),
            published_at: row.published_at.map(utc),
            lateness_ms: row.lateness_ms,
            remote_id: row.remote_id,
            remote_url: row.remote_url,
            last_error: row.last_error,
            created_by: row.created_by,
            created_at: utc(row.created_at),
            updated_at: utc(row.updated_at),
        })
    }
}

/// One attempt to publish a delivery.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AttemptResponse {
    pub number: i32,
    /// The dispatcher instance that made it.
    pub owner: String,
    #[schema(value_type = String, format = DateTime)]
    pub started_at: DateTime<Utc>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ended_at: Option<DateTime<Utc>>,
    /// `published`, `rate_limited`, `transient`, `auth_expired`,
    /// `auth_revoked`, `rejected`, `unknown`, `lease_expired`; empty while running.
    pub outcome: Option<String>,
    pub http_status: Option<i32>,
    pub error: Option<String>,
}

impl From<AttemptRow> for AttemptResponse {
    fn from(row: AttemptRow) -> Self {
        Self {
            number: row.number,
            owner: row.owner,
            started_at: utc(row.started_at),
            ended_at: row.ended_at.map(utc),
            outcome: row.outcome,
            http_status: row.http_status,
            error: row.error,
        }
    }
}

/// A delivery with the history of its attempts.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeliveryDetail {
    #[serde(flatten)]
    pub delivery: Delivery,
    pub attempt_log: Vec<AttemptResponse>,
    /// Checks of the account's credentials 24 hours and 1 hour before the
    /// planned time, oldest first.
    pub preflight: Vec<PreflightCheck>,
}

/// One preflight check of a delivery's account.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PreflightCheck {
    /// `24h` or `1h` before the planned time.
    #[schema(example = "24h")]
    pub stage: String,
    #[schema(value_type = String, format = DateTime)]
    pub checked_at: DateTime<Utc>,
    pub ok: bool,
    pub error: Option<String>,
}

/// What scheduling made.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ScheduleResponse {
    #[schema(value_type = String, format = DateTime)]
    pub planned_at: DateTime<Utc>,
    pub timezone: Option<String>,
    /// Set when the local time was ambiguous (clocks going back) and the earlier instant was taken.
    pub notice: Option<String>,
    pub deliveries: Vec<Delivery>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeliveryPage {
    pub items: Vec<Delivery>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListDeliveries {
    pub status: Option<DeliveryStatus>,
    pub account_id: Option<String>,
    pub statement_id: Option<String>,
    /// Planned at or after this instant (RFC 3339).
    pub from: Option<String>,
    /// Planned before this instant (RFC 3339).
    pub to: Option<String>,
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}
