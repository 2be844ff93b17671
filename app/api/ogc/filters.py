"""The filters of OGC API - Features: ``bbox`` (Part 1) and CQL2 ``filter`` (Part 3).

CQL2 text and JSON are parsed by pygeofilter and evaluated in Python against each candidate
feature's properties and shapely geometry, so both databases answer alike. Only the queryables
of the collection may be named, and the only function is ``BBOX``: pygeofilter's evaluator
compiles the filter into Python, so nothing else a client writes may reach it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable, Mapping
from typing import Any

import shapely
from pygeofilter import ast, values
from pygeofilter.backends.native.evaluate import NativeEvaluator
from pygeofilter.parsers.cql2_json import parse as parse_cql2_json
from pygeofilter.parsers.cql2_text import parse as parse_cql2_text
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from app.domain.errors import InvalidParameter
from app.domain.timeutil import as_utc, parse_moment, start_of_day

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
CRS84H = "http://www.opengis.net/def/crs/OGC/0/CRS84h"
FILTER_LANGUAGES = ("cql2-text", "cql2-json")

Envelope = tuple[float, float, float, float]


@dataclasses.dataclass(frozen=True)
class BBox:
    """A ``bbox`` query parameter: the area to test, and the envelope for a first cut in SQL
    (``None`` when the box crosses the antimeridian)."""

    shape: BaseGeometry
    envelope: Envelope | None


def parse_bbox(value: str, crs: str | None = None) -> BBox:
    """``minLon,minLat,maxLon,maxLat`` (or six numbers with heights), WGS84 (CRS84)."""
    if crs is not None and crs not in (CRS84, CRS84H):
        raise InvalidParameter(
            "bbox-crs", f"'bbox-crs' {crs!r} is not supported; only {CRS84} (lon/lat) is."
        )
    try:
        numbers = [float(part) for part in value.split(",")]
    except ValueError:
        numbers = []
    if len(numbers) not in (4, 6):
        raise InvalidParameter(
            "bbox",
            f"'bbox' takes four numbers, minLon,minLat,maxLon,maxLat (e.g. 34.5,50.9,36.5,51.9); "
            f"got {value!r}.",
        )
    if len(numbers) == 6:
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    min_lon, min_lat, max_lon, max_lat = numbers
    if not all(-180 <= x <= 180 for x in (min_lon, max_lon)) or not all(
        -90 <= y <= 90 for y in (min_lat, max_lat)
    ):
        raise InvalidParameter(
            "bbox", f"'bbox' {value!r} is outside lon -180..180, lat -90..90 (lon comes first)."
        )
    if min_lat > max_lat:
        raise InvalidParameter(
            "bbox", f"'bbox' {value!r}: the second number (south) is above the fourth (north)."
        )
    if min_lon > max_lon:  # crosses the antimeridian: two boxes
        shape = shapely.union(
            box(min_lon, min_lat, 180, max_lat), box(-180, min_lat, max_lon, max_lat)
        )
        return BBox(shape, None)
    return BBox(box(min_lon, min_lat, max_lon, max_lat), (min_lon, min_lat, max_lon, max_lat))


# --- CQL2 -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Filter:
    """A parsed CQL2 filter: ``matches(item)`` for an item of ``{property: value}`` (the
    geometry under ``geometry``); ``spatial`` when it needs the geometry."""

    predicate: Callable[[Mapping[str, Any]], bool]
    properties: frozenset[str]
    spatial: bool
    tree: Any  # the checked pygeofilter AST, for storage to translate into SQL

    def matches(self, item: Mapping[str, Any]) -> bool:
        try:
            return bool(self.predicate(item))
        except (TypeError, AttributeError):
            return False  # a comparison with null, or of unlike types: unknown, so no match
        except ArithmeticError as e:  # x / 0, where the divisor is a property or an expression
            raise arithmetic_error(e) from None


def arithmetic_error(error: ArithmeticError | None = None) -> InvalidParameter:
    what = "divides by zero" if error is None or isinstance(error, ZeroDivisionError) else "fails"
    return InvalidParameter(
        "filter",
        f"'filter' {what} in its arithmetic"
        + (f" ({_first_line(error)})" if error is not None else "")
        + "; compare instead, e.g. area_km2 > 100 * reported_area_km2 rather than "
        "area_km2 / reported_area_km2 > 100.",
    )


def _bbox_literal(*numbers: float) -> BaseGeometry:
    if len(numbers) == 6:
        numbers = (numbers[0], numbers[1], numbers[3], numbers[4])
    if len(numbers) != 4:
        raise InvalidParameter("filter", "BBOX takes four (or six) numbers.")
    return box(*numbers)


FUNCTIONS: dict[str, Callable[..., Any]] = {"bbox": _bbox_literal}


def _json_to_pygeofilter(node: Any) -> Any:
    """CQL2-JSON 1.0 as pygeofilter 0.4 reads it: ``{"bbox": [...]}`` as a polygon (it takes
    the numbers in the wrong order), ``between`` with its bounds in a list (an older draft)."""
    if isinstance(node, dict):
        args = node.get("args")
        if node.get("op") == "between" and isinstance(args, list) and len(args) == 3:
            node = {**node, "args": [args[0], [args[1], args[2]]]}
        if set(node) == {"bbox"} and isinstance(node["bbox"], list):
            n = node["bbox"]
            if len(n) == 6:
                n = [n[0], n[1], n[3], n[4]]
            if len(n) == 4 and all(isinstance(x, int | float) for x in n):
                return shapely.geometry.mapping(box(*n))
        return {k: _json_to_pygeofilter(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_json_to_pygeofilter(v) for v in node]
    return node


def _parse(text: str, lang: str) -> ast.Node:
    if lang == "cql2-text":
        try:
            return parse_cql2_text(text)
        except Exception as e:
            where = ""
            line, column = getattr(e, "line", None), getattr(e, "column", None)
            if line is not None and column is not None:
                where = f" at line {line}, column {column}"
            raise InvalidParameter(
                "filter",
                f"'filter' is not valid CQL2 text{where}: {_first_line(e)}. Example: "
                "party = 'UA' AND area_km2 > 100 AND S_INTERSECTS(geometry, POINT(35.2 51.3)). "
                "String literals take single quotes.",
                value=text,
            ) from None
    try:
        document = json.loads(text)
    except ValueError as e:
        raise InvalidParameter(
            "filter", f"'filter' is not JSON ({e}); with filter-lang=cql2-json send CQL2-JSON."
        ) from None
    try:
        return parse_cql2_json(_json_to_pygeofilter(document))
    except Exception as e:
        raise InvalidParameter(
            "filter",
            f"'filter' is not valid CQL2-JSON: {_first_line(e)}. Example: "
            '{"op": "=", "args": [{"property": "party"}, "UA"]}.',
            value=text,
        ) from None


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else error.__class__.__name__)[:200].rstrip(".")


def _is_zero(node: Any) -> bool:
    return isinstance(node, int | float) and not isinstance(node, bool) and node == 0


class _Normaliser:
    """Checks a parsed filter against the queryables, and brings its literals to CQL2's
    meaning: dates and timestamps in UTC, ``_`` as LIKE's single-character wildcard, strings
    compared with a date-time property read as moments."""

    def __init__(self, queryables: Mapping[str, Mapping[str, Any]]) -> None:
        self.queryables = queryables
        self.names: set[str] = set()

    def _is_moment(self, node: Any) -> bool:
        if not isinstance(node, ast.Attribute):
            return False
        schema = self.queryables.get(node.name, {})
        return schema.get("format") == "date-time"

    def literal(self, value: Any, as_moment: bool) -> Any:
        if isinstance(value, dt.datetime):
            return as_utc(value)
        if isinstance(value, dt.date):
            return start_of_day(value)
        if as_moment and isinstance(value, str):
            return parse_moment(value, "filter")
        return value

    def __call__(self, node: Any, as_moment: bool = False) -> Any:
        if isinstance(node, ast.Attribute):
            if node.name not in self.queryables:
                known = ", ".join(sorted(self.queryables))
                raise InvalidParameter(
                    "filter",
                    f"'filter' names {node.name!r}, which is not a queryable of this collection. "
                    f"Queryables: {known} (see the collection's /queryables).",
                )
            self.names.add(node.name)
            return node
        if isinstance(node, ast.Function):
            if node.name.lower() not in FUNCTIONS:
                raise InvalidParameter(
                    "filter",
                    f"'filter' calls {node.name!r}; no functions are offered besides BBOX.",
                )
            return ast.Function(node.name.lower(), [self(a) for a in node.arguments])
        if isinstance(node, ast.Not):  # not a dataclass, unlike the other nodes
            return ast.Not(self(node.sub_node, as_moment))
        if isinstance(node, list | tuple):
            return type(node)(self(item, as_moment) for item in node)
        if isinstance(node, values.Geometry | values.Envelope):
            return node
        if isinstance(node, ast.Div) and _is_zero(node.rhs):
            raise arithmetic_error()
        if dataclasses.is_dataclass(node) and not isinstance(node, type):
            moment = as_moment or any(
                self._is_moment(getattr(node, f.name)) for f in dataclasses.fields(node)
            )
            changes = {
                f.name: self(getattr(node, f.name), moment) for f in dataclasses.fields(node)
            }
            if isinstance(node, ast.Like):
                changes["singlechar"] = "_"  # CQL2's wildcard for one character
            return dataclasses.replace(node, **changes)
        return self.literal(node, as_moment)


def parse_filter(
    text: str,
    lang: str | None,
    queryables: Mapping[str, Mapping[str, Any]],
    crs: str | None = None,
) -> Filter:
    lang = lang or "cql2-text"
    if lang not in FILTER_LANGUAGES:
        raise InvalidParameter(
            "filter-lang",
            f"'filter-lang' {lang!r} is not supported; use one of {', '.join(FILTER_LANGUAGES)}.",
        )
    if crs is not None and crs not in (CRS84, CRS84H):
        raise InvalidParameter(
            "filter-crs", f"'filter-crs' {crs!r} is not supported; only {CRS84} (lon/lat) is."
        )
    normalise = _Normaliser(queryables)
    tree = normalise(_parse(text, lang))
    try:
        predicate = NativeEvaluator(function_map=FUNCTIONS, use_getattr=False).evaluate(tree)
    except Exception as e:
        raise InvalidParameter(
            "filter", f"'filter' uses a construct this service cannot evaluate: {_first_line(e)}."
        ) from None
    spatial = any(
        queryables[name].get("format", "").startswith("geometry") for name in normalise.names
    )
    return Filter(predicate, frozenset(normalise.names), spatial, tree)
