"""Type stubs of the extension module. The public API is the pure-Python classes
of ``agentopt`` (``optimizer.py``, ``functions.py``, ``trainer.py``), which wrap
these objects as ``_inner``; ``LearnedFunction``, ``check_sandbox`` and
``PACKAGE_ALLOWLIST`` are re-exported as they are."""

from os import PathLike
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

__version__: str
PACKAGE_ALLOWLIST: List[str]

def check_sandbox(allow_unsandboxed: bool = False) -> Dict[str, Any]:
    """Starts a sandbox worker as a run would: ``{"isolated", "protections",
    "problem", "advice"}`` (what isolation it got, why none, what to install)."""

def write_report_html(run_dir: Union[str, PathLike[str]]) -> str:
    """Rebuilds ``report.html`` of a run directory from its files; returns its path
    (``agentopt.report`` wraps it)."""

FuncSigItem = Dict[str, Any]
"""``{"func_sig": SIGNATURE_OR_NAME, "is_remove": bool}``: keyword arguments of
``ConversableAgent.update_function_signature``."""

class LearnedFunction:
    """A learned function, run in agentopt's sandbox (never in this process).

    Calling it with the model's keyword arguments returns
    ``"Result of NAME function execution:\\n"`` plus what it printed and its return
    value (unless None), as AG2's ``execute_func`` did; a raise, timeout or crash
    raises ``agentopt.errors.LearnedFunctionError``.
    """

    def __call__(self, **arguments: Any) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def parameters(self) -> Dict[str, Any]: ...
    @property
    def packages(self) -> List[str]: ...
    @property
    def code(self) -> str: ...
    @property
    def demonstrations(self) -> List[Dict[str, Any]]:
        """Its verified worked examples: ``problem``, ``solution``, ``answer``."""

class AgentOptimizer:
    """AG2's AgentOptimizer (ag2 0.13.4 API) over agentopt's Rust optimizer.

    ``llm_config`` is what AG2 accepts: a dict with ``config_list`` (entries with
    ``model``, ``api_key``, ``base_url``, ``api_type`` "openai" or "azure",
    ``api_version``) or an ``autogen.LLMConfig``; the entries whose ``model`` is
    ``optimizer_model`` are tried in order (AG2's fallback). A bad config raises
    ``ConfigError`` naming the field.

    Keyword options beyond AG2 (all optional):

    - ``patience`` (int): ``should_stop`` after this many steps without improvement.
    - ``max_retries`` (int, 3): retries of a rejected proposal, errors fed back.
    - ``reply_room_tokens`` (int, 768), ``max_prompt_tokens`` (int): prompt budget.
    - ``max_tool_output_chars`` (int, 2000): longer tool outputs are cut in prompts.
    - ``validation_significance`` (float): decide on held-out problems recorded with
      ``record_validation_outcome`` (exact sign test at this level).
    - ``checkpoint`` (path): state written after every change; see ``resume``.
    - ``temperature`` (float), ``seed`` (int): optimizer sampling.
    - ``action_format`` ("tool_calls" | "json_schema"): JSON-schema actions for
      small local models that answer tool prompts in prose.
    - ``require_action`` (bool): the first reply of a step must act.
    - Learned-function use, all off by default (AG2): ``demonstrations`` (bool: ask
      for worked examples with each function; kept only when verified against the
      task's answers, which the ``Trainer`` provides), ``execution_checks`` (bool:
      call proposals on sample arguments of their declared types),
      ``use_statistics`` (bool: each function's calls in the prompt),
      ``prune_unused_after`` (int: remove a function no conversation called in that
      many steps), ``from_what_worked`` (bool: show correct solutions to generalise).
    - ``context_window`` (int): the model's context window, if the server cannot say.
    - ``function_timeout`` (float seconds, 600): wall-clock limit per learned call.
    - ``allow_unsandboxed`` (bool, False): run learned code without namespaces where
      bubblewrap is unavailable (rlimits and Landlock still apply).
    """

    def __init__(
        self,
        max_actions_per_step: int,
        llm_config: Optional[Union[Mapping[str, Any], Any]] = None,
        optimizer_model: Optional[str] = "gpt-4-1106-preview",
        **options: Any,
    ) -> None: ...
    @classmethod
    def resume(
        cls,
        checkpoint: Union[str, "PathLike[str]"],
        llm_config: Optional[Union[Mapping[str, Any], Any]] = None,
        optimizer_model: Optional[str] = "gpt-4-1106-preview",
        **options: Any,
    ) -> "AgentOptimizer":
        """Continue from a checkpoint with the options saved in it."""
    def record_one_conversation(
        self, conversation_history: Sequence[Mapping[str, Any]], is_satisfied: Optional[bool] = None
    ) -> None:
        """Record one conversation; ``is_satisfied=None`` counts as not satisfied (no stdin prompt)."""
    def record_validation_outcome(self, problem_id: str, is_satisfied: bool) -> None: ...
    def step(self) -> Tuple[List[FuncSigItem], Dict[str, Optional[LearnedFunction]]]:
        """One training step: ``(register_for_llm, register_for_executor)`` in AG2's shapes.

        Removals come first: ``{"func_sig": NAME, "is_remove": True}`` and ``NAME: None``.
        """
    def reset_optimizer(self) -> None: ...
    def registrations_in_force(
        self,
    ) -> Tuple[List[FuncSigItem], Dict[str, Optional[LearnedFunction]]]:
        """The functions in force, in ``step()``'s shapes, for fresh agents."""
    @property
    def last_step(self) -> Optional[Dict[str, Any]]: ...
    @property
    def should_stop(self) -> bool: ...
    @property
    def best_performance(self) -> Optional[float]: ...
    @property
    def max_actions_per_step(self) -> int: ...
    @property
    def usage(self) -> Dict[str, Any]: ...
    def export_artifact(self, path: Union[str, "PathLike[str]"]) -> "FunctionSet":
        """Write the best function list as an artifact (``FunctionSet.load`` reads it)."""

