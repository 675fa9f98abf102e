//! Sandboxed Python execution: warm, stateful, isolated workers for code an LLM wrote.
//!
//! The only crate that runs untrusted code.
