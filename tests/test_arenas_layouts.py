"""Well finding on simulated plates (fishtrack.synth.scenarios.layout_spec / run_layout_case):
the wells ``fishtrack track`` finds on the video's background against the simulator's truth."""

from __future__ import annotations

import numpy as np

from fishtrack.synth.scenarios import layout_spec, run_layout_case
from fishtrack.synth.spec import SimSpec
from fishtrack.synth.stress import draw_recording


def test_still_larva_in_a_well_does_not_hide_its_rim(tmp_path):
    """Spent stress seed 24438 (1 x 2 wells, dark-field, a still bright larva lying inside A2):
    the larva's edge is the first strong edge on ~17 of 90 rays of A2; the trimmed circle fit
    started from all rays was dragged 6 px off the rim (support 0.40) and the plate failed
    with "found 1 of 2 wells". Its layout, 1 s at 20 fps."""
    spec = draw_recording(24438).spec
    spec = SimSpec(**{**spec.model_dump(), "protocol": None, "fps": 20.0, "duration_s": 1.0})
    r = run_layout_case(spec, tmp_path)
    assert r["error"] == ""
    assert r["wells_found"] == r["wells_true"] == 2
    assert r["centre_err_max_px"] < 1.0
    assert r["radius_err_max_px"] < 1.0


def test_layout_suite_draws_what_it_says():
    """The layout suite's draws: unequal pitches, cut wells empty, faint rims, 1-96 wells."""
    specs = [layout_spec(s) for s in range(40)]
    n = [s.rows * s.cols for s in specs]
    assert min(n) >= 1 and max(n) <= 96
    assert any(abs(s.pitch_y_px / s.pitch_x_px - 1) > 0.1 for s in specs if s.rows > 1)
    assert min(s.rim_contrast for s in specs) < 0.15
    assert {s.shape for s in specs} == {"circle", "square"}
    assert {s.polarity for s in specs} == {"dark", "bright"}
    for s in specs:
        r = s.arena_size_px / 2
        cx = s.width / 2 + s.plate_shift_px[0] + (np.arange(s.cols) - (s.cols - 1) / 2) * s.pitch_x_px
        assert cx.min() >= 0.6 * r - 0.05 and cx.max() <= s.width - 1 - 0.6 * r + 0.05


def test_square_wells_cut_by_the_frame_edge(tmp_path):
    """2 x 3 square wells of 80 px at pitches 92 across and 104 down; the frame touches the
    left column and cuts 16 px off the right one (centres 0.58 radii inside the frame). On
    main a cut square had no right side, so no fit, and the plate was placed one column to
    the left: "found 4 of 6 wells ... 2 wells of the grid fitted to them would lie outside the
    image". A side cut off by the frame is now placed from the opposite side."""
    from fishtrack.synth.scenarios import _protocol

    spec = SimSpec(name="cut", layout="wells", rows=2, cols=3, shape="square", width=248,
                   height=200, arena_size_px=80, pitch_x_px=92, pitch_y_px=104,
                   plate_shift_px=(8.0, 0.0), fish_length_px=20, fps=20, duration_s=1.0,
                   protocol=_protocol(1.0), codec="ffv1", empty_arenas=["A3", "B3"], seed=3)
    r = run_layout_case(spec, tmp_path)
    assert r["error"] == ""
    assert r["cut"] == 2
    assert r["wells_found"] == r["wells_true"] == 6
    assert r["centre_err_max_px"] < 3.0
    assert r["radius_err_max_px"] < 2.0
