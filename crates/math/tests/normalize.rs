//! Every Hendrycks normalisation rule, in AG2's order, and `is_equiv`.

use agentopt_math::{MathError, is_equiv, normalize};

#[track_caller]
fn check(input: &str, expected: &str) {
    assert_eq!(
        normalize(input).as_deref(),
        Ok(expected),
        "normalising {input:?}"
    );
}

#[test]
fn drops_newlines() {
    check("1\n2", "12");
    check("\\frac{1}\n{2}", "\\frac{1}{2}");
}

#[test]
fn drops_negative_thin_spaces() {
    check("3\\!000", "3000");
}

#[test]
fn halves_double_backslashes() {
    check("\\\\frac{1}{2}", "\\frac{1}{2}");
}

#[test]
fn turns_tfrac_and_dfrac_into_frac() {
    check("\\tfrac{1}{3}", "\\frac{1}{3}");
    check("\\dfrac{2}{3}", "\\frac{2}{3}");
}

#[test]
fn drops_left_and_right() {
    check("\\left( 1, 2 \\right)", "(1,2)");
}

#[test]
fn drops_degrees() {
    check("90^\\circ", "90");
    check("90^{\\circ}", "90");
}

#[test]
fn drops_escaped_dollars() {
    check("\\$5", "5");
}

#[test]
fn drops_units_after_text_with_a_space() {
    check("5\\text{ cm}", "5");
    check("5\\text{cm}", "5\\text{cm}");
    assert_eq!(
        normalize("1\\text{ a}\\text{ b}"),
        Err(MathError::AmbiguousUnits {
            answer: "1\\text{ a}\\text{ b}".to_owned(),
            occurrences: 2
        })
    );
}

#[test]
fn drops_percent_signs() {
    check("50\\%", "50");
    check("50%", "50");
}

#[test]
fn adds_zero_before_bare_decimal_points() {
    check("1 + .5", "1+0.5");
    check("\\sqrt{.25}", "\\sqrt{0.25}");
    check(".25", "0.25");
}

#[test]
fn keeps_empty_answers_empty() {
    check("", "");
    check("\\$", "");
}

#[test]
fn drops_a_short_left_hand_side() {
    check("k = 7", "7");
    check("xy=7", "7");
    check("abc = 7", "abc=7");
    check("a = b = 7", "a=b=7");
}

#[test]
fn braces_sqrt_arguments() {
    check("\\sqrt3", "\\sqrt{3}");
    check("2\\sqrt{3}", "2\\sqrt{3}");
    check("\\sqrt3+\\sqrt{5}", "\\sqrt{3}+\\sqrt{5}");
    assert!(matches!(
        normalize("1+\\sqrt"),
        Err(MathError::DanglingCommand {
            command: "\\sqrt",
            ..
        })
    ));
}

#[test]
fn removes_spaces() {
    check("1 , 2", "1,2");
}

#[test]
fn braces_frac_arguments() {
    check("\\frac12", "\\frac{1}{2}");
    check("\\frac1{72}", "\\frac{1}{72}");
    check("\\frac1b", "\\frac{1}{b}");
    check("\\frac{72}1", "\\frac{72}1");
    check("\\frac1", "\\frac1");
    assert!(matches!(
        normalize("3\\frac"),
        Err(MathError::DanglingCommand {
            command: "\\frac",
            ..
        })
    ));
}

#[test]
fn writes_one_half_as_a_fraction() {
    check("0.5", "\\frac{1}{2}");
    check("0.50", "0.50");
}

#[test]
fn turns_integer_slashes_into_fractions() {
    check("3/4", "\\frac{3}{4}");
    check("-3/4", "\\frac{-3}{4}");
    check("03/4", "03/4");
    check("-0/4", "-0/4");
    check("x/4", "x/4");
    check("1/2/3", "1/2/3");
}

#[test]
fn applies_rules_in_order() {
    // `\$` goes before the leading-point rule, which goes before `0.5`.
    check("\\$.5", "\\frac{1}{2}");
    // The left-hand side is dropped before `\sqrt3` is braced and spaces go.
    check("x = \\sqrt3", "\\sqrt{3}");
    // `\\` is halved before `\left` is dropped.
    check("\\\\left(1\\\\right)", "(1)");
}

#[track_caller]
fn check_equiv(a: &str, b: &str, expected: bool) {
    assert_eq!(is_equiv(a, b), expected, "is_equiv({a:?}, {b:?})");
}

#[test]
fn is_equiv_compares_normalised_strings() {
    check_equiv("\\frac{1}{2}", "0.5", true);
    check_equiv("1/2", "\\dfrac{1}{2}", true);
    check_equiv("x = 3", "3", true);
    check_equiv("\\$7", "7", true);
    check_equiv("\\sqrt{8}", "2\\sqrt{2}", false);
    // AG2 scores these as different; `check_answer_numeric` does not.
    check_equiv("7.0", "7", false);
}

#[test]
fn is_equiv_compares_raw_strings_when_normalisation_fails() {
    check_equiv("5\\text{ a}\\text{ b}", "5\\text{ a}\\text{ b}", true);
    check_equiv("5\\text{ a}\\text{ b}", "5", false);
    check_equiv("\\sqrt", "\\sqrt", true);
}
