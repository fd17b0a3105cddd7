"""Sign-in against a real OpenID Connect provider on loopback (node's ``oidc-provider``), driven in
the system Chromium: a team server (``[auth]`` in a temporary secrets.toml, a roles file) refuses
everything before sign-in, and each role may do what it should and nothing more.

The provider is installed by ``make test`` into tests/oidc/node_modules (``npm ci``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qwen_dash.store import open_store
from tests.conftest_db import make_comparison
from tests.ui_fixtures import APP, ROOT, SERVER_START_S, _free_port, _healthy, screenshot, wait_idle

pytestmark = pytest.mark.browser

OIDC_DIR = ROOT / "tests" / "oidc"
CLIENT_ID, CLIENT_SECRET = "qwen-dash", "test-client-secret"
ADMIN, ANA, BO, VIEWER = (
    "root@team.example",
    "ana@team.example",
    "bo@team.example",
    "vi@team.example",
)
ROLES = f"""
[emails]
"{ADMIN}" = "admin"
"{VIEWER}" = "viewer"
[domains]
"team.example" = "member"
"""
PAGES = ("/", "/compare", "/history", "/history?run=1", "/trends", "/models", "/audit")


def _wait_for_line(proc: subprocess.Popen[str], prefix: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith(prefix):
            return line.strip()
        if not line and proc.poll() is not None:
            break
    pytest.fail(f"the OIDC provider did not start (exit {proc.poll()})", pytrace=False)


@pytest.fixture(scope="module")
def team(_offline: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A real OIDC provider and ``streamlit run app.py`` configured for a team, both on
    loopback; two seeded runs (Ana's and Bo's)."""
    if not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
        pytest.fail("tests/oidc is not installed: run `make test` (it runs npm ci there).")
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed; the sign-in tests need it for the OIDC provider.")
    tmp = tmp_path_factory.mktemp("team-server")
    port, oidc_port = _free_port(), _free_port()
    base = f"http://127.0.0.1:{port}"
    users = {ADMIN: {}, ANA: {}, BO: {}, VIEWER: {}, "eve@team.example": {"email_verified": False}}
    provider = subprocess.Popen(
        [node, "provider.mjs", str(oidc_port), f"{base}/oauth2callback", CLIENT_ID, CLIENT_SECRET],
        cwd=OIDC_DIR,
        env={**os.environ, "OIDC_USERS": json.dumps(users)},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    # The server's own folder: a copy of the app's config and the secrets, never in the repo.
    (tmp / ".streamlit").mkdir()
    shutil.copy(ROOT / ".streamlit" / "config.toml", tmp / ".streamlit" / "config.toml")
    (tmp / ".streamlit" / "secrets.toml").write_text(
        "[auth]\n"
        f'redirect_uri = "{base}/oauth2callback"\n'
        'cookie_secret = "a-test-cookie-secret-that-is-long-enough"\n'
        f'client_id = "{CLIENT_ID}"\n'
        f'client_secret = "{CLIENT_SECRET}"\n'
        f'server_metadata_url = "http://127.0.0.1:{oidc_port}/.well-known/openid-configuration"\n'
        # oidc-provider knows the standard prompts; Streamlit's default is select_account.
        'client_kwargs = { prompt = "login" }\n'
    )
    (tmp / "roles.toml").write_text(ROLES)
    db_url = f"sqlite:///{tmp / 'team.sqlite3'}"
    store = open_store(db_url)
    ana_run = store.save_comparison(*make_comparison("Ana's secret prompt"), user=ANA)
    bo_run = store.save_comparison(*make_comparison("Bo's own prompt"), user=BO)
    store.close()
    env = {
        **os.environ,
        "QWEN_DASH_SOURCE": "tiny",
        "QWEN_DASH_DB_URL": db_url,
        "QWEN_DASH_ROLES": str(tmp / "roles.toml"),
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    log_path = ROOT / "artifacts" / "streamlit-team-server.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        str(Path(sys.executable).parent / "streamlit"), "run", str(APP),
        "--server.port", str(port), "--server.address", "127.0.0.1",
    ]  # fmt: skip
    server = None
    try:
        _wait_for_line(provider, "ready", 60)
        with open(log_path, "w") as log:
            server = subprocess.Popen(
                cmd, cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + SERVER_START_S
        while not _healthy(base):
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the team server did not start; see {log_path}")
            time.sleep(0.3)
        yield {
            "base": base,
            "oidc_port": oidc_port,
            "db_url": db_url,
            "ana_run": ana_run,
            "bo_run": bo_run,
        }
    finally:
        for proc in (server, provider):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, 15)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, 9)


def sign_in(page: Any, team: dict[str, Any], email: str) -> None:
    """The whole flow: the app's Sign in button, the provider's login form, back signed in."""
    page.goto(team["base"] + "/")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(rf"127\.0\.0\.1:{team['oidc_port']}/interaction/"))
    page.fill('input[name="login"]', email)
    page.fill('input[name="password"]', "any password")
    page.locator('button[type="submit"]').click()
    page.wait_for_url(re.compile(re.escape(team["base"]) + r"/(compare)?$"), timeout=60_000)
    page.get_by_text("Signed in as").wait_for(timeout=60_000)
    wait_idle(page)
    assert email in visible(page.locator('[data-testid="stSidebar"]'))


