"""--frame K: K samples side by side make one RNN step, on every backend (edgernn.frame).

A framed model is trained for real on a long bundled set (ArrowHead, 251 samples), exported and
checked: torch float = ORT float, and the torch integer reference = ORT (sequence, step, raw) = C
= an emulated Cortex-M, integer for integer. Firmware streams one sample at a time through
PREFIX_push_sample; over a 10,000-sample stream every state it steps to equals the reference's.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import assert_every_backend_exact

from edgernn.cli import main
from edgernn.config import ModelConfig, TrainConfig
from edgernn.contract.reference import int_forward
from edgernn.errors import InputError
from edgernn.pipeline import export_dir, load_quantized, train_to_dir
from edgernn.train.loop import ModelSpec
from edgernn.verify import verify_dir

FRAME = 10


@pytest.fixture(scope="module")
def framed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("framed")
    spec = ModelSpec(hidden_size=16, frame=FRAME)
    train_to_dir(out, dataset="arrowhead", spec=spec, tc=TrainConfig(epochs=4, lr=5e-3), progress=False)
    export_dir(out, prefix="ah")
    return out


def test_framed_model_is_bit_exact_on_every_backend(framed: Path) -> None:
    assert_every_backend_exact(framed)
    qm = load_quantized(framed)
    assert qm.config.frame == FRAME and qm.config.input_size == FRAME * qm.config.sample_size
    # One scale per sample feature, the same at every position of a frame.
    assert np.array_equal(qm.input_scale, np.tile(qm.sample_scale, FRAME))


@pytest.mark.slow
def test_framed_model_on_emulated_cortex_m(framed: Path) -> None:
    from test_mcu import _assert_exact, _zig_path

    from edgernn.targets.check import check_dir

    _zig_path()
    results = check_dir(framed, ("cortex-m0plus", "cortex-m4"), ("zig",), max_sequences=20)
    _assert_exact(results, "zig+unicorn")
    header = (framed / "model.h").read_text()
    assert "#define AH_FRAME" in header and "int ah_push_sample(ah_state_t *st" in header
    # RAM counts the frame being filled: state = h + one frame of int8 samples + the fill count.
    assert all(r.state_bytes == 16 + FRAME + 2 for r in results)


@pytest.mark.parametrize("frame", [FRAME, 1])
def test_push_sample_streams_10000_samples(framed: Path, tmp_path: Path, frame: int) -> None:
    """One sample at a time: a step every FRAME samples, each state equal to the reference's. An
    unframed model has the same call (FRAME 1: every sample steps), so firmware takes either."""
    from edgernn.backends.c.build import Compiler
    from edgernn.backends.c.codegen import write_header
    from edgernn.synthetic import random_quantized, small_config

    if frame == 1:
        _, qm = random_quantized(small_config("many-to-one", 5, 16, classes=3), seed=4)
        write_header(qm, tmp_path / "model.h", "ah")
        framed = tmp_path
        assert re.search(r"#define AH_FRAME +1 ", (tmp_path / "model.h").read_text())
    else:
        qm = load_quantized(framed)
    n = 10_000
    rng = np.random.default_rng(0)
    samples = rng.integers(-127, 128, size=(n, qm.config.sample_size)).astype(np.int8)
    ref = int_forward(qm, samples[None], np.array([n]))
    want = ref.hidden.numpy()[0, 0]  # (n // frame, H)
    values = ",".join(str(int(v)) for v in samples.reshape(-1))
    program = f"""
