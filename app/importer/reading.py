"""Map files as plain features: GeoJSON (bare or wrapped), newline-delimited GeoJSON,
GeoPackage, Shapefile and KML. No SQL here, and no geometry work beyond reading.

JSON is parsed with orjson and its geometries stay GeoJSON mappings until a map needs them
built (most snapshots of an archive are unchanged and never do). The other formats are read
with pyogrio (GDAL), every layer of the file, as shapely geometries.
"""

from __future__ import annotations

import datetime as dt
import gc
import hashlib
import math
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from app.domain.errors import InvalidInput
from app.importer import moments

JSON_SUFFIXES = frozenset({".geojson", ".json"})
LINES_SUFFIXES = frozenset({".geojsonl", ".ndjson", ".geojsons"})
OGR_SUFFIXES = frozenset({".gpkg", ".shp", ".kml", ".kmz"})
SUFFIXES = JSON_SUFFIXES | LINES_SUFFIXES | OGR_SUFFIXES
_SHAPEFILE_PARTS = (".shx", ".dbf", ".prj", ".cpg")
_RECORD_SEPARATOR = b"\x1e"  # RFC 8142 GeoJSON text sequences


class FileError(InvalidInput):
    """A file that cannot be imported as it is; the message names it (and the feature)."""


@dataclass(frozen=True)
class Feature:
    index: int
    properties: Mapping[str, Any]
    geometry: Any  # a GeoJSON geometry mapping (JSON formats) or a shapely geometry
    fid: Any = None

    @property
    def kind(self) -> str | None:
        """The geometry type (``Polygon``, ``Point``...), None without a geometry."""
        if self.geometry is None:
            return None
        if isinstance(self.geometry, Mapping):
            kind = self.geometry.get("type")
            return str(kind) if kind else None
        return None if self.geometry.is_empty else str(self.geometry.geom_type)

    @property
    def label(self) -> str:
        """How messages name it: ``feature 3 (id "x", name "...")``."""
        extra = []
        if self.fid is not None:
            extra.append(f"id {orjson.dumps(self.fid, default=str).decode()}")
        name = self.properties.get("name", self.properties.get("Name"))
        if name is not None:
            text = str(name)
            extra.append(
                f"name {orjson.dumps(text[:60] + ('…' if len(text) > 60 else '')).decode()}"
            )
        return f"feature {self.index}" + (f" ({', '.join(extra)})" if extra else "")


@dataclass(frozen=True)
class Snapshot:
    """One file's map: its features, and what its wrapper says about it (if it has one)."""

    features: list[Feature]
    wrapper_moment: dt.datetime | None = None
    snapshot_id: str | None = None


@dataclass(frozen=True)
class MapFile:
    path: Path
    name: str  # as shown and recorded: relative to the folder it was found in

    @property
    def is_ogr(self) -> bool:
        return self.path.suffix.lower() in OGR_SUFFIXES

    def read(self) -> tuple[bytes | None, str]:
        """The bytes to parse (None for GDAL formats, read by path) and the sha256 of the file
        (with a Shapefile's side files)."""
        try:
            data = self.path.read_bytes()
            digest = hashlib.sha256(data)
            if self.path.suffix.lower() == ".shp":
                for suffix in _SHAPEFILE_PARTS:
                    part = self.path.with_suffix(suffix)
                    if not part.exists():
                        part = self.path.with_suffix(suffix.upper())
                    if part.exists():
                        digest.update(part.read_bytes())
        except OSError as e:
            raise FileError(f"{self.name}: cannot read it: {e.strerror}.") from None
        return (None if self.is_ogr else data), digest.hexdigest()


def discover(paths: Iterable[Path]) -> list[MapFile]:
    """The map files named, and those found (recursively) in the folders named."""
    found: list[MapFile] = []
    for path in paths:
        if path.is_dir():
            for item in sorted(path.rglob("*")):
                hidden = any(part.startswith(".") for part in item.relative_to(path).parts)
                if item.is_file() and item.suffix.lower() in SUFFIXES and not hidden:
                    found.append(MapFile(item, item.relative_to(path).as_posix()))
        elif path.is_file():
            if path.suffix.lower() not in SUFFIXES:
                raise FileError(
                    f"{path}: not a map file this import reads (one of "
                    f"{', '.join(sorted(SUFFIXES))})."
                )
            found.append(MapFile(path, path.name))
        else:
            raise FileError(f"{path}: no such file or folder.")
    return found


