"""Exceptions raised by agentopt.

Each carries the Rust error's message and, where the error names one, the
offending ``field`` (e.g. ``"config_list[0].api_type"``) and its ``value``.
"""

from typing import Optional

__all__ = [
    "AgentOptError",
    "ConfigError",
    "ModelError",
    "SandboxError",
    "OptimizerError",
    "CheckpointError",
    "LearnedFunctionError",
]


class AgentOptError(Exception):
    """Base class of every agentopt error."""

    def __init__(self, message: str, *, field: Optional[str] = None, value: Optional[str] = None):
        super().__init__(message)
        self.field = field
        self.value = value


class ConfigError(AgentOptError, ValueError):
    """A bad ``llm_config``, option or argument, found before any model call.

    Also a ``ValueError``, which AG2 raises for a missing ``llm_config``.
    """


class ModelError(AgentOptError):
    """The optimizer model failed: HTTP error after retries, timeout, context overflow, budget."""


class SandboxError(AgentOptError):
    """The sandbox could not run code at all (no isolation available, worker start, setup)."""


class OptimizerError(AgentOptError):
    """The optimizer refused the call (``step()`` with nothing recorded, a prompt that cannot fit)."""


class CheckpointError(AgentOptError):
    """A checkpoint or artifact file could not be read or written; ``value`` is its path."""


class LearnedFunctionError(AgentOptError):
    """A learned function raised, timed out or crashed in the sandbox.

    The message is AG2's ``"Error in executing function:"`` followed by the traceback.
    """
