"""What a network needs of its input's size."""

from __future__ import annotations

from torch import nn


def net_multiple(net: nn.Module, scale: int | None = None) -> int:
    """What the sides of `net`'s input must divide, as the network declares it (`multiple`: RRDBNet's pixel
    unshuffle factor, RestoreUNet's 2**num_levels; `pad_multiple`: InterpolationNet), else 1. Tiling pads each
    pass to it and starts tiles on multiples of it, so pixels are grouped as in the full image."""
    for attr in ("multiple", "pad_multiple"):
        own = getattr(net, attr, None)
        if isinstance(own, int) and not isinstance(own, bool) and own > 0:
            return own
    return 1
