"""The core: model specs, what a user asks for (requests and settings), the metric registry and
the defaults read from the environment. Imported by every layer; imports none of them."""
