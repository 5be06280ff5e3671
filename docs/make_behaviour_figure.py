"""Draw the behaviour figures of docs/behaviour.md.

    python docs/make_behaviour_figure.py            # behaviour_example.png (simulated larva)
    python docs/make_behaviour_figure.py --real     # behaviour_real_*.png (../shared/videos)

``behaviour_example.png``: a head-embedded larva from the simulator (fishtrack.synth, 200 fps,
default protocol: closed loop then open loop) gets tracking noise (tail angle + N(0, 0.03
rad), 1 % of frames lost, plus one 1.5 s loss) and is scored with the default settings.
Panels: tail angle with the detected bouts; vigour with the noise level, the threshold and the
low (extension) threshold; states found vs the simulator's truth.

``behaviour_real_<name>.png``: a real recording (see ``shared/videos/README.md``; not part of
the repository) tracked by ``fishtrack.track`` and scored with the default settings. Panels:
frames at a few moments with the traced midline (in a bout: red label); the tail angle of
every fish with its detected bouts shaded; the mean absolute pixel change between
consecutive frames around each fish (independent of the tail tracing: the pixels say when the
tail moved), with frames identical to the previous one marked. The x axis is the frame index:
the true frame rate of the stytra clips is unknown.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from fishtrack.behaviour import classify  # noqa: E402
from fishtrack.behaviour.bouts import HYSTERESIS  # noqa: E402
from fishtrack.config import BehaviourConfig  # noqa: E402
from fishtrack.synth import SimSpec, simulate_truth  # noqa: E402

FIGURES = Path(__file__).resolve().parent / "figures"
OUT = FIGURES / "behaviour_example.png"
VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "videos"
COLOURS = {"active": "#e4572e", "passive": "#4c72b0", "unknown": "#bbbbbb"}

#: name -> (file, layout, fish per arena, frames shown)
REAL = {
    "embedded": ("head_embedded_stytra.avi", "embedded", 1, [10, 30, 45, 120, 190]),
    "strip": ("free_swim_strip_stytra.avi", "chamber", 1, [100, 160, 190, 220, 300]),
    "onefish": ("onefish_trial1_1000fps.mp4", "chamber", 1, [0, 40, 50, 60, 90]),
    "threefish": ("threefish_trial2_1000fps.mp4", "chamber", 3, [0, 30, 50, 70, 95]),
}


def main(out: Path = OUT) -> Path:
    spec = SimSpec(layout="embedded", rows=1, cols=1, fps=200.0, duration_s=45.0, seed=3)
    truth = simulate_truth(spec).frames
    rng = np.random.default_rng(0)
    tracks = truth.drop(columns=["in_bout", "state", "group", "present", "phase"]).copy()
    n = len(tracks)
    t = tracks["time_s"].to_numpy()
    tracks["tail_angle"] += rng.normal(0, 0.03, n)
    tracks["detected"] = (rng.random(n) >= 0.01) & ~((t >= 33.0) & (t < 34.5))
    tracks.loc[~tracks["detected"], ["x", "y", "heading", "tail_angle"]] = np.nan
    cfg = BehaviourConfig()
    res = classify(tracks, cfg, spec.phases())
    tr = res.tracks
    thr = float(res.fish["bout_threshold_rad_s"].iloc[0])
    noise = float(res.fish["vigour_noise_rad_s"].iloc[0])
    low = noise + HYSTERESIS * (thr - noise)

    fig, ax = plt.subplots(
        3, 1, figsize=(11, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 3, 1.2]}
    )
    ax[0].plot(t, tr["tail_angle"], lw=0.5, color="k")
    for _, b in res.bouts.iterrows():
        ax[0].axvspan(b["start_s"], b["end_s"], color=COLOURS["active"], alpha=0.25, lw=0)
    ax[0].set_ylabel("tail angle (rad)")
    ax[0].set_title("simulated head-embedded larva, 200 fps, tail noise 0.03 rad; shaded: bouts")
    ax[1].plot(t, tr["vigour_rad_s"], lw=0.6, color="k")
    ax[1].axhline(thr, color=COLOURS["active"], ls="--", lw=1, label=f"threshold {thr:.1f} rad/s")
    ax[1].axhline(low, color="#999999", ls=":", lw=1, label=f"low threshold {low:.1f} rad/s")
    ax[1].axhline(noise, color=COLOURS["passive"], ls="-", lw=1,
                  label=f"noise level {noise:.2f} rad/s (tail noise "
                        f"{res.fish['tail_noise_rad'].iloc[0]:.3f} rad)")
    ax[1].set_yscale("log")
    ax[1].set_ylabel("vigour (rad/s)")
    ax[1].legend(loc="upper left", fontsize=8)
    for row, states in enumerate((tr["state"], truth["state"].astype(str))):
        s = states.to_numpy()
        cut = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
        ends = np.r_[t[cut[1:]], t[-1] + 1 / spec.fps]
        for c, e in zip(cut, ends, strict=True):
            ax[2].axvspan(
                t[c], e, ymin=0.55 - 0.5 * row, ymax=0.95 - 0.5 * row, color=COLOURS[s[c]], lw=0
            )
    ax[2].set_yticks([0.75, 0.25], ["found", "truth"])
    ax[2].set_ylim(0, 1)
    for p in spec.phases():
        for a in ax:
            a.axvline(p.start_s, color="#666666", lw=0.8)
        ax[0].text(p.start_s + 0.3, ax[0].get_ylim()[1] * 0.85, p.name, fontsize=8)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in COLOURS.values()]
    ax[2].legend(
        handles, list(COLOURS), loc="upper right", ncol=3, fontsize=8, bbox_to_anchor=(1.0, -0.35)
    )
    ax[2].set_xlabel("time (s)")
    ax[2].set_xlim(t[0], t[-1])
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _pixel_change(frames: np.ndarray, tracks, fish: str, half: int) -> np.ndarray:
    """Mean |frame_t - frame_t-1| in a box of +/- ``half`` px around the fish's head."""
    g = tracks[tracks["fish"].astype(str) == fish].set_index("frame")
    x = np.nanmedian(g["x"].to_numpy(float))
    y = np.nanmedian(g["y"].to_numpy(float))
    h, w = frames.shape[1:]
    x0, x1 = int(max(0, x - half)), int(min(w, x + half))
    y0, y1 = int(max(0, y - half)), int(min(h, y + half))
    box = frames[:, y0:y1, x0:x1].astype(np.int16)
    return np.r_[np.nan, np.abs(np.diff(box, axis=0)).mean(axis=(1, 2))]


