"""Read YAML a person wrote (a policy, alert rules): a syntax error names the file, line and column.

The schema checks that follow belong to each file's own module; this is only the first step they share.
"""

from __future__ import annotations

from typing import Any

import yaml


def parse_yaml(text: str, source: str, error: type[Exception]) -> Any:
    """The document in ``text``; ``error("<source>: not valid YAML at line L, column C; fix the syntax")`` if it
    is not YAML."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as problem:
        mark = getattr(problem, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise error(f"{source}: not valid YAML{where}; fix the syntax") from None
