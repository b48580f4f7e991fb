"""Command line: ``cinemagraph run | demo | info | corpus | train-displays | still``.

Runs the flows with the embedded defaults: Prefect without a server (a temporary
local one is started when ``PREFECT_API_URL`` is unset), a local Dask cluster and
Zarr on local disk.  Bad input gets one line naming the file and the problem and
exit code 2.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="cinemagraph",
    help="Turn ordinary video into cinemagraphs (Yan et al., CVPR 2017).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_BAD_INPUT = 2


def _quiet_environment() -> None:
    """Defaults that keep a local run quiet and offline-safe (a user's own settings win)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    os.environ.setdefault("DASK_DISTRIBUTED__WORKER__DAEMON", "false")
    from flows.local_server import apply_local_server_defaults

    apply_local_server_defaults()  # the temporary Prefect server's write batching (flows/local_server.py)


def _known_errors() -> tuple[type[BaseException], ...]:
    from schemas.config import ConfigError
    from tasks.display_features import ModelFileError
    from tasks.displays import AnnotationError
    from tasks.outputs import OutputExistsError
    from tasks.render3d import PathFileError, Render3dRefused
    from tasks.still.image import StillImageError
    from tasks.still.repetitions import NoRepetitionError
    from tasks.store import StoreError
    from tasks.video import VideoError
    from tasks.window import WindowError

    return (
        VideoError,
        ConfigError,
        OutputExistsError,
        StoreError,
        WindowError,
        ModelFileError,
        AnnotationError,
        StillImageError,
        NoRepetitionError,
        PathFileError,
        Render3dRefused,
    )


class _NoTracebackForBadInput(logging.Filter):
    """Drop the traceback from Prefect's log lines when the error is bad input we explain ourselves."""

    def __init__(self, known: tuple[type[BaseException], ...]):
        super().__init__()
        self.known = known

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], self.known):
            record.exc_info = None
            record.exc_text = None
        return True


class _StageProgress(logging.Handler):
    """Advances a rich progress bar on the tasks' 'stage X finished/skipped' log lines."""

    def __init__(self, progress, task_id, stages):
        super().__init__(level=logging.INFO)
        self.progress, self.task_id, self.stages = progress, task_id, stages
        self.seen: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if not msg.startswith("stage "):
            return
        parts = msg.split()
        stage = parts[1] if len(parts) > 1 else ""
        if stage in self.stages and stage not in self.seen:
            self.seen.add(stage)
            nxt = self.stages[len(self.seen)] if len(self.seen) < len(self.stages) else "done"
            self.progress.update(self.task_id, advance=1, description=f"{stage} done; {nxt}")


def _install_log_hooks(handler: logging.Handler | None = None) -> None:
    known = _known_errors()
    filt = _NoTracebackForBadInput(known)
    for name in ["", *logging.root.manager.loggerDict]:
        logger = logging.getLogger(name)
        if name and not name.startswith(("prefect", "distributed")):
            continue
        for h in logger.handlers:
            h.addFilter(filt)
    if handler is not None:
        # task loggers do not propagate past prefect's own handlers, so listen on both
        for name in ("prefect.task_runs", "prefect.flow_runs"):
            lg = logging.getLogger(name)
            lg.addHandler(handler)
            if lg.level > logging.INFO or lg.level == logging.NOTSET:
                lg.setLevel(logging.INFO)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(EXIT_BAD_INPUT)


def _existing(overwrite: bool, resume: bool):
    from tasks.outputs import Existing

    if overwrite and resume:
        raise _fail("--overwrite and --resume exclude each other")
    return Existing.overwrite if overwrite else Existing.resume if resume else Existing.refuse


def _run_pipeline(source: Path, out: Path, config, existing) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from flows.make_cinemagraph import STAGES, run_make_cinemagraph
    from tasks.ingest import preflight
    from tasks.outputs import prepare_output_dir

    known = _known_errors()
    console = Console(stderr=True)
    try:
        preflight(source, config.ingest, config.cyclicity.min_window_frames)
        if config.render3d.enabled and config.render3d.path_file is not None:
            from tasks.render3d import read_path_file

            read_path_file(config.render3d.path_file)
        prepare_output_dir(out, existing)
    except known as exc:
        raise _fail(str(exc)) from None
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} stages"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        task_id = progress.add_task(f"starting; {STAGES[0]}", total=len(STAGES) - 2)
        handler = _StageProgress(progress, task_id, STAGES[:-2])
        _install_log_hooks(handler)
        try:
            result = run_make_cinemagraph(source, out, config, existing=existing)
        except known as exc:
            raise _fail(str(exc)) from None
        progress.update(task_id, completed=len(STAGES) - 2, description="done")
    _print_summary(result, console)


