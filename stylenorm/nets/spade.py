"""SPADE semantic image synthesis: the residual block, the generator and the image encoder.

Layout, module names and defaults follow NVlabs/SPADE (``SPADEResnetBlock``,
``SPADEGenerator``, ``ConvEncoder``), so a state dict has the official key
prefixes: ``fc``, ``head_0``, ``G_middle_0``, ``G_middle_1``, ``up_0`` … ``up_3``
(``up_4`` for ``"most"``), ``conv_img``; in a block ``conv_0``, ``conv_1``,
``conv_s``, ``norm_0``, ``norm_1``, ``norm_s``.

Every block norm is a spec string of :func:`stylenorm.norm.make_norm`, so SPADE
over instance or (sync) batch statistics, CLADE, or a plain parameter-free
norm are one argument apart: ``"spade:instance:3x3"``,
``"spade:sync_batch:3x3"`` (the official ``spadesyncbatch3x3``),
``"clade:instance"``, ``"instance"``.

Spectral-norm key style. Spectral norm is torch's parametrization
(:func:`stylenorm.norm.spectral_norm`), so a spectral conv stores
``<conv>.parametrizations.weight.original``, ``<conv>.parametrizations.weight.0._u``
and ``<conv>.parametrizations.weight.0._v`` where the official checkpoints
(built with the older ``torch.nn.utils.spectral_norm`` hook) store
``<conv>.weight_orig``, ``<conv>.weight_u`` and ``<conv>.weight_v``; shapes are the
same ((out, in, k, k), (out,), (in·k·k,)). :data:`SPECTRAL_KEYS` lists the pairs.
SPADE norms are flat (``norm_0.mlp_shared.0.weight``, ``norm_0.running_mean``) where
the official has ``norm_0.param_free_norm.running_mean`` for batch statistics.

Value ranges: the generator outputs ``tanh`` values in [−1, 1], and the encoder
takes images in [−1, 1] too (the network's own range); the model API boundary
maps to and from [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stylenorm.errors import ShapeError, SpecError
from stylenorm.norm import make_norm, norm_entry, spectral_norm

__all__ = [
    "SPECTRAL_KEYS",
    "UPSAMPLINGS",
    "ConvEncoder",
    "SPADEGenerator",
    "SPADEResBlock",
    "init_weights",
    "latent_grid",
    "reparameterize",
    "reset_weight",
]

# (ours, official) suffixes of a spectral-normed weight
SPECTRAL_KEYS = (
    ("parametrizations.weight.original", "weight_orig"),
    ("parametrizations.weight.0._u", "weight_u"),
    ("parametrizations.weight.0._v", "weight_v"),
)
UPSAMPLINGS = {"normal": 5, "more": 6, "most": 7}
_LRELU = 0.2


def _norm(spec: str, channels: int, label_nc: int, hidden: int) -> nn.Module:
    """A block norm from its spec, handing over only the options the spec understands."""
    options = norm_entry(spec).options
    kwargs: dict[str, int] = {}
    if "label_nc" in options:
        kwargs["label_nc"] = label_nc
    if "hidden" in options:
        kwargs["hidden"] = hidden
    if "num_classes" in options or "num_styles" in options or "cond_dim" in options:
        raise SpecError(
            f"SPADE blocks take a parameter-free norm or a label-map-conditioned one "
            f"(spade:…, clade:…, instance, batch …); {spec!r} needs a class or style condition"
        )
    return make_norm(spec, channels, **kwargs)


def _apply_norm(norm: nn.Module, x: Tensor, segmap: Tensor) -> Tensor:
    # parameter-free norms (instance, batch …) ignore the label map
    return norm(x, segmap) if getattr(norm, "conditional", False) else norm(x)


def _spectral(conv: nn.Module, on: bool) -> nn.Module:
    return spectral_norm(conv) if on else conv


@torch.no_grad()
def reset_weight(module: nn.Module, init: Callable[[Tensor], object]) -> nn.Module:
    """Re-draw ``module.weight`` in place with ``init`` (e.g. ``nn.init.xavier_normal_``); zero its bias.

    For a spectral-normed module the raw weight (``parametrizations.weight.original``)
    is re-drawn and the power-iteration vectors u, v are re-converged for it
    (15 iterations, as at registration): stale u, v would give a wrong σ, so in
    eval mode the "normalized" weight could be orders of magnitude too large.
    """
    parametrized = getattr(module, "parametrizations", None)
    if parametrized is not None and "weight" in parametrized:
        init(parametrized.weight.original)
        was_training = module.training
        module.train()
        for _ in range(15):  # every access in train mode runs one power iteration in place
            _ = module.weight
        module.train(was_training)
    else:
        init(module.weight)
    if getattr(module, "bias", None) is not None:
        nn.init.zeros_(module.bias)
    return module


def init_weights(net: nn.Module, gain: float = 0.02) -> nn.Module:
    """The official init: Xavier-normal(gain) for every conv/linear weight (spectral or not), zero biases."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            reset_weight(m, lambda w: nn.init.xavier_normal_(w, gain=gain))
    return net


