"""``agentopt.Trainer``: a whole training run (test, epochs of attempts and
optimizer steps, test) over a task written in Python, with a crash-safe run
directory that a second ``run()`` continues."""

import asyncio
import inspect
from os import PathLike
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from . import _agentopt
from ._html import markdown_to_html
from ._usage import format_usage_summary
from .functions import FunctionSet
from .optimizer import DEFAULT_FUNCTION_TIMEOUT, DEFAULT_OPTIMIZER_MODEL, extension_options, plain_config
from .progress import default_progress

__all__ = ["Trainer", "TrainingReport"]

Progress = Union[None, bool, Callable[[Dict[str, Any]], Any]]


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


class _Task:
    """The task as the Rust trainer calls it: ``functions`` wrapped as an
    ``agentopt.FunctionSet``, an ``async def attempt`` run to completion on the
    attempt's own thread (which has no event loop, even under Jupyter)."""

    def __init__(self, task: Any) -> None:
        self._attempt = getattr(task, "attempt", task)
        if not callable(self._attempt):
            raise TypeError("task: expected an object with attempt(problem, functions), or such a callable")
        self.task_name = type(task).__name__
        for optional in ("problem_id", "problem_text", "reference_answer"):
            if hasattr(task, optional):
                setattr(self, optional, getattr(task, optional))
        if hasattr(task, "attempt_calling"):
            self._attempt_calling = task.attempt_calling
            self.attempt_calling = self._call_forced

    def attempt(self, problem: Any, functions: Any) -> Any:
        return _completed(self._attempt(problem, FunctionSet._wrap(functions)))

    def _call_forced(self, problem: Any, functions: Any, name: str) -> Any:
        return _completed(self._attempt_calling(problem, FunctionSet._wrap(functions), name))


def _completed(result: Any) -> Any:
    """``result``, awaited to completion when an ``async def`` returned it."""
    if inspect.isawaitable(result):
        result = asyncio.run(_awaited(result))
    return result


class TrainingReport:
    """A training run's report (also ``report.json`` / ``report.md`` in the run
    directory); ``function_set`` is the trained set, ready to ``install``."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        trained = inner.function_set
        self.function_set: Optional[FunctionSet] = None if trained is None else FunctionSet._wrap(trained)

    @property
    def test_before(self) -> Dict[str, Any]:
        """Test accuracy before training: ``{"correct", "total", "rate", "interval"}``."""
        return self._inner.test_before

    @property
    def test_after(self) -> Dict[str, Any]:
        """Test accuracy after training."""
        return self._inner.test_after

    @property
    def epochs(self) -> List[Dict[str, Any]]:
        """One dict per training epoch that ran."""
        return self._inner.epochs

    @property
    def functions(self) -> List[Dict[str, Any]]:
        """The functions the agents hold after training, with their use."""
        return self._inner.functions

    @property
    def mcnemar_p(self) -> float:
        """Exact McNemar p-value of the before/after pairs."""
        return self._inner.mcnemar_p

    @property
    def stopped_early(self) -> Optional[str]:
        """Why training ended before its planned epochs (patience), if it did."""
        return self._inner.stopped_early

    @property
    def incomplete(self) -> Optional[str]:
        """Why the run stopped before its end (infrastructure errors, budget); None
        for a finished run. Running again continues it."""
        return self._inner.incomplete

    @property
    def infrastructure(self) -> List[Dict[str, Any]]:
        """Attempts stopped by infrastructure, per phase."""
        return self._inner.infrastructure

    @property
    def use_rates(self) -> List[Dict[str, Any]]:
        """Per phase, the conversations offered a learned function and those that
        called it: ``{"phase", "function" (None: any), "offered", "called",
        "shadowed"}``. A Python task's calls are those its agents made through the
        ``FunctionSet``'s callables (what ``install`` registers)."""
        return self._inner.use_rates

    def to_dict(self) -> Dict[str, Any]:
        """The whole report as plain dicts and lists (``report.json``)."""
        return self._inner.to_dict()

    def to_markdown(self) -> str:
        """The report as Markdown (``report.md``)."""
        return self._inner.to_markdown()

    def summary(self) -> str:
        """The seed notebook's closing print: functions learned, success rates."""
        return self._inner.summary()

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def _repr_html_(self) -> str:
        return markdown_to_html(self.to_markdown())

    def __repr__(self) -> str:
        return repr(self._inner).replace("agentopt._agentopt.", "agentopt.")


