"""Talks to Label Studio's REST API with httpx alone (its SDK pulls in opencv and more): projects, tasks, reviewers.

Facts of Label Studio 1.23 this client relies on:

* Requests authenticate with ``Authorization: Token <key>`` (the "legacy" token, which the
  organisation must allow: :class:`qa.studio.LocalLabelStudio` turns it on before the first start).
* ``GET /api/projects?title=`` matches titles that *contain* the text: exact matches are picked here.
* ``POST /api/projects/<id>/import?return_task_ids=true`` creates the tasks with their
  ``predictions`` in one request and returns their ids in the order given. It does not refuse a
  prediction whose ``from_name`` is not in the label config (it was stored as is): check results
  before importing them.
* ``GET /api/tasks?project=<id>&fields=all`` pages tasks with their annotations and predictions;
  an annotation's ``completed_by`` is the id of the user whose token created it.
* A file is served at ``/data/local-files/?d=<path>`` only to a logged-in user, only when a
  local-files storage of a project they can see covers its folder (otherwise 404); the storage is
  never synced here (a sync would import every file as a task).
* Users have no API for their tokens: a reviewer signs up through the organisation's invite link
  (open signup is off) or logs in, and reads its own token with that session.
* Deleting tasks goes through the Data Manager action ``delete_tasks`` (one request for many).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from qa.studio import StudioConnection

#: Tasks per import request (Label Studio's own import batch is 500).
IMPORT_BATCH = 500


class StudioApiError(RuntimeError):
    """Label Studio refused a request, or did not answer; names the method, URL, status and the answer's start."""

    def __init__(self, method: str, url: str, status: int | None, body: str) -> None:
        answer = f"HTTP {status}" if status is not None else "no answer"
        super().__init__(f"Label Studio: {method} {url} -> {answer}: {body.strip()[:300]}")
        self.method, self.url, self.status = method, url, status


