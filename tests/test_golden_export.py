"""The committed reference artifacts of the demo model regenerate byte-identically from its checkpoint."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from edgernn.pipeline import FLOAT_ONNX, HEADER, INT_ONNX, QUANT_NAME, STEP_ONNX, export_dir

REFERENCE = Path(__file__).resolve().parent.parent / "export" / "japanese_vowels"
ARTIFACTS = (QUANT_NAME, FLOAT_ONNX, INT_ONNX, STEP_ONNX, HEADER)


@pytest.mark.slow
def test_committed_artifacts_regenerate_byte_identically(tmp_path):
    shutil.copy(REFERENCE / "checkpoint.pt", tmp_path / "checkpoint.pt")
    prefix = json.loads((REFERENCE / QUANT_NAME).read_text())["meta"]["c_prefix"]
    export_dir(tmp_path, prefix=prefix)
    for name in ARTIFACTS:
        assert (tmp_path / name).read_bytes() == (REFERENCE / name).read_bytes(), f"{name} differs"


def test_committed_report_shows_passing_parity_and_accuracy():
    report = json.loads((REFERENCE / "report.json").read_text())
    assert report["dataset"] == "japanese_vowels" and report["task"] == "many-to-one"
    assert all(p["passed"] for p in report["parity"])
    assert {p["b"] for p in report["parity"]} >= {"ort-float", "ort-int8", "ort-int8-step", "c-int8"}
    assert report["metrics"]["float"]["test_accuracy"] >= 0.90
    assert (
        abs(report["metrics"]["int8"]["test_accuracy"] - report["metrics"]["float"]["test_accuracy"]) <= 0.01
    )
