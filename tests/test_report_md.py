"""`edgernn report`: report.md has every section, works text-only, and is deterministic."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import typing
from dataclasses import fields
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgernn.bench import Settings, run_bench
from edgernn.cli import main
from edgernn.config import ModelConfig, TrainConfig
from edgernn.contract.quantize import quantize_model
from edgernn.errors import CheckFailed, InputError, InternalError
from edgernn.report.markdown import (
    NO_PLOT_NOTE,
    SCALING_PNG,
    TRACE_PNG,
    Predictions,
    accuracy_section,
    build_report,
    pyplot,
    samples_section,
    size_section,
    write_report_md,
)
from edgernn.report.schema import REPORT_SCHEMA, McuRow, SchemaError, TrainSection, validate
from edgernn.report.store import read_report, record_verification, update_report
from edgernn.train.checkpoint import Checkpoint
from edgernn.train.model import EdgeRNN
from edgernn.verify import verify_dir

SECTIONS = (
    "# edgernn report: japanese_vowels",
    "## Model card",
    "CC BY 4.0",
    "## Accuracy: float vs int8",
    "Confusion matrices",
    "## Parity across backends",
    "## Size and compute",
    "## Float vs int8 over one sequence",
    "## Benchmarks",
)
# The smallest bench that runs every measurement (one hidden size: no fit line, which the page allows).
TINY = Settings(
    repeats=2,
    block_s=0.0005,
    warmup_s=0.0,
    hidden_sizes=(4,),
    lengths=(5,),
    callgrind_steps=4,
    batches=(1, 2),
)


@pytest.fixture(scope="module")
def verified(jv_export, tmp_path_factory):
    """A private copy of the default export with verify's report.json (no bench yet)."""
    d = tmp_path_factory.mktemp("report") / "jv"
    shutil.copytree(jv_export, d)
    update_report(d, verify_dir(d).report)
    return d


@pytest.fixture(scope="module")
def benched(verified, tmp_path_factory):
    d = tmp_path_factory.mktemp("report_bench") / "jv"
    shutil.copytree(verified, d)
    run_bench(d, settings=TINY)
    return d


