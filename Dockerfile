# tlf serve in a runtime image without torch: onnxruntime, numpy, Pillow, OpenCV and the ASGI
# stack (docs/serve.md). Build from the repository root, mount or copy the exported model:
#   docker build -t tlf-serve .
#   docker run -p 8000:8000 -v "$PWD/runs/RUN:/models:ro" tlf-serve
# The second pip line is the whole runtime: tests/test_serve.py serves a model with every other
# requirement of tlf made unimportable, so a package missing here fails the tests.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY setup.py pyproject.toml README.md ./
COPY framework framework
COPY plugins plugins
RUN pip install --no-deps . \
 && pip install onnxruntime numpy pillow opencv-python-headless click rich pluggy PyYAML starlette uvicorn python-multipart prometheus-client \
 && useradd --system --uid 10001 tlf
USER tlf
WORKDIR /models
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz')"
ENTRYPOINT ["tlf", "serve", "--host", "0.0.0.0", "--port", "8000"]
CMD ["model.onnx"]
