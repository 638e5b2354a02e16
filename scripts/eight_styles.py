"""Gather the eight-styles model's style images from the open set, named like its table rows.

    .venv/bin/python scripts/eight_styles.py [--open data/open] [--out data/open/eight-styles]

Run ``scripts/open_images.py --out data/open`` first. The files are copied byte
for byte from the open set's style training split (their licences are in
``data/open/LICENSES.md``); the copy's file stems are the style names the
multistyle model's card lists, in table order (sorted), so

    stylenorm train multistyle --content data/open/content/train --style data/open/eight-styles ...

retrains ``models/eight-styles`` with the same table.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

PICKS = {  # style name -> file in <open>/style/train
    "brick": "gimp-data__brick.png",
    "elephants": "mate-backgrounds__elephants.png",
    "fluent-color": "ukui-wallpapers__fluent-color.png",
    "honeywave": "plasma-workspace-wallpapers__honeywave.png",
    "leopard": "gimp-data__leopard.png",
    "lightning": "gimp-data__lightning.png",
    "painting-colors": "lomiri-wallpapers-20.04__painting-colors_by__herobrine7gamer.png",
    "pink-marble": "gimp-data__pink_marble.png",
}


def main(argv: list[str] | None = None) -> int:
    """Copy the picks; exit 1 naming what is missing."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--open", type=Path, default=Path("data/open"), help="the open set's folder")
    parser.add_argument("--out", type=Path, default=None, help="default: <open>/eight-styles")
    args = parser.parse_args(argv)
    source = args.open / "style" / "train"
    missing = [f for f in PICKS.values() if not (source / f).is_file()]
    if missing:
        print(f"not in {source}: {', '.join(missing)}; run scripts/open_images.py --out {args.open}",
              file=sys.stderr)
        return 1
    out = args.out or args.open / "eight-styles"
    out.mkdir(parents=True, exist_ok=True)
    for name, file in PICKS.items():
        shutil.copyfile(source / file, out / f"{name}.png")
    print(f"{len(PICKS)} styles in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
