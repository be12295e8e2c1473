"""The runner's fixed cost (parse + transpile + noise) on the 156-qubit Fez snapshot, next to bare Qiskit-Aer."""
