//! A user-defined [`Executor`] plugged into a [`UserProxyAgent`]: instead of a
//! sandboxed Python worker, code blocks run in a tiny restricted calculator that
//! understands `name = expression` and `print(expression)` over numbers, variables,
//! `+ - * / **` and parentheses, and nothing else.
//!
//! The model is the real OpenAI/Azure endpoint when `OPENAI_API_KEY` (or
//! `AZURE_OPENAI_API_KEY` with `AZURE_OPENAI_ENDPOINT`) is set; otherwise a scripted
//! OpenAI-compatible server on 127.0.0.1 plays the assistant, so the example runs
//! offline.
//!
//! ```sh
//! cargo run --example custom_executor
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use agentopt::agents::{AssistantAgent, UserProxyAgent};
use agentopt::llm::{ChatModel, ClientOptions, EndpointConfig, OpenAiClient};
use agentopt::sandbox::{
    CellOutcome, CellStatus, Executor, ExecutorFactory, LearnedFunction, Protections, SandboxError,
};
use agentopt_testkit::{Reply, ScriptedServer};
use async_trait::async_trait;
use serde_json::{Map, Value};

/// A calculator session: variables persist between cells, like a notebook.
#[derive(Default)]
struct Calculator {
    variables: HashMap<String, f64>,
}

impl Calculator {
    fn run(&mut self, code: &str) -> Result<String, String> {
        let mut stdout = String::new();
        for (number, line) in code.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = |error: String| format!("line {}: {error}", number + 1);
            if let Some(inner) = line
                .strip_prefix("print(")
                .and_then(|l| l.strip_suffix(')'))
            {
                let value = self.evaluate(inner).map_err(at)?;
                stdout.push_str(&format!("{value}\n"));
            } else if let Some((name, expression)) = line.split_once('=') {
                let name = name.trim();
                if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(at(format!("cannot assign to {name:?}")));
                }
                let value = self.evaluate(expression).map_err(at)?;
                self.variables.insert(name.to_owned(), value);
            } else {
                self.evaluate(line).map_err(at)?;
            }
        }
        Ok(stdout)
    }

    fn evaluate(&self, expression: &str) -> Result<f64, String> {
        let tokens: Vec<char> = expression.chars().filter(|c| !c.is_whitespace()).collect();
        let mut parser = Parser {
            tokens: &tokens,
            position: 0,
            variables: &self.variables,
        };
        let value = parser.sum()?;
        if parser.position != tokens.len() {
            return Err(format!("unexpected {:?}", tokens[parser.position]));
        }
        Ok(value)
    }
}

/// Recursive descent over `sum := product (('+'|'-') product)*`,
/// `product := power (('*'|'/') power)*`, `power := atom ('**' power)?`.
struct Parser<'a> {
    tokens: &'a [char],
    position: usize,
    variables: &'a HashMap<String, f64>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.tokens.get(self.position).copied()
    }

    fn sum(&mut self) -> Result<f64, String> {
        let mut value = self.product()?;
        while let Some(operator @ ('+' | '-')) = self.peek() {
            self.position += 1;
            let right = self.product()?;
            value = if operator == '+' {
                value + right
            } else {
                value - right
            };
        }
        Ok(value)
    }

    fn product(&mut self) -> Result<f64, String> {
        let mut value = self.power()?;
        while let Some(operator @ ('*' | '/')) = self.peek() {
            if self.tokens.get(self.position + 1) == Some(&'*') {
                break;
            }
            self.position += 1;
            let right = self.power()?;
            if operator == '/' && right == 0.0 {
                return Err("division by zero".to_owned());
            }
            value = if operator == '*' {
                value * right
            } else {
                value / right
            };
        }
        Ok(value)
    }

    fn power(&mut self) -> Result<f64, String> {
        let base = self.atom()?;
        if self.peek() == Some('*') && self.tokens.get(self.position + 1) == Some(&'*') {
            self.position += 2;
            return Ok(base.powf(self.power()?));
        }
        Ok(base)
    }

    fn atom(&mut self) -> Result<f64, String> {
        match self.peek() {
            Some('(') => {
                self.position += 1;
                let value = self.sum()?;
                if self.peek() != Some(')') {
                    return Err("missing ')'".to_owned());
                }
                self.position += 1;
                Ok(value)
            }
            Some('-') => {
                self.position += 1;
                Ok(-self.atom()?)
            }
            Some(c) if c.is_ascii_digit() || c == '.' => {
                let start = self.position;
                while self.peek().is_some_and(|c| c.is_ascii_digit() || c == '.') {
                    self.position += 1;
                }
                let text: String = self.tokens[start..self.position].iter().collect();
                text.parse().map_err(|_| format!("bad number {text:?}"))
            }
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                let start = self.position;
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    self.position += 1;
                }
                let name: String = self.tokens[start..self.position].iter().collect();
                self.variables
                    .get(&name)
                    .copied()
                    .ok_or_else(|| format!("name {name:?} is not defined"))
            }
            other => Err(format!("unexpected {other:?}")),
        }
    }
}

