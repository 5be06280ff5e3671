"""The behaviour stage's step files (``behaviour._steps``): what ``classify_parts`` keeps on
disk between its passes must read back exactly as it was written, without pickle."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fixtures_behaviour import make_fish

from fishtrack.behaviour._steps import MISSING, StepStore
from fishtrack.behaviour.kinematics import compute_kinematics


def _same(a, b) -> None:
    assert type(a) is type(b)
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b, strict=True)
    elif isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            _same(a[k], b[k])
    elif isinstance(a, tuple | list):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _same(x, y)
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b)
    elif hasattr(a, "__dataclass_fields__"):
        for name in a.__dataclass_fields__:
            _same(getattr(a, name), getattr(b, name))
    else:
        assert a == b


def test_values_read_back_exactly(tmp_path):
    store = StepStore(tmp_path / "part0")
    rng = np.random.default_rng(0)
    value = {
        "floats": (0.1 + 0.2, float("nan"), float("-inf"), np.float64(1 / 3), np.int64(7)),
        "plain": [None, True, "x", 3],
        "f_order": np.asfortranarray(rng.normal(size=(5, 3))),
        "view": rng.normal(size=20)[::3],
        "ints": np.arange(5, dtype=np.int32),
        "bools": rng.random(7) > 0.5,
        "empty": np.zeros((0, 4)),
        "strings": np.array(["A1", "B12", ""], dtype=object),
        "table": pd.DataFrame({"arena": ["A1", "A2"], "fish": ["f0", "f1"], "n": [1, 2]}),
        "categorical": pd.DataFrame({"c": pd.Categorical(["a", "b", "a"])}, index=[5, 6, 7]),
    }
    assert store.save("mixed.0", value)
    got = store.load("mixed.0")
    _same(value, got)
    assert got["f_order"].flags.f_contiguous and got["ints"].flags.writeable
    assert store.load("mixed.1") is MISSING


def test_kinematics_read_back_exactly(tmp_path):
    tracks = make_fish(3, duration_s=5.0).tracks
    kin = compute_kinematics(tracks)
    store = StepStore(tmp_path)
    assert store.save("kinematics.0", kin)
    _same(kin, store.load("kinematics.0"))


def test_what_cannot_be_written_is_not_kept(tmp_path):
    store = StepStore(tmp_path)
    assert not store.save("odd.0", {"x": object()})
    assert not store.save("odd.1", np.array([1, "a"], dtype=object))
    assert not store.save("odd.2", {1: 2})
    assert store.load("odd.0") is MISSING and store.load("odd.1") is MISSING
    assert list(tmp_path.iterdir()) == []  # nothing half-written either


def test_a_file_that_is_not_a_step_file_is_refused(tmp_path):
    (tmp_path / "x.0.step").write_bytes(b"PK\x03\x04 not a step file")
    with pytest.raises(ValueError, match="not a step file"):
        StepStore(tmp_path).load("x.0")
