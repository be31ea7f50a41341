//! A fake Discord API (shared/platforms.md §9) on a loopback port, with fault
//! injection: incoming webhooks (execute, get, delete a message), the bot's
//! channel-messages read, and the bot's create message (a reply).
//!
//! Routes (with or without an `/api/v10` style version prefix, as Discord):
//! - `POST /api/webhooks/{id}/{token}[?wait=true&thread_id=…]`: JSON (or form)
//!   `{content?, embeds?, allowed_mentions?, username?, avatar_url?}`; 200 with
//!   the Message when `wait=true`, else 204 with no body.
//! - `GET /api/webhooks/{id}/{token}`: the webhook object.
//! - `DELETE /api/webhooks/{id}/{token}/messages/{message_id}`: 204.
//! - `GET /api/v10/channels/{channel_id}/messages?after|before|around&limit`
//!   with `Authorization: Bot <token>`: newest first, 50 by default, at most 100.
//!   A reply (type 19) carries `message_reference` and `referenced_message`.
//! - `POST /api/v10/channels/{channel_id}/messages` with `Authorization: Bot`:
//!   `{content?, embeds?, allowed_mentions?, message_reference?, nonce?,
//!   enforce_nonce?}`; a reference to a message not in the channel is 400
//!   `50035` (`MESSAGE_REFERENCE_UNKNOWN_MESSAGE`) unless `fail_if_not_exists`
//!   is false; with `enforce_nonce`, the bot's message with the same nonce in
//!   the last 5 minutes is answered again and nothing is created.
//!
//! - `GET /api/v10/users/@me` with `Authorization: Bot`: the bot user.
//!
//! Bot calls share a per-bot bucket (50 per second by default), with the same
//! headers and 429 as webhooks.
//! Every webhook has its own bucket (`X-RateLimit-Limit/Remaining/Reset/
//! Reset-After/Bucket`); over it, 429 with `Retry-After`, `X-RateLimit-Scope:
//! user` and the body `{"message","retry_after":<float s>,"global":false}`.
//! Errors use Discord's body `{"code","message","errors"?}`: `10015 Unknown
//! Webhook` (404), `50027 Invalid Webhook Token` (401), `10008 Unknown Message`
//! (404), `10003 Unknown Channel` (404), `50035 Invalid Form Body` with nested
//! `_errors`, `50006 Cannot send an empty message`, `50013 Missing
//! Permissions` (403), and `{"message":"401: Unauthorized","code":0}` for a bad
//! bot token.
//!
//! Public API:
//! - [`FakeDiscord::start`] / [`FakeDiscord::start_with`] ([`FakeDiscordConfig`]:
//!   webhook bucket, workers); [`FakeDiscord::base_url`]; [`FakeDiscord::api_url`]
//!   (`…/api/v10`, for `HERALD_DISCORD_API_URL` or the account's base URL).
//! - Setup: [`FakeDiscord::add_webhook`] → [`FakeWebhook`] (url, ids, token);
//!   [`FakeDiscord::add_bot`] → bot token; [`FakeDiscord::post_as_user`] and
//!   [`FakeDiscord::seed_webhook_message`] (messages at a chosen time).
//! - The public: [`FakeDiscord::add_reply`] (a user, by username, answers a
//!   message with a reply; returns its id).
//! - Access changes: [`FakeDiscord::delete_webhook`] (404 10015),
//!   [`FakeDiscord::reset_webhook_token`] (old token: 401 50027),
//!   [`FakeDiscord::revoke_bot`] (401), [`FakeDiscord::deny_next`] (403 50013).
//! - Faults: [`FakeDiscord::fail_next`], [`FakeDiscord::rate_limit_next`] (the
//!   next executes or bot calls), [`FakeDiscord::faults_after`],
//!   [`FakeDiscord::drop_after_store_next`], [`FakeDiscord::stall_after_store_next`],
//!   [`FakeDiscord::set_latency`].
//! - Inspection: [`FakeDiscord::messages`] (content, embeds, allowed mentions,
//!   webhook, deleted flag), [`FakeDiscord::execute_requests`], [`FakeDiscord::requests_to`].
//!
//! Where Discord does not document a value the fake picks one: a webhook
//! bucket of 5 requests per 2 seconds [lib]; messages made by a webhook have
//! no `guild_id` in the execute answer (the webhook object has it).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use crate::fakes::server::{random_token, FakeServer, Faults, Outcome};

const DISCORD_EPOCH_MS: i64 = 1_420_070_400_000;
const CONTENT_LIMIT: usize = 2000;
const MAX_EMBEDS: usize = 10;

/// A fixed-window bucket: `limit` requests per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    pub limit: u32,
    pub window: Duration,
}

/// Settings of a [`FakeDiscord`].
#[derive(Debug, Clone)]
pub struct FakeDiscordConfig {
    /// Per-webhook bucket for executes; `None` turns it (and its headers) off.
    pub webhook_bucket: Option<Bucket>,
    /// Per-bot bucket for bot calls (reads and creates); `None` turns it off.
    pub bot_bucket: Option<Bucket>,
    pub workers: usize,
}

