"""Give-up definitions of the per-fish metrics (issue 13, points 1-5).

Each test is the reproducing case of one point: a hand-built state sequence whose correct
answer follows from the documented rule (docs/statistics.md, "Give-ups"), not from the code.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fishtrack.behaviour import detect_bouts
from fishtrack.config import BehaviourConfig, Phase
from fishtrack.stats import per_fish_metrics, survival_table

FPS = 10.0


def _phases(*spec):
    return [Phase(name=n, kind=k, start_s=a, end_s=b) for n, k, a, b in spec]


def _states(*runs: tuple[str, float]) -> np.ndarray:
    """``("active", 3.0), ("passive", 2.5)`` -> one state per frame at FPS."""
    return np.concatenate([np.full(int(round(d * FPS)), s, dtype=object) for s, d in runs])


def _fish(arena: str, states: np.ndarray) -> pd.DataFrame:
    n = len(states)
    return pd.DataFrame({"frame": np.arange(n), "time_s": np.arange(n) / FPS, "arena": arena,
                         "fish": arena, "detected": states != "unknown", "state": states})


def _epochs(tracks: pd.DataFrame) -> pd.DataFrame:
    """Runs of one state per fish (end exclusive), as the behaviour stage writes them."""
    rows = []
    for arena, g in tracks.groupby("arena"):
        st, t = g["state"].to_numpy(), g["time_s"].to_numpy()
        s = np.flatnonzero(np.r_[True, st[1:] != st[:-1]])
        e = np.r_[s[1:] - 1, len(st) - 1]
        rows += [{"fish": arena, "arena": arena, "state": st[a], "start_s": t[a],
                  "end_s": t[b] + 1 / FPS} for a, b in zip(s, e, strict=True)]
    return pd.DataFrame(rows)


def _metrics(protocol, **fish: np.ndarray) -> pd.DataFrame:
    tracks = pd.concat([_fish(a, s) for a, s in fish.items()], ignore_index=True)
    return per_fish_metrics(tracks, None, _epochs(tracks), protocol)


def _row(pf: pd.DataFrame, fish: str, phase: str) -> pd.Series:
    sel = pf[(pf["fish"] == fish) & (pf["phase"] == phase)]
    assert len(sel) == 1
    return sel.iloc[0]


# 1. unobserved time is not survival


def test_fish_lost_after_swimming_is_censored_at_its_last_known_frame():
    # 0-60 s open loop: swims 0-20 s, then lost (state unknown) for 20-60 s
    pf = _metrics(_phases(("ol", "open_loop", 0, 60)),
                  A1=_states(("active", 20), ("unknown", 40)))
    r = _row(pf, "A1", "ol")
    assert r["latency_censored"]
    assert r["latency_to_first_passive_s"] == pytest.approx(20.0)  # was 60 s


def test_gap_in_the_middle_does_not_move_the_censoring_time():
    pf = _metrics(_phases(("ol", "open_loop", 0, 60)),
                  A1=_states(("active", 20), ("unknown", 10), ("active", 30)))
    r = _row(pf, "A1", "ol")
    assert r["latency_censored"] and r["latency_to_first_passive_s"] == pytest.approx(60.0)


# 2. a give-up does not spill into the next phase


PROTOCOL_3 = _phases(("cl1", "closed_loop", 0, 10), ("ol1", "open_loop", 10, 40),
                     ("cl2", "closed_loop", 40, 50))


def test_give_up_running_across_the_phase_end_belongs_to_the_phase_it_began_in():
    # passive 38-40.5 s; open loop ends at 40 s
    pf = _metrics(PROTOCOL_3, A1=_states(("active", 38), ("passive", 2.5), ("active", 9.5)))
    ol = _row(pf, "A1", "ol1")
    assert ol["n_passive_epochs"] == 1
    assert ol["latency_to_first_passive_s"] == pytest.approx(28.0) and not ol["latency_censored"]
    assert ol["mean_passive_epoch_s"] == pytest.approx(2.5)  # whole epoch, not 2.0 clipped
    cl2 = _row(pf, "A1", "cl2")
    assert cl2["n_passive_epochs"] == 0  # was a 0.5 s "epoch"
    assert np.isnan(cl2["mean_passive_epoch_s"])
    assert cl2["passive_at_start"]
    assert cl2["latency_origin_s"] == pytest.approx(0.5)  # recovery: first bout 0.5 s in
    assert cl2["latency_censored"]  # no give-up in closed loop 2 (was latency 0, event)
    assert cl2["latency_to_first_passive_s"] == pytest.approx(9.5)  # at risk 40.5-50 s
    pooled = _row(pf, "A1", "closed_loop")
    assert pooled["latency_censored"]  # was: gave up at 10 s of closed-loop time
    assert pooled["latency_to_first_passive_s"] == pytest.approx(10.0 + 9.5)
    assert pooled["n_passive_epochs"] == 0


# 3. resting at the onset of a phase is not an immediate give-up


def test_resting_at_open_loop_onset_is_not_a_give_up():
    # passive 8-14 s: began in closed loop, still resting when open loop starts at 10 s
    pf = _metrics(_phases(("cl", "closed_loop", 0, 10), ("ol", "open_loop", 10, 20)),
                  B1=_states(("active", 8), ("passive", 6), ("active", 6)))
    ol = _row(pf, "B1", "ol")
    assert ol["n_passive_epochs"] == 0
    assert ol["passive_at_start"] and ol["latency_origin_s"] == pytest.approx(4.0)
    assert ol["latency_censored"]  # was latency 0, event
    assert ol["latency_to_first_passive_s"] == pytest.approx(6.0)  # clock from its first swim
    cl = _row(pf, "B1", "cl")
    assert cl["n_passive_epochs"] == 1 and cl["latency_to_first_passive_s"] == pytest.approx(8.0)
    assert cl["mean_passive_epoch_s"] == pytest.approx(6.0)


def test_rest_at_record_start_then_a_give_up():
    # the record starts in open loop with the fish resting; it swims 5-12 s, gives up at 12 s
    pf = _metrics(_phases(("ol", "open_loop", 0, 20)),
                  C1=_states(("passive", 5), ("active", 7), ("passive", 8)))
    r = _row(pf, "C1", "ol")
    assert r["n_passive_epochs"] == 1  # the rest at onset is not counted
    assert r["latency_origin_s"] == pytest.approx(5.0) and r["passive_at_start"]
    assert not r["latency_censored"]
    assert r["latency_to_first_passive_s"] == pytest.approx(7.0)  # 12 s - first swim at 5 s
    assert r["passive_fraction"] == pytest.approx(13 / 20)  # frames: every passive frame counts


def test_fish_that_never_swims_in_a_phase_has_no_latency():
    pf = _metrics(_phases(("cl", "closed_loop", 0, 10), ("ol", "open_loop", 10, 20)),
                  D1=_states(("active", 5), ("passive", 15)),
                  D2=_states(("active", 20)))
    r = _row(pf, "D1", "ol")
    assert np.isnan(r["latency_to_first_passive_s"]) and pd.isna(r["latency_censored"])
    assert np.isnan(r["latency_origin_s"]) and r["passive_fraction"] == 1.0
    surv = survival_table(pf.assign(group="g"))
    assert set(surv.loc[surv["phase"] == "ol", "fish_id"]) == {"D2"}  # never at risk: left out


# 4. cut epochs: one rule


@pytest.mark.parametrize("ol_end", [29.0, 30.0, 31.0])
def test_mean_passive_epoch_does_not_depend_on_where_the_phase_ends(ol_end):
    # 5-s give-ups at 4, 17 and 27 s; the last one runs across the end of open loop
    states = _states(("active", 4), ("passive", 5), ("active", 8), ("passive", 5),
                     ("active", 5), ("passive", 5), ("active", 9))
    pf = _metrics(_phases(("ol", "open_loop", 0, ol_end), ("cl", "closed_loop", ol_end, 41)),
                  A1=states)
    r = _row(pf, "A1", "ol")
    assert r["n_passive_epochs"] == 3 and r["n_complete_passive_epochs"] == 3
    assert r["mean_passive_epoch_s"] == pytest.approx(5.0)  # was 4.33 with ol_end = 30


def test_epoch_cut_by_the_end_of_the_record_is_left_out_of_the_mean():
    pf = _metrics(_phases(("ol", "open_loop", 0, 20)),
                  A1=_states(("active", 2), ("passive", 4), ("active", 8), ("passive", 6)))
    r = _row(pf, "A1", "ol")
    assert r["n_passive_epochs"] == 2 and r["n_complete_passive_epochs"] == 1
    assert r["mean_passive_epoch_s"] == pytest.approx(4.0)  # was (4 + 6) / 2


# 5. vigour in rad/s, effort in rad


def _beating_tail(durations_s, *, fps=500.0, amp=0.5, hz=25.0, rest_s=1.0) -> pd.DataFrame:
    """One fish; bouts of a sinusoidal tail (whole half-beats) separated by rest."""
    parts, t0 = [], 0.0
    for d in durations_s:
        n_rest, n_bout = int(rest_s * fps), int(round(d * fps))
        parts += [np.zeros(n_rest), amp * np.sin(2 * np.pi * hz * np.arange(n_bout) / fps)]
        t0 += rest_s + d
    tail = np.r_[np.concatenate(parts), np.zeros(int(rest_s * fps))]
    tail = tail + np.random.default_rng(0).normal(0, 0.002, len(tail))
    n = len(tail)
    return pd.DataFrame({"frame": np.arange(n), "time_s": np.arange(n) / fps, "fish": "0",
                         "arena": "A1", "x": 10.0, "y": 10.0, "tail_angle": tail})


def test_bout_vigour_is_a_rate_and_effort_an_integral():
    amp, hz = 0.5, 25.0
    durations = [0.1, 0.2, 0.4]
    tracks = _beating_tail(durations, amp=amp, hz=hz)
    _, bouts = detect_bouts(tracks, BehaviourConfig())
    assert len(bouts) == 3
    speed = 4 * amp * hz  # mean |d/dt (A sin 2 pi f t)| over whole half-beats = 50 rad/s
    # a detected bout starts and ends within a quarter beat of the movement, so its mean
    # speed is a little below the beating tail's
    np.testing.assert_allclose(bouts["vigour_rad_s"], speed, rtol=0.2)
    # effort is the tail-angle travel (integral of |d tail_angle / dt|) inside the bout
    t, a = tracks["time_s"].to_numpy(), tracks["tail_angle"].to_numpy()
    step = np.abs(np.diff(a, prepend=a[0]))
    travel = [step[(t >= s) & (t < e)].sum() for s, e in zip(bouts["start_s"], bouts["end_s"], strict=True)]
    np.testing.assert_allclose(bouts["effort_rad"], travel, rtol=0.05)
    np.testing.assert_allclose(bouts["effort_rad"], speed * np.array(durations), rtol=0.1)
    # vigour does not grow with bout duration; effort does, in proportion
    assert bouts["vigour_rad_s"].iloc[2] / bouts["vigour_rad_s"].iloc[0] == pytest.approx(1, abs=0.15)
    np.testing.assert_allclose(bouts["effort_rad"], bouts["vigour_rad_s"] * bouts["duration_s"])
    np.testing.assert_allclose(bouts["vigour"], bouts["effort_rad"])  # the old column: effort

    tr = tracks.assign(state="active")
    pf = per_fish_metrics(tr, bouts, None, None)
    r = pf.iloc[0]
    assert r["mean_bout_vigour_rad_s"] == pytest.approx(bouts["vigour_rad_s"].mean())
    assert r["mean_bout_effort_rad"] == pytest.approx(bouts["effort_rad"].mean())
    assert r["mean_vigour"] == pytest.approx(r["mean_bout_effort_rad"])  # kept, = effort


def test_old_bout_tables_without_the_new_columns_still_give_vigour_in_rad_s():
    tracks = _fish("A1", _states(("active", 10)))
    bouts = pd.DataFrame({"fish": "A1", "arena": "A1", "start_s": [1.0, 4.0],
                          "duration_s": [0.2, 0.4], "vigour": [10.0, 20.0]})
    r = per_fish_metrics(tracks, bouts, None, None).iloc[0]
    assert r["mean_bout_vigour_rad_s"] == pytest.approx(50.0)  # 10 / 0.2 and 20 / 0.4
    assert r["mean_bout_effort_rad"] == pytest.approx(15.0)
