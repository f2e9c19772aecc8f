"""The training bench compares like with like, and the training speed switches leave the results unchanged."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import perf_training as pt  # noqa: E402


def _small(name: str, extra: list[str] = ()) -> object:
    return pt.compose_config(name, torch.device("cpu"), ["data.batch_size=2", "data.crop_size=32",
                                                         "data.val.crop_size=32", *extra])


@pytest.mark.parametrize("phase", ["g_pretrain", "gan"])
def test_plain_loop_trains_the_same_model_as_the_framework(phase: str, tmp_path: Path) -> None:
    """The overhead figure is only meaningful if the plain loop does the framework's work: same batches and seed
    must give the same generator weights (pixel loss; D then G with the adversarial term in the GAN phase)."""
    cfg = _small("sr_quickstart")
    batches = pt.draw_batches(cfg, 3)
    pt.phase_overrides(cfg, phase, 3)
    _, _, module, _ = pt.framework_run(cfg, batches, 0, torch.device("cpu"), tmp_path)
    _, net_g = pt.plain_run(cfg, batches, 0, torch.device("cpu"))
    ours, plain = dict(module.net_g.named_parameters()), dict(net_g.named_parameters())
    assert ours.keys() == plain.keys()
    start = pt.build_module(cfg).net_g.state_dict()  # same seed: the initial weights
    moved = max((ours[k].detach() - start[k]).abs().max().item() for k in ours)
    assert moved > 1e-4  # it trained
    for k in ours:
        torch.testing.assert_close(ours[k].detach(), plain[k].detach(), rtol=1e-4, atol=1e-5, msg=k)


def test_channels_last_switch_trains_the_same_weights(tmp_path: Path) -> None:
    """model.channels_last changes the memory layout, not the arithmetic's result (to float rounding)."""
    results = {}
    for flag in (False, True):
        cfg = _small("film_restore_quickstart", [f"model.channels_last={str(flag).lower()}"])
        batches = pt.draw_batches(cfg, 2)
        pt.phase_overrides(cfg, "g_pretrain", 2)
        _, _, module, _ = pt.framework_run(cfg, batches, 0, torch.device("cpu"), tmp_path / str(flag))
        conv = next(m for m in module.net_g.modules() if isinstance(m, torch.nn.Conv2d))
        assert conv.weight.is_contiguous(memory_format=torch.channels_last) == flag
        results[flag] = {k: v.detach().clone() for k, v in module.net_g.state_dict().items()}
    for k in results[False]:
        torch.testing.assert_close(results[True][k], results[False][k], rtol=1e-4, atol=1e-5, msg=k)


def test_rounds_alternate_on_one_module(tmp_path: Path) -> None:
    """The overhead rounds train one module with the framework, then its networks in the plain loop, then the
    framework again: the plain loop must hand the module back as it found it (discriminator trainable)."""
    cfg = _small("sr_quickstart")
    batches = pt.draw_batches(cfg, 2)
    pt.phase_overrides(cfg, "gan", 10**9)
    module = None
    for _ in range(2):
        _, _, module, optimizers = pt.framework_run(cfg, batches, 0, torch.device("cpu"), tmp_path, module=module)
        pt.plain_run(cfg, batches, 0, torch.device("cpu"), module, optimizers)
        assert all(p.requires_grad for p in module.net_d.parameters())
    assert int(module.iteration) == 4  # two framework runs of two batches; the plain loop does not count
