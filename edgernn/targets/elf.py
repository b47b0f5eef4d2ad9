"""A small reader for 32-bit little-endian ARM ELF files: sections, symbols, loadable segments.

Enough to size a model's object file, list what it needs from outside (undefined symbols), find
the harness's functions and globals, and load an image into an emulator. Nothing else is parsed;
a file that is not ELF32 little-endian is refused with a ToolchainError (edgernn built it).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from edgernn.errors import ToolchainError

SHT_SYMTAB = 2
SHT_NOBITS = 8
SHF_WRITE = 0x1
SHF_ALLOC = 0x2
SHF_EXECINSTR = 0x4
PT_LOAD = 1
SHN_UNDEF = 0
STB_LOCAL = 0


@dataclass(frozen=True)
class Section:
    name: str
    type: int
    flags: int
    addr: int
    offset: int
    size: int
    link: int = 0  # sh_link: e.g. a symbol table's string table
    info: int = 0  # sh_info: e.g. the section a relocation section patches

    @property
    def kind(self) -> str:
        """'text', 'rodata', 'data', 'bss' for what a firmware allocates, '' for the rest."""
        if not self.flags & SHF_ALLOC:
            return ""
        if self.flags & SHF_EXECINSTR:
            return "text"
        if not self.flags & SHF_WRITE:
            return "rodata"
        return "bss" if self.type == SHT_NOBITS else "data"


@dataclass(frozen=True)
class Symbol:
    name: str
    value: int
    size: int
    type: int  # STT_*: 0 none, 1 object, 2 func, 3 section, 4 file
    bind: int  # STB_*: 0 local, 1 global, 2 weak
    shndx: int


@dataclass(frozen=True)
class Segment:
    type: int
    offset: int
    vaddr: int
    paddr: int
    filesz: int
    memsz: int


class Elf:
    def __init__(self, data: bytes, name: str = "<bytes>") -> None:
        if data[:4] != b"\x7fELF" or data[4] != 1 or data[5] != 1:
            raise ToolchainError(
                f"{name} is not a 32-bit little-endian ELF file: the cross-compiler wrote something else"
            )
        self.data = data
        self.name = name
        (_, _, _, _, phoff, shoff, _, _, phentsize, phnum, shentsize, shnum, shstrndx) = struct.unpack_from(
            "<HHIIIIIHHHHHH", data, 16
        )
        raw = [struct.unpack_from("<IIIIIIIIII", data, shoff + i * shentsize) for i in range(shnum)]
        names = raw[shstrndx] if shnum else None
        self.sections = [
            Section(self._str(names[4], s[0]) if names else "", s[1], s[2], s[3], s[4], s[5], s[6], s[7])
            for s in raw
        ]
        self.segments = [
            Segment(*struct.unpack_from("<IIIIII", data, phoff + i * phentsize)) for i in range(phnum)
        ]
        self.symbols = self._symbols()

    @classmethod
    def read(cls, path: str | Path) -> Elf:
        return cls(Path(path).read_bytes(), str(path))

    def _str(self, table_offset: int, index: int) -> str:
        end = self.data.index(b"\0", table_offset + index)
        return self.data[table_offset + index : end].decode("ascii", "replace")

    def _symbols(self) -> list[Symbol]:
        out = []
        for sec in self.sections:
            if sec.type != SHT_SYMTAB:
                continue
            strtab = self.sections[sec.link].offset  # sh_link names the string table
            for i in range(1, sec.size // 16):  # entry 0 is the reserved null symbol
                name, value, size, info, _, shndx = struct.unpack_from(
                    "<IIIBBH", self.data, sec.offset + i * 16
                )
                out.append(Symbol(self._str(strtab, name), value, size, info & 0xF, info >> 4, shndx))
        return out

    def symbol(self, name: str) -> Symbol:
        for s in self.symbols:
            if s.name == name and s.shndx != SHN_UNDEF:
                return s
        raise ToolchainError(f"{self.name} has no symbol {name!r}: the image was not linked as expected")

    def undefined(self) -> list[str]:
        """Names this file needs from elsewhere (what a linker would have to find in a library)."""
        return sorted(
            {s.name for s in self.symbols if s.shndx == SHN_UNDEF and s.bind != STB_LOCAL and s.name}
        )

    def sizes(self) -> dict[str, int]:
        """Bytes per kind of allocated section: text, rodata, data, bss."""
        out = {"text": 0, "rodata": 0, "data": 0, "bss": 0}
        for s in self.sections:
            if s.kind:
                out[s.kind] += s.size
        return out

    def loadable(self) -> list[tuple[int, bytes, int]]:
        """(run address, file bytes, memory size) of each PT_LOAD segment."""
        return [
            (p.vaddr, self.data[p.offset : p.offset + p.filesz], p.memsz)
            for p in self.segments
            if p.type == PT_LOAD and p.memsz
        ]
