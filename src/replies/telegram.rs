//! Telegram comments (shared/platforms.md §8.6). A channel post's comments
//! live in the channel's linked discussion group and reach a bot only as
//! updates: one `getUpdates` queue per bot, where passing `offset` confirms
//! (deletes) the earlier updates for every reader. A per-delivery poll
//! therefore never reads that queue; instead:
//!
//! - [`consume_updates`] (run by the collector before its polls) reads each
//!   bot's queue once, whichever accounts and channels share the bot, and
//!   stores the group messages in `telegram_comments` (one row per account
//!   using the bot) together with the bot's next offset
//!   (`telegram_offsets`), in one transaction: updates are confirmed to
//!   Telegram only by a later call passing that offset, so a failure before
//!   the commit loses nothing (the same updates come again).
//! - [`replies_for`] answers a delivery's poll from the store: the comments
//!   under the automatic forward of the channel post (and of the thread's
//!   other parts), at any depth.
//!
//! Cursor of a poll: the highest group `message_id` returned. Message ids
//! grow within a chat, a delivery's comments are all in the one group its
//! posts were forwarded to, and a message is stored before any later update
//! of the same bot is confirmed, so nothing below the cursor can appear
//! after it.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use crate::accounts::sessions::Sessions;
use crate::accounts::store::AccountRow;
use crate::accounts::AccountStatus;
use crate::db::schema::{accounts, telegram_comments, telegram_offsets};
use crate::db::{self, DbConnection, DbPool};
use crate::platforms::telegram::{
    self, BotAccess, ForwardOrigin, GroupMessage, Telegram, UPDATES_LIMIT,
};
use crate::platforms::{ConnectorError, FetchedReply, Platform, ReplyPage};

/// `getUpdates` calls per bot and run, at most (100 updates each).
const MAX_PAGES: usize = 10;
/// Replies returned per poll, at most (the cursor resumes after them).
const MAX_REPLIES: usize = 1000;

/// A stored group message.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = telegram_comments)]
pub struct CommentRow {
    pub account_id: String,
    pub chat_id: i64,
    pub message_id: i64,
    pub chat_username: Option<String>,
    pub thread_id: Option<i64>,
    pub reply_to_message_id: Option<i64>,
    pub automatic_forward: bool,
    pub forward_origin_chat_id: Option<i64>,
    pub forward_origin_message_id: Option<i64>,
    pub forward_origin_username: Option<String>,
    pub author_id: Option<i64>,
    pub author: String,
    pub text: String,
    pub date: NaiveDateTime,
    pub update_id: i64,
    pub received_at: NaiveDateTime,
}

impl CommentRow {
    fn new(account_id: &str, m: &GroupMessage, now: NaiveDateTime) -> Self {
        let origin = m.forward_origin.as_ref();
        Self {
            account_id: account_id.to_string(),
            chat_id: m.chat_id,
            message_id: m.message_id,
            chat_username: m.chat_username.clone(),
            thread_id: m.thread_id,
            reply_to_message_id: m.reply_to_message_id,
            automatic_forward: m.automatic_forward,
            forward_origin_chat_id: origin.map(|o| o.chat_id),
            forward_origin_message_id: origin.map(|o| o.message_id),
            forward_origin_username: origin.and_then(|o| o.username.clone()),
            author_id: m.author_id,
            author: m.author.clone(),
            text: m.text.clone(),
            date: db::truncate_micros(m.date.naive_utc()),
            update_id: m.update_id,
            received_at: now,
        }
    }

    fn origin(&self) -> Option<ForwardOrigin> {
        Some(ForwardOrigin {
            chat_id: self.forward_origin_chat_id?,
            message_id: self.forward_origin_message_id?,
            username: self.forward_origin_username.clone(),
        })
    }
}

/// Where a bot's update queue stands.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = telegram_offsets)]
pub struct OffsetRow {
    /// SHA-256 of the bot token ([`BotAccess::key`]).
    pub bot_key: String,
    /// The next `getUpdates` offset (0: none yet).
    pub next_offset: i64,
    /// A 429 asked to wait until then.
    pub retry_at: Option<NaiveDateTime>,
    pub last_error: Option<String>,
    pub updated_at: NaiveDateTime,
}

/// What one [`consume_updates`] run did.
#[derive(Debug, Default)]
pub struct Consumed {
    /// Group messages stored (one per account using the bot).
    pub stored: usize,
    /// Bots whose queue could not be read, with the accounts using them.
    pub failures: Vec<BotFailure>,
}

#[derive(Debug)]
pub struct BotFailure {
    pub account_ids: Vec<String>,
    pub error: ConnectorError,
}

