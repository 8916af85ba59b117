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


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module's tiny runs: on a small shared CPU, oversubscribed threads
    make them 5-10x slower (modules ask for it with ``pytest.mark.usefixtures("one_thread")``)."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def warnings_shown(capsys):
    """``warnings_shown()``: the ``Warning: ...`` lines tlf showed on stderr since the last call
    (:func:`tlf.messages.warn`, through the default channel or a run's Reporter), without the prefix."""
    def shown() -> list[str]:
        err = capsys.readouterr().err
        return [line.removeprefix("Warning: ") for line in err.splitlines() if line.startswith("Warning: ")]
    return shown
