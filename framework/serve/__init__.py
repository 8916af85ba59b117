"""``tlf serve``: exported models behind HTTP, torch-free (onnxruntime through :mod:`tlf.runtime`).

One module per job: :mod:`.settings` (every limit and default, in one place), :mod:`.models`
(the served models: loading, exporting a run directory, metadata), :mod:`.uploads` (a request's
images: multipart or base64 JSON, decoded within the limits), :mod:`.batching` (dynamic
micro-batching), :mod:`.guards` (body size, read timeout, API keys), :mod:`.metrics`
(Prometheus, access log), :mod:`.errors` (a client's mistake as status, kind and message),
:mod:`.page` (the web page) and :mod:`.app` (the Starlette routes).
See docs/serve.md.
"""
