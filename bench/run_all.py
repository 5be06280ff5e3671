"""``make bench``: run every benchmark in one go and write docs/benchmarks.md.

Each bench module exposes ``run(out_path) -> dict`` and writes a Markdown section to
``out_path``; this script runs them one after the other (so they do not compete for the two
cores), then joins the sections under a header describing the machine.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODULES = [
    "bench_reader", "bench_tracker", "bench_process", "bench_tracker_accuracy", "bench_behaviour_stress",
    "bench_experiment", "bench_init", "bench_stats", "bench_speed_bouts", "bench_assay",
    "bench_long_recording",
]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=HERE.parent / "docs" / "benchmarks.md")
    ap.add_argument("--only", nargs="*", default=None, help="run only these bench modules")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(HERE))
    import psutil

    import fishtrack

    sections = []
    tmp = Path(tempfile.mkdtemp(prefix="fishtrack-bench-"))
    for name in args.only or MODULES:
        if not (HERE / f"{name}.py").exists():
            continue
        mod = importlib.import_module(name)
        t0 = time.perf_counter()
        print(f"== {name}", flush=True)
        part = tmp / f"{name}.md"
        mod.run(part)
        sections.append(part.read_text(encoding="utf-8").strip())
        print(f"   done in {time.perf_counter() - t0:.0f} s", flush=True)
    head = (
        "# Benchmarks\n\n"
        f"Written by `make bench` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; fishtrack {fishtrack.__version__}, "
        f"Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM. All ratios are measured in the same run on the same "
        "file, so they compare like with like on this machine.\n"
    )
    text = head + "\n\n" + "\n\n".join(sections) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_suffix(".md.part")
    tmp_out.write_text(text, encoding="utf-8")
    os.replace(tmp_out, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
