"""Charts: a Vega-Lite view of a report result, and its offline PNG/SVG rendering.

A report definition may carry a ``chart`` section::

    "chart": {"mark": "line", "x": "month", "y": "cases", "color": "product",
              "title": {"zh-CN": "月度案件量", "en": "Cases by month"}}

``x``, ``y`` and ``color`` name dimensions or measures of the report (a name, or
``{"member": name, "title": text}`` to give the axis its own title). Without a chart section,
or for a channel it leaves out, the default is: the first dimension of the result on ``x``,
the first measure on ``y``, and the second dimension (if any) as ``color``. The defaults are
resolved against the *result's* columns, so a drilled query (which shows another dimension)
still gets a sensible chart.

Titles are in the request's language: the chart's own title (else the report's), each
channel's title (else the source form field's ``x-title`` / ``title`` for a dimension on a
plain field, else the member's name). Number and time formats follow the language too (d3
locales from vl-convert, embedded in the spec's ``config.locale``).

The result's rows are inlined as ``data.values``: a spec never names a URL, and rendering runs
with ``allowed_base_urls=[]`` so vl-convert refuses any external data. PNG and SVG come from
vl-convert-python (Deno + resvg in-process, nothing from the network). vl-convert ships no CJK
font, so the first rendering registers the Noto Sans CJK font that the ``noto-cjk-sans-otc``
package installs (OFL-1.1); a system font directory (Debian ``fonts-noto-cjk``) is used as well.
"""
from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.errors import Issue
from engine.forms.spec import FormSpec

log = logging.getLogger("engine.reports.charts")

MARKS = ("bar", "line", "area", "point", "arc")
CHANNELS = ("x", "y", "color")
FONT_FAMILY = "Noto Sans CJK SC, Noto Sans SC, Source Han Sans SC, PingFang SC, Microsoft YaHei, sans-serif"
DEFAULT_WIDTH = 600
DEFAULT_HEIGHT = 360
PNG_SCALE = 2.0
_NUMERIC = frozenset({"integer", "decimal", "number"})
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
"""Characters XML 1.0 cannot hold (C0 controls but tab/LF/CR, U+FFFE/U+FFFF, lone surrogates):
vl-convert writes chart text into SVG, and one of these makes its parser panic (which aborts the
process), so every string of a spec is cleaned with :func:`xml_safe` first."""
REPLACEMENT = "\ufffd"
_TIME_UNITS = {"day": "utcyearmonthdate", "week": "utcyearmonthdate", "month": "utcyearmonth",
               "quarter": "utcyearquarter", "year": "utcyear"}


@dataclass(frozen=True, slots=True)
class ChartChannel:
    member: str
    title: Any = None
    """A string or ``{"zh-CN": ..., "en": ...}``; None: the member's title."""


@dataclass(frozen=True, slots=True)
class Chart:
    """The compiled ``chart`` section (or the defaults when the report has none)."""

    mark: str = "bar"
    x: ChartChannel | None = None
    y: ChartChannel | None = None
    color: ChartChannel | None = None
    title: Any = None
    width: int | None = None
    height: int | None = None
    member_titles: tuple[tuple[str, Any], ...] = ()
    """Title of each member (``(name, text)``) from the source form's field titles."""
    buckets: tuple[tuple[str, str], ...] = ()
    """``(dimension name, grain)`` of the time-bucket dimensions."""

    def member_title(self, name: str) -> Any:
        return next((title for member, title in self.member_titles if member == name), None)

    def bucket(self, name: str) -> str | None:
        return next((grain for member, grain in self.buckets if member == name), None)


# -- upload: check and compile ------------------------------------------------------------------


