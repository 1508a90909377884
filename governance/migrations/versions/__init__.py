"""Audit log revisions (loaded by Alembic from this folder, not imported)."""