class Trainer:
    """Trains the functions of a task written in Python: test before, then epochs of
    (attempts, optimizer step), then test after, with a crash-safe run directory
    that a second ``run()`` continues.

    ``task`` is an object with ``attempt(problem, functions: FunctionSet)`` (a
    plain or ``async def``; optionally ``problem_id(problem) -> str``,
    ``problem_text(problem) -> str``: a test problem with a training problem's text
    is refused and retrieval matches it, ``reference_answer(problem) -> str``: worked
    examples are checked against it, and ``attempt_calling(problem, functions,
    name)``: an attempt whose assistant is made to call ``name``), or such a
    callable. ``attempt`` installs ``functions`` into its agents
    (``functions.install(assistant, user_proxy)``, which replaces what a reused
    pair held) and returns a bool (solved) or a dict with ``solved`` and optionally
    ``history`` (AG2 messages: what the optimizer reads), ``reason``, ``feedback``,
    ``answer``, ``expected`` (added to the history as a verdict message, so the
    optimizer sees why), ``tokens``, or ``infrastructure`` (a message: the attempt
    failed outside the agents). An exception, or a sandbox failure in one of its
    learned-function calls, is an infrastructure failure: not training signal,
    run again by the next ``run()`` over the same ``run_dir``.

    Args:
        run_dir: where the run's journal, checkpoints, ``functions.json`` and report go.
        epochs: training epochs (2); 0 with ``initial_functions``: test them untrained.
        max_actions_per_step: optimizer actions per step (3).
        concurrency: attempts at once, on worker threads (1).
        progress: None (default) shows progress (a tqdm bar when tqdm is installed,
            ``tqdm.auto`` in Jupyter, else plain lines on stderr); False shows
            nothing; a callable receives one dict per event (``phase_started``,
            ``resumed``, ``finished``, ``phase_finished``, ``step_started``,
            ``step_finished``).
        max_consecutive_infrastructure_errors: stop the run after this many (3).
        budget_usd, prices: stop the run once the optimizer's calls cost this much
            (agentopt does not see what the task's own agents spend).
        routing, replica_cap: ``"spread"`` spreads the optimizer's calls over the
            ``config_list`` entries as replicas (a partitioned step's groups run at
            once), at most ``replica_cap`` at a time on each; see ``AgentOptimizer``.
        initial_functions: an ``agentopt.FunctionSet`` (an earlier run's
            ``functions.json``, loaded) to start from instead of none; with
            ``epochs=0`` nothing is trained and the test after runs with it.
        retrieval_k: offer each problem at most K functions, the most relevant among
            those sharing a word with its text (None: all, as AG2).
        bootstrap_demonstrations: give each function up to N worked examples read
            off correct training attempts that called it, verified in the sandbox (0).
        forced_call_demonstrations: after each step, a function with no worked
            example gets one from ``task.attempt_calling`` on the training problem
            most like it, kept when solved and verified (False).
        force_call: every attempt offered a function is made to call the most
            relevant one through ``task.attempt_calling`` (False).
        demonstrations, execution_checks, use_statistics, prune_unused_after,
            from_what_worked: the optimizer's learned-use levers (all off, as AG2):
            worked examples asked for with each function; proposed functions called
            on sample arguments before they are accepted; each function's calls shown
            to the optimizer; a function no attempt called for N epochs removed;
            correct solutions shown to be generalised into functions.
        The other options are ``AgentOptimizer``'s.
    """

    def __init__(
        self,
        task: Any,
        llm_config: Optional[Union[Mapping[str, Any], Any]] = None,
        optimizer_model: Optional[str] = DEFAULT_OPTIMIZER_MODEL,
        *,
        run_dir: Union[str, "PathLike[str]", None] = None,
        epochs: Optional[int] = None,
        max_actions_per_step: Optional[int] = None,
        concurrency: Optional[int] = None,
        progress: Progress = None,
        max_consecutive_infrastructure_errors: Optional[int] = None,
        patience: Optional[int] = None,
        max_retries: Optional[int] = None,
        reply_room_tokens: Optional[int] = None,
        max_prompt_tokens: Optional[int] = None,
        max_tool_output_chars: Optional[int] = None,
        validation_significance: Optional[float] = None,
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
        initial_functions: Optional[FunctionSet] = None,
        retrieval_k: Optional[int] = None,
        bootstrap_demonstrations: Optional[int] = None,
        forced_call_demonstrations: Optional[bool] = None,
        force_call: Optional[bool] = None,
        demonstrations: Optional[bool] = None,
        execution_checks: Optional[bool] = None,
        use_statistics: Optional[bool] = None,
        prune_unused_after: Optional[int] = None,
        from_what_worked: Optional[bool] = None,
    ) -> None:
        options = extension_options(locals(), ("task", "llm_config", "optimizer_model", "progress"))
        if initial_functions is not None:
            # The extension checks the type and names the option when it is wrong.
            options["initial_functions"] = getattr(initial_functions, "_inner", initial_functions)
        self.task = task
        self.optimizer_model = optimizer_model
        self.llm_config = plain_config(llm_config)
        self.run_dir = run_dir
        if progress is None:
            progress = default_progress()
        elif progress is False:
            progress = None
        elif not callable(progress):
            raise TypeError("progress: expected None, False or a callable receiving event dicts")
        self.progress = progress
        if progress is not None:
            options["progress"] = progress
        self._inner = _agentopt.Trainer(_Task(task), self.llm_config, optimizer_model, **options)

    def run(
        self, train: Iterable[Any], test: Iterable[Any], validation: Optional[Iterable[Any]] = None
    ) -> TrainingReport:
        """Runs, or continues over the same run_dir, and returns the report (its
        ``function_set`` is the trained set). Problem ids come from
        ``task.problem_id(problem)``, else ``problem["id"]``, else ``str(problem)``."""
        return TrainingReport(self._inner.run(list(train), list(test), None if validation is None else list(validation)))

    @property
    def usage(self) -> Dict[str, Any]:
        """The optimizer's model usage so far, in ``AgentOptimizer.usage``'s shape."""
        return self._inner.usage

    def print_usage_summary(self, mode: Union[str, Iterable[str]] = ("actual", "total")) -> None:
        """Prints the optimizer's usage and cost as AG2's ``print_usage_summary``."""
        print(format_usage_summary(self.usage, mode))
