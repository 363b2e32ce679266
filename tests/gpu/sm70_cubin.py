"""Compile the sparse-CE device header for sm_70 (V100) with NVRTC 12.x and inspect the CUBIN.

CUDA 13's nvcc cannot target sm_70, and the registry has no CUDA 12 nvcc driver, but the
``nvidia-cuda-nvrtc-cu12`` wheel (+ the headers of ``nvidia-cuda-runtime-cu12``) compiles
device-only CUDA C++ to real sm_70 machine code. csrc/ops/sparse_ce_kernels.cuh is torch-free
for exactly this. This module: find the wheels, compile every kernel instantiation the launchers
use (the header's TINYVIT_SPARSE_CE_FOR_EACH_INSTANCE list) through ctypes, and read the ELF
(arch from e_flags, function symbols, per-kernel .nv.info / .text sections) with a small
parser of our own, since CUDA 13's cuobjdump is not installed here.

    python tests/gpu/sm70_cubin.py [--arch sm_70] [--out FILE.cubin]
"""
from __future__ import annotations

import ctypes
import importlib.util
import os
import re
import struct
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HEADER = os.path.join(ROOT, "csrc", "ops", "sparse_ce_kernels.cuh")
NS = "tinyvit::sparse_ce::device::"
EM_CUDA = 190


class NvrtcMissing(RuntimeError):
    """The NVRTC 12 / CUDA runtime header wheels are not installed."""


def _package_dir(name: str) -> Optional[str]:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return list(spec.submodule_search_locations)[0]


def find_nvrtc():
    """(libnvrtc path, CUDA include dir) from the pip wheels, or raise NvrtcMissing."""
    nvrtc_dir = _package_dir("nvidia.cuda_nvrtc")
    rt_dir = _package_dir("nvidia.cuda_runtime")
    lib = os.path.join(nvrtc_dir or "", "lib", "libnvrtc.so.12")
    inc = os.path.join(rt_dir or "", "include")
    missing = []
    if not nvrtc_dir or not os.path.exists(lib):
        missing.append("nvidia-cuda-nvrtc-cu12 (libnvrtc.so.12)")
    if not rt_dir or not os.path.exists(os.path.join(inc, "cuda_fp16.h")):
        missing.append("nvidia-cuda-runtime-cu12 (cuda_fp16.h)")
    if missing:
        raise NvrtcMissing("not installed: " + ", ".join(missing))
    return lib, inc


def instances(header: str = HEADER) -> List[tuple]:
    """(block constant, scalar type, acc type) for every X(...) line of the header's lists."""
    text = open(header).read()
    types = re.findall(r"^\s*X\(BLOCK,\s*([\w:]+),\s*([\w:]+)\)", text, re.M)
    blocks = re.findall(r"TINYVIT_SPARSE_CE_FOR_EACH_BLOCK_TYPE\(X,\s*(?:::)?[\w:]*?(k\w+Block)\)", text)
    values = {name: int(v) for name, v in re.findall(r"constexpr int (k\w+Block) = (\d+);", text)}
    if not types or not blocks:
        raise ValueError(f"{header}: no TINYVIT_SPARSE_CE_FOR_EACH_INSTANCE list found")
    return [(values[b], s, a) for b in blocks for s, a in types]


def kernel_expressions(header: str = HEADER) -> List[str]:
    return [f"&{NS}{kind}_kernel<{b}, {s}, {a}>" for b, s, a in instances(header)
            for kind in ("fwd", "bwd")]


@dataclass
class NvrtcResult:
    version: tuple
    arch: str
    cubin: bytes
    lowered: Dict[str, str]  # name expression -> mangled symbol
    log: str = ""


def compile_header(arch: str = "sm_70", header: str = HEADER) -> NvrtcResult:
    """Compile ``header``'s kernel instantiations to a CUBIN for ``arch`` with NVRTC 12."""
    lib_path, inc = find_nvrtc()
    lib = ctypes.CDLL(lib_path)
    major, minor = ctypes.c_int(), ctypes.c_int()
    lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor))
    lib.nvrtcGetErrorString.restype = ctypes.c_char_p

    def check(code, what):
        if code != 0:
            raise RuntimeError(f"{what}: {lib.nvrtcGetErrorString(code).decode()}")

    src = f'#include "{os.path.abspath(header)}"\n'.encode()
    prog = ctypes.c_void_p()
    check(lib.nvrtcCreateProgram(ctypes.byref(prog), src, b"sparse_ce_sm70.cu", 0, None, None),
          "nvrtcCreateProgram")
    try:
        exprs = kernel_expressions(header)
        for e in exprs:  # a name expression also instantiates the template
            check(lib.nvrtcAddNameExpression(prog, e.encode()), f"nvrtcAddNameExpression({e})")
        opts = [f"--gpu-architecture={arch}", "-std=c++17", f"-I{inc}",
                f"-I{os.path.join(ROOT, 'csrc')}", "-D__CUDA_NO_HALF_OPERATORS__",
                "-D__CUDA_NO_HALF_CONVERSIONS__", "-D__CUDA_NO_BFLOAT16_CONVERSIONS__"]
        # The -D flags: torch's nvcc flags, so the header is checked under the same rules.
        argv = (ctypes.c_char_p * len(opts))(*[o.encode() for o in opts])
        rc = lib.nvrtcCompileProgram(prog, len(opts), argv)
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        buf = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(prog, buf)
        log = buf.value.decode(errors="replace")
        if rc != 0:
            raise RuntimeError(f"NVRTC {major.value}.{minor.value} failed for {arch}:\n{log}")
        lib.nvrtcGetCUBINSize(prog, ctypes.byref(size))
        if size.value == 0:
            raise RuntimeError(f"NVRTC produced no CUBIN for {arch} (PTX-only target?)")
        cubin = ctypes.create_string_buffer(size.value)
        check(lib.nvrtcGetCUBIN(prog, cubin), "nvrtcGetCUBIN")
        lowered = {}
        for e in exprs:
            name = ctypes.c_char_p()
            check(lib.nvrtcGetLoweredName(prog, e.encode(), ctypes.byref(name)), f"nvrtcGetLoweredName({e})")
            lowered[e] = name.value.decode()
        return NvrtcResult((major.value, minor.value), arch, cubin.raw, lowered, log)
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))


