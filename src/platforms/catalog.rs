//! What each network allows, in one table: the answer of `GET /v1/platforms`
//! and the rules the API checks variants against (shared/platforms.md).

use serde::Serialize;
use utoipa::ToSchema;

use super::{default_limit, text, Platform};

/// How the later parts of a thread are published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ThreadMode {
    /// Each part answers the one before (X, Bluesky, Mastodon, Threads, Telegram).
    Reply,
    /// Later parts are comments on the first post (LinkedIn, Facebook).
    Comment,
    /// Later parts are posted one after another (Discord webhooks, which cannot answer).
    Sequence,
    /// The network has no threads: a variant must be a single part.
    None,
}

/// How an account is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConnectMethod {
    /// `POST /v1/accounts/connect/{platform}` (authorization code).
    Oauth,
    /// `POST /v1/accounts` with the network's credentials (bot token, app password, URL).
    Credentials,
}

/// Image rules of a network.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MediaRules {
    /// Images allowed on one post (0: none).
    pub max_images: usize,
    /// The network refuses a post without an image (Instagram).
    pub required: bool,
    /// Accepted image types.
    pub types: Vec<&'static str>,
    /// Largest image the network takes, in bytes.
    pub max_bytes: u64,
    /// The network keeps alternative text.
    pub alt_text: bool,
}

/// Text rules of a network.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TextRules {
    /// Longest text of one part, in `unit`.
    pub limit: usize,
    /// What is counted: graphemes, weighted characters, UTF-16 code units, ….
    pub unit: &'static str,
    /// How the network counts, in a sentence.
    pub counting: &'static str,
}

/// One network, as `GET /v1/platforms` lists it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PlatformInfo {
    pub platform: Platform,
    pub name: &'static str,
    pub connect: ConnectMethod,
    /// OAuth networks: whether this Herald has the network's client id and
    /// secret (`HERALD_<NET>_CLIENT_ID`/`_SECRET`). Always true for the others.
    pub configured: bool,
    /// Why it is not configured, and what to set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_configured: Option<String>,
    /// Herald can publish to it.
    pub publishes: bool,
    pub text: TextRules,
    pub media: MediaRules,
    pub thread: ThreadMode,
    /// Herald can read the answers to a post there (reply tracking).
    pub replies: bool,
    /// What reply tracking needs or cannot do on this network.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replies_note: Option<&'static str>,
    /// A published post can be deleted through the API (retraction).
    pub delete: bool,
    /// A published post can be edited through the API.
    pub edit: bool,
}

const JPEG_PNG_GIF_WEBP: [&str; 4] = ["image/jpeg", "image/png", "image/gif", "image/webp"];
const MB: u64 = 1024 * 1024;

/// The static facts of `platform` (`configured` is filled in by the caller).
pub fn info(platform: Platform) -> PlatformInfo {
    let (unit, counting) = text_facts(platform);
    let media = |max_images, required, types: &[&'static str], max_bytes, alt_text| MediaRules {
        max_images,
        required,
        types: types.to_vec(),
        max_bytes,
        alt_text,
    };
    let (name, connect, thread, replies, delete, edit, media) = match platform {
        Platform::Mastodon => (
            "Mastodon",
            ConnectMethod::Oauth,
            ThreadMode::Reply,
            true,
            true,
            true,
            media(4, false, &JPEG_PNG_GIF_WEBP, 16 * MB, true),
        ),
        Platform::Bluesky => (
            "Bluesky",
            ConnectMethod::Credentials,
            ThreadMode::Reply,
            true,
            true,
            false,
            media(
                4,
                false,
                &["image/jpeg", "image/png", "image/webp"],
                1_000_000,
                true,
            ),
        ),
        Platform::X => (
            "X",
            ConnectMethod::Oauth,
            ThreadMode::Reply,
            true,
            true,
            false,
            media(4, false, &JPEG_PNG_GIF_WEBP, 5 * MB, true),
        ),
        Platform::Threads => (
            "Threads",
            ConnectMethod::Oauth,
            ThreadMode::Reply,
            true,
            true,
            false,
            media(1, false, &["image/jpeg", "image/png"], 8 * MB, true),
        ),
        Platform::Linkedin => (
            "LinkedIn",
            ConnectMethod::Oauth,
            ThreadMode::Comment,
            true,
            true,
            false,
            media(
                1,
                false,
                &["image/jpeg", "image/png", "image/gif"],
                36 * MB,
                true,
            ),
        ),
        Platform::Facebook => (
            "Facebook Pages",
            ConnectMethod::Oauth,
            ThreadMode::Comment,
            true,
            true,
            true,
            media(
                1,
                false,
                &["image/jpeg", "image/png", "image/gif"],
                4 * MB,
                true,
            ),
        ),
        Platform::Instagram => (
            "Instagram",
            ConnectMethod::Oauth,
            ThreadMode::None,
            true,
            false,
            false,
            media(1, true, &["image/jpeg"], 8 * MB, true),
        ),
        Platform::Telegram => (
            "Telegram",
            ConnectMethod::Credentials,
            ThreadMode::Reply,
            true,
            true,
            true,
            media(
                1,
                false,
                &["image/jpeg", "image/png", "image/gif", "image/webp"],
                10 * MB,
                false,
            ),
        ),
        Platform::Discord => (
            "Discord",
            ConnectMethod::Credentials,
            ThreadMode::Sequence,
            true,
            true,
            true,
            media(4, false, &JPEG_PNG_GIF_WEBP, 8 * MB, true),
        ),
        Platform::Webhook => (
            "Webhook",
            ConnectMethod::Credentials,
            ThreadMode::Reply,
            false,
            false,
            false,
            media(4, false, &JPEG_PNG_GIF_WEBP, 16 * MB, true),
        ),
        Platform::Sandbox => (
            "Sandbox",
            ConnectMethod::Credentials,
            ThreadMode::Reply,
            true,
            true,
            false,
            media(4, false, &JPEG_PNG_GIF_WEBP, 16 * MB, true),
        ),
    };
    PlatformInfo {
        platform,
        name,
        connect,
        configured: true,
        not_configured: None,
        publishes: true,
        text: TextRules {
            limit: default_limit(platform),
            unit,
            counting,
        },
        media,
        thread,
        replies,
        replies_note: replies_note(platform),
        delete,
        edit,
    }
}