impl Default for FakeDiscordConfig {
    fn default() -> Self {
        Self {
            webhook_bucket: Some(Bucket {
                limit: 5,
                window: Duration::from_secs(2),
            }),
            bot_bucket: Some(Bucket {
                limit: 50,
                window: Duration::from_secs(1),
            }),
            workers: 2,
        }
    }
}

/// A webhook the fake created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeWebhook {
    /// `{base}/api/webhooks/{id}/{token}`: the credential.
    pub url: String,
    pub id: String,
    pub token: String,
    pub channel_id: String,
    pub guild_id: String,
}

/// A message in a channel.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FakeDiscordMessage {
    pub id: String,
    pub channel_id: String,
    /// The webhook that posted it (`None`: a user's message).
    pub webhook_id: Option<String>,
    pub content: String,
    pub embeds: Vec<Value>,
    pub allowed_mentions: Option<Value>,
    /// `thread_id` of the execute call, if any.
    pub thread_id: Option<String>,
    pub timestamp: DateTime<Utc>,
    pub deleted: bool,
    /// The user or bot that wrote it (`None`: a webhook's message).
    pub author: Option<String>,
    /// Written by a bot (with its token).
    pub by_bot: bool,
    /// `message_reference.message_id`: the message it replies to.
    pub reference: Option<String>,
    /// The `nonce` of a bot's create.
    pub nonce: Option<String>,
}

/// A running fake; stops when dropped.
pub struct FakeDiscord {
    shared: Arc<Shared>,
    server: FakeServer,
}

impl FakeDiscord {
    pub async fn start() -> FakeDiscord {
        Self::start_with(FakeDiscordConfig::default()).await
    }

