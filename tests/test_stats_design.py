"""Designs (issue 13, points 11 and 14): within-fish conditions through the manifest and the
runner, and the confound warnings of the design checks."""

from __future__ import annotations

import pandas as pd
import pytest
from fixtures_experiment import PROTOCOL, fake_arenas, fake_trial, write_fake_video, write_manifest

from fishtrack.config import Phase
from fishtrack.errors import ManifestError
from fishtrack.experiment import read_manifest, run_experiment
from fishtrack.stats.design import design_warnings, plate_position

pytestmark = pytest.mark.timeout(180)


def _phases(*spec):
    return [Phase(name=n, kind=k, start_s=a, end_s=b) for n, k, a, b in spec]


# 14. confounds


def _plate(groups_by_well: dict[str, str], video="p1.mp4") -> pd.DataFrame:
    return pd.DataFrame({"video": video, "arena": list(groups_by_well),
                         "group": list(groups_by_well.values())})


def test_treatment_aligned_with_plate_columns_is_warned():
    # 2 x 4 plate: control in columns 1-2, ketamine in columns 3-4
    fish = _plate({f"{r}{c}": "control" if c <= 2 else "ketamine" for r in "AB"
                   for c in range(1, 5)})
    w = design_warnings(fish)
    assert len(w) == 1 and "aligned with the plate columns" in w[0]
    assert "control: columns 1-2" in w[0] and "ketamine: columns 3-4" in w[0]


def test_treatment_aligned_with_plate_rows_is_warned():
    fish = _plate({f"{r}{c}": "control" if r == "A" else "ketamine" for r in "AB"
                   for c in range(1, 4)})
    w = design_warnings(fish)
    assert len(w) == 1 and "aligned with the plate rows" in w[0]


def test_balanced_plate_gives_no_warning():
    # checkerboard: every row and every column holds both groups
    fish = _plate({f"{r}{c}": "control" if (ord(r) + c) % 2 else "ketamine" for r in "ABCD"
                   for c in range(1, 7)})
    assert design_warnings(fish) == []
    assert plate_position("b03") == ("B", 3) and plate_position("chamber") is None


def test_one_group_per_video_is_warned():
    fish = pd.concat([_plate({"A1": "control", "A2": "control"}, "day1.mp4"),
                      _plate({"A1": "ketamine", "A2": "ketamine"}, "day2.mp4")])
    w = design_warnings(fish)
    assert any("every video holds a single group" in x for x in w)


def test_pooling_videos_with_different_protocols_is_warned():
    checker = {f"{r}{c}": "control" if (ord(r) + c) % 2 else "ketamine" for r in "AB"
               for c in range(1, 3)}
    fish = pd.concat([_plate(checker, "a.mp4"), _plate(checker, "b.mp4")])
    p1 = _phases(("cl", "closed_loop", 0, 20), ("ol", "open_loop", 20, 70))
    p2 = _phases(("cl", "closed_loop", 0, 10), ("ol", "open_loop", 10, 40))
    assert design_warnings(fish, {"a.mp4": p1, "b.mp4": p1}) == []
    w = design_warnings(fish, {"a.mp4": p1, "b.mp4": p2})
    assert len(w) == 1 and "2 different protocols" in w[0] and "confounded" not in w[0]
    # worse: the groups are not recorded in the same proportions under each protocol
    fish2 = pd.concat([_plate({"A1": "control", "A2": "control", "B1": "ketamine"}, "a.mp4"),
                       _plate({"A1": "ketamine", "A2": "ketamine", "B1": "control"}, "b.mp4")])
    w = design_warnings(fish2, {"a.mp4": p1, "b.mp4": p2})
    assert any("confounded" in x for x in w)


# 11. within-fish designs through the manifest


