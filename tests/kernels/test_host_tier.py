"""The host tier itself (`zoo.kernels.host`): what it compiles, how strictly it launches, and its builds.

- the signatures g++ compiled equal the ones `zoo.kernels.launch` reads from the sources (names, types, order);
- the stand-in `cuda_fp16.h` / `cuda_bf16.h` convert exactly as PyTorch (round to nearest even), with
  denormals flushed as ``-ftz=true`` does;
- CUDA features the host runtime does not provide fail to compile (so no kernel escapes the tier);
- the strict launcher catches out-of-bounds writes and reads, threads that depend on each other, bad
  arguments and aliased outputs;
- the build that allows FMA contraction really contracts plain expressions, and still gives every op's spikes;
- the ``fast`` build (OpenMP) gives the strict build's results.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from zoo.kernels import host, lif_scan, signed_spike, sparch_scan, spikgru_scan
from zoo.kernels.launch import DTYPE_SUFFIX, KERNEL_DIR, kernel_signatures, launch, strict_launches

SOURCES = sorted(path.name for path in KERNEL_DIR.glob("*.cu"))

pytestmark = pytest.mark.skipif(
    host.compiler()[0] is None, reason=f"the host kernel tier needs a C++ compiler: {host.compiler()[1]}"
)


def build_or_fail(source: str | Path, build: str = "strict") -> host.HostLibrary:
    try:
        return host.library(str(source), build)
    except host.HostBuildError as error:
        pytest.fail(str(error))


@pytest.mark.parametrize("source", SOURCES)
def test_compiled_signatures_equal_the_declared_ones(source: str) -> None:
    compiled = build_or_fail(source).signatures
    declared = {
        f"{kernel}_{DTYPE_SUFFIX[dtype]}": [[parameter.concrete(dtype), parameter.name] for parameter in parameters]
        for kernel, parameters in kernel_signatures(source).items()
        for dtype in DTYPE_SUFFIX
    }
    assert compiled == declared


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("surrogate", [1.0, 0.5])
def test_half_conversions_round_to_nearest_even_with_denormals_flushed(dtype: torch.dtype, surrogate: float) -> None:
    """grad_v = grad_s * surrogate(v) over every bit pattern of the dtype; v sits where the surrogate is exact.

    Halving creates exact ties below the smallest normal (float16 subnormals), which must round to even.
    Float32 denormals (bfloat16's subnormals and their halves) are flushed to zero as on the GPU.
    """
    grad = torch.arange(-(2**15), 2**15, dtype=torch.int32).to(torch.int16).view(dtype)
    gamma, threshold = 4.0, 1.0
    offset = 0.0 if surrogate == 1.0 else 0.5  # 1 / (1 + 4 * 0.5^2) = 0.5
    v = torch.full_like(grad, threshold + offset)
    result = torch.empty_like(grad)
    with strict_launches():
        launch("spike.cu", "spike_backward", threads=grad.numel(), dtype=dtype, grad_spikes=grad, v=v,
               grad_v=result, count=grad.numel(), threshold=threshold, gamma=gamma, signed_spikes=0)  # fmt: skip

    def flush(x: torch.Tensor) -> torch.Tensor:
        return torch.where(x.abs() < torch.finfo(torch.float32).tiny, torch.zeros_like(x).copysign(x), x)

    expected = (flush(flush(grad.float()) * surrogate)).to(dtype)
    nan = expected.isnan()
    assert torch.equal(result.isnan(), nan)
    assert torch.equal(result[~nan].view(torch.int16), expected[~nan].view(torch.int16))


SKELETON = """
#include "dtype_conversion.cuh"
#define PROBE_ENTRY_POINTS(SUFFIX, T)                                                           \\
    extern "C" __global__ void probe_##SUFFIX(const T* x, T* y, long long count) {              \\
        const long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;      \\
        if (i >= count) return;                                                                 \\
        float value = to_float(x[i]);                                                           \\
        {body}                                                                                  \\
        y[i] = from_float<T>(value);                                                            \\
    }
