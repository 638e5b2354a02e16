"""The README's main job (for now the library demo) and the command line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from stylenorm import cli, demo


def test_demo_writes_a_picture_whose_result_has_the_style_colours(tmp_path: Path) -> None:
    out = demo.main(["--out", str(tmp_path / "demo.png"), "--size", "64"])
    sheet = Image.open(out)
    assert sheet.size == (3 * 64 + 20, 64)
    content, style = demo.landscape(64), demo.sunset(64)
    result = demo.color_transfer(content, style)
    # the result's mean colour moves from the content's to the style's
    assert (result.mean((2, 3)) - style.mean((2, 3))).abs().max() < 0.05
    assert (content.mean((2, 3)) - style.mean((2, 3))).abs().max() > 0.2
    # structure kept: result and content correlate strongly in luminance
    lum_c, lum_r = content.mean(1).flatten(), result.mean(1).flatten()
    assert torch.corrcoef(torch.stack([lum_c, lum_r]))[0, 1] > 0.8


def test_cli_lists_norms(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["norms"]) == 0
    printed = capsys.readouterr().out
    assert "spade:<stats>:<k>x<k>" in printed and "group:G" in printed
