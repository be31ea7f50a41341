//! Discord connector (shared/platforms.md §9): an incoming webhook publishes;
//! an optional bot reads the channel back to reconcile.
//!
//! Credentials: `webhook_url` (`…/api/webhooks/{id}/{token}`; the URL is the
//! secret, so it never appears in a message or a log line), and optionally
//! `bot_token` with `channel_id` (the channel the webhook posts in) for
//! reconciliation. The connector stores `guild_id` (and `channel_id` when the
//! admin gave none) once it learns them from `GET {webhook_url}`, to build
//! message links.
//!
//! - Publish: `POST {webhook_url}?wait=true` with `{content, allowed_mentions:
//!   {"parse": []}, embeds?}` (one embed per image, its alt text as the embed
//!   description). `wait=true` makes Discord answer with the Message; its id
//!   is the `remote_id`. Webhooks cannot answer a message, so a thread is a
//!   sequence: later parts are posted after the first, `reply_to` is ignored.
//! - Rate limits: `X-RateLimit-Remaining: 0` on a success pauses the account
//!   for `X-RateLimit-Reset-After`; a 429 waits the body's `retry_after`
//!   (fractional seconds), else `Retry-After`, else the reset.
//! - Reconcile: with `bot_token`, `GET {api}/channels/{channel_id}/messages
//!   ?after=<snowflake of the first attempt>&limit=100` (`Authorization: Bot`),
//!   matching our webhook's id and the text. Without a bot, a webhook cannot be
//!   read back: the outcome stays unknown and nothing is sent again.
//! - Delete: `DELETE {webhook_url}/messages/{id}`; `10008 Unknown Message` is
//!   already deleted.
//! - Credentials never expire: `refresh` keeps the trait default.
//! - Replies (bot only: a webhook cannot read): `GET {api}/channels/
//!   {channel_id}/messages?after=<cursor>&limit=100`, oldest page first
//!   (the first poll reads after our message), keeping the messages whose
//!   `message_reference` points at one of our parts or at a reply already in
//!   the tree. The cursor is the newest message id read, with the ids of the
//!   public replies found so far (at most [`MAX_KNOWN_REPLIES`], the newest)
//!   so a reply to a reply seen in an earlier poll is still recognised; a
//!   page shorter than 100 ends the poll, a poll reads at most 10 pages.
//!   The bot needs View Channel and Read Message History, and the privileged
//!   Message Content intent to see `content`. The bot's own messages (its
//!   answers; its user id from `GET /users/@me`, asked once per token) and
//!   our webhook's are left out.
//! - Answering a reply (`answers_reply`): webhooks cannot reply, so the bot
//!   posts `POST {api}/channels/{channel_id}/messages` with
//!   `message_reference` (the reply), `allowed_mentions` that notify the
//!   replied user and nobody else, and a `nonce` derived from the
//!   delivery's key with `enforce_nonce` (a repeat within minutes returns
//!   the first message). Without a bot token the answer is refused.
//!   Reconciling it reads the channel for the bot's message answering that
//!   reply with the same text.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};

use super::connector::{clip, send_call};
use super::{
    AccountSession, Connector, ConnectorError, FetchedReply, Post, Published, ReplyPage, ReplyQuery,
};

/// Discord's epoch (2015-01-01T00:00:00Z), in Unix milliseconds.
const DISCORD_EPOCH_MS: i64 = 1_420_070_400_000;
/// Embeds on one message.
const MAX_EMBEDS: usize = 10;
/// Wait after a 429 that says nothing about when to come back.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);
/// Messages created this long before the first attempt cannot be ours (clock skew margin).
const LOOKUP_MARGIN: chrono::Duration = chrono::Duration::minutes(1);
/// Discord's largest page of channel messages.
const PAGE_SIZE: usize = 100;
/// Reading more pages than this (1,000 messages) gives up rather than burn the rate limit.
const MAX_PAGES: usize = 10;
/// Longest network message quoted in an error.
const MAX_MESSAGE: usize = 300;
/// Pages of channel messages one reply poll reads before it resumes next time.
const MAX_REPLY_PAGES: usize = 10;
/// Public replies remembered in the cursor (for replies to them).
pub const MAX_KNOWN_REPLIES: usize = 500;

/// Publishes through Discord incoming webhooks; reads with a bot on
/// `HERALD_DISCORD_API_URL` (or the account's base URL).
#[derive(Clone)]
pub struct Discord {
    http: reqwest::Client,
    api_url: String,
    /// SHA-256 of (API, bot token) → the bot's user id (`GET /users/@me`):
    /// the bot's own answers are left out of the replies.
    bot_ids: Arc<Mutex<HashMap<[u8; 32], String>>>,
}

impl Discord {
    pub fn new(http: reqwest::Client, api_url: &str) -> Self {
        Self {
            http,
            api_url: api_url.trim().trim_end_matches('/').to_string(),
            bot_ids: Arc::default(),
        }
    }
}

/// A parsed webhook URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// The URL without its query string.
    url: url::Url,
    /// Query pairs the admin gave (`thread_id`), kept on every call except `wait`.
    query: Vec<(String, String)>,
    /// The webhook's id (a snowflake).
    pub id: String,
}

