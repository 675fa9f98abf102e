"""Every Python Trainer run writes report.html; agentopt.report(run_dir) rebuilds it
from the run directory (the page itself is checked in Chromium by xtask's tests)."""

import pathlib

import pytest

import agentopt
from test_agent_optimizer import MULTIPLY, add_function, math_script


def test_a_run_writes_report_html_and_report_rebuilds_it(scripted_server, tmp_path):
    server = scripted_server(math_script([{"tool_calls": [add_function(MULTIPLY)]}, {"text": "TERMINATE"}]))
    run_dir = tmp_path / "run"
    agentopt.Trainer(lambda problem, functions: problem == "easy", server.llm_config(), run_dir=str(run_dir), epochs=1).run(
        train=["easy", "hard"], test=["easy", "<script>hard</script>"]
    )
    written = (run_dir / "report.html").read_text(encoding="utf-8")
    assert 'id="run-data"' in written and "<svg" in written
    assert "<script>hard</script>" not in written  # embedded as \u003cscript>

    (run_dir / "report.html").unlink()
    page = agentopt.report(run_dir)

    assert isinstance(page, pathlib.Path) and page == run_dir / "report.html"
    assert page.read_text(encoding="utf-8") == written


def test_report_of_a_directory_without_a_run_names_the_file(tmp_path):
    with pytest.raises(agentopt.CheckpointError, match="report.json"):
        agentopt.report(tmp_path)
