"""agentopt's Trainer over a task written in Python: ag2 0.13.4's own agents solve
the problems, the Trainer runs test → epoch → test with a run directory, a second
run() continues an interrupted one, and the trained functions.json installs into
fresh AG2 agents."""

import json

import pytest

import agentopt
from conftest import OPTIMIZER_MODEL
from seed_notebook import make_agents
from test_agent_optimizer import MULTIPLY, add_function, math_script, offered_names

PROBLEM = {"id": "six-times-seven", "question": "What is 6 times 7?", "answer": "42"}


class SeedMathTask:
    """One problem = one seed-notebook conversation with the functions installed.
    Test-after attempts raise while `outage` is set, as a model outage would."""

    def __init__(self, llm_config):
        self.llm_config = llm_config
        self.attempts = []
        self.outage = False

    def attempt(self, problem, functions):
        assistant, user_proxy = make_agents(self.llm_config)
        functions.install(assistant, user_proxy)
        self.attempts.append((problem["id"], functions.names))
        if self.outage and functions.names:
            raise ConnectionError("the model server is down")
        is_correct = user_proxy.initiate_chat(assistant, answer=problem["answer"], problem=problem["question"])
        return {"solved": bool(is_correct), "history": user_proxy.last_history, "expected": problem["answer"]}


def test_a_python_task_is_trained_and_an_interrupted_run_is_continued(scripted_server, tmp_path):
    server = scripted_server(math_script([{"tool_calls": [add_function(MULTIPLY)]}, {"text": "TERMINATE"}]))
    task = SeedMathTask(server.llm_config())
    task.outage = True
    events = []
    trainer = agentopt.Trainer(
        task, server.llm_config(), run_dir=str(tmp_path / "run"), epochs=1, max_actions_per_step=1,
        progress=events.append,
    )

    first = trainer.run(train=[PROBLEM], test=[PROBLEM])

    assert first.incomplete is not None  # the test after training hit the outage
    assert first.test_before["correct"] == 0
    assert task.attempts == [("six-times-seven", []), ("six-times-seven", []), ("six-times-seven", ["multiply"])]
    kinds = [event["event"] for event in events]
    assert kinds.count("phase_started") == 3 and "step_finished" in kinds
    finished = [event for event in events if event["event"] == "finished"]
    assert [event["phase"] for event in finished] == ["test_before", "train", "test_after"]
    assert finished[-1]["outcome"]["status"] == "infrastructure"

    task.outage = False
    second = trainer.run(train=[PROBLEM], test=[PROBLEM])

    assert second.incomplete is None
    assert len(task.attempts) == 4  # only the missing attempt ran again
    assert (second.test_before["correct"], second.test_after["correct"]) == (0, 1)
    assert [function["name"] for function in second.functions] == ["multiply"]
    assert "success_rate_with_agent_training" in second.summary()
    optimizer_calls = [r for r in server.requests() if any(t["function"]["name"] == "add_function" for t in r.get("tools", []))]
    assert len(optimizer_calls) == 1  # the step was not asked again

    learned = agentopt.FunctionSet.load(tmp_path / "run" / "functions.json")
    assert learned.names == ["multiply"] and "multiply" in learned
    assistant, user_proxy = make_agents(server.llm_config())
    learned.install(assistant, user_proxy)
    assert user_proxy.initiate_chat(assistant, answer="42", problem=PROBLEM["question"]) == 1


def test_a_plain_callable_is_a_task_and_bad_returns_are_not_training_signal(scripted_server, tmp_path):
    server = scripted_server(math_script([{"text": "TERMINATE"}]))

    def attempt(problem, functions):
        return None if problem == "broken" else problem == "easy"

    report = agentopt.Trainer(attempt, server.llm_config(), run_dir=str(tmp_path / "run"), epochs=1).run(
        train=["easy", "hard"], test=["easy", "hard", "broken"]
    )

    assert (report.test_before["correct"], report.test_before["total"]) == (1, 2)
    assert report.infrastructure and report.incomplete is not None
    assert "attempt() must return a bool or a dict" in str(report.to_dict()["infrastructure"])


def test_trainer_options_are_checked_before_any_model_call(scripted_server, tmp_path):
    server = scripted_server(math_script([{"text": "TERMINATE"}]))
    with pytest.raises(agentopt.ConfigError) as raised:
        agentopt.Trainer(lambda p, f: True, server.llm_config())
    assert raised.value.field == "run_dir"
    trainer = agentopt.Trainer(lambda p, f: True, server.llm_config(), run_dir=str(tmp_path), epochs=0)
    with pytest.raises(agentopt.ConfigError) as raised:
        trainer.run(train=[1], test=[2])
    assert raised.value.field == "epochs"
    assert server.requests() == []


