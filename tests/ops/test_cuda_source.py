"""kernels/involution.cu checked without a GPU.

- nvcc compiles it warning-free for each target architecture, with every instantiation the
  CuPy backend asks for; NVRTC from CUDA 12 (what cupy-cuda12x runs) compiles it with the
  backend's own name expressions and options, when that library is installed;
- g++ compiles the same file for the host through kernels/host_shim.h, and its three kernels
  match the reference operator and its autograd gradients on random geometries;
- on a real GPU (marked ``gpu``), the CuPy backend matches the reference.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from invnas.ops import library
from invnas.ops.backends import Geometry, cupy_backend, geometry_of
from invnas.ops.backends.reference import involution_reference
from invnas.resources import kernels_dir

KERNELS = kernels_dir()
NVCC = shutil.which("nvcc")
GXX = shutil.which("g++")
ARCHS = (70, 80, 90)
DEFINES = tuple(o for o in cupy_backend.NVRTC_OPTIONS if o.startswith("-D"))
_ITANIUM_TYPES = {
    "float": "f",
    "double": "d",
    "__half": "6__half",
    "__nv_bfloat16": "13__nv_bfloat16",
}


def _all_name_expressions() -> list[str]:
    return [n for dtype in cupy_backend.CUDA_TYPES for n in cupy_backend.name_expressions(dtype)]


def _mangled_prefix(name_expression: str) -> str:
    """``invnas::k<T>`` -> the start of its Itanium-mangled name, ``_ZN6invnas<len>kI<T>E``."""
    match = re.fullmatch(r"invnas::(\w+)<(\w+)>", name_expression)
    assert match, name_expression
    kernel, ctype = match.groups()
    return f"_ZN6invnas{len(kernel)}{kernel}I{_ITANIUM_TYPES[ctype]}E"


@functools.cache
def _nvcc_gpu_codes() -> frozenset[str]:
    assert NVCC is not None
    listed = subprocess.run([NVCC, "--list-gpu-code"], capture_output=True, text=True, check=True)
    return frozenset(listed.stdout.split())


# ---------------------------------------------------------------------------------------------
# nvcc / NVRTC


@pytest.fixture(scope="module")
def instantiations_cu(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A unit that includes involution.cu and instantiates every kernel the backend loads."""
    refs = ",\n".join(f"    (const void*)&{n}" for n in _all_name_expressions())
    unit = tmp_path_factory.mktemp("nvcc") / "instantiations.cu"
    unit.write_text(
        '#include "involution.cu"\n'
        "extern const void* const invnas_instantiations[];\n"
        f"const void* const invnas_instantiations[] = {{\n{refs}\n}};\n"
    )
    return unit


