"""Where a study lives: Optuna's own storages, opened with errors a user can act on.

- nothing given: SQLite in the output folder (``OUT/optuna.db``), for one machine;
- ``sqlite:///PATH``, ``postgresql://...``, ``mysql+pymysql://...``: an RDB that several
  ``tlf tune`` processes, on one machine or many, share (Optuna's RDBStorage);
- ``journal:PATH``: Optuna's journal file, for a shared file system without a database.

An unreachable server fails within :data:`CONNECT_TIMEOUT` seconds instead of hanging.
"""
from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

from ..errors import TlfError, first_line

CONNECT_TIMEOUT = 10  # seconds to reach a database server
SQLITE_BUSY_TIMEOUT = 60  # seconds a writer waits for another process's lock on a SQLite study
CREATE_ATTEMPTS = 5  # tries to open a new database that another worker is creating at the same moment
RACES = ("already exists", "UNIQUE constraint failed", "database is locked")  # what such a race looks like
STORAGE_HINT = "use sqlite:///PATH, postgresql://USER@HOST/DB, mysql+pymysql://USER@HOST/DB or journal:PATH"
# database driver module -> what installs it (SQLAlchemy 2.1 reads postgresql:// with psycopg 3)
DRIVERS = {"psycopg": "'psycopg[binary]'", "psycopg2": "psycopg2-binary", "pymysql": "pymysql",
           "MySQLdb": "mysqlclient"}


def require_optuna() -> Any:
    """The optuna module, or a TlfError naming the extra that installs it."""
    try:
        import optuna
    except ModuleNotFoundError:
        raise TlfError("tlf tune and tlf compare --storage need Optuna, which is not installed",
                       hint="pip install 'tlf[tune]'") from None
    return optuna


def default_storage(out: Path) -> str:
    """The embedded store: SQLite in the output folder."""
    return f"sqlite:///{(out / 'optuna.db').resolve()}"


def safe_url(url: str) -> str:
    """``url`` without its password, for messages."""
    try:
        from sqlalchemy.engine import make_url
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def _rdb(optuna: Any, url: str, connect: dict, heartbeat: bool) -> Any:
    """Optuna's RDBStorage, with heartbeats (and one retry of a trial whose process died) if asked."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats, in use since 2.9
        retry = {"heartbeat_interval": 60, "grace_period": 180, "heartbeat_stale_trial_callback":
                 optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)} if heartbeat else {}
        return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": connect}, **retry)


def _missing_module(exc: BaseException) -> str | None:
    """The module whose import failed, anywhere in ``exc``'s chain (Optuna re-raises a missing
    driver as a plain ImportError "Failed to import DB access module")."""
    while exc is not None:
        if isinstance(exc, ModuleNotFoundError) and exc.name:
            return exc.name.split(".")[0]
        exc = exc.__cause__ or exc.__context__
    return None


def open_storage(url: str, heartbeat: bool = True) -> Any:
    """An Optuna storage for ``url``; any failure to reach or create it is one TlfError.

    ``heartbeat``: RDB trials send a heartbeat, so that a trial whose process died is marked
    failed (and tried again once) by the next process that opens the study."""
    import optuna
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend
        path = Path(url.removeprefix("journal:"))
        if not path.parent.is_dir():
            raise TlfError(f"the folder of journal storage {path} does not exist", hint="create it, or " + STORAGE_HINT)
        try:
            return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
        except Exception as exc:
            raise TlfError(f"cannot open journal storage {path}: {exc}", hint=STORAGE_HINT) from None
    if "://" not in url:
        raise TlfError(f"storage {url!r} is not a URL", hint=STORAGE_HINT)
    connect = {"timeout": SQLITE_BUSY_TIMEOUT} if url.startswith("sqlite") else {"connect_timeout": CONNECT_TIMEOUT}
    try:
        for attempt in range(CREATE_ATTEMPTS):
            try:
                return _rdb(optuna, url, connect, heartbeat)
            except Exception as exc:  # workers started together race to create the tables of a new database
                if not any(text in str(exc) for text in RACES) or attempt == CREATE_ATTEMPTS - 1:
                    raise
                time.sleep(1.0)
    except Exception as exc:
        missing = _missing_module(exc)
        if missing:
            raise TlfError(f"storage {safe_url(url)} needs the database driver {missing!r}, which is not installed",
                           hint=f"pip install {DRIVERS.get(missing, missing)}") from None
        raise TlfError(f"cannot open study storage {safe_url(url)}: {first_line(exc)}",
                       hint="check the URL, that the server is up and reachable, and the credentials; " + STORAGE_HINT) from None
