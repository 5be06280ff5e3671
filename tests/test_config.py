"""Config loading, validation errors and explanations."""

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from fishtrack.cli import app
from fishtrack.config import (
    Config,
    config_hash,
    dump_config,
    explain_markdown,
    explain_rows,
    load_config,
    parse_config,
)
from fishtrack.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
PRESETS = sorted((ROOT / "configs").glob("*.yaml"))
runner = CliRunner()


def test_presets_exist():
    names = {p.stem for p in PRESETS}
    assert {"plate24", "plate96", "chamber", "embedded"} <= names


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.name)
def test_every_preset_is_valid(path):
    cfg = load_config(path)
    assert cfg.arenas.layout in ("wells", "chamber", "embedded")
    # round trip: the dumped effective config validates to the same config
    assert parse_config(yaml.safe_load(dump_config(cfg))) == cfg


def test_defaults_and_public_keys():
    cfg = Config()
    assert cfg.arenas.fish_per_arena == 1
    assert cfg.behaviour.min_passive_s > 0
    assert cfg.protocol == []
    assert cfg.stats.reference_group == "control"


def _write(tmp_path, text, name="c.yaml"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_unknown_key_names_path_and_allowed(tmp_path):
    p = _write(tmp_path, "arenas:\n  layot: wells\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert str(p) in msg and "arenas.layot" in msg and "layout" in msg and "\n" not in msg


def test_allowed_keys_listed_once_per_section(tmp_path):
    # several typos in one section: its allowed keys once, the message stays one short line
    p = _write(tmp_path, "stats:\n  blokcs: []\n  bin: 5\n  seeed: 1\narenas:\n  layot: wells\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert msg.count("struggle_window_s") == 1 and msg.count("layout") == 1
    assert "stats.bin: unknown key (allowed here: see above)" in msg
    assert "stats.seeed: unknown key (allowed here: see above)" in msg


def test_bad_literal_lists_allowed_values(tmp_path):
    p = _write(tmp_path, "arenas:\n  layout: plate\n")
    with pytest.raises(ConfigError, match=r"arenas\.layout.*'wells', 'chamber' or 'embedded'"):
        load_config(p)


def test_out_of_range_and_wrong_type(tmp_path):
    with pytest.raises(ConfigError, match=r"behaviour\.min_passive_s.*greater than 0"):
        load_config(_write(tmp_path, "behaviour:\n  min_passive_s: -1\n"))
    with pytest.raises(ConfigError, match=r"arenas\.rows"):
        load_config(_write(tmp_path, "arenas:\n  rows: four\n"))


def test_protocol_validation(tmp_path):
    bad_kind = "protocol:\n  - {name: a, kind: openloop, start_s: 0, end_s: 5}\n"
    with pytest.raises(ConfigError, match=r"protocol\.0\.kind.*closed_loop"):
        load_config(_write(tmp_path, bad_kind))
    reversed_ = "protocol:\n  - {name: a, kind: open_loop, start_s: 9, end_s: 5}\n"
    with pytest.raises(ConfigError, match="end_s must be greater"):
        load_config(_write(tmp_path, reversed_))
    dup = (
        "protocol:\n  - {name: a, kind: open_loop, start_s: 0, end_s: 5}\n"
        "  - {name: a, kind: closed_loop, start_s: 5, end_s: 9}\n"
    )
    with pytest.raises(ConfigError, match="repeated: a"):
        load_config(_write(tmp_path, dup))


def test_chamber_must_be_one_arena(tmp_path):
    with pytest.raises(ConfigError, match="chamber"):
        load_config(_write(tmp_path, "arenas:\n  layout: chamber\n  rows: 2\n"))


def test_yaml_object_tags_are_refused(tmp_path):
    p = _write(tmp_path, "arenas: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)


def test_missing_folder_binary_and_non_mapping(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="is a folder"):
        load_config(tmp_path)
    binp = tmp_path / "b.yaml"
    binp.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ConfigError, match="UTF-8"):
        load_config(binp)
    with pytest.raises(ConfigError, match="mapping"):
        load_config(_write(tmp_path, "- 1\n- 2\n"))


def test_empty_file_gives_defaults(tmp_path):
    assert load_config(_write(tmp_path, "")) == Config()


def test_hash_changes_with_content():
    a, b = Config(), parse_config({"behaviour": {"min_passive_s": 3.0}})
    assert config_hash(a) == config_hash(Config())
    assert config_hash(a) != config_hash(b)


def test_every_leaf_field_is_explained():
    rows = explain_rows()
    keys = {r["key"] for r in rows}
    for must in ("arenas.layout", "arenas.rows", "arenas.cols", "arenas.fish_per_arena",
                 "behaviour.min_passive_s", "protocol", "protocol[].kind"):
        assert must in keys
    for r in rows:
        assert len(r["meaning"]) > 10, r
    md = explain_markdown()
    assert md.count("\n") == len(rows) + 2


def test_docs_configuration_is_current():
    """docs/configuration.md embeds the generated table; regenerate with `python docs/gen_config_docs.py`."""
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert explain_markdown() in text


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["video", "arenas", "tracking", "behaviour", "stats", "protocol", "bogus"]),
        st.one_of(st.none(), st.integers(), st.text(max_size=5), st.dictionaries(st.text(max_size=8), st.integers(), max_size=3)),
        max_size=4,
    )
)
def test_parse_never_leaks_library_errors(data):
    try:
        parse_config(data, "prop.yaml")
    except ConfigError as err:
        assert str(err).startswith("prop.yaml: invalid config")


def test_cli_validate_and_show(tmp_path):
    good = ROOT / "configs" / "plate24.yaml"
    r = runner.invoke(app, ["config", "validate", str(good)])
    assert r.exit_code == 0 and "valid" in r.stdout
    bad = _write(tmp_path, "arenas:\n  layout: plate\n")
    r = runner.invoke(app, ["config", "validate", str(bad)])
    assert r.exit_code == 2
    assert "arenas.layout" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["config", "show", str(good)])
    assert r.exit_code == 0 and yaml.safe_load(r.stdout)["arenas"]["rows"] == 4
    r = runner.invoke(app, ["config", "show", str(good), "--explain"])
    assert r.exit_code == 0 and "behaviour.min_passive_s" in r.stdout and "[s]" in r.stdout
