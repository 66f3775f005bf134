"""The champion bundle: everything serving needs, in one folder, without MLflow.

    HOME/models/<version>/
        manifest.json            version, run, dates, files with their SHA-256
        feature_space.json       feature names in model order and categorical levels
        registry.json            the registry entries of those features, as trained (a
                                 feature generated from the event vocabulary with its
                                 family, event and window, re-registered on load)
        metrics.json             the run's validation report
        reference.json           training distribution of each feature (drift checks)
        churn.lgb.txt            LightGBM model (text format)
        churn.calibrator.json    calibrator (plain numbers)
        expansion.lgb.txt, expansion.calibrator.json
        hazard.lgb.txt, hazard.json   when the churn month is modelled (``training.hazard``);
                                 bundles written before it load with ``hazard = None``
        revenue.json             what churn and expansion did to ARR (``training.forecast``),
                                 for expected expansion ARR and the GRR/NRR forecast
        renewal.lgb.txt, renewal.json   the renewal-outcome model (``training.renewal``):
                                 risk until the next renewal, and the year that lifetime
                                 value reads; bundles without it load with ``renewal = None``

Loading re-hashes every file and compares the feature list with the registry of the code that
loads it; any difference is refused with a message that names it, because a model scoring
features it was not trained on gives confident nonsense.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from churnlens.features.registry import (
    REGISTRY,
    generated_record,
    load_all,
    register_generated,
)
from churnlens.training.calibration import Calibrator
from churnlens.training.forecast import RevenueModel
from churnlens.training.hazard import HazardModel, hazard_inputs
from churnlens.training.matrix import FeatureSpace
from churnlens.training.renewal import RenewalModel
from churnlens.training.renewal import inputs as renewal_inputs

TARGETS = ("churn", "expansion")
LABEL_OF = {"churn": "churned", "expansion": "expanded"}
MANIFEST = "manifest.json"
HAZARD_MODEL, HAZARD_INFO = "hazard.lgb.txt", "hazard.json"
REVENUE = "revenue.json"
RENEWAL_MODEL, RENEWAL_INFO = "renewal.lgb.txt", "renewal.json"
FORMAT = 1


NEW_ACCOUNT_DAYS = 90
"""Tenure below which an account is new: less than one default horizon of history."""
COLD_MODEL, COLD_CALIBRATOR, COLD_INFO = ("cold_start.lgb.txt", "cold_start.calibrator.json",
                                          "cold_start.json")


class BundleError(RuntimeError):
    """A bundle that cannot be trusted: missing, tampered or built for other features."""


@dataclass(frozen=True)
class TargetModel:
    booster: lgb.Booster
    calibrator: Calibrator

    def raw(self, x: pd.DataFrame | np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.predict(x), dtype=float)

    def probability(self, x: pd.DataFrame | np.ndarray) -> np.ndarray:
        return np.clip(self.calibrator(self.raw(x)), 0.0, 1.0)


@dataclass(frozen=True)
class ColdStart:
    """The churn model for new accounts (``training.coldstart``)."""

    model: TargetModel
    space: FeatureSpace
    """The onboarding features it reads, a subset of the bundle's, in the same order."""
    new_account_days: int = NEW_ACCOUNT_DAYS

    def columns(self, features: tuple[str, ...]) -> list[int]:
        """Positions of its features in the full model's input."""
        return [features.index(name) for name in self.space.features]


