//! Sandbox connector (placeholder).

use super::{AccountSession, Connector, ConnectorError, Post, Published};

#[derive(Clone)]
pub struct Sandbox;

impl Connector for Sandbox {
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
