"""Whole-process speed: ``fishtrack track`` from start to exit against a bare decode process.

Usage::

    python bench/bench_process.py --out section.md [--quick]

What is measured (issue 15's table, first two rows)
---------------------------------------------------
Each figure is a fresh process timed from start to exit, so imports, the arena and
background steps, behaviour scoring and writing every output are included:

* ``fishtrack track VIDEO -c config.yaml -o OUT`` (the CLI a lab tech runs), and
* a bare decode process on the same file: ``python -c`` importing PyAV and running
  ``for f in container.decode(stream): f.to_ndarray(format="gray")`` with FFmpeg's own
  decoding threads (``thread_type="AUTO"``).

Both are run alternately twice and the faster of each is kept; the ratio of their frames per
second is the figure. The peak resident memory of each process comes from ``os.wait4`` (the
kernel's ``ru_maxrss`` of that child, started from a small launcher: ``bench/_proc.py``). Cases:

1. a 1024x1024 H.264 plate of 4 wells at 100 fps, at least 3,750 frames (40 px larvae; a
   10 s simulation whose packets are repeated without re-encoding, so 4,000 frames);
2. a 96-well plate, 1280x864 at 100 fps (28 px larvae), 3,000 frames (``--quick``: 1,000);
3. side by side with ZebraZoom, when ``ZEBRAZOOM_PYTHON`` names the Python of an environment
   where ``pip install zebrazoom`` was run (it is not a fishtrack dependency): a 640x480 MJPG
   video of 4 round wells, 60 px larvae, 1,000 frames at 100 fps, tracked by
   ``python -m zebrazoom FOLDER NAME avi CONFIG.json`` with ZebraZoom's own 4-well preset
   (``4wellsZebrafishLarvaeEscapeResponses.json``) adjusted to this plate's well spacing and
   larva size, and by ``fishtrack track``.

fishtrack is byte-compiled first (``compileall`` on the package, as ``pip install`` does for a
regular install and ``make install`` does for the editable one), so a process started with
``PYTHONDONTWRITEBYTECODE=1`` does not pay ~0.15-0.2 s of CPU compiling its ~50 modules on
every start, which an installed package never pays.
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from _proc import run_process  # noqa: E402 - the bench folder is not a package
from bench_tracker import _loop  # noqa: E402

_DECODE = """
import sys, av
n = 0
with av.open(sys.argv[1]) as c:
    s = c.streams.video[0]
    s.thread_type = "AUTO"
    for f in c.decode(s):
        f.to_ndarray(format="gray")
        n += 1
