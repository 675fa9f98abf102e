//! The conversable agent: identity, model, reply-function chain, termination,
//! auto-reply limit, human input, per-peer histories, functions and executor.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use agentopt_core::LearnedFunction;
use agentopt_llm::{ChatMessage, ChatModel, ChatRequest, FunctionCall, ToolSchema};
use agentopt_sandbox::CellOutcome;
use async_trait::async_trait;

use crate::code_functions::code_functions_prompt;
use crate::executor::ExecutorSlot;
use crate::functions::{FunctionExecution, FunctionImpl, FunctionMap, Signatures, parse_arguments};
use crate::replay::{CellLog, FUNCTION_STATE_LOST, Replay, ReplayFailure};
use crate::replies;
use crate::transcript::{Execution, ReplyWork, StopReason};
use crate::{AgentError, Message};
use agentopt_sandbox::ExecutorFactory;

/// AG2's default limit on consecutive automatic replies.
pub const DEFAULT_MAX_CONSECUTIVE_AUTO_REPLY: u32 = 100;

/// Which senders a reply function answers (AG2's `trigger`).
#[derive(Clone)]
pub enum Trigger {
    /// Every sender.
    Any,
    /// Only the agent with this name.
    Agent(String),
    /// Senders whose name satisfies the predicate.
    Predicate(Arc<dyn Fn(&str) -> bool + Send + Sync>),
}

impl fmt::Debug for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("Any"),
            Self::Agent(name) => f.debug_tuple("Agent").field(name).finish(),
            Self::Predicate(_) => f.write_str("Predicate(<closure>)"),
        }
    }
}

impl Trigger {
    fn matches(&self, sender: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Agent(name) => name == sender,
            Self::Predicate(predicate) => predicate(sender),
        }
    }
}

/// What an agent does next: answer, or end the conversation.
#[derive(Debug, Clone, PartialEq)]
pub enum Turn {
    /// Send this message back.
    Reply(Message),
    /// End the chat.
    Stop(StopReason),
}

/// One link of an agent's reply chain (AG2's reply functions). The first function
/// whose trigger matches and that returns `Some` decides the turn.
#[async_trait]
pub trait ReplyFunction: Send + Sync {
    /// A name, for [`ConversableAgent::remove_reply`] and debugging.
    fn name(&self) -> &str;

    /// Decides the reply to `sender`'s last message (`agent.history(sender)`), or
    /// `None` to let the next function decide.
    ///
    /// # Errors
    /// Model or sandbox failures; they end the chat with [`StopReason::Error`].
    async fn reply(&self, agent: &mut AgentState, sender: &str)
    -> Result<Option<Turn>, AgentError>;
}

/// When an agent asks a human (AG2's `human_input_mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HumanInputMode {
    /// Never ask; reply automatically until termination or the auto-reply limit.
    #[default]
    Never,
    /// Ask only on a termination message or at the auto-reply limit.
    Terminate,
    /// Ask on every message.
    Always,
}

/// Someone who can answer an agent: a terminal, a UI, a test script. An empty answer
/// means "no input" (auto-reply, or stop on a termination message); `exit` stops.
#[async_trait]
pub trait HumanInput: Send + Sync {
    /// Asks with `prompt` and returns the answer.
    async fn ask(&self, prompt: &str) -> String;
}

/// Decides whether a received message ends the chat.
pub type TerminationPredicate = Arc<dyn Fn(&Message) -> bool + Send + Sync>;

/// AG2's default termination rule: the content is exactly `TERMINATE`.
fn content_is_terminate(message: &Message) -> bool {
    message.content.as_deref() == Some("TERMINATE")
}

#[derive(Clone)]
struct RegisteredReply {
    trigger: Trigger,
    function: Arc<dyn ReplyFunction>,
}

/// Everything about an agent except its reply chain; what reply functions work on.
pub struct AgentState {
    name: String,
    system_message: String,
    model: Option<Arc<dyn ChatModel>>,
    request_template: ChatRequest,
    signatures: Signatures,
    functions: FunctionMap,
    /// Learned functions listed in the system message as callable from code.
    offered_in_code: Vec<LearnedFunction>,
    /// Learned functions defined in every executor session before its first cell.
    defined_in_code: Vec<LearnedFunction>,
    executor: Option<ExecutorSlot>,
    is_termination: TerminationPredicate,
    max_consecutive_auto_reply: u32,
    auto_replies: HashMap<String, u32>,
    human_input_mode: HumanInputMode,
    human: Option<Arc<dyn HumanInput>>,
    default_auto_reply: String,
    histories: HashMap<String, Vec<Message>>,
    work: ReplyWork,
    cells: CellLog,
}

