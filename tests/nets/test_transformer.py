"""The fast style transfer network: published layout, any norm, size-preserving output."""

from __future__ import annotations

import pytest
import torch

from stylenorm.errors import ShapeError
from stylenorm.nets import TransformerNet
from stylenorm.norm import Normalization


def test_keys_and_parameter_count_match_pytorch_examples() -> None:
    net = TransformerNet()
    keys = list(net.state_dict())
    assert len(keys) == 62
    assert keys[:4] == ["conv1.conv2d.weight", "conv1.conv2d.bias", "in1.weight", "in1.bias"]
    assert "res5.in2.bias" in keys and keys[-1] == "deconv3.conv2d.bias"
    assert sum(p.numel() for p in net.parameters()) == 1_679_235


@pytest.mark.parametrize("size", [(32, 32), (33, 50), (7, 9)])
def test_output_has_the_input_size_and_range(size: tuple[int, int]) -> None:
    y = TransformerNet().eval()(torch.rand(2, 3, *size))
    assert y.shape == (2, 3, *size) and y.min() >= 0 and y.max() <= 1


def test_any_norm_spec_and_cin_styles() -> None:
    net = TransformerNet(norm="group:8")
    assert isinstance(net.in1, Normalization) and net.in1.stats.num_groups == 8
    cin = TransformerNet(norm="cin", num_styles=3).eval()
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        for p in cin.parameters():  # distinct styles must give distinct outputs
            p.add_(torch.randn_like(p) * 0.1)
        by_index = cin(x, torch.tensor([2, 0]))
        by_weights = cin(x, torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]))
        other = cin(x, torch.tensor([1, 1]))
    torch.testing.assert_close(by_index, by_weights)
    assert (by_index - other).abs().max() > 1e-4
    with pytest.raises(ShapeError, match="needs a style"):
        cin(x)


def test_linear_output_clamps_only_in_eval_and_bad_input_is_clear() -> None:
    net = TransformerNet(output="linear", pixel_scale=255.0)
    with torch.no_grad():
        net.deconv3.conv2d.bias.fill_(1000.0)
    x = torch.rand(1, 3, 8, 8)
    assert net.train()(x).max() > 1 and net.eval()(x).max() <= 1
    with pytest.raises(ShapeError, match="RGB images"):
        net(torch.rand(1, 1, 8, 8))
    with pytest.raises(ShapeError, match="sigmoid"):
        TransformerNet(output="tanh")
