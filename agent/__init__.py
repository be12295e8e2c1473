"""The login-node agent: a Prefect worker that claims tasks from the control plane (outbound only) and
runs each as one flow run whose runner step executes on scheduler-allocated nodes."""
