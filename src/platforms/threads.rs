//! Threads connector (shared/platforms.md). Placeholder while the
//! connector is written: every call is refused, and the network is not
//! offered for scheduling (`catalog::publishes`).

use super::{AccountSession, Connector, ConnectorError, Post, Published};
use super::{ConnectRequest, Connected, OAuthApp, OAuthNetwork, TokenSet};
use crate::config::NetworkApp;

#[derive(Clone)]
pub struct Threads {
    #[allow(dead_code)]
    http: reqwest::Client,
    #[allow(dead_code)]
    app: NetworkApp,
}

impl Threads {
    pub fn new(http: reqwest::Client, app: NetworkApp) -> Self {
        Self { http, app }
    }
}

fn not_built() -> ConnectorError {
    ConnectorError::Rejected {
        message: "Herald cannot publish to Threads yet".into(),
        status: None,
    }
}

impl Connector for Threads {
    async fn publish(&self, _: &AccountSession, _: &Post) -> Result<Published, ConnectorError> {
        Err(not_built())
    }

    async fn reconcile(
        &self,
        _: &AccountSession,
        _: &Post,
    ) -> Result<Option<Published>, ConnectorError> {
        Err(not_built())
    }

    async fn delete(&self, _: &AccountSession, _: &str) -> Result<(), ConnectorError> {
        Err(not_built())
    }

    async fn check(&self, _: &AccountSession) -> Result<(), ConnectorError> {
        Err(not_built())
    }
}

impl OAuthNetwork for Threads {
    fn oauth_app(&self) -> Option<OAuthApp> {
        None
    }

    async fn connect(
        &self,
        _tokens: TokenSet,
        _request: &ConnectRequest,
    ) -> Result<Connected, ConnectorError> {
        Err(not_built())
    }
}
