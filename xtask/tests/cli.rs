use std::collections::HashMap;
use std::path::Path;

use agentopt_agents::FunctionStyle;
use agentopt_llm::Routing;
use agentopt_mathchat::{CraftSplit, DataFormat};
use agentopt_optimizer::ActionFormat;
use clap::Parser;
use xtask::bench_math::cli::{
    BenchArgs, EndpointSource, Endpoints, LocalModelArg, parse_price, resolve_endpoints, run_config,
};
use xtask::bench_math::run::load_problems;

#[derive(Parser)]
struct Command {
    #[command(flatten)]
    args: BenchArgs,
}

fn parse(flags: &[&str]) -> BenchArgs {
    let argv = std::iter::once("bench-math").chain(flags.iter().copied());
    Command::try_parse_from(argv).expect("flags parse").args
}

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
    move |name| map.get(name).cloned()
}

const CONFIG_LIST: &str = r#"[
  {"model": "gpt-4o-mini", "api_key": "sk-list-aaaaaaaaaaaaaaaa", "base_url": "https://list.example/v1"},
  {"model": "gpt-4o", "api_key": "sk-list-bbbbbbbbbbbbbbbb", "base_url": "https://other.example/v1"}
]"#;

fn source(endpoints: &Endpoints) -> EndpointSource {
    endpoints.source()
}

#[test]
fn endpoint_precedence() {
    let cwd = tempfile::tempdir().expect("temporary directory");
    let openai_env = [("OPENAI_API_KEY", "sk-env-cccccccccccccccccc")];
    let everything = [
        ("OPENAI_API_KEY", "sk-env-cccccccccccccccccc"),
        ("OAI_CONFIG_LIST", CONFIG_LIST),
        ("MY_KEY", "sk-flag-dddddddddddddddd"),
    ];

    // Nothing configured: the embedded local model.
    let chosen = resolve_endpoints(&parse(&[]), env(&[]), cwd.path()).expect("resolves");
    assert_eq!(chosen, Endpoints::Local(LocalModelArg::Qwen1_5b.model()));
    let chosen = resolve_endpoints(&parse(&["--local-model", "0.5b"]), env(&[]), cwd.path())
        .expect("resolves");
    assert_eq!(chosen, Endpoints::Local(LocalModelArg::Qwen0_5b.model()));

    // The environment beats the local model.
    let chosen = resolve_endpoints(&parse(&[]), env(&openai_env), cwd.path()).expect("resolves");
    assert_eq!(
        source(&chosen),
        EndpointSource::Environment {
            base_url: "https://api.openai.com/v1".to_owned()
        }
    );
    assert_eq!(
        chosen.model_names(),
        ("gpt-4o-mini".to_owned(), "gpt-4o-mini".to_owned())
    );

    // A config list beats the environment; --model filters it, --optimizer-model
    // picks its own entry.
    let args = parse(&["--model", "gpt-4o-mini", "--optimizer-model", "gpt-4o"]);
    let chosen = resolve_endpoints(&args, env(&everything), cwd.path()).expect("resolves");
    let Endpoints::Remote(remote) = &chosen else {
        panic!("expected a remote endpoint, got {chosen:?}");
    };
    assert_eq!(remote.agent[0].base_url, "https://list.example/v1");
    assert_eq!(
        remote.agent.len(),
        1,
        "only the entries of --model, tried in order"
    );
    assert_eq!(remote.optimizer[0].base_url, "https://other.example/v1");
    assert_eq!(remote.optimizer[0].model, "gpt-4o");
    assert_eq!(
        remote.source,
        EndpointSource::ConfigList {
            from: "OAI_CONFIG_LIST".to_owned(),
            base_url: "https://list.example/v1".to_owned()
        }
    );

    // Explicit flags beat everything.
    let args = parse(&[
        "--base-url",
        "http://127.0.0.1:9/v1",
        "--api-key-env",
        "MY_KEY",
        "--model",
        "m",
    ]);
    let chosen = resolve_endpoints(&args, env(&everything), cwd.path()).expect("resolves");
    let Endpoints::Remote(remote) = &chosen else {
        panic!("expected a remote endpoint, got {chosen:?}");
    };
    assert_eq!(remote.agent[0].base_url, "http://127.0.0.1:9/v1");
    assert_eq!(
        remote.agent[0]
            .api_key
            .as_ref()
            .map(|key| key.expose().to_owned()),
        Some("sk-flag-dddddddddddddddd".to_owned())
    );
    assert_eq!(chosen.model_names(), ("m".to_owned(), "m".to_owned()));
}

