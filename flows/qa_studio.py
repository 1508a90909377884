"""Which Label Studio the QA review uses: an existing one by URL and token, or the project's own on 127.0.0.1.

The project's own (``voiceloop qa serve``) lives in ``<project_dir>/label-studio/`` (its data, log,
credentials) with its own virtual environment, and serves review audio from the store's labels zone
(its local-files document root). An existing Label Studio must see the same folder under
``qa.label_studio_files_root`` (e.g. a shared mount), since the audio is never uploaded into it.
"""

from __future__ import annotations

from pathlib import Path

from core.settings import Settings
from governance.store import GovernedStore
from qa.labels_zone import TASK_KIND
from qa.studio import LocalLabelStudio, StudioConnection, StudioError, local_file_url
from qa.studio_api import StudioClient


def local_studio(settings: Settings, files_root: Path) -> LocalLabelStudio:
    """The project's own Label Studio (not started here)."""
    folder = settings.root / "label-studio"
    venv = Path(settings.qa.label_studio_venv).expanduser() if settings.qa.label_studio_venv else folder / "venv"
    return LocalLabelStudio(folder=folder, port=settings.qa.label_studio_port, venv=venv, media_root=files_root)


def files_root(settings: Settings, store: GovernedStore) -> Path:
    """Label Studio's local-files document root: the configured one, else the labels zone itself."""
    configured = settings.qa.label_studio_files_root
    return Path(configured).expanduser().resolve() if configured else store.review_media_root().parent


def connection(settings: Settings, store: GovernedStore) -> StudioConnection:
    """How to reach the Label Studio in use; a clear error when it is the local one and it is not running."""
    if settings.qa.label_studio_url:
        if not settings.qa.label_studio_token:
            raise StudioError(f"qa.label_studio_url is {settings.qa.label_studio_url} but no API token is set: "
                              "set VOICELOOP__QA__LABEL_STUDIO_TOKEN to a Label Studio user's token")
        return StudioConnection(settings.qa.label_studio_url, settings.qa.label_studio_token)
    status = local_studio(settings, files_root(settings, store)).status()
    if not status.running:
        raise StudioError("the project's Label Studio is not running: start it with `voiceloop qa serve`, or set "
                          "qa.label_studio_url and VOICELOOP__QA__LABEL_STUDIO_TOKEN to use an existing one")
    return status.connection


def audio_url(settings: Settings, store: GovernedStore, media_path: str) -> str:
    """The task URL of review audio (``media_path`` relative to the store's review media folder)."""
    media = store.review_media_root() / media_path
    try:
        relative = media.relative_to(files_root(settings, store))
    except ValueError as error:
        raise StudioError(f"the review audio folder {media.parent} is not under Label Studio's files root "
                          f"{files_root(settings, store)}: set qa.label_studio_files_root to a folder holding it"
                          ) from error
    return local_file_url(relative.as_posix())


def delete_review_tasks(settings: Settings, store: GovernedStore, call_ids: list[str]) -> int:
    """Delete the calls' tasks (and with them their answers) from Label Studio; the number deleted.

    Part of erasure and consent withdrawal (``store`` acts for either), before the labels zone forgets
    where the tasks are: if Label Studio cannot be reached the run stops here with the reason, and
    running it again resumes.
    """
    records = store.read_labels(TASK_KIND, call_ids) if set(call_ids) & set(store.label_keys(TASK_KIND)) else {}
    if not records:
        return 0
    studio = connection(settings, store)
    by_project: dict[int, list[int]] = {}
    for cid, record in sorted(records.items()):
        if record["studio_url"].rstrip("/") != studio.url.rstrip("/"):
            raise StudioError(f"call {cid}'s review task lives in the Label Studio at {record['studio_url']}, not "
                              f"the one configured ({studio.url}): point qa.label_studio_url at it and run again")
        by_project.setdefault(record["project_id"], []).append(record["task_id"])
    with StudioClient(studio) as client:
        deleted = sum(client.delete_tasks(project, tasks) for project, tasks in sorted(by_project.items()))
    store.audit.append(store.actor, "qa.delete-tasks", zone="labels", call_ids=sorted(records),
                       detail={"studio_url": studio.url, "tasks": deleted})
    return deleted
