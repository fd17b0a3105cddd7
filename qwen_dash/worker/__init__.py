"""The worker process: one model, its weights, its tokenizer, one generation at a time.

The only part of qwen-dash that imports torch and transformers. The pool starts it as its own
interpreter (``python -m qwen_dash.worker``) and talks to it over JSON lines on its pipes; see
``qwen_dash.engine.protocol`` and docs/architecture.md.
"""
