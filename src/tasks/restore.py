"""Film restoration: damaged frame `lq` (b, 3, h, w) -> clean frame `gt`, same size (docs/RESTORATION.md).

The generator is a plain image-to-image net (`net(x)`), so evaluate.py, infer.py and the film pipeline apply it
tiled and frame by frame like any 1x model (`ImageToImageTask`); a 1x community denoiser (spandrel's purpose
"Restoration") serves here too. Metrics: PSNR and SSIM on RGB of 8-bit quantised images, no border crop (for grey
film R = G = B, so these are the grey-level figures). Baselines: the damaged input itself ("damaged") and its 3x3
median ("median", OpenCV), the classical remedy for dust and grain.

evaluate.py damages each clean image of `hr_dir` (or "skimage:val") with the film damage model, image i with
`np.random.default_rng([seed, i])`: the same damaged images on every run. The damage is `FilmDamage`'s defaults,
the same the training data uses (conf/data/film_damage.yaml names the class and repeats none of its values), so
the benchmark measures the damage a model was trained for; `damage` overrides some of them for one report.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from restoregan.data.datasets import skimage_photos
from restoregan.data.film_damage import FilmDamage
from restoregan.data.film_dataset import damaged_pair
from restoregan.data.io import list_images, read_image, to_tensor, write_image
from restoregan.outputs import Inputs, one_target_each, prepare_outputs
from restoregan.tasks.base import EvalData, task_config
from restoregan.tasks.image import RGB_COLUMNS, ImageToImageTask, dataset_name, min_side, refuse_small

METRIC_NOTE = "PSNR/SSIM on RGB of 8-bit images, no border crop; LPIPS on RGB"


class RestorationTask(ImageToImageTask):
    """grey: trained on black-and-white film (references are BT.601 grey; stored in exports). conditional: the
    discriminator judges (damaged input, image) pairs, 6 channels, as pix2pix's does.
    evaluate.py options: seed (of the damage), save_inputs (also write out_dir/damaged/ and out_dir/clean/, the
    exact images scored), damage (FilmDamage parameters laid over its defaults, e.g. {sepia_prob: 0})."""

    name = "restore"
    scale = 1
    output_suffix = "_restored"
    evaluate_hint = "hr_dir=skimage:val"  # the held-out scikit-image photos: offline, never trained on
    metric_columns: ClassVar[list[tuple[str, str, int]]] = RGB_COLUMNS
    pipeline_first: ClassVar[bool] = True  # damage goes before colour is guessed or detail invented

    # evaluate.py may score a model against grey or colour references whatever it was trained on (task.grey=...)
    overridable: ClassVar[tuple[str, ...]] = ("grey",)

    def __init__(self, grey: bool | None = None, conditional: bool = True, seed: int = 0, save_inputs: bool = False,
                 damage: Mapping[str, Any] | None = None) -> None:
        # grey None: black-and-white film, the usual archive case; None in conf/task/restore.yaml so that
        # `task=restore` alone does not turn a colour model's references grey (restoregan.models.build_task)
        grey = True if grey is None else grey
        for key, value in (("grey", grey), ("conditional", conditional), ("save_inputs", save_inputs)):
            if not isinstance(value, bool):
                raise ValueError(f"task.{key}: {value!r} is not true or false")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"task.seed: {seed!r} is not a whole number >= 0")
        self.grey, self.conditional, self.seed, self.save_inputs = grey, conditional, seed, save_inputs
        if isinstance(damage, DictConfig):
            damage = OmegaConf.to_container(damage, resolve=True)
        if damage is not None and not isinstance(damage, Mapping):
            raise ValueError(f"task.damage: {damage!r} is not a mapping of FilmDamage parameters")
        self.damage = dict(damage or {})
        self.film_damage()  # a bad override is refused now, before any model runs

    def config(self) -> dict:
        # `conditional` shapes only the discriminator, not what the generator does: not stored, so a community
        # denoiser and our models, scored alike, may share a report
        return task_config(self, grey=self.grey)

    def film_damage(self) -> FilmDamage:
        """The damage evaluate.py applies: FilmDamage's defaults (the training damage) with `damage` laid over."""
        known = inspect.signature(FilmDamage).parameters
        for key in self.damage:
            if key not in known:
                raise ValueError(f"task.damage.{key}: not a FilmDamage parameter (one of {', '.join(known)})")
        try:
            return FilmDamage(**self.damage)
        except ValueError as err:  # FilmDamage names the parameter; say where it was set
            raise ValueError(f"task.damage.{err}") from None

    @classmethod
    def adopt(cls, purpose: str, scale: int, channels: tuple[int | None, int | None]) -> dict | None:
        """Community 1x RGB models (spandrel purpose "Restoration", or "SR" at scale 1: denoisers, dejpeg,
        deblur): colour in, colour out, no discriminator of ours."""
        if purpose in ("Restoration", "SR") and scale == 1 and channels in ((3, 3), (None, None)):
            return task_config(cls.__new__(cls), grey=False)
        return None

    @classmethod
    def from_legacy(cls, word: str, meta: Mapping[str, Any]) -> dict | None:
        """Format-1 exports said `task: restore` with `grey` beside it."""
        if word != "restore":
            return None
        return task_config(cls.__new__(cls), grey=meta.get("grey", True))

    # --- training ---
    def discriminator_pair(self, batch: dict, output: Tensor) -> tuple[Tensor, Tensor]:
        if not self.conditional:
            return self.target(batch), output
        lq = batch["lq"]
        return torch.cat([lq, self.target(batch)], dim=1), torch.cat([lq, output], dim=1)

    def baselines(self, batch: dict) -> dict[str, Tensor]:
        return {"damaged": batch["lq"], "median": median3_batch(batch["lq"])}

    def grid_columns(self, batch: dict, output: Tensor) -> list[tuple[str, Tensor]]:
        return [("damaged", batch["lq"]), ("restored", output.clamp(0, 1)), ("clean", self.target(batch))]

    # --- evaluation ---
    def eval_data(self, cfg: DictConfig) -> EvalData:
        """Each clean image of cfg.hr_dir (or "skimage:val"), greyed when `grey`, damaged with seed (seed, i)."""
        if cfg.get("hr_dir") is None:
            raise ValueError("hr_dir=... is required for film restoration (python evaluate.py ckpt=... "
                             "hr_dir=CLEAN_IMAGES out_dir=...; hr_dir=skimage:val for the held-out photos)")
        source = str(cfg.hr_dir)
        skimage = source.startswith("skimage")
        paths = clean_images(source)
        sources = paths if skimage else [Path(source)]
        refuse_small(paths, *min_side(11, "SSIM's 11x11 Gaussian window", cfg))
        out_dir = Path(cfg.out_dir) if cfg.get("out_dir") is not None else None
        if self.save_inputs and out_dir is not None:  # the copies must not land on (or among) the clean images
            copies = {sub: [out_dir / sub / f"{p.stem}.png" for p in paths] for sub in ("damaged", "clean")}
            one_target_each(paths, copies["damaged"])  # photo.png and photo.jpg would share a copy
            ckpt = cfg.get("ckpt")
            models = [] if ckpt is None else [ckpt] if isinstance(ckpt, (str, Path)) else list(ckpt)
            prepare_outputs(Inputs(sources).add_models(str(m) for m in models), [*copies["damaged"], *copies["clean"]])
        damage = self.film_damage()

        def items():
            for i, path in enumerate(paths):
                damaged, clean = damaged_pair(read_image(path), np.random.default_rng([self.seed, i]), damage,
                                              self.grey)
                if self.save_inputs and out_dir is not None:  # each written atomically (write_image)
                    write_image(out_dir / "damaged" / f"{path.stem}.png", damaged)
                    write_image(out_dir / "clean" / f"{path.stem}.png", clean)
                yield {"lq": to_tensor(damaged)[None], "gt": to_tensor(clean)[None], "name": path.name}

        header = {
            "dataset": cfg.get("dataset") or (source if skimage else dataset_name(Path(source))),
            "hr_dir": source,
            "task": self.name,
            "grey": self.grey,
            "seed": self.seed,
            "metric_note": METRIC_NOTE,
        }

        def title(h: dict, n: int) -> str:
            kind = "grey" if h["grey"] else "colour"
            return f"{h['dataset']}: film restoration ({n} {kind} images, damage seed {h['seed']})"

        return EvalData(items(), header, title, sources, count=len(paths))


def clean_images(source: str) -> list[Path]:
    """A folder of clean images, or "skimage:val" / "skimage:train" / "skimage:all" (the wheel's photos)."""
    if source.startswith("skimage"):
        return skimage_photos(source.split(":")[1] if ":" in source else "val")
    folder = Path(source)
    if not folder.is_dir():
        raise ValueError(f"{folder}: folder of clean images not found")
    return list_images(folder)


def median3(img: np.ndarray) -> np.ndarray:
    """(H, W, 3) float in [0, 1] -> its 3x3 median (OpenCV, 8-bit, replicated borders), float32."""
    u8 = np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)
    return cv2.medianBlur(u8, 3).astype(np.float32) / 255.0


def median3_batch(x: Tensor) -> Tensor:
    """(b, 3, h, w) -> the 3x3 median of each image, same device and dtype."""
    out = [torch.from_numpy(median3(img.permute(1, 2, 0).detach().cpu().numpy())).permute(2, 0, 1) for img in x]
    return torch.stack(out).to(x)
