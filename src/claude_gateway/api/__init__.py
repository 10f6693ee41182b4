"""HTTP surfaces: thin FastAPI routers over the services."""
