"""Arena layouts and detection (fishtrack.arenas) against drawn plates with known geometry."""

from __future__ import annotations

import math
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from fixtures_arenas import Plate, draw_chamber, draw_plate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fishtrack.arenas import (
    Arena,
    arena_name,
    detect_arenas,
    draw_arenas,
    grid_arenas,
    parse_arena_name,
)
from fishtrack.config import ArenasConfig, parse_config
from fishtrack.errors import ArenaError

VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "videos"

PLATES = {6: (2, 3), 12: (3, 4), 24: (4, 6), 48: (6, 8), 96: (8, 12)}


def wells_cfg(rows: int, cols: int, **kw) -> ArenasConfig:
    return ArenasConfig(layout="wells", rows=rows, cols=cols, **kw)


def assert_matches(arenas: list[Arena], plate: Plate, *, centre_px=2.0, radius_px=3.0) -> None:
    """Count, names (row-major from the top-left), centres and radii against the truth."""
    assert len(arenas) == len(plate.wells)
    for a, t in zip(arenas, plate.wells, strict=True):
        assert (a.name, a.row, a.col) == (t.name, t.row, t.col)
        assert math.hypot(a.cx - t.cx, a.cy - t.cy) <= centre_px, (a, t)
        assert abs(a.radius - t.r) <= radius_px, (a, t)


# --------------------------------------------------------------------------------------------
# names


def test_arena_names_are_plate_style():
    assert arena_name(0, 0) == "A1"
    assert arena_name(0, 11) == "A12"
    assert arena_name(1, 0) == "B1"
    assert arena_name(7, 11) == "H12"
    assert arena_name(25, 0) == "Z1"
    assert arena_name(26, 2) == "AA3"
    for r in range(0, 40, 3):
        for c in (0, 5, 47):
            assert parse_arena_name(arena_name(r, c)) == (r, c)
    assert parse_arena_name(" b07 ") == (1, 6)
    with pytest.raises(ValueError):
        arena_name(-1, 0)
    for bad in ("", "A", "12", "A0", "1A"):
        with pytest.raises(ValueError):
            parse_arena_name(bad)


# --------------------------------------------------------------------------------------------
# wells: detection on drawn plates


@pytest.mark.parametrize("n_wells", sorted(PLATES))
@pytest.mark.parametrize("polarity", ["dark", "bright"])
@pytest.mark.parametrize("shape", ["circle", "square"])
def test_detects_plates(n_wells, polarity, shape):
    rows, cols = PLATES[n_wells]
    angle = 2.5 if n_wells % 12 else -2.0  # slightly rotated, both directions
    plate = draw_plate(
        rows,
        cols,
        shape=shape,
        polarity=polarity,
        angle_deg=angle,
        gradient=0.4,
        noise=4.0,
        fish_wells=(0, cols + 1, rows * cols - 1),
        dust=True,
        seed=n_wells,
    )
    info: dict = {}
    arenas = detect_arenas(plate.image, wells_cfg(rows, cols), diagnostics=info)
    assert_matches(arenas, plate)
    assert all(a.shape == shape for a in arenas)
    assert all(a.found for a in arenas)
    assert info["found"] == n_wells
    assert abs(info["angle_deg"] - angle) < 0.3
    # B1 is below A1, A2 right of A1
    a1, a2, b1 = arenas[0], arenas[1], arenas[cols]
    assert (
        b1.name == "B1"
        and b1.cy > a1.cy + 0.8 * plate.pitch
        and abs(b1.cx - a1.cx) < 0.1 * plate.pitch
    )
    assert a2.name == "A2" and a2.cx > a1.cx + 0.8 * plate.pitch


