//! Telegram connector (shared/platforms.md §8): a bot posting to a channel or
//! group with the Bot API.
//!
//! Credentials: `bot_token` (from @BotFather) and `chat_id` (`@channelusername`
//! or a numeric id). Calls are `POST {base}/bot<token>/<method>` with a JSON
//! body, where `base` is the account's base URL or `HERALD_TELEGRAM_API_URL`.
//! The token is in the URL path, so no URL ever goes into a message or a log
//! line: transport errors go through `describe_reqwest` (host and port only),
//! and the network's own answers are quoted from their `description`.
//!
//! - Publish: `sendMessage` (plain text, no `parse_mode`, so nothing in a
//!   statement is read as markup); a later thread part answers its parent with
//!   `reply_parameters.message_id`. One image: `sendPhoto` with the image URL
//!   (Telegram fetches it) and the text as caption; when the text is longer
//!   than a caption may be (1024 UTF-16 units), the text goes out with
//!   `sendMessage` and the image as its large link preview above the text
//!   (`link_preview_options.url`), so the statement stays one message.
//! - `remote_id` is `<chat id>:<message_id>` (the numeric chat id Telegram
//!   answers with): `deleteMessage` and replies need both.
//! - A group upgraded to a supergroup answers 400 with
//!   `parameters.migrate_to_chat_id`: nothing was sent, so the connector stores
//!   the new id in the credentials (`chat_id`) and sends once more.
//! - Flood control: Telegram asks for at most one message per second per chat
//!   and sends no rate-limit headers, so each success pauses the account for a
//!   second (`pause_until`); a 429 waits `parameters.retry_after` seconds.
//! - Reconcile: the Bot API has no idempotency key and cannot read a chat's
//!   history, so after an unknown outcome Telegram cannot be asked whether the
//!   message went out. `reconcile` answers `Err(Unknown)` and never sends again
//!   (the dispatcher checks again later, then asks a person to look).
//! - Credentials never expire: `refresh` keeps the trait default.
//! - Answering a comment (`answers_reply`): comments live in the channel's
//!   linked discussion group, not in the channel, so the answer goes to the
//!   chat of the comment's `<chat id>:<message_id>` (the group) with
//!   `reply_parameters.message_id` = the comment, not to the account's chat.
//! - Replies are not listed by `replies` (it keeps the trait default). The Bot
//!   API cannot read a chat's history; comments reach a bot only as updates
//!   (`getUpdates`, or a webhook) of the discussion group, one queue for the
//!   whole bot, where passing `offset` confirms (deletes) the earlier updates
//!   for every reader. So one consumer per bot token
//!   (`crate::replies::telegram::consume_updates`) reads the queue with
//!   [`Telegram::get_updates`] and stores the group messages
//!   ([`read_updates`]), and each delivery's poll reads them from the store.
//!   A 409 (a webhook is set) is `Rejected` saying so.
//! - Comment links ([`comment_url`]): `https://t.me/<channel>/<post>?comment=<id>`
//!   when the channel is public, else the group message in its thread,
//!   `https://t.me/<group>/<id>?thread=<thread>` or, for a private group,
//!   `https://t.me/c/<group id without -100>/<id>?thread=<thread>` (opens
//!   for members only).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::connector::{answered, clip, send_call};
use super::{AccountSession, Connector, ConnectorError, Post, Published};

/// Longest `sendPhoto` caption, in UTF-16 code units.
pub const CAPTION_LIMIT: usize = 1024;
/// Wait after a 429 that does not say how long.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(30);
/// The Bots FAQ: no more than one message per second in one chat.
const PER_CHAT_INTERVAL: chrono::Duration = chrono::Duration::seconds(1);
/// Longest network description quoted in an error.
const MAX_MESSAGE: usize = 300;

/// Publishes with the Telegram Bot API (`https://api.telegram.org` unless the
/// account or the settings name another base).
#[derive(Clone)]
pub struct Telegram {
    http: reqwest::Client,
    api_url: String,
}

impl Telegram {
    pub fn new(http: reqwest::Client, api_url: &str) -> Self {
        Self {
            http,
            api_url: api_url.trim().trim_end_matches('/').to_string(),
        }
    }
}

/// Where and as which bot to call.
struct Bot {
    base: String,
    token: String,
    chat_id: String,
}

/// A Bot API answer: the `result` of a success, or the error envelope.
#[derive(Debug, Clone, PartialEq)]
enum Answer {
    Ok(Value),
    Failed(ApiError),
}

/// `{"ok":false,"error_code","description","parameters"?}`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ApiError {
    /// `error_code`, else the HTTP status.
    pub code: u16,
    pub description: String,
    pub retry_after: Option<u64>,
    pub migrate_to_chat_id: Option<i64>,
}

