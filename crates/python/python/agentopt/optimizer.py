"""``agentopt.AgentOptimizer``: ag2 0.13.4's ``AgentOptimizer``, signature for
signature, as a plain Python class over the Rust optimizer (``agentopt._agentopt``)."""

import copy
import os
import warnings
from os import PathLike
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from . import _agentopt
from ._usage import format_usage_summary
from .notebook import EMPTY_HISTORY_WARNING

__all__ = ["AgentOptimizer", "DEFAULT_FUNCTION_TIMEOUT", "DEFAULT_OPTIMIZER_MODEL"]

DEFAULT_OPTIMIZER_MODEL = "gpt-4-1106-preview"
"""AG2's default ``optimizer_model``."""

DEFAULT_FUNCTION_TIMEOUT = 600.0
"""Seconds one learned-function call may take (AG2's ``execute_function`` default)."""


def extension_options(arguments: Mapping[str, Any], positional: Iterable[str]) -> Dict[str, Any]:
    """A constructor's keyword options (its ``locals()``, less ``positional``) as the
    extension takes them: None (agentopt's default) left out, paths as str,
    ``packages`` as a list, ``prices`` as a dict."""
    skipped = set(positional) | {"self", "cls"}
    options = {}
    for name, value in arguments.items():
        if name in skipped or name.startswith("_") or value is None:
            continue
        if isinstance(value, PathLike):
            value = os.fspath(value)
        elif name == "packages":
            value = list(value)
        elif name == "prices":
            value = dict(value)
        options[name] = value
    return options


POSITIONAL = ("max_actions_per_step", "llm_config", "optimizer_model")
"""The arguments AG2's constructor takes, passed to the extension positionally."""


def plain_config(llm_config: Any) -> Any:
    """``llm_config`` as AG2 keeps it: a deep copy, an ``LLMConfig`` dumped to a dict."""
    llm_config = copy.deepcopy(llm_config)
    if hasattr(llm_config, "model_dump"):
        return llm_config.model_dump()
    return llm_config


