"""agentopt: train AG2 agents by learning the Python functions they may call.

``agentopt.AgentOptimizer`` is a drop-in replacement for ag2 0.13.4's
``autogen.agentchat.contrib.agent_optimizer.AgentOptimizer`` (which AG2 deprecated
and removed): same constructor, ``record_one_conversation``, ``step``,
``reset_optimizer`` and public attributes, with the optimizer running in Rust,
every proposed function validated before it is accepted, and learned code run in
an isolated sandbox worker instead of the user's process. Moving a notebook over
is one import::

    from agentopt import AgentOptimizer

(The seed notebook records empty histories, with AG2 as with agentopt: see
``agentopt.notebook.keep_history``.)

``agentopt.Trainer`` runs a whole training run (test, epochs of attempts and
optimizer steps, test) over a task written in Python, with a crash-safe run
directory that a second ``run()`` continues; its report's ``function_set`` (or
``agentopt.FunctionSet.load``) installs the trained functions into AG2 agents.
``agentopt.check_sandbox()`` says what isolation this machine gives learned code.
Rust-side log records (retries, fallbacks, rejected proposals) go to Python's
``logging`` under ``agentopt_llm``, ``agentopt_optimizer``, … loggers.
"""

from . import errors, notebook
from ._agentopt import PACKAGE_ALLOWLIST, LearnedFunction, __version__, check_sandbox
from .errors import (
    AgentOptError,
    CheckpointError,
    ConfigError,
    LearnedFunctionError,
    ModelError,
    OptimizerError,
    SandboxError,
)
from .functions import FunctionSet
from .optimizer import AgentOptimizer
from .trainer import Trainer, TrainingReport

__all__ = [
    "AgentOptimizer",
    "FunctionSet",
    "LearnedFunction",
    "Trainer",
    "TrainingReport",
    "check_sandbox",
    "PACKAGE_ALLOWLIST",
    "AgentOptError",
    "CheckpointError",
    "ConfigError",
    "LearnedFunctionError",
    "ModelError",
    "OptimizerError",
    "SandboxError",
    "errors",
    "notebook",
    "__version__",
]