async fn run_db<T: Send + 'static>(
    pool: &DbPool,
    f: impl FnOnce(&mut DbConnection) -> QueryResult<T> + Send + 'static,
) -> anyhow::Result<T> {
    crate::db::blocking(pool, f).await
}

/// Read every bot's pending updates once and store its group messages.
///
/// For each active Telegram account, grouped by bot token: unless a 429 asked
/// to wait, `getUpdates` from the stored offset (up to [`MAX_PAGES`] pages of
/// 100), each page's messages stored for every account of the bot in one
/// transaction with the offset after it. A bot that cannot be read (401, 409
/// with a webhook set, 429, a network failure) is logged and listed in
/// `failures`; the others go on. A database failure ends the run with `Err`.
pub async fn consume_updates(
    pool: &DbPool,
    sessions: &Sessions,
    telegram: &Telegram,
) -> anyhow::Result<Consumed> {
    let rows: Vec<AccountRow> = run_db(pool, |conn| {
        accounts::table
            .filter(accounts::platform.eq(Platform::Telegram.as_str()))
            .filter(accounts::status.eq(AccountStatus::Active.as_str()))
            .filter(accounts::removed_at.is_null())
            .order(accounts::id.asc())
            .select(AccountRow::as_select())
            .load(conn)
    })
    .await?;
    let mut consumed = Consumed::default();
    let mut bots: BTreeMap<String, (BotAccess, Vec<String>)> = BTreeMap::new();
    for row in rows {
        let access = match sessions.get(&row) {
            Ok(session) => telegram.bot_access(&session).await,
            // Not the network's answer (the credentials cannot be opened):
            // nothing to reconnect.
            Err(message) => Err(ConnectorError::Rejected {
                message,
                status: None,
            }),
        };
        match access {
            Ok(bot) => {
                bots.entry(bot.key())
                    .or_insert_with(|| (bot, Vec::new()))
                    .1
                    .push(row.id);
            }
            Err(error) => {
                tracing::warn!(account = %row.id, %error, "telegram comments cannot be read");
                consumed.failures.push(BotFailure {
                    account_ids: vec![row.id],
                    error,
                });
            }
        }
    }
    for (key, (bot, account_ids)) in bots {
        match consume_bot(pool, telegram, &key, &bot, &account_ids).await? {
            Ok(stored) => consumed.stored += stored,
            Err(error) => {
                tracing::warn!(accounts = ?account_ids, %error, "reading telegram updates failed");
                consumed.failures.push(BotFailure { account_ids, error });
            }
        }
    }
    Ok(consumed)
}

/// One bot's queue: `Ok(Err)` when Telegram refused, `Err` on a database failure.
async fn consume_bot(
    pool: &DbPool,
    telegram: &Telegram,
    key: &str,
    bot: &BotAccess,
    account_ids: &[String],
) -> anyhow::Result<Result<usize, ConnectorError>> {
    let bot_key = key.to_string();
    let stored: Option<OffsetRow> = run_db(pool, move |conn| {
        telegram_offsets::table
            .find(&bot_key)
            .select(OffsetRow::as_select())
            .first(conn)
            .optional()
    })
    .await?;
    let now = db::now();
    if stored
        .as_ref()
        .and_then(|s| s.retry_at)
        .is_some_and(|at| at > now)
    {
        // Telegram asked to wait: no call before then.
        return Ok(Ok(0));
    }
    let mut offset = stored.map(|s| s.next_offset).filter(|o| *o > 0);
    let mut total = 0;
    for _ in 0..MAX_PAGES {
        let updates = match telegram.get_updates(bot, offset, UPDATES_LIMIT).await {
            Ok(updates) => updates,
            Err(error) => {
                let retry_at = match &error {
                    ConnectorError::RateLimited { retry_after, .. } => Some(
                        db::now()
                            + chrono::Duration::from_std(*retry_after)
                                .unwrap_or_else(|_| chrono::Duration::hours(1)),
                    ),
                    _ => None,
                };
                let (key, message) = (key.to_string(), error.to_string());
                run_db(pool, move |conn| {
                    note_failure(conn, &key, retry_at, &message)
                })
                .await?;
                return Ok(Err(error));
            }
        };
        let Some(next) = updates.next_offset else {
            break;
        };
        let now = db::now();
        let rows: Vec<CommentRow> = account_ids
            .iter()
            .flat_map(|account| {
                updates
                    .messages
                    .iter()
                    .map(|m| CommentRow::new(account, m, now))
            })
            .collect();
        let key = key.to_string();
        total += run_db(pool, move |conn| {
            crate::deliveries::store::tx(conn, |conn| store_page(conn, &key, rows, next))
        })
        .await?;
        offset = Some(next);
        if updates.count < UPDATES_LIMIT as usize {
            break;
        }
    }
    Ok(Ok(total))
}

