"""The temporal film-restoration task and its generator: clips in and out, the flow loss, per-clip metrics, which
networks and model files it takes, and the temporal restorer's own guarantees (identity at the start, no use of
frames it is not given)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio
from torch import Tensor, nn

from restoregan.gans.checkpoint import CheckpointError, save_export
from restoregan.gans.restore_unet import RestoreUNet
from restoregan.gans.temporal_restorer import TemporalRestorer
from restoregan.models import load_model
from restoregan.tasks.restore import RestorationTask
from restoregan.tasks.restore_video import VideoRestorationTask

ARCH = {"_target_": "restoregan.gans.temporal_restorer.TemporalRestorer", "num_feat": 8, "num_blocks": 1,
        "flow_feat": 8}


def _random_net(seed: int = 0) -> TemporalRestorer:
    """Small net whose zero-initialised layers get random values, so its output depends on every input frame."""
    torch.manual_seed(seed)
    net = TemporalRestorer(**{k: v for k, v in ARCH.items() if k != "_target_"})
    with torch.no_grad():
        for p in net.parameters():
            if not p.any():
                p.normal_(std=0.3)
    return net.eval()


def _shifted_clip(t: int, h: int, w: int, dx: int) -> Tensor:
    """(1, t, 3, h, w): a smooth random picture panned by dx pixels per frame (frame k = picture moved k dx)."""
    rng = np.random.default_rng(0)
    big = rng.random((h // 4 + 1, (w + t * dx) // 4 + 2)).astype(np.float32)
    big = torch.nn.functional.interpolate(torch.from_numpy(big)[None, None], scale_factor=4, mode="bicubic")[0, 0]
    frames = [big[:h, k * dx : k * dx + w] for k in range(t)]
    return torch.stack(frames)[:, None].expand(t, 3, h, w)[None].clamp(0, 1).contiguous()


def test_an_untrained_restorer_is_the_identity_and_keeps_the_clip_shape() -> None:
    net = TemporalRestorer(num_feat=8, num_blocks=1, flow_feat=8)
    clip = torch.rand(2, 4, 3, 19, 26)  # sides no multiple of 8: padded inside, cropped back
    assert torch.equal(net(clip), clip)
    assert net(clip[:, :1]).shape == (2, 1, 3, 19, 26)  # a clip of one frame
    with pytest.raises(ValueError, match="takes a clip"):
        net(clip[:, 0])


def test_a_frame_depends_on_its_neighbours_both_ways_and_clips_are_independent() -> None:
    net = _random_net()
    clip = torch.rand(2, 5, 3, 16, 16)
    with torch.no_grad():
        base = net(clip)
        later, earlier = clip.clone(), clip.clone()
        later[0, 4] = torch.rand(3, 16, 16)  # a change in the last frame reaches the first (backward state)
        earlier[0, 0] = torch.rand(3, 16, 16)  # and one in the first reaches the last (forward state)
        assert (net(later)[0, 0] - base[0, 0]).abs().max() > 0
        assert (net(earlier)[0, 4] - base[0, 4]).abs().max() > 0
        assert torch.equal(net(later)[1], base[1])  # the other clip of the batch is untouched


def test_flow_loss_is_low_for_the_true_motion_and_high_for_none() -> None:
    """The photometric term: clean frame k+1 warped by the flow k -> k+1 should be frame k. Frame k(x) is the
    picture at x + k dx, so frame k is frame k+1 sampled at x - dx: the true flow is -dx towards the next frame
    and +dx towards the previous. With it the term is small; with zero flow it is the frames' difference, and
    with the opposite flow larger still."""
    dx = 2
    gt = _shifted_clip(4, 24, 40, dx)
    batch = {"lq": gt, "gt": gt}

    class Fixed(nn.Module):
        temporal = True

        def __init__(self, step: float) -> None:
            super().__init__()
            self.step = step

        def forward(self, x: Tensor) -> Tensor:
            return x

        def forward_with_flows(self, x: Tensor):  # noqa: ANN202
            b, t, _, h, w = x.shape
            flow = torch.zeros(b, t - 1, 2, h, w)
            to_next, to_prev = flow.clone(), flow.clone()
            to_next[:, :, 0], to_prev[:, :, 0] = -self.step, self.step
            return x, to_next, to_prev

    task = VideoRestorationTask(grey=False, flow_weight=1.0)
    _, right = task.generate_with_losses(Fixed(dx), batch)
    _, none = task.generate_with_losses(Fixed(0.0), batch)
    # the border column where the warp repeats the edge is the only error left with the true flow
    _, wrong = task.generate_with_losses(Fixed(-dx), batch)
    assert float(right["flow"]) < 0.25 * float(none["flow"]) < 0.25 * float(wrong["flow"])
    assert task.generate_with_losses(Fixed(dx), {"lq": gt[:, :1], "gt": gt[:, :1]})[1] == {}  # one frame: no pair
    assert VideoRestorationTask(flow_weight=0).generate_with_losses(Fixed(dx), batch)[1] == {}


def test_clip_metrics_are_the_mean_of_frame_psnrs_computed_by_scikit_image() -> None:
    task = VideoRestorationTask(grey=False)
    rng = np.random.default_rng(1)
    gt = torch.from_numpy(np.round(rng.random((2, 3, 3, 20, 20)) * 255).astype(np.float32) / 255)
    out = (gt + torch.from_numpy(rng.normal(0, 0.05, gt.shape).astype(np.float32))).clamp(0, 1)
    scores = task.metrics(out.flatten(0, 1), {"lq": gt, "gt": gt})
    q = lambda x: np.round(x.numpy() * 255).astype(np.uint8)  # noqa: E731
    for c in range(2):
        frames = [peak_signal_noise_ratio(q(gt[c, k]), q(out[c, k]), data_range=255) for k in range(3)]
        assert float(scores["psnr"][c]) == pytest.approx(np.mean(frames), abs=1e-3)
    assert scores["ssim"].shape == (2,)


def test_single_image_networks_and_files_are_refused_in_one_line(tmp_path: Path) -> None:
    task = VideoRestorationTask()
    with pytest.raises(CheckpointError, match="restores single images; task restore_video needs a temporal"):
        task.check_network("m.safetensors", RestoreUNet(num_feat=8), None)
    # an export saying task restore_video over an image network
    save_export(tmp_path / "bad", RestoreUNet(num_feat=8, num_levels=1, num_conv=1),
                {"_target_": "restoregan.gans.restore_unet.RestoreUNet", "num_feat": 8, "num_levels": 1,
                 "num_conv": 1}, {"task": VideoRestorationTask(grey=False).config(), "scale": 1})
    with pytest.raises(CheckpointError) as err:
        load_model(tmp_path / "bad.safetensors")
    assert "\n" not in str(err.value) and "temporal" in str(err.value)


def test_an_export_loads_as_a_restore_model_that_runs_images_as_one_frame_clips(tmp_path: Path) -> None:
    net = _random_net()
    save_export(tmp_path / "temporal", net, ARCH, {"task": VideoRestorationTask(grey=False).config(), "scale": 1})
    model = load_model(tmp_path / "temporal.safetensors")
    assert isinstance(model.task, VideoRestorationTask) and model.task.name == "restore"
    assert model.pad_multiple == 8
    x = torch.rand(2, 3, 16, 24)
    from restoregan.tasks.base import RunOptions

    y = model.task.apply_batch(model, x, RunOptions())
    with torch.no_grad():
        assert torch.allclose(y, net(x[:, None])[:, 0], atol=1e-6)
    # it may score a single-frame restorer of the same kind, not one of another (grey vs colour) or task
    assert model.task.can_score(RestorationTask(grey=False).config())
    assert not model.task.can_score(RestorationTask(grey=True).config())
    assert not model.task.can_score({"_target_": "restoregan.tasks.sr.SuperResolutionTask", "scale": 4})


@pytest.mark.parametrize("key,value", [("window", 0), ("overlap", -1), ("frames", 0), ("window", True),
                                       ("flow_weight", -1.0)])
def test_bad_options_are_refused_naming_the_key(key: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"task.{key}"):
        VideoRestorationTask(**{key: value})


def test_temporal_median_baseline_matches_numpy() -> None:
    """Each frame's median with its neighbours, ends padded by repetition: np.median over the same three frames."""
    from restoregan.tasks.restore_video import temporal_median3

    clip = torch.rand(2, 4, 3, 5, 6)
    got = temporal_median3(clip).view(2, 4, 3, 5, 6).numpy()
    x = clip.numpy()
    for k in range(4):
        trio = np.stack([x[:, max(k - 1, 0)], x[:, k], x[:, min(k + 1, 3)]])
        assert np.array_equal(got[:, k], np.median(trio, axis=0))
    names = VideoRestorationTask().baselines({"lq": clip, "gt": clip})
    assert list(names) == ["damaged", "median", "temporal_median"]
