"""Feeds: keep the service current from publishers' public APIs.

``deepstate``: DeepStateMap's history API; ``arcgis``: an ArcGIS REST FeatureServer layer
(ISW/CTP publish theirs this way). Each downloads only what is new into an archive folder of raw
files, then imports it with the existing importer (:class:`app.importer.engine.Importer`).
"""