    pub async fn start_with(config: FakeDiscordConfig) -> FakeDiscord {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                bucket: config.webhook_bucket,
                bot_bucket: config.bot_bucket,
                ..State::default()
            }),
        });
        let server = FakeServer::bind("fake-discord")
            .serve(config.workers, shared.clone(), 1 << 20, |app| {
                app.default_service(web::to(route));
            })
            .await;
        FakeDiscord { shared, server }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        self.server.base_url().to_string()
    }

    /// `http://127.0.0.1:PORT/api/v10`: the REST base for bot calls.
    pub fn api_url(&self) -> String {
        format!("{}/api/v10", self.server.base_url())
    }

    /// A webhook named `name` in a new channel of a new guild.
    pub fn add_webhook(&self, name: &str) -> FakeWebhook {
        let mut state = self.shared.lock();
        let guild_id = state.snowflake(Utc::now()).to_string();
        let channel_id = state.snowflake(Utc::now()).to_string();
        let id = state.snowflake(Utc::now()).to_string();
        let token = random_token(68);
        state.channels.entry(channel_id.clone()).or_default();
        state.webhooks.insert(
            id.clone(),
            Hook {
                name: name.to_string(),
                token: token.clone(),
                channel_id: channel_id.clone(),
                guild_id: guild_id.clone(),
                deleted: false,
                window: (Instant::now(), 0),
            },
        );
        FakeWebhook {
            url: format!("{}/api/webhooks/{id}/{token}", self.server.base_url()),
            id,
            token,
            channel_id,
            guild_id,
        }
    }

    /// A bot that can read every channel; returns its token.
    pub fn add_bot(&self) -> String {
        let token = format!(
            "MT{}.{}.{}",
            random_token(24),
            random_token(6),
            random_token(27)
        );
        let mut state = self.shared.lock();
        let id = state.snowflake(Utc::now()).to_string();
        let username = format!("herald-bot-{}", state.bots.len() + 1);
        state.bots.insert(
            token.clone(),
            Bot {
                valid: true,
                id,
                username,
                window: (Instant::now(), 0),
            },
        );
        token
    }

    /// The bot token stops working (401).
    pub fn revoke_bot(&self, token: &str) {
        if let Some(bot) = self.shared.lock().bots.get_mut(token) {
            bot.valid = false;
        }
    }

    /// The user `username` answers message `message_id` with a reply
    /// (type 19, `message_reference` to it) in its channel, now. Returns
    /// the reply's id; `None` if no channel holds that message.
    pub fn add_reply(&self, message_id: &str, username: &str, content: &str) -> Option<String> {
        let mut state = self.shared.lock();
        let parent = message_id.parse::<u64>().ok()?;
        let channel_id = state
            .channels
            .iter()
            .find(|(_, c)| c.get(&parent).is_some_and(|m| !m.deleted))
            .map(|(id, _)| id.clone())?;
        let id = state.snowflake(Utc::now());
        state.insert(FakeDiscordMessage {
            id: id.to_string(),
            channel_id,
            content: content.to_string(),
            timestamp: Utc::now(),
            author: Some(username.to_string()),
            reference: Some(parent.to_string()),
            ..FakeDiscordMessage::default()
        });
        Some(id.to_string())
    }

    /// The faults armed next (`fail_next`, `rate_limit_next`) wait for
    /// `requests` more requests they could hit (a failure on page 2).
    pub fn faults_after(&self, requests: usize) {
        self.shared.lock().fault_skip = requests;
    }

    /// The webhook is deleted: every call answers 404 `10015 Unknown Webhook`.
    pub fn delete_webhook(&self, id: &str) {
        if let Some(hook) = self.shared.lock().webhooks.get_mut(id) {
            hook.deleted = true;
        }
    }

    /// The webhook gets a new token (returned, with its new URL); the old one answers 401 `50027`.
    pub fn reset_webhook_token(&self, id: &str) -> Option<FakeWebhook> {
        let mut state = self.shared.lock();
        let hook = state.webhooks.get_mut(id)?;
        hook.token = random_token(68);
        Some(FakeWebhook {
            url: format!(
                "{}/api/webhooks/{id}/{}",
                self.server.base_url(),
                hook.token
            ),
            id: id.to_string(),
            token: hook.token.clone(),
            channel_id: hook.channel_id.clone(),
            guild_id: hook.guild_id.clone(),
        })
    }

    /// A user's message in `channel_id` (for reconciliation to skip).
    pub fn post_as_user(&self, channel_id: &str, content: &str) -> String {
        let mut state = self.shared.lock();
        let id = state.snowflake(Utc::now());
        state.insert(FakeDiscordMessage {
            id: id.to_string(),
            channel_id: channel_id.to_string(),
            content: content.to_string(),
            timestamp: Utc::now(),
            author: Some("someone".into()),
            ..FakeDiscordMessage::default()
        });
        id.to_string()
    }

    /// A message of webhook `id` as if posted at `at`. Returns its id.
    pub fn seed_webhook_message(
        &self,
        id: &str,
        content: &str,
        at: DateTime<Utc>,
    ) -> Option<String> {
        let mut state = self.shared.lock();
        let channel_id = state.webhooks.get(id)?.channel_id.clone();
        let message_id = state.snowflake(at);
        state.insert(FakeDiscordMessage {
            id: message_id.to_string(),
            channel_id,
            webhook_id: Some(id.to_string()),
            content: content.to_string(),
            embeds: Vec::new(),
            allowed_mentions: None,
            thread_id: None,
            timestamp: at,
            ..FakeDiscordMessage::default()
        });
        Some(message_id.to_string())
    }

    /// The next `n` executes or bot calls answer `status` (a 5xx) and store nothing.
    pub fn fail_next(&self, n: usize, status: u16) {
        self.shared.lock().faults.fail.arm(n, status);
    }

    /// The next `n` executes or bot calls answer 429 with `retry_after` (and
    /// `global` in the body).
    pub fn rate_limit_next(&self, n: usize, retry_after: Duration, global: bool) {
        self.shared
            .lock()
            .faults
            .rate_limit
            .arm(n, (retry_after, global));
    }

    /// The next `n` executes answer 403 `50013 Missing Permissions`.
    pub fn deny_next(&self, n: usize) {
        self.shared.lock().deny = n;
    }

    /// The next `n` executes store the message, then drop the connection unanswered.
    pub fn drop_after_store_next(&self, n: usize) {
        self.shared.lock().faults.drop_after_store.arm(n, ());
    }

    /// The next `n` executes store the message, then wait `stall` before answering.
    pub fn stall_after_store_next(&self, n: usize, stall: Duration) {
        self.shared.lock().faults.stall_after_store.arm(n, stall);
    }

    /// Every request waits `latency` first.
    pub fn set_latency(&self, latency: Duration) {
        self.shared.lock().latency = latency;
    }

    /// Every message (deleted ones included), oldest first.
    pub fn messages(&self) -> Vec<FakeDiscordMessage> {
        let state = self.shared.lock();
        let mut all: Vec<(u64, FakeDiscordMessage)> = state
            .channels
            .values()
            .flat_map(|c| c.iter().map(|(id, m)| (*id, m.clone())))
            .collect();
        all.sort_by_key(|(id, _)| *id);
        all.into_iter().map(|(_, m)| m).collect()
    }

    /// Webhook executes received, failed ones included.
    pub fn execute_requests(&self) -> usize {
        self.shared.lock().execute_requests
    }

    /// Requests whose path (version prefix removed, such as
    /// `/webhooks/…` or `/channels/…`) starts with `prefix`, by method.
    pub fn requests_to(&self, method: &str, prefix: &str) -> usize {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|((m, p), _)| m == method && p.starts_with(prefix))
            .map(|(_, n)| n)
            .sum()
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
    valid: bool,
    /// The bot user's id and name.
    id: String,
    username: String,
    /// Bucket window start and calls counted in it.
    window: (Instant, u32),
}

struct Hook {
    name: String,
    token: String,
    channel_id: String,
    guild_id: String,
    deleted: bool,
    /// Bucket window start and executes counted in it.
    window: (Instant, u32),
}

#[derive(Default)]
struct State {
    bucket: Option<Bucket>,
    latency: Duration,
    last_snowflake: u64,
    webhooks: HashMap<String, Hook>,
    bots: HashMap<String, Bot>,
    bot_bucket: Option<Bucket>,
    /// Requests that pass before the armed faults apply.
    fault_skip: usize,
    /// Channel id → messages by snowflake.
    channels: HashMap<String, BTreeMap<u64, FakeDiscordMessage>>,
    execute_requests: usize,
    requests: HashMap<(String, String), usize>,
    /// The rate limit: (retry after, global).
    faults: Faults<(Duration, bool)>,
    /// Executes still to refuse with Missing Permissions.
    deny: usize,
}

