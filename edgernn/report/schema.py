"""report.json's schema: typed sections, a version tag, and the validator every read and write uses.

report.json is one JSON object, written with sorted keys, merged from three writers:

    schema             "edgernn-report-v2" (REPORT_SCHEMA)
    dataset, task, config, train, data, metrics, parity, size, checkpoint_sha256,
    manifest_sha256    `edgernn verify` (edgernn.verify.verify_dir): all together or none, except
                       manifest_sha256 (the export verified), which reports verified before
                       edgernn recorded it lack
    mcu                `edgernn mcu` (edgernn.targets.check): a list of McuRow
    bench              `edgernn bench` (edgernn.bench.store.summary): a BenchSummary

Any other top-level key is refused, so a writer that adds a section has to add it here too.
Paths stored in report.json are relative to the export directory (`mcu[].elf`), never absolute:
an export directory can be moved or committed.

The TypedDicts below are both the static types and, through `typing.get_type_hints`, the runtime
schema that `validate` checks: str, int (not bool), float (an int is accepted), bool, None, unions,
`list[X]`, `dict[str, X]`, nested TypedDicts. `McuRow` and `BenchSummary` are open: keys beyond the
declared ones are accepted when they hold JSON scalars, or lists/dicts of them.
"""

from __future__ import annotations

import re
import types
import typing
from pathlib import PurePosixPath
from typing import Any, TypedDict, Union

from edgernn.config import ModelConfig
from edgernn.errors import InputError

REPORT_SCHEMA = "edgernn-report-v2"

Scalar = str | int | float | bool | None


class DataSection(TypedDict):
    source: str | None
    licence: str | None
    n_train: int
    n_val: int
    n_test: int


# "float" as a key: the functional form keeps it from shadowing the type in the class body.
_Metrics = TypedDict("_Metrics", {"float": dict[str, float], "int8": dict[str, float]})  # noqa: UP013


class MetricsSection(_Metrics, total=False):
    source: dict[str, float]  # an imported model: the source model itself, same split


class FloatParity(TypedDict):
    a: str
    b: str
    max_abs_diff: float
    tolerance: float
    n: int
    passed: bool


class IntParity(TypedDict):
    a: str
    b: str
    mismatches: int
    n: int
    passed: bool


class GenerationParity(TypedDict):
    a: str
    b: str
    what: str
    mismatches: int
    n: int
    passed: bool


ParityRow = FloatParity | GenerationParity | IntParity


class SizeSection(TypedDict):
    weights_bytes: int
    lut_bytes: int
    state_bytes: int
    scratch_bytes: int
    macs_per_step: int
    head_macs: int


class TrainSection(TypedDict, total=False):
    epochs: int
    lr: float
    batch_size: int
    seed: int
    clip_grad_norm: float
    patience: int
    weight_decay: float
    init: str
    warmup_epochs: int
    schedule: str
    early_stop: bool  # recorded only when False (a retrain on train + val: edgernn.train.auto)


class _McuRowRequired(TypedDict):
    target: str
    compiler: str
    kernel: str
    emulator: str
    flash_bytes: int
    ram_bytes: int
    insns_per_step: float
    insns_per_mac: float
    mismatches: int


class McuRow(_McuRowRequired, total=False):
    """One row of `edgernn mcu` (edgernn.targets.check.McuResult.to_json)."""

    macs_per_step: int
    code_bytes: int
    table_bytes: int
    helper_bytes: int
    state_bytes: int
    stack_bytes: int
    static_ram_bytes: int
    run_buf_bytes: int
    undefined: list[str]
    sequences: int
    steps: int
    bench_steps: int
    elf: str  # relative to the export directory ("" when the image was not kept)
    first_mismatch: list[int]
    cycles_per_step: float  # cycle-accurate targets (AVR on simavr); insns are then 0
    us_per_step_16mhz: float
    images: int  # how many images the test split needed (more than one where flash is small)
    est_m4_cycles_per_step: float  # cortex-m4 rows: an estimate from the TRM's timings (targets.cycles)


class _BenchRequired(TypedDict):
    file: str
    quick: bool
    machine: str
    recorded_at: str


class BenchSummary(_BenchRequired, total=False):
    """The summary `edgernn bench` leaves in report.json (edgernn.bench.store.summary)."""

    c_step_ns: dict[str, float | None]
    c_speedup: dict[str, float | None]
    c_O3_speedup: dict[str, float | None]
    host_insns_per_step: dict[str, float | None]
    host_insns_per_mac: dict[str, float | None]
    scaling_fits: dict[str, dict[str, float | None]]


class Report(TypedDict, total=False):
    schema: str
    dataset: str | None
    task: str
    config: dict[str, Scalar]
    train: TrainSection
    data: DataSection
    metrics: MetricsSection
    parity: list[ParityRow]
    size: SizeSection
    checkpoint_sha256: str
    manifest_sha256: str
    mcu: list[McuRow]
    bench: BenchSummary


VERIFY_SECTIONS: tuple[str, ...] = (
    "dataset",
    "task",
    "config",
    "train",
    "data",
    "metrics",
    "parity",
    "size",
    "checkpoint_sha256",
    "manifest_sha256",
)
# Verified before edgernn recorded which export it checked: such a report.json is still whole.
VERIFY_OPTIONAL: tuple[str, ...] = ("manifest_sha256",)
OTHER_SECTIONS: tuple[str, ...] = ("mcu", "bench")
OPEN: tuple[type, ...] = (McuRow, BenchSummary)  # extra keys allowed (JSON scalars, lists, dicts)
SHA256 = re.compile(r"[0-9a-f]{64}")


