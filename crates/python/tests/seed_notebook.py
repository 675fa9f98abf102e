"""The seed notebook's MathUserProxyAgent subclass (agentchat_agentoptimizer), on
ag2 0.13.4's own MathUserProxyAgent, with one fix: the conversation is kept in
`last_history` before `initiate_chat` resets the assistant (the notebook read the
history after the reset and fed the optimizer empty conversations)."""

import copy
from typing import Any, Callable, Literal, Optional, Union

import autogen
from autogen.agentchat import Agent
from autogen.agentchat.contrib.math_user_proxy_agent import MathUserProxyAgent as AG2MathUserProxyAgent
from autogen.code_utils import extract_code
from autogen.math_utils import get_answer


def contains_python_code(message):
    """Whether the message holds a python code block (the notebook inlines this twice)."""
    return any(block[0] == "python" for block in extract_code(message))


def is_termination_msg_mathchat(message):
    """Check if a message is a termination message."""
    if isinstance(message, dict):
        message = message.get("content")
        if message is None:
            return False
    if message.rstrip().find("TERMINATE") >= 0:
        return True
    return not contains_python_code(message) and get_answer(message) is not None and get_answer(message) != ""


class MathUserProxyAgent(AG2MathUserProxyAgent):
    MAX_CONSECUTIVE_AUTO_REPLY = 15
    DEFAULT_REPLY = "Continue. Please keep solving the problem until you need to query. (If you get to the answer, put it in \\boxed{}.)"
    PROMPTS = """Let's solve a math problem.
Query requirements:
You should always use the 'print' function for the output and use fractions/radical forms instead of decimals.
You can use packages like sympy to help you.
You must follow the formats below to write your code:
```python
# your code
```
If some packages are missing, you could also suggest a code to install the corresponding package.

Please follow this process:
1. Solve the problem step by step (do not over-divide the steps).
2. Take out any queries that can be asked through Python code (for example, any calculations or equations that can be calculated) and functions you know in the context of this conversation.

Please
(1) do not mix suggested Python codes and function calls in one step.
(2) You MUST remember that you don't have a function named "python" available.

You must follow the formats below to write your Python code:
```python
# your code
```

3. Wait for me to give the results or wait for the executed results of the function call.
4. Continue if you think the result is correct. If the result is invalid or unexpected, please correct your query or reasoning.

After all the queries are run and you get the answer, put the answer in \\boxed{}.

Problem:
"""

    def __init__(
        self,
        name: Optional[str] = "MathChatAgent",
        is_termination_msg: Optional[Callable[[dict], bool]] = is_termination_msg_mathchat,
        human_input_mode: Literal["ALWAYS", "NEVER", "TERMINATE"] = "NEVER",
        default_auto_reply: Optional[Union[str, dict]] = DEFAULT_REPLY,
        max_invalid_q_per_step=3,
        **kwargs: Any,
    ):
        super().__init__(
            name=name,
            is_termination_msg=is_termination_msg,
            human_input_mode=human_input_mode,
            default_auto_reply=default_auto_reply,
            max_invalid_q_per_step=max_invalid_q_per_step,
            **kwargs,
        )
        del self._reply_func_list[2]
        self.register_reply([Agent, None], MathUserProxyAgent._generate_math_reply, position=4)
        del self._reply_func_list[3]
        self.register_reply(
            trigger=autogen.ConversableAgent, reply_func=MathUserProxyAgent.generate_function_call_reply, position=3
        )
        self.register_reply(
            trigger=autogen.ConversableAgent, reply_func=MathUserProxyAgent._check_final_result, position=0
        )

        self.max_function_call_trial = 3
        self.query = None
        self.answer = None
        self.is_correct = None
        self.last_history = []

    def generate_function_call_reply(self, messages=None, sender=None, config=None):
        """Generate a reply using function call."""
        if messages is None:
            messages = self._oai_messages[sender]
        message = messages[-1]
        if "function_call" in message:
            is_exec_success, func_return = self.execute_function(message["function_call"])
            if is_exec_success:
                self.max_function_call_trial = 3
                return True, func_return
            else:
                if self.max_function_call_trial == 0:
                    error_message = func_return["content"]
                    self.max_function_call_trial = 3
                    return (
                        True,
                        "The func is executed failed many times. "
                        + error_message
                        + ". Please directly reply me with TERMINATE. We need to terminate the conversation.",
                    )
                else:
                    revise_prompt = "You may make a wrong function call (It may due the arguments you provided doesn't fit the function arguments like missing required positional argument). \
                    If you think this error occurs due to you make a wrong function arguments input and you could make it success, please try to call this function again using the correct arguments. \
                    Otherwise, the error may be caused by the function itself. Please directly reply me with TERMINATE. We need to terminate the conversation. "
                    error_message = func_return["content"]
                    return True, "The func is executed failed." + error_message + revise_prompt
        return False, None

    def initiate_chat(self, recipient, answer: None, silent: Optional[bool] = False, **context):
        self.query = context["problem"]
        if not isinstance(answer, str):
            answer = str(answer)
            if answer.endswith(".0"):
                answer = answer[:-2]
            self._answer = answer
        else:
            self._answer = answer

        self.is_correct = None

        self._prepare_chat(recipient, True)
        prompt = self.PROMPTS + context["problem"]
        self.send(prompt, recipient, silent=silent)

        # The fix: keep the conversation before the reset below discards it.
        self.last_history = copy.deepcopy(recipient.chat_messages_for_summary(self))
        recipient.reset()
        is_correct = copy.deepcopy(self.is_correct)
        self._reset()
        return is_correct

    def _check_final_result(self, messages=None, sender=None, config=None):
        messages = messages[-1]
        if isinstance(messages, dict):
            messages = messages.get("content")
            if messages is None:
                return False, None

        if not contains_python_code(messages) and get_answer(messages) is not None and get_answer(messages) != "":
            if get_answer(messages) == self._answer:
                self.is_correct = 1
                return True, "The result is Correct. Please reply me with TERMINATE."
            else:
                self.is_correct = 0
                return False, None
        else:
            return False, None

    def _reset(self):
        super()._reset()
        self.max_function_call_trial = 3
        self.is_correct = None
        self.query = None
        self.answer = None


def make_agents(llm_config: dict):
    """The notebook's agent pair: AG2's AssistantAgent and the subclass above."""
    assistant = autogen.AssistantAgent(
        name="assistant",
        system_message="You are a helpful assistant.",
        llm_config=llm_config,
    )
    user_proxy = MathUserProxyAgent(
        name="mathproxyagent",
        human_input_mode="NEVER",
        code_execution_config={"work_dir": "_output", "use_docker": False},
    )
    return assistant, user_proxy


def solve_all(user_proxy, assistant, problems) -> int:
    """The notebook's test phase: number of problems solved."""
    solved = 0
    for problem in problems:
        is_correct = user_proxy.initiate_chat(recipient=assistant, answer=problem["answer"], problem=problem["question"])
        solved += is_correct or 0
    return solved


def train(optimizer, user_proxy, assistant, problems, epochs: int):
    """The notebook's training loop: epochs of record_one_conversation + step() +
    update_function_signature / register_function."""
    for _ in range(epochs):
        for problem in problems:
            is_correct = user_proxy.initiate_chat(assistant, answer=problem["answer"], problem=problem["question"])
            optimizer.record_one_conversation(user_proxy.last_history, is_satisfied=is_correct)
        register_for_llm, register_for_executor = optimizer.step()
        for item in register_for_llm:
            assistant.update_function_signature(**item)
        if len(register_for_executor.keys()) > 0:
            user_proxy.register_function(function_map=register_for_executor)
