"""Statistics stage: per-fish metrics per protocol phase and group comparisons.

The fish is the unit of analysis (never frames or epochs). See ``docs/statistics.md`` for
every metric, every test and when it is used, the Holm family, the censoring treatment and the
measured calibration (false-positive rate, interval coverage).

``per_fish_metrics`` -> one row per fish per phase (+ pooled closed_loop / open_loop rows);
``binned_passive_fraction`` -> passive fraction in time bins; ``compare_groups`` -> each group
against ``stats.reference_group``; ``kaplan_meier`` -> latency curves for plotting.
"""

from fishtrack.stats.metrics import (
    METRIC_SPECS,
    METRICS,
    MetricSpec,
    binned_passive_fraction,
    per_fish_metrics,
)

_LAZY = {
    **dict.fromkeys(("RESULT_COLUMNS", "compare_groups", "compare_latency", "compare_mixed",
                     "compare_paired", "compare_repeated", "compare_two", "hedges_g", "holm",
                     "primary_phase"), "fishtrack.stats.compare"),
    **dict.fromkeys(("kaplan_meier", "rmst", "survival_table"), "fishtrack.stats.survival"),
}
"""Names imported on first use: the comparisons import ``scipy.stats`` (~0.7 s of CPU per
process), which a trial's worker computing per-fish metrics does not need (issue 15)."""


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fishtrack.stats' has no attribute {name!r}")


__all__ = [
    "METRICS",
    "METRIC_SPECS",
    "MetricSpec",
    "RESULT_COLUMNS",
    "binned_passive_fraction",
    "compare_groups",
    "compare_latency",
    "compare_mixed",
    "compare_paired",
    "compare_repeated",
    "compare_two",
    "hedges_g",
    "holm",
    "kaplan_meier",
    "per_fish_metrics",
    "primary_phase",
    "rmst",
    "survival_table",
]
