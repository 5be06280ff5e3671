"""Design checks: confounds a reviewer would ask about before reading any p-value.

* **Plate position.** Within a video, every plate column (or row) that holds fish holds only
  one group, and some column holds several fish: the treatment cannot be told apart from a
  position effect (edge wells, light, temperature gradient).
* **Recording.** Every video holds a single group: differences between recordings (day,
  plate, lighting, time of day) cannot be told apart from the treatment.
* **Protocols.** Videos with different protocols are pooled: phases are matched by name and
  the pooled rows add up phases of different lengths, and the comparisons do not block by
  protocol; worse when the groups are not recorded in the same proportions under each
  protocol.

:func:`design_warnings` returns one plain sentence per problem (shown in the report's
quality-control section and in ``ExperimentResult.warnings``). Nothing is changed in the
analysis.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Mapping, Sequence

import pandas as pd

__all__ = ["design_warnings", "plate_position"]

_WELL = re.compile(r"^([A-Za-z]{1,2})0*(\d{1,3})$")


def plate_position(arena: str) -> tuple[str, int] | None:
    """``(row letter(s), column number)`` of a well name like ``B3``; None otherwise."""
    m = _WELL.match(str(arena).strip())
    return (m.group(1).upper(), int(m.group(2))) if m else None


def _span(values: Sequence) -> str:
    """``1-3`` for consecutive column numbers, else a list (``A, C``)."""
    values = sorted(set(values), key=lambda v: (len(str(v)), str(v)))
    if len(values) > 1 and all(isinstance(v, numbers.Integral) for v in values) and \
            values[-1] - values[0] == len(values) - 1:
        return f"{values[0]}-{values[-1]}"
    return ", ".join(map(str, values))


def _aligned(fish: pd.DataFrame, axis: str) -> dict[str, list] | None:
    """Levels of ``axis`` per group when every occupied level holds one group only and some
    level holds two or more fish; else None."""
    per_level = fish.groupby(axis)["group"].agg(["nunique", "size"])
    if len(per_level) < 2 or (per_level["nunique"] > 1).any() or per_level["size"].max() < 2:
        return None
    return {g: sorted(sub[axis].unique()) for g, sub in fish.groupby("group")}


def _protocol_key(protocol) -> tuple:
    return tuple((p.name, p.kind, round(float(p.start_s), 6), round(float(p.end_s), 6))
                 for p in (protocol or []))


def design_warnings(
    fish: pd.DataFrame, protocols: Mapping[str, Sequence] | None = None
) -> list[str]:
    """Warnings about confounded designs.

    Parameters
    ----------
    fish
        One row per analysed fish per video: ``video, arena, group`` (excluded fish already
        left out).
    protocols
        Protocol phases (``Phase`` objects) per video, as the trials were scored.
    """
    out: list[str] = []
    if fish.empty or fish["group"].nunique() < 2:
        return out
    fish = fish.dropna(subset=["group"]).astype({"group": str, "video": str})
    # plate position, per video
    for video, sub in fish.groupby("video", sort=False):
        pos = sub["arena"].map(plate_position)
        sub = sub[pos.notna()].assign(row=pos.dropna().str[0], column=pos.dropna().str[1])
        if sub["group"].nunique() < 2:
            continue
        for axis, word in (("column", "columns"), ("row", "rows")):
            where = _aligned(sub, axis)
            if where:
                parts = "; ".join(f"{g}: {word if len(v) > 1 else word[:-1]} {_span(v)}"
                                  for g, v in where.items())
                out.append(
                    f"video '{video}': the treatment is aligned with the plate {word} ({parts}), "
                    "so a position effect (edge wells, light, temperature) cannot be told apart "
                    f"from the treatment; spread every group over the plate's {word}"
                )
    # one group per video
    per_video = fish.groupby("video")["group"].nunique()
    if len(per_video) >= 2 and (per_video == 1).all():
        out.append(
            "every video holds a single group, so differences between recordings (day, plate, "
            "lighting) cannot be told apart from the treatment; record every group in every "
            "video or session"
        )
    # protocols
    if protocols:
        keys = {v: _protocol_key(p) for v, p in protocols.items()}
        distinct = list(dict.fromkeys(keys.values()))
        if len(distinct) > 1:
            label = {k: f"P{i + 1}" for i, k in enumerate(distinct)}
            fish = fish.assign(_p=fish["video"].map(lambda v: label.get(keys.get(v), "?")))
            desc = "; ".join(
                f"{label[k]} ({', '.join(f'{p[0]} {p[2]:g}-{p[3]:g} s' for p in k) or 'none'}): "
                f"{', '.join(sorted(v for v, kk in keys.items() if kk == k))}"
                for k in distinct)
            msg = (f"videos with {len(distinct)} different protocols are pooled ({desc}); phases "
                   "are matched by name and pooled rows add up phases of different lengths, "
                   "and the comparisons do not block by protocol")
            share = pd.crosstab(fish["_p"], fish["group"], normalize="index")
            if (share.max() - share.min()).max() > 0.2:
                msg += ("; the groups are not recorded in the same proportions under each "
                        "protocol (" + "; ".join(
                            f"{p}: " + ", ".join(f"{g} {share.loc[p, g]:.0%}" for g in share.columns)
                            for p in share.index) + "), so protocol and treatment are confounded")
            out.append(msg + ". Compare groups within one protocol, or balance them across "
                       "protocols.")
    return out
