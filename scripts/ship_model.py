"""Copy a trained model folder into models/ as shipped: fp16 weights, a gallery, an honest card.

    .venv/bin/python scripts/ship_model.py SRC NAME [--styles IMG ...] [--note TEXT] [--sheet-json FILE]
                                           [--sheet PATH] [--retrain TEXT]

Weights are stored as float16 (the loader casts back to float32); ``--styles``
images become the model's named gallery (``styles/<stem>.png``, longer side
256; a LICENSES.md beside them is copied too) — for a multistyle model, one per
table row, named like the row; ``--note`` goes into the description;
``--sheet-json`` (from ``stylenorm sheet --metrics-json``) puts the held-out
quality numbers into the card's provenance; ``--sheet`` and ``--retrain``
record where the sheet is and how to retrain for real quality.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

from stylenorm.imageio import load_image, save_image
from stylenorm.inference.stylize import resize_to
from stylenorm.repository import load_weights, read_card, save_model, state_dtype


def main(argv: list[str] | None = None) -> Path:
    """Write models/NAME from SRC and return its folder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path)
    parser.add_argument("name")
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--styles", nargs="*", default=[])
    parser.add_argument("--note", default="")
    parser.add_argument("--sheet-json", type=Path, default=None)
    parser.add_argument("--retrain", default="", help="how to retrain it for real quality (card provenance)")
    parser.add_argument("--sheet", default="", help="the contact sheet's path in the repository")
    args = parser.parse_args(argv)
    card = read_card(args.src)
    state = state_dtype(load_weights(args.src, card), torch.float16)
    dest = args.models_dir / args.name
    names = list(card.styles)
    if args.styles:
        (dest / "styles").mkdir(parents=True, exist_ok=True)
        gallery = {Path(p).stem: Path(p) for p in args.styles}
        if card.architecture == "multistyle" and set(gallery) != set(card.styles):
            # a table row is known by its name: the gallery image must carry the same stem
            raise SystemExit(f"{card.name} has styles {card.styles}; give one image named after each")
        if card.architecture != "multistyle":
            names = list(gallery)
        for name in names:
            path = gallery[name]
            save_image(resize_to(load_image(path), 256), dest / "styles" / f"{name}.png")
        licences = {Path(p).parent / "LICENSES.md" for p in args.styles}  # written by scripts/galleries.py
        for licence in sorted(p for p in licences if p.is_file())[:1]:
            shutil.copyfile(licence, dest / "styles" / "LICENSES.md")
    elif (args.src / "styles").is_dir() and args.src.resolve() != dest.resolve():  # keep the gallery it has
        shutil.copytree(args.src / "styles", dest / "styles", dirs_exist_ok=True)
    provenance = dict(card.provenance)
    if state:
        provenance["shipped"] = "weights cast to float16 by scripts/ship_model.py"
    if args.sheet_json:
        provenance["heldout_quality"] = json.loads(args.sheet_json.read_text())["summary"]
    if args.sheet:
        provenance["contact_sheet"] = args.sheet
    if args.retrain:
        provenance["retrain"] = args.retrain
    description = (card.description + " " + args.note).strip()
    shipped = card.model_copy(update={"name": args.name, "styles": names, "description": description,
                                      "provenance": provenance})
    save_model(dest, shipped, state)
    print(f"wrote {dest}")
    return dest


if __name__ == "__main__":
    main()
