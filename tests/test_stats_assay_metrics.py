"""Assay metrics of issue 16 on hand-built recordings whose truth fixes the answer: effort
before the first give-up (bouts and summed effort, censored like the latency), struggle
(first N s of open loop against the last N s of the closed loop before it) and recovery (time
to the first bout of fish passive at the start of a closed-loop phase)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fishtrack.config import Phase
from fishtrack.stats import per_fish_metrics

FPS = 10.0


def _phases(*spec):
    return [Phase(name=n, kind=k, start_s=a, end_s=b) for n, k, a, b in spec]


PROTOCOL = _phases(("cl1", "closed_loop", 0, 20), ("ol1", "open_loop", 20, 60),
                   ("cl2", "closed_loop", 60, 80))


def build(fish: dict[str, dict], t_end: float = 80.0):
    """``fish`` -> {arena: {"bouts": [(start_s, vigour_rad_s, effort_rad), ...],
    "passive": [(a, b), ...]}}: tracks (state from the passive intervals), bouts, epochs."""
    t = np.arange(int(round(t_end * FPS))) / FPS
    tracks, bouts, epochs = [], [], []
    for arena, spec in fish.items():
        passive = np.zeros(len(t), bool)
        for a, b in spec.get("passive", []):
            passive |= (t >= a - 1e-9) & (t < b - 1e-9)
            epochs.append({"fish": arena, "arena": arena, "state": "passive", "start_s": a,
                           "end_s": b})
        tracks.append(pd.DataFrame({"frame": np.arange(len(t)), "time_s": t, "arena": arena,
                                    "fish": arena, "detected": True,
                                    "state": np.where(passive, "passive", "active")}))
        for s, v, e in spec.get("bouts", []):
            bouts.append({"fish": arena, "arena": arena, "start_s": s, "duration_s": 0.2,
                          "vigour_rad_s": v, "effort_rad": e, "vigour": e})
    return (pd.concat(tracks, ignore_index=True), pd.DataFrame(bouts),
            pd.DataFrame(epochs, columns=["fish", "arena", "state", "start_s", "end_s"]))


def _every(a, b, step, vigour, effort):
    return [(float(s), vigour, effort) for s in np.arange(a, b - 1e-9, step)]


def _row(pf, fish, phase):
    sel = pf[(pf["fish"] == fish) & (pf["phase"] == phase)]
    assert len(sel) == 1
    return sel.iloc[0]


@pytest.fixture(scope="module")
def assay():
    fish = {
        # struggles (2 Hz, twice the vigour) for 10 s, gives up at 30 s until 62 s: 20 bouts
        # and 40 rad before giving up; passive when cl2 begins, first bout 2 s later
        "A1": {"bouts": _every(0, 20, 1.0, 10.0, 2.0) + _every(20, 30, 0.5, 20.0, 2.0)
               + _every(62, 80, 1.0, 10.0, 1.0), "passive": [(30, 62)]},
        # never gives up: 40 bouts of 1.5 rad in open loop (censored), no struggle
        "A2": {"bouts": _every(0, 80, 1.0, 10.0, 1.5)},
        # gives up at 30 s and never swims again: recovery censored at the end of cl2 (20 s)
        "A3": {"bouts": _every(0, 20, 1.0, 10.0, 1.0) + _every(20, 30, 1.0, 10.0, 1.0),
               "passive": [(30, 80)]},
    }
    tracks, bouts, epochs = build(fish)
    return per_fish_metrics(tracks, bouts, epochs, PROTOCOL, struggle_window_s=10.0)


def test_effort_before_the_first_give_up(assay):
    r = _row(assay, "A1", "ol1")
    assert r["n_bouts_before_giveup"] == 20
    assert r["effort_before_giveup_rad"] == pytest.approx(40.0)
    assert not r["latency_censored"]
    r = _row(assay, "A2", "ol1")  # never gave up: all its bouts, censored like the latency
    assert r["n_bouts_before_giveup"] == 40 and r["latency_censored"]
    assert r["effort_before_giveup_rad"] == pytest.approx(60.0)
    # the pooled open-loop row (one open-loop phase) repeats it
    assert _row(assay, "A1", "open_loop")["n_bouts_before_giveup"] == 20


def test_struggle_against_the_closed_loop_before(assay):
    r = _row(assay, "A1", "ol1")
    assert r["struggle_bout_rate_hz"] == pytest.approx(2.0)
    assert r["baseline_bout_rate_hz"] == pytest.approx(1.0)
    assert r["struggle_rate_ratio"] == pytest.approx(2.0)
    assert r["struggle_rate_change_hz"] == pytest.approx(1.0)
    assert r["struggle_vigour_rad_s"] == pytest.approx(20.0)
    assert r["struggle_vigour_ratio"] == pytest.approx(2.0)
    assert r["struggle_vigour_change_rad_s"] == pytest.approx(10.0)
    r = _row(assay, "A2", "ol1")
    assert r["struggle_rate_ratio"] == pytest.approx(1.0)
    assert r["struggle_vigour_change_rad_s"] == pytest.approx(0.0)
    # not defined outside open loop
    assert np.isnan(_row(assay, "A1", "cl1")["struggle_rate_ratio"])
    assert np.isnan(_row(assay, "A1", "cl2")["struggle_bout_rate_hz"])


def test_recovery_of_fish_passive_when_closed_loop_begins(assay):
    r = _row(assay, "A1", "cl2")
    assert r["passive_at_start"] and r["recovery_s"] == pytest.approx(2.0)
    assert not r["recovery_censored"]
    r = _row(assay, "A3", "cl2")
    assert r["recovery_s"] == pytest.approx(20.0) and r["recovery_censored"]
    assert np.isnan(_row(assay, "A2", "cl2")["recovery_s"])  # swimming at the onset
    assert np.isnan(_row(assay, "A1", "ol1")["recovery_s"])  # closed-loop phases only
    assert np.isnan(_row(assay, "A1", "closed_loop")["recovery_s"])  # per phase, not pooled


def test_pooled_effort_adds_open_loops_without_a_give_up():
    protocol = _phases(("cl1", "closed_loop", 0, 10), ("ol1", "open_loop", 10, 20),
                       ("cl2", "closed_loop", 20, 30), ("ol2", "open_loop", 30, 50))
    fish = {"A1": {"bouts": _every(0, 10, 1, 5.0, 1.0) + _every(10, 15, 1, 5.0, 1.0)
                   + _every(15, 20, 0.5, 5.0, 1.0) + _every(20, 33, 1, 5.0, 2.0),
                   "passive": [(33.2, 50)]}}
    # ol1: 5 + 10 bouts, no give-up; ol2: bouts at 30, 31, 32 then a give-up at 33.2
    tracks, bouts, epochs = build(fish, t_end=50)
    pf = per_fish_metrics(tracks, bouts, epochs, protocol)
    assert _row(pf, "A1", "ol1")["n_bouts_before_giveup"] == 15
    assert _row(pf, "A1", "ol1")["latency_censored"]
    assert _row(pf, "A1", "ol2")["n_bouts_before_giveup"] == 3
    pooled = _row(pf, "A1", "open_loop")
    assert pooled["n_bouts_before_giveup"] == 18 and not pooled["latency_censored"]
    assert pooled["effort_before_giveup_rad"] == pytest.approx(15 * 1.0 + 3 * 2.0)
    assert pooled["latency_to_first_passive_s"] == pytest.approx(10.0 + 3.2)


def test_fish_that_never_swam_has_no_effort():
    protocol = _phases(("ol", "open_loop", 0, 20))
    tracks, bouts, epochs = build({"A1": {"passive": [(0, 20)]},
                                   "A2": {"bouts": _every(0, 20, 1, 5.0, 1.0)}}, t_end=20)
    pf = per_fish_metrics(tracks, bouts, epochs, protocol)
    r = _row(pf, "A1", "ol")
    assert pd.isna(r["n_bouts_before_giveup"]) and np.isnan(r["latency_to_first_passive_s"])
    assert np.isnan(r["struggle_rate_ratio"])  # no closed loop before it
