"""SyncBatchStats and to_sync_batch_norm: BN without a group, BN of the global batch over 2 gloo ranks."""

from __future__ import annotations

import copy
import os
import socket
import time
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import Tensor, nn

from stylenorm.errors import ShapeError
from stylenorm.norm import make_norm
from stylenorm.norm.base import Normalization
from stylenorm.norm.distributed import SyncBatchStats, to_sync_batch_norm
from stylenorm.norm.stats import BatchStats
from tests.conftest import randomize_

D = torch.float64
C = 3
SIZES = (3, 5)  # unequal per-rank batch sizes; the global batch is their concatenation
WORLD = len(SIZES)
TIMEOUT_S = 90.0


def _bn_keys() -> list[str]:
    return sorted(nn.BatchNorm2d(C).state_dict())


def _assert_same_state(ours: nn.Module, ref: nn.Module) -> None:
    mine, theirs = ours.state_dict(), ref.state_dict()
    assert sorted(mine) == sorted(theirs)
    for key, value in theirs.items():
        torch.testing.assert_close(mine[key], value, rtol=0, atol=1e-12, msg=key)


# ------------------------------------------------------------------- no process group: exactly BN


@pytest.mark.parametrize("momentum", [0.1, None])
def test_without_group_equals_batch_and_batchnorm2d(momentum: float | None) -> None:
    assert not dist.is_initialized()
    ref = randomize_(nn.BatchNorm2d(C, momentum=momentum).double())
    ours = make_norm("sync_batch", C, momentum=momentum).double()
    plain = make_norm("batch", C, momentum=momentum).double()
    assert type(ours.stats) is SyncBatchStats
    assert sorted(ours.state_dict()) == _bn_keys() == sorted(plain.state_dict())
    ours.load_state_dict(ref.state_dict())
    plain.load_state_dict(ref.state_dict())
    for _ in range(3):
        x = torch.randn(4, C, 5, 6, dtype=D) * 2 + 1
        want = ref(x)
        torch.testing.assert_close(ours(x), want, rtol=0, atol=1e-12)
        torch.testing.assert_close(plain(x), want, rtol=0, atol=1e-12)
    _assert_same_state(ours, ref)
    assert int(ours.num_batches_tracked) == 3
    for m in (ours, plain, ref):
        m.eval()
    x = torch.randn(2, C, 3, 3, dtype=D)
    torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=1e-12)
    torch.testing.assert_close(plain(x), ref(x), rtol=0, atol=1e-12)
    _assert_same_state(ours, ref)  # eval left the buffers alone


def test_without_group_gradients_and_modulations_equal_batch_stats() -> None:
    sync, plain = SyncBatchStats(C).double(), BatchStats(C).double()
    x = torch.randn(4, C, 3, 3, dtype=D)
    for scale, shift in [
        (None, None),
        (torch.rand(4, C, dtype=D), torch.randn(4, C, dtype=D)),
        (torch.rand(4, C, 3, 3, dtype=D), None),
    ]:
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        ya, yb = sync(xa, scale, shift), plain(xb, scale, shift)
        torch.testing.assert_close(ya, yb, rtol=0, atol=1e-12)
        ya.square().sum().backward()
        yb.square().sum().backward()
        torch.testing.assert_close(xa.grad, xb.grad, rtol=0, atol=1e-12)
    _assert_same_state(sync, plain)


# ------------------------------------------------------------------------------ to_sync_batch_norm


def _small_model() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.InstanceNorm2d(4, affine=True),
        make_norm("batch", 4),
        make_norm("group:2", 4),
    )


def test_to_sync_batch_norm_converts_shares_and_keeps_outputs() -> None:
    model = randomize_(_small_model()).double()
    bn, inorm, ours = model[1], model[3], model[4]
    ours_buffers = (ours.running_mean, ours.running_var, ours.num_batches_tracked)
    keys = sorted(model.state_dict())
    before = copy.deepcopy(model)
    params = [id(p) for p in model.parameters()]

    converted = to_sync_batch_norm(model)
    assert converted is model  # the root is not a BN: converted in place
    new_bn = converted[1]
    assert isinstance(new_bn, Normalization) and type(new_bn.stats) is SyncBatchStats
    assert new_bn.weight is bn.weight and new_bn.bias is bn.bias
    assert new_bn.running_mean is bn.running_mean and new_bn.running_var is bn.running_var
    assert new_bn.num_batches_tracked is bn.num_batches_tracked
    assert (new_bn.eps, new_bn.momentum) == (bn.eps, bn.momentum)
    assert converted[3] is inorm  # instance norm untouched
    assert converted[4] is ours and type(ours.stats) is SyncBatchStats
    assert (ours.running_mean, ours.running_var, ours.num_batches_tracked) == ours_buffers  # same objects
    assert type(converted[5].stats).__name__ == "GroupStats"
    assert [id(p) for p in converted.parameters()] == params
    assert sorted(converted.state_dict()) == keys

    for _ in range(2):  # train: outputs and running buffers as before conversion
        x = torch.randn(3, 3, 5, 5, dtype=D)
        torch.testing.assert_close(converted(x), before(x), rtol=0, atol=1e-12)
    _assert_same_state(converted, before)
    converted.eval(), before.eval()
    x = torch.randn(2, 3, 5, 5, dtype=D)
    torch.testing.assert_close(converted(x), before(x), rtol=0, atol=1e-12)


