"""The sparse-CE kernels build for sm_70 (V100): csrc/ops/sparse_ce_kernels.cuh compiled with
NVRTC 12.x (pip wheels; CUDA 13's nvcc has no sm_70), and the CUBIN really is sm_70 code
holding every kernel instantiation the launchers dispatch to."""
import os
import re
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sm70_cubin  # noqa: E402  (tests/gpu/sm70_cubin.py)

try:
    sm70_cubin.find_nvrtc()
    NVRTC_MISSING = None
except sm70_cubin.NvrtcMissing as exc:
    NVRTC_MISSING = (f"{exc}: pip install nvidia-cuda-nvrtc-cu12==12.9.* nvidia-cuda-runtime-cu12==12.9.* "
                     "(scripts/setup.sh installs them)")
# CI sets TINYVIT_REQUIRE_NVRTC=1 (.ci/run): there a missing wheel is a failure, not a skip.
if NVRTC_MISSING and os.environ.get("TINYVIT_REQUIRE_NVRTC") == "1":
    raise RuntimeError(f"TINYVIT_REQUIRE_NVRTC=1 but {NVRTC_MISSING}")
needs_nvrtc = pytest.mark.skipif(NVRTC_MISSING is not None, reason=NVRTC_MISSING or "")
CU = os.path.join(sm70_cubin.ROOT, "csrc", "ops", "sparse_ce_cuda.cu")
KERNEL_PREFIX = "_ZN7tinyvit9sparse_ce6device"


@pytest.fixture(scope="module")
def sm70():
    res = sm70_cubin.compile_header("sm_70")
    return res, sm70_cubin.parse_cuda_elf(res.cubin)


def test_instance_list_covers_what_the_launchers_dispatch():
    # The launchers dispatch float, double, Half, BFloat16 (AT_DISPATCH_FLOATING_TYPES_AND2) over
    # the two block sizes; the header's list must name exactly those, with fp32 accumulation
    # except for double. If the dispatch changes, this list (and the sm_70 check) must follow.
    src = open(CU).read()
    dispatches = re.findall(r"AT_DISPATCH_(\w+)\(([^\"]*)\"", src)
    assert dispatches and all(d == ("FLOATING_TYPES_AND2", "at::kHalf, at::kBFloat16, logits.scalar_type(), ")
                              for d in dispatches), dispatches
    assert "struct DeviceType<at::Half> {\n  using type = __half;" in src
    assert "struct DeviceType<at::BFloat16> {\n  using type = __nv_bfloat16;" in src
    got = sm70_cubin.instances()
    want = {(b, s, "double" if s == "double" else "float")
            for b in (128, 512) for s in ("float", "double", "__half", "__nv_bfloat16")}
    assert len(got) == len(set(got)) == 8 and set(got) == want
    assert "std::integral_constant<int, device::kSmallBlock>" in src
    assert "std::integral_constant<int, device::kLargeBlock>" in src


def test_header_is_torch_free():
    text = re.sub(r"//[^\n]*", "", open(sm70_cubin.HEADER).read())  # code only, not the comments
    includes = re.findall(r"#include\s*[<\"]([^>\"]+)", text)
    assert set(includes) == {"cuda_bf16.h", "cuda_fp16.h", "cstdint"}, includes
    assert "ATen" not in text and "c10" not in text and "at::" not in text


@needs_nvrtc
def test_cubin_is_sm70_machine_code(sm70):
    res, elf = sm70
    assert res.version[0] == 12, f"expected NVRTC 12.x, got {res.version}"
    assert elf.machine == sm70_cubin.EM_CUDA
    assert elf.sm == 70 and elf.virtual_sm == 70, hex(elf.e_flags)
    # A real CUBIN holds SASS in .text.<kernel> sections, no PTX.
    assert not any(s.startswith(".nv.ptx") for s in elf.sections)
    # sm_70-specific helpers the compiler links for warp shuffles on Volta.
    assert any("sm70" in f for f in elf.functions)


@needs_nvrtc
def test_cubin_has_every_kernel_instantiation(sm70):
    res, elf = sm70
    assert len(res.lowered) == 16
    kernels = {f for f in elf.functions if f.startswith(KERNEL_PREFIX)}
    assert kernels == set(res.lowered.values())  # all present, nothing unexpected
    for expr, sym in res.lowered.items():
        assert f".text.{sym}" in elf.sections and f".nv.info.{sym}" in elf.sections, expr
        block = int(re.search(r"_kernel<(\d+),", expr).group(1))
        assert elf.max_threads(sym) == (block, 1, 1), expr  # __launch_bounds__(BLOCK) made it in


@needs_nvrtc
@pytest.mark.skipif(shutil.which("readelf") is None, reason="readelf (binutils) not installed")
def test_elf_parser_agrees_with_readelf(sm70, tmp_path):
    # An independent reader of the same CUBIN: binutils' readelf.
    _, elf = sm70
    path = tmp_path / "sparse_ce_sm70.cubin"
    path.write_bytes(sm70[0].cubin)
    hdr = subprocess.run(["readelf", "-h", str(path)], capture_output=True, text=True, check=True).stdout
    assert re.search(r"Machine:\s+NVIDIA CUDA architecture", hdr)
    assert int(re.search(r"Flags:\s+0x([0-9a-f]+)", hdr).group(1), 16) == elf.e_flags
    syms = subprocess.run(["readelf", "-s", "--wide", str(path)], capture_output=True, text=True).stdout
    funcs = {line.split()[-1] for line in syms.splitlines() if " FUNC " in line}
    assert funcs == set(elf.functions)


@needs_nvrtc
def test_nvrtc_reports_header_errors():
    # The check is not vacuous: NVRTC fails loudly on a broken header.
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        bad = os.path.join(d, "broken_kernels.cuh")
        text = open(sm70_cubin.HEADER).read().replace("acc[0] += v;", "acc[0] += undeclared_v;")
        open(bad, "w").write(text)
        with pytest.raises(RuntimeError, match="undeclared_v"):
            sm70_cubin.compile_header("sm_70", header=bad)


@needs_nvrtc
def test_nvcc_build_launches_exactly_the_checked_kernels(sm70):
    # An nvcc (CUDA) build names every kernel it launches in its binary (host-side registration
    # and the embedded cubin's symbols); that set must be exactly the one compiled for sm_70
    # above, so the list cannot drift from the launchers, and the mangled names (int64_t = long
    # in both compilers) are the launchers' own.
    import tinyvit
    from tinyvit import _C

    if not tinyvit.build_info()["cuda"]:
        pytest.skip("the extension was built without CUDA (TINYVIT_CUDA=1 with nvcc builds it)")
    blob = open(_C.__file__, "rb").read()
    names = set(re.findall(rb"_ZN7tinyvit9sparse_ce6device10(?:fwd|bwd)_kernel\w+", blob))
    # drop derived names: kernel parameters (<sym>_param_N) and the stubs' local statics (...E5__tmp)
    kernels = {n.decode() for n in names if not re.search(rb"(_param_\d+|E\d+__(tmp|handle))$", n)}
    assert kernels == set(sm70[0].lowered.values())
