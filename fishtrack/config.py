"""Configuration: typed, validated models for every section, loaded from YAML.

Every field carries its meaning, unit, default and a sensible range in its description;
``fishtrack config show --explain`` prints them and ``docs/configuration.md`` is generated from
them (:func:`explain_markdown`). Unknown keys and bad values are rejected with the key path and
the allowed values (:class:`fishtrack.errors.ConfigError`).

Public contract (names kept stable): ``arenas.layout``, ``arenas.rows``, ``arenas.cols``,
``arenas.fish_per_arena``, ``protocol`` (a list of ``{name, kind, start_s, end_s}``),
``behaviour.min_passive_s``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from fishtrack.errors import ConfigError

__all__ = [
    "Layout",
    "Config",
    "VideoConfig",
    "ArenasConfig",
    "TrackingConfig",
    "BehaviourConfig",
    "Phase",
    "StatsConfig",
    "load_config",
    "parse_config",
    "safe_load_yaml",
    "dump_config",
    "config_hash",
    "resolve_config",
    "format_validation_error",
    "explain_rows",
    "explain_markdown",
]


class _Section(BaseModel):
    # inf and nan are never sensible settings (an infinite frame rate, a nan threshold)
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        """YAML ``true``/``false`` given for a number (pydantic would read it as 1/0)."""
        if isinstance(value, bool):
            field = cls.model_fields.get(info.field_name or "")
            ann = field.annotation if field is not None else None
            if ann is not bool and "bool" not in str(ann):
                kind = "a number" if ("int" in str(ann) or "float" in str(ann)) else "text"
                raise ValueError(f"must be {kind}, not {str(value).lower()}")
        return value


Layout = Literal["wells", "chamber", "embedded"]
"""Arena layouts: a plate of wells, one chamber with several fish, head-embedded larvae."""


def _f(default: Any, text: str, *, unit: str = "", range_: str = "", **kw: Any) -> Any:
    """A Field whose description carries meaning, unit and sensible range."""
    extra = {"unit": unit, "range": range_}
    return Field(default, description=text, json_schema_extra=extra, **kw)


class VideoConfig(_Section):
    """How frames are read."""

    crop: tuple[int, int, int, int] | None = _f(
        None,
        "Region of interest [x, y, width, height] read from every frame; everything else is "
        "ignored. null reads the whole frame.",
        unit="px",
        range_="inside the frame",
    )
    chunk_size: int = _f(
        64,
        "Frames decoded and processed together. Larger chunks amortise overhead; memory grows "
        "linearly (chunk_size x width x height bytes).",
        unit="frames",
        range_="16-512",
        ge=1,
        le=4096,
    )
    fps: float | None = _f(
        None,
        "Override the frame rate stated by the container (for cameras that write a wrong "
        "rate). Timestamps then become frame / fps.",
        unit="Hz",
        range_="1-5000",
        gt=0,
    )


class ArenasConfig(_Section):
    """Where the fish are: plate wells, one chamber, or head-embedded larvae."""

    layout: Layout = _f(
        "wells",
        "Arena layout. wells: a rows x cols plate, one fish per well. chamber: one arena, "
        "possibly several fish. embedded: head-embedded larvae in a rows x cols grid, one ROI "
        "per fish, only the tail moves.",
    )
    rows: int = _f(1, "Rows of wells / embedded larvae.", unit="count", range_="1-16", ge=1, le=32)
    cols: int = _f(
        1, "Columns of wells / embedded larvae.", unit="count", range_="1-24", ge=1, le=48
    )
    fish_per_arena: int = _f(
        1,
        "Fish expected in each arena. More than 1 switches on identity tracking through "
        "crossings (chamber layout).",
        unit="count",
        range_="1-20",
        ge=1,
        le=100,
    )
    shape: Literal["auto", "circle", "square"] = _f(
        "auto",
        "Well (or chamber) shape. auto decides from the background image: whichever of a "
        "circle or a square fits the rims found better (a chamber may also be a rectangle). "
        "With arenas.bbox, auto means circular wells.",
    )
    bbox: tuple[int, int, int, int] | None = _f(
        None,
        "Bounding box [x0, y0, x1, y1] of the whole grid (outer edges of the corner wells: "
        "left of A1 to right of the last column, top of row A to bottom of the last row). "
        "Given, the grid is laid out from it instead of being detected (no rotation). "
        "chamber: the chamber's box; embedded: the area split into rows x cols ROIs.",
        unit="px",
    )
    margin_px: int = _f(
        2,
        "Pixels trimmed inside each well (or chamber) wall edge so that the wall is not part "
        "of the arena (masks use radius - margin_px).",
        unit="px",
        range_="0-10",
        ge=0,
        le=100,
    )
    well_radius_px: float | None = _f(
        None,
        "Radius of each well to the inner edge of its wall (half the side for square wells). "
        "With arenas.bbox it sets the well size (null: wells touch, radius = half a cell); "
        "without bbox it narrows the search to 0.8-1.25 x this value (null: any size that "
        "fits rows x cols in the frame).",
        unit="px",
        range_="5-500",
        gt=0,
    )
    min_found_fraction: float = _f(
        0.5,
        "Fraction of the rows x cols wells whose rim must be found before the grid fitted to "
        "them is trusted to fill in the others; below it detection fails and asks for "
        "arenas.bbox.",
        unit="fraction",
        range_="0.3-1",
        gt=0,
        le=1,
    )

    @model_validator(mode="after")
    def _chamber_is_one(self) -> ArenasConfig:
        if self.layout == "chamber" and (self.rows, self.cols) != (1, 1):
            raise ValueError("layout 'chamber' has one arena: rows and cols must be 1")
        if self.bbox is not None:
            x0, y0, x1, y1 = self.bbox
            if x1 <= x0 or y1 <= y0:
                raise ValueError("bbox must be [x0, y0, x1, y1] with x1 > x0 and y1 > y0")
        return self


class TrackingConfig(_Section):
    """Segmentation, head/midline extraction and identity."""

    polarity: Literal["auto", "dark", "bright"] = _f(
        "auto",
        "Fish contrast. dark: dark fish on a bright background; bright: bright fish on a dark "
        "(IR) background; auto decides from the background image.",
    )
    background_frames: int = _f(
        100,
        "Frames sampled evenly over the whole video to build the background (per-pixel "
        "median of the sample). A still fish is removed from it separately, never learnt.",
        unit="frames",
        range_="20-500",
        ge=5,
        le=5000,
    )
    threshold: float | None = _f(
        None,
        "Difference from background (grey levels) above which a pixel belongs to a fish. "
        "null picks it per arena from the noise level of the difference image.",
        unit="grey levels",
        range_="5-80",
        gt=0,
        le=255,
    )
    min_area_px: int = _f(
        15,
        "Smallest blob that can be a fish; smaller blobs (dust, noise) are discarded.",
        unit="px",
        range_="5-200",
        ge=1,
    )
    max_area_px: int | None = _f(
        None,
        "Largest blob that can be one fish (null: 4 x the median fish area).",
        unit="px",
        ge=1,
    )
    fish_length_px: float | None = _f(
        None,
        "Body length of a fish in pixels (head to tail tip). null estimates it from the "
        "blobs of the first frames.",
        unit="px",
        range_="10-200",
        gt=0,
    )
    n_tail_points: int = _f(
        10,
        "Points along the body midline, head to tail tip, stored per frame.",
        unit="count",
        range_="5-30",
        ge=3,
        le=100,
    )
    max_jump_px: float | None = _f(
        None,
        "Largest plausible head displacement between frames for identity linking (null: one "
        "body length).",
        unit="px",
        gt=0,
    )
    min_presence: float = _f(
        0.2,
        "An arena holds a fish only if one is detected in at least this fraction of frames; "
        "otherwise it is reported empty and yields no rows (a still fish is detected in every "
        "frame, so it is never mistaken for an empty arena).",
        unit="fraction",
        range_="0.05-0.5",
        gt=0,
        le=1,
    )
    remove_still_fish: bool = _f(
        True,
        "Remove fish that sat still in most sampled frames from the background (from frames "
        "where the spot is empty, else by inpainting), so that a motionless fish is still found "
        "in every frame. Only switch off for videos without any fish-sized static dark spot.",
    )
    flicker_correction: bool = _f(
        True,
        "Scale the background of every arena by the frame's brightness relative to it "
        "(median ratio over arena pixels), so that illumination flicker and drift do not "
        "change the segmentation.",
    )


class BehaviourConfig(_Section):
    """Swim bouts and active/passive states."""

    min_passive_s: float = _f(
        2.0,
        "A passive (give-up) epoch is a period of at least this long without a swim bout.",
        unit="s",
        range_="1-10",
        gt=0,
        le=600,
    )
    bout_threshold: float | None = _f(
        None,
        "Tail vigour (tail-angle travel per second) above which the fish is in a bout: a fixed, "
        "rig-level value (e.g. from fishtrack calibrate). null measures it per fish from the "
        "noise of the recording (frames away from every bout), whatever the fish's activity.",
        unit="rad/s",
        range_="2-30",
        gt=0,
    )
    vigour_window_s: float = _f(
        0.03,
        "Width of the centred window over which the tail-angle travel per second (tail vigour) "
        "is measured; about one tail-beat period. At low frame rates the window spans at least "
        "5 frames.",
        unit="s",
        range_="0.01-0.08",
        gt=0,
        le=1,
    )
    threshold_factor: float = _f(
        3.0,
        "With bout_threshold null: the threshold is the median vigour of the fish's quiet "
        "frames (those farther than 0.1 s from every bout) plus this many robust standard "
        "deviations (1.4826 x MAD) of it.",
        unit="noise sd",
        range_="2-8",
        gt=0,
        le=100,
    )
    min_bout_threshold: float = _f(
        5.0,
        "Physical floor of the automatic threshold, and the smallest vigour the hmm method may "
        "call a bout: a beat of 0.1 rad tail-angle amplitude at 15 Hz travels ~5 rad/s on "
        "average over its envelope. Protects clean, motionless tails and step-like tracker "
        "noise.",
        unit="rad/s",
        range_="2-10",
        gt=0,
    )
    excursion: bool = _f(
        False,
        "Also find bouts from the tail's excursion from its rest posture (over "
        "excursion_window_s), which does not need the tail beats to be resolved (60-100 fps, "
        "aliased beats, noisy tails). Off by default: it helps on tail tracks with white "
        "tracking noise (e.g. imported from other trackers at 60-100 fps) but gave false bouts "
        "on fishtrack's own tracks of held-out videos (docs/behaviour.md). false: tail vigour "
        "only.",
    )
    sustained: bool = _f(
        True,
        "At 50-125 fps also find bouts from the tail's energy (mean squared deviation from its "
        "rest posture) over 0.15 s, with a threshold from the quiet frames' noise: weak beats "
        "with 3-8 samples each, whose per-frame vigour is inside the tracking noise, are found "
        "when they last (docs/behaviour.md, sustained bouts). false: the rule before (vigour, "
        "and the excursion if on).",
    )
    excursion_window_s: float = _f(
        0.12,
        "Width of the centred window of the tail's excursion from its rest posture (robust: "
        "1.4826 x the median absolute deviation from the rest posture; at least 6 frames).",
        unit="s",
        range_="0.08-0.2",
        gt=0,
        le=1,
    )
    excursion_threshold_factor: float = _f(
        4.0,
        "The excursion threshold is the median excursion of the fish's quiet frames plus "
        "this many robust standard deviations of it (measured like the vigour's).",
        unit="noise sd",
        range_="3-8",
        gt=0,
        le=100,
    )
    min_excursion_rad: float = _f(
        0.035,
        "Physical floor of the excursion threshold: the excursion of a beat of ~0.035 rad "
        "tail-angle amplitude (the excursion of a sampled sine is about its amplitude).",
        unit="rad",
        range_="0.02-0.1",
        gt=0,
    )
    min_bout_s: float = _f(
        0.04, "Shortest swim bout kept.", unit="s", range_="0.02-0.1", gt=0, le=5
    )
    merge_gap_s: float = _f(
        0.05,
        "Bouts separated by less than this are merged into one.",
        unit="s",
        range_="0-0.2",
        ge=0,
        le=5,
    )
    max_gap_s: float = _f(
        0.5,
        "Detection gaps (fish not found) up to this long inside a passive epoch are bridged; "
        "longer gaps are state 'unknown' and split the epoch. With tail bouts a gap of "
        "min_bout_s or longer could hide a whole bout and is not bridged inside a quiet "
        "stretch: its frames are 'unknown' there (docs/behaviour.md, states and epochs).",
        unit="s",
        range_="0-2",
        ge=0,
    )
    bout_signal: Literal["auto", "tail", "speed", "speed_motion"] = _f(
        "auto",
        "What bouts are found from. tail: tail vigour (tail beats). speed: the head's path "
        "speed (movement bouts, for tracks without a tail or video too slow for tail beats). "
        "speed_motion: the head's speed or the pixel motion inside the fish's mask (the "
        "tracker's motion_energy; sees struggles in place). auto: tail when a tail angle is "
        "tracked and the frame rate is at least 50 fps; otherwise speed_motion when the "
        "tracks have motion_energy (fishtrack tracked the video), else speed.",
    )
    speed_window_s: float = _f(
        0.24,
        "bout_signal speed: the head's speed is its displacement across a centred window of "
        "this width divided by the window's duration (at least 2 frames); about one bout.",
        unit="s",
        range_="0.1-0.3",
        ge=0,
        le=2,
    )
    speed_threshold_factor: float = _f(
        4.0,
        "bout_signal speed: the threshold is the median speed of the fish's quiet frames plus "
        "this many robust standard deviations of it (the noise of the positions, measured "
        "like the tail's).",
        unit="noise sd",
        range_="3-8",
        gt=0,
        le=100,
    )
    min_bout_speed_bl_s: float = _f(
        0.1,
        "bout_signal speed: physical floor of the automatic speed threshold, where the body "
        "length is known (midline points in the tracks); always at least 0.5 px over the "
        "window.",
        unit="body lengths/s",
        range_="0.1-1",
        ge=0,
    )
    speed_threshold: float | None = _f(
        None,
        "Movement bouts (bout_signal speed / speed_motion): a fixed, rig-level speed threshold "
        "in speed_threshold_unit instead of the one measured from the noise of the positions. "
        "null: measured per fish from the recording.",
        unit="mm/s or body lengths/s",
        range_="0.5-5 mm/s",
        gt=0,
    )
    speed_threshold_unit: Literal["mm/s", "body_lengths/s"] = _f(
        "mm/s",
        "Unit of speed_threshold. mm/s needs px_per_mm; body_lengths/s needs the body length "
        "(midline points in the tracks; the recording's median where a fish has none).",
    )
    motion_threshold: float | None = _f(
        None,
        "Movement bouts with bout_signal speed_motion: a fixed pixel-motion threshold (the "
        "tracker's motion_energy aligned to the frame) instead of the one measured from the "
        "recording's quiet frames.",
        unit="grey levels",
        range_="1-10",
        gt=0,
    )
    method: Literal["threshold", "hmm"] = _f(
        "threshold",
        "threshold: bouts from the vigour threshold, passive = no bout for min_passive_s. "
        "hmm: a two-state hidden Markov model smooths the per-frame activity first.",
    )


class Phase(_Section):
    """One protocol phase."""

    name: str = Field(..., min_length=1, description="Phase name, e.g. 'baseline', 'open_loop_1'.")
    kind: Literal["closed_loop", "open_loop", "other"] = Field(
        ..., description="closed_loop: swims give visual feedback; open_loop: they do not."
    )
    start_s: float = Field(..., ge=0, description="Phase start (s from the first frame).")
    end_s: float = Field(..., gt=0, description="Phase end (s from the first frame).")

    @model_validator(mode="after")
    def _ordered(self) -> Phase:
        if self.end_s <= self.start_s:
            raise ValueError(f"phase {self.name!r}: end_s must be greater than start_s")
        return self


class PrimaryEndpoint(_Section):
    """The one pre-specified comparison the report leads with."""

    metric: str = _f(
        "passive_fraction",
        "Primary endpoint: one of the compared per-fish metrics (docs/statistics.md). Every "
        "other metric is secondary (same phase) or exploratory (other phases).",
    )
    phase: str | None = _f(
        None,
        "Phase of the primary endpoint: a phase name or a pooled kind (open_loop, "
        "closed_loop). null: the pooled open-loop phases, or the whole record (all) when the "
        "protocol has no open-loop phase.",
    )

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        """``primary: passive_fraction`` is short for ``primary: {metric: passive_fraction}``."""
        return {"metric": value} if isinstance(value, str) else value


class StatsConfig(_Section):
    """Group comparison."""

    reference_group: str = _f("control", "Group every other group is compared with.")
    reference_condition: str | None = _f(
        None,
        "Within-fish designs (a 'condition' column in the manifest, e.g. before/after): the "
        "condition every other condition is compared with, fish by fish. Required when the "
        "manifest has more than one condition.",
    )
    primary: PrimaryEndpoint = Field(
        default_factory=PrimaryEndpoint,
        description="The primary endpoint (metric and phase); 'primary: NAME' sets the metric.",
    )
    bin_s: float = _f(
        30.0, "Width of the time bins of per_fish_bins.csv.", unit="s", range_="5-120", gt=0
    )
    n_bootstrap: int = _f(
        5000, "Bootstrap resamples for confidence intervals.", unit="count", range_="1000-20000",
        ge=100,
    )
    n_permutations: int = _f(
        10000,
        "Random permutations for p-values (exact enumeration when fewer exist).",
        unit="count",
        range_="1000-100000",
        ge=100,
    )
    seed: int = _f(0, "Random seed for bootstrap and permutations (results are reproducible).")
    confidence_level: float = _f(
        0.95,
        "Confidence level of the intervals of group differences (ci_low, ci_high).",
        unit="fraction",
        range_="0.8-0.99",
        gt=0.5,
        lt=1,
    )
    ci_method: Literal["permutation", "studentized", "bca", "percentile"] = _f(
        "permutation",
        "Interval for a difference of group means. permutation: the shifts not rejected by "
        "the row's own permutation test (the interval excludes 0 exactly when p <= 1 - "
        "confidence_level). studentized (bootstrap-t), bca, percentile: bootstrap intervals, "
        "which can disagree with the p-value; bca and percentile are too narrow with fewer "
        "than ~20 fish per group (measured in docs/statistics.md).",
    )
    exclude_no_swimming: bool = _f(
        True,
        "Leave fish flagged qc_no_swimming (no bout outside open loop) out of the group "
        "statistics; per_fish.csv keeps them, with exclude and exclude_reason set.",
    )
    # assay analyses (docs/assay_analyses.md)
    blocks: list[str] = _f(
        ["plate", "clutch", "date"],
        "Manifest columns used as blocks when present with two or more values: group "
        "comparisons, dose trends and time courses permute labels only within a block (the "
        "combination of these columns) and estimate the block-adjusted difference. [] turns "
        "blocking off.",
    )
    struggle_window_s: float = _f(
        10.0,
        "Struggle: bout rate and vigour in the first this many seconds of each open-loop "
        "phase, against the last this many seconds of the closed-loop phase before it.",
        unit="s", range_="5-30", gt=0, le=600,
    )
    sensitivity: list[float] | None = _f(
        None,
        "Give-up sensitivity: min_passive_s values at which the headline metrics are "
        "recomputed from the bouts (sensitivity.csv and one figure). null: 0.5, 1, 1.5, 2 and "
        "3 x behaviour.min_passive_s; [] turns it off.",
        unit="s", range_="1-10",
    )
    dose_scale: Literal["rank", "linear", "log"] = _f(
        "rank",
        "Dose axis of the dose-response trend test: rank (0, 1, 2, ... for the sorted dose "
        "levels; robust to log-spaced doses), linear (the dose values; slope per dose unit) "
        "or log (log10 dose; vehicle placed one median log-step below the lowest dose).",
    )
    dose_model: Literal["auto", "sigmoid", "monotone"] = _f(
        "auto",
        "Dose-response curve: sigmoid (4-parameter log-logistic), monotone (isotonic "
        "regression), or auto (sigmoid with at least 4 dose levels above vehicle when it "
        "converges, else monotone).",
    )
    event_pre_s: float = _f(
        10.0, "Onset-locked averages: window before each event (give-up onset, phase "
        "transition).", unit="s", range_="5-30", gt=0, le=600,
    )
    event_post_s: float = _f(
        10.0, "Onset-locked averages: window after each event.", unit="s", range_="5-30",
        gt=0, le=600,
    )
    event_bin_s: float = _f(
        1.0, "Onset-locked averages: bin width of the traces.", unit="s", range_="0.2-5",
        gt=0, le=60,
    )

    @model_validator(mode="after")
    def _check_sensitivity(self) -> StatsConfig:
        if self.sensitivity is not None and any(not v > 0 for v in self.sensitivity):
            raise ValueError("sensitivity: every min_passive_s value must be > 0")
        return self


class Config(_Section):
    """A whole fishtrack configuration."""

    video: VideoConfig = Field(default_factory=VideoConfig)
    arenas: ArenasConfig = Field(default_factory=ArenasConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    behaviour: BehaviourConfig = Field(default_factory=BehaviourConfig)
    protocol: list[Phase] = Field(
        default_factory=list,
        description="Protocol phases in time order: list of {name, kind, start_s, end_s}.",
    )
    stats: StatsConfig = Field(default_factory=StatsConfig)
    px_per_mm: float | None = _f(
        None, "Spatial calibration; adds distance_mm to the metrics.", unit="px/mm", gt=0
    )

    @model_validator(mode="after")
    def _phases_unique(self) -> Config:
        names = [p.name for p in self.protocol]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"protocol phase names must be unique; repeated: {', '.join(dup)}")
        b = self.behaviour
        if b.speed_threshold is not None and b.speed_threshold_unit == "mm/s" \
                and self.px_per_mm is None:
            raise ValueError("behaviour.speed_threshold is in mm/s but px_per_mm is not set: "
                             "set px_per_mm, or speed_threshold_unit: body_lengths/s")
        return self


# --------------------------------------------------------------------------------------------
# loading and errors


_MAX_PROBLEMS = 10
"""Validation problems listed in one message (the rest are counted)."""


def _short(value: Any, limit: int = 60) -> str:
    """``repr`` of a config value, cut to ``limit`` characters (inputs can be huge: a YAML
    alias bomb expands to gigabytes when printed in full)."""
    import reprlib

    r = reprlib.Repr()
    r.maxstring = r.maxother = limit
    r.maxlist = r.maxtuple = r.maxdict = r.maxset = 4
    r.maxlevel = 2
    text = r.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_validation_error(err: ValidationError, source: str) -> str:
    parts = []
    errors = err.errors()
    listed: set[tuple] = set()  # sections whose allowed keys are already in the message
    for e in errors[:_MAX_PROBLEMS]:
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        typ = e["type"]
        msg = e["msg"]
        if typ == "extra_forbidden":
            where = tuple(e["loc"][:-1])
            parent = _model_at(where)
            allowed = ", ".join(parent.model_fields) if parent is not None else ""
            if allowed and where in listed:
                allowed = "see above"
            listed.add(where)
            msg = f"unknown key (allowed here: {allowed})" if allowed else "unknown key"
        elif typ == "literal_error":
            exp = e.get("ctx", {}).get("expected", "")
            msg = f"must be one of {exp}; got {_short(e.get('input'))}"
        elif "input" in e and typ not in ("missing", "value_error"):
            msg = f"{msg}; got {_short(e['input'])}"
        msg = msg.replace("Value error, ", "")
        parts.append(f"{_short_key(loc)}: {msg}")
    if len(errors) > _MAX_PROBLEMS:
        parts.append(f"and {len(errors) - _MAX_PROBLEMS} more problem(s)")
    return f"{source}: invalid config: " + "; ".join(parts)


def _short_key(loc: str, limit: int = 80) -> str:
    if not loc.isprintable():  # a key with a line break or control character
        loc = loc.encode("unicode_escape").decode("ascii")
    return loc if len(loc) <= limit else loc[: limit - 3] + "..."


def _model_at(loc: tuple) -> type[BaseModel] | None:
    model: Any = Config
    for p in loc:
        if isinstance(p, int):
            continue
        field = getattr(model, "model_fields", {}).get(p)
        if field is None:
            return None
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            model = ann
        elif getattr(ann, "__origin__", None) is list:
            model = ann.__args__[0]
        else:
            return None
    return model


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` (plain data only: tags that would construct Python objects are
    refused) that also refuses a key given twice in one mapping (PyYAML keeps the last one
    silently, so a pasted duplicate would override the setting above it)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.setdefault(key, key_node.start_mark.line)
            except TypeError:  # unhashable key: SafeLoader reports it below
                continue
            if first != key_node.start_mark.line:
                raise yaml.constructor.ConstructorError(
                    None, None,
                    f"key {_short(key)} appears twice (lines {first + 1} and "
                    f"{key_node.start_mark.line + 1})",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)


def safe_load_yaml(text: str, source: str | Path) -> Any:
    """Parse YAML text with :class:`_UniqueKeyLoader`; any problem is a one-line
    :class:`ConfigError` naming ``source`` (and the line, when known)."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{source}: not valid YAML{where}: {problem}") from None
    except RecursionError:
        raise ConfigError(f"{source}: not valid YAML: nested too deeply") from None
    except ValueError as err:  # e.g. an integer with more digits than Python converts
        raise ConfigError(f"{source}: not valid YAML: {_short(str(err), 120)}") from None


