"""The frozen-feature machinery: whether a run caches its frozen prefix's features and the
caches themselves (:mod:`.cache`), the prefix as an onnxruntime session (:mod:`.onnx_prefix`)
and quantized to int8 (:mod:`.onnx_int8`)."""
