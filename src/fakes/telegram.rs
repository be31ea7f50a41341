//! A fake Telegram Bot API (shared/platforms.md §8) on a loopback port, with
//! fault injection.
//!
//! Calls are `GET|POST {base_url}/bot<token>/<method>`, with parameters in the
//! query string, a JSON body or a form body (nested objects such as
//! `reply_parameters` as JSON text, as the Bot API takes them). Answers use the
//! Bot API envelope: `{"ok":true,"result":…}` or `{"ok":false,"error_code",
//! "description","parameters"?}` with the HTTP status equal to `error_code`.
//! Methods served: `getMe`, `getChat`, `sendMessage`, `sendPhoto`,
//! `deleteMessage`, `getUpdates`; any other is 404 "Not Found".
//!
//! Discussion groups: a channel may have a linked supergroup
//! ([`FakeTelegram::add_discussion_group`]; `getChat` shows `linked_chat_id`
//! both ways). Every channel post is forwarded into it automatically
//! (`is_automatic_forward`, `forward_origin` naming the channel post), and
//! comments are group messages replying to that copy, in its thread
//! (`message_thread_id`). The bot receives, as `getUpdates` updates, the
//! messages of the groups it is in (not its own); `getUpdates` returns the
//! pending updates from `offset` (at most `limit`, 100 by default) and
//! confirms, for good, every update below `offset`; with a webhook set it is
//! 409 Conflict.
//!
//! Public API:
//! - [`FakeTelegram::start`] / [`FakeTelegram::start_with`] ([`FakeTelegramConfig`]:
//!   per-chat flood limit, workers); [`FakeTelegram::base_url`] is the Bot API
//!   base (give it as the account's `base_url` or `HERALD_TELEGRAM_API_URL`).
//! - Setup: [`FakeTelegram::add_bot`] → bot token; [`FakeTelegram::add_channel`]
//!   (public with a username, or private) and [`FakeTelegram::add_group`] → chat
//!   id, with the bot as an administrator allowed to post;
//!   [`FakeTelegram::add_discussion_group`] (a supergroup linked to a channel);
//!   [`FakeTelegram::set_webhook`].
//! - The public: [`FakeTelegram::add_reply`] (a user comments on a channel post
//!   in its discussion group, or answers a group message; returns the
//!   comment's `<chat id>:<message_id>`).
//! - Access changes: [`FakeTelegram::revoke`] (401), [`FakeTelegram::kick`]
//!   (403 "bot was kicked"), [`FakeTelegram::remove_bot`] (403 "not a member"),
//!   [`FakeTelegram::forbid_posting`] (400 "not enough rights"),
//!   [`FakeTelegram::migrate_group`] (400 with `migrate_to_chat_id`).
//! - Faults: [`FakeTelegram::fail_next`], [`FakeTelegram::rate_limit_next`],
//!   [`FakeTelegram::drop_after_store_next`], [`FakeTelegram::stall_after_store_next`],
//!   [`FakeTelegram::set_latency`], [`FakeTelegram::age_message`] (for the 48-hour delete rule).
//! - Inspection: [`FakeTelegram::messages`] (text or caption, photo, reply
//!   parent, link preview, deleted flag, body encoding), [`FakeTelegram::send_requests`],
//!   [`FakeTelegram::requests_to`].
//!
//! Where the Bot API is not documented the fake picks one behaviour and says
//! so: the flood limit is a per-chat token bucket (the FAQ only says "about one
//! message per second"); `getChat` on a chat the bot is not in answers 400
//! "chat not found"; a photo URL is stored, never fetched; only `MarkdownV2`
//! entity parsing is checked (reserved characters must be escaped).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use crate::fakes::server::{random_token, FakeServer, Faults, Outcome};

/// Longest message text and photo caption, in UTF-16 code units.
const TEXT_LIMIT: usize = 4096;
const CAPTION_LIMIT: usize = 1024;
/// Telegram lets bots delete messages younger than this.
const DELETE_WINDOW: chrono::Duration = chrono::Duration::hours(48);

/// A per-chat token bucket: `burst` messages at once, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FloodLimit {
    pub per_second: f64,
    pub burst: u32,
}

/// Settings of a [`FakeTelegram`].
#[derive(Debug, Clone)]
pub struct FakeTelegramConfig {
    /// `None` turns flood control off.
    pub flood: Option<FloodLimit>,
    pub workers: usize,
}

impl Default for FakeTelegramConfig {
    /// About one message per second per chat (the Bots FAQ), with a burst of 3.
    fn default() -> Self {
        Self {
            flood: Some(FloodLimit {
                per_second: 1.0,
                burst: 3,
            }),
            workers: 2,
        }
    }
}

