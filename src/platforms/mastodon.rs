//! Mastodon connector (shared/platforms.md §1).
//!
//! Publishing is `POST /api/v1/statuses` with the delivery's `Idempotency-Key`,
//! which the instance keeps for an hour: a repeat within the hour returns the
//! original status and creates nothing. So after an `Unknown` outcome,
//! reconciling within 55 minutes of the first attempt simply posts again with
//! the same key; later, it lists the account's statuses and compares texts.
//!
//! Access tokens never expire and there is no refresh token, so any 401 means
//! an admin must reconnect the account.
//!
//! Threads: each later part answers its parent (`in_reply_to_id`). Images are
//! downloaded from their URL, uploaded with `POST /api/v2/media` (multipart
//! `file` and `description` = alt text; a 202 is polled with
//! `GET /api/v1/media/:id` until its `url` is set, for at most 30 s) and
//! attached with `media_ids[]`. An upload repeated by a retry leaves an
//! unattached file on the instance, which Mastodon removes on its own after
//! a day; it never makes a second post. `remote_id` is the status id.
//!
//! OAuth: Herald registers itself on each instance ([`Mastodon::register_app`]),
//! then uses [`Mastodon::oauth_app`] (PKCE when the instance's metadata
//! offers S256, i.e. 4.3+) and [`Mastodon::connect`].
//!
//! Replies: `GET /api/v1/statuses/:id/context` on the first part gives every
//! descendant at any depth (up to 4,096 with a token; it is not paginated),
//! replies to later parts and replies to replies included. Herald's own
//! statuses (the parts, and anything else the account posted, such as
//! answers from the follow-up queue) are left out; the account's id comes
//! from `verify_credentials` once per token and is kept in memory. Each poll
//! reads the whole tree, so the cursor only decides what is handed back as
//! new: see [`SnapshotCursor`]. An answer to a reply (`answers_reply`) is a
//! status with `in_reply_to_id` = the reply, like any thread part.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::Value;

use super::connector::{self, id_text, retry_after_seconds};
pub use super::connector::{download_image, sniff_image_type, DownloadedImage};
use super::{
    AccountSession, ConnectRequest, Connected, Connector, ConnectorError, Credentials,
    FetchedReply, MediaItem, OAuthApp, Post, Published, ReplyPage, ReplyQuery, TokenSet,
};

/// Keys expire after an hour on the instance; past this age a repeat could post twice.
const IDEMPOTENT_RETRY_WINDOW: chrono::Duration = chrono::Duration::minutes(55);
/// Statuses created this long before the first attempt cannot be ours (clock skew margin).
const LOOKUP_MARGIN: chrono::Duration = chrono::Duration::minutes(1);
/// Mastodon's largest page of account statuses.
const PAGE_SIZE: usize = 40;
/// Listing more pages than this (2,000 statuses) gives up rather than burn the rate limit.
const MAX_PAGES: usize = 50;
/// Wait after a 429 that says nothing about when to come back.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Mastodon's regional language codes; any other tag is sent as its primary subtag.
const REGIONAL_LANGUAGES: [&str; 4] = ["zh-CN", "zh-HK", "zh-TW", "zh-YUE"];
/// `configuration.statuses.max_media_attachments` by default.
const MAX_IMAGES: usize = 4;
/// `configuration.media_attachments.image_size_limit` by default (16 MB).
const MAX_IMAGE_BYTES: usize = 16 * 1024 * 1024;
/// First wait before polling an attachment still processing; doubles up to
/// `MEDIA_POLL_MAX_WAIT`.
const MEDIA_POLL_FIRST_WAIT: Duration = Duration::from_millis(250);
const MEDIA_POLL_MAX_WAIT: Duration = Duration::from_secs(2);
/// An attachment still processing after this long fails the attempt (transient).
const MEDIA_POLL_BUDGET: Duration = Duration::from_secs(30);
/// The scopes Herald asks for: verify_credentials, post, upload, read
/// context and mentions (space-separated, platforms.md §1.1).
pub const OAUTH_SCOPES: &str =
    "read:accounts write:statuses write:media read:statuses read:notifications";

/// Publishes statuses on the account's own instance (`AccountSession::base_url`)
/// with the `access_token` credential.
#[derive(Clone)]
pub struct Mastodon {
    http: reqwest::Client,
    /// SHA-256 of (instance, token) → the account id `verify_credentials`
    /// gave: reply polls leave the account's own statuses out without
    /// asking again each time. Tokens never change owner.
    account_ids: Arc<Mutex<HashMap<[u8; 32], String>>>,
}

/// Where and as whom to call.
struct Target {
    base: String,
    token: String,
}

impl Mastodon {
    pub fn new(http: reqwest::Client) -> Self {
        Self {
            http,
            account_ids: Arc::default(),
        }
    }

