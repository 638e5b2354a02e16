"""The spec registry: every name builds and runs; junk gets a clear SpecError."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from stylenorm.errors import SpecError
from stylenorm.norm import available_norms, available_stats, make_norm, make_stats, parse_spec
from tests.norm.cases import CASES, build, call


def test_every_registered_name_has_an_example() -> None:
    names = {usage.split(":")[0].split("[")[0] for usage in available_norms()}
    assert names == {spec.split(":")[0] for spec in CASES}


@pytest.mark.parametrize("spec", sorted(CASES))
def test_every_spec_runs_forward_and_backward_finitely(spec: str) -> None:
    layer, make_cond = build(spec, 4)
    layer = layer.double()
    x = torch.randn(3, 4, 6, 6, dtype=torch.float64, requires_grad=True)
    cond = make_cond(x.detach()) if make_cond else None
    y = call(layer, x, cond)
    assert y.shape == x.shape and torch.isfinite(y).all()
    y.square().sum().backward()
    assert torch.isfinite(x.grad).all()
    if spec != "none":
        assert x.grad.abs().sum() > 0
    layer.eval()
    assert torch.isfinite(call(layer, x.detach(), cond)).all()


def test_parse_spec_splits_on_colons() -> None:
    assert parse_spec("spade:group:8:3x3") == ("spade", ["group", "8", "3x3"])
    assert parse_spec(" batch ") == ("batch", [])


@pytest.mark.parametrize(
    ("spec", "options", "message"),
    [
        ("bacth", {}, "unknown norm 'bacth'.*valid: none, batch"),
        ("Batch", {}, "lowercase"),
        ("group", {}, "needs the group count"),
        ("group:x", {}, "one positive integer"),
        ("group:0", {}, "one positive integer"),
        ("group::2", {}, "empty part"),
        ("batch:2", {}, "takes no ':' arguments"),
        ("batch", {"num_styles": 3}, "num_styles not understood by 'batch'; it takes: eps"),
        ("ibn:half", {}, "one number"),
        ("cin", {}, "needs the option num_styles"),
        ("cin:nope", {"num_styles": 2}, "unknown statistic 'nope'"),
        ("spade:instance:3x3", {}, "needs the option label_nc"),
        ("spade:batch:3x3", {"label_nc": 2, "affine": True}, "affine not understood"),
        ("", {}, "non-empty string"),
    ],
)
def test_bad_specs_and_options_raise_clear_errors(spec: str, options: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        make_norm(spec, 8, **options)


def test_spec_errors_are_value_errors_and_num_features_is_checked() -> None:
    with pytest.raises(ValueError):
        make_norm("nonsense", 8)
    with pytest.raises(SpecError, match="positive int"):
        make_norm("batch", 0)
    with pytest.raises(SpecError):
        parse_spec(None)  # type: ignore[arg-type]


def test_statistics_registry_builds_parameter_free_parts() -> None:
    for usage in available_stats():
        spec = usage.replace(":G", ":2").replace(":k", ":2")
        stats = make_stats(spec, 4)
        if spec not in ("switchable", "frn"):
            assert not list(stats.parameters()), spec
    with pytest.raises(SpecError, match="unknown statistic"):
        make_stats("cin", 4)


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="abcdefghilnoprstuxy_:0123456789.", max_size=24))
def test_any_string_builds_or_raises_a_value_error(spec: str) -> None:
    try:
        layer = make_norm(spec, 4)
    except ValueError:
        return
    assert isinstance(layer, torch.nn.Module)
