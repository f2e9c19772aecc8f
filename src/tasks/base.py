"""The task contract: everything one restoration task owns, from a training batch to a film-pipeline stage.

A task is one class in one module of this folder (`restoregan.tasks.<name>`) with one `conf/task/<name>.yaml`,
chosen by `task=<name>` in train.py (and optionally evaluate.py / infer.py, whose models carry their task). Code
outside a task module asks the task; it never compares task names. See docs/ARCHITECTURE.md, "Add a task".

Images: float32 RGB in [0, 1]; tensors (b, c, h, w), numpy (H, W, 3). A batch is a dict of tensors made by the
task's datasets (training, validation) or by its `eval_data` (evaluate.py: batches of one).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import islice
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from restoregan.models import Model


# --- how a loaded model is run ---------------------------------------------------------------------------
@dataclass
class RunOptions:
    """Where and how a loaded model runs (infer.py's and evaluate.py's device/tile/half keys)."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    tile: int | None = None  # input tile side; None = whole image (tiled results equal untiled ones)
    tile_overlap: int = 32
    half: bool = False  # fp16 autocast, CUDA only
    batch: int = 4  # frames per forward pass in frame-by-frame stages


# --- frame streams (infer.py on video, the film pipeline) --------------------------------------------------
@dataclass
class Item:
    """One frame of a stream. `index` is the input frame it comes from (a stage that makes several frames of one,
    like interpolation, keeps it), `pts` its presentation time in time base `tb`."""

    index: int
    pts: int
    tb: Fraction
    image: np.ndarray  # (H, W, 3) float32 RGB in [0, 1]


class Stage(Protocol):
    """A loaded model applied to a stream of frames. One call is one pass over consecutive frames (a segment
    plus its context): all state lives inside the call, so a frame's output depends only on the frames handed
    in and a resumed run recomputes exactly what an uninterrupted one did."""

    name: str
    scale: int  # output side / input side
    context: tuple[int, int]  # input frames needed before / after a frame to produce its output

    def rate(self, fps: Fraction) -> Fraction: ...  # output frame rate for an input rate

    def __call__(self, items: Iterator[Item]) -> Iterator[Item]: ...


def batches(items: Iterator[Item], size: int) -> Iterator[list[Item]]:
    while batch := list(islice(items, size)):
        yield batch


class FrameByFrame:
    """The stage of any image-to-image task: `task.apply_batch` on `run.batch` frames per forward pass, no
    context, the frame rate kept."""

    context = (0, 0)

    def __init__(self, name: str, task: Task, model: Model, run: RunOptions) -> None:
        self.name, self.task, self.model, self.run = name, task, model, run
        self.scale = model.scale

    def rate(self, fps: Fraction) -> Fraction:
        return fps

    def __call__(self, items: Iterator[Item]) -> Iterator[Item]:
        for batch in batches(items, self.run.batch):
            x = torch.stack([torch.from_numpy(np.ascontiguousarray(it.image)).permute(2, 0, 1) for it in batch])
            y = self.task.apply_batch(self.model, x, self.run).clamp(0, 1).cpu()
            for it, img in zip(batch, y):
                yield Item(it.index, it.pts, it.tb, img.permute(1, 2, 0).contiguous().numpy())


# --- evaluation ------------------------------------------------------------------------------------------
@dataclass
class EvalData:
    """What evaluate.py scores for a task: `items` yields batches of one (tensors (1, c, h, w) plus "name": the
    image or frame the row of metrics.json names, and optionally "info": more keys for that row), `header` the
    report's keys before "methods" (a task may add to it while `items` runs, e.g. images it skipped), `title`
    the markdown heading and `notes` the lines under the table (both called after the run)."""

    items: Iterable[dict]
    header: dict
    title: Callable[[dict, int], str]  # (header, number of items scored) -> markdown heading
    sources: list = field(default_factory=list)  # paths the data came from (outputs must not land among them)
    notes: Callable[[dict], list[str]] = lambda header: []  # lines under the markdown table
    count: int | None = None  # items `items` will yield, when known (the progress bar's total)


