"""The hermetic runner: a run directory (task + bound device snapshot) in, `result.json` out."""

__version__ = "0.1.0"
