"""What a model costs in a linked firmware: the sections of its object that the image keeps.

The model's object (c_runtime/mcu/model_unit.c) holds the whole edgernn_* API; a firmware linked
with --gc-sections keeps only what its calls reach, as any embedded build does. So the model's
flash is the sizes of the object's sections that survive in the image (each function and table
has its own section: -ffunction-sections -fdata-sections), and what it needs from a C library or
compiler runtime is the undefined symbols that those sections' relocations name.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from edgernn.targets.elf import SHN_UNDEF, Elf

SHT_RELA = 4
SHT_REL = 9
_STT_OBJECT, _STT_FUNC = 1, 2


@dataclass(frozen=True)
class Footprint:
    text: int  # bytes of code the image keeps
    rodata: int  # bytes of tables the image keeps
    data: int
    bss: int
    undefined: list[str]  # symbols the kept sections need from elsewhere


def kept_sections(model: Elf, image: Elf) -> set[int]:
    """Indexes of the model's allocated sections whose functions or tables the image holds. A
    section that defines no named function or object (a literal pool, a string) counts as kept."""
    in_image = {s.name for s in image.symbols if s.shndx != SHN_UNDEF}
    named: dict[int, set[str]] = {}
    for sym in model.symbols:
        if sym.type in (_STT_OBJECT, _STT_FUNC) and sym.shndx != SHN_UNDEF and sym.name:
            named.setdefault(sym.shndx, set()).add(sym.name)
    return {
        i
        for i, sec in enumerate(model.sections)
        if sec.kind and sec.size and (i not in named or named[i] & in_image)
    }


def _relocated_symbols(model: Elf, sections: set[int]) -> set[str]:
    """Names of the symbols that the relocations of the given sections refer to."""
    names: set[str] = set()
    for sec in model.sections:
        if sec.type not in (SHT_REL, SHT_RELA) or sec.info not in sections:  # info: the patched section
            continue
        entry = 8 if sec.type == SHT_REL else 12
        for off in range(sec.offset, sec.offset + sec.size, entry):
            _, info = struct.unpack_from("<II", model.data, off)
            index = info >> 8
            if 0 < index <= len(model.symbols):
                names.add(model.symbols[index - 1].name)  # Elf.symbols omits the null entry 0
    return names


def footprint(model: Elf, image: Elf) -> Footprint:
    kept = kept_sections(model, image)
    sizes = {"text": 0, "rodata": 0, "data": 0, "bss": 0}
    for i in kept:
        sizes[model.sections[i].kind] += model.sections[i].size
    needed = _relocated_symbols(model, kept) & set(model.undefined())
    return Footprint(undefined=sorted(needed), **sizes)
