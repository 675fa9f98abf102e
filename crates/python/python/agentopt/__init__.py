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
``logging`` under ``agentopt_llm``, ``agentopt_optimizer``, … loggers. Every run
writes ``report.html`` (the whole run as one page); ``agentopt.report(run_dir)``
rebuilds it.
"""

import os
import pathlib
from typing import Union

from . import errors, notebook
from ._agentopt import PACKAGE_ALLOWLIST, LearnedFunction, __version__, check_sandbox
from ._agentopt import write_report_html as _write_report_html
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


def report(run_dir: Union[str, "os.PathLike[str]"]) -> pathlib.Path:
    """Rebuilds ``report.html`` of a run directory from its files and returns its path.

    The page is self-contained (no network, no server): open it in a browser. Raises
    ``CheckpointError`` naming the file when ``report.json`` or a journal line cannot
    be read.
    """
    return pathlib.Path(_write_report_html(os.fspath(run_dir)))


__all__ = [
    "report",
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