def learned_set(server, path, *specs):
    """A function set the optimizer learned (one step adding `specs`), saved at `path`."""
    optimizer = agentopt.AgentOptimizer(len(specs), server.llm_config())
    for _ in range(2):  # the second step keeps the trial list (0.0 >= 0.0): now the best
        optimizer.record_one_conversation([{"role": "user", "content": "6*7?"}], is_satisfied=False)
        optimizer.step()
    optimizer.export_artifact(path)


def test_install_replaces_what_a_reused_agent_pair_held(scripted_server, tmp_path):
    square = dict(MULTIPLY, name="square", code="def square(x):\n    return x * x\n",
                  arguments=json.dumps({"x": {"type": "integer"}}))
    server = scripted_server(math_script([{"tool_calls": [add_function(MULTIPLY), add_function(square)]},
                                          {"text": "TERMINATE"}, {"tool_calls": [add_function(square)]},
                                          {"text": "TERMINATE"}]))
    learned_set(server, tmp_path / "both.json", MULTIPLY, square)
    learned_set(server, tmp_path / "square.json", square)
    assistant, user_proxy = make_agents(server.llm_config())
    agentopt.FunctionSet.load(tmp_path / "both.json").install(assistant, user_proxy)
    assert offered_names(assistant) == ["multiply", "square"]

    agentopt.FunctionSet.load(tmp_path / "square.json").install(assistant, user_proxy)

    assert offered_names(assistant) == ["square"]
    assert "multiply" not in user_proxy.function_map
    agentopt.FunctionSet.load(tmp_path / "both.json").install(assistant, user_proxy, replace=False)
    agentopt.FunctionSet.load(tmp_path / "square.json").install(assistant, user_proxy, replace=False)
    assert offered_names(assistant) == ["multiply", "square"]  # replace=False keeps them
    tools_assistant, tools_proxy = make_agents(server.llm_config())
    agentopt.FunctionSet.load(tmp_path / "square.json").install(tools_assistant, tools_proxy, style="tools")
    assert [tool["function"]["name"] for tool in tools_assistant.llm_config["tools"]] == ["square"]
    with pytest.raises(ValueError, match="style"):
        agentopt.FunctionSet.load(tmp_path / "square.json").install(assistant, user_proxy, style="xml")


def test_a_sandbox_failure_in_a_learned_call_is_an_infrastructure_error(scripted_server, tmp_path, monkeypatch):
    server = scripted_server(math_script([{"tool_calls": [add_function(MULTIPLY)]}, {"text": "TERMINATE"}]))
    task = SeedMathTask(server.llm_config())
    task.outage = True
    run_dir = str(tmp_path / "run")
    options = dict(run_dir=run_dir, epochs=1, max_actions_per_step=1, progress=False)
    assert agentopt.Trainer(task, server.llm_config(), **options).run(train=[PROBLEM], test=[PROBLEM]).incomplete
    task.outage = False
    # A fresh trainer's sandbox cannot start: no Python to build its environment from.
    monkeypatch.setenv("AGENTOPT_HOME", str(tmp_path / "empty-home"))
    monkeypatch.setenv("AGENTOPT_PYTHON", str(tmp_path / "no-such-python"))

    report = agentopt.Trainer(task, server.llm_config(), **options).run(train=[PROBLEM], test=[PROBLEM])

    assert report.incomplete is not None
    assert "learned-function call" in json.dumps(report.to_dict()["infrastructure"])
    assert report.test_after["total"] == 0  # not counted as a wrong answer


def test_an_async_attempt_is_awaited_and_its_reason_reaches_the_optimizer(scripted_server, tmp_path):
    server = scripted_server(math_script([{"tool_calls": [add_function(MULTIPLY)]}, {"text": "TERMINATE"}]))
    seen = []

    async def attempt(problem, functions):
        seen.append(type(functions).__name__)
        return {"solved": False, "history": [{"role": "user", "content": problem["question"]}],
                "reason": "the product was off by one", "answer": "41", "expected": "42"}

    report = agentopt.Trainer(attempt, server.llm_config(), run_dir=str(tmp_path / "run"), epochs=1, progress=False).run(
        train=[PROBLEM], test=[PROBLEM]
    )

    assert report.incomplete is None and report.test_before["total"] == 1
    assert set(seen) == {"FunctionSet"}
    prompt = [r for r in server.requests() if any(t["function"]["name"] == "add_function" for t in r.get("tools", []))][0]
    text = json.dumps(prompt["messages"])
    assert "the product was off by one" in text and "Expected answer: 42" in text
    assert report.function_set is not None and report.function_set.names == ["multiply"]
    assert "multiply" in report._repr_markdown_()
    rendered = report._repr_html_()
    assert "<table>" in rendered and "<th>" in rendered and "multiply" in rendered and "|---" not in rendered


