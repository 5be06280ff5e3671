"""Property-based tests (hypothesis) of config and manifest parsing.

Whatever bytes a user hands in, parsing either succeeds with a well-formed result or raises the
documented error class with one short line naming the file; valid inputs are read exactly (and
configs survive a dump / load round trip with the same hash); manifest paths never leave the
manifest's folder.
"""

from __future__ import annotations

import csv
import io
import math
import posixpath
import tempfile
import warnings
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from fishtrack.config import Config, config_hash, dump_config, load_config, parse_config
from fishtrack.errors import ConfigError, ManifestError
from fishtrack.experiment import read_manifest

pytestmark = pytest.mark.timeout(120)

SETTINGS = settings(max_examples=120, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])
MAX_LINE = 2000
"""A one-line error never gets longer than this, whatever the input."""


_BASE: list[Path] = []


@pytest.fixture(autouse=True, scope="module")
def _scratch_base(tmp_path_factory):
    """Every example's scratch folder lives under pytest's own temporary folder (which pytest
    prunes), not loose in the system's temporary folder: hundreds of examples per run."""
    _BASE.append(tmp_path_factory.mktemp("prop"))
    yield
    _BASE.pop()


def _scratch() -> Path:
    return Path(tempfile.mkdtemp(prefix="ex-", dir=_BASE[-1]))


def _check_one_line(err: Exception, path: Path) -> None:
    text = str(err)
    assert text.startswith(str(path)), text[:200]
    assert "\n" not in text and "\r" not in text, text[:200]
    assert len(text) < MAX_LINE, len(text)


# ============================================================================================
# configs

SECTIONS = {name: list(getattr(Config.model_fields[name].annotation, "model_fields", {}))
            for name in ("video", "arenas", "tracking", "behaviour", "stats")}
KEYS = sorted({k for v in SECTIONS.values() for k in v}) + ["protocol", "px_per_mm", "bogus"]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-10**30, max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["wells", "chamber", "embedded", "auto", "dark", "bright", "circle",
                     "square", "hmm", "threshold", "open_loop", "closed_loop", "1e3", "0x10"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=6)), inner, max_size=4),
    ),
    max_leaves=12,
)
config_like = st.dictionaries(
    st.sampled_from([*SECTIONS, "protocol", "px_per_mm", "bogus"]),
    st.one_of(values, st.dictionaries(st.sampled_from(KEYS), values, max_size=5)),
    max_size=5,
)


def _assert_sane(cfg: Config) -> None:
    """A config that validated holds only finite numbers and survives a round trip."""
    def walk(v):
        if isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list | tuple):
            for x in v:
                walk(x)
        elif isinstance(v, float):
            assert math.isfinite(v)
    walk(cfg.model_dump(mode="python"))
    again = parse_config(yaml.safe_load(dump_config(cfg)))
    assert again == cfg and config_hash(again) == config_hash(cfg)


@SETTINGS
@given(data=config_like)
def test_any_yaml_structure_gives_a_valid_config_or_one_clear_line(data):
    p = _scratch() / "c.yaml"
    p.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    try:
        cfg = load_config(p)
    except ConfigError as err:
        _check_one_line(err, p)
        return
    _assert_sane(cfg)


@SETTINGS
@given(text=st.one_of(
    st.text(max_size=300),
    st.lists(st.sampled_from(["video:", "  fps: 30", "arenas:", "  rows: 2", "- x", ": :", "{",
                              "}", "[", "]", "&a", "*a", "!!python/object:os.system", "!!binary",
                              "\t", "---", "...", "%YAML 1.1", "'", '"', "#", "<<: *a",
                              "behaviour: {min_passive_s: 2, min_passive_s: 3}", "\x00",
                              "\ufeff"]), max_size=20).map("\n".join),
))
def test_any_text_gives_a_valid_config_or_one_clear_line(text):
    p = _scratch() / "c.yaml"
    p.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        cfg = load_config(p)
    except ConfigError as err:
        _check_one_line(err, p)
        return
    _assert_sane(cfg)


@SETTINGS
@given(raw=st.binary(max_size=400))
def test_any_bytes_give_a_valid_config_or_one_clear_line(raw):
    p = _scratch() / "c.yaml"
    p.write_bytes(raw)
    try:
        cfg = load_config(p)
    except ConfigError as err:
        _check_one_line(err, p)
        return
    _assert_sane(cfg)


