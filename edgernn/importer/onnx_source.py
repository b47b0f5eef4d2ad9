"""ONNX sources: a graph whose recurrent part is the standard `RNN` op (tanh).

Layers are RNN ops chained through their `Y` outputs (as torch.onnx writes a multi-layer
nn.RNN); an optional `Gather` from a stored table in front is the embedding; an optional `Gemm`,
or `MatMul` + `Add`, of stored tensors behind is the head. Only ops that select, reshape or copy
may sit between these parts. The source runs in ONNX Runtime, or in onnx's reference evaluator
where ORT refuses the graph (ORT 1.32 runs no `layout=1` recurrence).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgernn.errors import InputError
from edgernn.importer.found import CellWeights, Found, Reading
from edgernn.importer.source import Source

_OTHER_RECURRENT = {"LSTM": "LSTM", "GRU": "GRU", "Loop": "a Loop", "Scan": "a Scan"}
_VIEWS = {
    "Transpose", "Reshape", "Squeeze", "Unsqueeze", "Gather", "Slice", "Flatten", "Identity",
    "Dropout", "Concat", "Cast", "Split",
}  # fmt: skip
# Ops that read only a tensor's shape: what they feed carries none of its values.
_SHAPE_OPS = {"Shape", "Size"}


def _attr(node: onnx.NodeProto, name: str, default: Any = None) -> Any:
    for a in node.attribute:
        if a.name == name:
            value = helper.get_attribute_value(a)
            if isinstance(value, list):
                return [v.decode() if isinstance(v, bytes) else v for v in value]
            return value.decode() if isinstance(value, bytes) else value
    return default


class _Graph:
    """Name lookups over one ONNX graph."""

    def __init__(self, model: onnx.ModelProto) -> None:
        g = model.graph
        self.model = model
        self.init = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        for n in g.node:
            if n.op_type == "Constant" and _attr(n, "value") is not None:
                self.init[n.output[0]] = numpy_helper.to_array(_attr(n, "value"))
        self.inputs = [i.name for i in g.input if i.name not in self.init]
        self.outputs = [o.name for o in g.output]
        self.producer = {o: n for n in g.node for o in n.output if o}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for n in g.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)

    def tensor(self, name: str, what: str) -> np.ndarray:
        if name not in self.init:
            raise InputError(f"the {what} is computed in the graph, not stored; edgernn reads stored weights")
        return np.asarray(self.init[name], dtype=np.float32)

    def data_producer(self, name: str) -> onnx.NodeProto | None:
        return self.producer.get(name)


def _refuse_unsupported(node: onnx.NodeProto, index: int) -> None:
    acts = [a.lower() for a in (_attr(node, "activations") or [])]
    if any(a != "tanh" for a in acts):
        other = next(a for a in acts if a != "tanh")
        raise InputError(f"RNN {index} uses activation {other}; edgernn exports tanh RNNs")
    if _attr(node, "clip") is not None:
        raise InputError(f"RNN {index} clips its cell input (attribute clip); edgernn does not")


def _walk_back(g: _Graph, name: str) -> tuple[str, list[onnx.NodeProto]]:
    """From an RNN's X back to a graph input or another RNN's output; returns it and the views."""
    ops: list[onnx.NodeProto] = []
    while name not in g.inputs:
        node = g.data_producer(name)
        if node is None:
            raise InputError(f"the RNN reads the stored tensor {name!r}, not the model's input")
        if node.op_type == "RNN":
            return name, ops
        if node.op_type not in _VIEWS:
            raise InputError(
                f"the RNN's input is computed by {node.op_type}; edgernn imports models whose RNN reads "
                "the input, or an embedding of it, directly"
            )
        embedding = node.op_type == "Gather" and node.input[0] in g.init  # ids looked up in a stored table
        if node.op_type == "Gather" and not embedding and node.input[1] not in g.init:
            raise InputError(
                f"the RNN reads the model's input reordered by computed indices (Gather "
                f"{node.name or node.output[0]!r}), as pack_padded_sequence(enforce_sorted=False) sorts "
                "a batch; export the model with enforce_sorted=True, or without packing"
            )
        if not embedding and not _keeps_every_value(g, node):
            raise InputError(
                f"the RNN reads part of the model's input ({node.op_type} {node.name or node.output[0]!r}); "
                "edgernn imports models whose RNN reads every step and feature of it: select in your data "
                "instead"
            )
        ops.append(node)
        name = node.input[1] if embedding else node.input[0]
    return name, ops


_OPEN_END = 2**62  # torch writes an open slice end as INT64_MAX; anything this large is open


def _keeps_every_value(g: _Graph, node: onnx.NodeProto) -> bool:
    """False for a view on the input's path that drops or repeats values (a window over time, some
    features, the input joined with itself): the proof, on the data's lengths, may never see the
    difference. A slice counts as whole only when its constants say so."""
    if node.op_type == "Slice":
        starts, ends = g.init.get(node.input[1]), g.init.get(node.input[2])
        steps = g.init.get(node.input[4]) if len(node.input) > 4 and node.input[4] else np.ones(1)
        return (
            starts is not None
            and ends is not None
            and bool(np.all(starts == 0) and np.all(ends >= _OPEN_END) and np.all(steps == 1))
        )
    if node.op_type == "Concat":
        return len(node.input) == 1
    if node.op_type == "Split":
        return len(node.output) == 1
    return node.op_type != "Gather"


def _cells(g: _Graph, node: onnx.NodeProto, dirs: int) -> tuple[list[CellWeights], bool]:
    w = g.tensor(node.input[1], "RNN's W")
    r = g.tensor(node.input[2], "RNN's R")
    hidden = int(_attr(node, "hidden_size", r.shape[-1]))
    has_b = len(node.input) > 3 and node.input[3] != ""
    b = g.tensor(node.input[3], "RNN's B") if has_b else np.zeros((dirs, 2 * hidden), np.float32)
    if w.shape[:2] != (dirs, hidden) or r.shape != (dirs, hidden, hidden) or b.shape != (dirs, 2 * hidden):
        raise InputError(
            f"RNN weights of shapes {w.shape}, {r.shape}, {b.shape} do not fit {dirs} x {hidden}"
        )
    cells = [CellWeights(w[d], r[d], b[d, :hidden], b[d, hidden:]) for d in range(dirs)]
    return cells, has_b


def _downstream(g: _Graph, start: list[str]) -> list[onnx.NodeProto]:
    """The nodes that compute from `start`'s values; shape computations (a `Shape` of a tensor
    feeding a `Reshape`) carry no values of it and are not followed."""
    seen: list[onnx.NodeProto] = []
    stack = list(start)
    while stack:
        for n in g.consumers.get(stack.pop(), []):
            if n.op_type in _SHAPE_OPS:
                continue
            if n not in seen:
                seen.append(n)
                stack.extend(o for o in n.output if o)
    return seen


def _head(g: _Graph, after: list[onnx.NodeProto]) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The one linear layer behind the RNN: Gemm, or MatMul (+ Add) of stored tensors."""
    gemms = [n for n in after if n.op_type == "Gemm"]
    matmuls = [n for n in after if n.op_type == "MatMul"]
    if len(gemms) + len(matmuls) > 1:
        raise InputError(
            f"the head is {len(gemms) + len(matmuls)} linear layers; edgernn exports one linear layer"
        )
    others = [n.op_type for n in after if n.op_type not in _VIEWS | {"Gemm", "MatMul", "Add"}]
    adds = [n for n in after if n.op_type == "Add"]
    if others or len(adds) > (1 if matmuls else 0):
        found = " -> ".join(dict.fromkeys(others or ["Add"]))
        raise InputError(f"the head is not one linear layer: found {found} after the RNN")
    if gemms:
        n = gemms[0]
        if _attr(n, "alpha", 1.0) != 1.0 or _attr(n, "beta", 1.0) != 1.0 or _attr(n, "transA", 0):
            raise InputError(
                "the head's Gemm scales or transposes its input (alpha, beta, transA); export it plainly"
            )
        w = g.tensor(n.input[1], "head weight")
        w = w if _attr(n, "transB", 0) else w.T
        b = (
            g.tensor(n.input[2], "head bias")
            if len(n.input) > 2 and n.input[2]
            else np.zeros(w.shape[0], np.float32)
        )
        return w, np.broadcast_to(b, (w.shape[0],)).astype(np.float32)
    if matmuls:
        w = g.tensor(matmuls[0].input[1], "head weight").T
        b = np.zeros(w.shape[0], np.float32)
        if adds:
            add = adds[0]
            if matmuls[0].output[0] not in add.input:
                raise InputError(
                    f"the head adds {add.name or add.output[0]!r} before its MatMul, not after it as a bias; "
                    "edgernn exports one linear layer on the RNN's output"
                )
            other = add.input[1] if add.input[0] == matmuls[0].output[0] else add.input[0]
            b = np.broadcast_to(g.tensor(other, "head bias"), (w.shape[0],)).astype(np.float32)
        return w, b
    return None, None


