//! The sampling constraint a chat request asks for (lingqiao-constrain): a JSON object or
//! schema (`response_format`), or tool calls (`tools` with `tool_choice` auto, required or
//! named). `tool_choice: "none"` and plain text get none.

use crate::AppState;
use crate::error::ApiError;
use crate::params::{ChatRequest, ResponseFormat, ToolChoice};
use lingqiao_constrain::ConstrainError;
use lingqiao_engine::batch::Constraint;

pub fn for_chat(
    state: &AppState,
    req: &ChatRequest,
) -> Result<Option<Box<dyn Constraint>>, ApiError> {
    let (built, param) = match (&req.response_format, req.active_tools()) {
        (ResponseFormat::Text, None) => return Ok(None),
        (ResponseFormat::JsonObject, _) => (
            lingqiao_constrain::json_object(vocab(state)?),
            "response_format",
        ),
        (ResponseFormat::JsonSchema(schema), _) => (
            lingqiao_constrain::json_schema(vocab(state)?, schema),
            "response_format.json_schema.schema",
        ),
        (ResponseFormat::Text, Some(tools)) => {
            let choice = match &req.tool_choice {
                // active_tools() is None for "none".
                ToolChoice::None => return Ok(None),
                ToolChoice::Auto => lingqiao_constrain::ToolChoice::Auto,
                ToolChoice::Required => lingqiao_constrain::ToolChoice::Required,
                ToolChoice::Named(n) => lingqiao_constrain::ToolChoice::Named(n.clone()),
            };
            (
                lingqiao_constrain::tool_calls(
                    vocab(state)?,
                    tools,
                    &choice,
                    req.parallel_tool_calls,
                ),
                "tools",
            )
        }
    };
    built.map(Some).map_err(|e| match e {
        ConstrainError::Unsupported(m) => {
            ApiError::invalid_param(param, format!("this schema cannot be enforced: {m}"))
                .with_code("unsupported_schema")
        }
        ConstrainError::Invalid(m) => {
            ApiError::invalid_param(param, format!("invalid schema: {m}"))
        }
        other => ApiError::internal(other.to_string()),
    })
}

fn vocab(state: &AppState) -> Result<&lingqiao_constrain::Vocab, ApiError> {
    state.vocab.as_ref().map_err(|e| {
        ApiError::internal(format!(
            "structured output is unavailable for this model's vocabulary: {e}"
        ))
    })
}
