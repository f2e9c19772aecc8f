"""Benchmarks by task: `run.evaluate` loads the checkpoints and dispatches on their task (`sr.evaluate_sr`);
a new task adds its own module with its metric set and one branch in `run.evaluate`."""
