//! The social networks Herald publishes to: their names, text rules and
//! connectors. Nothing outside this folder knows a network's rules or talks
//! to a network.

pub mod bluesky;
pub mod catalog;
pub mod connector;
pub mod discord;
pub mod facebook;
pub mod graph;
pub mod instagram;
pub mod linkedin;
pub mod mastodon;
pub mod oauth;
pub mod routes;
pub mod sandbox;
pub mod telegram;
pub mod text;
pub mod threads;
pub mod webhook;
pub mod x;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use connector::{
    AccountSession, Connected, ConnectorError, Credentials, FetchedReply, MediaItem, Post,
    Published, ReplyPage, ReplyQuery, ReplyTarget,
};
pub use oauth::{OAuthApp, TokenSet};
pub use text::{check, default_limit, TextReport};

use chrono::{DateTime, Utc};
use std::future::Future;

use crate::config::NetworkSettings;

/// One network's way of publishing (DESIGN §6).
pub trait Connector: Send + Sync {
    /// Publish `post` (one part of a thread; `post.reply_to` says what it
    /// answers) with `account`. Returns the remote post, or a classified error.
    fn publish(
        &self,
        account: &AccountSession,
        post: &Post,
    ) -> impl Future<Output = Result<Published, ConnectorError>> + Send;

    /// After an `Unknown` outcome: find out whether `post` went out.
    /// `Ok(Some)` means it is on the network (possibly published by this very
    /// call, as Mastodon's idempotent retry does), `Ok(None)` that it surely is
    /// not (publishing again cannot duplicate it), `Err` that the question
    /// could not be answered yet.
    fn reconcile(
        &self,
        account: &AccountSession,
        post: &Post,
    ) -> impl Future<Output = Result<Option<Published>, ConnectorError>> + Send;

    /// Delete a published post or thread part (`remote_id` as `publish`
    /// returned it). A post already gone counts as deleted. A network that
    /// does not allow deletion answers `Rejected` saying so.
    fn delete(
        &self,
        account: &AccountSession,
        remote_id: &str,
    ) -> impl Future<Output = Result<(), ConnectorError>> + Send;

    /// Preflight: do the account's credentials work right now? One cheap
    /// authenticated read (refreshing first if the token has expired).
    fn check(
        &self,
        account: &AccountSession,
    ) -> impl Future<Output = Result<(), ConnectorError>> + Send;

    /// Renew the account's tokens before they expire, in
    /// `account.credentials`. Returns the new expiry (`None`: does not
    /// expire). Networks whose credentials never expire keep the default.
    fn refresh(
        &self,
        account: &AccountSession,
    ) -> impl Future<Output = Result<Option<DateTime<Utc>>, ConnectorError>> + Send {
        let _ = account;
        async { Ok(None) }
    }

    /// Reply tracking: the replies to `query.root_id` (at any depth) that
    /// are newer than `query.cursor`, oldest first, without Herald's own
    /// posts. A network that cannot list replies keeps the default, and
    /// says so in the catalog (`PlatformInfo::replies`).
    fn replies(
        &self,
        account: &AccountSession,
        query: &ReplyQuery,
    ) -> impl Future<Output = Result<ReplyPage, ConnectorError>> + Send {
        let _ = (account, query);
        async {
            Err(ConnectorError::Rejected {
                message: "this network's replies cannot be listed".into(),
                status: None,
            })
        }
    }
}

/// What an admin asked for when connecting an account through OAuth.
#[derive(Debug, Clone, Default)]
pub struct ConnectRequest {
    /// The instance (Mastodon) or API address the account lives on.
    pub base_url: Option<String>,
    /// Which of the user's pages or organizations to post as (Facebook
    /// Page id, LinkedIn organization URN, Instagram account id); `None`
    /// takes the user's own account, or their only Page.
    pub target: Option<String>,
}

/// A network whose accounts connect through OAuth 2.0 (authorization code).
pub trait OAuthNetwork: Send + Sync {
    /// The app registration to authorize with; `None` when its client id
    /// and secret are not configured.
    fn oauth_app(&self) -> Option<OAuthApp>;

