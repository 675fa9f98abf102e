"""The seed notebook's loop on ag2 0.13.4's own agents, with agentopt's
AgentOptimizer, against the scripted server: a function is learned, registered,
called by the assistant through AG2, executed in the sandbox, and changes the
answer."""

import contextlib
import json
import signal
import threading
import _thread

import pytest

import agentopt
from conftest import OPTIMIZER_MODEL
from seed_notebook import make_agents, solve_all, train

PROBLEMS = [{"question": "What is 6 times 7?", "answer": "42"}]

MULTIPLY = {
    "name": "multiply",
    "description": "Multiplies two integers.",
    "arguments": json.dumps({
        "a": {"type": "integer", "description": "first factor"},
        "b": {"type": "integer", "description": "second factor"},
    }),
    "packages": "",
    "code": "def multiply(a, b):\n    return a * b\n",
}


@contextlib.contextmanager
def interrupt_after(seconds):
    """Ctrl-C after `seconds`, as in an interactive session: Python's own SIGINT
    handler is put in place, since a background job (CI) may inherit SIGINT ignored
    and then no KeyboardInterrupt comes at all."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(seconds, _thread.interrupt_main)
    timer.start()
    try:
        yield
    finally:
        timer.join()
        signal.signal(signal.SIGINT, previous)


def add_function(spec):
    return {"name": "add_function", "arguments": spec}


def math_script(optimizer_replies):
    """The assistant answers 41 without a function; offered `multiply`, it calls it
    and answers with what the sandbox printed."""
    return {
        "model": OPTIMIZER_MODEL,
        "n_ctx": 32768,
        "routes": [
            {"when": {"offers": "add_function"}, "replies": optimizer_replies, "repeat_last": True},
            {"when": {"last_contains": "Result of multiply function execution:\n42"},
             "replies": [{"text": "So the product is \\boxed{42}."}], "repeat_last": True},
            {"when": {"last_contains": "The result is Correct"}, "replies": [{"text": "TERMINATE"}], "repeat_last": True},
            {"when": {"offers": "multiply"},
             "replies": [{"function_call": {"name": "multiply", "arguments": {"a": 6, "b": 7}}}], "repeat_last": True},
            {"replies": [{"text": "I believe it is \\boxed{41}."}], "repeat_last": True},
        ],
    }


def offered_names(assistant):
    return [function["name"] for function in assistant.llm_config.get("functions", [])]


def test_seed_loop_learns_a_function_that_changes_the_answer(scripted_server):
    server = scripted_server(math_script([{"tool_calls": [add_function(MULTIPLY)]}, {"text": "TERMINATE"}]))
    assistant, user_proxy = make_agents(server.llm_config())
    optimizer = agentopt.AgentOptimizer(max_actions_per_step=1, llm_config=server.llm_config(), optimizer_model=OPTIMIZER_MODEL)

    before = solve_all(user_proxy, assistant, PROBLEMS)
    train(optimizer, user_proxy, assistant, PROBLEMS, epochs=2)
    after = solve_all(user_proxy, assistant, PROBLEMS)

    assert (before, after) == (0, 1)
    assert offered_names(assistant) == ["multiply"]
    assert isinstance(user_proxy.function_map["multiply"], agentopt.LearnedFunction)
    requests = server.requests()
    function_results = [
        message["content"]
        for request in requests
        for message in request["messages"]
        if message.get("role") == "function" and message.get("name") == "multiply"
    ]
    # Only the sandbox computes 42: the script never says it before this result.
    assert function_results and function_results[-1] == "Result of multiply function execution:\n42\n"
    optimizer_requests = [r for r in requests if any(t["function"]["name"] == "add_function" for t in r.get("tools", []))]
    assert len(optimizer_requests) == 2
    # The second step's prompt holds the recorded conversation that used the function.
    assert "multiply" in optimizer_requests[1]["messages"][0]["content"]
    assert optimizer.last_step["trial_performance"] == 1.0


def test_removal_reaches_ag2_agents(scripted_server):
    remove = {"tool_calls": [{"name": "remove_function", "arguments": {"name": "multiply"}}]}
    server = scripted_server(math_script([{"tool_calls": [add_function(MULTIPLY)]}, remove, {"text": "TERMINATE"}]))
    assistant, user_proxy = make_agents(server.llm_config())
    optimizer = agentopt.AgentOptimizer(1, server.llm_config())

    train(optimizer, user_proxy, assistant, PROBLEMS, epochs=1)
    assert offered_names(assistant) == ["multiply"]
    is_correct = user_proxy.initiate_chat(assistant, answer="42", problem=PROBLEMS[0]["question"])
    optimizer.record_one_conversation(user_proxy.last_history, is_satisfied=is_correct)
    register_for_llm, register_for_executor = optimizer.step()
    for item in register_for_llm:
        assistant.update_function_signature(**item)
    user_proxy.register_function(function_map=register_for_executor)

    assert register_for_llm == [{"func_sig": "multiply", "is_remove": True}]
    assert register_for_executor == {"multiply": None}
    assert offered_names(assistant) == []
    assert "multiply" not in user_proxy.function_map


def test_each_function_runs_its_own_code(scripted_server):
    """AG2's closures all ran the last function (late binding); here each name runs its own."""
    square = {
        "name": "square",
        "description": "Squares an integer.",
        "arguments": json.dumps({"x": {"type": "integer", "description": "the number"}}),
        "packages": "",
        "code": "def square(x):\n    print('squaring')\n    return x * x\n",
    }
    server = scripted_server(math_script([{"tool_calls": [add_function(MULTIPLY), add_function(square)]}]))
    optimizer = agentopt.AgentOptimizer(2, server.llm_config())
    optimizer.record_one_conversation([{"role": "user", "content": "What is 6 times 7?"}], is_satisfied=0)

    register_for_llm, register_for_executor = optimizer.step()

    assert [item["func_sig"]["name"] for item in register_for_llm] == ["multiply", "square"]
    assert all(item["is_remove"] is False for item in register_for_llm)
    assert register_for_llm[0]["func_sig"]["parameters"]["properties"]["a"]["type"] == "integer"
    assert register_for_executor["multiply"](a=6, b=7) == "Result of multiply function execution:\n42\n"
    assert register_for_executor["square"](x=5) == "Result of square function execution:\nsquaring\n25\n"


