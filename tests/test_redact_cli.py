"""`voiceloop redact`: JSON Lines in and out, offsets on the input text, bad lines never lost."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from typer.testing import CliRunner

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
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["a"]
    rejected = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [r["line"] for r in rejected] == [1, 3, 4]
    assert rejected[0]["raw"] == "not json" and "JSON" in rejected[0]["reason"]
