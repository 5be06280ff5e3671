"""Command-line interface (typer). Thin: parse, call the library, show progress and errors.

Exit codes: 0 success; 1 generic error; 2 invalid config or usage; 3 unreadable video;
4 arenas not found; 5 tracking failed; 6 invalid manifest; 7 output not writable;
8 verify found mismatches; 130 interrupted. Every error is one line naming the file and the
problem (docs/troubleshooting.md lists every message, its cause and fix).
"""

from __future__ import annotations

import functools
import sys
import time
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from fishtrack.errors import FishtrackError

app = typer.Typer(
    name="fishtrack",
    help="Track larval zebrafish in behaviour videos and score futility-induced passivity.",
    rich_markup_mode="rich",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
config_app = typer.Typer(help="Validate and show configuration files.", no_args_is_help=True)
app.add_typer(config_app, name="config")

console = Console()
err_console = Console(stderr=True)

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML config (see configs/ and `fishtrack config show --explain`)."),
]

ProtocolOpt = Annotated[
    Path | None,
    typer.Option("--protocol", help="Stimulus-log CSV giving the protocol phases (replaces the config's protocol)."),
]


def _cli_errors(fn):
    """Turn user errors into one red line and the documented exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            with warnings.catch_warnings():
                warnings.showwarning = _print_warning  # one line each, no source line
                return fn(*args, **kwargs)
        except FishtrackError as err:
            problems = getattr(err, "problems", None)
            if problems and len(problems) > 1:
                where = f"{escape(err.path)}: " if err.path else ""
                err_console.print(f"[bold red]error:[/] {where}{len(problems)} problems:", highlight=False,
                                  soft_wrap=True)
                for p in problems:
                    err_console.print(f"  - {p}", highlight=False, markup=False, soft_wrap=True)
            else:
                err_console.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False, soft_wrap=True)
            raise typer.Exit(err.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("[bold red]interrupted[/]")
            raise typer.Exit(130) from None

    return wrapper


def _print_warning(message, category, filename, lineno, file=None, line=None) -> None:
    err_console.print(f"[yellow]warning:[/] {escape(str(message))}", highlight=False, soft_wrap=True)


def _progress_bar(description: str):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class FpsColumn(ProgressColumn):
        def render(self, task):  # frames per second since start
            fps = task.completed / task.elapsed if task.elapsed else 0.0
            return Text(f"{fps:7.1f} fps")

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        FpsColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
        disable=not err_console.is_terminal and not _force_progress(),
    )


def _force_progress() -> bool:
    import os

    return os.environ.get("FISHTRACK_PROGRESS") == "1"


# ------------------------------------------------------------------------------------------
# config


@config_app.command("validate")
@_cli_errors
def config_validate(file: Annotated[Path, typer.Argument(help="YAML config file.")]) -> None:
    """Check a config file; print the first problems with their key paths."""
    from fishtrack.config import load_config

    load_config(file)
    console.print(f"[green]ok[/] {file} is a valid fishtrack config")


@config_app.command("show")
@_cli_errors
def config_show(
    file: Annotated[Path | None, typer.Argument(help="YAML config (omit for the defaults).")] = None,
    explain: Annotated[bool, typer.Option("--explain", help="Explain every key: meaning, unit, default, range.")] = False,
) -> None:
    """Print the effective config (defaults filled in)."""
    from fishtrack.config import dump_config, explain_rows, load_config

    cfg = load_config(file)
    if not explain:
        console.print(dump_config(cfg), highlight=False, markup=False)
        return
    values = _flatten(cfg.model_dump(mode="json"))
    for row in explain_rows():
        unit = escape(f" [{row['unit']}]") if row["unit"] else ""
        rng = f"  (sensible: {row['range']})" if row["range"] else ""
        value = values.get(row["key"], row["default"])
        console.print(f"[bold]{row['key']}[/] = {value}{unit}{rng}", highlight=False)
        console.print(f"    {row['meaning']}  default: {row['default']}", highlight=False, markup=False)


def _flatten(d: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


# ------------------------------------------------------------------------------------------
# simulate


@app.command()
@_cli_errors
def simulate(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (video, truth.parquet, config.yaml).")],
    spec: Annotated[Path | None, typer.Option("--spec", help="YAML file with simulator settings (SimSpec fields).")] = None,
    layout: Annotated[str | None, typer.Option(help="wells | chamber | embedded")] = None,
    rows: Annotated[int | None, typer.Option(help="Rows of wells / larvae.")] = None,
    cols: Annotated[int | None, typer.Option(help="Columns of wells / larvae.")] = None,
    fish_per_arena: Annotated[int | None, typer.Option(help="Fish per arena (chamber: several).")] = None,
    fps: Annotated[float | None, typer.Option(help="Frame rate (Hz).")] = None,
    duration: Annotated[float | None, typer.Option("--duration", help="Duration (s).")] = None,
    polarity: Annotated[str | None, typer.Option(help="dark | bright")] = None,
    codec: Annotated[str | None, typer.Option(help="h264 | hevc | mjpg | ffv1 | raw | tiff | png")] = None,
    effect: Annotated[float | None, typer.Option(help="Ketamine effect strength 0..1 (0: none).")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (same seed, same video).")] = None,
) -> None:
    """Render a futility-assay video with ground truth (positions, tail angles, states)."""
    from fishtrack.synth import SimSpec
    from fishtrack.synth import simulate as run_sim

    data: dict = {}
    if spec is not None:
        if not spec.exists():
            raise FishtrackError(f"{spec}: simulator spec not found")
        from fishtrack.config import safe_load_yaml

        data = safe_load_yaml(spec.read_text(encoding="utf-8", errors="replace"), spec) or {}
        if not isinstance(data, dict):
            raise FishtrackError(f"{spec}: a simulator spec must be a mapping of SimSpec fields")
    given = {
        "layout": layout, "rows": rows, "cols": cols, "fish_per_arena": fish_per_arena, "fps": fps,
        "duration_s": duration, "polarity": polarity, "codec": codec, "effect": effect, "seed": seed,
    }
    data.update({k: v for k, v in given.items() if v is not None})
    from pydantic import ValidationError

    try:
        sim_spec = SimSpec.model_validate(data)
    except ValidationError as err:
        from fishtrack.config import format_validation_error

        raise FishtrackError(format_validation_error(err, str(spec or "simulate options"))) from None
    t0 = time.perf_counter()
    res = run_sim(sim_spec, out)
    console.print(f"[green]simulated[/] {res.video_path} in {time.perf_counter() - t0:.1f} s; truth in {out}")


# ------------------------------------------------------------------------------------------
# init


@app.command()
@_cli_errors
def init(
    video_dir: Annotated[Path, typer.Argument(help="Folder holding the videos (sub-folders too): video files, TIFF stacks, image folders.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write config.yaml, manifest.csv and the arenas previews into.")] = Path("."),
    phases: Annotated[str | None, typer.Option("--phases", help="Protocol: phase kinds and durations in seconds, in order, e.g. closed_loop=120,open_loop=300 (default: a stimulus log next to each video, else the preset's).")] = None,
    fps: Annotated[float | None, typer.Option("--fps", help="Frame rate (Hz) of recordings that store none (image folders, TIFF stacks).")] = None,
    reference_group: Annotated[str | None, typer.Option("--reference-group", help="Group the others are compared with (default: control).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing config.yaml / manifest.csv.")] = False,
) -> None:
    """Set up an experiment from a folder of videos: layout, config.yaml, manifest.csv, previews."""
    from fishtrack.wizard import init_experiment

    shown: list = []

    def show(rec) -> None:
        if not shown:  # after the checks of the arguments and outputs
            console.print(f"scanning {escape(str(video_dir))}:", highlight=False, soft_wrap=True)
        shown.append(rec)
        name = escape(_shown(rec.path, video_dir))
        if rec.error:
            err_console.print(f"  [yellow]skipped[/] {name}: {escape(rec.error)}", highlight=False,
                              soft_wrap=True)
            return
        rate = f"{rec.fps:g} fps" if rec.fps else "no frame rate"
        console.print(f"  {name}: {rec.width} x {rec.height} px, {rate}, {rec.duration_s:.1f} s: "
                      f"{escape(rec.layout.describe())}", highlight=False, soft_wrap=True)

    res = init_experiment(video_dir, out, force=force, phases=phases, fps=fps,
                          reference_group=reference_group, progress=show)
    n_setups = len(res.setups)
    console.print(f"[bold]{n_setups} set-up{'s' if n_setups > 1 else ''}[/]:")
    for st in res.setups:
        n = len(st.recordings)
        console.print(
            f"  [bold]{escape(st.name)}[/]: {n} recording{'s' if n > 1 else ''}, "
            f"{escape(st.layout.describe())}; config {escape(st.config_path.name)} (preset "
            f"{escape(st.preset)}); check {escape(st.preview_path.name)}",
            highlight=False, soft_wrap=True)
    for w in res.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(w)}", highlight=False, soft_wrap=True)
    console.print(f"[green]wrote[/] {escape(str(res.config_path))} and {escape(str(res.manifest_path))} "
                  f"({res.n_rows} rows: one per video and arena)", highlight=False, soft_wrap=True)
    console.print("next: fill in the [bold]group[/] column of the manifest (e.g. control, ketamine; "
                  "'exclude' to leave a fish out), then", highlight=False, soft_wrap=True)
    for c in res.commands:
        console.print(f"  {escape(c)}", highlight=False, markup=True, soft_wrap=True)


def _shown(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix() or path.name
    except ValueError:
        return str(path)


# ------------------------------------------------------------------------------------------
# arenas


@app.command()
@_cli_errors
def arenas(
    video: Annotated[Path, typer.Argument(help="Video file, TIFF stack or image folder.")],
    config: ConfigOpt = None,
    preview: Annotated[Path | None, typer.Option(help="Write the detected layout drawn on a frame to this PNG.")] = None,
) -> None:
    """Detect the arenas (wells, chamber or embedded ROIs) and optionally draw them."""
    from fishtrack.arenas import draw_arenas
    from fishtrack.config import load_config
    from fishtrack.pipeline import find_arenas, open_source

    cfg = load_config(config)
    with open_source(video, cfg) as src:
        found, _ = find_arenas(src, cfg)
        frame = src.read(0)
    from rich.table import Table

    table = Table(title=f"{len(found)} arenas in {video.name}")
    for col in ("name", "shape", "centre x", "centre y", "radius"):
        table.add_column(col)
    for a in found:
        table.add_row(a.name, a.shape, f"{a.cx:.1f}", f"{a.cy:.1f}", f"{a.radius:.1f}")
    console.print(table)
    if preview is not None:
        import cv2

        from fishtrack.io.tables import atomic_path

        img = draw_arenas(frame, found)
        with atomic_path(preview) as tmp:
            ok, buf = cv2.imencode(".png", img)
            tmp.write_bytes(buf.tobytes())
        console.print(f"preview written to {preview}")


# ------------------------------------------------------------------------------------------
# track / classify


@app.command()
@_cli_errors
def track(
    video: Annotated[Path, typer.Argument(help="Video file, TIFF stack or image folder.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder for tracks.parquet, bouts.csv, epochs.csv, provenance.json.")],
    config: ConfigOpt = None,
    csv: Annotated[bool, typer.Option("--csv", help="Also write tracks.csv.")] = False,
    preview: Annotated[int, typer.Option("--preview", help="Write an annotated PNG strip of N frames (preview.png) for checking.")] = 0,
    protocol: ProtocolOpt = None,
) -> None:
    """Track every fish in a video and classify its behaviour."""
    from fishtrack._threads import import_beside

    # the video reader's libraries (NumPy, OpenCV, PyAV) load beside the config's (pydantic):
    # the background's sample, the longest step before the first frame, starts sooner
    import_beside("fishtrack.io.video")
    from fishtrack.config import resolve_config

    cfg = resolve_config(config)
    from fishtrack.background_sample import EarlySample

    # the background's frames are decoded in a thread while the pipeline imports (issue 15)
    with EarlySample(video, cfg) as early:
        from fishtrack.pipeline import track_to_folder

        with _progress_bar(f"tracking {video.name}") as bar:
            task = bar.add_task(f"tracking {video.name}", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            res = track_to_folder(video, cfg, out, csv=csv, protocol_log=protocol,
                                  progress=progress, stream=True, early=early)
    _print_summary(res, out)
    if preview:
        from fishtrack.preview import write_preview
        from fishtrack.trial import TrialFolder

        path = write_preview(video, res, out / "preview.png", n_frames=preview,
                             tracks_file=TrialFolder(out).tracks_path)
        console.print(f"preview: {path}")


def _print_summary(res, out: Path) -> None:
    from rich.table import Table

    tracks = res.tracks
    table = Table(title="fish found")
    for col in ("fish", "arena", "detected frames", "detection rate"):
        table.add_column(col)
    if len(tracks):
        g = tracks.groupby("fish", sort=True)
        for fish, sub in g:
            n = len(sub)
            d = int(sub["detected"].sum())
            table.add_row(str(fish), str(sub["arena"].iloc[0]), f"{d}/{n}", f"{d / n:.1%}")
    else:  # streamed (the table is in the folder): the tracker's counts
        n = int(res.summary.get("n_frames") or 0)
        arenas = res.summary.get("fish_per_arena") or {}
        for fish, rate in sorted((res.summary.get("detection_rate") or {}).items()):
            d = int(round(rate * n))
            arena = fish if fish in arenas else str(fish).rsplit("-", 1)[0]
            table.add_row(str(fish), arena, f"{d}/{n}", f"{rate:.1%}")
    console.print(table)
    empty = res.summary.get("empty_arenas") or []
    if empty:
        console.print(f"empty arenas (no fish): {', '.join(map(str, empty))}")
    for w in res.summary.get("warnings", []):
        err_console.print(f"[yellow]warning:[/] {escape(str(w))}", highlight=False, soft_wrap=True)
    if res.bouts is not None:
        console.print(f"{len(res.bouts)} bouts, {0 if res.epochs is None else len(res.epochs)} epochs")
    console.print(f"[green]outputs in[/] {out}")


@app.command()
@_cli_errors
def classify(
    folder: Annotated[Path, typer.Argument(help="Trial folder written by `fishtrack track`.")],
    config: ConfigOpt = None,
    protocol: ProtocolOpt = None,
) -> None:
    """Re-score existing tracks with (new) behaviour parameters, without re-tracking."""
    from fishtrack.pipeline import classify_folder

    t0 = time.perf_counter()
    res = classify_folder(folder, config, protocol_log=protocol)
    console.print(
        f"{len(res.bouts)} bouts, {len(res.epochs)} epochs re-scored in {time.perf_counter() - t0:.2f} s; "
        f"written to {folder}"
    )
    noise = (res.provenance or {}).get("behaviour_noise") or {}
    if noise.get("bout_signal") == "speed":
        console.print(f"note: bouts found from the head's speed, not the tail: "
                      f"{escape(str(noise.get('bout_signal_reason')))}", highlight=False)


@app.command()
@_cli_errors
def export(
    folder: Annotated[Path, typer.Argument(help="Trial folder written by `fishtrack track`.")],
    to: Annotated[str, typer.Option("--to", help="movement (netCDF poses dataset) | nwb (NWB file with ndx-pose) | csv (folder of CSV tables).")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output file (movement, nwb) or folder (csv); default FOLDER/export/poses.nc, FOLDER/export/trial.nwb or FOLDER/export/csv/.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing output (otherwise it is an error).")] = False,
) -> None:
    """Export a trial's tracks, bouts and epochs to movement, NWB or CSV (see docs/export.md)."""
    from fishtrack.export import describe, export_trial

    t0 = time.perf_counter()
    path = export_trial(folder, to, out, force=force)
    console.print(f"[green]exported[/] {escape(str(folder))} to {escape(to)} in {time.perf_counter() - t0:.1f} s: {escape(describe(path))}",
                  highlight=False)


