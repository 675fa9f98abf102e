//! Configuration parsing: code, environment, OAI_CONFIG_LIST (good and malformed).

use std::collections::HashMap;
use std::io::Write;

use agentopt_llm::config::{load_config_list, parse_config_list};
use agentopt_llm::{ApiType, CallStyle, EndpointConfig, LlmError};

/// One line per endpoint: type, model, base URL, key present, api version, style,
/// lenient, context window; or the error message.
fn summary(result: Result<Vec<EndpointConfig>, LlmError>) -> String {
    match result {
        Ok(configs) => configs
            .iter()
            .map(|config| {
                format!(
                    "{:?} {} {} key={} version={:?} deployment={:?} {:?} lenient={} ctx={:?}",
                    config.api_type,
                    config.model,
                    config.base_url,
                    config.api_key.is_some(),
                    config.api_version,
                    config.deployment,
                    config.call_style,
                    config.lenient_tool_calls,
                    config.context_window,
                )
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Err(error) => format!("error: {error}"),
    }
}

fn check(input: &str, expected: &str) {
    assert_eq!(
        summary(parse_config_list("OAI_CONFIG_LIST", input)),
        expected,
        "input: {input}"
    );
}

#[test]
fn good_config_lists_parse() {
    check(
        r#"[{"model": "gpt-4o", "api_key": "sk-test-0123456789"}]"#,
        "OpenAi gpt-4o https://api.openai.com/v1 key=true version=None deployment=None Tools lenient=false ctx=None",
    );
    check(
        r#"[{"model": "qwen", "base_url": "http://127.0.0.1:8080/v1/", "api_type": "openai",
            "call_style": "functions", "lenient_tool_calls": true, "context_window": 4096}]"#,
        "OpenAi qwen http://127.0.0.1:8080/v1 key=false version=None deployment=None Functions lenient=true ctx=Some(4096)",
    );
    check(
        r#"[{"model": "gpt-4", "api_key": "azure-key-123", "base_url": "https://x.openai.azure.com",
            "api_type": "azure", "api_version": "2024-02-01"},
           {"model": "gpt-35", "api_key": "k2345", "base_url": "https://y.openai.azure.com",
            "api_type": "azure", "azure_deployment": "dep35", "tags": ["ignored"]}]"#,
        "Azure gpt-4 https://x.openai.azure.com key=true version=Some(\"2024-02-01\") deployment=Some(\"gpt-4\") Tools lenient=false ctx=None\n\
         Azure gpt-35 https://y.openai.azure.com key=true version=Some(\"2024-06-01\") deployment=Some(\"dep35\") Tools lenient=false ctx=None",
    );
    check("[]", "");
}

#[test]
fn malformed_config_lists_name_source_and_field() {
    check(
        "[{\"model\": \"gpt-4o\",\n  \"api_key\": }]",
        "error: OAI_CONFIG_LIST:2:14: invalid JSON: expected value at line 2 column 14",
    );
    check(
        r#"{"model": "gpt-4o"}"#,
        "error: OAI_CONFIG_LIST: field `(top level)`: expected a JSON list of endpoint \
         objects (got one object: wrap it in [ ])",
    );
    check(
        "\"gpt-4o\"",
        "error: OAI_CONFIG_LIST: field `(top level)`: expected a JSON list of endpoint objects",
    );
    check(
        r#"[{"api_key": "k"}]"#,
        "error: OAI_CONFIG_LIST: field `[0].model`: missing",
    );
    check(
        r#"[{"model": 4}]"#,
        "error: OAI_CONFIG_LIST: field `[0].model`: expected a string, got a number",
    );
    check(
        r#"[{"model": "m"}, {"model": "m", "api_type": "google"}]"#,
        "error: OAI_CONFIG_LIST: field `[1].api_type`: unsupported \"google\" (expected \"openai\" or \"azure\")",
    );
    check(
        r#"[{"model": "m", "api_type": "azure", "api_key": "k"}]"#,
        "error: OAI_CONFIG_LIST: field `[0].base_url`: required for api_type \"azure\"",
    );
    check(
        r#"[{"model": "m", "base_url": "ftp://x"}]"#,
        "error: OAI_CONFIG_LIST: field `[0].base_url`: \"ftp://x\" is not an http(s) URL",
    );
    check(
        r#"[{"model": "m", "api_key": "has space"}]"#,
        "error: OAI_CONFIG_LIST: field `[0].api_key`: contains whitespace or non-ASCII characters",
    );
    check(
        r#"[{"model": "m", "api_key": ["sk-secret-value-123"]}]"#,
        "error: OAI_CONFIG_LIST: field `[0].api_key`: expected a string, got a list",
    );
    check(
        r#"[{"model": "m", "context_window": -5}]"#,
        "error: OAI_CONFIG_LIST: field `[0].context_window`: expected a positive integer, got -5",
    );
    check(
        r#"[{"model": "m", "call_style": "both"}]"#,
        "error: OAI_CONFIG_LIST: field `[0].call_style`: unsupported \"both\" (expected \"tools\" or \"functions\")",
    );
}