print(n)
"""


def _run_child(cmd: list[str]) -> tuple[float, float, str, float]:
    """(wall seconds, peak RSS in MB, stdout, CPU seconds) of one child process, start to
    exit (CPU: user + system of all its threads, from ``os.wait4``)."""
    r = run_process(cmd)
    return r["wall_s"], r["peak_rss_mb"], r["stdout"], r["cpu_s"]


def _case(video: Path, config: Path, work: Path, n_frames: int) -> dict:
    fishtrack = [sys.executable, "-m", "fishtrack", "track", str(video), "-c", str(config)]
    dec, trk = [], []
    for k in range(2):
        wall, rss, out, cpu = _run_child([sys.executable, "-c", _DECODE, str(video)])
        if int(out.split()[-1]) != n_frames:
            raise RuntimeError(f"decoded {out.split()[-1]} frames, expected {n_frames}")
        dec.append((wall, rss, cpu))
        dst = work / f"out{k}"
        wall, rss, _, cpu = _run_child([*fishtrack, "-o", str(dst)])
        trk.append((wall, rss, cpu))
        shutil.rmtree(dst, ignore_errors=True)
    d, t = min(dec), min(trk)
    return {
        "frames": n_frames,
        "decode_fps": n_frames / d[0], "decode_rss_mb": d[1],
        "track_fps": n_frames / t[0], "track_rss_mb": max(r[1] for r in trk),
        "ratio": d[0] / t[0],
        "decode_cpu_s": min(r[2] for r in dec), "track_cpu_s": min(r[2] for r in trk),
    }


def _zebrazoom(zz_python: str, work: Path) -> dict:
    """ZebraZoom and fishtrack, each timed once as a whole process on the same 4-well video."""
    from fishtrack.synth import SimSpec, simulate

    sim = simulate(
        SimSpec(name="zz4", layout="wells", rows=2, cols=2, width=640, height=480, fps=100,
                duration_s=10, fish_length_px=60, noise_sd=2.0, seed=3, codec="mjpg"),
        work / "zz4",
    )
    code = (
        "import json, pathlib, sys, zebrazoom; "
        "p = pathlib.Path(zebrazoom.__file__).parent / 'configuration' / "
        "'4wellsZebrafishLarvaeEscapeResponses.json'; c = json.loads(p.read_text()); "
        "c.update(minWellDistanceForWellDetection=150, wellOutputVideoDiameter=165, minArea=50, "
        "maxArea=800, minAreaBody=50, maxAreaBody=800, headSize=8, halfDiameterRoiBoutDetect=60); "
        "pathlib.Path(sys.argv[1]).write_text(json.dumps(c))"
    )
    cfg = work / "zz4.json"
    subprocess.run([zz_python, "-c", code, str(cfg)], check=True)
    env_zz = [zz_python, "-m", "zebrazoom", str(sim.video_path.parent) + os.sep, "zz4", "avi",
              str(cfg)]
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    zz_wall, zz_rss, _, _ = _run_child(env_zz)
    ft_wall, ft_rss, _, _ = _run_child([sys.executable, "-m", "fishtrack", "track",
                                     str(sim.video_path), "-c", str(sim.config_path),
                                     "-o", str(work / "zz4_out")])
    return {"frames": sim.n_frames, "zz_s": zz_wall, "zz_rss_mb": zz_rss, "ft_s": ft_wall,
            "ft_rss_mb": ft_rss}


def run(out_path: str | Path, *, quick: bool = False) -> dict:
    import fishtrack
    from fishtrack.synth import SimSpec, simulate

    out_path = Path(out_path)
    compileall.compile_dir(Path(fishtrack.__file__).parent, quiet=1)
    work = Path(tempfile.mkdtemp(prefix="fishtrack-bench-process-"))
    res: dict = {"load_before": os.getloadavg()[0]}
    try:
        sim = simulate(
            SimSpec(name="plate4", layout="wells", rows=2, cols=2, width=1024, height=1024,
                    fps=100, duration_s=10 if not quick else 5, fish_length_px=40,
                    noise_sd=2.0, seed=1),
            work / "plate4",
        )
        v4 = _loop(sim.video_path, work / "plate4_3750.mp4", -(-3750 // sim.n_frames))
        res["plate4"] = _case(v4, sim.config_path, work, sim.n_frames * -(-3750 // sim.n_frames))
        sim96 = simulate(
            SimSpec(name="plate96", layout="wells", rows=8, cols=12, width=1280, height=864,
                    fps=100, duration_s=5, fish_length_px=28, noise_sd=2.0, seed=2),
            work / "plate96",
        )
        times = 2 if quick else 6
        v96 = _loop(sim96.video_path, work / "plate96_long.mp4", times)
        res["plate96"] = _case(v96, sim96.config_path, work, sim96.n_frames * times)
        if os.environ.get("ZEBRAZOOM_PYTHON"):
            res["zebrazoom"] = _zebrazoom(os.environ["ZEBRAZOOM_PYTHON"], work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    res["load_after"] = os.getloadavg()[0]
    _write_md(out_path, res)
    return res


def _write_md(path: Path, r: dict) -> None:
    rows = []
    for key, label in (("plate4", "1024x1024 H.264, 4 wells, 100 fps"),
                       ("plate96", "96-well plate, 1280x864 H.264, 100 fps")):
        c = r[key]
        rows.append(
            f"| {label} | {c['frames']} | {c['decode_fps']:.0f} | {c['track_fps']:.0f} | "
            f"{c['ratio']:.2f} | {c['decode_rss_mb']:.0f} | {c['track_rss_mb']:.0f} | "
            f"{c['decode_cpu_s']:.1f} | {c['track_cpu_s']:.1f} |"
        )
    text = f"""## Whole process (`bench/bench_process.py`)

`fishtrack track VIDEO -c config.yaml -o OUT` from start to exit (imports, arenas,
background, tracking, behaviour and every output written) against a bare PyAV decode process
on the same file, each a fresh process, alternately twice, best of each. Peak RSS is the
kernel's `ru_maxrss` of each process; CPU the user + system seconds of all its threads
(`os.wait4`; the less of the two runs). {os.cpu_count()} cores; load average
{r['load_before']:.1f} before, {r['load_after']:.1f} after.

| video | frames | bare decode (frames/s) | `fishtrack track` (frames/s) | ratio | decode peak RSS (MB) | track peak RSS (MB) | decode CPU (s) | track CPU (s) |
|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}
"""
    z = r.get("zebrazoom")
    if z:
        text += f"""
Side by side with ZebraZoom (640x480 MJPG, 4 round wells, 60 px larvae, {z['frames']} frames,
each tool once as a whole process): ZebraZoom {z['zz_s']:.1f} s, peak RSS
{z['zz_rss_mb']:.0f} MB; `fishtrack track` {z['ft_s']:.1f} s, peak RSS {z['ft_rss_mb']:.0f} MB:
fishtrack has **{z['zz_s'] / z['ft_s']:.1f}x** ZebraZoom's throughput with
{z['ft_rss_mb'] / z['zz_rss_mb']:.2f}x its memory.
"""
    else:
        text += (
            "\nZebraZoom side by side: not run (set `ZEBRAZOOM_PYTHON` to the Python of an "
            "environment with `pip install zebrazoom`).\n"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path("bench_process.md"))
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    run(args.out, quick=args.quick)
    print(args.out.read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
