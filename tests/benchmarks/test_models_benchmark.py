"""benchmarks.models: input sizes, recording switch, reference options and one quick run end to end."""

from __future__ import annotations

import json

import torch

import zoo
from benchmarks import models as bench
from zoo.layers.spike_record import SpikeRecord
from zoo.registry import SmallConfig, TensorSpec


def _spec() -> TensorSpec:
    axes = {"B": "batch", "T": "steps", "H": "rows", "W": "columns"}
    return TensorSpec(("B", "T", 2, "H", "W"), axes, sizes={"B": 32, "T": 90, "H": 260, "W": 346})


def test_paper_sizes_and_quick_limits():
    spec, small = _spec(), SmallConfig()
    assert bench.input_sizes(spec, small, None, quick=False) == {"B": 32, "T": 90, "H": 260, "W": 346}
    assert bench.input_sizes(spec, small, 8, quick=False)["B"] == 8
    # quick: B <= 2, T <= 2, longer side 346 -> 32 and 260 * 32 / 346 = 24.05 -> 24
    assert bench.input_sizes(spec, small, None, quick=True) == {"B": 2, "T": 2, "H": 24, "W": 32}
    # a size the small config gives explicitly wins (an architecture constraint)
    assert bench.input_sizes(spec, SmallConfig(sizes={"H": 32, "W": 64}), None, quick=True)["H"] == 32


def test_integer_inputs_are_drawn_from_their_value_range():
    """raven-lm's only input is token ids: they come from the spec's value range, at the paper's sizes."""
    spec = zoo.model_info("raven-lm").inputs["tokens"]
    tokens = bench.make_inputs("raven-lm", None, quick=False, device=torch.device("cpu"))["tokens"]
    assert tokens.dtype == torch.int64 and tokens.shape == (spec.sizes["B"], spec.sizes["L"])
    assert int(tokens.min()) >= spec.value_range[0] and int(tokens.max()) <= spec.value_range[1]
    assert len(tokens.unique()) > 100  # spread over the range, not one value


def test_recording_off_makes_records_identities_and_restores_them():
    record = SpikeRecord()
    model = torch.nn.Sequential(record)
    x = torch.tensor([[[1.0, 0.0]]])
    with bench.recording_off(model):
        assert model(x) is x
        assert record.rate is None
    model(x)
    assert record.rate == 0.5


def test_reference_options_come_from_the_registry():
    assert bench.reference_options("sparch-lif") == []
    respike = [name for name in zoo.list_models("respike-*")]
    for name in respike:
        assert "execution" in bench.reference_options(name)


def test_quick_run_writes_json_markdown_and_png(tmp_path):
    code = bench.main(["--models", "sparch-lif", "--quick", "--warmup", "0", "--repeats", "1", "--out", str(tmp_path)])
    assert code == 0
    (report_file,) = tmp_path.glob("models_cpu_*_quick.json")
    report = json.loads(report_file.read_text())
    assert report["environment"]["command"].startswith("python -m")
    assert report["settings"]["quick"] is True
    rows = report["results"]
    assert rows[0]["model"] == "sparch-lif" and rows[0]["variant"] == "selected"
    assert list(rows[0]["input_shapes"].values()) == [[2, 2, 700]]
    for phase in ("inference", "training"):
        assert rows[0][phase]["samples_per_s"] > 0 and rows[0][phase]["peak_bytes"] > 0
        assert rows[0][phase]["p90_ms"] >= rows[0][phase]["p50_ms"]
    assert rows[0]["spike_records"] == 2
    assert "fraction" in rows[0]["recording_overhead"]
    # on the CPU the selected backend is the compiled host kernel or the reference itself: a ratio row only if not
    assert all(row["ratio"]["training"]["time"] > 0 for row in rows[1:])
    assert report_file.with_suffix(".md").read_text().startswith("# Model benchmark")
    assert report_file.with_suffix(".png").stat().st_size > 0
