"""Results of the behaviour stage's expensive steps kept on disk between the passes of
:func:`fishtrack.behaviour.classify.classify_parts`.

A pass runs the stage on a part of the recording from the start until it needs a
recording-level value not known yet (:mod:`fishtrack.behaviour._pool`). Everything the part
computed before that point is the same in the next pass (the same rows, the same values
known: the stage's control flow depends only on them), so a step wrapped in
:func:`fishtrack.behaviour._pool.remembered` writes its result to the part's folder the first
time and reads it back in the later passes instead of computing it again. A step is named by
its name and its occurrence in the part's run (the 1st, 2nd, ... call of that name), which
the same control flow reproduces.

The results are written as NumPy ``.npz`` files (``np.savez``, temp file then rename) and
read with ``allow_pickle=False``: arrays, scalars, strings, tuples, lists, dicts with string
keys, dataclasses of :mod:`fishtrack` and pandas tables (as Arrow IPC bytes). A result of any
other kind is not kept (the step is computed again in the next pass: slower, same values).
"""

from __future__ import annotations

import dataclasses
import importlib
import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["MISSING", "StepStore", "Unstorable", "decode", "encode"]

MISSING = object()
"""What :meth:`StepStore.load` returns for a step not kept."""


class Unstorable(TypeError):
    """A value this module does not write (the step is recomputed instead)."""


class StepStore:
    """The kept step results of one part of a recording: one ``.npz`` file per step."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.hits = 0  # steps read back (for tests and benchmarks)
        self.misses = 0  # steps computed

    def _path(self, key: str) -> Path:
        return self.folder / f"{key}.npz"

    def load(self, key: str):
        path = self._path(key)
        if not path.exists():
            self.misses += 1
            return MISSING
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        self.hits += 1
        return decode(json.loads(arrays.pop("__spec__").tobytes().decode("utf-8")), arrays)

    def save(self, key: str, value) -> bool:
        """Write ``value`` (temp file then rename); False when it cannot be kept."""
        arrays: dict[str, np.ndarray] = {}
        try:
            spec = encode(value, arrays)
        except Unstorable:
            return False
        arrays["__spec__"] = np.frombuffer(json.dumps(spec).encode("utf-8"), np.uint8)
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".step.", suffix=".npz", dir=self.folder)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
            os.replace(tmp, self._path(key))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return True


def encode(value, arrays: dict[str, np.ndarray]):
    """A JSON-able description of ``value``; its arrays go to ``arrays`` (by name)."""

    def put(a: np.ndarray) -> str:
        name = f"a{len(arrays)}"
        arrays[name] = a
        return name

    if value is None or isinstance(value, bool | str):
        return {"j": value}
    if isinstance(value, np.generic):
        if value.dtype.kind == "O":
            raise Unstorable("object scalar")
        return {"s": put(np.asarray(value))}
    if isinstance(value, int):
        return {"j": value}
    if isinstance(value, float):
        return {"x": value.hex()}
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "O":
            if not all(isinstance(x, str) for x in value.flat):
                raise Unstorable("object array of other than strings")
            return {"os": put(value.astype(str)), "shape": list(value.shape)}
        if value.dtype.kind not in "biufcmMUS":
            raise Unstorable(f"array of dtype {value.dtype}")
        return {"a": put(value)}
    if isinstance(value, pd.DataFrame):
        import pyarrow as pa

        try:
            table = pa.Table.from_pandas(value)
        except (pa.ArrowException, TypeError, ValueError) as err:
            raise Unstorable(str(err)) from None
        sink = io.BytesIO()
        with pa.ipc.new_stream(sink, table.schema) as w:
            w.write_table(table)
        return {"df": put(np.frombuffer(sink.getvalue(), np.uint8))}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        cls = type(value)
        if not cls.__module__.startswith("fishtrack."):
            raise Unstorable(f"dataclass {cls.__qualname__}")
        fields = dataclasses.fields(value)
        if any(not f.init for f in fields):
            raise Unstorable(f"dataclass {cls.__qualname__} with non-init fields")
        return {"dc": f"{cls.__module__}:{cls.__qualname__}",
                "f": {f.name: encode(getattr(value, f.name), arrays) for f in fields}}
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise Unstorable("dict with keys other than strings")
        return {"d": [[k, encode(v, arrays)] for k, v in value.items()]}
    if isinstance(value, tuple | list):
        return {"t" if isinstance(value, tuple) else "l": [encode(v, arrays) for v in value]}
    raise Unstorable(type(value).__name__)


def decode(spec, arrays: dict[str, np.ndarray]):
    """The value :func:`encode` described."""
    if "j" in spec:
        return spec["j"]
    if "x" in spec:
        return float.fromhex(spec["x"])
    if "s" in spec:
        return arrays[spec["s"]][()]
    if "a" in spec:
        return arrays[spec["a"]]
    if "os" in spec:
        out = np.empty(tuple(spec["shape"]), object)
        out[...] = arrays[spec["os"]].astype(object)
        return out
    if "df" in spec:
        import pyarrow as pa

        with pa.ipc.open_stream(pa.py_buffer(arrays[spec["df"]].tobytes())) as r:
            return r.read_all().to_pandas()
    if "dc" in spec:
        mod, _, name = spec["dc"].partition(":")
        if not mod.startswith("fishtrack."):
            raise ValueError(f"step cache: unexpected class {spec['dc']}")
        cls = importlib.import_module(mod)
        for part in name.split("."):
            cls = getattr(cls, part)
        if not dataclasses.is_dataclass(cls):
            raise ValueError(f"step cache: {spec['dc']} is not a dataclass")
        return cls(**{k: decode(v, arrays) for k, v in spec["f"].items()})
    if "d" in spec:
        return {k: decode(v, arrays) for k, v in spec["d"]}
    if "t" in spec:
        return tuple(decode(v, arrays) for v in spec["t"])
    if "l" in spec:
        return [decode(v, arrays) for v in spec["l"]]
    raise ValueError(f"step cache: unknown entry {sorted(spec)}")
