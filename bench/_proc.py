"""Run one benchmark child process to its exit: wall time, peak RSS and RSS samples.

The child is started by a small launcher process (``posix_spawn`` + ``os.wait4``): the
kernel's ``ru_maxrss`` of a child includes the memory of the process it was forked from, so
forking the measured program from a large benchmark process would inflate its peak.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_LAUNCH = """
import json, os, sys, time
flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
acts = [(os.POSIX_SPAWN_OPEN, 1, sys.argv[1], flags, 0o644),
        (os.POSIX_SPAWN_OPEN, 2, sys.argv[2], flags, 0o644)]
t0 = time.perf_counter()
pid = os.posix_spawn(sys.argv[3], sys.argv[3:], os.environ, file_actions=acts)
print("PID", pid, flush=True)
_, status, usage = os.wait4(pid, 0)
print("LAUNCH " + json.dumps({"wall": time.perf_counter() - t0, "rss_kb": usage.ru_maxrss,
                             "cpu": usage.ru_utime + usage.ru_stime,
                             "code": os.waitstatus_to_exitcode(status)}), flush=True)
"""


def _proc_mb(pid: int, key: str) -> float:
    """``VmRSS`` / ``VmHWM`` of a running process in MB (NaN once it has gone)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def run_process(cmd: list[str], *, sample_s: float | None = None) -> dict:
    """Run ``cmd`` (``cmd[0]`` an absolute path) to its exit, with this checkout first on
    ``PYTHONPATH``. Returns ``wall_s``, ``peak_rss_mb`` (the child's ``ru_maxrss``), ``cpu_s``
(the child's user + system CPU time),
    ``samples`` (``VmRSS`` / ``VmHWM`` every ``sample_s`` seconds, if given) and the child's
    ``stdout``; raises ``RuntimeError`` with the end of its stderr if it fails."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with tempfile.TemporaryDirectory(prefix="fishtrack-bench-proc-") as tmp:
        out, err = Path(tmp) / "stdout", Path(tmp) / "stderr"
        t0 = time.perf_counter()
        p = subprocess.Popen([sys.executable, "-c", _LAUNCH, str(out), str(err), *cmd],
                             stdout=subprocess.PIPE, text=True, env=env)
        first = p.stdout.readline().split()
        samples: list[dict] = []
        stop = threading.Event()
        if sample_s and len(first) == 2:
            pid = int(first[1])

            def sample() -> None:
                while not stop.wait(sample_s):
                    samples.append({"t_s": round(time.perf_counter() - t0, 1),
                                    "rss_mb": _proc_mb(pid, "VmRSS"),
                                    "hwm_mb": _proc_mb(pid, "VmHWM")})

            threading.Thread(target=sample, daemon=True).start()
        last = p.stdout.read().strip().splitlines()
        p.wait()
        stop.set()
        res = json.loads(last[-1][7:]) if last and last[-1].startswith("LAUNCH ") else None
        if res is None or res["code"] != 0:
            tail = err.read_text(errors="replace")[-3000:] if err.exists() else ""
            raise RuntimeError(f"{' '.join(cmd[:4])} failed:\n{tail}")
        return {"wall_s": res["wall"], "peak_rss_mb": res["rss_kb"] / 1024.0,
                "cpu_s": res.get("cpu", float("nan")), "samples": samples, "stdout": out.read_text(errors="replace")}


IMPORT_HOOK = r'''
import importlib.abc as _abc, sys as _sys

class _AroundImport(_abc.MetaPathFinder):
    """For the modules named in ``wanted``: ``around(name, module, run)`` runs in place of
    the loader's ``exec_module`` (``run(module)`` executes the module)."""

    def __init__(self, wanted, around):
        self.wanted, self.around = wanted, around

    def find_spec(self, name, path, target=None):
        if name not in self.wanted:
            return None
        for f in _sys.meta_path:
            if f is not self and hasattr(f, "find_spec"):
                spec = f.find_spec(name, path, target)
                if spec is not None:
                    break
        else:
            return None
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run, around = spec.loader.exec_module, self.around
        spec.loader.exec_module = lambda module: around(name, module, run)
        return spec

def around_imports(wanted, around):
    """Install the hook first on ``sys.meta_path``."""
    _sys.meta_path.insert(0, _AroundImport(wanted, around))
'''
"""Source of an import hook for a benchmark's child process (``bench/run_timeline.py``'s
``sitecustomize``, ``bench/process_timeline.py``'s ``-c`` program): prepended to the child's
own code, it defines ``around_imports(wanted, around)``, which runs
``around(name, module, run)`` in place of the loading of each module named in ``wanted``
(e.g. to note the import's start and end, or to wrap the module's functions once loaded)."""