def real_figure(name: str, video_dir: Path = VIDEOS) -> Path:
    """Track and score one real recording and draw its bouts on the tail-angle trace."""
    import fishtrack
    from fishtrack.io.video import open_video
    from fishtrack.preview import annotate_frame

    file, layout, fish_per_arena, shown = REAL[name]
    video = video_dir / file
    cfg = {"arenas": {"layout": layout, "fish_per_arena": fish_per_arena}}
    tracks = fishtrack.track(video, cfg)
    with open_video(video) as src:
        frames = np.stack([src.read(i) for i in range(len(src))])
        fps = src.meta.fps
    dup = np.r_[False, np.all(frames[1:] == frames[:-1], axis=(1, 2))]
    scored = classify(tracks.drop(columns=[c for c in ("in_bout", "state", "phase")
                                           if c in tracks.columns]))
    tr, bouts = scored.tracks, scored.bouts
    fish = sorted(tr["fish"].astype(str).unique())
    length = float(np.nanmedian(np.hypot(tr["tail_x_0"] - tr[f"tail_x_{_last(tr)}"],
                                         tr["tail_y_0"] - tr[f"tail_y_{_last(tr)}"])))
    fig = plt.figure(figsize=(11, 7.2))
    gs = fig.add_gridspec(3, len(shown), height_ratios=[2.2, 2.2, 1.3])
    for k, f in enumerate(shown):
        ax = fig.add_subplot(gs[0, k])
        rows = tr[tr["frame"] == f]
        img = annotate_frame(frames[f], rows, scale=1.0)
        if layout == "chamber" and frames.shape[1] > 300:  # large frame: crop to the fish
            xs = tr[[c for c in tr.columns if c.startswith("tail_x_")] + ["x"]].to_numpy(float)
            ys = tr[[c for c in tr.columns if c.startswith("tail_y_")] + ["y"]].to_numpy(float)
            m = 0.6 * length
            x0, x1 = int(max(0, np.nanmin(xs) - m)), int(np.nanmax(xs) + m)
            y0, y1 = int(max(0, np.nanmin(ys) - m)), int(np.nanmax(ys) + m)
            img = img[y0:y1, x0:x1]
        ax.imshow(img[..., ::-1])
        inb = rows["in_bout"].astype(bool).any()
        ax.set_title(f"frame {f}" + (" (bout)" if inb else ""), fontsize=8,
                     color=COLOURS["active"] if inb else "black")
        ax.set_axis_off()
    ax1 = fig.add_subplot(gs[1, :])
    ax2 = fig.add_subplot(gs[2, :], sharex=ax1)
    cols = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, f in enumerate(fish):
        g = tr[tr["fish"].astype(str) == f]
        ax1.plot(g["frame"], g["tail_angle"], ".-", lw=0.7, ms=2, color=cols[i % len(cols)],
                 label=f"fish {f}")
        for b in bouts[bouts["fish"].astype(str) == f].itertuples():
            ax1.axvspan(b.start_frame - 0.5, b.end_frame + 0.5, color=cols[i % len(cols)],
                        alpha=0.15, lw=0)
        ax2.plot(np.arange(len(frames)), _pixel_change(frames, tr, f, int(max(20, 0.8 * length))),
                 lw=0.8, color=cols[i % len(cols)])
    ax1.set_ylabel("tail angle (rad)")
    ax1.legend(fontsize=7, loc="upper right")
    ax1.set_title(f"{file}: {len(bouts)} bout(s) detected (shaded); container {fps:g} fps, "
                  f"{int(dup.sum())} of {len(frames)} frames identical to the previous one",
                  fontsize=9)
    ax2.plot(np.flatnonzero(dup), np.zeros(int(dup.sum())), "|", color="#999999", ms=6,
             label="frame identical to the previous")
    ax2.set_ylabel("pixel change\n(grey levels)", fontsize=8)
    ax2.set_xlabel("frame")
    if dup.any():
        ax2.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    out = FIGURES / f"behaviour_real_{name}.png"
    fig.savefig(out, dpi=90)
    plt.close(fig)
    notes = "; ".join(scored.notes)
    print(f"{out}: {len(bouts)} bouts {bouts[['fish', 'start_frame', 'end_frame', 'n_beats']].values.tolist()}"
          f"{'; ' + notes if notes else ''}")
    return out


def _last(tr) -> int:
    return max(int(c.rsplit("_", 1)[1]) for c in tr.columns if c.startswith("tail_x_"))


if __name__ == "__main__":
    if "--real" in sys.argv:
        args = [a for a in sys.argv[1:] if a != "--real"]
        folder = Path(args[0]) if args else VIDEOS
        for key, (file, *_rest) in REAL.items():
            if (folder / file).is_file():
                print(real_figure(key, folder))
            else:
                print(f"{folder / file} is absent, skipped")
    else:
        print(main())
