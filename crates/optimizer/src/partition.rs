//! Partitioned optimization ("divide, optimize, merge", FGO, arXiv 2505.03973):
//! when an epoch's conversations do not all fit one optimizer prompt whole, they
//! are split in order into groups that do; each group gets a step of its own from
//! the best list, and the candidate lists are merged one at a time by a merge
//! prompt that sees the merged list so far, the next candidate and the statistics
//! of the groups behind each. Every conversation is read by some step.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::OptimizerError;
use crate::prompt::{
    ActionFormat, PromptBudget, PromptInputs, PromptReport, build_prompt, failure_entries,
    failures_within, functions_text, json_action_instruction, quarter_of_budget_bytes, tokens,
};
use crate::state::{FailedTrial, RecordedConversation, Scored};
use agentopt_core::LearnedFunction;

/// When a step's conversations are partitioned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "mode", content = "conversations")]
pub enum Partitioning {
    /// When some conversation would otherwise be shortened or left out of the
    /// one prompt (the default).
    #[default]
    Auto,
    /// Never: one prompt, conversations shortened and left out to fit (AG2's
    /// prompt with agentopt's budget).
    Never,
    /// Groups of at most this many conversations (each also fitting whole).
    AtMost(usize),
}

/// One group's part of a partitioned step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionReport {
    /// The conversations it read (indices into the step's conversations).
    pub conversations: Range<usize>,
    /// How many of them were satisfied with the best list.
    pub satisfied: usize,
    /// Actions its step applied to the best list.
    pub actions: usize,
}

/// The groups of the `count` conversations `load` reads one at a time, in order:
/// each as long as its prompt shows every conversation of it whole (a conversation
/// too long for any prompt forms a group alone, shortened); `inputs` gives the
/// prompt's other parts, `extra` a group's sections beyond AG2's (see
/// [`PromptInputs::extra`]). One group when everything fits and `mode` does not ask
/// for smaller ones; `None` with [`Partitioning::Never`]. Only the group being
/// planned is in memory.
pub(crate) fn plan_groups(
    mode: Partitioning,
    inputs: &PromptInputs<'_>,
    count: usize,
    load: &dyn Fn(usize) -> Result<RecordedConversation, OptimizerError>,
    extra: &dyn Fn(&[RecordedConversation]) -> String,
    budget: &PromptBudget,
) -> Result<Option<Vec<Range<usize>>>, OptimizerError> {
    let limit = match mode {
        Partitioning::Never => return Ok(None),
        Partitioning::Auto => usize::MAX,
        Partitioning::AtMost(size) => size.max(1),
    };
    let fits_whole = |conversations: &[RecordedConversation]| -> Result<bool, OptimizerError> {
        let extra = extra(conversations);
        let part = PromptInputs {
            conversations,
            extra: &extra,
            ..*inputs
        };
        let (_, report) =
            build_prompt(&part, budget).map_err(|needed| prompt_too_large(needed, budget))?;
        Ok(report.conversations_condensed.is_empty() && report.conversations_omitted.is_empty())
    };
    let mut groups = Vec::new();
    let mut group: Vec<RecordedConversation> = Vec::new();
    let mut start = 0;
    for index in 0..count {
        group.push(load(index)?);
        if group.len() == 1 || (group.len() <= limit && fits_whole(&group)?) {
            continue;
        }
        let next = group.pop();
        groups.push(start..index);
        start = index;
        group.clear();
        group.extend(next);
    }
    if start < count {
        groups.push(start..count);
    }
    Ok(Some(groups))
}

/// A prompt of `needed` estimated tokens that cannot fit `budget`.
pub(crate) fn prompt_too_large(needed: usize, budget: &PromptBudget) -> OptimizerError {
    OptimizerError::PromptTooLarge {
        needed,
        budget: budget.max_prompt_tokens,
        context_window: budget.context_window,
        reserved: budget.context_window as usize - budget.max_prompt_tokens,
    }
}

/// The outcomes of the conversations in `range`.
pub(crate) fn group_report(
    conversations: &[impl Scored],
    range: Range<usize>,
    actions: usize,
) -> PartitionReport {
    let satisfied = conversations[range.clone()]
        .iter()
        .filter(|conversation| conversation.satisfied())
        .count();
    PartitionReport {
        conversations: range,
        satisfied,
        actions,
    }
}

