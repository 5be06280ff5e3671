"""Experiment layer: manifest validation, batch runner (inline, processes, dask), resume,
failures, atomic trial folders, lock, statistics re-computation and corrections.

Most tests use a stand-in trial function (``fixtures_experiment.fake_trial``) whose states
are known exactly, so per-fish metrics are checked against analytic truth; one test runs the
real pipeline on a tiny simulated video when the simulator and tracker are available.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures_experiment import (
    PROTOCOL,
    fake_arenas,
    fake_trial,
    plate_experiment,
    thread_probe_trial,
    true_passive_fraction,
    write_fake_video,
    write_manifest,
)

from fishtrack.errors import ConfigError, ManifestError, OutputError
from fishtrack.experiment import (
    compute_stats,
    output_lock,
    read_manifest,
    run_experiment,
    trial_names,
)

pytestmark = pytest.mark.timeout(180)

FAKE = {"trial_fn": fake_trial, "arenas_fn": fake_arenas}


def _run(manifest, config, out, **kw):
    return run_experiment(manifest, config, out, **FAKE, **kw)


@pytest.fixture(scope="module")
def baseline(plate_run):
    """One complete run (inline, with report) shared by the read-only tests (conftest's
    ``plate_run``: the same run serves tests/test_experiment_overlap.py and
    tests/test_experiment_worker.py)."""
    return plate_run


def _open_loop(per_fish: pd.DataFrame) -> pd.DataFrame:
    return per_fish[per_fish["phase"] == "open_loop"].set_index("fish_id")


# ------------------------------------------------------------------------------------------
# manifest


def test_read_manifest_normalises_a_spreadsheet_export(tmp_path):
    text = (
        "\ufeffVideo;Arena;Group;Fish ID;Dose;Exclude;Clutch\n"
        "day1\\plate1.mp4;a01;control;;0;;c1\n"
        "day1/plate1.mp4;B2;ketamine;k-7;10;jumped out;c1\n"
        ";;;;;;\n"
        "./day1/plate1.mp4;b1;ketamine;;10;yes;c2\n"
    )
    p = tmp_path / "m.csv"
    p.write_text(text, encoding="utf-8")
    man = read_manifest(p)
    t = man.table
    assert list(t["row"]) == [2, 3, 5]  # spreadsheet rows; the blank row is skipped
    assert list(t["video"]) == ["day1/plate1.mp4"] * 3
    assert list(t["arena"]) == ["A1", "B2", "B1"]
    assert list(t["fish_id"]) == ["plate1:A1", "k-7", "plate1:B1"]
    assert list(t["exclude"]) == [False, True, True]
    assert list(t["exclude_reason"]) == ["", "jumped out", ""]
    assert t["dose"].dtype.kind in "if" and list(t["dose"]) == [0, 10, 10]
    assert man.covariates == ["Clutch"] and list(t["Clutch"]) == ["c1", "c1", "c2"]


def test_read_manifest_non_utf8_is_read_as_windows_1252_with_a_warning(tmp_path):
    p = tmp_path / "m.csv"
    p.write_bytes("video,arena,group\nv.mp4,A1,kétamine\n".encode("cp1252"))
    with pytest.warns(UserWarning, match="not UTF-8"):
        man = read_manifest(p)
    assert man.table["group"].iloc[0] == "kétamine" and man.encoding == "cp1252"
    p.write_bytes("video,arena,group\nv.mp4,A1,kétamine\n".encode("utf-16"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_manifest(p).table["group"].iloc[0] == "kétamine"


def test_manifest_lists_every_problem_with_row_numbers(tmp_path):
    rows = [
        {"video": "a.mp4", "arena": "A1", "group": ""},  # row 2: empty group
        {"video": "a.mp4", "arena": "well 3", "group": "control"},  # row 3: bad arena
        {"video": "http://lab/a.mp4", "arena": "A2", "group": "control"},  # row 4: a URL
        {"video": "C:\\rig\\a.avi", "arena": "A3", "group": "control"},  # row 5: other OS
        {"video": "b.mp4", "arena": "A1", "group": "control"},  # rows 6, 7: same well
        {"video": "b.mp4", "arena": "a1", "group": "ketamine"},
        {"video": "c.mp4", "arena": "A1", "group": "control", "fish_id": "x"},  # 8, 9: same id
        {"video": "c.mp4", "arena": "A2", "group": "control", "fish_id": "x"},
    ]
    p = write_manifest(tmp_path / "m.csv", rows)
    with pytest.raises(ManifestError) as ei:
        read_manifest(p)
    probs = ei.value.problems
    text = str(ei.value)
    assert str(p) in text and "\n" not in text
    assert any(s.startswith("row 2: 'group' is empty") for s in probs)
    assert any(s.startswith("row 3: arena 'well 3'") for s in probs)
    assert any(s.startswith("row 4: video 'http://lab/a.mp4' is a URL") for s in probs)
    assert any(s.startswith("row 5: video 'C:\\rig\\a.avi' is a Windows path (drive C:)")
               for s in probs)
    # table-level problems come once the rows are individually valid
    rows = rows[4:]
    p = write_manifest(tmp_path / "m2.csv", rows)
    with pytest.raises(ManifestError) as ei:
        read_manifest(p)
    probs = ei.value.problems
    assert any(s.startswith("rows 2, 3 name the same well") for s in probs)
    assert any(s.startswith("rows 4, 5 have the same fish_id") for s in probs)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("video,group\nv.mp4,control\n", "missing required column arena"),
        ("video,arena,group\n", "header but no rows"),
        ("", "empty"),
        ("video,arena,group,group\nv,A1,a,b\n", "appears twice"),
        ("video,arena,group,row\nv,A1,a,3\n", "column 'row' is a name fishtrack adds"),
    ],
)
def test_manifest_table_errors(tmp_path, content, match):
    p = tmp_path / "m.csv"
    p.write_text(content, encoding="utf-8")
    with pytest.raises(ManifestError, match=match):
        read_manifest(p)


def test_manifest_missing_file_is_a_manifest_error(tmp_path):
    with pytest.raises(ManifestError, match="not found"):
        read_manifest(tmp_path / "nope.csv")


def test_manifest_paths_as_labs_write_them(tmp_path, monkeypatch):
    """Videos on a data drive named by absolute path, '~' and '../' paths, the manifest kept
    with the analysis: every path resolves as written; a missing one is reported by row."""
    drive, analysis = tmp_path / "drive", tmp_path / "analysis"
    write_fake_video(drive / "rig1" / "plate.mp4", {"A1": [(9, 12)], "A2": []})
    write_fake_video(drive / "rig2" / "plate.mp4", {"A1": [(10, 20)], "A2": []})
    write_fake_video(tmp_path / "home" / "v" / "p3.mp4", {"A1": [], "A2": [(8, 10)]})
    write_fake_video(analysis / "local.mp4", {"A1": [], "A2": []})
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    rows = [
        {"video": str(drive / "rig1" / "plate.mp4"), "arena": "A1", "group": "ketamine"},
        {"video": str(drive / "rig1" / "plate.mp4"), "arena": "A2", "group": "control"},
        {"video": "../drive/rig2/plate.mp4", "arena": "A1", "group": "ketamine"},
        {"video": "..\\drive\\rig2\\plate.mp4", "arena": "A2", "group": "control"},
        {"video": "~/v/p3.mp4", "arena": "A1", "group": "control"},
        {"video": "~/v/p3.mp4", "arena": "A2", "group": "ketamine"},
        {"video": str(analysis / "local.mp4"), "arena": "A1", "group": "control"},
    ]
    m = write_manifest(analysis / "manifest.csv", rows)
    man = read_manifest(m)
    assert man.videos == [(drive / "rig1" / "plate.mp4").as_posix(), "../drive/rig2/plate.mp4",
                          (tmp_path / "home" / "v" / "p3.mp4").as_posix(), "local.mp4"]
    res = _run(m, {"protocol": PROTOCOL}, analysis / "out", report=False)
    assert res.ok and res.trials["status"].tolist() == ["done"] * 4
    rig1 = drive.as_posix().strip("/").replace("/", "__") + "__rig1__plate"
    assert sorted(p.name for p in (analysis / "out" / "trials").iterdir()) == sorted(
        [rig1, "drive__rig2__plate", "local", "p3"])
    ol = _open_loop(res.per_fish)  # same-named videos: fish ids made unique like the folders
    assert ol["passive_fraction"].to_dict() == pytest.approx({
        f"{rig1}:A1": 3 / 12, f"{rig1}:A2": 0.0, "drive__rig2__plate:A1": 10 / 12,
        "drive__rig2__plate:A2": 0.0, "p3:A1": 0.0, "p3:A2": 2 / 12, "local:A1": 0.0})
    # the stored manifest resolves the same way when the statistics are re-computed
    again = compute_stats(analysis / "out", {"protocol": PROTOCOL}, report=False)
    assert again.per_fish["passive_fraction"].sum() == pytest.approx(res.per_fish["passive_fraction"].sum())
    # a path that does not exist: the row and the path, whether absolute or relative
    rows[0]["video"] = rows[1]["video"] = str(drive / "rig9" / "gone.mp4")
    rows[2]["video"] = rows[3]["video"] = "../drive/gone.mp4"
    m2 = write_manifest(analysis / "m2.csv", rows)
    with pytest.raises(ManifestError) as ei:
        _run(m2, {"protocol": PROTOCOL}, analysis / "out2")
    probs = ei.value.problems
    assert probs[0] == f"rows 2, 3: video '{(drive / 'rig9' / 'gone.mp4').as_posix()}' not found"
    assert probs[1] == f"rows 4, 5: video '../drive/gone.mp4' not found in {analysis}"


def _workbook(path: Path, sheets: dict[str, list[list]]) -> Path:
    import openpyxl

    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for name, rows in sheets.items():
        ws = wb.create_sheet(name)
        for r in rows:
            ws.append(r)
    wb.save(path)
    return path


def _set_cached_value(path: Path, cell: str, value: str) -> None:
    """Give a formula cell the value Excel would have saved with it (openpyxl saves none)."""
    import re
    import zipfile

    with zipfile.ZipFile(path) as z:
        items = {n: z.read(n) for n in z.namelist()}
    name = "xl/worksheets/sheet1.xml"
    xml = items[name].decode()
    xml, n = re.subn(rf'(<c r="{cell}"[^>]*>)(<f>[^<]*</f>)<v\s*/?>(</v>)?',
                     rf"\1\2<v>{value}</v>", xml)
    assert n == 1, xml
    xml = xml.replace(f'<c r="{cell}" t="str"', f'<c r="{cell}"')
    items[name] = xml.replace(f'<c r="{cell}"', f'<c r="{cell}" t="str"', 1).encode()
    with zipfile.ZipFile(path, "w") as z:
        for n, b in items.items():
            z.writestr(n, b)


def test_excel_manifest_values_only_any_sheet(tmp_path):
    """An .xlsx manifest: first sheet by default, another with ``sheet``; cells are read as
    values (numbers, booleans, dates, the value saved for a formula; a formula is never
    evaluated); the run stores the sheet as OUT/manifest.csv with the same row numbers."""
    import datetime as dt

    write_fake_video(tmp_path / "v" / "p1.mp4", {"A1": [(9, 12)], "A2": [], "B1": []})
    header = ["Video", "Arena", "Group", "Dose", "Exclude", "Born", "Label"]
    rows = [
        [None],  # a blank first row: the header is on row 2
        header,
        ["v/p1.mp4", "a01", "ketamine", 10, False, dt.datetime(2025, 3, 1), '=UPPER("k")'],
        ["v/p1.mp4", "A2", "control", 0.5, None, dt.datetime(2025, 3, 1, 14, 30), '=1+1'],
        ["v/p1.mp4", "B1", "control", 0, True, None, None],
    ]
    path = _workbook(tmp_path / "plates.xlsx", {"Plate 1": rows, "Plate 2": rows[1:3]})
    _set_cached_value(path, "G3", "K")  # as Excel saves it; G4's formula has no saved value
    man = read_manifest(path)
    t = man.table
    assert man.sheet == "Plate 1" and man.encoding == "xlsx"
    assert t["row"].tolist() == [3, 4, 5] and t["arena"].tolist() == ["A1", "A2", "B1"]
    assert t["dose"].tolist() == [10, 0.5, 0] and t["exclude"].tolist() == [False, False, True]
    assert t["Born"].tolist() == ["2025-03-01", "2025-03-01 14:30:00", ""]
    assert t["Label"].tolist() == ["K", "", ""]  # the saved value; '=1+1' is not computed
    assert read_manifest(path, sheet="Plate 2").table["row"].tolist() == [2]
    assert read_manifest(path, sheet="plate 2").sheet == "Plate 2"  # case ignored
    assert read_manifest(path, sheet="2").sheet == "Plate 2"  # or its position
    res = _run(path, {"protocol": PROTOCOL}, tmp_path / "out", report=False)
    assert res.ok and _open_loop(res.per_fish).loc["p1:A1", "passive_fraction"] == pytest.approx(0.25)
    stored = (tmp_path / "out" / "manifest.csv").read_text(encoding="utf-8")
    assert stored.splitlines()[1].startswith("Video,Arena,Group") and "ketamine" in stored
    assert read_manifest(tmp_path / "out" / "manifest.csv", root=tmp_path).table["row"].tolist() \
        == [3, 4, 5]
    state = json.loads((tmp_path / "out" / "experiment.json").read_text())
    assert state["manifest_sheet"] == "Plate 1"
    again = compute_stats(tmp_path / "out", {"protocol": PROTOCOL}, report=False)
    assert len(again.per_fish) == len(res.per_fish)


def test_excel_manifest_errors_name_the_file_sheet_row_and_column(tmp_path):
    from typer.testing import CliRunner

    from fishtrack.cli import app

    rows = [["video", "arena", "group"], ["p1.mp4", "well 3", "control"], ["p1.mp4", "A2", None]]
    path = _workbook(tmp_path / "m.xlsx", {"first": [["notes"]], "Plate 2": rows})
    with pytest.raises(ManifestError) as ei:
        read_manifest(path, sheet="Plate 2")
    text = str(ei.value)
    assert text.startswith(f"{path}, sheet 'Plate 2': 2 problems: ") and "\n" not in text
    assert ei.value.problems == ["row 2: arena 'well 3' is not a well name like A1 or H12",
                                 "row 3: 'group' is empty"]
    with pytest.raises(ManifestError, match=r"sheet 'first': 1 problem: missing required columns"):
        read_manifest(path)  # the first sheet by default
    cases = [
        (lambda: read_manifest(path, sheet="Plate 9"),
         f"{path}: has no sheet 'Plate 9' (sheets: 'first', 'Plate 2')"),
        (lambda: read_manifest(write_manifest(tmp_path / "m.csv", [{"video": "a", "arena": "A1",
                                                                     "group": "c"}]), sheet="1"),
         "is a CSV table, not an Excel workbook"),
    ]
    for fn, match in cases:
        with pytest.raises(ManifestError) as ei:
            fn()
        assert match in str(ei.value)
    for name, raw, match in [
        ("old.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(500), "is an old Excel .xls workbook"),
        ("cut.xlsx", path.read_bytes()[:300], "looks like a zip file (an Excel workbook?) but cannot"),
    ]:
        (tmp_path / name).write_bytes(raw)
        with pytest.raises(ManifestError, match=re.escape(match)):
            read_manifest(tmp_path / name)
    import zipfile

    with zipfile.ZipFile(tmp_path / "calc.ods", "w") as z:
        z.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
    with pytest.raises(ManifestError, match=r"OpenDocument spreadsheet \(.ods\)"):
        read_manifest(tmp_path / "calc.ods")
    # the CLI: exit 6, one line naming the file and the sheets
    r = CliRunner().invoke(app, ["run", str(path), "--sheet", "Plate 9", "--out", str(tmp_path / "o")])
    assert r.exit_code == 6 and "has no sheet 'Plate 9'" in r.output
    assert len(r.output.strip().splitlines()) == 1 and not (tmp_path / "o" / "trials").exists()


def test_missing_videos_and_wells_are_reported_together_before_any_work(tmp_path):
    write_fake_video(tmp_path / "p1.mp4", {"A1": [], "A2": []})
    rows = [
        {"video": "p1.mp4", "arena": "A1", "group": "control"},
        {"video": "gone.mp4", "arena": "A1", "group": "control"},  # row 3
        {"video": "p1.mp4", "arena": "H12", "group": "ketamine"},  # row 4
    ]
    m = write_manifest(tmp_path / "m.csv", rows)
    with pytest.raises(ManifestError) as ei:
        _run(m, {"protocol": PROTOCOL}, tmp_path / "out")
    probs = ei.value.problems
    assert len(probs) == 2
    assert probs[0].startswith("row 3: video 'gone.mp4' not found")
    assert probs[1].startswith("row 4: arena 'H12' does not exist in 'p1.mp4'")
    assert not (tmp_path / "out" / "trials").exists()  # no trial started
    assert not (tmp_path / "out" / ".fishtrack.lock").exists()


def test_unknown_reference_group_fails_before_work(tmp_path):
    write_fake_video(tmp_path / "p1.mp4", {"A1": []})
    m = write_manifest(tmp_path / "m.csv", [{"video": "p1.mp4", "arena": "A1", "group": "wt"}])
    with pytest.raises(ConfigError, match="reference_group"):
        _run(m, {}, tmp_path / "out")
    assert not (tmp_path / "out" / "trials").exists()


def test_protocol_log_per_video(tmp_path):
    write_fake_video(tmp_path / "v" / "p1.mp4", {"A1": [(9, 12)], "A2": []})
    log = tmp_path / "v" / "p1_log.csv"
    log.write_text("time_s,phase\n0,closed loop\n5,open loop\n20,end\n", encoding="utf-8")
    rows = [{"video": "v/p1.mp4", "arena": a, "group": g, "protocol": "v/p1_log.csv"}
            for a, g in (("A1", "ketamine"), ("A2", "control"))]
    m = write_manifest(tmp_path / "m.csv", rows)
    res = _run(m, {"protocol": PROTOCOL}, tmp_path / "out", report=False)
    prov = json.loads((tmp_path / "out/trials/p1/provenance.json").read_text())
    assert [(p["name"], p["start_s"], p["end_s"]) for p in prov["config"]["protocol"]] == [
        ("closed loop", 0.0, 5.0), ("open loop", 5.0, 20.0)]
    ol = _open_loop(res.per_fish)
    assert ol.loc["p1:A1", "passive_fraction"] == pytest.approx(3 / 15)
    # a missing log is a manifest problem, reported before work
    rows[0]["protocol"] = rows[1]["protocol"] = "v/missing.csv"
    m = write_manifest(tmp_path / "m2.csv", rows)
    with pytest.raises(ManifestError, match=r"rows 2, 3: protocol log 'v/missing.csv' not found"):
        _run(m, {"protocol": PROTOCOL}, tmp_path / "out2")


def test_config_per_video(tmp_path):
    """A per-video config replaces the experiment config for tracking that video only."""
    import yaml

    write_fake_video(tmp_path / "a.mp4", {"A1": [(9, 12)], "A2": []})
    write_fake_video(tmp_path / "b.mp4", {"A1": [(9, 12)], "A2": []})
    own = {"arenas": {"layout": "embedded", "rows": 1, "cols": 2}, "px_per_mm": 4.0,
           "protocol": [{"name": "ol", "kind": "open_loop", "start_s": 10.0, "end_s": 20.0}]}
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(own), encoding="utf-8")
    rows = [{"video": v, "arena": a, "group": g, "config": c}
            for v, c in (("a.mp4", ""), ("b.mp4", "b.yaml"))
            for a, g in (("A1", "ketamine"), ("A2", "control"))]
    m = write_manifest(tmp_path / "m.csv", rows)
    res = _run(m, {"protocol": PROTOCOL}, tmp_path / "out", report=False)
    prov_a = json.loads((tmp_path / "out/trials/a/provenance.json").read_text())
    prov_b = json.loads((tmp_path / "out/trials/b/provenance.json").read_text())
    assert prov_a["config"]["arenas"]["layout"] == "wells"
    assert prov_b["config"]["arenas"]["layout"] == "embedded"
    ol = _open_loop(res.per_fish)
    assert ol.loc["a:A1", "passive_fraction"] == pytest.approx(3 / 12)
    assert ol.loc["b:A1", "passive_fraction"] == pytest.approx(2 / 10)  # its own protocol
    assert ol.loc["b:A1", "distance_mm"] == pytest.approx(ol.loc["b:A1", "distance_px"] / 4.0)
    assert np.isnan(ol.loc["a:A1", "distance_mm"])  # no calibration in the experiment config
    # a broken per-video config is reported with the manifest problems
    (tmp_path / "b.yaml").write_text("arenas: {layout: moon}\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"rows 4, 5: .*b.yaml.*layout"):
        _run(m, {"protocol": PROTOCOL}, tmp_path / "out2")


def test_trial_names_are_stems_made_unique():
    assert trial_names(["a/x.mp4", "b/x.avi", "y.mp4"]) == {
        "a/x.mp4": "a__x", "b/x.avi": "b__x", "y.mp4": "y"}
    # absolute paths and paths above the manifest: folder names without '/' or '..'
    assert trial_names(["/data/rig1/x.avi", "/data/rig2/x.avi", "../v/y.avi"]) == {
        "/data/rig1/x.avi": "data__rig1__x", "/data/rig2/x.avi": "data__rig2__x",
        "../v/y.avi": "y"}


# ------------------------------------------------------------------------------------------
# a complete run


def test_run_outputs_match_truth(baseline):
    res, out, truth = baseline.res, baseline.out, baseline.e["truth"]
    assert res.ok and list(res.trials["status"]) == ["done", "done"]
    for name in ("per_fish.csv", "per_fish_bins.csv", "group_stats.csv", "report.html",
                 "manifest.csv", "config.yaml"):
        assert (out / name).stat().st_size > 0, name
    for trial in ("plate1", "plate2"):
        files = sorted(p.name for p in (out / "trials" / trial).iterdir()
                       if not p.name.startswith("."))  # hidden: kept inputs, not outputs
        assert files == ["bouts.csv", "epochs.csv", "provenance.json", "tracks.parquet"]
    ol = _open_loop(pd.read_csv(out / "per_fish.csv"))
    assert sorted(ol.index) == sorted(truth)  # plate2:B2 is tracked but not in the manifest
    for fid, pf in truth.items():
        assert ol.loc[fid, "passive_fraction"] == pytest.approx(pf, abs=1e-12)
    assert set(ol["group"]) == {"control", "ketamine"}
    assert list(ol.loc[["plate1:A1", "plate1:A2"], "dose"]) == [0, 10]
    assert list(ol.loc[["plate1:A1", "plate2:A1"], "clutch"]) == [1, 2]
    assert any("not in the manifest" in w and "B2" in w for w in res.warnings)
    gs = pd.read_csv(out / "group_stats.csv")
    row = gs[(gs["metric"] == "passive_fraction") & (gs["phase"] == "open_loop")].iloc[0]
    ctrl = [truth[f] for f in truth if ol.loc[f, "group"] == "control"]
    ket = [truth[f] for f in truth if ol.loc[f, "group"] == "ketamine"]
    assert (row["n"], row["n_reference"]) == (3, 4)
    # the manifest's clutch column is a block (stats.blocks): the difference is the
    # block-adjusted one (docs/assay_analyses.md)
    from fixtures_experiment import block_adjusted_diff

    assert row["diff"] == pytest.approx(block_adjusted_diff(
        truth, ol["group"].to_dict(), ol["clutch"].to_dict()))
    assert "within 2 blocks" in row["test"]
    assert np.mean(ket) - np.mean(ctrl) != pytest.approx(row["diff"])  # unbalanced clutches
    bins = pd.read_csv(out / "per_fish_bins.csv")
    b = bins[(bins["fish_id"] == "plate1:A2") & (bins["bin_start_s"] == 12.0)]
    assert b["passive_fraction"].iloc[0] == pytest.approx(true_passive_fraction([(10, 16)], 12, 16))


def test_progress_events(baseline):
    ev = baseline.events
    overall = [e for e in ev if e.kind == "overall"]
    assert [(e.done, e.total) for e in overall] == [(1, 2), (2, 2)]
    assert {e.status for e in overall} == {"done"}
    frames = [e for e in ev if e.kind == "trial" and e.status == "running" and e.total > 0]
    assert {e.trial for e in frames} == {"plate1", "plate2"}
    assert max(e.done for e in frames if e.trial == "plate1") == 200
    checks = [e for e in ev if e.kind == "check"]
    assert checks[-1].done == checks[-1].total == 2
    assert ev[-1].kind == "stats" and ev[-1].done == ev[-1].total


def test_resume_skips_current_trials_and_redoes_changed_ones(tmp_path):
    e = plate_experiment(tmp_path / "in")
    out = tmp_path / "out"
    _run(e["manifest"], e["config"], out, report=False)
    stamp = {t: (out / "trials" / t / "tracks.parquet").stat().st_mtime_ns for t in ("plate1", "plate2")}
    res = _run(e["manifest"], e["config"], out, report=False)
    assert list(res.trials["status"]) == ["skipped", "skipped"]
    assert all((out / "trials" / t / "tracks.parquet").stat().st_mtime_ns == stamp[t] for t in stamp)
    # the video changes -> that trial is redone; stats follow the new content
    write_fake_video(tmp_path / "in/videos/plate2.mp4",
                     {"A1": [(8, 20)], "A2": [(9, 18)], "B1": [], "B2": [(2, 4)]})
    res = _run(e["manifest"], e["config"], out, report=False)
    assert list(res.trials["status"]) == ["skipped", "done"]
    assert _open_loop(res.per_fish).loc["plate2:A1", "passive_fraction"] == 1.0
    # tracking config changes -> everything redone; stats or speed-only changes -> nothing
    cfg = {**e["config"], "stats": {**e["config"]["stats"], "bin_s": 6.0},
           "video": {"chunk_size": 16}}
    assert list(_run(e["manifest"], cfg, out, report=False).trials["status"]) == ["skipped"] * 2
    cfg = {**e["config"], "tracking": {"min_area_px": 12}}
    assert list(_run(e["manifest"], cfg, out, report=False).trials["status"]) == ["done"] * 2
    assert list(_run(e["manifest"], cfg, out, report=False, force=True).trials["status"]) == ["done"] * 2


def test_behaviour_change_reclassifies_without_retracking(tmp_path):
    e = plate_experiment(tmp_path / "in")
    out = tmp_path / "out"
    _run(e["manifest"], e["config"], out, report=False)
    cfg = {**e["config"], "behaviour": {"min_passive_s": 3.0}}
    res = _run(e["manifest"], cfg, out, report=False)
    assert list(res.trials["status"]) == ["reclassified"] * 2, res.trials
    prov = json.loads((out / "trials/plate1/provenance.json").read_text())
    assert prov["behaviour_config"]["min_passive_s"] == 3.0
    assert list(_run(e["manifest"], cfg, out, report=False).trials["status"]) == ["skipped"] * 2


def test_failing_trials_do_not_stop_the_others(tmp_path):
    root = tmp_path / "in"
    write_fake_video(root / "good.mp4", {"A1": [(9, 12)], "A2": []})
    write_fake_video(root / "bad.mp4", {"A1": [], "A2": []}, fail="fishtrack")
    write_fake_video(root / "crash.mp4", {"A1": [], "A2": []}, fail="crash")
    rows = [{"video": f"{v}.mp4", "arena": a, "group": g}
            for v in ("good", "bad", "crash") for a, g in (("A1", "ketamine"), ("A2", "control"))]
    m = write_manifest(root / "m.csv", rows)
    out = tmp_path / "out"
    res = _run(m, {"protocol": PROTOCOL}, out, report=False)
    assert not res.ok
    fails = {f.trial: f for f in res.failures}
    assert set(fails) == {"bad", "crash"}
    assert "simulated tracking failure" in fails["bad"].error and not fails["bad"].log
    assert "RuntimeError" in fails["crash"].error and Path(fails["crash"].log).exists()
    assert "simulated crash" in Path(fails["crash"].log).read_text()
    # no half trial under its final name, no temporary folders left
    assert sorted(p.name for p in (out / "trials").iterdir()) == ["good"]
    assert set(res.per_fish["fish_id"]) == {"good:A1", "good:A2"}
    assert sum("no complete outputs" in w for w in res.warnings) == 2
    # fixing the video lets the next run finish only the failed trials
    write_fake_video(root / "bad.mp4", {"A1": [], "A2": []})
    res = _run(m, {"protocol": PROTOCOL}, out, report=False)
    assert dict(zip(res.trials["trial"], res.trials["status"], strict=True)) == {
        "good": "skipped", "bad": "done", "crash": "failed"}


def test_leftovers_of_a_killed_run_are_cleaned(tmp_path):
    e = plate_experiment(tmp_path / "in")
    out = tmp_path / "out"
    _run(e["manifest"], e["config"], out, report=False)
    trials = out / "trials"
    part = trials / ".plate1.part-0badc0de"
    part.mkdir()
    (part / "tracks.parquet").write_bytes(b"half")
    os.rename(trials / "plate2", trials / ".plate2.old-12345678")  # killed between renames
    res = _run(e["manifest"], e["config"], out, report=False)
    assert sorted(p.name for p in trials.iterdir()) == ["plate1", "plate2"]
    assert list(res.trials["status"]) == ["skipped", "skipped"]


def test_lock_prevents_two_runs_on_one_folder(tmp_path):
    e = plate_experiment(tmp_path / "in")
    out = tmp_path / "out"
    _run(e["manifest"], e["config"], out, report=False)
    with output_lock(out):
        with pytest.raises(OutputError, match="another fishtrack run"):
            _run(e["manifest"], e["config"], out, report=False)
        with pytest.raises(OutputError, match="another fishtrack run"):
            compute_stats(out, report=False)
    # a lock left by a process that no longer exists is taken over
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    import socket

    (out / ".fishtrack.lock").write_text(json.dumps(
        {"pid": int(proc.stdout), "host": socket.gethostname(), "started_utc": "x"}))
    assert _run(e["manifest"], e["config"], out, report=False).ok
    assert not (out / ".fishtrack.lock").exists()


def test_two_local_workers_give_the_same_results(baseline, tmp_path):
    events = []
    res = _run(baseline.e["manifest"], baseline.e["config"], tmp_path / "out", workers=2,
               progress=events.append, report=False)
    assert res.ok and list(res.trials["status"]) == ["done", "done"]
    assert (tmp_path / "out/per_fish.csv").read_bytes() == (baseline.out / "per_fish.csv").read_bytes()
    assert (tmp_path / "out/group_stats.csv").read_bytes() == (baseline.out / "group_stats.csv").read_bytes()
    assert {e.trial for e in events if e.kind == "trial" and e.total == 200} == {"plate1", "plate2"}


@pytest.fixture(scope="module")
def local_cluster():
    """A real dask LocalCluster (2 single-threaded worker processes), started once for the
    tests of this module that run on one (each starts ~2-4 s of processes)."""
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        yield cluster


def test_dask_cluster_gives_the_same_results(baseline, local_cluster, tmp_path):
    res = _run(baseline.e["manifest"], baseline.e["config"], tmp_path / "out",
               scheduler=local_cluster.scheduler_address, report=False)
    assert res.ok, res.failures
    assert (tmp_path / "out/per_fish.csv").read_bytes() == (baseline.out / "per_fish.csv").read_bytes()


def _thread_caps(out: Path) -> list[dict]:
    return [json.loads((out / "trials" / p / "threads.json").read_text())
            for p in ("plate1", "plate2")]


@pytest.mark.timeout(300)
def test_workers_sharing_the_cores_cap_their_threads(local_cluster, tmp_path):
    """Two trials at once (2 local workers, a real 2-worker dask LocalCluster) each get half
    the usable cores for OpenCV, FFmpeg's decoding and the measuring threads, and a dask
    worker's fixed malloc thresholds are undone; one trial alone keeps the defaults (issue
    15: 2 workers oversubscribed 2 cores, the LocalCluster spent its time in page faults)."""
    import cv2

    from fishtrack._threads import usable_cores
    from fishtrack.tracking import tracker

    share = max(1, usable_cores() // 2)
    want = {"cv2": share, "measure": min(tracker.DEFAULT_MEASURE_THREADS, share), "decode": share}
    kw = {"trial_fn": thread_probe_trial, "arenas_fn": fake_arenas, "report": False}
    e = plate_experiment(tmp_path / "in")
    m, c = e["manifest"], e["config"]
    assert run_experiment(m, c, tmp_path / "w2", workers=2, **kw).ok
    assert run_experiment(m, c, tmp_path / "dask", scheduler=local_cluster, **kw).ok
    for caps in _thread_caps(tmp_path / "w2") + _thread_caps(tmp_path / "dask"):
        assert {k: caps[k] for k in want} == want, caps
    # dask's workers run with MALLOC_TRIM_THRESHOLD_ set (glibc's adaptive thresholds off:
    # every large array a fresh mmap, 1,024 page faults per 4 MB); the trial restores them
    for caps in _thread_caps(tmp_path / "dask"):
        assert caps["malloc_env"] and caps["faults"] < 50 * 1024 // 4, caps
    # one worker: the trial runs in this process, alone, with the libraries' defaults
    before = cv2.getNumThreads()
    assert run_experiment(m, c, tmp_path / "w1", workers=1, **kw).ok
    for caps in _thread_caps(tmp_path / "w1"):
        assert caps["pid"] == os.getpid() and caps["cv2"] == before
        assert caps["measure"] == tracker.DEFAULT_MEASURE_THREADS and caps["decode"] == 0


def test_compute_stats_after_exclusions_and_corrections(baseline, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(baseline.out, out)
    (out / "figures" / "old_figure.png").write_bytes(b"x")
    truth = baseline.e["truth"]
    # exclude plate1:A2 in the stored manifest copy
    man = pd.read_csv(out / "manifest.csv")
    man["exclude"] = np.where((man["video"] == "videos/plate1.mp4") & (man["arena"] == "A2"),
                              "bubble", "")
    man.to_csv(out / "manifest.csv", index=False)
    # plate1:A1 is active from 11 s on; a human marks 11-14 s passive
    pd.DataFrame([{"fish": "A1", "start_s": 11.0, "end_s": 14.0, "state": "passive",
                   "original_state": "active", "created_utc": "2024-01-01T00:00:00Z"}]
                 ).to_csv(out / "trials/plate1/corrections.csv", index=False)
    res = compute_stats(out)
    ol = _open_loop(res.per_fish)
    assert bool(ol.loc["plate1:A2", "exclude"]) and ol.loc["plate1:A2", "exclude_reason"] == "bubble"
    gs = res.group_stats
    row = gs[(gs["metric"] == "passive_fraction") & (gs["phase"] == "open_loop")].iloc[0]
    assert row["n"] == 2
    assert row["mean"] == pytest.approx(np.mean([truth["plate1:B2"], truth["plate2:A2"]]))
    assert ol.loc["plate1:A1", "passive_fraction"] == pytest.approx(
        true_passive_fraction([(9, 14)], 8, 20))
    assert ol.loc["plate1:B1", "passive_fraction"] == pytest.approx(truth["plate1:B1"])
    assert any("corrections applied" in w and "30 frame(s)" in w for w in res.warnings)
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Excluded fish" in html and "bubble" in html and "Manual corrections" in html
    assert not (out / "figures" / "old_figure.png").exists()  # stale figures removed
    assert list(res.trials["status"]) == ["done", "done"]  # from the last run


def test_compute_stats_needs_an_experiment_folder(tmp_path):
    from fishtrack.errors import FishtrackError

    with pytest.raises(FishtrackError, match="not an experiment folder"):
        compute_stats(tmp_path)


# ------------------------------------------------------------------------------------------
# the real pipeline on a tiny simulated video


def _real_pipeline_available() -> bool:
    try:
        from fishtrack.arenas import detect_arenas  # noqa: F401
        from fishtrack.behaviour import classify  # noqa: F401
        from fishtrack.io.video import open_video  # noqa: F401
        from fishtrack.synth import SimSpec, simulate  # noqa: F401
        from fishtrack.tracking import estimate_background, track_video  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _real_pipeline_available(), reason="simulator or tracker not available")
def test_real_pipeline_on_a_tiny_simulated_plate(tmp_path):
    from fixtures_experiment import simulate_tiny_plate

    sim = simulate_tiny_plate(tmp_path / "in")
    res = run_experiment(sim["manifest"], sim["config"], tmp_path / "out", report=False)
    assert res.ok, res.failures
    ol = _open_loop(res.per_fish)
    assert sorted(ol.index) == sorted(sim["truth"])
    for fid, pf in sim["truth"].items():
        assert ol.loc[fid, "passive_fraction"] == pytest.approx(pf, abs=0.05), fid
    assert list(run_experiment(sim["manifest"], sim["config"], tmp_path / "out",
                               report=False).trials["status"]) == ["skipped"]


def test_ethogram_bins_hold_whole_frames(tmp_path):
    """Bins are a whole number of frames, so a full record leaves no empty bin."""
    from fishtrack.experiment.aggregate import _ethogram, _ethogram_bin_s, _TrialData

    fps, dur = 50.0, 61.3
    (tmp_path / "trials/t").mkdir(parents=True)
    (tmp_path / "trials/t/provenance.json").write_text(
        json.dumps({"video": {"fps": fps, "duration_s": dur}}))
    width = _ethogram_bin_s(tmp_path, ["t"], n_columns=600)
    assert width == pytest.approx(6 / fps)  # 61.3 / 600 s = 5.1 frames -> 6 frames
    t = np.arange(int(dur * fps)) / fps
    state = np.where((t >= 10) & (t < 20), "passive", "active")
    tracks = pd.DataFrame({"time_s": t, "arena": "A1", "fish": "A1", "state": state})
    td = _TrialData("t", "t.mp4", tracks, pd.DataFrame(), pd.DataFrame(), [], {}, pd.DataFrame())
    eth = _ethogram(td, pd.DataFrame({"arena": ["A1"], "fish": ["A1"], "fish_id": ["t:A1"]}), width)
    n_bins = int(np.ceil(len(t) / 6))
    assert len(eth) == n_bins
    np.testing.assert_allclose(eth["bin_start_s"], np.arange(n_bins) * width)
    # majority state per 6-frame bin (no ties in this record)
    n_passive = np.bincount(np.arange(len(t)) // 6, weights=state == "passive")
    want = np.where(n_passive > 3, "passive", "active")
    assert list(eth["state"]) == list(want)
