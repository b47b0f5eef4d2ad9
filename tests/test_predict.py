"""edgernn.Runtime and `edgernn predict`: raw floats in, the same answer from every backend."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import edgernn
from edgernn.cli import main
from edgernn.config import TrainConfig
from edgernn.contract.quantize import quantize_inputs
from edgernn.contract.reference import int_forward, int_generate
from edgernn.data.dataset import normalize
from edgernn.errors import InputError, ToolchainError
from edgernn.pipeline import export_dir, load_data, load_quantized, train_to_dir
from edgernn.predict import BACKENDS, Runtime
from edgernn.train.checkpoint import load_checkpoint
from edgernn.train.loop import ModelSpec

INT8 = ("c", "onnx-int8")
FLOAT = ("onnx", "torch")


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def assert_input_error(result, fragment: str) -> None:
    out = result.output
    assert result.exit_code == 2, out
    assert "Traceback" not in out
    assert out.strip().startswith("error: ") and "\n" not in out.strip(), out
    assert fragment.lower() in out.lower(), out


def _export(tmp_path_factory, name: str, **kw) -> Path:
    out = tmp_path_factory.mktemp(name)
    train_to_dir(out, progress=False, **kw)
    export_dir(out)
    return out


@pytest.fixture(scope="module")
def jv(tmp_path_factory) -> Path:
    """A tiny many-to-one feature model (japanese_vowels, 12 features, 9 classes)."""
    return _export(
        tmp_path_factory,
        "jv",
        dataset="japanese_vowels",
        spec=ModelSpec(hidden_size=8),
        tc=TrainConfig(epochs=1),
    )


@pytest.fixture(scope="module")
def jv_raw(jv) -> tuple[list[np.ndarray], np.ndarray]:
    """Raw (un-normalised) test sequences of jv, and the lengths."""
    ds = load_data(load_checkpoint(jv).meta["data"])
    raw = ds.test.x[:24] * ds.norm_std + ds.norm_mean
    lens = ds.test.lengths[:24]
    return [raw[i, :n].astype(np.float32) for i, n in enumerate(lens)], lens


@pytest.fixture(scope="module")
def m2m(tmp_path_factory) -> Path:
    """A tiny many-to-many model trained on a user .npz (3 features, per-step labels)."""
    d = tmp_path_factory.mktemp("m2m_data")
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 7, 3)).astype(np.float32) * 3 + 5
    y = (x[..., 0] > 5).astype(np.int64)
    np.savez(d / "steps.npz", X=x, y=y, lengths=rng.integers(2, 8, size=40))
    return _export(
        tmp_path_factory,
        "m2m",
        data_file=d / "steps.npz",
        spec=ModelSpec(hidden_size=8),
        tc=TrainConfig(epochs=2),
    )


@pytest.fixture(scope="module")
def names(tmp_path_factory) -> Path:
    """A tiny one-to-many token model (names: letters, start and end tokens)."""
    return _export(
        tmp_path_factory, "names", dataset="names", spec=ModelSpec(hidden_size=8), tc=TrainConfig(epochs=1)
    )


def _reference(qm, seqs: list[np.ndarray]) -> np.ndarray:
    """int_forward's logits on the C float wrapper's rule: normalise, quantize_inputs."""
    lens = np.array([len(s) for s in seqs])
    x = np.zeros((len(seqs), lens.max(), seqs[0].shape[1]), np.float32)
    for i, s in enumerate(seqs):
        x[i, : len(s)] = s
    xq = quantize_inputs(normalize(x, lens, qm.norm_mean, qm.norm_std), qm.input_scale)
    return int_forward(qm, xq, lens).logits.numpy()


# ---------------------------------------------------------------------------------------------
# Runtime


def test_runtime_is_exported_at_the_top_level():
    assert edgernn.Runtime is Runtime


def test_all_backends_agree_and_int8_equals_the_reference(jv, jv_raw):
    seqs, _ = jv_raw
    qm = load_quantized(jv)
    ref = _reference(qm, seqs)
    preds = {b: Runtime(jv, backend=b).predict(seqs) for b in BACKENDS}
    for b in INT8:
        q = np.stack([p.logits_q for p in preds[b]])
        assert q.dtype == np.int32 and np.array_equal(q, ref), b
        assert [p.predicted for p in preds[b]] == list(ref.argmax(axis=1)), b
        np.testing.assert_allclose(np.stack([p.logits for p in preds[b]]), ref * qm.head_scale)
    f_onnx, f_torch = (np.stack([p.logits for p in preds[b]]) for b in FLOAT)
    np.testing.assert_allclose(f_onnx, f_torch, atol=1e-4)
    assert all(p.logits_q is None for b in FLOAT for p in preds[b])
    names = set(qm.meta.class_names or ())
    assert all(p.class_name in names for b in BACKENDS for p in preds[b])


def test_padded_array_with_lengths_equals_list(jv, jv_raw):
    seqs, lens = jv_raw
    x = np.zeros((len(seqs), lens.max(), 12), np.float32)
    for i, s in enumerate(seqs):
        x[i, : len(s)] = s
    x[0, lens[0] :] = 1e6  # padding is never read
    rt = Runtime(jv, backend="onnx-int8")
    a = [p.logits_q for p in rt.predict(x, lens)]
    b = [p.logits_q for p in rt.predict(seqs)]
    assert all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))


@pytest.mark.parametrize("backend", BACKENDS)
def test_stream_equals_predict(jv, jv_raw, backend):
    seqs, _ = jv_raw
    rt = Runtime(jv, backend=backend)
    whole = rt.predict(seqs[:3])
    s = rt.stream()
    for seq, p in zip(seqs[:3], whole, strict=True):
        s.reset()
        last = [s.step(frame) for frame in seq][-1]
        assert last.predicted == p.predicted and last.class_name == p.class_name
        if backend in INT8:
            assert np.array_equal(last.logits_q, p.logits_q)
        else:
            np.testing.assert_allclose(last.logits, p.logits, atol=1e-5)
        assert s.steps == len(seq)


@pytest.mark.parametrize("backend", BACKENDS)
def test_many_to_many_per_step_and_stream(m2m, backend):
    rng = np.random.default_rng(5)
    seqs = [rng.normal(size=(n, 3)).astype(np.float32) * 3 + 5 for n in (3, 7, 1)]
    rt = Runtime(m2m, backend=backend)
    preds = rt.predict(seqs)
    ref = _reference(rt.qm, seqs)
    for i, (seq, p) in enumerate(zip(seqs, preds, strict=True)):
        assert p.per_step and len(p.predicted) == len(seq) == p.logits.shape[0]
        if backend in INT8:
            assert np.array_equal(p.logits_q, ref[i, : len(seq)])
        s = rt.stream()
        steps = [s.step(frame) for frame in seq]
        assert [st.predicted for st in steps] == p.predicted
        if backend in INT8:
            assert np.array_equal(np.stack([st.logits_q for st in steps]), p.logits_q)


@pytest.mark.parametrize("backend", BACKENDS)
def test_generation_and_token_predict(names, backend):
    rt = Runtime(names, backend=backend)
    qm = rt.qm
    g = rt.generate(max_len=12)
    assert g.text == "".join(rt.vocab[t] for t in g.tokens)
    if backend in INT8:
        assert g.tokens == int_generate(qm, qm.meta.start_token, qm.meta.end_token, 12)
    seq = [qm.meta.start_token, *(rt.vocab.index(c) for c in "anna")]
    p = rt.predict([seq])[0]
    assert p.per_step and len(p.predicted) == 5
    s = rt.stream()
    assert [s.step(t).predicted for t in seq] == p.predicted


def _reference_continuation(qm, prompt: list[int], end: int, max_len: int) -> list[int]:
    """The integer reference: int_forward on the whole prompt from the zero state gives h_n and
    the logits after it; then int_generate's greedy rule continues from that state."""
    r = int_forward(qm, np.array([prompt], np.int64), np.array([len(prompt)]))
    h = r.h_n.long()
    token, out = int(np.argmax(r.logits[0, -1].numpy())), []
    while token != end and len(out) < max_len:
        out.append(token)
        if len(out) == max_len:
            break
        step = int_forward(qm, np.array([[token]], np.int64), np.array([1]), h)
        h = step.h_n.long()
        token = int(np.argmax(step.logits[0, 0].numpy()))
    return out


