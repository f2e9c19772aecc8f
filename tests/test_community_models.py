"""Community weights in every stage, through the model descriptor. No published file can be downloaded here: each
format's file is built from its committed manifest (src/gans/manifests/<format>.json: parameter names, shapes and
dtypes of the published file, see tests/make_manifests.py) with random weights, saved as its users hold it, then
loaded with `load_model`: detected architecture, task, scale, and the stage run on a small input."""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from interp_utils import clip_with_cut, scene
from community_files import manifest, random_state, save_as_user
from pipeline_utils import run_infer, streams, write_clip
from restoregan.gans.checkpoint import CheckpointError
from restoregan.models import load_model
from restoregan.tasks.base import Item, RunOptions

RUN = RunOptions()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict:
    cache: dict[str, Path] = {}
    folder = tmp_path_factory.mktemp("community")

    def get(fmt: str) -> Path:
        if fmt not in cache:
            (folder / fmt).mkdir()
            cache[fmt] = save_as_user(fmt, folder / fmt)
        return cache[fmt]

    return get


def image(h: int = 24, w: int = 40, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).random((1, 3, h, w), dtype=np.float32))


# --- restore and upscale: spandrel's architectures --------------------------------------------------------
RESTORE = [
    "dncnn", "scunet",
    pytest.param("nafnet", marks=pytest.mark.slow), pytest.param("drunet", marks=pytest.mark.slow),
    pytest.param("fbcnn", marks=pytest.mark.slow), pytest.param("kbnet", marks=pytest.mark.slow),
    pytest.param("uformer", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("fmt", RESTORE)
def test_restoration_models_fill_the_restore_stage(files, fmt: str) -> None:
    model = load_model(files(fmt))
    assert model.source.startswith(f"spandrel {manifest(fmt)['arch']}") and model.arch is None
    assert model.task.name == "restore" and model.scale == 1
    out = model.task.apply_batch(model, image(), RUN)
    assert out.shape == (1, 3, 24, 40) and bool(torch.isfinite(out).all())
    assert 0 <= float(out.min()) and float(out.max()) <= 1


def test_a_spandrel_sr_model_fills_the_upscale_stage(files) -> None:
    model = load_model(files("swinir_lightweight_x2"))
    assert model.source.startswith("spandrel SwinIR") and model.task.name == "sr" and model.scale == 2
    assert model.task.apply_batch(model, image(), RUN).shape == (1, 3, 48, 80)


# --- colorize: DDColor through spandrel-extra-arches ---------------------------------------------------------
@pytest.mark.slow
def test_ddcolor_fills_the_colorize_stage_and_keeps_the_luminance(files) -> None:
    pytest.importorskip("spandrel_extra_arches", reason="the optional extra `ddcolor` is not installed")
    model = load_model(files("ddcolor_paper_tiny"))
    assert model.source.startswith("spandrel DDColor") and model.task.name == "colorize" and model.scale == 1
    grey = image(40, 56)[:, :1].expand(-1, 3, -1, -1)  # a black-and-white photo: R = G = B
    out = model.task.apply_batch(model, grey, RUN)
    assert out.shape == (1, 3, 40, 56)
    # BT.601 luma of the output is the input's grey (8-bit rounding aside): our composition, not DDColor's Lab
    y = 0.299 * out[:, 0] + 0.587 * out[:, 1] + 0.114 * out[:, 2]
    assert float((y - grey[:, 0]).abs().max()) <= 1 / 255
    assert float((out - out.mean(1, keepdim=True)).abs().max()) > 0  # some colour was added


def test_ddcolor_without_the_extra_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from spandrel import MAIN_REGISTRY

    from restoregan.gans import community

    assert "DDColor" not in MAIN_REGISTRY  # registered for our loader only, never in spandrel's global registry
    monkeypatch.setattr(community, "spandrel_registry", lambda: MAIN_REGISTRY)  # as without spandrel-extra-arches
    names = [name for name, _, _ in manifest("ddcolor_paper_tiny")["params"]]
    path = tmp_path / "ddcolor_paper_tiny.pth"
    torch.save({name: torch.zeros(1) for name in names}, path)  # the names are what detection reads
    with pytest.raises(CheckpointError, match=r"ddcolor_paper_tiny\.pth: unknown architecture .*install the "
                                              r"optional extra `ddcolor`"):
        load_model(path)


# --- interpolate: RIFE v4 flownet.pkl ------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["rife_v4_6", "rife_v4_5"])
def test_rife_flownet_fills_the_interpolate_stage_at_any_t(files, fmt: str) -> None:
    model = load_model(files(fmt))
    assert "RIFE" in model.source and model.task.name == "interp" and model.scale == 1
    # the manifest, written from the published layer list, holds exactly our network's parameters
    assert sum(p.numel() for p in model.net.parameters()) == manifest(fmt)["parameters"]
    f0, f1 = image(50, 70, 1), image(50, 70, 2)  # not multiples of 32: padded and cropped back
    with torch.no_grad():
        half, quarter = (model.net(f0, f1, torch.tensor([t])) for t in (0.5, 0.25))
        ends = [model.net(f0, f1, t) for t in (0.0, 1.0)]
    assert half.shape == quarter.shape == ends[0].shape == ends[1].shape == (1, 3, 50, 70)
    assert float((half - quarter).abs().max()) > 1e-4  # t reaches the network as its time channel


def _shift_weights(block: int, flow: tuple[float, float, float, float], mask: float) -> dict:
    """A v4.6 flownet whose only non-zero weights are one block's last biases: every block then returns a constant
    (flow, mask) residual, that block's biases times its scale (flow) and as they are (mask)."""
    state = {k: torch.zeros_like(v) for k, v in random_state("rife_v4_6").items()}
    bias = state[f"module.block{block}.lastconv.0.bias"]  # 24 channels, pixel-shuffled by 2: 4 per output channel
    for channel, value in enumerate([*flow, mask]):
        bias[4 * channel: 4 * channel + 4] = value
    return state


@pytest.mark.parametrize("block, scale", [(3, 1), (0, 8)])
def test_rife_warps_and_fuses_as_the_paper_says(tmp_path: Path, block: int, scale: int) -> None:
    """Constant flows of whole pixels: the output at t is frame0 sampled at x + flow_t0 blended with frame1
    sampled at x + flow_t1 by sigmoid(mask); compared with numpy slicing away from the borders."""
    shift0, shift1 = (3, -2), (-1, 4)  # (dx, dy) in pixels at full size
    flow = tuple(v / scale for v in (*shift0, *shift1))
    path = save_as_user("rife_v4_6", tmp_path, _shift_weights(block, flow, mask=0.4))
    model = load_model(path)
    f0, f1 = image(64, 96, 3), image(64, 96, 4)
    with torch.no_grad():
        out = model.net(f0, f1, 0.5)[0].numpy()
    a, b = f0[0].numpy(), f1[0].numpy()
    w = 1 / (1 + np.exp(-0.4))
    inner = (slice(None), slice(8, 56), slice(8, 88))
    ys, xs = np.mgrid[8:56, 8:88]
    want = w * a[:, ys + shift0[1], xs + shift0[0]] + (1 - w) * b[:, ys + shift1[1], xs + shift1[0]]
    np.testing.assert_allclose(out[inner], want, atol=1e-5)


def test_rife_stage_doubles_the_rate_and_holds_across_a_scene_cut(files) -> None:
    model = load_model(files("rife_v4_6"), options={"factor": 2})
    frames = clip_with_cut(3, 3)
    items = [Item(i, i, Fraction(1, 12), f) for i, f in enumerate(frames)]
    out = list(model.task.stage("interpolate", model, RUN)(iter(items)))
    assert len(out) == 2 * len(frames) and [o.pts for o in out] == list(range(2 * len(frames)))
    assert all(o.image.shape == frames[0].shape for o in out)
    # between frame 2 and 3 lies the cut: the frame before it is held, nothing blended
    assert np.array_equal(out[5].image, frames[2])
    assert not np.array_equal(out[1].image, frames[0])  # within a shot the network makes the frame


def test_rife_layouts_we_do_not_run_are_refused_in_one_line(tmp_path: Path) -> None:
    state = random_state("rife_v4_6")
    state["module.encode.cnn0.weight"] = torch.zeros(16, 3, 3, 3)
    path = save_as_user("rife_v4_6", tmp_path, state)
    with pytest.raises(CheckpointError, match=r"flownet\.pkl: a RIFE flownet with a feature encoder .*v4\.7"):
        load_model(path)
    del state["module.encode.cnn0.weight"]
    old = {k.replace("lastconv.0.", "lastconv."): v for k, v in state.items() if ".beta" not in k}  # v4.0-v4.4
    torch.save(old, path)
    with pytest.raises(CheckpointError, match=r"flownet\.pkl: a RIFE flownet of the v4\.0-v4\.4 layout"):
        load_model(path)
    state["module.block1.convblock.0.conv.weight"] = torch.zeros(128, 128, 5, 5)
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"flownet\.pkl: weights do not fit RIFE .*shape mismatches"):
        load_model(path)


@pytest.mark.parametrize("key, shape, what", [
    ("module.block0.lastconv.0.weight", (192, 50000, 1, 0), "sizes this version does not run"),  # 12500 outputs
    ("module.block0.conv0.1.0.weight", (10**6, 96, 0, 0), "sizes this version does not run"),  # a huge width
    ("module.block1.convblock.3.conv.weight", (128, 10**6, 0, 3), "shape mismatches"),  # sizes fit, shape not
])
def test_rife_sizes_are_bounded_before_anything_is_built(tmp_path: Path, key: str, shape: tuple, what: str) -> None:
    # empty tensors with huge shapes: a few KB on disk, gigabytes if the network were built from them
    state = random_state("rife_v4_6")
    state[key] = torch.empty(shape)
    path = save_as_user("rife_v4_6", tmp_path, state)
    start = time.perf_counter()
    with pytest.raises(CheckpointError) as err:
        load_model(path)
    assert time.perf_counter() - start < 2
    message = str(err.value)
    assert message.startswith(f"{path}: ") and what in message and "\n" not in message


def test_spandrel_load_errors_name_the_mismatched_key(tmp_path: Path) -> None:
    state = random_state("dncnn")
    state["model.2.weight"] = torch.zeros(64, 64, 5, 5)  # published: (64, 64, 3, 3)
    path = save_as_user("dncnn", tmp_path, state)
    with pytest.raises(CheckpointError) as err:
        load_model(path)
    message = str(err.value)
    assert message.startswith(f"{path}: spandrel recognised but could not load it") and "\n" not in message
    assert "model.2.weight: [64, 64, 5, 5] in the file, [64, 64, 3, 3] in the model" in message


# --- the film pipeline selects them by path ----------------------------------------------------------------------
@pytest.mark.slow
def test_film_pipeline_runs_community_restore_and_interpolate(files, tmp_path: Path) -> None:
    n = 5
    clip = write_clip(tmp_path / "reel.mp4", scene(n), fps=12)
    out = tmp_path / "out.mp4"
    run_infer([f"input={clip}", f"output={out}", f"stages.restore.ckpt={files('scunet')}",
               f"stages.interpolate.ckpt={files('rife_v4_6')}", "pipeline.order=[restore,interpolate]",
               f"pipeline.runs_dir={tmp_path / 'no_runs'}"])
    got = streams(out)
    assert got["frames"] == 2 * n and got["fps"] == 24 and got["size"] == (48, 64)
