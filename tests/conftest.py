"""Shared test setup: offline albumentations, an isolated TLF_HOME."""
import os

os.environ["NO_ALBUMENTATIONS_UPDATE"] = "1"

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _tlf_home(tmp_path_factory, monkeypatch):
    """Every test gets its own empty $TLF_HOME (caches, downloads)."""
    monkeypatch.setenv("TLF_HOME", str(tmp_path_factory.mktemp("tlf_home")))


def _install_reading_standin() -> None:
    """tlf.data.reading belongs to the data branch; until it is merged here, tests use a
    minimal stand-in with the contract's API (read_rgb, UnreadableImage(path, reason))."""
    try:
        import tlf.data.reading  # noqa: F401
        return
    except ImportError:
        pass
    import sys
    import types

    import numpy as np
    import tlf.data
    from PIL import Image

    class UnreadableImage(Exception):
        def __init__(self, path, reason):
            super().__init__(f"{path}: {reason}")
            self.path, self.reason = str(path), reason

    def read_rgb(path):
        try:
            with Image.open(path) as im:
                return np.asarray(im.convert("RGB"))
        except Exception as exc:
            raise UnreadableImage(path, f"{type(exc).__name__}: {exc}") from None

    module = types.ModuleType("tlf.data.reading")
    module.UnreadableImage, module.read_rgb = UnreadableImage, read_rgb
    sys.modules["tlf.data.reading"] = module
    tlf.data.reading = module


_install_reading_standin()
