//! AgentOptimizer: an optimizer LLM reads conversations and their outcomes and adds,
//! revises or removes the Python functions an agent may call, with roll-back to the
//! best function set and early stop.
