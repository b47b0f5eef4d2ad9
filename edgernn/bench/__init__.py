"""`edgernn bench`: measured speed of every backend of one export directory, side by side.

Measured in one run, on one machine, single-threaded everywhere (torch.set_num_threads(1); ONNX
Runtime intra_op = inter_op = 1), so the ratios compare the code and not the thread pools:

* streaming latency per step at batch 1 -- torch float (EdgeRNN.forward with T=1 and h carried,
  and a bare nn.RNN + nn.Linear step), ORT float (model.onnx on raw features, T=1, h carried),
  the ORT int8 step model, the C step timed natively inside the C harness (`eh_bench_step_ns`, no
  FFI in the loop) at the harness's -O2 and at -O3, and the C step through ctypes (one call per step);
* whole-sequence throughput on test sequences at batch 1 and 64;
* host instructions per step of the C step under callgrind (a standalone driver,
  c_runtime/bench/bench_driver.c; two step counts differenced so start-up and set-up cancel),
  and the Cortex-M figures of report.json's "mcu" section when `edgernn mcu` has run;
* scaling with hidden size (random models) and with sequence length (the export's model);
* with `--peers PATH`: model.h beside CMSIS-NN, NNoM and a naive loop on every emulated
  microcontroller, in instructions per MAC, each peer checked against a numpy port of its own
  arithmetic, and (`--sweep`) the same over a grid of shapes (edgernn.bench.peers).

The flow, one module per job:

    run_bench (suites)   loads the export, then for each suite:
      workloads          the inputs: test sequences, or random ones for the sweeps
      backends           each backend as a zero-argument callable (one step or one batch per call)
      native             the C builds (-O2, -O3: ctypes harness + standalone driver), callgrind
      timing             interleaved, warmed-up blocks -> median / IQR / min-max (Settings)
      machine            what it all ran on
      peers              the peer libraries on the microcontrollers (its own package)
    store                bench.json, and the summary in report.json
    markdown             the tables printed by `edgernn bench` and embedded in report.md
"""

from edgernn.bench.markdown import markdown_tables, signed
from edgernn.bench.store import BENCH_JSON, SCHEMA, load_bench, mcu_rows, save_bench, summary
from edgernn.bench.suites import run_bench
from edgernn.bench.timing import FULL, QUICK, Settings

__all__ = [
    "BENCH_JSON",
    "FULL",
    "QUICK",
    "SCHEMA",
    "Settings",
    "load_bench",
    "markdown_tables",
    "mcu_rows",
    "run_bench",
    "save_bench",
    "signed",
    "summary",
]
