"""The runner's unit tests run the pipeline in the test process, kept to Qiskit's and Aer's own transpiler plugins
as every runner process is (`runner.plugins.confine`). Otherwise the first basis translation imports every
installed package's synthesis plugin (qiskit-experiments, and with it matplotlib, which starts `fc-list` to build
its font cache on a machine that has none: a subprocess, which a unit test may not start)."""

from __future__ import annotations

import pytest

from runner import plugins


@pytest.fixture(autouse=True, scope="session")
def confined_plugins() -> None:
    plugins.confine()
