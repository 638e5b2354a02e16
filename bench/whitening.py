"""Whitening: Newton–Schulz (the default, SVD-free) against the eigendecomposition, in one run.

Per channel count: instance whitening of (1, C, 64, 64) features, forward and forward+backward, median
milliseconds over repeats, the Newton result's distance to the exact one, and the memory each keeps
for its backward (the distinct tensors autograd saves); then, with a WCT model
(``--model``, optional), the whole cascade on a 512² photo with each method.

    .venv/bin/python bench/whitening.py [--channels 64 256 512] [--model models/wct] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from stylenorm.norm.whitening import InstanceWhitening, whitening_error


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _features(c: int, seed: int = 0) -> torch.Tensor:
    """Correlated, VGG-like (non-negative, skewed) features (1, C, 64, 64)."""
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(c, c, generator=g) / c**0.5 + torch.eye(c)
    x = torch.randn(1, c, 64 * 64, generator=g)
    return torch.relu(mix @ x).reshape(1, c, 64, 64) + 0.01


def saved_megabytes(layer: torch.nn.Module, x: torch.Tensor) -> float:
    """The memory a forward keeps for its backward: the distinct tensors autograd saves, in MB."""
    seen: dict[tuple[int, int], int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        seen[(t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        layer(x.clone().requires_grad_())
    return sum(seen.values()) / 1e6


def layer_rows(channels: list[int], repeats: int) -> list[str]:
    rows = []
    for c in channels:
        x = _features(c)
        newton = InstanceWhitening(c, eps=1e-5, method="newton", iterations=30)
        eigh = InstanceWhitening(c, eps=1e-5, method="eigh")
        exact = eigh(x)
        approx = newton(x)
        distance = float((approx - exact).abs().max())
        error = whitening_error(approx.reshape(1, 1, c, -1))
        cells = []
        for layer in (newton, eigh):
            fwd = _median_ms(lambda layer=layer, x=x: layer(x), repeats)
            xg = x.clone().requires_grad_()
            fb = _median_ms(lambda layer=layer, xg=xg: layer(xg).square().sum().backward(), repeats)
            cells += [fwd, fb]
        memory = [saved_megabytes(layer, x) for layer in (newton, eigh)]
        rows.append(
            f"| {c} | {cells[0]:.1f} | {cells[1]:.1f} | {cells[2]:.1f} | {cells[3]:.1f} | "
            f"{cells[2] / cells[0]:.2f} | {distance:.1e} | {error:.1e} | {memory[0]:.1f} | {memory[1]:.1f} |"
        )
    return rows


def cascade_row(model: str, repeats: int) -> str:
    from stylenorm.models import load

    loaded = load(model)
    net = loaded.module
    g = torch.Generator().manual_seed(1)
    content, style = torch.rand(1, 3, 512, 512, generator=g), torch.rand(1, 3, 512, 512, generator=g)
    times = {}
    outputs = {}
    for method in ("newton", "eigh"):
        net.method = method
        with torch.inference_mode():
            times[method] = _median_ms(lambda: net.stylize(content, [style]), repeats)
            outputs[method] = net.stylize(content, [style])
    net.method = "newton"
    diff = float((outputs["newton"] - outputs["eigh"]).abs().max())
    return (
        f"WCT cascade ({', '.join(net.levels)}) at 512²: newton {times['newton']:.0f} ms, eigh "
        f"{times['eigh']:.0f} ms (eigh/newton {times['eigh'] / times['newton']:.2f}); max |Δ| of the images "
        f"{diff:.1e}."
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--channels", type=int, nargs="+", default=[64, 256, 512])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--model", default=None, help="a wct model folder or name, for the cascade row")
    p.add_argument("--markdown", default=None, help="append the report to this file")
    args = p.parse_args()
    lines = [
        f"Instance whitening of (1, C, 64, 64), median of {args.repeats} (ms), {torch.get_num_threads()} "
        "threads; newton = 30 Newton–Schulz iterations, eigh = torch.linalg.eigh.",
        "",
        "| C | newton fwd | newton fwd+bwd | eigh fwd | eigh fwd+bwd | eigh/newton fwd | max |newton − eigh| "
        "| newton cov − I | newton saved for bwd (MB) | eigh saved for bwd (MB) |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *layer_rows(args.channels, args.repeats),
    ]
    if args.model:
        lines += ["", cascade_row(args.model, max(1, args.repeats // 2))]
    report = "\n".join(lines)
    print(report)
    if args.markdown:
        with open(args.markdown, "a", encoding="utf-8") as f:
            f.write(report + "\n\n")


if __name__ == "__main__":
    main()
