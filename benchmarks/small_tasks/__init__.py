"""Issue 20's small tasks: submit -> result of a tiny task, a burst of 200, the view's lag and the QAOA flow."""
