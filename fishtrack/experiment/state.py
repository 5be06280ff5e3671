"""``OUT/experiment.json``: the manifest, its root and the trial names of a run, and the last
run's outcome per trial."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from fishtrack.config import Config, dump_config
from fishtrack.experiment.manifest import Manifest
from fishtrack.io.tables import write_bytes, write_text

STATE_FILE = "experiment.json"


def write_inputs(out: Path, man: Manifest, cfg: Config, names: dict[str, str]) -> None:
    write_bytes(out / "manifest.csv", man.csv_bytes())
    write_text(out / "config.yaml", dump_config(cfg))
    state = read_state(out)
    state.update(
        {
            "manifest": str(man.path.resolve()),
            "manifest_root": str(Path(os.path.abspath(man.root))),
            "manifest_sheet": man.sheet,
            "trials": {names[v]: v for v in man.videos},
            "updated_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    )
    write_text(out / STATE_FILE, json.dumps(state, indent=2) + "\n")


def update_state(out: Path, trials: pd.DataFrame) -> None:
    state = read_state(out)
    state["last_run"] = trials.to_dict(orient="records")
    write_text(out / STATE_FILE, json.dumps(state, indent=2, default=str) + "\n")


def read_state(out: Path) -> dict:
    p = out / STATE_FILE
    if not p.exists():
        return {}
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
