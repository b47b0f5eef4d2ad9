"""`edgernn import`: models trained outside edgernn, from an nn.Module, a torch.export archive and
an ONNX file, proven against the source and then through every backend.

Each model is trained for real on a bundled data set (a few epochs: enough for weights that
are not random, and predictions that mean something). The three sources of one model must give
the same edgernn checkpoint weights; that checkpoint then goes through export and verify (ORT
int8, the ORT step model, C) and, where a Cortex-M toolchain is present, an emulated Cortex-M4.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from edgernn.cli import main
from edgernn.config import Readout, Task
from edgernn.data.bundled import load_dataset
from edgernn.data.dataset import Dataset
from edgernn.errors import InputError
from edgernn.importer.api import import_model, load_source
from edgernn.importer.prove import TOLERANCE, edgernn_answer, sequences
from edgernn.pipeline import checkpoint_data, export_dir
from edgernn.train.checkpoint import load_checkpoint
from edgernn.verify import verify_dir

pytestmark = pytest.mark.slow


# ---------------------------------------------------------------------------------------------
# Source models, written as their authors would


class TutorialClassifier(nn.Module):
    """The tutorial's classifier, verbatim: reads output[:, -1, :] of a 2-layer bidirectional RNN."""

    def __init__(self, vocab: int, final_state: bool = False) -> None:
        super().__init__()
        self.final_state = final_state
        self.embedding = nn.Embedding(vocab, 16, padding_idx=0)
        self.rnn = nn.RNN(16, 32, num_layers=2, batch_first=True, dropout=0.3, bidirectional=True)
        self.classifier = nn.Linear(64, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output, h_n = self.rnn(self.embedding(x))
        if self.final_state:
            return self.classifier(torch.cat([h_n[-2], h_n[-1]], dim=1))
        return self.classifier(output[:, -1, :])


class Tagger(nn.Module):
    """Many-to-many: a label at every step of a feature stream."""

    def __init__(self, features: int, classes: int) -> None:
        super().__init__()
        self.rnn = nn.RNN(features, 24, batch_first=True)
        self.out = nn.Linear(24, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.rnn(x)[0])


class CharModel(nn.Module):
    """One-to-many: a character model that takes and returns its state, as generators do."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, 12)
        self.rnn = nn.RNN(12, 48, batch_first=True)
        self.head = nn.Linear(48, vocab)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, h_n = self.rnn(self.emb(x), h)
        return self.head(y), h_n


class TimeFirstNoBias(nn.Module):
    """batch_first=False, bias=False, 3 layers; reads the top layer's final state."""

    def __init__(self, features: int, classes: int) -> None:
        super().__init__()
        self.rnn = nn.RNN(features, 20, num_layers=3, bias=False)
        self.fc = nn.Linear(20, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (T, B, I)
        _, h_n = self.rnn(x)
        return self.fc(h_n[-1])


# ---------------------------------------------------------------------------------------------
# Training, as the author would (padded batches, no packing, clipping)


def _train(model: nn.Module, ds: Dataset, epochs: int, forward: Any, per_step: bool) -> nn.Module:
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x, y, lengths = torch.from_numpy(ds.train.x), torch.from_numpy(ds.train.y), ds.train.lengths
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(1))
        for i in range(0, len(x), 64):
            idx = order[i : i + 64]
            steps = int(lengths[idx.numpy()].max())
            out = forward(model, x[idx, :steps])
            target = y[idx, :steps] if per_step else y[idx]
            loss = nn.functional.cross_entropy(
                out.reshape(-1, out.shape[-1]), target.reshape(-1), ignore_index=-100
            )
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
    return model.eval()


def _char_forward(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return m(x, torch.zeros(1, x.shape[0], 48))[0]


def _time_first_forward(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return m(x.transpose(0, 1))


def _npz(path: Path, ds: Dataset, n: int, steps: int) -> Path:
    """Part of a bundled feature set as a user file, cropped for speed (its values are the raw
    features the imported model was trained on)."""
    parts = [ds.train, ds.val, ds.test]
    x = np.concatenate([p.x[:n, :steps] for p in parts])
    lengths = np.minimum(np.concatenate([p.lengths[:n] for p in parts]), steps)
    y = np.concatenate([p.y[:n, :steps] if p.y.ndim == 2 else p.y[:n] for p in parts])
    split = np.repeat(np.array(["train", "val", "test"]), [len(p.x[:n]) for p in parts])
    np.savez(path, X=x, y=y, lengths=lengths, split=split)
    return path


# ---------------------------------------------------------------------------------------------
# The three sources of one model


def _sources(tmp: Path, model: nn.Module, example: tuple[torch.Tensor, ...]) -> dict[str, Any]:
    ep = torch.export.export(model, example)
    torch.export.save(ep, tmp / "model.pt2")
    names = ["x", "h"][: len(example)]
    axes = {"x": {0: "B", 1: "T"}} if not isinstance(model, TimeFirstNoBias) else {"x": {0: "T", 1: "B"}}
    if len(example) > 1:
        axes["h"] = {1: "B"}
    torch.onnx.export(
        model, example, str(tmp / "model.onnx"), dynamo=False, input_names=names, dynamic_axes=axes
    )
    return {"module": model, "pt2": tmp / "model.pt2", "onnx": tmp / "model.onnx"}


def _import_all(
    tmp: Path, model: nn.Module, example: tuple[torch.Tensor, ...], **data: Any
) -> dict[str, Any]:
    out = {}
    for kind, src in _sources(tmp, model, example).items():
        ex = example if kind == "module" else None
        out[kind] = import_model(src, tmp / f"imp_{kind}", example=ex, **data)
    return out


def _same_weights(results: dict[str, Any]) -> None:
    states = [load_checkpoint(r.out_dir).model.state_dict() for r in results.values()]
    for other in states[1:]:
        for k, v in states[0].items():
            assert torch.equal(v, other[k]), k


def _source_predictions_equal(result: Any, src: Any, split: Any) -> None:
    """Float predictions of the imported model equal the source's on every test sequence."""
    model = load_checkpoint(result.out_dir).model
    for s in sequences(split):
        want, got = src.run(s), edgernn_answer(model, s)
        assert np.array_equal(want.argmax(-1), got.argmax(-1))
        assert np.abs(want - got).max() <= TOLERANCE * max(1.0, float(np.abs(want).max()))


def _export_and_verify(out: Path) -> dict[str, Any]:
    export_dir(out, prefix="imported")
    v = verify_dir(out)
    rows = {(p["a"], p["b"]): p for p in v.report["parity"]}
    assert v.passed, v.report["parity"]
    src = rows["source-float", "torch-float"]
    assert src["passed"] and src["tolerance"] == TOLERANCE and src["max_abs_diff"] <= TOLERANCE
    for backend in ("ort-int8", "ort-int8-step", "c-int8"):
        assert rows["torch-int8", backend]["mismatches"] == 0
    assert "source" in v.report["metrics"]
    return v.report


def _cortex_m4(out: Path) -> None:
    from test_mcu import _zig_path

    from edgernn.targets.check import check_dir

    _zig_path()
    results = check_dir(out, ("cortex-m4",), ("zig",), max_sequences=60)
    assert results and all(r.mismatches == 0 for r in results), [r.first_mismatch for r in results]


# ---------------------------------------------------------------------------------------------
# Tests


@pytest.fixture(scope="module")
def names_by_list() -> Dataset:
    return load_dataset("names_by_list")


@pytest.fixture(scope="module")
def tutorial(names_by_list: Dataset) -> TutorialClassifier:
    m = TutorialClassifier(len(names_by_list.vocab))
    return _train(m, names_by_list, 3, lambda m, x: m(x), per_step=False)  # type: ignore[return-value]


def test_tutorial_classifier_output_last_is_exported_faithfully(
    tmp_path: Path, tutorial, names_by_list
) -> None:
    example = (torch.from_numpy(names_by_list.train.x[:2, :6]),)
    results = _import_all(
        tmp_path, tutorial, example, data=_npz(tmp_path / "names.npz", names_by_list, 300, 12)
    )
    _same_weights(results)
    for kind, r in results.items():
        assert r.proof.max_abs_diff <= TOLERANCE, kind
        assert load_checkpoint(r.out_dir).model.cfg.readout is Readout.LAST_OUTPUT
        assert any("output[:, -1]" in w for w in r.warnings), kind
        assert r.metrics["float"]["test_accuracy"] == r.metrics["source"]["test_accuracy"]
    # Only the module and ONNX sources run padded batches: the padding effect is measured there.
    padded = [w for w in results["module"].warnings if "depends on padding" in w]
    assert padded and "on padded batches" in padded[0]
    test = checkpoint_data(load_checkpoint(results["onnx"].out_dir), results["onnx"].out_dir).test
    _source_predictions_equal(results["onnx"], load_source(tmp_path / "model.onnx"), test)
    report = _export_and_verify(results["module"].out_dir)
    assert report["config"]["readout"] == "last-output"
    _cortex_m4(results["module"].out_dir)


def test_tutorial_classifier_with_final_state_readout(tmp_path: Path, names_by_list) -> None:
    m = TutorialClassifier(len(names_by_list.vocab), final_state=True)
    m = _train(m, names_by_list, 2, lambda m, x: m(x), per_step=False)
    results = _import_all(
        tmp_path,
        m,
        (torch.from_numpy(names_by_list.train.x[:2, :6]),),
        data=_npz(tmp_path / "names.npz", names_by_list, 300, 12),
    )
    _same_weights(results)
    for r in results.values():
        assert load_checkpoint(r.out_dir).model.cfg.readout is Readout.FINAL_STATE
        assert not any("output[:, -1]" in w for w in r.warnings)
    test = checkpoint_data(load_checkpoint(results["module"].out_dir), results["module"].out_dir).test
    _source_predictions_equal(results["module"], load_source(tmp_path / "model.pt2"), test)
    _export_and_verify(results["onnx"].out_dir)
    _cortex_m4(results["onnx"].out_dir)


def test_many_to_many_tagger(tmp_path: Path) -> None:
    ds = load_dataset("basic_motions")
    data = _npz(tmp_path / "motions.npz", ds, 24, 60)
    m = _train(Tagger(6, 4), ds, 2, lambda m, x: m(x), per_step=True)
    results = _import_all(tmp_path, m, (torch.from_numpy(ds.train.x[:2, :8]),), data=data)
    _same_weights(results)
    for r in results.values():
        assert load_checkpoint(r.out_dir).model.cfg.task is Task.MANY_TO_MANY
    test = checkpoint_data(load_checkpoint(results["pt2"].out_dir), results["pt2"].out_dir).test
    _source_predictions_equal(results["pt2"], load_source(tmp_path / "model.onnx"), test)
    _export_and_verify(results["pt2"].out_dir)
    _cortex_m4(results["pt2"].out_dir)


def test_character_generator_generates_the_same_text_everywhere(tmp_path: Path) -> None:
    from edgernn.backends.registry import int_backends
    from edgernn.contract.reference import int_generate
    from edgernn.pipeline import load_quantized

    ds = load_dataset("names")
    vocab = len(ds.vocab)
    m = _train(CharModel(vocab), ds, 2, _char_forward, per_step=True)
    example = (torch.from_numpy(ds.train.x[:1, :5]), torch.zeros(1, 1, 48))
    results = _import_all(tmp_path, m, example, dataset="names")
    _same_weights(results)
    out = results["onnx"].out_dir
    assert load_checkpoint(out).model.cfg.task is Task.ONE_TO_MANY
    _source_predictions_equal(results["onnx"], load_source(tmp_path / "model.pt2"), ds.test)
    report = _export_and_verify(out)
    _cortex_m4(out)
    generation = [p for p in report["parity"] if p.get("what") == "greedy generation"]
    assert {p["b"] for p in generation} >= {"ort-int8-step", "c-int8"}
    assert all(p["passed"] and p["mismatches"] == 0 for p in generation)
    qm = load_quantized(out)
    start, end = qm.meta.start_token, qm.meta.end_token
    assert start is not None and end is not None
    assert any(b.generates for b in int_backends())
    assert len(int_generate(qm, start, end, 12)) > 0


def test_time_first_no_bias_three_layers(tmp_path: Path) -> None:
    ds = load_dataset("japanese_vowels")
    data = _npz(tmp_path / "vowels.npz", ds, 60, 29)
    m = _train(TimeFirstNoBias(12, 9), ds, 3, _time_first_forward, per_step=False)
    example = (torch.from_numpy(ds.train.x[:2, :7]).transpose(0, 1).contiguous(),)
    results = _import_all(tmp_path, m, example, data=data)
    _same_weights(results)
    found = results["module"].found
    assert (found.num_layers, found.batch_first, found.has_bias) == (3, False, False)
    test = checkpoint_data(load_checkpoint(results["module"].out_dir), results["module"].out_dir).test
    _source_predictions_equal(results["module"], load_source(tmp_path / "model.onnx"), test)
    _export_and_verify(results["module"].out_dir)
    _cortex_m4(results["module"].out_dir)


# ---------------------------------------------------------------------------------------------
# Refusals: one line, exit 2, nothing written


class _Wrap(nn.Module):
    def __init__(self, core: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.core, self.head = core, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.core(x)[0][:, -1])


class _TwoRnns(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.RNN(12, 8, batch_first=True), nn.RNN(8, 8, batch_first=True)
        self.head = nn.Linear(8, 9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.b(self.a(x)[0])[0][:, -1])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: _Wrap(nn.GRU(12, 8, batch_first=True), nn.Linear(8, 9)),
            "found GRU; edgernn exports tanh RNNs",
        ),
        (lambda: _Wrap(nn.LSTM(12, 8, batch_first=True), nn.Linear(8, 9)), "found LSTM"),
        (lambda: _Wrap(nn.RNN(12, 8, nonlinearity="relu", batch_first=True), nn.Linear(8, 9)), "ReLU"),
        (_TwoRnns, "found 2 RNNs"),
        (
            lambda: _Wrap(
                nn.RNN(12, 8, batch_first=True), nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 9))
            ),
            "linear layers",
        ),
        (
            lambda: _Wrap(nn.RNN(12, 8, batch_first=True), nn.Sequential(nn.Linear(8, 9), nn.LogSoftmax(-1))),
            "log_softmax",
        ),
        (lambda: nn.Sequential(nn.Linear(12, 9)), "no RNN found"),
    ],
    ids=["gru", "lstm", "relu", "two-rnns", "mlp-head", "softmax", "no-rnn"],
)
def test_refusals_of_modules(tmp_path: Path, make: Any, message: str) -> None:
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        import_model(make().eval(), tmp_path / "out", dataset="names_by_list", example=torch.zeros(2, 5, 12))
    assert not (tmp_path / "out").exists()


