"""Moving the champion by hand (voiceloop promote / rollback / history), on a project the real flow trained.

The template's first bundle was promoted by the gate. A second bundle of the same component
versions is registered through the real registry, then promoted by hand and rolled back, through
the command, with the real access policy, MLflow registry and audit log.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from governance.audit import open_audit
from tests.flow_helpers import TrainedProject, cli, project_fixture
from training.registry import CHALLENGER, CHAMPION, PREVIOUS, Registry

project = project_fixture("rollout")


def _params(project: TrainedProject) -> list[str]:
    return ["--params", str(project.params)]


def _aliases(registry: Registry) -> dict[str, str | None]:
    return {alias: (b.version if (b := registry.by_alias(alias)) else None) for alias in (CHAMPION, PREVIOUS)}


@pytest.fixture(scope="module")
def second_bundle(project: TrainedProject) -> str:
    """A second bundle version (the same components): the challenger, not promoted by any gate."""
    registry = Registry(project.settings)
    first = registry.by_alias(CHAMPION)
    assert first is not None and first.run_id
    bundle = registry.register_bundle(first.run_id, first.components, {"note": "registered by the test"})
    assert registry.by_alias(CHALLENGER) == registry.bundle(bundle.version)
    return bundle.version


def test_a_rollback_with_nothing_before_the_champion_is_refused_and_audited(project: TrainedProject) -> None:
    result = cli("rollback", "--reason", "INC-1: testing", "--as", "admin", *_params(project))
    assert result.exit_code == 1 and "nothing to roll back to" in result.output
    [entry] = open_audit(project.settings).entries(action="registry.rollback")
    assert entry.outcome == "refused" and entry.role == "admin"


def test_only_the_promotion_purpose_may_move_the_champion(project: TrainedProject, second_bundle: str) -> None:
    before = _aliases(Registry(project.settings))
    result = cli("promote", "--bundle", second_bundle, "--reason", "INC-2", "--as", "ml-engineer", *_params(project))
    assert result.exit_code == 2 and "may not act for purpose 'promotion'" in result.output and "admin" in result.output
    no_reason = cli("promote", "--bundle", second_bundle, "--as", "admin", *_params(project))
    assert no_reason.exit_code == 1 and "a reason is required" in no_reason.output
    assert _aliases(Registry(project.settings)) == before
    outcomes = [(e.role, e.outcome) for e in open_audit(project.settings).entries(action="registry.promote-manual")]
    assert outcomes == [("ml-engineer", "denied"), ("admin", "refused")]


def test_manual_promotion_then_rollback_restores_the_previous_bundle(project: TrainedProject,
                                                                      second_bundle: str) -> None:
    registry = Registry(project.settings)
    first = _aliases(registry)[CHAMPION]
    assert first is not None and first != second_bundle

    promoted = cli("promote", "--bundle", f"v{second_bundle}", "--reason", "INC-3: hotfix", "--as", "admin",
                   "--json", *_params(project))
    assert promoted.exit_code == 0, promoted.output
    move = json.loads(promoted.stdout)
    assert (move["action"], move["champion_before"], move["champion_after"]) == ("manual.promote", first, second_bundle)
    assert move["evidence"]["override"] is True  # no gate ever passed the second bundle
    assert _aliases(registry) == {CHAMPION: second_bundle, PREVIOUS: first}

    rolled = cli("rollback", "--reason", "INC-4: worse on calls", "--as", "admin", *_params(project))
    assert rolled.exit_code == 0, rolled.output
    assert _aliases(registry) == {CHAMPION: first, PREVIOUS: second_bundle}

    again = cli("promote", "--bundle", first, "--reason", "INC-5", "--as", "admin", *_params(project))
    assert again.exit_code == 1 and "champion already" in again.output

    entries = open_audit(project.settings).entries(outcome="ok")
    done = [(e.action, e.detail["bundle_version"], e.detail["reason"]) for e in entries
            if e.action in ("registry.promote-manual", "registry.rollback")]
    assert done == [("registry.promote-manual", second_bundle, "INC-3: hotfix"),
                    ("registry.rollback", first, "INC-4: worse on calls")]

    history = cli("history", "--json", *_params(project))
    moves = json.loads(history.stdout)
    assert [(m["action"], m["version"], m["by"].endswith(" as admin") or m["by"] == "gate") for m in moves] == [
        ("gate.promote", first, True), ("manual.promote", second_bundle, True), ("rollback", first, True)]
    assert moves[0]["evidence"]["verdict"] == "promote" and moves[0]["evidence"]["criteria"]
    assert moves[0]["evidence"]["decision"].startswith("runs:/")
    assert moves[2]["evidence"] == {"rolled_back": second_bundle}
    table = cli("history", *_params(project))
    assert table.exit_code == 0 and "INC-4: worse on calls" in table.output


def test_a_version_is_read_as_the_registry_numbers_it(project: TrainedProject, second_bundle: str) -> None:
    """Issue 17 item 10: "01" is bundle 1, so promoting it is promoting the champion, and `previous` stays."""
    registry = Registry(project.settings)
    before, recorded = _aliases(registry), len(registry.moves())
    champion = before[CHAMPION]
    assert champion is not None and before[PREVIOUS] == second_bundle

    same = cli("promote", "--bundle", f"0{champion}", "--reason", "INC-7", "--as", "admin", *_params(project))
    assert same.exit_code == 1 and f"bundle v{champion} is the champion already" in same.output
    unknown = cli("promote", "--bundle", "99", "--reason", "INC-7", "--as", "admin", *_params(project))
    assert unknown.exit_code == 1 and "no version 99" in unknown.output
    assert f"versions: {', '.join(row['version'] for row in registry.versions())})" in unknown.output
    word = cli("promote", "--bundle", "latest", "--reason", "INC-7", "--as", "admin", *_params(project))
    assert word.exit_code == 1 and "'latest' is not a bundle version" in word.output
    assert _aliases(registry) == before and len(registry.moves()) == recorded

    padded = cli("promote", "--bundle", f"v00{second_bundle}", "--reason", "INC-8", "--as", "admin", "--json",
                 *_params(project))
    assert padded.exit_code == 0, padded.output
    move = json.loads(padded.stdout)
    assert (move["version"], move["champion_before"], move["champion_after"]) == (second_bundle, champion,
                                                                                 second_bundle)
    assert _aliases(registry) == {CHAMPION: second_bundle, PREVIOUS: champion}
    *_, audited = open_audit(project.settings).entries(action="registry.promote-manual", outcome="ok")
    assert audited.detail["bundle_version"] == second_bundle
    back = cli("rollback", "--reason", "INC-9", "--as", "admin", *_params(project))
    assert back.exit_code == 0 and _aliases(registry) == before


def test_a_rollback_onto_the_champion_itself_is_refused(project: TrainedProject) -> None:
    """A registry the "01" bug hit has `previous` on the champion: rolling back there would change nothing."""
    registry = Registry(project.settings)
    before = _aliases(registry)
    assert before[CHAMPION] is not None and before[PREVIOUS] is not None
    registry.client.set_registered_model_alias(registry.bundle_name, PREVIOUS, before[CHAMPION])
    try:
        result = cli("rollback", "--reason", "INC-10", "--as", "admin", *_params(project))
        assert result.exit_code == 1 and "names the champion itself" in result.output
    finally:
        registry.client.set_registered_model_alias(registry.bundle_name, PREVIOUS, before[PREVIOUS])


def test_history_prints_reasons_as_plain_text(project: TrainedProject) -> None:
    """Issue 17 item 11: a reason's ANSI escapes and rich markup are shown, never acted on; --json keeps them."""
    registry = Registry(project.settings)
    before = _aliases(registry)
    reason = "INC-11: \x1b[2J\x1b[31mred[/] [bold red]loud[/bold red] [link=https://evil.example]click[/link]"
    for _ in range(2):  # rolling back twice puts the champion back where it was
        moved = cli("rollback", "--reason", reason, "--as", "admin", *_params(project))
        assert moved.exit_code == 0, moved.output
    assert _aliases(registry) == before

    table = cli("history", *_params(project), env={"COLUMNS": "1000"})
    assert table.exit_code == 0, table.output
    assert "\x1b" not in table.output
    shown = "INC-11: \\x1b[2J\\x1b[31mred[/] [bold red]loud[/bold red] [link=https://evil.example]click[/link]"
    assert table.output.count(shown) == 2
    recorded = json.loads(cli("history", "--json", *_params(project)).stdout)
    assert [m["reason"] for m in recorded[-2:]] == [reason, reason]