def _members(document: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    def names(part: str) -> list[str]:
        entries = document.get(part)
        return [str(e.get("name")) for e in entries if isinstance(e, Mapping)] if isinstance(entries, list) else []

    return names("dimensions"), names("measures")


def _channel(raw: Any) -> ChartChannel | None:
    if isinstance(raw, str):
        return ChartChannel(raw)
    if isinstance(raw, Mapping) and isinstance(raw.get("member"), str):
        return ChartChannel(raw["member"], raw.get("title"))
    return None


def check_chart(document: Mapping[str, Any]) -> list[Issue]:
    """Issues of the ``chart`` section: every channel names a dimension or measure of the report
    (``definition.unknown_member``); an ``arc`` (pie) sizes its slices by a measure on ``y``
    (``definition.bad_chart_channel``)."""
    chart = document.get("chart")
    if not isinstance(chart, Mapping):
        return []
    dimensions, measures = _members(document)
    issues: list[Issue] = []
    for name in CHANNELS:
        if name not in chart:
            continue
        channel = _channel(chart[name])
        pointer = f"/chart/{name}" if isinstance(chart[name], str) else f"/chart/{name}/member"
        if channel is None or channel.member not in dimensions + measures:
            member = channel.member if channel is not None else chart[name]
            issues.append(Issue(pointer, "definition.unknown_member", {"name": member}))
        elif name == "y" and chart.get("mark") == "arc" and channel.member not in measures:
            issues.append(Issue(pointer, "definition.bad_chart_channel",
                                {"channel": name, "mark": "arc", "expected": "measure"}))
    return issues


def compile_chart(document: Mapping[str, Any], form: FormSpec | None) -> Chart:
    """The chart of a checked definition; the defaults when it has no ``chart`` section."""
    raw = document.get("chart")
    chart: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    properties: Mapping[str, Any] = {}
    if form is not None and isinstance(form.schema, Mapping):
        found = form.schema.get("properties")
        properties = found if isinstance(found, Mapping) else {}
    titles: list[tuple[str, Any]] = []
    buckets: list[tuple[str, str]] = []
    for part in ("dimensions", "measures"):
        entries = document.get(part)
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
                continue
            name = entry["name"]
            title = entry.get("title") or entry.get("label")
            field = entry.get("field")
            if title is None and part == "dimensions" and isinstance(field, str):
                prop = properties.get(field)
                if isinstance(prop, Mapping):
                    title = prop.get("x-title") or prop.get("title")
            if title is not None:
                titles.append((name, title))
            if part == "dimensions" and isinstance(entry.get("bucket"), str):
                buckets.append((name, entry["bucket"]))
    mark = chart.get("mark")
    return Chart(
        mark=mark if mark in MARKS else "bar",
        x=_channel(chart.get("x")),
        y=_channel(chart.get("y")),
        color=_channel(chart.get("color")),
        title=chart.get("title"),
        width=chart.get("width") if isinstance(chart.get("width"), int) else None,
        height=chart.get("height") if isinstance(chart.get("height"), int) else None,
        member_titles=tuple(titles),
        buckets=tuple(buckets),
    )


# -- query time: the Vega-Lite spec --------------------------------------------------------------


def xml_safe(value: Any) -> Any:
    """``value`` with every string in it (dictionary keys too, nested) stripped of the characters
    XML cannot hold: each becomes U+FFFD. Other values are returned as they are."""
    if isinstance(value, str):
        return _XML_INVALID.sub(REPLACEMENT, value)
    if isinstance(value, Mapping):
        return {xml_safe(key): xml_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [xml_safe(item) for item in value]
    return value


def localize(text: Any, language: str) -> Any:
    if isinstance(text, Mapping):
        return text.get(language) or text.get("en") or next(iter(text.values()), None)
    return text


def vega_lite(spec: Any, result: Mapping[str, Any], language: str = "en") -> dict[str, Any]:
    """The Vega-Lite v5 spec of ``result`` (``{columns, rows, meta}`` of report ``spec``), with
    the rows inlined. Decimals stay ``Decimal`` (write it with :func:`engine.jsoncodec.dumps`).

    Every string of the spec (data values, titles, labels) is :func:`xml_safe`: the ``vega``
    output is meant for renderers too, which write SVG, so it gets the same clean text as PNG/SVG
    (the exact text is in the json/csv/xlsx outputs)."""
    chart: Chart = getattr(spec, "chart", None) or Chart(
        buckets=tuple((d.name, d.bucket) for d in getattr(spec, "dimensions", ()) if getattr(d, "bucket", None)))
    columns: Sequence[Mapping[str, Any]] = result["columns"]
    types = {str(column["name"]): str(column["type"]) for column in columns}
    dimension_names = {d.name for d in getattr(spec, "dimensions", ())}
    measure_names = {m.name for m in getattr(spec, "measures", ())}
    dimensions = [name for name in types if name in dimension_names]
    measures = [name for name in types if name in measure_names] or [
        name for name in types if name not in dimension_names]

    def present(channel: ChartChannel | None) -> ChartChannel | None:
        return channel if channel is not None and channel.member in types else None

    x = present(chart.x) or (ChartChannel(dimensions[0]) if dimensions else None)
    y = present(chart.y) or (ChartChannel(measures[0]) if measures else None)
    color = present(chart.color)
    if color is None and chart.color is None and chart.x is None:
        rest = [name for name in dimensions if x is None or name != x.member]
        color = ChartChannel(rest[0]) if rest else None

    def title(channel: ChartChannel) -> Any:
        return localize(channel.title or chart.member_title(channel.member), language) or channel.member

    def encode(channel: ChartChannel, role: str) -> dict[str, Any]:
        name = channel.member
        kind = types.get(name, "string")
        entry: dict[str, Any] = {"field": name, "title": title(channel)}
        if name in dimension_names and role != "measure":
            if kind == "date":
                grain = chart.bucket(name)
                entry["timeUnit"] = _TIME_UNITS.get(grain or "day", "utcyearmonthdate")
                entry["type"] = "ordinal" if chart.mark == "bar" or role == "color" else "temporal"
            elif kind == "datetime":
                entry["type"] = "temporal"
            else:
                entry["type"] = "nominal" if kind not in _NUMERIC else "ordinal"
            if entry["type"] in ("nominal", "ordinal"):
                entry["sort"] = None  # the report's own order
                if role == "axis" and chart.mark != "arc" and len(result["rows"]) <= 12:
                    entry["axis"] = {"labelAngle": 0}  # few labels: upright (Chinese reads badly turned)
        else:
            entry["type"] = "quantitative" if kind in _NUMERIC else "nominal"
            if kind == "integer" and role == "measure" and chart.mark != "arc":
                entry["axis"] = {"tickMinStep": 1}  # counts: no 0.2 steps
        return entry

    encoding: dict[str, Any] = {}
    if chart.mark == "arc":
        if y is not None:
            encoding["theta"] = {**encode(y, "measure"), "stack": True}
        slices = color or x
        if slices is not None:
            encoding["color"] = encode(slices, "color")
    else:
        if x is not None:
            encoding["x"] = encode(x, "axis")
        if y is not None:
            encoding["y"] = encode(y, "measure" if y.member not in dimension_names else "axis")
        if color is not None:
            encoding["color"] = encode(color, "color")
    tooltip = [{"field": e["field"], "type": e["type"], "title": e["title"],
                **({"timeUnit": e["timeUnit"]} if "timeUnit" in e else {})} for e in encoding.values()]
    if tooltip:
        encoding["tooltip"] = tooltip

    names = [str(column["name"]) for column in columns]
    values = [dict(zip(names, row)) for row in result["rows"]]
    mark: dict[str, Any] = {"type": chart.mark, "tooltip": True}
    if chart.mark in ("line", "area"):
        mark["point"] = True
    document: dict[str, Any] = {
        "title": localize(chart.title or getattr(spec, "title", None), language) or getattr(spec, "key", ""),
        "width": chart.width or DEFAULT_WIDTH,
        "height": chart.height or DEFAULT_HEIGHT,
        "data": {"values": values},
        "mark": mark,
        "encoding": encoding,
        "config": {"locale": _locale(language)},
        "usermeta": {"report": result.get("meta", {}).get("report"), "version": result.get("meta", {}).get("version"),
                     "language": language},
    }
    return xml_safe(document)


def _locale(language: str) -> dict[str, Any]:
    import vl_convert

    name = "zh-CN" if language == "zh-CN" else "en-US"
    return {"number": vl_convert.get_format_locale(name), "time": vl_convert.get_time_format_locale(name)}


# -- rendering ---------------------------------------------------------------------------------

_fonts_lock = threading.Lock()
_fonts_ready = False


def font_directories() -> list[str]:
    """Directories of the CJK fonts registered with vl-convert: the ``noto-cjk-sans-otc``
    package's, and Debian's ``fonts-noto-cjk`` when present."""
    found: list[str] = []
    try:
        import noto_cjk_sans_otc

        found.append(os.path.dirname(os.path.abspath(str(noto_cjk_sans_otc.FONT_PATH))))
    except ImportError:  # pragma: no cover - the package is a dependency
        log.warning("noto-cjk-sans-otc is not installed: Chinese chart text needs a system CJK font")
    system = "/usr/share/fonts/opentype/noto"
    if os.path.isdir(system):
        found.append(system)
    return found


def _ensure_fonts() -> None:
    global _fonts_ready
    with _fonts_lock:
        if _fonts_ready:
            return
        import vl_convert

        for directory in font_directories():
            vl_convert.register_font_directory(directory)
        _fonts_ready = True


def _renderable(vl_spec: dict[str, Any]) -> str:
    from engine.jsoncodec import dumps

    document = xml_safe(dict(vl_spec))
    config = dict(document.get("config") or {})
    config.setdefault("font", FONT_FAMILY)
    document["config"] = config
    return dumps(document)


def render_svg(vl_spec: dict[str, Any]) -> bytes:
    """The chart as SVG (text as ``<text>`` in :data:`FONT_FAMILY`)."""
    import vl_convert

    _ensure_fonts()
    return vl_convert.vegalite_to_svg(_renderable(vl_spec), allowed_base_urls=[]).encode("utf-8")


def render_png(vl_spec: dict[str, Any], scale: float = PNG_SCALE) -> bytes:
    """The chart as PNG, at ``scale`` × its CSS pixel size."""
    import vl_convert

    _ensure_fonts()
    return bytes(vl_convert.vegalite_to_png(_renderable(vl_spec), scale=scale, allowed_base_urls=[]))


__all__ = ["CHANNELS", "MARKS", "Chart", "ChartChannel", "check_chart", "compile_chart", "font_directories",
           "render_png", "render_svg", "vega_lite", "xml_safe"]