def _print_summary(result, console) -> None:
    from rich.table import Table

    table = Table(title=f"cinemagraph of {Path(result.input).name}", show_header=False)
    reasons = f": {'; '.join(result.outcome_reasons)}" if result.outcome_reasons else ""
    table.add_row("outcome", f"{result.outcome.upper()}{reasons}")
    table.add_row("output folder", result.output_dir)
    for kind in ("mp4", "gif", "webp"):
        path = getattr(result.outputs, kind)
        if path:
            table.add_row(kind, path)
    table.add_row("size", f"{result.width}x{result.height}, {result.n_frames} frames at {result.fps:.2f} fps")
    table.add_row(
        "reference frame", f"{result.reference_index} (window {result.window[0]}-{result.window[1]})"
    )
    choice = result.window_choice
    if choice is not None and choice.shots:
        shots = ", ".join(f"{a}-{b}" for a, b in choice.shots)
        table.add_row("shots", f"{len(choice.shots)}: {shots}; {choice.reason}")
    if result.alignment is not None:
        table.add_row("alignment", f"{result.alignment.mode}: {result.alignment.reason}")
    table.add_row("loop", f"{result.loop_frames} frames, {len(result.regions)} animated regions")
    table.add_row("animated", f"{result.masks.animated} px ({100 * result.masks.animated_fraction:.2f} %)")
    q = result.quality
    table.add_row("seam / stillness", f"{'n/a' if q.seam is None else f'{q.seam:.2f}'} / {q.stillness:g}")
    if result.render3d is not None:
        r3 = result.render3d
        table.add_row("3D", f"{r3.mp4} ({r3.path} path, {r3.frames} frames, in-painted up to "
                            f"{100 * r3.max_inpainted_fraction:.2f} %)")
    table.add_row("time", ", ".join(f"{k} {v:.1f}s" for k, v in result.timings.items()))
    if result.skipped_stages:
        table.add_row("resumed", "skipped " + ", ".join(result.skipped_stages))
    for w in result.warnings:
        table.add_row("warning", w)
    console.print(table)


def _load_config(path: Path | None):
    from schemas.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        raise _fail(str(exc)) from None


_HELP_3D = (
    "Also make the 3D cinemagraph (cinemagraph_3d.mp4/.gif: the camera glides through the looping scene; "
    "moving-camera footage only), as [render3d] enabled = true."
)


@app.command()
def run(
    input: Annotated[Path, typer.Argument(help="Video file (any container FFmpeg decodes).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    config: Annotated[Path | None, typer.Option("--config", "-c", help="TOML or YAML config file.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace the outputs of an earlier run in --out.")] = False,
    resume: Annotated[
        bool, typer.Option(help="Continue an earlier run in --out, skipping finished stages.")
    ] = False,
    three_d: Annotated[bool, typer.Option("--3d", help=_HELP_3D)] = False,
) -> None:
    """Make a cinemagraph of INPUT in --out (store.zarr, cinemagraph.mp4/.gif, result.json)."""
    _quiet_environment()
    cfg = _load_config(config)
    if three_d:
        cfg.render3d.enabled = True
    _run_pipeline(input, out, cfg, _existing(overwrite, resume))


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("cinemagraph-demo"),
    overwrite: Annotated[bool, typer.Option(help="Replace the outputs of an earlier demo in --out.")] = False,
    moving: Annotated[
        bool,
        typer.Option(
            help="A hand-held clip instead: the camera translates and turns past textured planes, so the "
            "frames are aligned by structure from motion and plane-sweep depth (about a minute more)."
        ),
    ] = False,
    three_d: Annotated[bool, typer.Option("--3d", help=_HELP_3D + " Needs --moving.")] = False,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="TOML or YAML config file (as for run).")
    ] = None,
) -> None:
    """Make a synthetic clip (blinking lights on a textured wall) and turn it into a cinemagraph."""
    _quiet_environment()
    cfg = _load_config(config)
    existing = _existing(overwrite, False)
    if three_d and not moving:
        raise _fail("--3d needs --moving: the 3D cinemagraph needs a clip from a moving camera (depth)")
    if three_d:
        cfg.render3d.enabled = True
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "demo-clip.mp4"
        if moving:
            from tasks.synthetic_scene import render_synthetic_clip, write_mp4

            frames = render_synthetic_clip(
                n_frames=48, height=192, width=256, blink_periods=(8.0, 6.0), bright_lights=True
            ).frames
            write_mp4(frames, clip, crf=12)
            typer.echo(f"synthetic clip: {clip.name}, 48 frames 256x192 from a moving camera, two blinking "
                       "lights", err=True)
        else:
            from tasks.synthetic import make_blinking_clip

            make_blinking_clip(clip)
            typer.echo(f"synthetic clip: {clip.name}, 72 frames 320x180 with three blinking lights", err=True)
        _run_pipeline(clip, out, cfg, existing)