impl Webhook {
    /// `…/webhooks/{id}/{token}` with an `http(s)` scheme.
    pub fn parse(raw: &str) -> Option<Webhook> {
        let mut url = url::Url::parse(raw.trim()).ok()?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return None;
        }
        let segments: Vec<String> = url.path_segments()?.map(str::to_string).collect();
        let at = segments.iter().rposition(|s| s == "webhooks")?;
        let (id, token) = (segments.get(at + 1)?, segments.get(at + 2)?);
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) || token.is_empty() {
            return None;
        }
        if segments.len() > at + 3 && !segments[at + 3..].iter().all(String::is_empty) {
            return None;
        }
        let query = url
            .query_pairs()
            .filter(|(k, _)| k != "wait")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        url.set_query(None);
        url.set_fragment(None);
        let path = format!("/{}", segments[..at + 3].join("/"));
        url.set_path(&path);
        Some(Webhook {
            url,
            query,
            id: id.clone(),
        })
    }

    /// The webhook URL with `suffix` appended to its path and the kept query.
    fn at(&self, suffix: &str, extra: &[(&str, &str)]) -> url::Url {
        let mut url = self.url.clone();
        if !suffix.is_empty() {
            let path = format!("{}/{}", url.path().trim_end_matches('/'), suffix);
            url.set_path(&path);
        }
        let pairs: Vec<(&str, &str)> = self
            .query
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(extra.iter().copied())
            .collect();
        if !pairs.is_empty() {
            url.query_pairs_mut().extend_pairs(pairs);
        }
        url
    }
}

/// What the connector reads from the account's credentials.
struct Target {
    hook: Webhook,
    bot_token: Option<String>,
    channel_id: Option<String>,
    guild_id: Option<String>,
    api: String,
}

/// An HTTP answer: status, rate-limit headers, JSON body (Null if none).
#[derive(Debug, Clone, Default)]
struct Reply {
    status: u16,
    limits: RateHeaders,
    body: Value,
}

/// `X-RateLimit-*` and `Retry-After`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RateHeaders {
    pub remaining: Option<u64>,
    /// `X-RateLimit-Reset-After`, seconds.
    pub reset_after: Option<f64>,
    /// `X-RateLimit-Reset`, epoch seconds.
    pub reset: Option<f64>,
    /// `Retry-After`, seconds.
    pub retry_after: Option<f64>,
}

impl RateHeaders {
    pub fn parse(headers: &HeaderMap) -> Self {
        let number = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|v| v.is_finite() && *v >= 0.0)
        };
        Self {
            remaining: number("x-ratelimit-remaining").map(|v| v as u64),
            reset_after: number("x-ratelimit-reset-after"),
            reset: number("x-ratelimit-reset"),
            retry_after: number("retry-after"),
        }
    }

    /// When the bucket refills: `Reset-After` from `now`, else `Reset`.
    fn reset_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if let Some(after) = self.reset_after {
            return Some(now + chrono::Duration::milliseconds((after * 1000.0).ceil() as i64));
        }
        self.reset
            .and_then(|epoch| DateTime::from_timestamp_millis((epoch * 1000.0).ceil() as i64))
    }
}

impl Discord {
    async fn target(&self, account: &AccountSession) -> Result<Target, ConnectorError> {
        let credentials = account.credentials.lock().await;
        let raw = credentials
            .get("webhook_url")
            .filter(|u| !u.trim().is_empty())
            .ok_or_else(|| revoked("the account has no webhook_url: reconnect it"))?;
        let hook = Webhook::parse(raw).ok_or_else(|| {
            revoked(
                "the webhook_url is not a Discord webhook URL (…/api/webhooks/<id>/<token>): reconnect the account",
            )
        })?;
        let field = |name: &str| {
            credentials
                .get(name)
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let api = account
            .base_url
            .as_deref()
            .map(|b| b.trim().trim_end_matches('/'))
            .filter(|b| !b.is_empty())
            .unwrap_or(&self.api_url)
            .to_string();
        Ok(Target {
            hook,
            bot_token: field("bot_token"),
            channel_id: field("channel_id").filter(|c| is_snowflake(c)),
            guild_id: field("guild_id").filter(|g| is_snowflake(g)),
            api,
        })
    }

    /// Send a request and read its answer. Only an execute (`is_write`) can
    /// have an unknown outcome; any other failed call is transient.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        is_write: bool,
    ) -> Result<Reply, ConnectorError> {
        let answer = send_call(request, is_write).await?;
        Ok(Reply {
            status: answer.status,
            limits: RateHeaders::parse(&answer.headers),
            body: serde_json::from_slice(&answer.bytes).unwrap_or(Value::Null),
        })
    }

    /// `GET {webhook_url}`: the webhook object (no auth: the token is in the URL).
    async fn get_webhook(&self, hook: &Webhook) -> Result<Value, ConnectorError> {
        let reply = self.send(self.http.get(hook.at("", &[])), false).await?;
        if reply.status == 200 {
            return Ok(reply.body);
        }
        Err(classify(&reply, Utc::now()))
    }

    /// Remember the webhook's guild (for links) and channel (for reading back).
    async fn learn_webhook(&self, account: &AccountSession, webhook: &Value) -> Option<String> {
        let guild = id_of(&webhook["guild_id"]);
        let channel = id_of(&webhook["channel_id"]);
        let mut credentials = account.credentials.lock().await;
        if let Some(guild) = &guild {
            credentials.set("guild_id", guild.clone());
        }
        if let Some(channel) = channel {
            if credentials
                .get("channel_id")
                .is_none_or(|c| c.trim().is_empty())
            {
                credentials.set("channel_id", channel);
            }
        }
        guild
    }