@pytest.mark.parametrize(
    "kw",
    [
        dict(fill=0.6, offset=(45, -30), angle_deg=1.5),  # plate smaller than the frame
        dict(fill=0.7, offset=(-50, 20), angle_deg=-3.0, polarity="bright"),
        dict(ratio=0.95, wall_px=2.0),  # wells almost touching
        dict(ratio=0.7, wall_px=8.0, angle_deg=3.0),  # thick walls
        dict(wall_px=1.5, noise=10.0, gradient=0.7),  # thin rims, strong noise and shading
    ],
    ids=["small-offset", "bright-rot3", "touching", "thick-walls", "thin-noisy"],
)
def test_detects_plate_variants(kw):
    rows, cols = 4, 6
    plate = draw_plate(rows, cols, **kw)
    assert_matches(detect_arenas(plate.image, wells_cfg(rows, cols)), plate)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    angle=st.floats(-3.0, 3.0),
    fill=st.floats(0.65, 0.95),
    dx=st.floats(-0.5, 0.5),
    dy=st.floats(-0.5, 0.5),
    seed=st.integers(0, 1000),
)
def test_detection_is_robust_to_placement(angle, fill, dx, dy, seed):
    rows, cols = 3, 4
    h, w = 360, 480
    pitch = fill * min(w / cols, h / rows)
    # keep the plate in the frame: move it by at most the free space on each side
    free_x = max(0.0, (w - cols * pitch) / 2 - 4)
    free_y = max(0.0, (h - rows * pitch) / 2 - 4)
    plate = draw_plate(
        rows,
        cols,
        size=(h, w),
        angle_deg=angle,
        fill=fill,
        offset=(dx * free_x, dy * free_y),
        seed=seed,
        fish_wells=(seed % 12,),
    )
    assert_matches(detect_arenas(plate.image, wells_cfg(rows, cols)), plate)


@pytest.mark.parametrize("polarity", ["dark", "bright"])
def test_four_round_wells_touching_the_frame_edges(polarity):
    """Issue 12: 4 round wells of radius 110 px at a pitch of 320 px across and 240 px down in
    a 640 x 480 frame ("found 2 of 4 wells ... would lie outside the image" before)."""
    plate = draw_plate(2, 2, size=(480, 640), pitch_xy=(320, 240), radius=110, polarity=polarity)
    info: dict = {}
    arenas = detect_arenas(plate.image, wells_cfg(2, 2), diagnostics=info)
    assert_matches(arenas, plate, centre_px=1.0, radius_px=1.5)
    assert all(a.found for a in arenas)
    assert info["pitch_px"] == pytest.approx((320, 240), abs=1.0)
    # wells touching each other and the frame edges (rims cut by the border)
    plate = draw_plate(2, 2, size=(480, 640), pitch_xy=(320, 240), radius=120, polarity=polarity)
    arenas = detect_arenas(plate.image, wells_cfg(2, 2))
    assert_matches(arenas, plate, centre_px=1.0, radius_px=1.5)


@pytest.mark.parametrize(
    ("rows", "cols", "pitch_xy", "radius"),
    [(3, 4, (150, 110), 48), (2, 4, (140, 200), 60), (4, 6, (100, 80), 35)],
)
def test_unequal_row_and_column_pitch(rows, cols, pitch_xy, radius):
    plate = draw_plate(rows, cols, size=(480, 640), pitch_xy=pitch_xy, radius=radius, angle_deg=1.5)
    info: dict = {}
    arenas = detect_arenas(plate.image, wells_cfg(rows, cols), diagnostics=info)
    assert_matches(arenas, plate, centre_px=1.0, radius_px=1.5)
    assert sorted(info["pitch_px"]) == pytest.approx(sorted(pitch_xy), abs=1.0)
    assert info["pitch_px"] == pytest.approx(pitch_xy, abs=1.0)  # x is across, y down


