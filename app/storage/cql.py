"""CQL2 in SQL: the part of a parsed filter that SQL can answer exactly as CQL2 means it.

:func:`split` walks a filter that :mod:`app.api.ogc.filters` has parsed and checked, and returns
a SQL condition for everything it can translate, and the rest (a *residual*) for the caller to
evaluate in Python on the rows the SQL selected. A conjunction is split conjunct by conjunct;
a disjunction or a negation is translated whole or not at all. So a filter runs in the database
as far as it can, and the answer is the same whichever way a part runs.

Translated: comparisons, BETWEEN, IN, IS NULL, AND/OR/NOT over properties and literals, and
(PostgreSQL) LIKE and the spatial predicates against literal geometries (PostGIS, on the GiST
index). Left to Python: arithmetic (a division by zero is the caller's to report), temporal
operators, and on SQLite LIKE (case-insensitive there) and spatial predicates.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import shapely
from pygeofilter import ast, values
from shapely.geometry import box, shape
from sqlalchemy import and_, between, func, literal, not_, or_
from sqlalchemy.sql import ColumnElement

Columns = Callable[[str], Any]  # property name -> SQL column (KeyError: none)


class _Untranslatable(Exception):
    pass


_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "=": lambda a, b: a == b,
    "<>": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}
_SPATIAL = {
    "INTERSECTS": "ST_Intersects",
    "DISJOINT": "ST_Disjoint",
    "CONTAINS": "ST_Contains",
    "WITHIN": "ST_Within",
    "TOUCHES": "ST_Touches",
    "CROSSES": "ST_Crosses",
    "OVERLAPS": "ST_Overlaps",
    "EQUALS": "ST_Equals",
}


def split(tree: Any, columns: Columns, dialect: str) -> tuple[ColumnElement[bool] | None, Any]:
    """(SQL condition or None, residual filter or None) whose conjunction is ``tree``."""
    if isinstance(tree, ast.And):
        left_sql, left_rest = split(tree.lhs, columns, dialect)
        right_sql, right_rest = split(tree.rhs, columns, dialect)
        sql = [c for c in (left_sql, right_sql) if c is not None]
        rest = [r for r in (left_rest, right_rest) if r is not None]
        return (
            and_(*sql) if sql else None,
            rest[0] if len(rest) == 1 else (ast.And(*rest) if rest else None),
        )
    try:
        return _Translator(columns, dialect).condition(tree), None
    except _Untranslatable:
        return None, tree


class _Translator:
    def __init__(self, columns: Columns, dialect: str) -> None:
        self.columns = columns
        self.postgres = dialect == "postgresql"

    def condition(self, node: Any) -> Any:
        if isinstance(node, ast.And):
            return and_(self.condition(node.lhs), self.condition(node.rhs))
        if isinstance(node, ast.Or):
            return or_(self.condition(node.lhs), self.condition(node.rhs))
        if isinstance(node, ast.Not):
            return not_(self.condition(node.sub_node))
        if isinstance(node, ast.Comparison):
            left, right = self.operands(node.lhs, node.rhs)
            return _COMPARE[node.op.value](left, right)
        if isinstance(node, ast.Between):
            column, low, high = self.operands(node.lhs, node.low, node.high)
            found = between(column, low, high)
            return not_(found) if node.not_ else found
        if isinstance(node, ast.In):
            column, *options = self.operands(node.lhs, *node.sub_nodes)
            found = column.in_(options)
            return not_(found) if node.not_ else found
        if isinstance(node, ast.IsNull):
            column = self.value(node.lhs)
            return column.is_not(None) if node.not_ else column.is_(None)
        if isinstance(node, ast.Like) and self.postgres:
            return self.like(node)
        if isinstance(node, ast.SpatialComparisonPredicate) and self.postgres:
            function = getattr(func, _SPATIAL[node.op.value])
            return function(self.value(node.lhs), self.geometry(node.rhs))
        raise _Untranslatable(type(node).__name__)

    def value(self, node: Any) -> Any:
        """The column a property is stored in."""
        if isinstance(node, ast.Attribute):
            try:
                return self.columns(node.name)
            except KeyError:
                raise _Untranslatable(node.name) from None
        raise _Untranslatable(type(node).__name__)

    def operands(self, *nodes: Any) -> list[Any]:
        """Columns for properties and the literals as they are, provided every literal is of
        its columns' kind (CQL2 compares a string with a number as unequal; SQL would fail),
        the first operand made SQL so that the comparison is."""
        columns = [self.value(n) for n in nodes if isinstance(n, ast.Attribute)]
        kinds = {_kind(c) for c in columns}
        out: list[Any] = []
        for node in nodes:
            if isinstance(node, ast.Attribute):
                out.append(self.value(node))
            elif isinstance(node, bool | int | float | str | dt.datetime):
                if not kinds or not all(_fits(node, k) for k in kinds):
                    raise _Untranslatable("a literal unlike its property")
                out.append(node)
            else:
                raise _Untranslatable(type(node).__name__)
        if len(kinds) > 1:
            raise _Untranslatable("properties of different kinds")
        if not isinstance(out[0], ColumnElement) and not hasattr(out[0], "type"):
            out[0] = literal(out[0])
        return out

    def like(self, node: ast.Like) -> Any:
        if node.wildcard != "%" or node.singlechar != "_" or node.escapechar not in ("\\", None):
            raise _Untranslatable("LIKE with other wildcards")
        column = self.value(node.lhs)
        if _kind(column) is not str:
            raise _Untranslatable("LIKE on a property that is not text")
        found = (
            column.ilike(node.pattern, escape="\\")
            if node.nocase
            else column.like(node.pattern, escape="\\")
        )
        return not_(found) if node.not_ else found

    def geometry(self, node: Any) -> Any:
        if isinstance(node, values.Geometry):
            found = shape(node.geometry)
        elif isinstance(node, values.Envelope):
            found = box(node.x1, node.y1, node.x2, node.y2)
        elif isinstance(node, ast.Function) and node.name == "bbox":
            numbers = list(node.arguments)
            if len(numbers) == 6:
                numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
            if len(numbers) != 4:
                raise _Untranslatable("bbox")
            found = box(*numbers)
        else:
            raise _Untranslatable(type(node).__name__)
        return func.ST_GeomFromText(shapely.to_wkt(found), 4326)


def _kind(column: Any) -> type:
    """The Python type of a column's values (numbers as ``float``)."""
    try:
        kind = column.type.python_type
    except NotImplementedError:  # geometry
        raise _Untranslatable("a geometry compared as a value") from None
    return float if kind in (int, float) else kind


def _fits(value: Any, kind: type) -> bool:
    """Whether a literal is a value of that kind (``True`` is no number to CQL2)."""
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, kind)