    /// Find `post` among the channel's messages since its first attempt:
    /// the oldest message `ours` accepts with the post's text.
    async fn find(
        &self,
        target: &Target,
        bot_token: &str,
        channel_id: &str,
        post: &Post,
        ours: impl Fn(&Value) -> bool,
    ) -> Result<Option<Published>, ConnectorError> {
        let mut after = snowflake_at(post.first_attempt_at - LOOKUP_MARGIN);
        for _ in 0..MAX_PAGES {
            let url = format!(
                "{}/channels/{channel_id}/messages?after={after}&limit={PAGE_SIZE}",
                target.api
            );
            let request = self
                .http
                .get(url)
                .header("Authorization", format!("Bot {bot_token}"));
            let reply = self.send(request, false).await?;
            if reply.status != 200 {
                return Err(match classify(&reply, Utc::now()) {
                    ConnectorError::AuthRevoked { message, status } => ConnectorError::Unknown {
                        message: format!(
                            "the bot could not read the channel to check ({message}; status {}): fix the bot_token or channel_id",
                            status.unwrap_or_default()
                        ),
                    },
                    other => other,
                });
            }
            let page = reply.body.as_array().map(Vec::as_slice).unwrap_or_default();
            let found = page
                .iter()
                .filter(|m| ours(m))
                .filter(|m| matches_post(m, post))
                .filter_map(|m| Some((snowflake_of(m)?, m)))
                .min_by_key(|(id, _)| *id);
            if let Some((_, message)) = found {
                return Ok(published(message, target.guild_id.as_deref(), None));
            }
            let newest = page.iter().filter_map(snowflake_of).max();
            match newest {
                Some(newest) if page.len() >= PAGE_SIZE && newest > after => after = newest,
                _ => return Ok(None),
            }
        }
        Err(ConnectorError::Unknown {
            message: format!(
                "read {} messages of the channel without reaching the present",
                MAX_PAGES * PAGE_SIZE
            ),
        })
    }
}

impl Connector for Discord {
    async fn publish(
        &self,
        account: &AccountSession,
        post: &Post,
    ) -> Result<Published, ConnectorError> {
        let target = self.target(account).await?;
        if let Some(parent) = post
            .reply_to
            .as_ref()
            .filter(|r| r.answers_reply)
            .map(|r| r.parent_id.trim())
        {
            return self.answer(account, &target, post, parent).await;
        }
        let body = execute_body(post)?;
        let request = self
            .http
            .post(target.hook.at("", &[("wait", "true")]))
            .json(&body);
        let reply = self.send(request, true).await?;
        if reply.status == 204 {
            return Err(ConnectorError::Unknown {
                message: "Discord accepted the message without returning it (no wait=true?)".into(),
            });
        }
        if !(200..300).contains(&reply.status) {
            return Err(classify(&reply, Utc::now()));
        }
        let pause_until = match reply.limits.remaining {
            Some(0) => reply.limits.reset_at(Utc::now()),
            _ => None,
        };
        let mut guild = target.guild_id.clone();
        if guild.is_none() && id_of(&reply.body["guild_id"]).is_none() {
            // Best effort, once per account: a link needs the guild id.
            if let Ok(webhook) = self.get_webhook(&target.hook).await {
                guild = self.learn_webhook(account, &webhook).await;
            }
        }
        published(&reply.body, guild.as_deref(), pause_until).ok_or_else(|| {
            ConnectorError::Unknown {
                message: "Discord accepted the message but its answer had no message id".into(),
            }
        })
    }

    /// With a bot: read the channel since the first attempt and look for the
    /// message our webhook posted with this text. Without one: unknown.
    async fn reconcile(
        &self,
        account: &AccountSession,
        post: &Post,
    ) -> Result<Option<Published>, ConnectorError> {
        let target = self.target(account).await?;
        let Some(bot_token) = target.bot_token.clone() else {
            return Err(ConnectorError::Unknown {
                message: "a Discord webhook cannot read messages back, so Herald cannot tell \
                          whether the message went out; look at the channel before posting again \
                          (give the account a bot_token and channel_id to let Herald check)"
                    .into(),
            });
        };
        let channel_id = self
            .channel_of(account, &target)
            .await
            .map_err(|e| match e {
                ConnectorError::Rejected { message, .. } => ConnectorError::Unknown { message },
                other => other,
            })?;
        match post.reply_to.as_ref().filter(|r| r.answers_reply) {
            // The bot's own message answering that reply.
            Some(reply_to) => {
                let parent = reply_to.parent_id.trim().to_string();
                let ours = move |m: &Value| {
                    m.get("webhook_id").is_none()
                        && m["author"]["bot"] == Value::Bool(true)
                        && id_of(&m["message_reference"]["message_id"]).as_deref()
                            == Some(parent.as_str())
                };
                self.find(&target, &bot_token, &channel_id, post, ours)
                    .await
            }
            None => {
                let hook = target.hook.id.clone();
                let ours =
                    move |m: &Value| id_of(&m["webhook_id"]).as_deref() == Some(hook.as_str());
                self.find(&target, &bot_token, &channel_id, post, ours)
                    .await
            }
        }
    }

    /// `DELETE {webhook_url}/messages/{id}`; a message already gone is deleted.
    async fn delete(
        &self,
        account: &AccountSession,
        remote_id: &str,
    ) -> Result<(), ConnectorError> {
        let target = self.target(account).await?;
        let id = remote_id.trim();
        if !is_snowflake(id) {
            return Err(ConnectorError::Rejected {
                message: format!("'{remote_id}' is not a Discord message id"),
                status: None,
            });
        }
        let url = target.hook.at(&format!("messages/{id}"), &[]);
        let reply = self
            .send(self.http.request(Method::DELETE, url), false)
            .await?;
        if (200..300).contains(&reply.status) {
            return Ok(());
        }
        if reply.status == 404 && error_code(&reply.body) == Some(10008) {
            return Ok(());
        }
        Err(classify(&reply, Utc::now()))
    }

