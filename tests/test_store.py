from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from swarm.core.errors import StoreUnavailable
from swarm.core.settings import git_common_dir, load_settings, resolve_db
from swarm.db.migrations import MIGRATIONS, POSTGRES_MIGRATIONS
from swarm.db.store import SqliteStore, filesystem_type, open_store, refuse_network_filesystem
from tests.conftest import free_port, git

MOUNTS = """\
/dev/vda1 / ext4 rw,relatime 0 0
nas:/export/home /home/lab nfs4 rw,vers=4.2 0 0
//files/share /mnt/share cifs rw 0 0
tmpfs /home/lab/tmp tmpfs rw 0 0
"""


def test_the_mount_holding_a_path_is_the_longest_matching_mount_point() -> None:
    assert filesystem_type(Path("/home/lab/repo/.git/swarm"), MOUNTS) == "nfs4"
    assert filesystem_type(Path("/home/lab/tmp/x"), MOUNTS) == "tmpfs"
    assert filesystem_type(Path("/home/labx"), MOUNTS) == "ext4"


def test_a_database_on_a_network_filesystem_is_refused_with_what_to_do() -> None:
    with pytest.raises(StoreUnavailable, match=r"nfs4 filesystem.*PostgreSQL"):
        refuse_network_filesystem(Path("/home/lab/repo/.git/swarm"), MOUNTS)
    with pytest.raises(StoreUnavailable, match="cifs"):
        refuse_network_filesystem(Path("/mnt/share/lab.db"), MOUNTS)
    refuse_network_filesystem(Path("/srv/lab.db"), MOUNTS)  # local disk: fine


def test_opening_creates_a_wal_database_with_every_migration_applied_once(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "lab.db"
    SqliteStore(path).close()
    SqliteStore(path).close()  # reopening is harmless
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    names = [r[0] for r in conn.execute("SELECT name FROM migrations")]
    assert names == [name for name, _ in MIGRATIONS]


def test_a_file_that_is_not_a_database_is_reported_plainly(tmp_path: Path) -> None:
    path = tmp_path / "lab.db"
    path.write_text("not a database" * 100)
    with pytest.raises(StoreUnavailable, match=r"lab\.db"):
        SqliteStore(path)


def test_every_worktree_of_a_repo_shares_one_default_database(tmp_path: Path) -> None:
    repo = tmp_path / "lab"
    repo.mkdir()
    git("init", "-q", "-b", "main", cwd=repo)
    git("commit", "-q", "--allow-empty", "-m", "init", cwd=repo)
    git("worktree", "add", "-q", str(tmp_path / "wt"), "-b", "side", cwd=repo)
    (repo / "deep").mkdir()
    main_db = resolve_db(None, {}, repo / "deep")
    assert main_db == str((repo / ".git" / "swarm" / "swarm.db").resolve())
    assert resolve_db(None, {}, tmp_path / "wt") == main_db
    assert git_common_dir(tmp_path) is None


def test_the_db_flag_beats_the_environment_which_beats_the_default(tmp_path: Path) -> None:
    env = {"SWARM_DB": str(tmp_path / "env.db")}
    assert resolve_db(str(tmp_path / "flag.db"), env, tmp_path) == str(tmp_path / "flag.db")
    assert resolve_db(None, env, tmp_path) == str(tmp_path / "env.db")
    with pytest.raises(StoreUnavailable, match="not inside a git repository"):
        resolve_db(None, {}, tmp_path)
    assert load_settings(None, {**env, "SWARM_LEASE_SECONDS": "30"}, tmp_path).lease_seconds == 30


def test_a_postgresql_url_keeps_its_password_out_of_messages() -> None:
    pytest.importorskip("psycopg")
    from swarm.db.pgstore import redact

    assert redact("postgresql://lab:s3cret@db:5432/swarm") == "postgresql://lab:***@db:5432/swarm"
    assert redact("postgresql://lab@db/swarm") == "postgresql://lab@db/swarm"


def test_an_unreachable_postgresql_is_store_unavailable_naming_the_url_not_the_password() -> None:
    pytest.importorskip("psycopg")
    from swarm.db.pgstore import PostgresStore

    url = f"postgresql://lab:s3cret@127.0.0.1:{free_port()}/swarm"
    with pytest.raises(
        StoreUnavailable, match="cannot connect to postgresql://lab:\\*\\*\\*@"
    ) as err:
        PostgresStore(url, connect_timeout_s=1.0)
    assert "s3cret" not in str(err.value)


def test_a_postgresql_lab_from_a_newer_swarm_is_refused(postgres_url: str) -> None:
    open_store(postgres_url).close()
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("INSERT INTO migrations VALUES ('9999_future', 'x')")
    with pytest.raises(StoreUnavailable, match="upgrade swarm"):
        open_store(postgres_url)


def test_both_backends_have_the_same_migrations_in_the_same_order() -> None:
    assert [name for name, _ in POSTGRES_MIGRATIONS] == [name for name, _ in MIGRATIONS]


def test_the_postgresql_store_commits_durably_whatever_the_server_default(
    postgres_url: str,
) -> None:
    """synchronous_commit=off lost confirmed reports after a server crash (issue #17); the
    store turns it on for each of its connections, even where the server's default is off."""
    import psycopg

    assert "options=-csearch_path" in postgres_url  # the test's own schema: keep it
    url = postgres_url.replace("options=", "options=-csynchronous_commit%3Doff%20", 1)
    with psycopg.connect(url) as raw:
        assert raw.execute("SHOW synchronous_commit").fetchone() == ("off",)
        assert raw.execute("SHOW search_path").fetchone()[0].startswith("t_")
    store = open_store(url)
    try:
        for _ in range(3):  # every pooled connection, not only the first
            assert store.write(lambda c: c.execute("SHOW synchronous_commit").fetchone()[0]) == "on"
    finally:
        store.close()
