"""tlf's built-in plugins. Each module registers through the ``tlf`` entry-point group,
exactly as a third-party package does."""
