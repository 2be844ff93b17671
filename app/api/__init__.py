"""The HTTP API: thin FastAPI routers over the repository and the domain core."""