def _names(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


@app.command("import")
@_cli_errors
def import_(
    file: Annotated[Path, typer.Argument(help="Results of another tracker (file, or folder for idtracker.ai / TRex).")],
    source: Annotated[str, typer.Option("--from", help="dlc | sleap | zebrazoom | idtrackerai | trex | movement")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Trial folder to write (tracks.parquet, provenance.json).")],
    fps: Annotated[float | None, typer.Option("--fps", help="Frame rate (Hz); required for DeepLabCut and SLEAP, overrides the file's otherwise.")] = None,
    layout: Annotated[str | None, typer.Option("--layout", help="wells | chamber | embedded (default: the config's arenas.layout).")] = None,
    config: ConfigOpt = None,
    head: Annotated[str | None, typer.Option("--head", help="Head keypoint(s), comma-separated (several: their mean, e.g. left_eye,right_eye).")] = None,
    body: Annotated[str | None, typer.Option("--body", help="Body-axis keypoints behind the head, comma-separated (e.g. swim_bladder).")] = None,
    tail: Annotated[str | None, typer.Option("--tail", help="Tail keypoints from base to tip, comma-separated.")] = None,
    min_confidence: Annotated[float, typer.Option("--min-confidence", help="Keypoints with a lower likelihood/score are not trusted.")] = 0.6,
    n_points: Annotated[int | None, typer.Option("--n-points", help="Midline points to write (default: head + mapped keypoints; 10 for ZebraZoom/TRex).")] = None,
    resample: Annotated[bool, typer.Option("--resample/--no-resample", help="Space midline points equally along the body (as the tracker does).")] = True,
    cm_per_pixel: Annotated[float | None, typer.Option("--cm-per-pixel", help="TRex: its cm_per_pixel setting (TRex positions are in cm).")] = None,
    between_bouts: Annotated[str, typer.Option("--between-bouts", help="ZebraZoom JSON: frames between bouts are 'still' or 'unobserved'.")] = "still",
    force: Annotated[bool, typer.Option("--force", help="Replace an existing trial folder's outputs.")] = False,
) -> None:
    """Import tracks made by another tracker into a trial folder (see docs/import.md)."""
    from fishtrack.importers import ImportOptions, import_tracks
    from fishtrack.trial import Provenance

    opt = ImportOptions(
        fps=fps, layout=layout, head=_names(head), body=_names(body), tail=_names(tail),
        min_confidence=min_confidence, n_points=n_points, resample=resample,
        cm_per_pixel=cm_per_pixel, between_bouts=between_bouts,
    )
    t0 = time.perf_counter()
    res = import_tracks(file, source, out, config=config, options=opt, force=force)
    info = Provenance(res.provenance).import_info
    tr = res.tracks
    n_fish = tr["fish"].nunique() if len(tr) else 0
    n_frames = tr["frame"].nunique() if len(tr) else 0
    console.print(
        f"[green]imported[/] {escape(str(file))} ({escape(str(info.get('tool_name', source)))}): "
        f"{n_fish} fish x {n_frames} frames, detected {info.get('detection_rate', 0):.1%}, "
        f"tail known {info.get('tail_rate', 0):.1%} in {time.perf_counter() - t0:.1f} s",
        highlight=False,
    )
    mp = info.get("mapping") or {}
    if mp:
        console.print(
            f"keypoints: head = {escape(' + '.join(mp.get('head', [])))}; midline = "
            f"{escape(', '.join(mp.get('body', []) + mp.get('tail', [])) or 'none')}"
            f"{' (guessed from the names)' if info.get('mapping_guessed') else ''}",
            highlight=False,
        )
    for note in res.notes:
        err_console.print(f"[yellow]note:[/] {escape(str(note))}", highlight=False, soft_wrap=True)
    console.print(f"[green]trial folder[/] {escape(str(out))}; next: fishtrack classify {escape(str(out))}",
                  highlight=False)


@app.command()
@_cli_errors
def calibrate(
    folder: Annotated[Path, typer.Argument(help="Trial folder written by `fishtrack track`.")],
    labels: Annotated[Path, typer.Option("--labels", help="Hand-scored epochs CSV: fish, state, start_s, end_s.")],
    config: ConfigOpt = None,
) -> None:
    """Compare automatic states with a human's labels; suggest min_passive_s and the bout threshold."""
    from fishtrack.behaviour import calibrate as run_calibration
    from fishtrack.behaviour import load_labels
    from fishtrack.config import resolve_config
    from fishtrack.trial import TrialFolder

    cfg = resolve_config(config)
    tracks = TrialFolder(folder).tracks()
    res = run_calibration(tracks, load_labels(labels), cfg.behaviour, cfg.protocol)
    console.print(res.summary() if hasattr(res, "summary") else res)


@app.command()
@_cli_errors
def run(
    manifest: Annotated[Path, typer.Argument(help="Manifest CSV or Excel .xlsx: video, arena, group (+ fish_id, dose, sex, batch, trial, exclude, ...).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder for trials/, per_fish.csv, group_stats.csv, report.html.")],
    config: ConfigOpt = None,
    workers: Annotated[int, typer.Option("--workers", "-j", help="Trials tracked in parallel (local processes).")] = 1,
    scheduler: Annotated[str | None, typer.Option("--scheduler", help="dask.distributed scheduler address (tcp://host:8786): run trials on a cluster.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Redo trials whose outputs are already complete and current.")] = False,
    sheet: Annotated[str | None, typer.Option("--sheet", help="Excel manifests: the sheet to read (name or number; default the first).")] = None,
) -> None:
    """Track every trial of an experiment, compute per-fish metrics, statistics and the report."""
    from fishtrack.experiment.backends import early_workers
    from fishtrack.experiment.inputs import check_run_inputs

    # the manifest is read and checked first (a refused one starts no worker: h17j); then
    # the local workers, at most one per trial, start before this process imports the runner
    # (issue 15: their imports run beside its own); the run takes them
    man, cfg = check_run_inputs(manifest, config, out, sheet)
    with early_workers(workers if scheduler is None else 1, trials=len(man.videos)):
        _run(man, out, cfg, workers, scheduler, force, sheet)


def _run(manifest, out: Path, config, workers: int, scheduler: str | None, force: bool,
         sheet: str | None) -> None:
    from fishtrack.experiment import run_experiment

    with _progress_bar("trials") as bar:
        tasks: dict[str, int] = {}

        def progress(ev) -> None:
            if ev.kind not in ("trial", "overall"):
                return
            key = ev.trial or "all trials"
            if key not in tasks:
                tasks[key] = bar.add_task(key, total=ev.total or None)
            bar.update(tasks[key], completed=ev.done, total=ev.total or None)

        res = run_experiment(manifest, config, out, workers=workers, scheduler=scheduler, force=force,
                             progress=progress, sheet=sheet)
    _print_failures(res)
    console.print(f"[green]outputs in[/] {out} (report: {out / 'report.html'})")
    if res.failures:
        raise typer.Exit(1)


def _print_failures(res) -> None:
    if not getattr(res, "failures", None):
        return
    from rich.table import Table

    table = Table(title=f"{len(res.failures)} failed trial(s)", style="red")
    table.add_column("trial")
    table.add_column("error")
    for f in res.failures:
        log = f" (details: {f.log})" if getattr(f, "log", None) else ""
        table.add_row(str(f.trial), f"{f.error}{log}")
    err_console.print(table)


@app.command()
@_cli_errors
def stats(
    folder: Annotated[Path, typer.Argument(help="Output folder of `fishtrack run`.")],
    config: ConfigOpt = None,
) -> None:
    """Re-compute per-fish metrics, statistics and the report from existing trial outputs."""
    from fishtrack.experiment import compute_stats

    t0 = time.perf_counter()
    compute_stats(folder, config)
    console.print(f"statistics and report re-computed in {time.perf_counter() - t0:.1f} s: {folder / 'report.html'}")


@app.command()
@_cli_errors
def align(
    folder: Annotated[Path, typer.Argument(help="Trial folder (fishtrack track --out), or an experiment folder with --trial.")],
    signal: Annotated[Path, typer.Option("--signal", help="Co-recorded time series (CSV/TSV/Parquet) with its own time column: e.g. a calcium dF/F trace, a stimulus log, a nerve recording.")],
    offset: Annotated[float | None, typer.Option("--offset", help="Video time (s) of the signal's time 0 (video = signal + offset).")] = None,
    sync_column: Annotated[str | None, typer.Option("--sync-column", help="TTL column of the signal file: its pulses are matched to the video (one per frame, one at the first frame, or --video-sync).")] = None,
    video_sync: Annotated[Path | None, typer.Option("--video-sync", help="CSV with the video times (s) of the sync pulses (e.g. LED flashes), same count as the pulses.")] = None,
    time_column: Annotated[str | None, typer.Option("--time-column", help="Name of the signal's time column (default: time_s, time, t, timestamp, seconds or time_ms).")] = None,
    trial: Annotated[str | None, typer.Option("--trial", help="Experiment folders: the trial (folder name under trials/) the signal belongs to.")] = None,
    config: ConfigOpt = None,
) -> None:
    """Align a co-recorded signal to video time and average it around give-up and phase onsets."""
    from fishtrack.align import align_trial
    from fishtrack.pipeline import resolve_config

    stats_cfg = resolve_config(config).stats if config is not None else None
    res = align_trial(folder, signal, offset_s=offset, sync_column=sync_column,
                      video_sync=video_sync, time_column=time_column, trial=trial, stats=stats_cfg)
    al = res.alignment
    drift = f", clock scale {al.scale:.6f}" if al.scale != 1.0 else ""
    resid = f", largest pulse residual {al.max_residual_s * 1000:.2g} ms" if al.n_pulses > 1 else ""
    console.print(f"[green]aligned[/] {escape(str(signal))} ({escape(al.method)}): offset "
                  f"{al.offset_s:.4g} s{drift}{resid}; {res.n_events} events of {res.n_fish} fish",
                  highlight=False, soft_wrap=True)
    console.print(f"outputs in {escape(str(res.paths['aligned'].parent))}", highlight=False)


@app.command()
@_cli_errors
def power(
    effect: Annotated[float, typer.Option("--effect", help="Difference to detect on the primary endpoint (treated - control, in the metric's unit; with a time-to-event metric: the ratio of latencies, e.g. 1.5).")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Folder for power.csv and power.png/.svg.")] = None,
    pilot: Annotated[Path | None, typer.Option("--pilot", help="A pilot experiment's per_fish.csv: resample its reference-group fish instead of simulating.")] = None,
    n: Annotated[str, typer.Option("--n", help="Fish per group to evaluate, comma-separated.")] = "4,6,8,10,12,16,20,24",
    experiments: Annotated[int, typer.Option("--experiments", help="Simulated experiments per group size.")] = 500,
    control_mean: Annotated[float, typer.Option("--control-mean", help="Simulation: the control group's mean passive fraction.")] = 0.3,
    sd: Annotated[float, typer.Option("--sd", help="Simulation: SD of the passive fraction between fish.")] = 0.15,
    alpha: Annotated[float, typer.Option("--alpha", help="Two-sided significance level.")] = 0.05,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    config: ConfigOpt = None,
) -> None:
    """Power against fish per group for a stated effect on the primary endpoint."""
    from fishtrack.pipeline import resolve_config
    from fishtrack.stats.power import power_curve, write_power

    cfg = resolve_config(config)
    sizes = [int(v) for v in n.split(",") if v.strip()]
    if not sizes or min(sizes) < 2:
        raise FishtrackError(f"--n: give fish per group as numbers >= 2, comma-separated; got {n!r}")
    t0 = time.perf_counter()
    res = power_curve(effect=effect, sizes=sizes, n_experiments=experiments, stats=cfg.stats,
                      pilot=pilot, control_mean=control_mean, sd=sd, alpha=alpha, seed=seed,
                      min_passive_s=cfg.behaviour.min_passive_s)
    from rich.table import Table

    table = Table(title=res.title)
    for c in ("fish/group", "power", "95% MC interval"):
        table.add_column(c)
    for _, r in res.table.iterrows():
        table.add_row(str(int(r["n_per_group"])), f"{r['power']:.3f}",
                      f"{r['ci_low']:.3f}-{r['ci_high']:.3f}")
    console.print(table)
    console.print(res.summary, highlight=False, soft_wrap=True)
    if out is not None:
        paths = write_power(res, out)
        console.print(f"written {escape(str(paths['table']))} and {escape(str(paths['figure']))} "
                      f"in {time.perf_counter() - t0:.1f} s", highlight=False)


@app.command()
@_cli_errors
def verify(
    folder: Annotated[Path, typer.Argument(help="Trial folder (fishtrack track --out) or experiment folder (fishtrack run --out).")],
    video: Annotated[Path | None, typer.Option("--video", help="Trial folders: where the input video is now, if it moved.")] = None,
) -> None:
    """Re-check an output folder against its provenance; exit 8 listing every mismatch."""
    from fishtrack.verify import verify_folder

    rep = verify_folder(folder, video=video)
    for note in rep.notes:
        err_console.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
    rep.raise_for_problems()
    console.print(f"[green]ok[/] {escape(str(folder))}: {rep.kind} folder matches its provenance "
                  f"({rep.n_checks} checks)", highlight=False, soft_wrap=True)


@app.command()
@_cli_errors
def view(
    folder: Annotated[Path, typer.Argument(help="Trial folder, tracks.parquet, or a plain video.")],
) -> None:
    """Open napari with the video, tracks, arenas and the behaviour widget."""
    try:
        from fishtrack.napari.viewer import view as open_view
    except ImportError as err:
        raise FishtrackError(f"napari is not installed ({err}); install fishtrack[napari]") from None
    open_view(folder)


@app.command()
@_cli_errors
def version() -> None:
    """Print the fishtrack version."""
    from fishtrack import __version__

    console.print(__version__)


def main() -> None:
    """Console-script entry point."""
    from fishtrack._threads import limit_malloc_arenas

    limit_malloc_arenas()  # before any thread allocates: lower peak memory (issue 15)
    code: object = 0
    try:
        app()
    except SystemExit as exc:
        code = exc.code
    exit_now(code)


def exit_now(code: object = 0) -> None:
    """End the process with ``code`` once a command is done, without the interpreter's
    teardown (issue 15, fixed costs).

    Every output is written, closed and renamed by then; what Python would still do is free
    every object and module one by one (~0.3 s of CPU with pandas, pyarrow and scipy loaded,
    on a 1,000-frame run's ~5 s). The exit handlers registered with :mod:`atexit` (logging,
    temporary folders, coverage) run as at an ordinary exit, and standard output and error are
    flushed, before :func:`os._exit`. While a thread other than the main one is still running
    (not a daemon) or the code is not a number, the ordinary exit is taken instead
    (:func:`sys.exit`: it waits for such threads and prints a message code)."""
    import atexit
    import os
    import threading

    code = 0 if code is None else code
    others = [t for t in threading.enumerate()
              if t is not threading.main_thread() and not t.daemon and t.is_alive()]
    if others or not isinstance(code, int):
        sys.exit(code)
    atexit._run_exitfuncs()  # the handlers an ordinary exit runs (the CPython API of atexit)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):  # closed or gone (a closed pipe)
            code = code or 120  # what Python's own exit returns when the flush fails
    os._exit(code)


if __name__ == "__main__":
    main()
