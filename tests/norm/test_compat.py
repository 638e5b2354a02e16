"""Every layer under torch.compile, autocast and channels_last, as torch's own layers are."""

from __future__ import annotations

import copy

import pytest
import torch

from tests.norm.cases import CASES, build, call

# torch.compile traces through torch.distributed checks and our own Python; the
# aot_eager backend checks that tracing, functionalization and buffer updates
# agree with eager without paying for C++ code generation on every layer.
COMPILED = sorted(CASES)


@pytest.mark.slow
@pytest.mark.parametrize("spec", COMPILED)
def test_torch_compile_matches_eager_in_train_mode(spec: str) -> None:
    layer, make_cond = build(spec, 4)
    x = torch.randn(2, 4, 6, 6)
    cond = make_cond(x) if make_cond else None
    eager = copy.deepcopy(layer)
    compiled = torch.compile(layer, backend="aot_eager", fullgraph=False)
    for _ in range(2):
        torch.testing.assert_close(call(compiled, x, cond), call(eager, x, cond), rtol=1e-5, atol=1e-5)
    for key, value in eager.state_dict().items():
        torch.testing.assert_close(layer.state_dict()[key], value, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_inductor_compiles_the_fused_instance_path() -> None:
    layer, make_cond = build("cin", 4)
    x = torch.randn(2, 4, 8, 8)
    cond = make_cond(x)
    compiled = torch.compile(layer)
    torch.testing.assert_close(compiled(x, cond), layer(x, cond), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("spec", sorted(CASES))
def test_bfloat16_autocast_runs_and_stays_close(spec: str) -> None:
    layer, make_cond = build(spec, 4)
    x = torch.randn(2, 4, 8, 8)
    cond = make_cond(x) if make_cond else None
    reference = call(copy.deepcopy(layer), x, cond)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = call(layer, x, cond)
    assert y.shape == x.shape and torch.isfinite(y).all()
    torch.testing.assert_close(y.float(), reference, rtol=0.1, atol=0.15)


@pytest.mark.parametrize("spec", sorted(CASES))
def test_channels_last_input_gives_the_same_result(spec: str) -> None:
    layer, make_cond = build(spec, 4)
    layer = layer.double()
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64)
    cond = make_cond(x) if make_cond else None
    expected = call(copy.deepcopy(layer), x, cond)
    got = call(layer, x.to(memory_format=torch.channels_last), cond)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-10)