    /// `GET {webhook_url}` proves the webhook works (and gives its guild and
    /// channel); with a bot token, one channel read proves the bot can check.
    async fn check(&self, account: &AccountSession) -> Result<(), ConnectorError> {
        let target = self.target(account).await?;
        let webhook = self.get_webhook(&target.hook).await?;
        self.learn_webhook(account, &webhook).await;
        let Some(bot_token) = target.bot_token.as_deref() else {
            return Ok(());
        };
        let Some(channel) = target.channel_id.or_else(|| id_of(&webhook["channel_id"])) else {
            return Ok(());
        };
        let request = self
            .http
            .get(format!(
                "{}/channels/{channel}/messages?limit=1",
                target.api
            ))
            .header("Authorization", format!("Bot {bot_token}"));
        let reply = self.send(request, false).await?;
        if reply.status == 200 {
            return Ok(());
        }
        Err(match classify(&reply, Utc::now()) {
            ConnectorError::AuthRevoked { message, status } => ConnectorError::AuthRevoked {
                message: format!("the bot_token was refused ({message})"),
                status,
            },
            other => other,
        })
    }

    /// The bot reads the channel after the cursor and keeps the messages
    /// answering our parts or a reply in the tree (see the module notes).
    async fn replies(
        &self,
        account: &AccountSession,
        query: &ReplyQuery,
    ) -> Result<ReplyPage, ConnectorError> {
        let target = self.target(account).await?;
        let Some(bot_token) = target.bot_token.clone() else {
            return Err(ConnectorError::Rejected {
                message: "a Discord webhook cannot read messages: give the account a bot_token \
                          (a bot in the server that can read the channel) to collect replies"
                    .into(),
                status: None,
            });
        };
        let root = query.root_id.trim();
        if !is_snowflake(root) {
            return Err(ConnectorError::Rejected {
                message: format!("'{root}' is not a Discord message id"),
                status: None,
            });
        }
        let channel_id = self.channel_of(account, &target).await?;
        let bot_id = self.bot_user_id(&target.api, &bot_token).await?;
        let mut cursor = ReplyCursor::parse(query.cursor.as_deref(), root);
        let mut tree: std::collections::HashSet<String> = query
            .own_ids
            .iter()
            .cloned()
            .chain(cursor.known.iter().cloned())
            .collect();
        tree.insert(root.to_string());
        let guild = target.guild_id.clone();
        let mut found = Vec::new();
        for _ in 0..MAX_REPLY_PAGES {
            let request = self
                .http
                .get(format!(
                    "{}/channels/{channel_id}/messages?after={}&limit={PAGE_SIZE}",
                    target.api, cursor.after
                ))
                .header("Authorization", format!("Bot {bot_token}"));
            let reply = self.send(request, false).await?;
            if reply.status != 200 {
                let error = classify_bot(&reply, Utc::now());
                if found.is_empty() {
                    return Err(error);
                }
                tracing::warn!(%error, "Discord reply poll stopped early; resuming next time");
                break;
            }
            let mut page: Vec<(u64, &Value)> = reply
                .body
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .filter_map(|m| Some((snowflake_of(m)?, m)))
                .collect();
            page.sort_by_key(|(id, _)| *id);
            for (id, message) in &page {
                cursor.after = cursor.after.max(*id);
                let Some(parent) = reply_parent(message) else {
                    continue;
                };
                let grandparent =
                    id_of(&message["referenced_message"]["message_reference"]["message_id"]);
                if !tree.contains(&parent) && !grandparent.is_some_and(|g| tree.contains(&g)) {
                    continue;
                }
                let id = id.to_string();
                tree.insert(parent);
                tree.insert(id.clone());
                let ours = query.own_ids.contains(&id)
                    || id_of(&message["webhook_id"]).as_deref() == Some(target.hook.id.as_str())
                    || id_of(&message["author"]["id"]).as_deref() == Some(bot_id.as_str());
                if ours {
                    continue;
                }
                if let Some(reply) = channel_reply(message, &channel_id, guild.as_deref()) {
                    cursor.remember(&id);
                    found.push(reply);
                }
            }
            if page.len() < PAGE_SIZE {
                break;
            }
        }
        Ok(ReplyPage {
            replies: found,
            cursor: Some(cursor.encode()),
        })
    }
}

