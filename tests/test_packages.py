"""`edgernn export DIR --package ...`: each firmware package's layout and manifest, its example
built (Arduino with the real arduino-builder, run on simavr; CMake for the host, run, and for
arm-none-eabi) and its printed class checked against the integer reference; byte-identical
regeneration; the refusals (an unknown --package, a folder holding the user's files)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import kconfiglib
import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from edgernn.cli import main
from edgernn.errors import InputError
from edgernn.packages.base import MIT_LICENCE

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "export" / "japanese_vowels"
NAME = "japanese_vowels"
ALL = ("arduino", "platformio", "cmake", "zephyr", "esp-idf")
ARDUINO_CATEGORIES = {
    "Display",
    "Communication",
    "Signal Input/Output",
    "Sensors",
    "Device Control",
    "Timing",
    "Data Storage",
    "Data Processing",
    "Other",
}


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The committed default model, exported with every package through the CLI."""
    out = tmp_path_factory.mktemp("pkg") / NAME
    shutil.copytree(COMMITTED, out)
    r = CliRunner().invoke(main, ["export", str(out), "--package", "all"])
    assert r.exit_code == 0, r.output
    return out


@pytest.fixture(scope="module")
def expected_class() -> int:
    """The integer reference's class for the first test sequence, computed here independently."""
    from edgernn.contract.reference import int_forward
    from edgernn.pipeline import int8_inputs, load_data, load_quantized
    from edgernn.train.checkpoint import load_checkpoint

    qm = load_quantized(COMMITTED)
    ds = load_data(load_checkpoint(COMMITTED).meta["data"])
    n = int(ds.test.lengths[0])
    logits = int_forward(qm, int8_inputs(qm, ds.test)[:1, :n], np.asarray([n])).logits.numpy()
    return int(np.argmax(logits[0]))


def _pkg(exported: Path, eco: str) -> Path:
    return exported / "packages" / eco / NAME


def test_every_package_in_its_layout(exported: Path) -> None:
    header = (exported / "model.h").read_bytes()
    for eco, files in {
        "arduino": [
            "library.properties",
            f"src/{NAME}.h",
            f"src/{NAME}.cpp",
            f"examples/{NAME}_stream/{NAME}_stream.ino",
        ],
        "platformio": ["library.json", f"src/{NAME}.h", f"src/{NAME}.c", "examples/stream/main.c"],
        "cmake": [
            "CMakeLists.txt",
            f"{NAME}Config.cmake",
            f"{NAME}ConfigVersion.cmake",
            f"include/{NAME}.h",
            f"src/{NAME}.c",
            "examples/stream/CMakeLists.txt",
            "cmake/arm-none-eabi.cmake",
        ],
        "zephyr": ["zephyr/module.yml", "CMakeLists.txt", "Kconfig", f"include/{NAME}.h", f"src/{NAME}.c"],
        "esp-idf": [
            "idf_component.yml",
            "CMakeLists.txt",
            f"include/{NAME}.h",
            "examples/stream/main/main.c",
        ],
    }.items():
        root = _pkg(exported, eco)
        for f in files:
            assert (root / f).is_file(), f"{eco}: {f}"
        licence = (root / "LICENSE").read_text()
        assert "CC BY 4.0 (cite Kudo, Toyama & Shimbo 1999)" in licence, eco  # the weights' data
        assert licence.endswith(MIT_LICENCE), eco  # the code's
        hdr = next(root.rglob(f"{NAME}.h"))
        assert hdr.read_bytes() == header, eco  # model.h verbatim
        impl = next(p for p in root.rglob(f"{NAME}.c*") if p.suffix in (".c", ".cpp"))
        assert "#define EDGERNN_IMPLEMENTATION" in impl.read_text()


def test_the_packages_licence_is_the_projects() -> None:
    assert (Path(__file__).resolve().parents[1] / "LICENSE").read_text() == MIT_LICENCE


