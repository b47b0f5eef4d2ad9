"""Microcontroller proof: the generated model.h, cross-compiled for a target core, run on an
emulator, gives the torch integer reference's integers; with its flash, RAM and instructions per MAC.

Target-agnostic: a target (edgernn.targets.base.Target, looked up in the registry
edgernn.targets) says how to build for it, which emulator runs it, which board boots it and which
kernel path its machine code took. Per target and compiler (edgernn.targets.toolchain), one
image is built from c_runtime/mcu/: model_unit.c (the model alone) + harness.c (the check) +
vectors.h (test sequences and every integer int_forward produced for them,
edgernn.targets.vectors). Then:
- the target's emulator (Unicorn, both compilers' images): mcu_check() over every sequence ->
  mismatches; the same over the first `bench_sequences` sequences with each model call's
  instructions counted (edgernn.targets.unicorn_emu has the definition) -> insns per step;
  mcu_stack_probe() -> stack high-water.
- the target's QEMU board (images of a hosted toolchain: gcc + picolibc): the image boots and
  checks itself; its mismatches and stack must agree with the emulator's.
Figures:
- flash_bytes: the .text + .rodata sections of model_unit.o (weights, LUT, kernels, the API
  calls the harness makes) that the linked image keeps (edgernn.targets.footprint), plus any
  compiler-runtime helper they call, at the helper's size in the linked image;
- ram_bytes: the model's static RAM (.data + .bss, 0 by design) + the state + the stack high-water
  of one step (scratch accumulators included). A bidirectional model also needs its run buffer,
  reported as run_buf_bytes for the longest sequence checked;
- insns_per_step: instructions of one step call as PREFIX_step makes it -- scratch on the caller's
  stack, one edgernn_step (bidirectional: one edgernn_run / its steps),
  averaged over the benchmarked steps; insns_per_mac: that / PREFIX_MACS_PER_STEP (RNN MACs; the
  head is not part of a step).
- est_m4_cycles_per_step (cortex-m4 rows only): the same bench steps replayed once more in Unicorn,
  every issued instruction priced with the Cortex-M4 TRM's timings (edgernn.targets.cycles;
  c_runtime/mcu/README.md, "Cycles on Cortex-M4, estimated"). An estimate, labelled so: flash wait
  states and the flash accelerator are not modelled.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgernn.backends.c.header import descriptor_name, header_macro
from edgernn.contract.model import QuantizedModel
from edgernn.errors import CheckFailed, InputError
from edgernn.targets.base import SelfCheckingTarget
from edgernn.targets.cycles import TIMED_TARGETS, estimate_cycles
from edgernn.targets.elf import Elf
from edgernn.targets.footprint import Footprint, footprint, kept_sections
from edgernn.targets.qemu import run_on_board
from edgernn.targets.registry import default_targets, get
from edgernn.targets.toolchain import Toolchain, mcu_source_dir, toolchain
from edgernn.targets.unicorn_emu import Machine
from edgernn.targets.vectors import Vectors, build_vectors

DEFAULT_TARGETS = default_targets()
DEFAULT_COMPILERS = ("zig",)
KERNELS = ("auto", "plain", "both")
BENCH_SEQUENCES = 8
# What model.h may need from outside, by design: nothing. Listed here so a change is deliberate.
ALLOWED_UNDEFINED: frozenset[str] = frozenset()


@dataclass(frozen=True)
class McuResult:
    target: str
    compiler: str  # with version, e.g. "zig 0.17.1"
    kernel: str  # the kernel path the model's code takes (Target.kernel): "dsp" (SMLAD) or "plain"
    emulator: str
    flash_bytes: int
    ram_bytes: int
    insns_per_step: float
    insns_per_mac: float
    mismatches: int
    macs_per_step: int
    code_bytes: int  # .text of the model object that the linked image keeps
    table_bytes: int  # .rodata of the model object that the linked image keeps
    helper_bytes: int  # compiler-runtime helpers the model calls
    state_bytes: int
    stack_bytes: int
    static_ram_bytes: int
    run_buf_bytes: int
    undefined: list[str]
    sequences: int
    steps: int
    bench_steps: int
    elf: str = ""
    first_mismatch: list[int] = field(default_factory=list)
    # A target that counts cycles rather than instructions (AVR on simavr; insns_* are then 0):
    cycles_per_step: float | None = None
    us_per_step_16mhz: float | None = None
    images: int = 1  # images the sequences were checked in (more when the flash cannot hold them)
    # Cortex-M4 cycles per step, estimated from the issued instructions (edgernn.targets.cycles);
    # cortex-m4 rows only:
    est_m4_cycles_per_step: float | None = None

    @classmethod
    def measured(
        cls,
        *,
        target: str,
        compiler: str,
        kernel: str,
        emulator: str,
        qm: QuantizedModel,
        vectors: Vectors,
        kept: Footprint,
        helper_bytes: int,
        static_ram_bytes: int,
        state_bytes: int,
        stack_bytes: int,
        macs_per_step: int,
        mismatches: int,
        first_mismatch: list[int],
        bench_steps: int,
        elf: str,
        insns_per_step: float = 0.0,
        **cycles: Any,
    ) -> McuResult:
        """The row from what a target measured: flash = the kept code and tables + helpers, RAM =
        static RAM + state + stack, and the run buffer a bidirectional model also needs."""
        cfg = qm.config
        run_buf = vectors.max_steps * cfg.num_layers * cfg.directions * cfg.hidden_size
        return cls(
            target=target,
            compiler=compiler,
            kernel=kernel,
            emulator=emulator,
            flash_bytes=kept.text + kept.rodata + helper_bytes,
            ram_bytes=static_ram_bytes + state_bytes + stack_bytes,
            insns_per_step=insns_per_step,
            insns_per_mac=insns_per_step / macs_per_step if macs_per_step else 0.0,
            mismatches=mismatches,
            macs_per_step=macs_per_step,
            code_bytes=kept.text,
            table_bytes=kept.rodata,
            helper_bytes=helper_bytes,
            state_bytes=state_bytes,
            stack_bytes=stack_bytes,
            static_ram_bytes=static_ram_bytes,
            run_buf_bytes=run_buf if cfg.bidirectional else 0,
            undefined=kept.undefined,
            sequences=vectors.sequences,
            steps=vectors.steps,
            bench_steps=bench_steps,
            elf=elf,
            first_mismatch=first_mismatch,
            **cycles,
        )

    def to_json(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if v is not None}
        d["insns_per_step"] = round(self.insns_per_step, 1)
        d["insns_per_mac"] = round(self.insns_per_mac, 3)
        if self.cycles_per_step is not None and self.us_per_step_16mhz is not None:
            d["cycles_per_step"] = round(self.cycles_per_step, 1)
            d["us_per_step_16mhz"] = round(self.us_per_step_16mhz, 1)
        if self.est_m4_cycles_per_step is not None:
            d["est_m4_cycles_per_step"] = round(self.est_m4_cycles_per_step, 1)
        return d


@dataclass(frozen=True)
class Image:
    elf: Elf
    model: Elf  # model_unit.o
    footprint: Footprint  # what of model_unit.o the image keeps
    kernel: str


def build_image(header: Path, vectors: Vectors, tc: Toolchain, workdir: Path, plain: bool = False) -> Image:
    workdir.mkdir(parents=True, exist_ok=True)
    text = header.read_text(encoding="utf-8")
    src = mcu_source_dir()
    (workdir / "vectors.h").write_text(vectors.text, encoding="utf-8")
    model_defs = [
        f'EDGERNN_MODEL_HEADER="{header.resolve()}"',
        f"EDGERNN_MODEL={descriptor_name(text)}",
        f"MCU_SCRATCH_WORDS={vectors.macros['MCU_SCRATCH_WORDS']}",
        f"MCU_BIDIRECTIONAL={vectors.macros['MCU_BIDIRECTIONAL']}",
        *(tc.target.plain_defines if plain else ()),
    ]
    model_o = tc.compile(src / "model_unit.c", workdir / "model_unit.o", model_defs, [src])
    harness_o = tc.compile(src / "harness.c", workdir / "harness.o", [], [workdir, src], hosted=tc.hosted)
    model = Elf.read(model_o)
    elf = Elf.read(tc.link([harness_o, model_o], workdir / "firmware.elf", needs_runtime=False))
    kept = footprint(model, elf)
    if kept.undefined:  # the kept code calls a compiler-runtime helper: link one in
        elf = Elf.read(tc.link([harness_o, model_o], workdir / "firmware.elf", needs_runtime=True))
        kept = footprint(model, elf)
    return Image(elf=elf, model=model, footprint=kept, kernel=_kernel(tc, model, elf))


def _kernel(tc: Toolchain, model: Elf, image: Elf) -> str:
    """The kernel path of the model's code that the image keeps, as the target reads it."""
    kept = kept_sections(model, image)
    code = [
        model.data[s.offset : s.offset + s.size]
        for i, s in enumerate(model.sections)
        if s.kind == "text" and s.size and i in kept
    ]
    return tc.target.kernel(code)


