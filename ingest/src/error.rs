//! `IngestError`: every way an ingest request can fail, mapped to an HTTP answer in one place.
//! Every error body is RFC 9457 problem JSON with a stable `type`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use shared::auth::TokenError;
use shared::limits::MAX_BODY_BYTES;
use shared::ports::PortError;
use shared::submission::{FieldError, InvalidInput};

pub const PROBLEM_JSON: &str = "application/problem+json";

/// Seconds a client should wait before retrying after a 503.
pub const RETRY_AFTER_SECONDS: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("authentication failed: {0}")]
    Unauthorized(TokenError),
    #[error("the body must be application/json")]
    UnsupportedMediaType,
    #[error("the body is larger than {MAX_BODY_BYTES} bytes")]
    PayloadTooLarge,
    #[error("the body could not be read: {0}")]
    UnreadableBody(String),
    #[error("the body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("the request is invalid")]
    Validation(Vec<FieldError>),
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("too many submissions from this user; retry after {retry_after_seconds} s")]
    RateLimited { retry_after_seconds: u64 },
    #[error("the submissions queue refused the request: {0}")]
    QueueUnavailable(PortError),
    #[error("the submissions store could not be read: {0}")]
    StoreUnavailable(PortError),
    #[error("the token signing keys could not be fetched: {0}")]
    KeysUnavailable(String),
    #[error("the player has no entry on this board")]
    NoEntry,
    #[error("the rank index could not be read: {0}")]
    BoardsUnavailable(PortError),
}

impl From<InvalidInput> for IngestError {
    fn from(value: InvalidInput) -> Self {
        match value {
            InvalidInput::Json(detail) => IngestError::InvalidJson(detail),
            InvalidInput::Fields(errors) => IngestError::Validation(errors),
        }
    }
}

impl From<TokenError> for IngestError {
    fn from(value: TokenError) -> Self {
        IngestError::Unauthorized(value)
    }
}

impl From<crate::keys::VerifyError> for IngestError {
    fn from(value: crate::keys::VerifyError) -> Self {
        match value {
            crate::keys::VerifyError::Token(reason) => IngestError::Unauthorized(reason),
            crate::keys::VerifyError::KeysUnavailable(detail) => {
                IngestError::KeysUnavailable(detail)
            }
        }
    }
}

/// The parts of a problem document.
struct Problem {
    status: StatusCode,
    slug: &'static str,
    title: &'static str,
    detail: String,
    extra: Option<(&'static str, Value)>,
}

impl IngestError {
    fn problem(&self) -> Problem {
        let (status, slug, title) = match self {
            IngestError::Unauthorized(_) => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Authentication required",
            ),
            IngestError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            ),
            IngestError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
            ),
            IngestError::UnreadableBody(_) => (
                StatusCode::BAD_REQUEST,
                "unreadable-body",
                "The body could not be read",
            ),
            IngestError::InvalidJson(_) => (
                StatusCode::BAD_REQUEST,
                "invalid-json",
                "The body is not valid JSON",
            ),
            IngestError::Validation(_) => (
                StatusCode::BAD_REQUEST,
                "validation-failed",
                "The request is invalid",
            ),
            IngestError::NotFound => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            IngestError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
            IngestError::RateLimited { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many submissions",
            ),
            IngestError::QueueUnavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "queue-unavailable",
                "Submissions cannot be accepted right now",
            ),
            IngestError::StoreUnavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "store-unavailable",
                "Stored submissions cannot be read right now",
            ),
            IngestError::KeysUnavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "keys-unavailable",
                "Tokens cannot be checked right now",
            ),
            IngestError::NoEntry => (
                StatusCode::NOT_FOUND,
                "no-entry",
                "The player is not on this board",
            ),
            IngestError::BoardsUnavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "boards-unavailable",
                "Leaderboards cannot be read right now",
            ),
        };
        let detail = match self {
            IngestError::Unauthorized(e) => {
                format!("{e}; send `Authorization: Bearer <token>` with a valid token")
            }
            IngestError::UnsupportedMediaType => {
                "send the body as JSON with `Content-Type: application/json`".to_owned()
            }
            IngestError::PayloadTooLarge => {
                format!("the body must not exceed {MAX_BODY_BYTES} bytes")
            }
            IngestError::UnreadableBody(reason) | IngestError::InvalidJson(reason) => {
                reason.clone()
            }
            IngestError::Validation(errors) => {
                format!(
                    "{} field(s) or parameter(s) failed validation; see `errors`",
                    errors.len()
                )
            }
            IngestError::NotFound => "no such resource".to_owned(),
            IngestError::MethodNotAllowed => {
                "this resource does not support that method".to_owned()
            }
            IngestError::RateLimited {
                retry_after_seconds,
            } => format!(
                "this user sent more submissions than the burst limit allows; nothing was \
                 accepted; retry after {retry_after_seconds} seconds"
            ),
            // Internal causes go to the log, not to the client.
            IngestError::QueueUnavailable(_) => format!(
                "the request was not accepted; retry after {RETRY_AFTER_SECONDS} seconds with the same \
                 Idempotency-Key: the retry maps to the same submission ids, so nothing is stored twice"
            ),
            IngestError::StoreUnavailable(_) | IngestError::BoardsUnavailable(_) => {
                format!("retry after {RETRY_AFTER_SECONDS} seconds")
            }
            IngestError::NoEntry => "the player has no accepted score in this hero's board for \
                 that period and date (boards fill a moment after a score is accepted)"
                .to_owned(),
            IngestError::KeysUnavailable(_) => format!(
                "the identity provider's signing keys could not be fetched, so the token could \
                 not be checked and nothing was accepted; retry after {RETRY_AFTER_SECONDS} seconds"
            ),
        };
        let extra = match self {
            IngestError::Validation(errors) => Some(("errors", json!(errors))),
            _ => None,
        };
        Problem {
            status,
            slug,
            title,
            detail,
            extra,
        }
    }
}

