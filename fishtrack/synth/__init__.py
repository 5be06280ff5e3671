"""Futility-assay simulator with ground truth.

Renders larval zebrafish in a plate of wells, several in one chamber, or head-embedded, and
records for every frame and fish the head position, heading, tail angle, tail midline, whether
a swim bout is under way and the behavioural state (``active`` | ``passive``). Groups of fish
("control", "ketamine") differ by a tunable ketamine-like effect. Same spec and seed give the
same frames and truth, bit for bit.

Public API
----------
``SimSpec``
    every knob (layout, size, fps, polarity, noise, flicker, gradient, dust, codec, groups,
    effect, still/empty arenas, protocol, min_passive_s).
``simulate(spec, out_dir) -> SimResult``
    writes the video plus ``truth.parquet``, ``truth_bouts.csv``, ``truth_arenas.csv``,
    ``config.yaml`` (a valid fishtrack config) and ``sim_spec.yaml``.
``render_frames(spec)`` / ``simulate_truth(spec)``
    frames (streamed, constant memory) and truth tables without writing a video.
``simulate_states(n_per_group, *, effect, protocol, fps, min_passive_s, seed)``
    the behavioural model alone (no video), for statistics calibration.

The generative model
--------------------
**Larva** (:mod:`fishtrack.synth.body`). A 5-7 dpf larva is ~4 mm long; here
``fish_length_px`` long from snout to tail tip. Two dark elliptical eyes sit near the snout;
the **head point** (truth ``x, y``) is the midpoint of the eye centres. Behind them a narrower,
darker head/yolk ellipse; the rigid anterior body (first 30 % of the length) points along
``heading`` (tail -> head, radians, ``atan2(dy, dx)`` in image coordinates). The tail is 14
segments tapering to a thin tip. During a bout the segment angles follow a travelling wave,
``theta_i(t) = A env(u) (i/N) sin(2 pi f t - (pi/2) i/N) + bias``, with envelope
``sqrt(sin(pi u))`` over the bout (``u`` = fraction of the bout elapsed) and a bias bending
the tail to the side the head turns to. ``tail_angle = wrap(atan2(tip - head) - (heading +
pi))`` is positive when the tip is rotated clockwise on screen. Outside bouts the tail is
frozen in a small per-fish resting bend: passive frames have no tail motion at all.

**Bouts and states** (:mod:`fishtrack.synth.behaviour`). Each fish has lognormal traits
(bout rate, vigour, propensity to give up). Closed-loop (and unlabelled / ``other``) time:
*normal* swimming, bouts of 0.1-0.4 s (mean 0.2 s), tail-beat 20-30 Hz, tip amplitude
0.8-1.4 rad (tail_angle peaks ~0.3-0.5 rad), inter-bout quiet gaps 0.3 s + gamma (mean
~0.8 s, ~1 bout/s) and never longer than 0.75 x ``min_passive_s``, so closed-loop fish are
always active. Open-loop (futility) time: the fish first *struggles* - more frequent
(gaps mean ~0.36 s), longer (mean 0.3 s), more vigorous bouts (28-40 Hz, tail_angle ~0.5-0.8
rad), a third of them in place without translation - then *gives up*: after a lognormal
latency (median 8 s) the next quiet gap is a passive epoch of ``1.5 x min_passive_s`` + gamma
(mean ~10 s), followed by a struggle burst (lognormal, median 5 s), another passive epoch,
and so on. When open loop ends during a passive epoch the fish resumes 0.2-0.8 s later.

Ketamine-like effect, strength ``e = effect`` for ``treated_groups`` (0 for the others):
first give-up latency x (1 + 2e), passive-epoch extra duration x (1 - 0.6e), struggle bursts
x (1 + 2e) - later, shorter and fewer give-ups. With ``effect = 0`` all groups are drawn from
identical distributions.

Truth ``state`` is *computed by the rule* the behaviour stage uses on the true bouts:
a stretch without bouts (from the end of one bout to the start of the next, or to the start /
end of the record) lasting at least ``min_passive_s`` (``frames / fps``) is ``passive``,
everything else ``active``. Because active gaps are generated strictly shorter and passive
epochs at least 1.5 x longer than ``min_passive_s``, the rule and the generative intent agree
(except for epochs cut short by the end of open loop or of the video). Bouts lie on the frame
grid: ``start_s = start_frame / fps``, ``end_s = (end_frame + 1) / fps``.

**Motion** (:mod:`fishtrack.synth.motion`). Free-swimming larvae translate during bouts
(speed ~ sin^2, peaking mid-bout; distance lognormal, median 0.35 body lengths for normal
bouts, 0.5 for struggles) and turn (normal sd 0.3 rad, 10 % large turns); near a wall they
turn back inwards, and the whole body always stays inside the arena. In a chamber half of the
bouts steer towards another larva, so they cross and touch every few seconds. Between bouts
they drift very slowly (``drift_px_s``, sub-pixel per frame) without any tail beat - a
passive fish can drift and a struggling fish can hold station. Head-embedded larvae never
translate or rotate; their bouts only move the tail. Still larvae (``still_arenas``) never
move at all (no bout, no twitch, no drift); empty arenas have no larva and no truth rows.

**Scene** (:mod:`fishtrack.synth.scene`). Wells: circles (or squares) with a visible rim and a
darker meniscus on a plate; chamber: one large circle/square; embedded: a grid of rectangular
ROIs with a faint agarose blob around each head. ``polarity`` dark = transmitted light (fish
absorb light: multiplicative), bright = dark-field (fish add light). Static illumination
unevenness (+/-1.5 %), an optional linear gradient, static dust specks, a global flicker (a
slow and a faster sinusoid plus frame-to-frame jitter) and Gaussian camera noise.
"""

from fishtrack.synth.behaviour import PARAMS, simulate_states
from fishtrack.synth.simulate import (
    BOUT_TRUTH_COLUMNS,
    TRUTH_COLUMNS,
    SimPlan,
    SimResult,
    SimTruth,
    plan_simulation,
    render_frames,
    sim_config,
    simulate,
    simulate_truth,
)
from fishtrack.synth.spec import SimSpec, arena_name, arena_names, default_protocol, fish_names

__all__ = [
    "PARAMS",
    "BOUT_TRUTH_COLUMNS",
    "TRUTH_COLUMNS",
    "SimPlan",
    "SimResult",
    "SimSpec",
    "SimTruth",
    "arena_name",
    "arena_names",
    "default_protocol",
    "fish_names",
    "plan_simulation",
    "render_frames",
    "sim_config",
    "simulate",
    "simulate_states",
    "simulate_truth",
]
