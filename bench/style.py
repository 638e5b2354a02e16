"""Style-transfer inference and training speed, as ratios to straightforward formulations.

For each family (fast, multistyle, adain, color) and size (256, 512, 1024 by
default) the time of our model and of a reference formulation of the same
architecture written with torch's own layers (``nn.InstanceNorm2d``,
``F.instance_norm`` + a per-style table, the AdaIN port's mean/std code, a
plain Reinhard transfer), interleaved in one process, median of repeats,
after checking both give the same image. AdaIN is timed with the style
encoded on every call and with cached style statistics (what the server does
for named styles). Training: images/s of a fast-style and an AdaIN-decoder
step (forward, VGG loss, backward, Adam) against the same step built from the
reference formulation.

    .venv/bin/python bench/style.py [--sizes 256,512,1024] [--repeats 3] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stylenorm.nets import AdaINNet, TransformerNet, VGGEncoder
from stylenorm.nets.color import ColorTransfer
from stylenorm.runtime import tune_cpu_allocator

# ----------------------------------------------------------------------------- reference formulations


class RefTransformer(nn.Module):
    """pytorch/examples' TransformerNet with torch's InstanceNorm2d, or a per-style table (CIN)."""

    def __init__(self, ours: TransformerNet, style: int | None = None) -> None:
        super().__init__()
        self.ours, self.style = ours, style

    def _norm(self, layer: nn.Module, x: Tensor) -> Tensor:
        mod = layer.modulation
        if self.style is None:
            return F.instance_norm(x, weight=mod.weight, bias=mod.bias)
        w, b = mod.weight[self.style], mod.bias[self.style]
        return F.instance_norm(x) * w.view(1, -1, 1, 1) + b.view(1, -1, 1, 1)

    @staticmethod
    def _conv(layer: nn.Module, x: Tensor) -> Tensor:
        if layer.upsample > 1:
            x = F.interpolate(x, scale_factor=layer.upsample, mode="nearest")
        return layer.conv2d(F.pad(x, [layer.conv2d.kernel_size[0] // 2] * 4, mode="reflect"))

    def forward(self, x: Tensor) -> Tensor:
        """(1, 3, H, W) with H, W multiples of 4 -> (1, 3, H, W)."""
        n = self.ours
        y = F.relu(self._norm(n.in1, self._conv(n.conv1, x)))
        y = F.relu(self._norm(n.in2, self._conv(n.conv2, y)))
        y = F.relu(self._norm(n.in3, self._conv(n.conv3, y)))
        for i in range(1, 6):
            r = getattr(n, f"res{i}")
            h = F.relu(self._norm(r.in1, self._conv(r.conv1, y)))
            y = y + self._norm(r.in2, self._conv(r.conv2, h))
        y = F.relu(self._norm(n.in4, self._conv(n.deconv1, y)))
        y = F.relu(self._norm(n.in5, self._conv(n.deconv2, y)))
        return self._conv(n.deconv3, y).sigmoid()


def _calc_mean_std(feat: Tensor, eps: float = 1e-5) -> tuple[Tensor, Tensor]:
    n, c = feat.shape[:2]
    var = feat.reshape(n, c, -1).var(dim=2) + eps
    return feat.reshape(n, c, -1).mean(dim=2).view(n, c, 1, 1), var.sqrt().view(n, c, 1, 1)


def ref_adain(net: AdaINNet, content: Tensor, style: Tensor) -> Tensor:
    """The PyTorch AdaIN port's test path: encode both, AdaIN (unbiased + eps), decode."""
    fc, fs = net.encoder.features(content), net.encoder.features(style)
    cm, cs = _calc_mean_std(fc)
    sm, ss = _calc_mean_std(fs)
    return net.decoder((fc - cm) / cs * ss + sm)


def ref_color(content: Tensor, style: Tensor) -> Tensor:
    """Reinhard transfer written out: lαβ, per-channel mean/std swap, back."""
    from stylenorm.nets.color import lab_to_rgb, rgb_to_lab

    c, s = rgb_to_lab(content), rgb_to_lab(style)
    cm, cs = c.mean((2, 3), keepdim=True), c.std((2, 3), keepdim=True, correction=0)
    sm, ss = s.mean((2, 3), keepdim=True), s.std((2, 3), keepdim=True, correction=0)
    return lab_to_rgb((c - cm) / (cs + 1e-8) * ss + sm)


