"""Semantic synthesis speed: the SPADE and CLADE generators as ratios to a straightforward formulation.

Both generators in ADE20K's configuration by default (ngf 64, 151 label
channels = 150 classes + don't-care, no instance channel, ``normal``
upsampling, 256²): ``spade:instance:3x3`` and ``clade:instance``. The
reference is the *same* generator, the same weights and convs, with every
norm written out plainly: ``F.instance_norm`` then, for SPADE, the label map
resized by nearest, the shared conv + ReLU and two separate convs for γ and β,
``x̂·(1 + γ) + β``; for CLADE a one-hot einsum with the (classes, C) tables,
``x̂·γ + β``. Outputs are checked equal first, then ours and the reference are
timed interleaved in one process (median of repeats).

Training: images/s of one SPADE iteration at 128² (G forward, the two-scale
discriminator on fake and real, hinge + feature matching, G backward and Adam;
then D's hinge step), with our generator and with the reference formulation.

    .venv/bin/python bench/synthesis.py [--size 256] [--train-size 128] [--repeats 3] [--markdown FILE]
    .venv/bin/python bench/synthesis.py --size 64 --train-size 64 --ngf 8 --repeats 1   # a quick check
"""

from __future__ import annotations

import argparse
import copy
import datetime
import platform
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stylenorm.losses.gan import feature_matching_loss, hinge_d_loss, hinge_g_loss
from stylenorm.nets.discriminators import MultiscaleDiscriminator
from stylenorm.nets.spade import SPADEGenerator, SPADEResBlock
from stylenorm.runtime import tune_cpu_allocator

NORMS = {"SPADE": "spade:instance:3x3", "CLADE": "clade:instance"}

# ----------------------------------------------------------------------------- the reference formulation


def ref_norm(norm: nn.Module, x: Tensor, segmap: Tensor) -> Tensor:
    """One block norm written out: instance statistics, then SPADE's convs or CLADE's one-hot tables."""
    x_hat = F.instance_norm(x, eps=norm.stats.eps)
    mod = norm.modulation
    seg = F.interpolate(segmap, size=x.shape[2:], mode="nearest")
    if hasattr(mod, "mlp_shared"):  # SPADE
        actv = F.relu(mod.mlp_shared[0](seg))
        return x_hat * (1 + mod.mlp_gamma(actv)) + mod.mlp_beta(actv)
    gamma = torch.einsum("nkhw,kc->nchw", seg, mod.weight)  # CLADE: a one-hot map picks each pixel's row
    beta = torch.einsum("nkhw,kc->nchw", seg, mod.bias)
    return x_hat * gamma + beta


def ref_block(block: SPADEResBlock, x: Tensor, seg: Tensor) -> Tensor:
    shortcut = block.conv_s(ref_norm(block.norm_s, x, seg)) if block.learned_shortcut else x
    dx = block.conv_0(F.leaky_relu(ref_norm(block.norm_0, x, seg), 0.2))
    dx = block.conv_1(F.leaky_relu(ref_norm(block.norm_1, dx, seg), 0.2))
    return shortcut + dx


def ref_generator(g: SPADEGenerator, seg: Tensor) -> Tensor:
    """SPADEGenerator.forward (no VAE, normal/more upsampling) with the written-out norms."""

    def up(t: Tensor) -> Tensor:
        return F.interpolate(t, scale_factor=2, mode="nearest")

    x = g.fc(F.interpolate(seg, size=(g.sh, g.sw), mode="nearest"))
    x = ref_block(g.head_0, x, seg)
    x = ref_block(g.G_middle_0, up(x), seg)
    if g.num_upsampling_layers == "more":
        x = up(x)
    x = ref_block(g.G_middle_1, x, seg)
    for name in ("up_0", "up_1", "up_2", "up_3"):
        x = ref_block(getattr(g, name), up(x), seg)
    return torch.tanh(g.conv_img(F.leaky_relu(x, 0.2)))


class RefGenerator(nn.Module):
    """A generator module that runs :func:`ref_generator` on its own copy of a SPADEGenerator."""

    def __init__(self, g: SPADEGenerator) -> None:
        super().__init__()
        self.g = g

    def forward(self, seg: Tensor) -> Tensor:
        return ref_generator(self.g, seg)


# ----------------------------------------------------------------------------- inputs and timing


def label_map(n: int, label_nc: int, size: int, device: torch.device, seed: int = 0) -> Tensor:
    """A one-hot (n, label_nc, size, size) map of random 16×16-cell regions (a plausible layout)."""
    g = torch.Generator().manual_seed(seed)
    cells = torch.randint(label_nc, (n, 1, 16, 16), generator=g).float()
    ids = F.interpolate(cells, size=(size, size), mode="nearest")[:, 0].long()
    return torch.zeros(n, label_nc, size, size).scatter_(1, ids.unsqueeze(1), 1.0).to(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(fns: dict[str, Callable[[], object]], repeats: int, device: torch.device) -> dict[str, float]:
    """Median seconds of each callable, run round-robin after one warm-up each."""
    for fn in fns.values():
        fn()
    _sync(device)
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def generator(norm: str, args: argparse.Namespace, size: int, device: torch.device) -> SPADEGenerator:
    torch.manual_seed(0)
    g = SPADEGenerator(args.label_nc, ngf=args.ngf, crop_size=size, norm=norm)
    with torch.no_grad():  # away from the init (γ = 1, β = 0 tables; tiny convs), so equality means something
        for name, p in g.named_parameters():
            if "modulation" in name or "mlp" in name:
                p.add_(torch.randn_like(p) * 0.05)
    return g.to(device)


# ----------------------------------------------------------------------------- rows


def inference_rows(args: argparse.Namespace, device: torch.device) -> list[tuple[str, str, float, float]]:
    """(case, size, ours s, reference s) for one forward of each generator."""
    rows = []
    seg = label_map(1, args.label_nc, args.size, device)
    for label, norm in NORMS.items():
        g = generator(norm, args, args.size, device).eval()
        with torch.inference_mode():
            ours, ref = g(seg), ref_generator(g, seg)
            torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)
            assert float(ours.std()) > 1e-3, "a flat output would make the equality check meaningless"
            t = interleaved({"ours": lambda g=g: g(seg), "ref": lambda g=g: ref_generator(g, seg)},
                            args.repeats, device)
        rows.append((f"{label} G forward ({norm})", f"1×{args.size}²", t["ours"], t["ref"]))
        del g
    return rows