class AgentOptimizer:
    """Learns the Python functions an AG2 agent pair may call.

    A drop-in for ag2 0.13.4's ``autogen.agentchat.contrib.agent_optimizer.AgentOptimizer``
    (same constructor, ``record_one_conversation``, ``step``, ``reset_optimizer`` and
    public attributes ``max_actions_per_step``, ``llm_config``, ``optimizer_model``),
    with every proposed function validated before it is accepted, bounded prompts,
    roll-back, early stop, checkpoints, and learned code run in an isolated sandbox
    worker instead of this process.

    Args:
        max_actions_per_step: function additions, revisions or removals per step.
        llm_config: AG2's ``llm_config`` (a dict with ``config_list``, or an
            ``autogen.LLMConfig``), read as AG2's ``OpenAIWrapper`` reads it: top-level
            keys apply to every entry; a missing ``api_key`` comes from
            ``OPENAI_API_KEY`` (``AZURE_OPENAI_API_KEY`` for Azure); ``timeout``,
            ``max_tokens``, ``default_headers``, ``cache_seed`` (the reply cache),
            ``price`` (cost), ``temperature`` and ``seed`` take effect; other keys are
            named in a ``UserWarning``. api_types: ``openai``, ``azure``, and the
            OpenAI-compatible ``deepseek``, ``together``, ``groq``, ``cerebras``,
            ``mistral``, ``ollama``; any other is a ``ConfigError`` naming the entry.
        optimizer_model: the entries of ``config_list`` with this ``model`` serve the
            optimizer, tried in order (AG2's fallback); None keeps every entry.
        patience: ``should_stop`` after this many steps without improvement.
        max_retries: retries of a rejected proposal, its errors fed back (3).
        reply_room_tokens: room kept for the optimizer's reply (768, or
            ``llm_config["max_tokens"]``).
        max_prompt_tokens: a prompt budget tighter than the context window.
        max_tool_output_chars: longer tool outputs are cut in prompts (2000).
        validation_significance: decide on held-out problems recorded with
            ``record_validation_outcome`` (exact sign test at this level).
        checkpoint: a file written after every change; see ``resume``.
        temperature, seed: the optimizer's sampling (override ``llm_config``'s).
        action_format: ``"tool_calls"`` (default) or ``"json_schema"`` for small
            local models that answer tool prompts in prose.
        require_action: the first reply of a step must act.
        context_window: the model's context window in tokens. Without it, the
            server is asked, then a table of known models; failing both, 32768 is
            assumed with a ``UserWarning`` and a smaller limit is learned from the
            server's first context-overflow error (the step is then run again).
        function_timeout: seconds one learned-function call may take (600, as AG2).
        allow_unsandboxed: run learned code without namespaces where bubblewrap is
            unavailable (rlimits, Landlock and seccomp still apply). See
            ``agentopt.check_sandbox()``.
        packages: allowlisted packages (``agentopt.PACKAGE_ALLOWLIST``) installed in
            the sandbox's environment beside sympy and numpy, outside the sandbox
            (which has no network), for the learned functions to import.
        budget_usd: stop (``ModelError``) once the optimizer's calls cost this much.
        prices: ``{model: (prompt, completion)}`` dollars per 1000 tokens, as
            AG2's ``price`` (which an entry may carry too).
        routing: how the calls share the ``config_list`` entries serving the
            optimizer model: ``"fallback"`` (AG2's, the default: in order, the next
            when one fails) or ``"spread"`` (replicas of one model: least
            outstanding calls, a replica failing repeatedly is set aside for a
            while, its calls retried on the others).
        replica_cap: with ``routing="spread"``, calls in flight at once on one
            entry (16).

    Raises:
        ConfigError: a bad ``llm_config`` or option, naming the field, before any
            model call.
    """

    def __init__(
        self,
        max_actions_per_step: int,
        llm_config: Optional[Union[Mapping[str, Any], Any]] = None,
        optimizer_model: Optional[str] = DEFAULT_OPTIMIZER_MODEL,
        *,
        patience: Optional[int] = None,
        max_retries: Optional[int] = None,
        reply_room_tokens: Optional[int] = None,
        max_prompt_tokens: Optional[int] = None,
        max_tool_output_chars: Optional[int] = None,
        validation_significance: Optional[float] = None,
        checkpoint: Optional[Union[str, "PathLike[str]"]] = None,
        temperature: Optional[float] = None,
        seed: Optional[int] = None,
        action_format: Optional[str] = None,
        require_action: Optional[bool] = None,
        context_window: Optional[int] = None,
        function_timeout: float = DEFAULT_FUNCTION_TIMEOUT,
        allow_unsandboxed: bool = False,
        packages: Sequence[str] = (),
        budget_usd: Optional[float] = None,
        prices: Optional[Mapping[str, Tuple[float, float]]] = None,
        routing: Optional[str] = None,
        replica_cap: Optional[int] = None,
    ) -> None:
        options = extension_options(locals(), POSITIONAL)
        self.max_actions_per_step = max_actions_per_step
        self.optimizer_model = optimizer_model
        self.llm_config = plain_config(llm_config)
        self._inner = _agentopt.AgentOptimizer(max_actions_per_step, self.llm_config, optimizer_model, **options)

    @classmethod
    def resume(
        cls,
        checkpoint: Union[str, "PathLike[str]"],
        llm_config: Optional[Union[Mapping[str, Any], Any]] = None,
        optimizer_model: Optional[str] = DEFAULT_OPTIMIZER_MODEL,
        *,
        context_window: Optional[int] = None,
        function_timeout: float = DEFAULT_FUNCTION_TIMEOUT,
        allow_unsandboxed: bool = False,
        packages: Sequence[str] = (),
        budget_usd: Optional[float] = None,
        prices: Optional[Mapping[str, Tuple[float, float]]] = None,
        routing: Optional[str] = None,
        replica_cap: Optional[int] = None,
    ) -> "AgentOptimizer":
        """Continues from a checkpoint written with ``checkpoint=PATH``, with the
        optimizer options saved in it; the next ``step()`` sends what an
        uninterrupted run would have. ``registrations_in_force()`` then gives the
        functions in force, to install on fresh agents."""
        options = extension_options(locals(), POSITIONAL + ("checkpoint",))
        optimizer = cls.__new__(cls)
        optimizer.optimizer_model = optimizer_model
        optimizer.llm_config = plain_config(llm_config)
        optimizer._inner = _agentopt.AgentOptimizer.resume(
            str(checkpoint), optimizer.llm_config, optimizer_model, **options
        )
        optimizer.max_actions_per_step = optimizer._inner.max_actions_per_step
        return optimizer

    def record_one_conversation(
        self, conversation_history: Sequence[Mapping[str, Any]], is_satisfied: Optional[bool] = None
    ) -> None:
        """Records one conversation held with the functions in force and whether the
        user was satisfied. ``is_satisfied=None`` counts as not satisfied (AG2 asked
        on stdin, which blocks an unattended run); any truthy value as satisfied.
        An empty history raises a ``UserWarning`` (see ``agentopt.notebook``)."""
        if len(conversation_history) == 0:
            warnings.warn(EMPTY_HISTORY_WARNING, UserWarning, stacklevel=2)
        self._inner.record_one_conversation(conversation_history, is_satisfied)

    def record_validation_outcome(self, problem_id: str, is_satisfied: bool) -> None:
        """Records the functions in force's outcome on one held-out validation
        problem (only with ``validation_significance=``)."""
        self._inner.record_validation_outcome(problem_id, is_satisfied)

    def step(self) -> Tuple[List[Dict[str, Any]], Dict[str, Any]]:
        """One training step: ``(register_for_llm, register_for_executor)`` in AG2's
        shapes: pass each item of the first to ``assistant.update_function_signature(**item)``
        (removals first, then every function in force), the second to
        ``user_proxy.register_function(function_map=...)`` (None removes)."""
        return self._inner.step()

    def reset_optimizer(self) -> None:
        """Forgets everything learned (functions, conversations, scores)."""
        self._inner.reset_optimizer()

    def registrations_in_force(self) -> Tuple[List[Dict[str, Any]], Dict[str, Any]]:
        """``step()``'s shapes for the functions in force, without removals: what
        fresh agents need (after ``resume``, say)."""
        return self._inner.registrations_in_force()

    @property
    def last_step(self) -> Optional[Dict[str, Any]]:
        """The last step's report (accepted, improved, trial_performance, actions,
        rejected, prompts, functions, …); None before the first step."""
        return self._inner.last_step

    @property
    def should_stop(self) -> bool:
        """True when the last step ran out of ``patience``: stop training."""
        return self._inner.should_stop

    @property
    def best_performance(self) -> Optional[float]:
        """The best score so far (None before the first step)."""
        return self._inner.best_performance

    @property
    def usage(self) -> Dict[str, Any]:
        """The optimizer's own model usage in AG2's ``gather_usage_summary`` shape."""
        return self._inner.usage

    def print_usage_summary(self, mode: Union[str, Iterable[str]] = ("actual", "total")) -> None:
        """Prints the optimizer's usage and cost as AG2's ``print_usage_summary``."""
        print(format_usage_summary(self.usage, mode))

    def export_artifact(self, path: Union[str, "PathLike[str]"]) -> "FunctionSet":
        """Writes the best function list as a portable artifact (``FunctionSet.load``
        reads it) and returns it."""
        from .functions import FunctionSet

        return FunctionSet._wrap(self._inner.export_artifact(str(path)))

    def __repr__(self) -> str:
        return (
            f"<agentopt.AgentOptimizer max_actions_per_step={self.max_actions_per_step} "
            f"optimizer_model={self.optimizer_model!r}>"
        )