# --- the protocol ----------------------------------------------------------------------------------------
@runtime_checkable
class Task(Protocol):
    """One restoration task. Attributes:

    name            label: exports' and reports' `task`; the film pipeline matches a stage's `task` word to it
                    when it looks for an export; no code branches on it
    scale           output side / input side (1 unless the task enlarges)
    metric_columns  (metric key, report header, decimals) of reports; the first is the primary metric (progress
                    bar, health's below-baseline default, crop-grid labels)
    overridable     (optional) keys of `config()` an option may change for a loaded model (a render size); the
                    others describe the trained model and come from its file
    output_suffix   infer.py names its outputs `<stem><output_suffix>.png|.mp4` ("_x4", "_color", ...)
    evaluate_hint   the data arguments of the evaluate.py command train.py prints at the end ("hr_dir=...")
    grid_crop       side (target pixels) of each crop in evaluate.py's comparison.png
    pipeline_first  True for a task that must run first in a film pipeline (restoration: damage goes before
                    colour is guessed or detail invented)
    """

    name: str
    scale: int
    metric_columns: ClassVar[list[tuple[str, str, int]]]
    output_suffix: str
    evaluate_hint: str
    grid_crop: int
    pipeline_first: ClassVar[bool]

    # -- what the task is, for exports: {"_target_": "<module>.<Class>", **plain-data kwargs} --
    def config(self) -> dict: ...

    # -- a loaded model's network fits the task (channels, class); raise CheckpointError naming `path` --
    def check_network(self, path: Any, net: nn.Module, arch: dict | None) -> None: ...

    # -- training and validation --
    def generate(self, net: nn.Module, batch: dict) -> Tensor: ...  # generator output in target space
    def target(self, batch: dict) -> Tensor: ...
    def discriminator_pair(self, batch: dict, output: Tensor) -> tuple[Tensor, Tensor]: ...  # (real, fake)
    def baselines(self, batch: dict) -> dict[str, Tensor]: ...  # what a model must beat, in target space
    def metrics(self, output: Tensor, batch: dict) -> dict[str, Tensor]: ...  # (b,) float64 per item
    def grid_columns(self, batch: dict, output: Tensor) -> list[tuple[str, Tensor]]: ...

    # -- evaluate.py --
    def eval_data(self, cfg: DictConfig) -> EvalData: ...  # cfg: evaluate.py's (hr_dir, lr_dir, input, lpips...)
    def run_batch(self, model: Model, batch: dict, run: RunOptions) -> Tensor: ...  # a model on an eval batch

    # -- infer.py and pipeline stages --
    def apply_batch(self, model: Model, x: Tensor, run: RunOptions) -> Tensor: ...  # (b,3,h,w) -> (b,3,H,W)
    def stage(self, name: str, model: Model, run: RunOptions) -> Stage: ...
    def sequence(self, files: list) -> bool: ...  # is a folder of these images a frame sequence

    # Optional: generate_with_losses(net, batch) -> (output, {name: loss}): the output and loss terms only the task
    # can compute (a temporal restorer's flow loss), added to the generator's loss and logged as train/g_<name>.
    # Optional: can_score(config) -> bool: evaluate.py may score a model of that task config on this task's data
    # (a temporal restorer's report takes a single-frame restorer, run frame by frame on the same clips).
    # Optional: grid_image(x) -> (1, c, h, w): what comparison.png shows of an item with several frames.
    # Optional: set_metrics(device) -> ({key: metric or None}, note or None): scores of a whole set
    # (colorization's FID), called once per method by the evaluation loop; each metric has update(image, real)
    # (an (H, W, 3) image, real=True for the target) and compute() -> float; None (with the note saying why:
    # weights unavailable, switched off) reports null.


TASK_METHODS = ("config", "check_network", "generate", "target", "discriminator_pair", "baselines", "metrics",
                "grid_columns", "eval_data", "run_batch", "apply_batch", "stage", "sequence")


def is_task_class(cls: Any) -> bool:
    """A concrete class with the contract's methods and columns (not a shared base such as ImageToImageTask,
    which marks itself `abstract_task`); checked before a model file's arguments ever reach a constructor."""
    return (isinstance(cls, type) and not vars(cls).get("abstract_task", False)
            and all(callable(getattr(cls, m, None)) for m in TASK_METHODS) and hasattr(cls, "metric_columns"))


def task_config(task: Any, **kwargs: Any) -> dict:
    """{"_target_": "<module>.<Class>", **kwargs}: what an export stores to rebuild `task`."""
    cls = type(task)
    return {"_target_": f"{cls.__module__}.{cls.__qualname__}", **kwargs}


def finite_mean(values: Iterable[float | None]) -> float | None:
    """The mean over finite values (identical images score PSNR inf: no information); None when a value is
    missing (a metric not computed) or none is finite. Validation and evaluate.py average with this one rule."""
    values = [None if v is None else float(v) for v in values]
    if any(v is None for v in values):
        return None
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else None
