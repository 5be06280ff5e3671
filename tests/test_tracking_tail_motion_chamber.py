"""The tracker's ``tail_motion`` in a chamber with several larvae (issue 11): measured per larva
on its own blob's patches (other blobs' pixels set to 0), where it was NaN before; still larvae
stay 100 % passive (the gate's tail test does not take their jitter for bouts)."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from fishtrack.behaviour import classify
from fishtrack.config import parse_config
from fishtrack.pipeline import OUTPUT_COLUMNS, track_to_folder
from fishtrack.synth import simulate
from fishtrack.synth.spec import SimSpec

pytestmark = pytest.mark.timeout(300)


def test_tail_motion_is_measured_per_larva_in_a_chamber_and_still_larvae_stay_passive(tmp_path):
    # two still larvae (43 px, 200 fps, camera noise sd 10, H.264): the traced tails jitter
    spec = SimSpec(name="ch", layout="chamber", fish_per_arena=2, fish_length_px=43.0, fps=200.0,
                   duration_s=6.0, seed=202, noise_sd=10.1, contrast=0.42, codec="h264", crf=23,
                   groups="all_control", effect=0.0, still_arenas=["A1"])
    sim = simulate(spec, tmp_path)
    tr = track_to_folder(sim.video_path, sim.config_path, tmp_path / "tracked")
    t = tr.tracks
    assert sorted(t["fish"].astype(str).unique()) == ["A1-1", "A1-2"]
    seen = t["detected"].astype(bool) & ~t["id_uncertain"].astype(bool)
    assert np.isfinite(t.loc[seen, "tail_motion"]).mean() > 0.9
    assert (t["state"] == "passive").all() and len(tr.bouts) == 0
    # the same tracks without the gate: the jitter is scored as bouts (what the gate is for)
    cfg = parse_config(yaml.safe_load(open(sim.config_path)), "config")
    raw = t.drop(columns=[c for c in OUTPUT_COLUMNS if c in t.columns] + ["motion_energy"])
    assert len(classify(raw, cfg.behaviour, cfg.protocol).bouts) > 0
