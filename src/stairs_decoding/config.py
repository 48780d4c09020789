"""Hydra glue: where the repository (and its conf/, data/, models/) is, and the resolvers configs use."""
from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf


def repo_root() -> str:
    """$STAIRS_ROOT if set, else the checkout this package lives in (editable install), else the cwd."""
    env = os.environ.get("STAIRS_ROOT")
    if env:
        return str(Path(env).resolve())
    for parent in Path(__file__).resolve().parents:
        if (parent / "conf" / "config.yaml").is_file() and (parent / "src" / "stairs_decoding").is_dir():
            return str(parent)
    return os.getcwd()


def conf_dir() -> str:
    return str(Path(repo_root()) / "conf")


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("repo_root"):
        OmegaConf.register_new_resolver("repo_root", repo_root)


register_resolvers()
