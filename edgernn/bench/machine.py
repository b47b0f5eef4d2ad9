"""What the numbers were measured on: CPU, SIMD flags, library and tool versions."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch


def _first_line(cmd: Sequence[str]) -> str:
    try:
        out = subprocess.run(list(cmd), capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "unavailable"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "unavailable"


def cpuinfo() -> tuple[str, set[str]]:
    """The CPU model and feature flags of the first core in /proc/cpuinfo (Linux); else platform's."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    cpu = fields.get("model name") or platform.processor() or platform.machine()
    return cpu, set(fields.get("flags", fields.get("Features", "")).split())


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on (recorded in bench.json and printed with every table)."""
    import numpy
    import onnxruntime

    cpu, flags = cpuinfo()

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu,
        "simd": [f for f in ("sse4_2", "avx2", "avx512f", "avx512_vnni", "avx_vnni", "asimd") if f in flags],
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "numpy": numpy.__version__,
        "cc": _first_line([os.environ.get("CC", "cc"), "--version"]),
        "valgrind": _first_line(["valgrind", "--version"]) if shutil.which("valgrind") else None,
        "torch_threads": torch.get_num_threads(),
        "ort_intra_op_threads": 1,
        "ort_inter_op_threads": 1,
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
