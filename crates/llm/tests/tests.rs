//! Integration tests of agentopt-llm, one binary with a module per area.

mod local;