    /// The instance's status length limit: `GET /api/v2/instance` →
    /// `configuration.statuses.max_characters`.
    pub async fn instance_limit(&self, base_url: &str) -> Result<u32, ConnectorError> {
        let base = base_url.trim_end_matches('/');
        let response = self
            .http
            .get(format!("{base}/api/v2/instance"))
            .send()
            .await
            .map_err(|e| ConnectorError::from_reqwest(&e))?;
        let (status, headers, body) = read(response).await?;
        if !status.is_success() {
            return Err(classify(status, &headers, &body));
        }
        serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["configuration"]["statuses"]["max_characters"].as_u64())
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| ConnectorError::Rejected {
                message: "the instance did not give configuration.statuses.max_characters"
                    .to_string(),
                status: Some(status.as_u16()),
            })
    }

    async fn target(account: &AccountSession) -> Result<Target, ConnectorError> {
        let base = account
            .base_url
            .as_deref()
            .map(|b| b.trim().trim_end_matches('/'))
            .filter(|b| !b.is_empty())
            .ok_or_else(|| ConnectorError::Rejected {
                message: "the account has no instance base URL".to_string(),
                status: None,
            })?;
        if url::Url::parse(base).is_err() {
            return Err(ConnectorError::Rejected {
                message: format!("the account's instance base URL is not a URL: {base}"),
                status: None,
            });
        }
        let token = account
            .credentials
            .lock()
            .await
            .get("access_token")
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .ok_or_else(|| ConnectorError::AuthRevoked {
                message: "the account has no access_token: reconnect it".to_string(),
                status: None,
            })?;
        Ok(Target {
            base: base.to_string(),
            token,
        })
    }

    async fn post_status(
        &self,
        target: &Target,
        post: &Post,
        media_ids: &[String],
    ) -> Result<Published, ConnectorError> {
        let form = status_form(post, media_ids);
        let response = self
            .http
            .post(format!("{}/api/v1/statuses", target.base))
            .bearer_auth(&target.token)
            .header("Idempotency-Key", &post.idempotency_key)
            .form(&form)
            .send()
            .await
            .map_err(|e| ConnectorError::from_reqwest(&e))?;
        let (status, headers, body) = read(response).await?;
        if !status.is_success() {
            return Err(classify(status, &headers, &body));
        }
        let json: Value = serde_json::from_str(&body).map_err(|_| ConnectorError::Unknown {
            message: "Mastodon answered 200 with a body that is not a status".to_string(),
        })?;
        let remote = RemoteStatus::from_json(&json).ok_or_else(|| ConnectorError::Unknown {
            message: "Mastodon answered 200 without a status id".to_string(),
        })?;
        Ok(remote.published(pause_until(&headers, Utc::now())))
    }

    async fn get_json(&self, target: &Target, path: &str) -> Result<Value, ConnectorError> {
        let response = self
            .http
            .get(format!("{}{path}", target.base))
            .bearer_auth(&target.token)
            .send()
            .await
            .map_err(|e| ConnectorError::from_reqwest(&e))?;
        let (status, headers, body) = read(response).await?;
        if !status.is_success() {
            return Err(classify(status, &headers, &body));
        }
        serde_json::from_str(&body).map_err(|_| ConnectorError::Transient {
            message: format!("Mastodon answered {path} with a body that is not JSON"),
            status: Some(status.as_u16()),
        })
    }

    /// Look for `post` among the account's statuses created since its first
    /// attempt (less a margin). The oldest match wins: it is the closest to
    /// the first attempt, should the same text have gone out twice since.
    async fn find_by_listing(
        &self,
        target: &Target,
        post: &Post,
    ) -> Result<Option<Published>, ConnectorError> {
        let me = self
            .get_json(target, "/api/v1/accounts/verify_credentials")
            .await?;
        let account_id = id_text(&me["id"]).ok_or_else(|| ConnectorError::Transient {
            message: "verify_credentials gave no account id".to_string(),
            status: None,
        })?;
        let account_id: String = form_urlencoded::byte_serialize(account_id.as_bytes()).collect();
        let cutoff = post.first_attempt_at - LOOKUP_MARGIN;
        let wanted = normalize_text(&post.text);
        let mut found: Option<RemoteStatus> = None;
        let mut max_id: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut path = format!(
                "/api/v1/accounts/{account_id}/statuses?limit={PAGE_SIZE}&exclude_reblogs=true"
            );
            if let Some(max_id) = &max_id {
                path.push_str("&max_id=");
                path.extend(form_urlencoded::byte_serialize(max_id.as_bytes()));
            }
            let page = self.get_json(target, &path).await?;
            let statuses = page.as_array().map(Vec::as_slice).unwrap_or_default();
            let Some(last) = statuses.last() else {
                return Ok(found.map(|s| s.published(None)));
            };
            for json in statuses {
                let Some(status) = RemoteStatus::from_json(json) else {
                    continue;
                };
                if status.created_at.is_some_and(|at| at < cutoff) {
                    return Ok(found.map(|s| s.published(None)));
                }
                if json["reblog"].is_null()
                    && normalize_text(&html_to_text(&status.content)) == wanted
                {
                    found = Some(status);
                }
            }
            match id_text(&last["id"]) {
                Some(id) if max_id.as_deref() != Some(id.as_str()) => max_id = Some(id),
                _ => return Ok(found.map(|s| s.published(None))),
            }
        }
        match found {
            Some(status) => Ok(Some(status.published(None))),
            None => Err(ConnectorError::Unknown {
                message: format!(
                    "looked through {} statuses without reaching the first attempt",
                    MAX_PAGES * PAGE_SIZE
                ),
            }),
        }
    }
}

impl Connector for Mastodon {
    async fn publish(
        &self,
        account: &AccountSession,
        post: &Post,
    ) -> Result<Published, ConnectorError> {
        let target = Self::target(account).await?;
        let media_ids = self.upload_media(&target, &post.media).await?;
        self.post_status(&target, post, &media_ids).await
    }

    /// Within 55 minutes of the first attempt: post again with the same
    /// `Idempotency-Key` (the instance returns the original status, or creates
    /// it if the first attempt never arrived). Later: list the account's
    /// statuses back to the first attempt and compare texts.
    async fn reconcile(
        &self,
        account: &AccountSession,
        post: &Post,
    ) -> Result<Option<Published>, ConnectorError> {
        let target = Self::target(account).await?;
        // Within Mastodon's idempotency hour (and the post's window), sending
        // again with the same key returns the original or creates it once.
        let now = Utc::now();
        if now - post.first_attempt_at < IDEMPOTENT_RETRY_WINDOW && now <= post.deadline {
            let media_ids = self.upload_media(&target, &post.media).await?;
            return self.post_status(&target, post, &media_ids).await.map(Some);
        }
        self.find_by_listing(&target, post).await
    }

    /// `DELETE /api/v1/statuses/:id`; a 404 (already deleted, or never
    /// this account's) counts as done.
    async fn delete(
        &self,
        account: &AccountSession,
        remote_id: &str,
    ) -> Result<(), ConnectorError> {
        let target = Self::target(account).await?;
        let id = remote_id.trim();
        if id.is_empty() {
            return Err(ConnectorError::Rejected {
                message: "no Mastodon status id to delete".into(),
                status: None,
            });
        }
        let mut url =
            url::Url::parse(&format!("{}/api/v1/statuses", target.base)).map_err(|_| {
                ConnectorError::Rejected {
                    message: "the account's instance base URL is not a URL".into(),
                    status: None,
                }
            })?;
        url.path_segments_mut()
            .map_err(|_| ConnectorError::Rejected {
                message: "the account's instance base URL cannot have a path".into(),
                status: None,
            })?
            .push(id);
        let response = self
            .http
            .delete(url)
            .bearer_auth(&target.token)
            .send()
            .await
            .map_err(|e| ConnectorError::from_call(&e, false))?;
        let (status, headers, body) = read(response).await.map_err(ConnectorError::retryable)?;
        match status.as_u16() {
            200..=299 | 404 => Ok(()),
            _ => Err(classify(status, &headers, &body)),
        }
    }

