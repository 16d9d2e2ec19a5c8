"""Syntax tree -> canonical text: what a condition given as JSON is shown as, and the
form `parse` reads back to the same tree. Pure."""

from __future__ import annotations

import json

from shopkeeper.segments.lang import ast

_COUNT_WORDS = {">=": "at least", "<=": "at most", "=": "exactly", ">": "more than",
                "<": "fewer than"}  # fmt: skip


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def value_text(value: ast.Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return f"{value:.1f}"
    return json.dumps(value)


def duration_text(duration: ast.Duration) -> str:
    unit = duration.unit[:-1] if duration.amount == 1 else duration.unit
    return f"{duration.amount} {unit}"


def to_text(node: ast.Condition) -> str:
    return _text(node, top=True)


def _group(node: ast.Condition) -> str:
    text = _text(node, top=False)
    return f"({text})" if isinstance(node, (ast.And, ast.Or)) else text


def _text(node: ast.Condition, top: bool) -> str:
    if isinstance(node, ast.And):
        return " and ".join(
            f"({_text(i, False)})" if isinstance(i, (ast.Or, ast.And)) else _text(i, False)
            for i in node.items
        )
    if isinstance(node, ast.Or):
        return " or ".join(
            f"({_text(i, False)})" if isinstance(i, ast.Or) else _text(i, False) for i in node.items
        )
    if isinstance(node, ast.Not):
        return f"not {_group(node.item)}"
    if isinstance(node, ast.Compare):
        return f"{node.field.name} {node.op} {value_text(node.value)}"
    if isinstance(node, ast.OneOf):
        return f"{node.field.name} in ({', '.join(value_text(v) for v in node.values)})"
    if isinstance(node, ast.Text):
        return f"{node.field.name} {node.op} {value_text(node.value)}"
    if isinstance(node, ast.Presence):
        return f"{node.field.name} is {node.test}"
    if isinstance(node, ast.Truthy):
        return node.field.name
    if isinstance(node, ast.TimeWindow):
        if node.within:
            return f"{node.field.name} within {duration_text(node.duration)}"
        return f"{node.field.name} more than {duration_text(node.duration)} ago"
    if isinstance(node, ast.Anniversary):
        return f"{node.field.name} is anniversary within {node.days} days"
    if isinstance(node, ast.Did):
        parts = ["did", quote(node.event)]
        if (node.op, node.times) != (">=", 1):
            parts.append(f"{_COUNT_WORDS[node.op]} {node.times} times")
        if node.window is not None:
            parts.append(f"within {duration_text(node.window)}")
        if node.first:
            parts.append("for the first time")
        if node.where is not None:
            parts.append(f"where ({_text(node.where, False)})")
        return " ".join(parts)
    if isinstance(node, ast.Aggregate):
        parts = [node.func, node.property.name, "of", quote(node.event)]
        if node.window is not None:
            parts.append(f"within {duration_text(node.window)}")
        if node.where is not None:
            parts.append(f"where ({_text(node.where, False)})")
        # Always a number (the parser makes it a float): shown as written, 100 not 100.0.
        value = node.value
        shown = str(int(value)) if value.is_integer() and abs(value) < 1e15 else value_text(value)
        parts.append(f"{node.op} {shown}")
        return " ".join(parts)
    if isinstance(node, ast.InSegment):
        return f"in segment {quote(node.key)}"
    raise TypeError(f"not a condition: {node!r}")
