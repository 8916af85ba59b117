"""Experiments: strategy comparisons (backbones x policies x seeds) and reports of finished runs.

``tlf.compare(dataset, backbones, policies, seeds=3, out=...)`` trains what is missing and
writes comparison.{json,md,csv,png}; ``tlf.report(run_dirs)`` rebuilds them from runs.
"""
from .cells import ComparisonCell, plan_runs, split_names
from .comparison_files import report, write_comparison
from .results import ComparedRun, Comparison, Group, find_run_dirs, load_results, read_result
from .runner import compare, run_state

__all__ = ["ComparedRun", "Comparison", "ComparisonCell", "Group", "compare", "find_run_dirs", "load_results", "plan_runs",
           "read_result", "report", "run_state", "split_names", "write_comparison"]