/// `X-RateLimit-*` values of one answer.
struct RateHeaders {
    limit: u32,
    remaining: u32,
    reset_after: Duration,
    bucket: String,
}

impl RateHeaders {
    fn apply(&self, builder: &mut HttpResponseBuilder) {
        let reset = (Utc::now().timestamp_millis() as f64
            + self.reset_after.as_secs_f64() * 1000.0)
            / 1000.0;
        builder
            .insert_header(("X-RateLimit-Limit", self.limit.to_string()))
            .insert_header(("X-RateLimit-Remaining", self.remaining.to_string()))
            .insert_header(("X-RateLimit-Reset", format!("{reset:.3}")))
            .insert_header((
                "X-RateLimit-Reset-After",
                format!("{:.3}", self.reset_after.as_secs_f64()),
            ))
            .insert_header(("X-RateLimit-Bucket", self.bucket.clone()));
    }
}

/// A checked message body: the JSON object, its content and its embeds.
type MessageBody<'a> = (&'a Map<String, Value>, String, Vec<Value>);

/// The checks Discord makes on a message body, for a webhook and a bot
/// alike: valid JSON, `content` of at most 2,000 characters, `embeds` a
/// list of at most 10 with well-formed image URLs, and not empty. Returns
/// the body, its content and its embeds, or the 400 to answer.
#[allow(clippy::result_large_err)] // a fake: the error is the response itself
fn message_body(body: &Result<Map<String, Value>, ()>) -> Result<MessageBody<'_>, HttpResponse> {
    let Ok(body) = body else {
        return Err(error_body(
            400,
            50109,
            "The request body contains invalid JSON.",
            None,
        ));
    };
    let content = body
        .get("content")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if content.chars().count() > CONTENT_LIMIT {
        return Err(form_error(
            &["content"],
            "BASE_TYPE_MAX_LENGTH",
            "Must be 2000 or fewer in length.",
        ));
    }
    let embeds = match body.get("embeds") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(embeds)) => embeds.clone(),
        Some(_) => {
            return Err(form_error(
                &["embeds"],
                "LIST_TYPE_CONVERT",
                "Only iterables may be used in a ListType",
            ))
        }
    };
    if embeds.len() > MAX_EMBEDS {
        return Err(form_error(
            &["embeds"],
            "BASE_TYPE_MAX_LENGTH",
            "Must be 10 or fewer in length.",
        ));
    }
    for (i, embed) in embeds.iter().enumerate() {
        if let Some(url) = embed.get("image").and_then(|i| i.get("url")) {
            let ok = url.as_str().is_some_and(|u| {
                u.starts_with("http://")
                    || u.starts_with("https://")
                    || u.starts_with("attachment://")
            });
            if !ok {
                let index = i.to_string();
                return Err(form_error(
                    &["embeds", &index, "image", "url"],
                    "URL_TYPE_INVALID_URL",
                    "Not a well formed URL.",
                ));
            }
        }
    }
    if content.trim().is_empty() && embeds.is_empty() {
        return Err(error_body(400, 50006, "Cannot send an empty message", None));
    }
    Ok((body, content, embeds))
}

fn error_body(status: u16, code: u64, message: &str, errors: Option<Value>) -> HttpResponse {
    let mut body = json!({"code": code, "message": message});
    if let Some(errors) = errors {
        body["errors"] = errors;
    }
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST)).json(body)
}

fn unknown_webhook() -> HttpResponse {
    error_body(404, 10015, "Unknown Webhook", None)
}

fn form_error(path: &[&str], code: &str, message: &str) -> HttpResponse {
    let mut errors = json!({"_errors": [{"code": code, "message": message}]});
    for key in path.iter().rev() {
        errors = json!({ *key: errors });
    }
    error_body(400, 50035, "Invalid Form Body", Some(errors))
}

impl State {
    /// A new snowflake for `at`, larger than every earlier one made for a later time.
    fn snowflake(&mut self, at: DateTime<Utc>) -> u64 {
        let ms = (at.timestamp_millis() - DISCORD_EPOCH_MS).max(0) as u64;
        let mut id = (ms << 22) | 1;
        if at >= Utc::now() - chrono::Duration::seconds(1) {
            id = id.max(self.last_snowflake + 1);
            self.last_snowflake = id;
        } else {
            // An older instant (seeded): keep the id unique within that millisecond.
            while self.channels.values().any(|c| c.contains_key(&id)) {
                id += 1;
            }
        }
        id
    }

    fn insert(&mut self, message: FakeDiscordMessage) {
        let id: u64 = message.id.parse().unwrap_or(0);
        self.channels
            .entry(message.channel_id.clone())
            .or_default()
            .insert(id, message);
    }

