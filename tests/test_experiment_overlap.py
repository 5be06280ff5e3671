"""What a run with several workers does at once (issue 15, many videos on 2 workers: the
workers idled while the run's own process imported, and again while it compared the groups).

* ``fishtrack run -j N`` starts its worker processes before it imports the runner, the
  statistics and pandas (:func:`fishtrack.experiment.backends.early_workers`), and the run
  uses those processes;
* the report's figures that need no group comparison (quality control, ethogram, binned
  passive fraction) are handed to the workers before the groups are compared, and the report
  is the same as one drawn in the run's own process.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pid_trial(video: Path, config, out: Path, progress=None) -> None:
    """``fake_trial`` that notes its process and when that process started (seconds since
    the epoch, ``psutil``) in ``<experiment>/pids/``."""
    import psutil
    from fixtures_experiment import fake_trial

    fake_trial(video, config, out, progress)
    note = out.parents[1] / "pids" / f"{os.getpid()}-{video.stem}"
    note.parent.mkdir(exist_ok=True)
    note.write_text(repr(psutil.Process().create_time()), encoding="utf-8")


def test_workers_start_before_the_run_imports_its_statistics_and_run_its_trials(tmp_path):
    from fixtures_experiment import plate_experiment

    e = plate_experiment(tmp_path / "in")
    (tmp_path / "cfg.json").write_text(json.dumps(e["config"]))
    out = tmp_path / "out"
    code = (
        "import json, sys, time\n"
        "from fishtrack.experiment.backends import early_workers\n"
        "with early_workers(2):\n"
        "    heavy = [m for m in ('pandas', 'scipy.stats', 'fishtrack.experiment.runner')"
        " if m in sys.modules]\n"
        "    time.sleep(1.0)\n"  # a process's start time has a resolution of ~10 ms
        "    t_import = time.time()\n"
        "    from fixtures_experiment import fake_arenas\n"
        "    from test_experiment_overlap import pid_trial\n"
        "    from fishtrack.experiment import run_experiment\n"
        f"    cfg = json.load(open({str(tmp_path / 'cfg.json')!r}))\n"
        f"    res = run_experiment({str(e['manifest'])!r}, cfg, {str(out)!r}, workers=2,"
        " trial_fn=pid_trial, arenas_fn=fake_arenas, report=False, progress=lambda ev: None)\n"
        "print(json.dumps({'ok': res.ok, 'heavy': heavy, 't_import': t_import}))\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")]))
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, env=env,
                         check=True, timeout=180)
    got = json.loads(run.stdout.decode().strip().splitlines()[-1])
    assert got["ok"] and got["heavy"] == [], got
    notes = sorted((out / "pids").iterdir())
    assert len(notes) == 2  # both trials, in worker processes
    started = {n.name.split("-")[0]: float(n.read_text()) for n in notes}
    assert str(os.getpid()) not in started
    # every process that ran a trial was started before the run imported its runner
    assert max(started.values()) < got["t_import"], (started, got["t_import"])


def test_the_report_figures_that_need_no_comparison_are_queued_before_the_groups_are_compared(
        plate_run, tmp_path):
    import shutil

    from fishtrack.config import resolve_config
    from fishtrack.experiment import read_manifest, trial_names
    from fishtrack.experiment.aggregate import _compute_stats

    e = plate_run.e
    assert plate_run.res.ok  # conftest's run: its report drawn in this process
    out = shutil.copytree(plate_run.out, tmp_path / "out")
    inline = {p.name: p.read_bytes() for p in (out / "figures").glob("*.png")}
    # (the report names its experiment folder: the copy's)
    html_inline = (out / "report.html").read_text(encoding="utf-8").replace(
        str(plate_run.out.resolve()), str(out.resolve()))
    for p in [out / "group_stats.csv", out / "report.html", *(out / "figures").iterdir()]:
        p.unlink()
    man = read_manifest(out / "manifest.csv")
    names = trial_names(man.videos)
    early: list[str] = []
    with ThreadPoolExecutor(2) as pool:

        def draw(fn, job, folder, name):
            if not (out / "group_stats.csv").exists():  # the groups not compared yet
                early.append(name)
            return pool.submit(fn, job, folder, name)

        _compute_stats(out, man, resolve_config(e["config"]), names, report=True, draw=draw)
    assert {"detection_rate", "ethogram", "passive_fraction_bins"} <= set(early), early
    assert any(n.startswith("behaviour_qc_") for n in early), early
    assert not any(n.startswith("estimation_") for n in early)  # those need the comparisons
    # the same report as drawn in the run's own process
    assert {p.name: p.read_bytes() for p in (out / "figures").glob("*.png")} == inline
    embedded = re.compile(r'src="data:image/png;base64,([^"]+)"')
    html = (out / "report.html").read_text(encoding="utf-8")
    assert embedded.findall(html) == embedded.findall(html_inline)
    # (and the time the report was written, to the minute: two writes may straddle one)
    strip = re.compile(r'src="data:image/png;base64,[^"]+"|<svg.*?</svg>|\d{4}-\d\d-\d\d \d\d:\d\d UTC',
                       re.S)
    assert strip.sub("", html) == strip.sub("", html_inline)


# --------------------------------------------------------------------------------------------
# how many workers `fishtrack run -j 2` starts, and when (h17j): the manifest is read and
# checked before any worker starts, and a run starts at most one worker per trial

_NOTE_PROCESS = (
    "import os, sys\n"
    "_d = os.environ.get('FT_TEST_PROCESSES')\n"
    "if _d:\n"
    "    with open(os.path.join(_d, str(os.getpid())), 'w') as _fh:\n"
    "        _fh.write(repr(sys.orig_argv))\n"
)


def _run_cli(tmp_path: Path, manifest: Path, config: Path, out: Path) -> tuple[int, str, list]:
    """``fishtrack run MANIFEST -c CONFIG -o OUT -j 2`` in a fresh process; its exit code,
    stderr and the command line of every Python process it started (a ``sitecustomize``
    first on the path notes each one)."""
    hook, procs = tmp_path / "hook", tmp_path / "procs"
    hook.mkdir()
    procs.mkdir()
    (hook / "sitecustomize.py").write_text(_NOTE_PROCESS, encoding="utf-8")
    env = dict(os.environ, FT_TEST_PROCESSES=str(procs),
               PYTHONPATH=os.pathsep.join([str(hook), str(ROOT)]))
    run = subprocess.run([sys.executable, "-m", "fishtrack", "run", str(manifest), "-c",
                          str(config), "-o", str(out), "-j", "2"],
                         capture_output=True, env=env, timeout=300)
    argvs = [eval(p.read_text()) for p in procs.iterdir()]  # noqa: S307 - lists we wrote
    return run.returncode, run.stderr.decode(errors="replace"), argvs


def _workers(argvs: list) -> list:
    return [a for a in argvs if "--multiprocessing-fork" in a]


def _tiny_plate(root: Path) -> tuple[Path, Path]:
    """A real 1 x 2 plate (4 s at 25 fps), its config and a one-trial manifest."""
    import pandas as pd
    from fixtures_experiment import write_manifest

    from fishtrack.synth import SimSpec, simulate

    spec = SimSpec(name="plate", layout="wells", rows=1, cols=2, fps=25, duration_s=4, seed=3,
                   fish_length_px=24)
    res = simulate(spec, root / "videos")
    groups = pd.read_parquet(res.truth_path).groupby("arena")["group"].first()
    rows = [{"video": "videos/plate.mp4", "arena": a, "group": g} for a, g in groups.items()]
    return write_manifest(root / "manifest.csv", rows), res.config_path


def test_a_refused_manifest_starts_no_worker_process(tmp_path):
    manifest, config = _tiny_plate(tmp_path / "in")
    bad = tmp_path / "bad.csv"
    bad.write_text("video,well,group\nvideos/plate.mp4,A1,control\n", encoding="utf-8")
    code, err, argvs = _run_cli(tmp_path, bad, config, tmp_path / "out")
    assert code == 6 and "missing required column arena" in err and str(bad) in err, err
    assert len(argvs) >= 1 and _workers(argvs) == [], argvs  # the command itself, no worker
    assert not (tmp_path / "out" / "trials").exists()


def test_a_one_trial_run_with_two_workers_starts_one_worker_process(tmp_path):
    manifest, config = _tiny_plate(tmp_path / "in")
    out = tmp_path / "out"
    code, err, argvs = _run_cli(tmp_path, manifest, config, out)
    assert code == 0, err
    assert len(_workers(argvs)) == 1, argvs
    assert (out / "trials" / "plate" / "provenance.json").exists() and (out / "report.html").exists()