@pytest.mark.parametrize("wall_px", [3.0, 1.5])
@pytest.mark.parametrize("n_wells", [4, 24])
def test_faint_rims_in_dark_field(wall_px, n_wells):
    """Dark-field (IR) plates: rims only 6-8 grey levels above a dim plate, noise sd 2."""
    rows, cols = {4: (2, 2), 24: (4, 6)}[n_wells]
    plate = draw_plate(rows, cols, polarity="bright", levels=(30.0, 38.0, 24.0, 200.0), noise=2.0,
                       gradient=0.3, wall_px=wall_px, fish_wells=(0, rows * cols - 1))
    assert_matches(detect_arenas(plate.image, wells_cfg(rows, cols)), plate, centre_px=1.0)


def test_missing_rims_are_filled_from_the_grid():
    plate = draw_plate(4, 6, skip_wells=(0, 7, 13), angle_deg=2.0)
    info: dict = {}
    arenas = detect_arenas(plate.image, wells_cfg(4, 6), diagnostics=info)
    assert_matches(arenas, plate)
    assert info["found"] == 21
    assert [a.name for a in arenas if not a.found] == ["A1", "B2", "C2"]


def test_detection_is_fast_on_1024px():
    plate = draw_plate(8, 12, size=(1024, 1024), angle_deg=-3.0, ratio=0.73)
    cfg = wells_cfg(8, 12)
    detect_arenas(plate.image, cfg)  # warm-up (imports, OpenCV buffers)
    best = math.inf
    for _ in range(2):
        t0 = time.perf_counter()
        arenas = detect_arenas(plate.image, cfg)
        best = min(best, time.perf_counter() - t0)
    assert_matches(arenas, plate)
    assert best < 1.0, f"detection took {best:.2f} s"


def test_accepts_float_and_bgr_backgrounds():
    plate = draw_plate(2, 3, angle_deg=1.0)
    bgr = np.repeat(plate.image[..., None], 3, axis=2)
    assert_matches(detect_arenas(bgr, wells_cfg(2, 3)), plate)
    assert_matches(detect_arenas(plate.image.astype(np.float32) / 255.0, wells_cfg(2, 3)), plate)


def test_single_well():
    plate = draw_plate(1, 1, fill=0.8, fish_wells=(0,))
    assert_matches(detect_arenas(plate.image, wells_cfg(1, 1)), plate)


def test_shape_can_be_forced():
    plate = draw_plate(3, 4, shape="square", angle_deg=2.0)
    arenas = detect_arenas(plate.image, wells_cfg(3, 4, shape="square"))
    assert_matches(arenas, plate)
    assert abs(math.degrees(arenas[0].angle) - 2.0) < 0.3


# --------------------------------------------------------------------------------------------
# wells: failures


def test_column_without_rims_fails_with_an_actionable_message():
    plate = draw_plate(4, 6, skip_wells=(0, 6, 12, 18), angle_deg=2.0)
    info: dict = {}
    with pytest.raises(ArenaError) as exc:
        detect_arenas(plate.image, wells_cfg(4, 6), diagnostics=info)
    msg = str(exc.value)
    assert "found 20 of 24 wells" in msg
    assert "column 1" in msg
    assert "arenas.bbox" in msg and "docs/arenas.md" in msg
    assert "\n" not in msg
    assert info["found"] == 20
    assert exc.value.exit_code == 4


def test_too_few_wells_fails():
    skip = tuple(i for i in range(24) if i not in (0, 5, 18, 23, 8, 15, 10, 13))
    plate = draw_plate(4, 6, skip_wells=skip)
    with pytest.raises(ArenaError, match=r"found 8 of 24 wells.*arenas\.bbox"):
        detect_arenas(plate.image, wells_cfg(4, 6))


def test_more_wells_than_configured_fails():
    plate = draw_plate(6, 8, angle_deg=2.0)
    with pytest.raises(ArenaError, match=r"more wells than arenas\.rows x arenas\.cols = 4 x 6"):
        detect_arenas(plate.image, wells_cfg(4, 6))


