"""Issue 12: heads and tails on larvae the tracker has not seen.

One short simulated recording per row of the issue's table (``fishtrack.synth.scenarios.
ISSUE_CASES``: larvae drawn unlike the simulator's default look), tracked with the default
settings (fish length and polarity estimated, arenas from the simulator) and scored against the
truth (``scenarios.score``), asserting the issue's goal for that row. The other rows are tested
elsewhere: the four round wells at unequal pitch in ``test_arenas.py``
(``test_four_round_wells_touching_the_frame_edges``), the wall reflection of the real 8-fish
recording in ``test_tracking_real.py`` (``test_eight_fish_tank``). The randomized suite's
reporting seeds are run by ``bench/bench_tracker_accuracy.py`` (``make bench``), never here.
"""

from __future__ import annotations

import numpy as np
import pytest

from fishtrack.synth.scenarios import goals, issue_spec, run_case, suite_spec
from fishtrack.tracking.midline import wrap

pytestmark = pytest.mark.timeout(240)


def _case(name: str, tmp_path, **overrides) -> dict:
    return run_case(issue_spec(name, **overrides), tmp_path, keep=True)


def _truth_joined(r: dict):
    m = r["truth"].merge(r["tracks"], on=["frame", "fish"], how="left", suffixes=("_t", ""))
    return m[m["detected"].astype("boolean").fillna(False).astype(bool)]


def _speck_case(seed: int, fish: str, tmp_path, duration_s: float = 0.5):
    """Suite seed ``seed`` (``duration_s`` of it) tracked: recall and head goals met, ``fish``'s traced
    tail in >= 99 % of its detected frames and correlated with the truth at the goal; returns
    the spec, the case's result and ``fish``'s rows joined with the truth."""
    spec = suite_spec(seed, duration_s=duration_s)
    r = run_case(spec, tmp_path, keep=True)
    g = goals(spec)
    assert r["recall"] >= g["recall"]
    assert r["head_rmse_px"] <= g["head_rmse_px"]
    m = _truth_joined(r)
    f = m[m.fish == fish]
    assert f.tail_angle.notna().mean() >= 0.99
    assert np.corrcoef(f.tail_angle, f.tail_angle_t)[0, 1] >= g["tail_r"]
    return spec, r, f


def test_head_embedded_larvae_120px_eyes_close_together(tmp_path):
    """4 head-embedded larvae pointing up, 120 px, eyes ~14 px apart touching a dark head,
    faint tail tip, H.264, 200 fps. Before: head on one eye (9.5 px off), tail r 0.00.
    Measured (seed 0, 1 s): head RMSE 0.97 px, r 0.999 (2 s, seeds 0-3: 0.93-1.15 px)."""
    r = _case("embedded_up_120px", tmp_path, duration_s=1.0)
    assert r["recall"] >= 0.995
    assert r["head_rmse_px"] <= 1.5  # the issue's goal, not scaled with the length
    assert r["tail_r"] >= 0.95
    assert r["tail_found"] >= 0.99


def test_sixteen_wells_faint_tail_tip_mjpg(tmp_path):
    """16-well plate, 40 px larvae, tail tip 45 grey levels from the background fading from
    0.4 lengths, MJPG. Before: the midline stopped short of the tip, r 0.33.
    Measured (seed 0): head RMSE ~0.3 px, r ~0.997."""
    r = _case("wells16_faint_tip_mjpg", tmp_path, duration_s=1.5)
    g = goals(issue_spec("wells16_faint_tip_mjpg"))
    assert r["recall"] >= g["recall"]
    assert r["head_rmse_px"] <= g["head_rmse_px"]
    assert r["tail_r"] >= 0.9
    # the tail is traced to its faint tip: the tracked tip lies near the true one
    m = _truth_joined(r)
    m = m[m.tail_angle.notna()]
    tip = np.hypot(m.tail_x_9 - m.tail_x_9_t, m.tail_y_9 - m.tail_y_9_t)
    assert float(tip.median()) <= 0.1 * 40


