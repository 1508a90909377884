"""The gate's decision for people: an HTML report with plots, and a model card per promoted bundle.

The JSON decision (training/gate.py) is the record machines read. The report is what an ML lead
or an auditor opens: the verdict and why, every criterion with its interval and what the golden set
can detect (its power figures), every slice test (untested ones named), and three plots: the changes
with their intervals against the margins, WER by slice for both models, and the intent confusions
that changed most. It is one self-contained file (plots embedded), logged beside the decision and
named in the audit entry. The model card (markdown, in the bundle's registered folder) says what a
promoted bundle was trained on, under which licenses, how it scored, and what it was not tested on.
"""

from __future__ import annotations

import base64
import html
import io
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from training.datasets import ASR_DIGITS, ASR_GOLDEN, ASR_TRAIN, BANKING77_TRAIN, INTENT_GOLDEN, INTENT_TRAIN

# Where the training data of every bundle comes from (data/sample/ holds the licenses).
DATA_SOURCES = {
    BANKING77_TRAIN: "BANKING77 train utterances (PolyAI, CC BY 4.0), training",
    INTENT_TRAIN: "redacted, consented customer turns of production calls (your data), training",
    INTENT_GOLDEN: "the golden calls' labelled turns (never trained on), evaluation",
    ASR_TRAIN: "redacted audio of consented customer turns (your data), training",
    ASR_DIGITS: "Free Spoken Digit Dataset speakers (CC BY-SA 4.0) and espeak-ng digit strings, training",
    ASR_GOLDEN: "the golden calls' redacted audio (never trained on), evaluation",
}
KNOWN_LIMITS = (
    "Golden-set figures hold for the golden set's voices, channels and intents; slices listed as untested had "
    "too few utterances to show harm.",
    "The clean-speech check uses six real recordings (86 words): it catches forgetting, not small changes.",
    "Latency was timed on the machine that ran the gate, one utterance at a time.",
)


STATUS_COLOURS = {"passed": "tab:green", "underpowered": "tab:orange", "failed": "tab:red"}
POWER_COLUMNS = ("n", "discordance", "sd", "minimum_detectable", "n_needed")


