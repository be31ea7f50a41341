//! Facebook Pages connector (shared/platforms.md §5): posts as a Page with a
//! Page access token on the Graph API.
//!
//! - Connect: Facebook Login (no PKCE, comma-joined scopes, token endpoint
//!   read with GET), then the short-lived user token is exchanged for a
//!   long-lived one (`fb_exchange_token`), and `/me/accounts` gives the Page
//!   token. A Page token derived from a long-lived user token does not
//!   expire, so there is nothing to refresh.
//! - Publish: `POST /{page-id}/feed` (`message`), or `POST /{page-id}/photos`
//!   (`url`, `caption`, `alt_text_custom`) with an image. Later thread parts
//!   and corrections are comments from the Page on the first post
//!   (`POST /{root-id}/comments`). The token goes in the `access_token`
//!   parameter, as the Pages guides show (form body for POST, query for GET
//!   and DELETE).
//! - No idempotency key: after an unknown outcome, `reconcile` looks the post
//!   up in `/{page-id}/published_posts` (or the root's comments) by its text.
//!   A 506 "duplicate status" on publish is answered the same way.
//! - `remote_id`: the Graph id of the post (`<page-id>_<post-id>`) or of the
//!   comment, as Graph gives it; `DELETE /{id}` takes either.
//! - Replies (platforms.md §5.6): `GET /{post-id}/comments?filter=stream&
//!   order=chronological` lists every comment under the post at any depth,
//!   flat and oldest first, with `parent{id}` on replies to comments. The
//!   poll's cursor is Graph's `after` cursor of the last page read: handed
//!   back, it makes Graph answer only the comments made since, wherever they
//!   sit in the conversation (a new answer to an old comment included,
//!   since the stream is ordered by time, not by thread). The Page's own
//!   comments (thread parts, answers) are left out. There is no @handle:
//!   the author is `from.name`.
//! - Answering a comment from the follow-up queue (`answers_reply`) is a
//!   comment on that comment: `POST /{comment-id}/comments`.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::graph::{self, Reply, TokenKind};
use super::{AccountSession, Connector, ConnectorError, Post, Published};
use super::{ConnectRequest, Connected, Credentials, OAuthApp, OAuthNetwork, TokenSet};
use super::{FetchedReply, ReplyPage, ReplyQuery};
use crate::config::NetworkApp;

const NETWORK: &str = "Facebook";
/// The scopes Herald asks for (platforms.md §5.1).
pub const SCOPES: [&str; 5] = [
    "pages_show_list",
    "pages_manage_posts",
    "pages_read_engagement",
    "pages_read_user_engagement",
    "pages_manage_engagement",
];
/// Pages of results read when looking a post up.
const MAX_PAGES: usize = 5;
/// Reconciliation looks this far before the first attempt (clock skew).
const LOOKBACK_SECONDS: i64 = 120;
/// Comments asked for per page when collecting replies (Graph's largest).
const REPLY_PAGE: &str = "100";
/// The comment fields reply collection reads (platforms.md §5.6).
const REPLY_FIELDS: &str = "id,message,from{id,name},created_time,parent{id},permalink_url";

/// Credential fields.
pub const PAGE_ID: &str = "page_id";
pub const PAGE_ACCESS_TOKEN: &str = "page_access_token";

#[derive(Clone)]
pub struct Facebook {
    http: reqwest::Client,
    app: NetworkApp,
}

impl Facebook {
    pub fn new(http: reqwest::Client, app: NetworkApp) -> Self {
        Self { http, app }
    }

    fn base(&self, account: &AccountSession) -> String {
        graph::trim_base(account.base_url.as_deref().unwrap_or(&self.app.api_url))
    }
}

/// The Page and its token, read from the account's credentials.
struct PageAuth {
    base: String,
    page_id: String,
    token: String,
}

async fn page_auth(account: &AccountSession, base: String) -> Result<PageAuth, ConnectorError> {
    let credentials = account.credentials.lock().await;
    let (Some(page_id), Some(token)) = (
        credentials.get(PAGE_ID).filter(|s| !s.is_empty()),
        credentials.get(PAGE_ACCESS_TOKEN).filter(|s| !s.is_empty()),
    ) else {
        return Err(ConnectorError::AuthRevoked {
            message: "the account has no Page id or Page access token; reconnect the account"
                .into(),
            status: None,
        });
    };
    Ok(PageAuth {
        base,
        page_id: page_id.to_string(),
        token: token.to_string(),
    })
}

fn fail(reply: &Reply) -> ConnectorError {
    graph::classify(NETWORK, reply, TokenKind::Page)
}

