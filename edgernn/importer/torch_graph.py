"""Read a torch.export program (from an nn.Module or a `.pt2` archive) into a `Found`.

The structure is found by what the graph computes, not by attribute names: the one
`aten.rnn_tanh` node, an optional `aten.embedding` between the input and it, and the optional
`aten.linear` between it and the output, with only indexing and reshaping in between. Anything
else is refused with a one-line InputError that names what was found.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.export import ExportedProgram
from torch.export.graph_signature import InputKind
from torch.fx import Node

from edgernn.errors import InputError
from edgernn.importer.found import CellWeights, Found, Reading

# Recurrent ops edgernn cannot run, by what to call them in the refusal.
_OTHER_RECURRENT = {
    "aten::lstm": "LSTM",
    "aten::gru": "GRU",
    "aten::rnn_relu": "an RNN with ReLU nonlinearity",
    "aten::lstm_cell": "LSTMCell",
    "aten::gru_cell": "GRUCell",
    "aten::rnn_relu_cell": "RNNCell with ReLU nonlinearity",
    "aten::rnn_tanh_cell": "RNNCell (a Python loop over a cell)",
}
# Ops that only select, reshape or copy values: they may sit between the parts.
_VIEWS = {
    "aten::select",
    "aten::slice",
    "aten::squeeze",
    "aten::unsqueeze",
    "aten::view",
    "aten::reshape",
    "aten::_unsafe_view",
    "aten::flatten",
    "aten::transpose",
    "aten::permute",
    "aten::t",
    "aten::contiguous",
    "aten::clone",
    "aten::alias",
    "aten::detach",
    "aten::cat",
    "aten::dropout",  # identity in eval mode, which is how a source is traced
    "aten::feature_dropout",
    "aten::_to_copy",
    "aten::to",
    "aten::lift_fresh_copy",
    "_operator.getitem",
    "operator.getitem",
}
_ZEROS = {"aten::zeros", "aten::zeros_like", "aten::new_zeros"}


def opname(node: Node) -> str:
    """'aten::rnn_tanh' for an ATen op (overload dropped), the Python name otherwise."""
    target = node.target
    name = getattr(target, "name", None)
    if callable(name):
        return str(name()).split(".")[0]
    return f"{getattr(target, '__module__', '')}.{getattr(target, '__name__', str(target))}".lstrip(".")


_DROPOUTS = {"aten::dropout", "aten::feature_dropout"}


def _dropping(p: Any, train: Any) -> bool:
    """Whether a dropout's (p, train) arguments drop values: in training mode, p above 0."""
    return bool(train) and isinstance(p, (int, float)) and p > 0


def _short(name: str) -> str:
    return name.split("::")[-1].split(".")[-1]


@dataclass(frozen=True)
class ProgramInputs:
    """Placeholders by role: tensors of lifted parameters, buffers and constants by placeholder
    name, and the user inputs in call order."""

    tensors: dict[str, torch.Tensor]
    user: tuple[str, ...]


def program_inputs(ep: ExportedProgram) -> ProgramInputs:
    tensors: dict[str, torch.Tensor] = {}
    user = []
    for spec in ep.graph_signature.input_specs:
        name = getattr(spec.arg, "name", None)
        if name is None:
            continue
        if spec.kind == InputKind.USER_INPUT:
            user.append(name)
        elif spec.kind in (InputKind.PARAMETER, InputKind.BUFFER) and spec.target is not None:
            tensors[name] = ep.state_dict[spec.target]
        elif spec.kind == InputKind.CONSTANT_TENSOR and spec.target is not None:
            tensors[name] = ep.constants[spec.target]
    return ProgramInputs(tensors, tuple(user))


def _tensor(node: Any, inputs: ProgramInputs, what: str) -> np.ndarray:
    if not isinstance(node, Node) or node.name not in inputs.tensors:
        raise InputError(
            f"the {what} is computed in the graph, not a stored tensor; edgernn reads stored weights"
        )
    return inputs.tensors[node.name].detach().cpu().numpy().astype(np.float32)


