"""The runner on a Dask worker, in a killable child, without paying its imports per run.

    client.register_plugin(WarmRunnerPlugin(mode="fork"))     # or "process": a fresh `python -m runner`
    future = client.submit(run_runner, run_dir, limit_s, pure=False)
    client.run(kill_runner, run_dir)                            # to cancel: the future then returns killed=True

The names are loaded on first use: the zygote runs as `python -m agent.warm.zygote`, which imports this
package first, and it must not pay for (or fork with) Dask's import. Nothing here imports Prefect: a Dask
worker imports the module of each function it is sent, and the workers hold neither Prefect nor its settings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.warm.plugin import (
        PLUGIN_NAME,
        Mode,
        WarmRunnerPlugin,
        ensure_lifetime_fits,
        kill_runner,
        run_on_worker,
    )

__all__ = [
    "PLUGIN_NAME",
    "Mode",
    "WarmRunnerPlugin",
    "ensure_lifetime_fits",
    "kill_runner",
    "run_on_worker",
    "run_runner",
]


def run_runner(run_dir: str, limit_s: float | None = None) -> dict[str, Any]:
    """The runner step, as the agent's Dask adapter submits it and as Prefect names it (agent.flow): on a Dask
    worker, the hermetic runner in a killable child process, within its wall-time limit. A worker that would
    retire before the limit hands the step back to the scheduler first (`run_on_worker`).

    It lives here, not beside the adapter (agent.scheduler.dask imports prefect-dask): the worker imports this
    function's module to run it, and would otherwise import Prefect with it."""
    from agent.warm.plugin import run_on_worker

    return run_on_worker(run_dir, limit_s)


def __getattr__(name: str) -> Any:
    if name in __all__:
        from agent.warm import plugin

        return getattr(plugin, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
