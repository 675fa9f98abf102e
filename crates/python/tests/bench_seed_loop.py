"""Benchmark (not a test): the seed notebook's loop with AG2's own AgentOptimizer
and with agentopt's, on the same AG2 agents and the same scripted server.

Prints one row per optimizer: wall time of the whole loop (test → train → test) and
of the `step()` calls, model calls (optimizer / assistant), and problems solved
before and after training. Run it with `cargo xtask bench-python`.

AG2's learned functions run `execute_code` in a hard-coded Docker image, which is not
there offline; here they run as AG2's local subprocesses instead (`use_docker=False`),
AG2's fastest configuration.
"""

import argparse
import contextlib
import io
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import autogen.agentchat.contrib.agent_optimizer as ag2_agent_optimizer  # noqa: E402

import agentopt  # noqa: E402
from conftest import OPTIMIZER_MODEL, ScriptedServer  # noqa: E402
from seed_notebook import make_agents, solve_all, train  # noqa: E402
from test_agent_optimizer import MULTIPLY  # noqa: E402


def problems(count):
    return [{"question": f"What is {3 + i} times {7 + i}?", "answer": str((3 + i) * (7 + i))} for i in range(count)]


def script(problem_list):
    """Without `multiply` the assistant answers one too many; with it, it calls the
    function and answers what the function returned."""
    routes = [
        {"when": {"offers": "add_function"},
         "replies": [{"tool_calls": [{"name": "add_function", "arguments": MULTIPLY}]}, {"text": "TERMINATE"}],
         "repeat_last": True},
        {"when": {"last_contains": "The result is Correct"}, "replies": [{"text": "TERMINATE"}], "repeat_last": True},
    ]
    for number, problem in enumerate(problem_list):
        a, b = 3 + number, 7 + number
        routes += [
            {"when": {"last_contains": f"Result of multiply function execution:\n{a * b}\n"},
             "replies": [{"text": f"So it is \\boxed{{{a * b}}}."}], "repeat_last": True},
            {"when": {"offers": "multiply", "last_contains": problem["question"]},
             "replies": [{"function_call": {"name": "multiply", "arguments": {"a": a, "b": b}}}], "repeat_last": True},
            {"when": {"last_contains": problem["question"]},
             "replies": [{"text": f"I believe it is \\boxed{{{a * b + 1}}}."}], "repeat_last": True},
        ]
    routes.append({"replies": [{"text": "TERMINATE"}], "repeat_last": True})
    return {"model": OPTIMIZER_MODEL, "n_ctx": 128000, "routes": routes}


def ag2_without_docker():
    """AG2's execute_func, with its code run as a local subprocess instead of Docker."""
    execute_code = ag2_agent_optimizer.execute_code

    def local(code, use_docker=None, **kwargs):
        return execute_code(code, use_docker=False, **kwargs)

    ag2_agent_optimizer.execute_code = local


class TimedSteps:
    """The optimizer, with the time spent in `step()` added up."""

    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.seconds = 0.0

    def record_one_conversation(self, history, is_satisfied=None):
        self.optimizer.record_one_conversation(history, is_satisfied=is_satisfied)

    def step(self):
        started = time.perf_counter()
        try:
            return self.optimizer.step()
        finally:
            self.seconds += time.perf_counter() - started


def run(label, make_optimizer, problem_list, epochs, directory):
    server = ScriptedServer(script(problem_list), directory)
    try:
        assistant, user_proxy = make_agents(server.llm_config())
        optimizer = make_optimizer(server.llm_config())
        timed = TimedSteps(optimizer)
        started = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            before = solve_all(user_proxy, assistant, problem_list)
            train(timed, user_proxy, assistant, problem_list, epochs)
            after = solve_all(user_proxy, assistant, problem_list)
        wall = time.perf_counter() - started
        requests = server.requests()
    finally:
        server.stop()
    optimizer_calls = sum(1 for r in requests if any(t["function"]["name"] == "add_function" for t in r.get("tools", [])))
    return (label, wall, timed.seconds, optimizer_calls, len(requests) - optimizer_calls, before, after, len(problem_list))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=10, help="problems in the train and the test set (seed: 10)")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs (seed: 10)")
    parser.add_argument("--max-actions-per-step", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    ag2_without_docker()
    problem_list = problems(args.problems)
    optimizers = [
        ("AG2 0.13.4 AgentOptimizer", lambda config: ag2_agent_optimizer.AgentOptimizer(
            max_actions_per_step=args.max_actions_per_step, llm_config=config, optimizer_model=OPTIMIZER_MODEL)),
        ("agentopt AgentOptimizer", lambda config: agentopt.AgentOptimizer(
            max_actions_per_step=args.max_actions_per_step, llm_config=config, optimizer_model=OPTIMIZER_MODEL)),
    ]
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for index, (label, make) in enumerate(optimizers):
            directory = Path(scratch) / str(index)
            directory.mkdir()
            rows.append(run(label, make, problem_list, args.epochs, directory))
    print(f"\nSeed loop: {args.problems} train + {args.problems} test problems, {args.epochs} epochs, "
          f"max_actions_per_step={args.max_actions_per_step}, scripted server on 127.0.0.1\n")
    print("| optimizer | loop wall time | step() time | optimizer calls | assistant calls | solved before | solved after |")
    print("|---|---|---|---|---|---|---|")
    for label, wall, steps, optimizer_calls, assistant_calls, before, after, total in rows:
        print(f"| {label} | {wall:.2f} s | {steps:.2f} s | {optimizer_calls} | {assistant_calls} "
              f"| {before}/{total} | {after}/{total} |")


if __name__ == "__main__":
    main()
