"""agentopt as a drop-in for AG2 users: every config AG2 accepts works, llm_config
is read as AG2 reads it, the classes look and behave like AG2's, and the optimizer's
work is visible (usage, logs)."""

import inspect
import json
import logging
import warnings

import pytest

import agentopt
from conftest import OPTIMIZER_MODEL
from seed_notebook import make_agents, solve_all, train
from test_agent_optimizer import MULTIPLY, PROBLEMS, add_function, math_script, offered_names


def unreported_window_script(optimizer_replies, model="scripted"):
    """A server that, like most hosted APIs, reports no context window, serving a
    model outside agentopt's table."""
    script = math_script(optimizer_replies)
    script["model"] = model
    script["report_context_window"] = False
    return script


def optimizer_requests(server):
    return [r for r in server.requests() if any(t["function"]["name"] == "add_function" for t in r.get("tools", []))]


def test_the_seed_loop_runs_on_a_server_without_a_context_window(scripted_server):
    server = scripted_server(unreported_window_script([{"tool_calls": [add_function(MULTIPLY)]}, {"text": "TERMINATE"}]))
    config = server.llm_config(model="scripted")
    assistant, user_proxy = make_agents(config)
    optimizer = agentopt.AgentOptimizer(max_actions_per_step=1, llm_config=config, optimizer_model="scripted")

    with pytest.warns(UserWarning, match="assuming 32768 tokens"):
        train(optimizer, user_proxy, assistant, PROBLEMS, epochs=2)

    assert solve_all(user_proxy, assistant, PROBLEMS) == 1
    assert offered_names(assistant) == ["multiply"]


def test_the_context_window_is_learned_from_an_overflow_error(scripted_server):
    overflow = {"status": 400, "body": json.dumps({"error": {
        "message": "This model's maximum context length is 8192 tokens. However, your messages resulted in 40000 tokens.",
        "type": "invalid_request_error", "code": "context_length_exceeded"}})}
    server = scripted_server(unreported_window_script([overflow, {"text": "TERMINATE"}]))
    optimizer = agentopt.AgentOptimizer(1, server.llm_config(model="scripted"), "scripted")
    optimizer.record_one_conversation([{"role": "user", "content": "hi"}], is_satisfied=True)

    with pytest.warns(UserWarning) as caught:
        optimizer.step()

    assert any("the server states 8192 tokens" in str(w.message) for w in caught)
    assert len(optimizer_requests(server)) == 2  # the step ran again with prompts that fit
    assert optimizer.best_performance == 1.0


def test_context_window_option_still_sets_it_without_a_warning(scripted_server):
    server = scripted_server(unreported_window_script([{"text": "TERMINATE"}]))
    optimizer = agentopt.AgentOptimizer(1, server.llm_config(model="scripted"), "scripted", context_window=8192)
    optimizer.record_one_conversation([{"role": "user", "content": "hi"}], is_satisfied=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        optimizer.step()
    assert optimizer.best_performance == 1.0


def test_a_keyless_entry_takes_the_key_from_the_environment(scripted_server, monkeypatch):
    server = scripted_server(math_script([{"text": "TERMINATE"}]))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-environment")
    optimizer = agentopt.AgentOptimizer(1, {"config_list": [{"model": OPTIMIZER_MODEL, "base_url": server.base_url}]})
    optimizer.record_one_conversation([{"role": "user", "content": "hi"}], is_satisfied=True)
    optimizer.step()
    assert server.logged()[0]["headers"]["authorization"] == "Bearer sk-from-the-environment"


def test_a_keyless_azure_entry_takes_azure_openai_api_key(scripted_server, monkeypatch):
    server = scripted_server(math_script([{"text": "TERMINATE"}]))
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "azure-from-the-environment")
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", server.base_url[: -len("/v1")])
    optimizer = agentopt.AgentOptimizer(1, {"config_list": [{"model": OPTIMIZER_MODEL, "api_type": "azure"}]})
    optimizer.record_one_conversation([{"role": "user", "content": "hi"}], is_satisfied=True)
    optimizer.step()
    (request,) = server.logged()
    assert request["headers"]["api-key"] == "azure-from-the-environment"
    assert request["path"] == f"/openai/deployments/{OPTIMIZER_MODEL}/chat/completions"