impl ApiError {
    /// "Telegram answered 400: Bad Request: message is too long".
    fn describe(&self) -> String {
        let text = clip(self.description.trim(), MAX_MESSAGE);
        answered("Telegram", self.code, &text)
    }

    fn says(&self, needle: &str) -> bool {
        self.description.to_ascii_lowercase().contains(needle)
    }
}

impl Telegram {
    async fn bot(&self, account: &AccountSession) -> Result<Bot, ConnectorError> {
        let credentials = account.credentials.lock().await;
        let token = credentials
            .get("bot_token")
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| revoked("the account has no bot_token: reconnect it"))?;
        if !token_is_well_formed(token) {
            return Err(revoked(
                "the bot_token is not a Telegram bot token (expected 123456:ABC…): reconnect the account",
            ));
        }
        let chat_id = credentials
            .get("chat_id")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .ok_or_else(|| revoked("the account has no chat_id: reconnect it"))?;
        let base = account
            .base_url
            .as_deref()
            .map(|b| b.trim().trim_end_matches('/'))
            .filter(|b| !b.is_empty())
            .unwrap_or(&self.api_url);
        if url::Url::parse(base).is_err() {
            return Err(ConnectorError::Rejected {
                message: "the Telegram API base URL is not a URL".into(),
                status: None,
            });
        }
        Ok(Bot {
            base: base.to_string(),
            token: token.to_string(),
            chat_id: chat_id.to_string(),
        })
    }

    /// `POST {base}/bot<token>/<method>` with `body`. Only a message send
    /// (`is_write`) can have an unknown outcome; any other call that fails on
    /// the way is transient (it changes nothing, or can safely be repeated).
    async fn call(
        &self,
        bot: &Bot,
        method: &str,
        body: &Value,
        is_write: bool,
    ) -> Result<Answer, ConnectorError> {
        let request = self
            .http
            .post(format!("{}/bot{}/{method}", bot.base, bot.token))
            .json(body);
        let answer = send_call(request, is_write).await?;
        Ok(parse_answer(answer.status, &answer.bytes))
    }

    /// Send `post` to `bot.chat_id`; on a group-to-supergroup migration,
    /// store the new chat id and send once more.
    async fn send(
        &self,
        account: &AccountSession,
        mut bot: Bot,
        post: &Post,
    ) -> Result<Published, ConnectorError> {
        for round in 0..2 {
            let (method, body) = request_for(post, &bot.chat_id)?;
            let answer = self.call(&bot, method, &body, true).await?;
            let error = match answer {
                Answer::Ok(result) => {
                    return published(&result, Utc::now()).ok_or_else(|| ConnectorError::Unknown {
                        message: format!(
                            "Telegram accepted {method} but its answer had no message_id"
                        ),
                    })
                }
                Answer::Failed(error) => error,
            };
            match error.migrate_to_chat_id {
                Some(new_id) if round == 0 => {
                    let mut credentials = account.credentials.lock().await;
                    if credentials.get("chat_id").map(str::trim) == Some(bot.chat_id.as_str()) {
                        credentials.set("chat_id", new_id.to_string());
                    }
                    bot.chat_id = new_id.to_string();
                }
                _ => return Err(classify(&error)),
            }
        }
        // Not reached: the second round always returns.
        Err(ConnectorError::Rejected {
            message: "Telegram moved the chat twice in a row; check its id".into(),
            status: None,
        })
    }
}

impl Connector for Telegram {
    async fn publish(
        &self,
        account: &AccountSession,
        post: &Post,
    ) -> Result<Published, ConnectorError> {
        let mut bot = self.bot(account).await?;
        if let Some(target) = post.reply_to.as_ref().filter(|r| r.answers_reply) {
            // A comment is in the discussion group: answer it there.
            let (chat, _) =
                parse_remote_id(&target.parent_id).ok_or_else(|| ConnectorError::Rejected {
                    message: format!(
                        "the comment to answer ('{}') is not a Telegram message id (chat:message)",
                        target.parent_id
                    ),
                    status: None,
                })?;
            bot.chat_id = chat.to_string();
        }
        self.send(account, bot, post).await
    }

    /// The Bot API cannot list a chat's messages and has no idempotency key,
    /// so there is nothing to ask: the outcome stays unknown, and nothing is
    /// sent again (a second message could be a duplicate).
    async fn reconcile(
        &self,
        _account: &AccountSession,
        _post: &Post,
    ) -> Result<Option<Published>, ConnectorError> {
        Err(ConnectorError::Unknown {
            message: "Telegram cannot be asked whether a message went out (the Bot API has no \
                      idempotency key and cannot read a chat's history); look at the chat before \
                      posting again"
                .into(),
        })
    }

