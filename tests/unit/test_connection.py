"""Which connection errors waiting can fix: libpq's texts, as psycopg raises them (the test
server trusts every local connection, so refusals such as a wrong password can only be shown here;
tests/acceptance/test_database_wait.py runs the commands against real servers)."""

from __future__ import annotations

import psycopg
import pytest

from collector.db.connection import waiting_helps

AT = 'connection failed: connection to server at "10.0.0.5", port 5432 failed: '


@pytest.mark.parametrize(
    "message",
    [
        AT + 'FATAL:  database "events" does not exist',
        AT + 'FATAL:  role "collector" does not exist',
        AT + 'FATAL:  password authentication failed for user "collector"',
        AT + 'FATAL:  no pg_hba.conf entry for host "10.0.0.9", user "collector", database '
        '"events", no encryption',
        AT + 'FATAL:  role "collector" is not permitted to log in',
        AT + 'FATAL:  permission denied for database "events"',
        AT + "fe_sendauth: no password supplied",
        AT + "server does not support SSL, but SSL was required",
        'connection is bad: invalid port number: "99999"',
    ],
)
def test_refusals_are_not_waited_for(message: str) -> None:
    assert not waiting_helps(psycopg.OperationalError(message))


@pytest.mark.parametrize(
    "message",
    [
        AT + "Connection refused",
        AT + "timeout expired",
        AT + "FATAL:  the database system is starting up",
        AT + "FATAL:  the database system is shutting down",
        AT + "FATAL:  sorry, too many clients already",
        AT + "server closed the connection unexpectedly",
        'connection is bad: connection to server on socket "/run/pg/.s.PGSQL.5432" failed: '
        "No such file or directory",
        "failed to resolve host 'db': [Errno -2] Name or service not known",
    ],
)
def test_what_a_starting_server_answers_is_waited_for(message: str) -> None:
    assert waiting_helps(psycopg.OperationalError(message))


def test_a_malformed_url_is_not_waited_for() -> None:
    assert not waiting_helps(psycopg.ProgrammingError('invalid URI query parameter: "foo"'))