@pytest.mark.skipif(NVCC is None, reason="nvcc is not on PATH")
@pytest.mark.parametrize("arch", ARCHS, ids=[f"sm_{a}" for a in ARCHS])
def test_nvcc_compiles_warning_free(arch: int, instantiations_cu: Path, tmp_path: Path) -> None:
    if f"sm_{arch}" not in _nvcc_gpu_codes():
        pytest.skip(
            f"this nvcc cannot target sm_{arch} (CUDA 13 dropped it); "
            "test_nvrtc_cuda12_compiles_name_expressions covers it with CUDA 12's NVRTC"
        )
    obj = tmp_path / f"involution_sm{arch}.o"
    cmd = [
        NVCC,
        "-std=c++17",
        f"-arch=sm_{arch}",
        *DEFINES,
        "-Werror",
        "all-warnings",
        "-Xcompiler",
        "-Wall,-Wextra,-Werror",
        "-I",
        str(KERNELS),
        "-c",
        str(instantiations_cu),
        "-o",
        str(obj),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0 and not result.stderr.strip(), (
        f"nvcc for sm_{arch} failed or warned:\n{' '.join(cmd)}\n{result.stderr}"
    )
    symbols = obj.read_bytes()
    missing = [n for n in _all_name_expressions() if _mangled_prefix(n).encode() not in symbols]
    assert not missing, f"sm_{arch} object lacks kernels {missing}"


def _nvrtc12() -> tuple[Path, Path] | None:
    """libnvrtc.so.12 and the CUDA 12 headers from the nvidia-cuda-*-cu12 wheels, if present."""
    try:
        spec = importlib.util.find_spec("nvidia")
    except ImportError:
        return None
    if spec is None:
        return None
    for root in spec.submodule_search_locations or ():
        lib = Path(root) / "cuda_nvrtc" / "lib" / "libnvrtc.so.12"
        include = Path(root) / "cuda_runtime" / "include"
        if lib.is_file() and (include / "cuda_fp16.h").is_file():
            return lib, include
    return None


def _nvrtc_compile(lib: ctypes.CDLL, source: bytes, names: list[str], options: list[str]) -> dict:
    """What cupy.RawModule does with NVRTC: compile with name expressions, map them to symbols."""
    lib.nvrtcGetErrorString.restype = ctypes.c_char_p
    prog = ctypes.c_void_p()

    def check(status: int, step: str) -> None:
        assert status == 0, f"{step}: {lib.nvrtcGetErrorString(status).decode()}"

    check(
        lib.nvrtcCreateProgram(ctypes.byref(prog), source, b"involution.cu", 0, None, None),
        "create",
    )
    try:
        for name in names:
            check(lib.nvrtcAddNameExpression(prog, name.encode()), "add name")
        encoded = [o.encode() for o in options]
        status = lib.nvrtcCompileProgram(
            prog, len(encoded), (ctypes.c_char_p * len(encoded))(*encoded)
        )
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(prog, log)
        assert status == 0, f"NVRTC {options}: {log.value.decode()}"
        # NVRTC 12.9 warns that archs before 75 are deprecated; anything else is ours.
        ours = [
            line
            for line in log.value.decode().splitlines()
            if line.strip() and "are deprecated" not in line
        ]
        assert not ours, f"NVRTC {options} warned:\n" + "\n".join(ours)
        lowered = {}
        for name in names:
            symbol = ctypes.c_char_p()
            check(lib.nvrtcGetLoweredName(prog, name.encode(), ctypes.byref(symbol)), "lowered")
            lowered[name] = symbol.value.decode()
        return lowered
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))


def test_nvrtc_cuda12_compiles_name_expressions() -> None:
    found = _nvrtc12()
    if found is None:
        pytest.skip(
            "CUDA 12 NVRTC not installed (pip install nvidia-cuda-nvrtc-cu12 "
            "nvidia-cuda-runtime-cu12)"
        )
    lib_path, include = found
    lib = ctypes.CDLL(str(lib_path))
    source = (KERNELS / "involution.cu").read_bytes()
    for arch in ARCHS:
        for dtype in cupy_backend.CUDA_TYPES:
            names = cupy_backend.name_expressions(dtype)
            options = [*cupy_backend.NVRTC_OPTIONS, f"-arch=sm_{arch}", f"-I{include}", "-ftz=true"]
            lowered = _nvrtc_compile(lib, source, names, options)
            for name, symbol in lowered.items():
                assert symbol.startswith(_mangled_prefix(name)), (name, symbol)


# ---------------------------------------------------------------------------------------------
# host build through the shim


@dataclass(frozen=True)
class Case:
    b: int
    c: int
    g: int
    h: int
    w: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]

    def out_size(self) -> tuple[int, int]:
        return tuple(
            (n + 2 * p - d * (k - 1) - 1) // s + 1
            for n, k, s, p, d in zip(
                (self.h, self.w), self.kernel, self.stride, self.padding, self.dilation, strict=True
            )
        )

    def geometry(self) -> Geometry:
        return geometry_of(self.kernel, self.stride, self.padding, self.dilation)

    def shape_args(self) -> np.ndarray:
        ho, wo = self.out_size()
        return np.array(
            [self.b, self.c, self.h, self.w, self.g, *self.kernel, ho, wo, *self.stride,
             *self.padding, *self.dilation],
            dtype=np.int64,
        )  # fmt: skip


