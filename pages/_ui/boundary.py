"""The page boundary: an exception a page did not handle becomes a clear message for the user;
its detail (the traceback) goes to the server log, never to the browser."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

import streamlit as st

from pages._ui.text import md

log = logging.getLogger("qwen_dash.pages")


def run_guarded(page: Callable[[], None]) -> None:
    """Run ``page``; on an unexpected error show a message with a reference the server log
    carries beside the traceback. Streamlit's own control flow (st.stop, st.rerun,
    st.switch_page) is not an Exception and passes through."""
    try:
        page()
    except Exception:
        ref = uuid.uuid4().hex[:8]
        log.exception("page failed (ref %s)", ref)
        st.error(
            md(
                "Something went wrong on this page and it could not be shown. Nothing you "
                "entered was lost; try again, or tell whoever runs this server (reference {ref}: "
                "the details are in its log).",
                ref=ref,
            ),
            icon=":material/error:",
        )