/// The public address of a post id `<page-id>_<post-id>`.
pub fn post_url(id: &str) -> String {
    match id.split_once('_') {
        Some((page, post)) if !page.is_empty() && !post.is_empty() => {
            format!("https://www.facebook.com/{page}/posts/{post}")
        }
        _ => format!("https://www.facebook.com/{id}"),
    }
}

impl Facebook {
    /// POST `form` (plus the token) to `{base}/{path}`, asking for the
    /// answer's `id` and `permalink_url` in the query (`fields=`).
    async fn post_form(
        &self,
        auth: &PageAuth,
        path: &str,
        form: &[(&str, &str)],
    ) -> Result<Reply, ConnectorError> {
        let mut fields: Vec<(&str, &str)> = form.to_vec();
        fields.push(("access_token", &auth.token));
        let request = self
            .http
            .post(format!("{}/{path}", auth.base))
            .query(&[("fields", "id,permalink_url")])
            .form(&fields);
        graph::send(request, true).await
    }

    /// GET `{base}/{path}` with `query` (plus the token).
    async fn get(
        &self,
        base: &str,
        token: &str,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Reply, ConnectorError> {
        graph::get(&self.http, base, token, path, query).await
    }

    /// Read a list and the pages after it (`paging.next`), at most
    /// [`MAX_PAGES`], stopping when `visit` says so.
    async fn list(
        &self,
        auth: &PageAuth,
        path: &str,
        query: &[(&str, &str)],
        visit: impl FnMut(&Value) -> bool,
    ) -> Result<(), ConnectorError> {
        let reply = self.get(&auth.base, &auth.token, path, query).await?;
        graph::walk_pages(&self.http, reply, MAX_PAGES, fail, visit).await
    }

    /// The Page's post (or the comment on `root`) carrying `post.text`,
    /// made since the first attempt.
    async fn find(
        &self,
        auth: &PageAuth,
        post: &Post,
    ) -> Result<Option<Published>, ConnectorError> {
        let since = post.first_attempt_at - chrono::Duration::seconds(LOOKBACK_SECONDS);
        let mut found: Option<Published> = None;
        if let Some(target) = &post.reply_to {
            let path = format!("{}/comments", target.root_id);
            let query = [
                ("filter", "stream"),
                ("order", "reverse_chronological"),
                ("fields", "id,message,from,created_time,permalink_url"),
                ("limit", "100"),
            ];
            self.list(auth, &path, &query, |item| {
                let from_page = item
                    .pointer("/from/id")
                    .and_then(Value::as_str)
                    .is_none_or(|id| id == auth.page_id);
                let text = item.get("message").and_then(Value::as_str).unwrap_or("");
                if from_page && graph::same_text(text, &post.text) && created_since(item, since) {
                    if let Some(id) = graph::text_field(item, "id") {
                        found = Some(Published {
                            remote_url: graph::text_field(item, "permalink_url"),
                            remote_id: id,
                            pause_until: None,
                        });
                        return true;
                    }
                }
                false
            })
            .await?;
            return Ok(found);
        }
        let path = format!("{}/published_posts", auth.page_id);
        let since_text = since.timestamp().to_string();
        let query = [
            ("since", since_text.as_str()),
            ("fields", "id,message,created_time,permalink_url"),
            ("limit", "100"),
        ];
        self.list(auth, &path, &query, |item| {
            let text = item.get("message").and_then(Value::as_str).unwrap_or("");
            if graph::same_text(text, &post.text) && created_since(item, since) {
                if let Some(id) = graph::text_field(item, "id") {
                    found = Some(Published {
                        remote_url: graph::text_field(item, "permalink_url")
                            .or_else(|| Some(post_url(&id))),
                        remote_id: id,
                        pause_until: None,
                    });
                    return true;
                }
            }
            false
        })
        .await?;
        Ok(found)
    }
}

/// What a comment of `target` is made on: the thread's first post, or the
/// comment from the public it answers.
fn commented_object(target: &super::ReplyTarget) -> Result<&str, ConnectorError> {
    let id = if target.answers_reply {
        target.parent_id.as_str()
    } else {
        target.root_id.as_str()
    };
    graph_id(id)
}

/// `id` when it can stand in a Graph path (no `/`, `?`, `#`), else `Rejected`.
fn graph_id(id: &str) -> Result<&str, ConnectorError> {
    let id = id.trim();
    if id.is_empty() || id.contains(['/', '?', '#']) {
        return Err(ConnectorError::Rejected {
            message: format!("'{id}' is not a Facebook post or comment id"),
            status: None,
        });
    }
    Ok(id)
}

/// One listed comment as a reply; `None` for the Page's own comments, for
/// Herald's posts and for items without an id.
fn to_reply(item: &Value, query: &ReplyQuery, page_id: &str) -> Option<FetchedReply> {
    let id = graph::text_field(item, "id")?;
    if query.own_ids.contains(&id) {
        return None;
    }
    let from = item.get("from");
    let from_id = from.and_then(|f| graph::text_field(f, "id"));
    if from_id.as_deref() == Some(page_id) {
        return None;
    }
    let author = from
        .and_then(|f| graph::text_field(f, "name"))
        .or(from_id)
        .unwrap_or_default();
    let parent_id = item
        .get("parent")
        .and_then(|p| graph::text_field(p, "id"))
        .unwrap_or_else(|| query.root_id.clone());
    let created_at = item
        .get("created_time")
        .and_then(Value::as_str)
        .and_then(graph::parse_time)
        .unwrap_or(query.published_at);
    Some(FetchedReply {
        remote_id: id,
        parent_id: Some(parent_id),
        author,
        text: graph::text_field(item, "message").unwrap_or_default(),
        created_at,
        url: graph::text_field(item, "permalink_url"),
    })
}

/// Whether a listed item was created at or after `since` (items without a
/// readable time are kept: the query's `since` already filtered them).
fn created_since(item: &Value, since: DateTime<Utc>) -> bool {
    item.get("created_time")
        .and_then(Value::as_str)
        .and_then(graph::parse_time)
        .is_none_or(|t| t >= since)
}

impl Connector for Facebook {
    async fn publish(
        &self,
        account: &AccountSession,
        post: &Post,
    ) -> Result<Published, ConnectorError> {
        let auth = page_auth(account, self.base(account)).await?;
        let image = post.media.first();
        let reply = if let Some(target) = &post.reply_to {
            let mut form = vec![("message", post.text.as_str())];
            if let Some(image) = image {
                form.push(("attachment_url", image.url.as_str()));
            }
            // A thread part comments on the first post; an answer from the
            // follow-up queue comments on the comment it answers.
            let on = commented_object(target)?;
            self.post_form(&auth, &format!("{on}/comments"), &form)
                .await?
        } else if let Some(image) = image {
            let mut form = vec![("url", image.url.as_str()), ("caption", post.text.as_str())];
            if let Some(alt) = image.alt.as_deref().filter(|a| !a.trim().is_empty()) {
                form.push(("alt_text_custom", alt));
            }
            self.post_form(&auth, &format!("{}/photos", auth.page_id), &form)
                .await?
        } else {
            let form = [("message", post.text.as_str())];
            self.post_form(&auth, &format!("{}/feed", auth.page_id), &form)
                .await?
        };
        if reply.ok() {
            // A photo answers {id: photo id, post_id: the Page post}.
            let id = reply.str("post_id").or_else(|| reply.str("id"));
            let Some(id) = id else {
                return Err(ConnectorError::Unknown {
                    message: "Facebook accepted the post but its answer had no id".into(),
                });
            };
            let remote_url = reply
                .str("permalink_url")
                .or_else(|| post.reply_to.is_none().then(|| post_url(&id)));
            return Ok(Published {
                remote_id: id,
                remote_url,
                pause_until: reply.usage.pause_until(Utc::now()),
            });
        }
        if reply.error.as_ref().is_some_and(|e| e.is_duplicate()) {
            // "Duplicate status message": an earlier attempt made it.
            if let Some(existing) = self.find(&auth, post).await? {
                return Ok(existing);
            }
        }
        Err(fail(&reply))
    }

