//! Generation-side logic on top of a model: chat templates and the sampler chain.

pub mod chat_template;
pub mod sampler;

pub use chat_template::{ChatMessage, ChatTemplate, TemplateError, chatml};
pub use sampler::{Sampler, SamplerConfig, log_softmax, top_logprobs};
pub mod generate;
pub use generate::{GenerateError, GenerationStats, Session, StopReason, TokenEvent};
pub mod batch;
pub use batch::{Engine, EngineConfig, Event, FinishReason, Request, SubmitError, Usage};