impl IntoResponse for IngestError {
    fn into_response(self) -> Response {
        let problem = self.problem();
        let mut body = json!({
            "type": format!("/problems/{}", problem.slug),
            "title": problem.title,
            "status": problem.status.as_u16(),
            "detail": problem.detail,
        });
        if let Some((key, value)) = problem.extra {
            body[key] = value;
        }
        let mut response = (problem.status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        match &self {
            IngestError::Unauthorized(reason) => {
                headers.insert(header::WWW_AUTHENTICATE, www_authenticate(reason));
            }
            IngestError::QueueUnavailable(_)
            | IngestError::StoreUnavailable(_)
            | IngestError::BoardsUnavailable(_)
            | IngestError::KeysUnavailable(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
            }
            IngestError::RateLimited {
                retry_after_seconds,
            } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_seconds));
            }
            _ => {}
        }
        response.extensions_mut().insert(Refusal(self.to_string()));
        response
    }
}

/// Why a request got a problem answer, carried on the response to the one place that logs
/// each request's outcome (`request_scope.rs`), with the method and path it knows.
#[derive(Clone, Debug)]
pub struct Refusal(pub String);

/// RFC 6750: no error code when no credentials were sent, `invalid_token` otherwise.
fn www_authenticate(reason: &TokenError) -> HeaderValue {
    let value = match reason {
        TokenError::Missing => r#"Bearer realm="scores""#.to_owned(),
        other => {
            format!(r#"Bearer realm="scores", error="invalid_token", error_description="{other}""#)
                .replace('`', "'")
        }
    };
    HeaderValue::from_str(&value)
        .unwrap_or_else(|_| HeaderValue::from_static(r#"Bearer realm="scores""#))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::PROBLEM_TYPES;

    /// Fails to compile when a variant is added, so `every_error` below must grow with it.
    fn listed(error: &IngestError) {
        match error {
            IngestError::Unauthorized(_)
            | IngestError::UnsupportedMediaType
            | IngestError::PayloadTooLarge
            | IngestError::UnreadableBody(_)
            | IngestError::InvalidJson(_)
            | IngestError::Validation(_)
            | IngestError::NotFound
            | IngestError::MethodNotAllowed
            | IngestError::RateLimited { .. }
            | IngestError::QueueUnavailable(_)
            | IngestError::StoreUnavailable(_)
            | IngestError::KeysUnavailable(_)
            | IngestError::NoEntry
            | IngestError::BoardsUnavailable(_) => {}
        }
    }

    fn every_error() -> Vec<IngestError> {
        let port = || PortError::Unavailable {
            service: "test",
            detail: "down".to_owned(),
        };
        vec![
            IngestError::Unauthorized(TokenError::Missing),
            IngestError::UnsupportedMediaType,
            IngestError::PayloadTooLarge,
            IngestError::UnreadableBody("reset".to_owned()),
            IngestError::InvalidJson("eof".to_owned()),
            IngestError::Validation(vec![FieldError::at("/score", "is required")]),
            IngestError::NotFound,
            IngestError::MethodNotAllowed,
            IngestError::RateLimited {
                retry_after_seconds: 1,
            },
            IngestError::QueueUnavailable(port()),
            IngestError::StoreUnavailable(port()),
            IngestError::KeysUnavailable("connection refused".to_owned()),
            IngestError::NoEntry,
            IngestError::BoardsUnavailable(port()),
        ]
    }

    #[test]
    fn every_problem_type_is_documented_with_its_status_and_nothing_else_is() {
        let errors = every_error();
        assert_eq!(
            errors.len(),
            14,
            "one of each variant, as `listed` names them"
        );
        for error in &errors {
            listed(error);
            let problem = error.problem();
            assert!(
                PROBLEM_TYPES
                    .iter()
                    .any(|(slug, status, _)| *slug == problem.slug
                        && *status == problem.status.as_u16()),
                "{} ({}) is not in the OpenAPI document",
                problem.slug,
                problem.status
            );
        }
        for (slug, _, _) in PROBLEM_TYPES {
            assert!(
                errors.iter().any(|e| e.problem().slug == slug),
                "{slug} is documented but never answered"
            );
        }
    }
}