    /// `deleteMessage {chat_id, message_id}`. A message already gone counts as
    /// deleted; one Telegram will not delete (older than 48 hours, or the bot
    /// lacks the right) is `Rejected` with Telegram's reason.
    async fn delete(
        &self,
        account: &AccountSession,
        remote_id: &str,
    ) -> Result<(), ConnectorError> {
        let bot = self.bot(account).await?;
        let (chat_id, message_id) =
            parse_remote_id(remote_id).ok_or_else(|| ConnectorError::Rejected {
                message: format!("'{remote_id}' is not a Telegram message id (chat:message)"),
                status: None,
            })?;
        let body = json!({"chat_id": chat_value(chat_id), "message_id": message_id});
        match self.call(&bot, "deleteMessage", &body, false).await? {
            Answer::Ok(_) => Ok(()),
            Answer::Failed(error) => classify_delete(&error),
        }
    }

    /// `getMe` (the token works), then `getChat` (the bot can see the chat).
    async fn check(&self, account: &AccountSession) -> Result<(), ConnectorError> {
        let bot = self.bot(account).await?;
        if let Answer::Failed(error) = self.call(&bot, "getMe", &json!({}), false).await? {
            return Err(classify(&error));
        }
        let body = json!({"chat_id": chat_value(&bot.chat_id)});
        match self.call(&bot, "getChat", &body, false).await? {
            Answer::Ok(_) => Ok(()),
            Answer::Failed(error) => Err(classify(&error)),
        }
    }
}

// ---------------------------------------------------------------- updates

/// Updates asked for per `getUpdates` call (the Bot API's maximum).
pub const UPDATES_LIMIT: u32 = 100;

/// Where to read a bot's updates, and as which bot. Its `Debug` never shows
/// the token.
#[derive(Clone)]
pub struct BotAccess {
    base: String,
    token: String,
}

impl std::fmt::Debug for BotAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BotAccess")
            .field("base", &self.base)
            .field("bot_id", &self.bot_id())
            .finish_non_exhaustive()
    }
}

impl BotAccess {
    /// Names the bot's update queue in the store without the token: the
    /// SHA-256 of the token, in hex.
    pub fn key(&self) -> String {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(self.token.as_bytes()))
    }

    /// The bot's own user id: the token's part before `:`.
    pub fn bot_id(&self) -> Option<i64> {
        self.token.split_once(':')?.0.parse().ok()
    }
}

/// What one `getUpdates` call brought: how many updates, the offset that
/// confirms them all, and the group messages among them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Updates {
    pub count: usize,
    /// The highest `update_id` + 1 (`None`: no update).
    pub next_offset: Option<i64>,
    pub messages: Vec<GroupMessage>,
}

/// A message of a group or supergroup the bot is in (a comment, or a
/// channel post's automatic forward into its discussion group).
#[derive(Debug, Clone, PartialEq)]
pub struct GroupMessage {
    pub update_id: i64,
    pub chat_id: i64,
    pub chat_username: Option<String>,
    pub message_id: i64,
    /// `message_thread_id`.
    pub thread_id: Option<i64>,
    /// `reply_to_message.message_id`.
    pub reply_to_message_id: Option<i64>,
    pub automatic_forward: bool,
    /// The channel post this message copies or forwards: `forward_origin`
    /// (or the older `forward_from_chat` / `forward_from_message_id`).
    pub forward_origin: Option<ForwardOrigin>,
    pub author_id: Option<i64>,
    /// `from.username`, else `from.first_name`; a message sent as a chat:
    /// its username, else its title.
    pub author: String,
    /// `text`, else `caption`, else empty.
    pub text: String,
    pub date: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardOrigin {
    pub chat_id: i64,
    pub message_id: i64,
    pub username: Option<String>,
}

impl Telegram {
    /// The bot `account` posts as (its token must be well formed).
    pub async fn bot_access(&self, account: &AccountSession) -> Result<BotAccess, ConnectorError> {
        let bot = self.bot(account).await?;
        Ok(BotAccess {
            base: bot.base,
            token: bot.token,
        })
    }

