//! The early warning: when, over the sliding window, the share of negative
//! replies to a statement (any version) or to an account passes the
//! threshold with enough volume, Herald logs `replies.negative_spike` once
//! (which also notifies webhook subscribers). The episode ends when the
//! share falls back under the threshold; only then can a new one start.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::json;

use super::store;
use crate::config::ReplySettings;
use crate::db::schema::{reply_spikes, statements};
use crate::db::DbConnection;
use crate::log::{self, NewEvent};

/// What a spike is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// A statement's lineage (every version).
    Statement(String),
    Account(String),
}

impl Scope {
    fn kind(&self) -> &'static str {
        match self {
            Scope::Statement(_) => "statement",
            Scope::Account(_) => "account",
        }
    }

    fn id(&self) -> &str {
        match self {
            Scope::Statement(id) | Scope::Account(id) => id,
        }
    }
}

/// Whether `negative` out of `total` is a spike under `settings`.
pub fn is_spike(negative: i64, total: i64, settings: &ReplySettings) -> bool {
    total >= i64::from(settings.spike_min_replies)
        && negative * 100 > i64::from(settings.spike_share_pct) * total
}

/// What one check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    None,
    Started,
    Ended,
}

/// Check `scope` at `now`, opening or closing its episode. Runs inside the
/// caller's write transaction.
pub fn check(
    conn: &mut DbConnection,
    scope: &Scope,
    now: NaiveDateTime,
    settings: &ReplySettings,
) -> QueryResult<Change> {
    let since = store::before(now, settings.spike_window_s);
    let (negative, total) = store::tone_since(conn, scope, since)?;
    let open: Option<NaiveDateTime> = reply_spikes::table
        .filter(reply_spikes::scope.eq(scope.kind()))
        .filter(reply_spikes::scope_id.eq(scope.id()))
        .filter(reply_spikes::ended_at.is_null())
        .select(reply_spikes::started_at)
        .first(conn)
        .optional()?;
    let spiking = is_spike(negative, total, settings);
    match (open, spiking) {
        (None, true) => {
            diesel::insert_into(reply_spikes::table)
                .values((
                    reply_spikes::scope.eq(scope.kind()),
                    reply_spikes::scope_id.eq(scope.id()),
                    reply_spikes::started_at.eq(now),
                    reply_spikes::negative.eq(negative as i32),
                    reply_spikes::total.eq(total as i32),
                ))
                .execute(conn)?;
            let mut event =
                NewEvent::new(crate::deliveries::store::SYSTEM, "replies.negative_spike");
            match scope {
                Scope::Statement(lineage) => {
                    if let Some(latest) = latest_version(conn, lineage)? {
                        event = event.statement(&latest);
                    }
                }
                Scope::Account(account) => event = event.account(account),
            }
            let event = event.details(json!({
                "scope": scope.kind(),
                "scope_id": scope.id(),
                "negative": negative,
                "total": total,
                "share_pct": (negative * 100) / total.max(1),
                "threshold_pct": settings.spike_share_pct,
                "window_s": settings.spike_window_s,
            }));
            log::store::append(conn, event)?;
            Ok(Change::Started)
        }
        (Some(started_at), false) => {
            diesel::update(reply_spikes::table.find((scope.kind(), scope.id(), started_at)))
                .set(reply_spikes::ended_at.eq(Some(now)))
                .execute(conn)?;
            Ok(Change::Ended)
        }
        _ => Ok(Change::None),
    }
}

/// The scopes with an episode under way (to close them when the tone
/// recovers, even without new replies).
pub fn open_scopes(conn: &mut DbConnection) -> QueryResult<Vec<Scope>> {
    let open: Vec<(String, String)> = reply_spikes::table
        .filter(reply_spikes::ended_at.is_null())
        .select((reply_spikes::scope, reply_spikes::scope_id))
        .load(conn)?;
    Ok(open
        .into_iter()
        .map(|(kind, id)| match kind.as_str() {
            "account" => Scope::Account(id),
            _ => Scope::Statement(id),
        })
        .collect())
}

fn latest_version(conn: &mut DbConnection, lineage: &str) -> QueryResult<Option<String>> {
    statements::table
        .filter(statements::lineage_id.eq(lineage))
        .order(statements::version.desc())
        .select(statements::id)
        .first(conn)
        .optional()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spike_needs_volume_and_a_share_over_the_threshold() {
        let settings = ReplySettings {
            spike_share_pct: 40,
            spike_min_replies: 10,
            ..ReplySettings::default()
        };
        assert!(!is_spike(9, 9, &settings), "below the minimum volume");
        assert!(!is_spike(4, 10, &settings), "exactly 40 % is not over it");
        assert!(is_spike(5, 10, &settings));
        assert!(!is_spike(0, 0, &settings));
    }
}