def test_a_raising_function_raises_like_ag2(scripted_server):
    divide = {
        "name": "divide",
        "description": "Divides.",
        "arguments": json.dumps({"a": {"type": "integer"}, "b": {"type": "integer"}}),
        "packages": "",
        "code": "def divide(a, b):\n    return a / b\n",
    }
    server = scripted_server(math_script([{"tool_calls": [add_function(divide)]}]))
    optimizer = agentopt.AgentOptimizer(1, server.llm_config())
    optimizer.record_one_conversation([{"role": "user", "content": "1/0?"}], is_satisfied=False)
    _, register_for_executor = optimizer.step()

    with pytest.raises(agentopt.LearnedFunctionError, match=r"(?s)^Error in executing function:Traceback.*ZeroDivisionError: division by zero"):
        register_for_executor["divide"](a=1, b=0)
    with pytest.raises(Exception, match="ZeroDivisionError"):
        # What AG2's execute_function catches (it formats "Error: {e}").
        register_for_executor["divide"](a=1, b=0)


def test_is_satisfied_none_counts_as_unsatisfied_without_reading_stdin(scripted_server):
    server = scripted_server(math_script([{"text": "TERMINATE"}]))
    optimizer = agentopt.AgentOptimizer(1, server.llm_config())
    # pytest's captured stdin raises on read: AG2 called input() here.
    optimizer.record_one_conversation([{"role": "user", "content": "hi"}])
    register_for_llm, register_for_executor = optimizer.step()
    assert (register_for_llm, register_for_executor) == ([], {})
    assert optimizer.last_step["trial_performance"] == 0.0


def test_ctrl_c_stops_a_step_and_keeps_what_was_recorded(scripted_server):
    server = scripted_server(math_script([{"text": "TERMINATE", "delay_ms": 3000}, {"text": "TERMINATE"}]))
    optimizer = agentopt.AgentOptimizer(1, server.llm_config())
    optimizer.record_one_conversation([{"role": "user", "content": "hi"}], is_satisfied=True)

    with interrupt_after(0.3), pytest.raises(KeyboardInterrupt):
        optimizer.step()

    assert optimizer.best_performance is None  # the interrupted step committed nothing
    optimizer.step()
    assert optimizer.best_performance == 1.0  # the recorded conversation was kept


