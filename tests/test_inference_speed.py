"""infer.py's fast defaults (restoregan.inference.speed): bf16 only where the device does it natively and the model's
output stays within 50 dB of fp32's, channels_last where it pays, exact=true for fp32 throughout; and the quickstart
generators' fast outputs measured against their own fp32 outputs, on a real photo, with weights that are not the
identity they start as."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image
from torch import nn

import restoregan.inference.speed as speed
from cli_utils import infer_in_process
from conftest import ROOT
from restoregan.inference.speed import FAST_TOLERANCE_DB, Switches, resolve_switches, wants_channels_last
from restoregan.inference.tiled import prepare_for_inference

CPU = torch.device("cpu")
AUTO = OmegaConf.create({"bf16": "auto", "channels_last": "auto", "compile": False, "exact": False})


class Cancelling(nn.Module):
    """y = x + a(x) - b(x) with a == b up to a small correction, both huge: fp32 keeps the correction, bf16's 8-bit
    mantissa loses it (a model bf16 is not good enough for)."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 3, 3, padding=1), nn.Conv2d(3, 3, 3, padding=1)
        with torch.no_grad():
            self.a.weight.normal_(0, 300)
            self.b.weight.copy_(self.a.weight)
            self.b.weight[:, :, 1, 1] += 0.05 * torch.eye(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.a(x) - self.b(x)


class Gain(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.1 * self.conv(x)


@pytest.fixture
def native(monkeypatch):
    monkeypatch.setattr(speed, "native_bf16", lambda device: True)


def test_exact_turns_everything_off(native) -> None:
    cfg = OmegaConf.create({"bf16": True, "channels_last": True, "compile": True, "exact": True})
    assert resolve_switches(cfg, Gain(), CPU) == (Switches(), [])


def test_auto_bf16_only_where_the_device_does_it(monkeypatch) -> None:
    monkeypatch.setattr(speed, "native_bf16", lambda device: False)
    assert resolve_switches(AUTO, Gain(), CPU)[0].bf16 is False
    monkeypatch.setattr(speed, "native_bf16", lambda device: True)
    assert resolve_switches(AUTO, Gain(), CPU)[0].bf16 is True
    assert resolve_switches(AUTO, Gain(), torch.device("meta"))[0].bf16 is False  # a device it knows nothing of
    # on CUDA half=auto's fp16 is the fast path already: auto leaves bf16 off there
    assert speed.wants_bf16("auto", torch.device("cuda")) is False and speed.wants_bf16(True, torch.device("cuda"))


def test_the_probe_leaves_the_random_state_alone() -> None:
    class Own(Gain):
        def example_inputs(self):
            return (torch.rand(1, 3, 16, 16),)

    for net in (Own(), Gain()):
        before = torch.random.get_rng_state()
        first = speed.probe_inputs(net, 3)
        assert torch.equal(torch.random.get_rng_state(), before)
        assert torch.equal(speed.probe_inputs(net, 3)[0], first[0])  # and the probe is the same each time


def test_a_model_that_fails_in_bf16_runs_fp32_with_a_note(native) -> None:
    class NoBf16(Gain):
        def forward(self, x):
            if torch.is_autocast_enabled("cpu"):
                raise RuntimeError("\"slow_conv2d_cpu\" not implemented for 'BFloat16'\nmore lines")
            return super().forward(x)

    switches, notes = resolve_switches(AUTO, NoBf16().eval(), CPU, what="odd.pth")
    assert switches.bf16 is False and len(notes) == 1
    assert notes[0].startswith("note: odd.pth: bf16 failed on a probe input (RuntimeError: ") and "\n" not in notes[0]


def test_a_model_bf16_spoils_runs_fp32_with_a_note(native) -> None:
    torch.manual_seed(0)
    net = Cancelling().eval()
    assert speed.bf16_psnr(net, 3, CPU) < FAST_TOLERANCE_DB  # the premise: bf16 really is off here
    switches, notes = resolve_switches(AUTO, net, CPU, what="cancel.safetensors")
    assert switches.bf16 is False
    assert len(notes) == 1 and "cancel.safetensors" in notes[0] and "runs fp32" in notes[0]
    # asked for explicitly, bf16 is what the user gets
    assert resolve_switches(OmegaConf.merge(AUTO, {"bf16": True}), net, CPU)[0].bf16 is True


def test_channels_last_auto_follows_the_net_and_device() -> None:
    plain, slow = Gain(), Gain()
    slow.channels_last_on_cpu = False
    assert wants_channels_last("auto", plain, CPU) and not wants_channels_last("auto", slow, CPU)
    assert wants_channels_last("auto", slow, torch.device("cuda"))  # NHWC is the GPU's layout for every net
    assert not wants_channels_last(False, plain, CPU)
    assert not wants_channels_last("auto", plain, CPU, own=False)  # a community model: not measured, left alone
    assert wants_channels_last(True, plain, CPU, own=False)
    assert not wants_channels_last("auto", plain, torch.device("mps"))


@pytest.mark.parametrize("key, value, takes", [("bf16", "fast", "auto, true or false"),
                                             ("bf16", 1, "auto, true or false"),
                                             ("channels_last", 0.5, "auto, true or false"),
                                             ("compile", "auto", "true or false"), ("exact", "yes", "true or false")])
def test_bad_values_are_refused_in_one_line(key: str, value, takes: str) -> None:
    with pytest.raises(ValueError, match=rf"^{key}=.*: expected {takes}$"):
        resolve_switches(OmegaConf.merge(AUTO, {key: value}), Gain(), CPU)


def _photo(h: int = 72, w: int = 96) -> torch.Tensor:
    """A real photo (scikit-image's astronaut, bundled with the package) cut to h x w, in [0, 1]."""
    from skimage import data

    img = data.astronaut()[100:100 + 2 * h:2, 150:150 + 2 * w:2]
    return torch.from_numpy(img.astype(np.float32) / 255).permute(2, 0, 1)[None]


def _generator(name: str) -> nn.Module:
    cfg = OmegaConf.load(ROOT / "conf" / "generator" / f"{name}.yaml")
    root = OmegaConf.create({"task": {"scale": 2}, "pretrained_backbones": False, "g": cfg})
    torch.manual_seed(0)
    net = instantiate(OmegaConf.to_container(root, resolve=True)["g"])
    with torch.no_grad():  # the zero-initialised heads (identity at the start) made random like a trained net's
        for p in net.parameters():
            if p.dim() > 1 and float(p.abs().max()) == 0:
                nn.init.normal_(p, 0, 0.02)
        if hasattr(net, "example_inputs"):  # spectral norm's power iteration catches up with the new weights
            for _ in range(10):
                net(*net.example_inputs())
    return net.eval()


@pytest.mark.parametrize("name", ["restore_unet_small", "colorize_unet_small", "srresnet_small", "interp_small",
                                  "temporal_restorer_small"])
def test_fast_defaults_stay_within_tolerance_of_fp32(name: str, native) -> None:
    net = _generator(name)
    x = _photo()
    if name.startswith("colorize"):
        args = (x.mean(1, keepdim=True),)
    elif name.startswith("interp"):
        args = (x, torch.roll(x, 3, dims=-1), torch.tensor([0.5]))
    elif name.startswith("temporal"):
        args = (torch.stack([torch.roll(x[0], k, dims=-1) for k in range(4)])[None],)
    else:
        args = (x,)
    with torch.inference_mode():
        exact = net(*args)
        switches, notes = resolve_switches(AUTO, net, CPU, 1 if name.startswith("colorize") else 3)
        assert switches.bf16 and switches.channels_last and not notes
        fast = prepare_for_inference(net, switches.channels_last, switches.compile, switches.bf16)(*args)
    assert fast.dtype == torch.float32 and fast.shape == exact.shape
    mse = float((fast - exact).pow(2).mean())
    assert 0 < mse, "the fast path should differ from fp32 at all (is bf16 on?)"
    assert 10 * np.log10(1 / mse) >= FAST_TOLERANCE_DB


def test_infer_default_and_exact_outputs_agree(tmp_path: Path, native) -> None:
    """infer.py with its defaults (bf16 and channels_last on) against exact=true on the same photo: 8-bit outputs
    within the tolerance, and exact=true differs from the fast run at all (the switch does something)."""
    from restoregan.gans.checkpoint import save_export
    from restoregan.tasks.restore import RestorationTask

    net = _generator("restore_unet_small")
    arch = OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / "generator" / "restore_unet_small.yaml"))
    ckpt = save_export(tmp_path / "restore", net, arch, {"task": RestorationTask().config(), "scale": 1})
    src = tmp_path / "photo.png"
    Image.fromarray((_photo(128, 160)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(src)
    outs = {}
    for mode in ("false", "true"):
        (target,) = infer_in_process([f"ckpt={ckpt}", f"input={src}", f"output={tmp_path / mode}", f"exact={mode}"])
        outs[mode] = np.asarray(Image.open(target), dtype=np.float64) / 255
    mse = float(((outs["false"] - outs["true"]) ** 2).mean())
    assert mse > 0
    assert 10 * np.log10(1 / mse) >= FAST_TOLERANCE_DB


def test_each_stages_bf16_choice_is_in_the_resume_hash(tmp_path: Path) -> None:
    """A resumed film run reuses segments only when every stage runs as before: a stage whose bf16 choice differs
    (auto resolved on another machine, or its probe check falling back) changes the hash."""
    from pipeline_utils import compose_infer
    from restoregan.pipeline.run import config_hash
    from restoregan.tasks.base import RunOptions

    cfg = compose_infer(["pipeline=film"])
    ckpt = tmp_path / "m.safetensors"
    ckpt.write_bytes(b"weights")
    order = ["restore", "upscale"]
    args = (cfg, order, {n: {} for n in order}, {n: ckpt for n in order}, RunOptions())
    digests = {config_hash(*args, bf16={"restore": r, "upscale": u})[0] for r in (False, True) for u in (False, True)}
    assert len(digests) == 4
    assert config_hash(*args, bf16={"restore": True})[1]["bf16"] == {"restore": True, "upscale": False}
