"""Pixel, perceptual and adversarial losses, the weighted sum, and every loss config."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from restoregan.losses import adversarial
from restoregan.losses.perceptual import PerceptualLoss
from restoregan.losses.pixel import CharbonnierLoss, L1Loss, MSELoss
from restoregan.losses.weighted import WeightedSum
from restoregan.pretrained import MissingWeightsError

ROOT = Path(__file__).resolve().parents[1]
ADVERSARIAL = [
    adversarial.VanillaGANLoss,
    adversarial.LSGANLoss,
    adversarial.HingeGANLoss,
    adversarial.WGANGPLoss,
    adversarial.RelativisticAverageGANLoss,
]


# --- pixel ----------------------------------------------------------------------------------------
def test_pixel_losses() -> None:
    pred, target = torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.5)
    assert L1Loss()(pred, target) == pytest.approx(0.5)
    assert MSELoss()(pred, target) == pytest.approx(0.25)


def test_charbonnier_is_l1_for_large_errors_and_smooth_at_zero() -> None:
    target = torch.rand(2, 3, 8, 8)
    pred = target + torch.where(torch.rand_like(target) > 0.5, 1.0, -1.0) * (0.5 + torch.rand_like(target))
    charb = CharbonnierLoss(eps=1e-3)
    assert charb(pred, target) == pytest.approx(L1Loss()(pred, target).item(), rel=1e-5)
    assert charb(target, target) == pytest.approx(1e-3)  # eps at zero error, where L1 has a kink


# --- adversarial ----------------------------------------------------------------------------------
class MeanD(nn.Module):
    """D(x) = sign * 10 * (mean(x) - 0.5): separates bright 'real' from dark 'fake' images, or inverted."""

    def __init__(self, sign: float) -> None:
        super().__init__()
        self.sign = sign

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sign * 10 * (x.mean(dim=(1, 2, 3)) - 0.5).unsqueeze(1)  # (b, 1)


@pytest.mark.parametrize("loss_cls", ADVERSARIAL, ids=lambda c: c.__name__)
def test_d_loss_prefers_a_discriminator_that_separates(loss_cls) -> None:
    loss = loss_cls()
    real, fake = torch.full((4, 3, 8, 8), 0.8), torch.full((4, 3, 8, 8), 0.2)
    good, logs = loss.d_loss(MeanD(+1), real, fake)
    bad, _ = loss.d_loss(MeanD(-1), real, fake)
    assert good < bad
    assert logs["d_real"] > logs["d_fake"]
    assert not logs["d_real"].requires_grad


@pytest.mark.parametrize("loss_cls", ADVERSARIAL, ids=lambda c: c.__name__)
def test_g_loss_gradient_reaches_fake_only(loss_cls) -> None:
    torch.manual_seed(0)
    # a per-pixel D, like the U-Net one: the loss averages over all its outputs
    net_d = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(4, 1, 3, padding=1))
    real = torch.rand(2, 3, 8, 8, requires_grad=True)
    fake = torch.rand(2, 3, 8, 8, requires_grad=True)
    l_g = loss_cls().g_loss(net_d, real, fake)
    assert l_g.dim() == 0 and torch.isfinite(l_g)
    g_fake, g_real = torch.autograd.grad(l_g, [fake, real], allow_unused=True)
    assert g_fake is not None and g_fake.abs().sum() > 0
    assert g_real is None or g_real.abs().sum() == 0


def test_d_loss_runs_with_a_per_pixel_discriminator() -> None:
    net_d = nn.Conv2d(3, 1, 3, padding=1)
    for loss_cls in ADVERSARIAL:
        l_d, logs = loss_cls().d_loss(net_d, torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8))
        assert l_d.dim() == 0 and torch.isfinite(l_d)
        assert {"d_real", "d_fake"} <= set(logs)


def linear_critic(norm: float) -> nn.Module:
    """D(x) = <w, x> with ||w|| = norm: its gradient w.r.t. x has that norm everywhere."""
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 1, bias=False))
    with torch.no_grad():
        net[1].weight.normal_().mul_(norm / net[1].weight.norm())
    return net


def test_wgan_gp_penalty() -> None:
    torch.manual_seed(0)
    real, fake = torch.rand(4, 3, 8, 8), torch.rand(4, 3, 8, 8)
    gp = adversarial.WGANGPLoss.gradient_penalty
    assert gp(linear_critic(1.0), real, fake).item() == pytest.approx(0.0, abs=1e-8)  # 1-Lipschitz
    assert gp(linear_critic(5.0), real, fake).item() == pytest.approx(16.0, rel=1e-4)  # (5 - 1)^2

    # the penalty is part of the D loss and differentiable w.r.t. D's weights (create_graph)
    net_d = linear_critic(5.0)
    loss = adversarial.WGANGPLoss(gp_weight=10.0)
    l_d, logs = loss.d_loss(net_d, real, fake)
    assert logs["gp"].item() == pytest.approx(16.0, rel=1e-4)
    (grad_w,) = torch.autograd.grad(l_d, [net_d[1].weight])
    w = net_d[1].weight.detach()
    # d/dw [gp_weight * (||w|| - 1)^2] = 2 * 10 * 4 * w / ||w||; the Wasserstein term adds mean(fake - real)
    expected = 80 * w / w.norm() + (fake.flatten(1) - real.flatten(1)).mean(0)
    assert torch.allclose(grad_w, expected, atol=1e-4)


def test_relativistic_loss_matches_the_formula() -> None:
    d_real, d_fake = torch.tensor([[2.0], [1.0]]), torch.tensor([[-1.0], [0.5]])
    outputs = {"r": d_real, "f": d_fake}
    net_d = lambda x: outputs[x]  # noqa: E731
    l_d, _ = adversarial.RelativisticAverageGANLoss().d_loss(net_d, "r", "f")
    bce = F.binary_cross_entropy_with_logits
    expected = 0.5 * (bce(d_real - d_fake.mean(), torch.ones(2, 1)) + bce(d_fake - d_real.mean(), torch.zeros(2, 1)))
    assert l_d.item() == pytest.approx(expected.item())


# --- perceptual -----------------------------------------------------------------------------------
def seeded_loss(**kwargs) -> PerceptualLoss:
    torch.manual_seed(0)
    return PerceptualLoss(pretrained=False, **kwargs)


@pytest.fixture(scope="module")
def vgg_features() -> nn.Sequential:
    """torchvision's VGG19 features with the weights `seeded_loss` gets."""
    torch.manual_seed(0)
    return torchvision.models.vgg19(weights=None).features.eval()