/// A message the fake stored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FakeMessage {
    pub chat_id: i64,
    pub message_id: i64,
    /// `sendMessage` or `sendPhoto`.
    pub method: String,
    /// The text, or the photo's caption.
    pub text: String,
    pub photo: Option<String>,
    /// The message answered (`reply_parameters.message_id` or `reply_to_message_id`).
    pub reply_to: Option<i64>,
    /// `link_preview_options` as sent (or `{"is_disabled":true}` for the old
    /// `disable_web_page_preview`).
    pub link_preview: Option<Value>,
    pub parse_mode: Option<String>,
    /// `json`, `form` or `query`.
    pub encoding: String,
    pub date: DateTime<Utc>,
    pub deleted: bool,
    /// A user's message: their first name and username (`None`: the bot's,
    /// or the channel's).
    pub from: Option<String>,
    /// The copy of a channel post in its discussion group: the post's
    /// `(channel id, message id)`.
    pub forwarded_from: Option<(i64, i64)>,
    /// `message_thread_id`: the automatic forward a comment thread hangs on.
    pub thread_id: Option<i64>,
}

/// A running fake; stops when dropped.
pub struct FakeTelegram {
    shared: Arc<Shared>,
    server: FakeServer,
}

impl FakeTelegram {
    pub async fn start() -> FakeTelegram {
        Self::start_with(FakeTelegramConfig::default()).await
    }