def test_plate_cut_by_the_frame_fails():
    plate = draw_plate(4, 6, fill=0.7, offset=(200, 0))
    with pytest.raises(ArenaError, match=r"outside the image"):
        detect_arenas(plate.image, wells_cfg(4, 6))


@pytest.mark.parametrize("kind", ["uniform", "noise"])
def test_no_plate_fails(kind):
    rng = np.random.default_rng(3)
    img = np.full((300, 400), 128, np.uint8)
    if kind == "noise":
        img = rng.normal(128, 20, img.shape).clip(0, 255).astype(np.uint8)
    with pytest.raises(ArenaError, match=r"found 0 of 24 wells"):
        detect_arenas(img, wells_cfg(4, 6))


def test_bad_background_is_an_arena_error():
    with pytest.raises(ArenaError, match="2-D grey"):
        detect_arenas(np.zeros((5, 5, 5, 5)), wells_cfg(2, 3))


# --------------------------------------------------------------------------------------------
# bbox layout


def test_bbox_layout_with_well_radius():
    plate = draw_plate(4, 6, angle_deg=0.0)
    x0, y0, x1, y1 = plate.outer_bbox
    r = plate.wells[0].r
    cfg = wells_cfg(
        4, 6, bbox=(round(x0), round(y0), round(x1), round(y1)), well_radius_px=r, margin_px=3
    )
    arenas = detect_arenas(np.zeros_like(plate.image), cfg)  # the image is not looked at
    assert_matches(arenas, plate, centre_px=1.0, radius_px=1e-9)
    assert all(a.margin == 3 and a.found for a in arenas)


def test_bbox_layout_without_radius_has_touching_wells():
    arenas = grid_arenas((400, 600), 2, 3, (0, 0, 600, 400))
    assert [a.name for a in arenas] == ["A1", "A2", "A3", "B1", "B2", "B3"]
    assert all(a.radius == 100 for a in arenas)
    assert [(a.cx, a.cy) for a in arenas[:4]] == [(100, 100), (300, 100), (500, 100), (100, 300)]
    sq = detect_arenas(np.zeros((400, 600)), wells_cfg(2, 3, bbox=(0, 0, 600, 400), shape="square"))
    assert all(a.shape == "square" for a in sq)


def test_bbox_errors():
    with pytest.raises(ArenaError, match="outside"):
        grid_arenas((100, 100), 2, 2, (200, 200, 300, 300))
    with pytest.raises(ArenaError, match="well_radius_px"):
        grid_arenas((400, 400), 2, 2, (0, 0, 100, 100), well_radius=80)


# --------------------------------------------------------------------------------------------
# the Arena object


def test_circle_mask_and_contains():
    a = grid_arenas((200, 200), 1, 1, (40.5, 30.5, 140.5, 130.5), margin=4)[0]
    assert (a.cx, a.cy, a.radius) == (90.5, 80.5, 50.0)
    m = a.mask()
    x0, y0, x1, y1 = a.bbox
    assert m.shape == (y1 - y0, x1 - x0) and m.dtype == bool
    assert abs(m.sum() - math.pi * 46**2) / (math.pi * 46**2) < 0.01
    assert a.contains(90.5, 80.5)
    assert a.contains(90.5 + 45.9, 80.5)
    assert not a.contains(90.5 + 46.1, 80.5)  # inside the wall, but in the margin
    assert not a.contains(0, 0)
    got = a.contains(np.array([90.5, 0.0]), np.array([80.5, 0.0]))
    assert got.tolist() == [True, False]
    # the mask agrees with contains at every pixel centre
    ys, xs = np.mgrid[y0:y1, x0:x1]
    assert np.array_equal(m, a.contains(xs, ys))


