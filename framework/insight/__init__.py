"""What a model learned and got wrong: per-image predictions, error analysis, galleries,
Grad-CAM and the self-contained HTML report."""