    /// After the code exchange: fetch what posting needs (user id, Page
    /// token, long-lived token) and build the account's credentials.
    fn connect(
        &self,
        tokens: TokenSet,
        request: &ConnectRequest,
    ) -> impl Future<Output = Result<Connected, ConnectorError>> + Send;
}

/// Every connector, built once per process and shared by the dispatcher.
#[derive(Clone)]
pub struct Connectors {
    pub mastodon: mastodon::Mastodon,
    pub bluesky: bluesky::Bluesky,
    pub x: x::X,
    pub threads: threads::Threads,
    pub linkedin: linkedin::Linkedin,
    pub facebook: facebook::Facebook,
    pub instagram: instagram::Instagram,
    pub telegram: telegram::Telegram,
    pub discord: discord::Discord,
    pub webhook: webhook::Webhook,
    pub sandbox: sandbox::Sandbox,
}

/// Run `$call` on the connector of `$account`'s network.
macro_rules! on_network {
    ($self:ident, $account:expr, |$c:ident| $call:expr) => {
        match $account.platform {
            Platform::Mastodon => {
                let $c = &$self.mastodon;
                $call
            }
            Platform::Bluesky => {
                let $c = &$self.bluesky;
                $call
            }
            Platform::X => {
                let $c = &$self.x;
                $call
            }
            Platform::Threads => {
                let $c = &$self.threads;
                $call
            }
            Platform::Linkedin => {
                let $c = &$self.linkedin;
                $call
            }
            Platform::Facebook => {
                let $c = &$self.facebook;
                $call
            }
            Platform::Instagram => {
                let $c = &$self.instagram;
                $call
            }
            Platform::Telegram => {
                let $c = &$self.telegram;
                $call
            }
            Platform::Discord => {
                let $c = &$self.discord;
                $call
            }
            Platform::Webhook => {
                let $c = &$self.webhook;
                $call
            }
            Platform::Sandbox => {
                let $c = &$self.sandbox;
                $call
            }
        }
    };
}

impl Connectors {
    pub fn new(
        http: reqwest::Client,
        sandbox: sandbox::Sandbox,
        networks: &NetworkSettings,
    ) -> Self {
        Self {
            mastodon: mastodon::Mastodon::new(http.clone()),
            bluesky: bluesky::Bluesky::new(http.clone()),
            x: x::X::new(http.clone(), networks.x.clone()),
            threads: threads::Threads::new(http.clone(), networks.threads.clone()),
            linkedin: linkedin::Linkedin::new(
                http.clone(),
                networks.linkedin.clone(),
                &networks.linkedin_version,
            ),
            facebook: facebook::Facebook::new(http.clone(), networks.facebook.clone()),
            instagram: instagram::Instagram::new(http.clone(), networks.instagram.clone()),
            telegram: telegram::Telegram::new(http.clone(), &networks.telegram_api_url),
            discord: discord::Discord::new(http.clone(), &networks.discord_api_url),
            webhook: webhook::Webhook::new(http),
            sandbox,
        }
    }

    /// Whether Herald can publish to `platform` yet.
    pub fn supports(platform: Platform) -> bool {
        catalog::info(platform).publishes
    }

    pub async fn publish(
        &self,
        account: &AccountSession,
        post: &Post,
    ) -> Result<Published, ConnectorError> {
        on_network!(self, account, |c| c.publish(account, post).await)
    }

    pub async fn reconcile(
        &self,
        account: &AccountSession,
        post: &Post,
    ) -> Result<Option<Published>, ConnectorError> {
        on_network!(self, account, |c| c.reconcile(account, post).await)
    }

    pub async fn delete(
        &self,
        account: &AccountSession,
        remote_id: &str,
    ) -> Result<(), ConnectorError> {
        on_network!(self, account, |c| c.delete(account, remote_id).await)
    }

    pub async fn check(&self, account: &AccountSession) -> Result<(), ConnectorError> {
        on_network!(self, account, |c| c.check(account).await)
    }

    pub async fn refresh(
        &self,
        account: &AccountSession,
    ) -> Result<Option<DateTime<Utc>>, ConnectorError> {
        on_network!(self, account, |c| c.refresh(account).await)
    }

    pub async fn replies(
        &self,
        account: &AccountSession,
        query: &ReplyQuery,
    ) -> Result<ReplyPage, ConnectorError> {
        on_network!(self, account, |c| c.replies(account, query).await)
    }

