"""qwen-dash: compare small Qwen models side by side, with every run measured and logged."""

__version__ = "0.1.0"