    /// Looks the post up by its text among the Page's posts since the first
    /// attempt (or among the comments of the thread's first post). Facebook
    /// has no idempotency key, so this never sends anything.
    async fn reconcile(
        &self,
        account: &AccountSession,
        post: &Post,
    ) -> Result<Option<Published>, ConnectorError> {
        let auth = page_auth(account, self.base(account)).await?;
        self.find(&auth, post).await
    }

    async fn delete(
        &self,
        account: &AccountSession,
        remote_id: &str,
    ) -> Result<(), ConnectorError> {
        let auth = page_auth(account, self.base(account)).await?;
        if remote_id.is_empty() || remote_id.contains(['/', '?', '#']) {
            return Err(ConnectorError::Rejected {
                message: format!("'{remote_id}' is not a Facebook post id"),
                status: None,
            });
        }
        let request = self
            .http
            .delete(format!("{}/{remote_id}", auth.base))
            .query(&[("access_token", auth.token.as_str())]);
        let reply = graph::send(request, false).await?;
        if reply.ok() {
            return Ok(());
        }
        if reply.error.as_ref().is_some_and(|e| e.is_missing_object()) {
            return Ok(());
        }
        Err(fail(&reply))
    }

    async fn check(&self, account: &AccountSession) -> Result<(), ConnectorError> {
        let auth = page_auth(account, self.base(account)).await?;
        let reply = self
            .get(
                &auth.base,
                &auth.token,
                &auth.page_id,
                &[("fields", "id,name")],
            )
            .await?;
        if reply.ok() {
            Ok(())
        } else {
            Err(fail(&reply))
        }
    }

