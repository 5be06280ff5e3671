"""Start-up cost (issue 15, fixed costs): ``import fishtrack`` and ``fishtrack --help`` load
none of the heavy libraries (each ~0.1-0.9 s of CPU and tens of MB), checked in a fresh
process through ``sys.modules``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

HEAVY = ("scipy", "scipy.stats", "scipy.signal", "pandas", "pyarrow", "matplotlib", "napari",
         "numba", "cv2", "av", "dask", "distributed", "sklearn", "skimage", "qtpy")


def _heavy_loaded(code: str) -> list[str]:
    probe = (f"{code}\nimport sys\n"
             f"print('HEAVY:' + ','.join(m for m in {HEAVY!r} if m in sys.modules))")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, env=env,
                         check=True, timeout=120, cwd=ROOT)
    line = [ln for ln in out.stdout.decode().splitlines() if ln.startswith("HEAVY:")][-1]
    return [m for m in line[len("HEAVY:"):].split(",") if m]


def test_import_fishtrack_loads_no_heavy_library():
    assert _heavy_loaded("import fishtrack") == []


def test_cli_help_loads_no_heavy_library():
    code = ("import sys\nfrom fishtrack.cli import app\nsys.argv = ['fishtrack', '--help']\n"
            "try:\n    app()\nexcept SystemExit as e:\n    assert e.code in (0, None), e.code")
    assert _heavy_loaded(code) == []



def test_early_background_sample_loads_no_pipeline_library(tmp_path):
    """The thread ``fishtrack track`` starts before importing the pipeline (the background's
    frames and their median, issue 15) imports only the video reader's libraries: were it to
    import pandas, pyarrow, scipy or the tracker's numba, it would do the main thread's imports
    itself instead of decoding beside them."""
    from fishtrack.io.writer import write_video

    frames = [np.full((48, 64), 40 + i, np.uint8) for i in range(30)]
    video = write_video(tmp_path / "v.mp4", frames, 25, "h264")
    code = (f"from fishtrack.background_sample import EarlySample\n"
            f"from fishtrack.config import Config\n"
            f"with EarlySample({str(video)!r}, Config()) as early:\n"
            f"    s = early.sample()\n"
            f"    assert s.frames.shape[1:] == (48, 64) and s.median.shape == (48, 64)\n"
            f"    early.source().close()")
    loaded = _heavy_loaded(code)
    assert not set(loaded) & {"pandas", "pyarrow", "scipy", "numba", "dask", "matplotlib"}, loaded


def test_track_loads_no_scipy_signal_or_stats(tmp_path):
    """A whole ``fishtrack track`` (tail filtered and beats found: 100 fps) imports neither
    ``scipy.signal`` nor ``scipy.stats`` (~0.8 s of CPU and ~59 MB of a ~4 s run of 1,000
    frames; the behaviour stage loads scipy's compiled filter and peak routines alone:
    fishtrack.behaviour._signal), and writes its tables."""
    from fishtrack.synth import SimSpec, simulate

    sim = simulate(SimSpec(name="t", layout="wells", rows=1, cols=2, fps=100, duration_s=3,
                           seed=5, fish_length_px=24), tmp_path / "sim")
    out = tmp_path / "out"
    code = ("import sys\nfrom fishtrack.cli import app\n"
            f"sys.argv = ['fishtrack', 'track', {str(sim.video_path)!r}, '-c', "
            f"{str(sim.config_path)!r}, '-o', {str(out)!r}]\n"
            "try:\n    app()\nexcept SystemExit as e:\n    assert e.code in (0, None), e.code")
    loaded = _heavy_loaded(code)
    assert "pandas" in loaded  # the pipeline ran
    assert not {"scipy.signal", "scipy.stats"} & set(loaded), loaded
    assert (out / "bouts.csv").is_file() and (out / "tracks.parquet").is_file()


def _run_main(code: str, *args: str) -> subprocess.CompletedProcess:
    """``code`` then ``fishtrack.cli.main()`` with ``args``, in a fresh process."""
    prog = f"{code}\nimport sys\nsys.argv = ['fishtrack', *{list(args)!r}]\n" \
           "from fishtrack.cli import main\nmain()\n"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True, env=env,
                          timeout=120, cwd=ROOT)


def test_cli_exit_skips_the_interpreter_teardown_but_not_the_exit_handlers(tmp_path):
    """After a command the process ends without freeing every module and object one by one
    (~0.3 s of CPU with the pipeline's libraries loaded, issue 15): an object alive at exit is
    never finalized, while the exit handlers still run, the output is flushed and the exit
    code is the command's."""
    probe = ("import atexit\n"
             "class Teardown:\n"
             "    def __del__(self):\n"
             "        print('finalized at teardown', flush=True)\n"
             "alive = Teardown()\n"
             "atexit.register(print, 'exit handler ran')\n")
    ok = _run_main(probe, "version")
    assert ok.returncode == 0, ok.stderr
    from fishtrack import __version__

    assert ok.stdout.splitlines()[0] == __version__
    assert "exit handler ran" in ok.stdout
    assert "finalized at teardown" not in ok.stdout
    bad = _run_main(probe, "track", str(tmp_path / "missing.avi"), "-o", str(tmp_path / "out"))
    assert bad.returncode == 3  # unreadable video, as documented
    assert "missing.avi" in bad.stderr and "exit handler ran" in bad.stdout


def test_cli_exit_waits_for_a_running_thread():
    """A thread still at work when the command returns (not a daemon) is waited for, as the
    ordinary exit does: the fast exit is taken only when nothing else runs."""
    # the thread starts its last half second once the command has printed (it is then
    # still running when the command returns)
    probe = textwrap.dedent("""
        import sys, threading, time
        printed = threading.Event()
        class Out:
            def __init__(self, out): self.out = out
            def write(self, s): printed.set(); return self.out.write(s)
            def __getattr__(self, name): return getattr(self.out, name)
        sys.stdout = Out(sys.stdout)
        def work():
            printed.wait(); time.sleep(0.5); print('thread finished', flush=True)
        threading.Thread(target=work).start()
    """)
    res = _run_main(probe, "version")
    assert res.returncode == 0, res.stderr
    assert "thread finished" in res.stdout


def _watch(module: str, key: str) -> str:
    """Probe code noting in ``seen[key]`` when and in which thread ``module`` is first looked
    for (its import starts)."""
    return textwrap.dedent(f"""
        import atexit, builtins, importlib.abc, sys, threading, time
        seen = {{}}
        class Watch(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name == {module!r}:
                    seen.setdefault({key!r}, (time.perf_counter(), threading.current_thread().name))
        sys.meta_path.insert(0, Watch())
    """)


def _track_probed(tmp_path, probe: str, tag: str) -> tuple[str, str]:
    """``fishtrack track`` of a small simulated plate after ``probe``, whose exit handler
    prints ``tag``, a bool and a thread's name: those two; the run wrote its tables."""
    from fishtrack.synth import SimSpec, simulate

    sim = simulate(SimSpec(name="t", layout="wells", rows=1, cols=2, fps=25, duration_s=2,
                           seed=5, fish_length_px=24), tmp_path / "sim")
    out = tmp_path / "out"
    res = _run_main(probe, "track", str(sim.video_path), "-c", str(sim.config_path), "-o", str(out))
    assert res.returncode == 0, res.stderr
    line = [ln for ln in res.stdout.splitlines() if ln.startswith(tag)][-1]
    assert (out / "bouts.csv").is_file() and (out / "tracks.parquet").is_file()
    assert "warnings" in json.loads((out / "provenance.json").read_text())["summary"]
    _, flag, thread = line.split(maxsplit=2)
    return flag, thread


def test_track_loads_the_video_reader_beside_the_config(tmp_path):
    """``fishtrack track`` starts importing the video reader (NumPy, OpenCV, PyAV: what the
    background's sample needs first) in a thread before the config's own import (pydantic)
    is done, instead of after it (issue 15: the sample is the 1 MP run's longest step before
    its first frame); the run still writes its tables."""
    probe = _watch("fishtrack.io.video", "reader") + textwrap.dedent("""
        real_import = builtins.__import__
        def watched_import(name, *args, **kwargs):
            module = real_import(name, *args, **kwargs)
            if name == "fishtrack.config" and threading.current_thread() is threading.main_thread():
                seen.setdefault("config", time.perf_counter())  # its import is done
            return module
        builtins.__import__ = watched_import
        atexit.register(lambda: print("READER", seen["reader"][0] < seen["config"], seen["reader"][1]))
    """)
    before, thread = _track_probed(tmp_path, probe, "READER")
    assert before == "True" and thread != "MainThread", (before, thread)


def test_track_tracks_its_first_frames_before_importing_pandas(tmp_path):
    """``fishtrack track`` finds the arenas and starts tracking with NumPy, OpenCV and PyAV
    only: pandas (with pyarrow and the behaviour stage, ~0.8 s of CPU) is imported in a
    thread started once the arenas are found, beside the tracking, not on the main thread
    before the first frame (issue 15). Warnings are process-wide and pandas' import enters
    ``warnings.catch_warnings``: the arena detection (which enters it too) is over before that
    import starts. The run's tables and summary are still written."""
    probe = _watch("pandas", "pandas") + textwrap.dedent("""
        from fishtrack import arenas
        real = arenas.detect_arenas
        def detect_arenas(*a, **k):
            try:
                return real(*a, **k)
            finally:
                seen["arenas"] = time.perf_counter()
        arenas.detect_arenas = detect_arenas
        atexit.register(lambda: print("PANDAS", seen["arenas"] < seen["pandas"][0], seen["pandas"][1]))
    """)
    after_arenas, thread = _track_probed(tmp_path, probe, "PANDAS")
    assert after_arenas == "True" and thread != "MainThread", (after_arenas, thread)


def test_track_reads_the_library_versions_once_and_beside_the_tracking(tmp_path):
    """The provenance's library versions (``importlib.metadata`` parses each package's whole
    METADATA file: ~20 ms of CPU for the ten) are read once per process, in the thread that
    imports the stages after the tracking, not twice on the main thread after the tracking
    (issue 15, fixed costs); ``provenance.json`` records the same versions as before."""
    from fishtrack.io.provenance import _LIBS, library_versions

    probe = textwrap.dedent("""
        import atexit, importlib.metadata, sys, threading
        calls = []
        real = importlib.metadata.version
        def version(name):
            if sys._getframe(1).f_globals.get("__name__") == "fishtrack.io.provenance":
                calls.append((name, threading.current_thread().name))
            return real(name)
        importlib.metadata.version = version
        atexit.register(lambda: print("VERSIONS", len(calls),
                                      ",".join(sorted({t for _, t in calls}))))
    """)
    n, threads = _track_probed(tmp_path, probe, "VERSIONS")
    assert int(n) == 1 + len(_LIBS), n  # fishtrack and each library, once
    assert "MainThread" not in threads.split(","), threads
    prov = json.loads((tmp_path / "out" / "provenance.json").read_text())
    assert prov["versions"] == library_versions()
    assert prov["fishtrack_version"] == prov["versions"]["fishtrack"]
