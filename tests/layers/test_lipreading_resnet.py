"""The shared lip-reading trunk with injected activations and pooling (RAVEn-style Swish/max-pool, 1-D stages)."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from zoo.layers.lipreading_resnet import BasicBlock, FramePool, LipReadingResNet18, resnet_stages


def test_block_equals_torchvision_basic_block_on_every_frame() -> None:
    torch.manual_seed(0)
    ours = BasicBlock(8, 16, 2, lambda _channels: nn.ReLU()).eval()
    downsample = nn.Sequential(nn.Conv2d(8, 16, 1, 2, bias=False), nn.BatchNorm2d(16))
    reference = torchvision.models.resnet.BasicBlock(8, 16, 2, downsample).eval()
    with torch.no_grad():
        for parameter in ours.parameters():
            parameter.uniform_(-0.5, 0.5)
        ours.bn1.running_var.uniform_(0.5, 2.0)
    renamed = {"shortcut_conv": "downsample.0", "shortcut_bn": "downsample.1"}
    state = {}
    for key, value in ours.state_dict().items():
        module, _, rest = key.partition(".")
        state[f"{renamed.get(module, module)}.{rest}"] = value
    reference.load_state_dict(state)
    x = torch.randn(3, 2, 8, 9, 9)
    with torch.no_grad():
        expected = torch.stack([reference(frame) for frame in x])
        torch.testing.assert_close(ours(x), expected)


def test_swish_max_pool_trunk_shapes_and_temporal_receptive_field() -> None:
    torch.manual_seed(0)
    trunk = LipReadingResNet18(
        lambda _channels: nn.SiLU(),
        stem_pool=lambda _channels: FramePool("max", 3, 2, 1),
        global_pool=lambda _channels: FramePool("avg", None),
        in_channels=1,
    ).eval()
    frames = torch.randn(1, 6, 1, 88, 88)
    with torch.no_grad():
        features = trunk(frames)
        changed = frames.clone()
        changed[:, 4] += 1.0
        moved = trunk(changed)
    assert features.shape == (6, 1, 512)
    differs = (features - moved).abs().amax(dim=(1, 2)) > 0
    assert differs.tolist() == [False] * 2 + [True] * 4, "frame t sees input frames t-2 .. t+2 only"
    assert all(module.synapses == 0 for module in trunk.modules() if hasattr(module, "synapses"))


def test_frame_pool_and_one_dimensional_stages() -> None:
    x = torch.arange(2 * 1 * 1 * 4 * 4, dtype=torch.float32).view(2, 1, 1, 4, 4)
    pooled = FramePool("max", 2, 2, 0)(x)
    assert pooled.shape == (2, 1, 1, 2, 2) and pooled[1, 0, 0].tolist() == [[21.0, 23.0], [29.0, 31.0]]
    assert FramePool("avg", None)(x).flatten().tolist() == [7.5, 23.5]
    assert FramePool("avg", 3, 2, 1).output_size(44) == 22
    stages = nn.Sequential(*resnet_stages(lambda _channels: nn.SiLU(), dims=1))
    assert stages(torch.randn(1, 2, 64, 40)).shape == (1, 2, 512, 5)
    with pytest.raises(ValueError, match="kind must be 'avg' or 'max'"):
        FramePool("min")
