"""Exports, Lightning checkpoints and community ESRGAN files all load through `load_generator`, and our
RRDBNet exports are ESRGAN files to other tools (spandrel)."""

from __future__ import annotations

from pathlib import Path

import pytest
import spandrel
import torch
import yaml

from restoregan.gans.checkpoint import CheckpointError, LoadedGenerator, load_generator, save_export
from restoregan.gans.rrdbnet import RRDBNet
from restoregan.gans.srresnet import SRResNet

# num_grow_ch 32: spandrel's ESRGAN hard-codes the growth channels; other sizes are free
RRDB_KWARGS = {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 16, "num_block": 2, "num_grow_ch": 32, "scale": 4}
RRDB_ARCH = {"_target_": "restoregan.gans.rrdbnet.RRDBNet", **RRDB_KWARGS}
SRRESNET_ARCH = {"_target_": "restoregan.gans.srresnet.SRResNet", "num_feat": 8, "num_block": 2, "scale": 4}
SR4 = {"_target_": "restoregan.tasks.sr.SuperResolutionTask", "scale": 4}  # SuperResolutionTask(4).config()


def perturb(net: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random non-trivial weights (BasicSR init makes the trunk nearly zero, which hides key mix-ups)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return net.eval()


def tiny_rrdbnet(seed: int = 0) -> RRDBNet:
    return perturb(RRDBNet(**RRDB_KWARGS), seed)


@pytest.fixture(scope="module")
def lr() -> torch.Tensor:
    return torch.rand(1, 3, 12, 10, generator=torch.Generator().manual_seed(0))


def assert_one_line_error(info: pytest.ExceptionInfo, path: Path) -> None:
    message = str(info.value)
    assert message.startswith(str(path)), message
    assert "\n" not in message and len(message) < 500, message


def test_export_round_trip(tmp_path: Path, lr: torch.Tensor) -> None:
    net = tiny_rrdbnet()
    weights = save_export(tmp_path / "export" / "gen", net, RRDB_ARCH, {"task": SR4, "scale": 4, "name": "t"})
    assert weights == tmp_path / "export" / "gen.safetensors"
    description = yaml.safe_load((tmp_path / "export" / "gen.yaml").read_text())
    assert description["generator"] == RRDB_ARCH
    assert (description["task"], description["scale"], description["format_version"]) == (SR4, 4, 2)
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == ["gen.safetensors", "gen.yaml"]  # no temp left

    with torch.no_grad():
        expected = net(lr)
        for path in (weights, tmp_path / "export" / "gen.yaml"):
            loaded = load_generator(path)
            assert isinstance(loaded, LoadedGenerator) and isinstance(loaded.net, RRDBNet)
            assert (loaded.scale, loaded.task, loaded.arch) == (4, SR4, RRDB_ARCH)
            assert not loaded.net.training
            assert torch.equal(loaded.net(lr), expected)

        # the description also travels inside the safetensors metadata: the weights file alone suffices
        (tmp_path / "export" / "gen.yaml").unlink()
        assert torch.equal(load_generator(weights).net(lr), expected)


def test_export_of_srresnet_round_trip(tmp_path: Path, lr: torch.Tensor) -> None:
    net = perturb(SRResNet(num_feat=8, num_block=2, scale=4), 1)
    save_export(tmp_path / "g", net, SRRESNET_ARCH, {"task": SR4, "scale": 4})
    loaded = load_generator(tmp_path / "g.safetensors")
    with torch.no_grad():
        assert torch.equal(loaded.net(lr), net(lr))


def test_rrdbnet_export_loads_in_spandrel_as_esrgan(tmp_path: Path, lr: torch.Tensor) -> None:
    net = tiny_rrdbnet()
    weights = save_export(tmp_path / "gen", net, RRDB_ARCH, {"task": SR4, "scale": 4})
    descriptor = spandrel.ModelLoader().load_from_file(weights)
    assert descriptor.architecture.id == "ESRGAN" and descriptor.scale == 4
    with torch.no_grad():
        diff = (descriptor.model(lr) - net(lr)).abs().max().item()
    assert diff < 1e-4


@pytest.mark.parametrize("wrapper", [None, "params_ema"])
def test_community_esrgan_pth_loads_into_our_rrdbnet(tmp_path: Path, lr: torch.Tensor, wrapper: str | None) -> None:
    """spandrel's own ESRGAN network (the 2018 `model.N` layout) with random weights, saved as a .pth:
    it loads into our RRDBNet with the same output. Real-ESRGAN releases wrap the weights in params_ema."""
    from spandrel.architectures.ESRGAN import ESRGAN

    theirs = perturb(ESRGAN(in_nc=3, out_nc=3, num_filters=16, num_blocks=2, scale=4), 3)
    state = theirs.state_dict()
    assert "model.0.weight" in state and "model.1.sub.0.RDB1.conv1.0.weight" in state
    path = tmp_path / "RRDB_ESRGAN_x4_tiny.pth"
    torch.save({wrapper: state} if wrapper else state, path)

    loaded = load_generator(path)
    assert isinstance(loaded.net, RRDBNet), loaded.source
    assert loaded.arch == RRDB_ARCH and loaded.scale == 4
    assert (loaded.task, loaded.purpose) == (None, "SR")  # a community file: models.py picks the task
    with torch.no_grad():
        assert (loaded.net(lr) - theirs(lr)).abs().max().item() < 1e-4


def test_basicsr_named_pth_loads_into_our_rrdbnet(tmp_path: Path, lr: torch.Tensor) -> None:
    """BasicSR / Real-ESRGAN key names (ours) with sizes to infer, including x2 (pixel-unshuffled input)."""
    kwargs = {**RRDB_KWARGS, "num_feat": 8, "num_block": 3, "num_grow_ch": 4, "scale": 2}
    net = perturb(RRDBNet(**kwargs), 4)
    path = tmp_path / "RealESRGAN_x2_tiny.pth"
    torch.save({"params_ema": net.state_dict()}, path)
    loaded = load_generator(path)
    assert loaded.arch == {"_target_": "restoregan.gans.rrdbnet.RRDBNet", **kwargs} and loaded.scale == 2
    with torch.no_grad():
        assert torch.equal(loaded.net(lr), net(lr))


def test_unsupported_esrgan_variant_falls_back_to_spandrel(tmp_path: Path, lr: torch.Tensor) -> None:
    """An x8 ESRGAN (three upsamplings) does not fit our RRDBNet: spandrel runs it."""
    from spandrel.architectures.ESRGAN import ESRGAN

    theirs = perturb(ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=8), 5)
    path = tmp_path / "ESRGAN_x8_tiny.pth"
    torch.save(theirs.state_dict(), path)
    loaded = load_generator(path)
    assert loaded.scale == 8 and loaded.arch is None and loaded.source.startswith("spandrel ESRGAN")
    with torch.no_grad():
        out = loaded.net(lr)
        assert out.shape == (1, 3, 12 * 8, 10 * 8)
        assert (out - theirs(lr).clamp(0, 1)).abs().max().item() < 1e-4  # spandrel clamps to [0, 1]