def _time_axis(ops: list[onnx.NodeProto], rnn_axis: int) -> int:
    """The axis of time in the graph input, followed back from the RNN's X through transposes
    (an embedding's Gather keeps the ids' axes first)."""
    axis = rnn_axis
    for n in ops:
        if n.op_type == "Transpose":
            perm = list(_attr(n, "perm") or [])
            axis = perm[axis] if perm else axis
    return axis


@dataclass(frozen=True)
class Roles:
    """How to feed and read the graph."""

    inputs: dict[str, str]  # "x", and if the graph takes them "lengths" and "h0" -> input name
    time_axis: int  # of x
    layout: int  # the RNN ops' layout attribute
    answer: str  # the graph output that is the model's answer
    initial_states: tuple[str, ...]  # initial_h tensors computed inside the graph (must be zeros)


def read_graph(model: onnx.ModelProto) -> tuple[Found, Roles]:
    """The Found of an ONNX graph, and how to feed and read it."""
    g = _Graph(model)
    ops = [n.op_type for n in model.graph.node]
    for op in ops:
        if op in _OTHER_RECURRENT:
            raise InputError(f"found {_OTHER_RECURRENT[op]}; edgernn exports tanh RNNs")
    rnns = [n for n in model.graph.node if n.op_type == "RNN"]
    if not rnns:
        raise InputError("no RNN found in the ONNX graph (looked for the RNN op)")
    for i, n in enumerate(rnns):
        _refuse_unsupported(n, i)
    # Order the layers along the data path: each reads the previous one's Y.
    sources = {}
    back_ops = {}
    for n in rnns:
        src, path = _walk_back(g, n.input[0])
        sources[n.name or n.output[0]] = src
        back_ops[n.name or n.output[0]] = path
    outputs_of = {n.output[0]: n for n in rnns}
    firsts = [n for n in rnns if sources[n.name or n.output[0]] not in outputs_of]
    if len(firsts) != 1:
        raise InputError(
            f"found {len(firsts)} RNNs side by side; edgernn exports one (stacked layers are fine)"
        )
    chain = [firsts[0]]
    while True:
        nxt = [n for n in rnns if sources[n.name or n.output[0]] == chain[-1].output[0]]
        if not nxt:
            break
        chain.append(nxt[0])
    if len(chain) != len(rnns):
        raise InputError(f"found {len(rnns)} RNNs that are not one stack; edgernn exports one RNN")
    directions = {_attr(n, "direction", "forward") for n in chain}
    layouts = {int(_attr(n, "layout", 0)) for n in chain}
    if len(directions) != 1 or len(layouts) != 1:
        raise InputError("the RNN layers differ in direction or layout; edgernn needs one for the stack")
    bidirectional = directions == {"bidirectional"}
    reverse = directions == {"reverse"}
    dirs = 2 if bidirectional else 1
    cells: list[CellWeights] = []
    biased = []
    for n in chain:
        layer_cells, has_b = _cells(g, n, dirs)
        cells += layer_cells
        biased.append(has_b)
    first = chain[0]
    x_name = sources[first.name or first.output[0]]
    front = back_ops[first.name or first.output[0]]
    gathers = [n for n in front if n.op_type == "Gather" and n.input[0] in g.init]
    embedding = g.tensor(gathers[0].input[0], "embedding") if gathers else None
    layout = layouts.pop()
    time_axis = _time_axis(front, layout)
    top = chain[-1]
    after = _downstream(g, [o for o in top.output if o])
    head_w, head_b = _head(g, after)
    answer = _answer(g, top, after, head_w is not None)
    feeding = _ancestors(g, answer) | {answer}
    used = {i for i, o in enumerate(top.output) if o and o in feeding}
    roles = {"x": x_name}
    computed: list[str] = []
    for n in chain:
        for index, role in ((4, "lengths"), (5, "h0")):
            if len(n.input) > index and n.input[index]:
                feeder = _input_behind(g, n.input[index])
                if feeder is not None:
                    roles[role] = feeder
                elif role == "h0" and n.input[index] in g.init:
                    if np.any(g.init[n.input[index]] != 0):
                        raise InputError(
                            "the RNN starts from a stored, non-zero initial state; edgernn starts from zeros"
                        )
                elif role == "h0":
                    computed.append(n.input[index])
    extra = set(g.inputs) - set(roles.values())
    if extra:
        raise InputError(
            f"the graph takes an input {sorted(extra)[0]!r} besides the sequence, lengths and initial state"
        )
    if used == {1}:
        reading = Reading.FINAL_STATE
    elif used == {0}:
        reading = Reading.LAST_OUTPUT  # refined by the output's shape in from_onnx
    else:
        raise InputError(
            "the head reads both the RNN's outputs and its final state; edgernn reads one of them"
        )
    found = Found(
        kind="onnx",
        input_size=int(cells[0].w_ih.shape[1]),
        hidden_size=int(cells[0].w_hh.shape[0]),
        num_layers=len(chain),
        bidirectional=bidirectional,
        cells=tuple(cells),
        reading=reading,
        batch_first=time_axis == 1,
        has_bias=all(biased),
        embedding=embedding,
        head_w=head_w,
        head_b=head_b,
        state_input="h0" in roles,
        reverse=reverse,
        ops=tuple(n.op_type for n in after if n.op_type in _VIEWS),
    )
    return found, Roles(roles, time_axis, layout, answer, tuple(computed))


