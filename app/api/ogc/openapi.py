"""The API definitions: the problems every operation can answer, declared once (for FastAPI's
3.1 document and so for both), and the conversion to OpenAPI 3.0.

The API definition as OpenAPI 3.0, for the landing page's ``service-desc`` (conformance
class `oas30`). FastAPI writes OpenAPI 3.1 (``/openapi.json``); OGC clients such as GDAL and
QGIS, and the OGC test suite, read 3.0. The differences in what FastAPI emits are few and
mechanical (null in ``anyOf``/``type``, ``examples`` lists, ``const``, numeric exclusive
bounds), and the result is checked against the 3.0 schema by the tests.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from app.api.auth import Require, read_access
from app.api.middleware import WRITE_METHODS
from app.api.problems import PROBLEM_MEDIA_TYPE
from app.api.routing import route_table

OPENAPI_30_MEDIA_TYPE = "application/vnd.oai.openapi+json;version=3.0"


PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details. `detail` says what to change; `type` links to "
    "what the problem means. Some problems add members, e.g. `parameter`, `known`, "
    "`invalid_params`, `pointer`, `limit`.",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "description": "URL of the problem type (/problems/...)."},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": "string", "description": "The path that was asked for."},
    },
    "additionalProperties": True,
}
SECURITY_SCHEME = "bearerToken"
PROBLEMS: dict[int, str] = {
    400: "A parameter cannot be understood, or a credential was sent in the URL.",
    401: "No valid bearer token: missing, unknown, revoked or expired.",
    403: "The token is valid but its scope does not allow this.",
    404: "Nothing there: an unknown region, collection, feature, observation or code.",
    409: "The request contradicts the record as it stands (e.g. it was already corrected).",
    413: "The body is larger than the service accepts (MAX_BODY_BYTES).",
    415: "The body is not sent as application/json or application/geo+json.",
    422: "The body cannot be stored as it is. Nothing was written.",
}


def _dependants(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for sub in dependant.dependencies:
        yield from _dependants(sub)


def problem_statuses(route: Any, method: str, tokens_for_reads: bool) -> list[int]:
    """The error statuses an operation can answer, from what it depends on:

    - every operation: 400 (an unknown or malformed parameter, a credential in the URL);
    - with a path parameter: 404 (what it names may not exist);
    - with a token (a :class:`Require` dependency, or reads when REQUIRE_TOKEN_FOR_READS):
      401, and 403 for a scope;
    - writes (POST, PUT, PATCH, DELETE): 409, 413, 415, 422.
    """
    dependants = list(_dependants(route.dependant))
    calls = [d.call for d in dependants]
    statuses = {400}
    if any(d.path_params for d in dependants):
        statuses.add(404)
    if any(isinstance(c, Require) for c in calls):
        statuses |= {401, 403}
    elif tokens_for_reads and read_access in calls:
        statuses.add(401)
    if method.upper() in WRITE_METHODS:
        statuses |= {409, 413, 415, 422}
    return sorted(statuses)


def _required_scope(route: Any) -> str | None:
    for dependant in _dependants(route.dependant):
        if isinstance(dependant.call, Require):
            return dependant.call.scope.value
    return None


def add_problems(
    document: dict[str, Any], routes: Iterable[BaseRoute], tokens_for_reads: bool
) -> None:
    """Declare on every operation of ``document`` its :func:`problem_statuses` as
    ``application/problem+json`` of the one ``Problem`` schema (in place of FastAPI's
    ``422 HTTPValidationError``, which this service never sends), and its bearer token."""
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    components.setdefault("securitySchemes", {})[SECURITY_SCHEME] = {
        "type": "http",
        "scheme": "bearer",
        "description": "A token from `frontline tokens create`, sent as "
        "`Authorization: Bearer <token>`; never in the URL.",
    }
    problem = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for route in route_table(routes):
        if not isinstance(getattr(route, "original_route", route), APIRoute):
            continue
        if not route.include_in_schema:
            continue
        scope = _required_scope(route)
        for method in route.methods or ():
            operation = document["paths"].get(route.path_format, {}).get(method.lower())
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            _declare_html(operation)
            if "HTTPValidationError" in str(responses.get("422", "")):
                del responses["422"]
            for status in problem_statuses(route, method, tokens_for_reads):
                responses.setdefault(str(status), {"description": PROBLEMS[status]})
                responses[str(status)]["content"] = problem
            if scope is not None or (tokens_for_reads and "401" in responses):
                operation["security"] = [{SECURITY_SCHEME: []}]
            if scope is not None:
                operation["x-token-scope"] = scope
    for unused in ("HTTPValidationError", "ValidationError"):
        if unused not in str(document["paths"]):
            schemas.pop(unused, None)


def _declare_html(operation: dict[str, Any]) -> None:
    """An operation that takes ``f=html`` answers HTML too: say so in its 200."""
    takes_html = any(
        p.get("name") == "f" and "html" in str(p.get("schema", {}))
        for p in operation.get("parameters", [])
    )
    ok = operation.get("responses", {}).get("200")
    if takes_html and ok is not None:
        ok.setdefault("content", {}).setdefault("text/html", {"schema": {"type": "string"}})


def declare_problems(app: FastAPI) -> None:
    """Have ``app.openapi()`` (``/openapi.json``, and ``/api`` made from it) declare every
    operation's problems, once, when the document is first made."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            tokens_for_reads = bool(app.state.settings.require_token_for_reads)
            add_problems(generate(), app.routes, tokens_for_reads)
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


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