class _PartOfInput(nn.Module):
    """An RNN that reads part of the model's input: a window of the last steps, some features, or
    the input joined with itself."""

    def __init__(self, part: str) -> None:
        super().__init__()
        self.part = part
        self.rnn = nn.RNN(24 if part == "joined" else 6 if part == "features" else 12, 8, batch_first=True)
        self.head = nn.Linear(8, 9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.part == "window":
            x = x[:, -4:]
        elif self.part == "features":
            x = x[:, :, :6]
        else:
            x = torch.cat([x, x], -1)
        return self.head(self.rnn(x)[0][:, -1])


@pytest.mark.parametrize(
    ("part", "message"),
    [
        ("window", r"slice \[-4:\] along dim 1"),
        ("features", r"slice \[:6\] along dim 2"),
        ("joined", "concat"),
    ],
)
def test_an_rnn_reading_part_of_the_input_is_refused(tmp_path: Path, part: str, message: str) -> None:
    """A window over time was imported as a plain RNN: a proof on sequences no longer than the
    window cannot see it, and the export then read every step (a reviewer's 40-step data: 6 of 40
    predictions changed). Refused, from the module, the exported program and the ONNX file."""
    model = _PartOfInput(part).eval()
    example = (torch.zeros(2, 6, 12),)
    for kind, src in _sources(tmp_path, model, example).items():
        onnx_message = "Slice" if part != "joined" else "Concat"
        with pytest.raises(InputError, match=onnx_message if kind == "onnx" else message):
            import_model(
                src,
                tmp_path / f"o_{kind}",
                example=example if kind == "module" else None,
                input_range=(-1, 1),
                steps=4,
            )
        assert not (tmp_path / f"o_{kind}").exists()


def test_a_proof_on_one_step_sequences_is_refused(tmp_path: Path) -> None:
    """At one step the first output is the last and W_hh never acts: a model reading output[:, 0]
    passed a --steps 1 proof and was exported as output[:, -1]."""
    model = _Wrap(nn.RNN(12, 8, batch_first=True), nn.Linear(8, 9)).eval()
    with pytest.raises(InputError, match="has 1 step"):
        import_model(model, tmp_path / "o", example=(torch.zeros(2, 5, 12),), input_range=(-1, 1), steps=1)
    assert import_model(model, tmp_path / "o", example=(torch.zeros(2, 5, 12),), input_range=(-1, 1), steps=2)


class _Dropping(nn.Module):
    """Dropout between two RNN layers, or before the head, active while the module trains."""

    def __init__(self, where: str) -> None:
        super().__init__()
        self.where = where
        self.rnn = nn.RNN(
            12,
            8,
            num_layers=2 if where == "layers" else 1,
            dropout=0.3 if where == "layers" else 0.0,
            batch_first=True,
        )
        self.head = nn.Linear(8, 9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = self.rnn(x)[0][:, -1]
        if self.where == "head":
            last = nn.functional.dropout(last, 0.3, self.training)
        return self.head(last)


@pytest.mark.parametrize("where", ["layers", "head"])
def test_a_program_exported_in_training_mode_is_refused_as_such(tmp_path: Path, where: str) -> None:
    """A .pt2 exported before .eval() drops values at random in every run: it was refused as a
    readout or recurrence mismatch. The refusal names training mode; the eval-mode export imports."""
    example = (torch.zeros(2, 6, 12),)
    model = _Dropping(where).train()
    torch.export.save(torch.export.export(model, example), tmp_path / "train.pt2")
    with pytest.raises(InputError, match=r"exported in training mode.*model.eval\(\)"):
        import_model(tmp_path / "train.pt2", tmp_path / "o", input_range=(-1, 1), steps=4)
    torch.export.save(torch.export.export(model.eval(), example), tmp_path / "eval.pt2")
    assert import_model(tmp_path / "eval.pt2", tmp_path / "o", input_range=(-1, 1), steps=4)


def test_cli_refuses_a_corrupt_file_and_a_pickled_archive(tmp_path: Path, tutorial, names_by_list) -> None:
    runner = CliRunner()
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00garbage" * 10)
    r = runner.invoke(main, ["import", str(bad), "--dataset", "names_by_list", "--out", str(tmp_path / "o1")])
    assert r.exit_code == 2 and "not a readable ONNX file" in r.output
    assert not (tmp_path / "o1").exists()
    # A .pt2 whose sample inputs are a pickled object: torch.export.load would unpickle it.
    ep = torch.export.export(tutorial, (torch.from_numpy(names_by_list.train.x[:2, :6]),))
    torch.export.save(ep, tmp_path / "m.pt2")
    import zipfile

    evil = tmp_path / "evil.pt2"
    with zipfile.ZipFile(tmp_path / "m.pt2") as src, zipfile.ZipFile(evil, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if "/data/sample_inputs/" in item.filename:
                import io

                buf = io.BytesIO()
                torch.save(((Path("x"),), {}), buf)  # a PosixPath: not a weights-only type
                data = buf.getvalue()
            dst.writestr(item, data)
    r = runner.invoke(
        main, ["import", str(evil), "--dataset", "names_by_list", "--out", str(tmp_path / "o2")]
    )
    assert r.exit_code == 2 and "refused" in r.output and "pickled" in r.output, r.output
    assert not (tmp_path / "o2").exists()


class _ForwardTwice(nn.Module):
    """Reads the forward state twice: the shapes fit edgernn's readout, the values do not, in
    either order of the head's halves (reading the directions swapped is faithful, once the head's
    halves are swapped too: test_a_head_reading_the_backward_half_first_...)."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.RNN(12, 8, batch_first=True, bidirectional=True)
        self.head = nn.Linear(16, 9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h_n = self.rnn(x)[1]
        return self.head(torch.cat([h_n[0], h_n[0]], dim=1))


class _EveryLayersState(nn.Module):
    """A 2-layer RNN whose head reads both layers' final states: not edgernn's last-layer head."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.RNN(12, 8, num_layers=2, batch_first=True)
        self.fc = nn.Linear(16, 9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, h = self.rnn(x)
        return self.fc(h.transpose(0, 1).reshape(x.shape[0], -1))


class _BackwardFirst(nn.Module):
    """A bidirectional RNN whose head reads cat([h_bwd, h_fwd]): edgernn's order swapped."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.RNN(12, 8, num_layers=2, bidirectional=True, batch_first=True)
        self.fc = nn.Linear(16, 9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, h = self.rnn(x)
        return self.fc(torch.cat([h[-1], h[-2]], dim=-1))


def test_a_head_reading_the_backward_half_first_imports_with_its_columns_swapped(tmp_path: Path) -> None:
    """The same computation as edgernn's forward-first head with the head's two column halves
    swapped; the proof picks the order the source has, in every source form."""
    torch.manual_seed(0)
    model = _BackwardFirst().eval()
    data = _npz(tmp_path / "vowels.npz", load_dataset("japanese_vowels"), 40, 29)
    results = _import_all(tmp_path, model, (torch.zeros(2, 5, 12),), data=data)
    _same_weights(results)
    head = load_checkpoint(results["module"].out_dir).model.state_dict()["head.weight"]
    assert torch.equal(head, torch.cat([model.fc.weight[:, 8:], model.fc.weight[:, :8]], dim=1))
    for kind, r in results.items():
        assert r.proof.max_abs_diff <= TOLERANCE, kind
    test = checkpoint_data(load_checkpoint(results["onnx"].out_dir), results["onnx"].out_dir).test
    _source_predictions_equal(results["onnx"], load_source(tmp_path / "model.onnx"), test)


class _FirstStep(nn.Module):
    """Reads the RNN's output at step 0: one output step, but not the last, which edgernn exports."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.RNN(12, 8, batch_first=True)
        self.fc = nn.Linear(8, 9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.fc(out[:, 0])


@pytest.mark.parametrize(
    ("module", "message"),
    [
        (_ForwardTwice, r"refused: the rebuilt model does not reproduce the source: .* > 1e-05"),
        (_EveryLayersState, r"the head reads the final states of all 2 layers \(16 values\)"),
        (_FirstStep, r"edgernn reads the last one, output\[:, -1\], or h_n"),
    ],
    ids=["unfaithful-readout", "every-layers-state", "first-output-step"],
)
def test_a_head_edgernn_does_not_export_is_refused_by_what_it_reads(
    tmp_path: Path, module: type[nn.Module], message: str
) -> None:
    data = _npz(tmp_path / "vowels.npz", load_dataset("japanese_vowels"), 20, 29)
    torch.manual_seed(0)
    with pytest.raises(InputError, match=message):
        import_model(module().eval(), tmp_path / "out", data, example=torch.zeros(2, 5, 12))
    assert not (tmp_path / "out").exists()


def test_data_that_does_not_fit(tmp_path: Path, tutorial, names_by_list) -> None:
    data = _npz(tmp_path / "vowels.npz", load_dataset("japanese_vowels"), 20, 29)
    example = torch.from_numpy(names_by_list.train.x[:2, :6])
    with pytest.raises(InputError, match="the model reads token ids; the data holds features"):
        import_model(tutorial, tmp_path / "out", data, example=example)
    wide = _Wrap(nn.RNN(6, 8, batch_first=True), nn.Linear(8, 9)).eval()
    with pytest.raises(InputError, match="the model reads 6 features per step; the data has 12"):
        import_model(wide, tmp_path / "out", data, example=torch.zeros(2, 5, 6))
    assert not (tmp_path / "out").exists()


class _UniClassifier(nn.Module):
    """A unidirectional classifier trained, like the tutorial's, on unpacked padded batches."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, 8, padding_idx=0)
        self.rnn = nn.RNN(8, 16, batch_first=True)
        self.fc = nn.Linear(16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.rnn(self.embedding(x))[0][:, -1])


def test_pad_to_deploys_what_the_author_measured(tmp_path: Path, tutorial, names_by_list) -> None:
    """--pad-to T: every backend reads a sequence with pad steps after it up to T, and then agrees
    with the source on padded batches (the accuracy its author saw)."""
    longest = int(names_by_list.test.lengths.max())
    example = (torch.from_numpy(names_by_list.train.x[:2, :6]),)
    r = import_model(tutorial, tmp_path / "padded", dataset="names_by_list", example=example, pad_to=longest)
    effect = load_checkpoint(tmp_path / "padded").meta["import"]["padding"]
    # The source on one padded batch (to the longest test sequence) = the source one sequence at a
    # time padded to the same length = the export.
    assert r.metrics["source"]["test_accuracy"] == pytest.approx(effect["padded_accuracy"])
    assert r.metrics["float"]["test_accuracy"] == r.metrics["source"]["test_accuracy"]
    assert effect["changed"] > 0  # the tutorial model answers differently without its pads
    report = _export_and_verify(tmp_path / "padded")
    assert report["config"]["pad_to"] == longest
    header = (tmp_path / "padded" / "model.h").read_text()
    assert "#define IMPORTED_PAD_TO" in header and "size_t imported_pad(int32_t *tokens, size_t n)" in header
    _cortex_m4(tmp_path / "padded")
    # `predict` pads as the backends do: the C and the integer ONNX answers are the same records.
    np.savez(tmp_path / "some.npz", X=names_by_list.test.x[:50], lengths=names_by_list.test.lengths[:50])
    runner = CliRunner()
    for backend in ("c", "onnx-int8"):
        out = str(tmp_path / f"{backend}.csv")
        args = [
            "predict",
            str(tmp_path / "padded"),
            "--data",
            str(tmp_path / "some.npz"),
            "--backend",
            backend,
        ]
        r = runner.invoke(main, [*args, "--out", out])
        assert r.exit_code == 0, r.output
    assert (tmp_path / "c.csv").read_bytes() == (tmp_path / "onnx-int8.csv").read_bytes()


def test_finish_runs_the_pad_steps_of_a_stream_in_c(tmp_path: Path, names_by_list) -> None:
    """Firmware streams one token at a time, then PREFIX_finish(st, n) runs the pad steps: the class
    it reads equals the integer reference's on every test sequence."""
    import subprocess

    from edgernn.backends.c.build import Compiler
    from edgernn.contract.reference import int_forward
    from edgernn.pipeline import load_quantized

    m = _train(_UniClassifier(len(names_by_list.vocab)), names_by_list, 1, lambda m, x: m(x), per_step=False)
    example = (torch.from_numpy(names_by_list.train.x[:2, :6]),)
    import_model(m, tmp_path / "u", dataset="names_by_list", example=example, pad_to=12)
    export_dir(tmp_path / "u", prefix="uni")
    qm = load_quantized(tmp_path / "u")
    test = names_by_list.test
    n = 120
    want = int_forward(qm, test.x[:n], test.lengths[:n]).logits.numpy()
    rows = ",".join("{" + ",".join(str(int(v)) for v in row) + "}" for row in test.x[:n])
    program = f"""
#include <stdio.h>
#define EDGERNN_IMPLEMENTATION
#include "model.h"
static const int32_t xs[{n}][{test.x.shape[1]}] = {{{rows}}};
static const size_t lens[{n}] = {{{",".join(str(int(v)) for v in test.lengths[:n])}}};
int main(void) {{
    size_t i, t;
    for (i = 0; i < {n}; ++i) {{
        uni_state_t st;
        int32_t logits[UNI_NUM_CLASSES];
        uni_init(&st);
        for (t = 0; t < lens[i]; ++t) {{
            (void)uni_step_token(&st, xs[i][t]);
        }}
        uni_finish(&st, lens[i]);
        (void)uni_classify(&st, logits);
        printf("%ld %ld\\n", (long)logits[0], (long)logits[1]);
    }}
    return 0;
}}
"""
    (tmp_path / "u" / "stream.c").write_text(program)
    exe = tmp_path / "stream"
    cc = Compiler.discover()
    subprocess.run(
        [
            *cc.command,
            "-std=c99",
            "-O2",
            "-I",
            str(tmp_path / "u"),
            str(tmp_path / "u" / "stream.c"),
            "-o",
            str(exe),
        ],
        check=True,
    )
    got = np.array(
        [
            [int(v) for v in line.split()]
            for line in subprocess.run(
                [str(exe)], capture_output=True, text=True, check=True
            ).stdout.splitlines()
        ]
    )
    assert np.array_equal(got, want)


def test_pad_to_ignores_what_a_batch_row_holds_past_its_length(tmp_path: Path, names_by_list) -> None:
    """A pad_to model's pad steps are zeros whatever the caller padded its batch with: torch, the
    float and integer ONNX graphs and the integer reference give each row the answer it gets
    with zero padding (before the fix, steps length..pad_to were read from the caller's padding)."""
    import onnxruntime as ort

    from edgernn.contract.reference import int_forward
    from edgernn.pipeline import load_quantized

    m = _train(_UniClassifier(len(names_by_list.vocab)), names_by_list, 1, lambda m, x: m(x), per_step=False)
    example = (torch.from_numpy(names_by_list.train.x[:2, :6]),)
    import_model(m, tmp_path / "u", dataset="names_by_list", example=example, pad_to=12)
    export_dir(tmp_path / "u")
    test = names_by_list.test
    short = np.flatnonzero(test.lengths < 8)[:40]
    lengths = test.lengths[short].astype(np.int64)
    x = np.zeros((len(short), 20), np.int64)
    for row, i in enumerate(short):
        x[row, : lengths[row]] = test.x[i, : lengths[row]]
    junk = x.copy()
    for row, n in enumerate(lengths):
        junk[row, n:] = 1 + (np.arange(20 - n) % (len(names_by_list.vocab) - 1))
    assert not np.array_equal(junk, x)

    def answers(tokens: np.ndarray) -> list[np.ndarray]:
        qm = load_quantized(tmp_path / "u")
        model = load_checkpoint(tmp_path / "u").model.eval()
        with torch.no_grad():
            got = [model(torch.from_numpy(tokens), torch.from_numpy(lengths))[0].numpy()]
        got.append(int_forward(qm, tokens, lengths).logits.numpy())
        for name, h0_type in (("model.onnx", np.float32), ("model.int8.onnx", np.int8)):
            sess = ort.InferenceSession(str(tmp_path / "u" / name), providers=["CPUExecutionProvider"])
            h0 = np.zeros((1, len(tokens), model.cfg.hidden_size), h0_type)
            got.append(sess.run(["logits"], {"tokens": tokens, "lengths": lengths, "h0": h0})[0])
        return got

    clean = answers(x)
    for want, got in zip(clean, answers(junk), strict=True):
        np.testing.assert_array_equal(got, want)
    # examples/onnxruntime_stream.py runs the pad steps after the stream, as PREFIX_finish does.
    import subprocess
    import sys

    example = Path(__file__).resolve().parent.parent / "examples" / "onnxruntime_stream.py"
    for row in range(3):
        csv = tmp_path / f"s{row}.csv"
        csv.write_text("".join(f"{int(t)}\n" for t in x[row, : lengths[row]]))
        out = subprocess.run(
            [sys.executable, str(example), str(tmp_path / "u" / "model.step.raw.int8.onnx"), str(csv)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert out.splitlines()[-1] == "logits " + " ".join(str(int(v)) for v in clean[1][row]), out


class _LastBySize(nn.Module):
    """Reads the last step as output[:, x.size(1) - 1], which torch.export bakes in as an index."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.RNN(12, 8, batch_first=True, bidirectional=True)
        self.head = nn.Linear(16, 9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(x)[0][:, x.size(1) - 1])


def test_last_step_read_by_index_is_found_by_what_it_computes(tmp_path: Path) -> None:
    data = _npz(tmp_path / "vowels.npz", load_dataset("japanese_vowels"), 20, 29)
    torch.manual_seed(0)
    r = import_model(_LastBySize().eval(), tmp_path / "out", data, example=torch.zeros(2, 5, 12))
    assert load_checkpoint(tmp_path / "out").model.cfg.readout is Readout.LAST_OUTPUT
    assert r.proof.max_abs_diff <= TOLERANCE


def test_without_labels_the_source_answers_stand_in(tmp_path: Path, names_by_list) -> None:
    """An unlabelled --data file, and --input-range without any data: the source's own answers
    are the labels, written into the import directory, and every backend still checks out."""
    ds = load_dataset("japanese_vowels")
    torch.manual_seed(3)
    model = _Wrap(nn.RNN(12, 16, batch_first=True), nn.Linear(16, 9)).eval()
    example = torch.zeros(2, 5, 12)
    unlabelled = tmp_path / "unlabelled.npz"
    np.savez(unlabelled, X=ds.test.x[:80], lengths=ds.test.lengths[:80])
    r = import_model(model, tmp_path / "a", unlabelled, example=example)
    assert r.labels == "source" and (tmp_path / "a" / "calibration.npz").exists()
    assert r.metrics["source"]["test_accuracy"] == 1.0
    report = _export_and_verify(tmp_path / "a")
    assert report["metrics"]["int8"]["agreement_with_float"] > 0.9
    from edgernn.report.markdown import write_report_md
    from edgernn.report.store import record_verification

    record_verification(tmp_path / "a", verify_dir(tmp_path / "a"))
    write_report_md(tmp_path / "a", plots=False)
    card = (tmp_path / "a" / "report.md").read_text()
    assert "used as given (no normalisation)" in card and "normalised on the training split" not in card
    assert "not trained by edgernn" in card and "None of at most None" not in card
    r = import_model(model, tmp_path / "b", input_range=(-2.0, 2.0), steps=20, example=example)
    assert r.labels == "source" and r.proof.n == 300
    _export_and_verify(tmp_path / "b")
    # An unlabelled CSV: its column names are kept (the calibration .npz cannot carry them), so
    # predict reads a CSV's columns by name as for a model trained on one.
    columns = [f"lpc{i}" for i in range(12)]
    rows = [
        [f"s{s}", t, *(repr(float(v)) for v in ds.test.x[s, t])]
        for s in range(40)
        for t in range(int(ds.test.lengths[s]))
    ]
    unlabelled_csv = tmp_path / "unlabelled.csv"
    unlabelled_csv.write_text(
        "\n".join(",".join(map(str, r)) for r in [["sequence", "step", *columns], *rows])
    )
    import_model(model, tmp_path / "d", unlabelled_csv, example=example)
    assert load_checkpoint(tmp_path / "d").meta["feature_names"] == columns
    token_example = torch.from_numpy(names_by_list.train.x[:2, :6])
    uni = _UniClassifier(len(names_by_list.vocab)).eval()
    with pytest.raises(InputError, match="a token model needs --data or --dataset"):
        import_model(uni, tmp_path / "c", input_range=(0.0, 1.0), example=token_example)
    with pytest.raises(InputError, match="give the calibration data, one of"):
        import_model(uni, tmp_path / "c", example=token_example)
    assert not (tmp_path / "c").exists()


class _TimeFirstInside(nn.Module):
    """Takes (B, T, I) and answers (B, T, C), with a time-first RNN inside."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.RNN(12, 8)
        self.out = nn.Linear(8, 9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.rnn(x.transpose(0, 1))[0]).transpose(0, 1)


class _ReshapedState(nn.Module):
    """Reads h_n as h.transpose(0, 1).reshape(h.size(0), -1): torch.onnx writes a Shape node."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.RNN(12, 8, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(16, 9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.rnn(x)[1]
        return self.fc(h.transpose(0, 1).reshape(x.size(0), -1))


def test_layouts_and_shape_nodes_between_the_parts(tmp_path: Path) -> None:
    """A per-step answer keeps the input's layout whatever the RNN inside uses; the Shape node
    torch.onnx writes for a dynamic reshape is not a layer of the head."""
    ds = load_dataset("japanese_vowels")
    torch.manual_seed(0)
    x = ds.test.x[:40]
    np.savez(tmp_path / "steps.npz", X=x, lengths=ds.test.lengths[:40])
    r = import_model(
        _TimeFirstInside().eval(), tmp_path / "a", tmp_path / "steps.npz", example=torch.zeros(2, 5, 12)
    )
    assert load_checkpoint(tmp_path / "a").model.cfg.task is Task.MANY_TO_MANY
    assert r.proof.max_abs_diff <= TOLERANCE
    model = _ReshapedState().eval()
    example = torch.zeros(2, 5, 12)
    torch.onnx.export(
        model,
        (example,),
        str(tmp_path / "m.onnx"),
        dynamo=False,
        input_names=["x"],
        dynamic_axes={"x": {0: "B", 1: "T"}},
    )
    r = import_model(tmp_path / "m.onnx", tmp_path / "b", tmp_path / "steps.npz")
    assert r.proof.max_abs_diff <= TOLERANCE
