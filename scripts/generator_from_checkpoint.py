"""Rewrite a trained GAN model folder with the raw generator G of its run's checkpoint, not G's average.

    .venv/bin/python scripts/generator_from_checkpoint.py RUN_DIR FOLDER [--module G|ema] [--why TEXT]

`stylenorm train spade|cgan --ema D` writes the moving average of G's weights (module `ema`) as the
model. Early in a run, with D near 1, the average lags the generator by ~1/(1-D) steps: the digits
run at 4000 steps read as the asked class 90 % of the time from G and 67 % from its 0.999 average
(scripts/digits_dataset.py --score). This takes the module named from the run's latest intact
checkpoint, keeps FOLDER's card, and records in its provenance which module was shipped and why.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from stylenorm import models
from stylenorm.repository import read_card, save_model
from stylenorm.train.checkpoint import load_latest_intact


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", type=Path, help="the run's folder (its checkpoints/ are read)")
    p.add_argument("folder", type=Path, help="the model folder the trainer wrote (rewritten in place)")
    p.add_argument("--module", default="G", help="the checkpoint module to ship: G (default) or ema")
    p.add_argument("--why", default="", help="recorded in the card's provenance")
    args = p.parse_args(argv)
    path, ckpt = load_latest_intact(args.run_dir / "checkpoints")
    card = read_card(args.folder)
    prefix = f"{args.module}."
    state = {k[len(prefix) :]: v for k, v in ckpt.model.items() if k.startswith(prefix)}
    if not state:
        modules = sorted({k.split(".")[0] for k in ckpt.model})
        raise SystemExit(f"{path} has no module {args.module!r}; it has {', '.join(modules)}")
    net = models.build(card)
    net.load_state_dict(state)  # strict: the card's architecture must match the checkpoint
    provenance = dict(card.provenance)
    provenance["shipped_module"] = {"module": args.module, "checkpoint": str(path), "why": args.why}
    shipped = card.model_copy(update={"provenance": provenance})
    save_model(args.folder, shipped, models.weights_to_save(card, net))
    print(f"wrote {args.folder} from {path} (module {args.module})")
    return args.folder


if __name__ == "__main__":
    main()