    /// `GET /api/v1/accounts/verify_credentials`.
    async fn check(&self, account: &AccountSession) -> Result<(), ConnectorError> {
        let target = Self::target(account).await?;
        self.get_json(&target, "/api/v1/accounts/verify_credentials")
            .await
            .map(|_| ())
            .map_err(ConnectorError::retryable)
    }

    /// `GET /api/v1/statuses/:root/context`: the descendants that are not
    /// the account's own, oldest first, those the cursor has not seen.
    async fn replies(
        &self,
        account: &AccountSession,
        query: &ReplyQuery,
    ) -> Result<ReplyPage, ConnectorError> {
        let target = Self::target(account).await?;
        let root = query.root_id.trim();
        if root.is_empty() {
            return Err(ConnectorError::Rejected {
                message: "no Mastodon status id to read the replies of".into(),
                status: None,
            });
        }
        let me = self.own_account_id(&target).await?;
        let root: String = form_urlencoded::byte_serialize(root.as_bytes()).collect();
        let context = self
            .get_json(&target, &format!("/api/v1/statuses/{root}/context"))
            .await
            .map_err(ConnectorError::retryable)?;
        let descendants = context["descendants"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let found = descendants
            .iter()
            .filter(|status| id_text(&status["account"]["id"]).as_deref() != Some(me.as_str()))
            .filter_map(|status| {
                let reply = reply_of(status)?;
                (!query.own_ids.contains(&reply.remote_id))
                    .then(|| (id_sort_key(&reply.remote_id), reply))
            })
            .collect();
        Ok(SnapshotCursor::select(found, query.cursor.as_deref()))
    }
}

impl Mastodon {
    /// The account id of the token (`verify_credentials`), asked once per
    /// token and kept.
    async fn own_account_id(&self, target: &Target) -> Result<String, ConnectorError> {
        use sha2::Digest;
        let key: [u8; 32] = sha2::Sha256::new()
            .chain_update(&target.base)
            .chain_update([0])
            .chain_update(&target.token)
            .finalize()
            .into();
        let known = self
            .account_ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned();
        if let Some(id) = known {
            return Ok(id);
        }
        let me = self
            .get_json(target, "/api/v1/accounts/verify_credentials")
            .await
            .map_err(ConnectorError::retryable)?;
        let id = id_text(&me["id"]).ok_or_else(|| ConnectorError::Transient {
            message: "verify_credentials gave no account id".to_string(),
            status: None,
        })?;
        self.account_ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, id.clone());
        Ok(id)
    }
}

/// A descendant of the context as a reply: `acct` as the author, the HTML
/// content as plain text. Boosts and statuses without an id are skipped.
fn reply_of(status: &Value) -> Option<FetchedReply> {
    if !status["reblog"].is_null() {
        return None;
    }
    let remote = RemoteStatus::from_json(status)?;
    let author = status["account"]["acct"]
        .as_str()
        .or_else(|| status["account"]["username"].as_str())
        .unwrap_or_default()
        .to_string();
    Some(FetchedReply {
        parent_id: id_text(&status["in_reply_to_id"]),
        author,
        text: html_to_text(&remote.content).trim().to_string(),
        created_at: remote.created_at.unwrap_or_else(Utc::now),
        url: remote.url,
        remote_id: remote.id,
    })
}

/// Mastodon ids (snowflakes: numeric strings that grow with time) compare
/// by length, then text, so `"99" < "100"`; the flake ids of compatible
/// servers (same length, base 62) compare as text. Padded to sort as text.
fn id_sort_key(id: &str) -> String {
    format!("{:0>32}", id)
}

/// The cursor of a network whose reply listing is a whole snapshot each time
/// (Mastodon's context, Bluesky's thread): `<mark> <digest>`, where `mark`
/// is the highest sort key handed back so far (an id that grows with time,
/// an indexing time) and `digest` a hash of the ids at or below it.
///
/// A poll hands back the replies above the mark. If the replies at or below
/// it are no longer exactly those the digest covers (a reply fetched late
/// from another server with an older id, or a deletion), it hands back all
/// of them again: the store keeps a reply once, so a repeat costs nothing,
/// while a reply skipped would be lost. The cursor stays short whatever the
/// number of replies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotCursor {
    pub mark: String,
    pub digest: String,
}

impl SnapshotCursor {
    pub fn parse(cursor: &str) -> Option<SnapshotCursor> {
        let (mark, digest) = cursor.trim().rsplit_once(' ')?;
        (!mark.is_empty() && digest.len() == 16).then(|| SnapshotCursor {
            mark: mark.to_string(),
            digest: digest.to_string(),
        })
    }

    /// Hash of a set of reply ids (order does not matter): 16 hex digits.
    pub fn digest<'a>(ids: impl Iterator<Item = &'a str>) -> String {
        use sha2::Digest;
        let mut ids: Vec<&str> = ids.collect();
        ids.sort_unstable();
        let mut hash = sha2::Sha256::new();
        for id in ids {
            hash.update(id.as_bytes());
            hash.update([b'\n']);
        }
        hex::encode(&hash.finalize()[..8])
    }

    /// From the whole snapshot (each reply with its sort key), the replies
    /// `cursor` has not covered, oldest first (by `created_at`, then key),
    /// and the cursor of the snapshot. An empty snapshot keeps the cursor.
    pub fn select(mut found: Vec<(String, FetchedReply)>, cursor: Option<&str>) -> ReplyPage {
        let Some((mark, _)) = found.iter().max_by(|a, b| a.0.cmp(&b.0)) else {
            return ReplyPage::default();
        };
        let next = SnapshotCursor {
            mark: mark.clone(),
            digest: Self::digest(found.iter().map(|(_, r)| r.remote_id.as_str())),
        };
        if let Some(previous) = cursor.and_then(SnapshotCursor::parse) {
            let covered = Self::digest(
                found
                    .iter()
                    .filter(|(key, _)| *key <= previous.mark)
                    .map(|(_, r)| r.remote_id.as_str()),
            );
            if covered == previous.digest {
                found.retain(|(key, _)| *key > previous.mark);
            }
        }
        found.sort_by(|a, b| a.1.created_at.cmp(&b.1.created_at).then(a.0.cmp(&b.0)));
        ReplyPage {
            replies: found.into_iter().map(|(_, reply)| reply).collect(),
            cursor: Some(format!("{} {}", next.mark, next.digest)),
        }
    }
}

