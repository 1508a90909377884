"""The API routes, one router per concern: inference (/v1, keyed) and operations (/healthz, /metrics)."""