def _ancestors(g: _Graph, name: str) -> set[str]:
    """Every tensor whose values `name` is computed from."""
    seen: set[str] = set()
    stack = [name]
    while stack:
        node = g.data_producer(stack.pop())
        if node is None or node.op_type in _SHAPE_OPS:  # a shape carries no values
            continue
        for i in node.input:
            if i and i not in seen:
                seen.add(i)
                stack.append(i)
    return seen


def _answer(g: _Graph, top: onnx.NodeProto, after: list[onnx.NodeProto], has_head: bool) -> str:
    """The graph output that is the model's answer: behind the head, or behind the RNN (a graph
    may also return its state)."""
    lin = [n for n in after if n.op_type in ("Gemm", "MatMul")]
    nodes = _downstream(g, list(lin[0].output)) + lin[:1] if has_head else [top, *after]
    behind = {o for n in nodes for o in n.output}
    for name in g.outputs:
        if name in behind:
            return name
    raise InputError("no output of the graph depends on its RNN")


def _input_behind(g: _Graph, name: str) -> str | None:
    """The graph input a tensor is a view or cast of, or None if it is computed from constants."""
    while name not in g.inputs:
        node = g.data_producer(name)
        if node is None or node.op_type not in _VIEWS or not node.input:
            return None
        name = node.input[0]
    return name