PROBE_ENTRY_POINTS(f32, float)
PROBE_ENTRY_POINTS(f16, __half)
PROBE_ENTRY_POINTS(bf16, __nv_bfloat16)
"""

MISSING_FEATURES = {
    "shared memory": "__shared__ float tile[32]; tile[0] = value; value = tile[0];",
    "barrier": "__syncthreads();",
    "atomics": "atomicAdd(&value, 1.0f);",
    "warp shuffle": "value = __shfl_down_sync(0xffffffffu, value, 1);",
    "warp size": "value += warpSize;",
    "half arithmetic": "value = __half2float(__hadd(x[0], x[0]));",
    "fused intrinsic": "value = __fmaf_rn(value, value, value);",
    "fast math intrinsic": "value = __expf(value);",
}


def write_source(directory: Path, name: str, body: str) -> Path:
    path = directory / f"{name}.cu"
    path.write_text(SKELETON.replace("{body}", body))
    return path


@pytest.mark.parametrize("feature", list(MISSING_FEATURES))
def test_cuda_features_outside_the_host_runtime_do_not_compile(feature, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(host.CACHE_ENV, str(tmp_path / "cache"))
    source = write_source(tmp_path, feature.replace(" ", "_"), MISSING_FEATURES[feature])
    with pytest.raises(host.HostBuildError, match="failed"):
        host.library(str(source), "strict")


def test_the_probe_skeleton_itself_compiles_and_runs(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(host.CACHE_ENV, str(tmp_path / "cache"))
    source = write_source(tmp_path, "plain", "value = expf(value) - 1.0f;")
    x = torch.linspace(-1, 1, 300)
    y = torch.full_like(x, float("nan"))
    host.launch(str(source), "probe_f32", (2,), (256,), [x, y, 300], build="strict", strict=True)
    torch.testing.assert_close(y, torch.expm1(x), rtol=1e-6, atol=1e-7)


FAULTY = """
#define FAULTY_ENTRY_POINTS(SUFFIX, T)                                                                  \\
    extern "C" __global__ void write_past_end_##SUFFIX(const T* x, T* y, long long count) {             \\
        const long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;              \\
        if (i < count) y[i + 1] = x[i];                                                                 \\
    }                                                                                                   \\
    extern "C" __global__ void read_past_end_##SUFFIX(const T* x, T* y, long long count) {              \\
        const long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;              \\
        if (i < count) y[i] = x[i + 1];                                                                 \\
    }                                                                                                   \\
    extern "C" __global__ void prefix_sum_##SUFFIX(const T* x, T* y, long long count) {                 \\
        const long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;              \\
        if (i < count) y[i] = x[i] + (i > 0 ? y[i - 1] : 0.0f);                                         \\
    }                                                                                                   \\
    extern "C" __global__ void copy_##SUFFIX(const T* x, T* y, long long count) {                       \\
        const long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;              \\
        if (i < count) y[i] = x[i];                                                                     \\
    }
FAULTY_ENTRY_POINTS(f32, float)
"""


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> str:
    directory = tmp_path_factory.mktemp("faulty")
    source = directory / "faulty.cu"
    source.write_text(FAULTY)
    build_or_fail(source)
    return str(source)


@pytest.mark.parametrize(
    ("kernel", "message"),
    [
        ("write_past_end", "wrote outside y"),
        ("read_past_end", "y differs in .* between the two thread orders"),
        ("prefix_sum", "y differs in .* between the two thread orders"),
    ],
)
def test_strict_launcher_catches_faulty_kernels(faulty: str, kernel: str, message: str) -> None:
    x, y = torch.arange(300.0), torch.zeros(300)
    with pytest.raises(host.HostLaunchError, match=message):
        host.launch(faulty, f"{kernel}_f32", (2,), (256,), [x, y, 300], build="strict", strict=True)


def test_strict_launcher_checks_arguments_against_the_compiled_signature(faulty: str) -> None:
    x, y = torch.arange(300.0), torch.zeros(300)

    def run(*args):
        host.launch(faulty, "copy_f32", (2,), (256,), list(args), build="strict", strict=True)

    run(x, y, 300)
    assert torch.equal(x, y)
    with pytest.raises(host.HostLaunchError, match="compiled with 3 parameters, launched with 2"):
        run(x, y)
    with pytest.raises(host.HostLaunchError, match=r"x \(const float\*\) got torch.float16"):
        run(x.half(), y, 300)
    with pytest.raises(host.HostLaunchError, match="contiguous"):
        run(torch.zeros(600)[::2], y, 300)
    with pytest.raises(host.HostLaunchError, match=r"count \(long long\) got float"):
        run(x, y, 300.0)
    with pytest.raises(host.HostLaunchError, match="output y overlaps argument x"):
        run(x, x, 300)


FUSABLE = """
#define FUSABLE_ENTRY_POINTS(SUFFIX, T)                                                                 \\
    extern "C" __global__ void plain_##SUFFIX(const T* a, const T* b, const T* c, T* y, long long n) {  \\
        const long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;              \\
        if (i < n) y[i] = a[i] * b[i] + c[i];                                                           \\
    }                                                                                                   \\
    extern "C" __global__ void rounded_##SUFFIX(const T* a, const T* b, const T* c, T* y, long long n) { \\
        const long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;              \\
        if (i < n) y[i] = __fadd_rn(__fmul_rn(a[i], b[i]), c[i]);                                       \\
    }
