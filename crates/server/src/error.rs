//! Errors as OpenAI's API reports them: a status code and
//! `{"error": {"message", "type", "param", "code"}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use lingqiao_engine::SubmitError;
use serde_json::json;

/// An error answer. Handlers return it; it renders itself in OpenAI's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// OpenAI's `type`: `invalid_request_error`, `authentication_error`, `server_error`.
    pub kind: &'static str,
    /// The request field at fault, when there is one (`messages[1].content`).
    pub param: Option<String>,
    pub code: Option<&'static str>,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            kind,
            param: None,
            code: None,
        }
    }

    /// 400: the request is wrong.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    /// 400 naming the field at fault.
    pub fn invalid_param(param: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::bad_request(message).with_param(param)
    }

    /// 400 for a field lingqiao does not implement.
    pub fn unsupported(param: impl Into<String>) -> ApiError {
        let param = param.into();
        ApiError::bad_request(format!(
            "unsupported field '{param}': this server does not implement it"
        ))
        .with_param(param)
        .with_code("unsupported_parameter")
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "missing or incorrect API key: send the header 'Authorization: Bearer <key>'",
        )
        .with_code("invalid_api_key")
    }

    pub fn model_not_found(name: &str, served: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("the model '{name}' does not exist; this server serves '{served}'"),
        )
        .with_param("model")
        .with_code("model_not_found")
    }

    pub fn not_found(what: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "invalid_request_error", what).with_code("not_found")
    }

    pub fn method_not_allowed() -> ApiError {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            "method not allowed on this route",
        )
    }

    pub fn too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            format!("the request body is larger than the limit of {limit} bytes"),
        )
        .with_code("request_too_large")
    }

    pub fn busy(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "server_error", message)
            .with_code("server_busy")
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message)
    }

    pub fn with_param(mut self, param: impl Into<String>) -> ApiError {
        self.param = Some(param.into());
        self
    }

    pub fn with_code(mut self, code: &'static str) -> ApiError {
        self.code = Some(code);
        self
    }

    /// The JSON body (also sent as an SSE event when a stream fails midway).
    pub fn body(&self) -> serde_json::Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
    }
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> ApiError {
        match e {
            SubmitError::QueueFull { .. } => ApiError::busy(e.to_string()),
            SubmitError::EmptyPrompt => ApiError::bad_request(e.to_string()),
            SubmitError::PromptTooLong { .. } => {
                ApiError::bad_request(e.to_string()).with_code("context_length_exceeded")
            }
            SubmitError::Stopped => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                e.to_string(),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_has_all_four_fields() {
        let e = ApiError::unsupported("logit_bias");
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        let b = e.body();
        let err = &b["error"];
        assert!(err["message"].as_str().unwrap().contains("logit_bias"));
        assert_eq!(err["type"], "invalid_request_error");
        assert_eq!(err["param"], "logit_bias");
        assert_eq!(err["code"], "unsupported_parameter");
        // `param` and `code` are present (null) even when unset, as OpenAI sends them.
        let b = ApiError::bad_request("x").body();
        assert!(b["error"].as_object().unwrap().contains_key("param"));
        assert!(b["error"]["code"].is_null());
    }

    #[test]
    fn submit_errors_map_to_statuses() {
        let s = |e| ApiError::from(e).status;
        assert_eq!(
            s(SubmitError::QueueFull { waiting: 3 }),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(s(SubmitError::EmptyPrompt), StatusCode::BAD_REQUEST);
        assert_eq!(
            s(SubmitError::PromptTooLong {
                n_prompt: 9,
                n_ctx: 8
            }),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(s(SubmitError::Stopped), StatusCode::SERVICE_UNAVAILABLE);
    }
}
