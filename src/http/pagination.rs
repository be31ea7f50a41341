//! Keyset pagination: `?limit=&cursor=` → `{items, next_cursor}`, newest first.

use base64::Engine;

use super::error::ApiError;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

/// The page size asked for, checked.
pub fn limit(requested: Option<i64>) -> Result<i64, ApiError> {
    match requested {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::invalid(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        )),
    }
}

/// Cursors are opaque to clients: base64url of the last key seen.
pub fn encode_cursor(key: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)
}

fn decode_cursor(cursor: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// A cursor over UUID ids.
pub fn id_cursor(cursor: Option<&str>) -> Result<Option<String>, ApiError> {
    cursor
        .filter(|c| !c.is_empty())
        .map(|c| {
            decode_cursor(c)
                .filter(|id| uuid::Uuid::parse_str(id).is_ok())
                .ok_or_else(bad_cursor)
        })
        .transpose()
}

/// A cursor over integer sequence numbers.
pub fn seq_cursor(cursor: Option<&str>) -> Result<Option<i64>, ApiError> {
    cursor
        .filter(|c| !c.is_empty())
        .map(|c| {
            decode_cursor(c)
                .and_then(|s| s.parse::<i64>().ok())
                .ok_or_else(bad_cursor)
        })
        .transpose()
}

fn bad_cursor() -> ApiError {
    ApiError::invalid(
        "cursor",
        "is not a cursor returned by this list (use next_cursor as given)",
    )
}

/// Split a fetched `limit + 1` rows into the page and the next cursor.
pub fn paginate<T>(
    mut rows: Vec<T>,
    limit: i64,
    key: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    let limit = usize::try_from(limit).unwrap_or(0);
    if rows.len() > limit {
        rows.truncate(limit);
        let next = rows.last().map(|r| encode_cursor(&key(r)));
        (rows, next)
    } else {
        (rows, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_bounded() {
        assert_eq!(limit(None).unwrap(), DEFAULT_LIMIT);
        assert_eq!(limit(Some(MAX_LIMIT)).unwrap(), MAX_LIMIT);
        assert!(limit(Some(0)).is_err());
        assert!(limit(Some(MAX_LIMIT + 1)).is_err());
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let id = uuid::Uuid::now_v7().to_string();
        assert_eq!(id_cursor(Some(&encode_cursor(&id))).unwrap(), Some(id));
        assert_eq!(seq_cursor(Some(&encode_cursor("17"))).unwrap(), Some(17));
        assert!(id_cursor(Some("%%%")).is_err());
        assert!(seq_cursor(Some(&encode_cursor("x"))).is_err());
    }

    #[test]
    fn a_full_page_has_a_next_cursor() {
        let (page, next) = paginate(vec![5, 4, 3], 2, |n| n.to_string());
        assert_eq!(page, vec![5, 4]);
        assert_eq!(next, Some(encode_cursor("4")));
        let (page, next) = paginate(vec![5], 2, |n| n.to_string());
        assert_eq!(page, vec![5]);
        assert_eq!(next, None);
    }
}