@pytest.fixture(scope="module")
def six_wells(tmp_path_factory):
    """Issue 12's 6-well row: H.264 CRF 26, 4 % flicker, noise sd 9, a thin tail fading to a
    tip 20 grey levels from the background and half a pixel wide, one empty well (seed 0)."""
    return _case("wells6_noisy_flicker", tmp_path_factory.mktemp("wells6"))


def test_six_wells_noisy_flicker_positions_and_empty_well(six_wells):
    """Positions, recall and the empty well of the 6-well row meet the issue's goals.
    Measured (seed 0): head RMSE 0.32 px, recall 100 %, no fish in the empty well B3."""
    r = six_wells
    g = goals(issue_spec("wells6_noisy_flicker"))
    assert r["recall"] >= g["recall"]
    assert r["head_rmse_px"] <= g["head_rmse_px"]
    assert r["false_fish"] == 0
    assert "B3" not in set(r["tracks"]["fish"])
    assert r["tail_found"] >= 0.99


@pytest.mark.xfail(strict=True, reason="issue 12's 6-well row is not met yet: tail-angle r "
                   "0.77 (seed 0) against the goal 0.8; the faint half-pixel tip is smeared away by "
                   "H.264 (FFV1: 0.987) and below the "
                   "noise (docs/tracking.md, Known limitations)")
def test_six_wells_noisy_flicker_tail_angle_goal(six_wells):
    """The issue's goal for the 6-well row: tail-angle r >= 0.8 (seed 0 measures 0.77;
    0.78 before the rigid anterior midline; the same scene as FFV1: 0.987; as MJPG, before: 0.983)."""
    assert six_wells["tail_r"] >= 0.8


def test_dark_field_bright_larvae(tmp_path):
    """4-well dark-field recording: bright larvae on a dim background, eyes merged with the
    head. Before: head RMSE 2.0 px, r 0.76. Measured (seed 0): head ~0.37 px, r ~0.99."""
    r = _case("darkfield_4wells", tmp_path)
    assert r["est_polarity"] == "bright"
    assert r["recall"] >= 0.995
    assert r["head_rmse_px"] <= 1.5
    assert r["tail_r"] >= 0.9


def test_larvae_without_distinct_eyes_head_at_the_disc_centre(tmp_path):
    """Larvae drawn with a dark head disc instead of two eyes: the head point is the centre of
    the widest dark part of the head (docs/tracking.md), which is the disc centre. Before: 3.7 px
    (0.11 lengths) behind it in every frame. Measured (seed 0): 0.31 px, no bias along the
    body."""
    r = _case("disc_head", tmp_path)
    assert r["recall"] >= 0.995
    assert r["head_rmse_px"] <= 1.5 * 34 / 40
    assert r["tail_r"] >= 0.9
    # no systematic offset along the body (the old tracker sat behind the head every frame)
    m = _truth_joined(r)
    along = (m.x - m.x_t) * np.cos(m.heading_t) + (m.y - m.y_t) * np.sin(m.heading_t)
    assert abs(float(along.mean())) <= 0.03 * 34


def test_seg_angle_columns_follow_the_midline(tmp_path):
    """seg_angle_i is the cumulative direction of segment i relative to the backward body
    axis, accumulated; the last one is the tip segment's angle, bent to the same side as the
    head->tip chord and further (dark-field recording, 1 s)."""
    r = _case("darkfield_4wells", tmp_path, duration_s=1.0)
    t = r["tracks"]
    t = t[t.tail_angle.notna()]
    n = sum(c.startswith("tail_x_") for c in t.columns)
    assert [c for c in t.columns if c.startswith("seg_angle_")] == [f"seg_angle_{i}" for i in range(1, n)]
    # the direction of every segment from the stored points
    back = t.heading.to_numpy() + np.pi
    for i in range(1, n):
        d = np.arctan2(t[f"tail_y_{i}"] - t[f"tail_y_{i - 1}"], t[f"tail_x_{i}"] - t[f"tail_x_{i - 1}"])
        assert np.allclose(wrap(t[f"seg_angle_{i}"].to_numpy() - (d - back)), 0, atol=1e-4)
    # a bent tail: the tip segment is bent further than the head->tip chord, same side
    bent = t[np.abs(t.tail_angle) > 0.2]
    assert len(bent) > 20
    assert (np.sign(bent[f"seg_angle_{n - 1}"]) == np.sign(bent.tail_angle)).mean() >= 0.95
    assert (np.abs(bent[f"seg_angle_{n - 1}"]) >= np.abs(bent.tail_angle)).mean() >= 0.9