def test_rotated_square_mask():
    a = Arena("A1", 0, 0, "square", 50.0, 50.0, 20.0, (0, 0, 101, 101), angle=math.radians(30))
    m = a.mask()
    assert abs(m.sum() - 40 * 40) / 1600 < 0.03
    # a corner direction of the unrotated square is outside the rotated one
    assert not a.contains(50 + 19.5, 50 + 19.5)
    assert a.contains(
        50 + 19.5 * math.cos(math.radians(30)), 50 + 19.5 * math.sin(math.radians(30))
    )


def test_mask_is_clipped_with_the_bbox():
    # a well hanging over the left frame edge: bbox clipped to the frame, mask matches it
    a = grid_arenas((100, 100), 1, 1, (-20, 10, 40, 70))[0]
    assert a.bbox[0] == 0
    assert a.mask().shape == (a.bbox[3] - a.bbox[1], a.bbox[2] - a.bbox[0])


# --------------------------------------------------------------------------------------------
# chamber


@pytest.mark.parametrize("polarity", ["dark", "bright"])
def test_chamber_circle(polarity):
    img = draw_chamber(polarity=polarity, shape="circle", centre=(260, 195), radius=150)
    (a,) = detect_arenas(img, ArenasConfig(layout="chamber", fish_per_arena=3))
    assert (a.name, a.shape, a.found) == ("A1", "circle", True)
    assert math.hypot(a.cx - 260, a.cy - 195) < 2 and abs(a.radius - 150) < 3


@pytest.mark.parametrize("polarity", ["dark", "bright"])
def test_chamber_rect(polarity):
    img = draw_chamber(polarity=polarity, shape="rect", centre=(260, 195), half=(180, 120))
    (a,) = detect_arenas(img, ArenasConfig(layout="chamber", margin_px=0))
    assert a.shape == "rect" and a.found
    # drawn interior: pixels 80..440 x 75..315 (inclusive)
    assert np.allclose(a.bbox, (80, 75, 441, 316), atol=1.5)


def test_chamber_square_is_square():
    img = draw_chamber(shape="rect", centre=(250, 200), half=(150, 150), size=(400, 500))
    (a,) = detect_arenas(img, ArenasConfig(layout="chamber"))
    assert a.shape == "square" and abs(a.radius - 150) < 3


def test_no_visible_chamber_gives_the_whole_frame():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:300, 0:400]
    img = (90 + 0.3 * xx + rng.normal(0, 3, xx.shape)).clip(0, 255).astype(np.uint8)
    with pytest.warns(UserWarning, match="whole frame"):
        (a,) = detect_arenas(img, ArenasConfig(layout="chamber"))
    assert a.shape == "rect" and a.bbox == (0, 0, 400, 300) and not a.found
    assert a.mask().all()


def test_chamber_bbox():
    img = np.zeros((300, 400), np.uint8)
    (a,) = detect_arenas(img, ArenasConfig(layout="chamber", bbox=(10, 20, 210, 220)))
    assert a.shape == "rect" and a.bbox == (10, 20, 210, 220)
    (c,) = detect_arenas(
        img, ArenasConfig(layout="chamber", bbox=(10, 20, 210, 220), shape="circle")
    )
    assert c.shape == "circle" and (c.cx, c.cy, c.radius) == (110, 120, 100)


@pytest.mark.realvideo
@pytest.mark.skipif(not (VIDEOS / "onefish_trial1_1000fps.mp4").exists(), reason="no shared videos")
def test_chamber_on_a_real_petri_dish():
    import cv2

    cap = cv2.VideoCapture(str(VIDEOS / "onefish_trial1_1000fps.mp4"))
    frames = []
    for _ in range(8):
        ok, f = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY))
    cap.release()
    bg = np.median(np.stack(frames), axis=0).astype(np.uint8)
    (a,) = detect_arenas(bg, ArenasConfig(layout="chamber"))
    # the dish's bright disc fills most of the 1024 x 1024 frame
    assert a.shape == "circle" and a.found
    assert 430 < a.radius < 520 and math.hypot(a.cx - 512, a.cy - 512) < 60
    # the disc is bright, the wall outside it dark
    inside = bg[a.bbox[1] : a.bbox[3], a.bbox[0] : a.bbox[2]][a.mask()]
    assert inside.mean() > 1.5 * bg[~_disc_mask(bg.shape, a, 1.08)].mean()