def parse_config(data: dict | None, source: str = "<config>") -> Config:
    """Validate a mapping (e.g. parsed YAML) into a :class:`Config`."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: invalid config: the top level must be a mapping of sections")
    try:
        return Config.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source)) from None


def load_config(path: str | Path | None) -> Config:
    """Load and validate a YAML config file; ``None`` gives the defaults.

    YAML is read with a ``yaml.SafeLoader`` (:func:`safe_load_yaml`): tags that would
    construct Python objects are rejected, and so are keys given twice.
    """
    if path is None:
        return Config()
    p = Path(path)
    try:
        exists, is_dir = p.exists(), p.is_dir()
    except (OSError, ValueError) as err:  # a name the OS refuses (too long, NUL)
        raise ConfigError(f"{_short(str(p), 120)}: cannot use this path ({err})") from None
    if not exists:
        raise ConfigError(f"{p}: config file not found")
    if is_dir:
        raise ConfigError(f"{p}: is a folder, expected a YAML config file")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not UTF-8 text; save the config as UTF-8 YAML") from None
    except OSError as err:
        raise ConfigError(f"{p}: cannot read the config ({err.strerror or err})") from None
    data = safe_load_yaml(text, p)
    return parse_config(data, str(p))


def resolve_config(config: Config | str | Path | dict | None) -> Config:
    """Accept a Config, a YAML path, a mapping or None (defaults)."""
    if isinstance(config, Config):
        return config
    if config is None or isinstance(config, str | Path):
        return load_config(config)
    if isinstance(config, dict):
        return parse_config(config)
    raise TypeError(f"config must be a Config, a path or a dict, not {type(config).__name__}")


def dump_config(cfg: Config) -> str:
    """The effective config (defaults filled in) as YAML."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