fn no_env(_: &str) -> Option<String> {
    None
}

#[test]
fn config_list_from_file_with_model_filter() -> anyhow::Result<()> {
    let mut file = tempfile::NamedTempFile::new()?;
    write!(
        file,
        r#"[{{"model": "gpt-4o", "api_key": "k1234"}}, {{"model": "qwen", "base_url": "http://127.0.0.1:1/v1"}}]"#
    )?;
    let path = file.path().to_string_lossy().into_owned();
    let configs = load_config_list(&path, &["qwen"], no_env)?;
    assert_eq!(configs.len(), 1);
    assert_eq!(configs[0].model, "qwen");
    let all = load_config_list(&path, &[], no_env)?;
    assert_eq!(all.len(), 2);
    let none = load_config_list(&path, &["claude"], no_env).expect_err("filter leaves nothing");
    assert_eq!(
        none.to_string(),
        format!("{path}: no endpoint matches the model filter [\"claude\"]")
    );
    Ok(())
}

#[test]
fn config_list_from_env_var_json_or_path() -> anyhow::Result<()> {
    let env: HashMap<&str, String> = HashMap::from([(
        "OAI_CONFIG_LIST",
        r#"[{"model": "gpt-4o-mini", "api_key": "k1234"}]"#.to_owned(),
    )]);
    let configs = load_config_list("OAI_CONFIG_LIST", &[], |name| env.get(name).cloned())?;
    assert_eq!(configs[0].model, "gpt-4o-mini");

    let mut file = tempfile::NamedTempFile::new()?;
    write!(file, "[\n  {{\"model\": \"m\",, }}\n]")?;
    let path = file.path().to_string_lossy().into_owned();
    let env: HashMap<&str, String> = HashMap::from([("OAI_CONFIG_LIST", path.clone())]);
    let error = load_config_list("OAI_CONFIG_LIST", &[], |name| env.get(name).cloned())
        .expect_err("bad JSON");
    match error {
        LlmError::ConfigSyntax {
            source_name, line, ..
        } => {
            assert_eq!(source_name, path);
            assert_eq!(line, 2);
        }
        other => panic!("expected a syntax error, got {other}"),
    }
    Ok(())
}

#[test]
fn a_config_list_variable_holding_one_object_is_json_not_a_path() {
    let env: HashMap<&str, String> = HashMap::from([(
        "OAI_CONFIG_LIST",
        "  {\"model\": \"gpt-4o-mini\", \"api_key\": \"k1234\"}".to_owned(),
    )]);
    let error = load_config_list("OAI_CONFIG_LIST", &[], |name| env.get(name).cloned())
        .expect_err("an object is not a list");
    assert_eq!(
        error.to_string(),
        "$OAI_CONFIG_LIST: field `(top level)`: expected a JSON list of endpoint objects \
         (got one object: wrap it in [ ])"
    );
}

#[test]
fn missing_config_file_names_the_path() {
    let error =
        load_config_list("/nonexistent/OAI_CONFIG_LIST", &[], no_env).expect_err("missing file");
    assert!(
        error
            .to_string()
            .starts_with("cannot read /nonexistent/OAI_CONFIG_LIST: "),
        "{error}"
    );
}

#[test]
fn environment_selects_openai_or_azure() -> anyhow::Result<()> {
    let openai = HashMap::from([
        ("OPENAI_API_KEY", "sk-env-0123456789"),
        ("OPENAI_BASE_URL", "http://127.0.0.1:9/v1"),
    ]);
    let config = EndpointConfig::from_env_lookup("gpt-4o", |name| {
        openai.get(name).map(|v| (*v).to_owned())
    })?;
    assert_eq!(
        (config.api_type, config.base_url.as_str()),
        (ApiType::OpenAi, "http://127.0.0.1:9/v1")
    );

    let azure = HashMap::from([
        ("AZURE_OPENAI_API_KEY", "az-key-1"),
        ("AZURE_OPENAI_ENDPOINT", "https://r.openai.azure.com/"),
        ("AZURE_OPENAI_DEPLOYMENT", "prod-4o"),
        ("OPENAI_API_KEY", "sk-ignored-000000"),
    ]);
    let config =
        EndpointConfig::from_env_lookup("gpt-4o", |name| azure.get(name).map(|v| (*v).to_owned()))?;
    assert_eq!(config.api_type, ApiType::Azure);
    assert_eq!(config.base_url, "https://r.openai.azure.com");
    assert_eq!(config.deployment.as_deref(), Some("prod-4o"));
    assert_eq!(config.api_version.as_deref(), Some("2024-06-01"));
    assert_eq!(config.call_style, CallStyle::Tools);

    let error = EndpointConfig::from_env_lookup("gpt-4o", no_env).expect_err("no key");
    assert_eq!(
        error.to_string(),
        "environment: field `OPENAI_API_KEY`: not set (nor AZURE_OPENAI_API_KEY with AZURE_OPENAI_ENDPOINT)"
    );
    Ok(())
}