def _disc_mask(shape, a: Arena, k: float) -> np.ndarray:
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    return (xx - a.cx) ** 2 + (yy - a.cy) ** 2 <= (k * a.radius) ** 2


# --------------------------------------------------------------------------------------------
# embedded


def test_embedded_grid_tiles_the_frame():
    arenas = detect_arenas(
        np.zeros((301, 403), np.uint8), ArenasConfig(layout="embedded", rows=3, cols=4)
    )
    assert [a.name for a in arenas[:5]] == ["A1", "A2", "A3", "A4", "B1"]
    cover = np.zeros((301, 403), int)
    for a in arenas:
        assert a.shape == "rect" and math.isnan(a.radius)
        x0, y0, x1, y1 = a.bbox
        cover[y0:y1, x0:x1] += a.mask()
        assert a.contains(a.cx, a.cy)
    assert (cover == 1).all()  # every pixel in exactly one ROI


def test_embedded_grid_in_bbox():
    cfg = ArenasConfig(layout="embedded", rows=2, cols=2, bbox=(10, 20, 110, 80))
    arenas = detect_arenas(np.zeros((100, 200), np.uint8), cfg)
    assert [a.bbox for a in arenas] == [
        (10, 20, 60, 50),
        (60, 20, 110, 50),
        (10, 50, 60, 80),
        (60, 50, 110, 80),
    ]


# --------------------------------------------------------------------------------------------
# drawing


@pytest.mark.parametrize("n_wells", [6, 96])
def test_draw_arenas(n_wells):
    rows, cols = PLATES[n_wells]
    plate = draw_plate(rows, cols, skip_wells=(1,), angle_deg=1.0)
    arenas = detect_arenas(plate.image, wells_cfg(rows, cols))
    out = draw_arenas(plate.image, arenas)
    assert out.shape == plate.image.shape + (3,) and out.dtype == np.uint8
    grey = np.repeat(plate.image[..., None], 3, axis=2)
    changed = (out != grey).any(axis=2)
    for a in arenas:  # outline pixels changed (left and right of each well) ...
        for side in (-1, 1):
            x, y = round(a.cx + side * a.radius), round(a.cy)
            assert changed[y - 1 : y + 2, x - 1 : x + 2].any(), a.name
    # ... and the background far from outlines and names is untouched
    assert not changed[:3, :3].any()
    frac = changed.mean()
    assert 0.02 < frac < 0.6
    # the filled-in well (not found) is drawn in another colour than the found ones
    b = arenas[1]
    assert not b.found
    x, y = round(b.cx + b.radius), round(b.cy)
    patch = out[y - 1 : y + 2, x - 1 : x + 2].reshape(-1, 3)
    assert (patch[:, 2] > patch[:, 1]).any()  # orange: red > green
    # the input is not modified
    assert np.array_equal(plate.image, draw_plate(rows, cols, skip_wells=(1,), angle_deg=1.0).image)


def test_draw_arenas_accepts_float_and_empty():
    img = np.random.default_rng(0).random((50, 60)).astype(np.float32)
    out = draw_arenas(img, [])
    assert out.shape == (50, 60, 3) and out.dtype == np.uint8
    arenas = detect_arenas(img, ArenasConfig(layout="embedded", rows=1, cols=2))
    out2 = draw_arenas(img, arenas)
    assert (out2 != out).any()


# --------------------------------------------------------------------------------------------
# config


def test_config_fields():
    cfg = parse_config(
        {
            "arenas": {
                "layout": "wells",
                "rows": 8,
                "cols": 12,
                "well_radius_px": 30,
                "min_found_fraction": 0.8,
            }
        }
    )
    assert cfg.arenas.well_radius_px == 30 and cfg.arenas.min_found_fraction == 0.8