def test_to_sync_batch_norm_root_mode_and_skipped_kinds() -> None:
    bn = randomize_(nn.BatchNorm2d(C, eps=1e-3, momentum=None, affine=True)).eval()
    new = to_sync_batch_norm(bn)
    assert new is not bn and type(new.stats) is SyncBatchStats
    assert not new.training and not new.stats.training and not new.modulation.training
    assert new.weight is bn.weight and new.running_var is bn.running_var
    assert (new.eps, new.momentum) == (1e-3, None)
    plain = nn.BatchNorm2d(C, affine=False, track_running_stats=False)
    new_plain = to_sync_batch_norm(plain)
    assert new_plain.weight is None and new_plain.bias is None and new_plain.running_mean is None
    x = torch.randn(2, C, 4, 4)
    torch.testing.assert_close(new_plain(x), plain(x))
    for keep in (nn.BatchNorm1d(C), nn.BatchNorm3d(C), nn.SyncBatchNorm(C), make_norm("sync_batch", C)):
        assert to_sync_batch_norm(keep) is keep
    already = make_norm("sync_batch", C)
    stats = already.stats
    assert to_sync_batch_norm(already).stats is stats


def test_to_sync_batch_norm_on_resnet18() -> None:
    torchvision = pytest.importorskip("torchvision")
    model = torchvision.models.resnet18(weights=None)
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert n_bn == 20
    with torch.no_grad():  # non-trivial buffers and affines, so a lost buffer shows in the output
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    model.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        want = model(x)
    keys, params = sorted(model.state_dict()), [id(p) for p in model.parameters()]
    converted = to_sync_batch_norm(model)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in converted.modules())
    assert sum(type(m) is SyncBatchStats for m in converted.modules()) == n_bn
    assert not any(m.training for m in converted.modules())
    assert sorted(converted.state_dict()) == keys
    assert [id(p) for p in converted.parameters()] == params
    with torch.no_grad():
        torch.testing.assert_close(converted(x), want, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------- 2 gloo processes on CPU


def _global_data() -> dict[str, Tensor]:
    g = torch.Generator().manual_seed(1234)
    n = sum(SIZES)

    def rnd(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=g, dtype=D)

    return {
        "x1": rnd(n, C, 4, 5) * 2 + 1,
        "x2": rnd(n, C, 4, 5) * 0.5 - 2,
        "x3": rnd(n, C, 4, 5) + 3,
        "w": rnd(n, C, 4, 5),
        "weight": torch.rand(C, generator=g, dtype=D) + 0.5,
        "bias": rnd(C),
        "scale_nc": torch.rand(n, C, generator=g, dtype=D) + 0.5,
        "shift_nc": rnd(n, C),
        "scale_px": torch.rand(n, C, 4, 5, generator=g, dtype=D) + 0.5,
        "mx": rnd(n, 3, 6, 6),
        "mw": rnd(n, 4, 6, 6),
    }


def _part(t: Tensor, rank: int) -> Tensor:
    start = sum(SIZES[:rank])
    return t[start : start + SIZES[rank]]


def _seeded_model() -> nn.Sequential:
    torch.manual_seed(7)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        make_norm("sync_batch", 4),
        make_norm("batch", 4, momentum=None),
        nn.InstanceNorm2d(4),
    )
    return randomize_(model).double()


