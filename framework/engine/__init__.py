"""The training engine: device set-up, the loop, evaluation, and the run directory."""
