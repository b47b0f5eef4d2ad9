"""PyTorch sources: an nn.Module instance, or a torch.export archive (`.pt2`).

Both are read as a torch.export program (`torch_graph.read_program`). A module is then run as
itself; a `.pt2` program runs only at the sequence length it was traced at (torch.export
specializes the time dimension of nn.RNN), so it is run there with its guards and, for other
lengths, by interpreting its graph, which holds the same ops without the guard.
"""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.export import ExportedProgram
from torch.export.graph_signature import InputKind, OutputKind

from edgernn.errors import InputError
from edgernn.importer.found import Found, Reading
from edgernn.importer.source import Source
from edgernn.importer.torch_graph import output_index, program_inputs, read_program


def _one_sequence(seq: np.ndarray, time_axis: int, tokens: bool) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(seq, dtype=np.int64 if tokens else np.float32))
    return t.unsqueeze(1 - time_axis)  # the batch axis, of size 1


def _zero_state(found: Found, batch: int = 1) -> torch.Tensor:
    return torch.zeros(found.num_layers * found.directions, batch, found.hidden_size, dtype=torch.float32)


def _batch_answer(out: Any, index: int, found: Found, time_axis: int) -> np.ndarray:
    """The model's answers in edgernn's layout: (N, T, C) per step, (N, C) per sequence. A
    per-step answer keeps time where the model's input has it (time_axis), whatever the RNN
    inside does."""
    value = out[index] if isinstance(out, (tuple, list)) else out
    if not isinstance(value, torch.Tensor):
        raise InputError(f"the model returned {type(value).__name__}, not a tensor")
    a = value.detach().cpu().numpy().astype(np.float64)
    if found.reading is Reading.PER_STEP:
        if a.ndim != 3:
            raise InputError(
                f"a per-step output of shape {tuple(a.shape)}; expected 3 axes (batch, time, values)"
            )
        return a if time_axis == 1 else a.transpose(1, 0, 2)
    if a.ndim != 2:
        raise InputError(f"a per-sequence output of shape {tuple(a.shape)}; expected (batch, values)")
    return a


def _answer(out: Any, index: int, found: Found, time_axis: int) -> np.ndarray:
    """The model's answer for one sequence: (T, C) per step, (C,) per sequence."""
    return _batch_answer(out, index, found, time_axis)[0]


def _user_args(
    ep: ExportedProgram, x_name: str, found: Found, x: torch.Tensor, time_axis: int
) -> list[torch.Tensor]:
    """The program's user inputs in order: the sequence, and a zero initial state if it takes one."""
    batch = int(x.shape[1 - time_axis])
    args = []
    for name in program_inputs(ep).user:
        if name == x_name:
            args.append(x)
        elif found.state_input:
            args.append(_zero_state(found, batch))
        else:
            raise InputError(f"the model takes an input {name!r} besides the sequence and the initial state")
    return args


def from_module(module: nn.Module, example: Any, sha256: str) -> Source:
    """An nn.Module and an example batch (a tensor, or a tuple of the forward's arguments)."""
    if not isinstance(module, nn.Module):
        raise InputError(f"expected a torch.nn.Module, got {type(module).__name__}")
    if example is None:
        raise InputError("an nn.Module source needs `example`: an input batch to trace it with")
    args = tuple(example) if isinstance(example, (tuple, list)) else (example,)
    was_training = module.training
    module.eval()
    try:
        ep = torch.export.export(module, args)
    except InputError:
        raise
    except Exception as e:  # torch.export raises many types; the user needs the first line
        raise InputError(f"torch.export could not trace the module: {_first_line(e)}") from None
    finally:
        module.train(was_training)
    found, x_name, time_axis = read_program(ep, "module")
    index = output_index(ep, found)

    @torch.no_grad()
    def run_padded(x: np.ndarray) -> np.ndarray:
        """A batch in edgernn's layout (one sequence is a batch of one) through the module itself."""
        batch = torch.from_numpy(np.ascontiguousarray(x))
        batch = batch if time_axis == 1 else batch.transpose(0, 1)
        was = module.training
        module.eval()
        try:
            return _batch_answer(
                module(*_user_args(ep, x_name, found, batch, time_axis)), index, found, time_axis
            )
        finally:
            module.train(was)

    def run(seq: np.ndarray) -> np.ndarray:
        return run_padded(np.ascontiguousarray(seq, dtype=np.int64 if found.tokens else np.float32)[None])[0]

    return Source(found=found, run=run, label=type(module).__name__, sha256=sha256, run_padded=run_padded)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else type(e).__name__


