import numpy as np
import pytest
import torch

from model import build_model
from model.preprocessing import to_tensor
from model.regions import NUM_REGIONS


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def test_student_parameter_count_matches_paper():
    # The paper's student has 0.087M parameters.
    assert 70_000 <= n_params(build_model("student")) <= 110_000


def test_teacher_parameter_count_and_width():
    full = n_params(build_model("teacher"))
    assert 14_000_000 <= full <= 17_000_000  # VGG16 conv layers + region head (paper: 16.03M)
    quarter = n_params(build_model("teacher", width=0.25))
    assert quarter < full / 10


@pytest.mark.parametrize("name,kw", [("student", {}), ("teacher", {"width": 0.125})])
@pytest.mark.parametrize("hw", [(256, 352), (256, 256), (416, 256), (32, 2048)])
def test_output_shapes_any_input_size(name, kw, hw):
    model = build_model(name, **kw).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, *hw))
    assert out.logits.shape == (2, NUM_REGIONS)
    assert out.features.shape == (2, NUM_REGIONS, model.config.embed_dim)
    feats = model.forward_features(torch.randn(1, 3, *hw))
    assert [tuple(f.shape[-2:]) for f in feats] == [(5, 5), (3, 3)]


@pytest.mark.parametrize("name,kw", [("student", {}), ("teacher", {"width": 0.125})])
def test_gradients_are_finite_and_reach_every_parameter(name, kw):
    torch.manual_seed(0)
    model = build_model(name, **kw).train()
    out = model(torch.randn(2, 3, 256, 320))
    loss = torch.nn.functional.binary_cross_entropy_with_logits(out.logits, torch.rand(2, NUM_REGIONS))
    loss = loss + out.features.pow(2).mean()
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
    assert any(p.grad.abs().sum() > 0 for p in model.parameters())


def test_deterministic_construction_and_inference():
    torch.manual_seed(1)
    a = build_model("student").eval()
    torch.manual_seed(1)
    b = build_model("student").eval()
    x = to_tensor(np.random.default_rng(0).integers(0, 255, (256, 352, 3), dtype=np.uint8))
    with torch.inference_mode():
        ya, yb, ya2 = a(x).logits, b(x).logits, a(x).logits
    assert torch.equal(ya, yb) and torch.equal(ya, ya2)


def test_batched_equals_single_and_channels_last():
    torch.manual_seed(2)
    model = build_model("student").eval()
    imgs = [np.random.default_rng(i).integers(0, 255, (256, 320, 3), dtype=np.uint8) for i in range(3)]
    with torch.inference_mode():
        batched = model(to_tensor(imgs)).logits
        single = torch.cat([model(to_tensor(im)).logits for im in imgs])
        cl = model.to(memory_format=torch.channels_last)(to_tensor(imgs)).logits
    assert torch.allclose(batched, single, atol=1e-5)
    assert torch.allclose(batched, cl, atol=1e-5)


def test_config_overrides_and_unknown_fields():
    from model.registry import CheckpointError

    m = build_model("student", {"channels": [8, 16, 16, 24, 24, 32], "embed_dim": 32})
    assert m.config.channels == (8, 16, 16, 24, 24, 32)
    with pytest.raises(CheckpointError, match="unknown fields"):
        build_model("student", {"depth": 9})
    with pytest.raises(CheckpointError, match="unknown model"):
        build_model("resnet")
