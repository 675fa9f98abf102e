//! Over the bundled CRAFT split of MATH: training answers survive normalisation and
//! numeric evaluation; numeric test answers match their integer/fraction renderings.

use agentopt_math::{
    AnswerVerdict, Number, Rule, check_answer_numeric, evaluate, is_equiv, normalize,
};
use num_rational::Ratio;

use crate::craft::{answers, data_dir};

/// The closest fraction with denominator at most 10^6 (continued fractions), as LaTeX.
fn fraction_rendering(value: f64) -> Option<String> {
    let ratio = Ratio::<i64>::approximate_float(value)?;
    let (numerator, denominator) = (*ratio.numer(), *ratio.denom());
    if denominator > 1_000_000 || (numerator as f64 / denominator as f64 - value).abs() > 1e-12 {
        return None;
    }
    Some(if denominator == 1 {
        numerator.to_string()
    } else {
        format!("\\frac{{{numerator}}}{{{denominator}}}")
    })
}

/// Normalisation succeeds on every training answer and the result is equivalent to
/// the answer, except where Hendrycks' `\\` → `\` rule is not idempotent (matrix row
/// separators `\\` next to a command, `\ ` spaces): a second pass halves again.
#[test]
fn training_answers_are_equivalent_to_their_normalisation() -> anyhow::Result<()> {
    let Some(dir) = data_dir() else { return Ok(()) };
    let records = answers(&dir.join("train"))?;
    assert_eq!(records.len(), 7500);
    let mut failures = Vec::new();
    let mut not_idempotent = 0;
    for (place, answer) in &records {
        let Some(answer) = answer.as_str() else {
            failures.push(format!("{place}: answer is not a string"));
            continue;
        };
        let normalized = match normalize(answer) {
            Ok(normalized) => normalized,
            Err(error) => {
                failures.push(format!("{place}: {error}"));
                continue;
            }
        };
        let equivalent = is_equiv(&normalized, answer)
            && check_answer_numeric(&normalized, answer).is_equivalent();
        if equivalent {
            continue;
        }
        let halved_twice = normalize(&normalized).is_ok_and(|twice| twice != normalized);
        if (answer.contains("\\\\") || answer.contains("\\ ")) && halved_twice {
            not_idempotent += 1;
        } else {
            failures.push(format!(
                "{place}: {answer:?} vs its normalisation {normalized:?}"
            ));
        }
    }
    println!("{not_idempotent} of 7500 training answers change on a second normalisation");
    assert_no_failures(&failures);
    Ok(())
}

/// Numeric training answers match a plain rendering of their own value.
#[test]
fn numeric_training_answers_match_their_values() -> anyhow::Result<()> {
    let Some(dir) = data_dir() else { return Ok(()) };
    let mut numeric = 0;
    let mut failures = Vec::new();
    for (place, answer) in answers(&dir.join("train"))? {
        let Some(answer) = answer.as_str() else {
            continue;
        };
        let Some(value) = evaluate(answer) else {
            continue;
        };
        numeric += 1;
        let rendering = match &value.value {
            Number::Exact(r) if r.is_integer() => r.to_string(),
            Number::Exact(r) => format!("\\frac{{{}}}{{{}}}", r.numer(), r.denom()),
            Number::Approx(x) => format!("{x:.12}"),
        };
        let verdict = check_answer_numeric(&rendering, answer);
        if !verdict.is_equivalent() {
            failures.push(format!("{place}: {answer:?} vs {rendering:?}: {verdict:?}"));
        }
    }
    println!("{numeric} of 7500 training answers are numeric");
    assert!(numeric > 4000, "only {numeric} numeric training answers");
    assert_no_failures(&failures);
    Ok(())
}

#[test]
fn numeric_test_answers_match_their_fraction_renderings() -> anyhow::Result<()> {
    let Some(dir) = data_dir() else { return Ok(()) };
    let records = answers(&dir)?;
    assert_eq!(records.len(), 3201);
    let mut failures = Vec::new();
    for (place, answer) in &records {
        let Some(value) = answer.as_f64() else {
            failures.push(format!("{place}: answer {answer} is not a number"));
            continue;
        };
        let reference = answer.to_string();
        let Some(rendering) = fraction_rendering(value) else {
            failures.push(format!("{place}: no fraction close to {value}"));
            continue;
        };
        for (candidate, against) in [(&rendering, &reference), (&reference, &rendering)] {
            let verdict = check_answer_numeric(candidate, against);
            if !matches!(
                verdict,
                AnswerVerdict::Equivalent(Rule::Numeric(_) | Rule::NormalizedString)
            ) {
                failures.push(format!(
                    "{place}: {candidate:?} vs {against:?}: {verdict:?}"
                ));
            }
        }
    }
    assert_no_failures(&failures);
    Ok(())
}

/// Fails with every collected failure listed, one per line.
fn assert_no_failures(failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
