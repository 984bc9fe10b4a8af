"""Log output as an operator reads it: one JSON line per record, and no per-request chatter from
the HTTP client libraries at the default level."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from api.logs import configure_logging


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    quiet = {name: logging.getLogger(name).level for name in ("httpx", "httpcore", "stripe")}
    yield
    root.handlers[:], root.level = handlers, level
    for name, saved in quiet.items():
        logging.getLogger(name).setLevel(saved)


def test_client_libraries_log_only_warnings_at_info_and_everything_at_debug(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO")
    logging.getLogger("stripe").info("Request to Stripe api")
    logging.getLogger("httpx").info("HTTP Request: POST …")
    logging.getLogger("stripe").warning("retrying")
    logging.getLogger("ledgerline.usage").info("usage reporting: 3 reported, 0 failed")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(line["logger"], line["message"]) for line in lines] == [
        ("stripe", "retrying"),
        ("ledgerline.usage", "usage reporting: 3 reported, 0 failed"),
    ]
    configure_logging("DEBUG")
    logging.getLogger("httpx").info("HTTP Request: POST …")
    assert [json.loads(line)["logger"] for line in capsys.readouterr().err.splitlines()] == ["httpx"]
