"""Fixtures: the project's scripted OpenAI-compatible server (real HTTP on
127.0.0.1), run as the `scripted-server` binary of crates/testkit."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
OPTIMIZER_MODEL = "gpt-4-1106-preview"


# Resolved now: a test may change the working directory.
CONFIGURED_SERVER = Path(os.environ["AGENTOPT_SCRIPTED_SERVER"]).resolve() if os.environ.get("AGENTOPT_SCRIPTED_SERVER") else None


def scripted_server_binary() -> Path:
    """$AGENTOPT_SCRIPTED_SERVER (set by `cargo xtask test`), else a debug build."""
    if CONFIGURED_SERVER:
        return CONFIGURED_SERVER
    binary = REPO / "target" / "debug" / "scripted-server"
    if not binary.exists() and shutil.which("cargo"):
        subprocess.run(
            ["cargo", "build", "-q", "-p", "agentopt-testkit", "--bin", "scripted-server"],
            cwd=REPO,
            check=True,
        )
    return binary


class ScriptedServer:
    """A running scripted server: `base_url`, and the chat requests it received."""

    def __init__(self, script: dict, directory: Path):
        script_path = directory / "script.json"
        self.log = directory / "requests.jsonl"
        script_path.write_text(json.dumps(script))
        self.process = subprocess.Popen(
            [str(scripted_server_binary()), str(script_path), "--log", str(self.log)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.base_url = self.process.stdout.readline().strip()
        assert self.base_url.startswith("http://127.0.0.1:"), self.base_url

    def logged(self) -> list:
        """The chat requests received so far, in order: {"path", "query", "body"}. A
        line the server is still writing (read while a request arrives) is left out."""
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().split("\n")[:-1] if line]

    def requests(self) -> list:
        """Bodies of the chat requests received so far, in order."""
        return [request["body"] for request in self.logged()]

    def llm_config(self, model: str = OPTIMIZER_MODEL) -> dict:
        """An AG2 llm_config pointing at this server (AG2's response cache off)."""
        return {
            "config_list": [{"model": model, "api_key": "sk-test-key", "base_url": self.base_url}],
            "cache_seed": None,
        }

    def stop(self):
        self.process.stdin.close()
        self.process.wait(timeout=10)


@pytest.fixture
def scripted_server(tmp_path):
    """Starts servers from scripts (see crates/testkit/src/bin/scripted-server.rs)."""
    started = []

    def start(script: dict) -> ScriptedServer:
        directory = tmp_path / f"server{len(started)}"
        directory.mkdir()
        server = ScriptedServer(script, directory)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