impl fmt::Debug for AgentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentState")
            .field("name", &self.name)
            .field(
                "model",
                &self.model.as_ref().map(|model| model.model_name()),
            )
            .field("signatures", &self.signatures)
            .field("functions", &self.functions)
            .field("has_executor", &self.executor.is_some())
            .field(
                "max_consecutive_auto_reply",
                &self.max_consecutive_auto_reply,
            )
            .field("human_input_mode", &self.human_input_mode)
            .finish_non_exhaustive()
    }
}

impl AgentState {
    /// The agent's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The system message sent before the history on every model call.
    pub fn system_message(&self) -> &str {
        &self.system_message
    }

    /// The messages exchanged with `peer`, from this agent's point of view.
    pub fn history(&self, peer: &str) -> &[Message] {
        self.histories.get(peer).map_or(&[], Vec::as_slice)
    }

    /// The last message exchanged with `peer`.
    pub fn last_message(&self, peer: &str) -> Option<&Message> {
        self.history(peer).last()
    }

    /// The function signatures offered to the model.
    pub fn signatures(&self) -> &[agentopt_llm::FunctionSchema] {
        self.signatures.list()
    }

    /// The executor-side functions.
    pub fn functions(&self) -> &FunctionMap {
        &self.functions
    }

    /// The learned functions the system message lists as callable from code.
    pub fn offered_in_code(&self) -> &[LearnedFunction] {
        &self.offered_in_code
    }

    /// The learned functions defined in this agent's executor sessions for code.
    pub fn defined_in_code(&self) -> &[LearnedFunction] {
        &self.defined_in_code
    }

    /// The system message as the model gets it: the agent's own, then the list of
    /// functions callable from code, when there are any.
    pub fn effective_system_message(&self) -> String {
        let listing = code_functions_prompt(&self.offered_in_code);
        match (self.system_message.is_empty(), listing.is_empty()) {
            (_, true) => self.system_message.clone(),
            (true, false) => listing,
            (false, false) => format!("{}\n\n{listing}", self.system_message),
        }
    }

    /// Whether `message` is a termination message for this agent.
    pub fn is_termination(&self, message: &Message) -> bool {
        (self.is_termination)(message)
    }

    /// Records an execution for the transcript entry of the reply being built.
    pub fn record_execution(&mut self, execution: Execution) {
        self.work.executions.push(execution);
    }

    pub(crate) fn take_work(&mut self) -> ReplyWork {
        std::mem::take(&mut self.work)
    }

    /// A plain text reply in this agent's role (assistant when model-backed).
    pub fn text_reply(&self, text: impl Into<String>) -> Message {
        if self.model.is_some() {
            Message::assistant(text)
        } else {
            Message::user(text)
        }
    }

    /// Asks the model for the reply to `peer`: system message, then the history.
    ///
    /// # Errors
    /// [`AgentError::Model`] when the call fails; `Ok(None)` when the agent has no
    /// model.
    pub async fn ask_model(&mut self, peer: &str) -> Result<Option<Message>, AgentError> {
        let Some(model) = self.model.clone() else {
            return Ok(None);
        };
        let mut messages = Vec::with_capacity(self.history(peer).len() + 1);
        let system_message = self.effective_system_message();
        if !system_message.is_empty() {
            messages.push(ChatMessage::system(system_message));
        }
        messages.extend(
            self.history(peer)
                .iter()
                .flat_map(Message::to_chat_messages),
        );
        let request = ChatRequest {
            messages,
            tools: self
                .signatures
                .list()
                .iter()
                .cloned()
                .map(ToolSchema::from)
                .collect(),
            ..self.request_template.clone()
        };
        let response = model
            .chat(request)
            .await
            .map_err(|source| AgentError::Model {
                agent: self.name.clone(),
                source,
            })?;
        self.work.model_calls += 1;
        self.work.usage.prompt_tokens += response.usage.prompt_tokens;
        self.work.usage.completion_tokens += response.usage.completion_tokens;
        let mut reply = Message::from_model(response.message);
        if reply.content.is_none() && !reply.requests_calls() {
            reply.content = Some(String::new());
        }
        Ok(Some(reply))
    }

