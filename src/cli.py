"""What train.py, evaluate.py and infer.py share: every failure ends in one line on stderr and a non-zero exit.

A user who typed a wrong path, a wrong override or ran out of disk wants to know which file or key and what to
do, not 60 lines of Hydra, Lightning and DataLoader frames. `run(main)` catches everything (Hydra's own
composition errors included: it sets HYDRA_FULL_ERROR so that Hydra re-raises instead of printing its own
multi-line report) and prints `error: <one line>`. `RESTOREGAN_TRACEBACK=1` shows the full traceback instead.

`check_override_types(cfg)` compares every `key=value` override with the value the config would have without
it: `pretrain_iters=abc` is refused in one line before anything runs, instead of failing deep inside.
"""

from __future__ import annotations

import errno
import functools
import os
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any

TRACEBACK_ENV = "RESTOREGAN_TRACEBACK"
EXIT_ERROR, EXIT_INTERRUPTED = 1, 130


def traceback_wanted() -> bool:
    return os.environ.get(TRACEBACK_ENV, "").strip().lower() not in ("", "0", "false", "no")


_failures: list[Exception] = []


def task(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Decorate the task function under @hydra.main: the overrides are checked (`check_override_types`) before it
    runs, and an exception inside it is kept for `run` to report, because Hydra would first print "Error
    executing job with overrides: [...]" on its way out."""

    def checked(cfg: Any) -> Any:
        check_override_types(cfg)
        return fn(cfg)

    @functools.wraps(fn)
    def wrapper(cfg: Any) -> Any:
        if traceback_wanted():
            return checked(cfg)
        try:
            return checked(cfg)
        except Exception as err:  # noqa: BLE001 - reported by run()
            _failures.append(err)
            return None

    return wrapper


def run(main: Callable[[], Any]) -> None:
    """Call a @hydra.main function; any exception becomes `error: <one line>` on stderr and exit status 1
    (130 for Ctrl-C). SystemExit passes through (Hydra's --help, sys.exit(message))."""
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra re-raises; we print
    if hasattr(sys.stdout, "reconfigure"):  # a file name that is not valid UTF-8 must not fail "wrote <path>"
        sys.stdout.reconfigure(errors="backslashreplace")
    if traceback_wanted():
        main()
        return
    try:
        main()
        if _failures:
            raise _failures.pop()
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        sys.exit(EXIT_INTERRUPTED)
    except Exception as err:  # noqa: BLE001 - the whole point: no traceback reaches the user
        sys.stderr.write(f"error: {one_line(err)}\n")
        sys.exit(EXIT_ERROR)


# Exceptions whose message is written for the user (they name the file or key themselves). Anything else is a
# surprise: it keeps its type name and says how to see the traceback.
def _expected(err: BaseException) -> bool:
    from restoregan.pretrained import MissingWeightsError

    if isinstance(err, (ValueError, OSError, MissingWeightsError, FloatingPointError)):
        return True
    # Hydra's config errors and health stops are user-facing by design
    names = {cls.__name__ for cls in type(err).__mro__}
    return bool(names & {"HydraException", "OmegaConfBaseException", "TrainingHealthError", "RunLockedError"})


_WORKER = re.compile(r"^Caught \w+ in DataLoader worker process \d+")
_QUALIFIED = re.compile(r"^(?:[A-Za-z_][\w]*\.)*[A-Za-z_]\w*(?:Error|Exception|Interrupt): ")


def one_line(err: BaseException) -> str:
    """The message a user reads for `err`, on one line."""
    if type(err).__name__ == "InstantiationException" and err.__cause__ is not None:
        # Hydra wraps what a constructor raised ("Error in call to target ...: <the message>"); the cause is
        # what the user can act on (a refused backbone file, a wrong path)
        return one_line(err.__cause__)
    text = str(err).strip()
    if _WORKER.match(text):
        # torch re-raises a worker's exception with the worker's whole traceback as its message; the original
        # exception ("pkg.ImageReadError: path: problem") is its last line
        last = [line for line in text.splitlines() if line.strip()][-1].strip()
        return _QUALIFIED.sub("", last, count=1)
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        where = err.filename if err.filename2 is None else f"{err.filename} -> {err.filename2}"
        hint = " (free some space or write elsewhere)" if err.errno == errno.ENOSPC else ""
        return f"{where}: {err.strerror}{hint}"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        lines = [type(err).__name__]
    names = {cls.__name__ for cls in type(err).__mro__}
    if names & {"HydraException", "OmegaConfBaseException"}:
        # Hydra: "Could not override 'x'." / "To append to your config use +x=1", cause "Key 'x' is not in struct"
        message = " ".join(line for line in lines if not line.startswith(("full_key:", "object_type=")))
        cause = err.__cause__
        if cause is not None and str(cause).strip():
            message += f" ({str(cause).strip().splitlines()[0]})"
        return message
    message = lines[0] if len(lines) == 1 else f"{lines[0]} {' '.join(lines[1:3])}"
    if _expected(err):
        return message
    return f"{type(err).__name__}: {message} (unexpected; rerun with {TRACEBACK_ENV}=1 for the traceback)"


# --- override types -------------------------------------------------------------------------------------------
# Keys passed through to a library that accepts several kinds itself (trainer.devices=auto, =[0, 1] or =2)
_ANY_KIND = ("trainer.",)


def _kind(value: Any) -> str | None:
    """What a numeric or boolean default asks for; None for the rest, which take any value."""
    if isinstance(value, bool):
        return "a boolean (true/false)"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    return None


def _fits(value: Any, default: Any) -> bool:
    """Only a word where a number or boolean belongs is refused (`pretrain_iters=abc`, `overwrite=maybe`): that
    is the typo Hydra cannot catch. Other kinds (a list for a number, 2.5 for an integer) may be meant, and each
    consumer checks its own ranges."""
    return _kind(default) is None or not isinstance(value, str)


def check_override_types(cfg: Any) -> None:
    """Refuse `key=value` overrides that give a word where the key holds a number or boolean without them.

    Called inside a @hydra.main function: the reference config is composed again with only the config-group
    choices of the command line (experiment=..., generator=...), so experiment files set the reference."""
    from hydra import compose
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    hydra_cfg = HydraConfig.get()
    groups = set(hydra_cfg.runtime.choices)
    overrides = OverridesParser.create().parse_overrides(list(hydra_cfg.overrides.task))
    values = [o for o in overrides if not (o.is_add() or o.is_delete() or o.is_force_add())
              and o.key_or_group not in groups and not o.key_or_group.startswith("hydra")
              and o.package is None]
    values = list({o.key_or_group: o for o in values}.values())  # a key given twice: the last one counts
    if not values:
        return
    choices = [o.input_line for o in overrides if o.key_or_group in groups]
    reference = compose(hydra_cfg.job.config_name, overrides=choices)
    for override in values:
        key = override.key_or_group
        if key.startswith(_ANY_KIND):
            continue
        default = OmegaConf.select(reference, key, default=None)  # only numbers and booleans are checked
        value = OmegaConf.select(cfg, key, default=None)
        if not _fits(value, default):
            raw = override.input_line.split("=", 1)[-1]
            raise ValueError(f"{key}={raw}: expected {_kind(default)} (default {default!r})")


def check_ranges(cfg: Any, rules: Mapping[str, tuple[float | None, str]]) -> None:
    """Refuse, in one line naming the key, a setting outside what it takes, before any work. `rules`: key ->
    (least value, or None for auto/true/false; what it takes, for the message). A null value always passes (off,
    or the default). For values that would not fail by themselves (a negative max_frames, half=maybe read as
    true) or would fail deep inside (contact_frames=0)."""
    from omegaconf import OmegaConf

    for key, (least, takes) in rules.items():
        value = OmegaConf.select(cfg, key, default=None)
        if value is None:
            continue
        if least is None:
            ok = value == "auto" or isinstance(value, bool)
        else:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value >= least
        if not ok:
            raise ValueError(f"{key}={value}: expected {takes}")