fn outcome(result: Result<String, String>, started: Instant) -> CellOutcome {
    let (stdout, status) = match result {
        Ok(stdout) => (stdout, CellStatus::Completed),
        Err(error) => (
            String::new(),
            CellStatus::Raised {
                traceback: format!("CalculatorError: {error}"),
            },
        ),
    };
    CellOutcome {
        stdout,
        stderr: String::new(),
        status,
        value: None,
        truncated: false,
        duration: started.elapsed(),
        state_lost: false,
        state_reset_before: false,
        code_calls: Default::default(),
        shadowed: Default::default(),
    }
}

#[async_trait]
impl Executor for Calculator {
    async fn run_cell(&mut self, code: &str) -> Result<CellOutcome, SandboxError> {
        let started = Instant::now();
        Ok(outcome(self.run(code), started))
    }

    async fn call_function(
        &mut self,
        function: &LearnedFunction,
        _arguments: &Map<String, Value>,
    ) -> Result<CellOutcome, SandboxError> {
        let started = Instant::now();
        Ok(outcome(
            Err(format!(
                "learned function {} needs Python; this executor only calculates",
                function.name
            )),
            started,
        ))
    }

    async fn restart(&mut self) -> Result<(), SandboxError> {
        self.variables.clear();
        Ok(())
    }

    fn protections(&self) -> Protections {
        // Nothing to protect against: the calculator cannot reach the system.
        Protections::default()
    }
}

/// Hands each conversation its own calculator.
struct Calculators;

#[async_trait]
impl ExecutorFactory for Calculators {
    async fn start(&self) -> Result<Box<dyn Executor>, SandboxError> {
        Ok(Box::new(Calculator::default()))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Offline unless an API key is configured: the scripted server stays alive
    // for the whole chat.
    let (endpoint, _server) = match EndpointConfig::from_env("gpt-4o-mini") {
        Ok(endpoint) => (endpoint, None),
        Err(_) => {
            println!("(no API key set: a scripted model plays the assistant)");
            let server = ScriptedServer::start([
                Reply::text("Let me compute it.\n```python\nside = 12\narea = side ** 2 / 2\nprint(area)\n```"),
                Reply::text("The area is 72. TERMINATE"),
            ])
            .await;
            (
                EndpointConfig::compatible(server.base_url(), "scripted"),
                Some(server),
            )
        }
    };
    let model: Arc<dyn ChatModel> =
        Arc::new(OpenAiClient::new(endpoint, ClientOptions::default())?);
    let mut assistant = AssistantAgent::new("assistant", model).with_system_message(
        "Solve arithmetic with ```python blocks that only assign numbers and print them \
         (operators + - * / ** and parentheses). Reply TERMINATE when done.",
    );
    let mut proxy = UserProxyAgent::new("calculator", Arc::new(Calculators))
        .configure(|agent| agent.with_termination(|message| message.text().contains("TERMINATE")));
    let transcript = proxy
        .initiate_chat(
            &mut assistant,
            "What is the area of a right isosceles triangle with legs of 12?",
        )
        .await;
    for entry in &transcript.entries {
        println!(
            "--- {} -> {}\n{}",
            entry.sender,
            entry.recipient,
            entry.message.text()
        );
    }
    println!("--- stopped: {:?}", transcript.stop_reason);
    Ok(())
}
