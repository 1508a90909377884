"""Serving: the HTTP runtime that follows the champion bundle; may import core, governance, training (never prefect)."""
