"""The committed reference export of the demo model regenerates from its checkpoint: the artifacts
byte for byte, the manifest's digests, and verify's numbers in the committed report.json."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from edgernn.manifest import MANIFEST, MANIFEST_SCHEMA, read_manifest
from edgernn.pipeline import EXPORTED, QUANT_NAME, export_dir
from edgernn.report.store import read_report
from edgernn.verify import c_compiler_available, verify_dir

REFERENCE = Path(__file__).resolve().parent.parent / "export" / "japanese_vowels"
ARTIFACTS = EXPORTED


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("golden")
    shutil.copy(REFERENCE / "checkpoint.pt", d / "checkpoint.pt")
    prefix = json.loads((REFERENCE / QUANT_NAME).read_text())["meta"]["c_prefix"]
    export_dir(d, prefix=prefix)
    return d


@pytest.mark.slow
def test_committed_artifacts_regenerate_byte_identically(regenerated: Path) -> None:
    for name in ARTIFACTS:
        assert (regenerated / name).read_bytes() == (REFERENCE / name).read_bytes(), f"{name} differs"
    manifest, _ = read_manifest(regenerated)
    assert manifest["schema"] == MANIFEST_SCHEMA and set(manifest["artifacts"]) == set(ARTIFACTS)
    for name in ARTIFACTS:
        committed = (REFERENCE / name).read_bytes()
        assert manifest["artifacts"][name] == {
            "sha256": hashlib.sha256(committed).hexdigest(),
            "bytes": len(committed),
        }, name
    ckpt = hashlib.sha256((REFERENCE / "checkpoint.pt").read_bytes()).hexdigest()
    assert manifest["checkpoint"] == {"file": "checkpoint.pt", "sha256": ckpt}
    if (REFERENCE / MANIFEST).exists():  # committed since the manifest exists: byte for byte too
        assert (regenerated / MANIFEST).read_bytes() == (REFERENCE / MANIFEST).read_bytes()


@pytest.mark.slow
def test_committed_report_is_what_verify_computes(regenerated: Path) -> None:
    """Runs verify on the regenerated export: the checks pass, the accuracy holds, and the
    committed report.json carries these same numbers (so it is not stale)."""
    v = verify_dir(regenerated, with_c=c_compiler_available())
    report, committed = v.report, read_report(REFERENCE)
    assert v.passed, [p for p in report["parity"] if not p["passed"]]
    assert report["dataset"] == "japanese_vowels" and report["task"] == "many-to-one"
    backends = {"ort-float", "ort-int8", "ort-int8-step"} | ({"c-int8"} if c_compiler_available() else set())
    assert {p["b"] for p in report["parity"]} >= backends
    f, i = report["metrics"]["float"], report["metrics"]["int8"]
    assert f["test_accuracy"] >= 0.90 and abs(i["test_accuracy"] - f["test_accuracy"]) <= 0.01
    for key in ("dataset", "task", "config", "train", "data", "size", "checkpoint_sha256"):
        assert report[key] == committed[key], key
    for kind in ("float", "int8"):
        for name, value in report["metrics"][kind].items():
            assert committed["metrics"][kind][name] == pytest.approx(value, rel=1e-6, abs=1e-9), (kind, name)
    for ours, theirs in zip(report["parity"], committed["parity"], strict=False):
        assert (ours["b"], ours["passed"], ours.get("mismatches")) == (
            theirs["b"],
            theirs["passed"],
            theirs.get("mismatches"),
        )