# ----------------------------------------------------------------------------- timing


def interleaved(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds of each callable, run round-robin after one warm-up each."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def inference_rows(size: int, repeats: int) -> list[tuple[str, str, float, float]]:
    """(family, variant, ours s, reference s) at one size."""
    g = torch.Generator().manual_seed(0)
    content = torch.rand(1, 3, size, size, generator=g)
    style = torch.rand(1, 3, size, size, generator=g)
    rows = []
    with torch.inference_mode():
        fast = TransformerNet().eval()
        ref = RefTransformer(fast)
        torch.testing.assert_close(fast(content), ref(content), rtol=1e-4, atol=1e-4)
        t = interleaved({"ours": lambda: fast(content), "ref": lambda: ref(content)}, repeats)
        rows.append(("fast", "IN", t["ours"], t["ref"]))

        multi = TransformerNet(norm="cin", num_styles=8).eval()
        for p in multi.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.01)
        ref_m = RefTransformer(multi, style=3)
        sid = torch.tensor([3])
        torch.testing.assert_close(multi(content, sid), ref_m(content), rtol=1e-4, atol=1e-4)
        t = interleaved({"ours": lambda: multi(content, sid), "ref": lambda: ref_m(content)}, repeats)
        rows.append(("multistyle", "CIN, 8 styles", t["ours"], t["ref"]))

        adain = AdaINNet(VGGEncoder(19, "relu4_1", "normalised", seed=0), unbiased=True).eval()
        adain.encoder.randomize(0)
        stats = adain.style_stats(style)
        expected = ref_adain(adain, content, style)
        torch.testing.assert_close(adain(content, style), expected, rtol=1e-3, atol=1e-3)
        t = interleaved({
            "ours": lambda: adain.stylize(content, [style]),
            "cached": lambda: adain.stylize(content, [stats]),
            "ref": lambda: ref_adain(adain, content, style),
        }, repeats)
        rows.append(("adain", "style encoded per call", t["ours"], t["ref"]))
        rows.append(("adain", "style statistics cached", t["cached"], t["ref"]))

        color = ColorTransfer()
        torch.testing.assert_close(color(content, style), ref_color(content, style), rtol=1e-3, atol=1e-3)
        t = interleaved({"ours": lambda: color(content, style), "ref": lambda: ref_color(content, style)},
                        repeats)
        rows.append(("color", "Reinhard lαβ", t["ours"], t["ref"]))
    return rows


def _gram(f: Tensor) -> Tensor:
    n, c, h, w = f.shape
    f = f.reshape(n, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)