def test_manifest_accepts_a_fish_in_several_videos_with_a_condition_column(tmp_path):
    rows = [{"video": "v1.mp4", "arena": "A1", "group": "all", "fish_id": "f1",
             "condition": "before"},
            {"video": "v2.mp4", "arena": "A1", "group": "all", "fish_id": "f1",
             "condition": "after"}]
    man = read_manifest(write_manifest(tmp_path / "m.csv", rows))
    assert list(man.table["fish_id"]) == ["f1", "f1"]
    assert list(man.table["condition"]) == ["before", "after"]
    # a fish keeps its group
    bad = [dict(rows[0]), dict(rows[1], group="ketamine")]
    with pytest.raises(ManifestError, match="is in groups 'all', 'ketamine'.*'condition' column"):
        read_manifest(write_manifest(tmp_path / "m2.csv", bad))
    # without a condition (or trial) column a repeated fish_id is still a typo
    plain = [{k: v for k, v in r.items() if k != "condition"} for r in rows]
    with pytest.raises(ManifestError, match="same fish_id.*'condition'"):
        read_manifest(write_manifest(tmp_path / "m3.csv", plain))
    # and never twice in one video
    twice = [dict(rows[0]), dict(rows[1], video="v1.mp4", arena="A2")]
    with pytest.raises(ManifestError, match="same fish_id in one video"):
        read_manifest(write_manifest(tmp_path / "m4.csv", twice))


def test_before_after_experiment_runs_with_paired_statistics(tmp_path):
    """The reproducing case: the same fish recorded before and after treatment. It used to
    fail in the statistics step ('a fish appears in two groups')."""
    wells = ["A1", "A2", "B1", "B2"]
    start = {w: 9.0 + 0.5 * i for i, w in enumerate(wells)}
    before = {w: [(start[w], start[w] + d)] for w, d in zip(wells, [1, 1.5, 1, 2], strict=True)}
    after = {w: [(start[w], start[w] + d)] for w, d in zip(wells, [6, 7, 5.5, 8], strict=True)}
    write_fake_video(tmp_path / "in/before.mp4", before)
    write_fake_video(tmp_path / "in/after.mp4", after)
    rows = [{"video": f"{c}.mp4", "arena": w, "group": "wt", "fish_id": f"fish{w}",
             "condition": c} for c in ("before", "after") for w in wells]
    manifest = write_manifest(tmp_path / "in/manifest.csv", rows)
    config = {"protocol": PROTOCOL,
              "stats": {"reference_group": "wt", "reference_condition": "before",
                        "n_bootstrap": 200, "n_permutations": 200, "bin_s": 4.0}}
    res = run_experiment(manifest, config, tmp_path / "out", trial_fn=fake_trial,
                         arenas_fn=fake_arenas)
    assert res.failures == []
    prim = res.group_stats[res.group_stats["role"] == "primary"].iloc[0]
    assert (prim["design"], prim["group"], prim["reference"], prim["stratum"]) == (
        "paired", "after", "before", "wt")
    assert prim["n"] == 4 and prim["test"] == "sign-flip-exact"
    # passive seconds more after treatment, of the 12 s of open loop: 5, 5.5, 4.5, 6
    assert prim["diff"] == pytest.approx(21 / 4 / 12)
    assert prim["p_value"] == pytest.approx(2 / 16)  # 4 fish: 16 sign patterns
    html = (tmp_path / "out/report.html").read_text(encoding="utf-8")
    assert "after vs before within fish of group wt" in html
    # the ethogram has one row per fish and trial (a fish recorded twice is not overdrawn)
    from fishtrack.report import _ethogram_rows

    etho = pd.DataFrame({"fish_id": ["f", "f", "g"], "bin_start_s": 0.0, "state": "active",
                         "trial_dir": ["before", "after", "before"]})
    rows, fish = _ethogram_rows(etho, pd.DataFrame({"fish_id": ["f", "g"], "group": "wt",
                                                    "exclude": False}))
    assert sorted(rows["fish_id"]) == ["f (after)", "f (before)", "g"]
    assert sorted(fish["fish_id"]) == ["f (after)", "f (before)", "g"]
