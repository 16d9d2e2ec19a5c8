"""The JSON form of a condition, for machines: to_json(tree) and from_json(document)
-> the same tree as the text would give. Errors name the place in the document as a
JSON pointer (`/and/1/value`). Pure.

    {"and": [{"field": "orders_count", "op": ">=", "value": 1},
             {"field": "last_order_at", "op": "within", "value": {"amount": 90, "unit": "days"}},
             {"did": "Product Added", "within": {"amount": 3, "unit": "days"},
              "where": {"field": "category", "op": "=", "value": "Sofas"}},
             {"not": {"in_segment": "employees"}}]}
"""

from __future__ import annotations

from typing import Any, cast

from shopkeeper.segments.lang import ast
from shopkeeper.segments.lang.fields import UnknownField, event_field, profile_field

MAX_DEPTH = 50


class SegmentJsonError(ValueError):
    def __init__(self, message: str, pointer: str) -> None:
        super().__init__(f"{message} (at {pointer or '/'})")
        self.message = message
        self.pointer = pointer


def _duration(d: ast.Duration) -> dict[str, Any]:
    return {"amount": d.amount, "unit": d.unit}


def to_json(node: ast.Condition) -> dict[str, Any]:
    if isinstance(node, ast.And):
        return {"and": [to_json(i) for i in node.items]}
    if isinstance(node, ast.Or):
        return {"or": [to_json(i) for i in node.items]}
    if isinstance(node, ast.Not):
        return {"not": to_json(node.item)}
    if isinstance(node, ast.Compare):
        return {"field": node.field.name, "op": node.op, "value": node.value}
    if isinstance(node, ast.OneOf):
        return {"field": node.field.name, "op": "in", "value": list(node.values)}
    if isinstance(node, ast.Text):
        return {"field": node.field.name, "op": node.op, "value": node.value}
    if isinstance(node, ast.Presence):
        return {"field": node.field.name, "op": f"is {node.test}"}
    if isinstance(node, ast.Truthy):
        return {"field": node.field.name, "op": "is true"}
    if isinstance(node, ast.TimeWindow):
        op = "within" if node.within else "more than ago"
        return {"field": node.field.name, "op": op, "value": _duration(node.duration)}
    if isinstance(node, ast.Anniversary):
        return {"field": node.field.name, "op": "anniversary within", "value": node.days}
    if isinstance(node, ast.Did):
        out: dict[str, Any] = {"did": node.event}
        if (node.op, node.times) != (">=", 1):
            out["count"] = {"op": node.op, "times": node.times}
        if node.window is not None:
            out["within"] = _duration(node.window)
        if node.first:
            out["first"] = True
        if node.where is not None:
            out["where"] = to_json(node.where)
        return out
    if isinstance(node, ast.Aggregate):
        agg: dict[str, Any] = {"aggregate": node.func, "property": node.property.name,
                               "of": node.event}  # fmt: skip
        if node.window is not None:
            agg["within"] = _duration(node.window)
        if node.where is not None:
            agg["where"] = to_json(node.where)
        agg.update(op=node.op, value=node.value)
        return agg
    if isinstance(node, ast.InSegment):
        return {"in_segment": node.key}
    raise TypeError(f"not a condition: {node!r}")


def from_json(document: Any) -> ast.Condition:
    return _Reader().condition(document, "", "profile", 0)


_COMPARE_OPS = ("=", "!=", ">", ">=", "<", "<=")
_COUNT_OPS = (">=", "<=", "=", ">", "<")
_FUNCS = ("total", "average", "minimum", "maximum")