def test_generate_from_a_prompt_is_the_reference_on_the_int8_backends(names):
    rts = {b: Runtime(names, backend=b) for b in BACKENDS}
    qm, vocab = rts["c"].qm, rts["c"].vocab
    s, end = qm.meta.start_token, qm.meta.end_token
    prompts = [[s], [s, vocab.index("a")], [s, *(vocab.index(c) for c in "mar")], [vocab.index("k")]]
    for p in prompts:
        for max_len in (1, 5, 20):
            want = _reference_continuation(qm, p, end, max_len)
            got = {b: rt.generate(prompt=p, max_len=max_len) for b, rt in rts.items()}
            for b in INT8:
                assert got[b].tokens == want, (b, p, max_len)
                assert got[b].prompt == p and got[b].full_text == rts[b].text(p + want)
            for b in ("onnx", "torch"):
                assert len(got[b].tokens) <= max_len and end not in got[b].tokens
        assert rts["c"].generate(prompt=[s], max_len=12).tokens == int_generate(qm, s, end, 12)
    assert rts["onnx-int8"].generate(prompt=np.array([s, vocab.index("a")]), max_len=3).prompt == [
        s,
        vocab.index("a"),
    ]


def test_generate_refuses_what_it_cannot_do(names, jv):
    with pytest.raises(InputError, match="one-to-many"):
        Runtime(jv, backend="onnx-int8").generate(max_len=3)
    with pytest.raises(InputError, match="seed"):
        Runtime(names, backend="torch").generate(max_len=3, seed=7)
    with pytest.raises(InputError, match="outside the vocabulary"):
        Runtime(names, backend="onnx-int8").generate(start_token=999, max_len=3)
    rt = Runtime(names, backend="c")
    with pytest.raises(InputError, match="outside the vocabulary"):
        rt.generate(prompt=[1, 999], max_len=3)
    with pytest.raises(InputError, match="non-empty"):
        rt.generate(prompt=[], max_len=3)
    with pytest.raises(InputError, match="not both"):
        rt.generate(start_token=1, prompt=[1], max_len=3)
    with pytest.raises(InputError, match="seed"):
        rt.generate(prompt=[1, 2], max_len=3, seed=5)