_OPEN_END = 2**62  # an open slice end is traced as INT64_MAX; anything this large is open


def _part_of(node: Node) -> str:
    """What part of its input a view on the RNN's input path keeps, or "" for all of it. A window
    over time or some features is invisible to a proof on data no longer than the window."""
    name = opname(node)

    def arg(i: int, key: str, default: Any) -> Any:
        return node.args[i] if len(node.args) > i else node.kwargs.get(key, default)

    if name == "aten::slice":
        dim, start, end, step = (
            arg(1, "dim", 0),
            arg(2, "start", None),
            arg(3, "end", None),
            arg(4, "step", 1),
        )
        open_end = end is None or (isinstance(end, int) and end >= _OPEN_END)
        whole = start in (None, 0) and open_end and step == 1
        shown = f"{start or ''}:{'' if open_end else end}{'' if step == 1 else f':{step}'}"
        return "" if whole else f"a slice [{shown}] along dim {dim}"
    if name == "aten::select":
        return f"index {arg(2, 'index', '?')} along dim {arg(1, 'dim', '?')}"
    if name == "aten::cat":
        joined = node.args[0]
        return "" if isinstance(joined, (list, tuple)) and len(joined) == 1 else "a concatenation"
    return ""


def _walk_back(node: Node, inputs: ProgramInputs) -> tuple[Node, list[Node]]:
    """From the RNN's input back to a user input: returns it and the ops on the way."""
    ops: list[Node] = []
    cur = node
    while cur.op != "placeholder":
        name = opname(cur)
        if name != "aten::embedding" and name not in _VIEWS:
            raise InputError(
                f"the RNN's input is computed by {_short(name)}; edgernn imports models whose RNN reads "
                "the input, or an embedding of it, directly"
            )
        part = _part_of(cur)
        if part:
            raise InputError(
                f"the RNN reads {part} of the model's input ({_short(name)}); edgernn imports models whose "
                "RNN reads every step and feature of it: select in your data instead"
            )
        ops.append(cur)
        src = cur.args[1] if name == "aten::embedding" else cur.args[0]
        if not isinstance(src, Node):
            raise InputError(f"the RNN's input comes from {_short(name)} of a constant")
        cur = src
    if cur.name not in inputs.user:
        raise InputError("the RNN reads a stored tensor, not the model's input")
    return cur, ops


def _downstream(start: Node) -> list[Node]:
    """Every node that depends on `start`, in graph order."""
    seen: set[Node] = set()
    stack = [start]
    while stack:
        n = stack.pop()
        for user in n.users:
            if user not in seen:
                seen.add(user)
                stack.append(user)
    return [n for n in start.graph.nodes if n in seen]


def _reading(rnn: Node, head_in: Node) -> tuple[Reading, list[str]]:
    """Which RNN output the head (or the graph output) reads, and the op names on the way. Of the
    output sequence, a head input with a time axis reads every step; one without it reads one
    step, which the proof must then find to be the last."""
    path: list[str] = []
    used: set[int] = set()
    stack, seen = [head_in], set()
    while stack:
        n = stack.pop()
        if n in seen or n is rnn:
            continue
        seen.add(n)
        name = opname(n) if n.op == "call_function" else n.op
        if name in ("_operator.getitem", "operator.getitem") and n.args[0] is rnn:
            used.add(int(n.args[1]))  # type: ignore[arg-type]
            continue
        path.append(_short(name))
        stack.extend(a for a in n.all_input_nodes if a is not rnn)
    if used == {1}:
        return Reading.FINAL_STATE, path
    if used == {0}:
        val = head_in.meta.get("val")
        per_step = val is not None and len(val.shape) == 3
        return (Reading.PER_STEP if per_step else Reading.LAST_OUTPUT), path
    raise InputError("the head reads both the RNN's outputs and its final state; edgernn reads one of them")


