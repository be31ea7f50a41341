//! Bearer API keys and the role matrix (DESIGN §7).
//!
//! The key is looked up on every request (by its SHA-256 digest), so a key
//! created or revoked with the CLI while the server runs takes effect on the
//! very next request.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};

use super::error::ApiError;
use crate::app::AppState;
use crate::keys::{self, Role};

/// What a role may do. Reading statements, deliveries, replies and accounts
/// needs only a valid key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// Create and edit statements, schedule approved ones, handle follow-ups.
    WriteStatements,
    /// Approve or reject statements.
    Approve,
    /// Pause and resume publishing, manage crises, read the publish log.
    Manage,
    /// Manage API keys, accounts and webhooks.
    Administer,
}

impl Capability {
    pub fn describe(self) -> &'static str {
        match self {
            Self::WriteStatements => "write statements (roles editor, manager, admin)",
            Self::Approve => "approve or reject statements (roles approver, manager, admin)",
            Self::Manage => "manage publishing and read the publish log (roles manager, admin)",
            Self::Administer => "manage keys and accounts (role admin)",
        }
    }
}

impl Role {
    pub fn can(self, capability: Capability) -> bool {
        use Capability::*;
        use Role::*;
        match capability {
            WriteStatements => matches!(self, Editor | Manager | Admin),
            Approve => matches!(self, Approver | Manager | Admin),
            Manage => matches!(self, Manager | Admin),
            Administer => matches!(self, Admin),
        }
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key_id: String,
    /// The key's name: the actor recorded in the publish log.
    pub name: String,
    pub role: Role,
}

impl Caller {
    /// 403 unless the caller's role may do `capability`.
    pub fn require(&self, capability: Capability) -> Result<(), ApiError> {
        if self.role.can(capability) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "the key '{}' has role {}, which may not {}",
                self.name,
                self.role.as_str(),
                capability.describe()
            )))
        }
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let header_value = req
            .headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().map(str::to_string));
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal("application state missing"))?;
            let token = match header_value {
                None => {
                    return Err(ApiError::Unauthorized(
                        "missing 'Authorization: Bearer <api key>' header".into(),
                    ))
                }
                Some(Err(_)) => {
                    return Err(ApiError::Unauthorized(
                        "the Authorization header is not valid text".into(),
                    ))
                }
                Some(Ok(value)) => parse_bearer(&value)?,
            };
            let digest = keys::digest(&token);
            let pool = state.pool.clone();
            let found = web::block(move || -> Result<_, ApiError> {
                let mut conn = pool.get()?;
                Ok(keys::store::find_active_by_digest(&mut conn, &digest)?)
            })
            .await??;
            match found {
                Some(key) => Ok(Caller {
                    key_id: key.id,
                    name: key.name,
                    role: key.role,
                }),
                None => Err(ApiError::Unauthorized(
                    "the API key is unknown or has been revoked".into(),
                )),
            }
        })
    }
}

fn parse_bearer(value: &str) -> Result<String, ApiError> {
    let mut parts = value.trim().splitn(2, ' ');
    let scheme = parts.next().unwrap_or("");
    let token = parts.next().unwrap_or("").trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(ApiError::Unauthorized(
            "the Authorization header must be 'Bearer <api key>'".into(),
        ));
    }
    Ok(token.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_role_matrix_matches_the_design() {
        use Capability::*;
        let table = [
            (Role::Viewer, [false, false, false, false]),
            (Role::Editor, [true, false, false, false]),
            (Role::Approver, [false, true, false, false]),
            (Role::Manager, [true, true, true, false]),
            (Role::Admin, [true, true, true, true]),
        ];
        for (role, expected) in table {
            let got = [WriteStatements, Approve, Manage, Administer].map(|c| role.can(c));
            assert_eq!(got, expected, "{role:?}");
        }
    }

    #[test]
    fn bearer_tokens_are_parsed_strictly() {
        assert_eq!(parse_bearer("Bearer abc").unwrap(), "abc");
        assert_eq!(parse_bearer("bearer  abc ").unwrap(), "abc");
        assert!(parse_bearer("Basic abc").is_err());
        assert!(parse_bearer("Bearer").is_err());
        assert!(parse_bearer("").is_err());
    }
}
