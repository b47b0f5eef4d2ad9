"""A plain wheel install into a fresh venv gives a working `edgernn`, with its data and C runtime."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_installs_into_fresh_venv(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(dist),
            str(ROOT),
        ],
        check=True,
    )
    wheel = next(dist.glob("edgernn-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "edgernn/c_runtime/edgernn_runtime.h" in names
    assert "edgernn/py.typed" in names  # PEP 561: a user's mypy reads edgernn's annotations
    assert any(n.startswith("edgernn/data/datasets/") and n.endswith(".npz") for n in names)
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    # The runtime dependencies (torch alone is ~700 MB) come from this venv via a .pth file, so the
    # test checks the wheel itself without copying torch; `--no-index` proves nothing is downloaded.
    site = subprocess.run(
        [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([py, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True)
    exe = env_dir / "bin" / "edgernn"
    out = subprocess.run([exe, "datasets"], check=True, capture_output=True, text=True, cwd=tmp_path).stdout
    assert "japanese_vowels" in out and "many-to-many" in out
    where = subprocess.run(
        [py, "-c", "import edgernn.backends.c.codegen as c; print(c.c_runtime_dir())"],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    ).stdout.strip()
    assert where.startswith(site) and (Path(where) / "edgernn_runtime.h").exists()


@pytest.mark.slow
def test_a_users_strict_mypy_sees_edgernns_types(tmp_path):
    """PEP 561 (edgernn/py.typed): a script outside the project, checked with `mypy --strict`, gets
    edgernn's own types instead of `Any` (and no missing-stubs error), and a misspelt name is an
    error (the lazy module `__getattr__` is hidden from type checkers)."""
    script = tmp_path / "user.py"
    script.write_text(
        "import numpy as np\n"
        "import edgernn\n"
        'rt = edgernn.Runtime("export/japanese_vowels", backend="onnx-int8")\n'
        "reveal_type(rt)\n"
        "reveal_type(rt.predict([np.zeros((5, 12), np.float32)])[0].predicted)\n"
        'edgernn.Runtmie("x")\n'
    )
    res = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(ROOT / ".mypy_cache"), script.name],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    out = res.stdout
    assert 'Revealed type is "edgernn.predict.runtime.Runtime"' in out, out
    assert 'Revealed type is "int | list[int]"' in out, out
    assert 'user.py:6: error: Module has no attribute "Runtmie"' in out, out
    assert "Found 1 error in 1 file" in out and "import-untyped" not in out, out
