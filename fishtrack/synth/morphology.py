"""Random larva drawings and imaging conditions, for accuracy suites.

Real larvae differ from any one drawing: eye size and spacing (the eyes may touch each other
or merge with a dark head), heads without resolved eyes, head width, tail width and taper, a
tail that fades to nearly the background grey at its tip. Recordings differ in polarity,
camera noise, optical blur, flicker, illumination gradients and compression. The two functions
here draw these independently, as keyword arguments of :class:`fishtrack.synth.SimSpec`, so
that a suite can combine them with any layout and behaviour::

    rng = np.random.default_rng(seed)
    spec = SimSpec(layout="wells", fish_length_px=60, **random_morphology(rng, 60),
                   **random_imaging(rng))

The ranges are wide on purpose (wider than a tracker would be designed around); see
``docs/tracking.md`` (accuracy suite) for the exact distributions.
"""

from __future__ import annotations

import numpy as np

__all__ = ["random_morphology", "random_imaging", "MORPHOLOGY_FIELDS", "IMAGING_FIELDS"]

#: SimSpec fields drawn by :func:`random_morphology`
MORPHOLOGY_FIELDS = (
    "head_style", "eye_size", "eye_lateral", "eye_tilt", "head_width", "tail_width",
    "tail_taper", "tail_tip_width", "body_opacity", "yolk_opacity", "eye_opacity", "yolk_size",
    "bladder_opacity", "tail_tip_contrast", "tail_fade_start", "tail_wave_exponent",
)
#: SimSpec fields drawn by :func:`random_imaging`
IMAGING_FIELDS = (
    "polarity", "contrast", "noise_sd", "blur_px", "flicker", "gradient", "n_dust", "codec",
    "crf",
)


def _logu(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def random_morphology(rng: np.random.Generator, length_px: float = 40.0) -> dict:
    """A random larva drawing: keyword arguments of ``SimSpec``.

    Parameters
    ----------
    rng
        Random generator (the only source of randomness).
    length_px
        Body length the larva will have (px): the tail tip is kept at least ~0.7 px wide, so
        that its contrast is not only sub-pixel coverage.

    Returns
    -------
    dict
        ``head_style`` ("disc" in 15 % of draws: a dark head without distinct eyes, else two
        eyes), ``eye_size`` (0.6-1.7, log-uniform), ``eye_lateral`` (0.03-0.085 L: from eyes
        that overlap each other to well separated ones), ``eye_tilt`` (0-0.6 rad),
        ``head_width`` (0.75-1.35), ``tail_width`` (0.6-1.6), ``tail_taper`` (0.5-2),
        ``tail_tip_width`` (0.004-0.02 L, at least 0.35 px), ``body_opacity`` (0.2-0.45,
        at least the tail tip's), ``yolk_opacity`` (from the body's to 0.9: a head blob as
        dark as the eyes in some draws), ``eye_opacity`` (0.6-0.95, at least the yolk's:
        pigmented eyes are never paler than the yolk), ``yolk_size`` (0.7-1.3; with the
        disc style ``eye_size`` is at least 0.8 x ``yolk_size``, so the disc is the head's
        widest part), ``bladder_opacity`` (0 in half the draws, else 0.3 to the eyes'
        opacity), ``tail_tip_contrast`` (15-75 grey levels, uniform),
        ``tail_fade_start`` (0.35-0.7 L) and ``tail_wave_exponent`` (1-3, log-uniform: how
        much of the swimming bend is concentrated near the faint tip; not a drawing but the
        tail's shape, so kept with it).
    """
    head_style = "disc" if rng.random() < 0.15 else "eyes"
    eye_size = _logu(rng, 0.6, 1.7)
    eye_lateral = float(rng.uniform(0.03, 0.085))
    eye_tilt = float(rng.uniform(0.0, 0.6))
    head_width = _logu(rng, 0.75, 1.35)
    tail_width = _logu(rng, 0.6, 1.6)
    tail_taper = _logu(rng, 0.5, 2.0)
    tip_w = max(float(rng.uniform(0.004, 0.02)), 0.35 / max(length_px, 1.0))
    tip_contrast = float(rng.uniform(15.0, 75.0))
    # the body is at least as dark as the tail tip (levels: see fishtrack.synth.spec.TIP_LEVEL)
    body = max(float(rng.uniform(0.2, 0.45)), tip_contrast / 190.0 + 0.02)
    yolk = float(rng.uniform(body, 0.9))
    # the eyes (pigmented) are at least as dark as the yolk: equal makes them merge with it
    eye = max(float(rng.uniform(0.6, 0.95)), yolk)
    bladder = 0.0 if rng.random() < 0.5 else float(rng.uniform(0.3, eye))
    yolk_size = _logu(rng, 0.7, 1.3)
    if head_style == "disc":
        # a head disc is the widest part of the head: at least ~1.4 x the yolk's half-width
        eye_size = max(eye_size, 0.8 * yolk_size)
    return {
        "head_style": head_style,
        "eye_size": eye_size,
        "eye_lateral": eye_lateral,
        "eye_tilt": eye_tilt,
        "head_width": head_width,
        "tail_width": tail_width,
        "tail_taper": tail_taper,
        "tail_tip_width": min(tip_w, 0.05),
        "body_opacity": min(body, 1.0),
        "yolk_opacity": yolk,
        "eye_opacity": eye,
        "yolk_size": yolk_size,
        "bladder_opacity": bladder,
        "tail_tip_contrast": tip_contrast,
        "tail_fade_start": float(rng.uniform(0.35, 0.7)),
        "tail_wave_exponent": _logu(rng, 1.0, 3.0),
    }


def random_imaging(rng: np.random.Generator) -> dict:
    """Random imaging conditions: keyword arguments of ``SimSpec``.

    Returns
    -------
    dict
        ``polarity`` (dark 60 %, bright 40 %), ``contrast`` (0.8-1.2), ``noise_sd`` (2-12
        grey levels, uniform), ``blur_px`` (0 in 40 % of draws, else 0.3-1.5 px),
        ``flicker`` (0 in half the draws, else 0.5-5 %), ``gradient`` (0-0.3), ``n_dust``
        (0-30), ``codec`` (h264 60 % with ``crf`` 18-28, mjpg 25 %, ffv1 15 %).
    """
    polarity = "dark" if rng.random() < 0.6 else "bright"
    contrast = float(rng.uniform(0.8, 1.2))
    noise = float(rng.uniform(2.0, 12.0))
    blur = 0.0 if rng.random() < 0.4 else float(rng.uniform(0.3, 1.5))
    flicker = 0.0 if rng.random() < 0.5 else float(rng.uniform(0.005, 0.05))
    gradient = float(rng.uniform(0.0, 0.3))
    n_dust = int(rng.integers(0, 31))
    u = rng.random()
    codec = "h264" if u < 0.6 else "mjpg" if u < 0.85 else "ffv1"
    crf = int(rng.integers(18, 29))
    return {
        "polarity": polarity,
        "contrast": contrast,
        "noise_sd": noise,
        "blur_px": blur,
        "flicker": flicker,
        "gradient": gradient,
        "n_dust": n_dust,
        "codec": codec,
        "crf": crf if codec == "h264" else 18,
    }