def test_bidirectional_model_cannot_stream(tmp_path_factory):
    d = _export(
        tmp_path_factory,
        "bi",
        dataset="japanese_vowels",
        spec=ModelSpec(hidden_size=4, bidirectional=True),
        tc=TrainConfig(epochs=1),
    )
    rt = Runtime(d, backend="onnx-int8")
    with pytest.raises(InputError, match="bidirectional"):
        rt.stream()
    assert len(rt.predict([np.zeros((5, 12), np.float32)])) == 1  # predict still works


def test_runtime_bad_inputs(jv, names):
    rt = Runtime(jv, backend="onnx-int8")
    with pytest.raises(InputError, match="5 features per step, the model reads 12"):
        rt.predict([np.zeros((4, 5), np.float32)])
    with pytest.raises(InputError, match="NaN"):
        rt.predict([np.full((4, 12), np.nan, np.float32)])
    with pytest.raises(InputError, match="5 features per step"):
        rt.stream().step(np.zeros(5))
    with pytest.raises(InputError, match="no sequences"):
        rt.predict([])
    tok = Runtime(names, backend="onnx-int8")
    with pytest.raises(InputError, match="outside the vocabulary"):
        tok.predict([[1, 2, 500]])
    with pytest.raises(InputError, match="outside the vocabulary"):
        tok.stream().step(0)
    with pytest.raises(InputError, match="unknown backend"):
        Runtime(jv, backend="tflite")


@pytest.mark.parametrize("backend", BACKENDS)
def test_values_past_float32_are_refused_by_every_backend(jv, backend):
    """Finite, but past float32 (or past it once normalised): the float backends answered NaN
    logits and class 0, the integer ones a real class."""
    rt = Runtime(jv, backend=backend)
    with pytest.raises(InputError, match="too large for float32"):
        rt.predict([np.full((3, 12), 1e300)])
    with pytest.raises(InputError, match="too large for float32"):
        rt.stream().step(np.full(12, 3e38, np.float32))