def _iteration(
    g: nn.Module, d: MultiscaleDiscriminator, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
    seg: Tensor, real: Tensor,
) -> Tensor:
    """One SPADE iteration (vgg off): G hinge + 10·FM, Adam; D hinge on the detached fake, Adam."""
    fake = g(seg)
    for p in d.parameters():
        p.requires_grad_(False)
    pred_fake, pred_real = d.discriminate(seg, fake, real)
    g_loss = hinge_g_loss(pred_fake) + 10 * feature_matching_loss(pred_fake, pred_real)
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()
    for p in d.parameters():
        p.requires_grad_(True)
    pred_fake, pred_real = d.discriminate(seg, fake.detach(), real)
    d_loss = hinge_d_loss(pred_real, pred_fake)
    opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    opt_d.step()
    return g_loss.detach()


def training_rows(args: argparse.Namespace, device: torch.device) -> list[tuple[str, str, float, float]]:
    """(case, size, ours img/s, reference img/s) of a SPADE training iteration."""
    rows = []
    n, size = args.train_batch, args.train_size
    seg = label_map(n, args.label_nc, size, device, seed=1)
    real = torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(2)).to(device) * 2 - 1
    for label, norm in NORMS.items():
        g_ours = generator(norm, args, size, device).train()
        g_ref = RefGenerator(copy.deepcopy(g_ours)).train()
        torch.manual_seed(1)
        d_ours = MultiscaleDiscriminator(args.label_nc + 3, ndf=args.ngf).to(device)
        d_ref = copy.deepcopy(d_ours)
        steps: dict[str, Callable[[], Tensor]] = {}
        for key, gm, dm in (("ours", g_ours, d_ours), ("ref", g_ref, d_ref)):
            opt_g = torch.optim.Adam(gm.parameters(), 1e-4, betas=(0.0, 0.9))
            opt_d = torch.optim.Adam(dm.parameters(), 4e-4, betas=(0.0, 0.9))
            steps[key] = lambda gm=gm, dm=dm, og=opt_g, od=opt_d: _iteration(gm, dm, og, od, seg, real)
        # the same first iteration (same weights, same data): the same generator loss
        torch.testing.assert_close(steps["ours"](), steps["ref"](), rtol=1e-4, atol=1e-4)
        t = interleaved(steps, args.repeats, device)
        case = f"{label} training iteration (G + D, no VGG)"
        rows.append((case, f"{n}×{size}²", n / t["ours"], n / t["ref"]))
        del g_ours, g_ref, d_ours, d_ref, steps
    return rows


def main(argv: list[str] | None = None) -> None:
    """Print (and optionally write as Markdown) the synthesis inference and training table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="inference resolution (default 256)")
    parser.add_argument("--train-size", type=int, default=128, help="training resolution (default 128)")
    parser.add_argument("--train-batch", type=int, default=1)
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--label-nc", type=int, default=151, help="label channels (ADE20K: 150 + don't-care)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--markdown", default=None)
    parser.add_argument("--default-allocator", action="store_true", help="skip tune_cpu_allocator()")
    args = parser.parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if not args.default_allocator and device.type == "cpu":
        tune_cpu_allocator()
    lines = [
        "| case | batch×size | ours | reference | ours / reference |",
        "|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    for case, shape, ours, ref in inference_rows(args, device):
        ratio = ours / ref
        lines.append(f"| {case} | {shape} | {ours * 1e3:.4g} ms | {ref * 1e3:.4g} ms | {ratio:.2f} (time) |")
        print(lines[-1], flush=True)
    for case, shape, ours, ref in training_rows(args, device):
        lines.append(f"| {case} | {shape} | {ours:.3g} img/s | {ref:.3g} img/s | {ref / ours:.2f} (time) |")
        print(lines[-1], flush=True)
    hardware = platform.processor() or "cpu"
    if device.type == "cuda":
        hardware = torch.cuda.get_device_name(device)
    header = [
        "## Semantic synthesis (`bench/synthesis.py`)",
        "",
        f"- command: `python bench/synthesis.py --size {args.size} --train-size {args.train_size} "
        f"--train-batch {args.train_batch} --ngf {args.ngf} --label-nc {args.label_nc} "
        f"--repeats {args.repeats}`",
        f"- torch {torch.__version__}, {device.type}, {torch.get_num_threads()} threads, {hardware}; "
        "reference = the same generator with its norms written as F.instance_norm + explicit convs (SPADE) "
        "or a one-hot einsum (CLADE); outputs checked equal before timing; median of repeats",
        f"- date: {datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')}",
        "",
    ]
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write("\n".join(header + lines) + "\n")


if __name__ == "__main__":
    main()
