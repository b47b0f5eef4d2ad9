"""`edgernn report`: report.md has every section, works text-only, and is deterministic."""

from __future__ import annotations

import shutil
import sys

import pytest
from click.testing import CliRunner

from edgernn.bench.run import Settings, run_bench
from edgernn.cli import main
from edgernn.config import ModelConfig
from edgernn.contract.quant import quantize_model
from edgernn.errors import InputError
from edgernn.report.markdown import (
    NO_PLOT_NOTE,
    SCALING_PNG,
    TRACE_PNG,
    build_report,
    pyplot,
    samples_section,
    write_report_md,
)
from edgernn.report.store import update_report
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