def test_runtime_turns_what_users_pass_into_one_line_errors(jv, names, tmp_path):
    """Raw numpy, torch and OS errors were raised for these; torch tensors of any float type and
    with requires_grad are read as data."""
    import torch

    rt = Runtime(jv, backend="onnx-int8")
    seq = np.random.default_rng(0).normal(size=(5, 12)).astype(np.float32)
    want = rt.predict([seq])[0].logits_q
    for given in (
        torch.tensor(seq, requires_grad=True),
        torch.tensor(seq, dtype=torch.float64),
        torch.tensor(seq[None]),  # a padded (B, T, I) tensor
    ):
        got = rt.predict(given if given.ndim == 3 else [given])[0].logits_q
        assert np.array_equal(got, want)
    half = torch.tensor(seq).to(torch.bfloat16)
    assert rt.predict([half])[0].logits_q is not None
    assert rt.stream().step(torch.tensor(seq[0], requires_grad=True)).logits_q is not None
    for bad, fragment in (
        ([[[1.0] * 12, [1.0] * 11]], "ragged"),
        (3.0, "got float"),
        (None, "got NoneType"),
        (seq, "one sequence of shape (5, 12)"),
        (np.zeros((1, 2, 5, 12)), "a padded batch has shape (B, T, 12)"),
        (np.zeros((2, 0, 12)), "no steps"),
    ):
        with pytest.raises(InputError, match=re.escape(fragment)):
            rt.predict(bad)
    with pytest.raises(InputError, match="ragged"):
        rt.predict(np.zeros((2, 3, 12)), lengths=[[1], [2, 3]])
    (tmp_path / "file").write_text("")
    with pytest.raises(InputError, match="workdir"):
        Runtime(jv, backend="c", workdir=tmp_path / "file")
    with pytest.raises(InputError, match=r"max_len must be an integer in 0\.\.1,048,576"):
        Runtime(names, backend="c").generate(max_len=2**40)


def test_an_object_array_of_sequences_is_a_list_of_them(jv, names):
    """np.array of ragged sequences (dtype object) is read as the list it holds, as before the
    padded-batch checks existed (they called it one sequence, or a batch of the wrong shape)."""
    rng = np.random.default_rng(0)
    seqs = [rng.normal(size=(n, 12)).astype(np.float32) for n in (7, 5)]
    held = np.empty(2, object)
    held[0], held[1] = seqs
    rt = Runtime(jv, backend="onnx-int8")
    assert [p.predicted for p in rt.predict(held)] == [p.predicted for p in rt.predict(seqs)]
    ids = np.empty(3, object)
    ids[0], ids[1], ids[2] = [1, 2, 3], [4, 5], [6]
    tok = Runtime(names, backend="onnx-int8")
    assert len(tok.predict(ids)) == 3


def test_a_closed_runtime_refuses_and_its_build_directory_is_gone(jv):
    with Runtime(jv, backend="c") as rt:
        built = rt._impl.cm.path  # the library, in the Runtime's own temporary directory
        assert rt.predict([np.zeros((3, 12), np.float32)])
        assert built.exists()
    with pytest.raises(InputError, match="closed"):
        rt.predict([np.zeros((3, 12), np.float32)])
    assert not built.exists()


def test_runtime_refuses_a_missing_or_incomplete_export(jv, tmp_path):
    with pytest.raises(InputError, match="not a directory"):
        Runtime(tmp_path / "nope")
    d = tmp_path / "d"
    d.mkdir()
    shutil.copy(jv / "checkpoint.pt", d / "checkpoint.pt")
    with pytest.raises(InputError, match="not a complete export"):
        Runtime(d)


def test_c_backend_without_a_compiler_is_a_toolchain_error(jv, monkeypatch):
    monkeypatch.setenv("CC", "edgernn-no-such-cc")
    with pytest.raises(ToolchainError):
        Runtime(jv, backend="c")


# ---------------------------------------------------------------------------------------------
# edgernn predict


def _write_csv(path: Path, ids: list[str], seqs: list[np.ndarray], label: bool = False) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        feats = [f"f{i}" for i in range(seqs[0].shape[1])]
        w.writerow(["sequence", "step", *(["label"] if label else []), *feats])
        for sid, s in zip(ids, seqs, strict=True):
            for t, row in enumerate(s):
                w.writerow([sid, t, *(["x"] if label else []), *(repr(float(v)) for v in row)])
    return path


def test_predict_csv_to_stdout_matches_the_runtime(jv, jv_raw, tmp_path):
    seqs, _ = jv_raw
    data = _write_csv(tmp_path / "in.csv", ["a", "b", "c"], seqs[:3], label=True)
    r = run("predict", str(jv), "--data", str(data))
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(io.StringIO(r.output)))
    preds = Runtime(jv, backend="onnx-int8").predict(seqs[:3])
    assert list(rows[0]) == ["sequence", "predicted", "class_name"]
    assert [(r["sequence"], int(r["predicted"]), r["class_name"]) for r in rows] == [
        (sid, p.predicted, p.class_name) for sid, p in zip("abc", preds, strict=True)
    ]