@app.command()
def info(
    store: Annotated[Path, typer.Argument(help="A store.zarr (or the output folder holding one).")],
) -> None:
    """Show what a store holds: variables, shapes, chunks, attributes and finished stages."""
    from rich.console import Console
    from rich.table import Table

    from schemas import names as N
    from tasks.store import StoreError, open_store, read_attrs

    if store.is_dir() and (store / N.STORE_NAME).exists():
        store = store / N.STORE_NAME
    try:
        ds = open_store(store)
        attrs = read_attrs(store)
    except StoreError as exc:
        raise _fail(str(exc)) from None
    console = Console()
    table = Table(title=str(store))
    for col in ("variable", "dims", "shape", "dtype", "chunks"):
        table.add_column(col)
    for name in sorted(ds.data_vars):
        v = ds[name]
        chunks = "x".join(str(c[0]) for c in v.chunks) if v.chunks else "-"
        table.add_row(name, ", ".join(v.dims), "x".join(map(str, v.shape)), str(v.dtype), chunks)
    console.print(table)
    stages = attrs.pop("stages", {})
    for key in sorted(attrs):
        console.print(f"[bold]{key}[/]: {attrs[key]}")
    st = Table(title="stages")
    for col in ("stage", "finished", "seconds", "digest"):
        st.add_column(col)
    for name, rec in stages.items():
        st.add_row(name, rec.get("finished", ""), f"{rec.get('seconds', 0):.2f}", rec.get("digest", ""))
    console.print(st)


class _CorpusProgress(logging.Handler):
    """Drives a progress bar from the corpus flow's 'corpus planned N items' and 'corpus item ...' lines."""

    def __init__(self, progress, task_id):
        super().__init__(level=logging.INFO)
        self.progress, self.task_id = progress, task_id

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if msg.startswith("corpus planned "):
            self.progress.update(self.task_id, total=max(int(msg.split()[2]), 1), description="items")
        elif msg.startswith("corpus item "):
            self.progress.update(self.task_id, advance=1, description=" ".join(msg.split()[2:4]))


@app.command()
def corpus(
    manifest: Annotated[Path, typer.Argument(help="A folder of videos, or a .csv / .jsonl manifest.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output root: one folder per item and index.jsonl.")
    ],
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="TOML or YAML shaped like schemas.corpus.CorpusConfig."),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Recompute items that already finished.")] = False,
    max_in_flight: Annotated[int | None, typer.Option(help="Items processed at once.")] = None,
) -> None:
    """Make cinemagraphs of every usable shot of every source in MANIFEST, under --out."""
    _quiet_environment()
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from flows.process_corpus import run_process_corpus
    from schemas.config import ConfigError, load_config
    from schemas.corpus import CorpusConfig
    from tasks.manifest import ManifestError, read_manifest

    try:
        cfg = load_config(config, CorpusConfig)
        read_manifest(manifest)
    except (ConfigError, ManifestError) as exc:
        raise _fail(str(exc)) from None
    if overwrite:
        cfg.overwrite = True
    if max_in_flight:
        cfg.max_in_flight = max_in_flight
    console = Console(stderr=True)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task_id = progress.add_task("planning", total=None)
        _install_log_hooks(_CorpusProgress(progress, task_id))
        state = run_process_corpus(manifest, out, cfg)
    result = state.result(raise_on_failure=False)
    if isinstance(result, BaseException):
        raise _fail(f"{manifest}: corpus run failed: {result}")
    table = Table(title=f"corpus {manifest}: {state.message}")
    for col in ("item", "status", "loop", "animated %", "seconds", "reason"):
        table.add_column(col)
    for o in result.items:
        table.add_row(
            o.item_id,
            o.status,
            "" if o.loop_frames is None else str(o.loop_frames),
            "" if o.animated_fraction is None else f"{100 * o.animated_fraction:.2f}",
            "" if o.seconds is None else f"{o.seconds:.1f}",
            o.reason or "",
        )
    Console().print(table)
    typer.echo(f"index: {result.index}")
    if result.failed:
        raise typer.Exit(1)