impl Mastodon {
    /// Download, upload and (if needed) wait for every image; their ids in order.
    async fn upload_media(
        &self,
        target: &Target,
        media: &[MediaItem],
    ) -> Result<Vec<String>, ConnectorError> {
        if media.len() > MAX_IMAGES {
            return Err(ConnectorError::Rejected {
                message: format!(
                    "{} images: Mastodon allows at most {MAX_IMAGES} on one post",
                    media.len()
                ),
                status: None,
            });
        }
        let mut ids = Vec::with_capacity(media.len());
        for (index, item) in media.iter().enumerate() {
            let number = index + 1;
            let image =
                download_image(&self.http, item, number, MAX_IMAGE_BYTES, "Mastodon").await?;
            ids.push(self.upload_image(target, &image, item, number).await?);
        }
        Ok(ids)
    }

    /// `POST /api/v2/media` (multipart `file` + `description`); a 202 is
    /// polled until the attachment has a `url`. Nothing here can publish
    /// anything, so no failure is `Unknown`.
    async fn upload_image(
        &self,
        target: &Target,
        image: &DownloadedImage,
        item: &MediaItem,
        number: usize,
    ) -> Result<String, ConnectorError> {
        let boundary = connector::multipart_boundary();
        let filename = format!("image-{number}.{}", extension_of(&image.content_type));
        let body = multipart_body(
            &boundary,
            item.alt.as_deref().map(str::trim).filter(|a| !a.is_empty()),
            &filename,
            &image.content_type,
            &image.bytes,
        );
        let response = self
            .http
            .post(format!("{}/api/v2/media", target.base))
            .bearer_auth(&target.token)
            .header(
                reqwest::header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body)
            .send()
            .await
            .map_err(|e| ConnectorError::from_call(&e, false))?;
        let (status, headers, body) = read(response).await.map_err(ConnectorError::retryable)?;
        if !status.is_success() {
            return Err(classify(status, &headers, &body));
        }
        let json: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let id = id_text(&json["id"]).ok_or_else(|| ConnectorError::Transient {
            message: format!("Mastodon accepted image {number} but gave no attachment id"),
            status: Some(status.as_u16()),
        })?;
        if status == StatusCode::ACCEPTED || json["url"].is_null() {
            self.wait_for_media(target, &id, number).await?;
        }
        Ok(id)
    }

    /// Poll `GET /api/v1/media/:id` until the attachment is processed (200
    /// with a `url`; 206 means still processing), for at most `MEDIA_POLL_BUDGET`.
    async fn wait_for_media(
        &self,
        target: &Target,
        id: &str,
        number: usize,
    ) -> Result<(), ConnectorError> {
        let started = std::time::Instant::now();
        let mut wait = MEDIA_POLL_FIRST_WAIT;
        let id: String = form_urlencoded::byte_serialize(id.as_bytes()).collect();
        loop {
            tokio::time::sleep(wait).await;
            let response = self
                .http
                .get(format!("{}/api/v1/media/{id}", target.base))
                .bearer_auth(&target.token)
                .send()
                .await
                .map_err(|e| ConnectorError::from_call(&e, false))?;
            let (status, headers, body) =
                read(response).await.map_err(ConnectorError::retryable)?;
            if !status.is_success() {
                return Err(classify(status, &headers, &body));
            }
            let ready = status != StatusCode::PARTIAL_CONTENT
                && serde_json::from_str::<Value>(&body)
                    .ok()
                    .is_some_and(|v| v["url"].as_str().is_some_and(|u| !u.is_empty()));
            if ready {
                return Ok(());
            }
            if started.elapsed() + wait > MEDIA_POLL_BUDGET {
                return Err(ConnectorError::Transient {
                    message: format!(
                        "Mastodon was still processing image {number} after {} s",
                        MEDIA_POLL_BUDGET.as_secs()
                    ),
                    status: Some(status.as_u16()),
                });
            }
            wait = (wait * 2).min(MEDIA_POLL_MAX_WAIT);
        }
    }
}

/// The form of `POST /api/v1/statuses`.
fn status_form(post: &Post, media_ids: &[String]) -> Vec<(&'static str, String)> {
    let mut form = vec![
        ("status", post.text.clone()),
        ("visibility", "public".into()),
    ];
    if let Some(language) = post.language.as_deref().and_then(mastodon_language) {
        form.push(("language", language));
    }
    if let Some(parent) = post
        .reply_to
        .as_ref()
        .map(|r| r.parent_id.trim())
        .filter(|p| !p.is_empty())
    {
        form.push(("in_reply_to_id", parent.to_string()));
    }
    for id in media_ids {
        form.push(("media_ids[]", id.clone()));
    }
    form
}

fn extension_of(content_type: &str) -> &'static str {
    match content_type {
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "image/gif" => "gif",
        "image/webp" => "webp",
        _ => "bin",
    }
}

/// A `multipart/form-data` body with an optional `description` and the `file`.
fn multipart_body(
    boundary: &str,
    description: Option<&str>,
    filename: &str,
    content_type: &str,
    bytes: &[u8],
) -> Vec<u8> {
    let fields: Vec<(&str, &str)> = description
        .map(|d| ("description", d))
        .into_iter()
        .collect();
    connector::multipart_body(boundary, &fields, ("file", filename, content_type, bytes))
}