@dataclass(frozen=True)
class Bundle:
    path: Path
    manifest: dict[str, Any]
    space: FeatureSpace
    models: dict[str, TargetModel]
    metrics: dict[str, Any]
    reference: dict[str, Any] | None = None
    """Training distribution of each feature (``training.drift``), for drift checks."""
    hazard: HazardModel | None = None
    """When inside the horizon churn falls (``.curve(space.matrix(rows))``); None in bundles
    written before hazard models, or trained on snapshots without ``churn_day``."""
    revenue: RevenueModel | None = None
    """What each outcome did to ARR; None in older bundles and without MRR."""
    cold_start: ColdStart | None = None
    """The churn model of new accounts; None in older bundles or without enough of them."""
    renewal: RenewalModel | None = None
    """P(lost by a date beyond the horizon | kept through it): renewal risk and a year's
    survival; None in older bundles or when the history had too few outcomes a year out."""

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    def score(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """Calibrated probability of each target for snapshot rows."""
        x = self.space.matrix(frame)
        return {target: model.probability(x) for target, model in self.models.items()}


def registry_entries(features: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Each feature's declaration as trained; a generated one also with what re-creates it
    (``generated``: its family, event type, slug and window)."""
    load_all()
    entries: dict[str, dict[str, Any]] = {}
    for name in features:
        spec = REGISTRY[name]
        entries[name] = {"pillar": spec.pillar, "kind": spec.kind, "unit": spec.unit,
                         "description": spec.description, "sentence": spec.sentence,
                         "higher_is_riskier": spec.higher_is_riskier}
        record = generated_record(name)
        if record is not None:
            entries[name]["generated"] = record
    return entries


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def manifest_digest(folder: Path) -> str:
    """SHA-256 of a bundle's manifest: the one number that vouches for every file of the bundle
    (the manifest holds theirs), kept in MLflow's registry apart from the artifact store."""
    return _sha256(folder / MANIFEST)


def write_bundle(folder: Path, *, version: str, space: FeatureSpace,
                 models: dict[str, TargetModel], metrics: dict[str, Any],
                 info: dict[str, Any], reference: dict[str, Any] | None = None,
                 hazard: HazardModel | None = None, revenue: RevenueModel | None = None,
                 cold_start: ColdStart | None = None,
                 renewal: RenewalModel | None = None) -> Path:
    """Write the bundle to a staging folder, then rename it into place (never half-written)."""
    staging = folder.with_name(folder.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    files: dict[str, str] = {}

    def put(name: str, text: str) -> None:
        (staging / name).write_text(text)

    put("feature_space.json", json.dumps(space.to_json(), indent=2))
    put("registry.json", json.dumps(registry_entries(space.features), indent=2))
    put("metrics.json", json.dumps(metrics, indent=2, default=str))
    if reference is not None:
        put("reference.json", json.dumps(reference))
    for target, model in models.items():
        put(f"{target}.lgb.txt", model.booster.model_to_string())
        put(f"{target}.calibrator.json", json.dumps(model.calibrator.to_json(), indent=2))
    if hazard is not None:
        put(HAZARD_MODEL, hazard.booster.model_to_string())
        put(HAZARD_INFO, json.dumps(hazard.to_json(), indent=2))
    if revenue is not None:
        put(REVENUE, json.dumps(revenue.to_json()))
    if renewal is not None:
        put(RENEWAL_MODEL, renewal.booster.model_to_string())
        put(RENEWAL_INFO, json.dumps(renewal.to_json(), indent=2))
    if cold_start is not None:
        put(COLD_MODEL, cold_start.model.booster.model_to_string())
        put(COLD_CALIBRATOR, json.dumps(cold_start.model.calibrator.to_json(), indent=2))
        put(COLD_INFO, json.dumps({**cold_start.space.to_json(),
                                   "new_account_days": cold_start.new_account_days}, indent=2))
    for path in sorted(staging.iterdir()):
        files[path.name] = _sha256(path)
    manifest = {"format": FORMAT, "version": version, "targets": list(models),
                "features": list(space.features), **info, "files": files}
    put(MANIFEST, json.dumps(manifest, indent=2, default=str))
    if folder.exists():  # moved aside, not deleted first: a crash never leaves no bundle there
        retired = folder.with_name(f".{folder.name}.retired-{os.getpid()}")
        shutil.rmtree(retired, ignore_errors=True)
        os.replace(folder, retired)
        os.replace(staging, folder)
        shutil.rmtree(retired)
    else:
        os.replace(staging, folder)
    return folder


def load_bundle(folder: Path) -> Bundle:
    """Load and verify a bundle; raise :class:`BundleError` saying what is wrong."""
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise BundleError(f"{folder} is not a model bundle: {MANIFEST} is missing")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as exc:
        raise BundleError(f"{manifest_path} is not valid JSON: {exc}") from exc
    if manifest.get("format") != FORMAT:
        raise BundleError(f"{folder}: bundle format {manifest.get('format')!r}, this churnlens "
                          f"reads format {FORMAT}")
    files: dict[str, str] = manifest.get("files", {})
    for name, expected in files.items():
        path = folder / name
        if not path.is_file():
            raise BundleError(f"{folder}: {name} is listed in the manifest but missing")
        actual = _sha256(path)
        if actual != expected:
            raise BundleError(f"{folder}: {name} does not match its checksum (expected "
                              f"{expected[:12]}..., found {actual[:12]}...); the bundle was "
                              "changed after export. Re-export it with `churnlens promote`.")
    for target in manifest.get("targets", []):
        for name in (f"{target}.lgb.txt", f"{target}.calibrator.json"):
            if name not in files:
                raise BundleError(f"{folder}: {name} is not covered by the manifest")
    space = FeatureSpace.from_json(json.loads((folder / "feature_space.json").read_text()))
    _check_registry(folder, space, json.loads((folder / "registry.json").read_text()))
    if list(space.features) != list(manifest["features"]):
        raise BundleError(f"{folder}: feature_space.json and the manifest list different "
                          "features")
    models = {}
    for target in manifest["targets"]:
        booster = lgb.Booster(model_str=(folder / f"{target}.lgb.txt").read_text())
        if booster.feature_name() != list(space.features):
            raise BundleError(f"{folder}: the {target} model was trained on other features "
                              "than the bundle lists")
        calibrator = Calibrator.from_json(
            json.loads((folder / f"{target}.calibrator.json").read_text()))
        models[target] = TargetModel(booster=booster, calibrator=calibrator)
    metrics = json.loads((folder / "metrics.json").read_text())
    reference = (json.loads((folder / "reference.json").read_text())
                 if "reference.json" in files else None)
    return Bundle(path=folder, manifest=manifest, space=space, models=models, metrics=metrics,
                  reference=reference, hazard=_load_hazard(folder, files, space),
                  revenue=RevenueModel.from_json(json.loads((folder / REVENUE).read_text()))
                  if REVENUE in files else None,
                  cold_start=_load_cold_start(folder, files, space),
                  renewal=_load_renewal(folder, files, space))


def _load_renewal(folder: Path, files: dict[str, str], space: FeatureSpace
                  ) -> RenewalModel | None:
    """The bundle's renewal-outcome model, or None when it has none (older bundles)."""
    if RENEWAL_MODEL not in files:
        return None
    if RENEWAL_INFO not in files:
        raise BundleError(f"{folder}: {RENEWAL_MODEL} is listed without {RENEWAL_INFO}")
    booster = lgb.Booster(model_str=(folder / RENEWAL_MODEL).read_text())
    if booster.feature_name() != renewal_inputs(space.features):
        raise BundleError(f"{folder}: the renewal model was trained on other features than "
                          "the bundle lists")
    return RenewalModel.from_json(booster, json.loads((folder / RENEWAL_INFO).read_text()))


def _load_cold_start(folder: Path, files: dict[str, str], space: FeatureSpace
                     ) -> ColdStart | None:
    """The bundle's cold-start model, or None when it has none."""
    if COLD_MODEL not in files:
        return None
    if COLD_INFO not in files or COLD_CALIBRATOR not in files:
        raise BundleError(f"{folder}: {COLD_MODEL} is listed without {COLD_INFO} and "
                          f"{COLD_CALIBRATOR}")
    info = json.loads((folder / COLD_INFO).read_text())
    sub = FeatureSpace.from_json(info)
    booster = lgb.Booster(model_str=(folder / COLD_MODEL).read_text())
    if booster.feature_name() != list(sub.features) or not set(sub.features) <= set(
            space.features):
        raise BundleError(f"{folder}: the cold-start model was trained on other features than "
                          "the bundle lists")
    calibrator = Calibrator.from_json(json.loads((folder / COLD_CALIBRATOR).read_text()))
    return ColdStart(model=TargetModel(booster=booster, calibrator=calibrator), space=sub,
                     new_account_days=int(info["new_account_days"]))


def _load_hazard(folder: Path, files: dict[str, str], space: FeatureSpace) -> HazardModel | None:
    """The bundle's hazard model, or None when it has none (older bundles)."""
    if HAZARD_MODEL not in files:
        return None
    if HAZARD_INFO not in files:
        raise BundleError(f"{folder}: {HAZARD_MODEL} is listed without {HAZARD_INFO}")
    booster = lgb.Booster(model_str=(folder / HAZARD_MODEL).read_text())
    if booster.feature_name() != hazard_inputs(space.features):
        raise BundleError(f"{folder}: the hazard model was trained on other features than the "
                          "bundle lists")
    info = json.loads((folder / HAZARD_INFO).read_text())
    return HazardModel(booster=booster, periods=int(info["periods"]),
                       period_days=int(info["period_days"]),
                       horizon_days=int(info["horizon_days"]))


def _check_registry(folder: Path, space: FeatureSpace, trained: dict[str, Any]) -> None:
    load_all()
    # features generated from the training history's event vocabulary are defined by the
    # bundle's records of them, through the families of this code
    generated = {n: trained[n]["generated"] for n in space.features
                 if isinstance(trained.get(n), dict) and "generated" in trained[n]}
    try:
        register_generated(generated)
    except (KeyError, ValueError) as error:
        raise BundleError(f"{folder}: cannot re-create the model's generated features: "
                          f"{error}; retrain") from None
    current = registry_entries(tuple(n for n in space.features if n in REGISTRY))
    unknown = [n for n in space.features if n not in REGISTRY]
    if unknown:
        raise BundleError(f"{folder}: the model uses features this churnlens does not define: "
                          f"{unknown[:5]}")
    changed = [n for n in space.features
               if trained.get(n, {}).get("kind") != current[n]["kind"]
               or trained.get(n, {}).get("pillar") != current[n]["pillar"]
               or trained.get(n, {}).get("unit") != current[n]["unit"]]
    if changed:
        raise BundleError(f"{folder}: these features are defined differently now than when the "
                          f"model was trained: {changed[:5]}; retrain")


def latest_bundle(models_root: Path) -> Path | None:
    """The bundle HOME/models/champion points at (a small text file naming the version)."""
    pointer = models_root / "CHAMPION"
    if not pointer.is_file():
        return None
    return models_root / pointer.read_text().strip()


def point_champion(models_root: Path, version: str) -> None:
    tmp = models_root / "CHAMPION.tmp"
    tmp.write_text(version + "\n")
    os.replace(tmp, models_root / "CHAMPION")
