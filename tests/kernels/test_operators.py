"""The kernel ops as PyTorch operators (``jellyzoo::*`` via `torch.library`): registration, torch.compile,
meta-device builds and torch.export.

`torch.library.opcheck` checks each operator's schema, fake (meta) implementation and registered autograd
against the real kernels (the host build on CPU); `torch.compile` must trace through the ops without graph
breaks (``fullgraph=True``) and give eager's results, for each op (forward and backward) and for one model per
family at small sizes. The tests compile with the ``aot_eager`` backend: it runs Dynamo's tracing and
AOTAutograd's functionalisation exactly as the default backend does, but skips Inductor's C++ code generation,
which takes 1-2 minutes per model on 2 CPU cores (54 s to 134 s measured for these three models).
"""

from __future__ import annotations

import pytest
import torch

import zoo
from zoo import kernels
from zoo.kernels import host
from zoo.registry import small_inputs

pytestmark = pytest.mark.skipif(host.compiler()[0] is None, reason=f"no host compiler: {host.compiler()[1]}")


@pytest.fixture(autouse=True)
def kernels_build() -> None:
    usable, reason = kernels.cpu_status()
    assert usable, f"a compiler is present, so the kernel sources must build: {reason}"


def _lif_inputs():
    generator = torch.Generator().manual_seed(0)
    current = (torch.randn(6, 2, 3, 4, generator=generator) + 0.3).requires_grad_()
    return current, (torch.rand(3, generator=generator) * 0.5 + 0.5).requires_grad_()


def _spikgru_inputs():
    generator = torch.Generator().manual_seed(1)
    proj = 1.5 * torch.randn(5, 2, 12, generator=generator)
    U = torch.randn(12, 4, generator=generator) / 2
    return [
        x.requires_grad_() for x in (proj, U, torch.rand(4, generator=generator), torch.randn(4, generator=generator))
    ]


def _sparch_inputs():
    generator = torch.Generator().manual_seed(2)
    current = 2.0 + 3.0 * torch.randn(6, 2, 5, generator=generator)

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=generator)

    recurrent = torch.randn(5, 5, generator=generator).fill_diagonal_(0)
    tensors = [current, 0.82 + 0.1 * rand(5), rand(2, 5), rand(2, 5), 0.97 + 0.02 * rand(5), rand(5), 2 * rand(5),
               rand(2, 5), recurrent]  # fmt: skip
    return [x.requires_grad_() for x in tensors]


OPERATOR_CASES = {
    "spike": (torch.ops.jellyzoo.spike_forward, lambda: (torch.randn(4, 5).requires_grad_(), 0.5, 10.0, True)),
    "lif_scan": (torch.ops.jellyzoo.lif_scan_forward, lambda: (*_lif_inputs(), 1.0, False, 10.0, True)),
    "spikgru_scan": (torch.ops.jellyzoo.spikgru_scan_forward, lambda: (*_spikgru_inputs(), 2, True, 0.8, 5.0, True)),
    "sparch_scan": (torch.ops.jellyzoo.sparch_scan_forward, lambda: (*_sparch_inputs(), 1.0, True)),
}


@pytest.mark.parametrize("op", list(OPERATOR_CASES))
def test_operator_registration(op: str) -> None:
    operator, make_args = OPERATOR_CASES[op]
    torch.library.opcheck(
        operator, make_args(), test_utils=("test_schema", "test_autograd_registration", "test_faketensor")
    )


OP_CALLS = {
    "spike": (lambda v: kernels.signed_spike(v, 0.5), lambda: (torch.randn(4, 5).requires_grad_(),)),
    "lif_scan": (lambda c, a: kernels.lif_scan(c, a, 0.9, True), _lif_inputs),
    "spikgru_scan": (lambda *x: kernels.spikgru_scan(*x, 2, True, 0.8, 5.0), _spikgru_inputs),
    "sparch_scan": (
        lambda c, al, u, s, be, a, b, w, v: torch.cat(kernels.sparch_scan(c, al, u, s, be, a, b, w, v)),
        _sparch_inputs,
    ),
}


@pytest.mark.parametrize("op", list(OP_CALLS))
def test_compile_traces_the_op_without_graph_breaks(op: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(kernels.BACKEND_ENV, raising=False)
    call, make_inputs = OP_CALLS[op]
    inputs = make_inputs()
    expected = call(*inputs)
    expected_grads = torch.autograd.grad(expected.sum(), inputs)
    torch._dynamo.reset()
    compiled = torch.compile(call, fullgraph=True, backend="aot_eager")
    got = compiled(*inputs)
    grads = torch.autograd.grad(got.sum(), inputs)
    assert torch.equal(got, expected)
    for g, e in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(g, e)


MODELS = {  # one model per family, small sizes: name -> (overrides, inputs)
    "sparch-radlif": ({"hidden_size": 16, "initial_state": "zeros", "num_hidden_layers": 2},
                      lambda: {"features": torch.randn(2, 8, 700, generator=torch.Generator().manual_seed(0))}),
    "spikgru2plus": ({"hidden_size": 16, "num_layers": 1}, lambda: small_inputs("spikgru2plus")),
    "stereospike": ({}, lambda: small_inputs("stereospike")),
}  # fmt: skip


def _first_tensor(output):
    return output[0] if isinstance(output, tuple) else output


@pytest.mark.parametrize("name", list(MODELS))
def test_compiled_model_equals_eager(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(kernels.BACKEND_ENV, raising=False)
    overrides, make_inputs = MODELS[name]
    torch.manual_seed(0)
    model = zoo.build(name, **overrides).eval()
    inputs = make_inputs()
    with torch.no_grad():
        expected = _first_tensor(model(**inputs))
        torch._dynamo.reset()
        got = _first_tensor(torch.compile(model, fullgraph=True, backend="aot_eager")(**inputs))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_meta_device_build_and_forward() -> None:
    with torch.device("meta"):
        model = zoo.build("sparch-radlif", hidden_size=16, initial_state="zeros")
        scores = _first_tensor(model(torch.empty(2, 8, 700)))
    assert scores.device.type == "meta" and scores.shape == (2, 20)


def test_export_keeps_the_operators() -> None:
    model = zoo.build("sparch-radlif", hidden_size=16, initial_state="zeros").eval()
    features = torch.randn(2, 8, 700, generator=torch.Generator().manual_seed(3))
    exported = torch.export.export(model, (features,))
    targets = {str(node.target) for node in exported.graph.nodes if node.op == "call_function"}
    assert "jellyzoo.sparch_scan_forward.default" in targets
    torch.testing.assert_close(_first_tensor(exported.module()(features)), _first_tensor(model(features)))


def test_host_build_is_cached_on_disk() -> None:
    compiled = host.library("lif_scan.cu", "fast")
    assert compiled.path.is_file() and compiled.path.with_suffix(".json").is_file()
