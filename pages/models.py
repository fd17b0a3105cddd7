"""Models: the seed note's comparison table, live; one column per model."""

from __future__ import annotations

import streamlit as st

from pages._ui.navigation import ensure_entrypoint
from pages._ui.resources import model_labels, pool_or_stop, store_or_none
from pages._ui.text import literal, md
from qwen_dash.views.charts import generations_frame, load_generations
from qwen_dash.views.display import is_random_source, source_label
from qwen_dash.views.models import SECTIONS, SPEED_PAGES_NOTE, comparison_table, kv_ratio
from qwen_dash.views.speed import fairness_notes, load_speed_runs, speed_frame, speed_table

ensure_entrypoint()
pool = pool_or_stop()
store, store_error = store_or_none()
labels = model_labels(pool)
specs = {k: pool.specs[k] for k in pool.workers}
statuses = pool.status()
infos = {k: s.info for k, s in statuses.items()}

st.title("Models", anchor=False)
st.caption(
    "The research note's comparison, live: facts counted from the models loaded in this server, "
    "speed and memory measured here from logged runs, beside the figures the note and Qwen's "
    "official pages quote."
)
random = {labels[k]: s.source for k, s in statuses.items() if is_random_source(s.source)}
if random:
    names = ", ".join(f"{label} ({source_label(src)})" for label, src in random.items())
    st.warning(
        md(
            "Random weights: {names}. Counts, layers and heads are those of the loaded model: a "
            "twin has the real architecture, a tiny test model does not.",
            names=names,
        ),
        icon=":material/warning:",
    )
loading = [labels[k] for k, s in statuses.items() if s.state != "ready"]
if loading:
    st.info(
        md(
            "Still loading: {names}. Their counted facts appear once loaded.",
            names=", ".join(loading),
        )
    )
if store is None:
    st.warning(
        md("The database cannot be opened, so nothing measured is shown: {e}", e=store_error)
    )
    generations = generations_frame([], labels)
    speed_runs = speed_frame([])
else:
    generations = load_generations(store, None, labels)
    speed_runs = load_speed_runs(store)

table = comparison_table(specs, infos, generations)
for section in SECTIONS:
    st.subheader(literal(section.split(" (")[0]), anchor=False)
    if section.startswith("Measured"):
        st.caption(
            "Medians of the answers logged here with the weights this server loaded, per timing "
            "mode (isolated: one model at a time, fair latency)."
        )
    elif section.startswith("Qwen's"):
        st.caption(literal(section[len("Qwen's official speed pages ") :].strip("()")))
        st.info(SPEED_PAGES_NOTE, icon=":material/info:")
    part = table.xs(section, level="section").rename_axis(None)
    st.table(part, border="horizontal")

if ratio := kv_ratio(specs):
    st.caption(
        md("KV cache: {ratio} (2 x layers x KV heads x head dim x 2 bytes in bf16).", ratio=ratio)
    )

st.subheader("Speed under one protocol", anchor=False)
st.caption(
    "Qwen's speed protocol: batch 1, a prompt of exactly N tokens ('我' x N, no chat template), "
    "exactly the new tokens asked for. Rows measured here come from `python -m qwen_dash bench "
    "speed` (kind benchmark); both formulas are shown for every row."
)
st.dataframe(speed_table(specs, labels, speed_runs), hide_index=True)
st.info(
    "\n\n".join(
        md("**{verdict}:** {why}", verdict=verdict, why=why)
        for verdict, why in fairness_notes(speed_runs, specs)
    ),
    icon=":material/balance:",
)