def measure(
    header: Path,
    qm: QuantizedModel,
    vectors: Vectors,
    target: str,
    compiler: str,
    workdir: Path,
    plain: bool = False,
    bench_sequences: int = BENCH_SEQUENCES,
) -> McuResult:
    """Build one image and run the check and the measurements (module docstring)."""
    tgt = get(target)
    if isinstance(tgt, SelfCheckingTarget):  # no call API (AVR): its images run from reset
        return tgt.measure(header, qm, vectors, compiler, workdir, plain, bench_sequences)
    tc = toolchain(compiler, tgt)
    image = build_image(header, vectors, tc, workdir, plain)
    text = header.read_text(encoding="utf-8")
    macs = header_macro(text, "MACS_PER_STEP")
    state = header_macro(text, "STATE_BYTES")
    m = tgt.emulator(image.elf)
    mismatches = m.call("mcu_check", [0, vectors.sequences])
    first = [m.read_s32(n) for n in ("mcu_first_kind", "mcu_first_seq", "mcu_first_step", "mcu_first_index")]
    n_bench = min(bench_sequences, vectors.sequences)
    bench_fn = "mcu_model_run" if qm.config.bidirectional else "mcu_model_step"
    _, counts = m.count_calls(bench_fn, "mcu_check", [0, n_bench])
    bench_steps = int(vectors.lengths[:n_bench].sum())
    est_m4 = None
    if tgt.name in TIMED_TARGETS and isinstance(m, Machine) and bench_steps:
        cycles = estimate_cycles(m, bench_fn, "mcu_check", [0, n_bench])
        if len(cycles) != len(counts):
            raise CheckFailed(f"{target}/{compiler}: {len(cycles)} calls priced, {len(counts)} counted")
        est_m4 = sum(cycles) / bench_steps
    stack = m.call("mcu_stack_probe")
    emulator = m.name
    if tc.hosted and tgt.board is not None:
        board = run_on_board(workdir / "firmware.elf", tgt.board)
        if board.mismatches != mismatches or board.stack_bytes != stack:
            raise CheckFailed(
                f"{target}/{compiler}: QEMU ({board.mismatches} mismatches, stack {board.stack_bytes} B) "
                f"and {m.name} ({mismatches}, {stack} B) disagree on the same image"
            )
        emulator = f"{m.name}+qemu {board.machine}"
    kept = image.footprint
    return McuResult.measured(
        target=target,
        compiler=tc.version,
        kernel=image.kernel,
        emulator=emulator,
        qm=qm,
        vectors=vectors,
        kept=kept,
        helper_bytes=sum(image.elf.symbol(n).size for n in kept.undefined),
        static_ram_bytes=kept.data + kept.bss,
        state_bytes=state,
        stack_bytes=stack,
        macs_per_step=macs,
        mismatches=mismatches,
        first_mismatch=first if mismatches else [],
        bench_steps=bench_steps,
        elf=str(workdir / "firmware.elf"),
        insns_per_step=sum(counts) / bench_steps if bench_steps else 0.0,
        est_m4_cycles_per_step=est_m4,
    )


