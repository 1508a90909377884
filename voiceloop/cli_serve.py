"""``voiceloop serve``: the champion bundle behind an HTTP API on this machine (serving/app.py).

Examples::

    voiceloop serve                              # 127.0.0.1:8080, follows the champion alias
    voiceloop serve --port 9000 --shadow         # also run the challenger on the same traffic
    voiceloop serve --workers 4 --cores 0-3      # 4 processes on ports 8080-8083, one per core
    VOICELOOP_API_KEYS="bot voice-bot k1,qa serving k2" voiceloop serve   # keys from the environment

Register with :func:`register` (``voiceloop/cli.py``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from voiceloop.cli_common import ParamsOption, RoleOption, acting_role, console, fail
from voiceloop.cli_common import load as _settings

commands = typer.Typer()


@commands.command("serve")
def serve(
    host: Annotated[str | None, typer.Option(help="address to listen on (default serving.host, 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default serving.port, 8080)")] = None,
    shadow: Annotated[bool | None, typer.Option("--shadow/--no-shadow", help="run the challenger bundle on the same "
                                                "requests and record the comparison (default serving.shadow)")] = None,
    reload_every: Annotated[float | None, typer.Option(help="seconds between checks of the champion alias "
                                                             "(default serving.reload_poll_s)")] = None,
    workers: Annotated[int, typer.Option(min=1, help="server processes, on ports PORT, PORT+1, ...: each follows "
                                         "the champion and sheds its own overload; a load balancer in front "
                                         "must keep a call's requests on one of them (docs/serving.md)")] = 1,
    cores: Annotated[str | None, typer.Option(help="run on these cores only, e.g. 0-3 or 0,2; with --workers, "
                                                   "worker i on the i-th core alone (threads: one per core)")] = None,
    params: ParamsOption = None,
    as_role: RoleOption = None,
) -> None:
    """Serve the champion bundle: /v1/transcribe, /v1/understand, /v1/process, /healthz, /metrics, /docs.

    The bundle the registry's champion alias points at is loaded (its ASR and intent models) and
    swapped for the next one when the alias moves (a promotion, a rollback), without dropping a
    request. Every /v1 route needs an API key in the X-API-Key header: from VOICELOOP_API_KEYS, or
    the key file (serving.api_keys_file; created with one key on first start), one "NAME ROLE KEY"
    per line. /v1/transcribe answers with PII replaced unless the key's role holds the transcription
    purpose (role voice-bot in the shipped policy). Requests are audited per key in batches.
    Model work beyond serving.admission's slots and queue is refused at once with 503 and Retry-After.
    """
    import uvicorn

    from serving.api_keys import api_keys_path, load_api_keys
    from serving.app import create_app, server_config
    from serving.runtime import PURPOSE, build_runtime, resolve_keys, start_following, stop_following
    from serving.workers import parse_cores, pin

    try:
        pinned = parse_cores(cores) if cores else ()
        if pinned and workers == 1:  # before anything loads: every thread started from now on runs there
            pin(pinned)
            os.environ.setdefault("VOICELOOP__THREADS", str(len(pinned)))
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--cores") from None
    settings = _settings(params)
    host, port = host or settings.serving.host, port or settings.serving.port
    role = acting_role(settings, as_role, PURPOSE, command="serve", configured=settings.serving.role)
    try:  # checked before the slow part: loading the bundle
        keys, source = load_api_keys(api_keys_path(settings.keys_dir, settings.serving.api_keys_file))
        resolve_keys(settings, keys, role)
    except ValueError as error:
        fail(str(error))
    if workers > 1:
        raise typer.Exit(_supervise(host, port, workers, pinned, shadow, reload_every, params, as_role))
    console.print("loading the champion bundle ...")
    runtime = build_runtime(settings, shadow, keys, role)
    bundle = runtime.champion.current
    console.print(f"serving bundle {'v' + bundle.version if bundle.version else '(none yet: base ASR only)'} "
                  f"(ASR {bundle.asr_model}) on http://{host}:{port}  docs: http://{host}:{port}/docs  "
                  f"API keys: {source}" + ("  shadow: challenger" if runtime.shadow else ""))
    start_following(runtime, reload_every or settings.serving.reload_poll_s)
    try:
        uvicorn.Server(server_config(create_app(runtime), host, port)).run()
    finally:
        stop_following(runtime)


def _supervise(host: str, port: int, workers: int, cores: tuple[int, ...], shadow: bool | None,
               reload_every: float | None, params: Path | None, as_role: str | None) -> int:
    """``workers`` processes of this command, one per port (serving/workers.py), until Ctrl-C."""
    from serving.workers import Supervisor, Worker, plan

    def command(worker: Worker) -> list[str]:
        return [sys.executable, "-m", "voiceloop.cli", "serve", "--host", host, "--port", str(worker.port),
                *(["--cores", str(worker.cores[0])] if worker.cores else []),
                *([] if shadow is None else ["--shadow" if shadow else "--no-shadow"]),
                *(["--reload-every", str(reload_every)] if reload_every else []),
                *(["--params", str(params)] if params else []), *(["--as", as_role] if as_role else [])]

    planned = plan(port, workers, cores)
    console.print(f"{workers} server processes on http://{host}:{port} to :{port + workers - 1}; put a load balancer "
                  "in front that keeps each call on one process (docs/serving.md, \"Several processes\")")
    return Supervisor(planned, command, say=console.print).run()
