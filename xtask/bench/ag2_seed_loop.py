"""The seed notebook's training loop on AG2 0.13.4, timed, for `cargo xtask bench-overhead --ag2`.

AG2's AssistantAgent + the notebook's MathUserProxyAgent subclass + AG2's AgentOptimizer
(`crates/python/tests/seed_notebook.py`: the notebook's code, with the conversation kept
before the assistant's reset, so the optimizer reads real conversations as agentopt's
does): test before, EPOCHS x (train conversations, optimizer.step(), register the
functions), test after, against the OpenAI-compatible server at --base-url with AG2's
response cache off. Prints one JSON line: {"wall_s": ..., "solved_before": ...,
"solved_after": ...}.
"""

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "crates" / "python" / "tests"))

from autogen.agentchat.contrib.agent_optimizer import AgentOptimizer  # noqa: E402

from seed_notebook import make_agents, solve_all, train  # noqa: E402


def first(path, count):
    """The first `count` records of a JSON-lines file, as the notebook takes them."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f][:count]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--model", default="scripted-model")
    parser.add_argument("--test-file", required=True)
    parser.add_argument("--train-file", required=True)
    parser.add_argument("--test-size", type=int, default=10)
    parser.add_argument("--train-size", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--actions", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore", DeprecationWarning)

    test_data = first(args.test_file, args.test_size)
    train_data = first(args.train_file, args.train_size)
    llm_config = {
        "config_list": [{"model": args.model, "api_key": "sk-scripted", "base_url": args.base_url}],
        "cache_seed": None,
    }
    started = time.perf_counter()
    assistant, user_proxy = make_agents(llm_config)
    solved_before = solve_all(user_proxy, assistant, test_data)
    optimizer = AgentOptimizer(max_actions_per_step=args.actions, llm_config=llm_config, optimizer_model=args.model)
    train(optimizer, user_proxy, assistant, train_data, args.epochs)
    solved_after = solve_all(user_proxy, assistant, test_data)
    wall = time.perf_counter() - started
    print(json.dumps({"wall_s": wall, "solved_before": solved_before, "solved_after": solved_after}))


if __name__ == "__main__":
    main()
