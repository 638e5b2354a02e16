"""The accelerator script: CUDA tests, inference images/s by batch size, and a training step per recipe.

Prepared to spend a lent GPU's few minutes well, in one run; ``--device cpu`` runs the same code at
toy sizes, which is how CI keeps it working (tests/test_bench_gpu.py).

1. ``pytest -m cuda`` (the CUDA-marked tests; skipped with --device cpu);
2. images/s at ``--size`` (512 on a GPU) of the shipped AdaIN, multistyle and SPADE models for each
   batch size (1, 8, 32), float32 vs the inference path (bf16 autocast + channels_last), and with
   CUDA graphs via ``torch.compile(mode="reduce-overhead")`` when ``--compile``;
3. one training iteration per recipe (fast, multistyle, adain, wct, spade, cgan) on drawn images,
   seconds per step after a warm-up step, with ``--amp bf16`` on CUDA.

Writes ``gpu.md`` (the tables) and ``gpu.json`` under ``--out`` (``$OUT`` on the device machine).

    python bench/gpu.py --out "$OUT"                        # on the GPU: the full run
    python bench/gpu.py --device cpu --size 64 --batches 1,2 --recipes fast,cgan --out /tmp/g
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stylenorm import models  # noqa: E402
from stylenorm.families import family_of  # noqa: E402
from stylenorm.families.base import BatchRow  # noqa: E402
from stylenorm.runtime import InferencePath, inference_path  # noqa: E402
from stylenorm.train import make_config, train  # noqa: E402
from stylenorm.train.engine import hardware_summary  # noqa: E402

INFERENCE_MODELS = ("adain-open", "eight-styles", "scenes")
RECIPES = ("fast", "multistyle", "adain", "wct", "spade", "cgan")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def images_per_s(fn: Any, n_images: int, device: torch.device, repeats: int) -> float:
    """n_images / median seconds of fn() over repeats, after two warm-up calls."""
    for _ in range(2):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return n_images / statistics.median(times)


def forward_for(model: models.LoadedModel, batch: int, size: int, device: torch.device) -> Any:
    """A callable running one batch of the model's own forward (the batcher's for style models)."""
    family = family_of(model.card)
    if model.card.architecture == "spade":
        classes = len(model.card.contract["classes"])
        h, w = model.card.contract["size"]
        module = model.module
        labels = torch.randint(classes, (batch, h, w), device=device)
        segmap = torch.zeros(batch, module.semantic_nc, h, w, device=device)  # + don't-care, edges: 0
        segmap[:, :classes] = torch.nn.functional.one_hot(labels, classes).permute(0, 3, 1, 2).float()
        return lambda: module(segmap)
    contents = torch.rand(batch, 3, size, size, device=device)
    stats = None
    if family.style_statistics:
        style = torch.rand(1, 3, 256, 256, device=device)
        stats = family.style_stats(model, style)
    names = model.card.styles[:1]
    rows = [BatchRow(names=names, mix=[1.0] * len(names), stats=stats) for _ in range(batch)]
    return lambda: family.run_batch(model, contents, rows)


def bench_inference(args: argparse.Namespace, device: torch.device) -> list[dict]:
    new = inference_path(device)
    rows = []
    for name in INFERENCE_MODELS:
        folder = ROOT / "models" / name
        if not (folder / "card.toml").is_file():
            continue
        model = models.load(folder, device=device)
        family = family_of(model.card)
        for batch in args.batches:
            for label, path in (("float32", InferencePath(None, False)), ("path", new)):
                served = family.serving_path(path)
                layout = torch.channels_last if served.channels_last else torch.contiguous_format
                model.module.to(memory_format=layout)
                run = forward_for(model, batch, args.size, device)

                def step(run: Any = run, path: InferencePath = served) -> Any:
                    with torch.inference_mode(), path.autocast(device):
                        return run()

                try:
                    rate = images_per_s(step, batch, device, args.repeats)
                except torch.OutOfMemoryError:
                    rate = float("nan")
                shown = label if label == "float32" else served.describe()
                rows.append({"model": name, "batch": batch, "path": shown, "images_per_s": rate})
                print(f"{name:13s} batch {batch:3d} {rows[-1]['path']:26s} {rate:9.1f} img/s", flush=True)
                if args.compile and device.type == "cuda" and label == "path":
                    compiled = torch.compile(run, mode="reduce-overhead")

                    def compiled_step(fn: Any = compiled, path: InferencePath = served) -> Any:
                        with torch.inference_mode(), path.autocast(device):
                            return fn()

                    rate = images_per_s(compiled_step, batch, device, args.repeats)
                    rows.append({"model": name, "batch": batch, "path": served.describe() + ", compiled",
                                 "images_per_s": rate})
                    print(f"{name:13s} batch {batch:3d} compiled {rate:9.1f} img/s", flush=True)
    return rows


def drawn_images(folder: Path, count: int, size: int, seed: int = 0) -> Path:
    """count random colour-field JPEGs (a stand-in dataset) in folder."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        small = rng.integers(0, 255, (4, 4, 3), dtype=np.uint8)
        Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC).save(folder / f"{i}.jpg")
    return folder