def _random_case(rng: np.random.Generator) -> Case:
    c = int(rng.choice([4, 16, 32]))
    g = int(rng.choice([1, max(1, c // 16), c // 4, c]))
    kernel = tuple(int(k) for k in rng.choice([1, 3, 5, 7], size=2))
    if rng.random() < 0.5:
        kernel = (kernel[0], kernel[0])
    stride = tuple(int(s) for s in rng.integers(1, 4, size=2))
    dilation = tuple(int(d) for d in rng.integers(1, 3, size=2))
    padding, size = [], []
    for k, d in zip(kernel, dilation, strict=True):
        span = d * (k - 1) + 1
        p = int(rng.integers(0, span // 2 + 2))
        padding.append(p)
        size.append(int(rng.integers(max(1, span - 2 * p), max(1, span - 2 * p) + 11)))
    b = int(rng.integers(1, 3))
    return Case(b, c, g, size[0], size[1], kernel, stride, tuple(padding), dilation)


EDGE_CASES = [
    Case(1, 4, 1, 1, 1, (1, 1), (1, 1), (0, 0), (1, 1)),  # 1x1 image, 1x1 kernel
    Case(2, 8, 8, 6, 7, (7, 7), (1, 1), (3, 3), (1, 1)),  # RedNet geometry, G = C
    Case(1, 16, 1, 5, 4, (7, 3), (3, 2), (6, 1), (2, 1)),  # taps mostly in the padding
    Case(2, 32, 2, 9, 10, (3, 5), (2, 3), (1, 2), (2, 2)),  # non-square everything
]
SEEDS = range(10)


@pytest.fixture(scope="module")
def host_lib(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    if GXX is None:
        pytest.skip("g++ is not on PATH")
    out = tmp_path_factory.mktemp("host") / "libinvolution_host.so"
    cmd = [
        GXX, "-std=c++17", "-O2", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-shared", "-fPIC",
        "-I", str(KERNELS), str(KERNELS / "host_test.cpp"), "-o", str(out),
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
    lib = ctypes.CDLL(str(out))
    for kernel in cupy_backend.KERNELS:
        for suffix in ("f32", "f64"):
            fn = getattr(lib, f"{kernel}_{suffix}")
            fn.restype = None
            fn.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_uint, ctypes.c_uint]
    return lib


def _run_host(
    lib: ctypes.CDLL,
    kernel: str,
    a: np.ndarray,
    b: np.ndarray,
    out_shape: tuple[int, ...],
    case: Case,
    launch: tuple[int, int],
) -> np.ndarray:
    suffix = {np.float32: "f32", np.float64: "f64"}[a.dtype.type]
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    out = np.full(out_shape, np.nan, dtype=a.dtype)  # every element must be written
    shape = case.shape_args()
    getattr(lib, f"{kernel}_{suffix}")(
        a.ctypes.data, b.ctypes.data, out.ctypes.data, shape.ctypes.data, *launch
    )
    return out


def _reference(case: Case, x: torch.Tensor, w: torch.Tensor, gy: torch.Tensor) -> tuple:
    x, w = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
    y = involution_reference(x, w, case.geometry())
    (y * gy).sum().backward()
    return y.detach(), x.grad, w.grad


def _check_case(lib: ctypes.CDLL, case: Case, dtype: type, seed: int) -> None:
    rng = np.random.default_rng(seed)
    ho, wo = case.out_size()
    taps = case.kernel[0] * case.kernel[1]
    x = rng.standard_normal((case.b, case.c, case.h, case.w))
    w = rng.standard_normal((case.b, case.g, taps, ho, wo))
    gy = rng.standard_normal((case.b, case.c, ho, wo))
    y_ref, gx_ref, gw_ref = (
        t.numpy()
        for t in _reference(case, torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(gy))
    )
    # Small, odd launches so that grid-stride loops run several rounds or leave threads idle.
    block = int(rng.choice([1, 32, 96, 256]))
    launch = (int(rng.integers(1, 6)), block)
    x, w, gy = (a.astype(dtype) for a in (x, w, gy))
    tol = {np.float32: 2e-5, np.float64: 1e-12}[dtype]

    def close(name: str, got: np.ndarray, want: np.ndarray, terms: int) -> None:
        scale = np.sqrt(terms) * tol
        np.testing.assert_allclose(got, want, rtol=scale, atol=scale, err_msg=f"{name} {case}")

    run: Callable[..., np.ndarray] = functools.partial(_run_host, lib, case=case, launch=launch)
    close("forward", run("involution_forward", x, w, y_ref.shape), y_ref, taps)
    close("grad_input", run("involution_backward_input", gy, w, gx_ref.shape), gx_ref, taps)
    close("grad_weight", run("involution_backward_weight", gy, x, gw_ref.shape), gw_ref,
          case.c // case.g)  # fmt: skip


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("seed", SEEDS)
def test_host_kernels_match_reference_random(host_lib: ctypes.CDLL, seed: int, dtype: type) -> None:
    rng = np.random.default_rng(1000 + seed)
    for i in range(3):
        _check_case(host_lib, _random_case(rng), dtype, seed * 10 + i)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("case", EDGE_CASES, ids=lambda c: f"k{c.kernel}s{c.stride}p{c.padding}")
def test_host_kernels_match_reference_edges(host_lib: ctypes.CDLL, case: Case, dtype: type) -> None:
    _check_case(host_lib, case, dtype, seed=7)


# Runs every kernel on many random geometries with buffers of exactly the right size, so that
# AddressSanitizer reports any read or write outside them (and UBSan any overflow).
SANITIZER_MAIN = """
#include <algorithm>
#include <cstdio>
#include <random>
#include <vector>
#include "host_test.cpp"

int main() {
  std::mt19937 rng(1);
  auto pick = [&](long long lo, long long hi) {
    return std::uniform_int_distribution<long long>(lo, hi)(rng);
  };
  for (int it = 0; it < 300; ++it) {
    const long long kh = 2 * pick(0, 3) + 1, kw = pick(1, 7), sh = pick(1, 3), sw = pick(1, 3);
    const long long dh = pick(1, 2), dw = pick(1, 2);
    const long long ph = pick(0, dh * (kh - 1) / 2 + 2), pw = pick(0, dw * (kw - 1) / 2 + 2);
    const long long H = std::max(1LL, dh * (kh - 1) + 1 - 2 * ph) + pick(0, 9);
    const long long W = std::max(1LL, dw * (kw - 1) + 1 - 2 * pw) + pick(0, 9);
    const long long B = pick(1, 2), C = 8, G = std::vector<long long>{1, 2, 8}[pick(0, 2)];
    const long long Ho = (H + 2 * ph - dh * (kh - 1) - 1) / sh + 1;
    const long long Wo = (W + 2 * pw - dw * (kw - 1) - 1) / sw + 1;
    const long long s[15] = {B, C, H, W, G, kh, kw, Ho, Wo, sh, sw, ph, pw, dh, dw};
    std::vector<float> x(B * C * H * W, 1.f), w(B * G * kh * kw * Ho * Wo, 1.f);
    std::vector<float> y(B * C * Ho * Wo), gx(x.size()), gw(w.size());
    const unsigned grid = pick(1, 5), block = pick(1, 64);
    involution_forward_f32(x.data(), w.data(), y.data(), s, grid, block);
    involution_backward_input_f32(y.data(), w.data(), gx.data(), s, grid, block);
    involution_backward_weight_f32(y.data(), x.data(), gw.data(), s, grid, block);
  }
  std::puts("ok");
}
"""


@pytest.mark.skipif(GXX is None, reason="g++ is not on PATH")
def test_host_kernels_stay_in_bounds_under_sanitizers(tmp_path: Path) -> None:
    main = tmp_path / "sanitize.cpp"
    main.write_text(SANITIZER_MAIN)
    exe = tmp_path / "sanitize"
    flags = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
    cmd = [GXX, "-std=c++17", "-O1", "-g", *flags, "-Wall", "-Wextra", "-Werror"]
    build = subprocess.run(
        [*cmd, "-I", str(KERNELS), str(main), "-o", str(exe)], capture_output=True, text=True
    )
    if build.returncode != 0 and "asan" in build.stderr.lower():
        pytest.skip(f"g++ cannot link the sanitizers here: {build.stderr.strip()[:200]}")
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-4000:]


# ---------------------------------------------------------------------------------------------
# real GPU

gpu = pytest.mark.skipif(
    not cupy_backend.is_available(),
    reason="needs a CUDA GPU visible to torch and CuPy (pip install 'invnas[cuda]')",
)
GPU_TOLERANCE = {
    torch.float64: 1e-10,
    torch.float32: 1e-4,
    torch.float16: 2e-2,
    torch.bfloat16: 1.5e-1,
}


def _gpu_case_tensors(case: Case, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    ho, wo = case.out_size()
    taps = case.kernel[0] * case.kernel[1]
    x = torch.randn(case.b, case.c, case.h, case.w, generator=gen, dtype=torch.float64)
    w = torch.randn(case.b, case.g, taps, ho, wo, generator=gen, dtype=torch.float64)
    gy = torch.randn(case.b, case.c, ho, wo, generator=gen, dtype=torch.float64)
    return x, w, gy


def _assert_close(got: torch.Tensor, want: torch.Tensor, tol: float, what: str) -> None:
    scale = want.abs().max().item() + 1.0
    torch.testing.assert_close(got.double().cpu(), want, rtol=tol, atol=tol * scale, msg=what)


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("dtype", list(GPU_TOLERANCE), ids=str)
def test_cupy_backend_matches_reference(dtype: torch.dtype) -> None:
    rng = np.random.default_rng(5)
    for i, case in enumerate([*EDGE_CASES, *(_random_case(rng) for _ in range(4))]):
        x, w, gy = _gpu_case_tensors(case, i)
        y_ref, gx_ref, gw_ref = _reference(case, x, w, gy)
        xc = x.to("cuda", dtype).requires_grad_(True)
        wc = w.to("cuda", dtype).requires_grad_(True)
        y = cupy_backend.involution_cupy(xc, wc, case.geometry())
        assert y.dtype == dtype
        y.backward(gy.to("cuda", dtype))
        tol = GPU_TOLERANCE[dtype]
        _assert_close(y.detach(), y_ref, tol, f"forward {case}")
        _assert_close(xc.grad, gx_ref, tol, f"grad_input {case}")
        _assert_close(wc.grad, gw_ref, tol, f"grad_weight {case}")


@pytest.mark.gpu
@gpu
def test_cupy_backend_non_contiguous_and_autocast() -> None:
    case = EDGE_CASES[3]
    x, w, gy = _gpu_case_tensors(case, 0)
    y_ref, gx_ref, gw_ref = _reference(case, x, w, gy)
    geometry = case.geometry()
    # Non-contiguous views of the same values.
    xt = x.transpose(2, 3).contiguous().to("cuda", torch.float32).transpose(2, 3)
    wt = torch.stack([w, w], dim=-1).to("cuda", torch.float32)[..., 0]
    assert not xt.is_contiguous() and not wt.is_contiguous()
    xt.requires_grad_(True)
    y = cupy_backend.involution_cupy(xt, wt, geometry)
    _assert_close(y.detach(), y_ref, GPU_TOLERANCE[torch.float32], "non-contiguous forward")
    # Autocast: float32 leaves, half compute, float32 gradients back to the leaves.
    xa = x.to("cuda", torch.float32).requires_grad_(True)
    wa = w.to("cuda", torch.float32).requires_grad_(True)
    with torch.autocast("cuda", dtype=torch.float16):
        ya = cupy_backend.involution_cupy(xa, wa, geometry)
    assert ya.dtype == torch.float16
    ya.backward(gy.to("cuda", torch.float16))
    assert xa.grad.dtype == torch.float32 and wa.grad.dtype == torch.float32
    tol = GPU_TOLERANCE[torch.float16]
    _assert_close(ya.detach(), y_ref, tol, "autocast forward")
    _assert_close(xa.grad, gx_ref, tol, "autocast grad_input")
    _assert_close(wa.grad, gw_ref, tol, "autocast grad_weight")


def test_cupy_backend_imports_without_cupy() -> None:
    """The module and ``is_available`` work on machines without CuPy or a GPU."""
    available = cupy_backend.is_available()
    assert isinstance(available, bool)
    if not torch.cuda.is_available():
        assert available is False


# ---------------------------------------------------------------------------------------------
# the backend's Python glue, run on the host kernels through a stand-in for CuPy


class _Stream:
    cuda_stream = 0


class _FakeCuPy:
    """Just the CuPy surface cupy_backend uses; kernels run on the host build of the source."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self.lib = lib
        self.modules: list[dict] = []
        self.launches: list[tuple] = []
        fake = self

        class RawModule:
            def __init__(self, *, code: str, options: tuple, name_expressions: list) -> None:
                fake.modules.append(
                    {"code": code, "options": options, "names": list(name_expressions)}
                )
                self.names = list(name_expressions)

            def get_function(self, name: str) -> Callable[..., None]:
                assert name in self.names
                match = re.fullmatch(r"invnas::(\w+)<(\w+)>", name)
                assert match
                suffix = {"float": "f32", "double": "f64"}[match.group(2)]
                host_fn = getattr(fake.lib, f"{match.group(1)}_{suffix}")

                def launch(grid: tuple, block: tuple, args: tuple) -> None:
                    assert len(args) == 18
                    assert all(type(a) is np.uint64 for a in args[:3])
                    assert all(type(a) is np.int64 for a in args[3:])
                    fake.launches.append((name, grid, block))
                    shape = np.array(args[3:], dtype=np.int64)
                    ptrs = [int(a) for a in args[:3]]
                    host_fn(*ptrs, shape.ctypes.data, min(grid[0], 4), block[0])

                return launch

        class _Context:
            def __init__(self, *args: object) -> None:
                pass

            def __enter__(self) -> None:
                return None

            def __exit__(self, *exc: object) -> None:
                return None

        self.RawModule = RawModule
        self.cuda = type("cuda", (), {"Device": _Context, "ExternalStream": _Context})


def test_backend_glue_with_host_kernels(
    host_lib: ctypes.CDLL, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = _FakeCuPy(host_lib)
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setattr(cupy_backend, "_kernels", {})
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: _Stream())
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    # the host kernels take CPU tensors, which the op would otherwise give to the torch formulas
    monkeypatch.setattr(library, "kernels_for", lambda tensor, kernels: kernels)

    def run(x: torch.Tensor, w: torch.Tensor, geometry: Geometry) -> torch.Tensor:
        return library.involution_with(library.KERNELS_CUPY, x, w, geometry)

    case = EDGE_CASES[3]
    geometry = case.geometry()
    x, w, gy = _gpu_case_tensors(case, 3)
    y_ref, gx_ref, gw_ref = _reference(case, x, w, gy)
    xs = x.transpose(2, 3).contiguous().transpose(2, 3).requires_grad_(True)  # non-contiguous
    ws = w.clone().requires_grad_(True)
    y = run(xs, ws, geometry)
    y.backward(gy)
    torch.testing.assert_close(y.detach(), y_ref)
    torch.testing.assert_close(xs.grad, gx_ref)
    torch.testing.assert_close(ws.grad, gw_ref)
    assert [m["names"] for m in fake.modules] == [cupy_backend.name_expressions(torch.float64)]
    assert fake.modules[0]["options"] == cupy_backend.NVRTC_OPTIONS
    assert fake.modules[0]["code"] == (KERNELS / "involution.cu").read_text()
    assert [n.split("<")[0] for n, _, _ in fake.launches] == [
        f"invnas::{k}" for k in cupy_backend.KERNELS
    ]

    tiny = Case(1, 4, 2, 5, 4, (3, 3), (2, 1), (1, 1), (1, 2))
    xt, wt, _ = (t.requires_grad_(True) for t in _gpu_case_tensors(tiny, 4))
    tiny_geometry = tiny.geometry()
    assert torch.autograd.gradcheck(lambda a, b: run(a, b, tiny_geometry), (xt, wt))

    with pytest.raises(ValueError, match="expected"):
        run(x, w[:, :, 1:], geometry)


def test_backend_dtype_and_device_contract() -> None:
    half, single = torch.zeros(1, dtype=torch.float16), torch.zeros(1)
    assert cupy_backend._compute_dtype(half, half) == torch.float16
    assert cupy_backend._compute_dtype(half, single) == torch.float32
    assert cupy_backend._compute_dtype(single, single.double()) == torch.float64
    with pytest.raises(TypeError, match="unsupported dtype"):
        cupy_backend._compute_dtype(
            torch.zeros(1, dtype=torch.int32), torch.zeros(1, dtype=torch.int32)
        )
    with pytest.raises(ValueError, match="CUDA device"):
        cupy_backend.involution_cupy(
            torch.zeros(1, 4, 3, 3), torch.zeros(1, 1, 1, 3, 3), (1, 1, 1, 1, 0, 0, 1, 1)
        )