def test_regenerating_is_byte_identical(exported: Path) -> None:
    before = _snapshot(exported / "packages")
    r = CliRunner().invoke(main, ["export", str(exported), "--package", "arduino", "--package", "cmake"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["export", str(exported), "--package", "all"])
    assert r.exit_code == 0, r.output
    assert _snapshot(exported / "packages") == before


def test_versions_follow_edgernn_and_the_model_sha(exported: Path) -> None:
    import hashlib

    from edgernn import __version__

    sha = hashlib.sha256((exported / "model.h").read_bytes()).hexdigest()
    version = f"{__version__}+{sha[:12]}"
    props = (_pkg(exported, "arduino") / "library.properties").read_text()
    assert f"version={version}\n" in props
    assert json.loads((_pkg(exported, "platformio") / "library.json").read_text())["version"] == version
    assert f'version: "{version}"' in (_pkg(exported, "esp-idf") / "idf_component.yml").read_text()
    assert sha in (_pkg(exported, "cmake") / f"{NAME}Targets.cmake").read_text()


def test_the_readme_gives_the_committed_exports_package_version() -> None:
    import hashlib

    from edgernn import __version__

    sha = hashlib.sha256((COMMITTED / "model.h").read_bytes()).hexdigest()
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert f"`{__version__}+{sha[:12]}` for the committed export" in readme


def test_unknown_package_is_a_usage_error(tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["export", str(tmp_path), "--package", "mbed"])
    assert r.exit_code == 2
    for choice in (*ALL, "all"):
        assert choice in r.output


def test_refuses_a_folder_holding_user_files(exported: Path, tmp_path: Path) -> None:
    out = tmp_path / NAME
    shutil.copytree(COMMITTED, out)
    mine = out / "packages" / "cmake" / "notes.txt"
    mine.parent.mkdir(parents=True)
    mine.write_text("mine")
    r = CliRunner().invoke(main, ["export", str(out), "--package", "arduino", "--package", "cmake"])
    assert r.exit_code == 2, r.output
    assert "would not write" in r.output and "notes.txt" in r.output
    assert "(no package file was written or deleted); the export above is written and complete" in r.output
    assert mine.read_text() == "mine"
    assert not (out / "packages" / "arduino").exists()  # checked before anything is written
    # a file of the user's inside the package's own folder is refused too, and kept
    r = CliRunner().invoke(main, ["export", str(out), "--package", "arduino"])
    assert r.exit_code == 0, r.output
    extra = out / "packages" / "arduino" / NAME / "src" / "extra.c"
    extra.write_text("int x;")
    r = CliRunner().invoke(main, ["export", str(out), "--package", "arduino"])
    assert r.exit_code == 2 and "extra.c" in r.output
    assert extra.read_text() == "int x;"
    assert (out / "packages" / "arduino" / NAME / "library.properties").is_file()


def test_arduino_library_properties_and_zip(exported: Path) -> None:
    root = _pkg(exported, "arduino")
    fields = dict(ln.split("=", 1) for ln in (root / "library.properties").read_text().splitlines())
    for key in ("name", "version", "author", "maintainer", "sentence", "paragraph", "category", "url"):
        assert fields.get(key), key
    assert fields["name"] == NAME and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 _.\-]*", fields["name"])
    assert fields["architectures"] == "*"
    assert fields["category"] in ARDUINO_CATEGORIES
    assert re.fullmatch(r"\d+\.\d+\.\d+(\+[0-9a-f]+)?", fields["version"])
    with zipfile.ZipFile(exported / "packages" / "arduino" / f"{NAME}.zip") as zf:
        names = [n for n in zf.namelist() if not n.endswith("/")]
        assert {n.split("/")[0] for n in zf.namelist()} == {NAME}  # top folder = library name
        assert {n: zf.read(n) for n in names} == {f"{NAME}/{k}": v for k, v in _snapshot(root).items()}


ARDUINO_TOOLS = ("arduino-builder", "arduino-ctags")


def _dpkg_path(package: str, pattern: str) -> str | None:
    try:
        listing = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return next((ln for ln in listing.splitlines() if re.search(pattern, ln)), None)


