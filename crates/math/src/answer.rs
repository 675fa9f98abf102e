//! The final answer of a MATH solution: the content of its last `\boxed{…}`.

/// Returns the content of the last `\boxed{…}` in `text`, or of the last `\fbox{…}`
/// when there is no `\boxed` at all. Braces are matched by counting (as AG2 does, so
/// `\{` counts too). `None` when there is no box, when the last `\boxed` is not
/// directly followed by `{` (`\boxed 5`), or when its braces never close.
///
/// AG2 finds `\fbox{…}` but then fails to strip it and returns `None`; here the
/// fallback returns its content.
#[must_use]
pub fn get_answer(text: &str) -> Option<&str> {
    let (start, command) = ["\\boxed", "\\fbox"]
        .into_iter()
        .find_map(|command| text.rfind(command).map(|start| (start, command)))?;
    let after = text[start + command.len()..].strip_prefix('{')?;
    let mut depth = 1usize;
    for (offset, byte) in after.bytes().enumerate() {
        match byte {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&after[..offset]);
                }
            }
            _ => {}
        }
    }
    None
}
