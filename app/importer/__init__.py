"""Bulk import of map archives: many files, each one map at one moment.

- :mod:`app.importer.rules`: which (party, status) a feature's properties stand for; profiles.
- :mod:`app.importer.moments`: the moment of a map, from a property, a wrapper or a file name.
- :mod:`app.importer.reading`: files (GeoJSON, newline-delimited GeoJSON, GeoPackage,
  Shapefile, KML) as plain features, without SQL.
- :mod:`app.importer.snapshot`: one map's features grouped per (party, status), their raw
  fingerprints and their unions, repaired or refused.
- :mod:`app.importer.prepare`: a file made ready for its transaction (parsed, classified,
  unions built and clipped), by a worker process during a long run;
- :mod:`app.importer.engine`: the run itself, one unit of work (transaction) per file through
  :meth:`app.storage.database.Database.write`.
"""
