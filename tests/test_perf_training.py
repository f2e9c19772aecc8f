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
        cfg = _small("film_restore_quickstart", [f"model.channels_last={str(flag).lower()}",
                                                 "trainer.precision=32-true"])  # the layout alone, in fp32
        batches = pt.draw_batches(cfg, 2)
        pt.phase_overrides(cfg, "g_pretrain", 2)
        _, _, module, _ = pt.framework_run(cfg, batches, 0, torch.device("cpu"), tmp_path / str(flag))
        conv = next(m for m in module.net_g.modules() if isinstance(m, torch.nn.Conv2d))
        assert conv.weight.is_contiguous(memory_format=torch.channels_last) == flag
        results[flag] = {k: v.detach().clone() for k, v in module.net_g.state_dict().items()}
    for k in results[False]:
        torch.testing.assert_close(results[True][k], results[False][k], rtol=1e-4, atol=1e-5, msg=k)


def test_rounds_alternate_on_one_module(tmp_path: Path) -> None:
    """The overhead repeats train one module with the framework, then its networks in the plain loop, then the
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


def test_per_iteration_is_the_median_of_window_means() -> None:
    """Intervals after warm-up are cut into equal consecutive windows (the remainder dropped); the figure is the
    median of the windows' means, so one slowed window does not move it but a slow step inside a window counts."""
    intervals = [5.0, 1, 1, 1, 2, 2, 2, 9, 1, 1, 7]  # warm-up 5; windows (1,1,1) (2,2,2) (9,1,1); 7 dropped
    starts = [0.0]
    for d in intervals:
        starts.append(starts[-1] + d)
    assert pt._per_iteration(starts, 1, 3) == pytest.approx(2.0)
    assert pt._per_iteration(starts, 1, 1) == pytest.approx(27 / 10)  # one window: the mean of all ten
    assert pt._per_iteration(starts, 1, 20) == pytest.approx(1.5)  # one window per interval: their median


def test_overhead_statistics_from_fake_timings() -> None:
    """Each pair gives framework / plain - 1; the phase reports min, median, max and the spread in points."""
    fw, plain = [1.10, 0.51, 2.10, 1.00, 0.99], [1.00, 0.50, 2.00, 1.00, 1.00]  # +10, +2, +5, 0, -1 %
    s = pt.overhead_stats(fw, plain)
    assert s["repeats"] == 5
    assert s["per_repeat_percent"] == pytest.approx([10, 2, 5, 0, -1], abs=0.01)
    assert (s["min_percent"], s["median_percent"], s["max_percent"], s["spread_points"]) == (-1.0, 2.0, 10.0, 11.0)
    with pytest.raises(ValueError):
        pt.overhead_stats([1.0, 1.0], [1.0])  # a pair without its partner is a bug, not a figure


def test_alternate_runs_framework_and_plain_in_abab_order() -> None:
    calls: list[str] = []
    times = iter([3.0, 2.0, 5.0, 4.0, 7.0, 6.0])

    def runner(tag: str):
        def run() -> float:
            calls.append(tag)
            return next(times)
        return run

    fw, plain = pt.alternate(runner("A"), runner("B"), 3)
    assert calls == ["A", "B", "A", "B", "A", "B"]
    assert (fw, plain) == ([3.0, 5.0, 7.0], [2.0, 4.0, 6.0])


