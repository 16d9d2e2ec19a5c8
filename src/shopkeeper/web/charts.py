"""Small charts as inline SVG, drawn on the server: no chart library, no script, and
they print and screenshot like the rest of the page. Colours come from the CSS classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def sparkline(values: Sequence[float], *, width: int = 300, height: int = 48, label: str) -> Markup:
    """A line of the values (oldest first), with the area under it shaded."""
    if not values:
        values = [0]
    top = max(max(values), 1)
    step = width / max(len(values) - 1, 1)
    pad = 2
    points = [
        (i * step, height - pad - (value / top) * (height - 2 * pad))
        for i, value in enumerate(values)
    ]
    line = " ".join(f"{_num(x)},{_num(y)}" for x, y in points)
    area = f"0,{height} {line} {_num(points[-1][0])},{height}"
    # Safe: numbers and escaped text only.
    return Markup(  # noqa: S704
        f'<svg class="spark" viewBox="0 0 {width} {height}" preserveAspectRatio="none" '
        f'role="img" aria-label="{escape(label)}">'
        f'<polygon class="spark-area" points="{area}"/>'
        f'<polyline class="spark-line" points="{line}"/></svg>'
    )


@dataclass(frozen=True)
class Bar:
    label: str  # under the bar (shown for some bars only)
    value: float
    tooltip: str


def bar_chart(
    bars: Sequence[Bar],
    *,
    label: str,
    top_label: str | None = None,
    width: int = 720,
    height: int = 180,
) -> Markup:
    """Vertical bars with a tooltip each, a line at the largest value (labelled with
    `top_label`), and every seventh label along the bottom so that they never overlap."""
    axis = 18  # room for the labels under the bars
    left = 4
    plot_h = height - axis
    top = max((bar.value for bar in bars), default=0) or 1
    slot = (width - left) / max(len(bars), 1)
    gap = min(4.0, slot * 0.25)
    parts = [
        f'<svg class="bars" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(label)}">',
        f'<line class="axis" x1="0" y1="{plot_h}" x2="{width}" y2="{plot_h}"/>',
    ]
    if top_label:
        parts.append(
            f'<line class="gridline" x1="0" y1="6" x2="{width}" y2="6"/>'
            f'<text class="tick" x="{width}" y="17" text-anchor="end">{escape(top_label)}</text>'
        )
    for i, bar in enumerate(bars):
        bar_h = max(0.0, bar.value / top * (plot_h - 6))
        x = left + i * slot + gap / 2
        y = plot_h - bar_h
        parts.append(
            f'<rect class="bar" x="{_num(x)}" y="{_num(y)}" width="{_num(slot - gap)}" '
            f'height="{_num(max(bar_h, 0.5 if bar.value else 0))}">'
            f"<title>{escape(bar.tooltip)}</title></rect>"
        )
        if (len(bars) - 1 - i) % 7 == 0:
            # The outermost labels align inwards so that they are not cut off.
            anchor = "end" if i == len(bars) - 1 else "start" if i == 0 else "middle"
            parts.append(
                f'<text class="tick" x="{_num(x + (slot - gap) / 2)}" y="{height - 4}" '
                f'text-anchor="{anchor}">{escape(bar.label)}</text>'
            )
    parts.append("</svg>")
    # Safe: every piece of text in the parts went through escape().
    return Markup("".join(parts))  # noqa: S704
