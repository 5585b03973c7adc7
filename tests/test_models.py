import numpy as np
import pytest
import torch

from model import build_model
from model.preprocessing import to_tensor
from model.regions import NUM_REGIONS
from model.registry import load_checkpoint, save_checkpoint
from model.student import (FAST_LAYOUT, REFERENCE_LAYOUT, SEPARABLE_LAYOUT, WIDE96_LAYOUT, WIDE_CONTEXT_LAYOUT,
                           WIDE_LAYOUT)


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


def test_reference_layout_parameters_and_shared_mapper():
    model = build_model("student", **REFERENCE_LAYOUT)
    assert n_params(model) == 76_529  # issue 17's plain reference: 6 convs 16-16-32-32-64-64 + one shared head
    assert model.head.mappers[0] is model.head.mappers[1]
    pools = [type(m).__name__ for layer in model.layers for m in layer if isinstance(m, torch.nn.MaxPool2d)]
    assert len(pools) == 2
    # both grids pool features at 1/8 of the input
    x = torch.randn(1, 3, 256, 344)
    for layer in model.layers[:5]:
        x = layer(x)
    assert tuple(x.shape[-2:]) == (32, 43)


def test_wide_layout_is_the_fast_layout_widened_within_the_limit():
    fast, wide = build_model("student", **FAST_LAYOUT), build_model("student", **WIDE_LAYOUT)
    assert n_params(fast) == 76_529 and n_params(wide) == 104_177 <= 110_000  # the product's limit
    assert wide.head.mappers[0] is wide.head.mappers[1]
    x = torch.randn(1, 3, 256, 341)
    with torch.no_grad():  # same strides and pooling: the same feature-map sizes, wider
        f, w = fast.eval().forward_features(x), wide.eval().forward_features(x)
    assert [t.shape[1] for t in w] == [72, 72] and [t.shape[2:] for t in w] == [t.shape[2:] for t in f]


def test_context_lets_every_region_see_the_whole_image_within_the_limit():
    torch.manual_seed(0)
    wide, ctx = build_model("student", **WIDE_LAYOUT).eval(), build_model("student", **WIDE_CONTEXT_LAYOUT).eval()
    assert n_params(ctx) == 108_785 <= 110_000  # only the shared mapping FC is wider
    assert [m.in_features for m in ctx.head.mappers] == [144, 144]
    x = torch.randn(1, 3, 256, 341)
    far = x.clone()
    far[..., -48:, -48:] = 3.0  # change only the bottom-right corner
    with torch.no_grad():
        assert torch.equal(wide(x).logits[:, 0], wide(far).logits[:, 0])  # top-left region: out of reach
        assert not torch.allclose(ctx(x).logits[:, 0], ctx(far).logits[:, 0])  # the image's mean moved
        feats = ctx.forward_features(x)
    # the context channels are the same vector in every region of both grids
    assert torch.equal(feats[0][:, 72:, 0, 0], feats[0][:, 72:, 4, 4])
    assert torch.equal(feats[0][:, 72:, 2, 2], feats[1][:, 72:, 1, 1])
    with pytest.raises(ValueError, match="context"):
        build_model("student", **{**WIDE_LAYOUT, "context": "max"})


def test_separable_layout_is_wider_at_the_regions_within_the_limit():
    wide, sep = build_model("student", **WIDE_LAYOUT).eval(), build_model("student", **SEPARABLE_LAYOUT).eval()
    assert n_params(sep) == 106_209 <= 110_000  # the product's limit
    first, second = sep.layers[0][0], sep.layers[1][0]
    assert first.groups == 1 and first.kernel_size == (3, 3)  # the first convolution sees all three colours
    assert second.groups == second.in_channels == 16 and sep.layers[1][3].kernel_size == (1, 1)  # depthwise, pointwise
    x = torch.randn(1, 3, 256, 341)
    with torch.no_grad():  # same strides and pooling as the wide layout: the same grids, 192 channels each
        w, s = wide.forward_features(x), sep.forward_features(x)
    assert [t.shape[1] for t in s] == [192, 192] and [t.shape[2:] for t in s] == [t.shape[2:] for t in w]
    # a separable layout of the same widths has ~1/8 of the full one's convolution weights
    full = build_model("student", **{**SEPARABLE_LAYOUT, "separable": False})
    assert n_params(full) > 6 * n_params(sep)


