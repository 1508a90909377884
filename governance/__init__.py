"""Governance: the governed store, policy, audit, consent, retention, erasure, redaction; may import core only."""
