"""Developer and deploy tools (not shipped, not imported by the runtime packages)."""
