"""The Starlette origin: recommendations, edge feeds, collector, admin API, operations CLI."""
