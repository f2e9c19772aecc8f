"""A model card: what a model file says about itself to a person, in the spirit of OpenModelDB's model pages.

Every export carries one (`card` in the export yaml and safetensors metadata, `restoregan.card` in an ONNX
file's metadata); infer.py prints it when it loads the model (`format_card`). Keys:

    name, author, licence, description    who made it and may use it how (licence: an SPDX id, e.g. CC-BY-4.0)
    architecture                          the generator class and its size, e.g. "RRDBNet(num_feat=32, ...)"
    task, scale                           the task's name (sr, colorize, interp, restore) and output / input side
    training_data                         what it learnt from, e.g. "HRImageDataset: DIV2K_train_HR (bicubic)"
    iterations, date                      training iterations; the export's date (ISO 8601, UTC)
    benchmarks                            [{dataset, <metric>: value, ...}]: evaluate.py's figures for it

A card read from a file is data: a mapping of these keys to plain values (strings, numbers, null), benchmarks a
short list of flat mappings; anything else is refused in one line (`check_card`), and so are control and format
characters in its text (a terminal escape sequence or a forged line would reach the user's terminal with it),
except newlines in `description` (paragraphs, printed indented).
"""

from __future__ import annotations

import datetime
import unicodedata
from pathlib import Path
from typing import Any, Mapping

from omegaconf import DictConfig, ListConfig, OmegaConf

KEYS = ("name", "author", "licence", "description", "architecture", "task", "scale", "training_data", "iterations",
        "date", "benchmarks")
MAX_TEXT = 4000  # characters of one value (a description of a few paragraphs)
MAX_BENCHMARKS = 100
# Unicode categories refused in a card's text: control (ESC, CR, ...) and format characters (bidi overrides), lone
# surrogates, line and paragraph separators
UNPRINTABLE = ("Cc", "Cf", "Cs", "Zl", "Zp")


def model_card(
    *,
    name: str | None = None,
    author: str | None = None,
    licence: str | None = None,
    description: str | None = None,
    arch: Mapping[str, Any] | None = None,
    task: str | None = None,
    scale: int | None = None,
    training_data: str | None = None,
    iterations: int | None = None,
    date: str | None = None,
    benchmarks: list[dict] | None = None,
) -> dict:
    """A card with every key of `KEYS`; `arch` ({_target_, **kwargs}) is written as "Class(k=v, ...)", `date`
    defaults to today (UTC)."""
    return {
        "name": name, "author": author, "licence": licence, "description": description,
        "architecture": architecture(arch) if arch is not None else None,
        "task": task, "scale": None if scale is None else int(scale), "training_data": training_data,
        "iterations": None if iterations is None else int(iterations),
        "date": date or datetime.datetime.now(datetime.timezone.utc).date().isoformat(),
        "benchmarks": list(benchmarks or []),
    }


def architecture(arch: Mapping[str, Any]) -> str:
    """`{_target_: restoregan.gans.rrdbnet.RRDBNet, num_feat: 32}` -> "RRDBNet(num_feat=32)"."""
    cls = str(arch.get("_target_", "?")).rsplit(".", 1)[-1]
    args = ", ".join(f"{k}={v}" for k, v in arch.items() if k not in ("_target_", "pretrained"))
    return f"{cls}({args})"


def training_data(data_cfg: Any) -> str | None:
    """What a run's `data.train` learnt from, without local paths: the dataset class, its sources (folder names,
    `skimage`, `hf:<name>`) and the degradation's class, e.g. "HRImageDataset: DIV2K_train_HR (BicubicDegradation)"."""
    if data_cfg is None:
        return None
    if isinstance(data_cfg, (DictConfig, ListConfig)):
        data_cfg = OmegaConf.to_container(data_cfg, resolve=False)  # ??? / interpolations stay text, never fail
    train = data_cfg.get("train") if isinstance(data_cfg, Mapping) else None
    if not isinstance(train, Mapping):
        return None
    kind = str(train.get("_target_", "")).rsplit(".", 1)[-1] or "dataset"
    sources: list[str] = []
    for key in ("source", "sources", "hr_dir", "lr_dir", "optional_sources"):
        value = train.get(key)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, (str, Path)) and str(item):
                text = str(item)
                sources.append(text if text.startswith(("skimage", "hf:")) else Path(text).name or text)
    text = f"{kind}: {', '.join(dict.fromkeys(sources))}" if sources else kind
    degradation = train.get("degradation") or train.get("damage")
    if isinstance(degradation, Mapping) and "_target_" in degradation:
        text += f" ({str(degradation['_target_']).rsplit('.', 1)[-1]})"
    return text