def _power_rows(decision: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per criterion (and ASR slice) with power figures: what the golden set can detect."""
    rows = [*decision["criteria"], *decision.get("asr_slices", [])]
    return [{"name": c["name"], "status": c.get("status"), **c["power"]} for c in rows if c.get("power")]


def confusion_changes(labels: Sequence[str], champion: Sequence[str], challenger: Sequence[str],
                      top: int = 15) -> list[dict[str, Any]]:
    """The (true intent -> predicted) error cells whose counts changed most from champion to challenger."""
    before = Counter((y, p) for y, p in zip(labels, champion, strict=True) if y != p)
    after = Counter((y, p) for y, p in zip(labels, challenger, strict=True) if y != p)
    cells = sorted((c for c in set(before) | set(after) if after[c] != before[c]),
                   key=lambda c: (-abs(after[c] - before[c]), c))[:top]
    return [{"true": y, "predicted": p, "champion": before[(y, p)], "challenger": after[(y, p)],
             "change": after[(y, p)] - before[(y, p)]} for y, p in cells]


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _plots(decision: Mapping[str, Any], confusions: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Title -> base64 PNG, for the plots this decision has data for."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots: dict[str, str] = {}
    bounded = [c for c in decision["criteria"] if c.get("interval")]
    if bounded:
        fig, ax = plt.subplots(figsize=(7.5, 0.6 * len(bounded) + 1.2))
        for row, c in enumerate(bounded):
            low, high = c["interval"]
            ax.plot([low, high], [row, row], color=STATUS_COLOURS.get(c.get("status", ""), "tab:red"), linewidth=3)
            ax.plot([c["delta"]], [row], "o", color="black")
            ax.plot([c["threshold"]], [row], "|", color="tab:orange", markersize=18)
        ax.axvline(0, color="grey", linewidth=0.8)
        ax.set_yticks(range(len(bounded)), [c["name"] for c in bounded])
        ax.set_xlabel("change, positive = challenger worse (line: 95% interval, orange if underpowered; |: margin)")
        plots["Changes with their intervals"] = _png(fig)
    asr = [t for t in decision.get("slice_tests", []) if t["name"].startswith("asr_wer[")]
    if asr:
        fig, ax = plt.subplots(figsize=(7.5, 0.5 * len(asr) + 1.2))
        y = list(range(len(asr)))
        ax.barh([v - 0.2 for v in y], [t["champion"] for t in asr], height=0.4, label="champion")
        ax.barh([v + 0.2 for v in y], [t["challenger"] for t in asr], height=0.4, label="challenger")
        ax.set_yticks(y, [f"{t['name'][8:-1]} (n={t['n']})" for t in asr])
        ax.set_xlabel("WER")
        ax.legend()
        plots["WER by slice"] = _png(fig)
    if confusions:
        fig, ax = plt.subplots(figsize=(7.5, 0.4 * len(confusions) + 1.2))
        ax.barh(range(len(confusions)), [c["change"] for c in confusions],
                color=["tab:red" if c["change"] > 0 else "tab:green" for c in confusions])
        ax.set_yticks(range(len(confusions)), [f"{c['true']} -> {c['predicted']}" for c in confusions])
        ax.invert_yaxis()
        ax.set_xlabel("change in count of this confusion (positive = the challenger makes it more)")
        plots["Intent confusions that changed most"] = _png(fig)
    return plots


def _table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.4g}"
        if isinstance(value, list | tuple):
            return "[" + ", ".join(cell(v) for v in value) + "]"
        return html.escape("" if value is None else str(value))

    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def decision_html(decision: Mapping[str, Any], confusions: Sequence[Mapping[str, Any]], title: str) -> str:
    """The decision as one self-contained HTML page."""
    verdict = decision["verdict"]
    why = "".join(f"<li>{html.escape(r)}</li>" for r in decision["reasons"]) or "<li>every criterion passed</li>"
    plots = "".join(f"<h2>{html.escape(name)}</h2><img src='data:image/png;base64,{data}'>"
                    for name, data in _plots(decision, confusions).items())
    mcnemar = decision.get("statistics", {}).get("intent_mcnemar")
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:3px 6px;font-size:90%;text-align:left}}
.promote{{color:#070}}.reject{{color:#a00}}.underpowered{{color:#b60}}</style></head><body>
<h1>{html.escape(title)}: <span class="{verdict}">{verdict}</span></h1>
<p>Champion: {html.escape(str(decision.get("champion_version") or "none (absolute floor)"))};
golden utterances: {decision.get("n")}.</p>
<h2>Why</h2><ul>{why}</ul>
<h2>Criteria</h2>{_table(decision["criteria"], ("name", "status", "challenger", "champion", "delta", "interval",
                                                "threshold", "rule"))}
<h2>Power (what this golden set can detect, at power {decision.get("config", {}).get("power", 0.9):.0%})</h2>
{_table(_power_rows(decision), ("name", "status", *POWER_COLUMNS))}
<h2>Slices (one-sided tests, Holm-corrected)</h2>
{_table(decision.get("slice_tests", []), ("name", "n", "champion", "challenger", "p_value", "threshold", "status"))}
<h2>Intents that changed most (reported, not deciding)</h2>{_table(decision.get("per_intent", [])[:15],
                                          ("intent", "group", "n", "champion", "challenger", "delta", "interval"))}
{f"<p>McNemar (reported, not a criterion): {html.escape(str(mcnemar))}</p>" if mcnemar else ""}
{plots}
<h2>Intent confusions that changed most</h2>{_table(confusions, ("true", "predicted", "champion", "challenger",
                                                                "change"))}
</body></html>"""


def model_card(bundle_version: str, components: Mapping[str, str], decision: Mapping[str, Any],
               datasets: Mapping[str, str]) -> str:
    """Markdown: what a promoted bundle is, what it was trained on (with licenses), its scores and limits."""
    lines = [f"# Model card: bundle v{bundle_version}", "", "## Components", ""]
    lines += [f"- {name}: `{reference}`" for name, reference in sorted(components.items())]
    lines += ["", "## Training data", ""]
    for name, digest in sorted(datasets.items()):
        source = DATA_SOURCES.get(name, "see the dataset's manifest")
        lines.append(f"- `{name}` (digest `{digest}`): {source}")
    lines += ["", "## Gate", "", f"Verdict: **{decision['verdict']}** against champion "
              f"{decision.get('champion_version') or 'none (absolute floor)'}.", "",
              "| criterion | passed | challenger | champion | interval |", "| --- | --- | --- | --- | --- |"]
    for c in decision["criteria"]:
        interval = "" if not c.get("interval") else f"[{c['interval'][0]:+.4f}, {c['interval'][1]:+.4f}]"
        champion = "" if c.get("champion") is None else f"{c['champion']:.4f}"
        lines.append(f"| {c['name']} | {c['passed']} | {c['challenger']:.4f} | {champion} | {interval} |")
    untested = [t["name"] for t in decision.get("slice_tests", []) if t["status"] == "untested"]
    lines += ["", "## Known limits", ""] + [f"- {limit}" for limit in KNOWN_LIMITS]
    if untested:
        lines.append(f"- Untested slices (too few utterances): {', '.join(untested)}.")
    return "\n".join(lines) + "\n"
