//! Images uploaded to Herald (`POST /v1/media`), for variants whose images
//! are not already on a public address. Herald serves them at
//! `GET /v1/media/{id}/content` (no key: the networks fetch them, as
//! Instagram and Threads must), and the connectors that upload bytes
//! (Mastodon, Bluesky, X, LinkedIn) read them from there too.

pub mod routes;

use diesel::prelude::*;

use crate::db::schema::media;
use crate::db::{self, DbConnection};

/// Largest image accepted (the most any network takes: Mastodon's 16 MiB).
pub const MAX_BYTES: usize = 16 * 1024 * 1024;

/// The image types Herald accepts, by their first bytes (the declared
/// `Content-Type` must agree).
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]) {
        Some("image/png")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = media)]
pub struct MediaInfo {
    pub id: String,
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
    pub created_by: String,
    pub created_at: chrono::NaiveDateTime,
}

pub fn insert(
    conn: &mut DbConnection,
    actor: &str,
    content_type: &str,
    bytes: &[u8],
) -> QueryResult<MediaInfo> {
    use sha2::{Digest, Sha256};
    let info = MediaInfo {
        id: db::new_id(),
        content_type: content_type.to_string(),
        size: bytes.len() as i64,
        sha256: hex::encode(Sha256::digest(bytes)),
        created_by: actor.to_string(),
        created_at: db::now(),
    };
    diesel::insert_into(media::table)
        .values((
            media::id.eq(&info.id),
            media::content_type.eq(&info.content_type),
            media::size.eq(info.size),
            media::sha256.eq(&info.sha256),
            media::bytes.eq(bytes),
            media::created_by.eq(&info.created_by),
            media::created_at.eq(info.created_at),
        ))
        .execute(conn)?;
    Ok(info)
}

pub fn info(conn: &mut DbConnection, id: &str) -> QueryResult<Option<MediaInfo>> {
    media::table
        .find(id)
        .select(MediaInfo::as_select())
        .first(conn)
        .optional()
}

pub fn content(conn: &mut DbConnection, id: &str) -> QueryResult<Option<(String, Vec<u8>)>> {
    media::table
        .find(id)
        .select((media::content_type, media::bytes))
        .first(conn)
        .optional()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_known_by_their_first_bytes() {
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0]), Some("image/jpeg"));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n...."), Some("image/png"));
        assert_eq!(sniff(b"GIF89a...."), Some("image/gif"));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(sniff(b"<svg xmlns=..."), None);
        assert_eq!(sniff(b""), None);
    }
}
