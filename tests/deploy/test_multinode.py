"""The torchrun commands of docs/deploy.md, run for real on the CPU (gloo) with tiny images.

The launcher flags are read from the page (its ```bash blocks), so the documented commands are the ones
exercised: the single-node one with --nproc_per_node 2, and the multi-node one as two torchrun
processes on this machine (--nnodes 2, --node_rank 0 and 1, c10d rendezvous on 127.0.0.1), one process
each. The recipe's arguments are the page's flags that matter here (--norm batch: cross-process BN)
plus tiny data and 2 steps; every run must write the model folder, exactly once.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from stylenorm import models
from tests.data.drawing import draw_image, image_folder
from tests.deploy import DEPLOY_DOC, REPO, flag_value, free_port, with_flag

ENTRY = ["-m", "stylenorm.cli", "train"]  # the module torchrun runs: `stylenorm train <recipe> ...`
STEPS = 2


def _documented_torchrun() -> list[list[str]]:
    """Every `torchrun ...` command of the page's bash blocks, continuation lines joined."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", DEPLOY_DOC.read_text(), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip().startswith("torchrun "):
                commands.append(shlex.split(line.split(" #", 1)[0]))
    return commands


def _split(argv: list[str]) -> tuple[list[str], str, list[str]]:
    """(launcher flags, recipe, recipe flags) of a documented `torchrun ... -m stylenorm.cli train R ...`."""
    start = next(i for i in range(len(argv)) if argv[i : i + len(ENTRY)] == ENTRY)
    return argv[1:start], argv[start + len(ENTRY)], argv[start + len(ENTRY) + 1 :]


def _documented(kind: str) -> tuple[list[str], str, list[str]]:
    def nnodes(argv: list[str]) -> bool:
        return any(a == "--nnodes" or a.startswith("--nnodes=") for a in argv)

    commands = _documented_torchrun()
    if kind == "single":
        found = [c for c in commands if "--standalone" in c]
    else:
        found = [c for c in commands if "--standalone" not in c and nnodes(c)]
    assert found, f"docs/deploy.md has no {kind}-node torchrun command"
    launcher, recipe, flags = _split(found[0])
    assert flag_value(flags, "--norm") == "batch", "the documented run shows the cross-process BN conversion"
    return launcher, recipe, flags


def _env() -> dict[str, str]:
    launched = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID")
    env = {k: v for k, v in os.environ.items() if k not in launched}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["CUDA_VISIBLE_DEVICES"] = ""  # gloo on the CPU, even on a GPU machine
    env["OMP_NUM_THREADS"] = "1"
    return env


def _tiny_recipe(tmp_path: Path, recipe: str, out: Path, run_dir: Path) -> list[str]:
    content = tmp_path / "content"
    if not content.exists():
        image_folder(content, 5, size=(40, 40))
        draw_image(tmp_path / "wave.png", 40, 40, 9)
    return [
        recipe, "--content", str(content), "--style", str(tmp_path / "wave.png"), "--out", str(out),
        "--run-dir", str(run_dir), "--steps", str(STEPS), "--batch-size", "2", "--image-size", "32",
        "--encoder", "random", "--norm", "batch", "--workers", "0", "--log-every", "1",
        "--sample-every", str(STEPS), "--device", "cpu",
    ]


def _torchrun(launcher: list[str], recipe_args: list[str]) -> list[str]:
    # torchrun == python -m torch.distributed.run, with this interpreter
    return [sys.executable, "-m", "torch.distributed.run", *launcher, *ENTRY, *recipe_args]


def _check_model(out: Path, processes: int) -> None:
    loaded = models.load(out)
    prov = loaded.card.provenance
    assert prov["processes"] == processes
    assert prov["global_batch_size"] == 2 * processes and prov["images_seen"] == 2 * processes * STEPS
    assert loaded.card.arguments == {"norm": "batch", "output": "sigmoid"}


def test_documented_commands_are_found() -> None:
    single, _, _ = _documented("single")
    multi, recipe, flags = _documented("multi")
    assert "--standalone" in single and int(flag_value(single, "--nproc_per_node")) > 1
    assert flag_value(multi, "--rdzv_backend") == "c10d" and flag_value(multi, "--nnodes") == "2"
    assert flag_value(multi, "--node_rank") == "0" and ":" in flag_value(multi, "--rdzv_endpoint")
    assert recipe in ("fast", "multistyle", "adain") and "--out" in flags


@pytest.mark.slow
def test_single_node_two_processes(tmp_path: Path) -> None:
    launcher, recipe, _ = _documented("single")
    launcher = with_flag(launcher, "--nproc_per_node", "2")
    out = tmp_path / "models" / "single"
    cmd = _torchrun(launcher, _tiny_recipe(tmp_path, recipe, out, tmp_path / "runs"))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=_env(), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("wrote ") == 1  # rank 0 alone writes
    _check_model(out, processes=2)


@pytest.mark.slow
def test_two_nodes_on_one_machine(tmp_path: Path) -> None:
    launcher, recipe, _ = _documented("multi")
    launcher = with_flag(launcher, "--nproc_per_node", "1")
    launcher = with_flag(launcher, "--rdzv_endpoint", f"127.0.0.1:{free_port()}")
    launcher = with_flag(launcher, "--rdzv_id", f"test-{os.getpid()}")
    out = tmp_path / "models" / "two-nodes"  # one machine: the "shared filesystem" the page asks for
    procs = []
    for node in (0, 1):
        node_launcher = with_flag(launcher, "--node_rank", str(node))
        cmd = _torchrun(node_launcher, _tiny_recipe(tmp_path, recipe, out, tmp_path / "runs"))
        log = (tmp_path / f"node{node}.log").open("w")
        procs.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True, env=_env(),
                                       cwd=tmp_path), log))
    outputs = []
    try:
        for proc, log in procs:
            proc.wait(timeout=120)
            log.close()
            outputs.append(Path(log.name).read_text())
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for (proc, _), text in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, text[-3000:]
    assert sum(text.count("wrote ") for text in outputs) == 1  # global rank 0, on either node
    _check_model(out, processes=2)
