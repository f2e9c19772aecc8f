"""What export.py does (the script is its command line): convert one of our model files (an export, a train.py
`.ckpt`, an ESRGAN-family `.pth`) to ONNX, or write it again as an export, with a model card.

    python export.py ckpt=PATH format=onnx output=model.onnx [scores=metrics.json] [card.author=...] [opset=17]
    python export.py ckpt=PATH format=safetensors output=DIR/name [scores=...] [card.licence=CC-BY-4.0]

The card (restoregan.gans.card) starts from the file's own (an export's `card:`), else from what the file says
(run name, iterations, architecture, task); `card.<key>=` sets author, licence, description (null keeps the
file's). `scores=` takes evaluate.py's metrics.json (one, or a list): the figures of the method whose checkpoint
sha256 is this model file's become the card's benchmarks; a report that did not score this very file is refused.
An ONNX file is checked against PyTorch before it is left on disk (`restoregan.gans.onnx_export`). The input
model (and, for an export, its other half) is never overwritten.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from restoregan.gans.card import check_card, model_card
from restoregan.gans.checkpoint import save_export
from restoregan.gans.onnx_export import DEFAULT_OPSET, TOLERANCE, export_onnx
from restoregan.models import Model, load_model
from restoregan.outputs import Inputs, prepare_outputs

FORMATS = ("onnx", "safetensors")
CARD_OPTIONS = ("author", "licence", "description")
MAX_REPORT_BYTES = 256 * 1024 * 1024  # metrics.json of a large evaluation holds a row per image


def export(cfg: DictConfig) -> tuple[list[Path], float | None]:
    """Write what `cfg` (conf/export.yaml) asks; returns the files written and, for ONNX, the max abs difference
    between onnxruntime and PyTorch it was checked with."""
    for key in ("ckpt", "output"):
        if cfg.get(key) is None:
            raise ValueError(f"{key}=... is required (python export.py ckpt=MODEL format=onnx output=model.onnx)")
    if cfg.format not in FORMATS:
        raise ValueError(f"format={cfg.format}: must be one of {', '.join(FORMATS)}")
    opset = cfg.get("opset") or DEFAULT_OPSET
    if isinstance(opset, bool) or not isinstance(opset, int) or not 16 <= opset <= 21:
        raise ValueError(f"opset={opset}: must be a whole number from 16 to 21 (GridSample needs 16)")
    ckpt, output = Path(cfg.ckpt), Path(cfg.output)
    targets = onnx_targets(output) if cfg.format == "onnx" else export_targets(output)
    score_files = _paths(cfg.get("scores"))
    prepare_outputs(Inputs(score_files).add_models([ckpt]), targets)  # never onto the model or a report
    model = load_model(ckpt)
    if model.arch is None or not hasattr(model.net, "state_dict") or not model.net.state_dict():
        raise ValueError(f"{ckpt}: not a network export.py can convert ({model.source}); it converts this project's "
                         "PyTorch networks (an export, a train.py .ckpt, an ESRGAN-family .pth)")
    card = card_for(model, cfg.get("card"), [benchmarks(p, ckpt) for p in score_files])
    net = model.net.float().cpu().eval()
    if cfg.format == "onnx":
        diff = export_onnx(net, model.arch, model.task.config(), card, targets[0], opset)
        return targets, diff
    meta = {"task": model.task.config(), "scale": model.scale,
            **{k: v for k, v in model.meta.items() if k != "card"}, "card": card}
    save_export(targets[0], net, model.arch, meta)
    return targets, None


def onnx_targets(output: Path) -> list[Path]:
    return [output if output.suffix.lower() == ".onnx" else output.with_name(output.name + ".onnx")]


def export_targets(output: Path) -> list[Path]:
    base = output.with_suffix("") if output.suffix in (".safetensors", ".yaml") else output
    return [Path(f"{base}.safetensors"), Path(f"{base}.yaml")]


def _paths(value: Any) -> list[Path]:
    if value is None:
        return []
    if isinstance(value, (ListConfig, list, tuple)):
        return [Path(str(v)) for v in value]
    return [Path(str(value))]


def card_for(model: Model, options: Any, rows: list[list[dict]]) -> dict:
    """The file's card (or one made from what the file says), `card.<key>=` options laid over it, benchmarks
    from `rows` added (a row for the same dataset replaces the card's)."""
    own = model.meta.get("card")
    if own:
        card = {**model_card(), **own}
    else:
        card = model_card(name=model.meta.get("name") or default_name(model.path), arch=model.arch,
                          task=model.task.name, scale=model.scale, iterations=model.meta.get("iterations"))
    given = OmegaConf.to_container(options, resolve=True) if isinstance(options, DictConfig) else dict(options or {})
    unknown = sorted(set(given) - set(CARD_OPTIONS))
    if unknown:
        raise ValueError(f"card.{unknown[0]}: not a card option ({', '.join(CARD_OPTIONS)}); the rest comes from "
                         "the model file and scores=")
    card.update({k: v for k, v in given.items() if v is not None})
    for new in rows:
        datasets = {row.get("dataset") for row in new}
        card["benchmarks"] = [r for r in card.get("benchmarks") or [] if r.get("dataset") not in datasets] + new
    return check_card("card", card)


def default_name(path: Path) -> str:
    """A model's name when its file says none: the run's (runs/<name>/checkpoints/last.ckpt, runs/<name>/export/
    generator.yaml), else the file's stem."""
    if path.parent.name in ("checkpoints", "export") and path.parent.parent.name:
        return path.parent.parent.name
    return path.stem


def benchmarks(report_path: Path, ckpt: Path) -> list[dict]:
    """The card rows of the metrics.json at `report_path` for the model file `ckpt`: {dataset, task, metric:
    mean, ...} of the method whose checkpoint sha256 is `ckpt`'s; refused in one line when none is."""
    from restoregan.evaluation.report import checkpoint_record

    if not report_path.is_file():
        raise ValueError(f"{report_path}: scores file not found")
    if report_path.stat().st_size > MAX_REPORT_BYTES:
        raise ValueError(f"{report_path}: too large for an evaluate.py metrics.json")
    try:
        report = json.loads(report_path.read_text())
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        raise ValueError(f"{report_path}: not an evaluate.py metrics.json (invalid JSON: {err})") from None
    methods = report.get("methods") if isinstance(report, dict) else None
    if not isinstance(methods, dict):
        raise ValueError(f"{report_path}: not an evaluate.py metrics.json (no methods)")
    digest = checkpoint_record(ckpt)["sha256"]
    for name, scores in methods.items():
        record = scores.get("checkpoint") if isinstance(scores, dict) else None
        if isinstance(record, dict) and record.get("sha256") == digest:
            figures = {k: v for k, v in scores.items() if _figure(v)}
            dataset = report.get("dataset")
            return [{"dataset": dataset if isinstance(dataset, str) else report_path.parent.name,
                     **({"task": report["task"]} if isinstance(report.get("task"), str) else {}), **figures}]
    raise ValueError(f"{report_path}: scored no model with this file's sha256 ({digest[:12]}...); its figures are "
                     f"of another file than {ckpt} (evaluate.py ckpt={ckpt} first)")


def _figure(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def summary(targets: list[Path], diff: float | None) -> str:
    """The last lines export.py prints."""
    lines = []
    if diff is not None:
        lines.append(f"onnxruntime vs PyTorch: max abs diff {diff:.3g} (fp32, random inputs at two sizes other than "
                     f"the traced one; allowed < {TOLERANCE:g} x the largest output magnitude, at least 1)")
    lines.append("wrote " + ", ".join(str(t) for t in targets))
    return "\n".join(lines)
