//! Statements: what the crisis cell says, one variant per network, and the
//! four-eyes approval that must happen before anything is scheduled
//! (DESIGN §4). This file holds the types and the rules, with no I/O.
//!
//! ```text
//! draft ──submit──▶ in_review ──approve (1, or 2 if severe)──▶ approved ──retire──▶ retired
//!   ▲                  │                                         │
//!   └──edit── rejected ◀┘reject                                  └─revise─▶ new draft version
//!                                      (when the new version is approved, this one is superseded)
//! ```

pub mod dto;
pub mod routes;
pub mod store;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::platforms::{self, Platform};

/// Longest title accepted.
pub const MAX_TITLE_CHARS: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Part of a crisis response: still published when routine posts are paused.
    Crisis,
    /// Ordinary communication.
    Routine,
    /// A response template for the follow-up queue (`POST
    /// /v1/replies/{id}/respond` with `template_id`): approved like any
    /// statement, with `{author}` placeholders; never scheduled itself.
    Response,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Minor,
    Moderate,
    /// Needs two distinct approvers.
    Severe,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Draft,
    InReview,
    Approved,
    Rejected,
    Retired,
    /// A newer version of the same statement has been approved.
    Superseded,
}

macro_rules! text_enum {
    ($ty:ty { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some(Self::$variant),)+ _ => None }
            }
        }
    };
}

text_enum!(Kind { Crisis => "crisis", Routine => "routine", Response => "response" });
text_enum!(Severity { Minor => "minor", Moderate => "moderate", Severe => "severe" });
text_enum!(Status {
    Draft => "draft",
    InReview => "in_review",
    Approved => "approved",
    Rejected => "rejected",
    Retired => "retired",
    Superseded => "superseded",
});

/// How many distinct approvers a statement needs.
pub fn required_approvals(kind: Kind, severity: Option<Severity>) -> usize {
    match (kind, severity) {
        (Kind::Crisis, Some(Severity::Severe)) => 2,
        _ => 1,
    }
}

/// The severity a statement ends up with: crisis statements default to
/// `moderate`; routine statements have none.
pub fn effective_severity(
    kind: Kind,
    severity: Option<Severity>,
) -> Result<Option<Severity>, String> {
    match (kind, severity) {
        (Kind::Crisis, None) => Ok(Some(Severity::Moderate)),
        (Kind::Crisis, some) => Ok(some),
        (Kind::Routine | Kind::Response, None) => Ok(None),
        (Kind::Routine | Kind::Response, Some(_)) => {
            Err("only crisis statements have a severity".into())
        }
    }
}

/// Why the content of a statement in `status` cannot be edited, if it cannot.
pub fn edit_refusal(status: Status) -> Option<String> {
    match status {
        Status::Draft | Status::Rejected => None,
        Status::InReview => Some(
            "the statement is in review: its content is frozen until it is approved or rejected"
                .into(),
        ),
        Status::Approved => Some(
            "approved content is frozen: POST /v1/statements/{id}/revise makes a new draft version"
                .into(),
        ),
        Status::Retired => Some("the statement is retired".into()),
        Status::Superseded => {
            Some("this version has been superseded by a newer approved version".into())
        }
    }
}

/// Check a title; returns the trimmed title.
pub fn validate_title(title: &str) -> Result<String, String> {
    let trimmed = title.trim();
    if trimmed.is_empty() {
        return Err("must not be empty".into());
    }
    if trimmed.chars().count() > MAX_TITLE_CHARS {
        return Err(format!("must be at most {MAX_TITLE_CHARS} characters"));
    }
    Ok(trimmed.to_string())
}

/// Longest language tag accepted (BCP 47 allows long ones; real ones are short).
const MAX_LANGUAGE_CHARS: usize = 35;

/// A BCP 47 language tag such as `en`, `fr` or `pt-BR`: a primary subtag of
/// 2–3 letters, then subtags of 1–8 letters or digits. The primary subtag is
/// returned in lower case, as networks expect it.
pub fn validate_language(tag: &str) -> Result<String, String> {
    let tag = tag.trim();
    let invalid = || format!("'{tag}' is not a language tag such as en, fr or pt-BR (BCP 47)");
    if tag.is_empty() || tag.len() > MAX_LANGUAGE_CHARS {
        return Err(invalid());
    }
    let mut parts = tag.split('-');
    let primary = parts.next().unwrap_or_default();
    if !(2..=3).contains(&primary.len()) || !primary.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(invalid());
    }
    let mut clean = primary.to_ascii_lowercase();
    for part in parts {
        if !(1..=8).contains(&part.len()) || !part.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(invalid());
        }
        clean.push('-');
        clean.push_str(part);
    }
    Ok(clean)
}

/// Most parts in one thread.
pub const MAX_THREAD_PARTS: usize = 25;
/// Longest alternative text of an image.
pub const MAX_ALT_CHARS: usize = 1_500;

/// An image of a variant: a public URL the networks can fetch, or an image
/// uploaded to Herald (`POST /v1/media`), with its alternative text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MediaRef {
    /// A public `http(s)` URL of the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = "uri", example = "https://example.com/recall/k200.jpg")]
    pub url: Option<String>,
    /// The id of an image uploaded with `POST /v1/media`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_id: Option<String>,
    /// Alternative text, kept wherever the network has a field for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        max_length = 1500,
        example = "The K-200 kettle, batch number on its base"
    )]
    pub alt: Option<String>,
}

/// What one variant says on its network: the text, the later parts of a
/// thread, and images (on the first part).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VariantContent {
    pub text: String,
    pub thread: Vec<String>,
    pub media: Vec<MediaRef>,
}

