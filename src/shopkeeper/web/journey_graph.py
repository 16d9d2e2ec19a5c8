"""A journey's steps drawn as inline SVG on the server: one box per step in the order
written, top to bottom, the entry above and an "End" node below. An edge to the step
just below is a straight line; any other edge (skipping ahead, going back up to an
earlier-written step, or to the end) runs in a lane beside the boxes, forward edges on
the right and backward ones on the left, each in the innermost lane free over its rows.

Pure: a Definition and counts in, markup out. Colours come from journeys.css.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from shopkeeper.journeys.definition import END, Definition, Step
from shopkeeper.web import format as fmt

BOX_W = 300
BOX_H = 66
ROW = 112  # from one box's top to the next's
PILL_W = 260
PILL_H = 48
LANE_FIRST = 44  # from a box's side to its first lane
LANE_GAP = 26
LABEL_ROOM = 90  # beyond the outermost lane, for labels
TOP = 12
DETAIL_CHARS = 42

# Outcome recorded at a step -> the label of the edge it took.
_OUTCOME_OF_EDGE = {
    "condition": {"then": "yes", "else": "no"},
    "wait_for": {"happened": "happened", "timeout": "timed out"},
}
_EDGE_LABEL = {"condition": {"then": "then", "else": "else"}}


@dataclass(frozen=True)
class _Edge:
    source: int  # row of the step it leaves (-1: the entry)
    target: int  # row it arrives at (len(steps): the end)
    label: str
    count: int | None


def step_detail(step: Step, raw: Mapping[str, object] | None = None) -> str:
    """One line saying what a step does."""
    o = step.options
    raw = raw or {}
    if step.type == "wait":
        return f"wait {fmt.duration(int(o['duration_ms']))}"
    if step.type == "wait_until":
        days = o["weekdays"]
        on = "" if len(days) == 7 else " on " + ", ".join(days)
        return f"wait until {o['hour']:02d}:{o['minute']:02d}{on}"
    if step.type == "wait_date":
        offset = int(o["offset_ms"])
        sign = "+" if offset >= 0 else "-"
        return f"wait until {o['attribute']} {sign} {fmt.duration(abs(offset))}"
    if step.type == "wait_for":
        return f"wait {fmt.duration(int(o['timeout_ms']))} for “{o['event'].event}”"
    if step.type == "condition":
        return f"if {raw.get('condition', '…')}"
    if step.type == "split":
        return "split " + " / ".join(f"{b['name']} {b['weight']:g}" for b in o["branches"])
    if step.type == "send":
        channel = o["channel"]
        return f"send “{o['template']}” by {'the best channel' if channel == 'best' else channel}"
    if step.type == "update_profile":
        changed = [*o["traits"], *(f"#{tag}" for tag in o["tags"]), *o["consent"]]
        return "set " + ", ".join(str(c) for c in changed)
    if step.type == "coupon":
        return f"coupon from “{o['pool']}”"
    if step.type == "webhook":
        return f"call {o['url']}"
    if step.type == "exit":
        return "leave the journey"
    return step.type


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _edges(definition: Definition, counts: Mapping[str, Mapping[str, int]] | None) -> list[_Edge]:
    rows = {step.id: i for i, step in enumerate(definition.steps)}
    end = len(definition.steps)
    edges = [_Edge(-1, 0, "", None)]
    for i, step in enumerate(definition.steps):
        merged: dict[int, list[tuple[str, int | None]]] = {}
        outcomes = (counts or {}).get(step.id, {})
        counted = counts is not None and step.type in ("condition", "wait_for", "split")
        for name, target in step.targets().items():
            row = end if target == END else rows[target]
            label = _EDGE_LABEL.get(step.type, {}).get(name, name)
            outcome = _OUTCOME_OF_EDGE.get(step.type, {}).get(name, name)
            count = outcomes.get(outcome, 0) if counted else None
            merged.setdefault(row, []).append(("" if name == "next" else label, count))
        for row, labels in merged.items():
            text = ", ".join(label for label, _ in labels if label)
            known = [count for _, count in labels if count is not None]
            edges.append(_Edge(i, row, text, sum(known) if known else None))
    return edges


def _lanes(edges: Sequence[_Edge]) -> dict[_Edge, int]:
    """Innermost free lane per side edge, shorter spans first (so they stay inside)."""
    taken: list[list[tuple[int, int]]] = []
    out: dict[_Edge, int] = {}
    for edge in sorted(edges, key=lambda e: (abs(e.target - e.source), e.source)):
        low, high = sorted((edge.source, edge.target))
        lane = 0
        while lane < len(taken) and any(a <= high and low <= b for a, b in taken[lane]):
            lane += 1
        if lane == len(taken):
            taken.append([])
        taken[lane].append((low, high))
        out[edge] = lane
    return out


def _spread(n: int, index: int, step: float = 18) -> float:
    return (index - (n - 1) / 2) * step


def journey_graph(
    definition: Definition,
    counts: Mapping[str, Mapping[str, int]] | None,
    *,
    entry: str,
    entered: int | None = None,
    ended: str = "",
) -> Markup:
    """The graph; `counts` is service.step_counts' shape ({step: {outcome: n,
    "now_here": n}}), None for an unsaved definition (no figures drawn)."""
    steps = definition.steps
    end = len(steps)
    edges = _edges(definition, counts)
    straight = [e for e in edges if e.target == e.source + 1]
    right = [e for e in edges if e.target > e.source + 1]
    left = [e for e in edges if e.target <= e.source]
    right_lane, left_lane = _lanes(right), _lanes(left)
    n_left = max(left_lane.values(), default=-1) + 1
    n_right = max(right_lane.values(), default=-1) + 1
    box_x = 16 + (LANE_FIRST + (n_left - 1) * LANE_GAP + LABEL_ROOM if n_left else 0)
    cx = box_x + BOX_W / 2
    width = box_x + BOX_W + (LANE_FIRST + (n_right - 1) * LANE_GAP if n_right else 0) + LABEL_ROOM
    first_y = TOP + PILL_H + ROW - BOX_H

    def top(row: int) -> float:
        return TOP if row < 0 else first_y + row * ROW

    def height(row: int) -> float:
        return BOX_H if 0 <= row < end else PILL_H

    def half_w(row: int) -> float:
        return BOX_W / 2 if 0 <= row < end else PILL_W / 2

    height_total = top(end) + PILL_H + TOP
    parts = [
        f'<svg class="journey-graph" viewBox="0 0 {width:.0f} {height_total:.0f}" '
        f'width="{width:.0f}" height="{height_total:.0f}" role="img" '
        f'aria-label="{escape(definition.name)}: {end} step{"" if end == 1 else "s"}" '
        'data-testid="journey-graph">',
        '<defs><marker id="jg-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/>'
        "</marker></defs>",
    ]
    for edge in straight:
        x = cx
        y1 = top(edge.source) + height(edge.source)
        y2 = top(edge.target)
        parts.append(
            f'<path class="edge" d="M{x:.0f},{y1:.0f} V{y2 - 1:.0f}" marker-end="url(#jg-arrow)"/>'
        )
        parts.append(_label(edge, x + 8, (y1 + y2) / 2 + 4, "start"))
    for side, lanes in ((1, right_lane), (-1, left_lane)):
        group = right if side == 1 else left
        # Every attachment on a box's side gets its own height, ordered so that lines
        # cross as little as they can: on the right (edges going down) arrivals above
        # departures, on the left (going up) the reverse; inner lanes nearest the
        # middle of the pair.
        ends: dict[int, list[tuple[tuple[int, int], _Edge]]] = {}
        for edge in group:
            for row, arriving in ((edge.source, False), (edge.target, True)):
                first = 0 if arriving == (side == 1) else 1
                key = (first, lanes[edge] if first == 0 else -lanes[edge])
                ends.setdefault(row, []).append((key, edge))
        y_at: dict[tuple[int, _Edge], float] = {}
        for row, found in ends.items():
            found.sort(key=lambda item: item[0])
            for i, (_key, edge) in enumerate(found):
                y_at[(row, edge)] = top(row) + height(row) / 2 + _spread(len(found), i)
        for edge in group:
            y1 = y_at[(edge.source, edge)]
            y2 = y_at[(edge.target, edge)]
            x1 = cx + side * half_w(edge.source)
            x2 = cx + side * half_w(edge.target)
            lane_x = cx + side * (BOX_W / 2 + LANE_FIRST + lanes[edge] * LANE_GAP)
            parts.append(
                f'<path class="edge" d="M{x1:.0f},{y1:.0f} H{lane_x:.0f} V{y2:.0f} '
                f'H{x2 + side * 1:.0f}" marker-end="url(#jg-arrow)"/>'
            )
            parts.append(_label(edge, x1 + side * 6, y1 - 5, "start" if side == 1 else "end"))
    title = "Entry" if entered is None else f"Entry · {fmt.number(entered)} entered"
    parts.append(_node(cx, TOP, "entry", title, entry))
    for i, step in enumerate(steps):
        seen = None if counts is None else counts.get(step.id, {})
        parts.append(_box(step, box_x, top(i), seen, definition))
    parts.append(_node(cx, top(end), "end", "End", ended or "the journey is over"))
    parts.append("</svg>")
    # Safe: every piece of text went through escape().
    return Markup("".join(parts))  # noqa: S704


def _label(edge: _Edge, x: float, y: float, anchor: str) -> str:
    text = edge.label
    if edge.count is not None:
        text = f"{text} · {fmt.number(edge.count)}" if text else fmt.number(edge.count)
    if not text:
        return ""
    return (
        f'<text class="edge-label" x="{x:.0f}" y="{y:.0f}" text-anchor="{anchor}">'
        f"{escape(text)}</text>"
    )


def _node(cx: float, y: float, kind: str, title: str, line: str) -> str:
    """The entry or the end: a rounded box of two lines, as wide as a step."""
    return (
        f'<g class="node {kind}" data-testid="journey-{kind}"><title>{escape(line)}</title>'
        f'<rect x="{cx - PILL_W / 2:.0f}" y="{y:.0f}" width="{PILL_W}" height="{PILL_H}" '
        'rx="14"/>'
        f'<text x="{cx:.0f}" y="{y + 19:.0f}" text-anchor="middle">{escape(title)}</text>'
        f'<text class="node-line" x="{cx:.0f}" y="{y + 37:.0f}" text-anchor="middle">'
        f"{escape(_cut(line, DETAIL_CHARS))}</text></g>"
    )


def _box(
    step: Step, x: float, y: float, counts: Mapping[str, int] | None, definition: Definition
) -> str:
    raw_steps = definition.raw.get("steps")
    raw = next(
        (s for s in raw_steps if isinstance(s, Mapping) and s.get("id") == step.id),
        None,
    ) if isinstance(raw_steps, list) else None  # fmt: skip
    detail = step_detail(step, raw)
    here = (counts or {}).get("now_here", 0)
    outcomes = {k: v for k, v in (counts or {}).items() if k != "now_here"}
    reached = sum(outcomes.values())
    if counts is None:
        figures = ""
    elif reached or here:
        figures = f"{fmt.number(reached)} reached"
        if here:
            figures += f" · {fmt.number(here)} here now"
    else:
        figures = "not reached yet"
    tooltip = f"{step.id} ({step.type}): {detail}"
    if outcomes:
        tooltip += "\n" + ", ".join(f"{k or 'reached'}: {v}" for k, v in sorted(outcomes.items()))
    classes = f"step type-{step.type}" + (" busy" if here else "")
    return (
        f'<g class="{classes}" data-testid="step-{escape(step.id)}">'
        f"<title>{escape(tooltip)}</title>"
        f'<rect x="{x:.0f}" y="{y:.0f}" width="{BOX_W}" height="{BOX_H}" rx="8"/>'
        f'<rect class="accent" x="{x:.0f}" y="{y:.0f}" width="5" height="{BOX_H}" rx="2"/>'
        f'<text class="step-id" x="{x + 14:.0f}" y="{y + 20:.0f}">'
        f"{escape(_cut(step.id, 28))}</text>"
        f'<text class="step-type" x="{x + BOX_W - 10:.0f}" y="{y + 20:.0f}" '
        f'text-anchor="end">{escape(step.type)}</text>'
        f'<text class="step-detail" x="{x + 14:.0f}" y="{y + 39:.0f}">'
        f"{escape(_cut(detail, DETAIL_CHARS))}</text>"
        f'<text class="step-counts" x="{x + 14:.0f}" y="{y + 57:.0f}" '
        f'data-testid="counts-{escape(step.id)}">{escape(figures)}</text></g>'
    )
