//! Reading an optimizer prompt the way a scripted optimizer (a rule) does: the
//! text of a labelled section, and the function names in a list it shows.

/// The text of the section that starts with `label` and ends at the next `.` and
/// blank line (the end of the prompt when there is none); empty without `label`.
pub fn prompt_section<'a>(prompt: &'a str, label: &str) -> &'a str {
    let start = prompt
        .find(label)
        .map_or(prompt.len(), |at| at + label.len());
    let rest = &prompt[start..];
    &rest[..rest.find(".\n\n").unwrap_or(rest.len())]
}

/// The function names in a list as the prompt shows it (`[{"name":"…",…}]`).
pub fn listed_names(list: &str) -> Vec<String> {
    list.split("\"name\":\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect()
}
