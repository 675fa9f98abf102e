//! Wires a conversation to where its code runs: the session of an
//! [`ExecutorFactory`], started lazily on the first code or learned-function call,
//! one per conversation.

use std::sync::Arc;

use agentopt_sandbox::{Executor, ExecutorFactory, LearnedFunction, SandboxError};

/// An agent's executor: the factory plus the session of the current conversation,
/// started on first use.
pub(crate) struct ExecutorSlot {
    factory: Arc<dyn ExecutorFactory>,
    session: Option<Box<dyn Executor>>,
}

impl ExecutorSlot {
    pub(crate) fn new(factory: Arc<dyn ExecutorFactory>) -> Self {
        Self {
            factory,
            session: None,
        }
    }

    /// The conversation's session, started now if needed, with `defined` defined
    /// in it for code (a definition that raises is logged; cells calling that
    /// function then fail with a `NameError` the model sees).
    pub(crate) async fn session(
        &mut self,
        defined: &[LearnedFunction],
    ) -> Result<&mut Box<dyn Executor>, SandboxError> {
        let session = match self.session.take() {
            Some(session) => session,
            None => {
                let mut session = self.factory.start().await?;
                if !defined.is_empty() {
                    let outcome = session.define_functions(defined).await?;
                    if let Some(error) = outcome.error_text() {
                        tracing::warn!("defining learned functions for code: {error}");
                    }
                }
                session
            }
        };
        Ok(self.session.insert(session))
    }

    /// Ends the conversation's session (its state and its slot).
    pub(crate) fn release(&mut self) {
        self.session = None;
    }
}