    /// The webhook `id` if `token` is its token.
    #[allow(clippy::result_large_err)]
    fn webhook(&self, id: &str, token: &str) -> Result<&Hook, HttpResponse> {
        match self.webhooks.get(id) {
            Some(hook) if hook.deleted => Err(unknown_webhook()),
            Some(hook) if hook.token != token => {
                Err(error_body(401, 50027, "Invalid Webhook Token", None))
            }
            Some(hook) => Ok(hook),
            None => Err(unknown_webhook()),
        }
    }

    fn message_json(&self, m: &FakeDiscordMessage) -> Value {
        let mut value = self.message_json_flat(m);
        if let Some(parent) = m.reference.as_deref().and_then(|r| self.find_message(r)) {
            value["referenced_message"] = self.message_json_flat(parent);
        }
        value
    }

    /// A message in `channel_id`… by id, anywhere.
    fn find_message(&self, id: &str) -> Option<&FakeDiscordMessage> {
        let id = id.parse::<u64>().ok()?;
        self.channels
            .values()
            .find_map(|c| c.get(&id))
            .filter(|m| !m.deleted)
    }

    /// A message without its `referenced_message` (as Discord nests it).
    fn message_json_flat(&self, m: &FakeDiscordMessage) -> Value {
        let name = match (&m.author, &m.webhook_id) {
            (Some(author), _) => author.clone(),
            (None, Some(id)) => self
                .webhooks
                .get(id)
                .map_or("someone".to_string(), |h| h.name.clone()),
            (None, None) => "someone".to_string(),
        };
        let author_id = match (&m.webhook_id, &m.author) {
            (Some(webhook), _) => webhook.clone(),
            (None, Some(author)) if m.by_bot => self
                .bots
                .values()
                .find(|b| &b.username == author)
                .map_or_else(|| "80351110224678912".to_string(), |b| b.id.clone()),
            (None, Some(author)) => user_id_of(author),
            (None, None) => "80351110224678912".to_string(),
        };
        let guild_id = self
            .webhooks
            .values()
            .find(|h| h.channel_id == m.channel_id)
            .map(|h| h.guild_id.clone());
        let mut value = json!({
            "id": m.id,
            "type": if m.reference.is_some() { 19 } else { 0 },
            "content": m.content,
            "channel_id": m.channel_id,
            "author": {"id": author_id, "username": name, "global_name": name, "avatar": null, "discriminator": "0", "bot": m.webhook_id.is_some() || m.by_bot},
            "attachments": [],
            "embeds": m.embeds,
            "mentions": [],
            "mention_roles": [],
            "pinned": false,
            "mention_everyone": false,
            "tts": false,
            "timestamp": m.timestamp.to_rfc3339_opts(SecondsFormat::Micros, false),
            "edited_timestamp": null,
            "flags": 0,
            "components": [],
        });
        if let Some(webhook_id) = &m.webhook_id {
            value["webhook_id"] = json!(webhook_id);
        }
        if let Some(parent) = &m.reference {
            value["message_reference"] = json!({
                "type": 0,
                "message_id": parent,
                "channel_id": m.channel_id,
                "guild_id": guild_id,
            });
        }
        if let Some(nonce) = &m.nonce {
            value["nonce"] = json!(nonce);
        }
        value
    }

    /// Charge the webhook's bucket: the headers, or the 429 to send.
    #[allow(clippy::result_large_err)]
    fn charge(&mut self, id: &str) -> Result<Option<RateHeaders>, HttpResponse> {
        let Some(bucket) = self.bucket else {
            return Ok(None);
        };
        let hook = self.webhooks.get_mut(id).expect("checked webhook");
        let now = Instant::now();
        if now.duration_since(hook.window.0) >= bucket.window {
            hook.window = (now, 0);
        }
        let reset_after = bucket
            .window
            .saturating_sub(now.duration_since(hook.window.0));
        let headers = |remaining| RateHeaders {
            limit: bucket.limit,
            remaining,
            reset_after,
            bucket: format!("fake-webhook-{id}"),
        };
        if hook.window.1 >= bucket.limit {
            return Err(too_many(Some(&headers(0)), reset_after, false));
        }
        hook.window.1 += 1;
        Ok(Some(headers(bucket.limit - hook.window.1)))
    }

