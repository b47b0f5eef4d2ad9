"""PlatformIO library: DIR/packages/platformio/<name>/.

<name>/library.json                  the PlatformIO library manifest
<name>/src/<name>.h, src/<name>.c    model.h and its implementation unit
<name>/examples/stream/main.c        runs the bundled sequence, printf's the class
"""

from __future__ import annotations

import json
from typing import Any

from edgernn.packages.base import Package, PackagedModel, Tree, class_name_c, demo_c, text
from edgernn.packages.registry import register


def library_json(m: PackagedModel) -> dict[str, Any]:
    # No "license" field: pio validates one against the SPDX list it downloads, so `pio pkg pack`
    # fails offline with it. The terms are in LICENSE, which the package exports.
    return {
        "name": m.name,
        "version": m.version,
        "description": m.description,
        "keywords": ["rnn", "int8", "tinyml", "edgernn", "machine-learning"],
        "frameworks": "*",
        "platforms": "*",
        "headers": [f"{m.name}.h"],
        "build": {"srcDir": "src", "includeDir": "src"},
        "examples": [{"name": "stream", "base": "examples/stream", "files": ["main.c"]}],
        "export": {"include": ["src", "examples", "library.json", "LICENSE"]},
    }


def main_c(m: PackagedModel) -> str:
    return (
        f"/* Runs {m.name} on the first test sequence of {m.dataset}; prints the class. */\n"
        "#include <stdio.h>\n"
        f'#include "{m.name}.h"\n\n'
        f"{demo_c(m)}\n{class_name_c(m)}\n"
        "int main(void)\n"
        "{\n"
        "    int32_t c = demo_class();\n"
        f'    printf("{m.name} class=%ld %s\\n", (long)c, demo_class_name(c));\n'
        "    return 0;\n"
        "}\n"
    )


def build(m: PackagedModel) -> Tree:
    lib: Tree = {
        "library.json": text(json.dumps(library_json(m), indent=2) + "\n"),
        "LICENSE": text(m.licence_text),
        f"src/{m.name}.h": text(m.header),
        f"src/{m.name}.c": text(m.impl_c),
        "examples/stream/main.c": text(main_c(m)),
    }
    return {f"{m.name}/{k}": v for k, v in lib.items()}


PACKAGE = register(Package("platformio", "PlatformIO library (library.json)", build))