def latent_grid(crop_size: int, num_upsampling_layers: str, aspect_ratio: float = 1.0) -> tuple[int, int]:
    """(sh, sw): the generator's starting grid, sw = crop / 2^U, sh = round(sw / aspect_ratio)."""
    if num_upsampling_layers not in UPSAMPLINGS:
        raise SpecError(
            f"num_upsampling_layers must be one of {', '.join(UPSAMPLINGS)}; got {num_upsampling_layers!r}"
        )
    ups = UPSAMPLINGS[num_upsampling_layers]
    if crop_size < 2**ups or crop_size % 2**ups:
        raise SpecError(
            f"crop_size {crop_size} must be a positive multiple of 2^{ups} = {2**ups} "
            f"for num_upsampling_layers={num_upsampling_layers!r}"
        )
    if aspect_ratio <= 0:
        raise SpecError(f"aspect_ratio must be positive; got {aspect_ratio}")
    sw = crop_size // 2**ups
    sh = round(sw / aspect_ratio)
    if sh < 1:
        raise SpecError(
            f"aspect_ratio {aspect_ratio} leaves no rows at crop_size {crop_size} "
            f"(sw = {sw}); use a larger crop or a smaller aspect ratio"
        )
    return sh, sw


def reparameterize(mu: Tensor, logvar: Tensor) -> Tensor:
    """z = μ + ε·exp(½·logvar), ε ~ N(0, I); mu, logvar (N, z_dim) -> (N, z_dim)."""
    return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)


class SPADEResBlock(nn.Module):
    """SPADE residual block: norm → lrelu(0.2) → 3×3 conv, twice, plus a (learned when fin ≠ fout) shortcut.

    x (N, fin, H, W), segmap (N, label_nc, h, w) -> (N, fout, H, W). The learned
    shortcut is norm_s → bias-free 1×1 conv, with no activation. Spectral norm
    wraps conv_0, conv_1 and conv_s, never the convs inside the norms.
    """

    def __init__(
        self,
        fin: int,
        fout: int,
        norm_spec: str,
        label_nc: int,
        spectral: bool = True,
        hidden: int = 128,
    ) -> None:
        super().__init__()
        if fin < 1 or fout < 1:
            raise ShapeError(f"block widths must be positive; got fin={fin}, fout={fout}")
        self.fin, self.fout = fin, fout
        self.learned_shortcut = fin != fout
        fmiddle = min(fin, fout)
        # registration order = the official key order: convs first, then norms
        self.conv_0 = _spectral(nn.Conv2d(fin, fmiddle, 3, padding=1), spectral)
        self.conv_1 = _spectral(nn.Conv2d(fmiddle, fout, 3, padding=1), spectral)
        if self.learned_shortcut:
            self.conv_s = _spectral(nn.Conv2d(fin, fout, 1, bias=False), spectral)
        self.norm_0 = _norm(norm_spec, fin, label_nc, hidden)
        self.norm_1 = _norm(norm_spec, fmiddle, label_nc, hidden)
        if self.learned_shortcut:
            self.norm_s = _norm(norm_spec, fin, label_nc, hidden)

    def forward(self, x: Tensor, segmap: Tensor) -> Tensor:
        """x (N, fin, H, W), segmap (N, label_nc, h, w) -> (N, fout, H, W)."""
        shortcut = self.conv_s(_apply_norm(self.norm_s, x, segmap)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(_apply_norm(self.norm_0, x, segmap), _LRELU))
        dx = self.conv_1(F.leaky_relu(_apply_norm(self.norm_1, dx, segmap), _LRELU))
        return shortcut + dx


