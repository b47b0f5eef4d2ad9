"""The `edgernn` command line: a thin layer over edgernn.pipeline and friends.

Exit codes (edgernn.errors): 0 success; 1 a check ran and failed (CheckFailed); 2 bad usage or
input (InputError, QuantizationError); 3 a compiler, emulator or other outside tool is missing or
failed (ToolchainError); 4 edgernn broke its own promise, a bug (InternalError); 130 interrupted.
Every error is a one-line message, never a traceback.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click
from click.exceptions import NoArgsIsHelpError

from edgernn import __version__
from edgernn import packages as firmware_packages  # the package registry: --package's choices
from edgernn import targets as mcu_targets  # the target registry: --target's choices
from edgernn.config import MAX_GENERATED
from edgernn.errors import CheckFailed, DataWarning, EdgeRNNError, InputError

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_ROOT = Path("export")


@contextmanager
def _noting_interrupts() -> Iterator[list[bool]]:
    """Python's own Ctrl-C handling, plus a note that it happened. A KeyboardInterrupt raised
    inside a callback from C++ can come back out as another exception type with the interrupt
    gone from its chain (CI saw exit 4 for a SIGINT during export); the note still tells an
    interrupt from a bug."""
    seen = [False]
    if threading.current_thread() is not threading.main_thread():
        yield seen  # signal handlers can only be set from the main thread; nothing to note
        return

    def on_sigint(signum: int, frame: Any) -> None:
        seen[0] = True
        signal.default_int_handler(signum, frame)

    before = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield seen
    finally:
        signal.signal(signal.SIGINT, before)


@contextmanager
def _printing_warnings() -> Iterator[None]:
    """DataWarnings as `warning: ...` lines on stderr when they are raised (before a long
    training, not after it), every one of them, rather than Python's file:line form."""

    def show(message: Any, category: type[Warning], *_: Any, **__: Any) -> None:
        if issubclass(category, DataWarning):
            click.secho(f"warning: {message}", fg="yellow", err=True)
        else:
            shown(message, category, *_, **__)

    with warnings.catch_warnings():
        shown = warnings.showwarning
        warnings.simplefilter("always", DataWarning)
        warnings.showwarning = show
        yield


class Finite(click.FloatRange):
    """click.FloatRange without NaN and infinities: NaN passes its bound checks (every comparison
    with NaN is false), so `--clip nan` trained an all-NaN model that early stopping hid and
    `--budget nan` was a budget that never binds."""

    name = "finite float"

    def _describe_range(self) -> str:
        # Unbounded, click's own text would read "x<=None" in --help.
        return "finite" if self.min is None and self.max is None else super()._describe_range()

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        v = super().convert(value, param, ctx)
        if not math.isfinite(v):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return v