    /// Runs one cell in the conversation's executor session (started now if needed).
    /// A cell that completes is remembered for [`AgentState::restore_lost_state`].
    ///
    /// # Errors
    /// [`AgentError::NoExecutor`] when the agent has none, [`AgentError::Sandbox`]
    /// when the session cannot start or talk to its worker.
    pub async fn run_cell(&mut self, code: &str) -> Result<CellOutcome, AgentError> {
        let outcome = self.run_in_session(code).await?;
        self.cells.record_cell(code, &outcome);
        Ok(outcome)
    }

    /// When a cell or learned-function call killed the worker since the last call
    /// of this method, runs again, in order, every cell that had completed, so the
    /// next cell finds their definitions. `None` when nothing was lost; otherwise
    /// what the replay did (see [`Replay::failure_note`] for the model's text).
    ///
    /// # Errors
    /// As [`AgentState::run_cell`].
    pub async fn restore_lost_state(&mut self) -> Result<Option<Replay>, AgentError> {
        let Some(cells) = self.cells.take_replay() else {
            return Ok(None);
        };
        let mut replay = Replay {
            cells: cells.len(),
            failures: Vec::new(),
        };
        for (index, code) in cells.into_iter().enumerate() {
            let outcome = self.run_in_session(&code).await?;
            match outcome.error_text() {
                None => self.cells.record_cell(&code, &outcome),
                Some(error) => replay.failures.push(ReplayFailure {
                    cell: index + 1,
                    code,
                    error: strip_traceback_paths(&error),
                }),
            }
        }
        Ok(Some(replay))
    }

    async fn run_in_session(&mut self, code: &str) -> Result<CellOutcome, AgentError> {
        let Some(slot) = self.executor.as_mut() else {
            return Err(AgentError::NoExecutor {
                agent: self.name.clone(),
            });
        };
        let defined = &self.defined_in_code;
        let outcome = async { slot.session(defined).await?.run_cell(code).await }.await;
        outcome.map_err(|source| AgentError::Sandbox {
            agent: self.name.clone(),
            source,
        })
    }

    /// Executes one requested call through the function map, as AG2's
    /// `execute_function`: unknown names, arguments that are not a JSON object,
    /// and functions that fail all produce an "Error: …" result, never an error.
    ///
    /// # Errors
    /// [`AgentError::Sandbox`] when a learned function's session cannot start.
    pub async fn execute_call(
        &mut self,
        call: &FunctionCall,
        call_id: Option<&str>,
    ) -> Result<FunctionExecution, AgentError> {
        let mut execution = FunctionExecution {
            name: call.name.clone(),
            arguments: call.arguments.clone(),
            call_id: call_id.map(str::to_owned),
            success: false,
            content: String::new(),
            sandbox: None,
        };
        let Some(implementation) = self.functions.get(&call.name).cloned() else {
            execution.content = format!("Error: Function {} not found.", call.name);
            return Ok(execution);
        };
        let arguments = match parse_arguments(call) {
            Ok(arguments) => arguments,
            Err(message) => {
                execution.content = message;
                return Ok(execution);
            }
        };
        match implementation {
            FunctionImpl::Rust(function) => {
                let result =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| function(&arguments)));
                (execution.success, execution.content) = match result {
                    Ok(Ok(text)) => (true, text),
                    Ok(Err(message)) => (false, format!("Error: {message}")),
                    Err(panic) => (false, format!("Error: {}", panic_text(panic.as_ref()))),
                };
            }
            FunctionImpl::Python(python) => {
                let Some(slot) = self.executor.as_mut() else {
                    execution.content = format!(
                        "Error: Function {} needs a Python executor and this agent has none.",
                        call.name
                    );
                    return Ok(execution);
                };
                let defined = &self.defined_in_code;
                let outcome = async {
                    slot.session(defined)
                        .await?
                        .call_function(&python, &arguments)
                        .await
                }
                .await
                .map_err(|source| AgentError::Sandbox {
                    agent: self.name.clone(),
                    source,
                })?;
                (execution.success, execution.content) =
                    match learned_function_reply(&call.name, &outcome) {
                        Ok(text) => (true, text),
                        Err(error) => (false, format!("Error: {error}")),
                    };
                self.cells.note_state(&outcome);
                if outcome.state_lost {
                    execution.content = format!("{}\n{FUNCTION_STATE_LOST}", execution.content);
                }
                execution.sandbox = Some(outcome);
            }
        }
        Ok(execution)
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .map_or_else(
            || "the function panicked".to_owned(),
            |text| format!("the function panicked: {text}"),
        )
}

