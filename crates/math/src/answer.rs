//! The final answer of a MATH solution: the content of its last `\boxed{…}`.

/// Returns the final answer in `text`, reading every form Hendrycks' reference
/// `last_boxed_only_string` reads, at the last `\boxed` (or, when there is no
/// `\boxed` at all, the last `\fbox`):
/// - `\boxed{…}` / `\fbox{…}`: the content, braces matched by counting (as AG2 does,
///   so `\{` counts too);
/// - `\boxed …` (a space, then the answer, as in `$\boxed 2$`): the text after the
///   spaces up to the next `$` or line end, trimmed.
///
/// `None` when there is no box, when the command is followed by anything else
/// (`\boxed5`), or when its braces never close.
///
/// AG2 finds `\fbox{…}` but then fails to strip it and returns `None`, and does not
/// read the `\boxed …` form; here both give their content (two of the 7,500 records
/// of Hendrycks' training split end `$\boxed 2$`).
#[must_use]
pub fn get_answer(text: &str) -> Option<&str> {
    let (start, command) = ["\\boxed", "\\fbox"]
        .into_iter()
        .find_map(|command| text.rfind(command).map(|start| (start, command)))?;
    let after = &text[start + command.len()..];
    if let Some(braced) = after.strip_prefix('{') {
        return braced_content(braced);
    }
    if command == "\\boxed" && after.starts_with([' ', '\t']) {
        let end = after.find(['$', '\n']).unwrap_or(after.len());
        return Some(after[..end].trim());
    }
    None
}

/// The text before the `}` that closes an already opened `{`.
fn braced_content(after_brace: &str) -> Option<&str> {
    let mut depth = 1usize;
    for (offset, byte) in after_brace.bytes().enumerate() {
        match byte {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&after_brace[..offset]);
                }
            }
            _ => {}
        }
    }
    None
}
