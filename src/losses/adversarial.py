"""Adversarial losses. Each is an nn.Module with the interface GANModule relies on (docs/ARCHITECTURE.md):

    d_loss(net_d, real, fake) -> (loss, {"d_real": mean D(real), "d_fake": mean D(fake), ...})  # fake detached
    g_loss(net_d, real, fake) -> loss                                                          # grads reach fake only

The loss calls `net_d` itself, so WGAN-GP can score interpolates and relativistic losses see both sides.
D outputs are logits of any shape ((b, 1) for the VGG D, (b, 1, h, w) for the U-Net D); every loss takes
the mean over all of them. With logits, -log(sigmoid(x)) = softplus(-x) and -log(1 - sigmoid(x)) = softplus(x).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Logs = dict[str, Tensor]


def _logs(d_real: Tensor, d_fake: Tensor, **extra: Tensor) -> Logs:
    logs = {"d_real": d_real.mean(), "d_fake": d_fake.mean(), **extra}
    return {k: v.detach() for k, v in logs.items()}


class VanillaGANLoss(nn.Module):
    """Goodfellow et al. 2014 cross-entropy GAN, non-saturating G loss (SRGAN, Real-ESRGAN)."""

    def d_loss(self, net_d: nn.Module, real: Tensor, fake: Tensor) -> tuple[Tensor, Logs]:
        d_real, d_fake = net_d(real), net_d(fake)
        loss = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()  # -log D(real) - log(1 - D(fake))
        return loss, _logs(d_real, d_fake)

    def g_loss(self, net_d: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
        return F.softplus(-net_d(fake)).mean()  # -log D(fake)


class LSGANLoss(nn.Module):
    """Least-squares GAN (Mao et al. 2017): targets 1 for real, 0 for fake."""

    def d_loss(self, net_d: nn.Module, real: Tensor, fake: Tensor) -> tuple[Tensor, Logs]:
        d_real, d_fake = net_d(real), net_d(fake)
        loss = ((d_real - 1) ** 2).mean() + (d_fake**2).mean()
        return loss, _logs(d_real, d_fake)

    def g_loss(self, net_d: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
        return ((net_d(fake) - 1) ** 2).mean()


class HingeGANLoss(nn.Module):
    """Hinge loss (SAGAN / BigGAN): D pushes real above +1 and fake below -1; G raises D(fake)."""

    def d_loss(self, net_d: nn.Module, real: Tensor, fake: Tensor) -> tuple[Tensor, Logs]:
        d_real, d_fake = net_d(real), net_d(fake)
        loss = F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
        return loss, _logs(d_real, d_fake)

    def g_loss(self, net_d: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
        return -net_d(fake).mean()


class WGANGPLoss(nn.Module):
    """Wasserstein GAN with gradient penalty (Gulrajani et al. 2017).

    The critic should not use BatchNorm (the penalty is per sample); the U-Net D with spectral norm or a
    BN-free D suits it. Logs also hold "gp", the unweighted penalty.
    """

    def __init__(self, gp_weight: float = 10.0) -> None:
        super().__init__()
        self.gp_weight = gp_weight

    @staticmethod
    def gradient_penalty(net_d: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
        """E[(||grad_x D(x)||_2 - 1)^2] on random points between real and fake samples."""
        alpha = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
        x_hat = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
        # create_graph: the penalty is itself differentiated w.r.t. D's parameters in the D step
        (grad,) = torch.autograd.grad(net_d(x_hat).sum(), x_hat, create_graph=True)
        return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()

    def d_loss(self, net_d: nn.Module, real: Tensor, fake: Tensor) -> tuple[Tensor, Logs]:
        d_real, d_fake = net_d(real), net_d(fake)
        gp = self.gradient_penalty(net_d, real, fake)
        loss = d_fake.mean() - d_real.mean() + self.gp_weight * gp
        return loss, _logs(d_real, d_fake, gp=gp)

    def g_loss(self, net_d: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
        return -net_d(fake).mean()


class RelativisticAverageGANLoss(nn.Module):
    """Relativistic average GAN (Jolicoeur-Martineau 2018), as in ESRGAN.

    D estimates whether real data are more realistic than the average fake (and vice versa):
    D_Ra(x_r, x_f) = sigmoid(C(x_r) - E[C(x_f)]). G's loss is the symmetric one, so G also gets gradients from
    the real side; D(real) is detached there (no gradient reaches the real images or needs to).
    Both losses average the two BCE terms (BasicSR weights each by 0.5).
    """

    @staticmethod
    def _ra(a: Tensor, b: Tensor) -> Tensor:
        """-log sigmoid(a - mean(b)): BCE of "a is more realistic than the average b"."""
        return F.softplus(-(a - b.mean())).mean()

    def d_loss(self, net_d: nn.Module, real: Tensor, fake: Tensor) -> tuple[Tensor, Logs]:
        d_real, d_fake = net_d(real), net_d(fake)
        loss = 0.5 * (self._ra(d_real, d_fake) + self._ra(-d_fake, -d_real))  # real > avg fake, fake < avg real
        return loss, _logs(d_real, d_fake)

    def g_loss(self, net_d: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
        with torch.no_grad():
            d_real = net_d(real)  # detached: a constant reference for G
        d_fake = net_d(fake)
        return 0.5 * (self._ra(d_fake, d_real) + self._ra(-d_real, -d_fake))  # fake > avg real, real < avg fake