    /// The OAuth app of `platform`, when it connects through OAuth and is
    /// configured. Mastodon registers per instance (see `crate::oauth`).
    pub fn oauth_app(&self, platform: Platform) -> Option<OAuthApp> {
        match platform {
            Platform::X => self.x.oauth_app(),
            Platform::Threads => self.threads.oauth_app(),
            Platform::Linkedin => self.linkedin.oauth_app(),
            Platform::Facebook => self.facebook.oauth_app(),
            Platform::Instagram => self.instagram.oauth_app(),
            _ => None,
        }
    }

    /// Finish an OAuth connection of `platform` with the tokens received.
    pub async fn connect(
        &self,
        platform: Platform,
        tokens: TokenSet,
        request: &ConnectRequest,
    ) -> Result<Connected, ConnectorError> {
        match platform {
            Platform::X => self.x.connect(tokens, request).await,
            Platform::Threads => self.threads.connect(tokens, request).await,
            Platform::Linkedin => self.linkedin.connect(tokens, request).await,
            Platform::Facebook => self.facebook.connect(tokens, request).await,
            Platform::Instagram => self.instagram.connect(tokens, request).await,
            Platform::Mastodon => self.mastodon.connect(tokens, request).await,
            other => Err(ConnectorError::Rejected {
                message: format!("{other} accounts do not connect through OAuth"),
                status: None,
            }),
        }
    }
}

/// A network Herald can publish to.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    Mastodon,
    Bluesky,
    X,
    Threads,
    Linkedin,
    Facebook,
    Instagram,
    Telegram,
    Discord,
    /// An HTTP endpoint of the customer's own (intranet, status page).
    Webhook,
    /// Built-in network that keeps posts locally: for trying Herald and for drills.
    Sandbox,
}

impl Platform {
    pub const ALL: [Platform; 11] = [
        Platform::Mastodon,
        Platform::Bluesky,
        Platform::X,
        Platform::Threads,
        Platform::Linkedin,
        Platform::Facebook,
        Platform::Instagram,
        Platform::Telegram,
        Platform::Discord,
        Platform::Webhook,
        Platform::Sandbox,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Mastodon => "mastodon",
            Platform::Bluesky => "bluesky",
            Platform::X => "x",
            Platform::Threads => "threads",
            Platform::Linkedin => "linkedin",
            Platform::Facebook => "facebook",
            Platform::Instagram => "instagram",
            Platform::Telegram => "telegram",
            Platform::Discord => "discord",
            Platform::Webhook => "webhook",
            Platform::Sandbox => "sandbox",
        }
    }

    pub fn parse(s: &str) -> Option<Platform> {
        Platform::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// "unknown platform 'foo': expected one of mastodon, bluesky, …"
    pub fn unknown(s: &str) -> String {
        let names: Vec<&str> = Platform::ALL.iter().map(|p| p.as_str()).collect();
        format!(
            "unknown platform '{s}': expected one of {}",
            names.join(", ")
        )
    }

    /// The credential fields an account on this network must provide
    /// (`POST /v1/accounts`). Connectors (later issues) read them.
    pub fn required_credentials(self) -> &'static [&'static str] {
        match self {
            Platform::Mastodon => &["access_token"],
            Platform::Bluesky => &["identifier", "app_password"],
            Platform::X => &["access_token"],
            Platform::Threads => &["access_token", "user_id"],
            Platform::Linkedin => &["access_token", "author_urn"],
            Platform::Facebook => &["page_id", "page_access_token"],
            Platform::Instagram => &["ig_user_id", "access_token"],
            Platform::Telegram => &["bot_token", "chat_id"],
            Platform::Discord => &["webhook_url"],
            Platform::Webhook => &["url"],
            Platform::Sandbox => &[],
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod platform_tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for p in Platform::ALL {
            assert_eq!(Platform::parse(p.as_str()), Some(p));
            assert_eq!(serde_json::to_value(p).unwrap(), p.as_str());
        }
        assert_eq!(Platform::parse("myspace"), None);
        assert!(Platform::unknown("myspace").contains("mastodon"));
    }
}