    pub async fn start_with(config: FakeTelegramConfig) -> FakeTelegram {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                flood: config.flood,
                ..State::default()
            }),
        });
        let server = FakeServer::bind("fake-telegram")
            .serve(config.workers, shared.clone(), 1 << 20, |app| {
                app.default_service(web::to(handle));
            })
            .await;
        FakeTelegram { shared, server }
    }

    /// The Bot API base, `http://127.0.0.1:PORT` (no trailing slash).
    pub fn base_url(&self) -> String {
        self.server.base_url().to_string()
    }

    /// A new bot `@<username>`; returns its token (`<id>:<35 characters>`).
    pub fn add_bot(&self, username: &str) -> String {
        let mut state = self.shared.lock();
        state.next_id += 1;
        let id = 7_000_000_000 + state.next_id;
        let token = format!("{id}:AA{}", random_token(33));
        state.bots.insert(
            token.clone(),
            Bot {
                id,
                username: username.to_string(),
                revoked: false,
                webhook: false,
                updates: Vec::new(),
                next_update: 100_000,
            },
        );
        token
    }

    /// A channel (public when `username` is given, as `@username`), with the
    /// bot of `token` as an administrator allowed to post. Returns its id (`-100…`).
    pub fn add_channel(&self, token: &str, username: Option<&str>) -> i64 {
        let mut state = self.shared.lock();
        state.next_id += 1;
        let id = -1_000_000_000_000 - state.next_id;
        state.add_chat(id, "channel", username, token);
        id
    }

    /// A basic group with the bot of `token` in it. Returns its id (small, negative).
    pub fn add_group(&self, token: &str) -> i64 {
        let mut state = self.shared.lock();
        state.next_id += 1;
        let id = -(400_000_000 + state.next_id);
        state.add_chat(id, "group", None, token);
        id
    }

    /// A supergroup linked to channel `channel_id` as its discussion group,
    /// with the bot of `token` as an administrator (it sees every message).
    /// Returns its id (`-100…`).
    pub fn add_discussion_group(&self, token: &str, channel_id: i64) -> i64 {
        let mut state = self.shared.lock();
        state.next_id += 1;
        let id = -1_000_000_000_000 - state.next_id;
        state.add_chat(id, "supergroup", None, token);
        state.linked.insert(channel_id, id);
        state.linked.insert(id, channel_id);
        id
    }

    /// `true`: the bot of `token` has a webhook, so `getUpdates` answers 409.
    pub fn set_webhook(&self, token: &str, on: bool) {
        if let Some(bot) = self.shared.lock().bots.get_mut(token) {
            bot.webhook = on;
        }
    }

    /// The user `author` answers `parent` (`<chat id>:<message_id>`) with
    /// `text`, now. A channel post is answered in its discussion group, as a
    /// reply to the post's automatic forward; a group message in its group.
    /// Returns the comment's `<chat id>:<message_id>`; `None` when the parent
    /// is unknown or its channel has no discussion group.
    pub fn add_reply(&self, parent: &str, author: &str, text: &str) -> Option<String> {
        let (chat, message) = parent.trim().rsplit_once(':')?;
        let (chat, message) = (chat.parse::<i64>().ok()?, message.parse::<i64>().ok()?);
        let mut state = self.shared.lock();
        let (group, reply_to) = if state.chats.get(&chat)?.kind == "channel" {
            let group = *state.linked.get(&chat)?;
            let copy = state.chats.get(&group)?.messages.values().find_map(|m| {
                (m.forwarded_from == Some((chat, message))).then_some(m.message_id)
            })?;
            (group, copy)
        } else {
            (chat, message)
        };
        let parent = state.chats.get(&group)?.messages.get(&reply_to)?.clone();
        let thread_id = parent
            .thread_id
            .or(parent.forwarded_from.map(|_| parent.message_id));
        let stored = state.store(
            group,
            FakeMessage {
                method: "sendMessage".into(),
                text: text.to_string(),
                reply_to: Some(reply_to),
                encoding: "user".into(),
                from: Some(author.to_string()),
                thread_id,
                ..FakeMessage::default()
            },
        );
        Some(format!("{group}:{}", stored.message_id))
    }

    /// The group `chat_id` becomes a supergroup: sends to the old id answer
    /// 400 with `migrate_to_chat_id`. Returns the new id.
    pub fn migrate_group(&self, chat_id: i64) -> i64 {
        let mut state = self.shared.lock();
        state.next_id += 1;
        let new_id = -1_000_000_000_000 - state.next_id;
        if let Some(mut chat) = state.chats.remove(&chat_id) {
            chat.kind = "supergroup".into();
            chat.messages.clear();
            state.chats.insert(new_id, chat);
            state.migrated.insert(chat_id, new_id);
        }
        new_id
    }

    /// The token stops working at once (401 Unauthorized), as `/revoke` in @BotFather.
    pub fn revoke(&self, token: &str) {
        if let Some(bot) = self.shared.lock().bots.get_mut(token) {
            bot.revoked = true;
        }
    }

    /// The bot of `token` is kicked from `chat_id` (403 "bot was kicked").
    pub fn kick(&self, token: &str, chat_id: i64) {
        self.set_membership(token, chat_id, Membership::Kicked);
    }

    /// The bot of `token` leaves `chat_id` (403 "bot is not a member").
    pub fn remove_bot(&self, token: &str, chat_id: i64) {
        self.set_membership(token, chat_id, Membership::Absent);
    }

    /// The bot stays in `chat_id` but may not post (400 "not enough rights").
    pub fn forbid_posting(&self, token: &str, chat_id: i64) {
        self.set_membership(token, chat_id, Membership::ReadOnly);
    }

    fn set_membership(&self, token: &str, chat_id: i64, membership: Membership) {
        let mut state = self.shared.lock();
        let Some(bot_id) = state.bots.get(token).map(|b| b.id) else {
            return;
        };
        if let Some(chat) = state.chats.get_mut(&chat_id) {
            chat.members.insert(bot_id, membership);
        }
    }

    /// The next `n` sends answer `status` (a 5xx) and store nothing.
    pub fn fail_next(&self, n: usize, status: u16) {
        self.shared.lock().faults.fail.arm(n, status);
    }

    /// The next `n` sends answer 429 with `parameters.retry_after` = `retry_after` seconds.
    pub fn rate_limit_next(&self, n: usize, retry_after: u64) {
        self.shared.lock().faults.rate_limit.arm(n, retry_after);
    }

    /// The next `n` sends store the message, then drop the connection unanswered.
    pub fn drop_after_store_next(&self, n: usize) {
        self.shared.lock().faults.drop_after_store.arm(n, ());
    }

    /// The next `n` sends store the message, then wait `stall` before answering.
    pub fn stall_after_store_next(&self, n: usize, stall: Duration) {
        self.shared.lock().faults.stall_after_store.arm(n, stall);
    }

    /// Every request waits `latency` before it is handled.
    pub fn set_latency(&self, latency: Duration) {
        self.shared.lock().latency = latency;
    }

    /// Move a message's date back by `by` (to try the 48-hour delete rule).
    pub fn age_message(&self, chat_id: i64, message_id: i64, by: chrono::Duration) {
        let mut state = self.shared.lock();
        if let Some(m) = state
            .chats
            .get_mut(&chat_id)
            .and_then(|c| c.messages.get_mut(&message_id))
        {
            m.date -= by;
        }
    }

    /// Every message stored (deleted ones included), in the order sent.
    pub fn messages(&self) -> Vec<FakeMessage> {
        let state = self.shared.lock();
        state
            .order
            .iter()
            .filter_map(|(chat, id)| state.chats.get(chat)?.messages.get(id).cloned())
            .collect()
    }

    /// `sendMessage` and `sendPhoto` requests received, failed ones included.
    pub fn send_requests(&self) -> usize {
        self.shared.lock().send_requests
    }

    /// Requests received for `method` (such as `getChat`).
    pub fn requests_to(&self, method: &str) -> usize {
        self.shared
            .lock()
            .requests
            .get(method)
            .copied()
            .unwrap_or(0)
    }
}

