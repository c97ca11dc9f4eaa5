"""Charts as server-rendered SVG: no script, nothing fetched, every text escaped.

Colours come from CSS classes (`series-N`, `heat-N`), so the Content-Security-Policy needs
no inline style and the charts follow the page's palette.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

HEAT_STEPS = 6


@dataclass(frozen=True)
class Series:
    key: str
    label: str
    # The palette colour (`series-N`); None takes the series' place in its chart.
    colour: int | None = None

    def css(self, number: int) -> str:
        return f"series-{number if self.colour is None else self.colour}"


def _nice_ceiling(value: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten at or above `value` (at least 1)."""
    magnitude = 1
    while True:
        for step in (1, 2, 5):
            if step * magnitude >= value:
                return step * magnitude
        magnitude *= 10


def _intervals(peak: int) -> int:
    """How many grid intervals split 0..peak at whole counts: a count axis has no 2.5."""
    return next(n for n in (4, 5, 2, 1) if peak % n == 0)


def stacked_columns(
    title: str,
    categories: Sequence[str],
    series: Sequence[Series],
    values: Sequence[dict[str, int]],
    unit: str,
    *,
    width: int = 720,
    height: int = 260,
) -> Markup:
    """One column per category (a day), stacked by series, with a y axis in `unit` and a legend."""
    left, right, top, bottom = 56, 12, 28, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = _nice_ceiling(max((sum(v.values()) for v in values), default=0))
    parts = [_open(width, height, title), _text(left, 16, unit, "axis-unit")]
    steps = _intervals(peak)
    for tick in range(steps + 1):
        amount = peak * tick // steps
        y = top + plot_h - plot_h * tick / steps
        parts.append(f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(_text(left - 6, y + 4, f"{amount:,}", "tick end"))
    slot = plot_w / max(len(categories), 1)
    bar = max(slot * 0.7, 1)
    label_every = max(1, len(categories) // 8)
    for index, (category, counts) in enumerate(zip(categories, values, strict=True)):
        x = left + slot * index + (slot - bar) / 2
        base = float(top + plot_h)
        for number, item in enumerate(series):
            count = counts.get(item.key, 0)
            if count:
                h = plot_h * count / peak
                base -= h
                parts.append(
                    f'<rect class="{item.css(number)}" x="{x:.1f}" y="{base:.1f}" width="{bar:.1f}" '
                    f'height="{h:.1f}"><title>{escape(category)}: {escape(item.label)} {count:,}</title>'
                    "</rect>"
                )
        if index % label_every == 0:
            parts.append(_text(x + bar / 2, top + plot_h + 16, category, "tick middle"))
    parts.append(
        f'<line class="axis" x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}"/>'
    )
    parts.append(f'<line class="axis" x1="{left}" x2="{left}" y1="{top}" y2="{top + plot_h}"/>')
    parts.append(_legend(series, left, height - 10))
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text inside went through escape()


def heat_map(
    title: str,
    rows: Sequence[tuple[str, str]],
    columns: Sequence[tuple[str, str]],
    counts: dict[tuple[str, str], int],
    row_axis: str,
    column_axis: str,
    *,
    cell: int = 84,
) -> Markup:
    """A matrix of counts, darker for more, rows and columns labelled, the axes named."""
    left, top = 120, 56
    width, height = left + cell * len(columns) + 8, top + 30 * len(rows) + 8
    peak = max(counts.values(), default=0)
    parts = [_open(width, height, title)]
    parts.append(_text(left + cell * len(columns) / 2, 14, column_axis, "axis-unit middle"))
    parts.append(_text(8, 14, row_axis, "axis-unit"))
    for c, (_, label) in enumerate(columns):
        parts.append(_text(left + cell * c + cell / 2, top - 10, label, "tick middle"))
    for r, (row_key, label) in enumerate(rows):
        y = top + 30 * r
        parts.append(_text(left - 8, y + 19, label, "tick end"))
        for c, (column_key, _) in enumerate(columns):
            count = counts.get((row_key, column_key), 0)
            step = 0 if count == 0 or peak == 0 else 1 + (HEAT_STEPS - 2) * count // peak
            x = left + cell * c
            parts.append(
                f'<rect class="heat-{step}" x="{x + 1}" y="{y + 1}" width="{cell - 2}" height="28"/>'
            )
            text_class = "cell-dark" if step >= HEAT_STEPS // 2 else "cell"
            parts.append(_text(x + cell / 2, y + 19, f"{count:,}", f"{text_class} middle"))
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text inside went through escape()


def stacked_bars(
    title: str,
    rows: Sequence[tuple[str, str]],
    series: Sequence[Series],
    counts: dict[str, dict[str, int]],
    unit: str,
    *,
    width: int = 720,
) -> Markup:
    """One horizontal bar per row (a tier), split by series (stages), scaled to the largest row."""
    left, right, top, row_h = 110, 40, 12, 30
    height = top + row_h * len(rows) + 70
    plot_w = width - left - right
    peak = _nice_ceiling(max((sum(counts.get(key, {}).values()) for key, _ in rows), default=0))
    parts = [_open(width, height, title)]
    steps = _intervals(peak)
    for tick in range(steps + 1):
        x = left + plot_w * tick / steps
        parts.append(
            f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + row_h * len(rows)}"/>'
        )
        parts.append(_text(x, top + row_h * len(rows) + 14, f"{peak * tick // steps:,}", "tick middle"))
    parts.append(_text(left + plot_w / 2, top + row_h * len(rows) + 32, unit, "axis-unit middle"))
    for r, (key, label) in enumerate(rows):
        y = top + row_h * r
        parts.append(_text(left - 8, y + 19, label, "tick end"))
        x = float(left)
        row = counts.get(key, {})
        for number, item in enumerate(series):
            count = row.get(item.key, 0)
            if count:
                w = plot_w * count / peak
                parts.append(
                    f'<rect class="{item.css(number)}" x="{x:.1f}" y="{y + 4}" width="{w:.1f}" height="22">'
                    f"<title>{escape(label)} · {escape(item.label)}: {count:,}</title></rect>"
                )
                x += w
        parts.append(_text(x + 6, y + 19, f"{sum(row.values()):,}", "tick"))
    parts.append(_legend(series, left, height - 10))
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text inside went through escape()


def _open(width: int, height: int, title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>"
    )


def _text(x: float, y: float, content: str, css: str) -> str:
    anchor = ""
    classes = css.split()
    if "end" in classes or "middle" in classes:
        anchor = f' text-anchor="{"end" if "end" in classes else "middle"}"'
    return f'<text class="{escape(css)}" x="{x:.1f}" y="{y:.1f}"{anchor}>{escape(content)}</text>'


def _legend(series: Sequence[Series], x: float, y: float) -> str:
    parts = []
    for number, item in enumerate(series):
        parts.append(f'<rect class="{item.css(number)}" x="{x:.1f}" y="{y - 9:.1f}" width="10" height="10"/>')
        parts.append(_text(x + 14, y, item.label, "legend"))
        x += 30 + _text_width(item.label)
    return "".join(parts)


def _text_width(content: str) -> int:
    """Roughly how wide a 12px label is: CJK characters take about twice a Latin one."""
    return sum(12 if ord(character) >= 0x2E80 else 7 for character in content)