def _initial_state(hx: Any, inputs: ProgramInputs) -> bool:
    """True if the RNN's initial state is a user input; refuses a learned (non-zero) one."""
    if not isinstance(hx, Node):
        return False
    if hx.op == "placeholder":
        if hx.name in inputs.user:
            return True
        if np.any(_tensor(hx, inputs, "initial state") != 0):
            raise InputError("the RNN starts from a learned initial state; edgernn starts from zeros")
        return False
    if opname(hx) in _ZEROS:
        return False
    raise InputError(
        f"the RNN's initial state is computed by {_short(opname(hx))}; edgernn starts from zeros"
    )


def _cells(
    params: Iterable[Any], inputs: ProgramInputs, layers: int, dirs: int, bias: bool
) -> tuple[CellWeights, ...]:
    arrays = [_tensor(p, inputs, "RNN weight") for p in params]
    per = 4 if bias else 2
    if len(arrays) != layers * dirs * per:
        raise InputError(f"the RNN has {len(arrays)} weight tensors; {layers * dirs * per} expected")
    cells = []
    for i in range(layers * dirs):
        w_ih, w_hh, *b = arrays[i * per : (i + 1) * per]
        zeros = np.zeros(w_hh.shape[0], np.float32)
        cells.append(CellWeights(w_ih, w_hh, b[0] if bias else zeros, b[1] if bias else zeros))
    return tuple(cells)


def read_program(ep: ExportedProgram, kind: str) -> tuple[Found, str, int]:
    """The Found of a program, the name of the user input the RNN reads, and the axis of time in
    that input."""
    inputs = program_inputs(ep)
    nodes = [n for n in ep.graph.nodes if n.op == "call_function"]
    names = [opname(n) for n in nodes]
    for name in names:
        if name in _OTHER_RECURRENT:
            raise InputError(f"found {_OTHER_RECURRENT[name]}; edgernn exports tanh RNNs")
    rnns = [n for n, name in zip(nodes, names, strict=True) if name == "aten::rnn_tanh"]
    if not rnns:
        raise InputError("no RNN found in the model's graph (looked for torch.nn.RNN with tanh)")
    if len(rnns) > 1:
        raise InputError(
            f"found {len(rnns)} RNNs; edgernn exports a model with one (stack layers with num_layers)"
        )
    rnn = rnns[0]
    if str(rnn.target).endswith(".data"):
        raise InputError("the RNN reads a PackedSequence; trace the model with a plain padded tensor")
    inp, hx, params, has_biases, layers, dropout, train, bidirectional, batch_first = rnn.args[:9]
    active = [
        n for n, name in zip(nodes, names, strict=True) if name in _DROPOUTS and _dropping(*n.args[1:3])
    ]
    if (int(layers) > 1 and _dropping(dropout, train)) or active:
        raise InputError(
            "the model was exported in training mode: its dropout is active, so each run drops "
            "different values; call model.eval() before torch.export"
        )
    dirs = 2 if bidirectional else 1
    cells = _cells(params, inputs, int(layers), dirs, bool(has_biases))
    x_node, back = _walk_back(inp, inputs)
    embedding, padding_idx = None, None
    time_axis = 1 if batch_first else 0
    for n in back:
        name = opname(n)
        if name == "aten::embedding":
            embedding = _tensor(n.args[0], inputs, "embedding table")
            pad = n.args[2] if len(n.args) > 2 else -1
            padding_idx = int(pad) if isinstance(pad, int) and pad >= 0 else None
        elif name in ("aten::transpose", "aten::t", "aten::permute"):
            time_axis = _through_permute(n, time_axis)
    after = _downstream(rnn)
    linears = [n for n in after if opname(n) == "aten::linear"]
    if len(linears) > 1:
        raise InputError(f"the head is {len(linears)} linear layers; edgernn exports one linear layer")
    others = [
        _short(opname(n))
        for n in after
        if n.op == "call_function" and opname(n) not in _VIEWS and opname(n) != "aten::linear"
    ]
    if others:
        found_ops = " -> ".join(dict.fromkeys(others))
        raise InputError(f"the head is not one linear layer: found {found_ops} after the RNN")
    head_w = head_b = None
    if linears:
        lin = linears[0]
        head_w = _tensor(lin.args[1], inputs, "head weight")
        head_b = (
            _tensor(lin.args[2], inputs, "head bias")
            if len(lin.args) > 2 and lin.args[2] is not None
            else None
        )
        if head_b is None:
            head_b = np.zeros(head_w.shape[0], np.float32)
        reading, path = _reading(rnn, lin.args[0])  # type: ignore[arg-type]
    else:
        out = _output_node(ep, rnn)
        reading, path = _reading(rnn, out)
    first = cells[0]
    x_shape = tuple(x_node.meta["val"].shape) if "val" in x_node.meta else None
    found = Found(
        kind=kind,
        input_size=int(first.w_ih.shape[1]),
        hidden_size=int(first.w_hh.shape[0]),
        num_layers=int(layers),
        bidirectional=bool(bidirectional),
        cells=cells,
        reading=reading,
        batch_first=bool(batch_first),
        has_bias=bool(has_biases),
        embedding=embedding,
        padding_idx=padding_idx,
        head_w=head_w,
        head_b=head_b,
        state_input=_initial_state(hx, inputs),
        traced_length=int(x_shape[time_axis]) if x_shape is not None else None,
        ops=tuple(path),
    )
    if embedding is not None and embedding.shape[1] != found.input_size:
        raise InputError(f"the embedding is {embedding.shape[1]} wide but the RNN reads {found.input_size}")
    return found, x_node.name, time_axis