positive = st.floats(min_value=1e-3, max_value=1e3, allow_nan=False, allow_infinity=False)
valid_config = st.fixed_dictionaries({}, optional={
    "video": st.fixed_dictionaries({}, optional={
        "chunk_size": st.integers(1, 4096), "fps": st.one_of(st.none(), positive),
        "crop": st.one_of(st.none(), st.tuples(*[st.integers(0, 500)] * 4).map(list))}),
    "arenas": st.one_of(
        st.fixed_dictionaries({"layout": st.just("wells"), "rows": st.integers(1, 32),
                               "cols": st.integers(1, 48)},
                              optional={"shape": st.sampled_from(["auto", "circle", "square"]),
                                        "margin_px": st.integers(0, 100)}),
        st.fixed_dictionaries({"layout": st.just("chamber"),
                               "fish_per_arena": st.integers(1, 100)})),
    "tracking": st.fixed_dictionaries({}, optional={
        "polarity": st.sampled_from(["auto", "dark", "bright"]),
        "threshold": st.one_of(st.none(), st.floats(0.5, 255)),
        "min_area_px": st.integers(1, 10_000), "remove_still_fish": st.booleans()}),
    "behaviour": st.fixed_dictionaries({}, optional={
        "min_passive_s": st.floats(0.01, 600), "method": st.sampled_from(["threshold", "hmm"]),
        "merge_gap_s": st.floats(0, 5)}),
    "stats": st.fixed_dictionaries({}, optional={
        "reference_group": st.text(st.characters(exclude_categories=["Cc", "Cs", "Zl", "Zp"]),
                                   min_size=1, max_size=10),
        "seed": st.integers(0, 2**31),
        "confidence_level": st.floats(0.51, 0.99)}),
    "px_per_mm": st.one_of(st.none(), positive),
})


@SETTINGS
@given(data=valid_config)
def test_valid_configs_load_exactly_and_round_trip_with_the_same_hash(data):
    p = _scratch() / "c.yaml"
    p.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    cfg = load_config(p)
    for section, fields in data.items():
        got = getattr(cfg, section)
        if isinstance(fields, dict):
            for key, value in fields.items():
                have = getattr(got, key)
                assert (list(have) if isinstance(have, tuple) else have) == value, (section, key)
        else:
            assert got == fields
    _assert_sane(cfg)
    assert config_hash(load_config(p)) == config_hash(cfg)  # stable across loads


# ============================================================================================
# manifests

cells = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
hostile_cells = st.one_of(
    cells,
    st.sampled_from(["", " ", '"', '""', "a,b", "a;b", "a\tb", "line\nbreak", "\x00", "\r",
                     "../x.mp4", "/etc/passwd", "C:\\v.mp4", "\\\\srv\\v.mp4", "http://x/v.mp4",
                     "A1", "a01", "H12", "Z99", "A0", "well 3", "control", "kétamine", "é" * 300]),
)


@SETTINGS
@given(rows=st.lists(st.lists(hostile_cells, max_size=6), max_size=8),
       sep=st.sampled_from([",", ";", "\t"]),
       encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "cp1252", "latin-1"]),
       header=st.booleans())
def test_any_csv_gives_a_manifest_or_one_clear_line(rows, sep, encoding, header):
    if header:
        rows = [["video", "arena", "group"], *rows]
    buf = io.StringIO()
    csv.writer(buf, delimiter=sep).writerows(rows)
    p = _scratch() / "m.csv"
    try:
        p.write_bytes(buf.getvalue().encode(encoding))
    except UnicodeEncodeError:
        assume(False)
    _read_or_clear_error(p)


@SETTINGS
@given(raw=st.binary(max_size=600))
def test_any_bytes_give_a_manifest_or_one_clear_line(raw):
    p = _scratch() / "m.csv"
    p.write_bytes(raw)
    _read_or_clear_error(p)


def _read_or_clear_error(p: Path) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a Windows-1252 read warns
            man = read_manifest(p)
    except ManifestError as err:
        _check_one_line(err, p)
        for prob in getattr(err, "problems", []):
            assert "\n" not in prob and len(prob) < 500, prob
        return
    t = man.table
    assert len(t) and {"video", "arena", "group", "fish_id", "row"} <= set(t.columns)
    for v in t["video"]:
        _assert_normalised(p.parent, v)
    assert t["arena"].str.fullmatch(r"[A-Z]{1,2}[1-9]\d{0,2}").all()
    assert not t.duplicated(["video", "arena"]).any() and not t["fish_id"].duplicated().any()


def _assert_normalised(root: Path, path: str) -> None:
    """A stored manifest path: normalised, '/'-separated, relative exactly when it lies in the
    manifest's folder (paths are the user's own: absolute and '..' paths are kept, issue 17)."""
    assert "\\" not in path and posixpath.normpath(path) == path and path != "", path
    inside = (root / path).resolve().is_relative_to(root.resolve())
    assert path.startswith("/") or not inside or ".." not in path.split("/"), path
    if path.startswith("/"):  # absolute only when outside the folder
        assert not path.startswith(posixpath.normpath(root.as_posix()) + "/"), path


