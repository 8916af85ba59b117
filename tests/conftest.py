"""Shared test set-up: offline albumentations, one CPU thread per process and an isolated TLF_HOME."""
import atexit
import os
import shutil
import tempfile

os.environ["NO_ALBUMENTATIONS_UPDATE"] = "1"
# Module- and session-scoped fixtures run before the per-test $TLF_HOME below is set: they get
# this process's own empty one, never the user's cache (a feature store there would serve them).
os.environ["TLF_HOME"] = tempfile.mkdtemp(prefix="tlf-tests-")
atexit.register(shutil.rmtree, os.environ["TLF_HOME"], ignore_errors=True)
# Every test runs tiny tensors: one intra-op thread is as fast, and on a small shared CPU (2 cores,
# pytest-xdist's workers beside each other) oversubscribed threads make runs 5-10x slower. Set
# before torch is imported, so the tests' subprocesses (the CLI, torchrun) inherit it too.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# A pytest process grows past a run's memory target over a long session (tlf keeps freed memory):
# the tests' micro-batches must not depend on what ran before them (tests/test_micro_batch.py sets it).
os.environ.setdefault("TLF_MEMORY_TARGET", "1T")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _tlf_home(tmp_path_factory, monkeypatch):
    """Every test gets its own empty $TLF_HOME (caches, downloads), removed when the test ends."""
    home = tmp_path_factory.mktemp("tlf_home")
    monkeypatch.setenv("TLF_HOME", str(home))
    yield
    monkeypatch.undo()  # the test's own patches (os.scandir, say) must not meet the removal
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module", autouse=True)
def _module_folders(request, tmp_path_factory):
    """The folders a test file's fixtures made (trained runs, exports) are removed when the file
    ends, unless one of its tests failed: a session would otherwise keep gigabytes to its end."""
    base = tmp_path_factory.getbasetemp()
    before, failed = set(base.iterdir()), request.session.testsfailed
    yield
    if request.session.testsfailed == failed:
        for path in set(base.iterdir()) - before:
            shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(autouse=True)
def _message_channel():
    """A test that builds a Trainer itself leaves its Reporter as tlf's message channel: each
    test starts and ends with the default channel (stderr), as a new process does."""
    from tlf import messages
    messages.forget_shown()
    with messages.scope():
        messages.use(None)
        yield


@pytest.fixture
def warnings_shown(capsys):
    """``warnings_shown()``: the ``Warning: ...`` lines tlf showed on stderr since the last call
    (:func:`tlf.messages.warn`, through the default channel or a run's Reporter), without the prefix."""
    def shown() -> list[str]:
        err = capsys.readouterr().err
        return [line.removeprefix("Warning: ") for line in err.splitlines() if line.startswith("Warning: ")]
    return shown