def no_matplotlib(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if matplotlib were not installed: `import matplotlib` raises ImportError."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)


def test_report_has_every_section_and_the_figures(benched):
    pytest.importorskip("matplotlib")
    written = write_report_md(benched)
    text = (benched / "report.md").read_text()
    for s in SECTIONS:
        assert s in text, s
    assert "Streaming latency per step" in text and "Scaling with hidden size" in text
    assert f"]({TRACE_PNG})" in text and f"]({SCALING_PNG})" in text
    for name in (TRACE_PNG, SCALING_PNG):
        assert (benched / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert written.note is None and {p.name for p in written.files} == {"report.md", TRACE_PNG, SCALING_PNG}
    assert not list(benched.glob(".*.tmp"))


def test_text_only_without_matplotlib(verified, tmp_path, monkeypatch):
    no_matplotlib(monkeypatch)
    assert pyplot() is None
    d = tmp_path / "jv"
    shutil.copytree(verified, d)
    written = write_report_md(d)
    text = (d / "report.md").read_text()
    assert [p.name for p in written.files] == ["report.md"] and written.note == NO_PLOT_NOTE
    assert "matplotlib is not installed" in text and "![" not in text
    for s in SECTIONS:
        assert s in text, s
    assert "Per-step max error" in text  # the trace degrades to numbers
    assert "No bench.json yet" in text
    assert not list(d.glob("*.png"))


def test_report_text_is_deterministic(verified):
    assert build_report(verified, plots=False).text == build_report(verified, plots=False).text


def test_report_needs_verification_results(jv_export, tmp_path):
    d = tmp_path / "jv"
    shutil.copytree(jv_export, d, ignore=shutil.ignore_patterns("report.json"))
    with pytest.raises(InputError, match="edgernn verify"):
        build_report(d)
    res = CliRunner().invoke(main, ["report", str(d)])
    assert res.exit_code == 2 and "edgernn verify" in res.output and "Traceback" not in res.output


def test_cli_report_text_only(verified, tmp_path):
    d = tmp_path / "jv"
    shutil.copytree(verified, d)
    res = CliRunner().invoke(main, ["report", str(d), "--no-plots"])
    assert res.exit_code == 0, res.output
    assert f"wrote {d / 'report.md'}" in res.output and "--no-plots" in res.output
    assert "## Model card" in (d / "report.md").read_text()


def test_generated_samples_for_one_to_many():
    cfg = ModelConfig(
        task="one-to-many", input_size=4, hidden_size=8, num_classes=6, vocab_size=6, embed_dim=4
    )
    vocab = ["<pad>", "<s>", "</s>", "a", "b", "c"]
    model = EdgeRNN(cfg).eval()
    qm = quantize_model(model, None, None, meta={"start_token": 1, "end_token": 2})
    text = samples_section(Checkpoint(model, {"vocab": vocab}, ""), qm)
    assert "float, temperature 0.8, seeds 0–9" in text and "float, greedy" in text and "int8, greedy" in text
    assert text == samples_section(Checkpoint(model, {"vocab": vocab}, ""), qm)  # seeded: reproducible


# ---------------------------------------------------------------------------------------------
# report.json: versioned, typed, validated on read and on write

COMMITTED_V1 = Path(__file__).resolve().parent.parent / "export" / "japanese_vowels" / "report.json"


def _report(d: Path) -> dict:
    return json.loads((d / "report.json").read_text())


def test_report_json_carries_its_schema_and_validates(verified):
    """(The bench summary's fit with the schema: update_report validates it in `benched`.)"""
    r = _report(verified)
    assert r["schema"] == REPORT_SCHEMA
    assert validate(r) is r
    assert {"dataset", "parity", "metrics", "size", "checkpoint_sha256"} <= set(r)
    assert read_report(verified) == r


def test_missing_report_is_empty(tmp_path):
    assert read_report(tmp_path) == {}


MCU_ROW = {
    "target": "cortex-m4",
    "compiler": "zig",
    "kernel": "dsp",
    "emulator": "unicorn",
    "flash_bytes": 1,
    "ram_bytes": 1,
    "insns_per_step": 1.0,
    "insns_per_mac": 1.0,
    "mismatches": 0,
}
CORRUPT = {
    "not JSON": ('{"schema": "edgernn-report-v2", ', "not JSON"),
    "not an object": ("[1, 2]", "top level must be an object"),
    "unknown schema": ('{"schema": "edgernn-report-v9"}', "schema is 'edgernn-report-v9'"),
    "unknown section": (json.dumps({"schema": REPORT_SCHEMA, "extra": 1}), "extra is not a known key"),
    "wrong type": (json.dumps({"schema": REPORT_SCHEMA, "mcu": [{"target": 3}]}), "mcu[0]"),
    "absolute image path": (
        json.dumps({"schema": REPORT_SCHEMA, "mcu": [{**MCU_ROW, "elf": "/abs/firmware.elf"}]}),
        "must be relative",
    ),
    "half of verify's sections": (json.dumps({"schema": REPORT_SCHEMA, "dataset": "x"}), "but not task"),
}


@pytest.mark.parametrize("case", list(CORRUPT))
def test_corrupt_report_is_refused_with_advice(verified, tmp_path, case):
    text, fragment = CORRUPT[case]
    d = tmp_path / "jv"
    shutil.copytree(verified, d)
    (d / "report.json").write_text(text)
    with pytest.raises(InputError) as e:
        read_report(d)
    msg = str(e.value)
    assert msg.startswith(f"{d / 'report.json'} is corrupt: ") and fragment in msg, msg
    assert msg.endswith(f"delete it or rerun `edgernn verify {d}`"), msg
    res = CliRunner().invoke(main, ["report", str(d), "--no-plots"])
    assert res.exit_code == 2 and "is corrupt" in res.output and "Traceback" not in res.output
    with pytest.raises(InputError, match="is corrupt"):  # mcu and bench do not merge into it
        update_report(d, {"bench": {"file": "bench.json", "quick": True, "machine": "m", "recorded_at": "t"}})
    assert (d / "report.json").read_text() == text


def test_verify_replaces_a_corrupt_report(verified, tmp_path):
    d = tmp_path / "jv"
    shutil.copytree(verified, d)
    (d / "report.json").write_text("{not json")
    res = CliRunner().invoke(main, ["verify", str(d), "--no-c"])
    assert res.exit_code == 0, res.output
    assert validate(_report(d))["dataset"] == "japanese_vowels"


def test_v1_report_is_upgraded_on_read_and_stored_as_v2(verified, tmp_path):
    """The committed report.json predates the schema (no "schema" key, absolute image paths)."""
    d = tmp_path / "jv"
    shutil.copytree(verified, d)
    v1 = json.loads(COMMITTED_V1.read_text())
    v1.pop("schema", None)
    for row in v1.get("mcu", []):  # as written before: absolute, from some other machine
        row["elf"] = f"/somewhere/else/export/jv/mcu/{row['target']}-x/firmware.elf"
    (d / "report.json").write_text(json.dumps(v1))
    r = read_report(d)
    assert r["schema"] == REPORT_SCHEMA and r["parity"] == v1["parity"]
    assert r["mcu"] and all(row["elf"] == f"mcu/{row['target']}-x/firmware.elf" for row in r["mcu"])
    update_report(d, {"bench": r["bench"]})
    assert _report(d) == r  # the next write stores the upgraded form


def test_update_report_keeps_other_sections_and_stores_relative_paths(verified, tmp_path):
    d = tmp_path / "jv"
    shutil.copytree(verified, d)
    row = json.loads(COMMITTED_V1.read_text())["mcu"][0]
    row["elf"] = str((d / "mcu" / "cortex-m4-zig" / "firmware.elf").resolve())  # as targets.check gives it
    update_report(d, {"mcu": [row]})
    assert _report(d)["mcu"][0]["elf"] == "mcu/cortex-m4-zig/firmware.elf"
    before = _report(d)
    record_verification(d, verify_dir(d, with_c=False))
    after = _report(d)
    assert after["mcu"] == before["mcu"] and after["parity"] != before["parity"]  # no c-int8 row now
    assert not [s for s in _strings(after) if s.startswith("/") or str(d) in s]


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def test_update_report_refuses_what_breaks_the_schema(verified, tmp_path):
    d = tmp_path / "jv"
    shutil.copytree(verified, d)
    before = (d / "report.json").read_bytes()
    with pytest.raises(InternalError, match=r"invalid report\.json"):
        update_report(d, {"bench": {"file": "bench.json"}})
    with pytest.raises(InternalError, match="no section surprise"):
        update_report(d, {"surprise": 1})
    assert (d / "report.json").read_bytes() == before


def test_report_is_written_only_for_the_export_verify_read(verified, tmp_path):
    d = tmp_path / "jv"
    shutil.copytree(verified, d)
    v = verify_dir(d, with_c=False)
    before = (d / "report.json").read_bytes()
    (d / "manifest.json").write_text((d / "manifest.json").read_text() + " ")  # "exported again"
    with pytest.raises(CheckFailed, match="exported again while verify ran"):
        record_verification(d, v)
    assert (d / "report.json").read_bytes() == before


def test_schema_mirrors_the_writers():
    from edgernn.targets.check import McuResult

    assert set(TrainSection.__annotations__) == {f.name for f in fields(TrainConfig)}
    assert {f.name for f in fields(McuResult)} <= set(typing.get_type_hints(McuRow))
    with pytest.raises(SchemaError, match="schema is None"):
        validate({})


def test_parity_rows_of_every_kind_validate_and_a_bad_one_is_named(verified):
    r = _report(verified)
    gen = {
        "a": "torch-int8",
        "b": "c-int8",
        "what": "greedy generation",
        "mismatches": 0,
        "n": 26,
        "passed": True,
    }
    ok = {**r, "parity": [*r["parity"], gen]}
    assert validate(ok) is ok
    from edgernn.report.markdown import parity_section

    assert "greedy generation: 0 of 26 seeds differ" in parity_section(ok)  # not "0 mismatches in 26"
    bad = {**r, "parity": [*r["parity"], {**gen, "passed": "yes"}]}
    with pytest.raises(SchemaError, match=rf"parity\[{len(r['parity'])}\]\.passed must be true/false"):
        validate(bad)
    with pytest.raises(SchemaError, match=r"size lacks head_macs"):
        validate({**r, "size": {k: v for k, v in r["size"].items() if k != "head_macs"}})
    with pytest.raises(SchemaError, match="config: hidden_size must be an integer"):
        validate({**r, "config": {**r["config"], "hidden_size": 0}})


def test_mcu_table_shows_simavr_cycles_and_the_m4_estimate(tmp_path):
    rows = [
        {**MCU_ROW, "est_m4_cycles_per_step": 3056.0},
        {
            **MCU_ROW,
            "target": "avr",
            "insns_per_step": 0.0,
            "cycles_per_step": 70305.0,
            "us_per_step_16mhz": 4394.1,
        },
        {**MCU_ROW, "target": "cortex-m0plus", "sequences": 20},
    ]
    table = size_section({"mcu": rows}, tmp_path).splitlines()
    mcu = [line.split(" | ") for line in table if line.count(" | ") == 9]  # the ten-column table
    cells = {row[0].lstrip("| "): row[7] for row in mcu}
    assert cells["cortex-m4"] == "3,056 est."
    assert cells["avr"] == "70,305 (4,394)"
    assert cells["cortex-m0plus"] == "-"
    checked = {row[0].lstrip("| "): row[8] for row in mcu}
    assert checked["cortex-m0plus"] == "0 (20)"  # `mcu --sequences 20`: not the whole split


def test_report_md_describes_one_export_and_goes_with_it(verified, tmp_path):
    """report.md names the manifest it describes; an export that writes other files removes it and
    its figures, and `report` will not build a page from a verify of the earlier export."""
    d = tmp_path / "jv"
    shutil.copytree(verified, d)
    digest = json.loads((d / "report.json").read_text())["manifest_sha256"]
    assert digest == hashlib.sha256((d / "manifest.json").read_bytes()).hexdigest()
    runner = CliRunner()
    assert runner.invoke(main, ["report", str(d)]).exit_code == 0
    page = (d / "report.md").read_bytes()
    assert f"manifest.json has sha256 `{digest}`" in page.decode()

    res = runner.invoke(main, ["export", str(d)])  # the same files again: the page still holds
    assert res.exit_code == 0 and "removed" not in res.output, res.output
    assert (d / "report.md").read_bytes() == page and (d / TRACE_PNG).exists()

    (d / "bench.json").write_text("{}")  # as if `edgernn bench` had measured this model.h
    res = runner.invoke(main, ["export", str(d), "--prefix", "other"])
    assert res.exit_code == 0, res.output
    assert f"removed {d / 'report.md'}" in res.output and f"removed {d / TRACE_PNG}" in res.output
    # model.h changed too, so its measurements went: the hint names what writes them again.
    assert f"`edgernn mcu {d}`, `edgernn bench {d}` and `edgernn report {d}`" in res.output
    assert not (d / "report.md").exists() and not (d / TRACE_PNG).exists()
    res = runner.invoke(main, ["report", str(d), "--no-plots"])
    assert res.exit_code == 1 and "verified on an earlier export" in res.output, res.output
    assert not (d / "report.md").exists()

    record_verification(d, verify_dir(d, with_c=False))
    assert runner.invoke(main, ["report", str(d), "--no-plots"]).exit_code == 0
    new = hashlib.sha256((d / "manifest.json").read_bytes()).hexdigest()
    assert new != digest and f"`{new}`" in (d / "report.md").read_text()


def test_a_report_verified_before_the_manifest_digest_was_recorded_still_builds(verified, tmp_path):
    d = tmp_path / "jv"
    shutil.copytree(verified, d)
    report = json.loads((d / "report.json").read_text())
    del report["manifest_sha256"]
    (d / "report.json").write_text(json.dumps(report))
    assert "## Model card" in build_report(d, plots=False).text
    report["manifest_sha256"] = "F" * 64
    (d / "report.json").write_text(json.dumps(report))
    with pytest.raises(InputError, match="manifest_sha256 must be 64 lowercase hex"):
        build_report(d, plots=False)


def test_accuracy_at_chance_is_called_out() -> None:
    """A model no better than always answering the most common class gets a warning beside its
    accuracy; one that beats that share does not."""
    import numpy as np

    y = np.array([0, 0, 1, 2, 2, 2])
    report = {"metrics": {"float": {"test_accuracy": 0.5}, "int8": {"test_accuracy": 0.5}}}
    preds = Predictions(y=y, float_pred=np.full(6, 2), int_pred=np.full(6, 2))
    text = accuracy_section(report, preds, ["a", "b", "c"])
    assert "> warning: test accuracy 0.5000 is no better than always answering the most common" in text
    assert "(2 c: 0.5000)" in text
    report["metrics"]["float"]["test_accuracy"] = 4 / 6
    assert "warning" not in accuracy_section(report, preds, ["a", "b", "c"])
