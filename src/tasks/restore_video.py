"""Film restoration from a frame's neighbours: a damaged clip `lq` (b, T, 3, h, w) -> its clean frames `gt`, same
size, by a temporal generator (`net(clip)`, `restoregan.gans.temporal_restorer.TemporalRestorer`; any network with
`temporal = True` that maps a clip to a clip).

It is the restore task's temporal twin: its `name` is "restore", so the film pipeline's restore stage takes either
kind of model and the model's own file decides how frames are fed (`stage`: frame windows with state carried
along them, cut at scene cuts, vs. `RestorationTask`'s frame by frame). Training batches come from
`restoregan.data.clip_dataset.FilmClipDataset`; losses and the discriminator see the clip's frames as a batch of
images (b * T); a clip's PSNR is that of its mean squared error over all its frames, its SSIM the mean of its
frames' (RGB of 8-bit images, no border crop).

evaluate.py (hr_dir=CLEAN_IMAGES | skimage:val | CLEAN_VIDEO): each clean image becomes a clip by the synthetic
camera and object motion, or a clean video is cut into windows, and each clip is damaged by the film damage model
(`damage_sequence`, seed (seed, i)); a single-frame restoration model may be scored in the same report, frame by
frame, against the same clips (`ckpt='[temporal, single]'`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from restoregan.data.io import quantize, to_tensor
from restoregan.gans.checkpoint import CheckpointError
from restoregan.gans.temporal_restorer import takes_clips
from restoregan.metrics.image import ssim_rgb
from restoregan.tasks.base import EvalData, RunOptions, Stage, task_config
from restoregan.tasks.image import dataset_name
from restoregan.tasks.restore import RestorationTask, median3_batch

METRIC_NOTE = ("PSNR on RGB of 8-bit frames from each clip's mean squared error over its frames; SSIM on RGB, the "
               "mean of its frames'; no border crop")
FLOW_WEIGHT = 0.1  # the photometric flow term beside the restoration loss (set by the task's `flow_weight`)


def frames_of(x: Tensor) -> Tensor:
    """(b, T, c, h, w) -> (b * T, c, h, w); images pass as they are."""
    return x.flatten(0, 1) if x.ndim == 5 else x


class VideoRestorationTask(RestorationTask):
    """grey, conditional: as RestorationTask's. Stage and evaluation options: `window` (frames restored per pass of
    the network in a film stage), `overlap` (frames of context each side of a window: state is carried across
    them, so frames at a window's edge see neighbours too), `frames` (clip length evaluate.py scores), `seed`,
    `save_inputs` (not for clips), `damage` (FilmDamage parameters laid over its defaults), `flow_weight` (training:
    weight of the photometric flow loss on the clean targets), `temporal_discriminator` (training: the discriminator
    sees each frame stacked with the frames before and after it, `discriminator=temporal_small`, so it can judge
    flicker and crawling grain, not only each image)."""

    name = "restore"
    metric_columns: ClassVar[list[tuple[str, str, int]]] = [("psnr", "PSNR (dB, RGB)", 2), ("ssim", "SSIM (RGB)", 4)]
    overridable: ClassVar[tuple[str, ...]] = ("grey",)
    evaluate_hint = "hr_dir=skimage:val"

    def __init__(self, grey: bool | None = None, conditional: bool = True, seed: int = 0, save_inputs: bool = False,
                 damage: Mapping[str, Any] | None = None, window: int = 16, overlap: int = 4, frames: int = 7,
                 flow_weight: float = FLOW_WEIGHT, scene_cut: Mapping[str, float] | None = None,
                 temporal_discriminator: bool = False) -> None:
        super().__init__(grey, conditional, seed, save_inputs, damage)
        for key, value, least in (("window", window, 1), ("overlap", overlap, 0), ("frames", frames, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"task.{key}: {value!r} is not a whole number >= {least}")
        if isinstance(flow_weight, bool) or not isinstance(flow_weight, (int, float)) or not flow_weight >= 0:
            raise ValueError(f"task.flow_weight: {flow_weight!r} is not a number >= 0")
        from restoregan.tasks.interp import scene_cut_detector  # the one reader of scene_cut options

        if not isinstance(temporal_discriminator, bool):
            raise ValueError(f"task.temporal_discriminator: {temporal_discriminator!r} is not true or false")
        self.window, self.overlap, self.frames, self.flow_weight = window, overlap, frames, float(flow_weight)
        self.temporal_discriminator = temporal_discriminator
        self.detector = scene_cut_detector(scene_cut)

    def config(self) -> dict:
        return task_config(self, grey=self.grey)

    def check_network(self, path: Any, net: nn.Module, arch: dict | None) -> None:
        if not takes_clips(net):
            what = (arch or {}).get("_target_") or type(net).__name__
            raise CheckpointError(f"{path}: its generator {what} restores single images; task restore_video needs a "
                                  "temporal network (one that takes clips)")
        for key in ("num_in_ch", "num_out_ch"):
            got = (arch or {}).get(key, 3)
            if got != 3:
                raise CheckpointError(f"{path}: generator.{key}: {got}, but task restore_video needs 3 channels")

    @classmethod
    def adopt(cls, purpose: str, scale: int, channels: tuple[int | None, int | None]) -> dict | None:
        return None  # community 1x models restore single images: RestorationTask adopts them

    @classmethod
    def from_legacy(cls, word: str, meta: Mapping[str, Any]) -> dict | None:
        return None

    def can_score(self, config: Mapping[str, Any]) -> bool:
        """evaluate.py may score a single-frame restoration model of the same kind (grey or colour) beside a
        temporal one, on the same clips, frame by frame."""
        single = task_config(RestorationTask.__new__(RestorationTask))["_target_"]
        return config.get("_target_") in (single, self.config()["_target_"]) and config.get("grey") == self.grey

    # --- training ---
    def generate(self, net: nn.Module, batch: dict) -> Tensor:
        return frames_of(net(batch["lq"]))

    def generate_with_losses(self, net: nn.Module, batch: dict) -> tuple[Tensor, dict[str, Tensor]]:
        """The generator's output and, for a network that shows its flows, a photometric term: each clean target
        frame warped by the estimated flow onto its neighbour should match that neighbour (Charbonnier). It
        teaches the flow net what moved, which the restoration loss alone teaches slowly."""
        forward = getattr(net, "forward_with_flows", None)
        if forward is None or self.flow_weight == 0:
            return self.generate(net, batch), {}
        out, to_next, to_prev = forward(batch["lq"])
        if to_next is None or to_next.shape[1] == 0:  # a clip of one frame has no pair to align
            return frames_of(out), {}
        from restoregan.gans.warp import backward_warp

        gt = batch["gt"]
        here, there = gt[:, :-1].flatten(0, 1), gt[:, 1:].flatten(0, 1)
        err = torch.cat([backward_warp(there, to_next.flatten(0, 1)) - here,
                         backward_warp(here, to_prev.flatten(0, 1)) - there])
        flow = torch.sqrt(err.square() + 1e-6).mean()
        return frames_of(out), {"flow": self.flow_weight * flow}

    def target(self, batch: dict) -> Tensor:
        return frames_of(batch["gt"])

    def discriminator_pair(self, batch: dict, output: Tensor) -> tuple[Tensor, Tensor]:
        """Frames, after their damaged frames when conditional; with `temporal_discriminator`, each frame stacked
        with the one before and after it on channels (clip ends repeated): 9 channels, 18 conditional (damaged
        triplet first), for the temporal PatchGAN with num_frames 3 or 6."""
        if self.temporal_discriminator:
            real, fake = triplets(batch["gt"]), triplets(output.view(batch["gt"].shape))
            if not self.conditional:
                return real, fake
            lq = triplets(batch["lq"])
            return torch.cat([lq, real], dim=1), torch.cat([lq, fake], dim=1)
        if not self.conditional:
            return self.target(batch), output
        lq = frames_of(batch["lq"])
        return torch.cat([lq, self.target(batch)], dim=1), torch.cat([lq, output], dim=1)

    def baselines(self, batch: dict) -> dict[str, Tensor]:
        """The damaged frames, their 3x3 spatial median, and the median of each frame with its two neighbours
        (the classical temporal remedy for dust; unaligned, so it smears what moves)."""
        lq = frames_of(batch["lq"])
        return {"damaged": lq, "median": median3_batch(lq), "temporal_median": temporal_median3(batch["lq"])}

    def metrics(self, output: Tensor, batch: dict) -> dict[str, Tensor]:
        """Per clip (b,), on 8-bit RGB frames: PSNR of the clip's mean squared error over all its frames (a frame
        the damage left untouched scores inf on its own, which a mean over frames would make the clip's figure),
        and the mean of its frames' SSIM."""
        b = batch["gt"].shape[0]
        out, tgt = quantize(output), quantize(self.target(batch))
        mse = (out.double() - tgt.double()).square().reshape(b, -1).mean(1)
        return {"psnr": (10 * torch.log10(1.0 / mse)).cpu(), "ssim": ssim_rgb(out, tgt).view(b, -1).mean(1)}

    def grid_columns(self, batch: dict, output: Tensor) -> list[tuple[str, Tensor]]:
        b, t = batch["gt"].shape[:2]
        middle = lambda x: x.view(b, t, *x.shape[1:])[:, t // 2]  # noqa: E731
        return [("damaged", middle(frames_of(batch["lq"]))), ("restored", middle(output.clamp(0, 1))),
                ("clean", middle(self.target(batch)))]

    def grid_image(self, x: Tensor) -> Tensor:
        """evaluate.py's comparison picture shows a clip's middle frame."""
        return x[x.shape[0] // 2][None] if x.shape[0] > 1 else x

    # --- evaluation ---
    def eval_data(self, cfg: DictConfig) -> EvalData:
        """Clips of cfg.hr_dir (clean images, "skimage:val", or a clean video / frame folder), damaged with seed
        (seed, i) (restoregan.data.clip_dataset.held_out_clips)."""
        from restoregan.data.clip_dataset import held_out_clips

        if cfg.get("hr_dir") is None:
            raise ValueError("hr_dir=... is required for temporal film restoration (python evaluate.py ckpt=... "
                             "hr_dir=CLEAN_IMAGES_OR_VIDEO out_dir=...; hr_dir=skimage:val for the held-out photos)")
        source = str(cfg.hr_dir)
        skimage = source.startswith("skimage")
        if not skimage and not Path(source).exists():
            raise ValueError(f"{source}: clean images or video not found")
        size = cfg.get("clip_size")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 16):
            raise ValueError(f"clip_size={size!r}: must be a whole number of pixels >= 16 (or null: 3/4 of each "
                             "photo's sides, whole video frames)")

        def items():
            for name, lq, gt in held_out_clips(source, self.frames, size, self.seed, self.film_damage(), self.grey):
                yield {"lq": torch.stack([to_tensor(f) for f in lq])[None],
                       "gt": torch.stack([to_tensor(f) for f in gt])[None], "name": name}

        header = {"dataset": cfg.get("dataset") or (source if skimage else dataset_name(Path(source))),
                  "hr_dir": source, "task": self.name, "temporal": True, "grey": self.grey, "seed": self.seed,
                  "frames": self.frames, "metric_note": METRIC_NOTE}

        def title(h: dict, n: int) -> str:
            kind = "grey" if h["grey"] else "colour"
            return (f"{h['dataset']}: film restoration of clips ({n} {kind} clips of {h['frames']} frames, "
                    f"damage seed {h['seed']})")

        return EvalData(items(), header, title, [] if skimage else [Path(source)])

    def run_batch(self, model: Any, batch: dict, run: RunOptions) -> Tensor:
        """A temporal model on the whole clip; a single-frame model (can_score) frame by frame."""
        if not takes_clips(model.net):
            return model.task.apply_batch(model, frames_of(batch["lq"]), run)
        return frames_of(apply_clip(model.net, batch["lq"], run))

    # --- application ---
    def apply_batch(self, model: Any, x: Tensor, run: RunOptions) -> Tensor:
        """Separate images (infer.py on photos): each a clip of one frame."""
        return apply_clip(model.net, x[:, None], run)[:, 0]

    def stage(self, name: str, model: Any, run: RunOptions) -> Stage:
        from restoregan.inference.clip_stage import ClipStage

        return ClipStage(name, model.net, run, self.window, self.overlap, self.detector)

    def sequence(self, files: list) -> bool:
        return True  # a folder of frames is footage: each frame is restored with its neighbours


def triplets(clip: Tensor) -> Tensor:
    """(b, T, c, h, w) -> (b * T, 3 c, h, w): frame k - 1, k and k + 1 stacked on channels, the clip's first and last
    frames repeated beyond its ends."""
    t = clip.shape[1]
    k = torch.arange(t, device=clip.device)
    return torch.cat([clip[:, (k - 1).clamp(min=0)], clip, clip[:, (k + 1).clamp(max=t - 1)]], dim=2).flatten(0, 1)


def temporal_median3(clip: Tensor) -> Tensor:
    """(b, T, c, h, w) -> (b * T, c, h, w): each frame's per-pixel median with the frames before and after it (the
    end frames repeat themselves as their missing neighbour, so they keep their own value where it is the median)."""
    c, h, w = clip.shape[2:]
    return triplets(clip).view(-1, 3, c, h, w).median(dim=1).values


def apply_clip(net: nn.Module, clip: Tensor, run: RunOptions) -> Tensor:
    """`net` on a clip (b, T, 3, h, w) on run.device (fp16 autocast with run.half on CUDA); the result on the
    clip's device."""
    x = clip.to(run.device)
    with torch.inference_mode(), torch.autocast(run.device.type, torch.float16, enabled=run.half
                                                 and run.device.type == "cuda"):
        y = net(x)
    return y.float().to(clip.device)
