//! The chat-model boundary: a `ChatModel` trait, OpenAI / Azure / OpenAI-compatible
//! providers over async-openai, retries, a response cache, usage and cost metering,
//! lenient tool-call recovery and the embedded local llama.cpp model.
//!
//! The only crate that talks to model servers.

pub mod local;