impl Discord {
    /// The bot's user id (`GET /users/@me`), asked once per token and kept.
    async fn bot_user_id(&self, api: &str, token: &str) -> Result<String, ConnectorError> {
        use sha2::Digest;
        let key: [u8; 32] = sha2::Sha256::new()
            .chain_update(api)
            .chain_update([0])
            .chain_update(token)
            .finalize()
            .into();
        let known = self
            .bot_ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned();
        if let Some(id) = known {
            return Ok(id);
        }
        let request = self
            .http
            .get(format!("{api}/users/@me"))
            .header("Authorization", format!("Bot {token}"));
        let reply = self.send(request, false).await?;
        if reply.status != 200 {
            return Err(classify_bot(&reply, Utc::now()));
        }
        let id = id_of(&reply.body["id"]).ok_or_else(|| ConnectorError::Transient {
            message: "Discord answered /users/@me without the bot's id".into(),
            status: Some(200),
        })?;
        self.bot_ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, id.clone());
        Ok(id)
    }

    /// The channel the webhook posts in: the stored `channel_id`, else the
    /// webhook's (learned once with `GET {webhook_url}`).
    async fn channel_of(
        &self,
        account: &AccountSession,
        target: &Target,
    ) -> Result<String, ConnectorError> {
        if let Some(channel) = target.channel_id.clone() {
            return Ok(channel);
        }
        let webhook = self.get_webhook(&target.hook).await?;
        self.learn_webhook(account, &webhook).await;
        id_of(&webhook["channel_id"]).ok_or_else(|| ConnectorError::Rejected {
            message:
                "the webhook did not say which channel it posts in: set the account's channel_id"
                    .into(),
            status: None,
        })
    }

    /// Answer the reply `parent` as the bot: `POST /channels/{id}/messages`
    /// with `message_reference`, the replied user notified, a `nonce` with
    /// `enforce_nonce`.
    async fn answer(
        &self,
        account: &AccountSession,
        target: &Target,
        post: &Post,
        parent: &str,
    ) -> Result<Published, ConnectorError> {
        let Some(bot_token) = target.bot_token.as_deref() else {
            return Err(ConnectorError::Rejected {
                message: "answering a comment on Discord needs a bot: webhooks cannot reply to \
                          a message; give the account a bot_token"
                    .into(),
                status: None,
            });
        };
        if !is_snowflake(parent) {
            return Err(ConnectorError::Rejected {
                message: format!("'{parent}' is not a Discord message id to answer"),
                status: None,
            });
        }
        let channel_id = self.channel_of(account, target).await?;
        let body = answer_body(post, parent, &channel_id)?;
        let request = self
            .http
            .post(format!("{}/channels/{channel_id}/messages", target.api))
            .header("Authorization", format!("Bot {bot_token}"))
            .json(&body);
        let reply = self.send(request, true).await?;
        if !(200..300).contains(&reply.status) {
            return Err(classify_bot(&reply, Utc::now()));
        }
        let pause_until = match reply.limits.remaining {
            Some(0) => reply.limits.reset_at(Utc::now()),
            _ => None,
        };
        published(&reply.body, target.guild_id.as_deref(), pause_until).ok_or_else(|| {
            ConnectorError::Unknown {
                message: "Discord accepted the answer but its answer had no message id".into(),
            }
        })
    }
}

/// Where a reply poll stands: the newest message id read, and the public
/// replies found so far (newest last). Written `<after>` or
/// `<after> <id>,<id>,…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyCursor {
    pub after: u64,
    pub known: Vec<String>,
}

impl ReplyCursor {
    /// A stored cursor; none (or an unreadable one) starts right after `root`.
    pub fn parse(cursor: Option<&str>, root: &str) -> ReplyCursor {
        let start = ReplyCursor {
            after: root.parse().unwrap_or(0),
            known: Vec::new(),
        };
        let Some(cursor) = cursor.map(str::trim).filter(|c| !c.is_empty()) else {
            return start;
        };
        let (after, known) = cursor.split_once(' ').unwrap_or((cursor, ""));
        let Ok(after) = after.parse::<u64>() else {
            return start;
        };
        ReplyCursor {
            after: after.max(start.after),
            known: known
                .split(',')
                .filter(|id| is_snowflake(id))
                .map(str::to_string)
                .collect(),
        }
    }

    /// Remember a public reply (the oldest are forgotten past the bound).
    fn remember(&mut self, id: &str) {
        if !self.known.iter().any(|k| k == id) {
            self.known.push(id.to_string());
        }
        if self.known.len() > MAX_KNOWN_REPLIES {
            let extra = self.known.len() - MAX_KNOWN_REPLIES;
            self.known.drain(..extra);
        }
    }

    pub fn encode(&self) -> String {
        if self.known.is_empty() {
            self.after.to_string()
        } else {
            format!("{} {}", self.after, self.known.join(","))
        }
    }
}

/// The message a channel message replies to (`message_reference` of a reply;
/// a forward, reference type 1, answers nothing).
fn reply_parent(message: &Value) -> Option<String> {
    let reference = message.get("message_reference")?;
    if reference["type"].as_u64().unwrap_or(0) != 0 {
        return None;
    }
    id_of(&reference["message_id"])
}

