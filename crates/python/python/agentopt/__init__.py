"""agentopt: train AG2 agents by learning the Python functions they may call.

``agentopt.AgentOptimizer`` is a drop-in replacement for ag2 0.13.4's
``autogen.agentchat.contrib.agent_optimizer.AgentOptimizer`` (which AG2 deprecated
and removed): same constructor, ``record_one_conversation``, ``step`` and
``reset_optimizer``, with the optimizer running in Rust, every proposed function
validated before it is accepted, and learned code run in an isolated sandbox
worker instead of the user's process. Moving a notebook over is one import::

    from agentopt import AgentOptimizer

``agentopt.Trainer`` runs a whole training run (test, epochs of attempts and
optimizer steps, test) over a task written in Python, with a crash-safe run
directory that a second ``run()`` continues; ``agentopt.FunctionSet.load`` reads the
trained ``functions.json`` and installs it into AG2 agents.
"""

from . import errors
from ._agentopt import AgentOptimizer, FunctionSet, LearnedFunction, Trainer, TrainingReport, __version__
from .errors import (
    AgentOptError,
    CheckpointError,
    ConfigError,
    LearnedFunctionError,
    ModelError,
    OptimizerError,
    SandboxError,
)

__all__ = [
    "AgentOptimizer",
    "FunctionSet",
    "LearnedFunction",
    "Trainer",
    "TrainingReport",
    "AgentOptError",
    "CheckpointError",
    "ConfigError",
    "LearnedFunctionError",
    "ModelError",
    "OptimizerError",
    "SandboxError",
    "errors",
    "__version__",
]