def test_a_bundle_trained_on_erased_calls_may_not_serve_again(project: TrainedProject, second_bundle: str) -> None:
    registry = Registry(project.settings)
    registry.tag_retrain_required(registry.bundle_name, second_bundle, "er-test")
    result = cli("rollback", "--reason", "INC-6", "--as", "admin", *_params(project))  # previous = second_bundle
    assert result.exit_code == 1 and "erased" in result.output and "er-test" in result.output
    assert _aliases(registry)[CHAMPION] != second_bundle


def test_the_gate_report_and_the_model_card_travel_with_the_bundle(project: TrainedProject) -> None:
    import mlflow

    registry = Registry(project.settings)
    gated = registry.moves()[0]  # the template's first bundle, promoted by the gate
    assert gated.action == "gate.promote"
    page = mlflow.artifacts.load_text(gated.evidence["report"])
    assert "<span class=\"promote\">promote</span>" in page and "every criterion passed" in page
    assert "asr_wer" in page and "serving_latency" in page
    bundle = registry.bundle(gated.version)
    card = mlflow.artifacts.load_text(f"runs:/{bundle.run_id}/bundle/model_card-v{gated.version}.md")
    assert card.startswith(f"# Model card: bundle v{gated.version}")
    assert bundle.components["intent"] in card and "`asr-digits`" in card and "CC BY-SA 4.0" in card
    [entry] = [e for e in open_audit(project.settings).entries(action="gate.decision")]
    assert entry.detail["report"] == gated.evidence["report"]


