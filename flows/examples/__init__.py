"""What the worked examples (`flows.vqe`, `flows.qaoa`) are made of, free of Prefect and sockets: the
problems (the H2 Hamiltonian, MaxCut on a device's couplers), circuits in a device's native gates on
its physical qubits, and estimates with their standard errors from counts."""
