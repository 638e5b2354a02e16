"""CUDA paths, run where a GPU is present (``pytest -m cuda``; bench/gpu.py runs them on a lent GPU).

Each compares the GPU result with the CPU's float32 result, so a broken kernel, autocast region or
device move fails here rather than in front of a user. Skipped without CUDA.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stylenorm import models
from stylenorm.inference.stylize import stylize
from stylenorm.norm import make_norm
from stylenorm.runtime import inference_path

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

MODELS = Path(__file__).resolve().parents[1] / "models"


@pytest.mark.parametrize("spec", ["batch", "instance", "group:8", "layer", "batch_renorm", "zca:8"])
def test_norm_layers_on_cuda_match_the_cpu(spec: str) -> None:
    torch.manual_seed(0)
    cpu = make_norm(spec, 32).train()
    gpu = make_norm(spec, 32).train().cuda()
    gpu.load_state_dict(cpu.state_dict())
    x = torch.randn(8, 32, 16, 16)
    torch.testing.assert_close(gpu(x.cuda()).cpu(), cpu(x), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_norms_under_autocast_on_cuda_stay_close(dtype: torch.dtype) -> None:
    norm = make_norm("instance", 64).cuda()
    x = torch.randn(2, 64, 32, 32, device="cuda") * 50 + 10  # large values: statistics in float32
    with torch.autocast("cuda", dtype=dtype):
        out = norm(x.to(dtype))
    torch.testing.assert_close(out.float(), norm(x), atol=0.05, rtol=0.05)


@pytest.mark.parametrize("name", ["eight-styles", "adain-open", "wct", "color-transfer"])
def test_shipped_models_on_the_gpu_path_match_the_cpu(name: str) -> None:
    content = torch.rand(1, 3, 128, 128)
    cpu = models.load(MODELS / name)
    want = stylize(cpu, content, cpu.card.styles[:1])
    gpu = models.load(MODELS / name, device="cuda")
    path = inference_path("cuda")
    gpu.module.to(memory_format=torch.channels_last)
    got = stylize(gpu, content.cuda(), gpu.card.styles[:1], dtype=path.dtype).cpu()
    diff = (got - want).abs()
    assert diff.mean() <= 0.01 and diff.max() <= 0.1, (diff.mean(), diff.max())
