"""The training engine: device set-up, the loop, evaluation, and the run directory.

The frozen-feature machinery moved to :mod:`tlf.features`; its old module names
(``tlf.engine.features``, ``tlf.engine.onnx_prefix``, ``tlf.engine.onnx_int8``) stay as
aliases of the same module objects for existing imports.
"""
import sys

from ..features import cache as _cache, onnx_int8 as _onnx_int8, onnx_prefix as _onnx_prefix

sys.modules.update({f"{__name__}.features": _cache, f"{__name__}.onnx_prefix": _onnx_prefix,
                    f"{__name__}.onnx_int8": _onnx_int8})
