"""Masked reductions over valid steps, against the same reductions on the valid steps cut out by hand."""

from __future__ import annotations

import torch

from zoo.layers.valid_steps import valid_mask, valid_mean, valid_sum


def test_mask_mean_and_sum_equal_the_unpadded_reductions() -> None:
    torch.manual_seed(0)
    lengths = torch.tensor([4, 1, 3])
    valid = valid_mask(lengths, 5)
    assert valid.shape == (5, 3) and valid.sum(0).tolist() == [4, 1, 3]
    assert torch.equal(valid_mask(lengths, 5, batch_first=True), valid.T)
    x = torch.randn(5, 3, 2, 4)
    rows = torch.cat([x[: int(length), b] for b, length in enumerate(lengths)])
    torch.testing.assert_close(valid_mean(x, valid), rows.mean(0))
    sums = torch.stack([x[: int(length), b].sum(0) for b, length in enumerate(lengths)])
    torch.testing.assert_close(valid_sum(x, valid), sums)
    torch.testing.assert_close(valid_mean(x, None), x.mean((0, 1)))
    torch.testing.assert_close(valid_sum(x, None), x.sum(0))