/// What the merge prompt shows of one side of a merge.
pub(crate) struct MergeSide<'a> {
    /// The function list.
    pub(crate) functions: &'a [LearnedFunction],
    /// The groups whose steps it comes from.
    pub(crate) groups: &'a [PartitionReport],
}

/// The merge prompt: List A (the best list every group started from), the
/// failure experience, the candidate to merge in with its groups' statistics,
/// List B (the merged list so far, after `actions_taken` merge actions) and
/// `extra`, sections beyond AG2's (function use, checked worked examples).
pub(crate) fn merge_prompt(
    best: &[LearnedFunction],
    failures: &[FailedTrial],
    merged: &MergeSide<'_>,
    candidate: &MergeSide<'_>,
    actions_taken: usize,
    extra: &str,
    budget: &PromptBudget,
) -> Result<(String, PromptReport), usize> {
    // As in a step prompt, the highest-scored failures that fit a quarter.
    let (failure_lines, _) =
        failures_within(failures, quarter_of_budget_bytes(budget), failure_entries);
    let extra = match extra {
        "" => String::new(),
        text => format!("{text}\n"),
    };
    let prompt = format!(
        "{MERGE_ROLE}\nList A (the functions the assistant used in every group's \
         conversations): {}.\n\nList B is the merged list after taking {actions_taken} \
         actions to manipulate it; it holds the proposals for {}:\nList B: {}.\n\n\
         The candidate list to merge into List B was proposed for {}:\nCandidate: {}.\n\n\
         {}{extra}{MERGE_CLOSING}{}",
        functions_text(best),
        groups_text(merged.groups),
        functions_text(merged.functions),
        groups_text(candidate.groups),
        functions_text(candidate.functions),
        if failure_lines.is_empty() {
            String::new()
        } else {
            format!(
                "Function lists tried earlier and rolled back, with their performance \
                 (0-1, the share of satisfied conversations):\n{failure_lines}\n"
            )
        },
        match budget.action_format {
            ActionFormat::ToolCalls => String::new(),
            ActionFormat::JsonSchema => json_action_instruction(budget.asks_demonstrations),
        },
    );
    let prompt_tokens = tokens(&prompt, budget);
    if prompt_tokens > budget.max_prompt_tokens {
        return Err(prompt_tokens);
    }
    let report = PromptReport {
        budget_tokens: budget.max_prompt_tokens,
        prompt_tokens,
        ..PromptReport::default()
    };
    Ok((prompt, report))
}

/// Groups a merge prompt describes one by one; more are summed up in one line,
/// so the prompt does not grow with the groups merged.
const GROUPS_LISTED: usize = 4;

/// "2 group(s) of conversations (conversations 0-9: 7 of 10 satisfied with List
/// A, 2 action(s); …)", or past [`GROUPS_LISTED`] groups their totals.
fn groups_text(groups: &[PartitionReport]) -> String {
    if groups.len() > GROUPS_LISTED {
        let conversations: usize = groups.iter().map(|group| group.conversations.len()).sum();
        let satisfied: usize = groups.iter().map(|group| group.satisfied).sum();
        let actions: usize = groups.iter().map(|group| group.actions).sum();
        return format!(
            "{} group(s) of conversations ({conversations} conversations in all: \
             {satisfied} satisfied with List A, {actions} action(s))",
            groups.len()
        );
    }
    let each: Vec<String> = groups
        .iter()
        .map(|group| {
            let range = &group.conversations;
            format!(
                "conversations {}-{}: {} of {} satisfied with List A, {} action(s)",
                range.start,
                range.end - 1,
                group.satisfied,
                range.len(),
                group.actions
            )
        })
        .collect();
    format!(
        "{} group(s) of conversations ({})",
        groups.len(),
        each.join("; ")
    )
}

const MERGE_ROLE: &str = "You are a function optimizer. The conversation histories of \
    this round were too many for one prompt, so they were split into groups, and for \
    each group an optimizer revised List A into a candidate function list for the \
    assistant. Your task is to merge the candidates into one list, one candidate at a \
    time, with the actions you have: add_function, revise_function, remove_function, \
    or reply \"TERMINATE\" when List B is the merged list.";

const MERGE_CLOSING: &str = "Merge the candidate into List B. Keep every function that \
    helps with the failed conversations of any group; when List B and the candidate \
    hold functions with the same purpose, keep one general function (revise it to \
    cover both) instead of two; give a function that is new in the candidate the same \
    name and code. Groups with more conversations and more failures weigh more. Do not \
    add functions that neither side proposed. Take one action at a time.\n";
