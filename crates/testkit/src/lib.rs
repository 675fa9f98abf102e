//! Test kit: a scripted OpenAI-compatible HTTP server bound to 127.0.0.1, so every
//! crate's tests use the real client over real HTTP with no network.