class _Reader:
    def condition(self, doc: Any, at: str, scope: str, depth: int) -> ast.Condition:
        if depth > MAX_DEPTH:
            raise SegmentJsonError(f"Conditions nest at most {MAX_DEPTH} deep", at)
        if not isinstance(doc, dict):
            raise SegmentJsonError("A condition is a JSON object", at)
        if "and" in doc or "or" in doc:
            key = "and" if "and" in doc else "or"
            self._only(doc, {key}, at)
            items = doc[key]
            if not isinstance(items, list) or not items:
                raise SegmentJsonError(f'"{key}" holds a non-empty list of conditions', at)
            parsed = tuple(
                self.condition(item, f"{at}/{key}/{n}", scope, depth + 1)
                for n, item in enumerate(items)
            )
            if len(parsed) == 1:
                return parsed[0]
            return ast.And(parsed) if key == "and" else ast.Or(parsed)
        if "not" in doc:
            self._only(doc, {"not"}, at)
            return ast.Not(self.condition(doc["not"], f"{at}/not", scope, depth + 1))
        if "field" in doc:
            return self.field(doc, at, scope)
        if scope == "profile" and "did" in doc:
            return self.did(doc, at, depth)
        if scope == "profile" and "aggregate" in doc:
            return self.aggregate(doc, at, depth)
        if scope == "profile" and "in_segment" in doc:
            self._only(doc, {"in_segment"}, at)
            return ast.InSegment(self._string(doc["in_segment"], f"{at}/in_segment"))
        keys = "and, or, not, field" + (", did, aggregate, in_segment" if scope == "profile"
                                        else "")  # fmt: skip
        raise SegmentJsonError(f"A condition has one of the keys {keys}", at)

    def _only(self, doc: dict[str, Any], keys: set[str], at: str) -> None:
        extra = sorted(set(doc) - keys)
        if extra:
            raise SegmentJsonError(f'Unexpected key "{extra[0]}"', at)

    def _string(self, value: Any, at: str) -> str:
        if not isinstance(value, str) or not value:
            raise SegmentJsonError("Expected a non-empty text", at)
        return value

    def _value(self, value: Any, at: str) -> ast.Value:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            problem = ast.number_problem(value)
            if problem is not None:
                raise SegmentJsonError(problem, at)
        if isinstance(value, (str, bool, int, float)):
            return value
        raise SegmentJsonError("Expected a text, a number, true or false", at)

    def _duration(self, value: Any, at: str) -> ast.Duration:
        if (
            not isinstance(value, dict)
            or set(value) != {"amount", "unit"}
            or not isinstance(value["amount"], int)
            or isinstance(value["amount"], bool)
            or value["amount"] < 0
            or value["unit"] not in ast.UNIT_MS
        ):
            raise SegmentJsonError(
                'A duration is {"amount": a whole number, "unit": one of '
                + ", ".join(ast.UNIT_MS)
                + "}",
                at,
            )
        duration = ast.Duration(value["amount"], value["unit"])
        problem = duration.problem()
        if problem is not None:
            raise SegmentJsonError(problem, f"{at}/amount")
        return duration

    def field(self, doc: dict[str, Any], at: str, scope: str) -> ast.Condition:
        self._only(doc, {"field", "op", "value"}, at)
        name = self._string(doc["field"], f"{at}/field")
        try:
            field, _type = profile_field(name) if scope == "profile" else event_field(name)
        except UnknownField as exc:
            raise SegmentJsonError(str(exc), f"{at}/field") from None
        op, value = doc.get("op"), doc.get("value")
        vat = f"{at}/value"
        if op in _COMPARE_OPS:
            return ast.Compare(field, cast(ast.CompareOp, op), self._value(value, vat))
        if op == "in":
            if not isinstance(value, list) or not value:
                raise SegmentJsonError("Expected a non-empty list of values", vat)
            return ast.OneOf(
                field, tuple(self._value(v, f"{vat}/{n}") for n, v in enumerate(value))
            )
        if op in ("starts with", "contains"):
            return ast.Text(field, op, self._value(value, vat))
        if op in ("is set", "is empty"):
            return ast.Presence(field, "set" if op == "is set" else "empty")
        if op == "is true":
            return ast.Truthy(field)
        if op in ("within", "more than ago"):
            return ast.TimeWindow(field, op == "within", self._duration(value, vat))
        if op == "anniversary within":
            if (
                not isinstance(value, int)
                or isinstance(value, bool)
                or not 0 <= value <= ast.MAX_ANNIVERSARY_DAYS
            ):
                raise SegmentJsonError("Expected a whole number of days, at most 366", vat)
            return ast.Anniversary(field, value)
        raise SegmentJsonError(
            "op is one of =, !=, >, >=, <, <=, in, starts with, contains, is set, is empty, "
            "is true, within, more than ago, anniversary within",
            f"{at}/op",
        )

    def _where(self, doc: dict[str, Any], at: str, depth: int) -> ast.Condition | None:
        if doc.get("where") is None:
            return None
        return self.condition(doc["where"], f"{at}/where", "event", depth + 1)

    def did(self, doc: dict[str, Any], at: str, depth: int) -> ast.Condition:
        self._only(doc, {"did", "count", "within", "first", "where"}, at)
        event = self._string(doc["did"], f"{at}/did")
        op, times = ">=", 1
        if doc.get("count") is not None:
            count = doc["count"]
            if (
                not isinstance(count, dict)
                or set(count) != {"op", "times"}
                or count["op"] not in _COUNT_OPS
                or not isinstance(count["times"], int)
                or isinstance(count["times"], bool)
                or not 0 <= count["times"] <= ast.MAX_TIMES
            ):
                raise SegmentJsonError(
                    'count is {"op": one of >=, <=, =, >, <, "times": a whole number}',
                    f"{at}/count",
                )
            op, times = count["op"], count["times"]
        window = None
        if doc.get("within") is not None:
            window = self._duration(doc["within"], f"{at}/within")
        first = doc.get("first", False)
        if not isinstance(first, bool):
            raise SegmentJsonError("first is true or false", f"{at}/first")
        if first and window is None:
            raise SegmentJsonError('"first" needs a window ("within")', f"{at}/first")
        return ast.Did(
            event, cast(ast.CountOp, op), times, window, self._where(doc, at, depth), first
        )

    def aggregate(self, doc: dict[str, Any], at: str, depth: int) -> ast.Condition:
        self._only(doc, {"aggregate", "property", "of", "within", "where", "op", "value"}, at)
        func = doc["aggregate"]
        if func not in _FUNCS:
            raise SegmentJsonError(f"aggregate is one of {', '.join(_FUNCS)}", f"{at}/aggregate")
        name = self._string(doc.get("property"), f"{at}/property")
        try:
            prop, _type = event_field(name)
        except UnknownField as exc:
            raise SegmentJsonError(str(exc), f"{at}/property") from None
        event = self._string(doc.get("of"), f"{at}/of")
        window = self._duration(doc["within"], f"{at}/within") if doc.get("within") else None
        op, value = doc.get("op"), doc.get("value")
        if op not in _COMPARE_OPS:
            raise SegmentJsonError("op is one of =, !=, >, >=, <, <=", f"{at}/op")
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise SegmentJsonError("Expected a number", f"{at}/value")
        problem = ast.number_problem(value)
        if problem is not None:
            raise SegmentJsonError(problem, f"{at}/value")
        return ast.Aggregate(
            func, prop, event, window, self._where(doc, at, depth), op, float(value)
        )