def test_measure_alternates_on_one_module_and_reports_the_median(monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:
    """measure() wires the pieces: framework and plain runs alternate, each plain run gets the preceding framework
    run's module and optimizers, and the phase row carries the per-pair statistics with the median as its verdict
    figure."""
    monkeypatch.delenv("BENCH_QUICK", raising=False)
    calls: list[tuple] = []
    fw_times, plain_times = iter([1.04, 1.10, 1.02, 1.03]), iter([1.0, 1.0, 1.0, 1.0])  # +4, +10, +2, +3 %

    def fake_framework(cfg, batches, warmup, device, tmp, memory=False, module=None):
        calls.append(("framework", module))
        return next(fw_times), None, module or "the module", ["opt_g"]

    def fake_plain(cfg, batches, warmup, device, module=None, optimizers=None):
        calls.append(("plain", module, tuple(optimizers)))
        return next(plain_times), None

    monkeypatch.setattr(pt, "framework_run", fake_framework)
    monkeypatch.setattr(pt, "plain_run", fake_plain)
    monkeypatch.setattr(pt, "draw_batches", lambda cfg, n: [{}] * n)
    out = pt.measure("sr_quickstart", torch.device("cpu"), tmp_path, with_plain=True, only_phase="g_pretrain",
                     repeats=4)
    assert [c[0] for c in calls] == ["framework", "plain"] * 4
    assert calls[0] == ("framework", None) and all(c[1] == "the module" for c in calls[1:])
    row = out["phases"]["g_pretrain"]
    assert row["framework_overhead_percent"] == row["overhead"]["median_percent"] == 3.5
    assert (row["overhead"]["min_percent"], row["overhead"]["max_percent"], row["overhead"]["spread_points"]) == (
        2.0, 10.0, 8.0)
    assert row["framework_seconds_per_iteration"] == 1.02  # the fastest framework run (the loader's yardstick)


def _summary_with(overheads: dict[str, tuple[list[float], list[float]]]) -> str:
    import perf_summary

    phases = {phase: {"framework_iterations_per_s": 1.0, "framework_seconds_per_iteration": 1.0, "peak_mib": 1.0,
                      **({"framework_overhead_percent": (s := pt.overhead_stats(fw, pl))["median_percent"],
                          "overhead": s})}
              for phase, (fw, pl) in overheads.items()}
    r = {"device": "cpu", "machine": {}, "configs": {"sr_quickstart": {"batch_size": 2, "crop_size": 8,
                                                                       "phases": phases}}}
    return "\n".join(perf_summary.training_section(r))


def test_summary_renders_overhead_range_spread_and_verdicts() -> None:
    ok = _summary_with({"g_pretrain": ([1.03, 1.04, 1.035], [1.0, 1.0, 1.0]),  # +3, +4, +3.5: spread 1
                        "gan": ([1.01, 1.015, 1.012], [1.0, 1.0, 1.0])})  # spread 0.5
    assert "| min / max | spread (points) |" in ok
    assert "| sr_quickstart | 2 x 8 | g_pretrain | 1.00 | 1.000 | +3.5% | +3.0% / +4.0% | 1.0 |" in ok
    assert "sr_quickstart g_pretrain, median of 3 pairs): +3.5%**: meets the 5% bar" in ok
    assert "spread (widest, sr_quickstart g_pretrain): 1.0 points**: under the 2-point target" in ok
    bad = _summary_with({"g_pretrain": ([1.02, 1.06, 1.09], [1.0, 1.0, 1.0])})  # +2, +6, +9: median 6, spread 7
    assert "+6.0%**: MISSES the 5% bar" in bad
    assert "7.0 points**: NOT under the 2-point target" in bad


def test_repeats_option() -> None:
    assert pt.arg_parser().parse_args(["--repeats", "7"]).repeats == 7
    assert pt.arg_parser().parse_args([]).repeats == pt.REPEATS
    with pytest.raises(SystemExit):
        pt.arg_parser().parse_args(["--repeats", "0"])


def test_gan_phase_keeps_the_configs_own_schedule() -> None:
    """colorize_quickstart's cosine runs over ${pretrain_iters}; timing the GAN phase alone sets pretrain_iters to
    0, which must not become the scheduler's T_max (CosineAnnealingLR divides by it)."""
    own = _small("colorize_quickstart")
    cfg = _small("colorize_quickstart")
    pt.phase_overrides(cfg, "gan", 5)
    assert cfg.pretrain_iters == 0 and cfg.gan_iters == 5
    assert cfg.model.scheduler_g.T_max == own.pretrain_iters > 0
    module = pt.build_module(cfg)
    opt = torch.optim.SGD(module.net_g.parameters(), lr=1.0)
    sched = module.scheduler_g(opt)
    for _ in range(3):
        opt.step()
        sched.step()  # raised ZeroDivisionError with T_max 0
