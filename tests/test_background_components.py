"""The refinement's connected components on the masks' occupied box (issue 15, fixed costs).

``background.components`` labels a calibration frame's mask on the box of its set pixels (its
corner at even coordinates) instead of the whole arena crop, and must give what
``cv2.connectedComponentsWithStats`` gives on the whole mask: the same number of labels, the
same label image, the same statistics and centroids, background row included."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from fixtures_arenas import assert_same_refinement, refinement_plate

from fishtrack.tracking import background


def _reference(mask: np.ndarray):
    return cv2.connectedComponentsWithStats(mask, connectivity=8)


def _assert_same(mask: np.ndarray) -> None:
    n0, lab0, st0, ce0 = _reference(mask)
    n1, lab1, st1, ce1 = background.components(mask)
    assert n1 == n0
    assert lab1.dtype == lab0.dtype and np.array_equal(lab1, lab0)
    assert st1.dtype == st0.dtype and np.array_equal(st1, st0)
    assert ce1.dtype == ce0.dtype and np.array_equal(ce1, ce0, equal_nan=True)  # bit for bit


def _blobby(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Fish-like strokes, specks and noise pixels at random places, sizes and parities."""
    m = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(0, 6))):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        ln, ang = float(rng.uniform(3, 60)), float(rng.uniform(0, np.pi))
        x1, y1 = int(x0 + ln * np.cos(ang)), int(y0 + ln * np.sin(ang))
        cv2.line(m, (x0, y0), (x1, y1), 1, int(rng.integers(1, 6)))
    k = int(rng.integers(0, 40))
    m[rng.integers(0, h, k), rng.integers(0, w, k)] = 1
    return m


def test_components_equal_opencv_on_random_masks():
    rng = np.random.default_rng(15)
    for _ in range(300):
        h, w = int(rng.integers(8, 300)), int(rng.integers(8, 300))
        m = _blobby(rng, h, w)
        _assert_same(m)
        m[[0, -1]] = 0  # clear on every side: labelled on its box
        m[:, [0, -1]] = 0
        _assert_same(m)


@pytest.mark.parametrize("where", ["empty", "full", "top", "left", "bottom", "right", "corner", "odd"])
def test_components_edge_cases(where):
    m = np.zeros((41, 57), np.uint8)
    if where == "full":
        m[:] = 1
    elif where == "top":
        m[0, 10:20] = 1
    elif where == "left":
        m[5:9, 0] = 1
    elif where == "bottom":
        m[40, 3:7] = 1
    elif where == "right":
        m[20:30, 56] = 1
    elif where == "corner":
        m[0, 0] = m[40, 56] = 1
    elif where == "odd":  # a box starting at odd coordinates, two blobs side by side in a row
        m[13, 15:18] = 1
        m[14, 11:13] = 1
        m[13:16, 21] = 1
    _assert_same(m)




@pytest.mark.parametrize("still", [False, True])
def test_refinement_labels_on_boxes_as_on_whole_masks(tmp_path, monkeypatch, still):
    """The refinement's calibration-frame masks are labelled through ``components`` (on
    their boxes), and the refined models, fish length, area and their evidence are those of
    labelling every whole mask with OpenCV (a 2 x 3-well plate, one well empty; with
    ``still``, a fish sitting still in the median)."""
    cfg, bg, arenas = refinement_plate(tmp_path, still)
    boxed: list[tuple] = []
    real = background.components

    def seen(mask):
        out = real(mask)
        boxed.append(mask.shape)
        return out

    monkeypatch.setattr(background, "components", seen)
    a = bg.refine(arenas, cfg.tracking, fish_per_arena=1, layout="wells")
    assert len(boxed) >= 16 * len(arenas) // 2  # the calibration frames of the arenas
    monkeypatch.setattr(background, "components", _reference)
    b = bg.refine(arenas, cfg.tracking, fish_per_arena=1, layout="wells")
    assert_same_refinement(a, b)