def test_lightning_checkpoint_prefers_ema(tmp_path: Path, lr: torch.Tensor) -> None:
    net_g, net_g_ema = tiny_rrdbnet(seed=1), tiny_rrdbnet(seed=2)
    state = {
        **{f"net_g.{k}": v for k, v in net_g.state_dict().items()},
        **{f"net_g_ema.{k}": v for k, v in net_g_ema.state_dict().items()},
        "net_d.conv0.weight": torch.zeros(4, 3, 3, 3),
    }
    ckpt = {
        "state_dict": state,
        "global_step": 10,
        "restoregan": {"generator": RRDB_ARCH, "task": SR4, "scale": 4, "format_version": 2},
    }
    path = tmp_path / "last.ckpt"
    torch.save(ckpt, path)
    loaded = load_generator(path)
    assert loaded.arch == RRDB_ARCH and loaded.scale == 4 and "EMA" in loaded.source
    with torch.no_grad():
        assert torch.equal(loaded.net(lr), net_g_ema(lr))

    # without EMA the generator itself
    ckpt["state_dict"] = {k: v for k, v in state.items() if not k.startswith("net_g_ema.")}
    torch.save(ckpt, path)
    with torch.no_grad():
        assert torch.equal(load_generator(path).net(lr), net_g(lr))


