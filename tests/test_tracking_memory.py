"""What the tracking phase of ``fishtrack track`` holds while it runs (issue 15: the level of
its resident memory, docs/benchmarks.md "Seventh step").

* the background's calibration frames (16 full frames: ~20 MB on a 1280 x 960 plate) are
  needed only to make the arenas' models; a streamed run empties them before the first chunk,
  and the tracks are the same as with them kept.
"""

from __future__ import annotations

import gc

import numpy as np
import pytest

from fishtrack.config import load_config
from fishtrack.io.video import open_video
from fishtrack.pipeline import find_arenas, track_to_folder
from fishtrack.synth import SimSpec, simulate
from fishtrack.tracking import Background
from fishtrack.tracking.tracker import track_video
from fishtrack.trial import TrialFolder

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def plate(tmp_path_factory):
    root = tmp_path_factory.mktemp("plate")
    return simulate(SimSpec(name="plate", layout="wells", rows=1, cols=2, duration_s=1, fps=100,
                            seed=31, noise_sd=2.0), root / "sim")


def _calib_frames_alive() -> int:
    """Calibration frames held by every live Background."""
    return sum(len(o.calib) for o in gc.get_objects() if isinstance(o, Background))


def test_streamed_run_drops_the_calibration_frames_while_tracking(plate, tmp_path):
    seen: list[int] = []

    def progress(done: int, total: int) -> None:
        seen.append(_calib_frames_alive())

    cfg = load_config(plate.out_dir / "config.yaml")
    cfg = cfg.model_copy(update={"video": cfg.video.model_copy(update={"chunk_size": 16})})
    track_to_folder(plate.video_path, cfg, tmp_path / "out", stream=True, progress=progress)
    assert len(seen) >= 3  # several chunks
    assert seen == [0] * len(seen)
    assert len(TrialFolder(tmp_path / "out").tracks(columns=["frame"])) > 0


def test_released_calibration_frames_give_the_same_tracks(plate):
    cfg = load_config(plate.out_dir / "config.yaml")
    runs = []
    for release in (False, True):
        with open_video(plate.video_path) as src:
            arenas, bg = find_arenas(src, cfg)
            assert len(bg.calib) >= 3
            res = track_video(src, arenas, cfg.tracking, fish_per_arena=cfg.arenas.fish_per_arena,
                              layout=cfg.arenas.layout, background=bg, release_calib=release)
        runs.append(res)
        assert (len(bg.calib) == 0) == release
        assert (len(res.background.calib) == 0) == release
    a, b = (r.tracks for r in runs)
    assert len(a) > 0 and a.equals(b)
    assert np.array_equal(runs[0].background.median, runs[1].background.median)