/// The parts of a Mastodon Status Herald uses.
struct RemoteStatus {
    id: String,
    url: Option<String>,
    created_at: Option<DateTime<Utc>>,
    content: String,
}

impl RemoteStatus {
    fn from_json(json: &Value) -> Option<Self> {
        let text = |name: &str| json[name].as_str().map(str::to_string);
        Some(Self {
            id: id_text(&json["id"])?,
            url: text("url").or_else(|| text("uri")),
            created_at: json["created_at"]
                .as_str()
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .map(|t| t.with_timezone(&Utc)),
            content: text("content").unwrap_or_default(),
        })
    }

    fn published(self, pause_until: Option<DateTime<Utc>>) -> Published {
        Published {
            remote_id: self.id,
            remote_url: self.url,
            pause_until,
        }
    }
}

/// Status, headers and body text; a body that cannot be read leaves the outcome unknown.
async fn read(
    response: reqwest::Response,
) -> Result<(StatusCode, HeaderMap, String), ConnectorError> {
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .text()
        .await
        .map_err(|e| ConnectorError::from_reqwest(&e))?;
    Ok((status, headers, body))
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `X-RateLimit-Reset`, when `X-RateLimit-Remaining` says the budget is spent.
fn pause_until(headers: &HeaderMap, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let remaining = header(headers, "x-ratelimit-remaining")?
        .trim()
        .parse::<u64>()
        .ok()?;
    if remaining > 0 {
        return None;
    }
    parse_rate_limit_reset(header(headers, "x-ratelimit-reset")?, now)
}

/// Parse `X-RateLimit-Reset`. Mastodon sends an ISO-8601 instant
/// (`2020-09-08T13:25:00.019685Z`); for servers that imitate its API loosely,
/// a number is read as epoch seconds when it is large enough to be one, else
/// as seconds from `now`.
pub fn parse_rate_limit_reset(value: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let value = value.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(value) {
        return Some(at.with_timezone(&Utc));
    }
    let seconds = value
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)?;
    if seconds >= 1_000_000_000.0 {
        DateTime::from_timestamp_millis((seconds * 1000.0) as i64)
    } else {
        Some(now + chrono::Duration::milliseconds((seconds * 1000.0) as i64))
    }
}

/// How long to wait after a 429: `Retry-After` if a server sends one (Mastodon
/// documents none), else until `X-RateLimit-Reset` (at least a second), else a minute.
fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Duration {
    if let Some(wait) = retry_after_seconds(header(headers, "retry-after")) {
        return wait;
    }
    header(headers, "x-ratelimit-reset")
        .and_then(|v| parse_rate_limit_reset(v, now))
        .map(|reset| {
            (reset - now)
                .to_std()
                .unwrap_or(Duration::ZERO)
                .max(Duration::from_secs(1))
        })
        .unwrap_or(DEFAULT_RETRY_AFTER)
}

/// The network's `error` text, or the start of the body.
fn error_text(status: StatusCode, body: &str) -> String {
    let from_json = serde_json::from_str::<Value>(body).ok().and_then(|v| {
        let error = v["error"].as_str()?.to_string();
        Some(match v["error_description"].as_str() {
            Some(description) => format!("{error}: {description}"),
            None => error,
        })
    });
    let text = from_json.unwrap_or_else(|| body.trim().chars().take(200).collect());
    if text.is_empty() {
        format!("Mastodon answered {}", status.as_u16())
    } else {
        format!("Mastodon answered {}: {text}", status.as_u16())
    }
}

/// Classify an answer that is not a success.
///
/// 403 is `AuthRevoked`, not `Rejected`: Mastodon sends it for a token that
/// lacks a scope or for a login that is disabled, unconfirmed or pending
/// approval. Each affects every post of the account and needs an admin to
/// fix the account and reconnect it; failing posts one by one would hide that.
fn classify(status: StatusCode, headers: &HeaderMap, body: &str) -> ConnectorError {
    let message = error_text(status, body);
    let code = Some(status.as_u16());
    match status.as_u16() {
        429 => ConnectorError::RateLimited {
            retry_after: retry_after(headers, Utc::now()),
            message,
            status: code,
        },
        401 => ConnectorError::AuthRevoked {
            message: format!("{message} (Mastodon tokens never expire: reconnect the account)"),
            status: code,
        },
        403 => ConnectorError::AuthRevoked {
            message,
            status: code,
        },
        500..=599 => ConnectorError::Transient {
            message,
            status: code,
        },
        _ => ConnectorError::Rejected {
            message,
            status: code,
        },
    }
}

/// The `language` to send for a BCP-47 tag: Mastodon knows ISO 639 codes and
/// a few regional Chinese ones, and silently ignores anything else, so
/// `en-GB` goes out as `en`.
pub fn mastodon_language(tag: &str) -> Option<String> {
    let tag = tag.trim();
    if let Some(regional) = REGIONAL_LANGUAGES
        .iter()
        .find(|r| r.eq_ignore_ascii_case(tag))
    {
        return Some(regional.to_string());
    }
    let primary = tag
        .split(['-', '_'])
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    (2..=3)
        .contains(&primary.len())
        .then_some(primary)
        .filter(|p| p.bytes().all(|b| b.is_ascii_lowercase()))
}

/// Plain text of a status's HTML `content`: `<br>` is a newline, a new
/// paragraph a blank line, other tags vanish (a link keeps its full text,
/// invisible spans included), entities are decoded.
pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(c) = rest.chars().next() {
        if c == '<' {
            let Some(end) = rest.find('>') else {
                out.push_str(rest);
                break;
            };
            let tag = rest[1..end].trim().to_ascii_lowercase();
            let name: String = tag
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '/')
                .collect();
            match name.as_str() {
                "br" | "br/" => out.push('\n'),
                "p" if !out.is_empty() => out.push_str("\n\n"),
                _ => {}
            }
            rest = &rest[end + 1..];
        } else if c == '&' {
            let decoded = rest
                .get(1..rest.len().min(12))
                .and_then(|s| s.find(';').map(|i| &s[..i]))
                .and_then(|entity| decode_entity(entity).map(|ch| (ch, entity.len() + 2)));
            match decoded {
                Some((ch, len)) => {
                    out.push(ch);
                    rest = &rest[len..];
                }
                None => {
                    out.push('&');
                    rest = &rest[1..];
                }
            }
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

fn decode_entity(entity: &str) -> Option<char> {
    match entity {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        "nbsp" => Some('\u{a0}'),
        _ => {
            let number = entity.strip_prefix('#')?;
            let code = match number.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => number.parse().ok()?,
            };
            char::from_u32(code)
        }
    }
}

