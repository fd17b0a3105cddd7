"""Database fixtures: a real SQLite file and a real, throwaway PostgreSQL server.

``db_url`` is parametrized over both; store tests take ``db_url`` or ``store``. The PostgreSQL
server is started once per session from the Debian package's binaries (``make test`` installs
them) on a free loopback port, as the ``postgres`` user when the tests run as root. When the
binaries are missing, the PostgreSQL tests fail and say how to install them.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import URL

from qwen_dash.core.metrics import GenerationResult
from qwen_dash.core.request import CompareRequest, Settings
from qwen_dash.store import Store, open_store

MODEL_A = "qwen2.5-0.5b-instruct"
MODEL_B = "qwen3-0.6b"


def _pg_bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version_key)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    pytest.fail(
        "PostgreSQL server binaries (initdb, pg_ctl) are not installed, so the PostgreSQL store "
        "tests cannot run. Install the Debian package 'postgresql' (make system-deps does it).",
        pytrace=False,
    )


def _version_key(path: str) -> int:
    part = Path(path).parent.parent.name
    return int(part) if part.isdigit() else 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the postgres user then."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="session")
def pg_server() -> Iterator[URL]:
    """A PostgreSQL cluster in a temporary folder for this test session; its admin URL."""
    bin_dir = _pg_bin_dir()
    tmp = Path(tempfile.mkdtemp(prefix="qwen-dash-pg-"))
    if os.geteuid() == 0:
        shutil.chown(tmp, "postgres", "postgres")
    data, port = tmp / "data", _free_port()
    run = {"check": True, "capture_output": True, "text": True}
    try:
        subprocess.run(
            _as_postgres([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres",
                          "-A", "trust", "-E", "UTF8", "--no-locale"]),
            **run,
        )  # fmt: skip
        options = (
            f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        subprocess.run(
            _as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(tmp / "log"),
                          "-o", options, "-w", "-t", "60", "start"]),
            **run,
        )  # fmt: skip
    except subprocess.CalledProcessError as exc:
        log = (tmp / "log").read_text() if (tmp / "log").exists() else ""
        shutil.rmtree(tmp, ignore_errors=True)
        pytest.fail(f"Could not start PostgreSQL: {exc.stderr}\n{log}", pytrace=False)
    try:
        yield URL.create(
            "postgresql+psycopg", username="postgres", host="127.0.0.1", port=port,
            database="postgres",
        )  # fmt: skip
    finally:
        subprocess.run(
            _as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(tmp, ignore_errors=True)


def _admin(url: URL, sql: str) -> None:
    dsn = f"host={url.host} port={url.port} user={url.username} dbname=postgres"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql)


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a new database on the session's server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'qwen_dash.sqlite3'}"
        return
    server: URL = request.getfixturevalue("pg_server")
    name = f"t_{uuid.uuid4().hex[:12]}"
    _admin(server, f'CREATE DATABASE "{name}"')
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        _admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = open_store(db_url)
    try:
        yield s
    finally:
        s.close()


def make_result(model_key: str, **overrides: object) -> GenerationResult:
    """A plausible finished generation; metrics overridable."""
    values: dict[str, object] = {
        "model_key": model_key,
        "hf_id": f"Qwen/{model_key}",
        "source": "twin",
        "text": f"answer from {model_key}",
        "revision": "main",
        "device": "cpu",
        "dtype": "float32",
        "started_at": datetime.now(UTC).isoformat(),
        "ttft_ms": 40.0,
        "e2e_ms": 900.0,
        "decode_tps": 30.0,
        "n_in": 12,
        "n_out": 27,
        "rss_peak_bytes": 2_000_000_000,
        "token_times_ms": [40.0 + 33.25 * i for i in range(27)],
        "environment": {"torch": "2.13.0"},
    }
    values.update(overrides)
    return GenerationResult(**values)  # type: ignore[arg-type]


def make_comparison(
    prompt: str = "Explain KV caches.",
    *,
    mode: str = "concurrent",
    thinking: bool = False,
    a: dict[str, object] | None = None,
    b: dict[str, object] | None = None,
) -> tuple[CompareRequest, dict[str, GenerationResult]]:
    """A two-model comparison request and its results."""
    a, b = dict(a or {}), dict(b or {})
    key_a, key_b = str(a.pop("model_key", MODEL_A)), str(b.pop("model_key", MODEL_B))
    settings = {key_a: Settings(), key_b: Settings(thinking=thinking)}
    request = CompareRequest.from_prompt(prompt, settings, mode=mode)
    results = {
        key_a: make_result(key_a, mode=mode, **a),
        key_b: make_result(key_b, mode=mode, **b),
    }
    return request, results