def check_header(
    header: str | Path,
    qm: QuantizedModel,
    x: np.ndarray,
    lengths: np.ndarray,
    targets: Sequence[str] = DEFAULT_TARGETS,
    compilers: Sequence[str] = DEFAULT_COMPILERS,
    kernel: str = "auto",
    workdir: str | Path | None = None,
    bench_sequences: int = BENCH_SEQUENCES,
    echo: Callable[[str], None] | None = None,
) -> list[McuResult]:
    """Every (target, compiler[, kernel]) combination on the given int8 sequences (int_forward's x)."""
    if kernel not in KERNELS:
        raise InputError(f"kernel must be one of {', '.join(KERNELS)}")
    chosen = [get(t) for t in targets]  # an unknown name fails before any build
    header = Path(header)
    if not header.is_file():
        raise InputError(f"{header} does not exist; run `edgernn export` first")
    vectors = build_vectors(qm, x, lengths)
    results = []
    with tempfile.TemporaryDirectory(prefix="edgernn-mcu-") as tmp:
        root = Path(workdir) if workdir is not None else Path(tmp)
        for tgt in chosen:
            variants = [False] if kernel == "auto" else [True] if kernel == "plain" else [False, True]
            if not tgt.plain_defines:
                variants = [False]  # no fast path to turn off: one build
            usable = [c for c in compilers if c in tgt.compilers]
            if not usable:
                raise InputError(
                    f"{tgt.name} cannot be built with {', '.join(compilers)}; "
                    f"choose from {', '.join(tgt.compilers)}"
                )
            for compiler in usable:  # a target skips the compilers it has none of (AVR: gcc only)
                for plain in variants:
                    name = f"{tgt.name}-{compiler}" + ("-plain" if plain else "")
                    r = measure(header, qm, vectors, tgt.name, compiler, root / name, plain, bench_sequences)
                    if workdir is None:
                        r = McuResult(**{**asdict(r), "elf": ""})  # the temp dir is gone afterwards
                    results.append(r)
                    if echo is not None:
                        echo(table_row(r))
    return results


