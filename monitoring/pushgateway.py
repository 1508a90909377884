"""Export the monitor's daily figures to Prometheus through a Pushgateway, with label sets kept bounded.

The monitor runs as a batch job, so Prometheus cannot scrape it: it pushes its figures to a
Pushgateway (:func:`push`, one group per job and grouping labels, replaced whole on each push)
that Prometheus scrapes. Samples are gauges named ``voiceloop_monitor_*``; a slice label takes
only the ``top`` worst slices plus ``all`` (:func:`bounded_slices`), so a new slice value cannot
grow the number of series without end. :class:`LocalPushgateway` runs ``prometheus-pushgateway``
on 127.0.0.1 from the project folder (:mod:`core.local_service`).
"""

from __future__ import annotations

import base64
import math
import re
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote

import httpx

from core.local_service import LocalService, ServiceStatus, call_service, listen_address

PREFIX = "voiceloop_monitor_"
ALL = "all"
START_HINT = "start it with `voiceloop pushgateway start` (or check the Pushgateway URL in the settings)"

_METRIC = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class Sample(NamedTuple):
    """One gauge value: ``name`` (``voiceloop_monitor_*``), its ``labels``, the ``value`` and the metric's ``help``."""

    name: str
    labels: dict[str, str]
    value: float
    help: str


class PushgatewayError(RuntimeError):
    """The Pushgateway answered with an error."""


class PushgatewayUnreachable(PushgatewayError):
    """Nothing answers at the Pushgateway URL."""


# -- the exposition format --------------------------------------------------------------------------


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _check(sample: Sample) -> None:
    if not sample.name.startswith(PREFIX) or not _METRIC.match(sample.name):
        raise ValueError(f"metric {sample.name!r}: names are {PREFIX}<letters, digits, '_'>")
    for label in sample.labels:
        if not _LABEL.match(label) or label.startswith("__"):
            raise ValueError(f"metric {sample.name}: label name {label!r} is not a Prometheus label name")


def render_metrics(samples: list[Sample]) -> str:
    """``samples`` in the Prometheus text exposition format (0.0.4): HELP and TYPE (gauge) once per metric.

    ValueError on a bad metric or label name, a metric given two help texts or two label names
    sets, or the same metric and labels twice.
    """
    families: dict[str, list[Sample]] = {}
    for sample in samples:
        _check(sample)
        family = families.setdefault(sample.name, [])
        if family and family[0].help != sample.help:
            raise ValueError(f"metric {sample.name}: two different help texts")
        if family and set(family[0].labels) != set(sample.labels):
            raise ValueError(f"metric {sample.name}: label names {sorted(sample.labels)} differ from "
                             f"{sorted(family[0].labels)}")
        if any(other.labels == sample.labels for other in family):
            raise ValueError(f"metric {sample.name}: labels {sample.labels} given twice")
        family.append(sample)
    lines = []
    for name, family in families.items():
        lines += [f"# HELP {name} {_escape_help(family[0].help)}", f"# TYPE {name} gauge"]
        for sample in family:
            labels = ",".join(f'{key}="{_escape_label(value)}"' for key, value in sorted(sample.labels.items()))
            lines.append(f"{name}{{{labels}}} {_number(sample.value)}" if labels else
                         f"{name} {_number(sample.value)}")
    return "\n".join(lines) + "\n" if lines else ""


def bounded_slices(values_by_slice: dict[str, float], top: int, *, higher_is_worse: bool = True) -> dict[str, float]:
    """The ``top`` worst slices (highest values, or lowest with ``higher_is_worse=False``) plus ``all``.

    Ties go by slice name, so the same figures always keep the same slices; NaN is never among the
    worst. Keeping a fixed number of slices keeps the exported label sets bounded.
    """
    if top < 0:
        raise ValueError(f"bounded_slices: top must be 0 or more, got {top}")
    sign = -1.0 if higher_is_worse else 1.0
    ranked = sorted(((key, value) for key, value in values_by_slice.items() if key != ALL and not math.isnan(value)),
                    key=lambda item: (sign * item[1], item[0]))
    kept = dict(ranked[:top])
    if ALL in values_by_slice:
        kept[ALL] = values_by_slice[ALL]
    return kept


# -- the client -------------------------------------------------------------------------------------


def _segment(label: str, value: str) -> str:
    """``/label/value`` of a grouping key; base64 (URL-safe) where the value has a '/' or is empty."""
    if value == "" or "/" in value:
        encoded = base64.urlsafe_b64encode(value.encode()).decode() or "="
        return f"/{label}@base64/{encoded}"
    return f"/{label}/{quote(value, safe='')}"


def group_path(job: str, grouping: dict[str, str]) -> str:
    """``/metrics/job/<job>/<label>/<value>...``: the Pushgateway's address of one group."""
    if not job:
        raise ValueError("push: the job name must not be empty")
    for label in grouping:
        if not _LABEL.match(label) or label == "job":
            raise ValueError(f"push: grouping label {label!r} is not a Prometheus label name other than 'job'")
    return "/metrics" + _segment("job", job) + "".join(_segment(k, v) for k, v in sorted(grouping.items()))


def _call(method: str, url: str, path: str, **kwargs: Any) -> httpx.Response:
    return call_service("Pushgateway", method, url, path, unreachable=PushgatewayUnreachable,
                        failed=PushgatewayError, hint=START_HINT, **kwargs)


def push(url: str, job: str, samples: list[Sample], grouping: dict[str, str]) -> None:
    """Replace the group ``job`` + ``grouping`` with ``samples`` (PUT: metrics no longer pushed disappear)."""
    clash = {label for sample in samples for label in sample.labels} & {"job", *grouping}
    if clash:
        raise ValueError(f"push: samples must not carry the grouping labels {sorted(clash)}")
    _call("PUT", url, group_path(job, grouping), content=render_metrics(samples).encode(),
          headers={"Content-Type": "text/plain; version=0.0.4"})


def delete(url: str, job: str, grouping: dict[str, str]) -> None:
    """Delete the group ``job`` + ``grouping`` and all its metrics."""
    _call("DELETE", url, group_path(job, grouping))


# -- the local daemon -------------------------------------------------------------------------------


class LocalPushgateway:
    """``prometheus-pushgateway`` with its metrics file, log and pid file under ``folder``, on 127.0.0.1:``port``."""

    def __init__(self, folder: Path, port: int) -> None:
        self.folder = Path(folder).resolve()
        self.metrics_file = self.folder / "metrics"
        self.service = LocalService(
            name="pushgateway", binary="prometheus-pushgateway", package="prometheus-pushgateway",
            folder=self.folder, port=port,
            args=[f"--web.listen-address={listen_address(port)}", f"--persistence.file={self.metrics_file}"],
        )

    @property
    def url(self) -> str:
        return self.service.url

    def start(self, timeout_s: float = 30.0) -> ServiceStatus:
        return self.service.start(timeout_s)

    def stop(self, timeout_s: float = 10.0) -> bool:
        return self.service.stop(timeout_s)

    def status(self) -> ServiceStatus:
        return self.service.status()