def test_well_radius_hint_and_min_found_fraction():
    plate = draw_plate(4, 6, skip_wells=(0, 7, 13))
    r = plate.wells[0].r
    assert_matches(detect_arenas(plate.image, wells_cfg(4, 6, well_radius_px=r)), plate)
    with pytest.raises(ArenaError, match="min_found_fraction=0.9"):
        detect_arenas(plate.image, wells_cfg(4, 6, min_found_fraction=0.9))


# --------------------------------------------------------------------------------------------
# simulator


def test_no_warnings_on_clean_detection():
    plate = draw_plate(3, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        detect_arenas(plate.image, wells_cfg(3, 4))


SIM_CASES = {
    "plate24-dark": dict(
        layout="wells", rows=4, cols=6, fish_length_px=24, gradient=0.3, n_dust=30, codec="h264"
    ),
    "plate12-square-bright": dict(
        layout="wells",
        rows=3,
        cols=4,
        shape="square",
        polarity="bright",
        fish_length_px=24,
        gradient=0.3,
        n_dust=30,
        noise_sd=4.0,
    ),
    "plate96": dict(layout="wells", rows=8, cols=12, fish_length_px=14, n_dust=20),
    "plate6-bright": dict(layout="wells", rows=2, cols=3, polarity="bright", fish_length_px=30),
    "chamber": dict(layout="chamber", fish_length_px=24, gradient=0.2),
    "chamber-square-bright": dict(
        layout="chamber", shape="square", polarity="bright", fish_length_px=24
    ),
    "embedded": dict(layout="embedded", fish_length_px=30),
}


@pytest.mark.parametrize("case", sorted(SIM_CASES))
def test_detects_simulator_arenas(case, tmp_path):
    """Arenas found on a simulated video's background (median of 5 frames) match its truth."""
    synth = pytest.importorskip("fishtrack.synth")
    if not hasattr(synth, "simulate"):
        pytest.skip("fishtrack.synth.simulate is not available")
    import pandas as pd

    from fishtrack.config import load_config
    from fishtrack.io.video import open_video

    kw = dict(SIM_CASES[case])
    kw.setdefault("codec", "ffv1")
    spec = synth.SimSpec(duration_s=0.5, fps=20, seed=7, **kw)
    res = synth.simulate(spec, tmp_path)
    truth = pd.read_csv(tmp_path / "truth_arenas.csv")
    with open_video(res.video_path) as src:
        frames = src.sample(np.linspace(0, len(src) - 1, 5).round().astype(int))
    bg = np.median(frames, axis=0).astype(np.uint8)
    cfg = load_config(res.config_path).arenas
    if cfg.layout == "embedded":  # the simulator pads its ROI grid: give the outer box
        cfg = cfg.model_copy(
            update={
                "bbox": (
                    int(truth.x0.min()),
                    int(truth.y0.min()),
                    int(truth.x1.max()),
                    int(truth.y1.max()),
                )
            }
        )
    arenas = detect_arenas(bg, cfg)
    assert [a.name for a in arenas] == truth["name"].tolist()
    assert [(a.row, a.col) for a in arenas] == list(zip(truth["row"], truth["col"], strict=True))
    assert [a.shape for a in arenas] == truth["shape"].tolist()
    for a, t in zip(arenas, truth.itertuples(), strict=True):
        assert a.found
        assert math.hypot(a.cx - t.cx, a.cy - t.cy) <= 1.0, (a, t)
        if a.shape == "rect":
            assert math.isnan(t.radius)
        else:
            assert abs(a.radius - t.radius) <= 1.0, (a, t)
        assert np.abs(np.array(a.bbox) - [t.x0, t.y0, t.x1, t.y1]).max() <= 1, (a, t)
