"""Business logic behind the routers: sessions, runs, files, permissions."""
