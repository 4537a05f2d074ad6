"""unchanged_reads.py: a SQLite connection answers a read again, with no query, only while no
writer has changed the database since: this connection, another in this process, or another
process."""

import sqlite3
import subprocess
import sys
import threading

import pytest

import unchanged_reads


@pytest.fixture
def path(tmp_path):
    path = str(tmp_path / "reads.db")
    setup = sqlite3.connect(path, isolation_level=None)
    setup.execute("PRAGMA journal_mode = wal")
    setup.execute("CREATE TABLE t (n INTEGER)")
    setup.execute("INSERT INTO t VALUES (1)")
    setup.close()
    return path


def connect(path, factory=unchanged_reads.Connection):
    return sqlite3.connect(path, isolation_level=None, factory=factory, check_same_thread=False)


class Reader:
    """The rows of one SELECT through unchanged_reads.rows(), counting the queries it ran."""

    def __init__(self, connection, sql="SELECT n FROM t ORDER BY n", values=()):
        self.connection, self.sql, self.values, self.queries = connection, sql, values, 0

    def __call__(self):
        return unchanged_reads.rows(self.connection, self.sql, self.values, self.run)

    def run(self):
        self.queries += 1
        return self.connection.execute(self.sql, self.values)


def write_in_another_process(path, sql):
    another_process = (
        "import sqlite3, sys\n"
        "sqlite3.connect(sys.argv[1], isolation_level=None).execute(sys.argv[2])"
    )
    subprocess.run([sys.executable, "-c", another_process, path, sql], check=True)


def test_a_read_is_answered_again_until_another_process_writes(path):
    read = Reader(connect(path))
    assert read() == read() == read() == ((1,),)
    assert read.queries == 1
    write_in_another_process(path, "INSERT INTO t VALUES (3)")
    assert read() == ((1,), (3,))
    assert read.queries == 2
    assert read() == ((1,), (3,)) and read.queries == 2


def test_a_write_by_this_connection_or_another_thread_s_is_seen_at_once(path):
    mine = connect(path)
    read = Reader(mine)
    assert read() == ((1,),)
    mine.execute("UPDATE t SET n = 2")
    assert read() == ((2,),)

    def write_elsewhere():
        other = connect(path, factory=sqlite3.Connection)
        other.execute("UPDATE t SET n = 3")
        other.close()

    writer = threading.Thread(target=write_elsewhere)
    writer.start()
    writer.join()
    assert read() == ((3,),)
    assert read.queries == 3


def test_nothing_is_kept_inside_a_transaction(path):
    """A transaction's reads see its own writes before they are committed, and a rollback
    leaves total_changes as it was: kept, they would outlive the rollback."""
    mine = connect(path)
    read = Reader(mine)
    mine.execute("BEGIN")
    mine.execute("INSERT INTO t VALUES (5)")
    assert read() == read() == ((1,), (5,))
    assert read.queries == 2
    mine.execute("ROLLBACK")
    assert read() == ((1,),)


def test_each_query_and_each_set_of_values_is_its_own_read(path):
    mine = connect(path)
    mine.execute("INSERT INTO t VALUES (2)")
    one, two = (Reader(mine, "SELECT n FROM t WHERE n = ?", (n,)) for n in (1, 2))
    count = Reader(mine, "SELECT count(*) FROM t")
    assert (one(), two(), count()) == (((1,),), ((2,),), ((2,),))
    assert (one(), two(), count()) == (((1,),), ((2,),), ((2,),))
    assert (one.queries, two.queries, count.queries) == (1, 1, 1)


def test_a_connection_of_another_kind_is_asked_every_time(path):
    read = Reader(connect(path, factory=sqlite3.Connection))
    assert read() == read() == ((1,),)
    assert read.queries == 2


def test_a_connection_keeps_at_most_so_many_reads(path, monkeypatch):
    monkeypatch.setattr(unchanged_reads, "MOST_READS", 3)
    mine = connect(path)
    readers = [Reader(mine, "SELECT n + ? FROM t", (n,)) for n in range(4)]
    assert [reader() for reader in readers] == [((1 + n,),) for n in range(4)]
    assert len(mine.reads) <= 3
    assert [reader() for reader in readers] == [((1 + n,),) for n in range(4)]
    assert [reader.queries for reader in readers] == [2, 2, 2, 2]


def test_reads_within_one_moment_ask_once_and_see_the_database_as_it_was_then(path):
    mine = connect(path)
    looks = []
    mine.set_trace_callback(lambda sql: sql.startswith("PRAGMA") and looks.append(sql))
    one, count = (
        Reader(mine, "SELECT n FROM t ORDER BY n LIMIT 1"),
        Reader(mine, "SELECT count(*) FROM t"),
    )
    assert (one(), count()) == (((1,),), ((1,),))
    looks.clear()
    with unchanged_reads.one_moment(mine):
        assert one() == ((1,),)
        write_in_another_process(path, "INSERT INTO t VALUES (2)")
        assert count() == ((1,),)  # as the database was when the moment asked
    assert looks == ["PRAGMA data_version"]
    assert count() == ((2,),)  # a read of its own asks again
    with unchanged_reads.one_moment(mine):
        assert one() == ((1,),)
        mine.execute("INSERT INTO t VALUES (3)")
        assert count() == ((3,),)  # this connection wrote within the moment: asked again
    assert (one.queries, count.queries) == (2, 3)