class ConvEncoder(nn.Module):
    """The image encoder of multimodal / style-guided SPADE: image -> (μ, logvar) of z.

    Stride-2 3×3 convs of widths ngf·(1, 2, 4, 8, 8, 8), each spectral-normed
    and followed by a parameter-free instance norm (the official
    ``spectralinstance``; bias-free convs), lrelu(0.2) between them, then
    ``fc_mu`` and ``fc_var`` on the 4×4 map. For crop_size ≥ 256 the input is
    resized to 256² and all six layers exist, exactly as the official. For
    smaller crops the official would fail (its fc expects 4×4); here the input
    is resized to the largest power of two ≤ crop_size and only as many layers
    as reach 4×4 are built. Unlike the official, z_dim is honoured (SPADE#139).
    """

    _WIDTHS = (1, 2, 4, 8, 8, 8)

    def __init__(self, ngf: int = 64, z_dim: int = 256, crop_size: int = 256) -> None:
        super().__init__()
        if crop_size < 8:
            raise SpecError(f"ConvEncoder needs crop_size ≥ 8; got {crop_size}")
        if ngf < 1 or z_dim < 1:
            raise SpecError(f"ngf and z_dim must be positive; got ngf={ngf}, z_dim={z_dim}")
        self.in_size = 256 if crop_size >= 256 else 2 ** int(math.log2(crop_size))
        n_layers = int(math.log2(self.in_size)) - 2  # each halves, down to 4×4
        self.ngf, self.z_dim, self.n_layers = ngf, z_dim, n_layers
        c_in = 3
        for i in range(n_layers):
            c_out = ngf * self._WIDTHS[i]
            conv = spectral_norm(nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False))
            self.add_module(f"layer{i + 1}", nn.Sequential(conv, make_norm("instance", c_out)))
            c_in = c_out
        self.fc_mu = nn.Linear(c_in * 16, z_dim)
        self.fc_var = nn.Linear(c_in * 16, z_dim)
        init_weights(self)

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:
        """image (N, 3, H, W) in [−1, 1] -> (μ, logvar), each (N, z_dim)."""
        if image.dim() != 4 or image.shape[1] != 3:
            raise ShapeError(f"ConvEncoder expects RGB images (N, 3, H, W); got {tuple(image.shape)}")
        x = image
        if x.shape[2:] != (self.in_size, self.in_size):
            x = F.interpolate(x, size=(self.in_size, self.in_size), mode="bilinear", align_corners=False)
        for i in range(self.n_layers):
            if i:
                x = F.leaky_relu(x, _LRELU)
            x = getattr(self, f"layer{i + 1}")(x)
        x = F.leaky_relu(x, _LRELU).flatten(1)
        return self.fc_mu(x), self.fc_var(x)


