"""The kinds of record QA keeps in the store's labels zone: the store names them (governance/store.py)."""

from governance.store import REVIEW_KIND, SAMPLE_KIND, TASK_KIND

__all__ = ["REVIEW_KIND", "SAMPLE_KIND", "TASK_KIND"]
