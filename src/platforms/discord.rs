//! Discord connector (shared/platforms.md). Placeholder while the
//! connector is written: every call is refused, and the network is not
//! offered for scheduling (`catalog::publishes`).

use super::{AccountSession, Connector, ConnectorError, Post, Published};

#[derive(Clone)]
pub struct Discord {
    #[allow(dead_code)]
    http: reqwest::Client,
    #[allow(dead_code)]
    api_url: String,
}

impl Discord {
    pub fn new(http: reqwest::Client, api_url: &str) -> Self {
        Self {
            http,
            api_url: api_url.to_string(),
        }
    }
}

fn not_built() -> ConnectorError {
    ConnectorError::Rejected {
        message: "Herald cannot publish to Discord yet".into(),
        status: None,
    }
}

impl Connector for Discord {
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
