"""``voiceloop redact``: redact JSON Lines of transcripts, file to file or stdin to stdout.

Example::

    $ echo '{"id": "t1", "text": "my pin is one two three four"}' | voiceloop redact
    {"id": "t1", "text": "my pin is one two three four", "redacted": "my pin is <PIN>",
     "entities": [{"type": "PIN", "start": 10, "end": 28, "score": 0.8}]}

Offsets are character offsets into the input ``text``. Other fields of each input line are kept.
A bad line (not UTF-8, longer than ``--max-line-chars``, not a JSON object with a string ``text``
and an ``id``, or holding a lone surrogate) stops the command with its line number (nothing is
written to ``--out``), or goes to ``--rejects`` with the reason when that is given; the command
then goes on, and exits 1 when it set any line aside.
"""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from governance.redaction.records import MAX_LINE_CHARS, TooLong, check_length, redact_records
from voiceloop.cli_common import ParamsOption, console, fail, load

STDIO = Path("-")
commands = typer.Typer()


class BadLine(ValueError):
    """An input line that cannot be redacted; the message says which line and how to fix it."""


def parse_line(line: str, number: int, source: str, max_chars: int = MAX_LINE_CHARS) -> dict[str, Any]:
    """One input line (as :func:`_lines` reads it) as a record, or :class:`BadLine` naming the line and the fix."""
    where = f"{source}:{number}"
    try:
        check_length(line, max_chars, where)
    except TooLong as err:
        raise BadLine(f"{err} (--max-line-chars)") from None
    _check_utf8(line, where)
    record = _json_object(line, where)
    if not isinstance(record.get("text"), str):
        raise BadLine(f'{where}: no string "text" field; add the transcript as "text"')
    if "id" not in record:
        raise BadLine(f'{where}: no "id" field; give each line an id so results can be matched')
    _check_no_lone_surrogate(record, where)
    return record


def _check_utf8(line: str, where: str) -> None:
    """Bytes that are not UTF-8 reach here as surrogate escapes (U+DC80..U+DCFF, one per byte)."""
    try:
        line.encode("utf-8")
    except UnicodeEncodeError as err:
        byte = ord(line[err.start]) - 0xDC00
        raise BadLine(f"{where}: not UTF-8 (byte 0x{byte:02x} at column {err.start + 1}); "
                      "save the file as UTF-8") from None


def _json_object(line: str, where: str) -> dict[str, Any]:
    """The line's JSON object; any other JSON, or none, is a bad line (deep nesting too: it would overflow)."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise BadLine(f"{where}: not valid JSON ({err.msg}); each line must be one JSON object") from None
    except RecursionError:
        raise BadLine(f"{where}: JSON nested too deeply to read; make each line one object of plain fields") from None
    if not isinstance(record, dict):
        raise BadLine(
            f'{where}: a JSON {type(record).__name__}, expected an object like {{"id": ..., "text": "..."}}'
        )
    return record


def _check_no_lone_surrogate(record: dict[str, Any], where: str) -> None:
    """A ``\\ud800`` escape with no pair decodes to a character no UTF-8 output (nor spaCy) can hold."""
    try:
        json.dumps(record, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as err:
        raise BadLine(f"{where}: a lone surrogate ({ascii(err.object[err.start])[1:-1]}: a \\u escape with no "
                      "pair), which UTF-8 cannot hold; fix the escape or drop it") from None


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
    """Each non-blank line with its number, its line end cut. Bytes that are not UTF-8 are kept as
    surrogate escapes, so a bad byte costs its line only (:func:`parse_line` names it) and nothing is lost."""
    binary = sys.stdin.buffer if path == STDIO else path.open("rb")
    with io.TextIOWrapper(binary, encoding="utf-8", errors="surrogateescape") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield number, line.rstrip("\r\n")


def _count(n: int) -> str:
    return f"{n:,} line" + ("" if n == 1 else "s")


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
        typer.Option(help="write bad lines here (line number, reason, the line) and go on instead of stopping "
                          "at the first one; the exit code is 1 when any line went here"),
    ] = None,
    max_line_chars: Annotated[
        int, typer.Option(min=1, help="longest line redacted, in characters: a longer one is a bad line "
                                      "(redaction time grows with the square of a text's length)")
    ] = MAX_LINE_CHARS,
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
    from governance.redaction.redactor import Redactor

    redactor = Redactor(settings.redaction, entities=entities)
    source = "stdin" if input_path == STDIO else str(input_path)
    rejected = 0
    done = 0
    reject_handle = None
    if rejects is not None:
        rejects.parent.mkdir(parents=True, exist_ok=True)
        reject_handle = rejects.open("w", encoding="utf-8")

    def readable() -> Iterator[dict[str, Any]]:
        """The parsed lines; a bad one stops the command, or goes to --rejects with its reason."""
        nonlocal rejected
        for number, line in _lines(input_path):
            try:
                yield parse_line(line, number, source, max_line_chars)
            except BadLine as err:
                if reject_handle is None:
                    raise
                rejected += 1
                reject_handle.write(json.dumps({"line": number, "reason": str(err), "raw": line}) + "\n")

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
            for record in redact_records(redactor, readable(), check_leaks, max_chars=max_line_chars):
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
                done += 1
                progress.update(task, completed=done)
    except BadLine as err:
        written = "lines before it were written to stdout" if output_path == STDIO else "nothing was written to --out"
        fail(f"{err} ({written}; pass --rejects FILE to set bad lines aside)", code=2)
    finally:
        if reject_handle is not None:
            reject_handle.close()
    note = f", {_count(rejected)} rejected: see {escape(str(rejects))}" if rejected else ""
    console.print(f"redacted {_count(done)}{note}")
    if rejected:
        raise typer.Exit(1)
