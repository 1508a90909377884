"""How redacted text marks what was taken out: ``<TYPE>`` placeholders, one definition for writers and readers.

The redactor writes them (``governance.redaction.redactor``); whatever scores redacted text (sentiment,
word error rates with redacted spans removed from both sides) reads past them with :func:`without_placeholders`.
"""

from __future__ import annotations

import re

PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_]*>")


def placeholder(entity_type: str) -> str:
    """The placeholder that stands for a value of ``entity_type`` (``<PERSON>``)."""
    return f"<{entity_type}>"


def without_placeholders(text: str) -> str:
    """``text`` with its placeholders taken out and the spaces they leave collapsed."""
    return " ".join(PLACEHOLDER.sub(" ", text).split())
