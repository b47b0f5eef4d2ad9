"""report.json (merged: verify owns the checks, mcu/bench add their own sections) and the verify table.

Every read is validated against edgernn.report.schema (schema "edgernn-report-v2"):

* no report.json: an empty report ({}), as before any `edgernn verify`;
* a file that is not JSON, or does not follow the schema: InputError "DIR/report.json is corrupt:
  ...; delete it or rerun `edgernn verify DIR`" (verify replaces a corrupt report, see
  `record_verification`; `mcu` and `bench` refuse to merge into one);
* an old v1 report (no "schema" key, as written before the schema existed) is accepted and
  upgraded in memory: "schema" added, absolute `mcu[].elf` paths made relative to the directory.
  The next write (verify, mcu or bench) stores it as v2.

Every write validates the merged report before it replaces the file: a section that breaks the
schema is edgernn's own bug (InternalError, exit 4) and leaves the old report.json in place.
"""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from edgernn.artifacts import write_text
from edgernn.errors import CheckFailed, InputError, InternalError
from edgernn.pipeline import REPORT_JSON, exclusive
from edgernn.report.schema import (
    OTHER_SECTIONS,
    REPORT_SCHEMA,
    VERIFY_SECTIONS,
    SchemaError,
    validate,
)

if TYPE_CHECKING:
    from edgernn.verify import Verification

OWNED_BY_VERIFY = VERIFY_SECTIONS


def corrupt(out_dir: str | os.PathLike[str], detail: str) -> InputError:
    out = Path(out_dir)
    return InputError(f"{out / REPORT_JSON} is corrupt: {detail}; delete it or rerun `edgernn verify {out}`")


def relative_to_dir(out_dir: str | os.PathLike[str], path: str) -> str:
    """`path` relative to the export directory, POSIX style, for report.json.

    An absolute path inside the directory is made relative; one from elsewhere that runs through
    an `mcu/` folder (a report written on another machine) keeps its part from `mcu/` on; anything
    else outside the directory is dropped (""), since the next machine could not open it anyway."""
    if not path:
        return ""
    p = Path(path)
    if not p.is_absolute():
        return p.as_posix()
    out = Path(out_dir)
    for base in (out.resolve(), out.absolute()):
        try:
            return p.relative_to(base).as_posix()
        except ValueError:
            pass
    parts = p.parts
    if "mcu" in parts[:-1]:
        i = len(parts) - 1 - parts[::-1].index("mcu")
        return PurePosixPath(*parts[i:]).as_posix()
    return ""


def _with_relative_paths(out_dir: str | os.PathLike[str], report: dict[str, Any]) -> dict[str, Any]:
    rows = report.get("mcu")
    if not isinstance(rows, list):
        return report
    fixed = [
        {**r, "elf": relative_to_dir(out_dir, r["elf"])}
        if isinstance(r, dict) and isinstance(r.get("elf"), str)
        else r
        for r in rows
    ]
    return {**report, "mcu": fixed}


def upgrade_v1(out_dir: str | os.PathLike[str], report: dict[str, Any]) -> dict[str, Any]:
    """A report written before the schema existed (no "schema" key), in the v2 form."""
    return {**_with_relative_paths(out_dir, report), "schema": REPORT_SCHEMA}