def test_the_budget_stops_a_run_and_progress_lines_show_it(scripted_server, tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "tqdm", None)  # no tqdm: plain lines
    server = scripted_server(math_script([{"tool_calls": [add_function(MULTIPLY)]}, {"text": "TERMINATE"}]))
    trainer = agentopt.Trainer(
        lambda problem, functions: False, server.llm_config(), run_dir=str(tmp_path / "run"), epochs=2,
        budget_usd=0.0000001, prices={OPTIMIZER_MODEL: (1.0, 1.0)},
    )
    report = trainer.run(train=["a"], test=["a"])
    assert "budget" in (report.incomplete or "")
    assert trainer.usage["usage_excluding_cached_inference"]["total_cost"] > 0
    err = capsys.readouterr().err
    assert "agentopt: test before training: 1 problem(s)" in err
    assert "agentopt: optimizer step after epoch" in err


class ForcedCallTask:
    """The assistant never calls a learned function on its own; made to call one
    (`attempt_calling`), it writes `print(name(6, 7))` and is right."""

    def __init__(self):
        self.forced = []

    def problem_text(self, problem):
        return problem["question"]

    def reference_answer(self, problem):
        return problem["answer"]

    def attempt(self, problem, functions):
        return {"solved": False, "reason": "no call", "history": [{"role": "user", "content": problem["question"]}]}

    def attempt_calling(self, problem, functions, name):
        self.forced.append((problem["id"], name))
        code = f"```python\nprint({name}(6, 7))\n```"
        history = [{"role": "user", "content": problem["question"]}, {"role": "assistant", "content": code}]
        return {"solved": True, "history": history, "expected": problem["answer"]}


def test_a_forced_call_gives_a_learned_function_its_worked_example(scripted_server, tmp_path):
    server = scripted_server(math_script([{"tool_calls": [add_function(MULTIPLY)]}, {"text": "TERMINATE"}]))
    task = ForcedCallTask()
    digits = {"id": "digits", "question": "How many digits has 1000?", "answer": "4"}
    product = {"id": "product", "question": "Multiply 6 by 7.", "answer": "42"}
    report = agentopt.Trainer(
        task, server.llm_config(), run_dir=str(tmp_path / "run"), epochs=1, max_actions_per_step=1,
        forced_call_demonstrations=True, retrieval_k=3, bootstrap_demonstrations=1, progress=False,
    ).run(train=[digits, product], test=[PROBLEM])

    assert task.forced == [("product", "multiply")]  # the training problem most like it
    [example] = report.function_set["multiply"].demonstrations
    assert (example["problem"], example["solution"], example["answer"]) == (
        "Multiply 6 by 7.", "print(multiply(6, 7))", "42")
    forced = [json.loads(line) for line in (tmp_path / "run" / "forced_calls.jsonl").read_text().splitlines()]
    assert [(r["function"], r["problem_id"], r["kept"]) for r in forced] == [("multiply", "product", True)]


def test_initial_functions_are_tested_without_training_with_epochs_0(scripted_server, tmp_path):
    server = scripted_server(math_script([{"text": "TERMINATE"}]))
    artifact = {
        "format": "agentopt-functions", "version": 1,
        "functions": [{
            "tool": {"type": "function", "function": {
                "name": MULTIPLY["name"], "description": MULTIPLY["description"],
                "parameters": {"type": "object", "properties": json.loads(MULTIPLY["arguments"]), "required": ["a", "b"]},
            }},
            "packages": [], "code": MULTIPLY["code"],
        }],
        "provenance": {"producer": "a test", "optimizer_model": "", "performance": None, "steps": 0, "exported_at_unix": 0},
    }
    (tmp_path / "functions.json").write_text(json.dumps(artifact))
    initial = agentopt.FunctionSet.load(tmp_path / "functions.json")
    task = SeedMathTask(server.llm_config())

    report = agentopt.Trainer(
        task, server.llm_config(), run_dir=str(tmp_path / "run"), epochs=0, initial_functions=initial, progress=False,
    ).run(train=[PROBLEM], test=[PROBLEM])

    assert (report.test_before["correct"], report.test_after["correct"]) == (0, 1)
    assert task.attempts == [("six-times-seven", []), ("six-times-seven", ["multiply"])]  # no training attempt
    # The assistant's tool call ran the set's callable: the use rate counts it.
    assert [(r["phase"], r["function"], r["offered"], r["called"]) for r in report.use_rates] == [
        ("test after training", None, 1, 1), ("test after training", "multiply", 1, 1)]
    with pytest.raises(agentopt.ConfigError, match="initial_functions"):
        agentopt.Trainer(task, server.llm_config(), run_dir=str(tmp_path / "bad"), initial_functions="functions.json")
