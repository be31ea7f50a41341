//! Request extractors that turn every malformed input into a problem naming
//! the wrong field: JSON bodies (size limit, content type, syntax, unknown
//! fields, wrong types) and query strings.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// Largest JSON body accepted (statements with every variant fit easily).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// A JSON body, parsed with the path of the first wrong field kept.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for ApiJson<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or("").to_ascii_lowercase());
        let declared_length = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let mut payload = payload.take();
        Box::pin(async move {
            if let Some(ct) = content_type {
                let essence = ct.split(';').next().unwrap_or("").trim().to_string();
                if !(essence == "application/json" || essence.ends_with("+json")) {
                    return Err(ApiError::UnsupportedMediaType(format!(
                        "the body must be JSON: send 'Content-Type: application/json' (got '{essence}')"
                    )));
                }
            }
            if declared_length.is_some_and(|n| n > MAX_BODY_BYTES) {
                return Err(too_large());
            }
            let mut body = web::BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk = chunk
                    .map_err(|e| ApiError::BadRequest(format!("could not read the body: {e}")))?;
                if body.len() + chunk.len() > MAX_BODY_BYTES {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            parse_json(&body).map(ApiJson)
        })
    }
}

fn too_large() -> ApiError {
    ApiError::PayloadTooLarge(format!("the body is larger than {MAX_BODY_BYTES} bytes"))
}

/// Parse a JSON document; errors name the JSON path of the wrong value.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest(
            "the request body is empty; a JSON object is expected".into(),
        ));
    }
    let document: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))?;
    if !document.is_object() {
        return Err(ApiError::invalid("body", "must be a JSON object"));
    }
    // Text columns cannot hold NUL (PostgreSQL refuses it): say so up front.
    if let Some(path) = find_nul(&document, String::new()) {
        return Err(ApiError::invalid(
            path,
            "contains a NUL character (\\u0000), which is not allowed",
        ));
    }
    serde_path_to_error::deserialize(document).map_err(|error| {
        let path = error.path().to_string();
        let message = error.into_inner().to_string();
        ApiError::invalid(field_name(&path, &message), clean_message(&message))
    })
}

/// The path of the first string (key or value) that contains NUL.
fn find_nul(value: &serde_json::Value, path: String) -> Option<String> {
    let at = |path: &str| {
        if path.is_empty() {
            "body".to_string()
        } else {
            path.to_string()
        }
    };
    match value {
        serde_json::Value::String(s) if s.contains('\0') => Some(at(&path)),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| find_nul(v, format!("{path}[{i}]"))),
        serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| {
            let child = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            if k.contains('\0') {
                Some(at(&path))
            } else {
                find_nul(v, child)
            }
        }),
        _ => None,
    }
}

/// serde reports a missing field at its parent's path; name the field itself.
fn field_name(path: &str, message: &str) -> String {
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    let unknown = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next());
    match (missing, path) {
        (Some(name), "." | "") => name.to_string(),
        (Some(name), parent) => format!("{parent}.{name}"),
        (None, "." | "") => unknown.unwrap_or("body").to_string(),
        (None, path) => path.to_string(),
    }
}

/// Drop serde_json's " at line 1 column 42" suffix: the field path says where.
fn clean_message(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// A query string, parsed with the name of the wrong parameter kept.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for ApiQuery<T> {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(parse_query(req.query_string()).map(ApiQuery))
    }
}

pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    // Nothing stored contains NUL (bodies refuse it), so a NUL in a filter
    // can match nothing; replace it rather than let PostgreSQL choke on it.
    let cleaned = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(
            form_urlencoded::parse(query.as_bytes())
                .map(|(k, v)| (k.replace('\0', "\u{FFFD}"), v.replace('\0', "\u{FFFD}"))),
        )
        .finish();
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(cleaned.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|error| {
        let path = error.path().to_string();
        let message = error.into_inner().to_string();
        ApiError::invalid(field_name(&path, &message), message)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        title: String,
        items: Vec<Item>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Item {
        n: u32,
    }

    fn field_of(result: Result<Body, ApiError>) -> String {
        match result.unwrap_err() {
            ApiError::Validation { errors, .. } => errors[0].field.clone(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn a_wrong_type_names_its_path() {
        let body = br#"{"title":"t","items":[{"n":1},{"n":"two"}]}"#;
        assert_eq!(field_of(parse_json(body)), "items[1].n");
    }

    #[test]
    fn a_missing_field_is_named() {
        assert_eq!(field_of(parse_json(br#"{"items":[]}"#)), "title");
        assert_eq!(
            field_of(parse_json(br#"{"title":"t","items":[{}]}"#)),
            "items[0].n"
        );
    }

    #[test]
    fn an_unknown_field_is_named() {
        assert_eq!(
            field_of(parse_json(br#"{"title":"t","items":[],"x":1}"#)),
            "x"
        );
    }

    #[test]
    fn nul_characters_are_refused_with_their_path() {
        assert_eq!(
            field_of(parse_json(br#"{"title":"a\u0000b","items":[]}"#)),
            "title"
        );
        assert_eq!(
            field_of(parse_json(
                br#"{"title":"t","items":[{"n":1,"x\u0000":2}]}"#
            )),
            "items[0]"
        );
        let query: std::collections::HashMap<String, String> = parse_query("a=x%00").unwrap();
        assert_eq!(query["a"], "x\u{FFFD}");
    }

    #[test]
    fn the_body_must_be_an_object() {
        assert_eq!(field_of(parse_json(b"[]")), "body");
        assert_eq!(field_of(parse_json(b"\"text\"")), "body");
    }

    #[test]
    fn broken_json_is_a_bad_request() {
        assert!(matches!(
            parse_json::<Body>(b"{\"title\":"),
            Err(ApiError::BadRequest(_))
        ));
        assert!(matches!(
            parse_json::<Body>(b"  "),
            Err(ApiError::BadRequest(_))
        ));
    }
}
