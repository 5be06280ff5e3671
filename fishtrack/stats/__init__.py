"""Statistics stage: per-fish metrics per protocol phase and group comparisons.

The fish is the unit of analysis (never frames or epochs). See ``docs/statistics.md`` for
every metric, every test and when it is used, the Holm family, the censoring treatment and the
measured calibration (false-positive rate, interval coverage).

``per_fish_metrics`` -> one row per fish per phase (+ pooled closed_loop / open_loop rows);
``binned_passive_fraction`` -> passive fraction in time bins; ``compare_groups`` -> each group
against ``stats.reference_group``; ``kaplan_meier`` -> latency curves for plotting.
"""

from fishtrack.stats.compare import (
    RESULT_COLUMNS,
    compare_groups,
    compare_latency,
    compare_mixed,
    compare_paired,
    compare_repeated,
    compare_two,
    hedges_g,
    holm,
    primary_phase,
)
from fishtrack.stats.metrics import (
    METRIC_SPECS,
    METRICS,
    MetricSpec,
    binned_passive_fraction,
    per_fish_metrics,
)
from fishtrack.stats.survival import kaplan_meier, rmst, survival_table

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
