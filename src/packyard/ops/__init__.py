"""Running packyard for a team: metrics, request logs, readiness, SIGHUP (docs/operations.md)."""
