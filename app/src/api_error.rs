//! The app API's errors and their HTTP answers: JSON `{"error": …}` (with `field` for bad input); unexpected
//! failures are logged with an id and reach the client as an opaque 500 carrying that id.

use crate::auth::roles::Denied;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{problem}")]
    BadInput { field: String, problem: String },
    #[error("sign in, or send a valid API key as `Authorization: Bearer …`")]
    Unauthenticated,
    /// Same text whether the e-mail has an account or not.
    #[error("wrong e-mail or password")]
    LoginRefused,
    #[error("too many failed sign-ins for this e-mail; try again later")]
    Locked { retry_after: Duration },
    #[error("too many failed sign-ins from this address; try again later")]
    AddressLocked { retry_after: Duration },
    #[error("missing or wrong X-CSRF-Token header (GET /api/v1/me returns the token)")]
    Csrf,
    #[error("not allowed")]
    Forbidden,
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl From<Denied> for ApiError {
    fn from(denied: Denied) -> Self {
        match denied {
            Denied::NotFound => ApiError::NotFound,
            Denied::Forbidden => ApiError::Forbidden,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadInput { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated | ApiError::LoginRefused => StatusCode::UNAUTHORIZED,
            ApiError::Locked { .. } | ApiError::AddressLocked { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Csrf | ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        match self {
            ApiError::BadInput { field, problem } => {
                response.json(serde_json::json!({ "error": problem, "field": field }))
            }
            ApiError::Locked { retry_after } | ApiError::AddressLocked { retry_after } => response
                .insert_header(("Retry-After", retry_after.as_secs().max(1).to_string()))
                .json(serde_json::json!({ "error": self.to_string() })),
            ApiError::Internal(e) => {
                let id = uuid::Uuid::new_v4();
                tracing::error!(request_id = %id, error = format!("{e:#}"), "Request failed.");
                response.json(serde_json::json!({ "error": "internal error", "request_id": id }))
            }
            _ => response.json(serde_json::json!({ "error": self.to_string() })),
        }
    }
}
