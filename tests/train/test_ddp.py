"""A real 2-process torchrun run on gloo: DDP + SyncBN, sharded data, rank 0 writes the model folder."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from stylenorm import models
from stylenorm.norm import make_norm
from tests.data.drawing import draw_image, image_folder

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_torchrun_two_processes_on_gloo(tmp_path: Path) -> None:
    image_folder(tmp_path / "content", 5, size=(40, 40))
    style = draw_image(tmp_path / "wave.png", 40, 40, 9)
    out = tmp_path / "models" / "ddp"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["CUDA_VISIBLE_DEVICES"] = ""  # gloo on the CPU, even on a GPU machine
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
        "-m", "stylenorm.train.cli", "fast",
        "--content", str(tmp_path / "content"), "--style", str(style), "--out", str(out),
        "--steps", "3", "--batch-size", "2", "--image-size", "32", "--encoder", "random",
        "--norm", "batch",  # batch statistics: the engine makes them cross-process before DDP
        "--workers", "0", "--log-every", "1", "--sample-every", "3", "--device", "cpu",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("wrote ") == 1  # rank 0 alone reports (and writes)
    loaded = models.load(out)
    prov = loaded.card.provenance
    assert prov["processes"] == 2 and prov["global_batch_size"] == 4 and prov["images_seen"] == 12
    assert loaded.card.arguments == {"norm": "batch", "output": "sigmoid"}
    assert type(loaded.module.in1) is type(make_norm("batch", 4))  # saved as plain BN, loads as such
    with torch.no_grad():
        assert loaded.module(torch.rand(1, 3, 20, 20)).shape == (1, 3, 20, 20)
    run = tmp_path / "runs" / "ddp"  # the default run folder, under the working directory
    assert (run / "losses.csv").read_text().count("\n") == 4  # header + 3 steps
    assert len(list((run / "checkpoints").iterdir())) == 1
    assert len(list((run / "samples").iterdir())) == 1


@pytest.mark.slow
def test_torchrun_two_processes_train_a_gan_with_two_ddp_updates(tmp_path: Path) -> None:
    """cgan under torchrun: G and D each wrapped in DDP (the recipe's g_net/d_net), CBN made
    cross-process, n_dis D steps then one G step, exact image accounting across the two ranks."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, colour in (("red", (200, 40, 40)), ("blue", (40, 40, 200))):
        (tmp_path / "classes" / name).mkdir(parents=True)
        for i in range(4):
            pixels = np.clip(np.array(colour) + rng.normal(0, 30, (32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / "classes" / name / f"{i}.png")
    out = tmp_path / "models" / "gan"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["CUDA_VISIBLE_DEVICES"] = ""
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
        "-m", "stylenorm.train.cli", "cgan",
        "--data", str(tmp_path / "classes"), "--out", str(out), "--steps", "2", "--batch-size", "2",
        "--image-size", "32", "--ngf", "4", "--ndf", "8", "--z-dim", "8", "--n-dis", "2", "--ema", "0.5",
        "--workers", "0", "--log-every", "1", "--device", "cpu",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("wrote ") == 1
    loaded = models.load(out)
    prov = loaded.card.provenance
    # 2 steps × n_dis 2 D batches × batch 2 × 2 processes
    assert prov["processes"] == 2 and prov["images_seen"] == 16
    with torch.no_grad():
        image = loaded.module(torch.randn(2, 8), torch.tensor([0, 1]))
    assert image.shape == (2, 3, 32, 32) and torch.isfinite(image).all()
