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

Each result is one file (temp file then rename): a JSON description of the value, then the
raw bytes of its NumPy arrays (read back with ``np.frombuffer``; nothing is unpickled). Kept:
arrays (object arrays of strings only), scalars, strings, tuples, lists, dicts with string
keys, dataclasses of :mod:`fishtrack`, pandas tables (column by column, or as Arrow IPC
bytes). A result of any other kind is not kept (the step is computed again in the next
pass: slower, same values).
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

MAGIC = b"FTSTEP1\n"
ALIGN = 64  # each array starts on a multiple of this many bytes
MISSING = object()
"""What :meth:`StepStore.load` returns for a step not kept."""


class Unstorable(TypeError):
    """A value this module does not write (the step is recomputed instead)."""


class StepStore:
    """The kept step results of one part of a recording: one ``.step`` file per step."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.hits = 0  # steps read back (for tests and benchmarks)
        self.misses = 0  # steps computed

    def _path(self, key: str) -> Path:
        return self.folder / f"{key}.step"

    def load(self, key: str):
        path = self._path(key)
        try:
            with open(path, "rb") as f:
                data = bytearray(os.fstat(f.fileno()).st_size)
                f.readinto(data)
        except FileNotFoundError:
            self.misses += 1
            return MISSING
        if data[: len(MAGIC)] != MAGIC:
            raise ValueError(f"step cache: {path} is not a step file")
        n = int.from_bytes(data[len(MAGIC) : len(MAGIC) + 8], "little")
        start = len(MAGIC) + 8 + n
        head = json.loads(data[len(MAGIC) + 8 : start].decode("utf-8"))
        arrays = {}
        for name, (dtype, shape, order, offset) in head["arrays"].items():
            dt = np.dtype(dtype)
            count = int(np.prod(shape, dtype=np.int64))
            a = (np.frombuffer(data, dt, count, start + offset) if count else np.empty(0, dt))
            arrays[name] = a.reshape(shape, order=order)
        self.hits += 1
        return decode(head["spec"], arrays)

    def save(self, key: str, value) -> bool:
        """Write ``value`` (temp file then rename); False when it cannot be kept."""
        arrays: dict[str, np.ndarray] = {}
        try:
            spec = encode(value, arrays)
        except Unstorable:
            return False
        table, offset = {}, 0
        for name, a in arrays.items():
            order = "F" if a.flags.f_contiguous and not a.flags.c_contiguous else "C"
            table[name] = [a.dtype.str, list(a.shape), order, offset]
            offset += a.nbytes + (-a.nbytes) % ALIGN
        head = json.dumps({"spec": spec, "arrays": table}).encode("utf-8")
        head += b" " * ((-(len(MAGIC) + 8 + len(head))) % ALIGN)  # the arrays start aligned
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".step.", suffix=".tmp", dir=self.folder)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(MAGIC + len(head).to_bytes(8, "little") + head)
                for name, a in arrays.items():  # one array's bytes at a time
                    f.write(a.tobytes(order=table[name][2]))
                    f.write(b"\0" * ((-a.nbytes) % ALIGN))
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
        idx = value.index
        plain = (isinstance(idx, pd.RangeIndex) and idx.start == 0 and idx.step == 1
                 and idx.name is None and value.columns.is_unique
                 and all(isinstance(c, str) for c in value.columns)
                 and all(isinstance(t, np.dtype) for t in value.dtypes))
        if plain:  # columns of NumPy dtypes (object: strings), index 0..n-1
            try:
                return {"cols": [[c, encode(value[c].to_numpy(), arrays)] for c in value.columns],
                        "n": len(value)}
            except Unstorable:
                pass
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
    if "cols" in spec:
        return pd.DataFrame({c: decode(v, arrays) for c, v in spec["cols"]},
                            index=pd.RangeIndex(spec["n"]))
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
