"""`voiceloop redact`: JSON Lines in and out, offsets on the input text, bad lines never lost."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from governance.redaction.records import MAX_LINE_CHARS
from tests.conftest import write_params
from voiceloop.cli_redact import commands

app = typer.Typer()
app.add_typer(commands)
app.command("noop")(lambda: None)  # a second command keeps typer from folding "redact" into the app
runner = CliRunner()

LINES: list[dict[str, Any]] = [
    {"id": "a", "text": "my pin is one two three four", "channel": "phone"},
    {"id": 7, "text": "Hi, I'm Alice Walker, card 4111 1111 1111 1111"},
    {"id": "c", "text": "one of my cards was declined four days ago"},
]


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_file_to_file(tmp_path: Path) -> None:
    params = write_params(tmp_path)
    source = _write(tmp_path / "in.jsonl", [json.dumps(line) for line in LINES])
    out = tmp_path / "out" / "redacted.jsonl"
    result = runner.invoke(
        app, ["redact", "--in", str(source), "--out", str(out), "--params", str(params), "--check-leaks"]
    )
    assert result.exit_code == 0, result.output
    records: list[dict[str, Any]] = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in records] == ["a", 7, "c"]
    assert records[0]["channel"] == "phone"
    assert records[0]["redacted"] == "my pin is <PIN>"
    assert records[1]["redacted"] == "Hi, I'm <PERSON>, card <CREDIT_CARD>"
    assert records[2]["redacted"] == LINES[2]["text"] and records[2]["entities"] == []
    assert all(r["leaks"] == [] for r in records)
    for record in records:
        for e in record["entities"]:
            assert set(e) == {"type", "start", "end", "score"}
            assert record["text"][e["start"] : e["end"]].strip() == record["text"][e["start"] : e["end"]]
    pin = records[0]["entities"][0]
    assert records[0]["text"][pin["start"] : pin["end"]] == "one two three four"


def test_stdin_to_stdout(tmp_path: Path) -> None:
    params = write_params(tmp_path)
    result = runner.invoke(app, ["redact", "--params", str(params)], input=json.dumps(LINES[0]) + "\n\n")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.splitlines()[0])["redacted"] == "my pin is <PIN>"


def test_bad_line_stops_with_its_number_and_writes_nothing(tmp_path: Path) -> None:
    params = write_params(tmp_path)
    source = _write(tmp_path / "in.jsonl", [json.dumps(LINES[0]), '{"id": 2, "text": 5}'])
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["redact", "--in", str(source), "--out", str(out), "--params", str(params)])
    assert result.exit_code == 2
    assert "in.jsonl:2" in result.output and '"text"' in result.output
    assert not out.exists()


def test_bad_lines_go_to_rejects_with_the_reason(tmp_path: Path) -> None:
    params = write_params(tmp_path)
    source = _write(tmp_path / "in.jsonl", ["not json", json.dumps(LINES[0]), "[1, 2]", '{"text": "no id"}'])
    out, rejects = tmp_path / "out.jsonl", tmp_path / "rejects.jsonl"
    result = runner.invoke(
        app, ["redact", "--in", str(source), "--out", str(out), "--rejects", str(rejects), "--params", str(params)]
    )
    assert result.exit_code == 1, result.output
    assert "redacted 1 line, 3 lines rejected" in result.output
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["a"]
    rejected = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [r["line"] for r in rejected] == [1, 3, 4]
    assert rejected[0]["raw"] == "not json" and "JSON" in rejected[0]["reason"]


LATIN1 = b'{"id": "b", "text": "caf\xe9 au lait"}'  # written as Latin-1, not UTF-8
SURROGATE = '{"id": "s", "text": "an escape with no pair: \\ud800"}'


def _long_line(chars: int = 900_000) -> str:
    """One JSON line of ``chars`` characters of call text with a card number at its end."""
    words = "so the payment i made on the fourth never arrived and i was charged twice for it "
    card = " my card is 4111 1111 1111 1111"
    text = (words * (chars // len(words) + 1))[: chars - len(card)] + card
    return json.dumps({"id": "long", "text": text})


def test_undecodable_bytes_and_lone_surrogates_go_to_rejects(tmp_path: Path) -> None:
    """Issue 17 item 12: such lines were tracebacks; now each is set aside with its number and the rest go on."""
    params = write_params(tmp_path)
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\n".join([json.dumps(LINES[0]).encode(), LATIN1, SURROGATE.encode(),
                                   json.dumps(LINES[2]).encode()]) + b"\n")
    out, rejects = tmp_path / "out.jsonl", tmp_path / "bad" / "rejects.jsonl"
    result = runner.invoke(
        app, ["redact", "--in", str(source), "--out", str(out), "--rejects", str(rejects), "--params", str(params)]
    )
    assert result.exit_code == 1, result.output
    assert "redacted 2 lines, 2 lines rejected" in result.output
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["a", "c"]
    latin1, surrogate = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert latin1["line"] == 2 and "in.jsonl:2" in latin1["reason"] and "UTF-8" in latin1["reason"]
    assert latin1["raw"].encode("utf-8", "surrogateescape") == LATIN1  # the bytes, kept as they were
    assert surrogate["line"] == 3 and "surrogate" in surrogate["reason"] and surrogate["raw"] == SURROGATE


def test_a_line_over_the_cap_is_rejected_naming_it_and_the_fix(tmp_path: Path) -> None:
    """A 0.9 MB line with a card number (Presidio's cost grows with the square of the text) is set aside."""
    params = write_params(tmp_path)
    long = _long_line()
    source = _write(tmp_path / "in.jsonl", [json.dumps(LINES[0]), long, json.dumps(LINES[2])])
    out, rejects = tmp_path / "out.jsonl", tmp_path / "rejects.jsonl"
    result = runner.invoke(
        app, ["redact", "--in", str(source), "--out", str(out), "--rejects", str(rejects), "--params", str(params)]
    )
    assert result.exit_code == 1, result.output
    assert "redacted 2 lines, 1 line rejected" in result.output
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["a", "c"]
    [rejected] = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert rejected["line"] == 2 and rejected["raw"] == long
    assert "in.jsonl:2" in rejected["reason"] and f"{len(long):,} characters" in rejected["reason"]
    assert f"{MAX_LINE_CHARS:,}" in rejected["reason"] and "--max-line-chars" in rejected["reason"]


def test_max_line_chars_sets_the_cap(tmp_path: Path) -> None:
    params = write_params(tmp_path)
    short = json.dumps({"id": "s", "text": "hi"})
    source = _write(tmp_path / "in.jsonl", [short, json.dumps(LINES[1])])
    out, rejects = tmp_path / "out.jsonl", tmp_path / "rejects.jsonl"
    result = runner.invoke(app, ["redact", "--in", str(source), "--out", str(out), "--rejects", str(rejects),
                                 "--max-line-chars", str(len(short)), "--params", str(params)])
    assert result.exit_code == 1, result.output
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["s"]
    [rejected] = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert rejected["line"] == 2 and f"cap of {len(short)} characters" in rejected["reason"]


@pytest.mark.parametrize(("bad", "why"), [
    (LATIN1, "not UTF-8"),
    (SURROGATE.encode(), "surrogate"),
    (b"[" * 3000 + b"]" * 3000, "nested"),
    (_long_line(10_000_000).encode(), "--max-line-chars"),
], ids=["latin1", "surrogate", "deep", "10MB"])
def test_a_bad_line_without_rejects_stops_naming_it_not_with_a_traceback(tmp_path: Path, bad: bytes,
                                                                        why: str) -> None:
    params = write_params(tmp_path)
    result = runner.invoke(app, ["redact", "--params", str(params)], input=json.dumps(LINES[2]).encode() + b"\n" + bad)
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert "stdin:2" in result.output and why in result.output and "--rejects" in result.output
