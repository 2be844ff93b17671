"""Storage: one schema on an embedded SQLite file (default) or on PostGIS (production)."""
