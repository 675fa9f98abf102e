//! `extract_code` and `infer_lang`.

use agentopt_math::{CodeBlock, Lang, extract_code, infer_lang};

/// Inputs covering every fence shape, shown with their blocks in one snapshot.
const FENCED_CASES: &[(&str, &str)] = &[
    ("tagged", "Try this:\n```python\nprint(1)\n```\nDone."),
    ("untagged", "```\nx = 1\n```"),
    ("tag with spaces", "``` python \nprint(2)\n```"),
    ("crlf", "```python\r\nprint(1)\r\nprint(2)\r\n```"),
    (
        "indented closing fence",
        "1. step\n   ```sh\n   ls -l\n   ```",
    ),
    (
        "several blocks",
        "```python\na = 1\n```\ntext\n```sh\necho hi\n```\n```js\nlet x;\n```",
    ),
    ("empty block", "```python\n\n```"),
    ("no block", "The answer is $\\boxed{4}$."),
    ("unclosed fence", "```python\nprint(1)"),
    ("inline only", "Run `pip install sympy` first."),
];

fn render(blocks: &[CodeBlock]) -> Vec<String> {
    blocks
        .iter()
        .map(|block| format!("{:?} {:?}", block.lang, block.code))
        .collect()
}

#[test]
fn extracts_fenced_blocks() {
    let results: Vec<(&str, Vec<String>)> = FENCED_CASES
        .iter()
        .map(|(name, text)| (*name, render(&extract_code(text, false))))
        .collect();
    insta::assert_debug_snapshot!(results);
}

#[test]
fn extracts_inline_spans_when_asked() {
    let results: Vec<(&str, Vec<String>)> = FENCED_CASES
        .iter()
        .chain(&[
            (
                "inline and fenced",
                "First `x = 1`, then:\n```python\nprint(x)\n```",
            ),
            ("inline padded", "` a + b `"),
        ])
        .map(|(name, text)| (*name, render(&extract_code(text, true))))
        .collect();
    insta::assert_debug_snapshot!(results);
}

#[track_caller]
fn check_lang(code: &str, expected: Lang) {
    assert_eq!(infer_lang(code), expected, "infer_lang({code:?})");
}

#[test]
fn infers_shell_from_command_prefixes() {
    check_lang("python script.py", Lang::Shell);
    check_lang("python3 -m pip list", Lang::Shell);
    check_lang("pip install numpy", Lang::Shell);
}

#[test]
fn infers_python_from_code_that_parses() {
    check_lang("print(1)", Lang::Python);
    check_lang("x = 5", Lang::Python);
    check_lang("", Lang::Python);
    check_lang(" \t", Lang::Python);
    check_lang("if x:\n    y = 1\n \t\n    z = 2\n", Lang::Python);
    check_lang("for i in range(3):\n    a, *b = i, 1\n", Lang::Python);
    check_lang("def f(x):\n    return x ** 2\n", Lang::Python);
    check_lang(
        "def f():\n    while x:\n        if y:\n            break\n    return 1\n",
        Lang::Python,
    );
    check_lang(
        "def f():\n    a = 1\n    def g():\n        nonlocal a\n",
        Lang::Python,
    );
    check_lang("match x:\n    case 1:\n        y = 2\n", Lang::Python);
}

#[test]
fn infers_unknown_for_text_that_is_not_python() {
    check_lang("The answer is 5.", Lang::Unknown);
    check_lang("def f(:", Lang::Unknown);
    check_lang("pythonic = 1 +", Lang::Unknown);
    check_lang("print(1)\0", Lang::Unknown);
    // CPython rejects these targets while parsing; so must we.
    check_lang("x + y + z = 0", Lang::Unknown);
    check_lang("AB=9, CD=4", Lang::Unknown);
    check_lang("1:4", Lang::Unknown);
    check_lang("x += 1\nf() += 1", Lang::Unknown);
    check_lang("del f()", Lang::Unknown);
    check_lang("with open(p) as f(): pass", Lang::Unknown);
    check_lang("if x:\n    1 = y\n", Lang::Unknown);
    // CPython's compiler also checks where these statements stand.
    check_lang("return 5", Lang::Unknown);
    check_lang("class C:\n    return 1\n", Lang::Unknown);
    check_lang("break", Lang::Unknown);
    check_lang(
        "for i in x:\n    pass\nelse:\n    continue\n",
        Lang::Unknown,
    );
    check_lang("nonlocal x", Lang::Unknown);
    check_lang("yield 1", Lang::Unknown);
    check_lang("*a", Lang::Unknown);
}

#[test]
fn lang_tags_map_to_languages() {
    for (tag, lang) in [
        ("", Lang::Untagged),
        ("python", Lang::Python),
        ("Python", Lang::Python),
        ("py", Lang::Python),
        ("bash", Lang::Shell),
        ("sh", Lang::Shell),
        ("js", Lang::Other("js".to_owned())),
    ] {
        assert_eq!(Lang::from_tag(tag), lang, "tag {tag:?}");
    }
    assert_eq!(Lang::Unknown.to_string(), "unknown");
    assert_eq!(Lang::Shell.as_str(), "sh");
}
