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
    # both larvae are measured, and the values are pixel changes (grey levels of fishness)
    per = t.loc[seen].groupby(t["fish"].astype(str))["tail_motion"].apply(lambda v: np.isfinite(v).mean())
    assert (per > 0.1).all()  # 0 before (23-99 % measured)
    assert (t["tail_motion"].dropna() >= 0).all()
