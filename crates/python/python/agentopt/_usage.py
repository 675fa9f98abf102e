"""AG2's usage-summary text for agentopt's usage dicts."""

from typing import Any, Dict, Iterable, Union

SEPARATOR = "-" * 100


def _section(title: str, usage: Dict[str, Any]) -> str:
    lines = [f"Usage summary {title}: ", f"Total cost: {round(usage.get('total_cost', 0.0), 5)}"]
    for model, totals in usage.items():
        if model == "total_cost":
            continue
        lines.append(
            f"* Model '{model}': cost: {round(totals['cost'], 5)}, prompt_tokens: {totals['prompt_tokens']}, "
            f"completion_tokens: {totals['completion_tokens']}, total_tokens: {totals['total_tokens']}"
        )
    return "\n".join(lines)


def format_usage_summary(summary: Dict[str, Any], mode: Union[str, Iterable[str]] = ("actual", "total")) -> str:
    """The text AG2's ``OpenAIWrapper.print_usage_summary`` prints for ``summary``
    (``AgentOptimizer.usage``): ``mode`` "actual" (excluding cached replies),
    "total" (including them), or both."""
    modes = {mode} if isinstance(mode, str) else set(mode)
    unknown = modes - {"actual", "total"}
    if unknown:
        raise ValueError(f"mode: expected 'actual' and/or 'total', got {sorted(unknown)}")
    actual = summary["usage_excluding_cached_inference"]
    total = summary["usage_including_cached_inference"]
    if len(actual) <= 1 and len(total) <= 1:
        return f"{SEPARATOR}\nNo usage summary. Please call \"create\" first.\n{SEPARATOR}"
    parts = [SEPARATOR]
    if "actual" in modes and "total" in modes and actual == total:
        parts.append(_section("excluding cached usage", actual))
        parts.append("All completions are non-cached: the total cost with cached completions is the same as actual cost.")
    else:
        if "total" in modes:
            parts.append(_section("including cached usage", total))
        if "actual" in modes:
            parts.append(_section("excluding cached usage", actual))
    parts.append(SEPARATOR)
    return "\n".join(parts)