def test_a_challenger_trained_on_20_percent_flipped_labels_is_blocked_and_the_report_says_why(
        project: TrainedProject, tmp_path: Path) -> None:
    """Real training on the template's datasets with a fifth of the intents flipped, then the real gate."""
    import mlflow

    from core.corpus import intent_names
    from governance.session import open_store
    from training.datasets import DatasetVersion, open_version
    from training.finetune import finetune_intent
    from training.promotion import gate_and_promote

    settings = project.settings
    store = open_store(settings, "ml-engineer", "training")
    names = list(intent_names())
    rng = np.random.default_rng(0)
    train_sets = []
    for name in ("banking77-train", "intent-train"):
        version = open_version(store, name, project.summary["datasets"][name]["digest"])
        data = version.load()
        intents = [names[(names.index(y) + 1 + int(rng.integers(len(names) - 1))) % len(names)]
                   if y in names and rng.random() < 0.2 else y for y in data["intent"]]
        flipped = data.remove_columns("intent").add_column("intent", intents)
        train_sets.append(DatasetVersion(name, version.digest[:16] + "-flipped20", version.rows, version.call_ids,
                                         flipped))
    golden = open_version(store, "intent-golden", project.summary["datasets"]["intent-golden"]["digest"])
    Registry(settings)  # tracking
    challenger = finetune_intent(train_sets, golden, names, settings.intent, tmp_path / "work")
    champion = Registry(settings).by_alias(CHAMPION)
    outcome = gate_and_promote(Registry(settings), store, challenger, settings.gate, tmp_path / "gate")
    assert outcome.decision["verdict"] == "reject" and not outcome.promoted
    assert _aliases(Registry(settings))[CHAMPION] == (champion.version if champion else None)  # it did not move
    [reason] = outcome.decision["reasons"]
    assert reason.startswith("intent_accuracy: non-inferiority")
    page = mlflow.artifacts.load_text(outcome.decision["report"])
    why = page[page.index("<h2>Why</h2>"):page.index("<h2>Criteria</h2>")]
    assert "intent_accuracy: non-inferiority" in why and "reject" in page