def recipe_settings(recipe: str, data: Path, out: Path, size: int, device: torch.device) -> dict:
    common: dict[str, Any] = {
        "out": out, "run_dir": out.parent / "runs" / out.name, "steps": 3, "batch_size": 4, "workers": 0,
        "log_every": 1, "sample_every": 1000, "checkpoint_every": 1000, "device": str(device),
        "amp": "bf16" if device.type == "cuda" else "none",
    }
    if recipe in ("fast", "multistyle", "adain", "wct"):
        common |= {"content": data / "content", "image_size": size, "encoder": "random"}
    if recipe == "fast":
        return common | {"style": next((data / "style").iterdir())}
    if recipe == "multistyle":
        return common | {"style": [data / "style"]}
    if recipe == "adain":
        return common | {"style": data / "style", "load_size": size}
    if recipe == "wct":
        return common | {"load_size": size}
    if recipe == "spade":
        return common | {"layout": "scenes", "scenes": 16, "crop_size": size, "encoder": "random"}
    return common | {"data": data / "classes", "image_size": 32}


def bench_training(args: argparse.Namespace, device: torch.device) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        drawn_images(root / "content", 12, args.train_size)
        drawn_images(root / "style", 6, args.train_size, seed=1)
        for i, name in enumerate(("a", "b")):
            drawn_images(root / "classes" / name, 8, 32, seed=2 + i)
        for recipe in args.recipes:
            settings = recipe_settings(recipe, root, root / "models" / recipe, args.train_size, device)
            cfg = make_config(recipe, settings)
            result = train(cfg)
            seconds = [r["wall_time_s"] for r in result.history]
            step_s = statistics.median(np.diff(seconds)) if len(seconds) > 2 else float("nan")
            size = getattr(cfg, "image_size", getattr(cfg, "crop_size", args.train_size))
            rows.append({"recipe": recipe, "size": size, "batch": cfg.batch_size, "amp": cfg.amp,
                         "seconds_per_step": float(step_s)})
            print(f"train {recipe:10s} {step_s:.3f} s/step", flush=True)
    return rows


def markdown(info: dict, inference: list[dict], training: list[dict], tests: str) -> str:
    lines = [f"Device: {info['device']}; torch {info['torch']}; {info['date']}.", "", f"CUDA tests: {tests}"]
    lines.append("")
    if inference:
        lines += ["| model | batch | path | images/s |", "|---|---|---|---|"]
        lines += [
            f"| {r['model']} | {r['batch']} | {r['path']} | {r['images_per_s']:.1f} |" for r in inference
        ]
        lines.append("")
    if training:
        lines += ["| recipe | size | batch | amp | s/step |", "|---|---|---|---|---|"]
        lines += [
            f"| {r['recipe']} | {r['size']} | {r['batch']} | {r['amp']} | {r['seconds_per_step']:.3f} |"
            for r in training
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--train-size", type=int, default=256)
    p.add_argument("--batches", default="1,8,32", type=lambda s: [int(v) for v in s.split(",")])
    p.add_argument("--recipes", default=",".join(RECIPES), type=lambda s: [v for v in s.split(",") if v])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--compile", action="store_true", help="also time torch.compile with CUDA graphs")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    tests = "not run (no CUDA device)"
    if device.type == "cuda":
        command = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider"]
        proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        (args.out / "cuda-tests.txt").write_text(proc.stdout[-20000:] + proc.stderr[-5000:])
        tests = (proc.stdout.strip().splitlines() or ["(no output)"])[-1]
        print("CUDA tests:", tests, flush=True)
    hw = hardware_summary(device)
    info = {"device": hw.get("gpu", hw["cpu"]), "torch": torch.__version__,
            "date": time.strftime("%Y-%m-%d")}
    inference = bench_inference(args, device)
    training = bench_training(args, device)
    record = {"info": info, "tests": tests, "inference": inference, "training": training}
    (args.out / "gpu.json").write_text(json.dumps(record, indent=1))
    text = markdown(info, inference, training, tests)
    (args.out / "gpu.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
