//! The statement API's request and response types (what the OpenAPI
//! document shows), and their conversions.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::store::{Statement, StatementError};
use super::{validate_content, Kind, MediaRef, Severity, Status, VariantContent};
use crate::http::error::{ApiError, FieldError};
use crate::platforms::{self, Platform};

impl From<StatementError> for ApiError {
    fn from(error: StatementError) -> Self {
        match error {
            StatementError::NotFound(_) => ApiError::NotFound(error.to_string()),
            StatementError::Conflict(m) => ApiError::Conflict(m),
            StatementError::Forbidden(m) => ApiError::Forbidden(m),
            StatementError::Invalid { field, message } => ApiError::invalid(field, message),
            StatementError::Db(e) => e.into(),
        }
    }
}

/// One variant of a statement: the text for one network.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VariantInput {
    pub platform: Platform,
    /// Checked against the platform's rules (see `POST /v1/variants/check`).
    #[schema(
        min_length = 1,
        example = "We are recalling batch 42 of the K-200 kettle. Stop using it; refunds at https://example.com/recall"
    )]
    pub text: String,
    /// Later parts of a thread, in order, each checked like `text`.
    /// Networks with threads publish them as replies (X, Bluesky, Mastodon,
    /// Threads, Telegram) or as comments (LinkedIn, Facebook); see `GET /v1/platforms`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thread: Vec<String>,
    /// Images of the first part (Instagram needs one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub media: Vec<MediaRef>,
}

impl VariantInput {
    pub fn content(&self) -> VariantContent {
        VariantContent {
            text: self.text.clone(),
            thread: self.thread.clone(),
            media: self.media.clone(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateStatement {
    #[schema(min_length = 1, max_length = 200, example = "K-200 kettle recall")]
    pub title: String,
    pub kind: Kind,
    /// Crisis statements only; defaults to `moderate`. `severe` needs two approvers.
    pub severity: Option<Severity>,
    /// BCP 47 tag of the text, sent to networks that take one (Mastodon
    /// `language`, Bluesky `langs`).
    #[schema(example = "en")]
    pub language: Option<String>,
    /// At most one per platform.
    #[serde(default)]
    pub variants: Vec<VariantInput>,
}

/// Fields to change; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateStatement {
    #[schema(min_length = 1, max_length = 200)]
    pub title: Option<String>,
    pub kind: Option<Kind>,
    /// `null` clears it (routine statements have none).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Severity>)]
    pub severity: Option<Option<Severity>>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, example = "fr")]
    pub language: Option<Option<String>>,
    /// Replaces every variant.
    pub variants: Option<Vec<VariantInput>>,
}

/// Tell an absent field (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutVariant {
    #[schema(min_length = 1)]
    pub text: String,
    /// Later parts of a thread.
    #[serde(default)]
    pub thread: Vec<String>,
    /// Images of the first part.
    #[serde(default)]
    pub media: Vec<MediaRef>,
}

impl PutVariant {
    pub fn content(&self) -> VariantContent {
        VariantContent {
            text: self.text.clone(),
            thread: self.thread.clone(),
            media: self.media.clone(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectStatement {
    /// Why, for the author: what to change.
    #[schema(
        min_length = 1,
        max_length = 2000,
        example = "Name the affected batch numbers"
    )]
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VariantResponse {
    pub platform: Platform,
    pub text: String,
    /// Later parts of the thread.
    pub thread: Vec<String>,
    pub media: Vec<MediaRef>,
    /// Length in the network's unit (of the first part).
    pub used: usize,
    pub limit: usize,
    #[schema(example = "graphemes")]
    pub unit: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalResponse {
    /// Name of the approving key.
    pub approver: String,
    #[schema(value_type = String, format = DateTime)]
    pub approved_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StatementResponse {
    pub id: String,
    /// Shared by every version of the same statement (the id of version 1).
    pub lineage_id: String,
    pub version: i32,
    /// The version this one revises.
    pub previous_version_id: Option<String>,
    pub title: String,
    pub kind: Kind,
    pub severity: Option<Severity>,
    /// BCP 47 tag of the text.
    pub language: Option<String>,
    pub status: Status,
    /// Name of the key that created this version.
    pub author: String,
    /// Everyone who wrote this version's content; none of them may approve it.
    pub editors: Vec<String>,
    pub approvals: Vec<ApprovalResponse>,
    pub approvals_required: usize,
    /// SHA-256 of the title, kind, severity, language and variants: review events in the
    /// publish log carry the same digest, proving which text was approved.
    pub content_sha256: String,
    pub rejection_reason: Option<String>,
    pub variants: Vec<VariantResponse>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: chrono::DateTime<chrono::Utc>,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: chrono::DateTime<chrono::Utc>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub submitted_at: Option<chrono::DateTime<chrono::Utc>>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub approved_at: Option<chrono::DateTime<chrono::Utc>>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub retired_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<Statement> for StatementResponse {
    fn from(s: Statement) -> Self {
        let approvals_required = s.required_approvals();
        let content_sha256 = s.content_digest();
        let variants = s
            .variants
            .into_iter()
            .map(|(platform, v)| {
                let report = platforms::check(platform, &v.text, None);
                let content = v.content();
                VariantResponse {
                    platform,
                    thread: content.thread,
                    media: content.media,
                    text: v.text,
                    used: report.used,
                    limit: report.limit,
                    unit: report.unit.to_string(),
                }
            })
            .collect();
        StatementResponse {
            id: s.row.id,
            lineage_id: s.row.lineage_id,
            version: s.row.version,
            previous_version_id: s.row.previous_version_id,
            title: s.row.title,
            kind: s.kind,
            severity: s.severity,
            language: s.row.language,
            status: s.status,
            author: s.row.author,
            editors: s.editors,
            approvals: s
                .approvals
                .into_iter()
                .map(|a| ApprovalResponse {
                    approver: a.approver,
                    approved_at: a.approved_at.and_utc(),
                })
                .collect(),
            approvals_required,
            content_sha256,
            rejection_reason: s.row.rejection_reason,
            variants,
            created_at: s.row.created_at.and_utc(),
            updated_at: s.row.updated_at.and_utc(),
            submitted_at: s.row.submitted_at.map(|t| t.and_utc()),
            approved_at: s.row.approved_at.map(|t| t.and_utc()),
            retired_at: s.row.retired_at.map(|t| t.and_utc()),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StatementPage {
    pub items: Vec<StatementResponse>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListStatements {
    pub status: Option<Status>,
    pub kind: Option<Kind>,
    /// Only the versions of one statement.
    pub lineage_id: Option<String>,
    /// Page size, default 50.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Check variant inputs: known rules, one per platform. Field paths use `prefix`.
pub(super) fn validate_variants(
    list: &[VariantInput],
    prefix: &str,
) -> Result<Vec<(Platform, VariantContent)>, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut seen = Vec::new();
    for (i, v) in list.iter().enumerate() {
        if seen.contains(&v.platform) {
            errors.push(FieldError::new(
                format!("{prefix}[{i}].platform"),
                format!("a second {} variant: one variant per platform", v.platform),
            ));
        }
        seen.push(v.platform);
        for (field, message) in
            validate_content(v.platform, &v.content(), &format!("{prefix}[{i}]"))
        {
            errors.push(FieldError::new(field, message));
        }
    }
    if errors.is_empty() {
        Ok(list.iter().map(|v| (v.platform, v.content())).collect())
    } else {
        Err(errors)
    }
}