/// Store one page: the messages not stored yet, and the bot's offset after
/// them (never moved back). Runs inside the caller's write transaction.
pub fn store_page(
    conn: &mut DbConnection,
    bot_key: &str,
    rows: Vec<CommentRow>,
    next_offset: i64,
) -> QueryResult<usize> {
    let mut inserted = 0;
    for row in rows {
        let exists: i64 = telegram_comments::table
            .filter(telegram_comments::account_id.eq(&row.account_id))
            .filter(telegram_comments::chat_id.eq(row.chat_id))
            .filter(telegram_comments::message_id.eq(row.message_id))
            .count()
            .get_result(conn)?;
        if exists == 0 {
            diesel::insert_into(telegram_comments::table)
                .values(&row)
                .execute(conn)?;
            inserted += 1;
        }
    }
    let now = db::now();
    let current: Option<i64> = telegram_offsets::table
        .find(bot_key)
        .select(telegram_offsets::next_offset)
        .first(conn)
        .optional()?;
    match current {
        Some(current) => {
            diesel::update(telegram_offsets::table.find(bot_key))
                .set((
                    telegram_offsets::next_offset.eq(current.max(next_offset)),
                    telegram_offsets::retry_at.eq(None::<NaiveDateTime>),
                    telegram_offsets::last_error.eq(None::<String>),
                    telegram_offsets::updated_at.eq(now),
                ))
                .execute(conn)?;
        }
        None => {
            diesel::insert_into(telegram_offsets::table)
                .values(OffsetRow {
                    bot_key: bot_key.to_string(),
                    next_offset,
                    retry_at: None,
                    last_error: None,
                    updated_at: now,
                })
                .execute(conn)?;
        }
    }
    Ok(inserted)
}

/// Record a failed read (and the wait a 429 asked for); the offset stays.
fn note_failure(
    conn: &mut DbConnection,
    bot_key: &str,
    retry_at: Option<NaiveDateTime>,
    message: &str,
) -> QueryResult<()> {
    crate::deliveries::store::tx(conn, |conn| {
        let now = db::now();
        let updated = diesel::update(telegram_offsets::table.find(bot_key))
            .set((
                telegram_offsets::retry_at.eq(retry_at),
                telegram_offsets::last_error.eq(Some(message)),
                telegram_offsets::updated_at.eq(now),
            ))
            .execute(conn)?;
        if updated == 0 {
            diesel::insert_into(telegram_offsets::table)
                .values(OffsetRow {
                    bot_key: bot_key.to_string(),
                    next_offset: 0,
                    retry_at,
                    last_error: Some(message.to_string()),
                    updated_at: now,
                })
                .execute(conn)?;
        }
        Ok(())
    })
}

/// Where a bot's queue stands (tests and diagnostics).
pub fn offset_of(conn: &mut DbConnection, bot_key: &str) -> QueryResult<Option<OffsetRow>> {
    telegram_offsets::table
        .find(bot_key)
        .select(OffsetRow::as_select())
        .first(conn)
        .optional()
}

/// `<chat id>:<message id>` with a numeric chat id.
fn numeric_id(remote_id: &str) -> Option<(i64, i64)> {
    let (chat, message) = telegram::parse_remote_id(remote_id)?;
    Some((chat.trim().parse().ok()?, message))
}