def _run_rank(rank: int) -> dict[str, Any]:
    """Every check's raw results on one rank (the parent compares them with single-process BN)."""
    data = _global_data()
    out: dict[str, Any] = {}

    # a layer from the registry: forward, input and affine gradients, running stats over 2 steps
    layer = make_norm("sync_batch", C).double()
    with torch.no_grad():
        layer.weight.copy_(data["weight"])
        layer.bias.copy_(data["bias"])
    x = _part(data["x1"], rank).clone().requires_grad_()
    y = layer(x)
    (y * _part(data["w"], rank)).sum().backward()
    out.update(y=y.detach(), gx=x.grad, gweight=layer.weight.grad, gbias=layer.bias.grad)
    layer(_part(data["x2"], rank))
    out["state"] = {k: v.clone() for k, v in layer.state_dict().items()}
    layer.eval()  # eval never syncs: running stats on this rank's part
    out["y_eval"] = layer(_part(data["x3"], rank)).detach()

    # cumulative running average (momentum=None) over 3 steps
    cum = SyncBatchStats(C, momentum=None).double()
    for key in ("x1", "x2", "x3"):
        cum(_part(data[key], rank))
    out["cum"] = {k: v.clone() for k, v in cum.state_dict().items()}

    # per-sample (N, C) and per-pixel (N, C, H, W) modulations, with their gradients
    stats = SyncBatchStats(C, track_running_stats=False).double()
    for name, scale_key, shift_key in (("nc", "scale_nc", "shift_nc"), ("px", "scale_px", None)):
        xm = _part(data["x1"], rank).clone().requires_grad_()
        scale = _part(data[scale_key], rank).clone().requires_grad_()
        shift = None if shift_key is None else _part(data[shift_key], rank)
        ym = stats(xm, scale, shift)
        (ym * _part(data["w"], rank)).sum().backward()
        out[f"y_{name}"], out[f"gx_{name}"], out[f"gscale_{name}"] = ym.detach(), xm.grad, scale.grad

    # an empty part on rank 0: rank 1 alone holds the global batch
    lone = SyncBatchStats(C).double()
    full = data["x1"][: SIZES[0] + SIZES[1]]
    out["y_lone"] = lone(full[:0] if rank == 0 else full).detach()
    out["lone_state"] = {k: v.clone() for k, v in lone.state_dict().items()}

    # one value per channel over all processes: both ranks raise
    try:
        SyncBatchStats(C).double()(torch.ones(1 - rank, C, 1, 1, dtype=D))
    except ShapeError as e:
        out["one_error"] = str(e)

    # a model with torch BN, a sync layer and a stylenorm batch layer, converted
    model = to_sync_batch_norm(_seeded_model())
    out["model_types"] = [type(m.stats).__name__ for m in model if isinstance(m, Normalization)]
    mx = _part(data["mx"], rank).clone().requires_grad_()
    my = model(mx)
    (my * _part(data["mw"], rank)).sum().backward()
    model(_part(data["mx"], rank) * 0.5 + 1)
    out.update(my=my.detach(), gmx=mx.grad, mgrads=[p.grad for p in model.parameters()])
    out["mstate"] = {k: v.clone() for k, v in model.state_dict().items()}
    return out


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD, timeout=timedelta(seconds=60))
    try:
        path = Path(out_dir) / f"rank{rank}.pt"
        torch.save(_run_rank(rank), path.with_suffix(".tmp"))
        path.with_suffix(".tmp").replace(path)
        # gloo may abort ("terminate called without an active exception") when one rank tears
        # down while the other still talks: leave together
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def gloo(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Run _run_rank on 2 spawned gloo processes once; one result dict per rank."""
    out_dir = tmp_path_factory.mktemp("gloo")
    ctx = mp.spawn(_worker, args=(_free_port(), str(out_dir)), nprocs=WORLD, join=False)
    deadline = time.monotonic() + TIMEOUT_S
    paths = [out_dir / f"rank{r}.pt" for r in range(WORLD)]
    try:
        while not ctx.join(timeout=1):
            if time.monotonic() > deadline:
                pytest.fail(f"gloo workers did not finish within {TIMEOUT_S} s")
    except mp.ProcessExitedException as e:  # killed by a signal, not a Python error in a check
        if not all(p.exists() for p in paths):
            raise
        warnings.warn(f"a gloo worker died after writing its results: {e}", stacklevel=1)
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.kill()
    return [torch.load(p) for p in paths]


def _reference_layer() -> tuple[nn.BatchNorm2d, dict[str, Tensor]]:
    data = _global_data()
    bn = nn.BatchNorm2d(C).double()
    with torch.no_grad():
        bn.weight.copy_(data["weight"])
        bn.bias.copy_(data["bias"])
    return bn, data


def test_gloo_forward_equals_bn_of_global_batch(gloo: list[dict[str, Any]]) -> None:
    bn, data = _reference_layer()
    want = bn(data["x1"]).detach()
    for rank, res in enumerate(gloo):
        torch.testing.assert_close(res["y"], _part(want, rank), rtol=0, atol=1e-12)


def test_gloo_gradients_equal_single_process(gloo: list[dict[str, Any]]) -> None:
    bn, data = _reference_layer()
    x = data["x1"].clone().requires_grad_()
    (bn(x) * data["w"]).sum().backward()
    for rank, res in enumerate(gloo):
        torch.testing.assert_close(res["gx"], _part(x.grad, rank), rtol=0, atol=1e-12)
    torch.testing.assert_close(sum(r["gweight"] for r in gloo), bn.weight.grad, rtol=0, atol=1e-12)
    torch.testing.assert_close(sum(r["gbias"] for r in gloo), bn.bias.grad, rtol=0, atol=1e-12)
    # each rank alone would have a different weight gradient: the sum is not trivially right
    assert not torch.allclose(gloo[0]["gweight"], bn.weight.grad)


def test_gloo_running_stats_and_eval(gloo: list[dict[str, Any]]) -> None:
    bn, data = _reference_layer()
    bn(data["x1"]), bn(data["x2"])
    for res in gloo:
        assert sorted(res["state"]) == _bn_keys()
        for key, value in bn.state_dict().items():
            torch.testing.assert_close(res["state"][key], value, rtol=0, atol=1e-12, msg=key)
    bn.eval()
    want = bn(data["x3"]).detach()
    for rank, res in enumerate(gloo):
        torch.testing.assert_close(res["y_eval"], _part(want, rank), rtol=0, atol=1e-12)


def test_gloo_cumulative_momentum_none(gloo: list[dict[str, Any]]) -> None:
    data = _global_data()
    bn = nn.BatchNorm2d(C, momentum=None, affine=False).double()
    for key in ("x1", "x2", "x3"):
        bn(data[key])
    for res in gloo:
        for key, value in bn.state_dict().items():
            torch.testing.assert_close(res["cum"][key], value, rtol=0, atol=1e-12, msg=key)


@pytest.mark.parametrize("name", ["nc", "px"])
def test_gloo_per_sample_and_per_pixel_modulation(gloo: list[dict[str, Any]], name: str) -> None:
    data = _global_data()
    x = data["x1"].clone().requires_grad_()
    scale = data[f"scale_{name}"].clone().requires_grad_()
    shift = data["shift_nc"] if name == "nc" else None
    y = BatchStats(C, track_running_stats=False).double()(x, scale, shift)
    (y * data["w"]).sum().backward()
    for rank, res in enumerate(gloo):
        torch.testing.assert_close(res[f"y_{name}"], _part(y.detach(), rank), rtol=0, atol=1e-12)
        torch.testing.assert_close(res[f"gx_{name}"], _part(x.grad, rank), rtol=0, atol=1e-12)
        torch.testing.assert_close(res[f"gscale_{name}"], _part(scale.grad, rank), rtol=0, atol=1e-12)


def test_gloo_empty_part_and_single_value_error(gloo: list[dict[str, Any]]) -> None:
    data = _global_data()
    bn = nn.BatchNorm2d(C, affine=False).double()
    want = bn(data["x1"]).detach()
    assert gloo[0]["y_lone"].shape == (0, C, 4, 5)
    torch.testing.assert_close(gloo[1]["y_lone"], want, rtol=0, atol=1e-12)
    for res in gloo:
        for key, value in bn.state_dict().items():
            torch.testing.assert_close(res["lone_state"][key], value, rtol=0, atol=1e-12, msg=key)
        assert "more than one value per channel" in res.get("one_error", "")


def test_gloo_converted_model_equals_single_process(gloo: list[dict[str, Any]]) -> None:
    data = _global_data()
    model = _seeded_model()
    mx = data["mx"].clone().requires_grad_()
    want = model(mx)
    (want * data["mw"]).sum().backward()
    model(data["mx"] * 0.5 + 1)
    for rank, res in enumerate(gloo):
        assert res["model_types"] == ["SyncBatchStats"] * 3
        torch.testing.assert_close(res["my"], _part(want.detach(), rank), rtol=0, atol=1e-12)
        torch.testing.assert_close(res["gmx"], _part(mx.grad, rank), rtol=0, atol=1e-12)
        _assert_same_state_dict(res["mstate"], model.state_dict())
    params = list(model.parameters())  # the same order as the converted model's (shared objects)
    assert len(gloo[0]["mgrads"]) == len(params)
    for i, p in enumerate(params):
        torch.testing.assert_close(sum(r["mgrads"][i] for r in gloo), p.grad, rtol=0, atol=1e-11)


def _assert_same_state_dict(mine: dict[str, Tensor], theirs: dict[str, Tensor]) -> None:
    assert sorted(mine) == sorted(theirs)
    for key, value in theirs.items():
        torch.testing.assert_close(mine[key], value, rtol=0, atol=1e-12, msg=key)