// ---------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------

struct Shared {
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct Bot {
    id: i64,
    username: String,
    revoked: bool,
    webhook: bool,
    /// Pending updates (`update_id`, update), oldest first.
    updates: Vec<(i64, Value)>,
    next_update: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Membership {
    Admin,
    ReadOnly,
    Kicked,
    Absent,
}

struct Chat {
    kind: String,
    title: String,
    username: Option<String>,
    members: HashMap<i64, Membership>,
    next_message: i64,
    messages: HashMap<i64, FakeMessage>,
    /// Flood bucket: tokens left and when they were counted.
    tokens: f64,
    counted_at: Instant,
}

#[derive(Default)]
struct State {
    flood: Option<FloodLimit>,
    latency: Duration,
    next_id: i64,
    bots: HashMap<String, Bot>,
    chats: HashMap<i64, Chat>,
    /// Old group id → supergroup id.
    migrated: HashMap<i64, i64>,
    /// Channel id ↔ its discussion group id (both ways).
    linked: HashMap<i64, i64>,
    order: Vec<(i64, i64)>,
    send_requests: usize,
    requests: HashMap<String, usize>,
    /// The rate limit: `retry_after` seconds.
    faults: Faults<u64>,
}

/// A Bot API error: status = `error_code`.
#[derive(Debug)]
struct Failure {
    code: u16,
    description: String,
    parameters: Option<Value>,
}

fn failure(code: u16, description: &str) -> Failure {
    Failure {
        code,
        description: description.to_string(),
        parameters: None,
    }
}

fn answer_error(f: Failure) -> HttpResponse {
    let mut body = json!({"ok": false, "error_code": f.code, "description": f.description});
    if let Some(parameters) = f.parameters {
        body["parameters"] = parameters;
    }
    HttpResponse::build(StatusCode::from_u16(f.code).unwrap_or(StatusCode::BAD_REQUEST)).json(body)
}

fn answer_ok(result: Value) -> HttpResponse {
    HttpResponse::Ok().json(json!({"ok": true, "result": result}))
}

impl State {
    fn add_chat(&mut self, id: i64, kind: &str, username: Option<&str>, token: &str) {
        let mut members = HashMap::new();
        if let Some(bot) = self.bots.get(token) {
            members.insert(bot.id, Membership::Admin);
        }
        self.chats.insert(
            id,
            Chat {
                kind: kind.to_string(),
                title: format!("Chat {id}"),
                username: username.map(|u| u.trim_start_matches('@').to_string()),
                members,
                next_message: 0,
                messages: HashMap::new(),
                tokens: self.flood.map_or(0.0, |f| f64::from(f.burst)),
                counted_at: Instant::now(),
            },
        );
    }

    /// The chat named by `chat_id` (a number, a numeric string or `@username`).
    fn resolve_chat(&self, chat_id: Option<&Value>) -> Result<i64, Failure> {
        let missing = || failure(400, "Bad Request: chat_id is empty");
        let not_found = || failure(400, "Bad Request: chat not found");
        let id = match chat_id.ok_or_else(missing)? {
            Value::Number(n) => n.as_i64().ok_or_else(not_found)?,
            Value::String(s) if s.trim().is_empty() => return Err(missing()),
            Value::String(s) => match s.trim().strip_prefix('@') {
                Some(name) => self
                    .chats
                    .iter()
                    .find(|(_, c)| {
                        c.username
                            .as_deref()
                            .is_some_and(|u| u.eq_ignore_ascii_case(name))
                    })
                    .map(|(id, _)| *id)
                    .ok_or_else(not_found)?,
                None => s.trim().parse::<i64>().map_err(|_| not_found())?,
            },
            _ => return Err(not_found()),
        };
        if let Some(new_id) = self.migrated.get(&id) {
            return Err(Failure {
                code: 400,
                description: "Bad Request: group chat was upgraded to a supergroup chat".into(),
                parameters: Some(json!({"migrate_to_chat_id": new_id})),
            });
        }
        if self.chats.contains_key(&id) {
            Ok(id)
        } else {
            Err(not_found())
        }
    }

    /// The bot's access to `chat`: `Ok` when it can read.
    fn access(&self, bot_id: i64, chat_id: i64) -> Result<Membership, Failure> {
        let chat = &self.chats[&chat_id];
        let kind = if chat.kind == "channel" {
            "channel chat"
        } else {
            "group chat"
        };
        match chat
            .members
            .get(&bot_id)
            .copied()
            .unwrap_or(Membership::Absent)
        {
            Membership::Kicked => Err(failure(
                403,
                &format!("Forbidden: bot was kicked from the {kind}"),
            )),
            Membership::Absent => Err(failure(
                403,
                &format!("Forbidden: bot is not a member of the {kind}"),
            )),
            other => Ok(other),
        }
    }

    /// Store a new message in `chat_id` (numbered there, dated now), queue
    /// it as an update for the bots that see it, and forward a channel post
    /// into the channel's discussion group. Returns the stored message.
    fn store(&mut self, chat_id: i64, mut message: FakeMessage) -> FakeMessage {
        let Some(chat) = self.chats.get_mut(&chat_id) else {
            return message;
        };
        chat.next_message += 1;
        message.chat_id = chat_id;
        message.message_id = chat.next_message;
        message.date = Utc::now();
        let is_channel = chat.kind == "channel";
        chat.messages.insert(message.message_id, message.clone());
        self.order.push((chat_id, message.message_id));
        if (!is_channel && message.from.is_some()) || message.forwarded_from.is_some() {
            self.queue_update(chat_id, &message);
        }
        if is_channel {
            if let Some(group) = self.linked.get(&chat_id).copied() {
                let copy = FakeMessage {
                    method: message.method.clone(),
                    text: message.text.clone(),
                    photo: message.photo.clone(),
                    encoding: "automatic forward".into(),
                    forwarded_from: Some((chat_id, message.message_id)),
                    ..FakeMessage::default()
                };
                self.store(group, copy);
            }
        }
        message
    }

    /// A `message` update of `message` for every bot in its chat.
    fn queue_update(&mut self, chat_id: i64, message: &FakeMessage) {
        let body = self.message_json(chat_id, message, false);
        let members: Vec<i64> = self.chats[&chat_id]
            .members
            .iter()
            .filter(|(_, m)| matches!(m, Membership::Admin | Membership::ReadOnly))
            .map(|(id, _)| *id)
            .collect();
        for bot in self.bots.values_mut().filter(|b| members.contains(&b.id)) {
            bot.next_update += 1;
            let update = json!({"update_id": bot.next_update, "message": body});
            bot.updates.push((bot.next_update, update));
        }
    }

    /// `getUpdates`: confirm below `offset`, then the next `limit` pending.
    fn get_updates(&mut self, token: &str, params: &Params) -> Result<Value, Failure> {
        self.bot(token)?;
        let bot = self.bots.get_mut(token).expect("checked bot");
        if bot.webhook {
            return Err(failure(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
            ));
        }
        let limit = match int_param(params, "limit") {
            None => 100,
            Some(n) if (1..=100).contains(&n) => n as usize,
            Some(_) => return Err(failure(400, "Bad Request: limit must be between 1 and 100")),
        };
        if let Some(offset) = int_param(params, "offset").filter(|o| *o > 0) {
            bot.updates.retain(|(id, _)| *id >= offset);
        }
        let allowed: Option<Vec<String>> = match params.get("allowed_updates") {
            Some(Value::Array(kinds)) => Some(
                kinds
                    .iter()
                    .filter_map(|k| k.as_str().map(str::to_string))
                    .collect(),
            ),
            Some(Value::String(s)) => serde_json::from_str(s).ok(),
            _ => None,
        };
        let wanted = |update: &Value| {
            allowed.as_ref().is_none_or(|kinds| {
                kinds.is_empty() || kinds.iter().any(|k| update.get(k.as_str()).is_some())
            })
        };
        Ok(Value::Array(
            bot.updates
                .iter()
                .filter(|(_, u)| wanted(u))
                .take(limit)
                .map(|(_, u)| u.clone())
                .collect(),
        ))
    }

    fn chat_json(&self, chat_id: i64) -> Value {
        let chat = &self.chats[&chat_id];
        let mut value = json!({"id": chat_id, "type": chat.kind, "title": chat.title});
        if let Some(username) = &chat.username {
            value["username"] = json!(username);
        }
        value
    }

    fn message_json(&self, chat_id: i64, message: &FakeMessage, nested: bool) -> Value {
        let chat = self.chat_json(chat_id);
        let mut value = json!({
            "message_id": message.message_id,
            "date": message.date.timestamp(),
            "chat": chat,
        });
        if self.chats[&chat_id].kind == "channel" {
            value["sender_chat"] = chat;
        }
        match &message.photo {
            Some(_) => {
                let id = format!("fake-photo-{}-{}", chat_id, message.message_id);
                value["photo"] = json!([
                    {"file_id": format!("{id}-s"), "file_unique_id": format!("{id}s"), "width": 90, "height": 60},
                    {"file_id": id, "file_unique_id": format!("{chat_id}x{}", message.message_id), "width": 1280, "height": 853, "file_size": 102400}
                ]);
                if !message.text.is_empty() {
                    value["caption"] = json!(message.text);
                }
            }
            None => value["text"] = json!(message.text),
        }
        if let Some(preview) = &message.link_preview {
            value["link_preview_options"] = preview.clone();
        }
        if let Some(author) = &message.from {
            value["from"] = json!({
                "id": 5_000_000_000i64 + author.bytes().map(i64::from).sum::<i64>(),
                "is_bot": false,
                "first_name": author,
                "username": author,
            });
        }
        if let Some((channel, post)) = message.forwarded_from {
            let origin = self.chat_json(channel);
            value["is_automatic_forward"] = json!(true);
            value["sender_chat"] = origin.clone();
            value["forward_origin"] = json!({
                "type": "channel",
                "chat": origin,
                "message_id": post,
                "date": message.date.timestamp(),
            });
        }
        if let Some(thread) = message.thread_id {
            value["message_thread_id"] = json!(thread);
        }
        if !nested {
            if let Some(parent) = message
                .reply_to
                .and_then(|id| self.chats[&chat_id].messages.get(&id))
            {
                value["reply_to_message"] = self.message_json(chat_id, parent, true);
            }
        }
        value
    }

    /// Take one token from the chat's flood bucket, or say how long to wait.
    fn flood_check(&mut self, chat_id: i64) -> Result<(), u64> {
        let Some(flood) = self.flood else {
            return Ok(());
        };
        let chat = self.chats.get_mut(&chat_id).expect("resolved chat");
        let now = Instant::now();
        let elapsed = now.duration_since(chat.counted_at).as_secs_f64();
        chat.tokens = (chat.tokens + elapsed * flood.per_second).min(f64::from(flood.burst));
        chat.counted_at = now;
        if chat.tokens >= 1.0 {
            chat.tokens -= 1.0;
            return Ok(());
        }
        let wait = (1.0 - chat.tokens) / flood.per_second.max(1e-6);
        Err(wait.ceil().max(1.0) as u64)
    }

    fn bot(&self, token: &str) -> Result<(i64, String), Failure> {
        match self.bots.get(token) {
            Some(bot) if !bot.revoked => Ok((bot.id, bot.username.clone())),
            _ => Err(failure(401, "Unauthorized")),
        }
    }

    fn handle(&mut self, token: &str, method: &str, params: &Params) -> Result<Value, Failure> {
        let (bot_id, username) = self.bot(token)?;
        match method {
            "getMe" => Ok(json!({
                "id": bot_id, "is_bot": true, "first_name": username, "username": username,
                "can_join_groups": true, "can_read_all_group_messages": false,
                "supports_inline_queries": false,
            })),
            "getChat" => {
                let chat_id = self.resolve_chat(params.get("chat_id"))?;
                self.access(bot_id, chat_id)?;
                let mut chat = self.chat_json(chat_id);
                if let Some(linked) = self.linked.get(&chat_id) {
                    chat["linked_chat_id"] = json!(linked);
                }
                chat["accent_color_id"] = json!(0);
                chat["max_reaction_count"] = json!(11);
                Ok(chat)
            }
            "deleteMessage" => {
                let chat_id = self.resolve_chat(params.get("chat_id"))?;
                self.access(bot_id, chat_id)?;
                let message_id = int_param(params, "message_id").ok_or_else(|| {
                    failure(400, "Bad Request: message identifier is not specified")
                })?;
                let chat = self.chats.get_mut(&chat_id).expect("resolved chat");
                match chat.messages.get_mut(&message_id) {
                    Some(m) if !m.deleted => {
                        if Utc::now() - m.date >= DELETE_WINDOW {
                            return Err(failure(400, "Bad Request: message can't be deleted"));
                        }
                        m.deleted = true;
                        Ok(json!(true))
                    }
                    _ => Err(failure(400, "Bad Request: message to delete not found")),
                }
            }
            "getUpdates" => self.get_updates(token, params),
            _ => Err(failure(404, "Not Found")),
        }
    }

    fn send(
        &mut self,
        token: &str,
        method: &str,
        params: &Params,
        encoding: &str,
    ) -> Result<Outcome, Failure> {
        self.send_requests += 1;
        let (bot_id, _) = self.bot(token)?;
        if let Some(status) = self.faults.fail.take() {
            let description = if status == 502 {
                "Bad Gateway"
            } else {
                "Internal Server Error"
            };
            return Err(failure(status, description));
        }
        if let Some(retry_after) = self.faults.rate_limit.take() {
            return Err(too_many(retry_after));
        }
        let chat_id = self.resolve_chat(params.get("chat_id"))?;
        if self.access(bot_id, chat_id)? == Membership::ReadOnly {
            return Err(failure(
                400,
                "Bad Request: not enough rights to send text messages to the chat",
            ));
        }
        let (text, photo) = if method == "sendPhoto" {
            let photo = str_param(params, "photo")
                .filter(|p| !p.trim().is_empty())
                .ok_or_else(|| failure(400, "Bad Request: there is no photo in the request"))?;
            if !(photo.starts_with("http://") || photo.starts_with("https://")) {
                return Err(failure(
                    400,
                    "Bad Request: wrong file identifier/HTTP URL specified",
                ));
            }
            let caption = str_param(params, "caption").unwrap_or_default();
            if caption.encode_utf16().count() > CAPTION_LIMIT {
                return Err(failure(400, "Bad Request: message caption is too long"));
            }
            (caption, Some(photo))
        } else {
            let text = str_param(params, "text").unwrap_or_default();
            if text.trim().is_empty() {
                return Err(failure(400, "Bad Request: message text is empty"));
            }
            if text.encode_utf16().count() > TEXT_LIMIT {
                return Err(failure(400, "Bad Request: message is too long"));
            }
            (text, None)
        };
        let parse_mode = str_param(params, "parse_mode").filter(|p| !p.is_empty());
        match parse_mode.as_deref() {
            None | Some("HTML") | Some("Markdown") => {}
            Some("MarkdownV2") => {
                if let Some(c) = unescaped_reserved(&text) {
                    return Err(failure(
                        400,
                        &format!("Bad Request: can't parse entities: Character '{c}' is reserved and must be escaped with the preceding '\\'"),
                    ));
                }
            }
            Some(_) => return Err(failure(400, "Bad Request: unsupported parse_mode")),
        }
        let (reply_to, allow_without) = reply_target(params);
        let chat = self.chats.get(&chat_id).expect("resolved chat");
        let reply_to = match reply_to {
            Some(id) if chat.messages.get(&id).is_some_and(|m| !m.deleted) => Some(id),
            Some(_) if allow_without => None,
            Some(_) => return Err(failure(400, "Bad Request: message to be replied not found")),
            None => None,
        };
        let link_preview = match params.get("link_preview_options") {
            Some(Value::Object(o)) => Some(Value::Object(o.clone())),
            Some(Value::String(s)) => serde_json::from_str(s).ok(),
            _ => bool_param(params, "disable_web_page_preview")
                .filter(|d| *d)
                .map(|_| json!({"is_disabled": true})),
        };
        if let Err(wait) = self.flood_check(chat_id) {
            return Err(too_many(wait));
        }
        let thread_id = reply_to
            .and_then(|id| self.chats[&chat_id].messages.get(&id))
            .and_then(|p| p.thread_id.or(p.forwarded_from.map(|_| p.message_id)));
        let message = self.store(
            chat_id,
            FakeMessage {
                method: method.to_string(),
                text,
                photo,
                reply_to,
                link_preview,
                parse_mode,
                encoding: encoding.to_string(),
                thread_id,
                ..FakeMessage::default()
            },
        );
        let response = answer_ok(self.message_json(chat_id, &message, false));
        Ok(self.faults.after_store(response))
    }
}

fn too_many(retry_after: u64) -> Failure {
    Failure {
        code: 429,
        description: format!("Too Many Requests: retry after {retry_after}"),
        parameters: Some(json!({"retry_after": retry_after})),
    }
}

/// MarkdownV2's reserved characters must be escaped with `\`.
fn unescaped_reserved(text: &str) -> Option<char> {
    const RESERVED: &str = "_*[]()~`>#+-=|{}.!";
    let mut escaped = false;
    for c in text.chars() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if RESERVED.contains(c) {
            return Some(c);
        }
    }
    None
}

type Params = Map<String, Value>;

fn str_param(params: &Params, name: &str) -> Option<String> {
    match params.get(name)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn int_param(params: &Params, name: &str) -> Option<i64> {
    match params.get(name)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn bool_param(params: &Params, name: &str) -> Option<bool> {
    match params.get(name)? {
        Value::Bool(b) => Some(*b),
        Value::String(s) => Some(s == "true" || s == "1"),
        _ => None,
    }
}

/// The message answered, from `reply_parameters` (object or JSON text) or
/// the older `reply_to_message_id`; and `allow_sending_without_reply`.
fn reply_target(params: &Params) -> (Option<i64>, bool) {
    let object = match params.get("reply_parameters") {
        Some(Value::Object(o)) => Some(o.clone()),
        Some(Value::String(s)) => serde_json::from_str::<Params>(s).ok(),
        _ => None,
    };
    match object {
        Some(o) => (
            int_param(&o, "message_id"),
            bool_param(&o, "allow_sending_without_reply").unwrap_or(false),
        ),
        None => (
            int_param(params, "reply_to_message_id"),
            bool_param(params, "allow_sending_without_reply").unwrap_or(false),
        ),
    }
}

/// Parameters from the query string and the body (JSON object or form).
fn parse_params(query: &str, content_type: &str, body: &[u8]) -> Result<(Params, String), Failure> {
    let mut params = Params::new();
    let mut encoding = "query";
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        params.insert(k.into_owned(), Value::String(v.into_owned()));
    }
    if !body.is_empty() {
        if content_type.starts_with("application/json") {
            match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(map)) => params.extend(map),
                _ => return Err(failure(400, "Bad Request: can't parse JSON object")),
            }
            encoding = "json";
        } else if content_type.is_empty()
            || content_type.starts_with("application/x-www-form-urlencoded")
        {
            for (k, v) in form_urlencoded::parse(body) {
                params.insert(k.into_owned(), Value::String(v.into_owned()));
            }
            encoding = "form";
        } else {
            return Err(failure(
                400,
                "Bad Request: this fake accepts query, JSON and form-urlencoded parameters",
            ));
        }
    }
    Ok((params, encoding.to_string()))
}

