"""The command line, as a user runs it: a real interpreter, tiny models, a private database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qwen_dash.core.metrics import MEASURED

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "qwen_dash", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    return {
        "QWEN_DASH_SOURCE": "tiny",
        "QWEN_DASH_DB_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}",
        "HF_HUB_OFFLINE": "1",
    }


def test_compare_json_has_every_metric_for_both_models(cli_env: dict[str, str]) -> None:
    proc = run_cli("compare", "Hello there", "--max-new-tokens", "6", "--json", env=cli_env)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [r["model_key"] for r in rows] == ["qwen2.5-0.5b-instruct", "qwen3-0.6b"]
    for row in rows:
        assert set(MEASURED) <= set(row)
        assert row["source"] == "tiny" and row["n_out"] == 6 and row["status"] == "ok"
        assert row["cuda_peak_alloc_bytes"] is None  # no GPU here: null, not 0
    assert rows[0]["run_id"] == rows[1]["run_id"] is not None  # logged as one run


def test_compare_prints_side_by_side_and_the_run_id(cli_env: dict[str, str]) -> None:
    proc = run_cli("compare", "Hi", "--max-new-tokens", "4", "--mode", "isolated", env=cli_env)
    assert proc.returncode == 0, proc.stderr
    header = proc.stdout.splitlines()[0]
    assert "Qwen2.5-0.5B-Instruct [tiny]" in header and "Qwen3-0.6B [tiny]" in header
    assert "isolated" in proc.stdout
    assert "logged as run" in proc.stdout


def test_compare_rejects_a_bad_request_with_a_message(cli_env: dict[str, str]) -> None:
    proc = run_cli("compare", "  ", env=cli_env)
    assert proc.returncode == 2
    assert "The prompt is empty" in proc.stderr
    proc = run_cli("compare", "Hi", "--max-new-tokens", "99999", env=cli_env)
    assert proc.returncode == 2 and "above this model's limit" in proc.stderr


def test_bench_overhead_json_shape(cli_env: dict[str, str]) -> None:
    proc = run_cli(
        "bench", "overhead", "--models", "qwen3-0.6b", "--tokens", "8", "--rounds", "1",
        "--json", env=cli_env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)["qwen3-0.6b"]
    assert res["source"] == "tiny" and res["rounds"] == 1
    assert res["engine_tps"] > 0 and res["bare_tps"] > 0
    assert res["ratio"] == pytest.approx(res["engine_tps"] / res["bare_tps"])


def test_export_writes_the_logged_runs(cli_env: dict[str, str], tmp_path: Path) -> None:
    assert run_cli("compare", "Export me", "--max-new-tokens", "3", env=cli_env).returncode == 0
    proc = run_cli("export", "--format", "jsonl", "--text", "export ME", env=cli_env)
    assert proc.returncode == 0, proc.stderr
    runs = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(runs) == 1 and runs[0]["prompt"] == "Export me"
    out = tmp_path / "runs.csv"
    proc = run_cli("export", "--format", "csv", "-o", str(out), "--model", "qwen3-0.6b",
                   env=cli_env)  # fmt: skip
    assert proc.returncode == 0 and "exported 1 runs" in proc.stderr
    assert "Export me" in out.read_text()
    bad = run_cli("export", "--since", "yesterday", env=cli_env)
    assert bad.returncode == 2 and "--since must be an ISO date" in bad.stderr


def test_unwritable_database_fails_at_start_not_after_the_run(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the database folder should be")
    env = {
        "QWEN_DASH_SOURCE": "tiny",
        "QWEN_DASH_DB_URL": f"sqlite:///{blocker / 'sub' / 'runs.sqlite3'}",
        "HF_HUB_OFFLINE": "1",
    }
    proc = run_cli("compare", "Hi", "--max-new-tokens", "2", env=env, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    assert "Loading" not in proc.stderr  # no worker was started


def test_the_cli_acts_as_a_local_admin_and_says_so(cli_env: dict[str, str]) -> None:
    from qwen_dash.store import open_store
    from tests.conftest_db import make_comparison

    store = open_store(cli_env["QWEN_DASH_DB_URL"])
    run_id = store.save_comparison(*make_comparison("owned by someone"), user="ana@example.com")
    store.close()
    deleted = run_cli("delete", str(run_id), env=cli_env)
    assert deleted.returncode == 0, deleted.stderr
    assert "acting as cli:" in deleted.stderr and "(local admin)" in deleted.stderr
    assert run_cli("delete", str(run_id), env=cli_env).returncode == 1
    exported = run_cli("export", env=cli_env)
    assert exported.returncode == 0 and exported.stdout == ""  # deleted runs are left out
    everything = run_cli("export", "--include-deleted", env=cli_env)
    assert json.loads(everything.stdout)["deleted_by"].startswith("cli:")
    assert run_cli("restore", str(run_id), env=cli_env).returncode == 0
    audit = run_cli("audit", "--run", str(run_id), env=cli_env)
    lines = audit.stdout.splitlines()
    assert [line.split()[2] for line in lines] == ["run.restore", "run.delete", "run.save"]
    assert "ana@example.com" in lines[-1]