@pytest.mark.parametrize("seed", [1, 3])
def test_random_suite_tuning_seeds(seed, tmp_path):
    """Two fixed seeds of the randomized morphology and imaging suite (tuning range; the
    reporting range is for bench/bench_tracker_accuracy.py only) meet every goal."""
    spec = suite_spec(seed)
    r = run_case(spec, tmp_path)
    g = goals(spec)
    assert r["recall"] >= g["recall"]
    assert r["head_rmse_px"] <= g["head_rmse_px"]
    assert r["tail_r"] >= g["tail_r"]
    assert r["false_fish"] == 0


def _assert_heads(spec, tmp_path, *, rmse_40: float, along: float) -> None:
    """Track ``spec``: every larva found, head RMSE at 40 px within ``rmse_40`` and the mean
    head offset along the true heading within ``along`` lengths."""
    r = run_case(spec, tmp_path, keep=True)
    assert r["recall"] >= 0.995
    assert r["head_rmse_40"] <= rmse_40
    m = _truth_joined(r)
    off = (m.x - m.x_t) * np.cos(m.heading_t) + (m.y - m.y_t) * np.sin(m.heading_t)
    assert abs(float(off.mean())) <= along * spec.fish_length_px


def test_small_blurred_disc_headed_larvae_head_at_the_disc_centre(tmp_path):
    """Tuning seed 517 of the suite (eleven dark disc-headed larvae in wells, H.264) drawn as
    the kind of held-out seed 14548: 21.2-px larvae with a large head disc, a dark swim
    bladder and 1.5 px of blur, noise sd 9, CRF 18 (1 s of it). Blurred, the snout measured at
    0.3 of the fishness lies ~0.8 px ahead of the fish, a large part of 21 px: the widest part
    of the head measured 0.185 lengths behind it, over ``FEATURE_REACH``, the recording was
    taken for fish without a head feature and every head point sat 2.2 px (0.1 lengths) ahead
    of the disc centre (head RMSE 4.2 px at 40 px). Measured after: 0.9 px at 40 px."""
    spec = suite_spec(517, duration_s=1.0, shape="square", fish_length_px=21.2, noise_sd=9.1,
                      crf=18, eye_size=1.46, head_width=1.07, yolk_size=1.06,
                      bladder_opacity=0.82, body_opacity=0.28, blur_px=1.46)
    assert spec.head_style == "disc" and spec.layout == "wells"
    _assert_heads(spec, tmp_path, rmse_40=1.5, along=0.03)


def test_small_eyes_merged_with_the_yolk_head_at_the_front_of_the_dark_head(tmp_path):
    """Tuning seed 365 of the suite (eleven dark 29.1-px eyed larvae in wells, MJPG, noise sd
    7.5; 1 s of it), the kind of held-out seeds 20785 and 22032: small eyes close together
    (eye size 0.66, 0.033 lengths either side of the axis, inside the head's outline) over a
    large yolk (size 1.09) make one dark anterior body whose width profile is flat; the
    widest row fell anywhere on it, every head ~0.045 lengths behind the eye midpoint (head
    RMSE 2.0 px at 40 px). The centre of the dark head's round front (the half-height snout
    plus half the head's width at half maximum, ``midline._round_front``) is where the eyes
    are: 0.7 px at 40 px, 0.016 lengths behind."""
    spec = suite_spec(365, duration_s=1.0)
    assert spec.head_style == "eyes" and spec.eye_lateral < 0.035 and spec.yolk_size > 1.05
    _assert_heads(spec, tmp_path, rmse_40=1.0, along=0.025)


