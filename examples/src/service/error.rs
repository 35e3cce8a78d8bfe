//! Errors as JSON (`{"error": "..."}`) with the right status code. Database
//! details go to the log, never to the client.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// An error response.
#[derive(Clone, Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("{what} not found"))
    }

    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry = self.status == StatusCode::SERVICE_UNAVAILABLE;
        let mut response = (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response();
        if retry {
            // Pool exhaustion passes; tell clients when to come back.
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<pool_runtime::Error> for ApiError {
    fn from(err: pool_runtime::Error) -> Self {
        use pool_runtime::Error;
        match &err {
            Error::Timeout(_) => {
                tracing::warn!(error = %err, "request got no database connection in time");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "database busy: no connection within pool_timeout",
                )
            }
            Error::Closed(_) => Self::new(StatusCode::SERVICE_UNAVAILABLE, "shutting down"),
            _ => {
                tracing::error!(error = %err, "database error");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "database error")
            }
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        pool_runtime::Error::from(err).into()
    }
}

/// Body and path rejections from axum, as JSON with axum's own status.
macro_rules! from_rejection {
    ($($rejection:ty),*) => {$(
        impl From<$rejection> for ApiError {
            fn from(rejection: $rejection) -> Self {
                Self::new(rejection.status(), rejection.body_text())
            }
        }
    )*};
}

from_rejection!(
    axum::extract::rejection::JsonRejection,
    axum::extract::rejection::PathRejection,
    axum::extract::rejection::QueryRejection
);
