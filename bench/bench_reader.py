"""Benchmark of fishtrack.io.video: throughput, random access and peak memory.

``make bench`` (``bench/run_all.py``) calls ``run(out_path)``, which writes the reader's Markdown
section to ``out_path``; run_all joins the sections into docs/benchmarks.md. Standalone::

    python bench/bench_reader.py [--quick] [--out section.md] [--json figures.json]

prints the section (or writes it to ``--out``).

What is measured
----------------
1. Throughput on a synthetic but realistic 1024x1024 H.264 video (400 frames, 4x4 wells with
   moving larvae, textured plate, sensor noise that survives compression): frames per second of

   * bare PyAV loops ``for f in container.decode(stream): f.to_ndarray(format="gray")``, with
     ``thread_type="AUTO"`` and with PyAV's default threading; the faster of the two (higher
     median over the rounds) is the baseline,
   * a bare ``cv2.VideoCapture`` loop with ``cv2.cvtColor(..., COLOR_BGR2GRAY)``,
   * ``open_video(path).chunks(64)`` (open + index pass + decode in a background thread), and
     the same with ``prefetch=0`` (decoding in the caller's thread).

   Other processes share the machine, so every variant runs several times, interleaved (every
   other round in reverse order, ours next to the PyAV loops); reported are the best round, the
   paired ratio (median over rounds of ours / baseline measured back to back in the same round,
   which cancels slow drifts of the load) and the CPU time per frame over all threads (least of
   the rounds), which the load disturbs far less than wall time.
2. The same loops with a consumer doing OpenCV work on every frame (a blur and a threshold, as
   a tracker would), where the background decode thread overlaps the work.
3. Random access: ``read(i)`` of random frames and ``sample()`` of 50 spread frames in H.264
   with a keyframe every 250 (x264's default) and every 25 frames, and in MJPG (intra only).
4. Peak memory: a fresh subprocess reads a 1-minute and a 10-minute 256x256 30 fps H.264 video
   with ``chunks(64)`` and reports its peak RSS (``VmHWM``); the ratio should be <= 1.1. The
   10-minute file is the 1-minute one repeated ten times (remuxed, not re-encoded: fast).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fishtrack.io.video import open_video  # noqa: E402
from fishtrack.io.writer import VideoWriter  # noqa: E402

REAL = ROOT.parent / "shared" / "videos" / "onefish_trial1_1000fps.mp4"


# ----------------------------------------------------------------------------- test videos
def plate_frames(n: int, size: int = 1024, *, wells: int = 4, seed: int = 0, noise_sd: float = 3.0):
    """Frames of a multi-well plate with swimming larvae (bouts and rests) and sensor noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    bg = 150 + 30 * np.sin(xx / (size / 10.5)) + 20 * np.cos(yy / (size / 7.8))
    bg += cv2.GaussianBlur(rng.normal(0, 25, (size, size)).astype(np.float32), (0, 0), 3)
    pitch = size / wells
    r = pitch / 2 * 0.85
    centres = [((c + 0.5) * pitch, (q + 0.5) * pitch) for q in range(wells) for c in range(wells)]
    for x, y in centres:
        cv2.circle(bg, (int(x), int(y)), int(r), 110, -1, lineType=cv2.LINE_AA)
        cv2.circle(bg, (int(x), int(y)), int(r), 60, max(1, size // 340), lineType=cv2.LINE_AA)
    bg = np.clip(bg, 0, 255).astype(np.uint8)
    noise = [rng.normal(0, noise_sd, (size, size)).astype(np.int16) for _ in range(8)]
    scale = size / 1024
    fish = [[x, y, rng.uniform(-np.pi, np.pi)] for x, y in centres]
    for i in range(n):
        f = bg.copy()
        for k, (x, y, h) in enumerate(fish):
            h += rng.normal(0, 0.2)
            step = 4 * scale * (rng.random() < 0.25)
            nx, ny = x + step * np.cos(h), y + step * np.sin(h)
            cx, cy = centres[k]
            if (nx - cx) ** 2 + (ny - cy) ** 2 < (r - 20 * scale) ** 2:
                x, y = nx, ny
            else:
                h += np.pi
            fish[k] = [x, y, h]
            body = (max(2, int(18 * scale)), max(1, int(5 * scale)))
            cv2.ellipse(f, (int(x), int(y)), body, np.degrees(h), 0, 360, 35, -1, cv2.LINE_AA)
            bend = h + 0.3 * np.sin(i / 2)
            tail = (int(x - 30 * scale * np.cos(bend)), int(y - 30 * scale * np.sin(bend)))
            cv2.line(f, (int(x), int(y)), tail, 60, max(1, int(3 * scale)), cv2.LINE_AA)
        yield np.clip(f.astype(np.int16) + noise[i % len(noise)], 0, 255).astype(np.uint8)


def write_plate_video(
    path: Path, n: int, size: int, fps: float, *, noise_sd: float = 3.0, crf: int = 20
) -> Path:
    with VideoWriter(path, fps, "h264", crf=crf) as w:
        for f in plate_frames(n, size, noise_sd=noise_sd):
            w.write(f)
    return path


def write_videos(frames, fps: float, outputs: dict[Path, tuple[str, int | None]]) -> None:
    """Encode the same frames into several files: ``{path: ("h264", keyint) or ("mjpeg", 1)}``;
    keyint None: x264's defaults (keyframe every 250 frames, or at a scene cut), as fishtrack's
    VideoWriter writes (it has no keyframe-interval option)."""
    import av

    open_ = []
    for path, (codec, keyint) in outputs.items():
        c = av.open(str(path), "w")
        lib = "libx264" if codec == "h264" else codec
        s = c.add_stream(lib, rate=Fraction(fps).limit_denominator(1000))
        s.pix_fmt = "yuv420p" if codec == "h264" else "yuvj420p"
        if codec == "h264":
            opts = {"crf": "18", "preset": "veryfast"}
            if keyint:
                opts["x264-params"] = f"keyint={keyint}:min-keyint={keyint}:scenecut=0"
            s.options = opts
        else:
            s.codec_context.qscale = 3
            s.options = {"qmin": "3", "qmax": "3"}
        open_.append((c, s))
    for i, g in enumerate(frames):
        for c, s in open_:
            if i == 0:
                s.width, s.height = g.shape[1], g.shape[0]
            vf = av.VideoFrame.from_ndarray(g, format="gray").reformat(format=s.pix_fmt)
            vf.pts = i
            for pkt in s.encode(vf):
                c.mux(pkt)
    for c, s in open_:
        for pkt in s.encode(None):
            c.mux(pkt)
        c.close()


def repeat_video(src: Path, dst: Path, times: int) -> Path:
    """``dst`` = ``src`` played ``times`` times in a row (packets copied, timestamps shifted)."""
    import av

    with av.open(str(src)) as ic, av.open(str(dst), "w") as oc:
        ist = ic.streams.video[0]
        ost = oc.add_stream_from_template(ist)
        span = None
        for k in range(times):
            ic.seek(0, stream=ist)
            last = 0
            for pkt in ic.demux(ist):
                if pkt.dts is None or not pkt.size:
                    continue
                if span is not None:
                    pkt.pts += k * span
                    pkt.dts += k * span
                last = max(last, pkt.pts + (pkt.duration or 0))
                pkt.stream = ost
                oc.mux(pkt)
            if span is None:
                span = last
    return dst


def keyframes(path: Path) -> list[int]:
    """Decode-order numbers of the keyframe packets (bare PyAV demux)."""
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return [i for i, p in enumerate(q for q in c.demux(s) if q.size) if p.is_keyframe]


# ----------------------------------------------------------------------------- loops
def work(frame: np.ndarray) -> None:
    """Stand-in for a tracker's per-frame processing (~1-3 ms at 1024x1024)."""
    b = cv2.GaussianBlur(frame, (5, 5), 0)
    cv2.threshold(b, 80, 255, cv2.THRESH_BINARY_INV)


def loop_pyav(path: Path, thread_type: str | None, consume: bool = False, limit: int = 0) -> int:
    import av

    n = 0
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        if thread_type:
            s.thread_type = thread_type
        for f in c.decode(s):
            g = f.to_ndarray(format="gray")
            if consume:
                work(g)
            n += 1
            if n == limit:
                break
    return n


def loop_cv2(path: Path, consume: bool = False, limit: int = 0) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            g = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
            if consume:
                work(g)
            n += 1
            if n == limit:
                break
    finally:
        cap.release()
    return n


def loop_ours(path: Path, prefetch: int = 1, consume: bool = False, limit: int = 0) -> int:
    n = 0
    with open_video(path) as src:
        for chunk in src.chunks(64, stop=limit or None, prefetch=prefetch):
            if consume:
                for g in chunk.frames:
                    work(g)
            n += len(chunk)
    return n


def timed(fn, *args, **kw) -> tuple[float, float]:
    """(frames per second of wall time, CPU ms per frame over all threads of this process)."""
    c0, t0 = time.process_time(), time.perf_counter()
    n = fn(*args, **kw)
    return n / (time.perf_counter() - t0), (time.process_time() - c0) / n * 1e3


# the order of a round (reversed every other round): ours next to the bare PyAV loops
ORDER = ["pyav_default", "ours", "pyav_auto", "cv2", "ours_inline"]
VARIANTS = {
    "pyav_auto": "bare PyAV loop, `to_ndarray(format='gray')`, thread_type AUTO",
    "pyav_default": "bare PyAV loop, `to_ndarray(format='gray')`, PyAV's default threading",
    "cv2": "bare `cv2.VideoCapture` loop + `cvtColor` to grey",
    "ours": "`open_video(p).chunks(64)` (open + index pass + decode thread)",
    "ours_inline": "`open_video(p).chunks(64, prefetch=0)`",
}


def throughput(
    path: Path, rounds: int, names: list[str], *, consume: bool = False, limit: int = 0
) -> dict[str, list]:
    """(fps, CPU ms/frame) of every variant, ``rounds`` times; every other round runs them in
    the reverse order, so that slow drifts of the load affect all alike."""
    kw = {"consume": consume, "limit": limit}
    variants = {
        "pyav_auto": lambda: timed(loop_pyav, path, "AUTO", **kw),
        "pyav_default": lambda: timed(loop_pyav, path, None, **kw),
        "cv2": lambda: timed(loop_cv2, path, **kw),
        "ours": lambda: timed(loop_ours, path, 1, **kw),
        "ours_inline": lambda: timed(loop_ours, path, 0, **kw),
    }
    runs: dict[str, list] = {k: [] for k in names}
    loop_pyav(path, "AUTO", limit=50)  # warm-up: page cache, imports, lazy initialisation
    loop_ours(path, limit=50)
    order = [k for k in ORDER if k in names]
    for r in range(rounds):
        for k in order if r % 2 == 0 else order[::-1]:
            runs[k].append(variants[k]())
    return runs


def pyav_baseline(runs: dict[str, list]) -> str:
    """The faster bare PyAV loop (higher median frames/s over the rounds)."""
    cand = [k for k in ("pyav_auto", "pyav_default") if k in runs]
    return max(cand, key=lambda k: float(np.median([x[0] for x in runs[k]])))


def round_ratios(runs: dict[str, list], a: str, b: str) -> list[float]:
    """fps(a) / fps(b) of every round (measured back to back)."""
    return [x[0] / y[0] for x, y in zip(runs[a], runs[b], strict=True)]


def summary(runs: dict[str, list]) -> dict:
    fps = {k: float(max(x[0] for x in v)) for k, v in runs.items()}
    cpu = {k: float(min(x[1] for x in v)) for k, v in runs.items()}
    out = {"runs": runs, "fps": fps, "cpu_ms_per_frame": cpu, "pyav": pyav_baseline(runs)}
    for key, base in (("pyav", out["pyav"]), ("cv2", "cv2")):
        if base in runs and "ours" in runs:
            out[f"best_vs_{key}"] = fps["ours"] / fps[base]
            rr = round_ratios(runs, "ours", base)
            out[f"rounds_vs_{key}"] = rr
            out[f"paired_vs_{key}"] = float(np.median(rr))
            out[f"cpu_vs_{key}"] = cpu["ours"] / cpu[base]
    return out


# ----------------------------------------------------------------------------- random access
def random_access(path: Path, k: int, seed: int = 1) -> dict:
    """ms per ``read(i)`` of ``k`` random frames, and per ``sample()`` of 50 spread frames."""
    rng = np.random.default_rng(seed)
    with open_video(path) as src:
        n = len(src)
        src.read(n // 2)  # opens the random-access handle
        ms = []
        for i in rng.integers(0, n, k):
            t0 = time.perf_counter()
            src.read(int(i))
            ms.append((time.perf_counter() - t0) * 1e3)
        spread = np.linspace(0, n - 1, 50).astype(int)
        t0 = time.perf_counter()
        src.sample(spread)
        sample_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    m = loop_ours(path, prefetch=0)
    seq_ms = (time.perf_counter() - t0) * 1e3 / m
    return {
        "frames": n,
        "read_ms_median": float(np.median(ms)),
        "read_ms_max": float(np.max(ms)),
        "read_ms_min": float(np.min(ms)),
        "sample50_s": sample_s,
        "sequential_ms_per_frame": seq_ms,
        "keyframes": len(keyframes(path)),
        "mib": path.stat().st_size / 2**20,
    }


# ----------------------------------------------------------------------------- memory
def child_peak_rss(path: str) -> dict:
    """Run in a fresh process: read ``path`` in chunks, return peak RSS in MiB."""
    import psutil

    base = psutil.Process().memory_info().rss
    n = 0
    t0 = time.perf_counter()
    with open_video(path) as src:
        for chunk in src.chunks(64):
            n += len(chunk)
    dt = time.perf_counter() - t0
    return {
        "frames": n,
        "peak_rss_mib": _peak_rss() / 2**20,
        "base_rss_mib": base / 2**20,
        "seconds": dt,
    }


def _peak_rss() -> int:
    """Peak RSS in bytes of this process image (VmHWM; ``ru_maxrss`` would include the parent's
    RSS at fork time on Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure_rss(path: Path) -> dict:
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child-rss", str(path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=str(ROOT),
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- run
def run(out_path: str | Path | None = None, *, quick: bool = False) -> dict:
    """Run the benchmark, write the Markdown section to ``out_path``; returns the figures."""
    t_start = time.perf_counter()
    rounds = 2 if quick else 6
    n_big = 150 if quick else 400
    minutes = (0.25, 2.5) if quick else (1.0, 10.0)
    res: dict = {"load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="fishtrack-bench-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        # sensor noise that survives compression: ~25 KB/frame, as in real recordings
        big, gop25, mjpg = tmp / "plate.mp4", tmp / "gop25.mp4", tmp / "mjpg.avi"
        outputs = {big: ("h264", None), gop25: ("h264", 25), mjpg: ("mjpeg", 1)}
        write_videos(plate_frames(n_big, 1024, noise_sd=5.5), 100.0, outputs)
        res["make_videos_s"] = time.perf_counter() - t0
        res["video"] = {
            "size": "1024x1024",
            "frames": n_big,
            "codec": "H.264 (libx264 crf 18, veryfast, yuv420p)",
            "bytes": big.stat().st_size,
        }
        t0 = time.perf_counter()
        res["throughput"] = summary(throughput(big, rounds, ORDER))
        if REAL.exists():  # a real 1024x1024 recording, when the shared videos are present
            res["real"] = summary(throughput(REAL, rounds // 2, ["pyav_auto", "cv2", "ours"]))
        with_work = ["pyav_auto", "cv2", "ours", "ours_inline"]
        res["consume"] = summary(throughput(big, 2, with_work, consume=True, limit=300))
        res["throughput_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        k_ra = 6 if quick else 10
        res["random"] = {
            "H.264, keyframe every 250 frames (x264 default)": random_access(big, k_ra),
            "H.264, keyframe every 25 frames": random_access(gop25, 3 * k_ra),
            "MJPG (every frame a keyframe)": random_access(mjpg, 3 * k_ra),
        }
        res["random_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        short = write_plate_video(tmp / "one.mp4", int(round(minutes[0] * 60 * 30)), 256, 30.0)
        times = int(round(minutes[1] / minutes[0]))
        long_ = repeat_video(short, tmp / "ten.mp4", times)
        mem = {}
        for m, p in zip(minutes, (short, long_), strict=True):
            mem[f"{m:g} min"] = {**measure_rss(p), "bytes": p.stat().st_size}
        res["memory"] = mem
        a, b = mem[f"{minutes[0]:g} min"], mem[f"{minutes[1]:g} min"]
        res["rss_ratio"] = b["peak_rss_mib"] / a["peak_rss_mib"]
        res["rss_growth_ratio"] = (b["peak_rss_mib"] - b["base_rss_mib"]) / max(
            1e-9, a["peak_rss_mib"] - a["base_rss_mib"]
        )
        res["memory_s"] = time.perf_counter() - t0
    res["load_after"] = os.getloadavg()
    res["total_s"] = time.perf_counter() - t_start
    res["env"] = _env()
    res["minutes"] = minutes
    text = markdown(res)
    if out_path is not None:
        out = Path(out_path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    res["markdown"] = text
    return res


def _env() -> dict:
    import av

    return {
        "python": platform.python_version(),
        "av": av.__version__,
        "ffmpeg": ".".join(str(x) for x in av.library_versions.get("libavcodec", ())),
        "opencv": cv2.__version__,
        "numpy": np.__version__,
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
    }


# ----------------------------------------------------------------------------- report
def _goal(x: float, lim: float, *, above: bool = True) -> str:
    return "met" if (x >= lim if above else x <= lim) else "**not met**"


def _table(s: dict, names: list[str], *, per_round: bool = True) -> list[str]:
    head = "| reader | frames/s (best) | frames/s (median) | CPU ms/frame |"
    sep = "|---|---:|---:|---:|"
    if per_round:
        head += " frames/s of each round |"
        sep += "---|"
    lines = [head, sep]
    for k in names:
        v = s["runs"][k]
        row = (
            f"| {VARIANTS[k]} | {s['fps'][k]:.0f} | {np.median([x[0] for x in v]):.0f} | "
            f"{s['cpu_ms_per_frame'][k]:.2f} |"
        )
        if per_round:
            row += " " + ", ".join(f"{x[0]:.0f}" for x in v) + " |"
        lines.append(row)
    return lines


def _ratios(s: dict) -> list[str]:
    out = []
    which = "thread_type AUTO" if s["pyav"] == "pyav_auto" else "default threading"
    for base, name in (("pyav", f"bare PyAV loop ({which})"), ("cv2", "bare cv2 loop")):
        paired = s[f"paired_vs_{base}"]
        rr = ", ".join(f"{x:.2f}" for x in s[f"rounds_vs_{base}"])
        out.append(
            f"- ours / {name}: paired **{paired:.2f}** (rounds: {rr}), best-vs-best "
            f"{s[f'best_vs_{base}']:.2f}; goal >= 0.95: {_goal(paired, 0.95)}. CPU per frame "
            f"{s[f'cpu_vs_{base}']:.2f}x the bare loop's"
        )
    return out


def markdown(res: dict) -> str:
    e, v, t = res["env"], res["video"], res["throughput"]
    main = ["pyav_auto", "pyav_default", "cv2", "ours", "ours_inline"]  # table order
    lb, la = res["load_before"], res["load_after"]
    lines = [
        "## Video reader (`bench/bench_reader.py`)",
        "",
        f"PyAV {e['av']} (libavcodec {e['ffmpeg']}), OpenCV {e['opencv']}, NumPy {e['numpy']}. "
        f"Load average (1 min) {lb[0]:.1f} before and {la[0]:.1f} after: other processes share "
        "the two cores and single runs vary by up to 3x, so the variants run interleaved (every "
        "other round in reverse order, ours next to the PyAV loops). frames/s (best) is the best "
        "round; the **paired** ratio is the median over rounds of ours / baseline measured back "
        "to back within one round (it cancels slow drifts of the load, not fast ones); CPU is "
        "the process CPU time over all threads per frame (least of the rounds), which the load "
        "disturbs far less than wall time: judge speed by the paired ratios and the CPU column.",
        "",
        f"### Throughput: {v['size']} {v['codec']}, {v['frames']} frames "
        f"({v['bytes'] / 2**20:.1f} MiB), synthetic 4x4-well plate with larvae and sensor noise",
        "",
        *_table(t, main),
        "",
        *_ratios(t),
        "  (the PyAV baseline is the faster of the two bare PyAV loops: higher median)",
        "",
    ]
    r = res.get("real")
    if r:
        f, c = r["fps"], r["cpu_ms_per_frame"]
        lines += [
            f"Real recording `{REAL.name}` (1024x1024 H.264 High profile with B-frames, 98 "
            f"frames, one keyframe, ~130 KB/frame, from ../shared/videos), "
            f"{len(r['runs']['ours'])} rounds: ours {f['ours']:.0f} frames/s "
            f"({c['ours']:.2f} CPU ms/frame), bare PyAV (AUTO) {f['pyav_auto']:.0f} "
            f"({c['pyav_auto']:.2f}), cv2 {f['cv2']:.0f} ({c['cv2']:.2f}); paired ratio vs "
            f"PyAV {r['paired_vs_pyav']:.2f}, vs cv2 {r['paired_vs_cv2']:.2f}.",
            "",
        ]
    lines += [
        "Where the time goes: decoding is FFmpeg's (frame threads, `thread_type` AUTO, the same "
        "thread count as the bare loop). Per frame the reader adds one pass over the picture: "
        "the luma plane is copied straight into a recycled chunk array, and for limited-range "
        "video expanded 16-235 -> 0-255 in the same pass (`cv2.transform`, ~0.2-0.5 ms per "
        "megapixel), plus ~0.1 ms of Python bookkeeping. The bare loops pay for a swscale "
        "conversion (PyAV `gray`) or a YUV->BGR->grey round trip (OpenCV) instead, hence the "
        "lower CPU per frame. The fixed cost of `open_video` (one container open, one demux-only "
        "index pass over the file; the open handle is reused for decoding) is ~10-20 ms more "
        "than a bare open for this file.",
        "",
        "### With a consumer (a blur and a threshold on every frame, as a tracker would do), "
        "300 frames",
        "",
        *_table(res["consume"], ["pyav_auto", "cv2", "ours", "ours_inline"], per_round=False),
        "",
        f"### Random access ({v['size']}, the same {v['frames']} frames in three encodings)",
        "",
        "| file | frames | keyframes | `read(i)` ms, median (min-max) | `sample()` of 50 spread "
        "frames, s | sequential ms/frame |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, x in res["random"].items():
        lines.append(
            f"| {name} | {x['frames']} | {x['keyframes']} | {x['read_ms_median']:.0f} "
            f"({x['read_ms_min']:.0f}-{x['read_ms_max']:.0f}) | {x['sample50_s']:.2f} | "
            f"{x['sequential_ms_per_frame']:.1f} |"
        )
    mem = res["memory"]
    k0, k1 = (f"{m:g} min" for m in res["minutes"])
    lines += [
        "",
        "A random read decodes from the keyframe at or before the frame, so it costs about "
        "(distance to that keyframe + 1) x the per-frame decode time; intra-only files cost one "
        "frame.",
        "",
        "### Peak memory (fresh subprocess, 256x256 H.264 at 30 fps, `chunks(64)`)",
        "",
        "| video | frames | file MiB | peak RSS MiB | RSS after imports MiB | read s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for k in (k0, k1):
        m = mem[k]
        lines.append(
            f"| {k} | {m['frames']} | {m['bytes'] / 2**20:.1f} | {m['peak_rss_mib']:.1f} | "
            f"{m['base_rss_mib']:.1f} | {m['seconds']:.1f} |"
        )
    lines += [
        "",
        f"- peak RSS {k1} / {k0}: **{res['rss_ratio']:.3f}** (goal <= 1.1: "
        f"{_goal(res['rss_ratio'], 1.1, above=False)}); growth above the RSS after imports: "
        f"{res['rss_growth_ratio']:.2f}x",
        f"- the {k1} file is the {k0} file repeated (packets copied with shifted timestamps)",
        "",
        f"Section wall time {res['total_s']:.0f} s (making the videos {res['make_videos_s']:.0f} s,"
        f" throughput {res['throughput_s']:.0f} s, random access {res['random_s']:.0f} s, memory "
        f"{res['memory_s']:.0f} s).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None, help="write the Markdown section here (else stdout)")
    ap.add_argument("--quick", action="store_true", help="smaller videos, fewer runs")
    ap.add_argument("--json", default=None, help="also write the raw figures as JSON")
    ap.add_argument("--child-rss", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child_rss:
        print(json.dumps(child_peak_rss(a.child_rss)))
        return 0
    res = run(a.out, quick=a.quick)
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2, default=str))
    if a.out is None:
        print(res["markdown"])
    t = res["throughput"]
    print(
        f"paired ratio vs PyAV {t['paired_vs_pyav']:.2f}, vs cv2 {t['paired_vs_cv2']:.2f} | "
        f"RSS ratio {res['rss_ratio']:.3f} | {res['total_s']:.0f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
