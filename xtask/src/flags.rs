//! Value parsers of the bench commands' numeric flags: each refuses what would
//! silently mean something else, and clap's error names the flag and the value.

/// A count that must be at least 1 (`--train-size 0` would otherwise run nothing
/// and report it as a result).
///
/// # Errors
/// What is wrong with `text`.
pub fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(count) => Ok(count),
        Err(error) => Err(error.to_string()),
    }
}

/// An amount of money that must be a finite number above 0 (`NaN` or `inf` would
/// read as "no limit", a negative one as "already spent").
///
/// # Errors
/// What is wrong with `text`.
pub fn positive_amount(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(amount) if amount.is_finite() && amount > 0.0 => Ok(amount),
        Ok(_) => Err("must be a finite number above 0".to_owned()),
        Err(error) => Err(error.to_string()),
    }
}

/// A probability strictly between 0 and 1 (a significance level).
///
/// # Errors
/// What is wrong with `text`.
pub fn probability(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(level) if level > 0.0 && level < 1.0 => Ok(level),
        Ok(_) => Err("must be a number between 0 and 1 (exclusive)".to_owned()),
        Err(error) => Err(error.to_string()),
    }
}
