"""The server runs its models on the inference path its settings choose (channels_last by default)."""

from __future__ import annotations

from pathlib import Path

import torch

from stylenorm.families import family_of
from tests.server.conftest import live_server, settings_for


def test_the_server_serves_its_models_in_channels_last(models_dir: Path) -> None:
    with live_server(models_dir) as server:
        state = server.app.state.server
        assert state.engine.path == state.settings.inference_path()
        assert state.engine.path.channels_last
        convs = [
            m for served in state.registry.models.values() if family_of(served.loaded.card).channels_last
            for m in served.loaded.module.modules() if isinstance(m, torch.nn.Conv2d)
        ]
        assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    contiguous = settings_for(models_dir, memory_format="contiguous")
    assert not contiguous.inference_path().channels_last
