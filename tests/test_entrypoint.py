"""The one Streamlit private behaviour the pages rely on (pages/_ui/navigation.py): with a
``pages/`` folder beside app.py, Streamlit starts in its old multipage mode, flagged on
``PagesManager.uses_pages_directory``, until the flag is cleared. If an upgrade renames or drops
the flag, or stops setting it from the folder, these tests fail before users meet a page without
its navigation."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.runtime.pages_manager import PagesManager

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def fresh_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(PagesManager, "uses_pages_directory", None)


def test_streamlit_flags_a_pages_folder_beside_the_entry_point(fresh_flag: None) -> None:
    assert "uses_pages_directory" in vars(PagesManager)
    PagesManager(str(ROOT / "app.py"))
    assert PagesManager.uses_pages_directory is True


def test_ensure_entrypoint_clears_the_flag_and_reruns(
    fresh_flag: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pages._ui import navigation

    PagesManager(str(ROOT / "app.py"))
    reruns: list[bool] = []
    monkeypatch.setattr(navigation.st, "rerun", lambda: reruns.append(True))
    navigation.ensure_entrypoint()
    assert PagesManager.uses_pages_directory is False and reruns == [True]
    navigation.ensure_entrypoint()  # once cleared, pages run as they are
    assert reruns == [True]