def test_small_faint_larvae_h264_heading_does_not_turn_with_the_tail(tmp_path):
    """Tuning seed 16 of the suite: eleven 27-px larvae in a 12-well plate, tail tip 17 grey
    levels from the background, H.264 CRF 21, noise sd 9. A small larva's dark head is a flat
    plateau of fishness on which the sweeps wandered, so the anterior midline, and with it the
    heading, turned with every beat of the tail and the tail angle (tail direction - heading)
    under-read it. Before the rigid anterior midline (``midline.RIGID``): tail r 0.80,
    heading error 4.0 / 10.3 degrees (median / 95th pct), heading error against tail-angle
    error r -0.81. Measured after: r 0.928, 1.5 / 4.3 degrees, -0.53."""
    spec = suite_spec(16)
    r = run_case(spec, tmp_path, keep=True)
    m = _truth_joined(r)
    m = m[m.tail_angle.notna()]
    err = np.abs(wrap((m.heading - m.heading_t).to_numpy()))
    assert r["tail_r"] >= goals(spec)["tail_r"]
    assert float(np.percentile(np.degrees(err), 95)) <= 6.0
    # the heading error no longer follows the tail (it did: r -0.81 with the tail-angle error)
    te = wrap((m.tail_angle - m.tail_angle_t).to_numpy())
    assert abs(float(np.corrcoef(wrap((m.heading - m.heading_t).to_numpy()), te)[0, 1])) <= 0.7


def test_speck_at_a_still_larvas_neck_does_not_draw_its_midline(tmp_path):
    """Tuning seed 534 of the suite (0.5 s of it): three dark disc-headed 151-px head-embedded
    larvae, H.264 CRF 18. A speck ~15 px across at larva A1's neck is filled in with the still
    larva and shows as fishness in every frame; the trace, started right, turned into it on its
    second step and circled it, so A1's trace ended inside the anterior body and A1 (whose
    ``detected`` means a traced tail) was never reported: recall 0.667 on main. The sweeps of
    the rigid anterior body now keep within ``midline.RIGID_TURN`` of the starting direction.
    Measured after: recall 1.0, A1's tail r 0.995; the speck still pulls A1's anterior midline
    (heading 5.8 degrees off, tail angle biased by -7 degrees; section 12)."""
    _, r, a1 = _speck_case(534, "A1", tmp_path)
    assert len(a1) >= 0.995 * (r["truth"].fish == "A1").sum()
    assert float(np.degrees(np.abs(np.median(wrap((a1.heading - a1.heading_t).to_numpy()))))) <= 8.0


def test_empty_well_rim_in_codec_noise_is_not_a_fish(tmp_path):
    """Tuning seed 41 of the suite (2 s of it): eleven bright 27.7-px larvae in a 12-well
    plate, H.264 CRF 28, noise sd 10, well B4 empty. The empty well's calibration blobs (its
    rim and the codec's noise) peak at ~22 grey levels against the larvae's ~138; taken for its
    fish's contrast, they gave B4 a threshold of 6 (the others ~16.5) at which the rim flickered
    into a fish-sized blob in a quarter of the frames, and B4 was reported as a fish (as was B3
    of held-out 15824, the same kind). A well's blobs far fainter than the others' fish
    (``background.FAINT``) are no fish: B4 takes the typical contrast and threshold and stays
    empty. On main: B4 a fish, threshold 6.0 (others 16.3-18.0)."""
    spec = suite_spec(41, duration_s=2.0)
    assert spec.empty_arenas == ["B4"]
    r = run_case(spec, tmp_path, keep=True)
    s = r["summary"]
    assert r["false_fish"] == 0
    assert s["empty_arenas"] == ["B4"]
    assert r["recall"] >= goals(spec)["recall"]
    # the empty well is segmented like the others (its threshold among theirs)
    thr = s["thresholds"]
    others = [v for k, v in thr.items() if k != "B4"]
    assert min(others) <= thr["B4"] <= max(others)


