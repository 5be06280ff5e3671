"""write_table_parts with Arrow blocks (the streamed tracks, straight from the spill file):
the table and its CSV equal the pandas path's, also when a text column starts empty."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from fishtrack.io.tables import SpillFile, write_table, write_table_parts


def _blocks() -> list[pd.DataFrame]:
    rng = np.random.default_rng(0)
    out = []
    for k in range(3):
        n = 5000 + 7 * k
        df = pd.DataFrame({
            "frame": np.arange(n, dtype=np.int64) + 10_000 * k,
            "x": rng.normal(size=n),
            "detected": rng.random(n) > 0.3,
            "arena": np.where(rng.random(n) > 0.5, "A1", "B2").astype(object),
            # text that is missing in the whole first block (and in the first rows after)
            "state": [None] * n if k == 0 else ["active" if i % 3 else None for i in range(n)],
        })
        df.loc[df.index[::11], "x"] = np.nan
        out.append(df)
    return out


def test_arrow_blocks_write_the_same_table_and_csv(tmp_path):
    blocks = _blocks()
    whole = pd.concat(blocks, ignore_index=True)
    write_table(whole, tmp_path / "a" / "t.parquet", csv=True)
    with SpillFile(tmp_path / "spill") as spill:  # Arrow blocks as the streamed path reads them
        for b in blocks:
            spill.write(b)
        arrow = list(spill.arrow_blocks())
        assert all(isinstance(t, pa.Table) for t in arrow) and len(arrow) == 3
        write_table_parts(iter(arrow), tmp_path / "b" / "t.parquet", csv=True)
    a = pd.read_parquet(tmp_path / "a" / "t.parquet")
    b = pd.read_parquet(tmp_path / "b" / "t.parquet")
    assert a.equals(b) and a.equals(whole)
    assert (tmp_path / "a" / "t.csv").read_bytes() == (tmp_path / "b" / "t.csv").read_bytes()
