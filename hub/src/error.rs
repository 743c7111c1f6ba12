//! Every way an ingest request can fail, and the status each one answers with. Bad input names the field.

use actix_web::http::StatusCode;
use actix_web::http::header::{ALLOW, CONTENT_TYPE, RETRY_AFTER};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{field}: {problem}")]
    BadField { field: String, problem: String },
    #[error("the request body is not valid JSON: {0}")]
    BadJson(String),
    #[error("the request body is JSON but not what this endpoint takes: {0}")]
    BadShape(String),
    #[error("{0}")]
    BadEncoding(String),
    #[error("{what} is larger than {limit} bytes")]
    TooLarge { what: String, limit: usize },
    #[error("Content-Encoding {encoding} is not supported: send gzip or an uncompressed body")]
    UnsupportedEncoding { encoding: String },
    #[error("missing project token: send `Authorization: Bearer <token>` or a `token` field")]
    MissingToken,
    #[error("unknown or revoked project token")]
    BadToken,
    #[error("origin {origin} is not allowed for this project")]
    ForbiddenOrigin { origin: String },
    #[error("too many events for this project; retry later")]
    RateLimited { retry_after_secs: u64 },
    #[error("the event queue is unavailable; retry later")]
    Unavailable { retry_after_secs: u64 },
    #[error("no endpoint {method} {path}")]
    NoRoute { method: String, path: String },
    #[error("this endpoint takes {allowed}")]
    WrongMethod { allowed: &'static str },
    #[error("internal error (request {request_id})")]
    Internal { request_id: String, source: anyhow::Error },
}

/// No daily salt means no visitor id: the event is refused for now, never stored without one.
impl From<crate::identity::SaltUnavailable> for IngestError {
    fn from(_: crate::identity::SaltUnavailable) -> Self {
        Self::Unavailable { retry_after_secs: 5 }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    message: String,
}

impl IngestError {
    pub fn field(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::BadField { field: field.into(), problem: problem.into() }
    }

    pub fn internal(source: anyhow::Error) -> Self {
        let request_id = uuid::Uuid::new_v4().simple().to_string();
        Self::Internal { request_id, source }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::BadField { .. } => "invalid_field",
            Self::BadJson(_) | Self::BadShape(_) => "invalid_json",
            Self::BadEncoding(_) => "invalid_encoding",
            Self::TooLarge { .. } => "body_too_large",
            Self::UnsupportedEncoding { .. } => "unsupported_encoding",
            Self::MissingToken => "missing_token",
            Self::BadToken => "invalid_token",
            Self::ForbiddenOrigin { .. } => "forbidden_origin",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable { .. } => "unavailable",
            Self::NoRoute { .. } => "not_found",
            Self::WrongMethod { .. } => "method_not_allowed",
            Self::Internal { .. } => "internal",
        }
    }
}

impl ResponseError for IngestError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadField { .. } | Self::BadJson(_) | Self::BadShape(_) | Self::BadEncoding(_) => {
                StatusCode::BAD_REQUEST
            }
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedEncoding { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::MissingToken | Self::BadToken => StatusCode::UNAUTHORIZED,
            Self::ForbiddenOrigin { .. } => StatusCode::FORBIDDEN,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::NoRoute { .. } => StatusCode::NOT_FOUND,
            Self::WrongMethod { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::Internal { request_id, source } = self {
            tracing::error!(request_id, error = format!("{source:#}"), "Ingest request failed.");
        }
        let field = match self {
            Self::BadField { field, .. } => Some(field.as_str()),
            _ => None,
        };
        let body = ErrorBody { error: self.code(), field, message: self.to_string() };
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((CONTENT_TYPE, "application/json"));
        if let Self::RateLimited { retry_after_secs } | Self::Unavailable { retry_after_secs } = self {
            response.insert_header((RETRY_AFTER, retry_after_secs.to_string()));
        }
        if let Self::WrongMethod { allowed } = self {
            response.insert_header((ALLOW, *allowed));
        }
        response.body(serde_json::to_string(&body).unwrap_or_default())
    }
}