def test_checkpoint_and_resume_continue_with_the_functions_in_force(scripted_server, tmp_path):
    server = scripted_server(math_script([{"tool_calls": [add_function(MULTIPLY)]}, {"text": "TERMINATE"}]))
    checkpoint = tmp_path / "optimizer.json"
    optimizer = agentopt.AgentOptimizer(1, server.llm_config(), checkpoint=str(checkpoint), patience=1)
    optimizer.record_one_conversation([{"role": "user", "content": "6*7?"}], is_satisfied=False)
    optimizer.step()
    del optimizer

    resumed = agentopt.AgentOptimizer.resume(checkpoint, server.llm_config())
    register_for_llm, register_for_executor = resumed.registrations_in_force()
    assert [item["func_sig"]["name"] for item in register_for_llm] == ["multiply"]
    assert register_for_executor["multiply"](a=2, b=3) == "Result of multiply function execution:\n6\n"
    resumed.record_one_conversation([{"role": "user", "content": "6*7?"}], is_satisfied=False)
    resumed.step()
    # The step kept the trial list (0.0 >= 0.0): `multiply` is now the best list.
    exported = resumed.export_artifact(tmp_path / "functions.json")
    assert exported.names == agentopt.FunctionSet.load(tmp_path / "functions.json").names == ["multiply"]
    assert resumed.should_stop  # patience=1 came back from the checkpoint
    with pytest.raises(TypeError, match="patience"):
        # The options saved in the checkpoint are not given again.
        agentopt.AgentOptimizer.resume(checkpoint, server.llm_config(), patience=3)


def test_an_azure_config_list_entry_reaches_the_deployment(scripted_server):
    server = scripted_server(math_script([{"text": "TERMINATE"}]))
    root = server.base_url[: -len("/v1")]
    entry = {"model": OPTIMIZER_MODEL, "api_type": "azure", "api_key": "azure-key", "base_url": root, "api_version": "2024-06-01"}
    optimizer = agentopt.AgentOptimizer(1, {"config_list": [entry]})
    optimizer.record_one_conversation([{"role": "user", "content": "hi"}], is_satisfied=True)
    optimizer.step()
    (request,) = server.logged()
    assert request["path"] == f"/openai/deployments/{OPTIMIZER_MODEL}/chat/completions"
    assert "api-version=2024-06-01" in request["query"]


def test_ctrl_c_during_a_learned_function_kills_its_worker_and_the_next_call_works(scripted_server):
    slow = {
        "name": "slow_double",
        "description": "Doubles, slowly unless told otherwise.",
        "arguments": json.dumps({"x": {"type": "integer"}, "wait": {"type": "number"}}),
        "packages": "",
        "code": "import time\n\ndef slow_double(x, wait=0):\n    time.sleep(wait)\n    return 2 * x\n",
    }
    server = scripted_server(math_script([{"tool_calls": [add_function(slow)]}]))
    optimizer = agentopt.AgentOptimizer(1, server.llm_config(), function_timeout=30)
    optimizer.record_one_conversation([{"role": "user", "content": "double 4"}], is_satisfied=False)
    _, register_for_executor = optimizer.step()

    with interrupt_after(0.5), pytest.raises(KeyboardInterrupt):
        register_for_executor["slow_double"](x=4, wait=20)

    assert register_for_executor["slow_double"](x=4) == "Result of slow_double function execution:\n8\n"


def test_llm_config_may_be_an_ag2_llm_config(scripted_server):
    import autogen

    server = scripted_server(math_script([{"text": "TERMINATE"}]))
    config = autogen.LLMConfig({"model": OPTIMIZER_MODEL, "api_key": "sk-test-key", "base_url": server.base_url})
    optimizer = agentopt.AgentOptimizer(1, config)
    optimizer.record_one_conversation([{"role": "user", "content": "hi"}], is_satisfied=True)
    optimizer.step()
    assert len(server.requests()) == 1


@pytest.mark.parametrize(
    "llm_config, optimizer_model, field",
    [
        (None, OPTIMIZER_MODEL, "llm_config"),
        ("gpt-4", OPTIMIZER_MODEL, "llm_config"),
        ({"temperature": 0}, OPTIMIZER_MODEL, "llm_config['config_list']"),
        ({"config_list": {"model": OPTIMIZER_MODEL}}, OPTIMIZER_MODEL, "llm_config['config_list']"),
        ({"config_list": [{"api_key": "k"}]}, OPTIMIZER_MODEL, "config_list[0].model"),
        ({"config_list": [{"model": OPTIMIZER_MODEL, "api_type": "anthropic"}]}, OPTIMIZER_MODEL, "config_list[0].api_type"),
        ({"config_list": [{"model": OPTIMIZER_MODEL, "api_type": "azure", "api_key": "k"}]}, OPTIMIZER_MODEL, "config_list[0].base_url"),
        ({"config_list": [{"model": OPTIMIZER_MODEL, "base_url": "ftp://x"}]}, OPTIMIZER_MODEL, "config_list[0].base_url"),
        ({"config_list": [{"model": "gpt-4o"}]}, OPTIMIZER_MODEL, "optimizer_model"),
        ({"config_list": [{"model": OPTIMIZER_MODEL}], "temperature": "hot"}, OPTIMIZER_MODEL, "llm_config['temperature']"),
    ],
)
def test_bad_llm_config_raises_a_config_error_naming_the_field(llm_config, optimizer_model, field):
    with pytest.raises(agentopt.ConfigError) as raised:
        agentopt.AgentOptimizer(3, llm_config, optimizer_model)
    assert raised.value.field == field
    assert isinstance(raised.value, ValueError)  # what AG2 raises for a missing llm_config


