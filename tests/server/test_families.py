"""Model families are plug-ins: every registered one implements the whole interface it claims, and a new
one — a module plus one registry line — is loaded, listed, validated, batched and served by the real
server with no other change."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stylenorm.families import FAMILIES, Family, register, unregister
from stylenorm.inference.stylize import stylize
from stylenorm.models import build, load, weights_to_save
from stylenorm.repository import ModelCard, save_model
from tests.server.conftest import image_bytes, live_server
from tests.server.toy_family import NegativeFamily


def _overrides(family: Family, method: str) -> bool:
    return getattr(type(family), method) is not getattr(Family, method)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_registered_family_implements_what_it_claims(name: str) -> None:
    family = FAMILIES[name]
    assert family.name == name and family.kind in ("stylize", "optimise", "synthesize", "generate")
    assert _overrides(family, "build")
    takes_requests = family.kind in ("stylize", "optimise")
    assert _overrides(family, "capabilities") == takes_requests
    assert _overrides(family, "run") == takes_requests
    assert _overrides(family, "run_batch") == family.batched
    assert _overrides(family, "style_stats") == family.style_statistics
    assert _overrides(family, "export_onnx") == family.exportable == _overrides(family, "check_onnx")
    assert not family.takes_statistics or family.style_statistics  # cached stats come from style_stats
    assert not family.batched or family.kind == "stylize"  # only the stylize batcher batches


def test_a_toy_family_is_one_module_and_one_registry_line(tmp_path: Path, models_dir: Path) -> None:
    register(NegativeFamily())  # the one line
    try:
        repo = tmp_path / "models"
        shutil.copytree(models_dir, repo)
        card = ModelCard(name="negative", architecture="negative", arguments={"channels": 3})
        save_model(repo / "negative", card, weights_to_save(card, build(card)))

        # the library
        model = load("negative", repo)
        content = torch_image(40, 48)
        out = stylize(model, content)
        np.testing.assert_allclose(out.numpy(), 1 - content.numpy(), atol=1e-6)

        # the server's batcher: three requests of one size share one forward pass of the family's
        from stylenorm.server.engine import Engine, StylizeWork

        engine = Engine(max_batch_size=8)  # not started: the batch is taken and run by hand
        jobs = [
            engine.new_job(model, "stylize", StylizeWork(torch_image(40, 48), alpha=a)) for a in (0, 0.5, 1)
        ]
        for job in jobs:
            engine.submit(job)
        batch = engine._next_batch() or []
        engine._execute(batch)
        assert [job.batch_size for job in jobs] == [3, 3, 3]
        for job, a in zip(jobs, (0, 0.5, 1), strict=True):
            x = job.work.content
            np.testing.assert_allclose(
                job.future.result().numpy(), (a * (1 - x) + (1 - a) * x).numpy(), atol=1e-6
            )

        # the real server: listed with the family's capabilities, validated, run alone and in batches
        with live_server(repo, max_batch_delay_ms=200.0) as server:
            listed = server.client.get("/v1/models/negative").json()
            assert listed["architecture"] == "negative" and listed["kind"] == "stylize"
            assert listed["options"]["alpha"] and not listed["options"]["uploaded_styles"]
            png = image_bytes(48, 40)
            r = server.client.post(
                "/v1/stylize",
                files={"content": ("c.png", png, "image/png")},
                data={"model": "negative", "alpha": "0.5"},
            )
            assert r.status_code == 200, r.text
            sent = np.asarray(Image.open(io.BytesIO(png)), dtype=np.float64) / 255
            got = np.asarray(Image.open(io.BytesIO(r.content)), dtype=np.float64) / 255
            np.testing.assert_allclose(got, 0.5 * (1 - sent) + 0.5 * sent, atol=1 / 255 + 1e-9)
            refused = server.client.post(
                "/v1/stylize",
                files={"content": ("c.png", png, "image/png"), "style": ("s.png", png)},
                data={"model": "negative"},
            )
            assert refused.status_code == 422 and "negative models" in refused.json()["error"]["message"]
    finally:
        unregister("negative")
    with pytest.raises(Exception, match="unknown architecture 'negative'"):
        load("negative", repo)


def torch_image(h: int, w: int):
    import torch

    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(3))
