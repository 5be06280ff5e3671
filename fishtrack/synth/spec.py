"""``SimSpec``: every knob of the simulator, validated (pydantic, unknown keys rejected).

Fields left ``None`` take layout-dependent defaults when the spec is validated (rows/cols/fish
per arena) or when the scene is laid out (frame and arena size); see each description.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fishtrack.arenas import arena_name
from fishtrack.config import BehaviourConfig, Phase
from fishtrack.synth.body import Morphology

__all__ = ["SimSpec", "GroupRule", "arena_name", "arena_names", "fish_names", "default_protocol"]

GroupRule = Literal["halves", "alternate_columns", "alternate_rows", "all_control"]
Codec = Literal["h264", "hevc", "mjpg", "ffv1", "raw", "tiff", "png"]

_LAYOUT_DEFAULTS = {
    # layout: (rows, cols, fish_per_arena)
    "wells": (4, 6, 1),
    "chamber": (1, 1, 5),
    "embedded": (2, 2, 1),
}


#: grey level a fully opaque fish part changes the background by, per polarity: the water of
#: a back-lit plate (dark fish absorb it) or the fish brightness of dark-field (bright fish add
#: it); converts ``tail_tip_contrast`` into an opacity
TIP_LEVEL = {"dark": 205.0, "bright": 190.0}


def arena_names(rows: int, cols: int) -> list[str]:
    """Arena names row-major from the top-left."""
    return [arena_name(r, c) for r in range(rows) for c in range(cols)]


def fish_names(arena: str, n: int) -> list[str]:
    """Fish names of one arena: the arena name itself with one fish, else ``ARENA-k``."""
    return [arena] if n == 1 else [f"{arena}-{k}" for k in range(1, n + 1)]


def default_protocol(duration_s: float) -> list[Phase]:
    """Closed loop for the first third, open loop for the rest."""
    cut = round(duration_s / 3.0, 3)
    return [
        Phase(name="closed_loop_1", kind="closed_loop", start_s=0.0, end_s=cut),
        Phase(name="open_loop_1", kind="open_loop", start_s=cut, end_s=float(duration_s)),
    ]


def _d(default, text: str, **kw):
    return Field(default, description=text, **kw)


class SimSpec(BaseModel):
    """What to simulate: layout, camera, image quality, behaviour and groups.

    All lengths in pixels, times in seconds, grey levels on the 0-255 scale.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=False)

    name: str = _d(
        "video", "Stem of the video file written by simulate() (out_dir/<name>.<ext>).",
        min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$",
    )
    layout: Literal["wells", "chamber", "embedded"] = _d(
        "wells",
        "Scene: wells = a rows x cols plate with one free-swimming larva per well; chamber = one "
        "large arena with several free-swimming larvae (crossings); embedded = rows x cols "
        "head-embedded larvae (head fixed in agarose, tail free).",
    )
    rows: int | None = _d(
        None, "Rows of wells / embedded larvae (count). Default: wells 4, chamber 1, embedded 2.",
        ge=1, le=32,
    )
    cols: int | None = _d(
        None, "Columns of wells / embedded larvae (count). Default: wells 6, chamber 1, "
        "embedded 2.", ge=1, le=48,
    )
    fish_per_arena: int | None = _d(
        None, "Larvae per arena (count). Default: 5 in a chamber, else 1 (wells and embedded "
        "must have 1).", ge=1, le=50,
    )
    width: int | None = _d(
        None, "Frame width (px). None: derived from arena_size_px and the layout. Give width "
        "and height together.", ge=16, le=8192,
    )
    height: int | None = _d(
        None, "Frame height (px). None: derived like width.", ge=16, le=8192
    )
    arena_size_px: float | None = _d(
        None,
        "Well diameter (circle) or side (square), chamber diameter/side, or embedded ROI width "
        "(px). None: wells 3.2 x fish_length_px; chamber (3.5 + 1.6 sqrt(n_fish)) x "
        "fish_length_px; embedded 2 x fish_length_px; or the largest that fits width x height.",
        gt=0,
    )
    shape: Literal["circle", "square"] = _d(
        "circle", "Shape of wells and chamber (embedded ROIs are always rectangles)."
    )
    fps: float = _d(50.0, "Frame rate (Hz); 100-500 resolves every tail beat.", gt=0, le=5000)
    duration_s: float = _d(30.0, "Video duration (s).", gt=0, le=36000)
    fish_length_px: float = _d(
        40.0, "Larva length, snout to tail tip (px); a 5-7 dpf larva is ~4 mm.", ge=8, le=1000
    )
    polarity: Literal["dark", "bright"] = _d(
        "dark", "dark: dark fish on a bright (transmitted-light) background; bright: bright fish "
        "on a dark (dark-field / IR) background."
    )
    contrast: float = _d(
        1.0, "Fish contrast relative to the default look (unitless multiplier; 1 = eyes ~85 %, "
        "tail ~30 % darker than the background in dark polarity).", gt=0, le=2.0,
    )
    noise_sd: float = _d(2.0, "Gaussian camera noise, standard deviation (grey levels).", ge=0, le=60)
    flicker: float = _d(
        0.0, "Illumination flicker: relative amplitude of the global brightness modulation "
        "(unitless, 0.02 = +/-2 %).", ge=0, le=0.5,
    )
    gradient: float = _d(
        0.0, "Illumination gradient: relative brightness change from the frame centre to its "
        "edge along a random direction (unitless, 0.2 = +/-20 %).", ge=0, le=0.8,
    )
    n_dust: int = _d(
        0, "Static dust specks (count): small dark or bright dots, smaller than a fish, "
        "anywhere in the frame.", ge=0, le=10000,
    )
    pitch_x_px: float | None = _d(
        None, "Wells: centre-to-centre distance of neighbouring columns (px). None: the well "
        "size plus a gap (the same pitch across and down), or what fits width x height.", gt=0,
    )
    pitch_y_px: float | None = _d(
        None, "Wells: centre-to-centre distance of neighbouring rows (px). None: pitch_x_px "
        "when it is given, else as pitch_x_px.", gt=0,
    )
    plate_shift_px: tuple[float, float] = _d(
        (0.0, 0.0), "Wells: shift (x, y) of the plate's centre from the frame's centre (px). "
        "Wells may then touch or be cut by the frame edges (a larva in a cut well may leave "
        "the frame: make such wells empty).",
    )
    rim_contrast: float = _d(
        1.0, "Wells: contrast of the plate and the well rims against the water, relative to the "
        "default look (unitless; 0.1 = faint rims as in dark-field).", gt=0, le=2.0,
    )
    vignette: float = _d(
        0.0, "Vignetting: relative brightness loss at the frame corners, falling off with the "
        "square of the distance from the frame centre (unitless, 0.3 = corners 30 % darker).",
        ge=0, le=0.9,
    )
    drift_px_s: float = _d(
        1.0, "Typical speed of the slow passive drift of free-swimming larvae between bouts "
        "(px/s; no tail beat). 0 disables drift.", ge=0, le=100,
    )
    codec: Codec = _d("h264", "Video codec (see fishtrack.io.writer): h264, hevc, mjpg, ffv1, "
                      "raw, tiff, png.")
    crf: int = _d(18, "Constant rate factor for h264/hevc (lower = better, larger).", ge=0, le=51)
    seed: int = _d(0, "Random seed: the same spec and seed give identical frames and truth.", ge=0)
    groups: dict[str, str] | GroupRule = _d(
        "halves",
        "Group labels: a mapping arena or fish name -> label (missing ones are 'control'), or a "
        "rule: halves (left half of the columns control, right half ketamine; top/bottom rows "
        "when there is one column), alternate_columns, alternate_rows, all_control.",
    )
    treated_groups: list[str] = _d(
        ["ketamine"], "Group labels that receive the ketamine-like effect."
    )
    effect: float = _d(
        0.5,
        "Strength of the ketamine-like effect (0..1, unitless): later first give-up, shorter "
        "and fewer passive epochs. 0: every group has identical behaviour distributions.",
        ge=0, le=1,
    )
    still_arenas: list[str] = _d(
        [], "Arena names whose larvae never move: no bout, no twitch, no drift."
    )
    empty_arenas: list[str] = _d(
        [], "Arena names without a larva (no truth rows for them)."
    )
    passive_arenas: list[str] = _d(
        [], "Arena names whose larvae give up at once in open loop: no bout in any open-loop "
        "phase (passive through the whole phase), normal swimming elsewhere."
    )
    bout_params: dict[str, float] = _d(
        {}, "Overrides of the behaviour model's parameters for every fish (keys of "
        "fishtrack.synth.PARAMS, e.g. struggle_dur_min, normal_ibi_scale, struggle_freq_hi, "
        "dur_hi; seconds, Hz, rad as in PARAMS).",
    )
    fish_bout_params: dict[str, dict[str, float]] = _d(
        {}, "Per-fish overrides of the behaviour model's parameters: arena or fish name -> "
        "{PARAMS key: value}; applied over bout_params.",
    )
    protocol: list[Phase] | None = _d(
        None, "Protocol phases {name, kind, start_s, end_s} (s). None: closed_loop for the first "
        "third of the video, open_loop for the rest.",
    )
    min_passive_s: float = _d(
        BehaviourConfig.model_fields["min_passive_s"].default,
        "Passive-state rule (s): no bout for at least this long. Must match the config's "
        "behaviour.min_passive_s for truth and classifier to agree.",
        gt=0, le=600,
    )

    # -- morphology (how each larva is drawn; defaults = the original drawing) ----------------
    eye_size: float = _d(
        1.0, "Eye size: multiplier of the eye ellipses' axes (0.05 x 0.036 L), and of the head "
        "disc's radius (0.075 L) with head_style disc (unitless).", gt=0, le=4,
    )
    eye_lateral: float = _d(
        0.06, "Distance of each eye centre from the body midline, in body lengths; small values "
        "make the eyes touch or merge.", ge=0, le=0.2,
    )
    eye_tilt: float = _d(
        0.25, "Rotation of each eye ellipse away from the body axis (rad).", ge=-1.6, le=1.6
    )
    head_style: Literal["eyes", "disc"] = _d(
        "eyes", "eyes: two dark eyes (truth head = their midpoint); disc: one dark head disc "
        "without distinct eyes, centred where the eye midpoint would be (truth head = the "
        "disc's centre, 0.06 L behind the snout on the midline).",
    )
    head_width: float = _d(
        1.0, "Width of the rigid anterior body (head, yolk) relative to the default outline "
        "(unitless).", gt=0, le=3,
    )
    tail_width: float = _d(
        1.0, "Width of the tail from mid-body to the tip relative to the default outline "
        "(unitless).", gt=0, le=4,
    )
    tail_taper: float = _d(
        1.0, "Exponent of the tail's taper: > 1 thins the tail sooner, < 1 keeps it wide "
        "longer (unitless).", gt=0, le=5,
    )
    tail_tip_width: float = _d(
        0.006, "Half-width of the tail at its tip, in body lengths.", gt=0, le=0.05
    )
    body_opacity: float = _d(
        0.30, "Fraction of the background light the body blocks (dark polarity) or of the fish "
        "brightness it adds (bright), before the contrast multiplier.", gt=0, le=1,
    )
    yolk_opacity: float = _d(
        0.50, "Opacity of the head/yolk ellipse behind the eyes (as body_opacity); close to "
        "eye_opacity makes the eyes merge with the head blob.", ge=0, le=1,
    )
    eye_opacity: float = _d(
        0.88, "Opacity of the eyes or head disc (as body_opacity).", gt=0, le=1
    )
    yolk_size: float = _d(
        1.0, "Size of the head/yolk ellipse relative to the default (0.12 x 0.042 L) "
        "(unitless).", gt=0, le=3,
    )
    bladder_opacity: float = _d(
        0.0, "Opacity of a swim bladder (ellipse 0.045 x 0.03 L, 0.25 L behind the snout); 0: "
        "none.", ge=0, le=1,
    )
    tail_tip_contrast: float | None = _d(
        None, "Grey levels by which the tail differs from the nominal background at its tip "
        "(before noise, blur and compression; not scaled by contrast); the tail's opacity "
        "fades linearly from the body's at tail_fade_start to this at the tip. None: the tail "
        "has the body's opacity throughout.", gt=0, le=255,
    )
    tail_fade_start: float = _d(
        0.45, "Arc position (body lengths from the snout) where the tail starts to fade "
        "towards tail_tip_contrast.", ge=0.3, lt=1,
    )
    tail_wave_exponent: float = _d(
        1.0, "How the swimming wave's amplitude grows along the tail: segment angles ~ "
        "x**exponent (x = position along the tail, 0..1). 1: the bend grows linearly towards "
        "the tip; 2-3: the bend is concentrated in the posterior tail, as in many real larvae "
        "(the tail angle then depends on the faint tip).", ge=0.5, le=4,
    )
    blur_px: float = _d(
        0.0, "Optical blur: sigma of a Gaussian applied to every frame before the camera noise "
        "(px); 0: sharp.", ge=0, le=10,
    )
    embedded_heading_deg: float | None = _d(
        None, "Head-embedded larvae: the direction the head points (degrees, image "
        "convention: 0 = right, 90 = down the screen, -90 = up), plus a per-larva spread of "
        "embedded_heading_sd_deg; ROIs are then square (2.3 fish lengths) with the head at "
        "their centre. None: pointing up the screen (ROIs 2 x 1.3 fish lengths, head near "
        "the top).", ge=-360, le=360,
    )
    embedded_heading_sd_deg: float = _d(
        0.0, "Per-larva random spread (sd, degrees) added to embedded_heading_deg.", ge=0,
        le=180,
    )

    @model_validator(mode="after")
    def _fill_and_check(self) -> SimSpec:
        rows, cols, fpa = _LAYOUT_DEFAULTS[self.layout]
        if self.rows is None:
            self.rows = rows
        if self.cols is None:
            self.cols = cols
        if self.fish_per_arena is None:
            self.fish_per_arena = fpa
        if self.layout == "chamber" and (self.rows, self.cols) != (1, 1):
            raise ValueError("layout 'chamber' has one arena: rows and cols must be 1")
        if self.layout != "chamber" and self.fish_per_arena != 1:
            raise ValueError(f"layout {self.layout!r} holds one larva per arena; fish_per_arena must be 1")
        if (self.width is None) != (self.height is None):
            raise ValueError("give width and height together (or neither)")
        if self.width is not None and self.codec in ("h264", "hevc", "mjpg"):
            if self.width % 2 or self.height % 2:
                raise ValueError(f"codec {self.codec} needs an even width and height")
        names = set(arena_names(self.rows, self.cols))
        for key in ("still_arenas", "empty_arenas", "passive_arenas"):
            bad = [a for a in getattr(self, key) if a not in names]
            if bad:
                raise ValueError(f"{key}: unknown arena(s) {', '.join(bad)}; arenas are "
                                 f"{_name_range(self.rows, self.cols)}")
        if isinstance(self.groups, dict):
            fish = {f for a in names for f in fish_names(a, self.fish_per_arena)}
            bad = [k for k in self.groups if k not in names and k not in fish]
            if bad:
                raise ValueError(f"groups: unknown arena or fish name(s) {', '.join(bad)}")
        _check_bout_params(self, names)
        if self.protocol is not None:
            ph = sorted(self.protocol, key=lambda p: p.start_s)
            for a, b in zip(ph[:-1], ph[1:], strict=False):
                if b.start_s < a.end_s - 1e-9:
                    raise ValueError(f"protocol: phases {a.name!r} and {b.name!r} overlap")
            names_ph = [p.name for p in ph]
            if len(set(names_ph)) != len(names_ph):
                raise ValueError("protocol: phase names must be unique")
        return self

    # -- derived ------------------------------------------------------------------------------
    def morphology(self) -> Morphology:
        """The drawing of the larvae (:class:`fishtrack.synth.body.Morphology`); the tail-tip
        opacity is derived from ``tail_tip_contrast`` and the nominal background level."""
        tip = None
        if self.tail_tip_contrast is not None:
            level = TIP_LEVEL[self.polarity]
            tip = float(min(1.0, self.tail_tip_contrast / level))
        return Morphology(
            eye_size=self.eye_size, eye_lateral=self.eye_lateral, eye_tilt=self.eye_tilt,
            head_style=self.head_style, head_width=self.head_width, tail_width=self.tail_width,
            tail_taper=self.tail_taper, tail_tip_width=self.tail_tip_width,
            body_opacity=self.body_opacity, yolk_opacity=self.yolk_opacity,
            eye_opacity=self.eye_opacity, yolk_size=self.yolk_size,
            bladder_opacity=self.bladder_opacity, tail_tip_opacity=tip,
            tail_fade_start=self.tail_fade_start,
        )

    @property
    def n_frames(self) -> int:
        """Frames in the video: ``round(duration_s * fps)`` (at least 1)."""
        return max(1, int(round(self.duration_s * self.fps)))

    def phases(self) -> list[Phase]:
        """The protocol actually used (the default one when ``protocol`` is None)."""
        ph = self.protocol if self.protocol is not None else default_protocol(self.duration_s)
        return sorted(ph, key=lambda p: p.start_s)

    def arena_list(self) -> list[str]:
        """All arena names (including empty ones), row-major."""
        return arena_names(self.rows, self.cols)

    def group_of(self) -> dict[str, str]:
        """Group label of every fish (also of fish in still arenas), by fish name."""
        out: dict[str, str] = {}
        for r in range(self.rows):
            for c in range(self.cols):
                a = arena_name(r, c)
                for f in fish_names(a, self.fish_per_arena):
                    out[f] = _group_for(self, r, c, a, f)
        return out


