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


def _random_net(seed: int = 0, **options: object) -> TemporalRestorer:
    """Small net whose zero-initialised layers get random values, so its output depends on every input frame."""
    torch.manual_seed(seed)
    net = TemporalRestorer(**{k: v for k, v in ARCH.items() if k != "_target_"}, **options)
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


@pytest.mark.parametrize("flow", ["dis", "learned"])
def test_an_untrained_restorer_without_aligned_neighbours_is_the_identity(flow: str) -> None:
    net = TemporalRestorer(num_feat=8, num_blocks=1, flow_feat=8, flow=flow, radius=0)
    clip = torch.rand(2, 4, 3, 19, 26)  # sides no multiple of 8: padded inside, cropped back
    assert torch.equal(net(clip), clip)
    assert net(clip[:, :1]).shape == (2, 1, 3, 19, 26)  # a clip of one frame
    with pytest.raises(ValueError, match="takes a clip"):
        net(clip[:, 0])
    _, to_next, to_prev = net.forward_with_flows(clip)
    if flow == "learned":  # offered to the photometric loss, which trains them
        assert to_next.shape == to_prev.shape == (2, 3, 2, 19, 26) and to_next.requires_grad
    else:
        assert to_next is None and to_prev is None
    with pytest.raises(ValueError, match="flow must be 'dis' or 'learned'"):
        TemporalRestorer(flow="raft")


@pytest.mark.parametrize("context", [False, True])
def test_an_untrained_restorer_with_neighbours_is_their_aligned_median_and_removes_dust_that_moves(context: bool) -> None:
    """radius 2: an untrained net outputs the median of each frame and its four neighbours warped onto it (DIS
    flow). On a pan with a different bright speck in every frame, the middle frame's speck is gone (the four
    neighbours show the picture there) while the picture keeps its place; a still clip comes back unchanged."""
    net = TemporalRestorer(num_feat=8, num_blocks=1, radius=2, context=context).eval()
    clean = _shifted_clip(5, 48, 64, dx=2)
    damaged = clean.clone()
    for k in range(5):
        damaged[0, k, :, 10 + 5 * k:14 + 5 * k, 12 + 8 * k:16 + 8 * k] = 1.0
    with torch.no_grad():
        out = net(damaged)[0, 2]
    speck = (slice(None), slice(20, 24), slice(28, 32))  # the middle frame's speck
    assert float((damaged[0, 2][speck] - clean[0, 2][speck]).abs().mean()) > 0.3
    assert float((out[speck] - clean[0, 2][speck]).abs().mean()) < 0.03
    assert float((out - clean[0, 2])[..., 4:-4, 8:-8].abs().mean()) < 0.02
    still = _shifted_clip(1, 48, 64, dx=0).expand(1, 4, 3, 48, 64).contiguous()
    with torch.no_grad():
        assert torch.allclose(net(still), still, atol=1e-5)
    with torch.no_grad():  # DIS flows are not learned: no flows are offered for a photometric loss
        assert net.forward_with_flows(damaged)[1:] == (None, None)


@pytest.mark.parametrize("context", [False, True])
def test_a_frame_depends_on_its_neighbours_both_ways_and_clips_are_independent(context: bool) -> None:
    net = _random_net(context=context)
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


def test_clip_psnr_is_scikit_images_psnr_of_the_whole_clip_and_finite_with_an_untouched_frame() -> None:
    task = VideoRestorationTask(grey=False)
    rng = np.random.default_rng(1)
    gt = torch.from_numpy(np.round(rng.random((2, 3, 3, 20, 20)) * 255).astype(np.float32) / 255)
    out = (gt + torch.from_numpy(rng.normal(0, 0.05, gt.shape).astype(np.float32))).clamp(0, 1)
    out[1, 0] = gt[1, 0]  # a frame identical to its reference: inf on its own
    scores = task.metrics(out.flatten(0, 1), {"lq": gt, "gt": gt})
    q = lambda x: np.round(x.numpy() * 255).astype(np.uint8)  # noqa: E731
    for c in range(2):  # scikit-image on the stacked frames of the clip: one mean squared error over all of them
        assert float(scores["psnr"][c]) == pytest.approx(peak_signal_noise_ratio(q(gt[c]), q(out[c]), data_range=255),
                                                        abs=1e-6)
    assert np.isfinite(scores["psnr"].numpy()).all() and scores["ssim"].shape == (2,)


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


