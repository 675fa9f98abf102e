"""The seed notebook (agentchat_agentoptimizer) as a notebook: fixtures/agentoptimizer.ipynb
is its text with exactly one line changed, the import, executed cell by cell by
nbclient in a real IPython kernel against the scripted server (as Azure, as the
notebook's llm_config says)."""

import json
from pathlib import Path

import pytest

from test_agent_optimizer import MULTIPLY, add_function, math_script

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")

NOTEBOOK = Path(__file__).with_name("fixtures") / "agentoptimizer.ipynb"
PLACEHOLDER = "https://ENDPOINT.openai.azure.com/"

# A kernel startup file (not a notebook line) that
# - stands in for the reader who fills in the notebook's placeholder endpoint,
#   pointing it at the scripted server;
# - accepts the notebook's `autogen.LLMConfig(config_list=...)`, a spelling ag2 0.13
#   dropped (it takes the entries positionally): the notebook fails there with AG2's
#   own optimizer too (see the test below), before any optimizer is involved.
STARTUP = f'''
import os
import autogen

_llm_config_init = autogen.LLMConfig.__init__


def _point_at_scripted_server(entry):
    if isinstance(entry, dict) and entry.get("base_url") == {PLACEHOLDER!r}:
        entry = dict(entry, base_url=os.environ["SCRIPTED_AZURE_ENDPOINT"])
    return entry


def _init(self, *args, **kwargs):
    entries = kwargs.pop("config_list", [])
    entries = [entries] if isinstance(entries, dict) else list(entries)
    args = tuple(_point_at_scripted_server(entry) for entry in entries) + args
    _llm_config_init(self, *args, **kwargs)


autogen.LLMConfig.__init__ = _init
'''


def outputs(cell):
    return "".join(output.get("text", "") for output in cell.get("outputs", []))


def test_the_seed_notebook_runs_with_only_the_import_changed(scripted_server, tmp_path, monkeypatch):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell.source for cell in notebook.cells if cell.cell_type == "code"]
    assert sum("from agentopt import AgentOptimizer" in source for source in code) == 1
    assert not any("agent_optimizer import" in source for source in code)

    server = scripted_server(math_script([{"tool_calls": [add_function(MULTIPLY)]}, {"text": "TERMINATE"}]))
    dataset = tmp_path / "MATH" / "dataset"
    (dataset / "train").mkdir(parents=True)
    problem = json.dumps({"question": "What is 6 times 7?", "answer": "42"})
    (dataset / "algebra.jsonl").write_text(problem + "\n")
    (dataset / "train" / "algebra.jsonl").write_text(problem + "\n")
    startup = tmp_path / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-scripted-server.py").write_text(STARTUP)
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "azure-test-key")
    monkeypatch.setenv("SCRIPTED_AZURE_ENDPOINT", server.base_url[: -len("/v1")])

    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()

    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    training, final = code_cells[-2], code_cells[-1]
    # The notebook reads the history after the reset: agentopt says so.
    assert "empty conversation history" in outputs(training)
    assert "keep_history" in outputs(training)
    assert "multiply: Multiplies two integers." in outputs(final)
    assert "success_rate_without_agent_training: 0.0%" in outputs(final)
    azure = [request for request in server.logged() if request["path"].startswith("/openai/deployments/gpt-4-1106-preview/")]
    assert azure and len(azure) == len(server.logged())


def test_ag2_0_13_dropped_the_notebooks_llm_config_spelling():
    import autogen

    with pytest.raises(TypeError, match="config_list"):
        autogen.LLMConfig(config_list={"model": "gpt-4-1106-preview", "api_key": "k"})