    /// `getUpdates {offset?, limit, timeout: 0, allowed_updates: ["message"]}`:
    /// the pending `message` updates from `offset`. Passing `offset`
    /// confirms every earlier update for good, so the caller passes only an
    /// offset whose updates it has stored. A 409 (the bot has a webhook, so
    /// updates go there) is `Rejected` saying so; other failures are
    /// classified as publishing classifies them (401 `AuthRevoked`, 429
    /// `RateLimited` with `parameters.retry_after`, 5xx `Transient`).
    pub async fn get_updates(
        &self,
        bot: &BotAccess,
        offset: Option<i64>,
        limit: u32,
    ) -> Result<Updates, ConnectorError> {
        let mut body = json!({
            "limit": limit.clamp(1, UPDATES_LIMIT),
            "timeout": 0,
            "allowed_updates": ["message"],
        });
        if let Some(offset) = offset.filter(|o| *o > 0) {
            body["offset"] = json!(offset);
        }
        let caller = Bot {
            base: bot.base.clone(),
            token: bot.token.clone(),
            chat_id: String::new(),
        };
        match self.call(&caller, "getUpdates", &body, false).await? {
            Answer::Ok(Value::Array(updates)) => Ok(read_updates(&updates, bot.bot_id())),
            Answer::Ok(_) => Err(ConnectorError::Transient {
                message: "Telegram answered getUpdates without a list of updates".into(),
                status: None,
            }),
            Answer::Failed(error) if error.code == 409 => Err(ConnectorError::Rejected {
                message: format!(
                    "{} (the bot has a webhook, so its updates go there: Herald reads comments with getUpdates; remove the webhook with deleteWebhook, or use another bot)",
                    error.describe()
                ),
                status: Some(409),
            }),
            Answer::Failed(error) => Err(classify(&error)),
        }
    }
}

/// The group messages among `updates` (messages of groups and supergroups
/// that carry text or a caption, and automatic forwards), without those of
/// the bot `bot_id` itself; and the offset that confirms every update,
/// skipped ones included.
pub fn read_updates(updates: &[Value], bot_id: Option<i64>) -> Updates {
    let mut read = Updates {
        count: updates.len(),
        ..Updates::default()
    };
    for update in updates {
        let Some(update_id) = update["update_id"].as_i64() else {
            continue;
        };
        read.next_offset = Some(
            read.next_offset
                .map_or(update_id + 1, |o| o.max(update_id + 1)),
        );
        if let Some(message) = group_message(update_id, &update["message"], bot_id) {
            read.messages.push(message);
        }
    }
    read
}

fn group_message(update_id: i64, message: &Value, bot_id: Option<i64>) -> Option<GroupMessage> {
    let chat = &message["chat"];
    if !matches!(chat["type"].as_str(), Some("group" | "supergroup")) {
        return None;
    }
    let author_id = message["from"]["id"].as_i64();
    if author_id.is_some() && author_id == bot_id {
        return None;
    }
    let automatic_forward = message["is_automatic_forward"].as_bool() == Some(true);
    let text = message["text"]
        .as_str()
        .or_else(|| message["caption"].as_str())
        .unwrap_or_default()
        .to_string();
    if text.is_empty() && !automatic_forward {
        // A service message (member joined, pinned…) or a sticker: no words.
        return None;
    }
    let origin = &message["forward_origin"];
    let forward_origin = if origin["type"].as_str() == Some("channel") {
        Some(ForwardOrigin {
            chat_id: origin["chat"]["id"].as_i64()?,
            message_id: origin["message_id"].as_i64()?,
            username: non_empty(&origin["chat"]["username"]),
        })
    } else {
        let chat = &message["forward_from_chat"];
        match (
            chat["id"].as_i64(),
            message["forward_from_message_id"].as_i64(),
        ) {
            (Some(chat_id), Some(message_id)) => Some(ForwardOrigin {
                chat_id,
                message_id,
                username: non_empty(&chat["username"]),
            }),
            _ => None,
        }
    };
    let sender = &message["sender_chat"];
    let author = if sender.is_object() && !automatic_forward {
        non_empty(&sender["username"]).or_else(|| non_empty(&sender["title"]))
    } else {
        non_empty(&message["from"]["username"])
            .or_else(|| non_empty(&message["from"]["first_name"]))
    };
    Some(GroupMessage {
        update_id,
        chat_id: chat["id"].as_i64()?,
        chat_username: non_empty(&chat["username"]),
        message_id: message["message_id"].as_i64()?,
        thread_id: message["message_thread_id"].as_i64(),
        reply_to_message_id: message["reply_to_message"]["message_id"].as_i64(),
        automatic_forward,
        forward_origin,
        author_id,
        author: author.unwrap_or_else(|| "unknown".into()),
        text,
        date: DateTime::from_timestamp(message["date"].as_i64()?, 0)?,
    })
}

fn non_empty(value: &Value) -> Option<String> {
    value.as_str().filter(|s| !s.is_empty()).map(str::to_string)
}

/// The link to comment `message_id` of group `group_id`, in the thread of
/// the automatic forward `thread_id` of channel post `origin`: the public
/// channel's comment link when the channel has a username, else the group
/// message in its thread (by the group's username, or `t.me/c/…` for a
/// private group, which opens for its members only).
pub fn comment_url(
    group_id: i64,
    group_username: Option<&str>,
    message_id: i64,
    thread_id: i64,
    origin: Option<&ForwardOrigin>,
) -> String {
    if let Some((channel, post)) =
        origin.and_then(|o| o.username.as_deref().map(|u| (u, o.message_id)))
    {
        return format!("https://t.me/{channel}/{post}?comment={message_id}");
    }
    match group_username {
        Some(group) => format!("https://t.me/{group}/{message_id}?thread={thread_id}"),
        None => {
            let id = group_id.to_string();
            let internal = id
                .strip_prefix("-100")
                .unwrap_or(id.trim_start_matches('-'));
            format!("https://t.me/c/{internal}/{message_id}?thread={thread_id}")
        }
    }
}

fn revoked(message: &str) -> ConnectorError {
    ConnectorError::AuthRevoked {
        message: message.to_string(),
        status: None,
    }
}

/// A token that can go into a URL path as it is: `<bot id>:<secret>` with
/// URL-safe characters only.
fn token_is_well_formed(token: &str) -> bool {
    let Some((id, secret)) = token.split_once(':') else {
        return false;
    };
    !id.is_empty()
        && id.bytes().all(|b| b.is_ascii_digit())
        && !secret.is_empty()
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A numeric chat id goes out as a JSON number, `@name` as a string.
fn chat_value(chat_id: &str) -> Value {
    match chat_id.trim().parse::<i64>() {
        Ok(n) => json!(n),
        Err(_) => json!(chat_id.trim()),
    }
}

/// `<chat id>:<message_id>` → (chat id, message id).
pub fn parse_remote_id(remote_id: &str) -> Option<(&str, i64)> {
    let (chat, message) = remote_id.trim().rsplit_once(':')?;
    let message_id = message.parse::<i64>().ok().filter(|m| *m > 0)?;
    (!chat.is_empty()).then_some((chat, message_id))
}

/// Length of `text` as Telegram counts it.
fn utf16_len(text: &str) -> usize {
    text.encode_utf16().count()
}

/// The method and JSON body that publish `post` in `chat_id`.
pub fn request_for(post: &Post, chat_id: &str) -> Result<(&'static str, Value), ConnectorError> {
    if post.media.len() > 1 {
        return Err(ConnectorError::Rejected {
            message: format!(
                "a Telegram message carries one image, and this post has {}",
                post.media.len()
            ),
            status: None,
        });
    }
    let reply = match &post.reply_to {
        Some(target) => {
            let (_, message_id) =
                parse_remote_id(&target.parent_id).ok_or_else(|| ConnectorError::Rejected {
                    message: format!(
                        "the post to answer ('{}') is not a Telegram message id",
                        target.parent_id
                    ),
                    status: None,
                })?;
            Some(json!({"message_id": message_id}))
        }
        None => None,
    };
    let mut body = json!({"chat_id": chat_value(chat_id)});
    let method = match post.media.first() {
        Some(image) if utf16_len(&post.text) <= CAPTION_LIMIT => {
            body["photo"] = json!(image.url);
            if !post.text.is_empty() {
                body["caption"] = json!(post.text);
            }
            "sendPhoto"
        }
        Some(image) => {
            body["text"] = json!(post.text);
            body["link_preview_options"] = json!({
                "url": image.url,
                "prefer_large_media": true,
                "show_above_text": true,
            });
            "sendMessage"
        }
        None => {
            body["text"] = json!(post.text);
            "sendMessage"
        }
    };
    if let Some(reply) = reply {
        body["reply_parameters"] = reply;
    }
    Ok((method, body))
}

/// Read the Bot API envelope. A body that is not the envelope is described
/// by the HTTP status alone.
fn parse_answer(status: u16, bytes: &[u8]) -> Answer {
    let body: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
    if body["ok"].as_bool() == Some(true) && (200..300).contains(&status) {
        return Answer::Ok(body["result"].clone());
    }
    let code = body["error_code"]
        .as_u64()
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| *c >= 100)
        .unwrap_or(if (200..300).contains(&status) {
            502
        } else {
            status
        });
    let description = body["description"].as_str().unwrap_or_default().to_string();
    let retry_after = body["parameters"]["retry_after"]
        .as_u64()
        .or_else(|| {
            body["parameters"]["retry_after"]
                .as_f64()
                .map(|f| f.ceil() as u64)
        })
        .or_else(|| retry_after_in(&description));
    Answer::Failed(ApiError {
        code,
        description,
        retry_after,
        migrate_to_chat_id: body["parameters"]["migrate_to_chat_id"].as_i64(),
    })
}

/// "Too Many Requests: retry after 5" → 5.
fn retry_after_in(description: &str) -> Option<u64> {
    let lower = description.to_ascii_lowercase();
    let at = lower.find("retry after ")? + "retry after ".len();
    let digits: String = lower[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The message a send answered with, as Herald keeps it.
pub fn published(result: &Value, now: DateTime<Utc>) -> Option<Published> {
    let message_id = result["message_id"].as_i64()?;
    let chat_id = match &result["chat"]["id"] {
        Value::Number(n) => n.to_string(),
        Value::String(s) if !s.is_empty() => s.clone(),
        _ => return None,
    };
    let remote_url = result["chat"]["username"]
        .as_str()
        .filter(|u| !u.is_empty())
        .map(|username| format!("https://t.me/{username}/{message_id}"));
    Some(Published {
        remote_id: format!("{chat_id}:{message_id}"),
        remote_url,
        pause_until: Some(now + PER_CHAT_INTERVAL),
    })
}

/// Classify a failed call (shared/platforms.md §8.1, §8.4, §8.5).
///
/// A chat the bot cannot reach (`chat not found`, not a member, kicked, no
/// right to post) is `AuthRevoked`: every post of the account would fail the
/// same way until an admin fixes the bot's access and reconnects.
pub fn classify(error: &ApiError) -> ConnectorError {
    let message = error.describe();
    let status = Some(error.code);
    if let Some(new_id) = error.migrate_to_chat_id {
        return ConnectorError::Rejected {
            message: format!(
                "{message} (the group became a supergroup: its chat id is now {new_id})"
            ),
            status,
        };
    }
    match error.code {
        429 => ConnectorError::RateLimited {
            retry_after: error
                .retry_after
                .map(Duration::from_secs)
                .unwrap_or(DEFAULT_RETRY_AFTER)
                .max(Duration::from_secs(1)),
            message,
            status,
        },
        401 | 404 => ConnectorError::AuthRevoked {
            message: format!(
                "{message} (the bot token was revoked or is wrong: give Herald the bot's current token from @BotFather)"
            ),
            status,
        },
        403 => ConnectorError::AuthRevoked {
            message: format!(
                "{message} (make the bot an administrator of the chat allowed to post messages, then reconnect the account)"
            ),
            status,
        },
        400 if error.says("chat not found") => ConnectorError::AuthRevoked {
            message: format!(
                "{message} (check the chat_id, and that the bot is a member of the chat, then reconnect the account)"
            ),
            status,
        },
        400 if error.says("not enough rights")
            || error.says("need administrator rights")
            || error.says("have no rights") =>
        {
            ConnectorError::AuthRevoked {
                message: format!(
                    "{message} (give the bot the right to post messages in the chat, then reconnect the account)"
                ),
                status,
            }
        }
        408 | 500..=599 => ConnectorError::Transient { message, status },
        _ => ConnectorError::Rejected { message, status },
    }
}

/// `deleteMessage` failures: gone is done, "can't be deleted" says why.
fn classify_delete(error: &ApiError) -> Result<(), ConnectorError> {
    if error.code == 400
        && (error.says("message to delete not found") || error.says("message_id_invalid"))
    {
        return Ok(());
    }
    if error.code == 400 && error.says("can't be deleted") {
        return Err(ConnectorError::Rejected {
            message: format!(
                "{} (Telegram lets a bot delete its messages only within 48 hours of posting, and only with the right to post or delete in the chat)",
                error.describe()
            ),
            status: Some(error.code),
        });
    }
    Err(classify(error))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platforms::{MediaItem, ReplyTarget};

    fn api_error(code: u16, description: &str) -> ApiError {
        ApiError {
            code,
            description: description.into(),
            ..ApiError::default()
        }
    }

    #[test]
    fn remote_ids_carry_the_chat_and_the_message() {
        assert_eq!(
            parse_remote_id("-1001234567890:42"),
            Some(("-1001234567890", 42))
        );
        assert_eq!(parse_remote_id("@herald_news:7"), Some(("@herald_news", 7)));
        assert_eq!(parse_remote_id("42"), None);
        assert_eq!(parse_remote_id(":42"), None);
        assert_eq!(parse_remote_id("-100:abc"), None);
        assert_eq!(parse_remote_id("-100:0"), None);
    }

    #[test]
    fn tokens_must_be_safe_to_put_in_a_path() {
        assert!(token_is_well_formed(
            "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11"
        ));
        assert!(!token_is_well_formed("123456"));
        assert!(!token_is_well_formed("abc:def"));
        assert!(!token_is_well_formed("123:de/f"));
        assert!(!token_is_well_formed("123:de f"));
        assert!(!token_is_well_formed("123:"));
    }

    #[test]
    fn answers_are_read_from_the_envelope() {
        let ok = parse_answer(200, br#"{"ok":true,"result":{"message_id":5}}"#);
        assert_eq!(ok, Answer::Ok(json!({"message_id": 5})));
        let flood = parse_answer(
            429,
            br#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 7","parameters":{"retry_after":7}}"#,
        );
        let Answer::Failed(flood) = flood else {
            panic!()
        };
        assert_eq!(flood.retry_after, Some(7));
        let no_parameters = parse_answer(
            429,
            br#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 12"}"#,
        );
        assert!(matches!(
            no_parameters,
            Answer::Failed(ApiError {
                retry_after: Some(12),
                ..
            })
        ));
        let html = parse_answer(502, b"<html>Bad Gateway</html>");
        assert!(matches!(html, Answer::Failed(ApiError { code: 502, .. })));
        let migrated = parse_answer(
            400,
            br#"{"ok":false,"error_code":400,"description":"Bad Request: group chat was upgraded to a supergroup chat","parameters":{"migrate_to_chat_id":-1009876}}"#,
        );
        assert!(matches!(
            migrated,
            Answer::Failed(ApiError {
                migrate_to_chat_id: Some(-1009876),
                ..
            })
        ));
    }

    #[test]
    fn failures_are_classified_as_platforms_md_says() {
        let rate = classify(&ApiError {
            retry_after: Some(5),
            ..api_error(429, "Too Many Requests: retry after 5")
        });
        assert!(matches!(
            rate,
            ConnectorError::RateLimited { retry_after, .. } if retry_after == Duration::from_secs(5)
        ));
        assert_eq!(
            classify(&api_error(401, "Unauthorized")).class(),
            "auth_revoked"
        );
        assert_eq!(
            classify(&api_error(
                403,
                "Forbidden: bot is not a member of the channel chat"
            ))
            .class(),
            "auth_revoked"
        );
        assert_eq!(
            classify(&api_error(400, "Bad Request: chat not found")).class(),
            "auth_revoked"
        );
        assert_eq!(
            classify(&api_error(
                400,
                "Bad Request: not enough rights to send text messages to the chat"
            ))
            .class(),
            "auth_revoked"
        );
        let long = classify(&api_error(400, "Bad Request: message is too long"));
        assert_eq!(long.class(), "rejected");
        assert!(long.to_string().contains("message is too long"));
        assert_eq!(
            classify(&api_error(400, "Bad Request: can't parse entities: x")).class(),
            "rejected"
        );
        let migrated = classify(&ApiError {
            migrate_to_chat_id: Some(-100777),
            ..api_error(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
            )
        });
        assert_eq!(migrated.class(), "rejected");
        assert!(migrated.to_string().contains("-100777"));
        assert_eq!(
            classify(&api_error(502, "Bad Gateway")).class(),
            "transient"
        );
    }

    #[test]
    fn deleting_a_gone_message_is_done_and_an_old_one_is_refused_with_the_reason() {
        assert_eq!(
            classify_delete(&api_error(400, "Bad Request: message to delete not found")),
            Ok(())
        );
        let old =
            classify_delete(&api_error(400, "Bad Request: message can't be deleted")).unwrap_err();
        assert_eq!(old.class(), "rejected");
        assert!(old.to_string().contains("48 hours"));
        assert_eq!(
            classify_delete(&api_error(401, "Unauthorized"))
                .unwrap_err()
                .class(),
            "auth_revoked"
        );
    }

    #[test]
    fn requests_follow_the_post() {
        let mut post = Post {
            text: "Shelter open at 5 Main St.".into(),
            ..Post::default()
        };
        let (method, body) = request_for(&post, "@herald_news").unwrap();
        assert_eq!(method, "sendMessage");
        assert_eq!(body, json!({"chat_id": "@herald_news", "text": post.text}));

        post.reply_to = Some(ReplyTarget {
            root_id: "-1001:10".into(),
            parent_id: "-1001:11".into(),
            answers_reply: false,
        });
        let (_, body) = request_for(&post, "-1001").unwrap();
        assert_eq!(body["chat_id"], json!(-1001));
        assert_eq!(body["reply_parameters"], json!({"message_id": 11}));

        post.media = vec![MediaItem {
            url: "https://example.org/map.jpg".into(),
            alt: Some("Map".into()),
            content_type: None,
        }];
        let (method, body) = request_for(&post, "-1001").unwrap();
        assert_eq!(method, "sendPhoto");
        assert_eq!(body["photo"], "https://example.org/map.jpg");
        assert_eq!(body["caption"], json!(post.text));

        // A caption counts UTF-16 units: 600 emoji are 1200 units, too long.
        post.text = "🚨".repeat(600);
        let (method, body) = request_for(&post, "-1001").unwrap();
        assert_eq!(method, "sendMessage");
        assert_eq!(
            body["link_preview_options"]["url"],
            "https://example.org/map.jpg"
        );
        assert_eq!(body["reply_parameters"], json!({"message_id": 11}));

        post.media.push(post.media[0].clone());
        assert_eq!(request_for(&post, "-1001").unwrap_err().class(), "rejected");
    }

    #[test]
    fn public_channels_get_a_link_and_every_send_waits_a_second() {
        let now = Utc::now();
        let public = published(
            &json!({"message_id": 42, "chat": {"id": -1001, "username": "herald_news"}, "date": 0}),
            now,
        )
        .unwrap();
        assert_eq!(public.remote_id, "-1001:42");
        assert_eq!(
            public.remote_url.as_deref(),
            Some("https://t.me/herald_news/42")
        );
        assert_eq!(public.pause_until, Some(now + chrono::Duration::seconds(1)));
        let private = published(&json!({"message_id": 3, "chat": {"id": -1002}}), now).unwrap();
        assert_eq!(private.remote_url, None);
        assert_eq!(published(&json!({"chat": {"id": 1}}), now), None);
    }

    #[test]
    fn updates_keep_group_messages_and_confirm_everything() {
        let bot_id = 7_000_000_001;
        let updates = vec![
            // A comment, in the thread of forward 10.
            json!({"update_id": 501, "message": {
                "message_id": 11, "date": 1_700_000_000, "message_thread_id": 10,
                "chat": {"id": -1002, "type": "supergroup", "title": "Talk"},
                "from": {"id": 5, "is_bot": false, "first_name": "Alice", "username": "alice"},
                "reply_to_message": {"message_id": 10}, "text": "Safe to drink?"}}),
            // The automatic forward, with only the older forward fields.
            json!({"update_id": 500, "message": {
                "message_id": 10, "date": 1_700_000_000, "is_automatic_forward": true,
                "chat": {"id": -1002, "type": "supergroup", "title": "Talk", "username": "talk"},
                "from": {"id": 777000, "is_bot": false, "first_name": "Telegram"},
                "forward_from_chat": {"id": -1001, "type": "channel", "username": "news"},
                "forward_from_message_id": 4, "caption": "Boil water"}}),
            // A private chat, the bot's own message, a service message: skipped.
            json!({"update_id": 502, "message": {"message_id": 1, "date": 1_700_000_000,
                "chat": {"id": 5, "type": "private"}, "text": "/start"}}),
            json!({"update_id": 503, "message": {"message_id": 12, "date": 1_700_000_000,
                "chat": {"id": -1002, "type": "supergroup"}, "from": {"id": bot_id, "is_bot": true, "first_name": "Herald"},
                "text": "Yes, after boiling."}}),
            json!({"update_id": 504, "message": {"message_id": 13, "date": 1_700_000_000,
                "chat": {"id": -1002, "type": "supergroup"}, "from": {"id": 6, "first_name": "Bob"},
                "new_chat_members": [{"id": 6}]}}),
            // Someone posting as a chat has its name.
            json!({"update_id": 505, "message": {"message_id": 14, "date": 1_700_000_060,
                "chat": {"id": -1002, "type": "supergroup"}, "from": {"id": 1087968824, "first_name": "Group"},
                "sender_chat": {"id": -1003, "type": "channel", "title": "Town Hall"},
                "message_thread_id": 10, "reply_to_message": {"message_id": 11}, "text": "We are on it."}}),
        ];
        let read = read_updates(&updates, Some(bot_id));
        assert_eq!(read.count, 6);
        assert_eq!(read.next_offset, Some(506));
        let ids: Vec<i64> = read.messages.iter().map(|m| m.message_id).collect();
        assert_eq!(ids, vec![11, 10, 14]);
        let comment = &read.messages[0];
        assert_eq!(comment.author, "alice");
        assert_eq!(comment.thread_id, Some(10));
        assert_eq!(comment.reply_to_message_id, Some(10));
        assert!(!comment.automatic_forward);
        assert_eq!(comment.date.timestamp(), 1_700_000_000);
        let forward = &read.messages[1];
        assert!(forward.automatic_forward);
        assert_eq!(forward.text, "Boil water");
        assert_eq!(forward.chat_username.as_deref(), Some("talk"));
        assert_eq!(
            forward.forward_origin,
            Some(ForwardOrigin {
                chat_id: -1001,
                message_id: 4,
                username: Some("news".into())
            })
        );
        assert_eq!(read.messages[2].author, "Town Hall");
        assert_eq!(read_updates(&[], None), Updates::default());
    }

    #[test]
    fn comment_links_prefer_the_public_channel() {
        let public = ForwardOrigin {
            chat_id: -1001,
            message_id: 4,
            username: Some("news".into()),
        };
        assert_eq!(
            comment_url(-1002, None, 11, 10, Some(&public)),
            "https://t.me/news/4?comment=11"
        );
        let private = ForwardOrigin {
            username: None,
            ..public
        };
        assert_eq!(
            comment_url(-1002, Some("talk"), 11, 10, Some(&private)),
            "https://t.me/talk/11?thread=10"
        );
        assert_eq!(
            comment_url(-1001234567890, None, 11, 10, Some(&private)),
            "https://t.me/c/1234567890/11?thread=10"
        );
    }

    #[test]
    fn a_bot_key_is_a_digest_of_the_token_and_debug_hides_the_token() {
        let bot = BotAccess {
            base: "http://x".into(),
            token: "123:secret".into(),
        };
        assert_eq!(bot.key().len(), 64);
        assert!(!bot.key().contains("secret"));
        assert_eq!(bot.bot_id(), Some(123));
        assert!(!format!("{bot:?}").contains("secret"));
    }
}
