"""Checkpoints: safetensors only (no pickle), optimizer state round trip, atomic writes, latest/prune."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from stylenorm.train.checkpoint import (
    META_KEY,
    Checkpoint,
    CheckpointError,
    checkpoint_path,
    flatten_optimizer,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    load_latest_intact,
    prune_checkpoints,
    resume_checkpoint,
    save_checkpoint,
    unflatten_optimizer,
)


def _trained() -> tuple[nn.Module, torch.optim.Optimizer]:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 1))
    model[2].bias.requires_grad_(False)  # a parameter without optimizer state
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2, betas=(0.8, 0.95))
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(2, 3, 6, 6)).square().mean().backward()
        opt.step()
    return model, opt


def _continue(model: nn.Module, opt: torch.optim.Optimizer, steps: int = 3) -> list[torch.Tensor]:
    torch.manual_seed(5)
    for _ in range(steps):
        opt.zero_grad()
        model(torch.randn(2, 3, 6, 6)).square().mean().backward()
        opt.step()
    return [p.detach().clone() for p in model.parameters()]


def test_optimizer_state_round_trip_continues_identically() -> None:
    model, opt = _trained()
    tensors, rest = flatten_optimizer(opt.state_dict())
    names = ("step", "exp_avg", "exp_avg_sq")
    assert set(tensors) == {f"optim.state.{i}.{n}" for i in range(3) for n in names}
    json.dumps(rest)  # everything that is not a tensor is plain JSON
    copies = {k: v.clone() for k, v in tensors.items()}  # as read back from a file: no shared storage
    restored = unflatten_optimizer(copies, json.loads(json.dumps(rest)))
    twin = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 1))
    twin.load_state_dict(model.state_dict())
    twin[2].bias.requires_grad_(False)
    twin_opt = torch.optim.Adam([p for p in twin.parameters() if p.requires_grad], lr=1.0)
    twin_opt.load_state_dict(restored)
    assert twin_opt.param_groups[0]["betas"] == (0.8, 0.95) and twin_opt.param_groups[0]["lr"] == 1e-2
    for a, b in zip(_continue(model, opt), _continue(twin, twin_opt), strict=True):
        assert torch.equal(a, b)


def test_save_and_load_a_checkpoint(tmp_path: Path) -> None:
    model, opt = _trained()
    meta = {"step": 7, "python_rng": [[3, [1, 2], None]], "config": {"lr": 1e-3}}
    rng = torch.get_rng_state()
    ckpt = Checkpoint(model.state_dict(), {"net": opt.state_dict()}, {"rng.0.torch": rng}, meta)
    path = save_checkpoint(checkpoint_path(tmp_path / "ck", 7), ckpt)
    assert path.name == "step-00000007.safetensors"
    assert [p.name for p in (tmp_path / "ck").iterdir()] == [path.name]  # no temporary file left behind
    with safe_open(str(path), framework="pt") as f:  # a plain safetensors file: keys + JSON metadata
        keys = set(f.keys())
        assert json.loads(f.metadata()[META_KEY])["step"] == 7
    assert "model.0.weight" in keys and "optim.net.state.0.exp_avg" in keys and "rng.0.torch" in keys
    back = load_checkpoint(path)
    assert back.meta == meta
    assert torch.equal(back.tensors["rng.0.torch"], rng)
    for key, value in model.state_dict().items():
        assert torch.equal(back.model[key], value)
    assert back.optimizers["net"]["param_groups"][0]["betas"] == (0.8, 0.95)


def test_unreadable_and_foreign_files_are_checkpoint_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "none.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(CheckpointError, match="not a readable"):
        load_checkpoint(tmp_path / "junk.safetensors")
    save_file({"w": torch.zeros(2)}, str(tmp_path / "weights.safetensors"))
    with pytest.raises(CheckpointError, match="not a stylenorm training checkpoint"):
        load_checkpoint(tmp_path / "weights.safetensors")


def test_latest_and_prune(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no checkpoint"):
        latest_checkpoint(tmp_path)
    model, opt = _trained()
    for step in (2, 10, 4, 6):
        ckpt = Checkpoint(model.state_dict(), {"net": opt.state_dict()})
        save_checkpoint(checkpoint_path(tmp_path, step), ckpt)
    assert latest_checkpoint(tmp_path).name == "step-00000010.safetensors"
    prune_checkpoints(tmp_path, keep=2)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [6, 10]


def test_a_damaged_checkpoint_is_refused_and_resume_latest_takes_the_newest_intact_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model, opt = _trained()
    for step in (2, 4, 6):
        state = Checkpoint(model.state_dict(), {"net": opt.state_dict()}, meta={"step": step})
        save_checkpoint(checkpoint_path(tmp_path, step), state)
    newest = checkpoint_path(tmp_path, 6)
    data = bytearray(newest.read_bytes())
    data[-3] ^= 0x01  # one bit of one tensor: the file still parses
    newest.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="damaged"):
        load_checkpoint(newest)
    truncated = checkpoint_path(tmp_path, 4)
    truncated.write_bytes(truncated.read_bytes()[:-100])
    with pytest.raises(CheckpointError):
        load_checkpoint(truncated)
    caplog.set_level("WARNING", logger="stylenorm.train.checkpoint")
    path, checkpoint = load_latest_intact(tmp_path)
    assert path == checkpoint_path(tmp_path, 2) and checkpoint.meta["step"] == 2
    assert "step-00000006.safetensors" in caplog.text and "newest intact" in caplog.text
    assert resume_checkpoint("latest", tmp_path)[0] == path
    checkpoint_path(tmp_path, 2).write_bytes(b"\x00" * 10)
    with pytest.raises(CheckpointError, match="no intact checkpoint"):
        load_latest_intact(tmp_path)


def test_the_temporary_file_of_a_killed_write_is_removed(tmp_path: Path) -> None:
    model, opt = _trained()
    save_checkpoint(checkpoint_path(tmp_path, 2), Checkpoint(model.state_dict(), dict(net=opt.state_dict())))
    stale = tmp_path / ".step-00000004.safetensors.abc123.tmp"  # what atomic_write leaves when killed
    stale.write_bytes(b"half a checkpoint")
    assert resume_checkpoint(None, tmp_path) == (None, None)
    assert not stale.exists() and checkpoint_path(tmp_path, 2).is_file()
    stale.write_bytes(b"again")
    prune_checkpoints(tmp_path, keep=3)
    assert not stale.exists()


def test_kill_9_during_a_checkpoint_write_keeps_the_previous_one_and_resume_cleans_up(tmp_path: Path) -> None:
    """A real process killed with SIGKILL while its new checkpoint is half on disk (held at fsync)."""
    script = f"""
import os, sys, time, torch
from torch import nn
from stylenorm.train.checkpoint import Checkpoint, checkpoint_path, save_checkpoint
model = nn.Linear(64, 64)
opt = torch.optim.Adam(model.parameters())
optimizers = dict(net=opt.state_dict())
save_checkpoint(checkpoint_path({str(tmp_path)!r}, 1), Checkpoint(model.state_dict(), optimizers))
def stall(fd):
    print("writing", flush=True)
    time.sleep(60)
os.fsync = stall
save_checkpoint(checkpoint_path({str(tmp_path)!r}, 2), Checkpoint(model.state_dict(), optimizers))
"""
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "writing"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(30)
    assert [p.name for p in tmp_path.glob(".step-*.tmp")]  # the unfinished write is still there
    assert [s for s, _ in list_checkpoints(tmp_path)] == [1]
    path, _ = resume_checkpoint("latest", tmp_path)
    assert path == checkpoint_path(tmp_path, 1) and not list(tmp_path.glob(".step-*.tmp"))