wells = st.tuples(st.sampled_from("ABCDEFGH"), st.integers(1, 12))
segment = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-éü ", min_size=1, max_size=8) \
    .filter(lambda s: s.strip() == s and s not in (".", ".."))


@SETTINGS
@given(
    plates=st.lists(st.lists(segment, min_size=1, max_size=3), min_size=1, max_size=3,
                    unique_by=lambda s: "/".join(s)),
    spec=st.lists(st.tuples(st.integers(0, 2), wells, st.sampled_from(["control", "kétamine", "MK-801"]),
                            st.sampled_from(["lower", "upper"]), st.integers(0, 2)),
                  min_size=1, max_size=10),
    sep=st.sampled_from([",", ";", "\t"]),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "cp1252"]),
    header=st.sampled_from([("video", "arena", "group"), ("Video", "ARENA", " Group "),
                            ("VIDEO", "Arena", "group")]),
    windows=st.booleans(),
)
def test_valid_manifests_are_read_exactly(plates, spec, sep, encoding, header, windows):
    """Well names in any case with leading zeros, Windows separators, any delimiter and
    encoding: the table holds exactly the normalised rows."""
    seen, rows, want = set(), [], []
    for plate_i, (letter, col), group, case, zeros in spec:
        video = "/".join(plates[plate_i % len(plates)]) + ".mp4"
        if (video, letter, col) in seen:
            continue
        seen.add((video, letter, col))
        arena = f"{letter}{'0' * zeros}{col}"
        arena = arena.lower() if case == "lower" else arena
        rows.append([video.replace("/", "\\") if windows else video, arena, group])
        want.append((posixpath.normpath(video), f"{letter}{col}", group))
    buf = io.StringIO()
    csv.writer(buf, delimiter=sep, lineterminator="\r\n").writerows([list(header), *rows])
    p = _scratch() / "m.csv"
    p.write_bytes(buf.getvalue().encode(encoding))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        man = read_manifest(p)
    got = list(zip(man.table["video"], man.table["arena"], man.table["group"], strict=True))
    assert got == want
    assert man.table["row"].tolist() == list(range(2, 2 + len(want)))
    # the same rows twice: every duplicate is reported with both row numbers
    dup = _scratch() / "m.csv"
    csv.writer(buf2 := io.StringIO(), delimiter=sep).writerows([list(header), *rows, rows[0]])
    dup.write_bytes(buf2.getvalue().encode(encoding))
    with pytest.raises(ManifestError) as ei, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        read_manifest(dup)
    assert any(s.startswith(f"rows 2, {len(rows) + 2} name the same well")
               for s in ei.value.problems)


path_parts = st.sampled_from(["..", ".", "", "a", "b c", "~", "C:", "c:", "\\", "/", "//",
                              "http:", "file:", "x.mp4", "é", "%2e%2e", "...", " .. "])


@SETTINGS
@given(parts=st.lists(path_parts, min_size=1, max_size=6),
       sep=st.sampled_from(["/", "\\"]), lead=st.sampled_from(["", "/", "\\", "./", "C:\\"]))
def test_manifest_paths_resolve_as_written(parts, sep, lead):
    """Any path cell is either refused in one line naming row 2 (only URLs and other
    computers' drive / network paths) or names exactly the file the user wrote: relative to
    the manifest's folder, absolute as given, '~' the home folder, '\\' a separator."""
    import os
    import re

    value = lead + sep.join(parts)
    assume(value.strip() and "," not in value and '"' not in value)
    root = _scratch()
    p = root / "m.csv"
    with open(p, "w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows([["video", "arena", "group"], [value, "A1", "control"]])
    written = value.strip().replace("\\", "/")
    try:
        man = read_manifest(p)
    except ManifestError as err:
        _check_one_line(err, p)
        assert any(s.startswith("row 2:") for s in err.problems), err.problems
        assert re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*://|[a-zA-Z]:(/|$)|//)", written), value
        return
    stored = man.table["video"].iloc[0]
    _assert_normalised(root, stored)
    if written.startswith("~"):
        written = os.path.expanduser(written)
    want = os.path.normpath(os.path.join(root, written))
    want = "/" + want.lstrip("/") if want.startswith("//") else want  # POSIX: '//x' is '/x'
    assert os.path.normpath(root / stored) == want, (value, stored)