    /// Every comment under the post (at any depth) made after the cursor,
    /// oldest first, without the Page's own. See the module documentation
    /// for the cursor.
    async fn replies(
        &self,
        account: &AccountSession,
        query: &ReplyQuery,
    ) -> Result<ReplyPage, ConnectorError> {
        let auth = page_auth(account, self.base(account)).await?;
        let path = format!("{}/comments", graph_id(&query.root_id)?);
        let mut params = vec![
            ("filter", "stream"),
            ("order", "chronological"),
            ("fields", REPLY_FIELDS),
            ("limit", REPLY_PAGE),
        ];
        if let Some(after) = query.cursor.as_deref().filter(|c| !c.is_empty()) {
            params.push(("after", after));
        }
        let first = self.get(&auth.base, &auth.token, &path, &params).await?;
        let read = graph::read_forward(&self.http, first, graph::MAX_REPLY_PAGES, fail).await?;
        let mut replies: Vec<FetchedReply> = read
            .items
            .iter()
            .filter_map(|item| to_reply(item, query, &auth.page_id))
            .collect();
        replies.sort_by_key(|r| r.created_at);
        Ok(ReplyPage {
            replies,
            cursor: read.after,
        })
    }

    // `refresh` keeps the trait's default (nothing to renew): a Page token
    // obtained from a long-lived user token does not expire. It stops
    // working only when the admin's password changes, they lose the Page
    // role or remove the app, which needs a reconnection anyway.
}

impl OAuthNetwork for Facebook {
    fn oauth_app(&self) -> Option<OAuthApp> {
        let api = graph::trim_base(&self.app.api_url);
        let token_url = format!("{api}/oauth/access_token");
        graph::oauth_app(&self.app, &SCOPES, "dialog/oauth", token_url, true)
    }