def _group_for(spec: SimSpec, r: int, c: int, arena: str, fish: str) -> str:
    g = spec.groups
    if isinstance(g, dict):
        return g.get(fish, g.get(arena, "control"))
    treated = spec.treated_groups[0] if spec.treated_groups else "ketamine"
    if g == "all_control":
        return "control"
    if g == "alternate_columns":
        return "control" if c % 2 == 0 else treated
    if g == "alternate_rows":
        return "control" if r % 2 == 0 else treated
    # halves
    if spec.cols >= 2:
        return "control" if c < spec.cols / 2 else treated
    if spec.rows >= 2:
        return "control" if r < spec.rows / 2 else treated
    return "control"


def _check_bout_params(spec: SimSpec, names: set[str]) -> None:
    from fishtrack.synth.behaviour import PARAMS, SCALAR_PARAMS

    fish = {f for a in names for f in fish_names(a, spec.fish_per_arena)}
    sets = [("bout_params", spec.bout_params)]
    for who, par in spec.fish_bout_params.items():
        if who not in names and who not in fish:
            raise ValueError(f"fish_bout_params: unknown arena or fish name {who!r}")
        sets.append((f"fish_bout_params[{who}]", par))
        bad = [k for k in par if k in SCALAR_PARAMS]
        if bad:
            raise ValueError(f"fish_bout_params[{who}]: {', '.join(bad)} can only be set for "
                             "every fish (bout_params)")
    for label, par in sets:
        bad = [k for k in par if k not in PARAMS]
        if bad:
            raise ValueError(f"{label}: unknown parameter(s) {', '.join(bad)}; known: "
                             f"{', '.join(PARAMS)}")
        neg = [k for k, v in par.items() if not v >= 0]
        if neg:
            raise ValueError(f"{label}: {', '.join(neg)} must be >= 0")


def _name_range(rows: int, cols: int) -> str:
    return f"{arena_name(0, 0)}..{arena_name(rows - 1, cols - 1)}"
