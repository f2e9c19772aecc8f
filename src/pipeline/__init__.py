"""The film pipeline: trained models chained over a video (restore, colorize, upscale, interpolate), in
resumable segments; `run.run_pipeline` is what `python infer.py pipeline=film ...` calls. docs/PIPELINE.md."""