    fn execute(
        &mut self,
        id: &str,
        token: &str,
        query: &Map<String, Value>,
        body: Result<Map<String, Value>, ()>,
    ) -> Outcome {
        self.execute_requests += 1;
        if let Err(response) = self.webhook(id, token) {
            return Outcome::Answer(response);
        }
        if self.fault_skip == 0 {
            if let Some((wait, global)) = self.faults.rate_limit.take() {
                return Outcome::Answer(too_many(None, wait, global));
            }
        }
        let rate = match self.charge(id) {
            Ok(rate) => rate,
            Err(response) => return Outcome::Answer(response),
        };
        let answer = |builder: &mut HttpResponseBuilder| {
            if let Some(rate) = &rate {
                rate.apply(builder);
            }
        };
        if self.fault_skip > 0 {
            self.fault_skip -= 1;
        } else if let Some(status) = self.faults.fail.take() {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            let mut builder = HttpResponse::build(status);
            answer(&mut builder);
            return Outcome::Answer(
                builder.json(json!({"message": "Internal Server Error", "code": 0})),
            );
        }
        if self.deny > 0 {
            self.deny -= 1;
            return Outcome::Answer(error_body(403, 50013, "Missing Permissions", None));
        }
        let (body, content, embeds) = match message_body(&body) {
            Ok(parsed) => parsed,
            Err(response) => return Outcome::Answer(response),
        };
        let channel_id = self.webhooks[id].channel_id.clone();
        let message_id = self.snowflake(Utc::now());
        let message = FakeDiscordMessage {
            id: message_id.to_string(),
            channel_id,
            webhook_id: Some(id.to_string()),
            content,
            embeds: embeds
                .into_iter()
                .map(|mut e| {
                    e["type"] = json!("rich");
                    e
                })
                .collect(),
            allowed_mentions: body.get("allowed_mentions").cloned(),
            thread_id: query
                .get("thread_id")
                .and_then(Value::as_str)
                .map(str::to_string),
            timestamp: Utc::now(),
            ..FakeDiscordMessage::default()
        };
        self.insert(message.clone());
        let wait = query.get("wait").and_then(Value::as_str) == Some("true");
        let response = if wait {
            let mut builder = HttpResponse::Ok();
            answer(&mut builder);
            builder.json(self.message_json(&message))
        } else {
            let mut builder = HttpResponse::NoContent();
            answer(&mut builder);
            builder.finish()
        };
        self.faults.after_store(response)
    }

    fn get_webhook(&self, id: &str, token: &str) -> HttpResponse {
        match self.webhook(id, token) {
            Ok(hook) => HttpResponse::Ok().json(json!({
                "id": id,
                "type": 1,
                "guild_id": hook.guild_id,
                "channel_id": hook.channel_id,
                "name": hook.name,
                "avatar": null,
                "application_id": null,
                "token": hook.token,
            })),
            Err(response) => response,
        }
    }

    fn delete_message(&mut self, id: &str, token: &str, message_id: &str) -> HttpResponse {
        let channel_id = match self.webhook(id, token) {
            Ok(hook) => hook.channel_id.clone(),
            Err(response) => return response,
        };
        let found = message_id.parse::<u64>().ok().and_then(|mid| {
            self.channels
                .get_mut(&channel_id)?
                .get_mut(&mid)
                .filter(|m| !m.deleted && m.webhook_id.as_deref() == Some(id))
        });
        match found {
            Some(message) => {
                message.deleted = true;
                HttpResponse::NoContent().finish()
            }
            None => error_body(404, 10008, "Unknown Message", None),
        }
    }

    /// Check the bot token of a request, inject an armed fault, charge the
    /// bot's bucket: the bot's token and the rate headers, or the answer.
    #[allow(clippy::result_large_err)]
    fn bot_call(
        &mut self,
        req: &HttpRequest,
    ) -> Result<(String, Option<RateHeaders>), HttpResponse> {
        let token = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .strip_prefix("Bot ")
            .map(|t| t.trim().to_string())
            .filter(|t| self.bots.get(t).is_some_and(|b| b.valid))
            .ok_or_else(|| error_body(401, 0, "401: Unauthorized", None))?;
        if self.fault_skip > 0 {
            self.fault_skip -= 1;
        } else {
            if let Some((wait, global)) = self.faults.rate_limit.take() {
                return Err(too_many(None, wait, global));
            }
            if let Some(status) = self.faults.fail.take() {
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
                return Err(HttpResponse::build(status)
                    .json(json!({"message": "Internal Server Error", "code": 0})));
            }
        }
        let Some(bucket) = self.bot_bucket else {
            return Ok((token, None));
        };
        let bot = self.bots.get_mut(&token).expect("checked bot");
        let now = Instant::now();
        if now.duration_since(bot.window.0) >= bucket.window {
            bot.window = (now, 0);
        }
        let reset_after = bucket
            .window
            .saturating_sub(now.duration_since(bot.window.0));
        let headers = |remaining| RateHeaders {
            limit: bucket.limit,
            remaining,
            reset_after,
            bucket: format!("fake-bot-{}", bot.id),
        };
        if bot.window.1 >= bucket.limit {
            return Err(too_many(Some(&headers(0)), reset_after, false));
        }
        bot.window.1 += 1;
        Ok((token, Some(headers(bucket.limit - bot.window.1))))
    }

