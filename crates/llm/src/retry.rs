//! Retry timing: exponential backoff with jitter, capped, honouring `Retry-After`.
//!
//! Two kinds of failure are retried, each against its own count: transient ones
//! (429, 5xx, connection faults, timeouts) up to [`RetryPolicy::max_attempts`], and
//! malformed replies (HTTP 200 whose body is not a readable completion: invalid
//! JSON, no `choices`) up to [`RetryPolicy::max_malformed_attempts`]. Separate
//! counts because a malformed reply is rarer and more often a server defect that a
//! long retry series will not fix, while rate limits deserve the patient series.

use std::time::{Duration, SystemTime};

use rand::Rng;

/// When and how often transient failures are retried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts while the failures are transient, the first included (1 disables
    /// retries): the call gives up at the `max_attempts`-th transient failure.
    pub max_attempts: u32,
    /// Attempts while the replies are malformed, the first included: the call gives
    /// up at the `max_malformed_attempts`-th malformed reply.
    pub max_malformed_attempts: u32,
    /// Delay before the first retry, before jitter.
    pub base_delay: Duration,
    /// Upper bound on any computed backoff.
    pub max_delay: Duration,
    /// Upper bound on a server-requested `Retry-After` wait.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            max_malformed_attempts: 3,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            max_malformed_attempts: 1,
            ..Self::default()
        }
    }

    /// The wait after failed attempt number `attempt` (1-based): the server's
    /// `Retry-After` when given (capped), else `base · 2^(attempt-1)` capped at
    /// `max_delay`, scaled by a random factor in [0.5, 1) so that clients that failed
    /// together do not retry together.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(wait) = retry_after {
            return wait.min(self.max_retry_after);
        }
        let exponent = attempt.saturating_sub(1).min(30);
        let backoff = self
            .base_delay
            .saturating_mul(1_u32 << exponent)
            .min(self.max_delay);
        backoff.mul_f64(rand::rng().random_range(0.5..1.0))
    }
}

/// Reads `retry-after-ms` (OpenAI) or `Retry-After` in seconds or as an HTTP date
/// (a date already past means now). Anything else is ignored: backoff applies then.
pub(crate) fn parse_retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    parse_retry_after_at(headers, SystemTime::now())
}

fn parse_retry_after_at(headers: &reqwest::header::HeaderMap, now: SystemTime) -> Option<Duration> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
    };
    let number = |name: &str| {
        text(name)
            .and_then(|text| text.parse::<f64>().ok())
            .filter(|value| value.is_finite() && *value >= 0.0)
    };
    let date = || {
        text("retry-after")
            .and_then(|text| httpdate::parse_http_date(text).ok())
            .map(|at| at.duration_since(now).unwrap_or_default())
    };
    number("retry-after-ms")
        .map(|ms| Duration::from_secs_f64(ms / 1000.0))
        .or_else(|| number("retry-after").map(Duration::from_secs_f64))
        .or_else(date)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use reqwest::header::{HeaderMap, HeaderValue};

    use super::parse_retry_after_at;

    fn wait(header: &str, value: &str, now: SystemTime) -> Option<Duration> {
        let mut headers = HeaderMap::new();
        if let (Ok(name), Ok(value)) = (
            reqwest::header::HeaderName::from_bytes(header.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(name, value);
        }
        parse_retry_after_at(&headers, now)
    }

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let in_90_s = httpdate::fmt_http_date(now + Duration::from_secs(90));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(90));
        for (header, value, expected) in [
            ("retry-after-ms", "250", Some(Duration::from_millis(250))),
            ("retry-after", "2", Some(Duration::from_secs(2))),
            ("retry-after", "1.5", Some(Duration::from_millis(1500))),
            ("retry-after", &in_90_s, Some(Duration::from_secs(90))),
            ("retry-after", &past, Some(Duration::ZERO)),
            ("retry-after", "soon", None),
            ("retry-after", "-3", None),
        ] {
            assert_eq!(wait(header, value, now), expected, "{header}: {value}");
        }
    }
}
