"""What a training recipe gives the one trainer (:mod:`stylenorm.train.engine`).

A recipe is the part of a training method that is about the method: its
networks, its datasets, its losses, which optimizer updates one iteration
takes and in what order, its sample grid and its model card. Everything else
(devices, AMP, DDP, seeded resumable data, learning-rate schedule, logs,
checkpoints, exact resume, the model folder) is the trainer's, the same for
all five recipes:

============  =====================  ===========================================
recipe        updates                one iteration (:attr:`Recipe.schedule`)
============  =====================  ===========================================
fast          ``net`` (Adam)         ``net`` on a new batch
multistyle    ``net``                ``net`` on a new batch
adain         ``net`` (the decoder)  ``net`` on a new batch
wct           ``net`` (decoders)     ``net`` on a new batch
spade         ``G``, ``D``           ``G`` on a new batch, then ``D`` on the same
cgan          ``G``, ``D``           ``n_dis`` × ``D`` on new batches, ``G`` on none
============  =====================  ===========================================

To add a recipe: subclass :class:`Recipe` in a module of this package, give it
a config class in :mod:`stylenorm.train.config`, and add one line to
:data:`stylenorm.train.recipes.RECIPES`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from stylenorm.repository import ModelCard

Losses = tuple[Tensor, dict[str, Tensor]]  # the weighted total and its named (weighted) terms


@dataclass
class Update:
    """One optimizer: the module whose parameters it trains, its loss, its learning rate.

    Under torchrun the trainer wraps ``module`` in DistributedDataParallel and
    sets the wrapper as the recipe's attribute ``called_as``; ``loss`` must
    call the module through that attribute, so gradients are averaged across
    processes.
    """

    name: str  # "net"; "G", "D"
    module: nn.Module
    loss: Callable[..., Losses]  # (batch) -> losses; batch is None for a Phase(batch="none")
    lr: float
    betas: tuple[float, float] = (0.9, 0.999)
    total: str = "loss"  # the log column of the update's total
    called_as: str = "net"


@dataclass(frozen=True)
class Phase:
    """Part of one iteration: ``repeat`` steps of one update, each on a new batch, the last one, or none.

    The terms of a repeated update are averaged over its repeats in the log.
    """

    update: str
    batch: Literal["new", "same", "none"] = "new"
    repeat: int = 1


class Recipe:
    """The base of every recipe: subclasses set the attributes in ``__init__`` and implement the methods.

    Attributes:
        config: the run's settings.
        modules: what a checkpoint holds, by name (``{"net": …}``; ``{"G": …, "D": …, "ema": …}``).
        datasets: one stream each; a tensor item becomes ``batch[name]``, a dict item is merged in.
        updates: the optimizers, in the order their losses are logged.
        schedule: one iteration (default: the update ``net`` on a new batch).
        model: the whole model the folder stores (the default :meth:`model_to_save`; its frozen parts
            move to the device with the modules), or None (the GANs: :meth:`model_to_save` builds it).
    """

    config: Any
    model: nn.Module | None = None
    modules: dict[str, nn.Module]
    datasets: dict[str, Dataset]
    updates: list[Update]
    schedule: tuple[Phase, ...] = (Phase("net"),)

    def __init__(self, cfg: Any, device: torch.device) -> None:
        """Build the networks on device, the datasets, the updates, from the run's config."""
        raise NotImplementedError

    def stream_seed(self, index: int) -> int:
        """The sampler seed of the index-th dataset's stream."""
        return int(self.config.seed) + 7919 * index

    def stream_description(self, name: str) -> tuple[str, str]:
        """(what the data is, what its items are), for the error when it is too small for a batch."""
        return f"the {name} folder", "readable images"

    def load_states(self, states: dict[str, dict[str, Tensor]]) -> None:
        """Load each module's state from a checkpoint (RuntimeError when one does not fit)."""
        for name, module in self.modules.items():
            module.load_state_dict(states.get(name, {}))

    def after_iteration(self) -> None:
        """Called after every iteration (a moving average of G updates here)."""

    _preview: Sequence[Tensor] | None = None  # what a loss keeps of its last batch for the grid

    def preview(self) -> Sequence[Tensor] | None:
        """Rows (k, 3, S, S) of the sample grid for the last batch, or None before the first."""
        return self._preview

    def card(self) -> ModelCard:
        """The model card without provenance (the trainer adds it)."""
        raise NotImplementedError

    def provenance(self) -> dict[str, Any]:
        """What the recipe knows about how the model was made (encoder, datasets, styles, losses)."""
        raise NotImplementedError

    def model_to_save(self) -> nn.Module:
        """The module whose weights the model folder stores (``weights_to_save`` picks from it)."""
        if self.model is None:
            raise NotImplementedError(f"{type(self).__name__} stores no single model: override model_to_save")
        return self.model


__all__ = ["Losses", "Phase", "Recipe", "Update"]
