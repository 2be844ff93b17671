"""An ArcGIS REST FeatureServer layer (ISW/CTP publish their control layers this way).

- ``GET {layer}?f=json``: the layer's description; ``editingInfo.lastEditDate`` (ms since the
  epoch) says when it last changed, so an unchanged layer costs this one request;
- ``GET {layer}/query?where=1=1&outFields=*&outSR=4326&f=geojson&resultOffset=…&
  resultRecordCount=…``: the features, page by page, while the answer says
  ``exceededTransferLimit``;
- ArcGIS answers some errors with HTTP 200 and ``{"error": {"code": 429, …}}``: a 429 there is
  a rate limit (retried with backoff like any 429), any other code an error.

Each changed fetch is one snapshot in the archive (``maps/{unix time}.geojson``, the time of the
layer's last edit, else of the fetch), its features' properties given ``_layer`` (the layer's
name), so that one rules file can tell several layers apart. Then it is imported.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from typing import Any

import orjson

from app.domain.model import Source, SourceKind
from app.domain.timeutil import isoformat
from app.feeds.archive import write_atomically
from app.feeds.http import Client, FormatChanged, RateLimited, UpstreamError
from app.feeds.run import Feed, SyncOptions, SyncReport
from app.importer.rules import Rules
from app.storage.database import Database

LAYER_PROPERTY = "_layer"
MAX_PAGE = 2000
# Sources a feed may register on first use; any other --source must exist already.
KNOWN_SOURCES = {
    "isw": Source(
        "isw",
        "Institute for the Study of War and AEI's Critical Threats Project",
        SourceKind.RESEARCH,
        None,
        "https://understandingwar.org",
        "ISW/CTP's daily assessed-control and claimed-territory map layers (ArcGIS). Their data "
        "belongs to ISW/CTP; their terms apply to whoever syncs it.",
    )
}


def layer_folder_name(url: str) -> str:
    """A folder name for a layer URL: readable, and unique by a short hash."""
    tail = "-".join(url.rstrip("/").split("/")[-3:])
    readable = re.sub(r"[^A-Za-z0-9]+", "-", tail).strip("-")[:60]
    return f"{readable}-{hashlib.sha256(url.encode()).hexdigest()[:8]}"


def check_body(data: Any) -> None:
    """ArcGIS's errors in the body of a 200: a 429 is retried, anything else is an error."""
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        error = data["error"]
        code, message = error.get("code"), error.get("message") or ""
        if code == 429:
            raise RateLimited(f"ArcGIS error 429 {message}".strip())
        raise UpstreamError(f"the ArcGIS server answered error {code}: {message}".strip())


class ArcGISSync(Feed):
    def __init__(
        self,
        db: Database,
        client: Client,
        layer_url: str,
        source: str,
        rules: Rules,
        options: SyncOptions,
    ) -> None:
        super().__init__(db, options)
        self.client = client
        self.layer = layer_url.rstrip("/")
        self.name = f"arcgis {source}"
        self.source = source
        self.rules = rules
        self.registers = KNOWN_SOURCES.get(source)

    def download(self, report: SyncReport) -> None:
        info = self.client.get_json(
            self.layer, {"f": "json"}, what="ArcGIS layer description", check=check_body
        )
        if not isinstance(info, dict) or not isinstance(info.get("fields", []), list):
            raise FormatChanged(
                f"{self.layer}?f=json is not an ArcGIS layer description (a JSON object)."
            )
        edited = (info.get("editingInfo") or {}).get("lastEditDate")
        report.listed = 1
        if isinstance(edited, int | float) and not isinstance(edited, bool):
            moment = dt.datetime.fromtimestamp(edited / 1000, dt.UTC)
            path = self.o.maps / f"{int(moment.timestamp())}.geojson"
            if path.exists():
                report.already = 1
                report.notes.append(
                    f"layer unchanged since {isoformat(moment)} (editingInfo.lastEditDate): "
                    "nothing fetched"
                )
                return
        else:
            moment = dt.datetime.now(dt.UTC).replace(microsecond=0)
            path = self.o.maps / f"{int(moment.timestamp())}.geojson"
        name = str(info.get("name") or "")
        page = max(1, min(int(info.get("maxRecordCount") or 1000), MAX_PAGE))
        document = {"type": "FeatureCollection", "features": self._features(name, page)}
        data = orjson.dumps(document)
        if edited is None and self._same_as_latest(data):
            report.already = 1
            report.notes.append("layer has no lastEditDate and its content is unchanged")
            return
        write_atomically(path, data)
        report.downloaded = 1

    def _features(self, name: str, page: int) -> list[dict[str, Any]]:
        features: list[dict[str, Any]] = []
        while True:
            if self.o.stopping():
                raise KeyboardInterrupt
            params = {
                "where": "1=1",
                "outFields": "*",
                "outSR": "4326",
                "f": "geojson",
                "resultOffset": str(len(features)),
                "resultRecordCount": str(page),
            }
            data = self.client.get_json(
                f"{self.layer}/query",
                params,
                what=f"ArcGIS query (features from {len(features)})",
                check=check_body,
            )
            if not (
                isinstance(data, dict)
                and data.get("type") == "FeatureCollection"
                and isinstance(data.get("features"), list)
            ):
                raise FormatChanged(
                    f"{self.layer}/query?f=geojson did not answer a GeoJSON FeatureCollection."
                )
            for feature in data["features"]:
                if isinstance(feature, dict):
                    properties = feature.get("properties") or {}
                    feature["properties"] = {**properties, LAYER_PROPERTY: name}
                    features.append(feature)
            more = data.get("exceededTransferLimit") or (data.get("properties") or {}).get(
                "exceededTransferLimit"
            )
            if not more or not data["features"]:
                return features

    def _same_as_latest(self, data: bytes) -> bool:
        archived = sorted(self.o.maps.glob("*.geojson")) if self.o.maps.is_dir() else []
        return bool(archived) and archived[-1].read_bytes() == data