def test_speck_on_a_head_embedded_larvas_tail_is_not_its_head(tmp_path):
    """Tuning seed 23 of the suite (six head-embedded larvae) drawn as the kind of held-out
    seed 15991: dark 34-px larvae with large eyes close together (eye opacity 0.6), 1.1 px of
    blur, H.264 CRF 27, 1 s of it. A dust speck under larva B3's tail is filled in with the
    still larva and looks like an eye in every frame: its fixed head was put there, 10 px from
    the eyes, with the midline traced towards the real head (head RMSE 4.9 px at 40 px on
    main). A head-embedded larva's head is the still end of its body (``MOVING_HEAD``): the
    head is now found again from the far end. Measured after: B3 0.7 px, 0.5 px at 40 px."""
    spec = suite_spec(23, duration_s=1.0, rows=2, cols=3, fish_length_px=34.0, polarity="dark",
                      eye_size=1.6, eye_lateral=0.048, eye_tilt=0.45, head_style="eyes",
                      head_width=1.29, eye_opacity=0.60, yolk_opacity=0.56, yolk_size=1.09,
                      bladder_opacity=0.39, body_opacity=0.26, blur_px=1.09, codec="h264",
                      crf=27, noise_sd=3.2)
    assert spec.layout == "embedded"
    r = run_case(spec, tmp_path, keep=True)
    g = goals(spec)
    assert r["head_rmse_px"] <= g["head_rmse_px"]
    m = _truth_joined(r)
    err = np.hypot(m.x - m.x_t, m.y - m.y_t).groupby(m.fish).median()
    assert float(err.max()) <= 0.1 * spec.fish_length_px


