"""``agentopt.FunctionSet``: a trained set of learned functions, installed into
AG2 agents; its callables run in agentopt's sandbox, never in this process."""

from os import PathLike
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from . import _agentopt
from ._agentopt import LearnedFunction

__all__ = ["FunctionSet", "LearnedFunction"]

STYLES = ("functions", "tools")


class FunctionSet:
    """A set of learned functions (a trained ``functions.json``), ready for AG2 agents.

    ``FunctionSet.load(path)`` reads one; ``install(assistant, executor)`` gives the
    agents exactly this set. Each callable runs its code in a sandbox worker shared
    by the set (one fresh namespace per call).
    """

    def __init__(self, inner: Any) -> None:
        if not isinstance(inner, _agentopt.FunctionSet):
            raise TypeError("FunctionSet(...) wraps a loaded set: use FunctionSet.load(path)")
        self._inner = inner

    @classmethod
    def _wrap(cls, inner: Any) -> "FunctionSet":
        return cls(inner)

    @classmethod
    def load(
        cls,
        path: Union[str, "PathLike[str]"],
        *,
        function_timeout: float = 600.0,
        allow_unsandboxed: bool = False,
        packages: Sequence[str] = (),
    ) -> "FunctionSet":
        """Loads a function-set artifact (``functions.json`` of a training run, or
        ``AgentOptimizer.export_artifact``). ``function_timeout`` (seconds per call,
        600 as AG2), ``allow_unsandboxed`` and ``packages`` as for ``AgentOptimizer``."""
        return cls(
            _agentopt.FunctionSet.load(
                str(path), function_timeout=function_timeout, allow_unsandboxed=allow_unsandboxed,
                packages=list(packages),
            )
        )

    def save(self, path: Union[str, "PathLike[str]"]) -> None:
        """Writes the set as an artifact."""
        self._inner.save(str(path))

    @property
    def names(self) -> List[str]:
        """The functions' names, in order."""
        return self._inner.names

    @property
    def functions(self) -> List[LearnedFunction]:
        """The functions, as sandboxed callables."""
        return self._inner.functions

    def __len__(self) -> int:
        return len(self._inner)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._inner

    def __getitem__(self, name: str) -> LearnedFunction:
        return self._inner[name]

    def __iter__(self) -> Iterator[LearnedFunction]:
        return iter(self.functions)

    def registrations(self) -> Tuple[List[Dict[str, Any]], Dict[str, Optional[LearnedFunction]]]:
        """``(register_for_llm, register_for_executor)`` in ``AgentOptimizer.step()``'s
        shapes, for agents that should hold exactly this set."""
        return self._inner.registrations()

    def install(self, assistant: Any, executor: Any = None, *, replace: bool = True, style: str = "functions") -> None:
        """Installs the set into AG2 agents: every signature into ``assistant``,
        every callable into ``executor`` (``register_function``; the assistant
        itself when no executor is given).

        Args:
            replace: first remove the learned functions (agentopt callables) the
                agents already hold that this set does not, so a reused agent pair
                holds exactly this set; the agents' own tools stay.
            style: ``"functions"`` (AG2's ``update_function_signature``, what
                AG2's AgentOptimizer used) or ``"tools"`` (``update_tool_signature``).
        """
        if style not in STYLES:
            raise ValueError(f"style: expected one of {STYLES}, got {style!r}")
        executor = assistant if executor is None else executor
        if replace:
            self._remove_stale(assistant, executor, style)
        for_llm, for_executor = self.registrations()
        for item in for_llm:
            if style == "tools":
                assistant.update_tool_signature({"type": "function", "function": item["func_sig"]}, is_remove=False)
            else:
                assistant.update_function_signature(**item)
        executor.register_function(function_map=for_executor)

    def _remove_stale(self, assistant: Any, executor: Any, style: str) -> None:
        function_map = getattr(executor, "function_map", {}) or {}
        stale = [
            name for name, function in function_map.items()
            if isinstance(function, LearnedFunction) and name not in self
        ]
        if not stale:
            return
        executor.register_function(function_map={name: None for name in stale})
        llm_config = getattr(assistant, "llm_config", None) or {}
        offered = {entry.get("name") for entry in llm_config.get("functions", []) or []}
        offered_tools = {tool.get("function", {}).get("name") for tool in llm_config.get("tools", []) or []}
        for name in stale:
            if name in offered:
                assistant.update_function_signature(name, is_remove=True)
            if name in offered_tools:
                assistant.update_tool_signature(name, is_remove=True)

    def __repr__(self) -> str:
        return f"<agentopt.FunctionSet {self.names}>"
