"""Charts as SVG images, rendered on the server with pygal: no script in the page, and the
same code can serve any other place that shows a trend.

Each chart is an `<img>` with a data URI: an SVG shown as an image runs nothing, so the page's
Content-Security-Policy needs no inline style or script for it, and the text alternative and the
data table beside it carry the numbers for people who cannot see it.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

import pygal
from pygal.style import Style

STYLE = Style(
    background="transparent",
    plot_background="transparent",
    foreground="#1f2933",
    foreground_strong="#1f2933",
    foreground_subtle="#9aa5b1",
    colors=("#1864ab", "#c2255c", "#2b8a3e", "#e67700"),
    font_family="system-ui, sans-serif",
)


def _uri(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


def sparkline(values: Sequence[float | None]) -> str:
    """A small line of a series (gaps where a value is undefined), as a data URI."""
    chart = pygal.Line(
        style=STYLE, show_legend=False, js=[], disable_xml_declaration=True, show_dots=False
    )
    chart.add("", list(values) if any(v is not None for v in values) else [0, 0])
    return _uri(chart.render_sparkline(width=160, height=36, interpolate=None))


def trend(title: str, labels: Sequence[str], series: dict[str, Sequence[float | None]]) -> str:
    """A line chart of one metric over periods (one line per currency or breakdown)."""
    chart = pygal.Line(
        style=STYLE,
        js=[],
        disable_xml_declaration=True,
        width=880,
        height=320,
        show_legend=len(series) > 1,
        legend_at_bottom=True,
        x_label_rotation=30 if len(labels) > 8 else 0,
        show_minor_x_labels=False,
        x_labels_major_every=max(1, len(labels) // 8),
        truncate_label=12,
        title=title,
        dots_size=2,
    )
    chart.x_labels = list(labels)
    for name, values in series.items():
        chart.add(name, list(values))
    return _uri(chart.render())
