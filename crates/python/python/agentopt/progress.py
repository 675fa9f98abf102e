"""The Trainer's default progress display: a tqdm bar per phase when tqdm is
installed (``tqdm.auto``, which draws a widget in Jupyter), plain lines on stderr
otherwise."""

import sys
from typing import Any, Callable, Dict, Optional

__all__ = ["ProgressDisplay", "default_progress"]


def _outcome_word(event: Dict[str, Any]) -> str:
    outcome = event.get("outcome") or {}
    return str(outcome.get("status", "done"))


class ProgressDisplay:
    """Turns Trainer events into a bar per phase (``bar_factory``, tqdm's
    signature) or, without one, into lines written to ``stream``."""

    def __init__(self, bar_factory: Optional[Callable[..., Any]] = None, stream: Any = None) -> None:
        self._bar_factory = bar_factory
        self._stream = stream if stream is not None else sys.stderr
        self._bar: Any = None
        self._done = 0
        self._total = 0
        self._phase = ""

    def _line(self, text: str) -> None:
        if self._bar is not None:
            self._bar.write(text)
        else:
            print(text, file=self._stream, flush=True)

    def __call__(self, event: Dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "phase_started":
            self._phase, self._total, self._done = event.get("phase_name", "phase"), event.get("total", 0), 0
            if self._bar_factory is not None:
                self._bar = self._bar_factory(total=self._total, desc=self._phase, leave=True)
            else:
                self._line(f"agentopt: {self._phase}: {self._total} problem(s)")
        elif kind in ("finished", "resumed"):
            self._done += 1
            word = "resumed" if kind == "resumed" else _outcome_word(event)
            if self._bar is not None:
                self._bar.update(1)
                self._bar.set_postfix_str(word)
            else:
                problem = event.get("problem_id", "")
                self._line(f"agentopt: {self._phase} {self._done}/{self._total} {problem} {word}".rstrip())
        elif kind == "phase_finished":
            if self._bar is not None:
                self._bar.close()
                self._bar = None
            else:
                self._line(f"agentopt: {self._phase} done")
        elif kind == "step_started":
            self._line(f"agentopt: optimizer step after epoch {event.get('epoch')}")
        elif kind == "step_finished":
            step = event.get("step") or {}
            names = [function.get("name") for function in step.get("functions", []) or [] if isinstance(function, dict)]
            accepted = "accepted" if step.get("accepted") else "rolled back"
            self._line(f"agentopt: step {accepted}; functions: {names}")


def _in_jupyter() -> bool:
    shell = sys.modules.get("IPython")
    get = getattr(shell, "get_ipython", None)
    return get is not None and get() is not None and type(get()).__name__ == "ZMQInteractiveShell"


def default_progress() -> ProgressDisplay:
    """tqdm.auto in Jupyter, tqdm in a terminal, plain lines without tqdm."""
    try:
        if _in_jupyter():
            from tqdm.auto import tqdm
        else:
            from tqdm import tqdm
    except ImportError:
        return ProgressDisplay()
    return ProgressDisplay(tqdm)