// ---------------------------------------------------------------------------------------------
// Handler
// ---------------------------------------------------------------------------------------------

async fn handle(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let Some((token, method)) = req
        .path()
        .strip_prefix("/bot")
        .and_then(|rest| rest.split_once('/'))
        .map(|(t, m)| (t.to_string(), m.trim_end_matches('/').to_string()))
    else {
        return answer_error(failure(404, "Not Found"));
    };
    let latency = {
        let mut state = shared.lock();
        *state.requests.entry(method.clone()).or_insert(0) += 1;
        state.latency
    };
    if !latency.is_zero() {
        actix_web::rt::time::sleep(latency).await;
    }
    let content_type = super::server::content_type(&req);
    let (params, encoding) = match parse_params(req.query_string(), &content_type, &body) {
        Ok(parsed) => parsed,
        Err(f) => return answer_error(f),
    };
    if method == "sendMessage" || method == "sendPhoto" {
        let outcome = shared.lock().send(&token, &method, &params, &encoding);
        return match outcome {
            Ok(outcome) => outcome.respond("fake Telegram").await,
            Err(f) => answer_error(f),
        };
    }
    let result = shared.lock().handle(&token, &method, &params);
    match result {
        Ok(value) => answer_ok(value),
        Err(f) => answer_error(f),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_read_from_either_field_and_either_encoding() {
        let json: Params =
            serde_json::from_str(r#"{"reply_parameters":{"message_id":5}}"#).unwrap();
        assert_eq!(reply_target(&json), (Some(5), false));
        let (form, encoding) = parse_params(
            "",
            "application/x-www-form-urlencoded",
            b"chat_id=%40news&text=hi&reply_parameters=%7B%22message_id%22%3A7%2C%22allow_sending_without_reply%22%3Atrue%7D",
        )
        .unwrap();
        assert_eq!(encoding, "form");
        assert_eq!(reply_target(&form), (Some(7), true));
        assert_eq!(str_param(&form, "chat_id").as_deref(), Some("@news"));
        let old: Params = serde_json::from_str(r#"{"reply_to_message_id":"9"}"#).unwrap();
        assert_eq!(reply_target(&old), (Some(9), false));
        assert!(parse_params("", "application/json", b"[1]").is_err());
    }

    #[test]
    fn markdown_v2_needs_reserved_characters_escaped() {
        assert_eq!(unescaped_reserved("Stay safe"), None);
        assert_eq!(unescaped_reserved("Stay safe\\."), None);
        assert_eq!(unescaped_reserved("Stay safe."), Some('.'));
    }
}