def check_archive(path: Path) -> None:
    """Refuse a `.pt2` that torch.export.load would unpickle objects from. torch.export.load
    unpickles with weights_only=False where an archive says so (pickled weights and constants,
    custom and opaque objects, and sample inputs the weights-only loader refuses); each of those
    places is checked here first."""
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            for name in names:
                if name.endswith(("model_weights_config.json", "model_constants_config.json")):
                    config = json.loads(z.read(name)).get("config", {})
                    for fqn, meta in config.items():
                        if meta.get("use_pickle") or not str(meta.get("path_name", "")).startswith(
                            ("weight_", "tensor_")
                        ):
                            raise InputError(
                                f"{path.name}: refused, {fqn!r} is stored as a pickled object; loading it "
                                "would run code (re-export with plain tensors)"
                            )
                elif "/data/sample_inputs/" in name and name.endswith(".pt"):
                    torch.load(io.BytesIO(z.read(name)), weights_only=True)
    except InputError:
        raise
    except pickle.UnpicklingError as e:
        raise InputError(
            f"{path.name}: refused, its sample inputs hold pickled objects ({_first_line(e)})"
        ) from None
    except (
        zipfile.BadZipFile,
        json.JSONDecodeError,
        KeyError,
        OSError,
        EOFError,
        RuntimeError,
        AttributeError,
    ) as e:
        raise InputError(f"{path.name}: not a readable torch.export archive ({type(e).__name__})") from None


def from_pt2(path: Path, sha256: str) -> Source:
    check_archive(path)
    try:
        ep = torch.export.load(path)
    except Exception as e:  # a damaged archive fails in many ways deep inside torch
        raise InputError(f"{path.name}: not a readable torch.export archive ({_first_line(e)})") from None
    found, x_name, time_axis = read_program(ep, "pt2")
    index = output_index(ep, found)
    specs = ep.graph_signature.input_specs
    inputs = program_inputs(ep)
    outputs = [i for i, s in enumerate(ep.graph_signature.output_specs) if s.kind == OutputKind.USER_OUTPUT]
    guarded = ep.module()
    x_meta = next(n for n in ep.graph.nodes if n.name == x_name).meta.get("val")
    traced_shape = tuple(x_meta.shape) if x_meta is not None else None
    interpreter = torch.fx.Interpreter(ep.graph_module)

    @torch.no_grad()
    def run(seq: np.ndarray) -> np.ndarray:
        x = _one_sequence(seq, time_axis, found.tokens)
        user = iter(_user_args(ep, x_name, found, x, time_axis))
        if tuple(x.shape) == traced_shape:  # the program's own shape: run it with its guards
            return _answer(guarded(*_user_args(ep, x_name, found, x, time_axis)), index, found, time_axis)
        args = [next(user) if s.kind == InputKind.USER_INPUT else inputs.tensors[s.arg.name] for s in specs]
        try:
            flat = interpreter.run(*args)
        except Exception as e:  # an op whose traced shape does not fit another length
            raise InputError(
                f"{path.name}: its graph does not run at {x.shape[time_axis]} steps ({_first_line(e)}); "
                f"it was traced at {found.traced_length}"
            ) from None
        flat = flat if isinstance(flat, (tuple, list)) else (flat,)
        return _answer([flat[i] for i in outputs], index, found, time_axis)

    return Source(found=found, run=run, label=path.name, sha256=sha256)