def test_evaluate_scores_a_temporal_and_a_single_frame_model_on_the_same_clips(tmp_path: Path) -> None:
    """One report: the baselines, the temporal model on whole clips and the single-frame model frame by frame; the
    damaged baseline's PSNR recomputed with scikit-image from the clips held_out_clips makes."""
    from cli_utils import compose_conf
    from restoregan.data.clip_dataset import held_out_clips
    from restoregan.data.film_damage import FilmDamage
    from restoregan.evaluation.run import evaluate

    save_export(tmp_path / "temporal", _random_net(), ARCH, {"task": VideoRestorationTask().config(), "scale": 1})
    torch.manual_seed(0)
    single_arch = {"_target_": "restoregan.gans.restore_unet.RestoreUNet", "num_feat": 8, "num_levels": 1,
                   "num_conv": 1}
    save_export(tmp_path / "single", RestoreUNet(num_feat=8, num_levels=1, num_conv=1), single_arch,
                {"task": RestorationTask().config(), "scale": 1})
    report = evaluate(compose_conf("evaluate", [
        f"ckpt=[{tmp_path / 'temporal.safetensors'},{tmp_path / 'single.safetensors'}]", "hr_dir=skimage:val",
        f"out_dir={tmp_path / 'eval'}", "device=cpu", "lpips=false"]))
    methods = report["methods"]
    assert list(methods) == ["damaged", "median", "temporal_median", "temporal", "single"]
    assert report["temporal"] is True and report["frames"] == 7
    clips = list(held_out_clips("skimage:val", 7, None, 0, FilmDamage(), True))
    assert [row["image"] for row in methods["damaged"]["images"]] == [name for name, _, _ in clips]
    q = lambda frames: np.round(np.stack(frames) * 255).astype(np.uint8)  # noqa: E731
    for row, (_, lq, gt) in zip(methods["damaged"]["images"], clips):
        assert row["psnr"] == pytest.approx(peak_signal_noise_ratio(q(gt), q(lq), data_range=255), abs=1e-6)
    # a fresh, identity-initialised single-frame net returns its input: it scores exactly the damaged clips
    assert methods["single"]["psnr"] == pytest.approx(methods["damaged"]["psnr"], abs=1e-9)
    assert methods["temporal"]["psnr"] != pytest.approx(methods["damaged"]["psnr"], abs=1e-3)
    assert (tmp_path / "eval" / "comparison.png").exists()


def test_a_report_refuses_models_of_unrelated_tasks(tmp_path: Path) -> None:
    from cli_utils import compose_conf
    from restoregan.evaluation.run import evaluate
    from restoregan.gans.srresnet import SRResNet
    from restoregan.tasks.sr import SuperResolutionTask

    save_export(tmp_path / "temporal", _random_net(), ARCH, {"task": VideoRestorationTask().config(), "scale": 1})
    save_export(tmp_path / "sr", SRResNet(num_feat=8, num_block=1, scale=2),
                {"_target_": "restoregan.gans.srresnet.SRResNet", "num_feat": 8, "num_block": 1, "scale": 2},
                {"task": SuperResolutionTask(2).config(), "scale": 2})
    with pytest.raises(ValueError, match="cannot share a report"):
        evaluate(compose_conf("evaluate", [f"ckpt=[{tmp_path / 'temporal.safetensors'},{tmp_path / 'sr.safetensors'}]",
                                           "hr_dir=skimage:val", f"out_dir={tmp_path / 'eval'}", "device=cpu"]))


def _frame_folder(folder: Path, frames: list[np.ndarray]) -> Path:
    """Numbered PNGs: read as a clean video by evaluate.py's clip data."""
    from restoregan.data.io import write_image

    folder.mkdir(parents=True)
    for i, img in enumerate(frames):
        write_image(folder / f"{i:04d}.png", img)
    return folder


def _scene(seed: int, h: int = 40, w: int = 48) -> np.ndarray:
    return np.random.default_rng(seed).random((h, w, 3)).astype(np.float32)