/// A channel message as a reply: the author's username, the content, the
/// message link.
fn channel_reply(message: &Value, channel_id: &str, guild: Option<&str>) -> Option<FetchedReply> {
    let id = id_of(&message["id"])?;
    let guild = id_of(&message["guild_id"]).or_else(|| guild.map(str::to_string));
    Some(FetchedReply {
        url: guild.map(|g| format!("https://discord.com/channels/{g}/{channel_id}/{id}")),
        parent_id: reply_parent(message),
        author: message["author"]["username"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        text: message["content"].as_str().unwrap_or_default().to_string(),
        created_at: message["timestamp"]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map_or_else(Utc::now, |t| t.with_timezone(&Utc)),
        remote_id: id,
    })
}

/// The bot's create-message body answering `parent`: the post's content and
/// images, the reference (failing if the reply is gone), only the replied
/// user notified, and a nonce the delivery's key fixes (at most 25 characters).
pub fn answer_body(post: &Post, parent: &str, channel_id: &str) -> Result<Value, ConnectorError> {
    use sha2::Digest;
    let mut body = execute_body(post)?;
    body["allowed_mentions"] = json!({"parse": [], "replied_user": true});
    body["message_reference"] = json!({
        "message_id": parent,
        "channel_id": channel_id,
        "fail_if_not_exists": true,
    });
    let digest = sha2::Sha256::digest(post.idempotency_key.as_bytes());
    body["nonce"] = json!(hex::encode(digest)[..25].to_string());
    body["enforce_nonce"] = json!(true);
    Ok(body)
}

/// Classify a failed bot call: a refused token means a new bot token; a
/// channel the bot may not read, or that is gone, is refused (publishing
/// through the webhook is not affected).
fn classify_bot(reply: &Reply, now: DateTime<Utc>) -> ConnectorError {
    let message = describe(reply);
    let status = Some(reply.status);
    match reply.status {
        401 => ConnectorError::AuthRevoked {
            message: format!("{message} (the bot_token was refused: give Herald a new bot token)"),
            status,
        },
        403 => ConnectorError::Rejected {
            message: format!(
                "{message} (the bot needs View Channel, Read Message History and Send Messages in the channel)"
            ),
            status,
        },
        404 => ConnectorError::Rejected {
            message: format!("{message} (the channel or message is gone)"),
            status,
        },
        _ => classify(reply, now),
    }
}

fn revoked(message: &str) -> ConnectorError {
    ConnectorError::AuthRevoked {
        message: message.to_string(),
        status: None,
    }
}

fn is_snowflake(value: &str) -> bool {
    !value.is_empty() && value.len() <= 20 && value.bytes().all(|b| b.is_ascii_digit())
}

/// Snowflakes are strings in Discord's API; accept a number too.
fn id_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if is_snowflake(s) => Some(s.clone()),
        Value::Number(n) if n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

fn snowflake_of(message: &Value) -> Option<u64> {
    id_of(&message["id"])?.parse().ok()
}

/// The smallest snowflake of instant `at`: messages created at or after it have larger ids.
pub fn snowflake_at(at: DateTime<Utc>) -> u64 {
    let ms = (at.timestamp_millis() - DISCORD_EPOCH_MS).max(0) as u64;
    ms << 22
}

/// The execute-webhook body of `post`. Mentions are never parsed, so a
/// statement cannot ping `@everyone`.
pub fn execute_body(post: &Post) -> Result<Value, ConnectorError> {
    if post.media.len() > MAX_EMBEDS {
        return Err(ConnectorError::Rejected {
            message: format!(
                "a Discord message carries at most {MAX_EMBEDS} images, and this post has {}",
                post.media.len()
            ),
            status: None,
        });
    }
    let mut body = json!({"allowed_mentions": {"parse": []}});
    if !post.text.is_empty() || post.media.is_empty() {
        body["content"] = json!(post.text);
    }
    if !post.media.is_empty() {
        let embeds: Vec<Value> = post
            .media
            .iter()
            .map(|image| {
                let mut embed = json!({"image": {"url": image.url}});
                if let Some(alt) = image.alt.as_deref().filter(|a| !a.trim().is_empty()) {
                    embed["description"] = json!(alt);
                }
                embed
            })
            .collect();
        body["embeds"] = json!(embeds);
    }
    Ok(body)
}

/// Whether a channel message is `post`: same text (trimmed), or for an
/// image-only post, the same first image.
fn matches_post(message: &Value, post: &Post) -> bool {
    let content = message["content"].as_str().unwrap_or_default();
    if !post.text.trim().is_empty() {
        return normalize(content) == normalize(&post.text);
    }
    let first = message["embeds"][0]["image"]["url"].as_str();
    content.trim().is_empty()
        && first.is_some()
        && first == post.media.first().map(|m| m.url.as_str())
}

fn normalize(text: &str) -> String {
    text.replace("\r\n", "\n").trim().to_string()
}

/// The Message Discord answered with, as Herald keeps it.
fn published(
    message: &Value,
    guild_id: Option<&str>,
    pause_until: Option<DateTime<Utc>>,
) -> Option<Published> {
    let id = id_of(&message["id"])?;
    let channel = id_of(&message["channel_id"]);
    let guild = id_of(&message["guild_id"]).or_else(|| guild_id.map(str::to_string));
    let remote_url = match (guild, channel) {
        (Some(guild), Some(channel)) => Some(format!(
            "https://discord.com/channels/{guild}/{channel}/{id}"
        )),
        _ => None,
    };
    Some(Published {
        remote_id: id,
        remote_url,
        pause_until,
    })
}

fn error_code(body: &Value) -> Option<u64> {
    body["code"].as_u64()
}

/// The `_errors` messages of a `50035 Invalid Form Body`, each with its field path.
pub fn form_errors(errors: &Value) -> Vec<String> {
    fn walk(value: &Value, path: &mut Vec<String>, out: &mut Vec<String>) {
        let Value::Object(map) = value else {
            return;
        };
        for (key, child) in map {
            if key == "_errors" {
                for error in child.as_array().map(Vec::as_slice).unwrap_or_default() {
                    let message = error["message"].as_str().unwrap_or("invalid");
                    if path.is_empty() {
                        out.push(message.to_string());
                    } else {
                        out.push(format!("{}: {message}", path.join(".")));
                    }
                }
            } else {
                path.push(key.clone());
                walk(child, path, out);
                path.pop();
            }
        }
    }
    let mut out = Vec::new();
    walk(errors, &mut Vec::new(), &mut out);
    out
}

/// "Discord answered 400 (50035 Invalid Form Body): content: Must be 2000 or fewer in length."
fn describe(reply: &Reply) -> String {
    let code = error_code(&reply.body).filter(|c| *c != 0);
    let message = reply.body["message"].as_str().unwrap_or_default().trim();
    let mut text = format!("Discord answered {}", reply.status);
    match (code, message.is_empty()) {
        (Some(code), false) => text.push_str(&format!(" ({code} {message})")),
        (Some(code), true) => text.push_str(&format!(" (code {code})")),
        (None, false) => text.push_str(&format!(" ({message})")),
        (None, true) => {}
    }
    let details = form_errors(&reply.body["errors"]);
    if !details.is_empty() {
        text.push_str(": ");
        text.push_str(&details.join("; "));
    }
    clip(&text, MAX_MESSAGE)
}

/// How long to wait after a 429: the body's `retry_after`, else
/// `Retry-After`, else the bucket's reset, else a few seconds.
fn retry_after(reply: &Reply, now: DateTime<Utc>) -> Duration {
    let seconds = reply.body["retry_after"]
        .as_f64()
        .or(reply.limits.retry_after)
        .filter(|s| s.is_finite() && *s >= 0.0);
    if let Some(seconds) = seconds {
        return Duration::from_secs_f64(seconds).max(Duration::from_millis(100));
    }
    reply
        .limits
        .reset_at(now)
        .and_then(|at| (at - now).to_std().ok())
        .map(|d| d.max(Duration::from_millis(100)))
        .unwrap_or(DEFAULT_RETRY_AFTER)
}

/// Classify a failed call (shared/platforms.md §9.5).
fn classify(reply: &Reply, now: DateTime<Utc>) -> ConnectorError {
    let message = describe(reply);
    let status = Some(reply.status);
    match reply.status {
        429 => ConnectorError::RateLimited {
            retry_after: retry_after(reply, now),
            message,
            status,
        },
        401 => ConnectorError::AuthRevoked {
            message: format!(
                "{message} (the webhook token is no longer valid: give Herald a new webhook URL)"
            ),
            status,
        },
        404 => ConnectorError::AuthRevoked {
            message: format!("{message} (the webhook was deleted: give Herald a new webhook URL)"),
            status,
        },
        408 | 500..=599 => ConnectorError::Transient { message, status },
        _ => ConnectorError::Rejected { message, status },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platforms::MediaItem;
    use chrono::TimeZone;

    fn reply(status: u16, body: Value) -> Reply {
        Reply {
            status,
            body,
            ..Reply::default()
        }
    }

    #[test]
    fn webhook_urls_are_parsed_and_keep_a_thread_id() {
        let hook =
            Webhook::parse("https://discord.com/api/webhooks/123456789012345678/AbC-dEf_123?wait=false&thread_id=99")
                .unwrap();
        assert_eq!(hook.id, "123456789012345678");
        assert_eq!(
            hook.at("", &[("wait", "true")]).as_str(),
            "https://discord.com/api/webhooks/123456789012345678/AbC-dEf_123?thread_id=99&wait=true"
        );
        assert_eq!(
            hook.at("messages/5", &[]).as_str(),
            "https://discord.com/api/webhooks/123456789012345678/AbC-dEf_123/messages/5?thread_id=99"
        );
        let versioned = Webhook::parse("http://127.0.0.1:9/api/v10/webhooks/1/tok/").unwrap();
        assert_eq!(
            versioned.at("", &[]).as_str(),
            "http://127.0.0.1:9/api/v10/webhooks/1/tok"
        );
        assert_eq!(
            Webhook::parse("https://discord.com/api/webhooks/abc/tok"),
            None
        );
        assert_eq!(Webhook::parse("https://discord.com/api/webhooks/1"), None);
        assert_eq!(
            Webhook::parse("https://discord.com/api/webhooks/1/tok/messages/2"),
            None
        );
        assert_eq!(Webhook::parse("ftp://discord.com/api/webhooks/1/tok"), None);
        assert_eq!(Webhook::parse("not a url"), None);
    }

    #[test]
    fn snowflakes_encode_milliseconds_since_2015() {
        let at = Utc.with_ymd_and_hms(2015, 1, 1, 0, 0, 1).unwrap();
        assert_eq!(snowflake_at(at), 1000 << 22);
        // A documented example: 175928847299117063 was created 2016-04-30T11:18:25.796Z.
        let example = Utc.timestamp_millis_opt(1_462_015_105_796).unwrap();
        assert_eq!(snowflake_at(example), 175928847299117063 >> 22 << 22);
    }

    #[test]
    fn the_body_never_pings_and_carries_one_embed_per_image() {
        let mut post = Post {
            text: "Shelter open at 5 Main St. @everyone".into(),
            ..Post::default()
        };
        assert_eq!(
            execute_body(&post).unwrap(),
            json!({"content": post.text, "allowed_mentions": {"parse": []}})
        );
        post.media = vec![
            MediaItem {
                url: "https://example.org/a.png".into(),
                alt: Some("Map of the shelters".into()),
                content_type: None,
            },
            MediaItem {
                url: "https://example.org/b.png".into(),
                alt: None,
                content_type: None,
            },
        ];
        let body = execute_body(&post).unwrap();
        assert_eq!(
            body["embeds"],
            json!([
                {"image": {"url": "https://example.org/a.png"}, "description": "Map of the shelters"},
                {"image": {"url": "https://example.org/b.png"}}
            ])
        );
        post.text.clear();
        assert!(execute_body(&post).unwrap().get("content").is_none());
        post.media = vec![post.media[0].clone(); 11];
        assert_eq!(execute_body(&post).unwrap_err().class(), "rejected");
    }

    #[test]
    fn nested_form_errors_are_flattened_with_their_paths() {
        let body = json!({
            "code": 50035,
            "message": "Invalid Form Body",
            "errors": {
                "content": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 2000 or fewer in length."}]},
                "embeds": {"0": {"image": {"url": {"_errors": [{"code": "URL_TYPE_INVALID_URL", "message": "Not a well formed URL."}]}}}}
            }
        });
        let error = classify(&reply(400, body), Utc::now());
        assert_eq!(error.class(), "rejected");
        let text = error.to_string();
        assert!(text.contains("50035 Invalid Form Body"), "{text}");
        assert!(
            text.contains("content: Must be 2000 or fewer in length."),
            "{text}"
        );
        assert!(
            text.contains("embeds.0.image.url: Not a well formed URL."),
            "{text}"
        );
    }

    #[test]
    fn failures_are_classified_as_platforms_md_says() {
        let now = Utc::now();
        let unknown_hook = json!({"code": 10015, "message": "Unknown Webhook"});
        assert_eq!(
            classify(&reply(404, unknown_hook), now).class(),
            "auth_revoked"
        );
        let bad_token = json!({"code": 50027, "message": "Invalid Webhook Token"});
        assert_eq!(
            classify(&reply(401, bad_token), now).class(),
            "auth_revoked"
        );
        let perms = json!({"code": 50013, "message": "Missing Permissions"});
        assert_eq!(classify(&reply(403, perms), now).class(), "rejected");
        assert_eq!(classify(&reply(502, Value::Null), now).class(), "transient");
        let limited = reply(
            429,
            json!({"message": "You are being rate limited.", "retry_after": 1.5, "global": false}),
        );
        assert!(matches!(
            classify(&limited, now),
            ConnectorError::RateLimited { retry_after, .. } if retry_after == Duration::from_millis(1500)
        ));
        let headers_only = Reply {
            status: 429,
            limits: RateHeaders {
                retry_after: Some(3.0),
                ..RateHeaders::default()
            },
            body: Value::Null,
        };
        assert!(matches!(
            classify(&headers_only, now),
            ConnectorError::RateLimited { retry_after, .. } if retry_after == Duration::from_secs(3)
        ));
    }

    #[test]
    fn reply_cursors_start_after_the_post_and_keep_the_newest_known_replies() {
        let fresh = ReplyCursor::parse(None, "100");
        assert_eq!((fresh.after, fresh.known.len()), (100, 0));
        assert_eq!(fresh.encode(), "100");
        let mut read = ReplyCursor::parse(Some("250 120,130"), "100");
        assert_eq!(read.after, 250);
        assert_eq!(read.known, vec!["120", "130"]);
        read.remember("130");
        read.remember("140");
        assert_eq!(read.encode(), "250 120,130,140");
        assert_eq!(ReplyCursor::parse(Some("junk"), "100"), fresh);
        // A cursor behind the post (another post's) never reads before it.
        assert_eq!(ReplyCursor::parse(Some("5"), "100").after, 100);
        for n in 0..(MAX_KNOWN_REPLIES as u64 + 3) {
            read.remember(&(1000 + n).to_string());
        }
        assert_eq!(read.known.len(), MAX_KNOWN_REPLIES);
        assert_eq!(read.known.last().map(String::as_str), Some("1502"));
    }

    #[test]
    fn an_answer_references_the_reply_notifies_its_author_only_and_has_a_stable_nonce() {
        let post = Post {
            text: "Yes. @everyone".into(),
            idempotency_key: "delivery-key".into(),
            ..Post::default()
        };
        let body = answer_body(&post, "42", "7").unwrap();
        assert_eq!(
            body["message_reference"],
            json!({"message_id": "42", "channel_id": "7", "fail_if_not_exists": true})
        );
        assert_eq!(
            body["allowed_mentions"],
            json!({"parse": [], "replied_user": true})
        );
        assert_eq!(body["enforce_nonce"], json!(true));
        let nonce = body["nonce"].as_str().unwrap();
        assert_eq!(nonce.len(), 25);
        assert_eq!(answer_body(&post, "42", "7").unwrap()["nonce"], nonce);
        let forward = json!({"message_reference": {"type": 1, "message_id": "9"}});
        assert_eq!(reply_parent(&forward), None);
        let reply = json!({"message_reference": {"message_id": "9"}});
        assert_eq!(reply_parent(&reply).as_deref(), Some("9"));
    }

    #[test]
    fn links_need_the_guild() {
        let message = json!({"id": "30", "channel_id": "20", "content": "hi", "webhook_id": "1"});
        let with_guild = published(&message, Some("10"), None).unwrap();
        assert_eq!(with_guild.remote_id, "30");
        assert_eq!(
            with_guild.remote_url.as_deref(),
            Some("https://discord.com/channels/10/20/30")
        );
        assert_eq!(published(&message, None, None).unwrap().remote_url, None);
        assert_eq!(published(&json!({"id": "x"}), None, None), None);
    }

    #[test]
    fn a_spent_bucket_pauses_until_the_reset_after() {
        let mut headers = HeaderMap::new();
        headers.insert("x-ratelimit-remaining", "0".parse().unwrap());
        headers.insert("x-ratelimit-reset-after", "1.250".parse().unwrap());
        headers.insert("x-ratelimit-reset", "1470173023.123".parse().unwrap());
        let limits = RateHeaders::parse(&headers);
        assert_eq!(limits.remaining, Some(0));
        let now = Utc::now();
        assert_eq!(
            limits.reset_at(now),
            Some(now + chrono::Duration::milliseconds(1250))
        );
        let epoch_only = RateHeaders {
            reset: Some(1470173023.123),
            ..RateHeaders::default()
        };
        assert_eq!(
            epoch_only.reset_at(now).map(|t| t.timestamp_millis()),
            Some(1_470_173_023_123)
        );
    }
}
