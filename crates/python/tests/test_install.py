"""One command installs the package from a checkout: `pip install ./crates/python`
in a fresh venv (maturin as the PEP 517 backend), then the README's Python example
runs as written, against the scripted server through OPENAI_BASE_URL.

Offline: `cargo xtask test` puts maturin's wheel in $AGENTOPT_WHEELHOUSE for the
build's isolated environment, and the Rust build reuses the workspace's target
directory and dev profile (seconds, not a fresh release build)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from test_agent_optimizer import MULTIPLY, add_function, math_script

WHEELHOUSE = os.environ.get("AGENTOPT_WHEELHOUSE")


def readme_python_example() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- readme-python-example[^>]*-->\s*```python\n(.*?)```", readme, re.S)
    assert match, "README.md: the marked Python example is missing"
    return match.group(1)


@pytest.mark.skipif(not WHEELHOUSE, reason="needs $AGENTOPT_WHEELHOUSE (set by cargo xtask test) to build offline")
def test_pip_install_from_the_checkout_then_the_readme_example(scripted_server, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    build_env = dict(
        os.environ,
        CARGO_TARGET_DIR=os.environ.get("CARGO_TARGET_DIR", str(REPO / "target")),
        MATURIN_PEP517_ARGS="--profile dev",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-index", "--find-links", WHEELHOUSE, str(REPO / "crates" / "python")],
        check=True, env=build_env, cwd=tmp_path,
    )

    script = math_script([{"tool_calls": [add_function(MULTIPLY)]}, {"text": "TERMINATE"}])
    script["model"] = "gpt-4o-mini"
    server = scripted_server(script)
    example = tmp_path / "example.py"
    example.write_text(readme_python_example())
    run_env = {key: value for key, value in os.environ.items() if not key.startswith(("OPENAI_", "AZURE_OPENAI_"))}
    run_env.update(OPENAI_API_KEY="sk-readme-example", OPENAI_BASE_URL=server.base_url)
    result = subprocess.run([str(python), str(example)], capture_output=True, text=True, env=run_env, cwd=tmp_path, timeout=300)

    assert result.returncode == 0, result.stderr
    assert "learned: multiply" in result.stdout
    calls = len(server.logged())  # the scripted server reports 10 + 5 tokens per reply
    usage = f"* Model 'gpt-4o-mini': cost: 0.0, prompt_tokens: {10 * calls}, completion_tokens: {5 * calls}"
    assert usage in result.stdout
    assert server.logged()[0]["headers"]["authorization"] == "Bearer sk-readme-example"
