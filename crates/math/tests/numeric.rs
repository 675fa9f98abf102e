//! The numeric evaluator and comparison rules.

use agentopt_math::{Number, NumericRule, compare_numbers, evaluate};
use num_rational::BigRational;

#[track_caller]
fn check_exact(answer: &str, numerator: i64, denominator: i64) {
    let expected = BigRational::new(numerator.into(), denominator.into());
    let value = evaluate(answer).map(|a| a.value);
    assert_eq!(
        value,
        Some(Number::Exact(expected)),
        "evaluating {answer:?}"
    );
}

#[track_caller]
fn check_approx(answer: &str, expected: f64) {
    match evaluate(answer).map(|a| a.value) {
        Some(Number::Approx(x)) => assert!((x - expected).abs() < 1e-12, "{answer:?} gave {x}"),
        other => panic!("{answer:?} gave {other:?}, expected about {expected}"),
    }
}

#[track_caller]
fn check_not_numeric(answer: &str) {
    assert_eq!(evaluate(answer), None, "evaluating {answer:?}");
}

#[test]
fn evaluates_integers_and_decimals_exactly() {
    check_exact("7", 7, 1);
    check_exact("7.0", 7, 1);
    check_exact("-2.0", -2, 1);
    check_exact("0.50", 1, 2);
    check_exact(".5", 1, 2);
    check_exact("6.72e-05", 21, 312_500);
    check_exact("1.5E3", 1500, 1);
}

#[test]
fn evaluates_fractions_exactly() {
    check_exact("\\frac{1}{2}", 1, 2);
    check_exact("\\dfrac{-4}{2}", -2, 1);
    check_exact("\\tfrac{3}{-6}", -1, 2);
    check_exact("-\\frac{4}{6}", -2, 3);
    check_exact("\\frac12", 1, 2);
    check_exact("1/2", 1, 2);
    check_exact("\\frac{1}{2}/3", 1, 6);
}

#[test]
fn evaluates_mixed_numbers() {
    check_exact("14\\frac{6}{7}", 104, 7);
    check_exact("-15\\frac{3}{5}", -78, 5);
    check_exact("6\\frac{1}{6}\\text{ feet}", 37, 6);
}

#[test]
fn strips_units_currency_and_separators() {
    check_exact("7\\%", 7, 1);
    check_exact("\\$7", 7, 1);
    check_exact("$7$", 7, 1);
    check_exact("1,000", 1000, 1);
    check_exact("-12,345.5", -24_691, 2);
    check_exact("\\$23{,}000", 23_000, 1);
    check_exact("1\\,000", 1000, 1);
    check_exact("30^\\circ", 30, 1);
    check_exact("x = 5", 5, 1);
    check_exact("5\\text{cm}", 5, 1);
    check_exact("2400 \\mbox{ cm}^2", 2400, 1);
    check_exact("7\\text{ hours}.", 7, 1);
    check_exact("1.85\\ \\text{USD}", 37, 20);
}

#[test]
fn evaluates_operations_powers_and_rational_roots_exactly() {
    check_exact("(1+2)\\cdot 3", 9, 1);
    check_exact("3\\times 4 - 2", 10, 1);
    check_exact("12 \\div 4 * 2", 6, 1);
    check_exact("2^{10}", 1024, 1);
    check_exact("2^10", 1024, 1);
    check_exact("2^{-3}", 1, 8);
    check_exact("-2^2", -4, 1);
    check_exact("2^3^2", 512, 1);
    check_exact("\\sqrt{\\frac{9}{4}}", 3, 2);
    check_exact("\\sqrt[3]{-27}", -3, 1);
    check_exact("8^{\\frac{2}{3}}", 4, 1);
    check_exact("2(3+4)", 14, 1);
    check_exact("10^{1000}/10^{999}", 10, 1);
}

#[test]
fn approximates_irrational_values() {
    check_approx("\\sqrt{2}", std::f64::consts::SQRT_2);
    check_approx("\\sqrt2", std::f64::consts::SQRT_2);
    check_approx("2\\sqrt{2}", 2.0 * std::f64::consts::SQRT_2);
    check_approx("\\frac{\\sqrt{2}}{2}", std::f64::consts::FRAC_1_SQRT_2);
    check_approx("\\pi", std::f64::consts::PI);
    check_approx("3\\pi", 3.0 * std::f64::consts::PI);
    check_approx("\\frac{\\pi}{2}", std::f64::consts::FRAC_PI_2);
    check_approx("2^{\\frac{1}{2}}", std::f64::consts::SQRT_2);
    check_approx("\\sqrt[3]{-2}", -(2f64.cbrt()));
}

#[test]
fn rejects_what_is_not_a_number() {
    for answer in [
        "",
        "x+1",
        "(1,2)",
        "1,2",
        "5,\\,-11",
        "\\infty",
        "\\frac{1}{0}",
        "\\sqrt{-4}",
        "2^{100000}",
        "\\text{5}",
        "1e",
        "e",
        "10^{1000000}",
        "0^{-1}",
        "(1",
        "\\frac{1}",
        "1.2.3",
        "\\sin x",
        "\\sqrt[0]{4}",
    ] {
        check_not_numeric(answer);
    }
}

#[track_caller]
fn check_compare(a: &str, b: &str, equal: bool, rule: NumericRule) {
    let (Some(x), Some(y)) = (evaluate(a), evaluate(b)) else {
        panic!("{a:?} or {b:?} is not numeric");
    };
    let comparison = compare_numbers(&x, &y);
    assert_eq!(
        (comparison.equal, comparison.rule),
        (equal, rule),
        "comparing {a:?} with {b:?}"
    );
}

#[test]
fn compares_rationals_exactly() {
    check_compare("7", "7.0", true, NumericRule::ExactRational);
    check_compare("0.5", "\\frac{1}{2}", true, NumericRule::ExactRational);
    check_compare("0.54", "0.5", false, NumericRule::ExactRational);
    check_compare("0.3", "\\frac{1}{3}", false, NumericRule::ExactRational);
    check_compare("7", "8", false, NumericRule::ExactRational);
}

#[test]
fn compares_approximations_within_tolerance() {
    check_compare("\\sqrt{8}", "2\\sqrt{2}", true, NumericRule::Tolerance);
    check_compare(
        "8^{\\frac{1}{3}}\\pi",
        "2\\pi",
        true,
        NumericRule::Tolerance,
    );
    check_compare("3", "\\pi", false, NumericRule::Tolerance);
    check_compare("1.4", "\\sqrt{2}", false, NumericRule::Tolerance);
}

#[test]
fn matches_rounded_decimals_with_enough_digits() {
    check_compare(
        "1.414",
        "\\sqrt{2}",
        true,
        NumericRule::RoundedDecimal { places: 3 },
    );
    check_compare(
        "\\sqrt{2}",
        "1.41",
        true,
        NumericRule::RoundedDecimal { places: 2 },
    );
    check_compare(
        "3.14",
        "\\pi",
        true,
        NumericRule::RoundedDecimal { places: 2 },
    );
    check_compare(
        "0.333",
        "\\frac13",
        true,
        NumericRule::RoundedDecimal { places: 3 },
    );
    check_compare("1.415", "\\sqrt{2}", false, NumericRule::Tolerance);
    // Two literals never round to each other.
    check_compare("0.333", "0.3333", false, NumericRule::ExactRational);
}