@dataclass
class CudaElf:
    machine: int
    abi_version: int
    e_flags: int
    sm: int
    sections: List[str] = field(default_factory=list)
    functions: List[str] = field(default_factory=list)  # STT_FUNC symbols
    nv_info: Dict[str, bytes] = field(default_factory=dict)  # kernel symbol -> its .nv.info.<sym> bytes

    @property
    def virtual_sm(self) -> int:
        # EF_CUDA_VIRTUAL_SM: the compute_XY the SASS was generated from (ABI <= 7 layout).
        return (self.e_flags >> 16) & 0xFF if self.abi_version < 8 else self.e_flags >> 24

    def max_threads(self, sym: str) -> Optional[tuple]:
        """EIATTR_MAX_THREADS (0x05: the kernel's __launch_bounds__) from .nv.info.<sym>."""
        b, i = self.nv_info.get(sym, b""), 0
        while i + 2 <= len(b):
            fmt, attr = b[i], b[i + 1]
            if fmt == 4:  # EIFMT_SVAL: u16 size + payload
                (size,) = struct.unpack_from("<H", b, i + 2)
                if attr == 0x05:
                    return struct.unpack_from("<III", b, i + 4)
                i += 4 + size
            elif fmt == 3:  # EIFMT_HVAL: u16 value
                i += 4
            else:  # EIFMT_NVAL / EIFMT_BVAL
                i += 2 if fmt == 1 else 4
        return None


def _sm_from_flags(abi_version: int, e_flags: int) -> int:
    # CUDA ELF ABI: up to ABI version 7 the SM number is e_flags[7:0] (EF_CUDA_SM); from
    # version 8 (CUDA 12.8+) it moved to e_flags[15:8].
    return (e_flags >> 8) & 0xFF if abi_version >= 8 else e_flags & 0xFF


def parse_cuda_elf(data: bytes) -> CudaElf:
    """Header, section names and function symbols of a 64-bit little-endian CUDA ELF."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError("not a 64-bit little-endian ELF")
    abi_version = data[8]
    (e_type, e_machine, _ver, _entry, _phoff, e_shoff, e_flags, _ehsize, _phentsize, _phnum,
     e_shentsize, e_shnum, e_shstrndx) = struct.unpack_from("<HHIQQQIHHHHHH", data, 16)
    secs = []
    for i in range(e_shnum):
        name, typ, _fl, _addr, off, size, link, _info, _align, entsize = struct.unpack_from(
            "<IIQQQQIIQQ", data, e_shoff + i * e_shentsize)
        secs.append((name, typ, off, size, link, entsize))

    def cstr(table_off, idx):
        end = data.index(b"\0", table_off + idx)
        return data[table_off + idx:end].decode()

    shstr_off = secs[e_shstrndx][2]
    names = [cstr(shstr_off, s[0]) for s in secs]
    functions = []
    for (_n, typ, off, size, link, entsize) in secs:
        if typ != 2:  # SHT_SYMTAB
            continue
        str_off = secs[link][2]
        for j in range(size // entsize):
            st_name, st_info, _other, _shndx, _value, _size = struct.unpack_from("<IBBHQQ", data, off + j * entsize)
            if st_info & 0xF == 2:  # STT_FUNC
                functions.append(cstr(str_off, st_name))
    nv_info = {n[len(".nv.info."):]: data[s[2]:s[2] + s[3]] for n, s in zip(names, secs)
               if n.startswith(".nv.info.")}
    return CudaElf(e_machine, abi_version, e_flags, _sm_from_flags(abi_version, e_flags), names, functions,
                   nv_info)


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="sm_70")
    ap.add_argument("--out", help="also write the CUBIN here (e.g. for readelf)")
    a = ap.parse_args(argv)
    res = compile_header(a.arch)
    elf = parse_cuda_elf(res.cubin)
    print(f"NVRTC {res.version[0]}.{res.version[1]} -> {len(res.cubin)} byte CUBIN, e_machine={elf.machine} "
          f"ABI v{elf.abi_version} e_flags=0x{elf.e_flags:x}: sm_{elf.sm} (from compute_{elf.virtual_sm}), "
          f"{len(elf.functions)} functions")
    for expr, sym in res.lowered.items():
        ok = sym in elf.functions and f".nv.info.{sym}" in elf.sections and f".text.{sym}" in elf.sections
        print(f"  {'ok ' if ok else 'MISSING'} {expr[len('&' + NS):]:<40} max_threads={elf.max_threads(sym)} {sym}")
    if a.out:
        with open(a.out, "wb") as f:
            f.write(res.cubin)
    return 0


if __name__ == "__main__":
    sys.exit(main())