#[test]
fn repeated_base_urls_are_replicas_routed_as_asked() {
    let cwd = tempfile::tempdir().expect("temporary directory");
    let urls = ["http://10.0.0.1:8000/v1", "http://10.0.0.2:8000/v1"];
    let flags = |routing: &[&'static str]| {
        let mut flags = vec!["--base-url", urls[0], "--base-url", urls[1], "--model", "m"];
        flags.extend_from_slice(routing);
        resolve_endpoints(&parse(&flags), env(&[]), cwd.path()).expect("resolves")
    };
    for (chosen, routing) in [
        (flags(&[]), Routing::Fallback),
        (flags(&["--routing", "spread"]), Routing::Spread),
    ] {
        let Endpoints::Remote(remote) = &chosen else {
            panic!("expected remote endpoints, got {chosen:?}");
        };
        assert_eq!(remote.routing, routing);
        let bases = |entries: &[agentopt_llm::EndpointConfig]| {
            entries
                .iter()
                .map(|e| e.base_url.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(bases(&remote.agent), urls);
        assert_eq!(bases(&remote.optimizer), urls);
    }
    let bad = Command::try_parse_from(["bench-math", "--routing", "round-robin"]);
    let message = bad.err().expect("unknown routing is refused").to_string();
    assert!(message.contains("round-robin"), "{message}");
}

#[test]
fn config_list_file_in_the_working_directory() {
    let cwd = tempfile::tempdir().expect("temporary directory");
    std::fs::write(cwd.path().join("OAI_CONFIG_LIST"), CONFIG_LIST).expect("write list");
    let chosen =
        resolve_endpoints(&parse(&["--model", "gpt-4o"]), env(&[]), cwd.path()).expect("resolves");
    assert_eq!(
        chosen.model_names(),
        ("gpt-4o".to_owned(), "gpt-4o".to_owned())
    );

    let error = resolve_endpoints(&parse(&["--model", "o1"]), env(&[]), cwd.path())
        .expect_err("no entry for o1");
    assert!(error.to_string().contains("o1"), "{error}");
}

#[test]
fn endpoint_errors_name_their_source() {
    let cwd = tempfile::tempdir().expect("temporary directory");
    let args = parse(&[
        "--base-url",
        "http://127.0.0.1:9/v1",
        "--api-key-env",
        "UNSET_KEY",
    ]);
    let error = resolve_endpoints(&args, env(&[]), cwd.path()).expect_err("key variable unset");
    assert!(error.to_string().contains("UNSET_KEY"), "{error}");

    let args = parse(&["--oai-config-list", "missing-list.json"]);
    let error = resolve_endpoints(&args, env(&[]), cwd.path()).expect_err("no such file");
    assert!(error.to_string().contains("missing-list.json"), "{error}");
}

#[test]
fn presets_and_overrides() {
    let workspace = Path::new("/ws");
    let local = Endpoints::Local(LocalModelArg::Qwen1_5b.model());

    let config = run_config(&parse(&[]), &local, workspace);
    assert_eq!(
        (
            config.train.selection.count,
            config.test.selection.count,
            config.trainer.epochs,
            config.trainer.max_actions_per_step
        ),
        (Some(4), Some(15), 2, 1)
    );
    for data in [&config.train, &config.test] {
        assert_eq!(data.selection.subjects, ["algebra", "prealgebra"]);
        assert_eq!(
            data.selection.levels,
            [2, 3],
            "where the 1.5B model is sometimes right"
        );
        assert_eq!(data.selection.shuffle_seed, Some(0));
    }
    assert_eq!(config.trainer.concurrency, agentopt_local::DEFAULT_PARALLEL);
    assert_eq!(
        config.task.max_reply_tokens,
        Some(768),
        "a small local model is capped"
    );
    assert_eq!(config.task.max_turns, Some(4));
    assert_eq!(
        config.trainer.optimizer.action_format,
        ActionFormat::JsonSchema,
        "a small local model states actions as schema-constrained JSON"
    );
    assert!(config.trainer.optimizer.require_action);
    assert_eq!(
        config.task.sampling_seed,
        Some(0),
        "a local run repeats exactly"
    );
    assert_eq!(config.task.function_style, FunctionStyle::Tools);
    assert_eq!(config.train.path, Path::new("/ws/data/math-craft"));
    assert_eq!(config.train.craft_split, Some(CraftSplit::Train));
    assert_eq!(config.test.path, Path::new("/ws/data/math-craft"));
    assert_eq!(config.test.craft_split, Some(CraftSplit::Test));
    assert_eq!(config.train.format, DataFormat::Craft);
    assert!(config.cache);

    let config = run_config(&parse(&["--preset", "seed"]), &local, workspace);
    assert_eq!(
        (
            config.train.craft_split,
            &config.train.selection.subjects[..]
        ),
        (Some(CraftSplit::Train), &["algebra".to_owned()][..]),
        "the seed notebook's data, in file order"
    );
    assert!(config.train.selection.levels.is_empty());
    assert_eq!(config.train.selection.shuffle_seed, None);
    assert_eq!(
        (
            config.train.selection.count,
            config.test.selection.count,
            config.trainer.epochs,
            config.trainer.max_actions_per_step
        ),
        (Some(10), Some(10), 10, 3)
    );

    let args = parse(&[
        "--preset",
        "seed",
        "--epochs",
        "4",
        "--train-size",
        "6",
        "--validation-size",
        "2",
        "--subject",
        "algebra,Number Theory",
        "--level",
        "1,2",
        "--sample-seed",
        "9",
        "--no-cache",
        "--concurrency",
        "8",
        "--patience",
        "2",
        "--optimizer-actions",
        "tool-calls",
        "--require-action",
        "false",
        "--sampling-seed",
        "7",
    ]);
    let config = run_config(&args, &local, workspace);
    assert_eq!(config.trainer.epochs, 4);
    assert_eq!(
        config.train.selection.count,
        Some(8),
        "training plus held-out validation problems"
    );
    assert_eq!(config.train.path, Path::new("/ws/data/math-craft"));
    assert_eq!(
        config.train.selection.subjects,
        ["algebra", "number_theory"]
    );
    assert_eq!(config.train.selection.levels, [1, 2]);
    assert_eq!(config.train.selection.shuffle_seed, Some(9));
    assert_eq!(config.trainer.concurrency, 8);
    assert_eq!(config.trainer.optimizer.patience, Some(2));
    assert_eq!(
        config.trainer.optimizer.action_format,
        ActionFormat::ToolCalls
    );
    assert!(!config.trainer.optimizer.require_action);
    assert_eq!(config.task.sampling_seed, Some(7));
    assert!(!config.cache);

    let config = run_config(
        &parse(&[
            "--subject",
            "all",
            "--test-data",
            "/m500/test.jsonl",
            "--format",
            "math500",
        ]),
        &local,
        workspace,
    );
    assert!(config.train.selection.subjects.is_empty());
    assert_eq!(config.test.path, Path::new("/m500/test.jsonl"));
    assert_eq!(config.test.craft_split, None, "a user's file is read whole");
    assert_eq!(config.test.format, DataFormat::Math500);
    assert_eq!(
        (
            config.test.selection.shuffle_seed,
            config.test.selection.levels.len()
        ),
        (None, 0),
        "a user's file is taken as it is"
    );

    let cwd = tempfile::tempdir().expect("temporary directory");
    let remote = resolve_endpoints(
        &parse(&[]),
        env(&[("OPENAI_API_KEY", "sk-env-cccccccccccccccccc")]),
        cwd.path(),
    )
    .expect("resolves");
    let config = run_config(&parse(&[]), &remote, workspace);
    assert_eq!(
        (
            config.trainer.concurrency,
            config.task.max_reply_tokens,
            config.task.max_turns,
            config.trainer.optimizer.action_format,
            config.trainer.optimizer.require_action,
            config.task.sampling_seed
        ),
        (4, None, None, ActionFormat::ToolCalls, false, None)
    );
    assert_eq!(
        config.task.function_style,
        FunctionStyle::Tools,
        "AG2's way"
    );
}

#[test]
fn bad_flags_are_rejected() {
    let argv = |flags: &[&str]| {
        Command::try_parse_from(std::iter::once("bench-math").chain(flags.iter().copied()))
            .map(|_| ())
    };
    assert!(argv(&["--level", "6"]).is_err());
    assert!(argv(&["--resume"]).is_err(), "--resume needs --run-dir");
    assert!(argv(&["--resume", "--run-dir", "runs/x"]).is_ok());
    assert!(argv(&["--preset", "huge"]).is_err());
    // Zero would silently run nothing: refused by name. (--epochs 0 tests the
    // functions of --functions; without it the run refuses it before it starts.)
    for flag in [
        "--train-size",
        "--test-size",
        "--max-actions-per-step",
        "--concurrency",
    ] {
        let error = argv(&[flag, "0"]).expect_err(flag).to_string();
        assert!(error.contains(flag), "{flag}: {error}");
    }
    assert!(
        argv(&["--context-window", "100"]).is_err(),
        "too small to hold a prompt"
    );
    assert!(argv(&["--context-window", "8192"]).is_ok());
}

#[test]
fn prices() {
    let check = |text: &str, expected: Result<(&str, f64, f64), &str>| {
        let parsed = parse_price(text).map(|price| {
            (
                price.model,
                price.prompt_per_million,
                price.completion_per_million,
            )
        });
        match expected {
            Ok((model, prompt, completion)) => {
                assert_eq!(parsed, Ok((model.to_owned(), prompt, completion)), "{text}");
            }
            Err(message) => {
                let error = parsed.expect_err(text);
                assert!(error.contains(message), "{text}: {error}");
            }
        }
    };
    check("gpt-4o-mini=0.15:0.6", Ok(("gpt-4o-mini", 0.15, 0.6)));
    check(" gpt-4o = 2.5 : 10 ", Ok(("gpt-4o", 2.5, 10.0)));
    check("gpt-4o", Err("expected MODEL=PROMPT:COMPLETION"));
    check("gpt-4o=2.5", Err("expected PROMPT:COMPLETION"));
    check("gpt-4o=-1:2", Err("\"-1\" is not a non-negative number"));
    check("gpt-4o=1:x", Err("\"x\" is not a non-negative number"));
    check("=1:2", Err("the model name is empty"));

    let args = parse(&["--price", "a=1:2", "--price", "b=3:4"]);
    let config = run_config(
        &args,
        &Endpoints::Local(LocalModelArg::Qwen0_5b.model()),
        Path::new("/ws"),
    );
    assert_eq!(config.prices.len(), 2);
    assert_eq!(config.prices[1].model, "b");
    let text = serde_json::to_string(&config.endpoint).expect("serialises");
    assert_eq!(text, r#"{"source":"local","model":"0.5b"}"#);
}

/// Every preset, with one subject or several, draws its test problems from the
/// bundled test files only and its training problems from the training files only,
/// and no test problem's text is a training problem's.
#[test]
fn every_preset_tests_on_test_files_only() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace holds xtask");
    let local = Endpoints::Local(LocalModelArg::Qwen1_5b.model());
    let normalized = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
    for flags in [
        &["--preset", "quick"][..],
        &["--preset", "seed"],
        &["--preset", "smoke"],
        &[
            "--subject",
            "counting_and_probability,number_theory",
            "--level",
            "2,3,4",
        ],
        &["--subject", "all", "--test-size", "40"],
    ] {
        let config = run_config(&parse(flags), &local, workspace);
        let problems = load_problems(&config).expect("the bundled data loads");
        assert!(!problems.test.is_empty(), "{flags:?}");
        for problem in &problems.test {
            assert!(
                !problem.id.starts_with("train/"),
                "{flags:?}: {}",
                problem.id
            );
        }
        for problem in problems.train.iter().chain(&problems.validation) {
            assert!(
                problem.id.starts_with("train/"),
                "{flags:?}: {}",
                problem.id
            );
        }
        let trained: std::collections::HashSet<String> = problems
            .train
            .iter()
            .map(|problem| normalized(&problem.question))
            .collect();
        assert!(
            problems
                .test
                .iter()
                .all(|problem| !trained.contains(&normalized(&problem.question))),
            "{flags:?}"
        );
    }
}

#[test]
fn learned_use_flags_reach_the_config_and_are_off_by_default() {
    let workspace = Path::new("/ws");
    let local = Endpoints::Local(LocalModelArg::Qwen1_5b.model());
    let config = run_config(&parse(&[]), &local, workspace);
    assert_eq!(
        (
            &config.task.reply_prefill,
            config.task.demonstrations,
            config.trainer.retrieval_k,
            config.trainer.bootstrap_demonstrations,
            config.trainer.forced_call_demonstrations || config.trainer.force_call,
            &config.trainer.optimizer.learned_use,
        ),
        (
            &None,
            agentopt_agents::DemonstrationPlacement::Off,
            None,
            0,
            false,
            &agentopt_optimizer::LearnedUseOptions::default()
        ),
        "AG2's behaviour unless asked"
    );
    let args = parse(&[
        "--reply-prefill",
        "```python\\n",
        "--demonstrations",
        "first-message",
        "--execution-checks",
        "--use-statistics",
        "--prune-unused-after",
        "2",
        "--retrieve",
        "--from-what-worked",
        "--bootstrap-demonstrations",
        "2",
        "--forced-call-demonstrations",
        "--force-call",
    ]);
    let matches = {
        use clap::CommandFactory;
        Command::command()
            .try_get_matches_from(["bench-math", "--retrieve", "--execution-checks"])
            .expect("flags parse")
    };
    assert_eq!(
        xtask::bench_math::cli::run_shaping_flags(&matches),
        ["--execution-checks", "--retrieve"],
        "--resume must not take them silently"
    );
    let config = run_config(&args, &local, workspace);
    let prefill = config.task.reply_prefill.clone().expect("prefill set");
    assert_eq!(
        (prefill.text.as_str(), prefill.every_reply),
        ("```python\n", false)
    );
    assert_eq!(config.task.demonstrations.to_string(), "first-message");
    assert_eq!(
        config.trainer.retrieval_k,
        Some(3),
        "--retrieve alone offers 3"
    );
    assert_eq!(config.trainer.bootstrap_demonstrations, 2);
    assert!(config.trainer.forced_call_demonstrations && config.trainer.force_call);
    let optimizer = &config.trainer.optimizer.learned_use;
    assert!(
        optimizer.demonstrations
            && optimizer.execution_checks
            && optimizer.use_statistics
            && optimizer.from_what_worked
    );
    assert_eq!(optimizer.prune_unused_after, Some(2));
    let config = run_config(&parse(&["--retrieve", "5"]), &local, workspace);
    assert_eq!(config.trainer.retrieval_k, Some(5));
}

/// Every numeric flag refuses what would silently mean something else (`NaN` or
/// `inf` as "no limit", a negative budget as "already spent", 0 tokens or turns);
/// the error names the flag and the value, at parse time, before anything exists.
#[test]
fn numeric_flags_are_validated_naming_flag_and_value() {
    for (flag, value) in [
        ("--budget-usd", "NaN"),
        ("--budget-usd", "nan"),
        ("--budget-usd", "inf"),
        ("--budget-usd", "-inf"),
        ("--budget-usd", "-1"),
        ("--budget-usd", "0"),
        ("--budget-usd", "five"),
        ("--budget-tokens", "0"),
        ("--budget-tokens", "-3"),
        ("--significance", "0"),
        ("--significance", "1"),
        ("--significance", "NaN"),
        ("--significance", "1.5"),
        ("--max-reply-tokens", "0"),
        ("--max-turns", "0"),
        ("--train-size", "0"),
        ("--test-size", "0"),
        ("--concurrency", "0"),
        ("--context-window", "100"),
    ] {
        let joined = format!("{flag}={value}");
        let argv = ["bench-math", joined.as_str()];
        let error = match Command::try_parse_from(argv) {
            Ok(parsed) => panic!("{joined} accepted as {:?}", parsed.args),
            Err(error) => error.to_string(),
        };
        assert!(
            error.contains(&format!("invalid value '{value}' for '{flag}")),
            "{joined}: {error}"
        );
    }
    let args = parse(&["--budget-usd", "0.05", "--significance", "0.1"]);
    assert_eq!((args.budget_usd, args.significance), (Some(0.05), 0.1));
}

/// An unknown subject with the bundled data reads every file of the split, so the
/// error names the real subjects (not a missing `nonsense.jsonl`); a known one reads
/// just its own file.
#[test]
fn an_unknown_bundled_subject_is_read_from_every_file() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let args = parse(&[
        "--base-url",
        "http://127.0.0.1:9/v1",
        "--subject",
        "nonsense",
    ]);
    let cwd = tempfile::tempdir().expect("temporary directory");
    let endpoints = resolve_endpoints(&args, env(&[]), cwd.path()).expect("resolves");
    let config = run_config(&args, &endpoints, &workspace);
    let error = match load_problems(&config) {
        Ok(_) => panic!("an unknown subject loads"),
        Err(error) => format!("{error:#}"),
    };
    assert!(
        error.contains("nonsense") && error.contains("number_theory"),
        "the real subjects are named: {error}"
    );
    let algebra = run_config(&parse(&["--subject", "algebra"]), &endpoints, &workspace);
    let problems = load_problems(&algebra).expect("the bundled data loads");
    assert!(
        problems
            .test
            .iter()
            .all(|problem| problem.id.starts_with("algebra.jsonl:")),
        "only the algebra file is read"
    );
}

/// `--resume` warns about every flag under the Data, Training and Learned-function use
/// headings, and about
/// no other: each is given alone (with a value its parser accepts) and must be the
/// one reported, also when its value equals the default.
#[test]
fn every_data_and_training_flag_shapes_the_run() {
    use clap::CommandFactory;
    use xtask::bench_math::cli::{RUN_SHAPING_HEADINGS, run_shaping_flags};
    let command = Command::command();
    let mut checked = 0;
    for arg in command.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        let flag = format!("--{long}");
        let mut argv = vec!["bench-math".to_owned(), flag.clone()];
        if long == "resume" {
            argv.extend(["--run-dir".to_owned(), "runs/x".to_owned()]);
        }
        // A value the flag's parser accepts: its default, a listed value, else a sample.
        let mut values: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|value| value.to_string_lossy().into_owned())
            .chain(
                arg.get_possible_values()
                    .iter()
                    .map(|v| v.get_name().to_owned()),
            )
            .collect();
        values.extend(["1", "1024", "json-schema", "m=1:2"].map(str::to_owned));
        if !arg.get_action().takes_values() {
            values = vec![String::new()];
        }
        let matches = values
            .iter()
            .find_map(|value| {
                let mut with_value = argv.clone();
                with_value.extend((!value.is_empty()).then(|| value.clone()));
                Command::command().try_get_matches_from(with_value).ok()
            })
            .unwrap_or_else(|| panic!("no sample value parses for {flag}"));
        let shaping = arg
            .get_help_heading()
            .is_some_and(|heading| RUN_SHAPING_HEADINGS.contains(&heading));
        let expected = if shaping {
            vec![flag.clone()]
        } else {
            Vec::new()
        };
        assert_eq!(run_shaping_flags(&matches), expected, "{flag}");
        checked += usize::from(shaping);
    }
    assert!(checked >= 22, "only {checked} run-shaping flags found");
    let none = Command::command()
        .try_get_matches_from(["bench-math", "--concurrency", "3", "--budget-usd", "1"])
        .expect("flags parse");
    assert!(run_shaping_flags(&none).is_empty());
}