class FunctionSet:
    """A set of learned functions (a trained ``functions.json``), ready for AG2 agents."""

    @classmethod
    def load(
        cls,
        path: Union[str, "PathLike[str]"],
        *,
        function_timeout: float = 600.0,
        allow_unsandboxed: bool = False,
        packages: Sequence[str] = ...,
    ) -> "FunctionSet": ...
    def save(self, path: Union[str, "PathLike[str]"]) -> None: ...
    @property
    def names(self) -> List[str]: ...
    @property
    def functions(self) -> List[LearnedFunction]: ...
    def __len__(self) -> int: ...
    def __contains__(self, name: str) -> bool: ...
    def __getitem__(self, name: str) -> LearnedFunction: ...
    def registrations(self) -> Tuple[List[FuncSigItem], Dict[str, Optional[LearnedFunction]]]:
        """``step()``-shaped lists for agents that should hold exactly this set."""

AttemptResult = Union[bool, Dict[str, Any]]
"""What a task's ``attempt`` returns: a bool (solved), or a dict with ``solved`` and
optionally ``history`` (AG2 messages, what the optimizer reads), ``answer``,
``expected``, ``reason``, ``tokens``, or ``infrastructure`` (a message: the attempt
failed outside the agents; not training signal, run again on resume). An exception
raised by ``attempt`` counts as an infrastructure failure."""

class TrainingReport:
    """A training run's report (also ``report.json`` / ``report.md`` in the run dir)."""

    @property
    def test_before(self) -> Dict[str, Any]: ...
    @property
    def test_after(self) -> Dict[str, Any]: ...
    @property
    def epochs(self) -> List[Dict[str, Any]]: ...
    @property
    def functions(self) -> List[Dict[str, Any]]: ...
    @property
    def mcnemar_p(self) -> float: ...
    @property
    def stopped_early(self) -> Optional[str]: ...
    @property
    def incomplete(self) -> Optional[str]: ...
    @property
    def infrastructure(self) -> List[Dict[str, Any]]: ...
    @property
    def use_rates(self) -> List[Dict[str, Any]]: ...
    def to_dict(self) -> Dict[str, Any]: ...
    def to_markdown(self) -> str: ...
    def summary(self) -> str: ...
    @property
    def function_set(self) -> Optional[FunctionSet]: ...

class Trainer:
    """agentopt's Trainer over a task written in Python.

    ``task`` is an object with ``attempt(problem, functions: FunctionSet) ->
    AttemptResult`` (and optionally ``problem_id(problem) -> str`` and
    ``problem_text(problem) -> str``: a test problem with a training problem's text is
    refused, and retrieval matches it), or such a callable. Keyword options:
    ``run_dir`` (required), ``epochs`` (2; 0 with ``initial_functions``: test them
    without training), ``initial_functions`` (a ``FunctionSet`` to start from),
    ``retrieval_k`` (None: offer every function; K: at most K, the most relevant
    among those sharing a word with each problem's text),
    ``bootstrap_demonstrations`` (0; N: up to N verified worked examples per function
    from correct conversations, with ``reference_answer(problem)`` on the task),
    ``forced_call_demonstrations`` (False; True: after each step, a function with no
    worked example gets one from ``task.attempt_calling(problem, functions, name)`` —
    an attempt whose assistant is made to call ``name`` — on the training problem most
    like it, kept when solved and verified), ``force_call`` (False; True: every
    attempt offered a function is made to call the most relevant one through
    ``attempt_calling``),
    ``max_actions_per_step`` (3), ``concurrency`` (1; attempts run on worker threads),
    ``progress`` (a callable receiving one dict per event: ``phase_started``,
    ``resumed``, ``finished``, ``phase_finished``, ``step_started``,
    ``step_finished``), ``max_consecutive_infrastructure_errors`` (3), and every
    ``AgentOptimizer`` option.
    """

    def __init__(
        self,
        task: Any,
        llm_config: Optional[Union[Mapping[str, Any], Any]] = None,
        optimizer_model: Optional[str] = "gpt-4-1106-preview",
        **options: Any,
    ) -> None: ...
    def run(
        self, train: Iterable[Any], test: Iterable[Any], validation: Optional[Iterable[Any]] = None
    ) -> TrainingReport:
        """Run, or continue over the same run_dir; problem ids from ``task.problem_id``,
        else ``problem["id"]``, else ``str(problem)``."""
    @property
    def usage(self) -> Dict[str, Any]: ...
