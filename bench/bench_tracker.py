"""Benchmark of fishtrack.tracking: throughput against a bare decode loop, peak memory, 96 wells.

Usage::

    python bench/bench_tracker.py --out section.md [--quick]

or ``from bench_tracker import run; figures = run("section.md")``.

What is measured
----------------
1. Throughput on a simulated 1024x1024, 100 fps, 2x2-well H.264 video (fish 40 px long) of 3000
   frames: frames per second of

   * a bare PyAV decode loop ``for f in container.decode(stream): f.to_ndarray(format="gray")``
     (``thread_type="AUTO"``, FFmpeg's own decoding threads), and
   * ``track_video`` on ``open_video(path)`` (decoding in the source's background thread,
     tracking in the main thread), with the background estimate timed separately,

   run alternately twice, best of each; the ratio is the acceptance figure (>= 0.8), with
   the CPU seconds per frame of each (all threads; less sensitive to other jobs' load).
   To keep the benchmark short, 10 s (1000 frames) are simulated and the H.264 packets are
   repeated (remuxed, not re-encoded) to make the longer videos.
2. Accuracy of that run against the simulator's truth (head error, recall), as a sanity check.
3. Peak memory: a fresh subprocess tracks a 1-minute and a 10-minute version of the same video
   and reports its peak RSS (``VmHWM``); the 10 min / 1 min ratio should be <= 1.1 and both
   <= 400 MB (``--quick`` skips the 10-minute video).
4. Frames per second on a 96-well plate (8 x 12 wells, 1280 x 864 px, fish 28 px long), against
   the bare decode of the same file, alternately twice, best of each (goal >= 0.5), and the CPU
   seconds per frame of each; the machine's load average is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

_CHILD = r"""
import json, sys, time
import pandas as pd
from fishtrack.arenas import Arena
from fishtrack.config import TrackingConfig
from fishtrack.io.video import open_video
from fishtrack.tracking import estimate_background, track_video

video, arenas_csv, fish_per_arena, layout = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
a = pd.read_csv(arenas_csv)
arenas = [Arena(name=r.name, row=int(r.row), col=int(r.col), shape=r.shape, cx=float(r.cx),
                cy=float(r.cy), radius=float(r.radius), bbox=(int(r.x0), int(r.y0), int(r.x1), int(r.y1)),
                margin=2.0) for r in a.itertuples()]
cfg = TrackingConfig()
t0 = time.perf_counter()
with open_video(video) as src:
    n = len(src)
    t1 = time.perf_counter()
    bg = estimate_background(src, cfg)
    bg = bg.refine(arenas, cfg, fish_per_arena=fish_per_arena, layout=layout)
    t2 = time.perf_counter()
    c2 = time.process_time()
    res = track_video(src, arenas, cfg, fish_per_arena=fish_per_arena, layout=layout, background=bg)
    t3 = time.perf_counter()
    c3 = time.process_time()
out = {"n_frames": n, "open_s": t1 - t0, "background_s": t2 - t1, "track_s": t3 - t2,
       "track_cpu_s": c3 - c2, "rows": len(res.tracks)}
hwm = 0
with open("/proc/self/status") as fh:
    for line in fh:
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) / 1024.0
out["peak_rss_mb"] = hwm
if len(sys.argv) > 5:
    res.tracks.to_parquet(sys.argv[5])