class SPADEGenerator(nn.Module):
    """The SPADE generator: one-hot label map (and optionally z or a style image) -> image in [−1, 1].

    ``segmap`` is (N, semantic_nc, H, W) with semantic_nc = label_nc
    (+1 don't-care channel if ``contain_dontcare``) (+1 instance-edge channel,
    last, if ``use_instance``). The output is (N, 3, sh·2^U, sw·2^U) where
    (sh, sw) = :func:`latent_grid` — (crop_size / aspect_ratio, crop_size) —
    and U = 5, 6, 7 for ``normal``, ``more``, ``most``; ``tanh`` values in
    [−1, 1]. Without VAE the input is the label map resized (nearest) to
    (sh, sw) through ``fc``, a 3×3 conv; with ``use_vae`` ``fc`` is
    Linear(z_dim, 16·ngf·sh·sw) of z, and the generator owns a
    :class:`ConvEncoder` as ``encoder`` (the official ``net_E`` keys under the
    ``encoder.`` prefix) so a style image can steer the result at inference.

    Notes. With instance statistics a 1×1 latent grid (e.g. crop 32,
    ``normal``) normalizes head_0's input to zero (the mean of one pixel is the
    pixel): its residual branch then gets no gradient and z is erased, so use a
    grid of at least 2×2 (the official 256² has 8×8). CLADE reads the class as
    the argmax over all channels; the instance-edge channel comes last, so
    ties resolve to the class and CLADE ignores edges (CLADE's own ``inst_conv``
    is not built).
    """

    def __init__(
        self,
        label_nc: int,
        ngf: int = 64,
        z_dim: int = 256,
        num_upsampling_layers: Literal["normal", "more", "most"] = "normal",
        crop_size: int = 256,
        aspect_ratio: float = 1.0,
        norm: str = "spade:instance:3x3",
        use_vae: bool = False,
        hidden: int = 128,
        contain_dontcare: bool = False,
        use_instance: bool = False,
        spectral: bool = True,
    ) -> None:
        super().__init__()
        if label_nc < 1 or ngf < 1 or z_dim < 1:
            raise SpecError(f"label_nc, ngf and z_dim must be positive; got {label_nc}, {ngf}, {z_dim}")
        self.label_nc, self.ngf, self.z_dim = label_nc, ngf, z_dim
        self.contain_dontcare, self.use_instance = contain_dontcare, use_instance
        self.semantic_nc = label_nc + int(contain_dontcare) + int(use_instance)
        self.num_upsampling_layers = num_upsampling_layers
        self.sh, self.sw = latent_grid(crop_size, num_upsampling_layers, aspect_ratio)
        self.crop_size, self.aspect_ratio, self.norm_spec = crop_size, aspect_ratio, norm
        self.use_vae = use_vae
        ups = UPSAMPLINGS[num_upsampling_layers]
        self.out_size = (self.sh * 2**ups, self.sw * 2**ups)
        nf = ngf

        if use_vae:
            self.fc = nn.Linear(z_dim, 16 * nf * self.sh * self.sw)
        else:
            self.fc = nn.Conv2d(self.semantic_nc, 16 * nf, 3, padding=1)

        def block(fin: int, fout: int) -> SPADEResBlock:
            return SPADEResBlock(fin, fout, norm, self.semantic_nc, spectral=spectral, hidden=hidden)

        self.head_0 = block(16 * nf, 16 * nf)
        self.G_middle_0 = block(16 * nf, 16 * nf)
        self.G_middle_1 = block(16 * nf, 16 * nf)
        self.up_0 = block(16 * nf, 8 * nf)
        self.up_1 = block(8 * nf, 4 * nf)
        self.up_2 = block(4 * nf, 2 * nf)
        self.up_3 = block(2 * nf, nf)
        final_nc = nf
        if num_upsampling_layers == "most":
            self.up_4 = block(nf, nf // 2)
            final_nc = nf // 2
        if final_nc < 1:
            raise SpecError(f"num_upsampling_layers='most' needs ngf ≥ 2; got {ngf}")
        self.conv_img = nn.Conv2d(final_nc, 3, 3, padding=1)
        # the encoder is built after the generator's own layers, so G's keys come first as in net_G
        self.encoder = ConvEncoder(ngf, z_dim, crop_size) if use_vae else None
        init_weights(self)

    # ------------------------------------------------------------------ latent code

    def encode(self, style_image: Tensor, sample: bool | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """style_image (N, 3, H, W) in [−1, 1] -> (z, μ, logvar), each (N, z_dim).

        z is a reparameterized sample when ``sample`` (default: in training
        mode) and μ otherwise, so inference with a style image is deterministic.
        """
        if self.encoder is None:
            raise SpecError(
                "this generator has no image encoder: build it with use_vae=True to steer it with a "
                "style image"
            )
        mu, logvar = self.encoder(style_image)
        if sample is None:
            sample = self.training
        z = reparameterize(mu, logvar) if sample else mu
        return z, mu, logvar

    def _check_segmap(self, segmap: Tensor) -> None:
        if not isinstance(segmap, Tensor) or segmap.dim() != 4:
            got = tuple(segmap.shape) if isinstance(segmap, Tensor) else type(segmap).__name__
            raise ShapeError(f"SPADEGenerator needs a one-hot map (N, {self.semantic_nc}, H, W); got {got}")
        if segmap.shape[1] != self.semantic_nc:
            parts = [f"label_nc {self.label_nc}"]
            if self.contain_dontcare:
                parts.append("1 don't-care")
            if self.use_instance:
                parts.append("1 instance-edge")
            raise ShapeError(
                f"SPADEGenerator expects {self.semantic_nc} label channels ({' + '.join(parts)}); "
                f"got {segmap.shape[1]} (shape {tuple(segmap.shape)}); one-hot encode with "
                "stylenorm.data.segmentation.to_one_hot"
            )
        if not segmap.is_floating_point():
            raise ShapeError(f"the label map must be a float one-hot tensor; got {segmap.dtype}")

    def _initial(self, segmap: Tensor, z: Tensor | None, style_image: Tensor | None) -> Tensor:
        n = segmap.shape[0]
        if not self.use_vae:
            if z is not None or style_image is not None:
                raise SpecError(
                    "this generator was built without use_vae: it takes no z or style image; "
                    "build it with use_vae=True for multimodal or style-guided synthesis"
                )
            x = F.interpolate(segmap, size=(self.sh, self.sw), mode="nearest")
            return self.fc(x)
        if z is not None and style_image is not None:
            raise SpecError("give either z or style_image, not both")
        if style_image is not None:
            if style_image.shape[0] != n:
                raise ShapeError(f"{style_image.shape[0]} style images for a batch of {n} label maps")
            z = self.encode(style_image)[0]
        elif z is None:
            z = torch.randn(n, self.z_dim, device=segmap.device, dtype=segmap.dtype)
        if z.shape != (n, self.z_dim):
            raise ShapeError(f"z must be (N, z_dim) = ({n}, {self.z_dim}); got {tuple(z.shape)}")
        return self.fc(z.to(segmap.dtype)).view(n, 16 * self.ngf, self.sh, self.sw)

    def forward(self, segmap: Tensor, z: Tensor | None = None, style_image: Tensor | None = None) -> Tensor:
        """segmap (N, semantic_nc, H, W) [+ z (N, z_dim) or style (N, 3, h, w)] -> (N, 3, Ho, Wo), [−1, 1]."""
        self._check_segmap(segmap)
        x = self._initial(segmap, z, style_image)

        def up(t: Tensor) -> Tensor:
            return F.interpolate(t, scale_factor=2, mode="nearest")

        x = self.head_0(x, segmap)
        x = self.G_middle_0(up(x), segmap)
        if self.num_upsampling_layers in ("more", "most"):
            x = up(x)
        x = self.G_middle_1(x, segmap)
        x = self.up_0(up(x), segmap)
        x = self.up_1(up(x), segmap)
        x = self.up_2(up(x), segmap)
        x = self.up_3(up(x), segmap)
        if self.num_upsampling_layers == "most":
            x = self.up_4(up(x), segmap)
        return torch.tanh(self.conv_img(F.leaky_relu(x, _LRELU)))