class SchemaError(ValueError):
    """report.json does not follow the schema; the message names the first offending key."""


def _is_typeddict(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, dict) and hasattr(tp, "__required_keys__")


def _name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    if _is_typeddict(tp):
        return "an object"
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_name(a) for a in typing.get_args(tp))
    if origin is list:
        return "a list"
    if origin is dict:
        return "an object"
    return {str: "a string", int: "an integer", float: "a number", bool: "true/false"}.get(tp, str(tp))


def _check(value: Any, tp: Any, where: str) -> None:
    if tp is Any:
        return
    if tp is type(None):
        if value is not None:
            raise SchemaError(f"{where} must be null, not {value!r}")
        return
    if _is_typeddict(tp):
        _check_typeddict(value, tp, where)
        return
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        _check_union(value, typing.get_args(tp), where)
        return
    if origin is list:
        if not isinstance(value, list):
            raise SchemaError(f"{where} must be a list, not {type(value).__name__}")
        (item,) = typing.get_args(tp)
        for i, v in enumerate(value):
            _check(v, item, f"{where}[{i}]")
        return
    if origin is dict:
        if not isinstance(value, dict):
            raise SchemaError(f"{where} must be an object, not {type(value).__name__}")
        _, item = typing.get_args(tp)
        for k, v in value.items():
            _check(v, item, f"{where}.{k}")
        return
    ok = {
        str: isinstance(value, str),
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
    }.get(tp)
    if ok is None:
        raise TypeError(f"report schema: unsupported type {tp!r} at {where}")
    if not ok:
        raise SchemaError(f"{where} must be {_name(tp)}, not {value!r:.60}")


def _check_union(value: Any, options: tuple[Any, ...], where: str) -> None:
    dicts = [o for o in options if _is_typeddict(o)]
    if dicts and isinstance(value, dict):
        # A union of objects: check against the alternative its keys fit best, to name the problem.
        keys = set(value)

        def fit(td: Any) -> tuple[int, int]:
            declared = set(typing.get_type_hints(td))
            return (len(td.__required_keys__ - keys), len(keys - declared))

        _check_typeddict(value, min(dicts, key=fit), where)
        return
    for o in options:
        try:
            _check(value, o, where)
            return
        except SchemaError:
            pass
    raise SchemaError(f"{where} must be {' or '.join(_name(o) for o in options)}, not {value!r:.60}")


def _check_json(value: Any, where: str, depth: int = 0) -> None:
    """An undeclared key of an open section: JSON scalars, and lists/objects of them (3 deep)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return
    if depth < 3 and isinstance(value, list):
        for i, v in enumerate(value):
            _check_json(v, f"{where}[{i}]", depth + 1)
        return
    if depth < 3 and isinstance(value, dict):
        for k, v in value.items():
            _check_json(v, f"{where}.{k}", depth + 1)
        return
    raise SchemaError(f"{where} must be a number, string, true/false, null, or a list/object of them")


def _check_typeddict(value: Any, td: Any, where: str) -> None:
    if not isinstance(value, dict):
        raise SchemaError(f"{where} must be an object, not {type(value).__name__}")
    hints = typing.get_type_hints(td)
    missing = sorted(td.__required_keys__ - set(value))
    if missing:
        raise SchemaError(f"{where} lacks {', '.join(missing)}")
    for key, v in value.items():
        at = f"{where}.{key}" if where else key
        if key in hints:
            _check(v, hints[key], at)
        elif td in OPEN:
            _check_json(v, at)
        else:
            raise SchemaError(f"{at} is not a known key")


def validate(report: Any) -> Report:
    """`report` itself if it follows the v2 schema, else SchemaError naming the first problem."""
    if not isinstance(report, dict):
        raise SchemaError(f"the top level must be an object, not {type(report).__name__}")
    if report.get("schema") != REPORT_SCHEMA:
        raise SchemaError(f"schema is {report.get('schema')!r}, expected {REPORT_SCHEMA!r}")
    _check_typeddict(report, Report, "")
    present = [k for k in VERIFY_SECTIONS if k in report]
    lacking = [k for k in VERIFY_SECTIONS if k not in report and k not in VERIFY_OPTIONAL]
    if present and lacking:
        raise SchemaError(f"has {', '.join(present)} from `edgernn verify` but not {', '.join(lacking)}")
    for key in ("checkpoint_sha256", "manifest_sha256"):
        if key in report and not SHA256.fullmatch(report[key]):
            raise SchemaError(f"{key} must be 64 lowercase hex digits")
    if "config" in report:
        try:
            ModelConfig.from_dict(report["config"])
        except InputError as e:
            raise SchemaError(f"config: {e}") from None
    for i, row in enumerate(report.get("mcu", [])):
        elf = row.get("elf", "")
        if elf and (PurePosixPath(elf).is_absolute() or ".." in PurePosixPath(elf).parts):
            raise SchemaError(f"mcu[{i}].elf must be relative to the export directory, not {elf!r}")
    return typing.cast(Report, report)
