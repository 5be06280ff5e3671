"""Regenerate docs/configuration.md from the config models: python docs/gen_config_docs.py"""

from pathlib import Path

from fishtrack.config import explain_markdown

HEAD = """# Configuration

A fishtrack config is a YAML file with the sections below; every key is optional and has a
default. Presets for common rigs live in `configs/`. Validate a file with
`fishtrack config validate FILE`; print the effective config (defaults filled in) with
`fishtrack config show FILE`, and this explanation with `fishtrack config show FILE --explain`.

Unknown keys and bad values are rejected with the key path and the allowed values, e.g.
`c.yaml: invalid config: arenas.layout: must be one of 'wells', 'chamber' or 'embedded'; got 'plate'`.
YAML is read with a safe loader: tags that would construct Python objects are refused.

Public contract (names that users' scripts rely on and that will not be renamed):
`arenas.layout`, `arenas.rows`, `arenas.cols`, `arenas.fish_per_arena`, `protocol`
(list of `{name, kind, start_s, end_s}`, `kind` in `closed_loop | open_loop | other`),
`behaviour.min_passive_s`, `stats.reference_group`, `px_per_mm`.

Example (`configs/plate24.yaml`):

```yaml
arenas: {layout: wells, rows: 4, cols: 6, fish_per_arena: 1}
behaviour: {min_passive_s: 2.0}
protocol:
  - {name: closed_loop_1, kind: closed_loop, start_s: 0, end_s: 120}
  - {name: open_loop_1, kind: open_loop, start_s: 120, end_s: 420}
```

## Every key

(Generated from `fishtrack/config.py` by `python docs/gen_config_docs.py`; a test checks it is current.)

"""

if __name__ == "__main__":
    out = Path(__file__).with_name("configuration.md")
    out.write_text(HEAD + explain_markdown(), encoding="utf-8")
    print(f"wrote {out}")