def check_card(path: Path | str, card: Any) -> dict:
    """A card read from `path` as plain data, or a one-line ValueError naming the file: a mapping of `KEYS` (others
    are refused) to None, strings, numbers or booleans; `benchmarks` a list of flat mappings of those."""
    if not isinstance(card, Mapping):
        raise ValueError(f"{path}: card: a {type(card).__name__}, not a mapping of {', '.join(KEYS)}")
    out: dict[str, Any] = {}
    for key, value in card.items():
        if key not in KEYS:
            raise ValueError(f"{path}: card.{str(key)[:40]}: not a card key ({', '.join(KEYS)})")
        if key == "benchmarks":
            if not isinstance(value, list) or len(value) > MAX_BENCHMARKS:
                raise ValueError(f"{path}: card.benchmarks: must be a list of at most {MAX_BENCHMARKS} mappings")
            out[key] = [_flat(path, f"card.benchmarks[{i}]", row) for i, row in enumerate(value)]
        else:
            out[key] = _scalar(path, f"card.{key}", value, newlines=key == "description")
    return out


def _flat(path: Path | str, where: str, row: Any) -> dict:
    if not isinstance(row, Mapping) or len(row) > 50:
        raise ValueError(f"{path}: {where}: must be a mapping of at most 50 plain values ({{dataset, metric: value}})")
    out = {}
    for key, value in row.items():
        if not isinstance(key, str) or len(key) > 100:
            raise ValueError(f"{path}: {where}: key {str(key)[:40]!r} is not a short string")
        _printable(path, f"{where}: key {key[:40]!r}", key)
        out[key] = _scalar(path, f"{where}.{key}", value)
    return out


def _scalar(path: Path | str, where: str, value: Any, newlines: bool = False) -> Any:
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            raise ValueError(f"{path}: {where}: text longer than {MAX_TEXT} characters")
        _printable(path, where, value, newlines)
        return value
    raise ValueError(f"{path}: {where}: a {type(value).__name__} is not allowed (a string, a number or null)")


def _printable(path: Path | str, where: str, text: str, newlines: bool = False) -> None:
    bad = next((c for c in text if unicodedata.category(c) in UNPRINTABLE and not (newlines and c == "\n")), None)
    if bad is not None:
        raise ValueError(f"{path}: {where}: holds the control character U+{ord(bad):04X} (its text is printed to a "
                         "terminal; only a description may hold newlines)")


def format_card(card: Mapping[str, Any] | None) -> str | None:
    """A few lines for a person: name, author and licence; what it is; training; description; benchmarks. None
    for a file without a card."""
    if not card:
        return None

    def given(*keys: str) -> list[str]:
        return [f"{k.replace('_', ' ')}: {card[k]}" for k in keys if card.get(k) not in (None, "")]

    lines = []
    head = [str(card["name"])] if card.get("name") else []
    lines.append("model card: " + ", ".join(head + given("author", "licence", "date")))
    about = given("task", "scale", "architecture")
    if about:
        lines.append("  " + ", ".join(about))
    trained = given("training_data", "iterations")
    if trained:
        lines.append("  " + ", ".join(trained))
    if card.get("description"):  # paragraphs kept, each indented under the card
        paragraphs = (" ".join(p.split()) for p in str(card["description"]).split("\n"))
        lines.extend(f"  {p}" for p in paragraphs if p)
    for row in card.get("benchmarks") or []:
        figures = ", ".join(f"{k} {_number(v)}" for k, v in row.items() if k != "dataset")
        lines.append(f"  benchmark {row.get('dataset', '?')}: {figures}")
    return "\n".join(lines)


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