def test_llm_config_keys_take_effect_as_in_ag2(scripted_server):
    server = scripted_server(math_script([{"text": "TERMINATE"}]))
    config = {
        "config_list": [{"model": OPTIMIZER_MODEL, "api_key": "k", "base_url": server.base_url,
                         "price": [0.01, 0.03], "default_headers": {"X-Team": "math"}}],
        "max_tokens": 321, "temperature": 0.25, "seed": 7, "cache_seed": None,
    }
    optimizer = agentopt.AgentOptimizer(1, config)
    optimizer.record_one_conversation([{"role": "user", "content": "hi"}], is_satisfied=True)
    optimizer.step()
    (request,) = server.logged()
    assert request["headers"]["x-team"] == "math"
    body = request["body"]
    assert (body["temperature"], body["seed"], body["max_tokens"]) == (0.25, 7, 321)
    usage = optimizer.usage["usage_excluding_cached_inference"]
    # The scripted server reports 10 prompt and 5 completion tokens per reply.
    assert usage["total_cost"] == pytest.approx((10 * 0.01 + 5 * 0.03) / 1000)
    assert usage[OPTIMIZER_MODEL]["total_tokens"] == 15


def test_timeout_limits_each_request(scripted_server):
    server = scripted_server(math_script([{"text": "TERMINATE", "delay_ms": 3000}, {"text": "TERMINATE"}]))
    config = dict(server.llm_config(), timeout=0.5)
    optimizer = agentopt.AgentOptimizer(1, config)
    optimizer.record_one_conversation([{"role": "user", "content": "hi"}], is_satisfied=True)
    optimizer.step()
    assert len(server.requests()) == 2  # the slow reply timed out and was retried