def _through_permute(n: Node, axis: int) -> int:
    """The axis of the permute's input that becomes `axis` of its output."""
    name = opname(n)
    if name == "aten::t":
        return 1 - axis
    if name == "aten::transpose":
        a, b = int(n.args[1]), int(n.args[2])  # type: ignore[arg-type]
        return b if axis == a else a if axis == b else axis
    perm = list(n.args[1])  # type: ignore[arg-type]
    return int(perm[axis])


def _output_node(ep: ExportedProgram, rnn: Node) -> Node:
    """The user output that depends on the RNN (a model may also return its state)."""
    out = next(n for n in ep.graph.nodes if n.op == "output")
    values = out.args[0] if isinstance(out.args[0], (tuple, list)) else (out.args[0],)
    for v in values:
        if isinstance(v, Node) and (v is rnn or rnn in _ancestors(v)):
            return v
    raise InputError("the model's output does not depend on its RNN")


def _ancestors(node: Node) -> set[Node]:
    seen: set[Node] = set()
    stack = list(node.all_input_nodes)
    while stack:
        n = stack.pop()
        if n not in seen:
            seen.add(n)
            stack.extend(n.all_input_nodes)
    return seen


def output_index(ep: ExportedProgram, found: Found) -> int:
    """Which of the program's user outputs is the model's answer: the head's (or, with no head,
    the RNN-derived one that is not a bare state passthrough)."""
    out = next(n for n in ep.graph.nodes if n.op == "output")
    values = out.args[0] if isinstance(out.args[0], (tuple, list)) else (out.args[0],)
    candidates = []
    for i, v in enumerate(values):
        if not isinstance(v, Node):
            continue
        names = {opname(a) for a in _ancestors(v) | {v} if a.op == "call_function"}
        if found.head_w is not None and "aten::linear" in names:
            return i
        if "aten::rnn_tanh" in names:
            candidates.append(i)
    if not candidates:
        raise InputError("the model's output does not depend on its RNN")
    return candidates[0]
