"""Swim bouts from tail kinematics.

A bout is a stretch where the tail *vigour* (tail-angle travel per second) is above a
threshold set from the measurement noise of the fish's quiet frames (never from how often it
swims), after merging bouts closer than ``merge_gap_s``, dropping those shorter than
``min_bout_s`` and keeping those that hold tail beats. Displacement plays no part: a struggle
while holding station (or head-embedded) is a bout, drifting with a still tail is not. See
docs/behaviour.md for the algorithm and the evidence behind it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace

import numpy as np
import pandas as pd

from fishtrack.behaviour import kinematics as kinematics_mod
from fishtrack.behaviour._frames import (
    Blocks,
    Frames,
    fish_bounds,
    gap_blocks,
    group_quantile,
    run_lengths_fill,
    runs,
    to_input_order,
)
from fishtrack.behaviour._pool import any_of, ask_ahead, memo, remembered
from fishtrack.behaviour._pool import pooled as pool_value
from fishtrack.behaviour.kinematics import (
    Kinematics,
    _centred_mean,
    compute_kinematics,
    extremum_times,
    filtered_noise_gain,
    midline_lengths,
    rest_deviation,
    smooth_tail,
    tail_diffs,
    tail_excursion,
    tail_extrema,
    tail_noise,
    travel_rate,
)
from fishtrack.config import BehaviourConfig

__all__ = [
    "BOUT_COLUMNS",
    "BoutRuns",
    "detect_bouts",
    "bout_thresholds",
    "bout_runs",
    "bout_table",
    "quiet_levels",
]

BOUT_COLUMNS = (
    "fish",
    "arena",
    "start_frame",
    "end_frame",
    "start_s",
    "end_s",
    "duration_s",
    "n_beats",
    "beat_hz",
    "max_tail_angle",
    "vigour",
    "displacement_px",
    "phase",
    "vigour_rad_s",
    "effort_rad",
    "bout_signal",
    "bout_evidence",
)

HYSTERESIS = 0.3
"""Position of the low (extension) threshold between the noise mean (0) and the threshold (1)."""
EXTEND_S = 0.1
"""A bout grows while the vigour stays above the low threshold, by at most this (or
``vigour_window_s`` if longer) on each side (s)."""
QUIET_PAD_S = 0.1
"""Frames closer than this to a bout are not used to measure noise (s)."""
MIN_QUIET_S = 2.0
"""A fish with less quiet time than this takes the noise pooled over the other fish of the
recording (s)."""
MIN_QUIET_FRAMES = 20
"""With fewer quiet frames than this and no other fish to pool from, a fish's noise is not
measured and its threshold is the physical floor (``min_bout_threshold``)."""
OWN_NOISE_FACTOR = 1.5
"""A fish with less than :data:`MIN_QUIET_S` of quiet time keeps its own noise levels instead
of the pooled ones when its own tail-noise sigma, measured on the changes between its own quiet
frames (at least :data:`MIN_QUIET_FRAMES` of them), exceeds the pooled sigma by more than this
factor: its trace is noisier than the other fish's (the tracker's noise differs by fish: size,
contrast and orientation in the image), and the pooled level would put its threshold inside its
own noise, whose false bouts then leave it too little quiet time to measure it (issue 11, spent
seed 23035: a head-embedded 22-px larva traced with 0.04 rad of jitter beside one with 0.02).
Quiet frames lie below the threshold that found them, so a short-quiet fish's own levels can
only understate its noise; a fish measured as quiet as the pool or quieter takes the pool's
levels as before. ``inf``: every short-quiet fish is pooled (the rule before 2026-12-07)."""
N_PASSES = 2
"""Threshold passes: the first from the tail-noise sigma, the others from the quiet frames."""
MIN_EXTREMA = 2
"""A bout holds at least this many alternating tail extrema (half-beats): one full
left-right excursion. A one- or two-frame tracker glitch makes at most one."""
EDGE_FRACTION = 0.1
"""The first and last tail turns kept in a bout are at least this fraction of its largest
(the low-pass filter's ripple around a sudden escape is < 7 % of it)."""
ONSET_HALF_BEATS = 1.0
SINGLE_BEND_STRENGTH = 2.0
"""A bout with a single tail extremum (a one-sided bend) is kept when that extremum's
prominence is at least this many times the beat prominence threshold."""
EXCURSION_MIN_HIGH = 0.5
"""An excursion bout (one without the beats of :data:`MIN_EXTREMA`) must stay above the
excursion threshold for at least this fraction of the excursion window."""
EXCURSION_SIGN_CHANGES = 2
"""... and its clear samples (farther than the filtered noise sigma from the rest posture)
must change side at least this often: a tail that beats crosses its rest posture, a step of
the traced angle does not."""
EXCURSION_EDGE_SIGMA = 2.0
"""An excursion bout is trimmed to its first and last sample farther than this many filtered
noise sigmas from the rest posture."""
MOTION_GATE_QUANTILE = 0.99
"""Pixel-motion gate of tail bouts (tracks with the tracker's ``motion_energy``): the noise
level is this quantile of the aligned motion of the recording's quiet frames (all fish pooled:
camera, codec and tracker noise)."""
MOTION_GATE_SPREAD = 1.5
"""... the gate's level is ``median + this x (quantile - median)`` of those frames."""
MOTION_GATE_MIN_STEP_PX = 0.7
"""Only bouts whose traced tail moves visibly are judged: the 90th percentile of the change of
the cleaned tail angle over :data:`MOTION_GATE_WINDOW_S` times the fish's body length must
reach this (px). A smaller movement changes fewer pixels than the camera noise, so the pixels
cannot tell it from jitter."""
MOTION_GATE_WINDOW_S = 1.0 / (2 * 40.0)
"""The span (s) over which the traced tail's movement is measured for the gate's visibility
floor: half a period of the fastest tail beat (40 Hz), the time between two turns of a beat;
one frame up to ~120 fps. Measured per frame instead, the same movement shrinks with the frame
rate: at 700-1000 fps a beating or a jittering traced tail moves well under 0.7 px per frame,
so no bout was judged and tracker jitter passed the gate (issue 11, video seeds at high frame
rates)."""
MOTION_GATE_RIG_REFERENCE = True
"""The gate judges each fish's pixel motion above the motion the rig gives every fish at once
(:func:`motion_above_rig`, with :data:`MOTION_GATE_MIN_FISH` or more fish); False: the raw motion
(the rule before issue 11's 10000 run)."""
MOTION_GATE_MIN_FISH = 3
"""... only in recordings with at least this many fish in one frame (a single fish has no
reference; with two the reference is the other fish alone, its own noise and bouts in every
frame: tests/test_pipeline.py's two wells with 3 % flicker lost bouts; see docs/behaviour.md)."""
MOTION_GATE_MEAN_WINDOWS_S = (0.04, 0.08, 0.16, 0.32, 0.64)
"""Second test of the pixel-motion gate: the mean motion over a whole bout. Its noise level
is measured on stretches of quiet frames of these durations (s; all fish pooled): a bout is
compared with the longest of them it spans (shorter than the first: the mean test is off)."""
MOTION_GATE_MEAN_SPREAD = 1.0
"""... the mean test's level is ``median + this x (99th percentile of the means of quiet
stretches of that duration - median of the quiet frames)``. Camera noise averages out over a
bout's frames while a tail that beats keeps its pixels changing: a bout whose peak motion stays
under the single-frame level (:data:`MOTION_GATE_SPREAD`) but whose mean motion is above the
noise of quiet stretches as long as it is kept (issue 11: head-embedded H.264 larvae in
camera noise sd 8-12, whose true bouts' motion peaks under the level)."""
MOTION_GATE_TAIL = True
"""The gate also looks where the tail is: a judged bout is kept when the tracker's
``tail_motion`` (the fishness change at the caudal midline over 12.5 ms,
:mod:`fishtrack.tracking.tail_motion`) peaks above the recording's noise level of it
(:data:`MOTION_GATE_TAIL_SPREAD`), measured like the motion energy's on the quiet frames of
all fish pooled (issue 11: the faint tail of a small larva barely moves the whole fish's
``motion_energy``). Tracks without the column are gated as before. False: motion energy
only."""
MOTION_GATE_TAIL_SPREAD = 2.0
"""The tail test's level: ``median + this x (99th percentile - median)`` of the quiet frames'
aligned tail motion (all fish pooled); a bout whose largest tail motion exceeds it is kept."""
MOTION_GATE_TAIL_PER_FISH = True
"""The tail test's level of the recording is the median over its fish of each fish's own level
(``median + MOTION_GATE_TAIL_SPREAD x (99th percentile - median)`` of that fish's quiet frames;
fish with fewer than :data:`MIN_QUIET_FRAMES` of them left out): the rig's noise of the tail
pixels, which a minority of fish whose quiet frames hold bouts the first detection missed
cannot raise (in one histogram of all fish those frames set the 99th percentile: issue 11,
tuning seeds 155 and 514, head-embedded larvae at 63-78 fps in camera noise sd 8-11). False:
the level of all fish's quiet frames in one histogram (the rule before 2026-12-06)."""
MOTION_GATE_TAIL_MEAN = True
"""The tail test also asks for the **mean** tail motion over a whole judged bout
(:func:`tail_mean_levels`): a bout is kept when its mean ``tail_motion`` is above the level of
quiet stretches of its length (:data:`MOTION_GATE_MEAN_WINDOWS_S`, the longest it spans), the
median over the recording's fish of each fish's level (:data:`MOTION_GATE_TAIL_MEAN_SPREAD`).
The peak test (:data:`MOTION_GATE_TAIL_SPREAD`) asks one smoothed value of the bout to exceed
the extreme of single quiet values; where a faint tail's change per frame lies inside the
camera's and the codec's noise, a bout shows only as a change that lasts: the noise of a
quiet stretch averages down with its length, a beating tail keeps changing its pixels (issue
11: spent 23854, six 30-px head-embedded larvae at 71 fps, H.264 sd 11.3, 28 true bouts
dropped, peaking at 0.70-1.00 x the peak level while the means of 22 of them stood 1.0-1.4 x
the mean level; spent 23817, two 25-px larvae in wells at 834 fps, and tuning 71: bouts of 0.1-0.3 s
whose tail pixels peak under the level raised by missed bouts). A bout whose mid-tail stays
within its noise is still dropped (:data:`MIDTAIL_DROP`). False: the peak test alone (the rule
before 2026-12-07, h11l)."""
MOTION_GATE_TAIL_MEAN_SPREAD = 1.5
"""... the mean test's level: ``median + this x (99th percentile of the means of quiet
stretches of that duration - median of the quiet frames)`` of one fish's tail motion (as
:data:`MOTION_GATE_MEAN_SPREAD`), from :data:`SUSTAINED_MAX_FPS` up. Chosen on 269 kept tuning
video recordings: 1.0 and 1.25 let through false bouts at 169-401 fps whose means stood 1.02-1.24
x the 1.0 level (tuning 7's still larva A1 no longer 100 % passive; spent 22395 and 23838
kappa* 0.997 -> 0.842, 0.982 -> 0.830), 1.5 none; 2.0 lost 71's gain (kappa* 0.00 -> 1.00 at
1.5). docs/behaviour.md, "The tail's pixels over a whole bout"."""
MOTION_GATE_TAIL_MEAN_SPREAD_LOW_FPS = 1.0
"""... below :data:`SUSTAINED_MAX_FPS` (the tail motion compares consecutive frames there, and a
bout holds 5-40 of them): on the 57 kept tuning recordings at 60-125 fps a spread of 1.0 let no
false bout through and kept 22 more of 23854's true bouts than 1.5 did (kappa* 0.605 -> 0.803)."""
MOTION_GATE_TAIL_OVER_MIDTAIL = 1.5
"""A judged bout whose mid-tail stays within its noise (:data:`MIDTAIL_DROP`) is kept by the
tail test only when its tail motion peaks above this many times the tail test's level (a bout
whose mid-tail is not judged still or is not measured: above the level itself). The tail test
compares the caudal pixels over 12.5 ms, so an H.264 key frame and the encoder's update a few
frames after it read as a tail that leaves and comes back (issue 11, seed 22163: two 21-px
larvae at 824 fps, a still tail's pixels at 1.07 x the level while its traced tip jumped 0.2
rad and its mid-tail stayed at 0.34 x its noise; tuning seed 112: 1.17 x, false; the one true
bout of 165 video recordings in this case, 112 A2, at 1.87 x). Both levels are the rig's
(pooled over the recording's fish); 1.0: the rule before 2026-12-07. Since the tracks carry
the key frames (the pipeline's ``keyframe`` column, :data:`KEY_FRAME_GATE`), this factor
applies only to tracks without them (older tracks of fishtrack); tracks with them use
:data:`MOTION_GATE_TAIL_OVER_MIDTAIL_KEYED`."""
MOTION_GATE_TAIL_OVER_MIDTAIL_KEYED = 1.0
"""... the same factor where the key frames are known and left out of the pixel evidence
(:data:`KEY_FRAME_GATE`, tracks with the ``keyframe`` column): 1.0, the tail test as before
2026-12-07 (the stop-gap of 1.5 above is not needed there: issue 11, 2026-12-07, seed 22163's
key-frame bout is dropped by the key-frame rule at 1.0; docs/behaviour.md). Set it to
:data:`MOTION_GATE_TAIL_OVER_MIDTAIL` to keep the stop-gap with key frames too."""
KEY_FRAME_GATE = False
"""**Off by default** (issue 11, 2026-12-07: on tuning seed 745, found by
tests/test_behaviour_gate_short_trace.py after the held-out run 23860-23919, leaving the key
frames out lowers the tail test's level from 4.62 to 4.20 and a short kinked trace's jitter
of resting larva A1 (still tail) at 4.44 s passes as a bout: kappa* 1.00 -> 0.00, passive error 0.00 ->
0.34; docs/behaviour.md, "Key frames are not pixel evidence"). When on: the gate does not take
a compressed video's key frames as pixel evidence: where the tracks carry the pipeline's ``keyframe`` column, an aligned pixel change (motion energy and
tail motion, each the smaller of the change into a frame and out of it) whose comparisons on
**both** sides span a frame the encoder renewed (:func:`key_frames`, :func:`spans_renewal`: a key frame and the
:data:`KEY_FRAME_REFRESH_FRAMES` after it) is left out before the moving mean (NaN), so a
key frame plus the encoder's update a few frames later no longer reads as a tail that leaves
and comes back. Only the gate's inputs (and the pixel bouts' tail motion) change; tracks
without the column (imported, or written before 2026-12-07) are gated as before. Intra-only
videos (no key frame in the column) have nothing left out, but their key frames are known
(none), so the tail test's factor is :data:`MOTION_GATE_TAIL_OVER_MIDTAIL_KEYED`. False: the
rule before."""
KEY_FRAME_REFRESH_FRAMES = 8
"""Frames after a key frame whose pixels the encoder still renews (x264 as the simulator and
common cameras write it: frames, not seconds - the encoder's 4-frame mini-GOPs re-converge over
a number of frames whatever the frame rate; used with :data:`KEY_FRAME_GATE` on). Measured on the quiet frames of 43 H.264 tuning
recordings (67-824 fps): the mean change of the frames after a key frame stays 1.5-7 x the
level away from key frames for 4-20 frames (median 12; seed 22163, 824 fps: 4.4 ... 2.6 x at
1-12 frames; its false bout's update came 8 frames after the key frame). 8 chosen on 45 kept
tuning recordings: 4 left 22163's false onset, 12 and 16 made 112 and 118 worse
(docs/behaviour.md, "Key frames are not pixel evidence"). Each key frame takes 8 aligned
values out of the gate's evidence, whatever the lag."""
MOTION_GATE_UNEXPLAINED = True
"""The gate's levels (motion energy, tail motion peak and mean) leave out the stretches of
quiet frames whose tail pixels change like a bout (:func:`unexplained_frames`): a stretch as long
as the shortest duration of :data:`MOTION_GATE_MEAN_WINDOWS_S` whose mean tail motion exceeds
:data:`MOTION_GATE_UNEXPLAINED_FACTOR` x the rig's level of that mean. The quiet frames are the
frames away from the bouts the first detection found; where a faint tail's traced angle does
not follow its beats (spent 24469: 322 fps, two 44-px larvae in wells, tail 17.8 grey levels,
H.264 CRF 28, traced tail r 0.12-0.25 with the true one during bouts) a fish's missed bouts stay
among its quiet frames and raise the levels against which every fish's bouts are judged. With
two fish the median over fish is the mean of both: 24469 A2's two missed bouts (94 frames)
raised the motion level to 3.20 grey levels (its truly still frames' 99th percentile 0.61, A1's
0.12-0.59) and the tail level to 4.33, and four of A1's six true bouts were dropped (A1 83 %
passive against 44 %). Only the levels change; the bouts judged and the tests are as before.
False: the rule before 2026-12-08 (h11o)."""
MOTION_GATE_UNEXPLAINED_FACTOR = 2.0
"""... a quiet stretch is left out when its mean tail motion exceeds this many times the rig's
level of that mean (:func:`tail_mean_levels`, the median over the recording's fish). On the
tuning cases (docs/behaviour.md, "Bouts the trace missed raise the gate's levels") the means of
truly still stretches over the shortest duration (0.04 s) reach at most 1.40 x that level
(tuning 112; 0.29-1.20 x in 745, 22163, 71, 23854, 24469), those of missed bouts 2.90 x (24469)
and 3.71 x (23817): a stretch above 2 x is not the rig's noise."""
MIDTAIL_GATE = True
"""The gate also asks whether the **middle of the traced tail** moves (issue 11, from video): a
tail beat is a wave that bends the tail along its length, while the tracker's jitter of a faint
tail in a compressed, noisy video (H.264 refreshing the fish's pixels) moves mostly the traced
tip. The mid-tail angle (:func:`midtail_frames`) is compared with its noise, the recording's
level of it (:func:`midtail_level`): a bout of fishtrack's own tracks whose mid-tail never
leaves :data:`MIDTAIL_DROP` x the level is dropped whatever its pixels say, and a judged bout
whose mid-tail exceeds :data:`MIDTAIL_KEEP` x the level is kept whatever they say. Tracks
without midline segment angles (``seg_angle_*``) are gated as before. False: the rule before
2026-12-06."""
MIDTAIL_FRACTION = 0.6
"""The mid-tail angle is the cumulative direction (``seg_angle_k``) of the midline segment
whose centre lies nearest this fraction of the midline from the head (segment 6 of 9)."""
MIDTAIL_QUANTILE = 0.99
"""A fish's mid-tail noise: this quantile of ``|mid-tail angle - its rest posture|`` over its
quiet frames; the recording's level is the median of its fish's (fish with fewer than
:data:`MIN_QUIET_FRAMES` quiet frames left out): the rig's and the tracker's noise, which a
minority of fish whose quiet frames hold missed bouts cannot raise."""
MIDTAIL_DROP = 1.0
"""A bout whose largest mid-tail deviation from rest stays within this many times the level is
tracker jitter at the tip, and is dropped."""
MIDTAIL_KEEP = 3.0
"""A judged bout whose largest mid-tail deviation exceeds this many times the level is kept,
even where the pixels of the whole fish and of the tail do not rise above their noise."""
MIDTAIL_MIN_LENGTH = 0.8
"""The mid-tail angle counts only on frames whose traced midline is at least this fraction of
the fish's own traced length (the median over its frames, :func:`short_traces`): a tail that
bends keeps its length, while a trace that lost a faint tail in noise and codec blocks (hooked
into a short branch, or stopped at a block edge) is short, and its rear segment angles are not
the tail's (issue 11, tuning seeds 574, 745, 818: still tails traced at 0.48-0.72 of the length
for a few frames, their mid-tail 2.9-5.9 x the level; 745's true bends at >= 0.95). Tuning
0.75-0.85 gave the same results, 0.6-0.7 kept 745's jitter, 0.9 lost 112's weak bouts. 0:
every frame counts (the rule before 2026-12-06)."""
SUSTAINED_WINDOW_S = 0.15
"""Sustained bouts (below :data:`SUSTAINED_MAX_FPS`): the tail's energy is the mean of the
squared deviation from its rest posture over a centred window of this duration (s; at least
:data:`SUSTAINED_MIN_FRAMES` frames): 1.5-4 beats of 15-40 Hz, so a bout that lasts is found
even when the vigour of each of its frames is inside the noise (issue 11, 60-130 fps)."""
SUSTAINED_MIN_FRAMES = 6
SUSTAINED_MAX_FPS = 125.0
"""Sustained bouts are looked for only below this frame rate: where the tail angle is not
low-passed (2.5 x ``TAIL_LOWPASS_HZ``) and a 15-40 Hz beat has at most 3-8 samples, too few for
its vigour to stand out of the noise. Above it the vigour finds the bouts it finds (the
per-frame vigour of the same beat grows with the samples per beat)."""
SUSTAINED_MIN_FPS = 50.0
"""... and from this frame rate up: ``speed.MIN_TAIL_FPS``, below which every beat aliases,
``bout_signal: auto`` uses the head's speed and the tail detector is not validated (a 25 fps
tail forced with ``bout_signal: tail`` keeps the rule before)."""
SUSTAINED_FACTOR = 5.0
"""The sustained threshold is the median of the quiet frames' tail energy plus this many robust
sds of it (first pass: predicted from the tail-noise sigma with white noise,
:func:`white_noise_energy`)."""
SUSTAINED_CLIP_SIGMA = 3.0
"""The deviations that make the tail energy are clipped at this many tail-noise sigmas."""
SUSTAINED_MIN_HIGH = 0.25
"""A sustained bout stays above its threshold for at least this fraction of the window (0.5
before 2026-12-06). A weak bout about as long as the window (0.15-0.2 s) raises the window's
mean above the threshold only while the window covers most of it: on tuning seed 730 (95 fps,
tracking noise 0.075 rad) larva A2's missed bouts peaked at 5.2-6.2 robust sds for 3-7 frames
of the 8 asked. The threshold (:data:`SUSTAINED_FACTOR` robust sds of the quiet frames' energy)
and the sign test keep the noise out: on the 238 tuning recordings at 60-130 fps the 85 still
larvae stay passive (issue 11)."""
SUSTAINED_SIGN_CHANGES = 2
"""... and its clear samples (farther than the noise sigma from the local mean,
:func:`local_deviation`) change side of it at least this often: a beat crosses it every
half-beat, a step of the traced angle once."""
WEAK_BEAT_FACTOR = 4.0
"""Where the tail is not low-passed (below 125 fps), a bout whose turns do not reach the beat
test's prominence (``kinematics.BEAT_PROMINENCE_NOISE_FACTOR`` noise sigmas) is kept when
:data:`MIN_EXTREMA` alternating turns reach this many sigmas and its energy passes
:data:`WEAK_BEAT_ENERGY_Z` (:func:`weak_beat_bouts`). 5 (the beat test's): off."""
WEAK_BEAT_ENERGY_Z = 7.5
"""... its tail's summed squared deviation from rest lies this many standard deviations above
that of white noise of the fish's sigma over as many frames (a chi-square; 7 with the clip
at 3 sigmas, before 2026-12-07)."""
WEAK_BEAT_CLIP_SIGMA = WEAK_BEAT_FACTOR
"""... each deviation clipped at this many sigmas: the turn test's own level, so the turns a
weak bout was kept for count in full, and a glitch the cleaning left counts as one sample of
that size. Clipped at :data:`SUSTAINED_CLIP_SIGMA` (3, before 2026-12-07), a beat whose
samples lie beyond 3 sigmas had its energy cut to that of a weaker one (issue 11: 59 % of the
missed bouts in the fish beyond 0.03 at 60-125 fps lie under the test's energy even with the
true signal, but on 795, 843, 902, 820 true bouts of 0.2-0.5 rad in noise of 0.04-0.08 rad
measured z 3-8 with their 4-6 sigma samples cut to 3)."""
_MAD = 1.4826  # robust sd = 1.4826 x median absolute deviation (normal distribution)


@dataclass
class NoiseLevels:
    """Per-fish measurement noise, measured on the frames away from every bout."""

    tail_noise_rad: np.ndarray  # sigma of the tail angle per frame (rad)
    vigour_mean: np.ndarray  # median vigour of the quiet frames (rad/s)
    vigour_sd: np.ndarray  # robust sd of the vigour of the quiet frames (rad/s)
    quiet_s: np.ndarray  # quiet time the fish's own estimate rests on (s)
    pooled: np.ndarray  # bool: too little quiet time, the recording's pooled values are used
    excursion_mean: np.ndarray | None = None  # median RMS excursion of the quiet frames (rad)
    excursion_sd: np.ndarray | None = None  # its robust sd (rad)
    sustained_mean: np.ndarray | None = None  # median tail energy of the quiet frames (rad^2)
    sustained_sd: np.ndarray | None = None  # its robust sd (rad^2)


@dataclass
class BoutRuns:
    """Bouts as sorted-row index ranges (inclusive) plus per-row membership."""

    starts: np.ndarray
    ends: np.ndarray
    in_bout: np.ndarray  # per sorted row
    thresholds: np.ndarray  # per fish (rad/s); NaN where the fish has no vigour at all
    noise: np.ndarray  # per fish vigour noise floor (rad/s)
    levels: NoiseLevels | None = None
    excursion_thresholds: np.ndarray | None = None  # per fish (rad); None: excursion off
    excursion_noise: np.ndarray | None = None  # per fish median quiet excursion (rad)
    evidence: np.ndarray | None = None  # per bout: "beats", "excursion" or "sustained"
    sustained_thresholds: np.ndarray | None = None  # per fish (rad^2); None: off


def _first_pass_levels(kin: Kinematics) -> tuple[np.ndarray, np.ndarray]:
    """Vigour noise mean and sd predicted from each fish's tail-noise sigma.

    The vigour that white tail-angle noise of sigma 1 produces at this frame rate, after the
    same low-pass filter and travel window (:func:`white_noise_vigour`), scaled by the
    fish's first-pass sigma (:func:`fishtrack.behaviour.kinematics.tail_noise`, right while
    the tail is still in at least ~30 % of the frames). Unlike percentiles of the vigour, this
    does not move with the fish's bouts, however long they last.
    """
    mu1, sd1 = memo(white_noise_vigour, kin.frames.dt_median, kin.width)
    sig = kin.tail_noise
    return sig * mu1, sig * sd1


def _white_noise(dt: float, n: int, seed: int) -> tuple[Frames, np.ndarray]:
    """One fish of ``n`` frames every ``dt`` s whose tail angle is white noise of sigma 1 rad
    (fixed seed), and that noise."""
    z = np.random.default_rng(seed).standard_normal(n)
    zeros = np.zeros(n, np.int64)
    fr = Frames(order=np.arange(n), gid=zeros, gstart=zeros, gend=np.full(n, n - 1),
                frame=np.arange(n), t=np.arange(n) * dt, dur=np.full(n, dt), dt_median=dt,
                observed=np.ones(n, bool), tail=z, x=np.full(n, np.nan), y=np.full(n, np.nan),
                heading=np.full(n, np.nan), fish_keys=pd.DataFrame({"arena": [""], "fish": [""]}),
                jump=np.zeros(n - 1, bool))
    return fr, z


def _median_sd(v: np.ndarray) -> tuple[float, float]:
    med = float(np.median(v))
    return med, float(_MAD * np.median(np.abs(v - med)))


def white_noise_vigour(dt: float, width: int, n: int = 8192) -> tuple[float, float]:
    """Mean and sd of the vigour (rad/s) of white tail-angle noise of sigma 1 rad sampled every
    ``dt`` s, filtered and windowed like the tracks (``width`` frames); fixed seed."""
    fr, z = _white_noise(dt, n, 0)
    return _median_sd(travel_rate(smooth_tail(fr, tail=z), fr, width)[width:-width])


def white_noise_excursion(dt: float, width: int, n: int = 8192) -> tuple[float, float]:
    """Median and robust sd of the excursion (rad) of white tail-angle noise of sigma 1 rad
    sampled every ``dt`` s, cleaned and windowed like the tracks (``width`` frames)."""
    fr, z = _white_noise(dt, n, 1)
    return _median_sd(tail_excursion(smooth_tail(fr, tail=z), fr, width)[width:-width])


def white_noise_energy(dt: float, width: int, n: int = 8192) -> tuple[float, float]:
    """Median and robust sd of the tail energy (:func:`tail_energy`, rad^2) of white tail-angle
    noise of sigma 1 rad sampled every ``dt`` s; fixed seed."""
    fr, z = _white_noise(dt, n, 2)
    return _median_sd(_energy(smooth_tail(fr, tail=z), fr, width, np.ones(1))[width:-width])


def sustained_width(fr: Frames) -> int:
    """Frames of the sustained window (:data:`SUSTAINED_WINDOW_S`)."""
    return max(SUSTAINED_MIN_FRAMES, int(round(SUSTAINED_WINDOW_S / fr.dt_median)) + 1)


def sustained_on(kin: Kinematics) -> bool:
    """Whether sustained bouts are looked for: from :data:`SUSTAINED_MIN_FPS` up to below
    :data:`SUSTAINED_MAX_FPS`."""
    fr = kin.frames
    return (fr.n > 1 and fr.dt_median > 0
            and SUSTAINED_MIN_FPS <= 1.0 / fr.dt_median < SUSTAINED_MAX_FPS)


def _energy(tail: np.ndarray, fr: Frames, width: int, sigma: np.ndarray) -> np.ndarray:
    dev = rest_deviation(tail, fr)
    lim = SUSTAINED_CLIP_SIGMA * sigma[fr.gid]
    with np.errstate(invalid="ignore"):
        dev = np.clip(dev, -lim, lim)
    # defined at a frame without a tail too (the mean of its window's samples): a dropout of
    # the tracking does not cut a bout's energy in two (issue 11, 1-4 % of frames at 60-130 fps)
    return _centred_mean(dev * dev, fr, width)


def tail_energy(kin: Kinematics) -> np.ndarray:
    """Per sorted row: mean squared deviation of the cleaned tail angle from its rest posture
    over the sustained window (rad^2; also on a frame without a tail, from its window's
    samples), each deviation clipped at
    :data:`SUSTAINED_CLIP_SIGMA` tail-noise sigmas. White noise of sigma ``s`` gives ``s^2``
    whatever the window; a beat of amplitude ``A`` adds about ``A^2 / 2`` however few samples
    each beat has, and the window averages the noise down. The clip keeps a tracker glitch that
    the cleaning left (one sample of 6 sigmas) from reading as a window of beats."""
    return _energy(kin.tail, kin.frames, sustained_width(kin.frames), kin.tail_noise)


def quiet_frames(kin: Kinematics, in_bout: np.ndarray, pad_s: float = QUIET_PAD_S) -> np.ndarray:
    """Observed frames farther than ``pad_s`` from every bout of their fish."""
    fr = kin.frames
    pad = max(1, int(round(pad_s / fr.dt_median)))
    cs = np.concatenate([[0], np.cumsum(in_bout)])
    idx = np.arange(fr.n)
    lo = np.maximum(idx - pad, fr.gstart)
    hi = np.minimum(idx + pad, fr.gend)
    near = (cs[hi + 1] - cs[lo]) > 0
    return fr.observed & ~near & np.isfinite(kin.columns["vigour_rad_s"])


def noise_levels(kin: Kinematics, quiet: np.ndarray) -> NoiseLevels:
    """Noise of every fish measured on its quiet frames (see :func:`quiet_frames`).

    Tail-angle sigma from the frame-to-frame changes, vigour noise as the median and robust
    sd (1.4826 x MAD) of the quiet frames' vigour. None of it depends on how many frames are
    quiet. A fish with less than :data:`MIN_QUIET_S` of quiet time takes the median of the
    other fish of the recording (noise is a property of the camera, the lighting and the
    tracker); when no fish has enough, the fish's own values are kept.
    """
    sig = tail_noise(kin.frames, quiet=quiet)
    own = np.isfinite(OWN_NOISE_FACTOR)
    lv = quiet_levels(kin.frames, kin.columns["vigour_rad_s"], sig, quiet, own)
    if "tail_excursion_rad" in kin.columns:
        ex = quiet_levels(kin.frames, kin.columns["tail_excursion_rad"], sig, quiet, own)
        lv.excursion_mean, lv.excursion_sd = ex.vigour_mean, ex.vigour_sd
    if sustained_on(kin):
        su = quiet_levels(kin.frames, tail_energy(kin), sig, quiet, own)
        lv.sustained_mean, lv.sustained_sd = su.vigour_mean, su.vigour_sd
    return lv


def quiet_levels(fr: Frames, vigour: np.ndarray, sig: np.ndarray, quiet: np.ndarray,
                 own_if_noisier: bool = False) -> NoiseLevels:
    """Per-fish noise of a signal on the quiet frames: ``sig`` (the per-frame measurement
    sigma), median and robust sd of ``vigour``, quiet time and pooling (see
    :func:`noise_levels`; also used for the head speed, :mod:`fishtrack.behaviour.speed`).
    ``own_if_noisier``: a short-quiet fish whose ``sig`` exceeds the pooled one by
    :data:`OWN_NOISE_FACTOR` keeps its own values (the tail's levels)."""
    n_fish = len(fr.fish_keys)
    sig = np.array(sig, dtype=float)
    vig = np.where(quiet, vigour, np.nan)
    med = group_quantile(vig, fr.gid, n_fish, 0.5)
    dev = np.abs(vig - med[fr.gid])
    sd = _MAD * group_quantile(dev, fr.gid, n_fish, 0.5)
    quiet_s = np.bincount(fr.gid, weights=np.where(quiet, fr.dur, 0.0), minlength=n_fish)
    short = quiet_s < MIN_QUIET_S
    good = ~short & np.isfinite(sig) & np.isfinite(med) & np.isfinite(sd)
    pooled = np.zeros(n_fish, bool)
    # the recording's values (over every fish, also when the stage sees only some of them)
    use, p_sig, p_med, p_sd = pool_value("quiet_levels", _pool_levels, short=short, good=good,
                                         sig=sig, med=med, sd=sd)
    if use and short.any():
        pooled = short.copy()
        if own_if_noisier:
            # a fish whose own quiet frames show a clearly noisier trace keeps its own levels
            with np.errstate(invalid="ignore"):
                noisier = ((quiet_s >= MIN_QUIET_FRAMES * fr.dt_median) & np.isfinite(med)
                           & np.isfinite(sd) & (sig > OWN_NOISE_FACTOR * p_sig))
            pooled &= ~noisier
        for arr, v in ((sig, p_sig), (med, p_med), (sd, p_sd)):
            arr[pooled] = v
    # no other fish to pool from: the fish's own quiet frames if there are some, else the
    # noise is not measured (NaN: the threshold is the physical floor)
    unmeasured = ~pooled & (quiet_s < MIN_QUIET_FRAMES * fr.dt_median)
    med[unmeasured] = np.nan
    sd[unmeasured] = np.nan
    return NoiseLevels(tail_noise_rad=sig, vigour_mean=med, vigour_sd=sd, quiet_s=quiet_s,
                       pooled=pooled)


def _pool_levels(short: np.ndarray, good: np.ndarray, sig: np.ndarray, med: np.ndarray,
                 sd: np.ndarray) -> tuple[bool, float, float, float]:
    """Whether fish with too little quiet time take pooled values, and those values (the
    median over the fish with enough of it)."""
    if short.any() and good.any():
        return True, float(np.median(sig[good])), float(np.median(med[good])), float(
            np.median(sd[good]))
    return False, np.nan, np.nan, np.nan


def bout_thresholds(
    kin: Kinematics, cfg: BehaviourConfig, levels: NoiseLevels | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-fish vigour threshold (rad/s) and noise level (rad/s).

    ``cfg.bout_threshold`` when set. Otherwise ``threshold = max(cfg.min_bout_threshold,
    mean + cfg.threshold_factor x sd)`` where mean and sd describe the vigour of the still
    tail: measured on the quiet frames (``levels``, see :func:`noise_levels`), or, in the
    first pass, predicted from the fish's tail-noise sigma (:func:`_first_pass_levels`).
    Where the noise could not be measured the threshold is
    ``cfg.min_bout_threshold``. The returned noise level is that mean.
    """
    n_fish = len(kin.frames.fish_keys)
    if levels is None:
        mean, sd = _first_pass_levels(kin)
    else:
        mean, sd = levels.vigour_mean, levels.vigour_sd
    if cfg.bout_threshold is not None:
        thr = np.full(n_fish, float(cfg.bout_threshold))
    else:
        # fmax: where the noise could not be measured (NaN) the physical floor remains
        thr = np.fmax(cfg.min_bout_threshold, mean + cfg.threshold_factor * sd)
    return thr, mean


def excursion_thresholds(
    kin: Kinematics, cfg: BehaviourConfig, levels: NoiseLevels | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-fish excursion threshold (rad) and noise level (rad): ``max(cfg.min_excursion_rad,
    mean + cfg.excursion_threshold_factor x sd)`` of the RMS excursion of the quiet frames
    (first pass: predicted from the tail-noise sigma, :func:`white_noise_excursion`). With
    ``bout_threshold`` set (a fixed rig-level vigour threshold) the excursion threshold is
    still measured: it is a second, independent signal."""
    if levels is None or levels.excursion_mean is None:
        mu1, sd1 = memo(white_noise_excursion, kin.frames.dt_median, kin.exc_width)
        mean, sd = kin.tail_noise * mu1, kin.tail_noise * sd1
    else:
        mean, sd = levels.excursion_mean, levels.excursion_sd
    thr = np.fmax(cfg.min_excursion_rad, mean + cfg.excursion_threshold_factor * sd)
    return thr, mean


def sustained_thresholds(
    kin: Kinematics, cfg: BehaviourConfig, levels: NoiseLevels | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-fish tail-energy threshold and noise level (rad^2): ``median + SUSTAINED_FACTOR x
    robust sd`` of the tail energy of the quiet frames (first pass, or where not measured:
    predicted from the tail-noise sigma, :func:`white_noise_energy`), at least the energy of a
    beat of ``cfg.min_excursion_rad`` amplitude (its square / 2: the excursion's physical
    floor). Nothing about how active the fish is enters: the noise is the rig's and the
    tracker's."""
    mu1, sd1 = memo(white_noise_energy, kin.frames.dt_median, sustained_width(kin.frames))
    s2 = kin.tail_noise ** 2
    mean, sd = s2 * mu1, s2 * sd1
    if levels is not None and levels.sustained_mean is not None:
        ok = np.isfinite(levels.sustained_mean) & np.isfinite(levels.sustained_sd)
        mean = np.where(ok, levels.sustained_mean, mean)
        sd = np.where(ok, levels.sustained_sd, sd)
    floor = 0.5 * cfg.min_excursion_rad ** 2
    return np.fmax(floor, mean + SUSTAINED_FACTOR * sd), mean


def hysteresis_activity(
    kin: Kinematics, thr: np.ndarray, noise: np.ndarray, *, max_extend_s: float,
    min_high_s: float | None = None, signal: str | np.ndarray = "vigour_rad_s",
) -> np.ndarray:
    """Frames above the threshold, extended down to a lower threshold at both ends.

    Stretches above the threshold shorter than ``max_extend_s / 2`` are ignored (noise
    spikes: a beating tail stays above it for longer). Each remaining stretch grows while the
    vigour stays above the low threshold, which lies :data:`HYSTERESIS` of the way from the
    noise mean to the threshold, by at most ``max_extend_s`` on each side, so that onsets and
    ends sit closer to the first and last beat without swallowing noise. A column name
    ``signal`` is judged on the observed frames; an array (a windowed signal, the sustained
    bouts' energy) wherever it is defined, also on a frame where the tail was lost.
    """
    fr = kin.frames
    vig = kin.columns[signal] if isinstance(signal, str) else signal
    low_thr = np.where(np.isfinite(noise), noise + HYSTERESIS * (thr - noise), thr)
    low_thr = np.minimum(low_thr, thr)
    # a windowed signal (an array) is judged wherever it is defined, also across a dropout
    ok = fr.observed if isinstance(signal, str) else np.isfinite(vig)
    with np.errstate(invalid="ignore"):
        high = ok & (vig > thr[fr.gid])
        low = ok & (vig > low_thr[fr.gid])
    # stretches above the threshold shorter than half a vigour window are noise spikes
    hs, he = runs(high, fr.gid)
    min_high = 0.5 * max_extend_s if min_high_s is None else min_high_s
    short = (fr.t[he] + fr.dur[he] - fr.t[hs]) < min_high - 1e-9
    high &= ~run_lengths_fill(hs[short], he[short], np.ones(int(short.sum()), bool), fr.n, False)
    s, e = runs(low, fr.gid)
    hp = np.flatnonzero(high)
    if len(hp) == 0 or len(s) == 0:
        return high
    first = np.searchsorted(hp, s)  # first high frame at/after each low-run start
    last = np.searchsorted(hp, e, side="right") - 1  # last high frame at/before its end
    keep = (first <= last) & (first < len(hp))
    s, e, first, last = s[keep], e[keep], hp[first[keep]], hp[last[keep]]
    ext = int(round(max_extend_s / fr.dt_median))
    s = np.maximum(s, first - ext)
    e = np.minimum(e, last + ext)
    return run_lengths_fill(s, e, np.ones(len(s), bool), fr.n, False) | high


def bout_runs(
    active: np.ndarray, fr: Frames, blocks: Blocks, cfg: BehaviourConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Turn per-frame activity into bouts: merge close runs, drop short ones.

    Runs closer than ``merge_gap_s`` (end of one to start of the next) are merged, also
    across a bridged detection gap, never across a long gap or another fish; merged bouts
    shorter than ``min_bout_s`` are dropped. Durations use the actual frame times.
    """
    s, e = runs(active, blocks.block)
    if len(s) > 1:
        gap = fr.t[s[1:]] - (fr.t[e[:-1]] + fr.dur[e[:-1]])
        merge = (blocks.block[s[1:]] == blocks.block[e[:-1]]) & (gap < cfg.merge_gap_s)
        first = np.r_[True, ~merge]
        last = np.r_[~merge, True]
        s, e = s[first], e[last]
    dur = fr.t[e] + fr.dur[e] - fr.t[s]
    keep = dur >= cfg.min_bout_s - 1e-9
    return s[keep], e[keep]


def trim_to_beats(
    kin: Kinematics, s: np.ndarray, e: np.ndarray, *, pad_s: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep the bouts that hold tail beats and trim them to their beats.

    A bout must contain at least :data:`MIN_EXTREMA` alternating tail extrema (see
    :func:`fishtrack.behaviour.kinematics.tail_extrema`), or one extremum (a single bend)
    whose strength is at least :data:`SINGLE_BEND_STRENGTH`. Its start is moved to no earlier
    than half a half-beat before its first extremum (the half-beat measured between its first
    two extrema; a movement starts a quarter beat before its first turn), and never more than
    ``pad_s``; likewise its end after its last extremum. Noise just before or after a bout is
    so not counted in it. Where the tail is not low-passed, a bout without such beats is kept
    when it holds weak beats (:func:`weak_beat_bouts`).

    Returns the starts, ends and the evidence of each bout (``beats`` or ``weak_beats``).
    """
    ks, ke, keep = _trim(kin.frames, kin.extrema, kin.extrema_strength, kin.extrema_t, s, e,
                         pad_s=pad_s, single=True)
    ev = np.full(len(ks), "beats", dtype=object)
    if WEAK_BEAT_FACTOR < kinematics_mod.BEAT_PROMINENCE_NOISE_FACTOR and not (
            filtered_noise_gain(kin.frames) < 1) and (~keep).any():
        ws, we = weak_beat_bouts(kin, s[~keep], e[~keep], pad_s=pad_s)
        ev = np.r_[ev, np.full(len(ws), "weak_beats", dtype=object)]
        ks, ke = np.r_[ks, ws].astype(np.int64), np.r_[ke, we].astype(np.int64)
        o = np.argsort(ks, kind="stable")
        ks, ke, ev = ks[o], ke[o], ev[o]
    return ks, ke, ev


def _trim(
    fr: Frames, ext: np.ndarray, strength: np.ndarray, et: np.ndarray, s: np.ndarray,
    e: np.ndarray, *, pad_s: float, single: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The bouts ``s..e`` that hold :data:`MIN_EXTREMA` of the extrema ``ext`` (or, with
    ``single``, one strong bend), trimmed to them (see :func:`trim_to_beats`); also the bool
    mask of the bouts kept."""
    lo = np.searchsorted(ext, s)
    hi = np.searchsorted(ext, e, side="right")
    size = np.abs(strength) if len(ext) else np.zeros(0)
    # the turns at a bout's edges must reach EDGE_FRACTION of its largest: smaller ones are
    # noise, or the low-pass filter's ripple before and after a sudden large bend
    for k in np.flatnonzero(hi - lo >= 2):
        seg = size[lo[k] : hi[k]]
        big = np.flatnonzero(seg >= EDGE_FRACTION * seg.max())
        lo[k], hi[k] = lo[k] + big[0], lo[k] + big[-1] + 1
    keep = hi - lo >= MIN_EXTREMA
    if len(ext) and single:
        # a single bend counts when it is strong and wide (a C-bend), not a flicker of noise
        one = (hi - lo == 1) & (hi > 0)
        strong = strength[np.minimum(lo, len(ext) - 1)] >= SINGLE_BEND_STRENGTH
        keep |= one & strong
    mask = keep
    s, e, lo, hi = s[keep], e[keep], lo[keep], hi[keep]
    pad = max(1, int(round(pad_s / fr.dt_median)))
    two = hi - lo >= 2
    first_half = np.where(two, et[np.minimum(lo + 1, len(ext) - 1)] - et[lo], np.inf)
    last_half = np.where(two, et[hi - 1] - et[np.maximum(hi - 2, 0)], np.inf)
    pad_a = np.clip(np.ceil(ONSET_HALF_BEATS * first_half / fr.dt_median), 1, pad).astype(np.int64)
    pad_b = np.clip(np.ceil(0.5 * last_half / fr.dt_median), 1, pad).astype(np.int64)
    s = np.maximum(s, ext[lo] - pad_a) if len(s) else s
    e = np.minimum(e, ext[hi - 1] + pad_b) if len(e) else e
    return s, e, mask


def weak_beat_bouts(
    kin: Kinematics, s: np.ndarray, e: np.ndarray, *, pad_s: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Of the bouts ``s..e`` without beats (where the tail is not low-passed), those that hold
    weak ones: :data:`MIN_EXTREMA` alternating turns of prominence :data:`WEAK_BEAT_FACTOR`
    noise sigmas (instead of ``BEAT_PROMINENCE_NOISE_FACTOR``), trimmed to them, whose tail
    also moves away from its rest posture more than the noise does over as many frames: the
    sum of the squared deviations (each clipped at :data:`WEAK_BEAT_CLIP_SIGMA` sigmas, so a
    glitch left by the cleaning counts as one noisy sample) lies :data:`WEAK_BEAT_ENERGY_Z`
    standard deviations above what white noise of the fish's tail-noise sigma gives (a
    chi-square of as many degrees of freedom as frames). Both levels are the fish's measured
    noise (its quiet frames' sigma); nothing about how often it swims enters."""
    fr = kin.frames
    sig = kin.tail_noise
    weak = sig * WEAK_BEAT_FACTOR / kinematics_mod.BEAT_PROMINENCE_NOISE_FACTOR
    ext, strength = tail_extrema(fr, weak, kin.tail, strength=True)
    et = extremum_times(fr, kin.tail, ext)
    s, e, _ = _trim(fr, ext, strength, et, s, e, pad_s=pad_s, single=False)
    if len(s) == 0:
        return s, e
    lim = WEAK_BEAT_CLIP_SIGMA
    with np.errstate(invalid="ignore", divide="ignore"):
        z2 = np.clip(rest_deviation(kin.tail, fr) / sig[fr.gid], -lim, lim) ** 2
    ok = np.isfinite(z2)
    cz = np.r_[0.0, np.cumsum(np.where(ok, z2, 0.0))]
    cn = np.r_[0, np.cumsum(ok)]
    n = cn[e + 1] - cn[s]
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (cz[e + 1] - cz[s] - n) / np.sqrt(2.0 * n)
    keep = (n > 0) & (z >= WEAK_BEAT_ENERGY_Z)
    return s[keep], e[keep]


def _excursion_bouts(
    kin: Kinematics, s: np.ndarray, e: np.ndarray, exc_thr: np.ndarray, *,
    signal: np.ndarray | None = None, width: int | None = None,
    min_high: float = EXCURSION_MIN_HIGH, sign_changes: int = EXCURSION_SIGN_CHANGES,
    dev: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Of the candidate excursion bouts ``s..e`` (stretches above the excursion threshold
    ``exc_thr``, per fish, rad), those that stay above it for :data:`EXCURSION_MIN_HIGH` of
    the excursion window and whose clear samples change side of the rest posture at least
    :data:`EXCURSION_SIGN_CHANGES` times, trimmed to their first and last sample farther than
    :data:`EXCURSION_EDGE_SIGMA` filtered noise sigmas from it. ``signal``, ``width``,
    ``min_high``, ``sign_changes`` and ``dev`` (the deviation the sides are judged from):
    the same tests on another signal (sustained bouts: :func:`tail_energy` over
    :func:`sustained_width`, sides of :func:`local_deviation`)."""
    fr = kin.frames
    exc = kin.columns["tail_excursion_rad"] if signal is None else signal
    width = kin.exc_width if width is None else width
    ok = fr.observed if signal is None else np.isfinite(exc)
    with np.errstate(invalid="ignore"):
        high = ok & (exc > exc_thr[fr.gid])
    hs, he = runs(high, fr.gid)
    min_len = max(2, int(np.ceil(min_high * width)))
    long = (he - hs + 1) >= min_len
    in_long = run_lengths_fill(hs[long], he[long], np.ones(int(long.sum()), bool), fr.n, False)
    cs_long = np.r_[0, np.cumsum(in_long)]
    sig_f = kin.tail_noise * filtered_noise_gain(fr)
    dev = rest_deviation(kin.tail, fr) if dev is None else dev
    with np.errstate(invalid="ignore"):
        clear = np.flatnonzero(np.abs(dev) > sig_f[fr.gid])
        edge = np.flatnonzero(np.abs(dev) > EXCURSION_EDGE_SIGMA * sig_f[fr.gid])
    sgn = np.sign(dev[clear])
    out_s, out_e = [], []
    for a, b in zip(s, e, strict=True):
        if cs_long[b + 1] - cs_long[a] == 0:
            continue
        i, j = np.searchsorted(clear, a), np.searchsorted(clear, b, side="right")
        if int(np.count_nonzero(sgn[i + 1 : j] != sgn[i : j - 1])) < sign_changes:
            continue
        i, j = np.searchsorted(edge, a), np.searchsorted(edge, b, side="right")
        if j > i:
            a, b = edge[i], edge[j - 1]
        out_s.append(a)
        out_e.append(b)
    return np.asarray(out_s, np.int64), np.asarray(out_e, np.int64)


def _bouts_with(
    kin: Kinematics, cfg: BehaviourConfig, blocks: Blocks, thr: np.ndarray, noise: np.ndarray,
    active: np.ndarray | None, exc: tuple[np.ndarray, np.ndarray] | None = None,
    sus: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    fr = kin.frames
    if active is None:
        active = hysteresis_activity(
            kin, thr, noise, max_extend_s=max(EXTEND_S, cfg.vigour_window_s),
            min_high_s=0.5 * cfg.vigour_window_s)
    s, e = bout_runs(active, fr, blocks, cfg)
    s, e, ev = trim_to_beats(kin, s, e, pad_s=cfg.vigour_window_s)
    if exc is not None:
        # excursion bouts: only where the vigour found none (it places onsets better)
        xw = kin.exc_width * fr.dt_median
        xact = hysteresis_activity(
            kin, exc[0], exc[1], max_extend_s=0.0, min_high_s=EXCURSION_MIN_HIGH * xw,
            signal="tail_excursion_rad")
        xs, xe = bout_runs(xact, fr, blocks, cfg)
        free = _far_from(fr, s, e, xs, xe, cfg.merge_gap_s)
        xs, xe = _excursion_bouts(kin, xs[free], xe[free], exc[0])
        ev = np.r_[ev, np.full(len(xs), "excursion", dtype=object)]
        s, e = np.r_[s, xs].astype(np.int64), np.r_[e, xe].astype(np.int64)
        o = np.argsort(s, kind="stable")
        s, e, ev = s[o], e[o], ev[o]
    if sus is not None:
        s, e, ev = _add_sustained(kin, cfg, blocks, s, e, ev, *sus)
    long_enough = fr.t[e] + fr.dur[e] - fr.t[s] >= cfg.min_bout_s - 1e-9  # again, once trimmed
    return s[long_enough], e[long_enough], ev[long_enough]


def _far_from(fr: Frames, s: np.ndarray, e: np.ndarray, xs: np.ndarray, xe: np.ndarray,
              gap_s: float) -> np.ndarray:
    """Per bout ``xs..xe``: whether no frame within ``gap_s`` (at least one frame when > 0) of
    it lies in a bout ``s..e``."""
    busy = np.r_[0, np.cumsum(run_lengths_fill(s, e, np.ones(len(s), bool), fr.n, False))]
    pad = max(1, int(round(gap_s / fr.dt_median))) if gap_s > 0 else 0
    lo, hi = np.maximum(xs - pad, 0), np.minimum(xe + pad, fr.n - 1)
    return busy[hi + 1] - busy[lo] == 0


def local_deviation(kin: Kinematics) -> np.ndarray:
    """Tail angle minus its centred mean over the sustained window (rad): a 15-40 Hz beat
    crosses it every half-beat even when the bout bends the tail to one side for its whole
    duration (the 0.5 s rest posture of :func:`rest_deviation` is then on one side of it);
    a step of the traced angle crosses it once."""
    fr = kin.frames
    return kin.tail - _centred_mean(kin.tail, fr, sustained_width(fr))


def _add_sustained(
    kin: Kinematics, cfg: BehaviourConfig, blocks: Blocks, s: np.ndarray, e: np.ndarray,
    ev: np.ndarray, thr: np.ndarray, noise: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The bouts ``s..e`` plus the sustained bouts (``bout_evidence`` ``sustained``): stretches
    whose tail energy (:func:`tail_energy`) stays above ``thr`` (per fish, rad^2) for
    :data:`SUSTAINED_MIN_HIGH` of the sustained window and whose clear samples change side of
    the local mean (:func:`local_deviation`) at least :data:`SUSTAINED_SIGN_CHANGES` times,
    trimmed like the excursion bouts, and farther than ``merge_gap_s`` from every bout found
    before (the vigour places onsets better where it sees the beats)."""
    fr = kin.frames
    energy = tail_energy(kin)
    width = sustained_width(fr)
    act = hysteresis_activity(kin, thr, noise, max_extend_s=0.5 * width * fr.dt_median,
                              min_high_s=SUSTAINED_MIN_HIGH * width * fr.dt_median,
                              signal=energy)
    xs, xe = bout_runs(act, fr, blocks, cfg)
    xs, xe = _excursion_bouts(kin, xs, xe, thr, signal=energy, width=width,
                              min_high=SUSTAINED_MIN_HIGH, sign_changes=SUSTAINED_SIGN_CHANGES,
                              dev=local_deviation(kin))
    if len(xs) == 0:
        return s, e, ev
    # weak beats (:func:`weak_beat_bouts`) give way to a sustained bout over them: its energy
    # over the whole stretch is the stronger evidence, and it holds the weak bouts next to them
    weak = ev == "weak_beats"
    free = _far_from(fr, s[~weak], e[~weak], xs, xe, cfg.merge_gap_s)
    xs, xe = xs[free], xe[free]
    under = weak & ~_far_from(fr, xs, xe, s, e, 0.0)
    s, e, ev = s[~under], e[~under], ev[~under]
    ev = np.r_[ev, np.full(len(xs), "sustained", dtype=object)]
    s, e = np.r_[s, xs].astype(np.int64), np.r_[e, xe].astype(np.int64)
    o = np.argsort(s, kind="stable")
    return s[o], e[o], ev[o]


def _detect(
    kin: Kinematics, cfg: BehaviourConfig, blocks: Blocks, active: np.ndarray | None = None
) -> BoutRuns:
    """Bouts in :data:`N_PASSES` passes: each pass measures the noise on the frames away from
    the previous pass's bouts (first pass: predicted from the tail-noise sigma), redoes the
    noise-dependent steps (glitch removal, filtering, beat extrema) with the new sigma and
    sets the thresholds from it. ``kin`` is refined in place (see
    :func:`fishtrack.behaviour.classify.score`, which passes a copy)."""
    fr = kin.frames
    levels = None
    use_exc = bool(getattr(cfg, "excursion", True)) and "tail_excursion_rad" in kin.columns
    use_sus = active is None and bool(getattr(cfg, "sustained", True)) and sustained_on(kin)
    n_pass = N_PASSES if active is None else 1
    xthr = xnoise = sthr = None
    for k in range(n_pass):
        if active is not None:
            levels = remembered("noise_levels", noise_levels, kin, quiet_frames(kin, active))
        thr, noise = bout_thresholds(kin, cfg, levels)
        if use_exc:
            xthr, xnoise = excursion_thresholds(kin, cfg, levels)
        sus = None
        if use_sus:
            sthr, snoise = sustained_thresholds(kin, cfg, levels)
            sus = (sthr, snoise)
        s, e, ev = remembered("bouts_with", _bouts_with, kin, cfg, blocks, thr, noise, active,
                              (xthr, xnoise) if use_exc else None, sus)
        in_bout = run_lengths_fill(s, e, np.ones(len(s), bool), fr.n, False)
        if k == n_pass - 1:
            break
        levels = remembered("noise_levels", noise_levels, kin, quiet_frames(kin, in_bout))
        sig = np.where(np.isfinite(levels.tail_noise_rad), levels.tail_noise_rad, kin.tail_noise)
        changed = np.abs(sig - kin.tail_noise) > 0.1 * np.maximum(kin.tail_noise, 1e-12)
        if pool_value("redo_noise_steps", any_of, flag=np.any(changed)):
            _refine(kin, sig)
            levels = remembered("noise_levels", noise_levels, kin, quiet_frames(kin, in_bout))
    return BoutRuns(starts=s, ends=e, in_bout=in_bout, thresholds=thr, noise=noise, levels=levels,
                    excursion_thresholds=xthr, excursion_noise=xnoise, evidence=ev,
                    sustained_thresholds=sthr)


def _refine(kin: Kinematics, noise: np.ndarray) -> None:
    """``kin.refine(noise)``, its result kept between the passes of
    :func:`fishtrack.behaviour.classify.classify_parts` (:func:`behaviour._pool.remembered`)."""
    new = remembered("refine", _refined, kin, noise)
    for f in fields(kin):
        setattr(kin, f.name, getattr(new, f.name))


def _refined(kin: Kinematics, noise: np.ndarray) -> Kinematics:
    new = replace(kin, columns=dict(kin.columns))
    new.refine(noise)
    return new


MOTION_HIST_BINS_PER_GREY = 256
"""The pooled pixel-motion levels of the gate (:func:`motion_noise_level`,
:func:`mean_gate_levels`) are quantiles of a histogram of bins 1/256 grey level wide (values
at the bins' centres, within 0.002 grey levels of the exact quantile): a part of the
recording sends its histogram (the bins it fills and their counts), not its rows, so the
pooled summary does not grow with the recording's length (issue 15), and the same quantile
comes out of one table or of its parts."""


def motion_histogram(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The finite ``values`` as a sparse histogram: the bins they fill (index = floor(value x
    :data:`MOTION_HIST_BINS_PER_GREY`)) and their counts. Concatenates over fish and parts."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    return np.unique(np.floor(v * MOTION_HIST_BINS_PER_GREY).astype(np.int64), return_counts=True)


def _hist_quantiles(bins: np.ndarray, counts: np.ndarray, qs) -> np.ndarray:
    """Quantiles (linear between ranks, as ``np.quantile``) of the values a sparse histogram
    holds, each value at its bin's centre; the histogram's pieces may repeat a bin."""
    u, inv = np.unique(bins, return_inverse=True)
    c = np.bincount(inv, weights=counts, minlength=len(u))
    centre = (u + 0.5) / MOTION_HIST_BINS_PER_GREY
    cum = np.cumsum(c)
    n = cum[-1]
    out = []
    for q in np.atleast_1d(qs):
        p = q * (n - 1)
        r0 = int(np.floor(p))
        a = centre[np.searchsorted(cum, r0, side="right")]
        b = centre[np.searchsorted(cum, min(r0 + 1, n - 1), side="right")]
        out.append(a + (p - r0) * (b - a))
    return np.asarray(out, float)


def motion_noise_level(motion: np.ndarray, quiet: np.ndarray | None = None, *,
                       q: float | None = None, spread: float | None = None) -> float:
    """The pixel-motion noise level of a recording (grey levels): ``median + spread x
    (q quantile - median)`` of the aligned motion (:func:`fishtrack.behaviour.speed.motion_frames`)
    over the quiet frames of all its fish (defaults :data:`MOTION_GATE_QUANTILE`,
    :data:`MOTION_GATE_SPREAD`; ``quiet`` None: every frame), from their histogram
    (:data:`MOTION_HIST_BINS_PER_GREY`); NaN with fewer than :data:`MIN_QUIET_FRAMES` such
    frames."""
    ok = np.isfinite(motion)
    bins, counts = motion_histogram(motion[ok if quiet is None else quiet & ok])
    return _level_of_histogram(bins, counts, q=q, spread=spread)


def _level_of_histogram(bins: np.ndarray, counts: np.ndarray, *, q: float | None = None,
                        spread: float | None = None) -> float:
    """Reduce: :func:`motion_noise_level` of the frames a sparse histogram holds."""
    q = MOTION_GATE_QUANTILE if q is None else q
    spread = MOTION_GATE_SPREAD if spread is None else spread
    if counts.sum() < MIN_QUIET_FRAMES:
        return float("nan")
    med, hi = _hist_quantiles(bins, counts, [0.5, q])
    return float(med + spread * (hi - med))


def _frame_lowest(frame: np.ndarray, motion: np.ndarray, n: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Reduce: per video frame, the lowest and the second lowest ``motion`` over the fish
    (NaN with one fish), and the most fish with a motion in one frame (``n``: fish per row, 1
    for a fish's own row). Order-free (exact over parts of fish; :func:`_fold_lowest`)."""
    frame, motion, n, first = _by_frame(frame, motion, n)
    frames, low = frame[first], motion[first]
    nxt = first + 1
    has2 = nxt < len(frame)
    has2[has2] = frame[nxt[has2]] == frames[has2]
    low2 = np.full(len(first), np.nan)
    low2[has2] = motion[nxt[has2]]
    most = int(np.add.reduceat(n, first).max()) if len(first) else 0
    return frames, low, low2, most


def _by_frame(frame, motion, n):
    """The rows with a motion, sorted by frame then motion, and where each frame starts."""
    frame, motion, n = (np.asarray(a) for a in (frame, motion, n))
    ok = np.isfinite(motion)
    frame, motion, n = frame[ok], motion[ok], n[ok]
    o = np.lexsort((motion, frame))
    frame, motion, n = frame[o], motion[o], n[o]
    first = np.flatnonzero(np.r_[True, frame[1:] != frame[:-1]]) if len(frame) else np.zeros(0, int)
    return frame, motion, n, first


def _fold_lowest(a: dict, b: dict) -> dict:
    """Two parts' summaries of :func:`_frame_lowest` as one with the same reduction: per frame
    only the two lowest motions, the first carrying the frame's count of fish (the summary
    stays ~2 rows per video frame, whatever the number of fish)."""
    frame, motion, n, first = _by_frame(*(np.concatenate([a[k], b[k]])
                                          for k in ("frame", "motion", "n")))
    keep = np.zeros(len(frame), bool)
    keep[first] = True
    nxt = first + 1
    two = nxt < len(frame)
    two[two] = frame[nxt[two]] == frame[first[two]]
    keep[nxt[two]] = True
    count = np.zeros(len(frame), np.int64)
    if len(first):
        count[first] = np.add.reduceat(n, first)
    return {"frame": frame[keep], "motion": motion[keep], "n": count[keep]}


_frame_lowest.fold = _fold_lowest  # classify_parts folds the parts' summaries as they come


def motion_above_rig(fr: Frames, motion: np.ndarray) -> np.ndarray:
    """The pixel motion of each fish above the motion the rig gives every fish at once: minus,
    frame by frame, the lowest motion of the *other* fish of the recording (all fish pooled)
    in the same video frame. Flicker, a change of the codec's quality and a key frame change
    the pixels of every fish together; a fish's own movement changes only its own. NaN where
    no other fish has a motion in that frame; ``motion`` unchanged for a single fish (fewer
    than :data:`MOTION_GATE_MIN_FISH`)."""
    ref = rig_reference(fr, motion, "motion_gate_reference")
    if ref is None:
        return motion  # the same object: the caller can tell that no reference was used
    return np.where(np.isfinite(ref), np.asarray(motion, float) - ref, np.nan)


def rig_reference(fr: Frames, motion: np.ndarray, name: str) -> np.ndarray | None:
    """Per sorted row: the lowest ``motion`` of the *other* fish of the recording in the same
    video frame (all fish pooled under the recording-level value ``name``; NaN where no other
    fish has a motion in that frame), or None with fewer than :data:`MOTION_GATE_MIN_FISH`
    fish in one frame. The lowest of several is a fish that did not move, unless all moved
    at once: what the rig (flicker, the codec) changed in every well."""
    m = np.asarray(motion, float)
    frames, low, low2, most = pool_value(name, _frame_lowest,
                                         frame=fr.frame.astype(np.int64), motion=m,
                                         n=np.ones(len(m), np.int64))
    if most < MOTION_GATE_MIN_FISH:
        return None
    i = np.clip(np.searchsorted(frames, fr.frame), 0, len(frames) - 1)
    found = frames[i] == fr.frame
    # the fish that is the lowest compares with the second lowest (equal values in a tie)
    return np.where(found, np.where(m > low[i], low[i], low2[i]), np.nan)


def quiet_window_means(fr: Frames, motion: np.ndarray, quiet: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
    """The mean ``motion`` of every stretch of consecutive quiet rows of one fish lasting each
    duration of :data:`MOTION_GATE_MEAN_WINDOWS_S` (sliding by one frame). Returns the means
    and, per mean, the index of its duration (a summary that concatenates over fish)."""
    means, win = [], []
    ok = quiet & np.isfinite(motion)
    lags = mean_gate_lags(fr)
    # each fish's own running sums (no running sum over the other fish: see behaviour._pool)
    bounds = np.flatnonzero(np.r_[True, fr.gid[1:] != fr.gid[:-1], True]) if fr.n else []
    for a0, a1 in zip(bounds[:-1], bounds[1:], strict=False):
        c = np.r_[0.0, np.cumsum(np.where(ok[a0:a1], motion[a0:a1], 0.0))]
        cq = np.r_[0, np.cumsum(ok[a0:a1])]
        for j, lag in enumerate(lags):
            if lag > a1 - a0:
                continue
            sel = (cq[lag:] - cq[:-lag]) == lag
            means.append((c[lag:] - c[:-lag])[sel] / lag)
            win.append(np.full(int(sel.sum()), j, np.int64))
    if not means:
        return np.zeros(0), np.zeros(0, np.int64)
    return np.concatenate(means), np.concatenate(win)


def mean_gate_lags(fr: Frames) -> list[int]:
    """Frames in each duration of :data:`MOTION_GATE_MEAN_WINDOWS_S` (at least 2)."""
    dt = fr.dt_median if fr.dt_median > 0 else 1.0
    return [max(2, int(round(t / dt))) for t in MOTION_GATE_MEAN_WINDOWS_S]


def mean_gate_levels(motion: np.ndarray, means: np.ndarray, win: np.ndarray, *,
                     spread: float | None = None) -> np.ndarray:
    """Per duration of :data:`MOTION_GATE_MEAN_WINDOWS_S`: the mean test's level
    (:data:`MOTION_GATE_MEAN_SPREAD`), NaN with fewer than :data:`MIN_QUIET_FRAMES` stretches
    or quiet frames (quantiles from histograms: :data:`MOTION_HIST_BINS_PER_GREY`)."""
    return _mean_levels_of_histograms(**_mean_gate_summary(motion, means, win), spread=spread)


def _mean_gate_summary(motion: np.ndarray, means: np.ndarray, win: np.ndarray) -> dict:
    """The pooled summary of :func:`mean_gate_levels`: the quiet frames' histogram and one
    histogram of the means per duration (bins tagged with the duration's index)."""
    bins, counts = motion_histogram(motion)
    mb, mc, mw = [], [], []
    for j in range(len(MOTION_GATE_MEAN_WINDOWS_S)):
        b, c = motion_histogram(means[win == j])
        mb.append(b)
        mc.append(c)
        mw.append(np.full(len(b), j, np.int64))
    return {"bins": bins, "counts": counts, "mean_bins": np.concatenate(mb),
            "mean_counts": np.concatenate(mc), "mean_win": np.concatenate(mw)}


def _mean_levels_of_histograms(bins, counts, mean_bins, mean_counts, mean_win, *,
                               spread: float | None = None) -> np.ndarray:
    """Reduce: :func:`mean_gate_levels` from the histograms of :func:`_mean_gate_summary`."""
    spread = MOTION_GATE_MEAN_SPREAD if spread is None else spread
    out = np.full(len(MOTION_GATE_MEAN_WINDOWS_S), np.nan)
    if counts.sum() < MIN_QUIET_FRAMES:
        return out
    med = float(_hist_quantiles(bins, counts, 0.5)[0])
    for j in range(len(out)):
        sel = mean_win == j
        if mean_counts[sel].sum() >= MIN_QUIET_FRAMES:
            hi = float(_hist_quantiles(mean_bins[sel], mean_counts[sel], MOTION_GATE_QUANTILE)[0])
            out[j] = med + spread * (hi - med)
    return out


def tail_step_px(kin: Kinematics, body_px: np.ndarray, s: np.ndarray, e: np.ndarray,
                 lag: int = 1) -> np.ndarray:
    """Per bout ``s..e``: the 90th percentile of the change of the cleaned tail angle (rad)
    over ``lag`` frames times the fish's body length (px): how far the traced tail moves
    between two frames ``lag`` apart. NaN where the body length is unknown."""
    fr = kin.frames
    d = np.abs(tail_diffs(fr, kin.tail, lag))
    out = np.full(len(s), np.nan)
    for k, (a, b) in enumerate(zip(s, e, strict=True)):
        seg = d[a + lag : b + 1]
        seg = seg[np.isfinite(seg)]
        if len(seg):
            out[k] = float(np.quantile(seg, 0.9)) * body_px[fr.gid[a]]
    return out


def gate_lag(fr: Frames) -> int:
    """Frames in :data:`MOTION_GATE_WINDOW_S` (at least 1)."""
    if not (fr.dt_median > 0):
        return 1
    return max(1, int(round(MOTION_GATE_WINDOW_S / fr.dt_median)))


def keys_known(tracks: pd.DataFrame) -> bool:
    """Whether the gate knows the video's key frames: the tracks carry the pipeline's
    ``keyframe`` column (all False for intra-only videos: none to leave out) and
    :data:`KEY_FRAME_GATE` is on."""
    return bool(KEY_FRAME_GATE and "keyframe" in tracks.columns)


def key_frame_numbers(tracks: pd.DataFrame) -> np.ndarray | None:
    """The video's key frames (frame numbers, sorted, unique; not rows) from the pipeline's
    ``keyframe`` column; None without the column (imported tracks, older fishtrack) or with no
    key frame in it (intra-only codecs, image stacks: no frame renews the picture more than
    the others)."""
    if "keyframe" not in tracks.columns or "frame" not in tracks.columns:
        return None
    flag = tracks["keyframe"].fillna(False).to_numpy(bool)
    if not flag.any():
        return None
    return np.unique(tracks["frame"].to_numpy()[flag].astype(np.int64))


def key_frames(tracks: pd.DataFrame) -> np.ndarray | None:
    """The key frames the pixel-motion gate leaves out (:func:`key_frame_numbers`), None with
    :data:`KEY_FRAME_GATE` off. Turned into the row mask the motions take by
    :func:`spans_renewal`."""
    return key_frame_numbers(tracks) if keys_known(tracks) else None


def spans_renewal(fr: Frames, keyframes: np.ndarray | None, lag: int) -> np.ndarray | None:
    """Per sorted row at frame ``f``: True where both the change into it (frames ``f - lag``
    to ``f``) and the change out of it (``f`` to ``f + lag``) span a frame the encoder renewed
    (a key frame ``k`` of ``keyframes``, :func:`key_frames`, or one of the
    :data:`KEY_FRAME_REFRESH_FRAMES` after it): there the aligned pixel change (the smaller of
    the two) can come from the codec alone. None without key frames. The row mask that
    :func:`fishtrack.behaviour.speed.motion_frames` (``lag`` 1) and :func:`tail_motion_frames`
    (``lag`` :func:`gate_lag`) take as ``renewed``."""
    if keyframes is None or len(keyframes) == 0:
        return None
    f = fr.frame.astype(np.int64)
    r = int(KEY_FRAME_REFRESH_FRAMES)

    def hit(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        # a renewed span [k, k + r] meets frames (a, b]: k <= b and k + r > a
        return (np.searchsorted(keyframes, b, side="right")
                - np.searchsorted(keyframes, a - r, side="right")) > 0

    return hit(f - lag, f) & hit(f, f + lag)


def tail_motion_frames(tracks: pd.DataFrame, fr: Frames,
                       renewed: np.ndarray | None = None) -> np.ndarray | None:
    """Per sorted row: the tracker's ``tail_motion`` (grey levels of fishness; the change at
    the caudal midline from frame ``t - lag`` to ``t``, lag = 12.5 ms, :func:`gate_lag`)
    aligned like the motion energy (:func:`fishtrack.behaviour.speed.motion_frames`): the
    smaller of the changes into frame ``t`` (from ``t - lag``) and out of it (to ``t + lag``),
    so a step of the image that stays (a compressed video refreshing the fish's pixels once)
    counts 0 while a tail that beats, leaving and coming back, counts; then a moving mean over
    ``MOTION_SMOOTH_S``. NaN on unobserved rows; None when the tracks have no ``tail_motion``
    column (imported tracks, or tracks of fishtrack before issue 11's tail motion).
    ``renewed`` (per sorted row; :func:`spans_renewal` of :func:`key_frames` with ``lag``
    :func:`gate_lag`): those aligned values are left out before the moving mean, as in
    ``motion_frames``."""
    from fishtrack.behaviour.speed import smooth_motion

    if "tail_motion" not in tracks.columns:
        return None
    tm = pd.to_numeric(tracks["tail_motion"], errors="coerce").to_numpy(float)[fr.order]
    tm[~fr.observed] = np.nan
    lag = gate_lag(fr)
    out = np.full(fr.n, np.nan)
    if fr.n > lag:
        same = fr.gid[lag:] == fr.gid[:-lag]
        out[:-lag] = np.where(same, np.minimum(tm[:-lag], tm[lag:]), np.nan)
    if renewed is not None:
        out[np.asarray(renewed, bool)] = np.nan
    return smooth_motion(out, fr)


def _tail_level_of_histogram(bins: np.ndarray, counts: np.ndarray) -> float:
    """Reduce: the tail test's peak level (:data:`MOTION_GATE_TAIL_SPREAD`)."""
    return _level_of_histogram(bins, counts, spread=MOTION_GATE_TAIL_SPREAD)


def rig_noise_level(fr: Frames, motion: np.ndarray, quiet: np.ndarray, *, spread: float,
                    name: str) -> float:
    """The rig's noise level of a pixel motion (grey levels): each fish's own level,
    ``median + spread x (`` :data:`MOTION_GATE_QUANTILE` ``- median)`` of its ``quiet`` frames'
    finite ``motion`` (:func:`_level_of_histogram`; NaN with fewer than
    :data:`MIN_QUIET_FRAMES` of them), then the median of those levels over the recording's
    fish (pooled as ``name``; NaN when no fish's is measured). The upper tail of the quiet
    frames, not their spread: a compressed video's noise comes in rare bursts (re-quantized
    frames) that a median and robust sd do not see. The median over the fish is the rig's:
    a minority of fish whose quiet frames hold bouts the detection missed cannot raise it."""
    return pool_value(name, _median_of_levels, **rig_noise_summary(fr, motion, quiet,
                                                                  spread=spread))


def rig_noise_summary(fr: Frames, motion: np.ndarray, quiet: np.ndarray, *, spread: float
                      ) -> dict:
    """The pooled summary of :func:`rig_noise_level` (each fish's own level; reduce
    :func:`_median_of_levels`), e.g. for :func:`fishtrack.behaviour._pool.ask_ahead`."""
    return {"levels": fish_levels(
        fr, motion, quiet, lambda v: _level_of_histogram(*motion_histogram(v), spread=spread))}


def median_fish_level(fr: Frames, values: np.ndarray, quiet: np.ndarray, name: str,
                      level: Callable[[np.ndarray], float]) -> float:
    """The recording's level of a noise: ``level`` of each fish's finite ``values`` on its
    ``quiet`` frames (NaN: not measured), then the median over the fish, pooled as ``name``
    (the same on parts of whole fish as on the whole recording; NaN when no fish's is
    measured): the rig's and the tracker's noise, which a minority of fish whose quiet frames
    hold missed bouts cannot raise."""
    return pool_value(name, _median_of_levels, levels=fish_levels(fr, values, quiet, level))


def fish_levels(fr: Frames, values: np.ndarray, quiet: np.ndarray,
                level: Callable[[np.ndarray], float]) -> np.ndarray:
    """Per fish: ``level`` of its finite ``values`` on its ``quiet`` frames (NaN: not
    measured); :func:`median_fish_level`'s summary."""
    own = np.full(len(fr.fish_keys), np.nan)
    ok = quiet & np.isfinite(values)
    for a0, a1 in zip(*fish_bounds(fr), strict=True):  # each fish's rows are contiguous
        own[fr.gid[a0]] = level(values[a0:a1][ok[a0:a1]])
    return own


def _median_of_levels(levels: np.ndarray) -> float:
    """Reduce: the median of the fish's measured levels (NaN: none measured)."""
    v = levels[np.isfinite(levels)]
    return float(np.median(v)) if len(v) else float("nan")


def _tail_gate_keep(fr: Frames, br: BoutRuns, tail: np.ndarray | None, quiet: np.ndarray
                    ) -> tuple[np.ndarray | None, float]:
    """Per bout: its largest ``tail`` motion (:func:`tail_motion_frames`) over the recording's
    noise level of it (:data:`MOTION_GATE_TAIL_SPREAD`; with :data:`MOTION_GATE_TAIL_PER_FISH`
    the median of the fish's own levels, else from the histogram of the quiet frames of all
    fish pooled; above 1: kept by the tail test, 0 where the level is not measured); and that
    level (grey levels; NaN when not measured). None without tail motion (the pooled summary
    is asked for in every part all the same, so parts stay in step)."""
    if tail is None:
        return None, float("nan")
    q = quiet & np.isfinite(tail)
    if MOTION_GATE_TAIL_PER_FISH:
        level = rig_noise_level(fr, tail, q, spread=MOTION_GATE_TAIL_SPREAD,
                                name="motion_gate_tail_level")
    else:
        level = pool_value("motion_gate_tail_level", _tail_level_of_histogram,
                           **dict(zip(("bins", "counts"), motion_histogram(tail[q]), strict=True)))
    if not np.isfinite(level) or len(br.starts) == 0:
        return np.zeros(len(br.starts)), level
    peak = _range_max(np.where(np.isfinite(tail), tail, -np.inf), br.starts, br.ends)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(peak > level, peak / level, 0.0)  # a level of 0: any motion keeps
    return ratio, level


def tail_mean_levels(fr: Frames, tail: np.ndarray, quiet: np.ndarray) -> np.ndarray:
    """Per duration of :data:`MOTION_GATE_MEAN_WINDOWS_S`: the tail's mean-test level
    (:data:`MOTION_GATE_TAIL_MEAN`; grey levels), the median over the recording's fish of each
    fish's ``median + MOTION_GATE_TAIL_MEAN_SPREAD x (99th percentile of its quiet stretches'
    means - median of its quiet frames)`` (:data:`MOTION_GATE_TAIL_MEAN_SPREAD_LOW_FPS` below
    :data:`SUSTAINED_MAX_FPS`; NaN where no fish has :data:`MIN_QUIET_FRAMES` of them). Each
    fish's own stretches: a minority of fish whose quiet frames hold bouts the
    first detection missed cannot raise the rig's level (as :func:`rig_noise_level`)."""
    return pool_value("motion_gate_tail_mean_levels", _median_of_level_rows,
                      **_tail_mean_summary(fr, tail, quiet))


def _tail_mean_summary(fr: Frames, tail: np.ndarray, quiet: np.ndarray) -> dict:
    """The pooled summary of :func:`tail_mean_levels` (each fish's levels; reduce
    :func:`_median_of_level_rows`)."""
    low = fr.dt_median > 0 and 1.0 / fr.dt_median < SUSTAINED_MAX_FPS
    spread = MOTION_GATE_TAIL_MEAN_SPREAD_LOW_FPS if low else MOTION_GATE_TAIL_MEAN_SPREAD
    return {"levels": fish_mean_levels(fr, tail, quiet, spread)}


def fish_mean_levels(fr: Frames, values: np.ndarray, quiet: np.ndarray, spread: float
                     ) -> np.ndarray:
    """Per fish (rows) and duration of :data:`MOTION_GATE_MEAN_WINDOWS_S` (columns): the mean
    test's level of the fish's own ``quiet`` frames (:func:`mean_gate_levels`, from its
    stretches of consecutive quiet frames; NaN: fewer than :data:`MIN_QUIET_FRAMES`)."""
    n_win = len(MOTION_GATE_MEAN_WINDOWS_S)
    out = np.full((len(fr.fish_keys), n_win), np.nan)
    ok = quiet & np.isfinite(values)
    for a0, a1 in zip(*fish_bounds(fr), strict=True):
        v, q = values[a0:a1], ok[a0:a1]
        c = np.r_[0.0, np.cumsum(np.where(q, v, 0.0))]
        cq = np.r_[0, np.cumsum(q)]
        means, win = [], []
        for j, lag in enumerate(mean_gate_lags(fr)):
            if lag > a1 - a0:
                continue
            sel = (cq[lag:] - cq[:-lag]) == lag
            means.append((c[lag:] - c[:-lag])[sel] / lag)
            win.append(np.full(int(sel.sum()), j, np.int64))
        if means:
            out[fr.gid[a0]] = mean_gate_levels(v[q], np.concatenate(means), np.concatenate(win),
                                               spread=spread)
    return out


def _median_of_level_rows(levels: np.ndarray) -> np.ndarray:
    """Reduce: per column, the median of the fish's measured levels (NaN: none measured)."""
    levels = np.asarray(levels, float).reshape(-1, len(MOTION_GATE_MEAN_WINDOWS_S))
    out = np.full(levels.shape[1], np.nan)
    for j in range(levels.shape[1]):
        v = levels[:, j][np.isfinite(levels[:, j])]
        if len(v):
            out[j] = float(np.median(v))
    return out


def midtail_frames(tracks: pd.DataFrame, fr: Frames) -> np.ndarray | None:
    """Per sorted row: the mid-tail angle's deviation from its rest posture (rad; the
    ``seg_angle_k`` of :data:`MIDTAIL_FRACTION` minus its centred mean over ``REST_S``,
    :func:`fishtrack.behaviour.kinematics.rest_deviation`). NaN on unobserved rows; None
    without the midline's segment angles (imported tracks). NaN too where the traced midline is
    short (:func:`short_traces`): the tracker lost the tail there."""
    cols = [c for c in tracks.columns if c.startswith("seg_angle_") and c[10:].isdigit()]
    if not cols:
        return None
    n_seg = max(int(c[10:]) for c in cols)
    k = int(np.clip(np.ceil(MIDTAIL_FRACTION * n_seg), 1, n_seg))  # centre (k - 0.5) / n
    col = f"seg_angle_{k}"
    if col not in tracks.columns:
        return None
    v = pd.to_numeric(tracks[col], errors="coerce").to_numpy(float)[fr.order]
    v[~fr.observed] = np.nan
    short = short_traces(tracks, fr)
    if short is not None:
        v[short] = np.nan
    return rest_deviation(v, fr)


def short_traces(tracks: pd.DataFrame, fr: Frames) -> np.ndarray | None:
    """Per sorted row: True where the traced midline is shorter than
    :data:`MIDTAIL_MIN_LENGTH` x the fish's median traced length (the tracker lost the tail);
    None without midline points or with the test off. Each fish's own frames only."""
    length = midline_lengths(tracks, fr) if MIDTAIL_MIN_LENGTH > 0 else None
    if length is None:
        return None
    ref = group_quantile(length, fr.gid, len(fr.fish_keys), 0.5)[fr.gid]
    with np.errstate(invalid="ignore"):
        return length < MIDTAIL_MIN_LENGTH * ref


def midtail_level(fr: Frames, midtail: np.ndarray, quiet: np.ndarray) -> float:
    """The recording's mid-tail noise (rad): the median over its fish of each fish's
    :data:`MIDTAIL_QUANTILE` of ``|midtail|`` on its quiet frames (pooled over the fish of the
    recording: the same on parts of fish as on the whole; NaN: not measured)."""
    return median_fish_level(
        fr, np.abs(midtail), quiet, "motion_gate_midtail_level",
        lambda v: float(np.quantile(v, MIDTAIL_QUANTILE)) if len(v) >= MIN_QUIET_FRAMES
        else float("nan"))


def midtail_verdict(fr: Frames, br: BoutRuns, midtail: np.ndarray | None, quiet: np.ndarray
                    ) -> tuple[np.ndarray | None, np.ndarray | None, float]:
    """Per bout: whether its mid-tail stays within its noise (``MIDTAIL_DROP`` x the level:
    drop it) and whether it moves well beyond it (``MIDTAIL_KEEP`` x: keep it), and the level
    (rad; NaN: not measured). None, None without the mid-tail angle or with the test off."""
    if midtail is None or not MIDTAIL_GATE:
        return None, None, float("nan")
    level = midtail_level(fr, midtail, quiet)
    if not np.isfinite(level) or len(br.starts) == 0:
        return None, None, level
    dev = np.abs(midtail)
    peak = _range_max(np.where(np.isfinite(dev), dev, -np.inf), br.starts, br.ends)
    seen = np.isfinite(peak)
    return seen & (peak <= MIDTAIL_DROP * level), seen & (peak > MIDTAIL_KEEP * level), level


def motion_gate(kin: Kinematics, br: BoutRuns, motion: np.ndarray, body_px: np.ndarray,
                tail: np.ndarray | None = None, midtail: np.ndarray | None = None,
                *, keyed: bool = False
                ) -> tuple[BoutRuns, float, np.ndarray, float, float]:
    """Drop the tail bouts whose traced tail moves visibly (:func:`tail_step_px` over
    :func:`gate_lag` frames >= :data:`MOTION_GATE_MIN_STEP_PX`) while the pixels inside the
    fish never move above the recording's motion noise (:func:`motion_noise_level` on the
    frames away from every bout):
    a traced tail that jumps while nothing in the image moves is tracker jitter, not a bout.
    Bouts without a measured motion or body length are kept. ``tail``
    (:func:`tail_motion_frames`, with :data:`MOTION_GATE_TAIL`): a bout whose pixels at the
    traced tail change above their noise is kept too. Returns the bouts, the noise level,
    per fish how many bouts were dropped, the tail test's level (NaN: off or not measured)
    and the mid-tail test's level (rad; NaN: off or not measured). ``midtail``
    (:func:`midtail_frames`, with :data:`MIDTAIL_GATE`): a bout whose mid-tail stays within its
    noise is dropped, a judged bout whose mid-tail moves well beyond it is kept
    (:func:`midtail_verdict`). ``keyed``: the tracks carry the video's key frames
    (:data:`KEY_FRAME_GATE`; ``motion`` and ``tail`` leave them out): the tail test's factor
    over a still mid-tail is :data:`MOTION_GATE_TAIL_OVER_MIDTAIL_KEYED`, else
    :data:`MOTION_GATE_TAIL_OVER_MIDTAIL`."""
    fr = kin.frames
    n_fish = len(fr.fish_keys)
    raw = motion
    use_tail_mean = tail is not None and MOTION_GATE_TAIL and MOTION_GATE_TAIL_MEAN
    if use_tail_mean:
        # its summary is final here: resolved with the gate's first recording-level value
        tail_quiet = quiet_frames(kin, br.in_bout) & np.isfinite(tail)
        ask_ahead("motion_gate_tail_mean_levels", _median_of_level_rows,
                  lambda: _tail_mean_summary(fr, tail, tail_quiet))
    if MOTION_GATE_RIG_REFERENCE:
        motion = motion_above_rig(fr, motion)
    # the mean test only on the motion above the rig's: on the raw motion of one or two fish
    # it keeps jitter (tests/test_behaviour_video_jitter.py, tuning seed 691)
    mean_test = motion is not raw
    quiet = quiet_frames(kin, br.in_bout) & np.isfinite(motion)
    tail_gate_quiet = quiet_frames(kin, br.in_bout)
    tail_mean = tail_mean_levels(fr, tail, tail_quiet) if use_tail_mean else None
    if use_tail_mean and MOTION_GATE_UNEXPLAINED:
        # quiet stretches whose tail pixels change like a bout's, far above the rig's level,
        # are bouts the first detection missed: the gate's levels are measured without them
        # (MOTION_GATE_UNEXPLAINED)
        busy = unexplained_frames(fr, tail, tail_quiet, tail_mean)
        tail_gate_quiet = tail_gate_quiet & ~busy
        quiet = quiet & ~busy
        tail_mean = tail_mean_levels(fr, tail, tail_quiet & ~busy)
    # one level per recording: the quiet frames of every fish pooled (exact over parts of fish)
    # histograms, not the frames: the summaries do not grow with the recording's length
    level = pool_value("motion_gate_level", _level_of_histogram,
                       **dict(zip(("bins", "counts"), motion_histogram(motion[quiet]), strict=True)))
    if mean_test:
        means, win = quiet_window_means(fr, motion, quiet)
        mean_levels = pool_value("motion_gate_mean_levels", _mean_levels_of_histograms,
                                 **_mean_gate_summary(motion[quiet], means, win))
    tail_ratio, tail_level = _tail_gate_keep(fr, br, tail if MOTION_GATE_TAIL else None,
                                             tail_gate_quiet)
    mid_quiet, mid_moves, mid_level = midtail_verdict(fr, br, midtail,
                                                      quiet_frames(kin, br.in_bout))
    dropped = np.zeros(n_fish, np.int64)
    if not np.isfinite(level) or len(br.starts) == 0:
        return br, level, dropped, tail_level, mid_level
    stat = _range_max(np.where(np.isfinite(motion), motion, -np.inf), br.starts, br.ends)
    step = tail_step_px(kin, np.asarray(body_px, float), br.starts, br.ends,
                        lag=gate_lag(fr))
    judged = np.isfinite(stat) & (step >= MOTION_GATE_MIN_STEP_PX)
    keep = ~judged | (stat > level)
    if mean_test:
        keep |= _bout_mean(fr, motion, br) > _mean_level(fr, mean_levels,
                                                         br.ends - br.starts + 1)
    if tail_ratio is not None:
        keep |= tail_ratio > 1.0
    if tail_mean is not None:
        keep |= _bout_mean(fr, tail, br) > _mean_level(fr, tail_mean, br.ends - br.starts + 1)
    if mid_quiet is not None:
        # the whole fish's pixels alone do not confirm a bout whose mid-tail stays still (an
        # H.264 refresh changes them while the traced tip jitters), nor do the tail's pixels
        # just above their level (a key frame and the update after it); a mid-tail that moves
        # well beyond its noise confirms one that the pixels miss
        over = MOTION_GATE_TAIL_OVER_MIDTAIL_KEYED if keyed else MOTION_GATE_TAIL_OVER_MIDTAIL
        by_tail = (tail_ratio > max(1.0, over) if tail_ratio is not None
                   else np.zeros(len(keep), bool))
        keep &= ~(judged & mid_quiet & ~by_tail)
        keep |= judged & mid_moves
    if keep.all():
        return br, level, dropped, tail_level, mid_level
    dropped = np.bincount(fr.gid[br.starts[~keep]], minlength=n_fish)
    s, e = br.starts[keep], br.ends[keep]
    ev = br.evidence[keep] if br.evidence is not None else None
    in_bout = run_lengths_fill(s, e, np.ones(len(s), bool), fr.n, False)
    return (replace(br, starts=s, ends=e, in_bout=in_bout, evidence=ev), level, dropped,
            tail_level, mid_level)


def unexplained_frames(fr: Frames, tail: np.ndarray, quiet: np.ndarray, levels: np.ndarray
                       ) -> np.ndarray:
    """Per sorted row: True inside a stretch of a fish's consecutive ``quiet`` frames, as long
    as the shortest duration of :data:`MOTION_GATE_MEAN_WINDOWS_S` with a finite level, whose
    mean ``tail`` motion exceeds :data:`MOTION_GATE_UNEXPLAINED_FACTOR` x that level
    (``levels``: :func:`tail_mean_levels`, the recording's): pixel motion that lasts like a
    bout where the first detection found none (:data:`MOTION_GATE_UNEXPLAINED`). Each fish's own
    rows only (no stretch spans two fish)."""
    out = np.zeros(fr.n, bool)
    ok = np.flatnonzero(np.isfinite(levels))
    if len(ok) == 0:
        return out
    j = int(ok[0])
    lag = mean_gate_lags(fr)[j]
    level = MOTION_GATE_UNEXPLAINED_FACTOR * float(levels[j])
    q = quiet & np.isfinite(tail)
    for a0, a1 in zip(*fish_bounds(fr), strict=True):
        if lag > a1 - a0:
            continue
        v, qq = tail[a0:a1], q[a0:a1]
        c = np.r_[0.0, np.cumsum(np.where(qq, v, 0.0))]
        cq = np.r_[0, np.cumsum(qq)]
        hit = ((cq[lag:] - cq[:-lag]) == lag) & ((c[lag:] - c[:-lag]) / lag > level)
        if hit.any():
            # every frame of a window over the level (window i spans rows i .. i + lag - 1)
            d = np.zeros(a1 - a0 + 1, np.int64)
            idx = np.flatnonzero(hit)
            np.add.at(d, idx, 1)
            np.add.at(d, idx + lag, -1)
            out[a0:a1] = np.cumsum(d)[:-1] > 0
    return out


def _bout_mean(fr: Frames, motion: np.ndarray, br: BoutRuns) -> np.ndarray:
    """Per bout: the mean of its finite ``motion`` (NaN when none)."""
    ok = np.isfinite(motion)
    tot = _range_sum(np.where(ok, motion, 0.0), br.starts, br.ends)
    n = _range_sum(ok.astype(float), br.starts, br.ends)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, tot / np.maximum(n, 1), np.nan)


def _mean_level(fr: Frames, levels: np.ndarray, n_rows: np.ndarray) -> np.ndarray:
    """Per bout of ``n_rows`` frames: the mean test's level of the longest duration of
    :data:`MOTION_GATE_MEAN_WINDOWS_S` it spans (inf: shorter than all, or not measured)."""
    out = np.full(len(n_rows), np.inf)
    for lag, lv in zip(mean_gate_lags(fr), levels, strict=True):
        if np.isfinite(lv):
            out = np.where(n_rows >= lag, lv, out)
    return out


def bout_table(kin: Kinematics, br: BoutRuns) -> pd.DataFrame:
    """One row per bout with the columns of :data:`BOUT_COLUMNS` (``phase`` left empty).

    ``n_beats`` counts full tail beats (two alternating tail extrema make one beat; an odd
    count rounds up), ``beat_hz`` is ``(extrema - 1) / (2 x time from first to last
    extremum)``, ``max_tail_angle`` the largest ``|tail_angle|`` (rad), ``vigour_rad_s``
    the mean ``|tail velocity|`` over the bout's frames with a tail angle (rad/s, weighted by
    frame duration), ``effort_rad`` = ``vigour_rad_s x duration_s`` (the integral of
    ``|tail velocity|`` over the bout, rad), ``vigour`` (kept for compatibility; despite its
    name an integral in rad) the same integral over the frames with a tail angle only, and
    ``displacement_px`` the straight distance between the first and last known head position
    of the bout, ``bout_signal`` ``tail`` (set to ``speed`` by :func:`classify` for movement
    bouts).
    """
    fr = kin.frames
    s, e = br.starts, br.ends
    nb = len(s)
    keys = fr.fish_keys.iloc[fr.gid[s]] if nb else fr.fish_keys.iloc[:0]
    end_s = fr.t[e] + fr.dur[e]
    out = pd.DataFrame(
        {
            "fish": keys["fish"].to_numpy(),
            "arena": keys["arena"].to_numpy(),
            "start_frame": fr.frame[s],
            "end_frame": fr.frame[e],
            "start_s": fr.t[s],
            "end_s": end_s,
            "duration_s": end_s - fr.t[s],
        }
    )
    ext = kin.extrema
    lo = np.searchsorted(ext, s, side="left")
    hi = np.searchsorted(ext, e, side="right")
    n_ext = hi - lo
    out["n_beats"] = ((n_ext + 1) // 2).astype(np.int64)
    span = np.zeros(nb)
    if len(ext):
        et = kin.extrema_t
        span = et[np.maximum(hi - 1, 0)] - et[np.minimum(lo, len(ext) - 1)]
    with np.errstate(invalid="ignore", divide="ignore"):
        hz = (n_ext - 1) / (2.0 * span)
    out["beat_hz"] = np.where((n_ext >= 2) & (span > 0), hz, np.nan)
    if nb:
        tv = np.abs(kin.columns["tail_velocity_rad_s"])
        w = np.where(np.isfinite(tv), tv * fr.dur, 0.0)
        amp = np.where(fr.observed, np.abs(fr.tail), -np.inf)
        out["vigour"] = _range_sum(w, s, e)
        seen = _range_sum(np.where(np.isfinite(tv), fr.dur, 0.0), s, e)
        with np.errstate(invalid="ignore", divide="ignore"):
            out["vigour_rad_s"] = np.where(seen > 0, out["vigour"] / np.where(seen > 0, seen, 1), np.nan)
        out["effort_rad"] = out["vigour_rad_s"] * out["duration_s"]
        mx = _range_max(amp, s, e)
        out["max_tail_angle"] = np.where(np.isfinite(mx), mx, np.nan)
        out["displacement_px"] = _displacement(fr, s, e)
    else:
        out["vigour"] = np.zeros(0)
        out["vigour_rad_s"] = np.zeros(0)
        out["effort_rad"] = np.zeros(0)
        out["max_tail_angle"] = np.zeros(0)
        out["displacement_px"] = np.zeros(0)
    out["phase"] = pd.Series([None] * nb, dtype=object)
    out["bout_signal"] = pd.Series(["tail"] * nb, dtype=object)
    ev = br.evidence if br.evidence is not None and len(br.evidence) == nb else ["beats"] * nb
    out["bout_evidence"] = pd.Series(list(ev), dtype=object)
    return out[list(BOUT_COLUMNS)]


def _range_sum(v: np.ndarray, s: np.ndarray, e: np.ndarray) -> np.ndarray:
    # each bout's own sum (no running sum over the other fish: see behaviour._pool)
    if len(s) == 0:
        return np.zeros(0)
    idx = np.ravel(np.column_stack([s, e + 1]))
    return np.add.reduceat(np.r_[v, 0.0], idx)[::2]


def _range_max(v: np.ndarray, s: np.ndarray, e: np.ndarray) -> np.ndarray:
    # bouts never overlap and are sorted: reduceat over [s_k, e_k+1) boundaries
    idx = np.ravel(np.column_stack([s, e + 1]))
    vv = np.r_[v, -np.inf]
    return np.maximum.reduceat(vv, idx)[::2]


def _displacement(fr: Frames, s: np.ndarray, e: np.ndarray) -> np.ndarray:
    ok = np.isfinite(fr.x) & np.isfinite(fr.y)
    pos = np.flatnonzero(ok)
    if len(pos) == 0:
        return np.full(len(s), np.nan)
    a = np.searchsorted(pos, s, side="left")  # first known position at/after start
    b = np.searchsorted(pos, e, side="right") - 1  # last known position at/before end
    valid = (a < len(pos)) & (b >= 0)
    a_c, b_c = np.clip(a, 0, len(pos) - 1), np.clip(b, 0, len(pos) - 1)
    valid &= (pos[a_c] <= e) & (pos[b_c] >= s)
    ia, ib = pos[a_c], pos[b_c]
    d = np.hypot(fr.x[ib] - fr.x[ia], fr.y[ib] - fr.y[ia])
    return np.where(valid, d, np.nan)


def detect_bouts(
    tracks: pd.DataFrame, cfg: BehaviourConfig | None = None
) -> tuple[pd.Series, pd.DataFrame]:
    """Find swim bouts in a tracks table.

    Parameters
    ----------
    tracks
        Tracks table (see :func:`fishtrack.behaviour.kinematics.kinematics`).
    cfg
        Behaviour settings (``bout_threshold``, ``threshold_factor``, ``min_bout_threshold``,
        ``vigour_window_s``, ``min_bout_s``, ``merge_gap_s``, ``max_gap_s``); defaults if None.

    Returns
    -------
    in_bout : pandas.Series
        Bool per row of ``tracks`` (same index).
    bouts : pandas.DataFrame
        One row per bout, columns :data:`BOUT_COLUMNS` (``phase`` empty; see
        :func:`fishtrack.behaviour.classify` for phases).
    """
    cfg = cfg or BehaviourConfig()
    kin = compute_kinematics(tracks, vigour_window_s=cfg.vigour_window_s, max_gap_s=cfg.max_gap_s,
                             excursion_window_s=cfg.excursion_window_s)
    blocks = gap_blocks(kin.frames, cfg.max_gap_s)
    br = _detect(kin, cfg, blocks)
    in_bout = pd.Series(to_input_order(kin.frames, br.in_bout), index=tracks.index, name="in_bout")
    return in_bout, bout_table(kin, br)
