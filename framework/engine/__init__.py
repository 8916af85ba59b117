"""The training engine: device set-up, the loop on events and callbacks, evaluation passes,
and the run directory's checkpoints. The frozen-feature machinery is :mod:`tlf.features`."""