@app.command("train-displays")
def train_displays(
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the classifier (.skops).")],
    annotations: Annotated[
        Path | None,
        typer.Option(help="DisplayAnnotations JSON (clips + masks or polygons); default: synthetic clips."),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="TOML or YAML config (ingest, window, displays).")
    ] = None,
    n_synthetic: Annotated[int, typer.Option(min=2, help="Synthetic clips when no annotations.")] = 16,
    n_estimators: Annotated[int, typer.Option(min=1, help="Trees of the random forest.")] = 100,
) -> None:
    """Train the display/billboard classifier; print its cross-validated precision and recall."""
    _quiet_environment()
    from flows.train_display_classifier import run_train_display_classifier

    cfg = _load_config(config)
    if annotations is not None and not annotations.is_file():
        raise _fail(f"{annotations}: annotation file not found")
    _install_log_hooks()
    try:
        result = run_train_display_classifier(
            annotations, out, n_synthetic=n_synthetic, n_estimators=n_estimators, config=cfg
        )
    except _known_errors() as exc:
        raise _fail(str(exc)) from None
    if result.precision is None:
        typer.echo(f"{result.n_clips} clips, {result.n_segments} segments; too few for a cross-validation")
    else:
        typer.echo(
            f"cross-validated over {result.n_clips} clips ({result.n_splits} folds grouped by clip, "
            f"{result.n_segments} segments, {result.n_positive} display): "
            f"precision {result.precision:.3f}, recall {result.recall:.3f}, F1 {result.f1:.3f}"
        )
    typer.echo(f"model written to {result.model}")


@app.command()
def still(
    image: Annotated[Path, typer.Argument(help="A photograph (JPEG, PNG or WebP) with a repeating structure.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    mask: Annotated[
        Path | None, typer.Option(help="PNG of the image's size, white where things may move; default: found.")
    ] = None,
    direction: Annotated[
        str | None, typer.Option(help="Main direction of motion DX,DY (x right, y down); default: found.")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="TOML or YAML shaped like schemas.still.EndlessLoopConfig."),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace the outputs of an earlier run in --out.")] = False,
    resume: Annotated[
        bool, typer.Option(help="Keep the stages an earlier run in --out completed with the same inputs.")
    ] = False,
) -> None:
    """Make an endless loop of IMAGE's repeating structure in --out (Halperin et al., SIGGRAPH 2021)."""
    _quiet_environment()
    from schemas.config import ConfigError, load_config
    from schemas.still import EndlessLoopConfig
    from tasks.still.image import StillImageError, parse_direction, validate_inputs

    try:
        validate_inputs(image, mask)
        cfg = load_config(config, EndlessLoopConfig)
    except (StillImageError, ConfigError) as exc:
        raise _fail(str(exc)) from None
    if direction is not None:
        try:
            cfg.direction = parse_direction(direction)
        except ValueError as exc:
            raise _fail(f"--direction: {exc}") from None
    existing = _existing(overwrite, resume)
    from flows.make_endless_loop import run_make_endless_loop
    from tasks.outputs import prepare_output_dir

    known = _known_errors()
    try:
        prepare_output_dir(out, existing)
    except known as exc:
        raise _fail(str(exc)) from None
    _install_log_hooks()
    # the summary (or the one error line) says it all: no run logs, no dashboard-port warnings
    import warnings

    warnings.filterwarnings("ignore", message="Port .* is already in use")
    for name in ("prefect.flow_runs", "prefect.task_runs"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        result = run_make_endless_loop(image, out, cfg, mask=mask, existing=existing)
    except known as exc:
        raise _fail(str(exc)) from None
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"endless loop of {Path(result.input).name}", show_header=False)
    table.add_row("output folder", result.output_dir)
    for kind in ("mp4", "gif"):
        if getattr(result.outputs, kind):
            table.add_row(kind, getattr(result.outputs, kind))
    size = f"{result.width}x{result.height}"
    if result.scale != 1:
        size += f" (downscaled from {result.source_size[1]}x{result.source_size[0]})"
    table.add_row("size", size)
    table.add_row("direction", f"({result.direction[0]:.3f}, {result.direction[1]:.3f}) {result.direction_source}"
                  + "".join(f"; {v.angle:.1f} deg: {v.votes} votes" for v in result.directions))
    table.add_row("regions", ", ".join(f"{r.area} px period {r.period:.1f} px" for r in result.regions)
                  + f" ({result.mask_source} mask)")
    q = result.quality
    table.add_row("loop", f"{result.loop_frames} frames at {result.fps:g} fps; end frames off by "
                  f"{q.first_frame_error:g}/{q.last_frame_error:g}; wrap step {q.wrap_step:.2f} "
                  f"(largest ordinary {q.max_ordinary_step:.2f}); inversion error {q.inversion_error_mean:.3f} px")
    table.add_row("time", ", ".join(f"{k} {v:.1f}s" for k, v in result.timings.items()))
    if result.skipped_stages:
        table.add_row("resumed", "skipped " + ", ".join(result.skipped_stages))
    for w in result.warnings:
        table.add_row("warning", w)
    Console(stderr=True).print(table)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("interrupted; rerun with --resume to continue", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