def test_checkpoint_of_another_architecture(tmp_path: Path) -> None:
    """SRResNet weights under an RRDBNet config: one line, not PyTorch's per-key dump."""
    srresnet = SRResNet(num_feat=8, num_block=2, scale=4)
    path = tmp_path / "mixed.ckpt"
    torch.save(
        {
            "state_dict": {f"net_g.{k}": v for k, v in srresnet.state_dict().items()},
            "restoregan": {"generator": RRDB_ARCH, "task": SR4, "scale": 4, "format_version": 2},
        },
        path,
    )
    with pytest.raises(CheckpointError, match="another architecture") as info:
        load_generator(path)
    assert_one_line_error(info, path)
    assert "RRDBNet" in str(info.value)

    # same architecture, other size: also one line
    small = RRDBNet(num_feat=8, num_block=1, num_grow_ch=4)
    save_export(tmp_path / "small", small, RRDB_ARCH, {"task": SR4, "scale": 4})
    with pytest.raises(CheckpointError, match="shape mismatch") as info:
        load_generator(tmp_path / "small.safetensors")
    assert_one_line_error(info, tmp_path / "small.safetensors")


def test_unknown_architecture(tmp_path: Path) -> None:
    path = tmp_path / "mystery.pth"
    torch.save({"encoder.weight": torch.zeros(3, 3)}, path)
    with pytest.raises(CheckpointError, match="unknown architecture") as info:
        load_generator(path)
    assert_one_line_error(info, path)

    ckpt = tmp_path / "renamed.ckpt"
    meta = {"generator": {"_target_": "restoregan.gans.nope.Net"}, "task": SR4, "scale": 4}
    torch.save({"state_dict": {"net_g.conv.weight": torch.zeros(1)}, "restoregan": meta}, ckpt)
    with pytest.raises(CheckpointError, match="unknown generator architecture restoregan.gans.nope.Net") as info:
        load_generator(ckpt)
    assert_one_line_error(info, ckpt)

    meta["generator"] = {"_target_": "restoregan.gans.rrdbnet.RRDBNet", "num_feet": 64}  # a typo in the config
    torch.save({"state_dict": {"net_g.conv.weight": torch.zeros(1)}, "restoregan": meta}, ckpt)
    with pytest.raises(CheckpointError, match="cannot build restoregan.gans.rrdbnet.RRDBNet") as info:
        load_generator(ckpt)
    assert_one_line_error(info, ckpt)


@pytest.mark.parametrize("name", ["missing.pth", "missing.safetensors", "missing.yaml"])
def test_missing_file(tmp_path: Path, name: str) -> None:
    with pytest.raises(CheckpointError, match="not found") as info:
        load_generator(tmp_path / name)
    assert_one_line_error(info, tmp_path / name)


@pytest.mark.parametrize("name", ["notes.txt", "model.pth", "model.ckpt", "model.safetensors", "model.yaml"])
def test_not_a_checkpoint(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text("these are my notes, not a model\n")
    with pytest.raises(CheckpointError, match="not a") as info:
        load_generator(path)
    assert_one_line_error(info, path)
    assert isinstance(info.value, ValueError)


def test_pickled_code_is_not_executed(tmp_path: Path) -> None:
    """A .pth pickling Python objects besides tensors is refused (weights-only loading), in one line."""
    import functools

    path = tmp_path / "suspicious.pth"
    torch.save({"hook": functools.partial(print, "ran")}, path)
    with pytest.raises(CheckpointError, match="not loaded for safety") as info:
        load_generator(path)
    assert_one_line_error(info, path)


# --- files are data: weights-only loading, descriptions of plain data -----------------------------------
def test_train_checkpoint_loads_weights_only(tmp_path: Path, lr: torch.Tensor) -> None:
    """A real train.py checkpoint (a 2-iteration GAN run) is plain data: torch.load(weights_only=True) reads it
    and load_generator, which never unpickles anything else, gives back the EMA generator."""
    from train_utils import compose_train, tiny_overrides

    from restoregan.training.run import train

    result = train(compose_train(tiny_overrides(tmp_path) + ["pretrain_iters=1", "gan_iters=1"]))
    raw = torch.load(result.last_checkpoint, map_location="cpu", weights_only=True)
    assert raw["restoregan"]["generator"]["_target_"] == "restoregan.gans.srresnet.SRResNet"
    loaded = load_generator(result.last_checkpoint)
    assert "EMA" in loaded.source and isinstance(loaded.net, SRResNet)
    with torch.no_grad():
        assert torch.equal(loaded.net(lr), result.module.net_g_ema.eval()(lr))


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_torchscript_archive_is_refused(tmp_path: Path) -> None:
    """spandrel would torch.jit.load a .pt (TorchScript code); we refuse it, in one line."""
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.trace(torch.nn.Conv2d(3, 3, 3), torch.rand(1, 3, 8, 8)), path)
    with pytest.raises(CheckpointError, match="TorchScript archive") as info:
        load_generator(path)
    assert_one_line_error(info, path)


