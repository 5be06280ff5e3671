"""Each trial's worker computes the trial's statistics inputs (per-fish metrics, binned
passive fraction, the assay analyses' per-trial inputs) in the parallel phase and keeps them
in the trial folder (issue 15: out of the serial statistics after a run); the statistics use
them only while nothing they depend on changed, so the tables are those of a fresh
computation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from fixtures_experiment import fake_arenas, fake_trial, plate_experiment

from fishtrack.config import resolve_config
from fishtrack.experiment import compute_stats, run_experiment
from fishtrack.experiment.manifest import read_manifest
from fishtrack.experiment.trialstats import TABLES_DIR, tables_key
from fishtrack.io.tables import write_table

pytestmark = pytest.mark.timeout(120)

TABLES = ("per_fish.csv", "per_fish_bins.csv", "group_stats.csv", "sensitivity.csv",
          "onset_locked_fish.csv", "per_fish_wide.csv")


def _tables(out: Path) -> dict[str, bytes]:
    return {n: (out / n).read_bytes() for n in TABLES if (out / n).exists()}


def _open_loop(out: Path) -> pd.DataFrame:
    pf = pd.read_csv(out / "per_fish.csv")
    return pf[pf["phase"] == "open_loop"].set_index("fish_id")


def test_trials_keep_their_statistics_inputs_and_stale_ones_are_recomputed(tmp_path):
    e = plate_experiment(tmp_path / "in")
    out = tmp_path / "out"
    res = run_experiment(e["manifest"], e["config"], out, trial_fn=fake_trial,
                         arenas_fn=fake_arenas, report=False)
    assert res.ok, res.failures
    cfg = resolve_config(e["config"])
    man = read_manifest(out / "manifest.csv", root=tmp_path / "in")
    for trial, video in (("plate1", "videos/plate1.mp4"), ("plate2", "videos/plate2.mp4")):
        folder = out / "trials" / trial
        kept = json.loads((folder / TABLES_DIR / "key.json").read_text())
        rows = man.table[man.table["video"] == video]
        assert kept["key"] == tables_key(folder, trial, video, rows, cfg)  # kept by the worker
        assert {"per_fish", "bins", "sensitivity", "traces"} <= set(kept["tables"])
    ol = _open_loop(out)
    for fid, truth in e["truth"].items():  # the analytic truth of the fake trials
        assert ol.loc[fid, "passive_fraction"] == pytest.approx(truth, abs=1e-12)
    run_tables = _tables(out)
    assert set(run_tables) == set(TABLES)

    for trial in ("plate1", "plate2"):  # without the kept inputs: the same tables
        shutil.rmtree(out / "trials" / trial / TABLES_DIR)
    compute_stats(out, e["config"], report=False)
    assert _tables(out) == run_tables
    assert (out / "trials" / "plate1" / TABLES_DIR / "key.json").exists()  # kept again

    # a trial's tracks changed (plate1's A2 never passive): its inputs are computed again
    tracks_path = out / "trials" / "plate1" / "tracks.parquet"
    tracks = pd.read_parquet(tracks_path)
    tracks.loc[tracks["arena"].astype(str) == "A2", "state"] = "active"
    write_table(tracks, tracks_path)
    # and the manifest edited (plate2's A1 moved to the other group)
    table = pd.read_csv(out / "manifest.csv")
    table.loc[(table["video"] == "videos/plate2.mp4") & (table["arena"] == "A1"), "group"] = \
        "ketamine"
    table.to_csv(out / "manifest.csv", index=False)
    compute_stats(out, e["config"], report=False)
    ol = _open_loop(out)
    assert ol.loc["plate1:A2", "passive_fraction"] == 0.0
    assert e["truth"]["plate1:A2"] > 0.4
    assert ol.loc["plate2:A1", "group"] == "ketamine"
    assert ol.loc["plate1:A1", "passive_fraction"] == pytest.approx(e["truth"]["plate1:A1"],
                                                                    abs=1e-12)
