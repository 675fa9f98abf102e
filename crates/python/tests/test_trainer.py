"""agentopt's Trainer over a task written in Python: ag2 0.13.4's own agents solve
the problems, the Trainer runs test → epoch → test with a run directory, a second
run() continues an interrupted one, and the trained functions.json installs into
fresh AG2 agents."""

import pytest

import agentopt
from seed_notebook import make_agents
from test_agent_optimizer import MULTIPLY, add_function, math_script

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