/// Text as compared for reconciliation: line endings unified, trailing spaces
/// and runs of blank lines (which Mastodon's paragraphs fold) reduced, trimmed.
fn normalize_text(text: &str) -> String {
    let text = text
        .replace("\r\n", "\n")
        .replace('\r', "\n")
        .replace('\u{a0}', " ");
    let mut out = String::with_capacity(text.len());
    let mut blank_run = false;
    for line in text.trim().lines().map(str::trim_end) {
        if line.is_empty() {
            blank_run = true;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank_run { "\n\n" } else { "\n" });
        }
        out.push_str(line);
        blank_run = false;
    }
    out
}

/// The instance address of `base_url`, without a trailing slash, if it is an http(s) URL.
fn instance_base(base_url: &str) -> Result<String, ConnectorError> {
    let base = base_url.trim().trim_end_matches('/');
    match url::Url::parse(base) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => {
            Ok(base.to_string())
        }
        _ => Err(ConnectorError::Rejected {
            message: format!("the Mastodon instance address is not an http(s) URL: {base}"),
            status: None,
        }),
    }
}

/// Whether the instance's OAuth metadata offers PKCE S256.
pub fn metadata_offers_pkce(metadata: &Value) -> bool {
    metadata["code_challenge_methods_supported"]
        .as_array()
        .is_some_and(|methods| methods.iter().any(|m| m.as_str() == Some("S256")))
}

impl Mastodon {
    /// Register Herald on an instance: `POST /api/v1/apps` with
    /// `client_name`, `redirect_uris`, `scopes` and `website` (the origin of
    /// `redirect_uri`, Herald's public address). Returns `(client_id, client_secret)`.
    pub async fn register_app(
        &self,
        base_url: &str,
        client_name: &str,
        redirect_uri: &str,
        scopes: &str,
    ) -> Result<(String, String), ConnectorError> {
        let base = instance_base(base_url)?;
        let mut form = vec![
            ("client_name", client_name.to_string()),
            ("redirect_uris", redirect_uri.to_string()),
            ("scopes", scopes.to_string()),
        ];
        if let Some(website) = url::Url::parse(redirect_uri)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .map(|u| u.origin().ascii_serialization())
        {
            form.push(("website", website));
        }
        let response = self
            .http
            .post(format!("{base}/api/v1/apps"))
            .form(&form)
            .send()
            .await
            .map_err(|e| ConnectorError::from_call(&e, false))?;
        let (status, headers, body) = read(response).await.map_err(ConnectorError::retryable)?;
        if !status.is_success() {
            return Err(match status.as_u16() {
                // No token is involved: a 401/403 here is the instance refusing apps.
                401 | 403 => ConnectorError::Rejected {
                    message: error_text(status, &body),
                    status: Some(status.as_u16()),
                },
                _ => classify(status, &headers, &body),
            });
        }
        let json: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        match (
            json["client_id"].as_str().filter(|s| !s.is_empty()),
            json["client_secret"].as_str().filter(|s| !s.is_empty()),
        ) {
            (Some(id), Some(secret)) => Ok((id.to_string(), secret.to_string())),
            _ => Err(ConnectorError::Rejected {
                message: "the instance registered the app but sent no client_id or client_secret"
                    .into(),
                status: Some(status.as_u16()),
            }),
        }
    }

    /// The OAuth app of an instance where Herald registered as
    /// `client_id`: `{base}/oauth/authorize` and `{base}/oauth/token`, the
    /// client secret in the form body, Herald's scopes, and PKCE S256 when
    /// `GET /.well-known/oauth-authorization-server` (4.3+) lists it in
    /// `code_challenge_methods_supported` (no metadata or an error: no PKCE).
    pub async fn oauth_app(
        &self,
        base_url: &str,
        client_id: &str,
        client_secret: &str,
    ) -> OAuthApp {
        let base = base_url.trim().trim_end_matches('/').to_string();
        let pkce = match self
            .http
            .get(format!("{base}/.well-known/oauth-authorization-server"))
            .send()
            .await
        {
            Ok(response) if response.status().is_success() => response
                .json::<Value>()
                .await
                .is_ok_and(|metadata| metadata_offers_pkce(&metadata)),
            _ => false,
        };
        OAuthApp {
            client_id: client_id.to_string(),
            client_secret: client_secret.to_string(),
            authorize_url: format!("{base}/oauth/authorize"),
            token_url: format!("{base}/oauth/token"),
            scopes: OAUTH_SCOPES.split(' ').map(str::to_string).collect(),
            pkce,
            basic_auth: false,
            comma_scopes: false,
            token_via_get: false,
        }
    }