@pytest.mark.parametrize("backend", BACKENDS)
def test_predict_npz_json_is_the_same_on_every_backend(jv, jv_raw, tmp_path, backend):
    seqs, lens = jv_raw
    x = np.zeros((len(seqs), lens.max(), 12), np.float32)
    for i, s in enumerate(seqs):
        x[i, : len(s)] = s
    np.savez(tmp_path / "in.npz", X=x, lengths=lens)  # no labels
    out = tmp_path / "p.json"
    r = run("predict", str(jv), "--data", str(tmp_path / "in.npz"), "--backend", backend, "--out", str(out))
    assert r.exit_code == 0, r.output
    recs = json.loads(out.read_text())
    ref = _reference(load_quantized(jv), seqs).argmax(axis=1)
    assert [rec["sequence"] for rec in recs] == [str(i) for i in range(len(seqs))]
    if backend in INT8:
        assert [rec["predicted"] for rec in recs] == list(ref)
    assert not list(tmp_path.glob(".*.tmp"))


def test_predict_many_to_many_has_a_step_column(m2m, tmp_path):
    rng = np.random.default_rng(2)
    seqs = [rng.normal(size=(n, 3)) for n in (2, 4)]
    r = run("predict", str(m2m), "--data", str(_write_csv(tmp_path / "s.csv", ["x", "y"], seqs)))
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(io.StringIO(r.output)))
    assert list(rows[0]) == ["sequence", "step", "predicted", "class_name"]
    assert [(r["sequence"], int(r["step"])) for r in rows] == [
        ("x", 0),
        ("x", 1),
        *(("y", t) for t in range(4)),
    ]


def test_predict_generation_continues_each_prompt(names, tmp_path):
    rt = Runtime(names, backend="onnx-int8")
    s = rt.qm.meta.start_token
    prompts = [[s, rt.vocab.index("b"), rt.vocab.index("o")], [s, rt.vocab.index("a")]]
    x = np.zeros((2, 3), np.int64)
    for i, p in enumerate(prompts):
        x[i, : len(p)] = p
    np.savez(tmp_path / "t.npz", X=x, lengths=np.array([3, 2]))
    r = run("predict", str(names), "--data", str(tmp_path / "t.npz"), "--max-len", "6")
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(io.StringIO(r.output)))
    assert [list(row) for row in rows] == [["sequence", "predicted", "class_name", "text"]] * 2
    out = tmp_path / "g.json"
    r = run("predict", str(names), "--data", str(tmp_path / "t.npz"), "--max-len", "6", "--out", str(out))
    assert r.exit_code == 0, r.output
    recs = json.loads(out.read_text())
    for row, rec, p in zip(rows, recs, prompts, strict=True):
        g = rt.generate(prompt=p, max_len=6)
        assert rec["generated"] == g.tokens and len(g.tokens) <= 6
        assert row["text"] == rec["text"] == rt.text(p + g.tokens) == g.full_text
        assert row["text"].startswith("<s>" + "".join(rt.vocab[t] for t in p[1:]))
        first = g.tokens[0] if g.tokens else rt.qm.meta.end_token
        assert int(row["predicted"]) == rec["predicted"] == first
        assert row["class_name"] == rt.class_names[first]
    r = run("predict", str(names), "--data", str(tmp_path / "t.npz"), "--max-len", "0")
    assert r.exit_code == 2


