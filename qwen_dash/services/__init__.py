"""Services: work that spans the engine, the store and quality, run on behalf of a page or the
CLI (a prompt suite: every case through the pool, judged, logged). No streamlit, no torch."""
