"""Driver errors become the right Kupe error: "the database is away" is a 503 with Retry-After,
whichever path (ORM or hot read) raised it; a wrong query stays a 500."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy import exc as sa_exc

from kupe.server.api.errors import translate


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.TooManyConnectionsError("too many clients"),
        asyncpg.exceptions.AdminShutdownError("terminating connection"),
        sa_exc.OperationalError("SELECT 1", {}, Exception("server closed the connection")),
        ConnectionRefusedError(),
        TimeoutError(),
    ],
)
def test_database_away_is_503(error: Exception) -> None:
    translated = translate(error)
    assert translated.status == 503
    assert translated.headers == {"Retry-After": "2"}
    assert "connection" not in translated.body()["error"].lower()


@pytest.mark.parametrize(
    "error",
    [asyncpg.exceptions.UndefinedTableError("relation does not exist"), RuntimeError("bug")],
)
def test_a_wrong_query_is_a_clean_500(error: Exception) -> None:
    translated = translate(error)
    assert translated.status == 500
    assert translated.body() == {"error": "Internal server error", "code": "INTERNAL"}