/// What a learned function's sandbox outcome tells the model, as AG2's executor
/// script prints it: `Ok("Result of NAME function execution:\n" + stdout + the
/// returned value unless it is None)`, or `Err(traceback)` with library paths
/// stripped when the call raised, timed out or crashed.
///
/// # Errors
/// The traceback or death description when the call did not complete.
pub fn learned_function_reply(name: &str, outcome: &CellOutcome) -> Result<String, String> {
    if let Some(error) = outcome.error_text() {
        return Err(strip_traceback_paths(&error));
    }
    let mut text = format!("Result of {name} function execution:\n{}", outcome.stdout);
    if let Some(value) = outcome.value.as_deref().filter(|v| *v != "None") {
        text.push_str(value);
        text.push('\n');
    }
    Ok(text)
}

/// Removes `File "….py", line N, in …` frame lines (library paths), as AG2 does;
/// frames of the cell itself (`File "<cell>"`) stay.
pub fn strip_traceback_paths(traceback: &str) -> String {
    static FRAME: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r#"File "[^"]+\.py", line \d+, in .+\n"#).expect("constant pattern")
    });
    FRAME.replace_all(traceback, "").into_owned()
}

/// An agent that converses: AG2's `ConversableAgent`.
pub struct ConversableAgent {
    state: AgentState,
    replies: Vec<RegisteredReply>,
}

