"""bench/gpu.py, the script prepared for a lent accelerator, runs end to end on the CPU at toy sizes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_gpu_script_runs_on_the_cpu_and_writes_its_tables(tmp_path: Path) -> None:
    command = [
        sys.executable, str(ROOT / "bench" / "gpu.py"), "--device", "cpu", "--size", "64",
        "--train-size", "64", "--batches", "1,2", "--recipes", "fast,cgan", "--repeats", "1",
        "--out", str(tmp_path),
    ]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    record = json.loads((tmp_path / "gpu.json").read_text())
    assert record["tests"] == "not run (no CUDA device)"
    rates = {(r["model"], r["batch"], r["path"]): r["images_per_s"] for r in record["inference"]}
    models = {m for m, _, _ in rates}
    assert {"adain-open", "eight-styles", "scenes"} <= models
    assert all(rate > 0 for rate in rates.values()) and len(rates) == len(models) * 2 * 2
    steps = {r["recipe"]: r["seconds_per_step"] for r in record["training"]}
    assert set(steps) == {"fast", "cgan"} and all(s > 0 for s in steps.values())
    table = (tmp_path / "gpu.md").read_text()
    assert "| adain-open | 2 |" in table and "| cgan |" in table
