//! The optimizer's whole state and the layout of its checkpoint: a versioned snapshot
//! and the journal lines that extend it.

use std::collections::BTreeMap;

use agentopt_llm::ChatMessage;
use serde::{Deserialize, Serialize};

use agentopt_core::LearnedFunction;

use crate::OptimizerOptions;
use crate::learned_use::FunctionUse;

/// One recorded conversation and whether the user was satisfied with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedConversation {
    /// The chat messages, in order.
    pub messages: Vec<ChatMessage>,
    /// The outcome: 1 in the prompt's table when satisfied, else 0.
    pub satisfied: bool,
    /// The learned functions it called, when the recorder said (AG2's
    /// `record_one_conversation` does not; checkpoints from before read as unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uses: Option<BTreeMap<String, FunctionUse>>,
}

/// Where a recorded conversation's messages are on disk: a line of a journal of
/// the checkpoint (see [`crate::checkpoint`]), named relative to its directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LineAt {
    /// The journal's file name (a superseded journal keeps its lines there).
    pub(crate) file: String,
    /// The byte offset where the line starts.
    pub(crate) offset: u64,
}

/// A recorded conversation as the optimizer keeps it: the outcome and the calls in
/// memory, the messages on disk when checkpoints are on (read back a group at a
/// time: an epoch of any size takes a few bytes per conversation), in memory
/// otherwise. Checkpoints of version 2 held every conversation's messages inline
/// and read as such.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StoredConversation {
    /// The messages, when `at` is `None`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) messages: Vec<ChatMessage>,
    /// See [`RecordedConversation::satisfied`].
    pub(crate) satisfied: bool,
    /// See [`RecordedConversation::uses`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) uses: Option<BTreeMap<String, FunctionUse>>,
    /// Where the messages are on disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) at: Option<LineAt>,
}

impl StoredConversation {
    /// `conversation` kept whole in memory, or with its messages at `at`.
    pub(crate) fn new(conversation: RecordedConversation, at: Option<LineAt>) -> Self {
        Self {
            messages: if at.is_some() {
                Vec::new()
            } else {
                conversation.messages
            },
            satisfied: conversation.satisfied,
            uses: conversation.uses,
            at,
        }
    }
}

/// What the statistics read of a conversation, recorded or stored: its outcome and
/// the learned functions it called.
pub(crate) trait Scored {
    /// The user was satisfied.
    fn satisfied(&self) -> bool;
    /// The learned functions it called, when known.
    fn uses(&self) -> Option<&BTreeMap<String, FunctionUse>>;
}

impl Scored for RecordedConversation {
    fn satisfied(&self) -> bool {
        self.satisfied
    }
    fn uses(&self) -> Option<&BTreeMap<String, FunctionUse>> {
        self.uses.as_ref()
    }
}

impl Scored for StoredConversation {
    fn satisfied(&self) -> bool {
        self.satisfied
    }
    fn uses(&self) -> Option<&BTreeMap<String, FunctionUse>> {
        self.uses.as_ref()
    }
}

/// A rolled-back function list with the score it got (the failure experience).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedTrial {
    /// The function list that was tried.
    pub functions: Vec<LearnedFunction>,
    /// Its training score (mean outcome).
    pub performance: f64,
}

/// Everything that survives a restart.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub(crate) struct OptimizerState {
    /// Functions in force now (what the agents have).
    pub(crate) trial_functions: Vec<LearnedFunction>,
    /// Conversations recorded with the trial functions since the last step.
    pub(crate) trial_conversations: Vec<StoredConversation>,
    /// Validation outcomes of the trial functions, by problem id.
    pub(crate) trial_validation: BTreeMap<String, bool>,
    /// The best function list so far.
    pub(crate) best_functions: Vec<LearnedFunction>,
    /// The conversations the best list was scored on.
    pub(crate) best_conversations: Vec<StoredConversation>,
    /// Validation outcomes of the best list, by problem id.
    pub(crate) best_validation: BTreeMap<String, bool>,
    /// The best score; `None` is below any score, so the first step accepts.
    pub(crate) best_performance: Option<f64>,
    /// Rolled-back lists since the last acceptance, ascending by score.
    pub(crate) failures: Vec<FailedTrial>,
    /// Steps taken since creation or the last reset.
    pub(crate) steps_taken: u64,
    /// Consecutive steps whose trial did not beat the best.
    pub(crate) steps_without_improvement: u32,
    /// Per function, the consecutive steps in which no conversation called it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) unused_steps: BTreeMap<String, u32>,
}