def friendly(fn: F) -> F:
    """Turn edgernn's own errors into `error: ...` plus the documented exit code."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _noting_interrupts() as interrupted, _printing_warnings():
            try:
                return fn(*args, **kwargs)
            except Exception as e:
                # After Ctrl-C whatever follows is its echo (a compiler killed with us, a library
                # rewording the interrupt): report the interrupt, not the echo.
                if interrupted[0]:
                    raise KeyboardInterrupt from e
                raise

    @wraps(fn)
    def worded(*args: Any, **kwargs: Any) -> Any:
        try:
            return wrapper(*args, **kwargs)
        except EdgeRNNError as e:
            click.secho(f"error: {e}", fg="red", err=True)
            sys.exit(e.exit_code)
        except OSError as e:
            # The safety net for the file system (permissions, a full disk, I/O errors) wherever a
            # call site did not word its own message: still one line and exit 2, never a traceback.
            where = f"{e.filename}: " if e.filename else ""
            click.secho(f"error: {where}{e.strerror or e}", fg="red", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted; artifacts already written are intact", err=True)
            sys.exit(130)
        except click.ClickException:
            raise  # a usage error found inside the command: _OneLineGroup words it
        except Exception as e:
            # Anything else is a promise broken below us (a library refusing what edgernn let
            # through): still one line, with exit 4. EDGERNN_TRACEBACK=1 shows the traceback.
            if os.environ.get("EDGERNN_TRACEBACK"):
                raise
            what = str(e).strip().splitlines()[-1:] or [""]
            click.secho(
                f"error: internal error, {type(e).__name__}: {what[0]} "
                "(a bug: rerun with EDGERNN_TRACEBACK=1 and report the traceback)",
                fg="red",
                err=True,
            )
            sys.exit(4)

    return worded  # type: ignore[return-value]


class _OneLineGroup(click.Group):
    """Usage errors (a bad option value, a missing argument) as one `error: ...` line and exit 2,
    like every other error, instead of click's usage block."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        if not kwargs.get("standalone_mode", True):
            return super().main(*args, **kwargs)
        kwargs["standalone_mode"] = False
        try:
            rv = super().main(*args, **kwargs)
        except NoArgsIsHelpError as e:  # `edgernn` alone: the help, not an error message
            click.echo(e.format_message(), err=True)
            sys.exit(e.exit_code)
        except click.ClickException as e:
            ctx = getattr(e, "ctx", None)
            hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
            click.secho(f"error: {e.format_message()}{hint}", fg="red", err=True)
            sys.exit(e.exit_code)
        except click.Abort:
            click.echo("aborted", err=True)
            sys.exit(130)
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(
    cls=_OneLineGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.version_option(__version__, prog_name="edgernn")
def main() -> None:
    """Train tiny tanh RNNs, quantize them to int8 and export bit-exact ONNX and C for microcontrollers.

    \b
    Typical use:
      edgernn datasets                          # what is bundled
      edgernn train --dataset japanese_vowels   # -> export/japanese_vowels/checkpoint.pt
      edgernn export export/japanese_vowels     # -> model.onnx, model.int8.onnx, model.step..., model.h
      edgernn verify export/japanese_vowels     # torch = ORT (float); torch = ORT = C (int8), report.json
      edgernn import model.onnx --data d.npz --out export/mine   # a tanh RNN trained elsewhere
      edgernn demo                              # all of the above for the four demo data sets

    Exit codes: 0 ok, 1 a verification check failed, 2 bad usage or input, 3 a compiler or
    emulator missing or failed, 4 internal error (a bug), 130 interrupted.
    """


@main.command()
@friendly
def datasets() -> None:
    """List the bundled data sets (no download: they ship inside the package)."""
    from edgernn.data.bundled import list_datasets

    rows = list_datasets()
    click.echo(f"{'name':<16} {'task':<13} {'train/val/test':<16} {'classes':>7}  input")
    for d in rows:
        click.echo(
            f"{d.name:<16} {d.task:<13} {f'{d.n_train}/{d.n_val}/{d.n_test}':<16} "
            f"{d.num_classes:>7}  {d.input}"
        )
    click.echo("")
    for d in rows:
        click.echo(f"{d.name}: {d.description}\n  source: {d.source}\n  licence: {d.licence}")


def _out_dir(out: str | None, name: str) -> Path:
    return Path(out) if out else DEFAULT_ROOT / name


@main.command()
@click.option("--dataset", "dataset", metavar="NAME", help="A bundled data set (see `edgernn datasets`).")
@click.option(
    "--data",
    "data_file",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Your own data: .npz (X, y, optional lengths, split, class_names) or long-format .csv "
    "(sequence, step, optional split and label columns, features); see README.",
)
@click.option("--hidden", type=click.IntRange(1, 1024), help="Hidden units per layer and direction.")
@click.option("--layers", type=click.IntRange(1, 8), help="Stacked RNN layers.")
@click.option(
    "--bidirectional/--unidirectional", default=None, help="Read sequences both ways (no streaming)."
)
@click.option(
    "--dropout",
    type=Finite(0, 1, max_open=True),
    help="Dropout between layers (needs --layers 2 or more).",
)
@click.option("--embed-dim", type=click.IntRange(1, 1024), help="Embedding size for token data.")
@click.option(
    "--frame",
    type=click.IntRange(1, 1024),
    help="Samples per RNN step (many-to-one feature data; at most the shortest "
    "sequence): K samples side by side make one step, so a long sequence takes 1/K of the steps; the "
    "C header's PREFIX_push_sample still takes one sample.",
)
@click.option(
    "--input-clip",
    type=Finite(0, 1e6),
    metavar="SIGMAS",
    help="Clamp each normalized input feature to +-SIGMAS standard deviations, in the float model and "
    "by the int8 input grid alike (finer int8 steps for heavy-tailed data); 0: no clamp. Default: 3 "
    "for --data and the long bundled sets, 0 for the short ones.",
)
@click.option(
    "--epochs", type=click.IntRange(1, 100000), help="Maximum epochs (early stopping on validation)."
)
@click.option("--lr", type=Finite(0, 10, min_open=True), help="Adam learning rate.")
@click.option("--batch-size", type=click.IntRange(1, 65536), help="Sequences per batch.")
@click.option("--clip", type=Finite(0, min_open=True), help="clip_grad_norm_ max_norm (default 1.0).")
@click.option(
    "--seed",
    type=click.IntRange(0, 2**31 - 1),
    default=0,
    show_default=True,
    help="Seeds the split, the init and the batches: same seed, same checkpoint.",
)
@click.option(
    "--auto",
    is_flag=True,
    help="Search frame, hidden size, init, learning rate and input clip, scored on the validation "
    "split, or by 5-fold cross-validation on train + val for sets of at most 200 sequences (the "
    "winner then retrains on both); the test split is never used (docs/training.md).",
)
@click.option(
    "--budget",
    type=Finite(0, min_open=True),
    metavar="MINUTES",
    help="With --auto: start no candidate that would end past this [default: 10]. The first candidate "
    "and the final retrain always run, so a tiny budget still takes their time.",
)
@click.option(
    "--max-flash",
    type=click.IntRange(1),
    metavar="BYTES",
    help="With --auto: only models whose model.h needs at most this flash (weights + 1,024 B LUT).",
)
@click.option("--out", type=click.Path(file_okay=False), help="Output directory [default: export/<dataset>].")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@friendly
def train(
    dataset: str | None,
    data_file: str | None,
    hidden: int | None,
    layers: int | None,
    bidirectional: bool | None,
    dropout: float | None,
    embed_dim: int | None,
    frame: int | None,
    input_clip: float | None,
    epochs: int | None,
    lr: float | None,
    batch_size: int | None,
    clip: float | None,
    seed: int,
    auto: bool,
    budget: float | None,
    max_flash: int | None,
    out: str | None,
    quiet: bool,
) -> None:
    """Train a float model and write OUT/checkpoint.pt (config, data set, normalization, metrics).

    Without --dataset or --data it trains japanese_vowels. An option left out (hidden size,
    layers, epochs, learning rate, batch size, ...) takes the data set's preset value; your own
    data gets the long-sequence recipe (docs/training.md). The checkpoint and report.md record
    every value used.

    With --auto, a small search picks frame, hidden size, init, learning rate and input clip by
    validation accuracy (cross-validated on small sets); the checkpoint and report.md list every
    candidate's score."""
    from dataclasses import replace

    from edgernn.data.bundled import DEFAULT_DATASET
    from edgernn.pipeline import auto_train_to_dir, train_to_dir
    from edgernn.train.auto import DEFAULT_BUDGET_MINUTES
    from edgernn.train.loop import DEFAULT_PRESET, PRESETS

    if dataset and data_file:
        raise click.UsageError("give --dataset or --data, not both")
    if auto and (hidden is not None or lr is not None or frame is not None or input_clip is not None):
        raise click.UsageError(
            "--auto chooses --frame, --hidden, --lr and --input-clip itself; leave them out"
        )
    if not auto and (budget is not None or max_flash is not None):
        raise click.UsageError("--budget and --max-flash go with --auto")
    if data_file is not None and not Path(data_file).exists():
        raise click.BadParameter(f"{data_file} does not exist", param_hint="--data")
    name = Path(data_file).stem if data_file else (dataset or DEFAULT_DATASET)
    preset = PRESETS.get(name, DEFAULT_PRESET) if not data_file else DEFAULT_PRESET
    model_opts: dict[str, Any] = {
        "hidden_size": hidden,
        "num_layers": layers,
        "bidirectional": bidirectional,
        "dropout": dropout,
        "embed_dim": embed_dim,
        "frame": frame,
        "input_clip": input_clip,
    }
    train_opts: dict[str, Any] = {
        "epochs": epochs,
        "lr": lr,
        "batch_size": batch_size,
        "clip_grad_norm": clip,
    }
    spec = replace(preset.model, **{k: v for k, v in model_opts.items() if v is not None})
    if dropout and spec.num_layers == 1:
        raise click.UsageError(
            "--dropout acts between layers, and this model has one; add --layers 2 or more"
        )
    tc = replace(preset.train, seed=seed, **{k: v for k, v in train_opts.items() if v is not None})
    out_dir = _out_dir(out, name)
    source = None if data_file else name
    if input_clip is not None:
        from edgernn.pipeline import data_ref, load_data

        # A token model has no input clip (model_config drops the recipe's); one asked for is refused,
        # as --embed-dim is on feature data, rather than ignored. Read once more only in this case.
        if load_data(data_ref(source, data_file, seed)).vocab:
            raise InputError(f"--input-clip is for feature data; {name} holds tokens")
    if auto:
        ckpt = auto_train_to_dir(
            out_dir,
            source,
            data_file,
            spec,
            tc,
            budget or DEFAULT_BUDGET_MINUTES,
            max_flash,
            log=lambda line: None if quiet else click.echo(line, err=True),
        )
    else:
        ckpt = train_to_dir(out_dir, source, data_file, spec, tc, progress=not quiet)
    m = ckpt.meta["metrics"]["float"]
    click.echo(
        f"wrote {out_dir / 'checkpoint.pt'}: test accuracy {m['test_accuracy']:.4f} "
        f"(balanced {m['balanced_accuracy']:.4f}, {m['nll']:.3f} nats) "
        f"after {ckpt.meta['epochs_run']} epochs, best {ckpt.meta['best_epoch']}"
    )


@main.command("import")
@click.argument("source", type=click.Path(dir_okay=False))
@click.option(
    "--out", type=click.Path(file_okay=False), required=True, help="Directory to write the import into."
)
@click.option(
    "--data",
    "data_file",
    type=click.Path(dir_okay=False),
    help="Calibration data (.npz or .csv, the formats of `edgernn train --data`); its labels give accuracy.",
)
@click.option(
    "--dataset",
    metavar="NAME",
    help="A bundled data set as the calibration data instead (a token set: the feature sets are stored "
    "normalised, not as a model trained elsewhere reads them).",
)
@click.option(
    "--input-range",
    nargs=2,
    type=Finite(),
    metavar="LOW HIGH",
    help="No data at hand: calibrate on synthetic feature sequences, uniform in [LOW, HIGH] (the "
    "range the model's inputs take on the device). Their labels, like those of a --data file "
    "without labels, are the source's own answers: accuracy then means agreement with the source.",
)
@click.option(
    "--steps",
    type=click.IntRange(1, 100_000),
    help="With --input-range: the synthetic sequences are 1 to this many steps long [default: 50].",
)
@click.option(
    "--task",
    type=click.Choice(["auto", "many-to-many", "one-to-many"]),
    default="auto",
    show_default=True,
    help="For a model with an output per step: a tagger (many-to-many) or a generator (one-to-many; "
    "auto picks it when the model predicts its own input tokens).",
)
@click.option(
    "--pad-to",
    type=click.IntRange(1, 65535),
    help="Read each sequence with pad steps after it up to this many (token 0 or zeros), as a model "
    "trained on unpacked padded batches was measured. Default: each sequence at its own length.",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@friendly
def import_(
    source: str,
    out: str,
    data_file: str | None,
    dataset: str | None,
    input_range: tuple[float, float] | None,
    steps: int | None,
    task: str,
    pad_to: int | None,
    quiet: bool,
) -> None:
    """Bring a tanh RNN trained elsewhere: SOURCE is a torch.export archive (.pt2) or an ONNX file
    whose recurrent part is the RNN op. The structure is read from the graph (embedding -> RNN ->
    readout -> linear head); the rebuilt model must reproduce SOURCE within 1e-5 on every data
    sequence, fed one at a time at its own length, or nothing is written (exit 2). OUT then holds
    what `edgernn train` writes: run `edgernn export OUT`, `verify`, `report` and `mcu` as usual.

    The calibration data is one of --data, --dataset or --input-range."""
    from edgernn.importer.api import import_model

    if steps is not None and input_range is None:
        raise click.UsageError("--steps goes with --input-range")
    generative = {"auto": None, "many-to-many": False, "one-to-many": True}[task]
    calibration: dict[str, Any] = {
        "dataset": dataset,
        "input_range": tuple(input_range) if input_range else None,
        "steps": steps or 50,
        "generative": generative,
        "pad_to": pad_to or 0,
    }
    if quiet:
        result = import_model(source, out, data_file, **calibration)
    else:
        with click.progressbar(length=1, label="checking against the source", file=sys.stderr) as bar:

            def tick(done: int, total: int) -> None:
                bar.length = total
                bar.update(done - bar.pos)

            result = import_model(source, out, data_file, progress=tick, **calibration)
    m = result.metrics
    click.echo(f"found {result.found.describe()}")
    click.echo(
        f"wrote {Path(out) / 'checkpoint.pt'}: matches the source within {result.proof.max_abs_diff:.1e} "
        f"on {result.proof.n} sequences; test accuracy {m['float']['test_accuracy']:.4f} "
        f"(source {m['source']['test_accuracy']:.4f})"
    )
    if result.labels == "source":
        click.echo(
            "labels: the source's own answers (no labels given): accuracy is agreement with the source"
        )
    for line in result.warnings:
        click.secho(f"warning: {line}", fg="yellow", err=True)


@main.command()
@click.argument("directory", type=click.Path(file_okay=False))
@friendly
def quantize(directory: str) -> None:
    """Calibrate on the training split and write DIRECTORY/model.int8.json (also done by export)."""
    from edgernn.pipeline import QUANT_NAME, quantize_dir

    qm = quantize_dir(directory)
    click.echo(
        f"wrote {Path(directory) / QUANT_NAME}: int8 test accuracy {qm.meta['int8_accuracy']:.4f} "
        f"(float {qm.meta['float_accuracy']:.4f}); requantization shift per layer and direction "
        f"{[c.shift for c in qm.cells]} (docs/integer-contract.md)"
    )


@main.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--prefix", help="C symbol prefix for model.h [default: the data set name].")
@click.option(
    "--package",
    "packages",
    multiple=True,
    type=click.Choice([*firmware_packages.PACKAGES, "all"]),
    help="Also write a firmware package under DIRECTORY/packages/<ecosystem>/ (repeatable, or all).",
)
@friendly
def export(directory: str, prefix: str | None, packages: tuple[str, ...]) -> None:
    """Quantize and write model.int8.json, model.onnx, model.int8.onnx, model.step.int8.onnx, their raw-input
    forms model.raw.int8.onnx and model.step.raw.int8.onnx, and model.h, then manifest.json (their
    sha256s, written last: `verify` refuses a set that does not match it). An export that changes
    the files removes what described the old ones: report.md and its figures, and if model.h
    changed, the `mcu` and `bench` measurements."""
    from edgernn.bench.store import BENCH_JSON
    from edgernn.pipeline import REPORT_JSON, export_dir

    result = export_dir(directory, prefix)
    for f in result.files:
        click.echo(f"wrote {f} ({f.stat().st_size:,} bytes)")
    for f in result.removed:
        what = "removed the old export's measurements from" if f.exists() else "removed"
        click.echo(f"{what} {f} (it described the old export)")
    if result.removed:
        again = [f"`edgernn verify {directory}`", f"`edgernn report {directory}`"]
        if any(f.name in (BENCH_JSON, REPORT_JSON) for f in result.removed):  # model.h's measurements
            again[1:1] = [f"`edgernn mcu {directory}`", f"`edgernn bench {directory}`"]
        click.echo(f"  run {', '.join(again[:-1])} and {again[-1]} to write them anew")
    if packages:
        try:
            package_files = firmware_packages.write_packages(directory, packages)
        except InputError as e:
            # The artifacts above are written by then, and complete: say so rather than leave
            # "nothing was written" to be read as the whole command's outcome.
            raise InputError(
                f"{e}; the export above is written and complete, only its packages are not"
            ) from None
        for f in package_files:
            click.echo(f"wrote {f}")


@main.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--no-c", is_flag=True, help="Skip compiling the C header (no C compiler here).")
@friendly
def verify(directory: str, no_c: bool) -> None:
    """Compare torch, ONNX Runtime and C on the test split; write report.json. Exit 1 if a check
    fails, or if the files on disk are not the set `edgernn export` wrote (see manifest.json)."""
    from edgernn.report.store import record_verification, verify_table
    from edgernn.verify import verify_dir

    v = verify_dir(directory, with_c=not no_c)
    record_verification(directory, v)
    click.echo(verify_table(v.report))
    for n in v.notes:
        click.echo(f"  note: {n}")
    if not v.passed:
        raise CheckFailed("verification failed: see the FAIL rows above")


@main.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.option(
    "--target",
    "targets",
    multiple=True,
    type=click.Choice(list(mcu_targets.TARGETS)),
    help="Core to build for and emulate (repeatable) "
    f"[default: {' and '.join(mcu_targets.default_targets())}].",
)
@click.option(
    "--compiler",
    "compilers",
    multiple=True,
    type=click.Choice(list(mcu_targets.compilers())),
    help="zig: zig cc + Unicorn (pip only); gcc: a GNU cross gcc (arm-none-eabi-gcc) + picolibc, also "
    "booted on the target's QEMU board (`make mcu-tools`). Repeatable [default: zig].",
)
@click.option(
    "--kernel",
    type=click.Choice(["auto", "plain", "both"]),
    default="auto",
    show_default=True,
    help="auto: the DSP (SMLAD) path where the core has it; plain: portable C only; both: a row each.",
)
@click.option("--sequences", type=click.IntRange(1), help="Check only the first N test sequences.")
@friendly
def mcu(
    directory: str, targets: tuple[str, ...], compilers: tuple[str, ...], kernel: str, sequences: int | None
) -> None:
    """Cross-compile DIRECTORY/model.h for Cortex-M, run the test split on an emulator against the
    torch integer reference, and report flash, RAM and instructions per MAC (report.json "mcu").
    Exit 1 if any integer differs."""
    from edgernn.report.store import update_report
    from edgernn.targets.check import DEFAULT_COMPILERS, DEFAULT_TARGETS, TABLE_HEADER, check_dir, table

    printed: list[str] = []

    def row(line: str) -> None:  # the header once, when the first (slow) build has succeeded
        if not printed:
            click.echo(TABLE_HEADER)
        printed.append(line)
        click.echo(line)

    results = check_dir(
        directory,
        targets or DEFAULT_TARGETS,
        compilers or DEFAULT_COMPILERS,
        kernel,
        max_sequences=sequences,
        echo=row,
    )
    for line in table(results).split("\n")[1 + len(results) :]:  # the rows are out already
        click.echo(line)  # the footnotes
    update_report(directory, {"mcu": [r.to_json() for r in results]}, wait=True)
    bad = [r for r in results if r.mismatches]
    if bad:
        first = bad[0]
        raise CheckFailed(
            f"{sum(r.mismatches for r in bad)} integers differ from the torch reference "
            f"(first: {first.target}/{first.compiler}, kind/sequence/step/index {first.first_mismatch}; "
            f"image {first.elf})"
        )


@main.command()
@click.option(
    "--out",
    "root",
    type=click.Path(file_okay=False),
    default=str(DEFAULT_ROOT),
    show_default=True,
    help="Root folder; each data set goes to ROOT/<name>.",
)
@click.option("--dataset", "names", multiple=True, help="Only these data sets (repeatable).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@friendly
def demo(root: str, names: tuple[str, ...], quiet: bool) -> None:
    """Train, export and verify the four demo data sets (or --dataset ones), then one summary table."""
    from edgernn.demo import run_demo

    ok = run_demo(Path(root), names or None, progress=not quiet, echo=click.echo)
    if not ok:
        raise CheckFailed("a verification check failed: see the table")


@main.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.option(
    "--quick",
    is_flag=True,
    help="Tiny repetitions and sizes: checks the machinery in seconds (numbers not for quoting).",
)
@click.option(
    "--peers",
    "peers_path",
    type=click.Path(),
    default=None,
    help="Folder holding CMSIS-NN (cmsis-nn/) and NNoM (nnom/) sources: their RNN steps are built "
    "and counted beside model.h on every microcontroller target (the zig and gcc toolchains of `mcu`).",
)
@click.option("--sweep", is_flag=True, help="With --peers: also model.h vs the peers over I x H shapes.")
@friendly
def bench(directory: str, quick: bool, peers_path: str | None, sweep: bool) -> None:
    """Measure every backend of DIRECTORY side by side: streaming latency per step, whole-sequence
    throughput, callgrind instructions per step, scaling with hidden size and length; with --peers,
    model.h beside CMSIS-NN, NNoM and a naive loop on the emulated microcontrollers.

    Single-threaded everywhere. Writes DIRECTORY/bench.json, a "bench" summary in report.json and,
    with matplotlib, bench_scaling.png (and bench_sweep.png). Takes about a minute (valgrind needed
    for instruction counts); --peers adds about one, --sweep about three more.
    """
    from edgernn.bench import BENCH_JSON, markdown_tables, run_bench
    from edgernn.bench.peers import PeerOptions
    from edgernn.report.plots import write_scaling_plot, write_sweep_plot

    if sweep and peers_path is None:
        raise InputError("--sweep compares model.h with the peers: give --peers PATH too")
    peers = PeerOptions(peers_path, sweep=sweep) if peers_path is not None else None
    result = run_bench(directory, quick=quick, echo=lambda msg: click.echo(msg, err=True), peers=peers)
    click.echo(markdown_tables(result))
    pngs = [p for p in (write_scaling_plot(directory, result), write_sweep_plot(directory, result)) if p]
    plot = f" and {', '.join(map(str, pngs))}" if pngs else " (no plot: matplotlib is not installed)"
    click.echo(f"wrote {Path(directory) / BENCH_JSON}{plot} in {result['elapsed_s']:.0f} s")


@main.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--no-plots", is_flag=True, help="Text only, even when matplotlib is installed.")
@friendly
def report(directory: str, no_plots: bool) -> None:
    """Write DIRECTORY/report.md: model card, float vs int8 accuracy and confusion matrices, parity,
    sizes (and Cortex-M figures), a float vs int8 trace, samples, and benchmarks when bench.json exists.

    PNG figures need matplotlib (pip install 'edgernn[plot]'); without it the report is text only.
    Run `edgernn verify DIRECTORY` first.
    """
    from edgernn.report.markdown import write_report_md

    written = write_report_md(directory, plots=not no_plots)
    for f in written.files:
        click.echo(f"wrote {f}")
    if written.note:
        click.echo(f"note: {written.note}")


@main.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.option(
    "--data",
    "data_file",
    required=True,
    metavar="FILE",
    help="Sequences to classify: .npz (X, optional lengths) or long-format .csv as for `train --data`; "
    "labels optional (ignored).",
)
@click.option(
    "--backend",
    default="onnx-int8",
    show_default=True,
    metavar="NAME",
    help="c (model.h compiled for this machine), onnx-int8, onnx (float) or torch (the checkpoint).",
)
@click.option(
    "--out", metavar="FILE", help="preds.csv or preds.json, written atomically [default: CSV on stdout]."
)
@click.option(
    "--max-len",
    default=32,
    show_default=True,
    type=click.IntRange(min=1, max=MAX_GENERATED),
    help="One-to-many models: the most tokens generated after each prompt.",
)
@friendly
def predict(directory: str, data_file: str, backend: str, out: str | None, max_len: int) -> None:
    """Run the exported model in DIRECTORY on raw (un-normalised) data and write one record per
    sequence (many-to-one) or per step (many-to-many): sequence,[step,]predicted,class_name.
    A one-to-many model takes each sequence as a prompt and generates greedily after it (until
    its end token or --max-len tokens): sequence,predicted,class_name,text, text being the prompt
    and the generated continuation (JSON adds the generated token ids). The int8 backends give
    bit-identical answers."""
    from edgernn.predict.io import predict_file

    text, n = predict_file(directory, data_file, backend, out, max_len)
    if out is None:
        click.echo(text, nl=False)
    else:
        click.echo(f"wrote {out} ({n} records, backend {backend})", err=True)


if __name__ == "__main__":
    main()
