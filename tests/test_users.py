"""Users of the web UI: creation, passwords, roles, and the ``outreach users`` commands
(a real process each, on SQLite and PostgreSQL)."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from alembic import command
from argon2 import PasswordHasher
from sqlalchemy import Connection, Engine, select, text, update

import outreach.users as users_module
from outreach.clock import FixedClock
from outreach.db import alembic_config, current_revision, head_revision, upgrade
from outreach.demo import DEMO_USERS, demo_users
from outreach.errors import NotFoundError
from outreach.models import Role
from outreach.users import (
    UserError,
    authenticate,
    create_user,
    end_sessions,
    list_users,
    set_active,
    set_password,
    set_role,
    user_by_id,
    user_by_name,
    users,
)
from tests.conftest import NOW

PASSWORD = "correct horse battery staple"


def test_a_user_signs_in_with_their_password_only(engine: Engine) -> None:
    with engine.begin() as connection:
        made = create_user(connection, " Ana ", PASSWORD, Role.AGENT, NOW, "Ana Lima")
        assert (made.username, made.display_name, made.role) == ("ana", "Ana Lima", Role.AGENT)
        stored = connection.execute(select(users.c.password_hash)).scalar_one()
        assert stored.startswith("$argon2id$") and PASSWORD not in stored
        assert authenticate(connection, "ANA", PASSWORD, NOW) == made
        assert authenticate(connection, "ana", PASSWORD + "x", NOW) is None
        assert authenticate(connection, "bob", PASSWORD, NOW) is None
        last = connection.execute(select(users.c.last_login_at)).scalar_one()
        assert last is not None


@pytest.mark.parametrize(
    ("username", "password", "problem"),
    [
        ("ana", "short", "at least 12 characters"),
        ("two words", PASSWORD, "no spaces"),
        ("", PASSWORD, "1 to 100"),
        ("x" * 101, PASSWORD, "1 to 100"),
        # A name a URL cannot hold as itself: the Users page's links would resolve it.
        ("..", PASSWORD, "not only dots"),
        (" . ", PASSWORD, "not only dots"),
        ("...", PASSWORD, "not only dots"),
    ],
)
def test_bad_names_and_short_passwords_are_refused(
    engine: Engine, username: str, password: str, problem: str
) -> None:
    with engine.begin() as connection, pytest.raises(UserError, match=problem):
        create_user(connection, username, password, Role.AGENT, NOW)
    with engine.connect() as connection:
        assert list_users(connection) == []


def test_a_taken_name_is_refused(engine: Engine) -> None:
    with engine.begin() as connection:
        create_user(connection, "ana", PASSWORD, Role.AGENT, NOW)
    with engine.begin() as connection, pytest.raises(UserError, match="already exists"):
        create_user(connection, "ANA", PASSWORD, Role.ADMIN, NOW)


def test_disabled_users_and_old_passwords_do_not_sign_in(engine: Engine) -> None:
    with engine.begin() as connection:
        before = create_user(connection, "ana", PASSWORD, Role.AGENT, NOW)
        set_password(connection, "ana", "another long password")
        assert authenticate(connection, "ana", PASSWORD, NOW) is None
        after = authenticate(connection, "ana", "another long password", NOW)
        assert after is not None and after.session_stamp != before.session_stamp
        set_active(connection, "ana", False)
        assert authenticate(connection, "ana", "another long password", NOW) is None
        with pytest.raises(NotFoundError):
            set_role(connection, "nobody", Role.ADMIN)


def test_the_last_active_admin_is_never_taken_away(engine: Engine) -> None:
    with engine.begin() as connection:
        create_user(connection, "root", PASSWORD, Role.ADMIN, NOW)
        create_user(connection, "old", PASSWORD, Role.ADMIN, NOW)
        set_active(connection, "old", False)  # a disabled admin does not count
        for change in (
            lambda: set_role(connection, "root", Role.AGENT),
            lambda: set_active(connection, "root", False),
        ):
            with pytest.raises(UserError, match="root is the only active admin"):
                change()
        set_active(connection, "old", True)
        set_role(connection, "root", Role.AGENT)  # another admin remains
        assert user_by_name(connection, "root").role is Role.AGENT
        set_role(connection, "root", Role.ADMIN)
        set_active(connection, "old", False)


def _disable(connection: Connection, name: str) -> None:
    set_active(connection, name, False)


def _demote(connection: Connection, name: str) -> None:
    set_role(connection, name, Role.AGENT)


@pytest.mark.parametrize("change", [_disable, _demote], ids=["disabled", "demoted"])
def test_two_admins_taking_each_other_away_at_once_leave_one(
    engine: Engine, change: Callable[[Connection, str], None]
) -> None:
    """The second change waits for the first and is refused with the reason (on SQLite
    too, rather than failing as "database is locked")."""
    with engine.begin() as connection:
        create_user(connection, "ada", PASSWORD, Role.ADMIN, NOW)
        create_user(connection, "bob", PASSWORD, Role.ADMIN, NOW)
    first_in = threading.Event()
    outcome: list[BaseException | None] = []

    def second() -> None:  # bob takes ada away while ada's change of bob is not committed
        first_in.wait()
        try:
            with engine.begin() as connection:
                change(connection, "ada")
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    other = threading.Thread(target=second)
    other.start()
    with engine.begin() as connection:
        change(connection, "bob")
        first_in.set()
        other.join(timeout=0.5)
    other.join(timeout=30)
    assert len(outcome) == 1 and isinstance(outcome[0], UserError), outcome
    with engine.connect() as connection:
        admins = connection.execute(
            select(users.c.username).where(users.c.role == "admin", users.c.active.is_(True))
        ).scalars()
        assert list(admins) == ["ada"]


def test_every_change_to_a_user_ends_their_sessions(engine: Engine) -> None:
    """Disabling, enabling, a new role, a new password and signing out each give the user
    a new session stamp, never one they had before: enabling again does not bring back
    the sessions that disabling ended."""
    with engine.begin() as connection:
        made = create_user(connection, "ana", PASSWORD, Role.AGENT, NOW)
        stamps = [made.session_stamp]
        for change in (
            lambda: set_active(connection, "ana", False),
            lambda: set_active(connection, "ana", True),
            lambda: set_role(connection, "ana", Role.VIEWER),
            lambda: set_role(connection, "ana", Role.AGENT),
            lambda: set_password(connection, "ana", "another long password"),
            lambda: end_sessions(connection, made.id),
        ):
            change()
            stamps.append(user_by_name(connection, "ana").session_stamp)
        other = create_user(connection, "bob", PASSWORD, Role.AGENT, NOW)
        assert user_by_name(connection, "bob").session_stamp == other.session_stamp
    assert len(set(stamps)) == len(stamps)


def test_the_migration_starts_existing_users_at_epoch_zero(engine: Engine) -> None:
    command.downgrade(alembic_config(engine), "0008")
    with engine.begin() as connection:
        connection.execute(
            text(
                'INSERT INTO "user" (username, display_name, password_hash, role, active,'
                " created_at) VALUES ('ana', 'Ana', :hash, 'agent', true, :now)"
            ),
            {"hash": PasswordHasher().hash(PASSWORD), "now": NOW},
        )
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    with engine.begin() as connection:
        assert connection.execute(select(users.c.session_epoch)).scalar_one() == 0
        assert authenticate(connection, "ana", PASSWORD, NOW) is not None
        end_sessions(connection, user_by_name(connection, "ana").id)
        assert connection.execute(select(users.c.session_epoch)).scalar_one() == 1


def test_roles_grant_their_sections_and_admins_everything(engine: Engine) -> None:
    with engine.begin() as connection:
        agent = create_user(connection, "ana", PASSWORD, Role.AGENT, NOW)
        admin = create_user(connection, "root", PASSWORD, Role.ADMIN, NOW)
        viewer = create_user(connection, "vic", PASSWORD, Role.VIEWER, NOW)
    assert agent.may(Role.AGENT) and not agent.may(Role.MARKETER)
    assert admin.may(Role.AGENT) and admin.may(Role.MARKETER)
    assert not viewer.may(Role.AGENT) and not viewer.may(Role.MARKETER)
    assert viewer.may()  # any signed-in user


def test_a_hash_made_with_weaker_parameters_is_upgraded_at_sign_in(engine: Engine) -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    with engine.begin() as connection:
        create_user(connection, "ana", PASSWORD, Role.AGENT, NOW)
        connection.execute(update(users).values(password_hash=weak))
        assert authenticate(connection, "ana", PASSWORD, NOW) is not None
        upgraded = connection.execute(select(users.c.password_hash)).scalar_one()
    assert upgraded != weak and "m=65536" in upgraded


NEW_PASSWORD = "a new password the admin set"


def _reset_during_the_check(monkeypatch: pytest.MonkeyPatch, engine: Engine) -> None:
    """An admin's password reset commits while a sign-in's Argon2 check runs."""
    verify = users_module._verify
    done: list[str] = []

    def reset_meanwhile(password_hash: str, password: str) -> bool:
        right = verify(password_hash, password)
        if not done:
            done.append(password)
            with engine.begin() as admin:
                set_password(admin, "ana", NEW_PASSWORD)
        return right

    monkeypatch.setattr(users_module, "_verify", reset_meanwhile)


def test_a_password_reset_during_a_sign_in_leaves_that_sign_in_no_session(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old password was checked against the old hash: the sign-in fails, rather than
    carry the new password's stamp and open a session that outlives the reset."""
    with engine.begin() as connection:
        ana = create_user(connection, "ana", PASSWORD, Role.AGENT, NOW)
    _reset_during_the_check(monkeypatch, engine)
    with engine.begin() as connection:
        assert authenticate(connection, "ana", PASSWORD, NOW) is None
    monkeypatch.undo()
    with engine.begin() as connection:
        assert connection.execute(select(users.c.last_login_at)).scalar_one() is None
        signed = authenticate(connection, "ana", NEW_PASSWORD, NOW)
        assert signed is not None and signed == user_by_id(connection, ana.id)


