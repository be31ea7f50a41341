//! The publish log: an append-only, SHA-256 hash-chained record of every state
//! change (DESIGN §8). Each row's hash covers its own content and the previous
//! row's hash, so editing, inserting or deleting a row in the middle breaks
//! the chain from that row on.

pub mod routes;
pub mod store;

use chrono::NaiveDateTime;
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

/// `prev_hash` of the first row.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One event of the publish log.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct LogEntry {
    /// Position in the chain, from 1, without gaps.
    #[schema(example = 42)]
    pub seq: i64,
    pub id: String,
    /// When it happened (UTC).
    #[schema(value_type = String, format = DateTime, example = "2026-11-23T09:30:00.123456Z")]
    pub at: chrono::DateTime<chrono::Utc>,
    /// Name of the API key that acted (`system` for the scheduler, `cli` for the command line).
    #[schema(example = "alice")]
    pub actor: String,
    /// What happened, such as `statement.approved`.
    #[schema(example = "statement.approved")]
    pub action: String,
    pub statement_id: Option<String>,
    pub account_id: Option<String>,
    pub delivery_id: Option<String>,
    /// Details of the event (what changed, reasons, remote ids).
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    /// Hash of the previous event.
    pub prev_hash: String,
    /// SHA-256 over this event's content and `prev_hash`.
    pub hash: String,
}

/// An event to append.
#[derive(Debug, Clone, Default)]
pub struct NewEvent {
    pub actor: String,
    pub action: &'static str,
    pub statement_id: Option<String>,
    pub account_id: Option<String>,
    pub delivery_id: Option<String>,
    pub details: serde_json::Value,
}

impl NewEvent {
    pub fn new(actor: &str, action: &'static str) -> Self {
        Self {
            actor: actor.to_string(),
            action,
            details: serde_json::Value::Object(Default::default()),
            ..Self::default()
        }
    }

    pub fn statement(mut self, id: &str) -> Self {
        self.statement_id = Some(id.to_string());
        self
    }

    pub fn account(mut self, id: &str) -> Self {
        self.account_id = Some(id.to_string());
        self
    }

    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }
}

/// The fields a row's hash covers, in chain order.
pub struct HashedFields<'a> {
    pub seq: i64,
    pub id: &'a str,
    pub at: NaiveDateTime,
    pub actor: &'a str,
    pub action: &'a str,
    pub statement_id: Option<&'a str>,
    pub account_id: Option<&'a str>,
    pub delivery_id: Option<&'a str>,
    pub details: &'a str,
    pub prev_hash: &'a str,
}

/// SHA-256 (hex) over length-prefixed fields, so no two different rows can
/// produce the same input.
pub fn row_hash(f: &HashedFields<'_>) -> String {
    let mut hasher = Sha256::new();
    let mut field = |value: Option<&str>| match value {
        None => hasher.update(b"-;"),
        Some(v) => {
            hasher.update(v.len().to_string().as_bytes());
            hasher.update(b":");
            hasher.update(v.as_bytes());
            hasher.update(b";");
        }
    };
    field(Some(&f.seq.to_string()));
    field(Some(f.id));
    field(Some(&format_instant(f.at)));
    field(Some(f.actor));
    field(Some(f.action));
    field(f.statement_id);
    field(f.account_id);
    field(f.delivery_id);
    field(Some(f.details));
    field(Some(f.prev_hash));
    hex::encode(hasher.finalize())
}

/// RFC 3339 UTC with microseconds, the precision both back ends keep.
pub fn format_instant(at: NaiveDateTime) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Where the chain first breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ChainBreak {
    /// The first row that does not verify.
    pub seq: i64,
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields<'a>(details: &'a str, prev: &'a str) -> HashedFields<'a> {
        HashedFields {
            seq: 1,
            id: "0190",
            at: chrono::DateTime::from_timestamp(1_700_000_000, 123_456_000)
                .unwrap()
                .naive_utc(),
            actor: "alice",
            action: "statement.created",
            statement_id: Some("s1"),
            account_id: None,
            delivery_id: None,
            details,
            prev_hash: prev,
        }
    }

    #[test]
    fn the_hash_depends_on_content_and_the_previous_hash() {
        let a = row_hash(&fields("{}", GENESIS_HASH));
        assert_eq!(a.len(), 64);
        assert_eq!(a, row_hash(&fields("{}", GENESIS_HASH)));
        assert_ne!(a, row_hash(&fields("{\"x\":1}", GENESIS_HASH)));
        assert_ne!(a, row_hash(&fields("{}", &a)));
    }

    #[test]
    fn an_absent_id_differs_from_an_empty_one() {
        let mut with_none = fields("{}", GENESIS_HASH);
        with_none.account_id = None;
        let mut with_empty = fields("{}", GENESIS_HASH);
        with_empty.account_id = Some("");
        assert_ne!(row_hash(&with_none), row_hash(&with_empty));
    }
}