def read_snapshot(file: MapFile, data: bytes | None) -> Snapshot:
    suffix = file.path.suffix.lower()
    if suffix in JSON_SUFFIXES:
        assert data is not None
        return _read_json(file.name, data)
    if suffix in LINES_SUFFIXES:
        assert data is not None
        return _read_lines(file.name, data)
    return _read_ogr(file)


def _features(name: str, items: Any, pointer: str) -> list[Feature]:
    if not isinstance(items, list):
        raise FileError(f"{name}: {pointer} must be a list of features.")
    out = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or item.get("type") != "Feature":
            raise FileError(f"{name}: {pointer}/{index} is not a GeoJSON Feature.")
        out.append(_feature(index, item))
    return out


def _feature(index: int, item: dict[str, Any]) -> Feature:
    return Feature(index, item.get("properties") or {}, item.get("geometry"), item.get("id"))


@contextmanager
def collector_paused() -> Iterator[None]:
    """Parsed JSON holds no reference cycles, and the cycle collector, set off again and again
    while a large document is being built, would only scan it over and over (that doubles the
    time a 600 KB map takes to parse)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _read_json(name: str, data: bytes) -> Snapshot:
    try:
        with collector_paused():
            document = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise FileError(f"{name}: not valid JSON: {e}.") from None
    if not isinstance(document, dict):
        raise FileError(f"{name}: expected a GeoJSON FeatureCollection or a map wrapper object.")
    if isinstance(document.get("map"), dict):  # {"id": ..., "datetime": ..., "map": {...}}
        wrapped = document["map"]
        if wrapped.get("type") != "FeatureCollection":
            raise FileError(f"{name}: /map must be a GeoJSON FeatureCollection.")
        snapshot_id = document.get("id")
        return Snapshot(
            _features(name, wrapped.get("features"), "/map/features"),
            moments.from_wrapper(document),
            None if snapshot_id is None else str(snapshot_id),
        )
    kind = document.get("type")
    if kind == "FeatureCollection":
        return Snapshot(_features(name, document.get("features"), "/features"))
    if kind == "Feature":
        return Snapshot([_feature(0, document)])
    raise FileError(
        f"{name}: expected a GeoJSON FeatureCollection (or a wrapper with one under 'map'), "
        f"found type {kind!r}."
    )


def _read_lines(name: str, data: bytes) -> Snapshot:
    with collector_paused():
        return _read_lines_unpaused(name, data)


def _read_lines_unpaused(name: str, data: bytes) -> Snapshot:
    features: list[Feature] = []
    for number, line in enumerate(data.splitlines(), start=1):
        line = line.strip().lstrip(_RECORD_SEPARATOR).strip()
        if not line:
            continue
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError as e:
            raise FileError(f"{name}: line {number} is not valid JSON: {e}.") from None
        if not isinstance(item, dict) or item.get("type") != "Feature":
            raise FileError(f"{name}: line {number} is not a GeoJSON Feature.")
        features.append(_feature(len(features), item))
    return Snapshot(features)


def _clean(value: Any) -> Any:
    """pandas' missing values (NaN, NaT) as None."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is not None and type(value).__name__ == "NaTType":
        return None
    return value


def _read_ogr(file: MapFile) -> Snapshot:
    import pyogrio
    import pyogrio.errors as errors

    failures = (
        errors.DataSourceError,
        errors.DataLayerError,
        errors.FeatureError,
        errors.FieldError,
        errors.GeometryError,
        errors.CRSError,
    )

    try:
        layers = [str(row[0]) for row in pyogrio.list_layers(file.path)]
        features: list[Feature] = []
        for layer in layers:
            frame = pyogrio.read_dataframe(file.path, layer=layer, fid_as_index=True)
            if frame.crs is not None and frame.crs.to_epsg() != 4326:
                frame = frame.to_crs(4326)  # the service stores WGS84 lon/lat
            columns = [c for c in frame.columns if c != frame.geometry.name]
            for fid, geometry, values in zip(
                frame.index,
                frame.geometry.values,
                frame[columns].itertuples(index=False, name=None),
                strict=True,
            ):
                properties = {c: _clean(v) for c, v in zip(columns, values, strict=True)}
                features.append(Feature(len(features), properties, geometry, int(fid)))
    except failures as e:
        raise FileError(f"{file.name}: GDAL cannot read it: {e}") from None
    return Snapshot(features)