#include <stdio.h>
#define EDGERNN_IMPLEMENTATION
#include "model.h"
static const int8_t samples[{n}][AH_SAMPLE_SIZE] = {{{values}}};
int main(void) {{
    ah_state_t st;
    int32_t logits[AH_NUM_CLASSES];
    size_t i, j, steps = 0;
    ah_init(&st);
    for (i = 0; i < {n}; ++i) {{
        if (ah_push_sample(&st, samples[i])) {{
            ++steps;
            for (j = 0; j < AH_HIDDEN_SIZE; ++j) {{
                printf("%d ", st.h[0][j]);
            }}
            printf("\\n");
        }}
    }}
    (void)ah_classify(&st, logits);
    printf("logits");
    for (j = 0; j < AH_NUM_CLASSES; ++j) {{
        printf(" %ld", (long)logits[j]);
    }}
    printf("\\n");
    return steps == {n // frame} ? 0 : 1;
}}
"""
    src = tmp_path / "stream.c"
    src.write_text(program)
    exe = tmp_path / "stream"
    cc = Compiler.discover()
    subprocess.run([*cc.command, "-std=c99", "-O2", f"-I{framed}", str(src), "-o", str(exe)], check=True)
    lines = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.splitlines()
    got = np.array([[int(v) for v in line.split()] for line in lines[:-1]])
    assert got.shape == want.shape and np.array_equal(got, want)
    logits = [int(v) for v in lines[-1].split()[1:]]
    assert logits == ref.logits.numpy()[0].tolist()


@pytest.mark.parametrize("hidden", [16, 17])
def test_state_bytes_hold_on_every_target(tmp_path: Path, hidden: int) -> None:
    """PREFIX_STATE_BYTES is sizeof(PREFIX_state_t) on the host, Arm and AVR (uint16_t aligned to
    1 byte there) whether h + frame is an even or an odd number of bytes: the header's own
    compile-time check fails the build otherwise."""
    import shutil

    from edgernn.backends.c.codegen import model_sizes, write_header
    from edgernn.synthetic import random_quantized, small_config

    cfg = dataclasses.replace(small_config("many-to-one", 7, hidden, classes=3), frame=7)
    _, qm = random_quantized(cfg, seed=3)
    write_header(qm, tmp_path / "model.h", "fs")
    assert model_sizes(qm)["state"] == hidden + 7 + (hidden + 7) % 2 + 2
    src = tmp_path / "impl.c"
    src.write_text('#define EDGERNN_IMPLEMENTATION\n#include "model.h"\n')
    compilers = [
        ["gcc"],
        ["arm-none-eabi-gcc", "-mcpu=cortex-m0plus", "-mthumb"],
        ["avr-gcc", "-mmcu=atmega328p"],
    ]
    ran = 0
    for cc in compilers:
        if shutil.which(cc[0]) is None:
            continue
        subprocess.run([*cc, "-std=c99", "-Os", "-c", str(src), "-o", str(tmp_path / "impl.o")], check=True)
        ran += 1
    if ran < len(compilers):
        pytest.skip("arm-none-eabi-gcc or avr-gcc missing; `make mcu-tools` installs them")


def test_bad_frame_values_are_one_line_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    for bad, says in (("0", "Invalid value for '--frame'"), ("-3", "Invalid value for '--frame'")):
        r = runner.invoke(
            main, ["train", "--dataset", "arrowhead", "--frame", bad, "--out", str(tmp_path / "x")]
        )
        assert r.exit_code == 2 and says in r.output, r.output
    r = runner.invoke(
        main, ["train", "--dataset", "arrowhead", "--frame", "300", "--out", str(tmp_path / "x")]
    )
    assert r.exit_code == 2
    assert "--frame 300 is longer than the shortest sequence of arrowhead (251 samples)" in r.output
    assert not (tmp_path / "x" / "checkpoint.pt").exists()
    for dataset, kind in (("basic_motions", "many-to-many"), ("names_by_list", "token")):
        r = runner.invoke(main, ["train", "--dataset", dataset, "--frame", "2", "--out", str(tmp_path / "x")])
        assert r.exit_code == 2, r.output
        assert r.output.strip() == f"error: --frame is for many-to-one feature data; {dataset} is {kind} data"
        assert "\n" not in r.output.strip()
    with pytest.raises(InputError, match="many-to-one feature models"):
        ModelConfig("many-to-many", 12, 8, 3, frame=2)
    with pytest.raises(InputError, match="not a multiple of frame"):
        ModelConfig("many-to-one", 12, 8, 3, frame=5)


def test_predict_reads_samples_on_every_backend(framed: Path, tmp_path: Path) -> None:
    """`edgernn predict` on raw samples: the two integer backends give the same records, and the
    float backends agree with each other."""
    from edgernn.data.bundled import load_dataset

    test = load_dataset("arrowhead").test
    np.savez(tmp_path / "some.npz", X=test.x[:20], lengths=test.lengths[:20])
    runner = CliRunner()
    out = {}
    for backend in ("c", "onnx-int8", "torch", "onnx"):
        path = tmp_path / f"{backend}.csv"
        args = ["predict", str(framed), "--data", str(tmp_path / "some.npz"), "--backend", backend]
        r = runner.invoke(main, [*args, "--out", str(path)])
        assert r.exit_code == 0, r.output
        out[backend] = path.read_text()
    assert out["c"] == out["onnx-int8"] and out["torch"] == out["onnx"]
    assert out["c"].count("\n") == 21


def test_every_backend_refuses_a_sequence_shorter_than_a_frame(framed: Path, tmp_path: Path) -> None:
    """A device never steps on fewer samples than a frame: no backend may answer for one (the ONNX
    backends once returned the head on the zero state)."""
    from edgernn.data.bundled import load_dataset

    test = load_dataset("arrowhead").test
    lengths = test.lengths[:3].copy()
    lengths[1] = FRAME - 1
    np.savez(tmp_path / "short.npz", X=test.x[:3], lengths=lengths)
    for backend in ("c", "onnx-int8", "torch", "onnx"):
        args = ["predict", str(framed), "--data", str(tmp_path / "short.npz"), "--backend", backend]
        r = CliRunner().invoke(main, args)
        assert r.exit_code == 2, (backend, r.output)
        assert r.output.strip() == (
            f"error: short.npz: sequence '1' has {FRAME - 1} samples, fewer than one frame ({FRAME} samples)"
        ), backend


def test_onnx_example_streams_a_framed_model_sample_by_sample(framed: Path, tmp_path: Path) -> None:
    """examples/onnxruntime_stream.py, one raw sample per CSV row: it steps once a frame is full and
    ends on the C runtime's integer logits for the same sequence (its last partial frame dropped)."""
    import sys

    from edgernn.data.bundled import load_dataset
    from edgernn.pipeline import RAW_STEP_ONNX
    from edgernn.predict import Runtime

    qm = load_quantized(framed)
    test = load_dataset("arrowhead").test
    i = qm.config.sample_size  # the normalization lists a frame's K * I values: one sample's I
    raw = (test.x[0, : int(test.lengths[0])] * qm.norm_std[:i] + qm.norm_mean[:i]).astype(np.float32)
    assert len(raw) % FRAME  # a partial frame is left over
    csv = tmp_path / "samples.csv"
    csv.write_text("".join(",".join(repr(float(v)) for v in row) + "\n" for row in raw))
    example = Path(__file__).resolve().parent.parent / "examples" / "onnxruntime_stream.py"
    r = subprocess.run(
        [sys.executable, str(example), str(framed / RAW_STEP_ONNX), str(csv)],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    (want,) = Runtime(framed, backend="c").predict([raw])
    assert want.logits_q is not None
    assert r.stdout.splitlines()[-1] == "logits " + " ".join(str(int(v)) for v in want.logits_q)


@pytest.mark.parametrize("backend", ["c", "onnx-int8", "onnx", "torch"])
def test_python_stream_pushes_samples_and_steps_per_frame(framed: Path, backend: str) -> None:
    """Runtime.stream().push(sample): None until a frame is full, then the step's prediction; the
    last one is predict's on the whole sequence (its partial frame dropped), on every backend."""
    from edgernn.data.bundled import load_dataset
    from edgernn.predict import Runtime

    qm = load_quantized(framed)
    i = qm.config.sample_size
    test = load_dataset("arrowhead").test
    raw = (test.x[1, : int(test.lengths[1])] * qm.norm_std[:i] + qm.norm_mean[:i]).astype(np.float32)
    rt = Runtime(framed, backend=backend)
    stream = rt.stream()
    with pytest.raises(InputError, match="feed it with push"):
        stream.step(raw[0])
    answers = [stream.push(sample) for sample in raw]
    stepped = [k for k, a in enumerate(answers) if a is not None]
    assert stepped == list(range(FRAME - 1, len(raw) - len(raw) % FRAME, FRAME))
    assert stream.steps == len(raw) // FRAME
    last = answers[stepped[-1]]
    (whole,) = rt.predict([raw])
    assert last is not None and last.predicted == whole.predicted
    if whole.logits_q is not None:
        assert last.logits_q is not None and (last.logits_q == whole.logits_q).all()
    else:
        np.testing.assert_allclose(last.logits, whole.logits, rtol=0, atol=1e-5)


def test_bidirectional_framing_is_refused() -> None:
    with pytest.raises(InputError, match="unidirectional many-to-one feature models"):
        ModelConfig("many-to-one", 12, 8, 3, bidirectional=True, frame=2)


def test_bench_and_report_of_a_framed_model(framed: Path, tmp_path: Path) -> None:
    """bench times one step as one frame on every backend; report's trace reads the frames."""
    import shutil

    from edgernn.bench import run_bench
    from edgernn.report.markdown import write_report_md
    from edgernn.report.store import record_verification

    d = tmp_path / "copy"
    shutil.copytree(framed, d)
    record_verification(d, verify_dir(d))
    result = run_bench(d, quick=True)
    assert result["elapsed_s"] > 0
    # Every throughput row counts RNN steps (a frame each; ArrowHead: 251 samples, 25 frames of 10),
    # the unit of the native driver's rows, not samples.
    thr = result["throughput"]
    assert thr["steps"] == thr["sequences"] * (251 // FRAME) and thr["mean_length"] == 251 // FRAME
    written = write_report_md(d, plots=False)
    assert (d / "report.md").exists() and written.files


def test_firmware_package_demo_of_a_framed_model(framed: Path, tmp_path: Path) -> None:
    """The packages' demo streams raw samples through PREFIX_push_sample, as firmware does (no
    copy of the sequence in RAM, no run buffer), and prints the integer reference's class. The
    sequence's samples past its last full frame are pushed too, and stepped on by neither."""
    from edgernn.packages import packaged_model, platformio

    m = packaged_model(framed)
    assert m.framed and not m.whole_sequence
    assert m.demo.shape[1] == load_quantized(framed).config.sample_size and len(m.demo) % FRAME
    root = tmp_path / "pkg"
    for rel, data in platformio.build(m).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    src, exe = root / m.name / "src", tmp_path / "demo"
    main_c = root / m.name / "examples" / "stream" / "main.c"
    cmd = [
        "cc",
        "-std=c99",
        "-Wall",
        "-Wextra",
        "-Werror",
        f"-I{src}",
        str(src / f"{m.name}.c"),
        str(main_c),
        "-o",
    ]
    subprocess.run([*cmd, str(exe)], check=True, timeout=120)
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True, timeout=30).stdout
    assert out.startswith(f"{m.name} class={m.expected_class} "), out
    demo = main_c.read_text()
    assert f"{m.name}_push_sample(" in demo and f"{m.name}_run(" not in demo