def read_report(out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """DIR/report.json, validated (and upgraded from v1); {} when there is none yet."""
    p = Path(out_dir) / REPORT_JSON
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except UnicodeDecodeError:
        raise corrupt(out_dir, "not UTF-8 text") from None
    except OSError as e:
        raise InputError(f"cannot read {p}: {e.strerror or e}") from None
    try:
        data = json.loads(text)
    except ValueError as e:
        raise corrupt(out_dir, f"not JSON ({e})") from None
    if isinstance(data, dict) and "schema" not in data:
        data = upgrade_v1(out_dir, data)
    try:
        validate(data)
    except SchemaError as e:
        raise corrupt(out_dir, str(e)) from None
    return dict(data)


def update_report(
    out_dir: str | os.PathLike[str],
    section: dict[str, Any],
    *,
    replace_corrupt: bool = False,
    expect_manifest_sha256: str | None = None,
    wait: bool = False,
) -> dict[str, Any]:
    """Replace the given top-level sections, keep the rest (e.g. verify keeps `mcu` and `bench`).

    Paths in the sections (mcu rows' `elf`) are stored relative to the directory. With
    `replace_corrupt` a corrupt report.json is replaced instead of refused (what verify, which
    rewrites the core of it, does). With `expect_manifest_sha256` the write happens only if
    DIR/manifest.json still has that digest: the export verify read is the one on disk. With
    `wait` it waits for the directory lock instead of failing when another process holds it."""
    unknown = sorted(set(section) - set(VERIFY_SECTIONS) - set(OTHER_SECTIONS))
    if unknown:
        raise InternalError(f"report.json has no section {', '.join(unknown)} (see edgernn.report.schema)")
    out = Path(out_dir)
    with exclusive(out, wait=wait):
        if expect_manifest_sha256 is not None:
            from edgernn.manifest import manifest_digest

            if manifest_digest(out) != expect_manifest_sha256:
                raise CheckFailed(
                    f"{out} was exported again while verify ran; report.json not written: "
                    f"rerun `edgernn verify {out}`"
                )
        try:
            old = read_report(out)
        except InputError:
            if not replace_corrupt:
                raise
            old = {}
        report = _with_relative_paths(out, {**old, **section, "schema": REPORT_SCHEMA})
        try:
            validate(report)
        except SchemaError as e:
            raise InternalError(f"edgernn made an invalid report.json ({e}); the old one is kept") from None
        _write(out, report)
    return report


def _write(out: Path, report: dict[str, Any]) -> None:
    write_text(out / REPORT_JSON, json.dumps(report, indent=2, sort_keys=True) + "\n")


def drop_measurements(out_dir: str | os.PathLike[str]) -> list[Path]:
    """`edgernn mcu` and `edgernn bench` measured the model.h that an export just replaced with
    another (a retrained model, another prefix, another edgernn): their figures (report.json's `mcu`
    and `bench`, bench.json) are another model's now, and are removed rather than shown as this
    one's. verify's sections stay: `edgernn report` refuses them once the export differs from the one
    verify checked (their manifest_sha256), and verify rewrites them. Returns the files changed.
    The caller (the export) holds the directory lock."""
    from edgernn.bench.store import BENCH_JSON

    out = Path(out_dir)
    changed = _remove(out, (BENCH_JSON,))
    try:
        report = json.loads((out / REPORT_JSON).read_text())
    except (OSError, ValueError):
        return changed  # none, or corrupt: verify replaces a corrupt one
    if isinstance(report, dict) and set(OTHER_SECTIONS) & set(report):
        _write(out, {k: v for k, v in report.items() if k not in OTHER_SECTIONS})
        changed.append(out / REPORT_JSON)
    return changed


def drop_report_page(out_dir: str | os.PathLike[str]) -> list[Path]:
    """report.md and its figures describe one export (report.md names its manifest's sha256): an
    export that writes another leaves them describing files no longer there, so it removes them
    (`edgernn verify` and `edgernn report` write them anew). Returns what was removed. The caller
    (the export) holds the directory lock."""
    from edgernn.pipeline import REPORT_MD
    from edgernn.report.plots import SCALING_PNG, SWEEP_PNG, TRACE_PNG

    return _remove(Path(out_dir), (REPORT_MD, TRACE_PNG, SCALING_PNG, SWEEP_PNG))


def _remove(out: Path, names: tuple[str, ...]) -> list[Path]:
    """Delete those of DIR/names that exist; the ones deleted."""
    removed = [out / n for n in names if (out / n).exists()]
    for f in removed:
        f.unlink()
    return removed


def record_verification(out_dir: str | os.PathLike[str], v: Verification) -> dict[str, Any]:
    """Write verify's sections: over a corrupt report.json too, and only if the export verify read
    is still the one on disk. Waits for the lock: another verify may still be reading, and an
    export that got in first is caught by the manifest check."""
    return update_report(
        out_dir,
        v.report,
        replace_corrupt=True,
        expect_manifest_sha256=v.manifest_sha256 or None,
        wait=True,
    )


def parity_rows(report: dict[str, Any]) -> list[str]:
    rows = []
    for p in report.get("parity", []):
        if "what" in p:
            detail = f"{p['what']}: {p['mismatches']} of {p['n']} seeds differ"
        elif "max_abs_diff" in p:
            detail = f"max |diff| {p['max_abs_diff']:.2e} (tol {p['tolerance']:.1e}) over {p['n']:,} values"
        else:
            detail = f"{p['mismatches']} mismatches in {p['n']:,} integers"
        rows.append(f"{p['a']:>12} vs {p['b']:<14} {detail:<52} {'PASS' if p['passed'] else 'FAIL'}")
    return rows


def verify_table(report: dict[str, Any]) -> str:
    m = report.get("metrics", {})
    f, i = m.get("float", {}), m.get("int8", {})
    size = report.get("size", {})
    lines = [
        f"{report.get('dataset')} ({report.get('task')}), test split",
        f"  float accuracy {f.get('test_accuracy', 0):.4f}   int8 accuracy {i.get('test_accuracy', 0):.4f}   "
        f"agreement {i.get('agreement_with_float', 0):.4f}   balanced (float/int8) "
        f"{f.get('balanced_accuracy', 0):.4f}/{i.get('balanced_accuracy', 0):.4f}",
    ]
    if "source" in m:
        lines.append(
            f"  source model accuracy {m['source'].get('test_accuracy', 0):.4f} (the model imported)"
        )
    if "nats_per_char" in f:
        lines.append(f"  nats/char float {f['nats_per_char']:.3f}   int8 {i.get('nats_per_char', 0):.3f}")
    lines += ["  " + r for r in parity_rows(report)]
    if size:
        lines.append(
            f"  weights {size['weights_bytes']:,} B + LUT {size['lut_bytes']:,} B flash, "
            f"state {size['state_bytes']} B RAM, "
            f"{size['macs_per_step']:,} MACs/step"
        )
    return "\n".join(lines)
