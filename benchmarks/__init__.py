"""Benchmarks of HPC-vQPU components; each subpackage is runnable with `python -m`."""
