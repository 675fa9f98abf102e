//! LaTeX answers rewritten into the small language handed to sympy.

use agentopt_math::{SympyAnswer, latex_answer_to_sympy, latex_to_sympy};

#[test]
fn rewrites_latex_into_the_allowed_subset() {
    fn check(latex: &str, expected: Option<&str>) {
        assert_eq!(latex_to_sympy(latex).as_deref(), expected, "{latex}");
    }
    check("\\frac{1}{2}x", Some("((1)/(2))x"));
    check("\\dfrac12", Some("((1)/(2))"));
    check("2\\sqrt{2}", Some("2sqrt(2)"));
    check("\\sqrt[3]{x}", Some("root(x, 3)"));
    check("x^{2}+2xy", Some("x**(2)+2x*y"));
    check("\\pi r^2", Some(" pi  r**2"));
    check("\\left(\\sin x\\right)", Some("( sin  x)"));
    check("__import__('os')", None);
    check("\\input{x}", None);
    check("a = b", None);
    check("", None);
}

/// Brackets of a list or interval, then its items.
type Expected<'a> = Option<(Option<(char, char)>, &'a [&'a str])>;

#[test]
fn splits_bracketed_lists() {
    fn check(latex: &str, expected: Expected<'_>) {
        let expected = expected.map(|(brackets, items)| SympyAnswer {
            brackets,
            items: items.iter().map(|item| (*item).to_owned()).collect(),
        });
        assert_eq!(latex_answer_to_sympy(latex), expected, "{latex}");
    }
    check("[1, 3)", Some((Some(('[', ')')), &["1", " 3"])));
    check("$(x+1)$", Some((None, &["(x+1)"])));
    check(
        "(1, \\frac{1}{2})",
        Some((Some(('(', ')')), &["1", " ((1)/(2))"])),
    );
    // Names become products of single letters; anything else is refused.
    check("[1, os]", Some((Some(('[', ']')), &["1", " o*s"])));
    check("[1, \\input{x}]", None);
}

#[test]
fn deep_nesting_is_refused_not_recursed() {
    let nested = format!("{}1{}", "\\frac{".repeat(100_000), "}{2}".repeat(100_000));
    assert_eq!(latex_to_sympy(&nested), None);
    let shallow = format!("{}1{}", "\\sqrt{".repeat(3), "}".repeat(3));
    assert_eq!(
        latex_to_sympy(&shallow).as_deref(),
        Some("sqrt(sqrt(sqrt(1)))")
    );
}
