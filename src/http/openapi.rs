//! The OpenAPI 3.1 document, derived from the route table: every route in
//! `v1_routes`/`root_routes` appears with its schemas, plus the problem
//! responses every operation can give. `openapi/openapi.json` is this
//! document, checked by a test.

use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::AppExt;

use super::error::{FieldError, Problem};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Herald",
        description = "Crisis-communication scheduler: approved statements, per-platform variants, \
                       publishing on time exactly once, and the publish log. Errors are RFC 9457 \
                       `application/problem+json`. Authenticate with `Authorization: Bearer <api key>`.",
        license(name = "AGPL-3.0-or-later")
    ),
    components(schemas(Problem, FieldError)),
    tags(
        (name = "statements", description = "Statements, their per-platform variants, and approval"),
        (name = "accounts", description = "Connected social-network accounts"),
        (name = "log", description = "The publish log (managers)"),
        (name = "keys", description = "API keys (admins)"),
        (name = "webhooks", description = "Outbound webhooks (admins): signed calls to your URLs when deliveries, replies or accounts need attention"),
        (name = "replies", description = "Replies from the public, their follow-up, and answers"),
        (name = "health", description = "Probes"),
    )
)]
struct ApiDoc;

/// The whole document.
pub fn document() -> utoipa::openapi::OpenApi {
    let (_, mut api) = actix_web::App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .service(utoipa_actix_web::scope("/v1").configure(super::v1_routes))
        .configure(super::root_routes)
        .split_for_parts();
    ErrorResponses.modify(&mut api);
    api
}

/// The document as served and as committed: pretty JSON and a final newline.
pub fn document_json() -> String {
    let mut text = document().to_pretty_json().unwrap_or_default();
    text.push('\n');
    text
}

/// Adds the bearer scheme and the problem responses that apply to each operation.
struct ErrorResponses;

impl Modify for ErrorResponses {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key made with `herald keys create` or `POST /v1/keys`",
                    ))
                    .build(),
            ),
        );
        for (path, item) in api.paths.paths.iter_mut() {
            if !path.starts_with("/v1/") {
                continue;
            }
            let has_params = path.contains('{');
            let is_admin_or_manager = path.starts_with("/v1/log") || path.starts_with("/v1/keys");
            // Checking texts changes nothing, whatever its method.
            let read_only = path == "/v1/variants/check";
            for (operation, mutating) in operations(item) {
                let mutating = mutating && !read_only;
                let has_body = operation.request_body.is_some();
                let mut add = |status: &str, description: &str| {
                    if !operation.responses.responses.contains_key(status) {
                        operation
                            .responses
                            .responses
                            .insert(status.to_string(), problem(description).into());
                    }
                };
                if has_body {
                    add("400", "The body is not JSON (problem+json)");
                    add("413", "The body is too large");
                    add("415", "The body's media type is not accepted");
                }
                // Operations without a security requirement need no key.
                if operation.security.as_ref().is_some_and(|s| !s.is_empty()) {
                    add("401", "No API key, or an unknown or revoked one");
                }
                if mutating || is_admin_or_manager {
                    add("403", "The key's role may not do this");
                }
                if has_params {
                    add("404", "No such resource");
                }
                if mutating {
                    add("409", "The resource's state does not allow this");
                }
                add("422", "Invalid input: `errors` names each wrong field");
                add(
                    "500",
                    "Unexpected error (details are in the server log only)",
                );
                add("503", "The database is unavailable or busy; retry");
            }
        }
    }
}

fn operations(item: &mut PathItem) -> Vec<(&mut Operation, bool)> {
    let mut out = Vec::new();
    if let Some(op) = item.get.as_mut() {
        out.push((op, false));
    }
    for op in [
        item.post.as_mut(),
        item.put.as_mut(),
        item.patch.as_mut(),
        item.delete.as_mut(),
    ]
    .into_iter()
    .flatten()
    {
        out.push((op, true));
    }
    out
}

fn problem(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
}
