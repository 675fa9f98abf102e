//! Arbitrary text never makes the crate panic, and basic laws hold on it.

use agentopt_math::{
    Lang, check_answer_numeric, evaluate, extract_code, get_answer, infer_lang, is_equiv,
    latex_answer_to_sympy, normalize,
};
use proptest::prelude::*;

/// Strings built from the pieces the rules react to, so that rules actually fire.
fn latexish() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "\\frac",
        "\\dfrac",
        "\\sqrt",
        "\\sqrt[",
        "{",
        "}",
        "[",
        "]",
        "(",
        ")",
        "1",
        "2",
        "0.5",
        ".",
        " .",
        "{.",
        "/",
        "-",
        "+",
        "^",
        "=",
        "x",
        "\\text{ ",
        "\\text{",
        "\\mbox{",
        "\\!",
        "\\\\",
        "\\left",
        "\\right",
        "^\\circ",
        "\\$",
        "\\%",
        "%",
        " ",
        "\n",
        "\r\n",
        "\\boxed{",
        "\\fbox{",
        "```",
        "```python\n",
        "`",
        "\t",
        "é",
        "\\pi",
        "\\cdot",
        ",",
        "{,}",
        "e",
        "E",
        "9999999999",
        "\u{1c}",
        "\0",
    ]);
    prop::collection::vec(pieces, 0..24).prop_map(|pieces| pieces.concat())
}

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), latexish()]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn answers_are_equivalent_to_themselves(text in any_text()) {
        prop_assert!(is_equiv(&text, &text));
        prop_assert!(check_answer_numeric(&text, &text).is_equivalent());
    }

    #[test]
    fn normalisation_and_evaluation_never_panic(a in any_text(), b in any_text()) {
        let normalized = normalize(&a);
        prop_assert_eq!(is_equiv(&a, &b), is_equiv(&b, &a));
        if let Ok(n) = normalized {
            prop_assert!(!n.contains(' ') && !n.contains('\n'));
        }
        if let Some(value) = evaluate(&a) {
            prop_assert!(value.value.to_f64().is_none_or(f64::is_finite));
        }
        let _ = check_answer_numeric(&a, &b);
    }

    #[test]
    fn answers_come_from_the_text(text in any_text()) {
        if let Some(answer) = get_answer(&text) {
            prop_assert!(text.contains(answer));
        }
    }

    #[test]
    fn code_extraction_never_panics(text in any_text()) {
        let blocks = extract_code(&text, false);
        prop_assert!(!blocks.is_empty());
        for block in extract_code(&text, true) {
            prop_assert!(text.contains(block.code.as_str()) || block.code.is_empty());
            prop_assert!(block.lang != Lang::Unknown);
        }
        let _ = infer_lang(&text);
    }

    #[test]
    fn sympy_rewriting_keeps_to_the_allowed_language(text in any_text()) {
        if let Some(answer) = latex_answer_to_sympy(&text) {
            for item in answer.items {
                prop_assert!(item.chars().all(|c| c.is_ascii_alphanumeric() || " +-*/().,".contains(c)), "{item:?}");
            }
        }
    }
}

#[test]
fn deeply_nested_input_is_handled() {
    for (open, close) in [("(", ")"), ("[", "]"), ("{", "}")] {
        let nested = format!("{}1{}", open.repeat(100_000), close.repeat(100_000));
        assert!(
            evaluate(&nested).is_none(),
            "{open}…{close} is too deep to evaluate"
        );
        assert!(check_answer_numeric(&nested, &nested).is_equivalent());
        assert_eq!(infer_lang(&nested), Lang::Unknown);
    }
    // CPython's limits: 200 brackets, 100 indents, operator chains of a few thousand.
    assert_eq!(
        infer_lang(&format!("{}1{}", "(".repeat(200), ")".repeat(200))),
        Lang::Python
    );
    assert_eq!(
        infer_lang(&format!("{}1{}", "(".repeat(201), ")".repeat(201))),
        Lang::Unknown
    );
    assert_eq!(infer_lang(&format!("{}1", "-".repeat(1000))), Lang::Python);
    assert_eq!(
        infer_lang(&format!("{}1", "-".repeat(100_000))),
        Lang::Unknown
    );
    assert_eq!(
        infer_lang(&format!("a{}", ".b".repeat(100_000))),
        Lang::Unknown
    );
    let indented: String = (0..101)
        .map(|i| format!("{}if x:\n", " ".repeat(i)))
        .collect();
    assert_eq!(
        infer_lang(&format!("{indented}{}pass\n", " ".repeat(101))),
        Lang::Unknown
    );
}
