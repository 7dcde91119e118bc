//! The sampling constraint a chat request asks for: a JSON object or schema
//! (`response_format`), or tool calls (`tools` with `tool_choice` auto, required or
//! named). `tool_choice: "none"` and plain text get none.

use crate::AppState;
use crate::error::ApiError;
use crate::params::{ChatRequest, ResponseFormat};
use lingqiao_engine::batch::Constraint;

pub fn for_chat(
    _state: &AppState,
    req: &ChatRequest,
) -> Result<Option<Box<dyn Constraint>>, ApiError> {
    match &req.response_format {
        // Tool calls, until lingqiao-constrain is wired in, are parsed from the output of
        // an unconstrained model (see `tools`).
        ResponseFormat::Text => Ok(None),
        ResponseFormat::JsonObject | ResponseFormat::JsonSchema(_) => Err(ApiError::invalid_param(
            "response_format",
            "JSON response formats need the lingqiao-constrain crate, which this build \
                 does not have yet",
        )),
    }
}
