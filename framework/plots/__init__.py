"""Figures as PNG files (matplotlib, no display needed): training curves, the lr range test,
confusion matrices; the comparison and gallery figures build on :mod:`tlf.plots.png`."""
