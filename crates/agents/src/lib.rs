//! Conversable agents (assistant, user proxy, MATH user proxy) and the function
//! registry that maps function names to Rust closures or learned Python functions.
