//! Integration tests for agentopt-optimizer.