    fn channel_messages(&mut self, req: &HttpRequest, channel_id: &str) -> HttpResponse {
        let rate = match self.bot_call(req) {
            Ok((_, rate)) => rate,
            Err(response) => return response,
        };
        let ok = |body: Value| {
            let mut builder = HttpResponse::Ok();
            if let Some(rate) = &rate {
                rate.apply(&mut builder);
            }
            builder.json(body)
        };
        let Some(channel) = self.channels.get(channel_id) else {
            return error_body(404, 10003, "Unknown Channel", None);
        };
        let mut limit = 50usize;
        let (mut before, mut after, mut around) = (None, None, None);
        for (k, v) in form_urlencoded::parse(req.query_string().as_bytes()) {
            match k.as_ref() {
                "limit" => match v.parse::<usize>() {
                    Ok(n) if (1..=100).contains(&n) => limit = n,
                    _ => {
                        return form_error(
                            &["limit"],
                            "NUMBER_TYPE_MAX",
                            "Int value should be less than or equal to 100.",
                        )
                    }
                },
                "before" => before = v.parse::<u64>().ok(),
                "after" => after = v.parse::<u64>().ok(),
                "around" => around = v.parse::<u64>().ok(),
                _ => {}
            }
        }
        let live = |m: &&FakeDiscordMessage| !m.deleted;
        let mut page: Vec<&FakeDiscordMessage> = if let Some(after) = after {
            // The `limit` messages right after `after`, returned newest first.
            channel
                .range(after.saturating_add(1)..)
                .map(|(_, m)| m)
                .filter(live)
                .take(limit)
                .collect()
        } else if let Some(around) = around {
            let older: Vec<_> = channel
                .range(..around)
                .rev()
                .map(|(_, m)| m)
                .filter(live)
                .take(limit / 2)
                .collect();
            let newer: Vec<_> = channel
                .range(around..)
                .map(|(_, m)| m)
                .filter(live)
                .take(limit - older.len())
                .collect();
            older.into_iter().rev().chain(newer).collect()
        } else {
            let upper = before.unwrap_or(u64::MAX);
            let mut newest: Vec<_> = channel
                .range(..upper)
                .rev()
                .map(|(_, m)| m)
                .filter(live)
                .take(limit)
                .collect();
            newest.reverse();
            newest
        };
        page.reverse();
        let body: Vec<Value> = page.into_iter().map(|m| self.message_json(m)).collect();
        ok(Value::Array(body))
    }

    /// `GET /users/@me` as the bot: its user object.
    fn bot_user(&mut self, req: &HttpRequest) -> HttpResponse {
        let (token, rate) = match self.bot_call(req) {
            Ok(auth) => auth,
            Err(response) => return response,
        };
        let bot = &self.bots[&token];
        let mut builder = HttpResponse::Ok();
        if let Some(rate) = &rate {
            rate.apply(&mut builder);
        }
        builder.json(json!({
            "id": bot.id,
            "username": bot.username,
            "global_name": null,
            "discriminator": "0",
            "avatar": null,
            "bot": true,
            "verified": true,
            "flags": 0,
        }))
    }

    /// `POST /channels/{channel_id}/messages` as the bot.
    fn create_message(
        &mut self,
        req: &HttpRequest,
        channel_id: &str,
        body: Result<Map<String, Value>, ()>,
    ) -> Outcome {
        let (token, rate) = match self.bot_call(req) {
            Ok(auth) => auth,
            Err(response) => return Outcome::Answer(response),
        };
        let answer = |status: StatusCode, value: Value| {
            let mut builder = HttpResponse::build(status);
            if let Some(rate) = &rate {
                rate.apply(&mut builder);
            }
            builder.json(value)
        };
        if !self.channels.contains_key(channel_id) {
            return Outcome::Answer(error_body(404, 10003, "Unknown Channel", None));
        }
        let (body, content, embeds) = match message_body(&body) {
            Ok(parsed) => parsed,
            Err(response) => return Outcome::Answer(response),
        };
        let nonce = match body.get("nonce") {
            Some(Value::String(n)) if n.chars().count() <= 25 => Some(n.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            None | Some(Value::Null) => None,
            Some(_) => {
                return Outcome::Answer(form_error(
                    &["nonce"],
                    "BASE_TYPE_MAX_LENGTH",
                    "Must be 25 or fewer in length.",
                ))
            }
        };
        let bot_name = self.bots[&token].username.clone();
        let enforce = body.get("enforce_nonce").and_then(Value::as_bool) == Some(true);
        if let (true, Some(nonce)) = (enforce, &nonce) {
            let recent = Utc::now() - chrono::Duration::minutes(5);
            let earlier = self.channels[channel_id].values().find(|m| {
                m.by_bot
                    && m.author.as_deref() == Some(bot_name.as_str())
                    && m.nonce.as_deref() == Some(nonce.as_str())
                    && m.timestamp >= recent
            });
            if let Some(earlier) = earlier {
                return Outcome::Answer(answer(StatusCode::OK, self.message_json(earlier)));
            }
        }
        let reference = body.get("message_reference");
        let parent = reference
            .and_then(|r| r.get("message_id"))
            .and_then(|id| match id {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            });
        let mut kept_reference = None;
        if let Some(parent) = parent {
            let exists = parent
                .parse::<u64>()
                .ok()
                .and_then(|id| self.channels[channel_id].get(&id))
                .is_some_and(|m| !m.deleted);
            let must_exist = reference
                .and_then(|r| r.get("fail_if_not_exists"))
                .and_then(Value::as_bool)
                != Some(false);
            if exists {
                kept_reference = Some(parent);
            } else if must_exist {
                return Outcome::Answer(form_error(
                    &["message_reference"],
                    "MESSAGE_REFERENCE_UNKNOWN_MESSAGE",
                    "Unknown message",
                ));
            }
        }
        let id = self.snowflake(Utc::now());
        let message = FakeDiscordMessage {
            id: id.to_string(),
            channel_id: channel_id.to_string(),
            content,
            embeds,
            allowed_mentions: body.get("allowed_mentions").cloned(),
            timestamp: Utc::now(),
            author: Some(bot_name),
            by_bot: true,
            reference: kept_reference,
            nonce,
            ..FakeDiscordMessage::default()
        };
        self.insert(message.clone());
        let response = answer(StatusCode::OK, self.message_json(&message));
        self.faults.after_store(response)
    }
}

/// A stable user id for a username.
fn user_id_of(username: &str) -> String {
    let hash = username.bytes().fold(1_469_598_103_934_665_603u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(1_099_511_628_211)
    });
    ((hash >> 4) | (1 << 56)).to_string()
}

