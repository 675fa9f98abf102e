"""The seed notebook's empty-history trap, and the helper that avoids it.

The AgentOptimizer notebook (``agentchat_agentoptimizer``) subclasses
``MathUserProxyAgent`` and its ``initiate_chat`` ends with ``recipient.reset()``;
the training loop then reads ``assistant.chat_messages_for_summary(user_proxy)``
*after* that reset, so every conversation the optimizer records is empty (with
AG2's optimizer and with agentopt's alike). ``AgentOptimizer.record_one_conversation``
warns when it is handed an empty history; ``keep_history`` records the history
before the reset instead.
"""

import copy
import functools
from typing import Any, Callable, Dict, List

__all__ = ["keep_history", "EMPTY_HISTORY_WARNING"]

EMPTY_HISTORY_WARNING = (
    "agentopt: record_one_conversation() got an empty conversation history: the optimizer learns "
    "nothing from it. The seed notebook reads assistant.chat_messages_for_summary(user_proxy) after "
    "initiate_chat() reset the assistant; wrap the proxy with agentopt.notebook.keep_history(user_proxy) "
    "and pass user_proxy.last_history instead."
)


def keep_history(user_proxy: Any) -> Any:
    """Makes ``user_proxy.initiate_chat(recipient, ...)`` keep the conversation
    in ``user_proxy.last_history`` (a deep copy of
    ``recipient.chat_messages_for_summary(user_proxy)`` taken just before
    ``recipient.reset()``), and returns the proxy. The notebook's loop then records
    ``user_proxy.last_history`` instead of the emptied summary."""
    original: Callable[..., Any] = user_proxy.initiate_chat
    user_proxy.last_history = []

    @functools.wraps(original)
    def initiate_chat(recipient: Any, *args: Any, **kwargs: Any) -> Any:
        reset = recipient.reset

        def keep_then_reset(*reset_args: Any, **reset_kwargs: Any) -> Any:
            history: List[Dict[str, Any]] = recipient.chat_messages_for_summary(user_proxy)
            user_proxy.last_history = copy.deepcopy(history)
            return reset(*reset_args, **reset_kwargs)

        recipient.reset = keep_then_reset
        try:
            return original(recipient, *args, **kwargs)
        finally:
            recipient.reset = reset

    user_proxy.initiate_chat = initiate_chat
    return user_proxy
