"""Shared test set-up: offline albumentations and an isolated TLF_HOME."""
import os

os.environ["NO_ALBUMENTATIONS_UPDATE"] = "1"

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _tlf_home(tmp_path_factory, monkeypatch):
    """Every test gets its own empty $TLF_HOME (caches, downloads)."""
    monkeypatch.setenv("TLF_HOME", str(tmp_path_factory.mktemp("tlf_home")))


@pytest.fixture(autouse=True)
def _message_channel():
    """A test that builds a Trainer itself leaves its Reporter as tlf's message channel: each
    test starts and ends with the default channel (stderr), as a new process does."""
    from tlf import messages
    with messages.scope():
        messages.use(None)
        yield
