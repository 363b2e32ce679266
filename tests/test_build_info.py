"""build_info() must describe the binary that is actually loaded."""
import os
import re
import shutil
import subprocess

import pytest
import torch

import tinyvit
from tinyvit import _C


def elf_sections():
    out = subprocess.run(["readelf", "-S", "-W", _C.__file__], capture_output=True, text=True,
                         check=True)
    return set(re.findall(r"\]\s+(\.\S+)", out.stdout))


def needed_libraries():
    """DT_NEEDED entries of the loaded extension (what the dynamic linker must load)."""
    out = subprocess.run(["readelf", "-d", _C.__file__], capture_output=True, text=True, check=True)
    return re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", out.stdout)


def test_keys_and_types():
    info = tinyvit.build_info()
    for key, typ in [("cuda", bool), ("cuda_archs", list), ("cuda_version", str),
                     ("torch_compiled", str), ("torch_runtime", str), ("jpeg", bool),
                     ("libjpeg_turbo", bool), ("cuda_available", bool)]:
        assert isinstance(info[key], typ), key


def test_torch_versions_are_truthful():
    info = tinyvit.build_info()
    assert info["torch_runtime"] == torch.__version__
    # The extension's ABI is tied to the torch it was compiled against.
    assert info["torch_compiled"] == torch.__version__.split("+")[0]


def test_cuda_fields_are_consistent():
    info = tinyvit.build_info()
    if info["cuda"]:
        assert info["cuda_archs"], "a CUDA build must list its archs"
        assert all(re.fullmatch(r"(sm|compute)_\d+[a-z]?", a) for a in info["cuda_archs"])
        assert info["cuda_version"] == torch.version.cuda
    else:
        assert info["cuda_archs"] == [] and info["cuda_version"] == ""
        assert info["cuda_available"] is False
    assert info["cuda_available"] == (info["cuda"] and torch.cuda.is_available())


@pytest.mark.skipif(shutil.which("readelf") is None, reason="readelf not available")
def test_binary_contents_match_build_info():
    info = tinyvit.build_info()
    # CUDA kernels live in the .nv_fatbin section; a CPU build must have none.
    assert (".nv_fatbin" in elf_sections()) == info["cuda"]
    assert any(lib.startswith("libjpeg") for lib in needed_libraries()) == info["jpeg"]
    if info["libjpeg_turbo"]:
        assert re.fullmatch(r"\d+\.\d+(\.\d+)?", info["libjpeg_turbo_version"])


@pytest.mark.skipif(shutil.which("cuobjdump") is None or not tinyvit.build_info()["cuda"],
                    reason="needs a CUDA build and cuobjdump")
def test_cuda_archs_match_embedded_cubins():
    out = subprocess.run(["cuobjdump", "--list-elf", _C.__file__], capture_output=True, text=True)
    embedded = set(re.findall(r"\.(sm_\d+[a-z]?)\.cubin", out.stdout))
    assert embedded == {a for a in tinyvit.build_info()["cuda_archs"] if a.startswith("sm_")}
