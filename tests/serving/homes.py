"""A trained project folder for tests that serve it: trained once per test process, copied for
each module so that what one module's server does (keys, reloads) never reaches another."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from churnlens.serving.keys import SCOPES, KeyStore
from conftest import churnlens

_TRAINED: dict[str, Path] = {}


def trained_home(factory: pytest.TempPathFactory) -> Path:
    """A small company with features, a champion and its score table (built once)."""
    if "home" not in _TRAINED:
        home = factory.mktemp("trained") / "home"
        churnlens(home, "synth", "--accounts", "300", "--months", "16", "--seed", "9",
                  "--rollouts", "2")
        churnlens(home, "features")
        churnlens(home, "train")
        churnlens(home, "score", "--top", "0")
        _TRAINED["home"] = home
    return _TRAINED["home"]


def served_home(factory: pytest.TempPathFactory, name: str) -> tuple[Path, dict[str, str]]:
    """A copy of the trained home with one key of each scope: (home, scope -> key)."""
    home = factory.mktemp(name) / "home"
    shutil.copytree(trained_home(factory), home)
    store = KeyStore(home / "api_keys.json")
    return home, {scope: store.create(f"test-{scope}", scope)[1] for scope in SCOPES}