def test_bad_option_raises_a_config_error_naming_it():
    config = {"config_list": [{"model": OPTIMIZER_MODEL}]}
    with pytest.raises(agentopt.ConfigError, match="patience") as raised:
        agentopt.AgentOptimizer(3, config, patience="soon")
    assert (raised.value.field, raised.value.value) == ("patience", "'soon'")
    with pytest.raises(TypeError, match="patiense"):
        agentopt.AgentOptimizer(3, config, patiense=2)
    with pytest.raises(agentopt.ConfigError, match="validation.significance") as raised:
        agentopt.AgentOptimizer(3, config, validation_significance=1.5)
    assert raised.value.field == "validation.significance"


def test_the_gil_is_released_while_waiting_on_the_model(scripted_server):
    server = scripted_server(math_script([{"text": "TERMINATE", "delay_ms": 1000}]))
    optimizer = agentopt.AgentOptimizer(1, server.llm_config())
    optimizer.record_one_conversation([{"role": "user", "content": "hi"}], is_satisfied=True)
    seen_while_waiting = threading.Event()
    stop = threading.Event()

    def watch():
        # Python code that sees the request arrive at the server: it can only run
        # while `step()` waits for the (one second late) reply if the GIL is free.
        while not stop.is_set():
            if server.logged():
                seen_while_waiting.set()
                return
            stop.wait(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        optimizer.step()
        # An event, not a count of wake-ups: the watcher saw the request before
        # the step returned, so it ran while the step was waiting.
        ran_during_the_wait = seen_while_waiting.is_set()
    finally:
        stop.set()
        watcher.join()
    assert ran_during_the_wait


def test_histories_with_tool_calls_reach_the_optimizer_prompt(scripted_server):
    server = scripted_server(math_script([{"text": "TERMINATE"}]))
    optimizer = agentopt.AgentOptimizer(1, server.llm_config())
    history = [
        {"role": "user", "name": "mathproxyagent", "content": "What is 6 times 7?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "multiply", "arguments": "{\"a\": 6, \"b\": 7}"}},
        ]},
        {"role": "tool", "content": "Result of multiply function execution:\n42\n",
         "tool_responses": [{"tool_call_id": "call_1", "role": "tool", "content": "Result of multiply function execution:\n42\n"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "\\boxed{42}"}]},
    ]
    optimizer.record_one_conversation(history, is_satisfied=1)
    optimizer.step()
    prompt = server.requests()[0]["messages"][0]["content"]
    assert "Result of multiply function execution" in prompt and "boxed{42}" in prompt


def test_a_malformed_history_is_a_config_error_naming_the_message():
    optimizer = agentopt.AgentOptimizer(1, {"config_list": [{"model": OPTIMIZER_MODEL}]})
    with pytest.raises(agentopt.ConfigError) as raised:
        optimizer.record_one_conversation([{"role": "user", "content": "hi"}, {"role": "narrator", "content": "x"}])
    assert raised.value.field == "conversation_history[1]"


def test_routing_spread_shares_the_calls_over_the_config_list_entries(scripted_server):
    script = math_script([{"text": "TERMINATE"}])
    first, second = scripted_server(script), scripted_server(script)
    config = {
        "config_list": [first.llm_config()["config_list"][0], second.llm_config()["config_list"][0]],
        "cache_seed": None,
    }

    def steps(optimizer, count):
        for _ in range(count):
            optimizer.record_one_conversation([{"role": "user", "content": "hi"}], is_satisfied=True)
            optimizer.step()

    # Spread: the entries are replicas, and both serve.
    steps(agentopt.AgentOptimizer(1, config, routing="spread", replica_cap=1), 4)
    served = (len(first.requests()), len(second.requests()))
    assert served == (2, 2), served

    # AG2's fallback (the default): every call goes to the first entry while it answers.
    steps(agentopt.AgentOptimizer(1, config), 2)
    assert (len(first.requests()), len(second.requests())) == (4, 2)

    # A cap without spread would be ignored, an unknown routing is a typo: both refused.
    with pytest.raises(agentopt.ConfigError, match="routing=\"spread\"") as raised:
        agentopt.AgentOptimizer(1, config, replica_cap=2)
    assert raised.value.field == "replica_cap"
    with pytest.raises(agentopt.ConfigError, match="round-robin") as raised:
        agentopt.AgentOptimizer(1, config, routing="round-robin")
    assert raised.value.field == "routing"
