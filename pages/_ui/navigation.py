"""The pages' paths, and the one workaround that keeps every page under app.py's navigation."""

from __future__ import annotations

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

from pages._ui.auth import admitted

COMPARE_PAGE = "pages/compare.py"
HISTORY_PAGE = "pages/history.py"
TRENDS_PAGE = "pages/trends.py"
MODELS_PAGE = "pages/models.py"
LEADERBOARD_PAGE = "pages/leaderboard.py"
SUITES_PAGE = "pages/suites.py"
AUDIT_PAGE = "pages/audit.py"


def ensure_entrypoint() -> None:
    """Make sure the page runs under app.py's navigation. Every page calls this first.

    Streamlit treats a folder named ``pages/`` beside the entry point as an old-style multipage
    app until ``st.navigation`` has run once in the server process: the first visitor who lands
    straight on /history would get that page alone, without app.py (no shared sidebar, a menu of
    file names). Switch the process to ``st.navigation`` and run again, through app.py.

    This relies on a private flag of Streamlit 1.67 (``PagesManager.uses_pages_directory``);
    tests/test_entrypoint.py fails if an upgrade changes it.

    On a team server it also refuses anyone not admitted (app.py shows them the sign-in page
    alone; this is the second lock, should a page ever run without app.py's navigation).
    """
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()
    if admitted() is None:
        st.stop()
