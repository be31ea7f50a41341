//! LinkedIn connector (shared/platforms.md). Placeholder while the
//! connector is written: every call is refused, and the network is not
//! offered for scheduling (`catalog::publishes`).

use super::{AccountSession, Connector, ConnectorError, Post, Published};
use super::{ConnectRequest, Connected, OAuthApp, OAuthNetwork, TokenSet};
use crate::config::NetworkApp;

#[derive(Clone)]
pub struct Linkedin {
    #[allow(dead_code)]
    http: reqwest::Client,
    #[allow(dead_code)]
    app: NetworkApp,
    #[allow(dead_code)]
    version: String,
}

impl Linkedin {
    pub fn new(http: reqwest::Client, app: NetworkApp, version: &str) -> Self {
        Self {
            http,
            app,
            version: version.to_string(),
        }
    }
}

fn not_built() -> ConnectorError {
    ConnectorError::Rejected {
        message: "Herald cannot publish to LinkedIn yet".into(),
        status: None,
    }
}

impl Connector for Linkedin {
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

impl OAuthNetwork for Linkedin {
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
