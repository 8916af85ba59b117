"""ONNX export (``tlf export``): parity-gated export with tlf metadata, fp16, static int8.

Imports torch; the deployment side is :mod:`tlf.runtime`, which does not.
"""
from ..preprocessing import normalize
from .onnx_export import EXPORTERS, TOLERANCE, Attempt, ExportReport, Parity, export_onnx
from .quantize import QuantizationReport, quantize_int8
from .run import ExportSettings, export_run

__all__ = ["EXPORTERS", "TOLERANCE", "Attempt", "ExportReport", "ExportSettings", "Parity", "QuantizationReport",
           "export_onnx", "export_run", "normalize", "quantize_int8"]
