"""Text -> syntax tree. A hand-written recursive-descent parser: small, and its errors
can say what was expected, in words, at a line and column. Pure.

    orders_count >= 1 and last_order_at within 90 days
    did "Product Viewed" at least 3 times within 7 days where category = "Sofas"
    total revenue of "Order Completed" within 90 days >= 100
    in segment "vip" and not in segment "employees"

See docs/segments.md for the whole language.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, cast

from shopkeeper.segments.lang import ast
from shopkeeper.segments.lang.fields import FieldType, UnknownField, event_field, profile_field

MAX_LENGTH = 20_000
MAX_DEPTH = 50


class SegmentSyntaxError(ValueError):
    """A condition that cannot be read: `message` in words, at `line` and `column`
    (1-based)."""

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(f"{message} (line {line}, column {column})")
        self.message = message
        self.line = line
        self.column = column


@dataclass(frozen=True)
class Token:
    kind: Literal["word", "string", "number", "op", "end"]
    text: str  # words lower-cased for keywords are compared via .word
    value: object
    line: int
    column: int

    @property
    def word(self) -> str:
        return self.text.lower() if self.kind == "word" else ""

    def shown(self) -> str:
        if self.kind == "end":
            return "the end of the condition"
        if self.kind == "string":
            return f'"{self.value}"'
        return f'"{self.text}"'


_QUOTES = {'"': '"', "\u201c": "\u201d", "\u201d": "\u201d", "'": "'", "\u2018": "\u2019"}
_OPS = ("==", "!=", "<>", ">=", "<=", "=", ">", "<", "(", ")", ",")
_NUMBER = re.compile(r"-?\d+(\.\d+)?")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i, line, line_start = 0, 1, 0
    while i < len(text):
        char = text[i]
        column = i - line_start + 1
        if char == "\n":
            i, line, line_start = i + 1, line + 1, i + 1
        elif char.isspace():
            i += 1
        elif char == "#":  # a comment, to the end of the line
            while i < len(text) and text[i] != "\n":
                i += 1
        elif char in _QUOTES:
            close, j, out = _QUOTES[char], i + 1, []
            while j < len(text) and text[j] != close and text[j] != "\n":
                if text[j] == "\\" and j + 1 < len(text) and text[j + 1] in (close, "\\"):
                    j += 1
                out.append(text[j])
                j += 1
            if j >= len(text) or text[j] != close:
                raise SegmentSyntaxError("This text is missing its closing quote", line, column)
            tokens.append(Token("string", text[i : j + 1], "".join(out), line, column))
            i = j + 1
        elif (number := _NUMBER.match(text, i)) and not (
            number.group().startswith("-") and tokens and tokens[-1].kind in ("number", "word")
        ):
            raw = number.group()
            value: float | int = float(raw) if "." in raw else int(raw)
            problem = ast.number_problem(value)
            if problem is not None:
                raise SegmentSyntaxError(problem, line, column)
            tokens.append(Token("number", raw, value, line, column))
            i = number.end()
        elif word := _WORD.match(text, i):
            tokens.append(Token("word", word.group(), word.group(), line, column))
            i = word.end()
        else:
            op = next((op for op in _OPS if text.startswith(op, i)), None)
            if op is None:
                raise SegmentSyntaxError(f'"{char}" cannot be used here', line, column)
            tokens.append(Token("op", op, op, line, column))
            i += len(op)
    end_column = len(text) - line_start + 1
    tokens.append(Token("end", "", None, line, end_column))
    return tokens


_COMPARE = {"=": "=", "==": "=", "!=": "!=", "<>": "!=", ">": ">", ">=": ">=", "<": "<",
            "<=": "<="}  # fmt: skip
_UNITS = {
    "minute": "minutes", "minutes": "minutes", "hour": "hours", "hours": "hours",
    "day": "days", "days": "days", "week": "weeks", "weeks": "weeks", "month": "months",
    "months": "months", "year": "years", "years": "years",
}  # fmt: skip
AggregateFunc = Literal["total", "average", "minimum", "maximum"]
_AGGREGATES: dict[str, AggregateFunc] = {
    "total": "total", "sum": "total", "average": "average", "avg": "average",
    "minimum": "minimum", "min": "minimum", "maximum": "maximum", "max": "maximum",
}  # fmt: skip
_NUMBER_TYPES = ("number", "any")
_TEXT_TYPES = ("text", "time", "any")


def parse(text: str) -> ast.Condition:
    """Parse a condition; raises SegmentSyntaxError."""
    if len(text) > MAX_LENGTH:
        raise SegmentSyntaxError(f"A condition is at most {MAX_LENGTH:,} characters", 1, 1)
    parser = _Parser(tokenize(text))
    if parser.peek().kind == "end":
        raise SegmentSyntaxError("The condition is empty", 1, 1)
    node = parser.condition("profile")
    token = parser.peek()
    if token.kind != "end":
        hint = ' (join conditions with "and" or "or")' if token.kind != "op" else ""
        raise parser.error(f"Expected the end of the condition, found {token.shown()}{hint}")
    return node


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.i = 0
        self.depth = 0

    # -- tokens ------------------------------------------------------------------------

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def next(self) -> Token:
        token = self.peek()
        self.i = min(self.i + 1, len(self.tokens) - 1)
        return token

    def error(self, message: str, token: Token | None = None) -> SegmentSyntaxError:
        token = token or self.peek()
        return SegmentSyntaxError(message, token.line, token.column)

    def accept(self, *words: str) -> bool:
        """Consume the words if they come next (all of them), else nothing."""
        for offset, word in enumerate(words):
            if self.peek(offset).word != word:
                return False
        self.i += len(words)
        return True

    def expect(self, word: str, what: str) -> None:
        if not self.accept(word):
            raise self.error(f"Expected {what}, found {self.peek().shown()}")

    def expect_op(self, op: str, what: str) -> None:
        token = self.peek()
        if token.kind != "op" or token.text != op:
            raise self.error(f"Expected {what}, found {token.shown()}")
        self.next()

    def string(self, what: str) -> str:
        token = self.peek()
        if token.kind != "string":
            raise self.error(f"Expected {what} in quotes, found {token.shown()}")
        self.next()
        return cast(str, token.value)

    def integer(self, what: str, maximum: int = ast.MAX_TIMES) -> int:
        token = self.peek()
        if token.kind != "number" or not isinstance(token.value, int) or token.value < 0:
            raise self.error(f"Expected {what} (a whole number), found {token.shown()}")
        if token.value > maximum:
            raise self.error(f"Expected {what} of at most {maximum:,}, found {token.shown()}")
        self.next()
        return token.value

    def duration(self) -> ast.Duration:
        start = self.peek()
        amount = self.integer("a number of minutes, hours, days, weeks, months or years")
        unit = _UNITS.get(self.peek().word)
        if unit is None:
            raise self.error(
                f"Expected minutes, hours, days, weeks, months or years, found "
                f"{self.peek().shown()}"
            )
        self.next()
        duration = ast.Duration(amount, cast(ast.Unit, unit))
        problem = duration.problem()
        if problem is not None:
            raise SegmentSyntaxError(problem, start.line, start.column)
        return duration

    # -- conditions ----------------------------------------------------------------------

    def condition(self, scope: str) -> ast.Condition:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"Conditions nest at most {MAX_DEPTH} deep")
        items = [self.conjunction(scope)]
        while self.accept("or"):
            items.append(self.conjunction(scope))
        self.depth -= 1
        return items[0] if len(items) == 1 else ast.Or(tuple(items))

    def conjunction(self, scope: str) -> ast.Condition:
        items = [self.unary(scope)]
        while self.accept("and"):
            items.append(self.unary(scope))
        return items[0] if len(items) == 1 else ast.And(tuple(items))

    def unary(self, scope: str) -> ast.Condition:
        if self.accept("not"):
            return ast.Not(self.unary(scope))
        return self.atom(scope)

    def atom(self, scope: str) -> ast.Condition:
        token = self.peek()
        if token.kind == "op" and token.text == "(":
            self.next()
            node = self.condition(scope)
            self.expect_op(")", 'a closing ")"')
            return node
        if scope == "profile":
            if self.accept("did", "not") or self.accept("never", "did") or self.accept("never"):
                return ast.Not(self.did())
            if self.accept("did"):
                return self.did()
            if self.accept("in", "segment"):
                return ast.InSegment(self.string("a segment key"))
            if token.word in _AGGREGATES and self.peek(2).word == "of":
                return self.aggregate()
        if token.kind != "word" or token.word in RESERVED:
            raise self.error(f"Expected a condition, found {token.shown()}")
        return self.field_condition(scope)

    def did(self) -> ast.Condition:
        event = self.string("an event name")
        op: ast.CountOp = ">="
        times, window, where, first = 1, None, None, False
        seen: set[str] = set()

        def once(clause: str, token: Token) -> None:
            if clause in seen:
                raise self.error(f"This event condition already has a {clause}", token)
            seen.add(clause)

        while True:
            token = self.peek()
            count = self._count()
            if count is not None:
                once("number of times", token)
                op, times = count
            elif self.accept("within") or self.accept("in", "the", "last"):
                once("time window", token)
                window = self.duration()
            elif self.accept("where"):
                once("where", token)
                where = self.where()
            elif self.accept("for", "the", "first", "time"):
                once("first time", token)
                first = True
            else:
                break
        if first and window is None:
            raise self.error('"for the first time" needs a window: add "within 30 days"')
        if first and count_given(seen):
            raise self.error('"for the first time" cannot be combined with a number of times')
        return ast.Did(event, op, times, window, where, first)

    def _count(self) -> tuple[ast.CountOp, int] | None:
        words = {
            ("at", "least"): ">=", ("at", "most"): "<=", ("exactly",): "=",
            ("more", "than"): ">", ("fewer", "than"): "<", ("less", "than"): "<",
        }  # fmt: skip
        for phrase, op in words.items():
            if self.peek(len(phrase)).kind == "number" and self.accept(*phrase):
                times = self.integer("a number of times")
                self._times_word()
                return cast(ast.CountOp, op), times
        if self.peek().kind == "number" and self.peek(1).word in ("times", "time"):
            times = self.integer("a number of times")
            self._times_word()
            return "=", times
        if self.accept("once"):
            return "=", 1
        if self.accept("twice"):
            return "=", 2
        return None

    def _times_word(self) -> None:
        if not (self.accept("times") or self.accept("time")):
            raise self.error(f'Expected "times", found {self.peek().shown()}')

    def where(self) -> ast.Condition:
        token = self.peek()
        if token.kind == "op" and token.text == "(":
            self.next()
            node = self.condition("event")
            self.expect_op(")", 'a closing ")"')
            return node
        return self.unary("event")

    def aggregate(self) -> ast.Condition:
        func = _AGGREGATES[self.next().word]
        token = self.peek()
        if token.kind != "word":
            raise self.error(f"Expected a property name, found {token.shown()}")
        self.next()
        prop, _type = self._field(token, "event")
        self.expect("of", '"of"')
        event = self.string("an event name")
        window, where = None, None
        while True:
            if window is None and (self.accept("within") or self.accept("in", "the", "last")):
                window = self.duration()
            elif where is None and self.accept("where"):
                where = self.where()
            else:
                break
        op_token = self.peek()
        op = _COMPARE.get(op_token.text) if op_token.kind == "op" else None
        if op is None:
            raise self.error(f"Expected a comparison such as >= 100, found {op_token.shown()}")
        self.next()
        value = self.peek()
        if value.kind != "number":
            raise self.error(f"Expected a number, found {value.shown()}")
        self.next()
        return ast.Aggregate(
            func,
            prop,
            event,
            window,
            where,
            cast(ast.CompareOp, op),
            float(cast(float, value.value)),
        )

    # -- conditions on one field ---------------------------------------------------------

    def _field(self, token: Token, scope: str) -> tuple[ast.Field, FieldType]:
        try:
            return profile_field(token.text) if scope == "profile" else event_field(token.text)
        except UnknownField as exc:
            raise self.error(str(exc), token) from None

    def field_condition(self, scope: str) -> ast.Condition:
        token = self.next()
        field, type_ = self._field(token, scope)
        nxt = self.peek()
        if nxt.kind == "op" and nxt.text in _COMPARE:
            self.next()
            return self._compare(field, type_, _COMPARE[nxt.text], token)
        if self.accept("is", "not", "set"):
            return ast.Not(ast.Presence(field, "set"))
        if self.accept("is", "not", "empty"):
            return ast.Not(ast.Presence(field, "empty"))
        if self.accept("is", "set"):
            return ast.Presence(field, "set")
        if self.accept("is", "empty"):
            return ast.Presence(field, "empty")
        if self.accept("is", "anniversary", "within") or self.accept("anniversary", "within"):
            self._require(type_, ("time", "text", "any"), field, "a date")
            days = self.duration()
            if days.unit != "days" or days.amount > ast.MAX_ANNIVERSARY_DAYS:
                raise self.error(
                    "An anniversary window is in days, at most 366, e.g. within 7 days"
                )
            return ast.Anniversary(field, days.amount)
        if self.accept("is", "not"):
            return ast.Not(self._compare(field, type_, "=", token))
        if self.accept("is"):
            return self._compare(field, type_, "=", token)
        if self.accept("not", "in"):
            return ast.Not(self._one_of(field, type_))
        if self.accept("in"):
            return self._one_of(field, type_)
        if self.accept("starts", "with"):
            self._require(type_, _TEXT_TYPES, field, "a text")
            return ast.Text(field, "starts with", self.string("the beginning of the text"))
        if self.accept("does", "not", "contain"):
            return ast.Not(self._contains(field, type_))
        if self.accept("contains"):
            return self._contains(field, type_)
        if self.accept("within") or self.accept("in", "the", "last"):
            self._require(type_, _TEXT_TYPES, field, "a time")
            return ast.TimeWindow(field, True, self.duration())
        if self.accept("more", "than") or self.accept("over"):
            self._require(type_, _TEXT_TYPES, field, "a time")
            duration = self.duration()
            self.expect("ago", '"ago" (as in: more than 30 days ago)')
            return ast.TimeWindow(field, False, duration)
        if self.accept("before"):
            return self._compare(field, type_, "<", token)
        if self.accept("after"):
            return self._compare(field, type_, ">", token)
        if self.accept("between"):
            low = self._compare(field, type_, ">=", token)
            self.expect("and", '"and" (as in: between 10 and 20)')
            high = self._compare(field, type_, "<=", token)
            return ast.And((low, high))
        if nxt.kind in ("string", "number") or (nxt.kind == "word" and nxt.word not in (
            "and", "or"
        )):  # fmt: skip
            raise self.error(
                f"Expected a comparison after {field.name} (=, >=, in, within, is set...), "
                f"found {nxt.shown()}"
            )
        self._require(type_, ("boolean", "any"), field, "a yes/no value")
        return ast.Truthy(field)

    def _require(
        self, type_: FieldType, allowed: tuple[str, ...], field: ast.Field, what: str
    ) -> None:
        if type_ not in allowed:
            raise self.error(f"{field.name} is {_TYPE_WORDS[type_]}, not {what}")

    def value(self) -> ast.Value:
        token = self.peek()
        if token.kind in ("string", "number"):
            self.next()
            return cast(ast.Value, token.value)
        if token.word in ("true", "yes"):
            self.next()
            return True
        if token.word in ("false", "no"):
            self.next()
            return False
        raise self.error(f"Expected a value (text in quotes, a number, true or false), found "
                         f"{token.shown()}")  # fmt: skip

    def _check_value(self, field: ast.Field, type_: FieldType, value: ast.Value,
                     token: Token) -> None:  # fmt: skip
        if isinstance(value, bool):
            ok = type_ in ("boolean", "any")
        elif isinstance(value, (int, float)):
            ok = type_ in _NUMBER_TYPES
        else:
            ok = type_ in _TEXT_TYPES
        if not ok:
            raise self.error(f"{field.name} is {_TYPE_WORDS[type_]}; it cannot be compared "
                             f"with {token.shown()}", token)  # fmt: skip

    def _compare(self, field: ast.Field, type_: FieldType, op: str, at: Token) -> ast.Condition:
        token = self.peek()
        value = self.value()
        self._check_value(field, type_, value, token)
        if isinstance(value, bool) and op not in ("=", "!="):
            raise self.error("true and false can only be compared with = or !=", token)
        return ast.Compare(field, cast(ast.CompareOp, op), value)

    def _one_of(self, field: ast.Field, type_: FieldType) -> ast.Condition:
        self.expect_op("(", 'a list in brackets, as in ("NO", "SE")')
        values: list[ast.Value] = []
        while True:
            token = self.peek()
            value = self.value()
            self._check_value(field, type_, value, token)
            values.append(value)
            if self.peek().kind == "op" and self.peek().text == ",":
                self.next()
                continue
            self.expect_op(")", 'a "," or the closing ")" of the list')
            return ast.OneOf(field, tuple(values))

    def _contains(self, field: ast.Field, type_: FieldType) -> ast.Condition:
        self._require(type_, ("text", "list", "any"), field, "a text or a list")
        token = self.peek()
        value = self.value()
        if type_ == "text" and not isinstance(value, str):
            raise self.error(f"{field.name} is a text; it can contain a text in quotes", token)
        return ast.Text(field, "contains", value)


# Words that cannot start a condition (a trait with such a name: traits.within).
RESERVED = frozenset({"and", "or", "not", "did", "never", "in", "where", "within", "is", "of",
                      "times", "true", "false"})  # fmt: skip


def count_given(seen: set[str]) -> bool:
    return "number of times" in seen


_TYPE_WORDS: dict[str, str] = {
    "number": "a number",
    "text": "a text",
    "time": "a time",
    "boolean": "a yes/no value",
    "list": "a list",
    "object": "a group of values (name one of them, e.g. last_order.revenue)",
    "any": "a value",
}
