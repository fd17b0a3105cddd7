"""Benchmarks: commands that print figures (``python -m qwen_dash bench ...``)."""
