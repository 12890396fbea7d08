"""benchmarks.raven: one run end to end at tiny sizes writes rows with ratios, decoding counts and the environment."""

from __future__ import annotations

import json

import torch

from benchmarks import raven as bench


def test_padded_lengths_span_the_batch():
    assert bench.padded_lengths(5, 150, 120).tolist() == [150, 142, 135, 128, 120]
    assert bench.padded_lengths(1, 4, 3).tolist() == [4]


def test_counting_decoder_counts_steps_and_passes_results_through():
    class Decoder:
        def init_state(self, memory, memory_valid):
            return "state"

        def step(self, tokens, state):
            return tokens + 1, state

    counter = bench.CountingDecoder(Decoder())
    assert counter.init_state(None, None) == "state"
    for _ in range(3):
        output, _ = counter.step(torch.tensor([1]), "state")
    assert counter.steps == 3 and output.tolist() == [2]


def test_op_counter_counts_computing_operations_only():
    x = torch.randn(4, 6)
    with bench.OpCounter() as counter:
        y = x.view(6, 4).t().transpose(0, 1)  # views
        torch.empty(3)  # allocation
        (y + 1).sum()
    assert counter.count == 2


def test_tiny_run_writes_json_markdown_and_png(tmp_path):
    arguments = ["--quick", "--parts", "encoder", "attention", "decoding", "--batch", "1", "--frames", "3"]
    arguments += ["--utterances", "2", "--decode-frames", "2", "3"]
    arguments += ["--beam", "3", "--warmup", "0", "--repeats", "1", "--decode-repeats", "1", "--out", str(tmp_path)]
    assert bench.main(arguments) == 0
    (report_file,) = tmp_path.glob("raven_cpu_*_quick.json")
    report = json.loads(report_file.read_text())
    environment = report["environment"]
    assert environment["command"].startswith("python -m") and environment["device"] == "cpu"
    assert environment["versions"]["torch"] == torch.__version__.split("+")[0]
    assert report["gemm"]["flops_per_s"] > 0
    rows = report["results"]
    parts = [(r["part"], r.get("mode"), r["structure"]) for r in rows]
    assert parts == [
        (part, mode, structure)
        for part in ("encoder", "attention")
        for mode in bench.MODES
        for structure in bench.STRUCTURES
    ] + [("decoding", None, "batched"), ("decoding", None, "per-utterance loop")]
    for row in rows:
        assert row["median_ms"] > 0 and row["ratio"] > 0 and row["flops"] > 0 and row["floor_ms"] > 0
        assert row["ops"] > 0
        if row["structure"] in ("reference", "per-utterance loop"):
            assert row["ratio"] == 1.0
    encoder_rows = [r for r in rows if r["part"] != "decoding"]
    assert all(r["batch"] == 1 and r["frames"] == 3 and r["lengths"] == [3] for r in encoder_rows)
    assert encoder_rows[0]["input_shapes"] == {"x": [1, 3, 88, 88], "lengths": [1]}
    training = {(r["part"], r["structure"]): r["flops"] for r in encoder_rows if r["mode"] == "training"}
    inference = {(r["part"], r["structure"]): r["flops"] for r in encoder_rows if r["mode"] == "inference"}
    assert all(training[key] > inference[key] for key in training)  # the backward pass is counted
    # the fused attention replaces the original's separate products, masks and softmax: fewer operations
    ops = {(r["part"], r["mode"], r["structure"]): r["ops"] for r in encoder_rows}
    assert ops["attention", "inference", "sdpa"] < ops["attention", "inference", "reference"]
    batched, loop = rows[-2:]
    assert batched["lengths"] == loop["lengths"] == [3, 2]
    # the batched search stops after the longest utterance's frames at the latest, each loop search after its own
    assert 0 < batched["decoder_steps"] <= 3 and batched["decoder_steps"] <= loop["decoder_steps"] <= 3 + 2
    for result in (batched, loop):
        assert all(0 < length <= frames for length, frames in zip(result["hypothesis_lengths"], [3, 2], strict=True))
    assert 0 <= batched["hypotheses_agreeing"] <= 2
    page = report_file.with_suffix(".md").read_text()
    assert page.startswith("# RAVEn benchmark") and "| decoding" not in page and "| per-utterance loop |" in page
    assert report_file.with_suffix(".png").stat().st_size > 0
