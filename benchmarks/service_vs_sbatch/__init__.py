"""The paper's Table S4: the service (REST -> agent -> Prefect flow run -> Slurm) beside hand-written sbatch."""
