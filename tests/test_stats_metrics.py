"""Per-fish metrics and binned passive fraction against hand-built tables with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fishtrack.config import Phase
from fishtrack.errors import FishtrackError, ManifestError
from fishtrack.stats import binned_passive_fraction, per_fish_metrics
from fishtrack.stats.simulate import simulate_experiment

FPS = 10.0


def _phases(*spec):
    return [Phase(name=n, kind=k, start_s=a, end_s=b) for n, k, a, b in spec]


PROTOCOL = _phases(("cl", "closed_loop", 0, 10), ("ol", "open_loop", 10, 20))


def _fish_frames(arena, states, x=None, y=None, detected=None):
    n = len(states)
    frame = np.arange(n)
    return pd.DataFrame(
        {
            "frame": frame,
            "time_s": frame / FPS,
            "arena": arena,
            "fish": arena,
            "x": np.zeros(n) if x is None else x,
            "y": np.zeros(n) if y is None else y,
            "detected": np.ones(n, bool) if detected is None else detected,
            "state": states,
        }
    )


def _epochs_from_states(tr):
    """Runs of one state per fish (end_s exclusive), like the behaviour stage."""
    rows = []
    for (arena, fish), g in tr.groupby(["arena", "fish"]):
        st = g["state"].to_numpy()
        t = g["time_s"].to_numpy()
        brk = np.r_[True, st[1:] != st[:-1]]
        s = np.flatnonzero(brk)
        e = np.r_[s[1:] - 1, len(st) - 1]
        for a, b in zip(s, e, strict=True):
            rows.append({"fish": fish, "arena": arena, "state": st[a], "start_s": t[a],
                         "end_s": t[b] + 1 / FPS, "duration_s": t[b] + 1 / FPS - t[a]})
    return pd.DataFrame(rows)


@pytest.fixture
def two_fish():
    # fish A1: active 0-5 s, passive 5-8 s, active 8-10 s, unknown 10-12 s (not detected),
    # active 12-16 s, passive 16-20 s. Moves 1 px/frame during frames 0-9 (x), 2 px/frame
    # during frames 120-129 (y).
    st = np.array(["active"] * 50 + ["passive"] * 30 + ["active"] * 20 + ["unknown"] * 20
                  + ["active"] * 40 + ["passive"] * 40, dtype=object)
    x = np.r_[np.arange(10.0), np.full(190, 9.0)]
    y = np.r_[np.zeros(120), 2.0 * np.arange(10), np.full(70, 18.0)]
    det = np.ones(200, bool)
    det[100:120] = False
    x[100:120] = np.nan
    y[100:120] = np.nan
    a1 = _fish_frames("A1", st, x, y, det)
    # fish A2: never passive
    a2 = _fish_frames("A2", np.array(["active"] * 200, dtype=object))
    tracks = pd.concat([a1, a2], ignore_index=True)
    bouts = pd.DataFrame(
        {
            "fish": ["A1", "A1", "A1"],
            "arena": ["A1", "A1", "A1"],
            "start_s": [1.0, 2.0, 13.0],
            "duration_s": [0.2, 0.4, 0.3],
            "beat_hz": [20.0, 30.0, np.nan],
            "vigour": [5.0, 7.0, 9.0],
        }
    )
    return tracks, bouts, _epochs_from_states(tracks)


def _row(pf, fish, phase):
    sel = pf[(pf["fish"] == fish) & (pf["phase"] == phase)]
    assert len(sel) == 1
    return sel.iloc[0]


def test_per_phase_metrics_match_hand_computed_values(two_fish):
    tracks, bouts, epochs = two_fish
    pf = per_fish_metrics(tracks, bouts, epochs, PROTOCOL, px_per_mm=3.0)
    cl, ol = _row(pf, "A1", "cl"), _row(pf, "A1", "ol")
    assert cl["passive_fraction"] == pytest.approx(30 / 100)
    assert ol["passive_fraction"] == pytest.approx(40 / 80)  # unknown frames excluded
    assert ol["detected_fraction"] == pytest.approx(0.8)
    assert ol["known_fraction"] == pytest.approx(0.8)
    assert cl["n_passive_epochs"] == 1 and ol["n_passive_epochs"] == 1
    assert cl["mean_passive_epoch_s"] == pytest.approx(3.0)
    # the open-loop give-up (16-20 s) is cut by the end of the record: not in the mean
    assert np.isnan(ol["mean_passive_epoch_s"]) and ol["n_complete_passive_epochs"] == 0
    assert cl["latency_to_first_passive_s"] == pytest.approx(5.0)
    # lost at the open-loop onset (10-12 s): the clock starts at its first swim at 12 s
    assert ol["latency_origin_s"] == pytest.approx(2.0)
    assert ol["latency_to_first_passive_s"] == pytest.approx(4.0)
    assert not cl["latency_censored"] and not ol["latency_censored"]
    assert cl["bout_rate_hz"] == pytest.approx(2 / 10.0)
    assert ol["bout_rate_hz"] == pytest.approx(1 / 8.0)  # per second of known state
    assert cl["mean_bout_duration_s"] == pytest.approx(0.3)
    assert cl["mean_beat_hz"] == pytest.approx(25.0)
    assert np.isnan(ol["mean_beat_hz"])  # its only bout has no beat frequency
    assert ol["mean_vigour"] == pytest.approx(9.0)
    assert cl["distance_px"] == pytest.approx(9.0)
    assert ol["distance_px"] == pytest.approx(18.0)
    assert ol["distance_mm"] == pytest.approx(6.0)


def test_never_passive_fish_is_censored_at_phase_duration(two_fish):
    tracks, bouts, epochs = two_fish
    pf = per_fish_metrics(tracks, bouts, epochs, PROTOCOL)
    for phase in ("cl", "ol", "closed_loop", "open_loop"):
        r = _row(pf, "A2", phase)
        assert r["latency_censored"]
        assert r["latency_to_first_passive_s"] == pytest.approx(10.0)
        assert r["passive_fraction"] == 0
        assert r["n_passive_epochs"] == 0
        assert np.isnan(r["mean_passive_epoch_s"])
        assert r["bout_rate_hz"] == 0
        assert np.isnan(r["mean_bout_duration_s"])


def test_pooled_rows_equal_single_phase_of_their_kind(two_fish):
    tracks, bouts, epochs = two_fish
    pf = per_fish_metrics(tracks, bouts, epochs, PROTOCOL)
    assert list(pf.loc[pf["fish"] == "A1", "phase"]) == ["cl", "ol", "closed_loop", "open_loop"]
    assert pf.loc[pf["phase"].isin(["closed_loop", "open_loop"]), "pooled"].all()
    cols = ["passive_fraction", "n_passive_epochs", "latency_to_first_passive_s",
            "bout_rate_hz", "distance_px"]
    a = _row(pf, "A1", "ol")[cols].astype(float).to_numpy()
    b = _row(pf, "A1", "open_loop")[cols].astype(float).to_numpy()
    np.testing.assert_allclose(a, b)


def test_epoch_across_a_phase_boundary_belongs_to_its_phase_and_pooled_latency_concatenates():
    protocol = _phases(("cl1", "closed_loop", 0, 10), ("ol1", "open_loop", 10, 20),
                       ("cl2", "closed_loop", 20, 30))
    # B1: passive 8-14 s (across cl1/ol1). B2: passive only at 25-27 s (in cl2).
    s1 = np.array(["active"] * 80 + ["passive"] * 60 + ["active"] * 160, dtype=object)
    s2 = np.array(["active"] * 250 + ["passive"] * 20 + ["active"] * 30, dtype=object)
    tracks = pd.concat([_fish_frames("B1", s1), _fish_frames("B2", s2)], ignore_index=True)
    pf = per_fish_metrics(tracks, None, _epochs_from_states(tracks), protocol)
    cl1, ol1 = _row(pf, "B1", "cl1"), _row(pf, "B1", "ol1")
    assert cl1["mean_passive_epoch_s"] == pytest.approx(6.0)  # whole epoch, in its phase
    assert ol1["n_passive_epochs"] == 0 and np.isnan(ol1["mean_passive_epoch_s"])
    assert cl1["latency_to_first_passive_s"] == pytest.approx(8.0)
    # passive at the open-loop onset: recovery, not a give-up; at risk from 14 s
    assert ol1["passive_at_start"] and ol1["latency_origin_s"] == pytest.approx(4.0)
    assert ol1["latency_censored"] and ol1["latency_to_first_passive_s"] == pytest.approx(6.0)
    pooled = _row(pf, "B2", "closed_loop")
    assert pooled["latency_to_first_passive_s"] == pytest.approx(10.0 + 5.0)
    assert not pooled["latency_censored"]
    assert pooled["passive_fraction"] == pytest.approx(20 / 200)
    never = _row(pf, "B1", "closed_loop")
    assert never["latency_to_first_passive_s"] == pytest.approx(8.0)
    ol_b2 = _row(pf, "B2", "open_loop")
    assert ol_b2["latency_censored"] and ol_b2["latency_to_first_passive_s"] == pytest.approx(10)


def test_recording_shorter_than_phase_censors_at_observed_end():
    st = np.array(["active"] * 150, dtype=object)  # 15 s recorded, phase 10-20 s
    pf = per_fish_metrics(_fish_frames("C1", st), None, None, PROTOCOL)
    r = _row(pf, "C1", "ol")
    assert r["latency_censored"] and r["latency_to_first_passive_s"] == pytest.approx(5.0)


def test_fish_table_join_groups_ids_and_covariates(two_fish):
    tracks, bouts, epochs = two_fish
    table = pd.DataFrame({"fish_id": ["f1", "f2"], "video": ["v.avi", "v.avi"],
                          "arena": ["A1", "A2"], "group": ["control", "ketamine"],
                          "dose": [0.0, 10.0], "phase": ["x", "y"]})
    pf = per_fish_metrics(tracks, bouts, epochs, PROTOCOL, table)
    r = _row(pf, "A2", "ol")
    assert (r["fish_id"], r["group"], r["dose"], r["video"]) == ("f2", "ketamine", 10.0, "v.avi")
    assert r["phase"] == "ol" and r["phase_manifest"] == "y"  # clashing names are kept apart
    # an arena missing from the table keeps an empty group
    pf2 = per_fish_metrics(tracks, bouts, epochs, PROTOCOL, table.iloc[:1])
    assert pd.isna(_row(pf2, "A2", "ol")["group"])


def test_fish_table_errors(two_fish):
    tracks, bouts, epochs = two_fish
    dup = pd.DataFrame({"arena": ["A1", "A1"], "group": ["a", "b"]})
    with pytest.raises(ManifestError, match="more than once"):
        per_fish_metrics(tracks, bouts, epochs, PROTOCOL, dup)
    multi = pd.DataFrame({"video": ["a", "b"], "arena": ["A1", "A2"], "group": ["a", "b"]})
    with pytest.raises(ManifestError, match="videos"):
        per_fish_metrics(tracks, bouts, epochs, PROTOCOL, multi)
    with pytest.raises(ManifestError, match="group"):
        per_fish_metrics(tracks, bouts, epochs, PROTOCOL, pd.DataFrame({"arena": ["A1"]}))


def test_input_errors(two_fish):
    tracks, bouts, epochs = two_fish
    with pytest.raises(FishtrackError, match="state"):
        per_fish_metrics(tracks.drop(columns="state"), bouts, epochs, PROTOCOL)
    with pytest.raises(FishtrackError, match="overlap"):
        per_fish_metrics(tracks, bouts, epochs,
                         _phases(("a", "other", 0, 10), ("b", "other", 5, 20)))
    with pytest.raises(FishtrackError, match="reserved"):
        per_fish_metrics(tracks, bouts, epochs,
                         _phases(("open_loop", "open_loop", 0, 10), ("x", "open_loop", 10, 20)))


def test_no_protocol_gives_one_phase_all(two_fish):
    tracks, bouts, epochs = two_fish
    pf = per_fish_metrics(tracks, bouts, epochs, [])
    r = _row(pf, "A1", "all")
    assert r["passive_fraction"] == pytest.approx(70 / 180)
    assert r["n_passive_epochs"] == 2
    assert len(pf) == 2


def test_binned_passive_fraction(two_fish):
    tracks, _, _ = two_fish
    b = binned_passive_fraction(tracks, PROTOCOL, 5.0)
    a1 = b[b["fish"] == "A1"]
    np.testing.assert_allclose(a1["bin_start_s"], [0, 5, 10, 15])
    np.testing.assert_allclose(a1["passive_fraction"], [0.0, 30 / 50, 0.0, 40 / 50])
    np.testing.assert_array_equal(a1["n_frames"], [50, 50, 30, 50])
    # bins never cross a phase boundary: the last bin of a phase is shorter
    b4 = binned_passive_fraction(tracks, PROTOCOL, 4.0)
    a1 = b4[(b4["fish"] == "A1") & (b4["phase"] == "cl")]
    np.testing.assert_allclose(a1["bin_end_s"], [4, 8, 10])
    np.testing.assert_allclose(a1["passive_fraction"], [0.0, 30 / 40, 0.0])
    with pytest.raises(FishtrackError, match="bin_s"):
        binned_passive_fraction(tracks, PROTOCOL, 0)


def test_simulated_passive_fraction_is_recovered_exactly():
    sim = simulate_experiment(4, passive_mean={"control": 0.3, "ketamine": 0.5},
                              protocol=_phases(("cl1", "closed_loop", 0, 30),
                                               ("ol1", "open_loop", 30, 90)),
                              n_trials=2, seed=3)
    pf = per_fish_metrics(sim.tracks, sim.bouts, sim.epochs, sim.protocol, sim.fish_table)
    m = pf[~pf["pooled"]].merge(sim.truth, on=["fish_id", "video", "phase"],
                                suffixes=("", "_true"))
    assert len(m) == 4 * 2 * 2 * 2
    np.testing.assert_allclose(m["passive_fraction"], m["passive_fraction_true"], atol=1e-12)
    assert set(pf["group"]) == {"control", "ketamine"}
    assert pf.groupby(["fish_id", "phase"]).size().max() == 2  # two trials per fish


def test_fish_keys_match_across_int_and_float_tables(two_fish):
    tracks, bouts, epochs = two_fish
    ids = {"A1": 0, "A2": 1}
    t2 = tracks.drop(columns="arena").assign(fish=tracks["fish"].map(ids))
    e2 = epochs.drop(columns="arena").assign(fish=epochs["fish"].map(ids).astype(float))
    b2 = bouts.drop(columns="arena").assign(fish=bouts["fish"].map(ids).astype(float))
    pf = per_fish_metrics(t2, b2, e2, PROTOCOL)
    r = _row(pf, "0", "ol")
    assert r["fish_id"] == "0"
    assert r["n_passive_epochs"] == 1 and r["mean_vigour"] == pytest.approx(9.0)