impl OptimizerState {
    /// A copy of everything but the recorded conversations (left empty): what a
    /// step builds the next state from.
    pub(crate) fn without_conversations(&self) -> Self {
        Self {
            trial_functions: self.trial_functions.clone(),
            trial_conversations: Vec::new(),
            trial_validation: self.trial_validation.clone(),
            best_functions: self.best_functions.clone(),
            best_conversations: Vec::new(),
            best_validation: self.best_validation.clone(),
            best_performance: self.best_performance,
            failures: self.failures.clone(),
            steps_taken: self.steps_taken,
            steps_without_improvement: self.steps_without_improvement,
            unused_steps: self.unused_steps.clone(),
        }
    }
}

/// Name written in every checkpoint file.
pub(crate) const CHECKPOINT_FORMAT: &str = "agentopt-optimizer-checkpoint";
/// Checkpoint layout version this build writes: a snapshot extended by a journal,
/// conversations' messages left in the journal lines that recorded them.
pub(crate) const CHECKPOINT_VERSION: u32 = 3;
/// The layout with every conversation's messages in the snapshot, still read.
pub(crate) const CHECKPOINT_VERSION_INLINE: u32 = 2;
/// The earlier layout (the whole state rewritten on every record), still read.
pub(crate) const CHECKPOINT_VERSION_WHOLE: u32 = 1;

/// The checkpoint snapshot file: format tag, version, the snapshot's id (journal
/// lines carrying it extend this snapshot), settings fixed at creation and the state.
#[derive(Debug, Deserialize)]
pub(crate) struct Checkpoint {
    pub(crate) version: u32,
    /// Absent in version 1 files, which have no journal.
    #[serde(default)]
    pub(crate) snapshot: u64,
    pub(crate) max_actions_per_step: usize,
    pub(crate) options: OptimizerOptions,
    pub(crate) state: OptimizerState,
}

/// [`Checkpoint`] as written, borrowing the state.
#[derive(Debug, Serialize)]
pub(crate) struct CheckpointRef<'a> {
    pub(crate) format: &'static str,
    pub(crate) version: u32,
    pub(crate) snapshot: u64,
    pub(crate) max_actions_per_step: usize,
    pub(crate) options: &'a OptimizerOptions,
    pub(crate) state: &'a OptimizerState,
}

/// Something recorded between steps: one journal line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Record {
    /// [`crate::AgentOptimizer::record_one_conversation`].
    Conversation(RecordedConversation),
    /// [`crate::AgentOptimizer::record_validation_outcome`].
    Validation {
        /// The held-out problem.
        problem_id: String,
        /// Whether the trial functions solved it.
        satisfied: bool,
    },
}

impl Record {
    /// Adds the record to `state`; a conversation's messages stay at `at`, the
    /// journal line that holds it, when it has one.
    pub(crate) fn apply(self, state: &mut OptimizerState, at: Option<LineAt>) {
        match self {
            Self::Conversation(conversation) => state
                .trial_conversations
                .push(StoredConversation::new(conversation, at)),
            Self::Validation {
                problem_id,
                satisfied,
            } => {
                state.trial_validation.insert(problem_id, satisfied);
            }
        }
    }
}

/// One journal line: the snapshot it extends, its position after that snapshot
/// (from 0), and the record.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct JournalEntry {
    pub(crate) snapshot: u64,
    pub(crate) seq: u64,
    pub(crate) record: Record,
}
