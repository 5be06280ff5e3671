"""Draw docs/figures/behaviour_example.png: one simulated larva scored by the behaviour stage.

    python docs/make_behaviour_figure.py

A head-embedded larva from the simulator (fishtrack.synth, 200 fps, default protocol: closed
loop then open loop) gets tracking noise (tail angle + N(0, 0.03 rad), 1 % of frames lost,
plus one 1.5 s loss) and is scored with the default settings. Panels: tail angle with the
detected bouts; vigour with the threshold and the low (extension) threshold; states found vs
the simulator's truth.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from fishtrack.behaviour import classify  # noqa: E402
from fishtrack.behaviour.bouts import HYSTERESIS  # noqa: E402
from fishtrack.config import BehaviourConfig  # noqa: E402
from fishtrack.synth import SimSpec, simulate_truth  # noqa: E402

OUT = Path(__file__).resolve().parent / "figures" / "behaviour_example.png"
COLOURS = {"active": "#e4572e", "passive": "#4c72b0", "unknown": "#bbbbbb"}


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


if __name__ == "__main__":
    print(main())