def test_arduino_example_builds_for_uno_and_prints_the_class_on_simavr(
    exported: Path, tmp_path: Path, expected_class: int
) -> None:
    if not all(shutil.which(t) for t in ARDUINO_TOOLS):
        pytest.skip(
            "arduino-builder / arduino-ctags not installed "
            "(apt: arduino-builder arduino-core-avr arduino-ctags)"
        )
    platform = _dpkg_path("arduino-builder", r"/platform\.txt$")
    hardware = _dpkg_path("arduino-core-avr", r"/hardware$")
    if platform is None or hardware is None:
        pytest.skip("arduino-core-avr not installed")
    libs = tmp_path / "libraries"
    with zipfile.ZipFile(exported / "packages" / "arduino" / f"{NAME}.zip") as zf:
        zf.extractall(libs)  # what the IDE's "Add .ZIP Library" does
    sketch = libs / NAME / "examples" / f"{NAME}_stream" / f"{NAME}_stream.ino"
    build = tmp_path / "build"
    build.mkdir()
    ctags = shutil.which("arduino-ctags")
    assert ctags is not None
    cmd = [
        "arduino-builder",
        "-compile",
        "-hardware",
        str(Path(platform).parent),
        "-hardware",
        hardware,
        "-tools",
        str(Path(ctags).parent),
        "-fqbn",
        "arduino:avr:uno",
        "-prefs",
        "compiler.cpp.extra_flags=-DDECIMAL_DIG=17",
        "-libraries",
        str(libs),
        "-build-path",
        str(build),
        str(sketch),
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    elf = build / f"{NAME}_stream.ino.elf"
    assert elf.is_file() and (build / f"{NAME}_stream.ino.hex").is_file()
    if shutil.which("simavr") is None:
        pytest.skip("simavr not installed: built, not run")
    run = subprocess.run(
        ["simavr", "-m", "atmega328p", "-f", "16000000", str(elf)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    said = run.stdout + run.stderr
    m = re.search(rf"{NAME} class=(-?\d+)", said)
    assert m is not None, said
    assert int(m.group(1)) == expected_class


def _cmake(*args: str, cwd: Path) -> None:
    r = subprocess.run(["cmake", *args], capture_output=True, text=True, cwd=cwd, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.skipif(shutil.which("cmake") is None or shutil.which("cc") is None, reason="cmake / cc missing")
def test_cmake_consumer_builds_and_runs_on_the_host(
    exported: Path, tmp_path: Path, expected_class: int
) -> None:
    pkg = _pkg(exported, "cmake")
    # find_package(<name>) with <name>_DIR, as the example does
    _cmake("-S", str(pkg / "examples" / "stream"), "-B", "fp", f"-D{NAME}_DIR={pkg}", cwd=tmp_path)
    _cmake("--build", "fp", cwd=tmp_path)
    # add_subdirectory(<name>)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.16)\nproject(consumer LANGUAGES C)\n"
        f'add_subdirectory("{pkg}" model)\n'
        f'add_executable(app "{pkg}/examples/stream/main.c")\n'
        f"target_link_libraries(app PRIVATE {NAME}::{NAME})\n"
        "set_target_properties(app PROPERTIES LINKER_LANGUAGE C)\n"  # no libstdc++ for Arm here
    )
    _cmake("-S", "sub", "-B", "as", cwd=tmp_path)
    _cmake("--build", "as", cwd=tmp_path)
    # find_package from a C++-only project: the package enables C for its implementation unit
    (tmp_path / "cxx").mkdir()
    shutil.copy(pkg / "examples" / "stream" / "main.c", tmp_path / "cxx" / "main.cpp")
    (tmp_path / "cxx" / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.16)\nproject(cxxapp LANGUAGES CXX)\n"
        f"find_package({NAME} CONFIG REQUIRED)\nadd_executable(app main.cpp)\n"
        f"target_link_libraries(app PRIVATE {NAME}::{NAME})\n"
        "set_target_properties(app PROPERTIES LINKER_LANGUAGE C)\n"  # no libstdc++ for Arm here
    )
    _cmake("-S", "cxx", "-B", "cx", f"-D{NAME}_DIR={pkg}", cwd=tmp_path)
    _cmake("--build", "cx", cwd=tmp_path)
    for exe in (tmp_path / "fp" / f"{NAME}_stream", tmp_path / "as" / "app", tmp_path / "cx" / "app"):
        out = subprocess.run([str(exe)], capture_output=True, text=True, timeout=30, check=True).stdout
        assert out.strip().startswith(f"{NAME} class={expected_class} "), out


PICOLIBC_LINK = (
    "-Wl,--defsym=__flash=0 -Wl,--defsym=__flash_size=0x400000 -Wl,--defsym=__ram=0x20000000 "
    "-Wl,--defsym=__ram_size=0x400000 -Wl,--defsym=__stack_size=0x2000"
)


@pytest.mark.skipif(
    shutil.which("cmake") is None or shutil.which("arm-none-eabi-gcc") is None, reason="no arm-none-eabi-gcc"
)
def test_cmake_consumer_builds_with_the_arm_none_eabi_toolchain_file(
    exported: Path, tmp_path: Path, expected_class: int
) -> None:
    pkg = _pkg(exported, "cmake")
    args = [
        "-S",
        str(pkg / "examples" / "stream"),
        "-B",
        "arm",
        f"-D{NAME}_DIR={pkg}",
        f"-DCMAKE_TOOLCHAIN_FILE={pkg / 'cmake' / 'arm-none-eabi.cmake'}",
    ]
    picolibc = _dpkg_path("picolibc-arm-none-eabi", r"picolibc\.specs$") is not None
    if picolibc:  # this machine's C library (the file's default is newlib's nosys.specs)
        args += [
            "-DEDGERNN_ARM_SPECS=--specs=picolibc.specs --oslib=semihost --crt0=semihost",
            f"-DCMAKE_EXE_LINKER_FLAGS={PICOLIBC_LINK}",
        ]
    _cmake(*args, cwd=tmp_path)
    _cmake("--build", "arm", cwd=tmp_path)
    elf = tmp_path / "arm" / f"{NAME}_stream"
    assert elf.read_bytes()[:4] == b"\x7fELF" and elf.read_bytes()[18] == 40  # EM_ARM
    qemu = shutil.which("qemu-system-arm")
    if picolibc and qemu:  # also run it on an emulated Cortex-M4 board (semihosting prints)
        r = subprocess.run(
            [qemu, "-M", "mps2-an386", "-nographic", "-monitor", "none", "-serial", "none",
             "-semihosting-config", "enable=on,target=native", "-kernel", str(elf)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert f"{NAME} class={expected_class} " in r.stdout + r.stderr, r.stdout + r.stderr
    # A C++ firmware (with its startup assembly) links the package for the target, not the host.
    app = tmp_path / "cxx_app"
    app.mkdir()
    (app / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.16)\nproject(cxx_app LANGUAGES C CXX ASM)\n"
        f"find_package({NAME} CONFIG REQUIRED)\nadd_executable(app main.cpp start.S)\n"
        f"target_link_libraries(app PRIVATE {NAME}::{NAME})\n"
        "set_target_properties(app PROPERTIES LINKER_LANGUAGE C)\n"  # no libstdc++ for Arm here
    )
    (app / "start.S").write_text(".syntax unified\n.thumb\n.global app_nop\napp_nop: bx lr\n")
    (app / "main.cpp").write_text(
        f'#include "{NAME}.h"\nint main() {{ static {NAME}_state_t st; {NAME}_init(&st); return 0; }}\n'
    )
    _cmake(*args[:1], str(app), *args[2:3], "cxx", *args[4:], cwd=tmp_path)
    _cmake("--build", "cxx", cwd=tmp_path)
    elf = (tmp_path / "cxx" / "app").read_bytes()
    assert elf[:4] == b"\x7fELF" and elf[18] == 40  # EM_ARM: g++ for the target, not the host's c++


def test_the_arm_toolchain_file_says_what_to_install_without_newlib(exported: Path, tmp_path: Path) -> None:
    """Without EDGERNN_ARM_SPECS it uses newlib's nosys.specs; a compiler without it is told how to
    get it (CMake's own failure was a spec file it could not read, at 'Check for working C compiler')."""
    if shutil.which("cmake") is None:
        pytest.skip("no cmake; `make system-deps` installs it")
    fake = tmp_path / "bin" / "arm-none-eabi-gcc"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\necho "$2" | sed "s/.*=//"\n')  # -print-file-name: not found
    fake.chmod(0o755)
    pkg = _pkg(exported, "cmake")
    toolchain = pkg / "cmake" / "arm-none-eabi.cmake"
    env = {**os.environ, "PATH": f"{fake.parent}:{os.environ['PATH']}"}
    r = subprocess.run(
        ["cmake", "-S", str(pkg / "examples" / "stream"), "-B", "b", f"-DCMAKE_TOOLCHAIN_FILE={toolchain}"],
        cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert r.returncode != 0 and "has no nosys.specs (newlib)" in r.stderr, r.stderr
    assert "libnewlib-arm-none-eabi" in r.stderr


def _pio_pack(root: Path, out: Path) -> subprocess.CompletedProcess[str]:
    """`pio pkg pack`: PlatformIO's own manifest validation, offline (platformio, a dev dependency)."""
    env = {
        **os.environ,
        "PLATFORMIO_CORE_DIR": str(out.parent / "pio-core"),
        "PLATFORMIO_SETTING_ENABLE_TELEMETRY": "No",
        "PLATFORMIO_SETTING_CHECK_PLATFORMIO_INTERVAL": "9999",
    }
    cmd = [sys.executable, "-m", "platformio", "pkg", "pack", "-o", str(out)]
    return subprocess.run(cmd, cwd=root, capture_output=True, text=True, env=env, timeout=300)


def test_platformio_packs_with_pio_and_its_validation_has_teeth(exported: Path, tmp_path: Path) -> None:
    root = _pkg(exported, "platformio")
    packed = _pio_pack(root, tmp_path / "lib.tar.gz")
    assert packed.returncode == 0 and (tmp_path / "lib.tar.gz").is_file(), packed.stdout + packed.stderr
    broken = tmp_path / "broken"
    shutil.copytree(root, broken)
    doc = json.loads((broken / "library.json").read_text())
    doc["version"] = "not a version"
    (broken / "library.json").write_text(json.dumps(doc))
    refused = _pio_pack(broken, tmp_path / "broken.tar.gz")
    assert refused.returncode != 0 and "ManifestValidationError" in refused.stdout + refused.stderr


def test_platformio_library_json_against_the_documented_schema(exported: Path) -> None:
    """The documented library.json fields and types, beyond what `pio pkg pack` insists on."""
    root = _pkg(exported, "platformio")
    doc = json.loads((root / "library.json").read_text())
    assert re.fullmatch(r"[A-Za-z0-9_.\-]+", doc["name"]) and doc["name"] == NAME
    assert re.fullmatch(r"\d+\.\d+\.\d+(\+[0-9A-Za-z.\-]+)?", doc["version"])
    assert isinstance(doc["description"], str) and doc["description"]
    assert isinstance(doc["keywords"], list) and all(isinstance(k, str) for k in doc["keywords"])
    assert doc["frameworks"] == "*" and doc["platforms"] == "*"
    assert set(doc["build"]) <= {"srcDir", "includeDir", "flags", "srcFilter", "libArchive"}
    assert (root / doc["build"]["srcDir"]).is_dir() and (root / doc["build"]["includeDir"]).is_dir()
    assert all((root / doc["build"]["includeDir"] / h).is_file() for h in doc["headers"])
    for ex in doc["examples"]:
        assert set(ex) == {"name", "base", "files"}
        assert all((root / ex["base"] / f).is_file() for f in ex["files"])


def _yaml(path: Path) -> dict[str, object]:
    """The manifest as a YAML parser reads it (PyYAML, a dev dependency)."""
    doc = yaml.safe_load(path.read_text())
    assert isinstance(doc, dict), path
    return doc


def test_zephyr_module_parses(exported: Path) -> None:
    root = _pkg(exported, "zephyr")
    mod = _yaml(root / "zephyr" / "module.yml")
    assert mod["name"] == NAME
    build = mod["build"]
    assert isinstance(build, dict)
    assert (root / build["cmake"] / "CMakeLists.txt").is_file() and (root / build["kconfig"]).is_file()
    cm = (root / "CMakeLists.txt").read_text()
    assert f"if(CONFIG_{NAME.upper()})" in cm and f"zephyr_library_sources(src/{NAME}.c)" in cm
    kc = kconfiglib.Kconfig(str(root / "Kconfig"), warn_to_stderr=False)  # Zephyr's own parser
    assert NAME.upper() in kc.syms and kc.syms[NAME.upper()].type == kconfiglib.BOOL
    assert not kc.warnings, kc.warnings
    assert f"CONFIG_{NAME.upper()}=y" in (root / "samples" / "stream" / "prj.conf").read_text()


def test_esp_idf_component_parses(exported: Path) -> None:
    root = _pkg(exported, "esp-idf")
    doc = _yaml(root / "idf_component.yml")
    assert isinstance(doc["version"], str) and isinstance(doc["description"], str)
    assert isinstance(doc["dependencies"], dict) and "idf" in doc["dependencies"]
    cm = (root / "CMakeLists.txt").read_text()
    m = re.search(r'idf_component_register\(SRCS "([^"]+)"\s+INCLUDE_DIRS "([^"]+)"\)', cm)
    assert m is not None, cm
    assert (root / m.group(1)).is_file() and (root / m.group(2) / f"{NAME}.h").is_file()
    main_cm = (root / "examples" / "stream" / "main" / "CMakeLists.txt").read_text()
    assert f"REQUIRES {NAME}" in main_cm


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
@pytest.mark.parametrize("eco", ["platformio", "zephyr", "esp-idf"])
def test_unbuilt_examples_compile_as_c99_against_stubs(exported: Path, tmp_path: Path, eco: str) -> None:
    """No PlatformIO, Zephyr or ESP-IDF here: their example and implementation unit are at least
    compiled as strict C99 for the host (Zephyr's headers stubbed), and must not warn."""
    root = _pkg(exported, eco)
    main_c = next(p for p in root.rglob("main.c"))
    inc = next(root.rglob(f"{NAME}.h")).parent
    stub = tmp_path / "zephyr"
    stub.mkdir()
    (stub / "kernel.h").write_text("")
    (stub / "sys").mkdir()
    (stub / "sys" / "printk.h").write_text("#include <stdio.h>\n#define printk printf\n")
    for src in (main_c, next(p for p in root.rglob(f"{NAME}.c") if p.parent.name == "src")):
        r = subprocess.run(
            ["cc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-c", f"-I{inc}", f"-I{tmp_path}",
             str(src), "-o", str(tmp_path / (src.stem + ".o"))],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
@pytest.mark.parametrize(
    ("task", "bi", "vocab"),
    [
        ("many-to-many", True, 0),
        ("many-to-one", True, 9),
        ("one-to-many", False, 9),
        ("many-to-many", False, 0),
    ],
    ids=["bi-features-per-step", "bi-tokens", "tokens-stream", "features-per-step"],
)
def test_the_demo_runs_every_model_shape(tmp_path: Path, task: str, bi: bool, vocab: int) -> None:
    """The example's demo (streaming, or a whole run for a bidirectional model; tokens or
    features; one class or one per step) prints the integer reference's class (the last step's)."""
    from edgernn.backends.c.codegen import write_header
    from edgernn.backends.c.fuzz import random_quantized_model
    from edgernn.contract.reference import int_forward
    from edgernn.packages import platformio
    from edgernn.packages.base import PackagedModel, sha256

    qm = random_quantized_model(task, 3, 6, 2, bi, 4, vocab, seed=3, scale=2.0)
    header = write_header(qm, tmp_path / "model.h", "demo").read_bytes()
    rng = np.random.default_rng(5)
    steps = 7
    seq = rng.integers(0, vocab, size=steps) if vocab else rng.integers(-127, 128, size=(steps, 3))
    logits = int_forward(qm, seq[None], np.asarray([steps])).logits.numpy()
    want = int(np.argmax(logits[0, -1] if logits.ndim == 3 else logits[0]))
    m = PackagedModel(
        name="demo",
        header=header.decode(),
        header_sha256=sha256(header),
        checkpoint_sha256="0" * 64,
        dataset="random",
        task=task,
        tokens=bool(vocab),
        whole_sequence=bi,
        licence="none",
        class_names=(),
        demo=seq,
        expected_class=want,
    )
    root = tmp_path / "pkg"
    for rel, data in platformio.build(m).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    src = root / "demo" / "src"
    exe = tmp_path / "demo_stream"
    subprocess.run(
        ["cc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", f"-I{src}", str(src / "demo.c"),
         str(root / "demo" / "examples" / "stream" / "main.c"), "-o", str(exe)],
        check=True, timeout=120,
    )  # fmt: skip
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True, timeout=30).stdout
    assert out.startswith(f"demo class={want} "), out


def test_a_killed_package_write_does_not_block_the_next(exported: Path) -> None:
    """A temporary file of edgernn's atomic writer, left by a killed run, is cleaned up; a user's
    file of the same shape next to a name the package does not write is still refused."""
    from edgernn.packages import write_packages

    root = _pkg(exported, "cmake")
    written = next(f for f in sorted(root.rglob("*")) if f.is_file())  # a file the package writes
    leftover = written.parent / f".{written.name}.k1ll3d.tmp"
    leftover.write_bytes(b"half a header")
    write_packages(exported, ["cmake"])
    assert not leftover.exists()
    user = root / ".notes.abc.tmp"
    user.write_text("mine")
    with pytest.raises(InputError, match="would not write"):
        write_packages(exported, ["cmake"])
    assert user.read_text() == "mine"
