"""The CPU sources compile for aarch64 (issue 17), checked with Debian's cross compiler
``g++-aarch64-linux-gnu`` against the installed torch's headers (they are the same on every
architecture). The kernel files (``csrc/cpu/*_isa_*.cpp``: no torch header) are compiled to objects
and the NEON kernels must use fused multiply-adds (the 16-byte baseline variant with the 32-register
tile shapes); the launchers, which include ATen, are checked with ``-fsyntax-only``.

Running the kernels on aarch64 needs an aarch64 machine with torch: the float64-reference tests of
tests/ops then run there unchanged (the baseline variant is the NEON one)."""

from __future__ import annotations

import glob
import os
import platform
import shutil
import subprocess
import sysconfig

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CXX = "aarch64-linux-gnu-g++"

pytestmark = [
    pytest.mark.skipif(platform.machine() == "aarch64", reason="on aarch64 the normal build compiles these sources"),
    pytest.mark.skipif(shutil.which(CXX) is None,
                       reason=f"no {CXX}: install Debian's g++-aarch64-linux-gnu to run the aarch64 cross-compile check"),
]


def _flags() -> list[str]:
    from torch.utils.cpp_extension import include_paths

    flags = ["-std=c++20", "-O2", "-fopenmp", "-ffp-contract=fast", "-fno-math-errno", "-Werror=return-type",
             f"-I{os.path.join(ROOT, 'csrc')}", f"-I{sysconfig.get_paths()['include']}",
             "-DTORCH_API_INCLUDE_EXTENSION_H", "-DTORCH_EXTENSION_NAME=_C", "-DPy_LIMITED_API=0x030A0000"]
    return flags + [f"-I{p}" for p in include_paths()]


def _compile(source: str, extra: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([CXX, *_flags(), *extra, source], capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("source", sorted(glob.glob(os.path.join(ROOT, "csrc", "cpu", "*_isa_*.cpp"))),
                         ids=os.path.basename)
def test_kernel_sources_compile_for_aarch64(source, tmp_path):
    obj = tmp_path / "k.o"
    run = _compile(source, ["-c", "-o", str(obj)])
    assert run.returncode == 0, run.stderr[-4000:]
    if os.path.basename(source).endswith("_baseline.cpp"):  # the NEON variant: FMA, as on AVX2/AVX-512
        dump = subprocess.run(["aarch64-linux-gnu-objdump", "-d", str(obj)], capture_output=True, text=True)
        if dump.returncode == 0:
            assert "fmla" in dump.stdout


_KERNELS = set(glob.glob(os.path.join(ROOT, "csrc", "cpu", "*_isa_*.cpp")))
_LAUNCHERS = (set(glob.glob(os.path.join(ROOT, "csrc", "*.cpp"))) | set(glob.glob(os.path.join(ROOT, "csrc", "cpu", "*.cpp")))) - _KERNELS


@pytest.mark.parametrize("source", sorted(_LAUNCHERS), ids=os.path.basename)
def test_launchers_compile_for_aarch64(source):
    run = _compile(source, ["-fsyntax-only"])
    assert run.returncode == 0, run.stderr[-4000:]
