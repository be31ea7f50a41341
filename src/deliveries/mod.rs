//! Deliveries: one statement variant going out to one account at a planned
//! instant (DESIGN §5). This folder owns the scheduling API, the delivery
//! state machine and every query on deliveries, including the ones the
//! dispatcher runs to claim and settle them.

pub mod dto;
pub mod plan;
pub mod retract;
pub mod routes;
pub mod store;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where a delivery is in its life.
///
/// `scheduled → publishing → published`; `publishing → scheduled` (retry);
/// `publishing → failed`; `publishing → unknown → published | scheduled | failed`
/// (reconciled with the network); `scheduled → cancelled`;
/// `scheduled → missed` when it cannot go out within `max_lateness_s`;
/// `published → retracted` when a retraction deleted it from the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Scheduled,
    Publishing,
    Published,
    Failed,
    Cancelled,
    Missed,
    /// The network may or may not have the post (timeout, crash): Herald is
    /// looking it up before doing anything else.
    Unknown,
    /// Published, then deleted from the network by a retraction.
    Retracted,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 8] = [
        Self::Scheduled,
        Self::Publishing,
        Self::Published,
        Self::Failed,
        Self::Cancelled,
        Self::Missed,
        Self::Unknown,
        Self::Retracted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Publishing => "publishing",
            Self::Published => "published",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Missed => "missed",
            Self::Unknown => "unknown",
            Self::Retracted => "retracted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Whether a user may cancel it (it has not been handed to a network).
    pub fn cancellable(self) -> bool {
        self == Self::Scheduled
    }

    /// Whether a user may give it a new time.
    pub fn reschedulable(self) -> bool {
        matches!(self, Self::Scheduled | Self::Failed | Self::Missed)
    }
}

/// Bounds of `max_lateness_s`.
pub const MIN_LATENESS_S: i64 = 10;
pub const MAX_LATENESS_S: i64 = 7 * 24 * 3600;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip() {
        for s in DeliveryStatus::ALL {
            assert_eq!(DeliveryStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert!(DeliveryStatus::Scheduled.cancellable());
        assert!(!DeliveryStatus::Publishing.cancellable());
        assert!(DeliveryStatus::Missed.reschedulable());
        assert!(!DeliveryStatus::Published.reschedulable());
    }
}
