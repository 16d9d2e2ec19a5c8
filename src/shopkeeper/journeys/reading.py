"""The reading primitives of journey definitions: YAML without surprises, durations,
times, texts, and conditions in the segment language, each failing with a JourneyInvalid
that names its place. Pure."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from typing import Any

import yaml

from shopkeeper.segments.lang import ast
from shopkeeper.segments.lang.parser import SegmentSyntaxError, parse

MAX_WAIT_MS = 2 * 365 * 86_400_000
_UNITS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 7 * 86_400_000}
_DURATION = re.compile(r"^\s*(\d{1,6})\s*(s|m|h|d|w)\s*$")


class JourneyInvalid(ValueError):
    """The definition cannot be used; `path` says where (steps[2].then)."""

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path


# -- entries --------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads `on`, `off`, `yes`, `no`, `y` and `n` as booleans, which turns
    `on: exited` into `True: exited`. Here only true and false are booleans."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _text_keys(data: Any, path: str = "") -> None:
    if isinstance(data, dict):
        for key, value in data.items():
            if not isinstance(key, str):
                raise JourneyInvalid(
                    f"{json.dumps(key)} is not a name: keys are texts.", path or None
                )
            _text_keys(value, f"{path}.{key}" if path else key)
    elif isinstance(data, list):
        for i, item in enumerate(data):
            _text_keys(item, f"{path}[{i}]")


def load_text(text: str) -> dict[str, Any]:
    """YAML or JSON text -> a mapping. Raises JourneyInvalid with the line."""
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise JourneyInvalid(f"The definition is not valid YAML{where}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise JourneyInvalid(f"The definition is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise JourneyInvalid("A journey definition is a mapping with name, entry and steps.")
    _text_keys(data)
    return data


def parse_duration(value: Any, path: str) -> int:
    """'90s', '30m', '1h', '3d', '2w' (or a number of seconds) -> milliseconds."""
    if isinstance(value, bool):
        raise JourneyInvalid("A duration is written like 30m, 1h, 3d or 2w.", path)
    if isinstance(value, int) and value >= 0:
        ms = value * 1000
    else:
        m = _DURATION.match(str(value)) if isinstance(value, str) else None
        if m is None:
            raise JourneyInvalid(
                f"{json.dumps(value)} is not a duration: write it like 30m, 1h, 3d or 2w.", path
            )
        ms = int(m.group(1)) * _UNITS[m.group(2)]
    if ms > MAX_WAIT_MS:
        raise JourneyInvalid("A duration can be at most two years.", path)
    return ms


def text_field(
    data: Mapping[str, Any], key: str, path: str, *, required: bool = True
) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            raise JourneyInvalid(f"{key} is required.", f"{path}.{key}" if path else key)
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > 500:
        raise JourneyInvalid(
            f"{key} must be a text of 1 to 500 characters.", f"{path}.{key}" if path else key
        )
    return value.strip()


def where_filter(event: str, text: Any, path: str) -> ast.Condition | None:
    """A filter on one event's properties, in the segment language (`cart_id exists and
    value >= 20`)."""
    if text is None:
        return None
    if not isinstance(text, str) or not text.strip():
        raise JourneyInvalid("where is a condition on the event's properties.", path)
    # Parenthesized, so that `a and b` is one filter rather than `(did ... where a) and b`.
    prefix = f"did {json.dumps(event)} where ("
    try:
        node = parse(prefix + text + "\n)")
    except SegmentSyntaxError as exc:
        column = exc.column - len(prefix) if exc.line == 1 else exc.column
        raise JourneyInvalid(
            f"{exc.message} (line {exc.line}, column {max(column, 1)})", path
        ) from None
    if not isinstance(node, ast.Did) or node.where is None:
        raise JourneyInvalid("where is a condition on the event's properties only.", path)
    return node.where


def condition_of(text: Any, path: str) -> ast.Condition:
    if not isinstance(text, str) or not text.strip():
        raise JourneyInvalid("A condition in the segment language is required.", path)
    try:
        return parse(text)
    except SegmentSyntaxError as exc:
        raise JourneyInvalid(
            f"{exc.message} (line {exc.line}, column {exc.column})", path
        ) from None


def parse_time(value: Any) -> int | None:
    """An ISO date or date-time text -> epoch ms (naive ones are UTC; dates at
    midnight); None for anything else."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return int(parsed.timestamp() * 1000)


def parse_signed_duration(value: Any, path: str) -> int:
    if isinstance(value, str) and value.strip().startswith("-"):
        return -parse_duration(value.strip()[1:], path)
    return parse_duration(value, path)
