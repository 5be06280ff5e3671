"""A run's inputs, checked before any work starts: the manifest read and validated, and its
groups and conditions checked against the config (:func:`check_run_inputs`).

Light to import (pandas, the config; not the runner, tracking or statistics): ``fishtrack run``
checks its inputs with it before it starts its worker processes (h17j: a refused manifest
started two, and waited ~1 s for them), then starts at most one worker per trial.
"""

from __future__ import annotations

from pathlib import Path

from fishtrack.config import Config, resolve_config
from fishtrack.errors import ConfigError
from fishtrack.experiment.manifest import Manifest, quote_cell, read_manifest
from fishtrack.experiment.state import STATE_FILE, read_state
from fishtrack.stats.metrics import METRICS


def check_run_inputs(manifest: str | Path, config: Config | str | Path | dict | None,
                     out: str | Path, sheet: str | None = None) -> tuple[Manifest, Config]:
    """The run's manifest (:func:`read_run_manifest`) and config, checked
    (:func:`check_reference_group`); raises ``ManifestError`` / ``ConfigError`` naming the
    file and every problem."""
    cfg = resolve_config(config)
    man = read_run_manifest(Path(manifest), Path(out), sheet)
    check_reference_group(man, cfg)
    return man, cfg


def read_run_manifest(manifest: Path, out: Path, sheet: str | None) -> Manifest:
    """The manifest; ``OUT/manifest.csv`` of an earlier run keeps that run's root folder."""
    root = None
    if manifest.resolve() == (out / "manifest.csv").resolve() and (out / STATE_FILE).exists():
        root = read_state(out).get("manifest_root")
    return read_manifest(manifest, root=root, sheet=sheet)


def check_reference_group(man: Manifest, cfg: Config) -> None:
    """The config's reference group (and condition, in a within-fish design) is in the
    manifest, and its primary metric is one the statistics compare."""
    groups = sorted(set(man.table["group"]))
    if cfg.stats.reference_group not in groups:
        raise ConfigError(
            f"stats.reference_group: {quote_cell(cfg.stats.reference_group)} is not a group in "
            f"{man.path} (groups: {', '.join(quote_cell(g) for g in groups[:20])}); set "
            "stats.reference_group in the config"
        )
    if "condition" in man.table.columns:
        conds = [c for c in dict.fromkeys(man.table["condition"].astype(str).str.strip()) if c]
        ref = cfg.stats.reference_condition
        if len(conds) > 1 and ref not in conds:
            what = "is not set" if ref is None else f"{quote_cell(ref)} is not a condition"
            raise ConfigError(
                f"stats.reference_condition: {what}; {man.path} has conditions "
                f"{', '.join(quote_cell(c) for c in conds[:20])} (a within-fish design); set "
                "stats.reference_condition in the config"
            )
    if cfg.stats.primary.metric not in METRICS:
        raise ConfigError(
            f"stats.primary.metric: {quote_cell(cfg.stats.primary.metric)} is not a compared metric "
            f"(allowed: {', '.join(METRICS)})"
        )