def test_wide96_layout_makes_only_the_sixth_convolution_separable(tmp_path):
    wide, w96 = build_model("student", **WIDE_LAYOUT).eval(), build_model("student", **WIDE96_LAYOUT).eval()
    assert n_params(w96) == 98_257 <= 110_000
    # convolutions 1-5 are full 3x3 convolutions, the sixth depthwise 3x3 then pointwise 1x1
    assert all(layer[0].groups == 1 and layer[0].kernel_size == (3, 3) for layer in w96.layers[:5])
    sixth = w96.layers[5]
    assert sixth[0].groups == sixth[0].in_channels == 96 and sixth[0].stride == (2, 2) and sixth[3].kernel_size == (1, 1)
    x = torch.randn(2, 3, 256, 341, requires_grad=True)
    w, f = wide.forward_features(x), w96.forward_features(x)
    assert [t.shape[1] for t in f] == [96, 96] and [t.shape[2:] for t in f] == [t.shape[2:] for t in w]
    w96(x).logits.sum().backward()  # gradients reach the input through the separable convolution
    assert x.grad.abs().sum() > 0 and sixth[0].weight.grad.abs().sum() > 0
    # the checkpoint stores the option and restores the same function
    save_checkpoint(tmp_path / "s.pt", w96, {})
    loaded, _ = load_checkpoint(tmp_path / "s.pt", expect="student")
    assert loaded.config.separable_convs == (6,)
    with torch.inference_mode():
        assert torch.equal(w96(x.detach()).logits, loaded(x.detach()).logits)
    with pytest.raises(ValueError, match="separable_convs"):
        build_model("student", **{**WIDE96_LAYOUT, "separable_convs": (7,)})


def test_reference_layout_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = build_model("student", **REFERENCE_LAYOUT).eval()
    save_checkpoint(tmp_path / "s.pt", model, {"threshold": 0.3})
    loaded, meta = load_checkpoint(tmp_path / "s.pt", expect="student")
    assert loaded.head.mappers[0] is loaded.head.mappers[1] and meta["threshold"] == 0.3
    x = torch.randn(1, 3, 256, 341)
    with torch.inference_mode():
        assert torch.equal(model(x).logits, loaded(x).logits)


def test_layout_errors_are_clear():
    with pytest.raises(ValueError, match="pool_after"):
        build_model("student", pool_after=(6,))
    with pytest.raises(ValueError, match="shared mapper"):
        build_model("student", shared_mapper=True)  # default layout: 48 and 64 channels


MODELS = [("student", {}), ("student", REFERENCE_LAYOUT), ("student", WIDE_LAYOUT), ("student", WIDE_CONTEXT_LAYOUT),
          ("student", SEPARABLE_LAYOUT), ("teacher", {"width": 0.125})]


@pytest.mark.parametrize("name,kw", MODELS)
@pytest.mark.parametrize("hw", [(256, 352), (256, 256), (416, 256), (32, 2048)])
def test_output_shapes_any_input_size(name, kw, hw):
    model = build_model(name, **kw).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, *hw))
    assert out.logits.shape == (2, NUM_REGIONS)
    assert out.features.shape == (2, NUM_REGIONS, model.config.embed_dim)
    feats = model.forward_features(torch.randn(1, 3, *hw))
    assert [tuple(f.shape[-2:]) for f in feats] == [(5, 5), (3, 3)]


@pytest.mark.parametrize("name,kw", MODELS)
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


def test_ensemble_averages_region_probabilities_and_keeps_the_first_members_features(tmp_path):
    from model.ensemble import RegionEnsemble
    from training.loop import load_frozen
    torch.manual_seed(0)
    members = [build_model("student", **REFERENCE_LAYOUT).eval() for _ in range(3)]
    ensemble = RegionEnsemble(members).eval()
    x = torch.randn(2, 3, 128, 160)
    with torch.no_grad():
        outs = [m(x) for m in members]
        got = ensemble(x)
    assert got.logits.shape == (2, NUM_REGIONS) and torch.equal(got.features, outs[0].features)
    mean = torch.stack([torch.sigmoid(o.logits) for o in outs]).mean(0)
    assert torch.allclose(torch.sigmoid(got.logits), mean, atol=1e-6)
    # the mean differs from every member (they disagree), one member is itself
    assert all(not torch.allclose(got.logits, o.logits, atol=1e-3) for o in outs)
    with torch.no_grad():
        assert torch.allclose(RegionEnsemble(members[:1])(x).logits, outs[0].logits, atol=1e-4)
    with pytest.raises(ValueError, match="at least one member"):
        RegionEnsemble([])

    # load_frozen: several checkpoints make one frozen ensemble; one stays the model itself
    paths = []
    for i, m in enumerate(members):
        paths.append(str(tmp_path / f"s{i}.pt"))
        save_checkpoint(paths[-1], m, {"preprocess": {"fixed_long_edge": 341}})
    frozen = load_frozen(paths, channels_last=False)
    assert isinstance(frozen, RegionEnsemble) and len(frozen.members) == 3 and not frozen.training
    assert not any(p.requires_grad for p in frozen.parameters())
    with torch.no_grad():
        assert torch.allclose(frozen(x).logits, got.logits, atol=1e-5)
    assert not isinstance(load_frozen(paths[0], channels_last=False), RegionEnsemble)
    save_checkpoint(paths[2], members[2], {"preprocess": {"fixed_long_edge": 0}})
    with pytest.raises(ValueError, match="different input shapes"):
        load_frozen(paths, channels_last=False)
