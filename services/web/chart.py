"""A line chart as inline SVG, drawn on the server: no script, no library, nothing to vet.

Pure: series of (seconds ago, value) points in, SVG text out. Colours and strokes are SVG
presentation attributes, never `style`, so the console's CSP (no inline style) holds. Every text
is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

WIDTH, HEIGHT = 640, 200
LEFT, RIGHT, TOP, BOTTOM = 48, 150, 12, 28  # room for the y labels, the legend, the x labels
COLOURS = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563")
Point = tuple[float, float]  # (seconds ago, value)


def line_chart(
    series: Mapping[str, Sequence[Point]], *, span_s: float = 3600.0, unit: str = "", title: str
) -> str:
    """`series` drawn over the last `span_s` seconds, the newest at the right edge."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    values = [v for points in series.values() for _, v in points]
    top = nice_ceiling(max(values, default=0.0))

    def x(ago: float) -> float:
        return LEFT + plot_w * (1 - min(max(ago, 0.0), span_s) / span_s)

    def y(value: float) -> float:
        return TOP + plot_h * (1 - value / top)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {WIDTH}'
        f' {HEIGHT}" width="{WIDTH}" height="{HEIGHT}"><title>{escape(title)}</title>'
    ]
    for fraction in (0.0, 0.5, 1.0):
        level = TOP + plot_h * (1 - fraction)
        parts.append(
            f'<line x1="{LEFT}" y1="{level:.1f}" x2="{LEFT + plot_w}" y2="{level:.1f}"'
            ' stroke="#d1d5db" stroke-width="1"/>'
            f'<text x="{LEFT - 6}" y="{level + 4:.1f}" text-anchor="end" font-size="11"'
            f' fill="#374151">{escape(number(top * fraction))}</text>'
        )
    for minutes in range(0, round(span_s / 60) + 1, 15):
        at = x(minutes * 60)
        label = "now" if minutes == 0 else f"-{minutes} min"
        parts.append(
            f'<text x="{at:.1f}" y="{HEIGHT - 8}" text-anchor="middle" font-size="11"'
            f' fill="#374151">{label}</text>'
        )
    for index, (name, points) in enumerate(series.items()):
        colour = COLOURS[index % len(COLOURS)]
        if points:
            path = " ".join(f"{x(ago):.1f},{y(value):.1f}" for ago, value in points)
            parts.append(
                f'<polyline class="series" data-series="{escape(name)}" points="{path}"'
                f' fill="none" stroke="{colour}" stroke-width="2"/>'
            )
        legend_y = TOP + 14 * index + 8
        last = points[-1][1] if points else None
        shown = f"{name} {number(last)}{unit}" if last is not None else f"{name} -"
        parts.append(
            f'<rect x="{WIDTH - RIGHT + 10}" y="{legend_y - 8}" width="10" height="3"'
            f' fill="{colour}"/><text x="{WIDTH - RIGHT + 24}" y="{legend_y - 3}"'
            f' font-size="11" fill="#111827">{escape(shown)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 5 times a power of ten at or above `value` (1 for nothing)."""
    if value <= 0:
        return 1.0
    scale = 1.0
    while scale * 10 < value:
        scale *= 10
    while scale > value:
        scale /= 10
    for step in (1, 2, 5, 10):
        if scale * step >= value:
            return scale * step
    return scale * 10


def number(value: float) -> str:
    return f"{value:.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"
