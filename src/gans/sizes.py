"""What a network needs of its input's size."""

from __future__ import annotations

from torch import nn


def net_multiple(net: nn.Module) -> int:
    """What the sides of `net`'s input must divide, as the network declares it (`multiple`: RRDBNet's pixel
    unshuffle factor, RestoreUNet's 2**num_levels; `pad_multiple`: InterpolationNet), else 1. Tiling pads each
    pass to it and starts tiles on multiples of it, so pixels are grouped as in the full image."""
    for attr in ("multiple", "pad_multiple"):
        own = getattr(net, attr, None)
        if isinstance(own, int) and not isinstance(own, bool) and own > 0:
            return own
    return 1


def receptive_radius(net: nn.Module, in_channels: int = 3, cap: int = 64, multiple: int = 1) -> int | None:
    """Input pixels of context on each side that reach one output pixel, measured: the gradient of the centre
    output pixel of a random (2 cap + 1)-pixel input is non-zero exactly within the receptive field. None when
    the field reaches the probe's border (a global operation, attention, a field wider than `cap`). Tiling is
    exact only with an overlap at least this wide (restoregan.inference.tiled)."""
    import torch

    side = 2 * cap + 1
    side += -side % multiple
    param = next(net.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    x = torch.rand(1, in_channels, side, side, generator=torch.Generator().manual_seed(0)).to(device)
    x.requires_grad_(True)
    with torch.enable_grad():
        y = net(x)
        sy, sx = y.shape[-2] // side, y.shape[-1] // side
        c = side // 2
        y[..., c * sy, c * sx].sum().backward()
    reach = (x.grad.abs().sum(dim=(0, 1)) > 0).nonzero()
    if reach.numel() == 0:
        return 0
    radius = int((reach - c).abs().max())
    return None if radius >= c else radius