def _session(model: onnx.ModelProto, layout: int) -> Callable[[dict[str, np.ndarray]], list[np.ndarray]]:
    """ONNX Runtime, or onnx's reference evaluator for graphs ORT refuses: layout=1 RNNs (asked
    first, ORT would log its refusal on stderr even though the import then succeeds), and any
    other graph it fails to load."""
    import onnxruntime as ort
    from onnx.reference import ReferenceEvaluator

    def reference() -> Callable[[dict[str, np.ndarray]], list[np.ndarray]]:
        ref = ReferenceEvaluator(model)
        return lambda feed: [np.asarray(v) for v in ref.run(None, feed)]

    if layout == 1:
        return reference()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    try:
        sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        return lambda feed: [np.asarray(v) for v in sess.run(None, feed)]
    except Exception:  # ORT's own error types; the reference evaluator is the fallback for all
        return reference()


def _dtype(model: onnx.ModelProto, name: str) -> Any:
    for i in model.graph.input:
        if i.name == name:
            return helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type)
    raise InputError(f"the graph has no input {name!r}")


def from_onnx(path: Path, data: bytes, sha256: str) -> Source:
    try:
        model = onnx.load_from_string(data)
    except Exception as e:  # protobuf's DecodeError and friends
        raise InputError(f"{path.name}: not a readable ONNX file ({type(e).__name__})") from None
    if not model.graph.node:
        raise InputError(f"{path.name}: not a readable ONNX file (no graph)")
    external = [t.name for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    if external:
        # Read from beside the file, they would be weights that the recorded sha256 of the
        # source does not cover; a model small enough for a microcontroller fits in one file.
        raise InputError(
            f"{path.name}: its weights ({external[0]}{', ...' if len(external) > 1 else ''}) are in a "
            "separate data file; save the model as one file (onnx.save(onnx.load(path), out) loads "
            "and inlines them) and import that"
        )
    found, how = read_graph(model)
    roles, time_axis = how.inputs, how.time_axis
    watched = onnx.ModelProto()
    watched.CopyFrom(model)
    for name in how.initial_states:  # read them back to prove they are zeros
        watched.graph.output.append(helper.make_empty_tensor_value_info(name))
    run_graph = _session(watched, how.layout)
    x_type = _dtype(model, roles["x"])
    names = [o.name for o in watched.graph.output]
    answer = names.index(how.answer)

    def feed(x: np.ndarray) -> dict[str, np.ndarray]:
        """x in edgernn's layout (N, T[, I]) -> the graph's inputs."""
        n, steps = x.shape[0], x.shape[1]
        xs = np.ascontiguousarray(x if time_axis == 1 else np.swapaxes(x, 0, 1)).astype(x_type)
        out = {roles["x"]: xs}
        if "lengths" in roles:
            out[roles["lengths"]] = np.full(n, steps, _dtype(model, roles["lengths"]))
        if "h0" in roles:
            states = found.num_layers * found.directions
            # ONNX RNN's initial_h: (directions, N, H) at layout 0, (N, directions, H) at layout 1.
            shape = (states, n, found.hidden_size) if how.layout == 0 else (n, states, found.hidden_size)
            out[roles["h0"]] = np.zeros(shape, _dtype(model, roles["h0"]))
        return out

    def run_padded(x: np.ndarray) -> np.ndarray:
        try:
            values = run_graph(feed(x))
        except Exception as e:  # the runtime's own error types
            said = " ".join(str(e).split())[:400]  # its detail (which index, what size) is past line 1
            hint = (
                "; the graph's input has fixed sizes: export it with dynamic_axes for batch and time "
                "(README, importing a model)"
                if "invalid dimensions" in said.lower()
                else ""
            )
            raise InputError(f"{path.name}: the runtime failed on the model: {said}{hint}") from None
        for name, v in zip(names, values, strict=True):
            if name in how.initial_states and np.any(v != 0):
                raise InputError(
                    "the RNN starts from a computed, non-zero initial state; edgernn starts from zeros"
                )
        return _layout(values[answer], how, names[answer], model)

    def run(seq: np.ndarray) -> np.ndarray:
        return run_padded(seq[None])[0]

    probe = run_padded(_probe(found, 3))
    per_step = probe.ndim == 3
    if per_step and found.reading is not Reading.FINAL_STATE:
        found = replace(found, reading=Reading.PER_STEP)
    return Source(found=found, run=run, label=path.name, sha256=sha256, run_padded=run_padded)


def _probe(found: Found, steps: int) -> np.ndarray:
    if found.tokens:
        return np.ones((1, steps), np.int64)
    return np.full((1, steps, found.input_size), 0.25, np.float32)


def _layout(value: np.ndarray, how: Roles, name: str, model: onnx.ModelProto) -> np.ndarray:
    """An output in edgernn's layout: (N, C) per sequence, (N, T, C) per step."""
    rnn_outputs = {
        n.output[i]: i for n in model.graph.node if n.op_type == "RNN" for i in range(len(n.output))
    }
    layout, time_axis = how.layout, how.time_axis
    if name in rnn_outputs and rnn_outputs[name] == 0:  # Y: (T, D, N, H) or (N, T, D, H)
        y = value.transpose(2, 0, 1, 3) if layout == 0 else value
        return y.reshape(y.shape[0], y.shape[1], -1).astype(np.float64)
    if name in rnn_outputs and rnn_outputs[name] == 1:  # Y_h: (D, N, H) or (N, D, H)
        h = value.transpose(1, 0, 2) if layout == 0 else value
        return h.reshape(h.shape[0], -1).astype(np.float64)
    if value.ndim == 3:
        return (value if time_axis == 1 else value.transpose(1, 0, 2)).astype(np.float64)
    return value.astype(np.float64)