print("RESULT " + json.dumps(out))
"""


def _child(video: Path, arenas_csv: Path, fish_per_arena: int = 1, layout: str = "wells",
           tracks_out: Path | None = None) -> dict:
    cmd = [sys.executable, "-c", _CHILD, str(video), str(arenas_csv), str(fish_per_arena), layout]
    if tracks_out is not None:
        cmd.append(str(tracks_out))
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"tracking subprocess failed:\n{p.stderr[-3000:]}")


def _loop(src: Path, dst: Path, times: int) -> Path:
    """Repeat the packets of a video file ``times`` times (remux, no re-encoding; also used by
    bench_long_recording for MJPG in AVI)."""
    import av

    with av.open(str(src)) as inp:
        s = inp.streams.video[0]
        packets = [p for p in inp.demux(s) if p.size]
        dur = max(int(p.pts) for p in packets) + int(packets[0].duration or 1)
        with av.open(str(dst), "w") as out:
            o = out.add_stream_from_template(s)
            for k in range(times):
                for p in packets:
                    q = av.Packet(bytes(p))
                    q.pts = p.pts + k * dur
                    q.dts = None if p.dts is None else p.dts + k * dur
                    q.duration = p.duration
                    q.is_keyframe = p.is_keyframe
                    q.time_base = p.time_base
                    q.stream = o
                    out.mux(q)
    return dst


def _bare_decode(path: Path, cpu: list | None = None) -> float:
    """Frames per second of a bare PyAV decode loop (``cpu``: gets the CPU seconds per frame
    appended, all of FFmpeg's threads included)."""
    import av

    t0 = time.perf_counter()
    c0 = time.process_time()
    n = 0
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        for f in c.decode(s):
            f.to_ndarray(format="gray")
            n += 1
    if cpu is not None:
        cpu.append((time.process_time() - c0) / max(n, 1))
    return n / (time.perf_counter() - t0)


def _load() -> float:
    """The machine's 1-minute load average."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def _accuracy(tracks_path: Path, truth_path: Path, n_sim: int) -> dict:
    import numpy as np
    import pandas as pd

    tr = pd.read_parquet(tracks_path, columns=["frame", "fish", "x", "y", "detected"])
    truth = pd.read_parquet(truth_path, columns=["frame", "fish", "x", "y"])
    tr["frame"] = tr["frame"] % n_sim
    tr = tr.drop_duplicates(["frame", "fish"])  # first loop only is enough
    m = truth.merge(tr, on=["frame", "fish"], suffixes=("_t", ""), how="left")
    det = m["detected"].fillna(False).astype(bool)
    err = np.hypot(m.x - m.x_t, m.y - m.y_t)[det]
    return {"recall": float(det.mean()), "head_rmse_px": float(np.sqrt((err**2).mean()))}


def run(out_path: str | Path, *, quick: bool = False) -> dict:
    from fishtrack.synth import SimSpec, simulate

    out_path = Path(out_path)
    work = Path(tempfile.mkdtemp(prefix="fishtrack-bench-track-"))
    res: dict = {}
    sim_s = 5 if quick else 10
    t0 = time.perf_counter()
    sim = simulate(
        SimSpec(name="plate4", layout="wells", rows=2, cols=2, width=1024, height=1024, fps=100,
                duration_s=sim_s, fish_length_px=40, noise_sd=2.0, seed=1),
        work / "plate4",
    )
    res["simulate_s"] = time.perf_counter() - t0
    n_sim = sim.n_frames
    v3 = _loop(sim.video_path, work / "loop3000.mp4", max(1, 3000 // n_sim))
    # 1) throughput, alternating, best of two
    dec, trk, dec_cpu = [], [], []
    res["load_start"] = _load()
    for _ in range(2):
        dec.append(_bare_decode(v3, dec_cpu))
        r = _child(v3, sim.arenas_path, tracks_out=work / "tracks.parquet")
        trk.append(r)
    best = min(trk, key=lambda r: r["track_s"])
    res["n_frames"] = best["n_frames"]
    res["decode_fps"] = max(dec)
    res["decode_cpu_ms"] = 1000 * min(dec_cpu)
    res["track_cpu_ms"] = 1000 * min(r["track_cpu_s"] / r["n_frames"] for r in trk)
    res["track_fps"] = best["n_frames"] / best["track_s"]
    res["background_s"] = best["background_s"]
    res["total_fps"] = best["n_frames"] / (best["track_s"] + best["background_s"] + best["open_s"])
    res["ratio_track_vs_decode"] = res["track_fps"] / res["decode_fps"]
    res["ratio_total_vs_decode"] = res["total_fps"] / res["decode_fps"]
    res["peak_rss_3000_mb"] = best["peak_rss_mb"]
    res.update(_accuracy(work / "tracks.parquet", sim.truth_path, n_sim))
    # 2) memory vs length
    v1 = _loop(sim.video_path, work / "loop1min.mp4", max(1, 6000 // n_sim))
    r1 = _child(v1, sim.arenas_path)
    res["peak_rss_1min_mb"] = r1["peak_rss_mb"]
    res["track_fps_1min"] = r1["n_frames"] / r1["track_s"]
    if not quick:
        v10 = _loop(sim.video_path, work / "loop10min.mp4", max(1, 60000 // n_sim))
        r10 = _child(v10, sim.arenas_path)
        res["peak_rss_10min_mb"] = r10["peak_rss_mb"]
        res["track_fps_10min"] = r10["n_frames"] / r10["track_s"]
        res["rss_ratio_10min_vs_1min"] = r10["peak_rss_mb"] / r1["peak_rss_mb"]
    # 3) 96 wells
    sim96 = simulate(
        SimSpec(name="plate96", layout="wells", rows=8, cols=12, width=1280, height=864, fps=100,
                duration_s=3 if quick else 6, fish_length_px=28, noise_sd=2.0, seed=2),
        work / "plate96",
    )
    d96, t96, c96 = [], [], []
    for _ in range(2):
        d96.append(_bare_decode(sim96.video_path, c96))
        t96.append(_child(sim96.video_path, sim96.arenas_path))
    r96 = min(t96, key=lambda r: r["track_s"])
    res["wells96_frames"] = r96["n_frames"]
    res["wells96_track_fps"] = r96["n_frames"] / r96["track_s"]
    res["wells96_background_s"] = r96["background_s"]
    res["wells96_peak_rss_mb"] = max(r["peak_rss_mb"] for r in t96)
    res["wells96_decode_fps"] = max(d96)
    res["wells96_ratio"] = res["wells96_track_fps"] / res["wells96_decode_fps"]
    res["wells96_decode_cpu_ms"] = 1000 * min(c96)
    res["wells96_track_cpu_ms"] = 1000 * min(r["track_cpu_s"] / r["n_frames"] for r in t96)
    res["load_end"] = _load()
    _write_md(out_path, res, quick)
    return res


def _write_md(path: Path, r: dict, quick: bool) -> None:
    lines = [
        "## Tracking (`bench/bench_tracker.py`)",
        "",
        f"1024x1024 px, 100 fps, 2x2 wells, H.264, {r['n_frames']} frames, fish 40 px long "
        "(simulated 10 s, packets repeated).",
        "",
        "| measure | value |",
        "|---|---|",
        f"| bare PyAV decode loop | {r['decode_fps']:.0f} frames/s |",
        f"| `track_video` (decode thread + tracking) | {r['track_fps']:.0f} frames/s |",
        f"| ratio tracking / bare decode (target >= 0.8) | {r['ratio_track_vs_decode']:.2f} |",
        f"| CPU per frame: tracking / bare decode (all threads) | {r['track_cpu_ms']:.1f} ms / "
        f"{r['decode_cpu_ms']:.1f} ms |",
        f"| background estimate (100 sampled frames, once per video) | {r['background_s']:.1f} s |",
        f"| whole tracking stage incl. background / bare decode | {r['ratio_total_vs_decode']:.2f} |",
        f"| head RMSE / recall vs truth | {r['head_rmse_px']:.2f} px / {100 * r['recall']:.2f} % |",
        f"| peak RSS, {r['n_frames']} frames | {r['peak_rss_3000_mb']:.0f} MB |",
        f"| peak RSS, 1 min | {r['peak_rss_1min_mb']:.0f} MB |",
    ]
    if not quick:
        lines += [
            f"| peak RSS, 10 min | {r['peak_rss_10min_mb']:.0f} MB |",
            f"| ratio 10 min / 1 min (target <= 1.1) | {r['rss_ratio_10min_vs_1min']:.2f} |",
        ]
    lines += [
        f"| 96-well plate (1280x864, fish 28 px): tracking | {r['wells96_track_fps']:.0f} frames/s "
        f"(bare decode {r['wells96_decode_fps']:.0f} frames/s, peak RSS "
        f"{r['wells96_peak_rss_mb']:.0f} MB) |",
        f"| 96-well plate: ratio tracking / bare decode (target >= 0.5) | {r['wells96_ratio']:.2f} |",
        f"| 96-well plate: CPU per frame, tracking / bare decode (all threads) | "
        f"{r['wells96_track_cpu_ms']:.1f} ms / {r['wells96_decode_cpu_ms']:.1f} ms |",
        f"| load average (1 min) at start / end | {r['load_start']:.1f} / {r['load_end']:.1f} |",
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("bench_tracker.md"))
    ap.add_argument("--quick", action="store_true", help="shorter videos, no 10-minute run")
    args = ap.parse_args(argv)
    r = run(args.out, quick=args.quick)
    print(json.dumps(r, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
