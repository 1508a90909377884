"""``voiceloop redact``: redact JSON Lines of transcripts, file to file or stdin to stdout.

Example::

    $ echo '{"id": "t1", "text": "my pin is one two three four"}' | voiceloop redact
    {"id": "t1", "text": "my pin is one two three four", "redacted": "my pin is <PIN>",
     "entities": [{"type": "PIN", "start": 10, "end": 28, "score": 0.8}]}

Offsets are character offsets into the input ``text``. Other fields of each input line are kept.
A line that is not a JSON object with a string ``text`` stops the command with its line number
(nothing is written to ``--out``), or goes to ``--rejects`` with the reason when that is given.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from voiceloop.cli_common import ParamsOption, console, fail, load

STDIO = Path("-")
commands = typer.Typer()


class BadLine(ValueError):
    """An input line that cannot be redacted; the message says which line and how to fix it."""


def parse_line(line: str, number: int, source: str) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise BadLine(f"{source}:{number}: not valid JSON ({err.msg}); each line must be one JSON object") from None
    if not isinstance(record, dict):
        raise BadLine(
            f'{source}:{number}: a JSON {type(record).__name__}, expected an object like {{"id": ..., "text": "..."}}'
        )
    if not isinstance(record.get("text"), str):
        raise BadLine(f'{source}:{number}: no string "text" field; add the transcript as "text"')
    if "id" not in record:
        raise BadLine(f'{source}:{number}: no "id" field; give each line an id so results can be matched')
    return record


@contextmanager
def _output(path: Path) -> Iterator[IO[str]]:
    """stdout, or a temporary file renamed over ``path`` only when everything succeeded."""
    if path == STDIO:
        yield sys.stdout
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            yield handle
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    handle = sys.stdin if path == STDIO else path.open(encoding="utf-8")
    with handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield number, line


@commands.command()
def redact(
    input_path: Annotated[
        Path, typer.Option("--in", help="JSON Lines with {id, text} per line; - for stdin")
    ] = STDIO,
    output_path: Annotated[
        Path, typer.Option("--out", help="where to write the redacted lines; - for stdout")
    ] = STDIO,
    rejects: Annotated[
        Path | None,
        typer.Option(help="write unreadable lines here (with the reason) instead of stopping at the first one"),
    ] = None,
    entities: Annotated[
        list[str] | None,
        typer.Option("--entity", help="only these entity types (repeatable); default: all that voiceloop finds"),
    ] = None,
    check_leaks: Annotated[
        bool, typer.Option(help='add "leaks": entity types the independent leak check still finds in "redacted"')
    ] = False,
    params: ParamsOption = None,
) -> None:
    """Replace PII in transcripts with <ENTITY_TYPE> and list what was found, with offsets.

    Output: each input line plus "redacted" and "entities" (type, start, end, score; offsets into "text").

    Which types, and how each is found: docs/redaction.md.

    Example: echo '{"id": "t1", "text": "my pin is one two three four"}' | voiceloop redact
    """
    settings = load(params)
    if input_path != STDIO and not input_path.is_file():
        raise typer.BadParameter(f"{input_path} does not exist", param_hint="--in")
    from governance.redaction.records import redact_records
    from governance.redaction.redactor import Redactor

    redactor = Redactor(settings.redaction, entities=entities)
    source = "stdin" if input_path == STDIO else str(input_path)
    rejected = 0
    done = 0
    reject_handle = rejects.open("w", encoding="utf-8") if rejects is not None else None

    def readable() -> Iterator[dict[str, Any]]:
        """The parsed lines; a bad one stops the command, or goes to --rejects with its reason."""
        nonlocal rejected
        for number, line in _lines(input_path):
            try:
                yield parse_line(line, number, source)
            except BadLine as err:
                if reject_handle is None:
                    raise
                rejected += 1
                reject_handle.write(json.dumps({"line": number, "reason": str(err), "raw": line.rstrip("\n")}) + "\n")

    try:
        with (
            _output(output_path) as out,
            Progress(
                SpinnerColumn(),
                TextColumn("redacting {task.completed} lines"),
                TimeElapsedColumn(),
                console=console,
                transient=True,
                disable=not console.is_terminal,
            ) as progress,
        ):
            task = progress.add_task("redact", total=None)
            for record in redact_records(redactor, readable(), check_leaks):
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
                done += 1
                progress.update(task, completed=done)
    except BadLine as err:
        written = "lines before it were written to stdout" if output_path == STDIO else "nothing was written to --out"
        fail(f"{err} ({written}; pass --rejects FILE to set bad lines aside)", code=2)
    finally:
        if reject_handle is not None:
            reject_handle.close()
    note = f", {rejected} unreadable lines in {rejects}" if rejected else ""
    console.print(f"redacted {done} lines{note}")
