"""The paper's Table S4: the service (REST -> agent -> runner step on Dask on Slurm, Prefect's view beside it)
beside hand-written sbatch."""
