//! Reply tracking (issue 5): what the public answers to each published post.
//!
//! - `collector.rs`: the job that polls each published delivery's replies
//!   on an adaptive cadence, within each network's budget, and stores them
//!   once, scored (`crate::sentiment`) and triaged.
//! - `spike.rs`: the early warning when the tone turns negative.
//! - `telegram.rs`: Telegram's comments, read once per bot from its update
//!   queue into a table that the polls read.
//! - `store.rs`: the queries (replies, polls, follow-up, statistics).
//! - `respond.rs`: answering a reply through the dispatcher, after the
//!   courtesy check.
//! - `routes.rs`: `/v1/replies`, the statement summary, follow-up statistics.

pub mod collector;
pub mod respond;
pub mod routes;
pub mod spike;
pub mod store;
pub mod telegram;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::sentiment::{Label, Sentiment};

/// Where a reply stands in the follow-up queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FollowUp {
    /// Collected; nothing suggests it needs an answer.
    New,
    /// Negative, or a question: someone should answer.
    NeedsResponse,
    /// Someone (`assignee`) is on it.
    Assigned,
    /// Answered, through Herald or elsewhere.
    Answered,
    /// Looked at; no answer needed.
    Dismissed,
}

impl FollowUp {
    pub const ALL: [FollowUp; 5] = [
        FollowUp::New,
        FollowUp::NeedsResponse,
        FollowUp::Assigned,
        FollowUp::Answered,
        FollowUp::Dismissed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::NeedsResponse => "needs_response",
            Self::Assigned => "assigned",
            Self::Answered => "answered",
            Self::Dismissed => "dismissed",
        }
    }

    pub fn parse(s: &str) -> Option<FollowUp> {
        Self::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

/// The automatic triage of a new reply (README "Follow-up"): a negative
/// reply or a question needs a response; anything else is `new`. Returns the
/// status and the reason shown with it.
pub fn triage(sentiment: &Sentiment, question: bool) -> (FollowUp, Option<String>) {
    let negative = sentiment.label == Label::Negative;
    match (negative, question) {
        (true, true) => (FollowUp::NeedsResponse, Some("negative question".into())),
        (true, false) => (FollowUp::NeedsResponse, Some("negative".into())),
        (false, true) => (FollowUp::NeedsResponse, Some("question".into())),
        (false, false) => (FollowUp::New, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sentiment(label: Label) -> Sentiment {
        Sentiment {
            label,
            score: 0.0,
            language: None,
        }
    }

    #[test]
    fn negative_replies_and_questions_need_a_response() {
        assert_eq!(
            triage(&sentiment(Label::Negative), false).0,
            FollowUp::NeedsResponse
        );
        assert_eq!(
            triage(&sentiment(Label::Neutral), true),
            (FollowUp::NeedsResponse, Some("question".into()))
        );
        assert_eq!(triage(&sentiment(Label::Positive), false).0, FollowUp::New);
    }

    #[test]
    fn statuses_round_trip() {
        for f in FollowUp::ALL {
            assert_eq!(FollowUp::parse(f.as_str()), Some(f));
        }
        assert_eq!(FollowUp::parse("open"), None);
    }
}