def _export_with(tmp_path: Path, generator: dict | None = None, **description: object) -> Path:
    net = SRResNet(num_feat=8, num_block=2, scale=4)
    weights = save_export(tmp_path / "gen", net, SRRESNET_ARCH, {"task": SR4, "scale": 4})
    yaml_path = weights.with_suffix(".yaml")
    content = yaml.safe_load(yaml_path.read_text())
    content.update(description)
    if generator is not None:
        content["generator"] = generator
    yaml_path.write_text(yaml.safe_dump(content))
    return weights


@pytest.mark.parametrize(
    ("generator", "expected"),
    [
        ({**SRRESNET_ARCH, "num_feat": {"_target_": "builtins.int"}},
         "generator.num_feat: a nested object (_target_: builtins.int) is not allowed; only numbers, strings"),
        ({**SRRESNET_ARCH, "num_feat": {"a": 1}}, "generator.num_feat: a mapping is not allowed"),
        ({**SRRESNET_ARCH, "_partial_": True}, "generator._partial_: not allowed"),
        ({**SRRESNET_ARCH, "_recursive_": False}, "generator._recursive_: not allowed"),
        ({"_target_": "pathlib.Path"}, "generator._target_: pathlib.Path is not allowed"),
        ({"_target_": "restoregan.gans.srresnet.torch.nn.Conv2d"}, "_target_: restoregan.gans.srresnet.torch.nn"),
        ({"_target_": "restoregan.gans.checkpoint.Path"}, "unknown generator architecture restoregan.gans.checkpoint"),
        ({"_target_": "restoregan.gans.srresnet.F"}, "unknown generator architecture restoregan.gans.srresnet.F"),
        ({"_target_": ["restoregan.gans.srresnet.SRResNet"]}, "_target_: ['restoregan.gans.srresnet.SRResNet']"),
    ],
)
def test_description_may_only_build_our_generators_from_plain_data(
    tmp_path: Path, generator: dict, expected: str
) -> None:
    weights = _export_with(tmp_path, generator)
    with pytest.raises(CheckpointError) as info:
        load_generator(weights)
    assert_one_line_error(info, weights.with_suffix(".yaml"))  # the file whose description is refused
    assert expected in str(info.value)


def test_description_of_a_huge_network_fails_on_its_weights(tmp_path: Path) -> None:
    """num_block=10**9 is not built (for hours) before the weights are compared; num_feat=10**6 not allocated."""
    for generator, expected in (({**SRRESNET_ARCH, "num_block": 10**9}, "far larger than the"),
                                ({**SRRESNET_ARCH, "num_feat": 10**6}, "shape mismatches")):
        weights = _export_with(tmp_path, generator)
        with pytest.raises(CheckpointError, match=expected):
            load_generator(weights)


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [("{not json", "not a valid export description (invalid JSON"),
     ('{"generator": {"_target_": "restoregan.gans.srresnet.SRResNet"}, "scale": "4"}', "scale: '4' is not a positive"),
     ('[1, 2]', "its description is a list, not a mapping")],
)
def test_bad_safetensors_metadata_is_one_line(tmp_path: Path, metadata: str, expected: str) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "odd.safetensors"
    save_file(SRResNet(num_feat=8, num_block=2, scale=4).state_dict(), path,
              metadata={"format": "pt", "restoregan": metadata})
    with pytest.raises(CheckpointError) as info:
        load_generator(path)
    assert expected in str(info.value)
    assert_one_line_error(info, path)


def test_colorizer_export_needs_no_imagenet_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An export trained from ImageNet weights says `pretrained: true`; every weight comes from the file, so
    loading it must neither fetch nor read a backbone (offline here, with an empty cache)."""
    import urllib.error

    from restoregan.gans.colorize_unet import ColorizeUNet

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_cache"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)

    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("offline (test)")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    net = perturb(ColorizeUNet("resnet18", pretrained=False, decoder_channels=[16, 16, 16, 8, 8]), 6)
    arch = {"_target_": "restoregan.gans.colorize_unet.ColorizeUNet", "encoder": "resnet18", "pretrained": True,
            "decoder_channels": [16, 16, 16, 8, 8]}
    weights = save_export(tmp_path / "colorizer", net, arch, {"task": {"_target_": "restoregan.tasks.colorize.ColorizationTask"}, "scale": 1})
    loaded = load_generator(weights)
    assert loaded.arch == arch
    lum = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(loaded.net(lum), net(lum))