/// The comments under channel post `channel_post_remote_id` of `account_id`
/// (as the connector's `remote_id`, `<channel id>:<message id>`) and under
/// the channel posts among `own_ids` (the thread's other parts), at any
/// depth, newer than `cursor`, oldest first, without `own_ids` (Herald's
/// answers) — a [`ReplyPage`] as a connector's `replies` answers.
///
/// Each channel post has an automatic forward in the discussion group;
/// a comment belongs to it when its `message_thread_id` is that forward, or
/// when its reply chain leads to it (or to one of Herald's answers in the
/// group). `parent_id`: the message answered, the forward standing for its
/// channel post. No forward stored yet: nothing, and the cursor stays.
pub fn replies_for(
    conn: &mut DbConnection,
    account_id: &str,
    channel_post_remote_id: &str,
    own_ids: &[String],
    cursor: Option<&str>,
) -> QueryResult<ReplyPage> {
    let empty = ReplyPage {
        replies: Vec::new(),
        cursor: None,
    };
    let roots: Vec<(i64, i64)> = std::iter::once(channel_post_remote_id)
        .chain(own_ids.iter().map(String::as_str))
        .filter_map(numeric_id)
        .collect();
    let Some(root) = numeric_id(channel_post_remote_id) else {
        return Ok(empty);
    };
    let chats: Vec<i64> = roots.iter().map(|r| r.0).collect();
    let messages: Vec<i64> = roots.iter().map(|r| r.1).collect();
    let mut forwards: Vec<CommentRow> = telegram_comments::table
        .filter(telegram_comments::account_id.eq(account_id))
        .filter(telegram_comments::automatic_forward.eq(true))
        .filter(telegram_comments::forward_origin_chat_id.eq_any(&chats))
        .filter(telegram_comments::forward_origin_message_id.eq_any(&messages))
        .order(telegram_comments::message_id.asc())
        .select(CommentRow::as_select())
        .load(conn)?;
    forwards.retain(|f| {
        roots.contains(&(
            f.forward_origin_chat_id.unwrap_or_default(),
            f.forward_origin_message_id.unwrap_or_default(),
        ))
    });
    // The group: where the root post was forwarded (else the first part).
    let Some((group, root_forward)) = forwards
        .iter()
        .find(|f| {
            (f.forward_origin_chat_id, f.forward_origin_message_id) == (Some(root.0), Some(root.1))
        })
        .or(forwards.first())
        .map(|f| ((f.chat_id, f.chat_username.clone()), f.message_id))
    else {
        return Ok(empty);
    };
    forwards.retain(|f| f.chat_id == group.0);
    let by_forward: HashMap<i64, &CommentRow> =
        forwards.iter().map(|f| (f.message_id, f)).collect();
    let forward_ids: Vec<i64> = by_forward.keys().copied().collect();
    let first = forward_ids.iter().copied().min().unwrap_or_default();
    let candidates: Vec<CommentRow> = telegram_comments::table
        .filter(telegram_comments::account_id.eq(account_id))
        .filter(telegram_comments::chat_id.eq(group.0))
        .filter(telegram_comments::automatic_forward.eq(false))
        .filter(telegram_comments::message_id.gt(first))
        .filter(
            telegram_comments::thread_id
                .eq_any(&forward_ids)
                .or(telegram_comments::thread_id.is_null()),
        )
        .order(telegram_comments::message_id.asc())
        .select(CommentRow::as_select())
        .load(conn)?;
    let own: HashSet<&str> = own_ids.iter().map(String::as_str).collect();
    // Message id → the forward whose thread it is in.
    let mut thread_of: HashMap<i64, i64> = forward_ids.iter().map(|id| (*id, *id)).collect();
    for id in own_ids.iter().filter_map(|id| numeric_id(id)) {
        if id.0 == group.0 {
            // Herald's answer in the group (the bot never receives its own
            // messages): replies to it that name no thread go in the root's.
            thread_of.entry(id.1).or_insert(root_forward);
        }
    }
    let after: i64 = cursor.and_then(|c| c.trim().parse().ok()).unwrap_or(0);
    let mut replies = Vec::new();
    let mut last = None;
    for row in &candidates {
        let thread = match row.thread_id.filter(|t| by_forward.contains_key(t)) {
            Some(thread) => thread,
            None => match row.reply_to_message_id.and_then(|p| thread_of.get(&p)) {
                Some(thread) => *thread,
                None => continue,
            },
        };
        thread_of.insert(row.message_id, thread);
        let remote_id = format!("{}:{}", group.0, row.message_id);
        if row.message_id <= after
            || own.contains(remote_id.as_str())
            || replies.len() >= MAX_REPLIES
        {
            continue;
        }
        let forward = by_forward.get(&thread).copied();
        let channel_post = |f: &CommentRow| {
            format!(
                "{}:{}",
                f.forward_origin_chat_id.unwrap_or_default(),
                f.forward_origin_message_id.unwrap_or_default()
            )
        };
        let parent_id = match row.reply_to_message_id {
            Some(parent) => Some(match by_forward.get(&parent) {
                Some(f) => channel_post(f),
                None => format!("{}:{parent}", group.0),
            }),
            None => forward.map(channel_post),
        };
        let url = telegram::comment_url(
            group.0,
            group.1.as_deref(),
            row.message_id,
            thread,
            forward.and_then(|f| f.origin()).as_ref(),
        );
        replies.push(FetchedReply {
            remote_id,
            parent_id,
            author: row.author.clone(),
            text: row.text.clone(),
            created_at: DateTime::<Utc>::from_naive_utc_and_offset(row.date, Utc),
            url: Some(url),
        });
        last = Some(row.message_id);
    }
    Ok(ReplyPage {
        replies,
        cursor: last.map(|id| id.to_string()),
    })
}
