"""The worker side of an experiment imports only what a trial needs (issue 15: per-worker
fixed costs): a spawned worker or a dask worker unpickles ``_execute_trial`` and imports its
module, which must not pull in the statistics (scipy.stats), the report or the importers."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

HEAVY = ("scipy", "scipy.stats", "fishtrack.stats", "fishtrack.report", "fishtrack.importers",
         "fishtrack.align", "fishtrack.experiment.aggregate", "fishtrack.experiment.runner",
         "matplotlib", "distributed")


def _heavy_after_unpickling(obj) -> str:
    """The heavy modules a fresh process holds after unpickling ``obj`` (as a worker does)."""
    import pickle

    code = ("import pickle, sys; pickle.loads(sys.stdin.buffer.read()); "
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], input=pickle.dumps(obj),
                         capture_output=True, env=env, check=True, timeout=120)
    return out.stdout.decode().strip()


def test_worker_entry_point_imports_no_statistics():
    from fishtrack.experiment import TrialTask, track_trial
    from fishtrack.experiment.runner import _execute_trial

    # what a process pool or dask pickles: functions and the task, by module and name
    for obj in (_execute_trial, TrialTask, track_trial):
        assert obj.__module__ == "fishtrack.experiment.worker"
    assert _heavy_after_unpickling(_execute_trial) == ""


def test_arena_check_imports_no_statistics():
    """The wells check runs on the workers before any trial (issue 15, 2 workers' scaling):
    with its entry point in the runner, every worker imported the statistics for it."""
    from fishtrack.experiment import detect_video_arenas
    from fishtrack.experiment.runner import _check_arenas

    for obj in (_check_arenas, detect_video_arenas):
        assert obj.__module__ == "fishtrack.experiment.worker"
    assert _heavy_after_unpickling((_check_arenas, detect_video_arenas)) == ""


def test_run_estimates_each_background_once_and_a_touched_video_again(tmp_path):
    """The wells check saves the video's background and arenas; the trial loads them instead
    of estimating the background a second time (issue 15: ~0.75 s of CPU per video). A video
    touched, or a config changed, since the check is estimated again, with the same tracks."""
    from fixtures_experiment import simulate_tiny_plate

    from fishtrack.config import load_config
    from fishtrack.experiment import run_experiment
    from fishtrack.experiment.worker import detect_video_arenas, found_path
    from fishtrack.found import found_key, load_found
    from fishtrack.pipeline import track_to_folder
    from fishtrack.trial import TrialFolder

    sim = simulate_tiny_plate(tmp_path / "in")
    out = tmp_path / "out"
    res = run_experiment(sim["manifest"], sim["config"], out, report=False)
    assert res.ok, res.failures
    trial = TrialFolder(out / "trials" / "plate")
    assert trial.provenance().data["background_reused"] is True  # the check's, not a second one
    assert not found_path(out, "plate").exists()  # removed once the trial is done
    assert [a["name"] for a in trial.provenance().data["arenas"]] == ["A1", "A2", "B1", "B2"]

    video = tmp_path / "in" / "videos" / "plate.mp4"
    cfg = load_config(sim["config"])
    found = tmp_path / "found.npz"
    assert detect_video_arenas(video, cfg, found) == ["A1", "A2", "B1", "B2"]
    st = video.stat()
    os.utime(video, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched since the check
    assert load_found(found, found_key(video, cfg)) is None
    again = track_to_folder(video, cfg, tmp_path / "again", stream=True, found_cache=found)
    assert again.provenance["background_reused"] is False
    assert load_found(found, found_key(video, cfg)) is not None  # saved under the new key
    assert (trial.path / "tracks.parquet").read_bytes() == \
        (tmp_path / "again" / "tracks.parquet").read_bytes()
    other = cfg.model_copy(update={"tracking": cfg.tracking.model_copy(
        update={"background_frames": cfg.tracking.background_frames + 1})})
    assert load_found(found, found_key(video, other)) is None  # another config: found again


def test_a_trials_statistics_inputs_import_no_comparisons(tmp_path):
    """A worker computes its trial's statistics inputs after the trial (per-fish metrics,
    give-up sensitivity, onset traces: :mod:`fishtrack.experiment.trialstats`); they need no
    group comparisons, so the worker imports no ``scipy.stats`` for them (~0.6 s of CPU per
    worker process, in the parallel phase)."""
    from fixtures_experiment import fake_trial, plate_experiment

    from fishtrack.config import resolve_config
    from fishtrack.experiment.manifest import read_manifest
    from fishtrack.experiment.trialstats import TABLES_DIR

    e = plate_experiment(tmp_path / "in")
    cfg = resolve_config(e["config"])
    trial = tmp_path / "trial"
    trial.mkdir()
    fake_trial(tmp_path / "in" / "videos" / "plate1.mp4", cfg, trial)
    rows = tmp_path / "rows.csv"
    table = read_manifest(e["manifest"]).table
    table[table["video"] == "videos/plate1.mp4"].to_csv(rows, index=False)
    (tmp_path / "cfg.json").write_text(cfg.model_dump_json())
    code = (
        "import sys, pandas as pd; from fishtrack.config import Config; "
        "import fishtrack.experiment.worker; "
        "from fishtrack.experiment.trialstats import prepare_trial_tables; "
        f"cfg = Config.model_validate_json(open({str(tmp_path / 'cfg.json')!r}).read()); "
        f"prepare_trial_tables({str(trial)!r}, 'plate1', 'videos/plate1.mp4', "
        f"pd.read_csv({str(rows)!r}), cfg); "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, env=env,
                         check=True, timeout=120)
    assert (trial / TABLES_DIR / "key.json").exists()  # computed and kept
    heavy = set(out.stdout.decode().strip().split(",")) - {""}
    assert heavy <= {"scipy", "fishtrack.stats", "fishtrack.align"}, heavy


def test_a_report_figure_drawn_in_a_worker_imports_no_statistics():
    """A run's report figures are drawn on its worker processes (issue 15: drawing them was
    the longest serial part of a 2-worker run): what a worker unpickles for one (the drawing
    function and the figure's function with its tables) imports matplotlib but no
    ``scipy.stats``."""
    import pandas as pd

    from fishtrack.report.figures import detection_figure, draw_figure, later

    qc = pd.DataFrame({"fish_id": ["f1", "f2"], "group": ["control", "ket"],
                       "detection_rate": [0.9, 1.0], "trial_dir": "p", "arena": ["A1", "A2"]})
    heavy = set(_heavy_after_unpickling((draw_figure, later(detection_figure, qc))).split(","))
    assert "matplotlib" in heavy and "scipy.stats" not in heavy, heavy


def test_the_report_figures_of_a_two_worker_run_are_drawn_on_the_workers(plate_run, tmp_path):
    """With 2 local workers the report's figures are drawn in the worker processes (the run's
    own process never renders one: no Agg canvas imported) and are the same PNGs, figure
    files and embedded images, as a one-worker run draws in its own process."""
    e = plate_run.e
    assert plate_run.res.ok  # the one-worker run (conftest's), drawn in the test's process
    w1 = plate_run.out
    (tmp_path / "cfg.json").write_text(json.dumps(e["config"]))
    code = ("import json, sys; from fixtures_experiment import fake_arenas, fake_trial; "
            "from fishtrack.experiment import run_experiment; "
            f"cfg = json.load(open({str(tmp_path / 'cfg.json')!r})); "
            f"res = run_experiment({str(e['manifest'])!r}, cfg, {str(tmp_path / 'w2')!r}, "
            "workers=2, trial_fn=fake_trial, arenas_fn=fake_arenas); "
            "print(res.ok, 'matplotlib.backends.backend_agg' in sys.modules)")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, env=env,
                         check=True, timeout=120)
    assert out.stdout.decode().split() == ["True", "False"], out.stdout  # no figure drawn here
    pngs = sorted(p.name for p in (w1 / "figures").glob("*.png"))
    assert len(pngs) >= 5
    assert pngs == sorted(p.name for p in (tmp_path / "w2" / "figures").glob("*.png"))
    for name in pngs:
        assert (w1 / "figures" / name).read_bytes() == \
            (tmp_path / "w2/figures" / name).read_bytes(), name
    embedded = re.compile(r'src="data:image/png;base64,([^"]+)"')
    html1, html2 = ((d / "report.html").read_text(encoding="utf-8")
                    for d in (w1, tmp_path / "w2"))
    assert embedded.findall(html1) == embedded.findall(html2)


ORDER: list[str] = []


def order_trial(video: Path, config, out: Path, progress=None) -> None:
    """``fake_trial`` that records the order in which the trials run (inline run)."""
    from fixtures_experiment import fake_trial

    ORDER.append(video.name)
    fake_trial(video, config, out, progress)


def test_the_largest_videos_are_tracked_first(tmp_path):
    """Trials run largest video first (issue 15: the last trials of a run leave a worker
    idle, so they should be the shortest); results stay in manifest order."""
    from fixtures_experiment import fake_arenas, plate_experiment

    from fishtrack.experiment import run_experiment

    e = plate_experiment(tmp_path / "in")
    videos = sorted((tmp_path / "in" / "videos").glob("*.mp4"))
    assert len(videos) == 2
    spec = json.loads(videos[1].read_text(encoding="utf-8"))
    videos[1].write_text(json.dumps(spec, indent=8), encoding="utf-8")  # same spec, larger
    assert videos[1].stat().st_size > videos[0].stat().st_size
    ORDER.clear()
    res = run_experiment(e["manifest"], e["config"], tmp_path / "out", trial_fn=order_trial,
                         arenas_fn=fake_arenas, report=False)
    assert res.ok, res.failures
    assert ORDER == [videos[1].name, videos[0].name]
    assert list(res.trials["video"]) == [f"videos/{v.name}" for v in videos]