def test_cache_seed_answers_a_repeated_call_from_the_cache(scripted_server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    server = scripted_server(math_script([{"text": "TERMINATE"}]))
    config = dict(server.llm_config(), cache_seed=41)
    for _ in range(2):
        optimizer = agentopt.AgentOptimizer(1, config)
        optimizer.record_one_conversation([{"role": "user", "content": "hi"}], is_satisfied=True)
        optimizer.step()
    assert len(server.requests()) == 1
    assert optimizer.usage["cached_calls"] == 1
    assert (tmp_path / ".cache" / "agentopt" / "41").is_dir()


def test_keys_with_no_effect_are_named_in_a_warning(scripted_server):
    server = scripted_server(math_script([{"text": "TERMINATE"}]))
    config = server.llm_config()
    config["frequency_penalty"] = 0.5
    config["config_list"][0]["stream_options"] = {"include_usage": True}
    config["config_list"][0]["tags"] = ["gpt4"]
    with pytest.warns(UserWarning, match=r"config_list\[0\]\.stream_options, frequency_penalty"):
        agentopt.AgentOptimizer(1, config)


def test_an_ag2_llm_config_object_gives_no_spurious_warning(scripted_server):
    import autogen

    server = scripted_server(math_script([{"text": "TERMINATE"}]))
    config = autogen.LLMConfig({"model": OPTIMIZER_MODEL, "api_key": "sk-test-key", "base_url": server.base_url})
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        agentopt.AgentOptimizer(1, config)


def test_an_openai_compatible_api_type_works_and_others_name_the_entry(scripted_server):
    server = scripted_server(math_script([{"text": "TERMINATE"}]))
    entry = {"model": OPTIMIZER_MODEL, "api_type": "groq", "api_key": "gsk", "base_url": server.base_url}
    optimizer = agentopt.AgentOptimizer(1, {"config_list": [entry]})
    optimizer.record_one_conversation([{"role": "user", "content": "hi"}], is_satisfied=True)
    optimizer.step()
    assert len(server.requests()) == 1
    other = {"config_list": [{"model": "claude", "api_type": "anthropic"}, {"model": OPTIMIZER_MODEL, "api_type": "google"}]}
    with pytest.raises(agentopt.ConfigError, match="OpenAI") as raised:
        agentopt.AgentOptimizer(1, other)
    assert raised.value.field == "config_list[1].api_type"  # the entry serving the optimizer
    # An entry for another model is not the optimizer's business (AG2's filter_config).
    agentopt.AgentOptimizer(1, {"config_list": [other["config_list"][0], entry]})


def test_ag2s_attributes_subclassing_and_help(scripted_server):
    config = {"config_list": [{"model": OPTIMIZER_MODEL, "api_key": "k"}]}

    class Mine(agentopt.AgentOptimizer):
        def step(self):
            self.steps = getattr(self, "steps", 0) + 1
            return super().step()

    optimizer = Mine(4, config)
    assert (optimizer.max_actions_per_step, optimizer.optimizer_model) == (4, OPTIMIZER_MODEL)
    assert optimizer.llm_config == config and optimizer.llm_config is not config
    parameters = inspect.signature(agentopt.AgentOptimizer).parameters
    assert parameters["function_timeout"].default == 600.0
    assert {"patience", "packages", "budget_usd", "prices", "context_window", "allow_unsandboxed"} <= set(parameters)
    import pydoc

    text = pydoc.render_doc(agentopt.AgentOptimizer, renderer=pydoc.plaintext)  # what help() shows
    assert "function_timeout: float = 600.0" in text and "packages" in text and "OPENAI_API_KEY" in text
    assert inspect.signature(agentopt.FunctionSet.load).parameters["function_timeout"].default == 600.0
    assert "replace" in inspect.signature(agentopt.FunctionSet.install).parameters
    assert "progress" in inspect.getdoc(agentopt.Trainer)


def test_packages_are_checked_against_the_allowlist():
    config = {"config_list": [{"model": OPTIMIZER_MODEL, "api_key": "k"}]}
    agentopt.AgentOptimizer(1, config, packages=["scipy", "NetworkX"])
    with pytest.raises(agentopt.ConfigError, match="allowlist") as raised:
        agentopt.AgentOptimizer(1, config, packages=["requests"])
    assert (raised.value.field, raised.value.value) == ("packages", '"requests"')
    assert "scipy" in agentopt.PACKAGE_ALLOWLIST


def test_an_allowlisted_package_is_installed_and_a_learned_function_imports_it(scripted_server, tmp_path, monkeypatch):
    """`packages=` installs from the package index into the sandbox's venv, outside
    the sandbox (which has no network); the learned function then imports it. A new
    home, so that the install is this test's own."""
    monkeypatch.setenv("AGENTOPT_HOME", str(tmp_path / "home"))
    hops = {
        "name": "path_hops",
        "description": "Edges on the shortest path from 0 to n - 1 in a path graph.",
        "arguments": json.dumps({"n": {"type": "integer", "description": "number of nodes"}}),
        "packages": "networkx",
        "code": "import networkx as nx\n\n"
        "def path_hops(n):\n    return nx.shortest_path_length(nx.path_graph(n), 0, n - 1)\n",
    }
    server = scripted_server(math_script([{"tool_calls": [add_function(hops)]}]))
    optimizer = agentopt.AgentOptimizer(1, server.llm_config(), packages=["NetworkX"])
    optimizer.record_one_conversation([{"role": "user", "content": "How many hops?"}], is_satisfied=False)

    _, register_for_executor = optimizer.step()

    assert register_for_executor["path_hops"](n=5) == "Result of path_hops function execution:\n4\n"
    manifest = json.loads((tmp_path / "home" / "venv" / "agentopt-manifest.json").read_text())
    assert "networkx" in manifest["packages"]


def test_budget_usd_stops_the_optimizer(scripted_server):
    server = scripted_server(math_script([{"text": "TERMINATE"}]))
    optimizer = agentopt.AgentOptimizer(1, server.llm_config(), budget_usd=0.0001, prices={OPTIMIZER_MODEL: (10.0, 10.0)})
    optimizer.record_one_conversation([{"role": "user", "content": "hi"}], is_satisfied=True)
    optimizer.step()
    optimizer.record_one_conversation([{"role": "user", "content": "hi"}], is_satisfied=True)
    with pytest.raises(agentopt.ModelError, match="budget"):
        optimizer.step()
    assert len(server.requests()) == 1


def test_usage_summary_has_ag2s_shape(scripted_server, capsys):
    server = scripted_server(math_script([{"text": "TERMINATE"}]))
    optimizer = agentopt.AgentOptimizer(1, server.llm_config(), prices={OPTIMIZER_MODEL: (0.01, 0.03)})
    optimizer.record_one_conversation([{"role": "user", "content": "hi"}], is_satisfied=True)
    optimizer.step()
    usage = optimizer.usage
    assert set(usage) >= {"usage_including_cached_inference", "usage_excluding_cached_inference"}
    assert usage["usage_including_cached_inference"][OPTIMIZER_MODEL] == {
        "cost": pytest.approx(0.00025), "prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    optimizer.print_usage_summary()
    printed = capsys.readouterr().out
    assert f"* Model '{OPTIMIZER_MODEL}': cost: 0.00025, prompt_tokens: 10, completion_tokens: 5, total_tokens: 15" in printed


def test_rust_log_records_reach_python_logging(scripted_server, caplog):
    server = scripted_server(math_script([{"status": 503, "body": "busy"}, {"text": "TERMINATE"}]))
    optimizer = agentopt.AgentOptimizer(1, server.llm_config())
    optimizer.record_one_conversation([{"role": "user", "content": "hi"}], is_satisfied=True)
    with caplog.at_level(logging.INFO):
        optimizer.step()
    retries = [record for record in caplog.records if "retrying chat completion" in record.getMessage()]
    assert retries and retries[0].name.startswith("agentopt_llm")
    assert retries[0].levelno == logging.WARNING


def test_an_empty_history_warns_and_keep_history_records_it(scripted_server):
    server = scripted_server(math_script([{"text": "TERMINATE"}]))
    optimizer = agentopt.AgentOptimizer(1, server.llm_config())
    with pytest.warns(UserWarning, match="empty conversation history"):
        optimizer.record_one_conversation([], is_satisfied=False)

    import autogen

    class NotebookProxy(autogen.UserProxyAgent):
        """The seed notebook's initiate_chat: the assistant is reset before the
        loop reads its history."""

        def initiate_chat(self, recipient, **context):
            self._prepare_chat(recipient, True)
            self.send(context["problem"], recipient, silent=True)
            recipient.reset()

    assistant = autogen.AssistantAgent("assistant", llm_config=server.llm_config())
    proxy = agentopt.notebook.keep_history(
        NotebookProxy("proxy", human_input_mode="NEVER", code_execution_config=False, max_consecutive_auto_reply=0)
    )
    proxy.initiate_chat(assistant, problem="What is 6 times 7?")
    assert assistant.chat_messages_for_summary(proxy) == []  # what the notebook reads
    assert [message["content"] for message in proxy.last_history][:1] == ["What is 6 times 7?"]
    assert len(proxy.last_history) == 2  # the question and the assistant's answer


def test_check_sandbox_says_what_isolation_there_is():
    report = agentopt.check_sandbox()
    assert set(report) == {"isolated", "protections", "problem", "advice"}
    if report["problem"] is None:
        assert report["protections"]["seccomp"] is True
    else:
        assert report["advice"]


def test_a_sandbox_refusal_names_the_python_keyword(scripted_server, tmp_path):
    import subprocess
    import sys

    from test_trainer import learned_set

    server = scripted_server(math_script([{"tool_calls": [add_function(MULTIPLY)]}, {"text": "TERMINATE"}]))
    learned_set(server, tmp_path / "functions.json", MULTIPLY)
    probe = f"""
import agentopt
report = agentopt.check_sandbox()
assert report["isolated"] is False and "bubblewrap" in report["problem"], report
assert any("allow_unsandboxed=True" in line for line in report["advice"]), report
try:
    agentopt.FunctionSet.load({str(tmp_path / "functions.json")!r})["multiply"](a=6, b=7)
except agentopt.SandboxError as error:
    print(error)
"""
    # No bubblewrap here: the sandbox refuses to run learned code.
    env = dict(__import__("os").environ, AGENTOPT_BWRAP=str(tmp_path / "no-bwrap"))
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "allow_unsandboxed=True" in result.stdout and "agentopt.check_sandbox()" in result.stdout
    assert "SandboxPolicy" not in result.stdout


def test_progress_draws_one_bar_per_phase():
    from agentopt.progress import ProgressDisplay

    bars = []

    class Bar:
        def __init__(self, total, desc, leave):
            self.total, self.desc, self.done, self.closed, self.lines = total, desc, 0, False, []
            bars.append(self)

        def update(self, count):
            self.done += count

        def set_postfix_str(self, text):
            self.postfix = text

        def write(self, text):
            self.lines.append(text)

        def close(self):
            self.closed = True

    display = ProgressDisplay(Bar)
    display({"event": "phase_started", "phase_name": "test before training", "total": 2})
    display({"event": "finished", "problem_id": "a", "outcome": {"status": "solved"}})
    display({"event": "resumed", "outcome": {"status": "failed"}})
    display({"event": "phase_finished"})
    (bar,) = bars
    assert (bar.desc, bar.total, bar.done, bar.closed, bar.postfix) == ("test before training", 2, 2, True, "resumed")


def test_a_trainer_runs_on_a_server_without_a_context_window(scripted_server, tmp_path):
    server = scripted_server(unreported_window_script([{"tool_calls": [add_function(MULTIPLY)]}, {"text": "TERMINATE"}]))
    trainer = agentopt.Trainer(
        lambda problem, functions: False, server.llm_config(model="scripted"), "scripted",
        run_dir=tmp_path / "run", epochs=1, progress=False,
    )
    with pytest.warns(UserWarning, match="assuming 32768 tokens"):
        report = trainer.run(train=["a"], test=["a"])
    assert report.incomplete is None
    assert report.function_set is not None and report.function_set.names == ["multiply"]


def test_an_ag2_ollama_entry_reaches_its_host_without_noise(scripted_server):
    import autogen

    server = scripted_server(math_script([{"text": "TERMINATE"}]))
    host = server.base_url[: -len("/v1")]
    config = autogen.LLMConfig({"model": OPTIMIZER_MODEL, "api_type": "ollama", "client_host": host, "num_ctx": 16384})
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # AG2's own Ollama defaults are not "ignored keys"
        optimizer = agentopt.AgentOptimizer(1, config)
        optimizer.record_one_conversation([{"role": "user", "content": "hi"}], is_satisfied=True)
        optimizer.step()
    assert server.logged()[0]["path"] == "/v1/chat/completions"
