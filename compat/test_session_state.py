"""Session state through pgsplit (DESIGN §3, "Transactions and session state"), seen from the backends:
a SET holds on both backends, a temporary table pins the session to writeable, a wrong password is
28P01, and the three users' secrets (SCRAM, md5, plain) all log in."""

import psycopg
import pytest

from conftest import PRIMARY_PORT, REPLICA_PORT, proxy_dsn


def test_set_holds_on_both_backends():
    with psycopg.connect(proxy_dsn(), autocommit=True) as c:
        c.execute("SET statement_timeout = '4321ms'")
        # A read (main) and a read-write transaction (writeable) both see it.
        assert c.execute("SELECT current_setting('statement_timeout'), inet_server_port()").fetchone() \
            == ("4321ms", REPLICA_PORT)
        with c.transaction():
            assert c.execute("SELECT current_setting('statement_timeout'), inet_server_port()").fetchone() \
                == ("4321ms", PRIMARY_PORT)
        c.execute("RESET statement_timeout")
        assert c.execute("SELECT current_setting('statement_timeout'), inet_server_port()").fetchone() \
            == ("0", REPLICA_PORT)
        with c.transaction():
            assert c.execute("SELECT current_setting('statement_timeout')").fetchone()[0] == "0"


def test_set_before_the_writeable_backend_is_opened_is_replayed():
    with psycopg.connect(proxy_dsn(), autocommit=True) as c:
        # Only reads so far: the setting must reach writeable when it is opened later.
        c.execute("SET application_name = 'compat-replayed'")
        assert c.execute("SELECT current_setting('application_name'), inet_server_port()").fetchone() \
            == ("compat-replayed", REPLICA_PORT)
        assert c.execute("SELECT current_setting('application_name'), inet_server_port() FROM (SELECT 1) s"
                         " /* pgsplit: writeable */").fetchone() == ("compat-replayed", PRIMARY_PORT)


def test_temporary_table_pins_the_session_to_writeable():
    with psycopg.connect(proxy_dsn(), autocommit=True) as c:
        c.execute("CREATE TEMP TABLE compat_tmp (id int)")
        c.execute("INSERT INTO compat_tmp VALUES (1), (2)")
        # A plain read of the temporary table must see it: it lives on writeable only.
        assert c.execute("SELECT count(*), inet_server_port() FROM compat_tmp").fetchone() == (2, PRIMARY_PORT)


def test_wrong_password_is_28P01():
    with pytest.raises(psycopg.OperationalError) as e:
        psycopg.connect(proxy_dsn(password="not-the-secret"), connect_timeout=10)
    assert e.value.sqlstate == "28P01" or "password authentication failed" in str(e.value), str(e.value)


@pytest.mark.parametrize("user", ["alice", "bob", "carol"])
def test_each_user_logs_in(user):
    with psycopg.connect(proxy_dsn(user=user), autocommit=True, connect_timeout=10) as c:
        assert c.execute("SELECT inet_server_port(), session_user").fetchone() == (REPLICA_PORT, "app_ro")
        assert c.info.parameter_status("server_version")
