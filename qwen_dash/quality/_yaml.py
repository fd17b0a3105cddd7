"""YAML that remembers where things were, so a suite error can name the line to fix.

Mappings load as :class:`LineDict` (the line of the mapping and of each key) and sequences as
:class:`LineList` (the line of the sequence and of each item); scalars load as plain values.
Lines are 1-based, as editors show them. Duplicate keys are an error here, where PyYAML would
silently keep the last one and a suite would quietly lose a test's vars.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.constructor import ConstructorError

MAX_NODES = 100_000  # expanded through aliases: stops a "billion laughs" document early


class LineDict(dict[Any, Any]):
    """A mapping with ``line`` (where it starts) and ``key_lines`` (where each key is)."""

    line: int = 1
    key_lines: dict[Any, int]


class LineList(list[Any]):
    """A sequence with ``line`` (where it starts) and ``item_lines`` (where each item is)."""

    line: int = 1
    item_lines: list[int]


class _LineLoader(yaml.SafeLoader):
    """SafeLoader (no Python objects) whose mappings and sequences carry their lines, and whose
    booleans are YAML 1.2's (true/false only): under YAML 1.1 the assertion key ``on`` would load
    as ``True`` and ``on: reasoning`` would silently vanish."""


_BOOL_TAG = "tag:yaml.org,2002:bool"
_LineLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_LineLoader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    data = LineDict()
    data.line = node.start_mark.line + 1
    data.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in data
        except TypeError:
            raise ConstructorError(
                None, None, "a key must be a plain value", key_node.start_mark
            ) from None
        if duplicate:
            raise ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        data[key] = loader.construct_object(value_node, deep=True)
        data.key_lines[key] = key_node.start_mark.line + 1
    return data


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> LineList:
    data = LineList(loader.construct_object(child, deep=True) for child in node.value)
    data.line = node.start_mark.line + 1
    data.item_lines = [child.start_mark.line + 1 for child in node.value]
    return data


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def _count_nodes(node: yaml.Node, budget: list[int]) -> None:
    """Walk the node graph as construction would see it (aliases expanded), spending budget."""
    budget[0] -= 1
    if budget[0] < 0:
        raise ConstructorError(None, None, "document too large", node.start_mark)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            _count_nodes(key, budget)
            _count_nodes(value, budget)
    elif isinstance(node, yaml.SequenceNode):
        for child in node.value:
            _count_nodes(child, budget)


def load(text: str) -> Any:
    """Parse one YAML document; raises ``yaml.YAMLError`` (with a mark, where PyYAML has one)."""
    loader = _LineLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _count_nodes(node, [MAX_NODES])
        return loader.construct_document(node)
    finally:
        loader.dispose()


def line_of(container: Any, key: Any, default: int = 1) -> int:
    """The line of ``container[key]`` (a key of a mapping or an index of a sequence)."""
    if isinstance(container, LineDict) and key in container.key_lines:
        return container.key_lines[key]
    if isinstance(container, LineList) and isinstance(key, int) and key < len(container):
        return container.item_lines[key]
    return getattr(container, "line", default)
