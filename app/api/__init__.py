"""The HTTP API: thin FastAPI routers over the units of work and the domain core."""
