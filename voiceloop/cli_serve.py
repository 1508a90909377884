"""``voiceloop serve``: the champion bundle behind an HTTP API on this machine (serving/app.py).

Examples::

    voiceloop serve                              # 127.0.0.1:8080, follows the champion alias
    voiceloop serve --port 9000 --shadow         # also run the challenger on the same traffic
    VOICELOOP_API_KEYS="bot voice-bot k1,qa serving k2" voiceloop serve   # keys from the environment

Register with :func:`register` (``voiceloop/cli.py``).
"""

from __future__ import annotations

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
    """
    import uvicorn

    from serving.api_keys import api_keys_path, load_api_keys
    from serving.app import create_app, server_config
    from serving.runtime import PURPOSE, build_runtime, resolve_keys, start_following, stop_following

    settings = _settings(params)
    host, port = host or settings.serving.host, port or settings.serving.port
    role = acting_role(settings, as_role, PURPOSE, command="serve", configured=settings.serving.role)
    try:  # checked before the slow part: loading the bundle
        keys, source = load_api_keys(api_keys_path(settings.keys_dir, settings.serving.api_keys_file))
        resolve_keys(settings, keys, role)
    except ValueError as error:
        fail(str(error))
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