impl VariantContent {
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            ..Default::default()
        }
    }

    /// Every part, the first one first.
    pub fn parts(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.text.as_str()).chain(self.thread.iter().map(String::as_str))
    }
}

/// Check a whole variant against its network: each part's text, whether the
/// network has threads, and its image rules. Errors are `(field, message)`
/// with fields under `prefix` (`variants[0]`, or empty for a single variant).
pub fn validate_content(
    platform: Platform,
    content: &VariantContent,
    prefix: &str,
) -> Vec<(String, String)> {
    let field = |name: &str| {
        if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}.{name}")
        }
    };
    let info = platforms::catalog::info(platform);
    let mut errors = Vec::new();
    if let Err(message) = validate_variant(platform, &content.text) {
        errors.push((field("text"), message));
    }
    if !content.thread.is_empty() && info.thread == platforms::catalog::ThreadMode::None {
        errors.push((
            field("thread"),
            format!(
                "{} has no threads: put the whole statement in one part",
                info.name
            ),
        ));
    } else if content.thread.len() + 1 > MAX_THREAD_PARTS {
        errors.push((
            field("thread"),
            format!("at most {MAX_THREAD_PARTS} parts in a thread"),
        ));
    } else {
        for (i, part) in content.thread.iter().enumerate() {
            if let Err(message) = validate_variant(platform, part) {
                errors.push((field(&format!("thread[{i}]")), message));
            }
        }
    }
    if content.media.len() > info.media.max_images {
        errors.push((
            field("media"),
            if info.media.max_images == 0 {
                format!("{} takes no images", info.name)
            } else {
                format!(
                    "{} takes at most {} images on a post",
                    info.name, info.media.max_images
                )
            },
        ));
    }
    if content.media.is_empty() && info.media.required {
        errors.push((
            field("media"),
            format!(
                "{} needs an image: add one (the text goes in the caption)",
                info.name
            ),
        ));
    }
    for (i, m) in content.media.iter().enumerate() {
        let at = field(&format!("media[{i}]"));
        match (&m.url, &m.media_id) {
            (Some(url), None) => {
                if let Err(message) = crate::accounts::validate_http_url(url) {
                    errors.push((format!("{at}.url"), message));
                }
            }
            (None, Some(id)) => {
                if uuid::Uuid::parse_str(id).is_err() {
                    errors.push((
                        format!("{at}.media_id"),
                        "is not the id of an uploaded image (POST /v1/media)".into(),
                    ));
                }
            }
            _ => errors.push((at.clone(), "give either url or media_id".into())),
        }
        if m.alt
            .as_ref()
            .is_some_and(|a| a.chars().count() > MAX_ALT_CHARS)
        {
            errors.push((
                format!("{at}.alt"),
                format!("must be at most {MAX_ALT_CHARS} characters"),
            ));
        }
    }
    errors
}

/// Check a variant's text against its network's default rules. Returns the
/// problems joined into one message when it cannot be posted.
pub fn validate_variant(platform: Platform, text: &str) -> Result<(), String> {
    let report = platforms::check(platform, text, None);
    if report.ok() {
        Ok(())
    } else {
        Err(report.problems.join("; "))
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn language_tags_are_bcp47_like() {
        assert_eq!(validate_language("en").unwrap(), "en");
        assert_eq!(validate_language(" FR ").unwrap(), "fr");
        assert_eq!(validate_language("pt-BR").unwrap(), "pt-BR");
        assert_eq!(validate_language("zh-Hant-TW").unwrap(), "zh-Hant-TW");
        for bad in ["", "e", "english", "en_US", "en-", "fr-toolongsubtag", "é"] {
            assert!(validate_language(bad).is_err(), "{bad}");
        }
    }

    use super::*;

    #[test]
    fn severe_crises_need_two_approvers_and_everything_else_one() {
        assert_eq!(required_approvals(Kind::Crisis, Some(Severity::Severe)), 2);
        assert_eq!(
            required_approvals(Kind::Crisis, Some(Severity::Moderate)),
            1
        );
        assert_eq!(required_approvals(Kind::Crisis, Some(Severity::Minor)), 1);
        assert_eq!(required_approvals(Kind::Routine, None), 1);
    }

    #[test]
    fn crisis_severity_defaults_to_moderate_and_routine_has_none() {
        assert_eq!(
            effective_severity(Kind::Crisis, None),
            Ok(Some(Severity::Moderate))
        );
        assert_eq!(
            effective_severity(Kind::Crisis, Some(Severity::Severe)),
            Ok(Some(Severity::Severe))
        );
        assert_eq!(effective_severity(Kind::Routine, None), Ok(None));
        assert!(effective_severity(Kind::Routine, Some(Severity::Minor)).is_err());
    }

    #[test]
    fn only_drafts_and_rejected_statements_can_be_edited() {
        assert!(edit_refusal(Status::Draft).is_none());
        assert!(edit_refusal(Status::Rejected).is_none());
        for status in [
            Status::InReview,
            Status::Approved,
            Status::Retired,
            Status::Superseded,
        ] {
            assert!(edit_refusal(status).is_some(), "{status:?}");
        }
    }

    #[test]
    fn titles_are_trimmed_and_bounded() {
        assert_eq!(validate_title("  Recall  ").unwrap(), "Recall");
        assert!(validate_title("   ").is_err());
        assert!(validate_title(&"é".repeat(MAX_TITLE_CHARS)).is_ok());
        assert!(validate_title(&"é".repeat(MAX_TITLE_CHARS + 1)).is_err());
    }

    #[test]
    fn status_names_match_serde() {
        for s in [
            Status::Draft,
            Status::InReview,
            Status::Approved,
            Status::Rejected,
            Status::Retired,
            Status::Superseded,
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
    }
}
