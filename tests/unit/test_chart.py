"""The Pipeline page's charts: SVG drawn on the server, escaped, without inline style (the CSP
forbids it), scaled to a round number."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree

from orgsync.services.web.chart import line_chart, nice_ceiling

SVG = "{http://www.w3.org/2000/svg}"


def test_each_series_is_a_line_over_the_last_hour_newest_at_the_right() -> None:
    svg = line_chart(
        {"account-discovered": [(3600, 0), (1800, 40), (0, 10)], "tags-harvested": [(0, 3)]},
        title="Queue depth",
    )
    root = ElementTree.fromstring(svg)
    lines = root.findall(f"{SVG}polyline")
    assert [line.get("data-series") for line in lines] == ["account-discovered", "tags-harvested"]
    xs = [float(point.split(",")[0]) for point in lines[0].get("points", "").split()]
    assert xs == sorted(xs) and xs[0] < xs[-1]  # an hour ago at the left, now at the right
    labels = [text.text for text in root.iter(f"{SVG}text")]
    assert "50" in labels and "now" in labels and "-60 min" in labels  # the top is a round 50
    assert "account-discovered 10" in labels  # the legend gives the latest value


def test_names_are_escaped_and_nothing_is_styled_inline() -> None:
    svg = line_chart({"<script>": [(0, 1)]}, title="a & b")
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert "style=" not in svg
    ElementTree.fromstring(svg)  # well-formed


def test_an_empty_chart_still_draws_its_axes() -> None:
    root = ElementTree.fromstring(line_chart({"accounts/s": []}, title="t"))
    assert root.findall(f"{SVG}polyline") == []
    assert len(root.findall(f"{SVG}line")) == 3


def test_the_scale_is_a_round_number() -> None:
    assert [nice_ceiling(v) for v in (0, 0.3, 1, 7, 12, 180, 2001)] == [
        1,
        0.5,
        1,
        10,
        20,
        200,
        5000,
    ]
