"""HTML pages for the OGC API resources (conformance class `html`): what a person sees when
a browser opens the landing page, a collection or its items. Plain HTML, no scripts."""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fastapi.responses import HTMLResponse

STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:72rem;padding:0 1rem;color:#222}
h1{font-size:1.5rem}table{border-collapse:collapse;font-size:13px}
td,th{border:1px solid #ccc;padding:.2rem .4rem;text-align:left;vertical-align:top}
th{background:#f3f3f3}code{background:#f3f3f3;padding:0 .2rem}nav a{margin-right:.8rem}
"""


class Raw(str):
    """Markup already escaped: put in a page as it is."""


def _e(value: Any) -> str:
    if isinstance(value, Raw):
        return value
    return html.escape("" if value is None else str(value))


def _links(links: Iterable[Mapping[str, Any]]) -> str:
    items = "".join(
        f'<li><a href="{_e(link["href"])}">{_e(link.get("title") or link["rel"])}</a> '
        f"<small>({_e(link['rel'])}, {_e(link.get('type', ''))})</small></li>"
        for link in links
    )
    return f"<h2>Links</h2><ul>{items}</ul>"


def page(title: str, body: str, links: Sequence[Mapping[str, Any]] = ()) -> HTMLResponse:
    document = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)} | '
        f"Frontline Atlas</title><style>{STYLE}</style></head><body>"
        '<nav><a href="/">Frontline Atlas</a><a href="/collections">Collections</a>'
        '<a href="/conformance">Conformance</a><a href="/docs">API docs</a></nav>'
        f"<h1>{_e(title)}</h1>{body}{_links(links) if links else ''}</body></html>"
    )
    return HTMLResponse(document)


def paragraph(text: str | None) -> str:
    return f"<p>{_e(text)}</p>" if text else ""


def bullet_list(values: Iterable[str]) -> str:
    return "<ul>" + "".join(f"<li><code>{_e(v)}</code></li>" for v in values) + "</ul>"


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def html_link(href: str, text: str) -> Raw:
    return Raw(f'<a href="{_e(href)}">{_e(text)}</a>')


def collections_table(collections: Sequence[Mapping[str, Any]]) -> str:
    rows = [
        (html_link(f"/collections/{c['id']}", c["id"]), c.get("title"), c.get("description"))
        for c in collections
    ]
    return table(["id", "title", "description"], rows)


def features_table(features: Sequence[Mapping[str, Any]]) -> str:
    if not features:
        return "<p>No features match.</p>"
    names: list[str] = []
    for feature in features:
        names.extend(k for k in feature["properties"] if k not in names)
    rows = [
        [feature["id"], *(feature["properties"].get(name) for name in names)]
        for feature in features
    ]
    return table(["id", *names], rows)