def check_dir(
    out_dir: str | Path,
    targets: Sequence[str] = DEFAULT_TARGETS,
    compilers: Sequence[str] = DEFAULT_COMPILERS,
    kernel: str = "auto",
    max_sequences: int | None = None,
    bench_sequences: int = BENCH_SEQUENCES,
    echo: Callable[[str], None] | None = None,
) -> list[McuResult]:
    """An export directory's model.h on the test split of the data set it was trained on; the
    images are kept in DIR/mcu/<target>-<compiler>/ for inspection. The compilers get absolute
    paths: zig cc resolves a relative output path from another working directory."""
    from edgernn.manifest import check_manifest
    from edgernn.pipeline import HEADER, QUANT_NAME, checkpoint_data, int8_inputs, load_quantized
    from edgernn.train.checkpoint import load_checkpoint

    out = Path(out_dir)
    qm = load_quantized(out)
    ckpt = load_checkpoint(out)
    check_manifest(out, (QUANT_NAME, HEADER), ckpt.sha256)  # model.h is the exported checkpoint's
    ds = checkpoint_data(ckpt, out)
    split = ds.test
    n = len(split.lengths) if max_sequences is None else min(max_sequences, len(split.lengths))
    x = int8_inputs(qm, split)[:n]
    images = (out / "mcu").resolve()
    return check_header(
        out / HEADER, qm, x, split.lengths[:n], targets, compilers, kernel, images, bench_sequences, echo
    )


TABLE_HEADER = (
    f"{'target':<14} {'compiler':<12} {'kernel':<6} {'flash B':>8} {'RAM B':>6} "
    f"{'insns/step':>10} {'insns/MAC':>9} {'mismatches':>10}  emulator"
)


def table_row(r: McuResult) -> str:
    if r.cycles_per_step is not None:  # a cycle-counting target: no instruction count
        insns = f"{'-':>10} {'-':>9}"
        cycles = f"; {r.cycles_per_step:,.0f} cycles/step = {r.us_per_step_16mhz:,.0f} us at 16 MHz"
    else:
        insns, cycles = f"{r.insns_per_step:>10,.0f} {r.insns_per_mac:>9.2f}", ""
    if r.est_m4_cycles_per_step is not None:
        cycles += f"; est. {r.est_m4_cycles_per_step:,.0f} M4 cycles/step"
    return (
        f"{r.target:<14} {r.compiler:<12} {r.kernel:<6} {r.flash_bytes:>8,} {r.ram_bytes:>6,} "
        f"{insns} {r.mismatches:>10}  {r.emulator}{cycles}"
    )


def table(results: Sequence[McuResult]) -> str:
    lines = [TABLE_HEADER, *(table_row(r) for r in results)]
    if results:
        r = results[0]
        lines.append(
            f"{r.sequences} test sequences, {r.steps:,} steps checked per row; "
            f"{'cycles' if r.cycles_per_step is not None else 'insns'} over the first "
            f"{r.bench_steps} steps; {r.macs_per_step:,} MACs/step; RAM = state {r.state_bytes} B + stack "
            "high-water (scratch included)"
            + (f" (+ run buffer {r.run_buf_bytes} B)" if r.run_buf_bytes else "")
        )
        if any(x.est_m4_cycles_per_step is not None for x in results):
            lines.append(
                "est. M4 cycles/step: an estimate over the same steps, each issued instruction priced "
                "with the Cortex-M4 TRM's timings (zero wait states; c_runtime/mcu/README.md)"
            )
    return "\n".join(lines)
