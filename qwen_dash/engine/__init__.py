"""The engine: the model pool, comparisons across its workers, and the worker protocol.

It starts worker processes and talks to them; it never imports torch or transformers (a test
checks). See docs/architecture.md, "Process boundaries".
"""

from qwen_dash.engine.comparison import Comparison
from qwen_dash.engine.pool import ModelPool, QueueFull
from qwen_dash.engine.protocol import Event, WorkerStatus

__all__ = ["Comparison", "Event", "ModelPool", "QueueFull", "WorkerStatus"]
