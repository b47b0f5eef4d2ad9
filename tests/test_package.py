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