def test_a_rehash_at_sign_in_never_writes_the_old_password_over_a_reset(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hash made with weaker parameters is rewritten at sign-in, but only over the hash
    that was checked: an admin's new password set meanwhile stays."""
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    with engine.begin() as connection:
        create_user(connection, "ana", PASSWORD, Role.AGENT, NOW)
        connection.execute(update(users).values(password_hash=weak))
    _reset_during_the_check(monkeypatch, engine)
    with engine.begin() as connection:
        assert authenticate(connection, "ana", PASSWORD, NOW) is None
    monkeypatch.undo()
    with engine.begin() as connection:
        assert authenticate(connection, "ana", PASSWORD, NOW) is None
        assert authenticate(connection, "ana", NEW_PASSWORD, NOW) is not None


def test_two_correct_sign_ins_at_once_with_a_weak_hash_both_succeed(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other sign-in (a second tab, a phone) rehashes the same password meanwhile:
    nothing the user did ends either, so the first checks the new hash and signs in."""
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    with engine.begin() as connection:
        ana = create_user(connection, "ana", PASSWORD, Role.AGENT, NOW)
        connection.execute(update(users).values(password_hash=weak))
    verify = users_module._verify
    other: list[object] = []

    def other_sign_in_meanwhile(password_hash: str, password: str) -> bool:
        right = verify(password_hash, password)
        if not other:
            other.append(None)
            with engine.begin() as second:
                other[0] = authenticate(second, "ana", PASSWORD, NOW)
        return right

    monkeypatch.setattr(users_module, "_verify", other_sign_in_meanwhile)
    with engine.begin() as connection:
        first = authenticate(connection, "ana", PASSWORD, NOW)
    assert other[0] is not None
    with engine.connect() as connection:
        assert first is not None and first == user_by_id(connection, ana.id)
        assert "m=65536" in connection.execute(select(users.c.password_hash)).scalar_one()


def test_a_sign_in_returns_the_user_it_checked_with_the_upgraded_hash(engine: Engine) -> None:
    """The stamp the session gets is the one the user has after the sign-in (the rehash
    changes it): the session is valid."""
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    with engine.begin() as connection:
        ana = create_user(connection, "ana", PASSWORD, Role.AGENT, NOW)
        connection.execute(update(users).values(password_hash=weak))
        signed = authenticate(connection, "ana", PASSWORD, NOW)
        assert signed is not None and signed == user_by_id(connection, ana.id)


def test_a_name_with_a_nul_is_an_unknown_name_checked_as_long(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL cannot compare a text holding a NUL: the name is not looked up, and the
    dummy hash is checked as for any unknown name, so the answer takes as long."""
    with engine.begin() as connection:
        create_user(connection, "ana", PASSWORD, Role.ADMIN, NOW)
    verify = users_module._verify
    checked: list[str] = []

    def counted(password_hash: str, password: str) -> bool:
        checked.append(password_hash)
        return verify(password_hash, password)

    monkeypatch.setattr(users_module, "_verify", counted)
    with engine.begin() as connection:
        assert authenticate(connection, "an\x00a", PASSWORD, NOW) is None
        with pytest.raises(NotFoundError):
            set_role(connection, "an\x00a", Role.AGENT)
    assert checked == [users_module._ABSENT_HASH]


@pytest.mark.parametrize("display_name", ["Ana\x00", "Ana\nLima", "Ana\x1b[2J"])
def test_a_display_name_with_control_characters_is_refused(
    engine: Engine, display_name: str
) -> None:
    with engine.begin() as connection, pytest.raises(UserError, match="no control characters"):
        create_user(connection, "ana", PASSWORD, Role.AGENT, NOW, display_name)
    with engine.connect() as connection:
        assert list_users(connection) == []


def test_a_user_made_admin_meanwhile_is_counted_before_they_are_taken_away(
    engine: Engine, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL, three changes interleaved: an admin makes xavi agent after reading
    him as agent; meanwhile anna makes him admin, then steps down (xavi is admin). The
    first change is decided on xavi as he is then, under the admins' locks: refused, as
    xavi is the only active admin, rather than leave none."""
    if backend == "sqlite":
        pytest.skip("SQLite runs the three one after another (hold_writes)")
    with engine.begin() as connection:
        create_user(connection, "anna", PASSWORD, Role.ADMIN, NOW)
        create_user(connection, "xavi", PASSWORD, Role.AGENT, NOW)
    by_name = users_module.user_by_name
    fired: list[str] = []

    def others_meanwhile(connection: Connection, username: str) -> object:
        read = by_name(connection, username)
        if username == "xavi" and not fired:
            fired.append(username)
            with engine.begin() as other:
                set_role(other, "xavi", Role.ADMIN)
            with engine.begin() as other:
                set_role(other, "anna", Role.MARKETER)
        return read

    monkeypatch.setattr(users_module, "user_by_name", others_meanwhile)
    with engine.begin() as connection, pytest.raises(UserError, match="xavi is the only"):
        set_role(connection, "xavi", Role.AGENT)
    assert fired
    monkeypatch.undo()
    with engine.connect() as connection:
        admins = connection.execute(
            select(users.c.username).where(users.c.role == "admin", users.c.active.is_(True))
        ).scalars()
        assert list(admins) == ["xavi"]


def test_an_admin_can_step_down_while_another_user_is_made_admin(
    engine: Engine, backend: str
) -> None:
    """On PostgreSQL the demotion waits for the promotion's locks; once it proceeds, the
    user just made admin counts as another active admin, so the demotion is not refused."""
    if backend == "sqlite":
        pytest.skip("SQLite runs the two one after another (hold_writes)")
    with engine.begin() as connection:
        create_user(connection, "ana", PASSWORD, Role.ADMIN, NOW)
        create_user(connection, "ben", PASSWORD, Role.AGENT, NOW)
    outcome: list[object] = []
    promoting = engine.connect()
    transaction = promoting.begin()
    set_role(promoting, "ben", Role.ADMIN)  # holds ana's and ben's rows

    def demote() -> None:
        try:
            with engine.begin() as connection:
                set_role(connection, "ana", Role.AGENT)
            outcome.append("done")
        except UserError as exc:
            outcome.append(exc)

    worker = threading.Thread(target=demote)
    worker.start()
    worker.join(1.0)  # the demotion waits for ana's row
    transaction.commit()
    promoting.close()
    worker.join(10)
    assert outcome == ["done"]
    with engine.connect() as connection:
        assert user_by_name(connection, "ben").role is Role.ADMIN
        assert user_by_name(connection, "ana").role is Role.AGENT


def test_the_demo_creates_its_users_and_never_changes_an_existing_one(engine: Engine) -> None:
    clock = FixedClock(NOW)
    with engine.begin() as connection:
        create_user(connection, "admin", PASSWORD, Role.VIEWER, NOW)
        set_active(connection, "admin", False)
    first = demo_users(engine, clock)
    assert (first.created, first.existing) == (("marketer", "agent"), ("admin",))
    assert len(first.password) >= 12
    with engine.begin() as connection:
        admin = user_by_name(connection, "admin")
        assert (admin.role, admin.active) == (Role.VIEWER, False)  # as its owner left it
        set_active(connection, "admin", True)
        assert authenticate(connection, "admin", first.password, NOW) is None
        assert authenticate(connection, "admin", PASSWORD, NOW) is not None
        for username, role in DEMO_USERS[1:]:
            signed = authenticate(connection, username, first.password, NOW)
            assert signed is not None and signed.role is role
        set_role(connection, "agent", Role.VIEWER)
    second = demo_users(engine, clock)
    assert (second.created, second.existing) == ((), ("admin", "marketer", "agent"))
    with engine.begin() as connection:
        assert authenticate(connection, "marketer", second.password, NOW) is None
        signed = authenticate(connection, "agent", first.password, NOW)
        assert signed is not None and signed.role is Role.VIEWER


def outreach(
    *args: str, env: dict[str, str], cwd: Path, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "outreach", *args], input=stdin,
        env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_a_password_prompt_left_unanswered_does_nothing(
    env: dict[str, str], tmp_path: Path, engine: Engine
) -> None:
    # Its input ended: nothing was done (2), not "done, with rejected rows" (1).
    ended = outreach("users", "add", "carl", "--role", "agent", env=env, cwd=tmp_path)
    assert ended.returncode == 2, ended.stderr[-300:]
    assert "no answer to the prompt (its input ended): nothing was done" in ended.stderr
    # Ctrl-C at the prompt: interrupted (130).
    process = subprocess.Popen(
        [sys.executable, "-m", "outreach", "users", "add", "carl", "--role", "agent"],
        env=env, cwd=tmp_path, stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stderr is not None
    asked = ""
    while "Password" not in asked:
        line = process.stderr.read(1)
        assert line, asked
        asked += line
    process.send_signal(signal.SIGINT)
    _, said = process.communicate(timeout=60)
    assert process.returncode == 130, said
    assert "Interrupted: nothing was done." in said
    with engine.connect() as connection, pytest.raises(NotFoundError):
        user_by_name(connection, "carl")


def test_the_users_commands(env: dict[str, str], tmp_path: Path, engine: Engine) -> None:
    assert outreach("init", env=env, cwd=tmp_path).returncode == 0
    added = outreach(
        "users", "add", "ana", "--role", "agent", "--name", "Ana Lima", "--password-stdin",
        env=env, cwd=tmp_path, stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "ana (agent) can now sign in" in added.stdout
    assert PASSWORD not in added.stdout + added.stderr
    short = outreach(
        "users", "add", "bob", "--role", "agent", "--password-stdin",
        env=env, cwd=tmp_path, stdin="short\n",
    )  # fmt: skip
    assert short.returncode == 2 and "at least 12 characters" in short.stderr
    bad_role = outreach(
        "users", "add", "bob", "--role", "boss", "--password-stdin",
        env=env, cwd=tmp_path, stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert bad_role.returncode == 2 and "use one of admin, marketer, agent, viewer" in (
        bad_role.stderr
    )
    assert outreach("users", "role", "ana", "marketer", env=env, cwd=tmp_path).returncode == 0
    assert outreach("users", "disable", "ana", env=env, cwd=tmp_path).returncode == 0
    listed = outreach("users", "list", env=env, cwd=tmp_path)
    assert "ana" in listed.stdout and "marketer" in listed.stdout and "no" in listed.stdout
    assert "bob" not in listed.stdout
    changed = outreach(
        "users", "password", "ana", "--password-stdin",
        env=env, cwd=tmp_path, stdin="a brand new password\n",
    )  # fmt: skip
    assert changed.returncode == 0
    assert outreach("users", "enable", "ana", env=env, cwd=tmp_path).returncode == 0
    with engine.begin() as connection:
        user = authenticate(connection, "ana", "a brand new password", NOW)
        assert user is not None and user.role is Role.MARKETER
        assert user_by_name(connection, "ana").display_name == "Ana Lima"
        # role, disable, password, enable: each ended the sessions open before it
        assert connection.execute(select(users.c.session_epoch)).scalar_one() == 4
    missing = outreach("users", "disable", "nobody", env=env, cwd=tmp_path)
    assert missing.returncode == 2 and "no user named 'nobody'" in missing.stderr
