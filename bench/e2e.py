"""What users wait for: a photo stylized end to end, and the server under 1, 4 and 16 clients.

Two paths, measured in one run and interleaved so the machine's state is shared:

* **old**: what stylenorm did before the inference path existed: float32, contiguous tensors;
* **new**: :func:`stylenorm.runtime.inference_path` for the device, the server's default
  (``STYLENORM_PRECISION=auto``, ``STYLENORM_MEMORY_FORMAT=auto``): channels_last, and bfloat16
  autocast only on a CPU with native bf16 (float16 on CUDA).

End to end = decode the JPEG → stylize (or synthesize a label map) → encode the JPEG, per shipped
model, at 512² and 1024². Pixel differences new vs old are reported beside the times (the quality
tolerance is tested in tests/test_inference_path.py). The server section starts ``stylenorm serve``
twice (old and new settings) on the shipped models and sends N requests of a 512² JPEG at each
concurrency: throughput, p50 and p95.

    .venv/bin/python bench/e2e.py [--sizes 512,1024] [--repeats 3] [--clients 1,4,16] [--requests 24]
                                  [--device cpu] [--markdown FILE]

Photos: data/open/content/heldout when present (a checkout with the open data), else the demo's
procedural landscape.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import io
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from stylenorm import models
from stylenorm.families import family_of
from stylenorm.imageio import load_image
from stylenorm.inference.stylize import stylize
from stylenorm.inference.synthesize import synthesize
from stylenorm.repository import read_card
from stylenorm.runtime import InferencePath, inference_path, native_bf16, tune_cpu_allocator
from stylenorm.train.engine import hardware_summary

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.serve import Server, load, percentile  # noqa: E402

STYLE_MODELS = ("eight-styles", "adain-open", "wct", "color-transfer")
OLD = InferencePath(None, False)


def photo(size: int) -> bytes:
    """A size × size JPEG of a real photo (or the demo landscape), as a user would upload it."""
    found = sorted((ROOT / "data" / "open" / "content" / "heldout").glob("*.jpg"))
    if found:
        image = Image.open(found[0]).convert("RGB")
    else:
        from stylenorm.demo import landscape

        image = landscape(size, size)
    image = image.resize((size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def end_to_end(
    model: models.LoadedModel, data: bytes, path: InferencePath, device: torch.device
) -> Tensor:
    """Decode, run, encode: the output image (for the pixel comparison) as float32 (1, 3, H, W)."""
    if model.card.architecture == "spade":
        classes = len(model.card.contract["classes"])
        h, w = model.card.contract["size"]
        labels = torch.arange(h * w).reshape(1, h, w) * classes // (h * w)
        with torch.inference_mode(), path.autocast(device):
            out = synthesize(model, labels)
    else:
        content = load_image(io.BytesIO(data)).to(device)
        if path.channels_last:
            content = content.contiguous(memory_format=torch.channels_last)
        styles = model.card.styles[:1]
        out = stylize(model, content, styles, max_untiled_pixels=1 << 40, dtype=path.dtype)
    array = (out[0].float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
    Image.fromarray(array).save(io.BytesIO(), "JPEG", quality=90)
    return out.float().cpu()


def timed(
    model: models.LoadedModel, data: bytes, path: InferencePath, device: torch.device
) -> tuple[float, Tensor]:
    path = family_of(model.card).serving_path(path)  # as the server runs it
    layout = torch.channels_last if path.channels_last else torch.contiguous_format
    model.module.to(memory_format=layout)  # the weights' layout is set once at load, not per request
    start = time.perf_counter()
    out = end_to_end(model, data, path, device)
    return time.perf_counter() - start, out


def run_end_to_end(args: argparse.Namespace, device: torch.device, new: InferencePath) -> list[dict]:
    rows = []
    for name in (*STYLE_MODELS, "scenes"):
        folder = ROOT / "models" / name
        if not (folder / "card.toml").is_file():
            continue
        model = models.load(folder, device=device)
        sizes = args.sizes if name != "scenes" else [model.card.contract["size"][0]]
        for size in sizes:
            data = photo(size)
            timed(model, data, OLD, device)  # warm both paths
            timed(model, data, new, device)
            old_t, new_t = [], []
            for _ in range(args.repeats):  # interleaved: old, new, old, new …
                t, a = timed(model, data, OLD, device)
                old_t.append(t)
                t, b = timed(model, data, new, device)
                new_t.append(t)
            diff = (a - b).abs()
            old_s, new_s = statistics.median(old_t), statistics.median(new_t)
            rows.append({
                "model": name, "family": model.card.architecture, "size": size, "old_s": old_s,
                "new_s": new_s, "ratio": new_s / old_s, "max_diff": float(diff.max()),
                "mean_diff": float(diff.mean()),
            })
            print(f"{name:15s} {size:5d}  old {old_s:6.2f} s  new {new_s:6.2f} s  ×{new_s / old_s:.2f}  "
                  f"max |Δ| {diff.max():.4f}", flush=True)
    return rows


def run_server(args: argparse.Namespace) -> list[dict]:
    """The shipped models served with the old and the new path; N requests of a 512² JPEG."""
    image = photo(512)
    card = read_card(ROOT / "models" / args.server_model)
    style = card.styles[0] if card.styles else None
    old_env = {"STYLENORM_PRECISION": "float32", "STYLENORM_MEMORY_FORMAT": "contiguous"}
    servers = {
        "old": Server(ROOT / "models", 8, 5.0, 256, env=old_env),
        "new": Server(ROOT / "models", 8, 5.0, 256, env={}),
    }
    rows = []
    try:
        for clients in args.clients:
            for label, server in servers.items():
                latencies, errors, wall = asyncio.run(
                    load(server.url, args.server_model, args.requests, clients, [image], style)
                )
                rows.append({
                    "path": label, "clients": clients, "images_per_s": args.requests / wall,
                    "p50_s": percentile(latencies, 50), "p95_s": percentile(latencies, 95), "refused": errors,
                })
                print(f"server {label} {clients:3d} clients: {args.requests / wall:5.2f} img/s  "
                      f"p50 {percentile(latencies, 50):.2f} s  p95 {percentile(latencies, 95):.2f} s  "
                      f"refused {errors}", flush=True)
    finally:
        for server in servers.values():
            server.stop()
    return rows


def markdown(e2e: list[dict], server: list[dict], device: torch.device, new: InferencePath) -> str:
    hw = hardware_summary(device)
    lines = [
        f"End to end (decode → model → encode), {datetime.date.today()}, {hw.get('gpu', hw['cpu'])}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; old = float32 contiguous, "
        f"new = {new.describe()} (native bf16: {native_bf16()}).",
        "",
        "| model | family | size | old (s) | new (s) | new / old | max abs Δ | mean abs Δ |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in e2e:
        lines.append(
            f"| {r['model']} | {r['family']} | {r['size']}² | {r['old_s']:.2f} | {r['new_s']:.2f} | "
            f"{r['ratio']:.2f} | {r['max_diff']:.4f} | {r['mean_diff']:.5f} |"
        )
    if server:
        lines += ["", "| server path | clients | images/s | p50 (s) | p95 (s) | not 200 (503 overloaded) |"]
        lines.append("|---|---|---|---|---|---|")
        for r in server:
            lines.append(
                f"| {r['path']} | {r['clients']} | {r['images_per_s']:.2f} | {r['p50_s']:.2f} | "
                f"{r['p95_s']:.2f} | {r['refused']} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="512,1024", type=lambda s: [int(v) for v in s.split(",")])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--clients", default="1,4,16", type=lambda s: [int(v) for v in s.split(",") if v])
    p.add_argument("--requests", type=int, default=24)
    p.add_argument("--server-model", default="eight-styles")
    p.add_argument("--device", default="cpu")
    p.add_argument("--markdown", type=Path)
    args = p.parse_args(argv)
    tune_cpu_allocator()
    device = torch.device(args.device)
    new = inference_path(device)
    print(f"{platform.machine()}, {hardware_summary(device)}; new path: {new.describe()}", flush=True)
    e2e = run_end_to_end(args, device, new)
    server = run_server(args) if args.clients and device.type == "cpu" else []
    text = markdown(e2e, server, device, new)
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
