"""The C backend: a QuantizedModel -> model.h, and the native builds and runs that prove it.

- `codegen`: the header (the embedded runtime, the model's macros, tables and descriptor);
- `wrappers`: the per-model PREFIX_* calls around the prefix-free edgernn_* API;
- `header`: facts read back from a generated header (prefix, descriptor, integer macros);
- `build`: the one place a C compiler is found ($CC) and run, with the project's flag sets;
- `host`: the header + c_runtime/harness.c as a shared library, driven through ctypes;
- `sanitized`, `fuzz`: the same code under ASan/UBSan and libFuzzer.
"""