def config_hash(cfg: Config | dict) -> str:
    """sha256 of the canonical JSON of the effective config (a Config, or the mapping
    ``Config.model_dump(mode="json")`` gives, e.g. as recorded in provenance.json)."""
    data = cfg.model_dump(mode="json") if isinstance(cfg, Config) else cfg
    blob = json.dumps(data, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()


# --------------------------------------------------------------------------------------------
# explanations


def explain_rows(model: type[BaseModel] = Config, prefix: str = "") -> list[dict[str, str]]:
    """One row per leaf field: key, default, unit, range, meaning."""
    rows: list[dict[str, str]] = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            rows.extend(explain_rows(ann, key + "."))
            continue
        if key == "protocol":
            rows.append(
                {
                    "key": "protocol",
                    "default": "[]",
                    "unit": "",
                    "range": "",
                    "meaning": field.description or "",
                }
            )
            rows.extend(explain_rows(Phase, "protocol[].")[:])
            continue
        extra = field.json_schema_extra or {}
        default = field.get_default(call_default_factory=True)
        allowed = getattr(ann, "__args__", None)
        meaning = field.description or ""
        if allowed and all(isinstance(a, str) for a in allowed):
            meaning += f" Allowed: {', '.join(allowed)}."
        rows.append(
            {
                "key": key,
                "default": "required" if field.is_required() else json.dumps(default),
                "unit": str(extra.get("unit", "")) if isinstance(extra, dict) else "",
                "range": str(extra.get("range", "")) if isinstance(extra, dict) else "",
                "meaning": meaning,
            }
        )
    return rows


def explain_markdown() -> str:
    """A Markdown table of every config key (used to generate docs/configuration.md)."""
    lines = ["| key | default | unit | sensible range | meaning |", "|---|---|---|---|---|"]
    for r in explain_rows():
        lines.append(
            f"| `{r['key']}` | {r['default']} | {r['unit']} | {r['range']} | {r['meaning']} |"
        )
    return "\n".join(lines) + "\n"
