"""Version dataset folders with DVC: a cache and a remote, both configurable.

The datasets zone is its own DVC repository (``--no-scm``), so versioning works wherever
state lives (including test temp dirs), never touches the source checkout, and stays clear
of the outputs of the checkout's own ``dvc.yaml`` stages. Each dataset
version gets a ``.dvc`` file beside it and is pushed to the remote, so a fresh machine can
``dvc pull`` exactly what a model was trained on.
"""

from __future__ import annotations

import logging
from pathlib import Path

import yaml


class DvcVersioner:
    def __init__(self, root: Path, remote_url: str, cache_dir: Path) -> None:
        from dvc.repo import Repo

        logging.getLogger("dvc").setLevel(logging.WARNING)
        self.root = root
        if not (root / ".dvc").exists():
            Repo.init(str(root), no_scm=True)
        repo = Repo(str(root))
        with repo.config.edit() as config:
            config["cache"]["dir"] = str(cache_dir)
            config["core"]["remote"] = "store"
            config["remote"]["store"] = {"url": remote_url}
        self.repo = Repo(str(root))
        self.remote_url = remote_url

    def track(self, folder: Path) -> str:
        """Add (idempotently) and push ``folder``; return DVC's content hash for it."""
        dvc_file = folder.with_name(folder.name + ".dvc")
        if not dvc_file.exists():
            self.repo.add(str(folder))
        self.repo.push(targets=[str(dvc_file)])
        return str(yaml.safe_load(dvc_file.read_text())["outs"][0]["md5"])