impl fmt::Debug for ConversableAgent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConversableAgent")
            .field("state", &self.state)
            .field(
                "replies",
                &self
                    .replies
                    .iter()
                    .map(|reply| reply.function.name())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl ConversableAgent {
    /// An agent with AG2's default reply chain (termination and human reply,
    /// function call, tool calls, code execution, model), no model, no executor,
    /// an empty system message, never asking a human, at most
    /// [`DEFAULT_MAX_CONSECUTIVE_AUTO_REPLY`] consecutive auto replies, and the
    /// termination rule "content is exactly `TERMINATE`".
    pub fn new(name: impl Into<String>) -> Self {
        let mut agent = Self {
            state: AgentState {
                name: name.into(),
                system_message: String::new(),
                model: None,
                request_template: ChatRequest::new(Vec::new()),
                signatures: Signatures::default(),
                functions: FunctionMap::default(),
                offered_in_code: Vec::new(),
                defined_in_code: Vec::new(),
                executor: None,
                is_termination: Arc::new(content_is_terminate),
                max_consecutive_auto_reply: DEFAULT_MAX_CONSECUTIVE_AUTO_REPLY,
                auto_replies: HashMap::new(),
                human_input_mode: HumanInputMode::Never,
                human: None,
                default_auto_reply: String::new(),
                histories: HashMap::new(),
                work: ReplyWork::default(),
                cells: CellLog::default(),
            },
            replies: Vec::new(),
        };
        agent.state.request_template.caller = agent.state.name.clone();
        for function in [
            Arc::new(replies::TerminationAndHuman) as Arc<dyn ReplyFunction>,
            Arc::new(replies::FunctionCalls),
            Arc::new(replies::CodeBlocks),
            Arc::new(replies::ModelReply),
        ] {
            agent.replies.push(RegisteredReply {
                trigger: Trigger::Any,
                function,
            });
        }
        agent
    }

    /// Sets the system message.
    #[must_use]
    pub fn with_system_message(mut self, message: impl Into<String>) -> Self {
        self.state.system_message = message.into();
        self
    }

    /// Gives the agent a chat model (shared; only the client is shared between
    /// conversations).
    #[must_use]
    pub fn with_model(mut self, model: Arc<dyn ChatModel>) -> Self {
        self.state.model = Some(model);
        self
    }

    /// Request options for every model call (temperature, seed, call style, tool
    /// choice, caller label…); its messages and tools are replaced on each call.
    #[must_use]
    pub fn with_request_template(mut self, template: ChatRequest) -> Self {
        self.state.request_template = template;
        self
    }

    /// Lets the agent run code and learned functions in sessions from `factory`.
    #[must_use]
    pub fn with_executor(mut self, factory: Arc<dyn ExecutorFactory>) -> Self {
        self.state.executor = Some(ExecutorSlot::new(factory));
        self
    }

    /// Sets the termination rule applied to received messages.
    #[must_use]
    pub fn with_termination(
        mut self,
        predicate: impl Fn(&Message) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.state.is_termination = Arc::new(predicate);
        self
    }

    /// Sets the limit of consecutive automatic replies to one peer.
    #[must_use]
    pub fn with_max_consecutive_auto_reply(mut self, limit: u32) -> Self {
        self.state.max_consecutive_auto_reply = limit;
        self
    }

    /// Asks `human` in `mode`.
    #[must_use]
    pub fn with_human_input(mut self, mode: HumanInputMode, human: Arc<dyn HumanInput>) -> Self {
        self.state.human_input_mode = mode;
        self.state.human = Some(human);
        self
    }

    /// The reply sent when no reply function decides.
    #[must_use]
    pub fn with_default_auto_reply(mut self, reply: impl Into<String>) -> Self {
        self.state.default_auto_reply = reply.into();
        self
    }

    /// The agent's name.
    pub fn name(&self) -> &str {
        &self.state.name
    }

    /// The agent's state (histories, functions, signatures).
    pub fn state(&self) -> &AgentState {
        &self.state
    }

    /// Mutable access to the agent's state.
    pub fn state_mut(&mut self) -> &mut AgentState {
        &mut self.state
    }

    /// The messages exchanged with `peer`, from this agent's point of view; kept
    /// after the chat ends, until the next chat with `peer` starts.
    pub fn history(&self, peer: &str) -> &[Message] {
        self.state.history(peer)
    }

    /// Inserts a reply function at `position` (clamped to the chain's length), as
    /// AG2's `register_reply`: position 0 runs first.
    pub fn register_reply(
        &mut self,
        position: usize,
        trigger: Trigger,
        function: Arc<dyn ReplyFunction>,
    ) {
        let position = position.min(self.replies.len());
        self.replies
            .insert(position, RegisteredReply { trigger, function });
    }

    /// Removes every reply function named `name`; returns how many were removed.
    pub fn remove_reply(&mut self, name: &str) -> usize {
        let before = self.replies.len();
        self.replies.retain(|reply| reply.function.name() != name);
        before - self.replies.len()
    }

    /// Empties the reply chain (the default auto reply stays), so a custom proxy can
    /// register its own chain from the start.
    pub fn clear_replies(&mut self) {
        self.replies.clear();
    }

    /// The names of the reply chain, in order.
    pub fn reply_names(&self) -> Vec<&str> {
        self.replies
            .iter()
            .map(|reply| reply.function.name())
            .collect()
    }

    /// Offers `schema` to the model, replacing the signature of the same name (AG2's
    /// `update_function_signature`).
    pub fn update_function_signature(&mut self, schema: agentopt_llm::FunctionSchema) {
        self.state.signatures.upsert(schema);
    }

    /// Stops offering the function called `name` (AG2's
    /// `update_function_signature(…, is_remove=True)`); returns whether it was offered.
    pub fn remove_function_signature(&mut self, name: &str) -> bool {
        self.state.signatures.remove(name)
    }

    /// Registers (or replaces) an executor-side function.
    pub fn register_function(&mut self, name: impl Into<String>, implementation: FunctionImpl) {
        self.state.functions.insert(name, implementation);
    }

    /// Removes an executor-side function; returns whether it was registered.
    pub fn remove_function(&mut self, name: &str) -> bool {
        self.state.functions.remove(name)
    }

    /// Lists `functions` in the system message as callable from code (their `def`
    /// headers and descriptions); an empty list leaves the system message as set.
    pub fn offer_code_functions(&mut self, functions: Vec<LearnedFunction>) {
        self.state.offered_in_code = functions;
    }

    /// Defines `functions` in each executor session this agent starts, before its
    /// first cell (each from its own code, in a namespace of its own); cells' calls
    /// to them are counted in [`agentopt_sandbox::CellOutcome::code_calls`].
    pub fn define_code_functions(&mut self, functions: Vec<LearnedFunction>) {
        self.state.defined_in_code = functions;
    }

    /// Decides the reply to `sender`'s last message by walking the reply chain; when
    /// no function decides, the default auto reply.
    ///
    /// # Errors
    /// Model or sandbox failures from a reply function.
    pub async fn generate_reply(&mut self, sender: &str) -> Result<Turn, AgentError> {
        let chain = self.replies.clone();
        for registered in chain {
            if !registered.trigger.matches(sender) {
                continue;
            }
            if let Some(turn) = registered.function.reply(&mut self.state, sender).await? {
                return Ok(turn);
            }
        }
        Ok(Turn::Reply(
            self.state.text_reply(self.state.default_auto_reply.clone()),
        ))
    }

    /// Starts a chat with `recipient` (clearing their previous history with each
    /// other) by sending `message`, and runs it to the end. Never fails: model and
    /// sandbox errors end the chat with [`StopReason::Error`]. Both agents keep the
    /// history afterwards; each executor session is closed.
    pub async fn initiate_chat(
        &mut self,
        recipient: &mut ConversableAgent,
        message: impl Into<Message>,
    ) -> crate::Transcript {
        let started = Instant::now();
        self.prepare_chat(recipient.name());
        recipient.prepare_chat(self.name());
        let initiator = self.name().to_owned();
        let other = recipient.name().to_owned();
        let mut entries = Vec::new();
        let mut sender: &mut ConversableAgent = self;
        let mut receiver: &mut ConversableAgent = recipient;
        let mut message = message.into();
        let mut work = ReplyWork::default();
        let stop_reason = loop {
            sender.state.append(&message, receiver.name(), true);
            let sender_name = sender.name().to_owned();
            receiver.state.append(&message, &sender_name, false);
            entries.push(crate::transcript::TranscriptEntry {
                sender: sender_name.clone(),
                recipient: receiver.name().to_owned(),
                message,
                work: std::mem::take(&mut work),
                elapsed: started.elapsed(),
            });
            let reply_started = Instant::now();
            let turn = receiver.generate_reply(&sender_name).await;
            work = receiver.state.take_work();
            work.duration = reply_started.elapsed();
            match turn {
                Ok(Turn::Reply(reply)) => {
                    message = reply;
                    std::mem::swap(&mut sender, &mut receiver);
                }
                Ok(Turn::Stop(reason)) => break reason,
                Err(error) => {
                    break StopReason::Error {
                        agent: receiver.name().to_owned(),
                        kind: error.failure_kind(),
                        message: error.to_string(),
                    };
                }
            }
        };
        for agent in [sender, receiver] {
            agent.state.end_session();
        }
        crate::Transcript::new(
            initiator,
            other,
            entries,
            &work,
            stop_reason,
            started.elapsed(),
        )
    }

    fn prepare_chat(&mut self, peer: &str) {
        self.state.auto_replies.insert(peer.to_owned(), 0);
        self.state.histories.insert(peer.to_owned(), Vec::new());
        self.state.work = ReplyWork::default();
        self.state.end_session();
    }
}

impl AgentState {
    fn append(&mut self, message: &Message, peer: &str, own: bool) {
        let speaker = if own {
            self.name.clone()
        } else {
            peer.to_owned()
        };
        self.histories
            .entry(peer.to_owned())
            .or_default()
            .push(message.as_seen_by(own, &speaker));
    }

    pub(crate) fn auto_reply_count(&mut self, peer: &str) -> &mut u32 {
        self.auto_replies.entry(peer.to_owned()).or_insert(0)
    }

    pub(crate) fn max_consecutive_auto_reply(&self) -> u32 {
        self.max_consecutive_auto_reply
    }

    pub(crate) fn human(&self) -> (HumanInputMode, Option<Arc<dyn HumanInput>>) {
        (self.human_input_mode, self.human.clone())
    }

    /// Closes the conversation's executor session and forgets its cells.
    fn end_session(&mut self) {
        if let Some(slot) = self.executor.as_mut() {
            slot.release();
        }
        self.cells.clear();
    }

    pub(crate) fn has_executor(&self) -> bool {
        self.executor.is_some()
    }
}

/// AG2's `AssistantAgent`: a model-backed agent with AG2's default system message,
/// never asking a human. Derefs to [`ConversableAgent`].
#[derive(Debug)]
pub struct AssistantAgent(ConversableAgent);

/// AG2's `AssistantAgent.DEFAULT_SYSTEM_MESSAGE`.
pub const ASSISTANT_SYSTEM_MESSAGE: &str = r#"You are a helpful AI assistant.
Solve tasks using your coding and language skills.
In the following cases, suggest python code (in a python coding block) or shell script (in a sh coding block) for the user to execute.
    1. When you need to collect info, use the code to output the info you need, for example, browse or search the web, download/read a file, print the content of a webpage or a file, get the current date/time, check the operating system. After sufficient info is printed and the task is ready to be solved based on your language skill, you can solve the task by yourself.
    2. When you need to perform some task with code, use the code to perform the task and output the result. Finish the task smartly.
Solve the task step by step if you need to. If a plan is not provided, explain your plan first. Be clear which step uses code, and which step uses your language skill.
When using code, you must indicate the script type in the code block. The user cannot provide any other feedback or perform any other action beyond executing the code you suggest. The user can't modify your code. So do not suggest incomplete code which requires users to modify. Don't use a code block if it's not intended to be executed by the user.
If you want the user to save the code in a file before executing it, put # filename: <filename> inside the code block as the first line. Don't include multiple code blocks in one response. Do not ask users to copy and paste the result. Instead, use 'print' function for the output when relevant. Check the execution result returned by the user.
If the result indicates there is an error, fix the error and output the code again. Suggest the full code instead of partial code or code changes. If the error can't be fixed or if the task is not solved even after the code is executed successfully, analyze the problem, revisit your assumption, collect additional info you need, and think of a different approach to try.
When you find an answer, verify the answer carefully. Include verifiable evidence in your response if possible.
Reply "TERMINATE" in the end when everything is done.
    "#;

impl AssistantAgent {
    /// Applies builder methods of the underlying agent, e.g.
    /// `.configure(|agent| agent.with_max_consecutive_auto_reply(5))`.
    #[must_use]
    pub fn configure(self, build: impl FnOnce(ConversableAgent) -> ConversableAgent) -> Self {
        Self(build(self.0))
    }

    /// An assistant named `name` answering with `model`.
    pub fn new(name: impl Into<String>, model: Arc<dyn ChatModel>) -> Self {
        Self(
            ConversableAgent::new(name)
                .with_system_message(ASSISTANT_SYSTEM_MESSAGE)
                .with_model(model),
        )
    }

    /// Replaces the system message.
    #[must_use]
    pub fn with_system_message(self, message: impl Into<String>) -> Self {
        Self(self.0.with_system_message(message))
    }

    /// The underlying agent.
    pub fn into_inner(self) -> ConversableAgent {
        self.0
    }
}

/// AG2's `UserProxyAgent`: no model; runs the code blocks it receives in an executor
/// session and the function/tool calls through its function map. Derefs to
/// [`ConversableAgent`].
#[derive(Debug)]
pub struct UserProxyAgent(ConversableAgent);

impl UserProxyAgent {
    /// Applies builder methods of the underlying agent, e.g.
    /// `.configure(|agent| agent.with_max_consecutive_auto_reply(5))`.
    #[must_use]
    pub fn configure(self, build: impl FnOnce(ConversableAgent) -> ConversableAgent) -> Self {
        Self(build(self.0))
    }

    /// A user proxy named `name` running code in sessions from `executor`.
    pub fn new(name: impl Into<String>, executor: Arc<dyn ExecutorFactory>) -> Self {
        Self(ConversableAgent::new(name).with_executor(executor))
    }

    /// A user proxy that runs no code (function calls only).
    pub fn without_code(name: impl Into<String>) -> Self {
        Self(ConversableAgent::new(name))
    }

    /// The underlying agent.
    pub fn into_inner(self) -> ConversableAgent {
        self.0
    }
}

macro_rules! deref_to_agent {
    ($wrapper:ty) => {
        impl std::ops::Deref for $wrapper {
            type Target = ConversableAgent;
            fn deref(&self) -> &ConversableAgent {
                &self.0
            }
        }
        impl std::ops::DerefMut for $wrapper {
            fn deref_mut(&mut self) -> &mut ConversableAgent {
                &mut self.0
            }
        }
    };
}

deref_to_agent!(AssistantAgent);
deref_to_agent!(UserProxyAgent);