@pytest.fixture(scope="module")
def images() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.rand(2, 3, 32, 32, generator=g), torch.rand(2, 3, 32, 32, generator=g)


def test_perceptual_layers_and_activation(vgg_features, images) -> None:
    pred, target = images
    norm = lambda x: (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor(  # noqa: E731
        [0.229, 0.224, 0.225]
    ).view(1, 3, 1, 1)

    def reference(stop: int) -> torch.Tensor:  # L1 between torchvision features[:stop]
        with torch.no_grad():
            return F.l1_loss(vgg_features[:stop](norm(pred.clone())), vgg_features[:stop](norm(target.clone())))

    pre = seeded_loss(layer_weights={"conv2_2": 1.0}, pre_activation=True)
    post = seeded_loss(layer_weights={"conv2_2": 1.0}, pre_activation=False)
    assert len(pre.vgg) == 8 and len(post.vgg) == 9  # truncated after conv2_2 (index 7) / its ReLU (index 8)
    with torch.no_grad():
        v_pre, v_post = pre(pred, target), post(pred, target)
    assert v_pre.item() == pytest.approx(reference(8).item(), rel=1e-5)
    assert v_post.item() == pytest.approx(reference(9).item(), rel=1e-5)
    assert v_pre.item() != pytest.approx(v_post.item(), rel=1e-3)

    with torch.no_grad():
        assert pre(target, target) == 0
        assert pre(pred, target) > 0

    # frozen, in eval mode whatever its owner does, and the gradient reaches the prediction
    pre.train()
    assert not pre.vgg.training and not any(p.requires_grad for p in pre.parameters())
    x = pred.clone().requires_grad_(True)
    pre(x, target).backward()
    assert x.grad.abs().sum() > 0


def test_perceptual_weights_several_layers(images) -> None:
    pred, target = images
    both = seeded_loss(layer_weights={"conv1_2": 0.1, "conv3_4": 1.0}).eval()
    feats_p, feats_t = both.features(pred), both.features(target)
    l1 = {name: F.l1_loss(feats_p[name], feats_t[name]) for name in feats_p}
    expected = 0.1 * l1["conv1_2"] + l1["conv3_4"]
    assert both(pred, target).item() == pytest.approx(expected.item(), rel=1e-5)
    assert set(feats_p) == {"conv1_2", "conv3_4"} and len(both.vgg) == 17
    with pytest.raises(ValueError, match="relu5_4.*conv5_4"):
        PerceptualLoss(layer_weights={"relu5_4": 1.0}, pretrained=False)


def test_perceptual_state_dict_holds_no_vgg() -> None:
    """Checkpoints do not carry the 80 MB of ImageNet constants; strict loading still works."""
    loss = WeightedSum({"percep": {"weight": 1.0, "fn": seeded_loss(layer_weights={"conv1_1": 1.0})}})
    assert list(loss.state_dict()) == []
    loss.load_state_dict({}, strict=True)


def test_perceptual_pretrained_offline_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No cached weights, no network: the error says where to put the file, the URL and the switch."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # get_dir() then follows TORCH_HOME

    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("network unreachable (test)")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(MissingWeightsError) as info:
        PerceptualLoss(pretrained=True)
    message = str(info.value)
    assert "TORCH_HOME" in message and str(tmp_path) in message
    assert torchvision.models.VGG19_Weights.IMAGENET1K_V1.url in message
    assert "pretrained_backbones" in message


# --- weighted sum ---------------------------------------------------------------------------------
class NaNLoss(nn.Module):
    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.tensor(float("nan"))


def test_weighted_sum() -> None:
    pred, target = torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.5)
    loss = WeightedSum({
        "pix": {"weight": 0.5, "fn": L1Loss()},
        "mse": {"weight": 2.0, "fn": MSELoss()},
        "off": {"weight": 0.0, "fn": NaNLoss()},  # weight 0: never evaluated
    })
    total, parts = loss(pred, target)
    assert total.item() == pytest.approx(0.5 * 0.5 + 2.0 * 0.25)
    assert set(parts) == {"pix", "mse"} and parts["mse"].item() == pytest.approx(0.25)

    bad = WeightedSum({"pix": {"weight": 1.0, "fn": L1Loss()}, "broken": {"weight": 1.0, "fn": NaNLoss()}})
    with pytest.raises(FloatingPointError, match="'broken'.*nan"):
        bad(pred, target)


# --- configs --------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", sorted((ROOT / "conf" / "loss").glob("*.yaml")), ids=lambda p: p.stem)
def test_loss_config(path: Path) -> None:
    """Each loss config builds (random VGG) and gives finite values; its adversarial term fits the interface."""
    # the keys loss configs interpolate from train.yaml (colour-space losses follow the colorization task's)
    cfg = OmegaConf.create({"pretrained_backbones": False, "task": {"color_space": "yuv"}, "loss": OmegaConf.load(path)}).loss
    assert set(cfg) == {"pretrain", "content", "adversarial"}
    pred, target = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    for stage in ("pretrain", "content"):
        terms = WeightedSum({name: {"weight": t.weight, "fn": instantiate(t.fn)} for name, t in cfg[stage].items()})
        total, parts = terms(pred, target)
        assert torch.isfinite(total) and set(parts) <= set(cfg[stage])
    if cfg.adversarial is not None:
        adv = instantiate(cfg.adversarial.fn)
        net_d = nn.Conv2d(3, 1, 3, padding=1)
        l_d, logs = adv.d_loss(net_d, target, pred)
        assert torch.isfinite(l_d) and torch.isfinite(adv.g_loss(net_d, target, pred))
        assert cfg.adversarial.weight > 0