def visible(locator: Any) -> str:
    """Text as read, without the zero-width characters that keep emails from auto-linking."""
    return re.sub("[\u200b-\u200d\u2060\ufeff]", "", locator.inner_text())


def open_run(page: Any, team: dict[str, Any], run_id: int) -> None:
    page.goto(f"{team['base']}/history?run={run_id}")
    page.get_by_role("heading", name=f"Run #{run_id}").wait_for(timeout=60_000)
    wait_idle(page)


def test_signed_out_every_page_url_and_download_refuses(page: Any, team: dict[str, Any]) -> None:
    # The very first request this fresh server gets is a run's direct URL.
    for path in ("/history?run=1", *PAGES):
        page.goto(team["base"] + path)
        page.get_by_role("button", name="Sign in").wait_for(timeout=60_000)
        wait_idle(page)
        text = page.locator('[data-testid="stApp"]').inner_text()
        assert "secret prompt" not in text and "own prompt" not in text, path
        for heading in ("Compare", "History", "Trends", "Models", "Audit", "Run #1"):
            assert page.get_by_role("heading", name=heading, exact=True).count() == 0, path
        assert page.locator('[data-testid="stDownloadButton"]').count() == 0, path
        assert page.locator('[data-testid="stSidebarNav"]').count() == 0, path
    screenshot(page, "signin-signed-out")


def test_an_unverified_email_is_refused_after_sign_in(page: Any, team: dict[str, Any]) -> None:
    page.goto(team["base"] + "/")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(rf"127\.0\.0\.1:{team['oidc_port']}/interaction/"))
    page.fill('input[name="login"]', "eve@team.example")
    page.fill('input[name="password"]', "x")
    page.locator('button[type="submit"]').click()
    page.get_by_text("is not verified").wait_for(timeout=60_000)
    assert page.get_by_role("heading", name="Compare", exact=True).count() == 0


def test_a_viewer_cannot_run_vote_edit_or_delete(page: Any, team: dict[str, Any]) -> None:
    sign_in(page, team, VIEWER)
    page.get_by_role("heading", name="Compare", exact=True).wait_for()
    assert page.get_by_role("button", name="Send").is_disabled()
    assert "To send prompts you need the member role" in visible(
        page.locator('[data-testid="stMain"]')
    )
    assert page.locator('[data-testid="stSidebarNav"]').get_by_text("Audit").count() == 0
    open_run(page, team, team["ana_run"])
    assert page.get_by_role("button", name="Rerun with the same settings").is_disabled()
    assert page.get_by_role("button", name="Delete").is_disabled()
    assert page.get_by_role("button", name="Save tags and notes").is_disabled()
    assert page.locator(".st-key-vote-a button").first.is_disabled()
    assert "To vote you need the member role" in visible(page.locator('[data-testid="stMain"]'))
    screenshot(page, "signin-viewer-run", tall=True)


def test_a_member_cannot_delete_another_members_run(page: Any, team: dict[str, Any]) -> None:
    sign_in(page, team, BO)
    open_run(page, team, team["ana_run"])
    assert page.get_by_role("button", name="Delete").is_disabled()
    assert page.get_by_role("button", name="Save tags and notes").is_disabled()
    assert page.locator(".st-key-vote-a button").first.is_enabled()  # members vote on any run
    open_run(page, team, team["bo_run"])  # their own run: theirs to delete
    assert page.get_by_role("button", name="Delete").is_enabled()
    assert page.get_by_role("button", name="Save tags and notes").is_enabled()


def test_an_admin_deletes_it_sees_it_in_the_audit_and_restores_it(
    page: Any, team: dict[str, Any]
) -> None:
    run_id = team["ana_run"]
    sign_in(page, team, ADMIN)
    open_run(page, team, run_id)
    page.get_by_role("button", name="Delete").click()
    page.get_by_role("button", name="Delete this run").click()
    page.get_by_role("heading", name="History", exact=True).wait_for()
    wait_idle(page)
    assert page.get_by_text("Ana's secret prompt").count() == 0

    page.goto(team["base"] + "/audit")
    page.get_by_role("heading", name="Audit", exact=True).wait_for()
    wait_idle(page)
    audit = page.locator('[data-testid="stDataFrame"]').first
    audit.wait_for()
    screenshot(page, "signin-admin-audit", tall=True)
    page.get_by_role("button", name=f"Restore run #{run_id}").click()
    wait_idle(page)
    open_run(page, team, run_id)
    assert page.get_by_text("Deleted by").count() == 0

    store = open_store(team["db_url"])
    try:
        actions = [(e.action, e.actor) for e in store.audit_log(run_id=run_id)]
    finally:
        store.close()
    assert actions[:2] == [("run.restore", ADMIN), ("run.delete", ADMIN)]
    assert actions[-1] == ("run.save", ANA)
