//! Retrieval: each problem is offered only the learned functions most relevant to
//! it, at most a limit (BM25 of the problem's text against each function's name,
//! description and worked examples). Small models do better with few tools offered
//! (CRAFT retrieves 3 per problem).

use agentopt_core::{FunctionSet, LearnedFunction};
use bm25::{Language, SearchEngineBuilder};

/// How many functions retrieval offers each problem unless told otherwise.
pub const DEFAULT_RETRIEVAL_K: usize = 3;

/// The text a function is found by: its name in words, description and examples.
fn searchable_text(function: &LearnedFunction) -> String {
    let mut text = format!(
        "{} {}",
        function.name.replace('_', " "),
        function.description
    );
    for example in &function.demonstrations {
        text.push(' ');
        text.push_str(&example.problem);
        text.push(' ');
        text.push_str(&example.solution);
    }
    text
}

/// The `k` functions of `functions` most relevant to `problem`, in the set's order:
/// only functions that share a word with the problem (a BM25 score above 0) are
/// offered, so a problem nothing matches is offered none, and the use rate counts
/// the conversations a function could have helped. Ties go by the set's order, so
/// the choice is deterministic.
pub fn retrieve(functions: &FunctionSet, problem: &str, k: usize) -> FunctionSet {
    let all = functions.functions();
    if all.is_empty() {
        return FunctionSet::default();
    }
    let corpus: Vec<String> = all.iter().map(searchable_text).collect();
    let engine = SearchEngineBuilder::<u32>::with_corpus(Language::English, corpus).build();
    let mut scores = vec![0.0_f32; all.len()];
    for result in engine.search(problem, None) {
        if let Some(score) = usize::try_from(result.document.id)
            .ok()
            .and_then(|index| scores.get_mut(index))
        {
            *score = result.score;
        }
    }
    let mut order: Vec<usize> = (0..all.len()).filter(|&i| scores[i] > 0.0).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let mut chosen: Vec<usize> = order.into_iter().take(k).collect();
    chosen.sort_unstable();
    FunctionSet::new(chosen.into_iter().map(|index| all[index].clone()))
}

/// The index of the text of `texts` most like `function` (BM25 of the function's
/// name, description and examples against the texts); `None` when no text shares
/// a word with it. Ties go to the first.
pub fn most_similar(function: &LearnedFunction, texts: &[String]) -> Option<usize> {
    let engine = SearchEngineBuilder::<u32>::with_corpus(Language::English, texts).build();
    let results = engine.search(&searchable_text(function), None);
    let best = results
        .iter()
        .map(|result| result.score)
        .fold(0.0_f32, f32::max);
    results
        .iter()
        .filter(|result| result.score >= best && best > 0.0)
        .filter_map(|result| usize::try_from(result.document.id).ok())
        .min()
}
