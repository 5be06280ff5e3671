"""The tracker's ``tail_motion`` in a chamber with several larvae (issue 11): measured per larva
on its own blob's patches (other blobs' pixels set to 0), where it was NaN before."""

from __future__ import annotations

import numpy as np
import pytest
from fishtrack.pipeline import track_to_folder
from fishtrack.synth import simulate
from fishtrack.synth.spec import SimSpec

pytestmark = pytest.mark.timeout(300)


def test_tail_motion_is_measured_per_larva_in_a_chamber(tmp_path):
    # two bouting larvae (41 px, 400 fps, camera noise sd 9.9, H.264) sharing one chamber
    spec = SimSpec(name="ch", layout="chamber", fish_per_arena=2, fish_length_px=41.0, fps=400.0,
                   duration_s=3.0, seed=101, noise_sd=9.9, contrast=0.4, codec="h264", crf=23,
                   groups="all_control", effect=0.0)
    sim = simulate(spec, tmp_path)
    tr = track_to_folder(sim.video_path, sim.config_path, tmp_path / "tracked")
    t = tr.tracks
    assert sorted(t["fish"].astype(str).unique()) == ["A1-1", "A1-2"]
    seen = t["detected"].astype(bool) & ~t["id_uncertain"].astype(bool)
    assert seen.mean() > 0.5
    assert np.isfinite(t.loc[seen, "tail_motion"]).mean() > 0.5  # 0 before
    # the tail moves in the true bouts: its motion there is above that of the quiet frames
    truth = sim.truth.astype({"fish": str}).set_index(["fish", "frame"])["in_bout"]
    key = list(zip(t["fish"].astype(str), t["frame"], strict=True))
    in_bout = truth.reindex(key).fillna(False).to_numpy(bool)
    tm = t["tail_motion"].to_numpy(float)
    assert np.nanmedian(tm[in_bout & seen]) > 2 * np.nanmedian(tm[~in_bout & seen])