def test_predict_bad_inputs(jv, names, tmp_path):
    rng = np.random.default_rng(0)
    wrong = _write_csv(tmp_path / "w.csv", ["a"], [rng.normal(size=(3, 5))])
    assert_input_error(
        run("predict", str(jv), "--data", str(wrong)), "5 features per step, the model reads 12"
    )
    np.savez(tmp_path / "w.npz", X=rng.normal(size=(2, 3, 4)).astype(np.float32))
    assert_input_error(run("predict", str(jv), "--data", str(tmp_path / "w.npz")), "the model reads 12")
    np.savez(tmp_path / "flat.npz", X=rng.normal(size=(2, 5)).astype(np.float32))
    assert_input_error(
        run("predict", str(jv), "--data", str(tmp_path / "flat.npz")),
        "X is (N, T), the shape of token ids; this model reads (N, T, 12) float features",
    )
    np.savez(tmp_path / "tok.npz", X=np.array([[1, 2, 300]]))
    assert_input_error(
        run("predict", str(names), "--data", str(tmp_path / "tok.npz")), "outside the vocabulary"
    )
    assert_input_error(run("predict", str(names), "--data", str(wrong)), "one token id per step")
    ok = _write_csv(tmp_path / "ok.csv", ["a"], [rng.normal(size=(3, 12))])
    assert_input_error(run("predict", str(jv), "--data", str(ok), "--backend", "tpu"), "unknown backend")
    assert_input_error(run("predict", str(tmp_path / "none"), "--data", str(ok)), "export directory")
    assert_input_error(run("predict", str(tmp_path), "--data", str(ok)), "not a complete export")
    out = tmp_path / "p.txt"
    assert_input_error(run("predict", str(jv), "--data", str(ok), "--out", str(out)), "unknown extension")
    assert not out.exists()
    assert_input_error(run("predict", str(jv), "--data", str(tmp_path / "missing.csv")), "not found")
    (tmp_path / "d.parquet").write_text("x")
    assert_input_error(
        run("predict", str(jv), "--data", str(tmp_path / "d.parquet")), "unsupported extension"
    )


def test_predict_refuses_a_tampered_export(jv, tmp_path):
    d = tmp_path / "d"
    shutil.copytree(jv, d, ignore=shutil.ignore_patterns(".edgernn.lock"))
    with (d / "model.int8.onnx").open("ab") as f:
        f.write(b"\0")
    data = _write_csv(tmp_path / "ok.csv", ["a"], [np.zeros((3, 12))])
    r = run("predict", str(d), "--data", str(data))
    assert r.exit_code == 1 and "does not match" in r.output and "Traceback" not in r.output, r.output


def test_predict_matches_csv_columns_to_the_trained_features_by_name(jv, tmp_path):
    """A model trained on a CSV records its feature columns; predict reads a CSV's columns by
    name, so another column order gives the same answers, and columns it was not trained on are
    refused (taken by position they would answer wrongly, with exit 0)."""
    ds = load_data(load_checkpoint(jv).meta["data"])
    raw = ds.train.x * ds.norm_std + ds.norm_mean
    names = [f"cep{i}" for i in range(12)]

    def write(path: Path, order: list[int], header: list[str], n: int, label: bool) -> Path:
        with path.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["sequence", "step", *(["label"] if label else []), *(header[i] for i in order)])
            for s in range(n):
                for t in range(int(ds.train.lengths[s])):
                    lab = [str(int(ds.train.y[s]))] if label else []
                    w.writerow([f"s{s}", t, *lab, *(repr(float(raw[s, t, i])) for i in order)])
        return path

    out = tmp_path / "named"
    train_to_dir(
        out,
        data_file=write(tmp_path / "train.csv", list(range(12)), names, len(ds.train), True),
        spec=ModelSpec(hidden_size=8),
        tc=TrainConfig(epochs=1),
        progress=False,
    )
    export_dir(out)
    assert load_checkpoint(out).meta["feature_names"] == names
    assert load_quantized(out).meta.feature_names == tuple(names)
    shuffled = list(np.random.default_rng(0).permutation(12))
    same = run(
        "predict", str(out), "--data", str(write(tmp_path / "a.csv", list(range(12)), names, 8, False))
    )
    moved = run("predict", str(out), "--data", str(write(tmp_path / "b.csv", shuffled, names, 8, False)))
    assert same.exit_code == moved.exit_code == 0 and same.output == moved.output
    # The check can fail: read by position, the moved columns give other logits.
    seqs = [raw[s, : int(ds.train.lengths[s])].astype(np.float32) for s in range(8)]
    rt = Runtime(out, backend="onnx")
    positional = rt.predict([s[:, shuffled] for s in seqs])
    assert any(not np.allclose(a.logits, b.logits) for a, b in zip(positional, rt.predict(seqs), strict=True))
    renamed = [f"f{i}" for i in range(12)]
    assert_input_error(
        run(
            "predict", str(out), "--data", str(write(tmp_path / "c.csv", list(range(12)), renamed, 2, False))
        ),
        "are not the ones the model was trained on (cep0, cep1",
    )
