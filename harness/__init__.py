"""Real processes and shared workloads for the tests and the benchmarks; imports neither, nor pytest."""
