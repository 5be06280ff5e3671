"""Onset-locked averages on recordings with a known answer: bouts at 2 Hz until each fish
gives up, and a co-recorded signal with a known step at passivity onset."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fishtrack.config import Phase, StatsConfig
from fishtrack.stats.eventlocked import event_locked, events_table, group_traces, onset_stats

FPS = 10.0
PROTOCOL = [Phase(name="cl1", kind="closed_loop", start_s=0, end_s=30),
            Phase(name="ol1", kind="open_loop", start_s=30, end_s=90),
            Phase(name="cl2", kind="closed_loop", start_s=90, end_s=120)]
STEP = {"control": 1.0, "ketamine": 2.0}


@pytest.fixture(scope="module")
def recording():
    """6 fish per group; fish i gives up at 50 + 2 i s for 15 s; the signal is 1 before and
    1 + STEP[group] during the give-up (plus noise); bouts every 0.5 s while active."""
    rng = np.random.default_rng(0)
    t = np.arange(int(120 * FPS)) / FPS
    tracks, bouts, epochs, sig, ft = [], [], [], [], []
    for g in STEP:
        for i in range(6):
            arena = f"{'A' if g == 'control' else 'B'}{i + 1}"
            on, off = 50.0 + 2 * i, 65.0 + 2 * i
            passive = (t >= on - 1e-9) & (t < off - 1e-9)
            tracks.append(pd.DataFrame({"frame": np.arange(len(t)), "time_s": t, "arena": arena,
                                        "fish": arena, "detected": True,
                                        "state": np.where(passive, "passive", "active")}))
            starts = [s for s in np.arange(0, 120, 0.5) if not (on - 0.5 < s < off)]
            bouts += [{"arena": arena, "fish": arena, "start_s": s, "duration_s": 0.2,
                       "vigour_rad_s": 10.0 + (5.0 if on - 10 <= s < on else 0.0)}
                      for s in starts]
            epochs.append({"arena": arena, "fish": arena, "state": "passive", "start_s": on,
                           "end_s": off})
            ts = np.arange(0, 120, 0.05)  # the signal's own sampling (20 Hz)
            val = 1.0 + STEP[g] * ((ts >= on) & (ts < off)) + rng.normal(0, 0.05, len(ts))
            sig.append(pd.DataFrame({"time_s": ts, "arena": arena, "dff": val}))
            ft.append({"arena": arena, "group": g})
    return (pd.concat(tracks, ignore_index=True), pd.DataFrame(bouts), pd.DataFrame(epochs),
            pd.concat(sig, ignore_index=True), pd.DataFrame(ft))


@pytest.fixture(scope="module")
def traces(recording):
    tracks, bouts, epochs, sig, ft = recording
    ev = events_table(tracks, epochs, PROTOCOL, ft)
    return ev, event_locked(tracks, bouts, ev, pre_s=10, post_s=10, bin_s=1.0, signals=sig)


def test_events(traces):
    ev, _ = traces
    counts = ev.groupby("event").size().to_dict()
    assert counts == {"give-up onset": 12, "open-loop onset": 12, "closed-loop onset": 12}
    gu = ev[ev["event"] == "give-up onset"].set_index("arena")["time_s"]
    assert gu["A1"] == pytest.approx(50.0) and gu["B6"] == pytest.approx(60.0)


def test_bout_rate_and_vigour_around_give_up(traces):
    _, tr = traces
    rate = tr[(tr["event"] == "give-up onset") & (tr["signal"] == "bout_rate_hz")]
    bins = rate[rate["window"] == "bin"]
    before = bins[bins["t_rel_s"] < 0]
    after = bins[bins["t_rel_s"] >= 0]
    assert before["value"].to_numpy() == pytest.approx(2.0)
    assert after["value"].to_numpy() == pytest.approx(0.0)
    w = rate.set_index(["fish_id", "window"])["value"]
    assert w.xs("before", level="window").to_numpy() == pytest.approx(2.0)
    vig = tr[(tr["event"] == "give-up onset") & (tr["signal"] == "bout_vigour_rad_s")
             & (tr["window"] == "before")]
    assert vig["value"].to_numpy() == pytest.approx(15.0)  # struggle before giving up


def test_signal_step_at_passivity_onset(traces):
    _, tr = traces
    gt = group_traces(tr)
    s = gt[(gt["event"] == "give-up onset") & (gt["signal"] == "signal:dff")]
    for g, step in STEP.items():
        sub = s[s["group"] == g].set_index("t_rel_s")
        assert sub.loc[-5.0, "mean"] == pytest.approx(1.0, abs=0.02)
        assert sub.loc[3.0, "mean"] == pytest.approx(1.0 + step, abs=0.02)
        assert sub.loc[3.0, "ci_low"] < sub.loc[3.0, "mean"] < sub.loc[3.0, "ci_high"]
        assert sub.loc[3.0, "ci_high"] - sub.loc[3.0, "ci_low"] < 0.05
        assert (sub["n_fish"] == 6).all()
    st = onset_stats(tr, StatsConfig(n_permutations=2000))
    st = st[(st["event"] == "give-up onset") & (st["signal"] == "signal:dff")]
    within = st[st["comparison"] == "after vs before"].set_index("group")
    for g, step in STEP.items():
        assert within.loc[g, "diff"] == pytest.approx(step, abs=0.02)
        assert within.loc[g, "p_value"] <= 2 / 64 + 1e-12  # exact sign-flip, 6 fish
    did = st[st["comparison"].str.startswith("change vs reference")].iloc[0]
    assert did["group"] == "ketamine" and did["diff"] == pytest.approx(1.0, abs=0.02)
    assert did["ci_low"] < 1.0 < did["ci_high"]


def test_open_loop_onset_window_straddles_the_transition(traces):
    _, tr = traces
    s = tr[(tr["event"] == "open-loop onset") & (tr["signal"] == "signal:dff")
           & (tr["window"] == "after")]
    assert s["value"].to_numpy() == pytest.approx(1.0, abs=0.02)  # no give-up yet


def test_figure_leaves_bins_without_data_empty():
    # vigour right after a give-up onset has no bout: those bins are gaps, not a line
    # bridging the last bin before the onset to the first bout after it
    from fishtrack.report.figures import event_locked_figure

    t = [-2.0, -1.0, 2.0, 3.0]
    rows = [{"event": "give-up onset", "signal": "bout_vigour_rad_s", "group": "control",
             "t_rel_s": x, "mean": 10.0 + x, "ci_low": 9.0 + x, "ci_high": 11.0 + x,
             "n_fish": 3} for x in t]
    rows.append({"event": "give-up onset", "signal": "bout_rate_hz", "group": "control",
                 "t_rel_s": 0.0, "mean": 0.0, "ci_low": 0.0, "ci_high": 0.0, "n_fish": 3})
    fig = event_locked_figure(pd.DataFrame(rows))
    ax = next(a for a in fig.axes if a.get_ylabel().startswith("bout vigour"))
    line = next(ln for ln in ax.get_lines() if len(ln.get_xdata()) > 2)
    x, y = np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)
    assert np.isnan(y[(x >= 0) & (x < 2)]).all() and (x == 0).any() and (x == 1).any()
    assert y[x == -1.0][0] == 9.0 and y[x == 2.0][0] == 12.0