fn too_many(rate: Option<&RateHeaders>, wait: Duration, global: bool) -> HttpResponse {
    let mut builder = HttpResponse::TooManyRequests();
    if let Some(rate) = rate {
        rate.apply(&mut builder);
    }
    builder
        .insert_header((
            "Retry-After",
            wait.as_secs_f64().ceil().max(1.0).to_string(),
        ))
        .insert_header(("X-RateLimit-Scope", if global { "global" } else { "user" }));
    if global {
        builder.insert_header(("X-RateLimit-Global", "true"));
    }
    builder.json(json!({
        "message": "You are being rate limited.",
        "retry_after": (wait.as_secs_f64() * 1000.0).round() / 1000.0,
        "global": global,
    }))
}

/// The body of an execute: a JSON object, or a form.
fn parse_body(content_type: &str, body: &[u8]) -> Result<Map<String, Value>, ()> {
    if content_type.starts_with("application/json") {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(()),
        }
    } else {
        Ok(form_urlencoded::parse(body)
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect())
    }
}

// ---------------------------------------------------------------------------------------------
// Routing
// ---------------------------------------------------------------------------------------------

/// The path without `/api` and an optional `/v<N>`: `/webhooks/…`, `/channels/…`.
fn api_path(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/api")?;
    if let Some(after_v) = rest.strip_prefix("/v") {
        let digits = after_v.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 {
            return Some(&after_v[digits..]);
        }
    }
    Some(rest)
}

async fn route(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let Some(path) = api_path(req.path()).map(|p| p.trim_end_matches('/').to_string()) else {
        return error_body(404, 0, "404: Not Found", None);
    };
    let latency = {
        let mut state = shared.lock();
        *state
            .requests
            .entry((req.method().to_string(), path.clone()))
            .or_insert(0) += 1;
        state.latency
    };
    if !latency.is_zero() {
        actix_web::rt::time::sleep(latency).await;
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let method = req.method().clone();
    match (method, segments.as_slice()) {
        (Method::POST, ["webhooks", id, token]) => {
            let query: Map<String, Value> = form_urlencoded::parse(req.query_string().as_bytes())
                .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
                .collect();
            let content_type = super::server::content_type(&req);
            let parsed = parse_body(&content_type, &body);
            let outcome = shared.lock().execute(id, token, &query, parsed);
            outcome.respond("fake Discord").await
        }
        (Method::GET, ["webhooks", id, token]) => shared.lock().get_webhook(id, token),
        (Method::DELETE, ["webhooks", id, token, "messages", message_id]) => {
            shared.lock().delete_message(id, token, message_id)
        }
        (Method::GET, ["channels", channel_id, "messages"]) => {
            shared.lock().channel_messages(&req, channel_id)
        }
        (Method::GET, ["users", "@me"]) => shared.lock().bot_user(&req),
        (Method::POST, ["channels", channel_id, "messages"]) => {
            let content_type = super::server::content_type(&req);
            let parsed = parse_body(&content_type, &body);
            let outcome = shared.lock().create_message(&req, channel_id, parsed);
            outcome.respond("fake Discord").await
        }
        (Method::GET | Method::POST | Method::DELETE | Method::PATCH, _) => {
            error_body(404, 0, "404: Not Found", None)
        }
        _ => error_body(405, 0, "405: Method Not Allowed", None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_lose_the_api_prefix_and_version() {
        assert_eq!(api_path("/api/v10/webhooks/1/t"), Some("/webhooks/1/t"));
        assert_eq!(api_path("/api/webhooks/1/t"), Some("/webhooks/1/t"));
        assert_eq!(
            api_path("/api/v9/channels/2/messages"),
            Some("/channels/2/messages")
        );
        assert_eq!(api_path("/webhooks/1/t"), None);
    }

    #[test]
    fn snowflakes_grow_and_seeded_ones_keep_their_time() {
        let mut state = State::default();
        let a = state.snowflake(Utc::now());
        let b = state.snowflake(Utc::now());
        assert!(b > a);
        let old = Utc::now() - chrono::Duration::hours(1);
        let seeded = state.snowflake(old);
        assert_eq!(
            (seeded >> 22) as i64 + DISCORD_EPOCH_MS,
            old.timestamp_millis()
        );
    }
}
