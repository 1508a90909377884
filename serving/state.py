"""What every route serves with: the runtime (followed bundles, redactor, keys, limits, admission) and the caller's key.

Built by :func:`serving.runtime.build_runtime`, put on the app by :func:`serving.app.create_app`, and
handed to each route by FastAPI's dependency injection (:func:`runtime_of`, :func:`api_key`). The
key itself is checked before the body is read, by serving/guard.py.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Header, HTTPException, Request

from serving.admission import Admission
from serving.api_keys import HEADER, ApiKey, matching_key
from serving.metrics import ServingMetrics
from training.bundle import ServedBundle

if TYPE_CHECKING:
    from governance.redaction.redactor import Redactor
    from serving.follower import BundleFollower
    from serving.request_audit import RequestAuditor
    from serving.shadow import ShadowRecorder


@dataclass
class Runtime:
    """What the app serves with; built by :func:`serving.runtime.build_runtime`."""

    champion: BundleFollower[ServedBundle]
    redactor: Redactor
    keys: tuple[ApiKey, ...]
    metrics: ServingMetrics
    max_audio_s: float = 60.0
    max_upload_bytes: int = 20 * 1024 * 1024
    challenger: BundleFollower[ServedBundle] | None = None  # shadow mode
    shadow: ShadowRecorder | None = None
    raw_roles: frozenset[str] = frozenset()  # roles whose keys get raw transcripts (the transcription purpose)
    requests: RequestAuditor | None = None  # the audit trail of requests, in batches
    admission: Admission = field(default_factory=Admission)  # the slots for model work, and what is shed
    _redacting: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def raw_for(self, key: ApiKey) -> bool:
        """Whether ``key``'s role may have raw transcripts (the ``transcription`` purpose)."""
        return key.role in self.raw_roles

    def redact(self, text: str) -> Any:
        """Presidio's analyzer is shared process-wide; one request redacts at a time (a few ms each)."""
        with self._redacting:
            return self.redactor.redact(text)


def runtime_of(request: Request) -> Runtime:
    """The app's runtime (``app.state.runtime``), for route dependencies."""
    runtime: Runtime = request.app.state.runtime
    return runtime


def api_key(request: Request,
            key: Annotated[str | None, Header(alias=HEADER, description="an API key of this server")] = None) -> ApiKey:
    """The request's key: the one the guard matched before the body was read (else checked here, 401)."""
    matched: ApiKey | None = getattr(request.state, "api_key", None) or matching_key(key, runtime_of(request).keys)
    if matched is None:
        raise HTTPException(401, f"missing or unknown API key: send it in the {HEADER} header",
                            headers={"WWW-Authenticate": HEADER})
    return matched


RuntimeDep = Annotated[Runtime, Depends(runtime_of)]
KeyDep = Annotated[ApiKey, Depends(api_key)]