def test_accuracy_bench_rewrites_the_same_scenes_with_another_codec():
    """``bench/bench_tracker_accuracy.py --codec ffv1`` (and ``--crf``) writes each seed's own
    scene (drawing, motion, noise, truth) with another codec, under its own cache key, so that
    the codec's loss can be told from the tracker's (docs/tracking.md, section 12: the small
    tails of H.264 wells)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / "bench_tracker_accuracy.py"
    spec_ = importlib.util.spec_from_file_location("bench_tracker_accuracy", path)
    bench = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(bench)
    seeds = [4, 440]  # tuning look-alikes of the held-out misses: small larvae, H.264 CRF 27-28
    base = bench.suite_cases(seeds)
    assert [k for k, _ in base] == seeds
    for (key, sp), (_, sp0) in zip(bench.suite_cases(seeds, codec="ffv1"), base, strict=True):
        assert sp0.codec == "h264" and sp.codec == "ffv1"
        assert key == f"{sp0.seed}-ffv1"
        a, b = sp.model_dump(), sp0.model_dump()
        assert {k for k in a if a[k] != b[k]} == {"codec"}
    for (key, sp), (_, sp0) in zip(bench.suite_cases(seeds, crf=18), base, strict=True):
        assert key == f"{sp0.seed}-h264-crf18" and sp.crf == 18 and sp0.crf >= 27
    with pytest.raises(SystemExit):
        bench.main(["--seeds", "4", "--codec", "ffv1"])  # would write the docs' table


def test_speck_beside_the_yolk_of_a_still_larva_does_not_end_its_midline(tmp_path):
    """Spent seed 22527 of the suite (0.5 s of it): two 177-px head-embedded larvae with eyes,
    noise sd 5.4, lossless. A dark dust speck ~10 px across touches larva A2's side behind the
    yolk, 0.31 lengths from the head (just past the rigid ``midline.RIGID`` = 0.3 lengths); it
    is filled in with the still larva (it joins the body over the body's whole width, no
    saddle) and shows as fishness in every frame, twice the body's. The trace's first free
    sweep turned 66 degrees into it and ended there, 0.4 lengths from the head: A2's tail
    angle was the speck's, r 0.632 over the 2 s (r 0.997 after). The sweeps stay within
    ``midline.RIGID_TURN`` of the starting direction to ``midline.RIGID_SWEEPS`` = 0.4
    lengths (the yolk's end) for head-embedded larvae, not only to 0.3. (On main since the
    merge of 2026-12-07 ``RIGID_SWEEPS`` = ``RIGID``: this failed. The held sweeps are on again
    with a fish whose held trace leaves no tail traced as without them, which keeps tuning
    seed 745's faint still tails as before, tests/test_behaviour_gate_short_trace.py.)"""
    spec, _, a2 = _speck_case(22527, "A2", tmp_path)
    # the traced midline reaches the tail: its last point near the true tip, not at the speck
    n = sum(c.startswith("tail_x_") and not c.endswith("_t") for c in a2.columns)
    nt = sum(c.startswith("tail_x_") and c.endswith("_t") for c in a2.columns)
    tip = np.hypot(a2[f"tail_x_{n - 1}"] - a2[f"tail_x_{nt - 1}_t"],
                   a2[f"tail_y_{n - 1}"] - a2[f"tail_y_{nt - 1}_t"])
    assert float(np.median(tip)) <= 0.1 * spec.fish_length_px


def _tip_error(spec, f):
    """Median distance (px) from the traced tail's last point to the true tip."""
    n = sum(c.startswith("tail_x_") and not c.endswith("_t") for c in f.columns)
    nt = sum(c.startswith("tail_x_") and c.endswith("_t") for c in f.columns)
    return float(np.median(np.hypot(f[f"tail_x_{n - 1}"] - f[f"tail_x_{nt - 1}_t"],
                                    f[f"tail_y_{n - 1}"] - f[f"tail_y_{nt - 1}_t"])))


def test_speck_touching_a_long_tail_does_not_end_its_midline(tmp_path):
    """Spent seed 24658 of the suite (0.5 s of it): one 196-px head-embedded larva with a dark
    disc head, H.264 CRF 23, noise sd 10, tail tip 23 grey levels. A dust speck ~20 px across
    touches the tail's flank 0.45 lengths from the head, 2.7 times darker than the tail
    leading into it; the sweeps took it for the tail (straight ahead of the trunk while the
    tail bends away) and the trace ended in it or wandered on from it: 102 of 184 px traced,
    r 0.343 over the 2 s. A trace whose ridge climbs beyond the rigid body to
    ``midline.DARK_END`` x its lowest value so far (a tail only gets paler towards its tip) is
    traced again with the blob blanked out (r 0.999, 184 px traced)."""
    spec, _, a1 = _speck_case(24658, "A1", tmp_path)
    assert _tip_error(spec, a1) <= 0.1 * spec.fish_length_px


def test_speck_at_the_bend_of_a_tail_does_not_end_its_midline(tmp_path):
    """Spent seed 24626 of the suite (0.5 s of it): two 160-px head-embedded larvae with eyes,
    H.264 CRF 19. A dust speck touches larva A1's tail half-way along it; where the tail bends
    away from it (frames 45-75) the trace ran into the speck and stopped at ~85 of 150 px
    (r 0.515 for A1 over the 2 s; 0.9995 after the retrace without the blob)."""
    spec, _, a1 = _speck_case(24626, "A1", tmp_path)
    bent = a1[(a1.frame >= 45) & (a1.frame <= 75)]
    assert len(bent) >= 25
    assert _tip_error(spec, bent) <= 0.1 * spec.fish_length_px


def test_speck_darker_than_the_eyes_beside_an_embedded_head_is_not_the_larva(tmp_path):
    """Spent seed 24678 of the suite (the whole 2 s: the still-larva fill samples the whole
    recording, and 0.5 s of it sampled no such cut): six 80-px head-embedded larvae, H.264 CRF
    27, noise sd 7.3. A dust speck darker than the eyes lies 16 px beside larva A1's head. The
    still-larva fill (``background._whole_larva``) cut the larva from its strongest pixel, the
    speck: the speck (91 px) was kept as the larva and the larva itself (516 px) cut off and
    left in the background. A1's head was then fixed on the speck (15.9 px off) and its tail
    found in 47 % of frames (recall 91 % for the seed). The cut is now made again from the
    heaviest piece when the strongest pixel's piece holds less of the residual than it cuts."""
    spec, r, a1 = _speck_case(24678, "A1", tmp_path, duration_s=2.0)
    err = np.hypot(a1.x - a1.x_t, a1.y - a1.y_t)
    assert float(np.sqrt(np.mean(err**2))) <= 1.5 * spec.fish_length_px / 40.0
    assert len(a1) >= 0.995 * a1.frame.nunique() and a1.frame.nunique() == r["truth"].frame.nunique()