def training_rows(size: int, batch: int, repeats: int) -> list[tuple[str, str, float, float]]:
    """Images/s of a fast-style step and an AdaIN-decoder step, ours vs the reference formulation."""
    from stylenorm import losses

    g = torch.Generator().manual_seed(1)
    x = torch.rand(batch, 3, size, size, generator=g)
    s = torch.rand(1, 3, size, size, generator=g)
    vgg16 = VGGEncoder(16, "relu4_3", "random")
    taps = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
    with torch.no_grad():
        style_grams = [_gram(f) for f in vgg16(s, taps).values()]
    rows = []

    def fast_step(net: nn.Module, ours: bool, opt: torch.optim.Optimizer) -> None:
        y = net(x)
        fy, fx = vgg16(y, taps), vgg16(x, taps)
        if ours:
            loss = 1e5 * losses.content_loss(fy["relu2_2"], fx["relu2_2"])
            loss = loss + 1e10 * sum(
                losses.gram_style_loss(fy[k], sg) for k, sg in zip(taps, style_grams, strict=True)
            )
        else:
            loss = 1e5 * F.mse_loss(fy["relu2_2"], fx["relu2_2"])
            loss = loss + 1e10 * sum(F.mse_loss(_gram(fy[k]), sg.expand(batch, -1, -1))
                                     for k, sg in zip(taps, style_grams, strict=True))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    ours_net = TransformerNet()
    ref_net = RefTransformer(TransformerNet())
    opt_o = torch.optim.Adam(ours_net.parameters(), 1e-3)
    opt_r = torch.optim.Adam(ref_net.parameters(), 1e-3)
    t = interleaved({"ours": lambda: fast_step(ours_net, True, opt_o),
                     "ref": lambda: fast_step(ref_net, False, opt_r)}, repeats)
    rows.append(("fast training", f"{batch}×{size}² img/s", batch / t["ours"], batch / t["ref"]))

    adain_o = AdaINNet(VGGEncoder(19, "relu4_1", "random"))
    adain_r = AdaINNet(VGGEncoder(19, "relu4_1", "random"))
    taps19 = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
    style_b = s.expand(batch, -1, -1, -1)

    def adain_step(net: AdaINNet, ours: bool, opt: torch.optim.Optimizer) -> None:
        fc = net.encode(x)
        fs = net.encoder(style_b, taps19)
        if ours:
            t_feat = net.transfer(fc, fs["relu4_1"])
        else:
            cm, cs = _calc_mean_std(fc)
            sm, ss = _calc_mean_std(fs["relu4_1"])
            t_feat = (fc - cm) / cs * ss + sm
        out = net.decoder(t_feat)
        fo = net.encoder(out, taps19)
        loss = F.mse_loss(fo["relu4_1"], t_feat)
        for k in taps19:
            if ours:
                loss = loss + 10 * losses.mean_std_loss(fo[k], fs[k])
            else:
                om, osd = _calc_mean_std(fo[k])
                sm, ssd = _calc_mean_std(fs[k])
                loss = loss + 10 * (F.mse_loss(om, sm) + F.mse_loss(osd, ssd))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    opt_ao = torch.optim.Adam(adain_o.decoder.parameters(), 1e-4)
    opt_ar = torch.optim.Adam(adain_r.decoder.parameters(), 1e-4)
    t = interleaved({"ours": lambda: adain_step(adain_o, True, opt_ao),
                     "ref": lambda: adain_step(adain_r, False, opt_ar)}, repeats)
    rows.append(("adain training", f"{batch}×{size}² img/s", batch / t["ours"], batch / t["ref"]))
    return rows


def main(argv: list[str] | None = None) -> None:
    """Print (and optionally write as Markdown) the inference and training tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="256,512,1024")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-size", type=int, default=128)
    parser.add_argument("--train-batch", type=int, default=4)
    parser.add_argument("--markdown", default=None)
    parser.add_argument("--default-allocator", action="store_true", help="skip tune_cpu_allocator()")
    args = parser.parse_args(argv)
    if not args.default_allocator:
        tune_cpu_allocator()
    torch.manual_seed(0)
    lines = [
        "| family | variant | size | ours | reference | ours / reference |",
        "|---|---|---|---|---|---|",
    ]
    for size in (int(s) for s in args.sizes.split(",")):
        repeats = args.repeats if size <= 512 else 1
        for family, variant, ours, ref in inference_rows(size, repeats):
            lines.append(f"| {family} | {variant} | {size}² | {ours * 1e3:.3g} ms | {ref * 1e3:.3g} ms "
                         f"| {ours / ref:.2f} |")
            print(lines[-1], flush=True)
    for family, variant, ours, ref in training_rows(args.train_size, args.train_batch, args.repeats):
        lines.append(f"| {family} | {variant} | {args.train_size}² | {ours:.2f} img/s | {ref:.2f} img/s "
                     f"| {ref / ours:.2f} (time) |")
        print(lines[-1], flush=True)
    header = [
        "## Style transfer (`bench/style.py`)",
        "",
        f"- command: `python bench/style.py --sizes {args.sizes} --repeats {args.repeats}`",
        f"- torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or 'cpu'}, "
        f"batch 1 inference, random weights (speed does not depend on them), "
        f"{'default' if args.default_allocator else 'tuned'} allocator; sizes > 512 timed once",
        f"- date: {datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')}",
        "",
    ]
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write("\n".join(header + lines) + "\n")


if __name__ == "__main__":
    main()