@pytest.mark.parametrize("case,match", [
    ("short", "holds only 3 frames; clips of 7 frames need at least 7"),
    ("cuts", "no window of 7 frames without a scene cut"),
    ("tiny", "frames are 9x6; clips need frames of at least 11 pixels a side"),
])
def test_bad_clean_videos_are_refused_in_one_line_naming_them(tmp_path: Path, case: str, match: str) -> None:
    from restoregan.data.clip_dataset import held_out_clips

    if case == "short":
        frames = [_scene(0)] * 3
    elif case == "cuts":  # a new scene every second frame
        frames = [(0.1 if (k // 2) % 2 else 0.75) + 0.15 * _scene(k // 2) for k in range(12)]
    else:
        frames = [_scene(0, 6, 9)] * 8
    folder = _frame_folder(tmp_path / case, frames)
    with pytest.raises(ValueError) as err:
        list(held_out_clips(folder, 7))
    assert str(err.value).startswith(str(folder)) and match in str(err.value) and "\n" not in str(err.value)


def test_a_photo_left_out_as_too_small_never_becomes_the_foreground(tmp_path: Path) -> None:
    """Clips of a folder with one large photo and one of 3x3 pixels: the small one is skipped with a warning and
    the foreground layer comes from the photos kept, for every seed."""
    from restoregan.data.clip_dataset import held_out_clips
    from restoregan.data.io import write_image

    folder = tmp_path / "photos"
    folder.mkdir()
    write_image(folder / "a_large.png", _scene(1, 160, 200))
    write_image(folder / "b_tiny.png", _scene(2, 3, 3))
    for seed in range(6):
        with pytest.warns(UserWarning, match="b_tiny.png"):
            clips = list(held_out_clips(folder, 3, seed=seed))
        assert [name for name, _, _ in clips] == ["a_large.png"]


def test_options_of_the_temporal_task_are_refused_for_a_single_frame_model(tmp_path: Path) -> None:
    from restoregan.models import with_options

    torch.manual_seed(0)
    save_export(tmp_path / "single", RestoreUNet(num_feat=8, num_levels=1, num_conv=1),
                {"_target_": "restoregan.gans.restore_unet.RestoreUNet", "num_feat": 8, "num_levels": 1,
                 "num_conv": 1}, {"task": RestorationTask().config(), "scale": 1})
    model = load_model(tmp_path / "single.safetensors")
    with pytest.raises(CheckpointError, match=r"task\.window: not an option of its task .*RestorationTask") as err:
        with_options(model, {"window": 4})
    assert "\n" not in str(err.value)


def test_a_temporal_network_is_refused_by_the_single_frame_task(tmp_path: Path) -> None:
    """Its forward takes one argument, like an image network's; the task asks the network what it takes."""
    save_export(tmp_path / "t", _random_net(), ARCH, {"task": RestorationTask().config(), "scale": 1})
    with pytest.raises(CheckpointError, match="takes clips; task restore runs image-to-image networks"):
        load_model(tmp_path / "t.safetensors")


@pytest.mark.parametrize("conditional", [True, False])
def test_the_temporal_discriminator_sees_each_frame_between_its_neighbours(conditional: bool) -> None:
    """task.temporal_discriminator: the pair is each frame k stacked as (k - 1, k, k + 1), ends repeated, after the
    damaged triplet when conditional; it fits the temporal PatchGAN of num_frames 6 (3) and none of 2."""
    from restoregan.gans.temporal_discriminator import TemporalPatchDiscriminator

    b, t = 2, 4
    batch = {"lq": torch.rand(b, t, 3, 32, 32), "gt": torch.rand(b, t, 3, 32, 32)}
    output = torch.rand(b * t, 3, 32, 32)
    task = VideoRestorationTask(grey=False, conditional=conditional, temporal_discriminator=True)
    real, fake = task.discriminator_pair(batch, output)
    assert real.shape == fake.shape == (b * t, 18 if conditional else 9, 32, 32)
    tail = 9 if conditional else 0  # the restored (or clean) triplet follows the damaged one
    clip = output.view(b, t, 3, 32, 32)
    for i in range(b):
        for k in range(t):
            n = i * t + k
            assert torch.equal(fake[n, tail:tail + 3], clip[i, max(k - 1, 0)])
            assert torch.equal(fake[n, tail + 3:tail + 6], clip[i, k])
            assert torch.equal(fake[n, tail + 6:tail + 9], clip[i, min(k + 1, t - 1)])
            assert torch.equal(real[n, tail + 3:tail + 6], batch["gt"][i, k])
            if conditional:
                assert torch.equal(real[n, :9], fake[n, :9]) and torch.equal(fake[n, 3:6], batch["lq"][i, k])
    d = TemporalPatchDiscriminator(num_frames=6 if conditional else 3, num_feat=8)
    assert d(fake).shape[:2] == (b * t, 1)
    with pytest.raises(ValueError, match="takes 6 channels"):
        TemporalPatchDiscriminator(num_frames=2, num_feat=8)(fake)
    with pytest.raises(ValueError, match="task.temporal_discriminator"):
        VideoRestorationTask(temporal_discriminator="yes")
