//! Mastodon connector (placeholder until its implementation lands).

use super::{AccountSession, Connector, ConnectorError, Post, Published};

#[derive(Clone)]
pub struct Mastodon {
    #[allow(dead_code)]
    http: reqwest::Client,
}

impl Mastodon {
    pub fn new(http: reqwest::Client) -> Self {
        Self { http }
    }
}

impl Connector for Mastodon {
    async fn publish(
        &self,
        _account: &AccountSession,
        _post: &Post,
    ) -> Result<Published, ConnectorError> {
        Err(ConnectorError::Rejected {
            message: "not implemented yet".into(),
            status: None,
        })
    }

    async fn reconcile(
        &self,
        _account: &AccountSession,
        _post: &Post,
    ) -> Result<Option<Published>, ConnectorError> {
        Err(ConnectorError::Rejected {
            message: "not implemented yet".into(),
            status: None,
        })
    }
}