    /// After the OAuth code exchange on the instance `request.base_url`:
    /// `verify_credentials` with the new token; the credentials are the
    /// `access_token` (Mastodon tokens do not expire and come without a
    /// refresh token), the name `@username@host`.
    pub async fn connect(
        &self,
        tokens: TokenSet,
        request: &ConnectRequest,
    ) -> Result<Connected, ConnectorError> {
        let base = request
            .base_url
            .as_deref()
            .filter(|b| !b.trim().is_empty())
            .ok_or_else(|| ConnectorError::Rejected {
                message: "connecting a Mastodon account needs the instance's base URL".into(),
                status: None,
            })?;
        let base = instance_base(base)?;
        let target = Target {
            base: base.clone(),
            token: tokens.access_token().to_string(),
        };
        let me = self
            .get_json(&target, "/api/v1/accounts/verify_credentials")
            .await
            .map_err(ConnectorError::retryable)?;
        let username = me["username"]
            .as_str()
            .filter(|u| !u.is_empty())
            .ok_or_else(|| ConnectorError::Rejected {
                message: "verify_credentials gave no username".into(),
                status: None,
            })?;
        let host = url::Url::parse(&base)
            .ok()
            .and_then(|u| {
                let host = u.host_str()?.to_string();
                Some(match u.port() {
                    Some(port) => format!("{host}:{port}"),
                    None => host,
                })
            })
            .unwrap_or_default();
        let mut credentials = Credentials::default();
        credentials.set("access_token", tokens.access_token());
        Ok(Connected {
            credentials,
            remote_name: Some(format!("@{username}@{host}")),
            expires_at: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn the_reset_header_is_an_iso_instant_with_microseconds() {
        let now = Utc.with_ymd_and_hms(2020, 9, 8, 13, 20, 0).unwrap();
        let reset = parse_rate_limit_reset("2020-09-08T13:25:00.019685Z", now).unwrap();
        assert_eq!(reset.timestamp(), now.timestamp() + 300);
        assert_eq!(reset.timestamp_subsec_micros(), 19_685);
        assert_eq!(
            parse_rate_limit_reset("1599571500", now),
            Some(Utc.with_ymd_and_hms(2020, 9, 8, 13, 25, 0).unwrap())
        );
        assert_eq!(
            parse_rate_limit_reset("30", now),
            Some(now + chrono::Duration::seconds(30))
        );
        assert_eq!(parse_rate_limit_reset("soon", now), None);
        assert_eq!(parse_rate_limit_reset("-5", now), None);
    }

    #[test]
    fn a_429_waits_for_retry_after_then_the_reset_then_a_minute() {
        let now = Utc.with_ymd_and_hms(2020, 9, 8, 13, 20, 0).unwrap();
        let reset = "2020-09-08T13:25:00.019685Z";
        assert_eq!(
            retry_after(&headers(&[("x-ratelimit-reset", reset)]), now),
            Duration::from_micros(300_019_685)
        );
        assert_eq!(
            retry_after(
                &headers(&[("x-ratelimit-reset", reset), ("retry-after", "7")]),
                now
            ),
            Duration::from_secs(7)
        );
        assert_eq!(
            retry_after(
                &headers(&[("x-ratelimit-reset", "2020-09-08T13:19:00Z")]),
                now
            ),
            Duration::from_secs(1)
        );
        assert_eq!(retry_after(&HeaderMap::new(), now), DEFAULT_RETRY_AFTER);
    }

    #[test]
    fn only_a_spent_budget_pauses_the_account() {
        let now = Utc.with_ymd_and_hms(2020, 9, 8, 13, 20, 0).unwrap();
        let reset = "2020-09-08T13:25:00Z";
        assert_eq!(
            pause_until(
                &headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", reset)]),
                now
            ),
            Some(Utc.with_ymd_and_hms(2020, 9, 8, 13, 25, 0).unwrap())
        );
        assert_eq!(
            pause_until(
                &headers(&[("x-ratelimit-remaining", "3"), ("x-ratelimit-reset", reset)]),
                now
            ),
            None
        );
        assert_eq!(pause_until(&HeaderMap::new(), now), None);
    }

    #[test]
    fn statuses_are_classified_as_the_docs_say() {
        let none = HeaderMap::new();
        let body = r#"{"error":"The access token was revoked"}"#;
        let revoked = classify(StatusCode::UNAUTHORIZED, &none, body);
        assert_eq!(revoked.class(), "auth_revoked");
        assert!(revoked.to_string().contains("The access token was revoked"));
        let scope = r#"{"error":"This action is outside the authorized scopes"}"#;
        assert_eq!(
            classify(StatusCode::FORBIDDEN, &none, scope).class(),
            "auth_revoked"
        );
        let long = r#"{"error":"Validation failed: Text character limit of 500 exceeded"}"#;
        let rejected = classify(StatusCode::UNPROCESSABLE_ENTITY, &none, long);
        assert_eq!(rejected.class(), "rejected");
        assert_eq!(rejected.status(), Some(422));
        assert!(rejected.to_string().contains("character limit of 500"));
        assert_eq!(
            classify(StatusCode::BAD_GATEWAY, &none, "<html>").class(),
            "transient"
        );
        assert_eq!(
            classify(StatusCode::NOT_FOUND, &none, "").to_string(),
            "rejected: Mastodon answered 404"
        );
    }

    #[test]
    fn languages_go_out_as_mastodon_codes() {
        assert_eq!(mastodon_language("en").as_deref(), Some("en"));
        assert_eq!(mastodon_language("en-GB").as_deref(), Some("en"));
        assert_eq!(mastodon_language("pt_BR").as_deref(), Some("pt"));
        assert_eq!(mastodon_language("zh-tw").as_deref(), Some("zh-TW"));
        assert_eq!(mastodon_language("ast").as_deref(), Some("ast"));
        assert_eq!(mastodon_language(""), None);
        assert_eq!(mastodon_language("english"), None);
    }

    #[test]
    fn html_content_becomes_the_text_that_was_sent() {
        let html = "<p>Fish &amp; &lt;chips&gt;<br />line two &#39;q&#x27;</p><p>See <a href=\"https://example.org/long/path\" rel=\"nofollow\"><span class=\"invisible\">https://</span><span class=\"ellipsis\">example.org/lo</span><span class=\"invisible\">ng/path</span></a></p>";
        assert_eq!(
            html_to_text(html),
            "Fish & <chips>\nline two 'q'\n\nSee https://example.org/long/path"
        );
        assert_eq!(html_to_text("<p>a &unknown; & b</p>"), "a &unknown; & b");
        assert_eq!(html_to_text("<p>broken <b"), "broken <b");
    }

    #[test]
    fn image_types_are_sniffed_from_magic_bytes() {
        assert_eq!(
            sniff_image_type(&[0xFF, 0xD8, 0xFF, 0xE0]),
            Some("image/jpeg")
        );
        assert_eq!(
            sniff_image_type(b"\x89PNG\r\n\x1a\n...."),
            Some("image/png")
        );
        assert_eq!(sniff_image_type(b"GIF89a.."), Some("image/gif"));
        assert_eq!(
            sniff_image_type(b"RIFF\0\0\0\0WEBPVP8 "),
            Some("image/webp")
        );
        assert_eq!(sniff_image_type(b"<html>"), None);
        assert_eq!(extension_of("image/png"), "png");
    }

    #[test]
    fn the_upload_body_is_multipart_with_description_then_file() {
        let body = multipart_body(
            "B0UND",
            Some("Kettle, front"),
            "image-1.jpg",
            "image/jpeg",
            b"\xff\xd8\xff",
        );
        let expected = b"--B0UND\r\nContent-Disposition: form-data; name=\"description\"\r\n\r\nKettle, front\r\n--B0UND\r\nContent-Disposition: form-data; name=\"file\"; filename=\"image-1.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n\xff\xd8\xff\r\n--B0UND--\r\n";
        assert_eq!(body, expected.to_vec());
        let without = multipart_body("B", None, "f.png", "image/png", b"x");
        assert!(!String::from_utf8_lossy(&without).contains("description"));
    }

    #[test]
    fn the_status_form_carries_the_parent_and_media_ids() {
        let post = Post {
            text: "2/2".into(),
            language: Some("fr-CA".into()),
            reply_to: Some(crate::platforms::ReplyTarget {
                root_id: "1".into(),
                parent_id: "7".into(),
                answers_reply: false,
            }),
            ..Default::default()
        };
        let form = status_form(&post, &["10".into(), "11".into()]);
        assert_eq!(
            form,
            vec![
                ("status", "2/2".to_string()),
                ("visibility", "public".to_string()),
                ("language", "fr".to_string()),
                ("in_reply_to_id", "7".to_string()),
                ("media_ids[]", "10".to_string()),
                ("media_ids[]", "11".to_string()),
            ]
        );
        let first = Post {
            text: "1/2".into(),
            ..Default::default()
        };
        assert_eq!(status_form(&first, &[]).len(), 2);
    }

    #[test]
    fn pkce_is_used_only_when_the_metadata_offers_s256() {
        let with = serde_json::json!({"code_challenge_methods_supported": ["S256"]});
        let plain = serde_json::json!({"code_challenge_methods_supported": ["plain"]});
        assert!(metadata_offers_pkce(&with));
        assert!(!metadata_offers_pkce(&plain));
        assert!(!metadata_offers_pkce(&serde_json::json!({})));
        assert!(instance_base("https://mastodon.social/").is_ok());
        assert_eq!(
            instance_base("https://mastodon.social/").unwrap(),
            "https://mastodon.social"
        );
        assert!(instance_base("mastodon.social").is_err());
    }

    fn fetched(id: &str, minute: u32) -> (String, FetchedReply) {
        (
            id_sort_key(id),
            FetchedReply {
                remote_id: id.into(),
                parent_id: None,
                author: "a".into(),
                text: String::new(),
                created_at: Utc.with_ymd_and_hms(2026, 1, 1, 9, minute, 0).unwrap(),
                url: None,
            },
        )
    }

    fn ids(page: &ReplyPage) -> Vec<&str> {
        page.replies.iter().map(|r| r.remote_id.as_str()).collect()
    }

    #[test]
    fn a_snapshot_cursor_hands_back_what_is_new_or_everything_when_the_past_changed() {
        let first = SnapshotCursor::select(vec![fetched("120", 2), fetched("99", 1)], None);
        assert_eq!(ids(&first), vec!["99", "120"], "oldest first; 99 < 120");
        let cursor = first.cursor.clone().unwrap();
        let parsed = SnapshotCursor::parse(&cursor).unwrap();
        assert_eq!(parsed.mark, id_sort_key("120"));

        let same = SnapshotCursor::select(vec![fetched("99", 1), fetched("120", 2)], Some(&cursor));
        assert!(same.replies.is_empty());
        assert_eq!(same.cursor.as_deref(), Some(cursor.as_str()));

        let grown = SnapshotCursor::select(
            vec![fetched("99", 1), fetched("120", 2), fetched("130", 3)],
            Some(&cursor),
        );
        assert_eq!(ids(&grown), vec!["130"]);

        // A late reply below the mark changes the digest: all come back.
        let late = SnapshotCursor::select(
            vec![fetched("99", 1), fetched("120", 2), fetched("100", 0)],
            Some(&cursor),
        );
        assert_eq!(ids(&late), vec!["100", "99", "120"]);

        // Nothing at all keeps the cursor; a cursor from elsewhere returns all.
        assert_eq!(
            SnapshotCursor::select(Vec::new(), Some(&cursor)),
            ReplyPage::default()
        );
        let foreign = SnapshotCursor::select(vec![fetched("99", 1)], Some("12345"));
        assert_eq!(ids(&foreign), vec!["99"]);
        assert_eq!(SnapshotCursor::parse("12345"), None);
    }

    #[test]
    fn a_descendant_becomes_a_reply_with_acct_plain_text_and_url() {
        let status = serde_json::json!({
            "id": "110",
            "in_reply_to_id": "100",
            "created_at": "2026-01-01T09:00:00.000Z",
            "url": "https://social.example/@bob@other.example/110",
            "content": "<p><span class=\"h-card\"><a href=\"https://social.example/@kettleco\" class=\"u-url mention\">@<span>kettleco</span></a></span> Is it safe?</p><p>Really &amp; truly?</p>",
            "account": {"id": "7", "username": "bob", "acct": "bob@other.example"},
            "reblog": null,
        });
        let reply = reply_of(&status).unwrap();
        assert_eq!(reply.remote_id, "110");
        assert_eq!(reply.parent_id.as_deref(), Some("100"));
        assert_eq!(reply.author, "bob@other.example");
        assert_eq!(reply.text, "@kettleco Is it safe?\n\nReally & truly?");
        assert_eq!(
            reply.created_at,
            Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap()
        );
        let mut boost = status.clone();
        boost["reblog"] = serde_json::json!({"id": "1"});
        assert_eq!(reply_of(&boost), None);
    }

    #[test]
    fn comparison_ignores_what_mastodon_reformats() {
        assert_eq!(normalize_text("  a \r\nb\n\n\n\nc  \n"), "a\nb\n\nc");
        assert_ne!(normalize_text("a\nb"), normalize_text("a b"));
    }
}