    /// Exchange the short-lived user token for a long-lived one, then take
    /// the Page token of `request.target` (a Page id) or of the user's only
    /// Page from `/me/accounts`.
    async fn connect(
        &self,
        tokens: TokenSet,
        request: &ConnectRequest,
    ) -> Result<Connected, ConnectorError> {
        let (client_id, client_secret) = graph::app_client(&self.app, NETWORK)?;
        let base = graph::trim_base(request.base_url.as_deref().unwrap_or(&self.app.api_url));
        let exchange = self.http.get(format!("{base}/oauth/access_token")).query(&[
            ("grant_type", "fb_exchange_token"),
            ("client_id", client_id),
            ("client_secret", client_secret),
            ("fb_exchange_token", tokens.access_token()),
        ]);
        let reply = graph::send(exchange, false).await?;
        if !reply.ok() {
            return Err(fail(&reply));
        }
        let Some(user_token) = reply.str("access_token") else {
            return Err(ConnectorError::Rejected {
                message: "Facebook's token exchange answered without an access token".into(),
                status: Some(reply.status),
            });
        };
        let auth = PageAuth {
            base: base.clone(),
            page_id: String::new(),
            token: user_token,
        };
        let mut pages: Vec<(String, String, String)> = Vec::new();
        self.list(
            &auth,
            "me/accounts",
            &[("fields", "id,name,access_token"), ("limit", "100")],
            |item| {
                if let (Some(id), Some(token)) = (
                    graph::text_field(item, "id"),
                    graph::text_field(item, "access_token"),
                ) {
                    let name = graph::text_field(item, "name").unwrap_or_default();
                    pages.push((id, name, token));
                }
                false
            },
        )
        .await?;
        let chosen = match request.target.as_deref().map(str::trim) {
            Some(target) if !target.is_empty() => pages
                .iter()
                .find(|(id, _, _)| id == target)
                .ok_or_else(|| ConnectorError::Rejected {
                    message: format!(
                        "the Facebook user does not manage Page {target} (or did not grant it): {}",
                        describe_pages(&pages)
                    ),
                    status: None,
                })?,
            _ => match pages.as_slice() {
                [only] => only,
                [] => {
                    return Err(ConnectorError::Rejected {
                        message: "the Facebook user manages no Page, or granted Herald none".into(),
                        status: None,
                    })
                }
                _ => {
                    return Err(ConnectorError::Rejected {
                        message: format!(
                            "the Facebook user manages several Pages; choose one: {}",
                            describe_pages(&pages)
                        ),
                        status: None,
                    })
                }
            },
        };
        let (page_id, name, token) = chosen.clone();
        let mut credentials = Credentials::default();
        credentials.set(PAGE_ID, page_id);
        credentials.set(PAGE_ACCESS_TOKEN, token);
        credentials.take_changed();
        Ok(Connected {
            credentials,
            remote_name: Some(name).filter(|n| !n.is_empty()),
            expires_at: None,
        })
    }
}

/// "123 (Kettle Co), 456 (Kettle Support)".
fn describe_pages(pages: &[(String, String, String)]) -> String {
    if pages.is_empty() {
        return "no Page was granted".into();
    }
    pages
        .iter()
        .map(|(id, name, _)| format!("{id} ({name})"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn post_urls_split_page_and_post_ids() {
        assert_eq!(
            post_url("111_222"),
            "https://www.facebook.com/111/posts/222"
        );
        assert_eq!(post_url("333"), "https://www.facebook.com/333");
    }

    #[test]
    fn the_oauth_app_uses_facebook_login_without_pkce() {
        let fb = Facebook::new(reqwest::Client::new(), NetworkApp::default());
        assert!(fb.oauth_app().is_none(), "no client id: no app");
        let app = NetworkApp {
            client_id: Some("cid".into()),
            client_secret: Some("sec".into()),
            api_url: "https://graph.facebook.com/v23.0/".into(),
            auth_url: "https://www.facebook.com/v23.0".into(),
            token_url: None,
        };
        let oauth = Facebook::new(reqwest::Client::new(), app)
            .oauth_app()
            .unwrap();
        assert_eq!(
            oauth.authorize_url,
            "https://www.facebook.com/v23.0/dialog/oauth"
        );
        assert_eq!(
            oauth.token_url,
            "https://graph.facebook.com/v23.0/oauth/access_token"
        );
        assert!(!oauth.pkce && oauth.comma_scopes && oauth.token_via_get);
        assert_eq!(oauth.scopes.len(), 5);
    }

    #[test]
    fn comments_become_replies_without_the_pages_own() {
        let query = ReplyQuery {
            root_id: "1_2".into(),
            own_ids: vec!["1_2".into(), "2_9".into()],
            cursor: None,
            published_at: Utc::now(),
        };
        let item = serde_json::json!({
            "id": "2_5", "message": "Safe?", "from": {"id": "77", "name": "Bea"},
            "created_time": "2026-11-25T09:00:00+0000", "permalink_url": "https://fb/x",
        });
        let reply = to_reply(&item, &query, "1").unwrap();
        assert_eq!(
            reply.parent_id.as_deref(),
            Some("1_2"),
            "top level: the post"
        );
        assert_eq!(reply.author, "Bea");
        assert_eq!(reply.url.as_deref(), Some("https://fb/x"));
        assert_eq!(reply.created_at.timestamp(), 1_795_597_200);
        let nested = serde_json::json!({"id": "2_6", "parent": {"id": "2_5"}, "from": {"id": "78", "name": "Carl"}});
        assert_eq!(
            to_reply(&nested, &query, "1").unwrap().parent_id.as_deref(),
            Some("2_5")
        );
        let by_page = serde_json::json!({"id": "2_7", "from": {"id": "1", "name": "Kettle"}});
        assert!(to_reply(&by_page, &query, "1").is_none());
        let own = serde_json::json!({"id": "2_9"});
        assert!(to_reply(&own, &query, "1").is_none());
        let target = super::super::ReplyTarget {
            root_id: "1_2".into(),
            parent_id: "2_5".into(),
            answers_reply: true,
        };
        assert_eq!(commented_object(&target).unwrap(), "2_5");
        let part = super::super::ReplyTarget {
            answers_reply: false,
            ..target
        };
        assert_eq!(commented_object(&part).unwrap(), "1_2");
        assert_eq!(graph_id("a/b").unwrap_err().class(), "rejected");
    }

    #[test]
    fn pages_are_listed_by_id_and_name() {
        let pages = vec![
            ("1".to_string(), "A".to_string(), "secret-1".to_string()),
            ("2".to_string(), "B".to_string(), "secret-2".to_string()),
        ];
        assert_eq!(describe_pages(&pages), "1 (A), 2 (B)", "never the tokens");
    }
}
