//! MATH-benchmark utilities: fenced code-block extraction, `\boxed{}` answers and
//! answer equivalence (Hendrycks normalisation plus numeric equivalence).
//!
//! Pure: this crate does no I/O, starts no process and opens no socket.