class StudioClient:
    """One Label Studio, as the user whose token ``connection`` holds."""

    def __init__(self, connection: StudioConnection, timeout_s: float = 60.0) -> None:
        self.connection = connection
        self.url = connection.url.rstrip("/")
        self.timeout_s = timeout_s
        self._http = httpx.Client(base_url=self.url, timeout=timeout_s,
                                  headers={"Authorization": f"Token {connection.token}"})

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> StudioClient:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def _call(self, method: str, path: str, *, client: httpx.Client | None = None, redirect_ok: bool = False,
              **kwargs: Any) -> httpx.Response:
        try:
            response = (client or self._http).request(method, path, **kwargs)
        except httpx.TransportError as error:
            raise StudioApiError(method, self.url + path, None, f"{type(error).__name__}: {error}") from error
        if response.status_code >= 400 or (response.is_redirect and not redirect_ok):
            raise StudioApiError(method, str(response.request.url), response.status_code, response.text)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._call(method, path, **kwargs).json()

    def whoami(self) -> dict[str, Any]:
        """The user this client acts as (``id``, ``email``)."""
        user: dict[str, Any] = self._json("GET", "/api/current-user/whoami")
        return user

    def fetch(self, path: str) -> bytes:
        """The bytes Label Studio serves at ``path`` (e.g. a task's ``/data/local-files/?d=...`` URL), as this user."""
        return self._call("GET", path).content

    # -- projects -----------------------------------------------------------------------------------------

    def projects(self, title: str | None = None) -> list[dict[str, Any]]:
        """All projects (those whose title contains ``title``, when given)."""
        params: dict[str, Any] = {"page_size": 100} | ({"title": title} if title else {})
        found: list[dict[str, Any]] = []
        page = 1
        while True:
            answer = self._json("GET", "/api/projects", params=params | {"page": page})
            found.extend(answer["results"])
            if not answer.get("next"):
                return found
            page += 1

    def ensure_project(self, title: str, label_config: str) -> int:
        """The id of the project titled ``title`` (the oldest, if several), created or given ``label_config``."""
        same = sorted((p for p in self.projects(title) if p["title"] == title), key=lambda p: int(p["id"]))
        if not same:
            created = self._json("POST", "/api/projects", json={"title": title, "label_config": label_config})
            return int(created["id"])
        project = same[0]
        if project.get("label_config") != label_config:
            self._call("PATCH", f"/api/projects/{project['id']}", json={"label_config": label_config})
        return int(project["id"])

    def show_predictions_of(self, project_id: int, model_version: str) -> None:
        """Pre-fill tasks in the labelling queue with predictions of ``model_version``: the queue shows only the
        project's own ``model_version`` (set after an import: Label Studio refuses a version no task has)."""
        self._call("PATCH", f"/api/projects/{project_id}", json={"model_version": model_version,
                                                                  "show_collab_predictions": True})

    def delete_project(self, project_id: int) -> None:
        """Delete the project with its tasks, annotations and storages."""
        self._call("DELETE", f"/api/projects/{project_id}/")

    def ensure_local_storage(self, project_id: int, path: Path) -> int:
        """The id of the project's local-files storage for folder ``path``, created when missing (never synced).

        ``path`` must be a folder strictly below Label Studio's media root; Label Studio serves the
        files below it to the project's users.
        """
        folder = os.path.normpath(Path(path).resolve())
        for storage in self._json("GET", "/api/storages/localfiles", params={"project": project_id}):
            if os.path.normpath(storage.get("path") or "") == folder:
                return int(storage["id"])
        created = self._json("POST", "/api/storages/localfiles", json={
            "project": project_id, "path": folder, "title": "voiceloop media", "use_blob_urls": False})
        return int(created["id"])

    # -- tasks ----------------------------------------------------------------------------------------------

    def import_tasks(self, project_id: int, tasks: Sequence[Mapping[str, Any]]) -> list[int]:
        """Create ``tasks``; their ids, in the order given.

        A task is ``{"data": {...}, "predictions": [{"model_version": ..., "score": ..., "result": [...]}]}``
        (predictions optional).
        """
        ids: list[int] = []
        for start in range(0, len(tasks), IMPORT_BATCH):
            batch = [dict(task) for task in tasks[start:start + IMPORT_BATCH]]
            answer = self._json("POST", f"/api/projects/{project_id}/import", params={"return_task_ids": "true"},
                                json=batch)
            created = [int(i) for i in answer.get("task_ids", [])]
            if len(created) != len(batch):
                raise StudioApiError("POST", f"/api/projects/{project_id}/import", 201,
                                     f"{len(batch)} tasks sent, {len(created)} task ids returned")
            ids.extend(created)
        return ids

    def _task_pages(self, project_id: int, page_size: int) -> Iterator[dict[str, Any]]:
        page, seen = 1, 0
        while True:
            answer = self._json("GET", "/api/tasks", params={"project": project_id, "page": page,
                                                               "page_size": page_size, "fields": "all"})
            yield from answer["tasks"]
            seen += len(answer["tasks"])
            if not answer["tasks"] or seen >= int(answer["total"]):
                return
            page += 1

    def tasks(self, project_id: int, page_size: int = 200) -> list[dict[str, Any]]:
        """The project's tasks in id order, each with ``data``, ``annotations`` and ``predictions``."""
        return sorted(self._task_pages(project_id, page_size), key=lambda task: int(task["id"]))

    def delete_tasks(self, project_id: int, task_ids: Sequence[int]) -> int:
        """Delete these tasks of the project with their annotations; how many Label Studio deleted."""
        if not task_ids:
            return 0
        answer = self._json("POST", "/api/dm/actions", params={"id": "delete_tasks", "project": project_id},
                            json={"selectedItems": {"all": False, "included": [int(i) for i in task_ids]}})
        return int(answer.get("processed_items", 0))

    def annotate(self, task_id: int, result: list[dict[str, Any]],
                 token_of_reviewer: str | None = None) -> dict[str, Any]:
        """Create an annotation of the task as the user whose token is given (this client's user by default)."""
        headers = {"Authorization": f"Token {token_of_reviewer}"} if token_of_reviewer else None
        created: dict[str, Any] = self._json("POST", f"/api/tasks/{task_id}/annotations/", json={"result": result},
                                             headers=headers)
        return created

    # -- reviewers --------------------------------------------------------------------------------------------

    def reviewer_password(self, email: str) -> str:
        """The password :meth:`ensure_user` gives ``email`` when none is given: derived from this client's token."""
        digest = hmac.new(self.connection.token.encode(), email.lower().encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def ensure_user(self, email: str, password: str | None = None) -> StudioConnection:
        """A connection as the reviewer ``email`` (an address, e.g. ``reviewer-1@localhost``), created when missing.

        The reviewer logs in (or, the first time, signs up through the organisation's invite link)
        with ``password`` (default: :meth:`reviewer_password`) and reads its own API token.
        """
        secret = password or self.reviewer_password(email)
        with httpx.Client(base_url=self.url, timeout=self.timeout_s) as session:
            if not self._form(session, "/user/login/", {"email": email, "password": secret}):
                invite = self._json("GET", "/api/invite")["token"]
                if not self._form(session, f"/user/signup/?token={invite}", {"email": email, "password": secret}):
                    raise StudioApiError("POST", f"{self.url}/user/signup/", 200,
                                         f"neither login nor signup worked for {email}: it exists with another "
                                         "password, or the address or password was refused")
            token = self._call("GET", "/api/current-user/token", client=session).json()["token"]
        return StudioConnection(self.connection.url, str(token))

    def _form(self, session: httpx.Client, path: str, fields: dict[str, str]) -> bool:
        """Post a Django form (CSRF cookie first); True when it redirects, i.e. it was accepted."""
        self._call("GET", path, client=session)
        csrf = session.cookies.get("csrftoken") or ""
        response = self._call("POST", path, client=session, redirect_ok=True,
                              data=fields | {"csrfmiddlewaretoken": csrf})
        return response.is_redirect