/// The conditions of reply tracking on `platform` (shared/platforms.md,
/// "Replies tracking").
fn replies_note(platform: Platform) -> Option<&'static str> {
    match platform {
        Platform::Linkedin => Some(
            "comments are read on organization pages only (r_organization_social); \
             LinkedIn restricts reading comments on a member's posts",
        ),
        Platform::Telegram => Some(
            "comments in the channel's linked discussion group: the bot must be an \
             administrator of that group (or have privacy mode off) and have no webhook set",
        ),
        Platform::Discord => Some(
            "needs a bot token (credential bot_token) with the Message Content intent: \
             a webhook can post but not read",
        ),
        Platform::Facebook => Some("commenters appear by name: Facebook gives no handle"),
        Platform::Webhook => Some("a webhook only receives posts: there are no replies to read"),
        Platform::X => Some("recent search covers the last 7 days"),
        Platform::Bluesky => Some(
            "read from the post's thread; where the PDS has no feed AppView, from the \
             account's reply notifications, which hold direct answers to our posts only",
        ),
        _ => None,
    }
}

/// The settings prefix of a network that needs an app registration
/// (`HERALD_X` for `HERALD_X_CLIENT_ID`, …); `None` for the others (Mastodon
/// registers itself on each instance).
pub fn client_settings(platform: Platform) -> Option<&'static str> {
    match platform {
        Platform::X => Some("HERALD_X"),
        Platform::Linkedin => Some("HERALD_LINKEDIN"),
        Platform::Facebook => Some("HERALD_FACEBOOK"),
        Platform::Instagram => Some("HERALD_INSTAGRAM"),
        Platform::Threads => Some("HERALD_THREADS"),
        _ => None,
    }
}

fn text_facts(platform: Platform) -> (&'static str, &'static str) {
    let (_, unit) = text::measure(platform, "");
    let counting = match platform {
        Platform::Mastodon => {
            "grapheme clusters; every link counts 23; @user@domain counts as @user; the instance may raise the limit"
        }
        Platform::Bluesky => "grapheme clusters, and at most 3000 UTF-8 bytes; links count in full",
        Platform::X => {
            "weighted: Latin and punctuation weigh 1, other characters and each emoji 2; every link counts 23"
        }
        Platform::Threads => "characters, with each emoji counted as its UTF-8 byte length; at most 5 links",
        Platform::Linkedin => "characters of the commentary; reserved characters are escaped by Herald",
        Platform::Facebook => "characters; no special rule for links or emoji",
        Platform::Instagram => "characters of the caption; an image is required",
        Platform::Telegram => "UTF-16 code units",
        Platform::Discord => "characters (code points) of the message content",
        Platform::Webhook | Platform::Sandbox => "UTF-8 bytes",
    };
    (unit, counting)
}

/// Reply tracking's budget on `platform`, per account: at most `calls`
/// reads per `window_s` seconds, a share of the network's read limit that
/// leaves the rest for publishing (shared/platforms.md, "Replies tracking").
/// `None`: no replies to read, or no limit worth keeping (the sandbox).
pub fn reply_budget(platform: Platform) -> Option<(u32, u64)> {
    match platform {
        // 300 requests per 5 minutes per account: keep a third.
        Platform::Mastodon => Some((100, 300)),
        // 3,000 per 5 minutes per account on the PDS/AppView.
        Platform::Bluesky => Some((300, 300)),
        // Recent search: 300 per 15 minutes per user; keep a third.
        Platform::X => Some((100, 900)),
        // Meta's usage-based throttling: 200 calls per hour per user.
        Platform::Facebook | Platform::Instagram | Platform::Threads => Some((60, 3_600)),
        // Daily application and member caps (unpublished, reset at 00:00
        // UTC): under one read a minute on average. A poll that finds
        // nothing new costs one read (the counts).
        Platform::Linkedin => Some((1_000, 86_400)),
        // Telegram: one getUpdates per bot per run; polls read the store.
        // 50 requests per second globally; per-route buckets are smaller.
        Platform::Discord => Some((60, 60)),
        Platform::Telegram | Platform::Webhook | Platform::Sandbox => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_network_is_described() {
        for p in Platform::ALL {
            let i = info(p);
            assert_eq!(i.platform, p);
            assert!(i.text.limit > 0);
            assert!(!i.text.unit.is_empty());
        }
        assert!(info(Platform::Instagram).media.required);
        assert_eq!(info(Platform::Instagram).thread, ThreadMode::None);
        assert_eq!(info(Platform::Linkedin).thread, ThreadMode::Comment);
        assert!(!info(Platform::Instagram).delete);
    }
}
