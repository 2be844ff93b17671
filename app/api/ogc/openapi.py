"""The API definition as OpenAPI 3.0, for the landing page's ``service-desc`` (conformance
class `oas30`). FastAPI writes OpenAPI 3.1 (``/openapi.json``); OGC clients such as GDAL and
QGIS, and the OGC test suite, read 3.0. The differences in what FastAPI emits are few and
mechanical (null in ``anyOf``/``type``, ``examples`` lists, ``const``, numeric exclusive
bounds), and the result is checked against the 3.0 schema by the tests.
"""

from __future__ import annotations

import copy
from typing import Any

OPENAPI_30_MEDIA_TYPE = "application/vnd.oai.openapi+json;version=3.0"


def _is_null(schema: Any) -> bool:
    return isinstance(schema, dict) and schema.get("type") == "null" and len(schema) == 1


def _schema_30(node: Any) -> Any:
    if isinstance(node, list):
        return [_schema_30(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _schema_30(value) for key, value in node.items()}
    for combinator in ("anyOf", "oneOf"):
        options = out.get(combinator)
        if isinstance(options, list) and any(_is_null(o) for o in options):
            rest = [o for o in options if not _is_null(o)]
            del out[combinator]
            if len(rest) == 1 and "$ref" not in rest[0]:
                out.update(rest[0])
            elif len(rest) == 1:
                out["allOf"] = rest
            else:
                out[combinator] = rest
            out["nullable"] = True
    kind = out.get("type")
    if isinstance(kind, list):
        concrete = [k for k in kind if k != "null"]
        if len(concrete) < len(kind):
            out["nullable"] = True
        if len(concrete) == 1:
            out["type"] = concrete[0]
        else:
            del out["type"]
            out["anyOf"] = [{"type": k} for k in concrete]
    if isinstance(out.get("examples"), list):  # JSON Schema examples; 3.0 has one example
        examples = out.pop("examples")
        if examples:
            out["example"] = examples[0]
    if "const" in out:
        out["enum"] = [out.pop("const")]
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(out.get(bound), int | float) and not isinstance(out.get(bound), bool):
            out[plain] = out.pop(bound)
            out[bound] = True
    for dropped in ("contentMediaType", "contentEncoding", "$schema", "$id"):
        out.pop(dropped, None)
    return out


def _walk(node: Any) -> Any:
    """Rewrite every schema object of the document (and nothing else)."""
    if isinstance(node, list):
        return [_walk(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "schema":
            out[key] = _schema_30(value)
        elif key == "schemas" and isinstance(value, dict):
            out[key] = {name: _schema_30(schema) for name, schema in value.items()}
        else:
            out[key] = _walk(value)
    return out


def openapi_30(
    document: dict[str, Any], shared_parameters: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """``document`` (FastAPI's 3.1) as OpenAPI 3.0.3. ``shared_parameters`` go under
    ``components/parameters`` and replace, by ``$ref``, the inline query parameters of the
    same name (e.g. ``limit`` with its default and maximum, as OGC API - Features asks)."""
    out: dict[str, Any] = _walk(copy.deepcopy(document))
    out["openapi"] = "3.0.3"
    out.pop("jsonSchemaDialect", None)
    out.pop("webhooks", None)
    out.setdefault("components", {}).setdefault("parameters", {}).update(shared_parameters)
    for path_item in out.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict):
                continue
            operation["parameters"] = [
                {"$ref": f"#/components/parameters/{p['name']}"}
                if p.get("in") == "query" and p.get("name") in shared_parameters
                else p
                for p in operation.get("parameters", [])
            ]
            if not operation["parameters"]:
                del operation["parameters"]
    return out


def with_concrete_paths(document: dict[str, Any], parameter: str, values: list[str]) -> None:
    """Add, beside each path templated on ``{parameter}``, one concrete path per value (e.g.
    ``/collections/control/items``), as OGC API - Features servers commonly do: clients such
    as GDAL look up a collection's parameters (the page maximum) under its own path."""
    token = "{" + parameter + "}"
    paths = document.get("paths", {})
    for template, path_item in list(paths.items()):
        if token not in template:
            continue
        for value in values:
            concrete = copy.deepcopy(path_item)
            for operation in concrete.values():
                if not isinstance(operation, dict):
                    continue
                operation["operationId"] = f"{operation.get('operationId', 'op')}_{value}"
                operation["parameters"] = [
                    p
                    for p in operation.get("parameters", [])
                    if not (p.get("in") == "path" and p.get("name") == parameter)
                ]
                if not operation["parameters"]:
                    del operation["parameters"]
            paths.setdefault(template.replace(token, value), concrete)
