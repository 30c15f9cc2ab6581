"""Builds trustattr._C from csrc/ against the torch that is already installed.

Build without isolation (an isolated build would fetch a multi-GB CUDA torch and
compile against a different ABI than the one you run):

    pip install torch==2.13.0 ninja
    pip install --no-build-isolation -e ".[dev]"

CUDA kernels are compiled when torch is a CUDA build and nvcc is found
(TRUSTATTR_FORCE_CPU=1 skips them, TRUSTATTR_FORCE_CUDA=1 makes their absence
an error). Metadata and dependencies live in pyproject.toml.
"""

import glob
import os
import sys

from setuptools import setup

try:
    import torch
    from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension
except ImportError:
    sys.exit(
        "trustattr: torch must be installed before building, and pip must not isolate the build:\n"
        "  pip install torch==2.13.0 ninja\n"
        "  pip install --no-build-isolation -e '.[dev]'\n"
    )

HERE = os.path.dirname(os.path.abspath(__file__))


def want_cuda() -> bool:
    if os.environ.get("TRUSTATTR_FORCE_CPU") == "1":
        print("trustattr: TRUSTATTR_FORCE_CPU=1, building the CPU kernels only")
        return False
    cuda = torch.version.cuda is not None and CUDA_HOME is not None
    if not cuda:
        why = "torch is a CPU build" if torch.version.cuda is None else "nvcc/CUDA_HOME not found"
        if os.environ.get("TRUSTATTR_FORCE_CUDA") == "1":
            sys.exit(f"trustattr: TRUSTATTR_FORCE_CUDA=1 but {why} "
                     f"(torch.version.cuda={torch.version.cuda}, CUDA_HOME={CUDA_HOME})")
        print(f"trustattr: {why}; building the CPU kernels only (the CUDA sources are skipped)")
    return cuda


def extension():
    cuda = want_cuda()
    sources = sorted(glob.glob("csrc/*.cpp") + glob.glob("csrc/cpu/*.cpp"))
    cxx = ["-O3", "-fopenmp", "-ffp-contract=fast", "-fno-math-errno"]
    args = {"cxx": cxx}
    if cuda:
        sources += sorted(glob.glob("csrc/cuda/*.cu"))
        args["nvcc"] = ["-O3", "-lineinfo", "--expt-relaxed-constexpr", "-std=c++17"]
        cxx.append("-DTRUSTATTR_WITH_CUDA")
    ext = CUDAExtension if cuda else CppExtension
    return ext(
        "trustattr._C",
        sources,
        include_dirs=[os.path.join(HERE, "csrc")],
        extra_compile_args=args,
        extra_link_args=["-fopenmp"],
        py_limited_api=True,
    )


setup(
    packages=[
        "trustattr",
        *[p.replace("/", ".") for p in sorted(glob.glob("trustattr/*/")) if os.path.exists(p + "__init__.py")],
        "trustattr.cli",
    ],
    package_dir={"trustattr.cli": "cli"},
    ext_modules=[extension()],
    cmdclass={"build_ext": BuildExtension},
    options={"bdist_wheel": {"py_limited_api": "cp310"}},
)