FUSABLE_ENTRY_POINTS(f32, float)
"""


@pytest.mark.skipif(not host.HAS_FMA, reason="this CPU has no fused multiply-add instructions")
def test_the_fused_build_contracts_plain_expressions_but_not_the_rn_intrinsics(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(host.CACHE_ENV, str(tmp_path / "cache"))
    source = tmp_path / "fusable.cu"
    source.write_text(FUSABLE)
    a = torch.tensor([1 + 2**-12])
    c = -(a * a)  # a*a rounded; the exact product differs from it by 2^-24
    results = {}
    for build in ("strict", "fused"):
        for kernel in ("plain", "rounded"):
            y = torch.empty(1)
            host.launch(str(source), f"{kernel}_f32", (1,), (256,), [a, a, c, y, 1], build=build, strict=True)
            results[build, kernel] = y.item()
    assert results["strict", "plain"] == results["strict", "rounded"] == results["fused", "rounded"] == 0.0
    assert abs(results["fused", "plain"]) == 2**-24


def _op_spikes(device_generator_seed: int) -> dict[str, torch.Tensor]:
    """Spikes of every op on inputs with many membranes near the threshold (float32, CPU)."""
    generator = torch.Generator().manual_seed(device_generator_seed)
    threshold = 1.0
    alpha = torch.rand(4096, generator=generator) * 0.5 + 0.45
    first = torch.rand(4096, generator=generator) * 0.9
    near = torch.stack([first, threshold - alpha * first])[:, None, :]  # u_2 lands on or next to the threshold
    proj = 1.5 * torch.randn(20, 3, 3 * 64, generator=generator)
    U = (torch.rand(3 * 64, 64, generator=generator) * 2 - 1) / 8
    current = 2.0 + 3.0 * torch.randn(30, 4, 50, generator=generator)
    hidden = torch.rand(50, generator=generator)
    states = torch.rand(3, 4, 50, generator=generator)
    recurrent = (torch.rand(50, 50, generator=generator) - 0.5).fill_diagonal_(0.0)
    return {
        "lif_scan": lif_scan(near, alpha, threshold, backend="cpu"),
        "signed_spike": signed_spike(torch.randn(1000, generator=generator), 0.3, backend="cpu"),
        "spikgru_scan": spikgru_scan(proj, U, torch.rand(64, generator=generator), torch.zeros(64), backend="cpu"),
        "sparch_scan": sparch_scan(
            current, 0.82 + 0.14 * hidden, states[0], states[1], beta=0.97 + 0.02 * hidden, a=hidden,
            b=2 * hidden, w0=states[2], recurrent=recurrent, backend="cpu",
        )[0],
    }  # fmt: skip


def test_fused_and_fast_builds_give_the_strict_builds_spikes() -> None:
    with torch.no_grad():
        with strict_launches("strict"):
            strict = _op_spikes(0)
        with strict_launches("fused"):
            fused = _op_spikes(0)
        fast = _op_spikes(0)
    assert strict["lif_scan"][1].sum() > 32, "the inputs must put many membranes exactly on the threshold"
    for op, spikes in strict.items():
        assert torch.equal(fused[op], spikes), f"{op}: the FMA-contracting build changed spikes"
        assert torch.equal(fast[op], spikes), f"{op}: the fast build changed spikes"


def test_fast_build_walks_runs_of_neurons_with_the_strict_builds_results() -> None:
    """The fast build's lif_scan threads own 16 adjacent neurons (a time-major walk); N = 7 * 5 * 3 is no multiple."""
    assert host.NEURONS_PER_THREAD["fast"] > 1 == host.NEURONS_PER_THREAD["strict"]
    generator = torch.Generator().manual_seed(4)
    current = (torch.randn(9, 7, 5, 3, generator=generator) + 0.3).requires_grad_()
    alpha = (torch.rand(5, generator=generator) * 0.5 + 0.5).requires_grad_()
    upstream = torch.randn(9, 7, 5, 3, generator=generator)

    def run():
        spikes = lif_scan(current, alpha, 0.8, True, backend="cpu")
        return (spikes, *torch.autograd.grad(spikes, (current, alpha), upstream))

    with strict_launches("strict"):
        strict = run()
    fast = run()
    assert strict[0].abs().sum() > 0
    for got, expected in zip(fast, strict, strict=True):
        assert torch.equal(got, expected)
