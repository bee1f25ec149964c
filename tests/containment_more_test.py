"""The containers themselves, driven in this process: a process group whose leader left, a
member that ignores the polite signal, a cgroup whose holder was removed, a dead toolrun's
leftovers, a spawn that fails, a move back that fails, and machines that give toolrun no
cgroup (no cgroup2 mount, a read-only one, no /proc, no room for another cgroup)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from conftest import PROBE

from toolrun.executors import containment
from toolrun.executors.containment import (
    CGROUP,
    GROUP,
    CgroupBox,
    Cgroups,
    GroupBox,
    cgroup_pids,
    cgroup_populated,
    end,
    end_cgroup,
    end_left_cgroup,
    group_exists,
    holder_name,
    signal_group,
)
from toolrun.executors.processes import process_start_time

UNIFIED = Path("/sys/fs/cgroup/unified")
VERSION = [sys.executable, "-m", "toolrun", "--version", "--verbose"]
GROUP_ONLY = "containment: process group and descendants (no writable cgroup v2 here)"


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def gone_soon(pid: int, seconds: float = 5) -> bool:
    deadline = time.monotonic() + seconds
    while alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)  # leave nothing behind for the next test
            return False
        time.sleep(0.02)
    return True


def wait_for_file(path: Path, seconds: float = 10) -> str:
    deadline = time.monotonic() + seconds
    while not path.exists() or not path.read_text().endswith("\n"):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)
    return path.read_text()


def own_cgroup_path() -> Path:
    """Where this process is in the cgroup v2 hierarchy."""
    line = next(x for x in Path("/proc/self/cgroup").read_text().splitlines() if x[:3] == "0::")
    return UNIFIED / line[3:].strip().lstrip("/")


def cgroup_of(pid: int) -> Path:
    line = next(x for x in Path(f"/proc/{pid}/cgroup").read_text().splitlines() if x[:3] == "0::")
    return UNIFIED / line[3:].strip().lstrip("/")


def join(path: Path) -> None:
    (path / "cgroup.procs").write_text("0")


@pytest.fixture
def home_cgroup() -> Iterator[Path]:
    """A cgroup of the test's own below this process's, ended and removed at the end (with
    this process moved back where it was, should a test have left it inside)."""
    before = own_cgroup_path()
    path = before / f"toolrun-test-{uuid.uuid4().hex[:12]}"
    path.mkdir()
    try:
        yield path
    finally:
        join(before)
        end_cgroup(path, wait=5)
        assert not path.exists(), "the test's cgroup was left behind"


@pytest.fixture
def own_cgroups(monkeypatch: pytest.MonkeyPatch) -> Cgroups:
    """This process's real cgroups (below the cgroup it runs in), as ``toolrun`` makes them."""
    cgroups = Cgroups.here()
    assert cgroups is not None, "root with cgroup v2 mounted should be able to make cgroups"
    monkeypatch.setattr(containment, "_KIND", CGROUP)
    monkeypatch.setattr(containment, "_CGROUPS", cgroups)
    monkeypatch.setattr(containment, "_READY", None)
    monkeypatch.setattr(containment, "_READYING", None)
    return cgroups


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


# A leader that starts a child, which starts a grandchild that ignores SIGTERM; the leader
# writes "child grandchild" and exits: both stay in its process group, their parent gone.
LEAVING_TREE = """
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", '''
import signal, subprocess, sys, time
grandchild = subprocess.Popen([sys.executable, "-c",
    "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
    "print('ready', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
grandchild.stdout.readline()
print(grandchild.pid, flush=True)
time.sleep(60)
'''], stdout=subprocess.PIPE, text=True)
grandchild = child.stdout.readline().strip()
open(sys.argv[1] + ".tmp", "w").write(f"{child.pid} {grandchild}\\n")
import os; os.replace(sys.argv[1] + ".tmp", sys.argv[1])
"""


# -- process group ------------------------------------------------------------------------------


def test_a_group_box_ends_members_whose_leader_left_and_forces_the_one_that_ignores_sigterm(
    tmp_path: Path,
) -> None:
    pids = tmp_path / "pids"
    leader = subprocess.Popen([*python(LEAVING_TREE), str(pids)], start_new_session=True)
    child, grandchild = map(int, wait_for_file(pids).split())
    assert leader.wait(10) == 0  # the leader is gone and reaped: its number names no process
    box = GroupBox()
    box.adopt(leader.pid)
    try:
        assert not box.is_empty()  # its group still has members
        started = time.monotonic()
        end(box, grace=0.3)
        took = time.monotonic() - started
        assert not alive(child) and not alive(grandchild)
        assert box.is_empty()
        assert took >= 0.3  # the grandchild ignored SIGTERM: it waited out the grace
    finally:
        for pid in (child, grandchild):
            gone_soon(pid, 0)


def test_a_second_ctrl_c_forces_the_end_before_the_grace_is_over(tmp_path: Path) -> None:
    stubborn = subprocess.Popen(
        [sys.executable, str(PROBE), "stubborn", str(tmp_path / "pid")],
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    wait_for_file(tmp_path / "pid")
    box = GroupBox()
    with box.spawning():  # nothing to join: the tool leads a session of its own
        pass
    box.adopt(stubborn.pid)
    asked: list[float] = []

    def forced() -> bool:
        asked.append(time.monotonic())
        return len(asked) >= 3

    started = time.monotonic()
    end(box, grace=30, forced=forced)
    assert time.monotonic() - started < 5  # not the 30 s of grace
    assert len(asked) == 3
    assert stubborn.wait(5) == -signal.SIGKILL


def test_an_empty_group_box_is_left_alone() -> None:
    box = GroupBox()
    assert box.is_empty()  # nothing adopted yet
    box.signal(polite=False)  # nothing to signal: no error
    end(box, grace=0)
    gone = subprocess.Popen(python("pass"), start_new_session=True)
    gone.wait()
    box.adopt(gone.pid)
    assert box.is_empty()
    end(box, grace=10)  # returns at once: nothing is left to end
    box.close()


def test_signalling_a_group_skips_members_already_gone() -> None:
    sleeper = subprocess.Popen(python("import time; time.sleep(60)"), start_new_session=True)
    done = subprocess.Popen(python("pass"))
    done.wait()
    ghost = psutil.Process(sleeper.pid)
    signal_group(sleeper.pid, [ghost], polite=True)
    assert sleeper.wait(5) == -signal.SIGTERM
    signal_group(sleeper.pid, [ghost], polite=False)  # group and member gone: no error
    assert not group_exists(sleeper.pid)
    assert containment._running_pid(os.getpid())
    assert not containment._running_pid(done.pid)
    assert not containment._running(ghost)


def test_with_process_groups_in_force_nothing_is_readied_and_boxes_are_groups(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(containment, "_KIND", GROUP)
    monkeypatch.setattr(containment, "_READY", None)
    monkeypatch.setattr(containment, "_READYING", None)
    home = own_cgroup_path()
    containment.get_ready()
    box = containment.new_box("plain")
    assert containment._READY is None and own_cgroup_path() == home
    assert isinstance(box, GroupBox) and box.ref is None


# -- cgroups ------------------------------------------------------------------------------------


def test_a_cgroup_box_ends_a_daemon_that_left_its_session(
    own_cgroups: Cgroups, tmp_path: Path
) -> None:
    box = containment.new_box("probe daemonize/#1")
    assert isinstance(box, CgroupBox)
    assert box.path.parent == own_cgroups.holder
    assert box.path.name.endswith("-probe_daemonize__1")
    pidfile = tmp_path / "daemon.pid"
    home = own_cgroup_path()
    with box.spawning():
        tool = subprocess.Popen([sys.executable, str(PROBE), "daemonize", str(pidfile)])
    assert tool.wait(10) == 0
    daemon = int(wait_for_file(pidfile))
    assert not box.is_empty()
    assert own_cgroup_path() == home  # this process went back where it was
    assert cgroup_of(daemon) == box.path  # the daemon left its session, not its cgroup
    # The double fork's middle process is gone a moment after it exits (a loaded machine).
    deadline = time.monotonic() + 5
    while cgroup_pids(box.path) != [daemon] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert cgroup_pids(box.path) == [daemon]
    end(box, grace=2)
    assert gone_soon(daemon, 1)
    assert box.is_empty()
    box.close()
    assert not box.path.exists()


def test_a_cgroup_readied_ahead_is_the_next_box_and_this_process_is_inside_already(
    own_cgroups: Cgroups,
) -> None:
    home = own_cgroup_path()
    containment.get_ready()
    containment.get_ready()  # once is enough: a second call starts nothing
    box = containment.new_box("the label is not used")
    assert isinstance(box, CgroupBox)
    assert box.path.name.endswith("-next") and box.entered
    assert own_cgroup_path() == box.path  # moved in ahead of the spawn
    with box.spawning():
        sleeper = subprocess.Popen(python("import time; time.sleep(60)"))
    assert not box.is_empty()
    assert own_cgroup_path() == home and not box.entered
    assert cgroup_of(sleeper.pid) == box.path
    box.signal(polite=False)  # cgroup.kill
    assert sleeper.wait(5) == -signal.SIGKILL
    box.close()
    assert not box.path.exists()
    second = containment.new_box("after")
    assert isinstance(second, CgroupBox) and second.path.name.endswith("-after")
    second.close()


def test_a_spawn_that_fails_inside_a_cgroup_leaves_it_and_frees_the_next_spawn(
    own_cgroups: Cgroups,
) -> None:
    home = own_cgroup_path()
    box = own_cgroups.new("missing")
    with pytest.raises(FileNotFoundError), box.spawning():
        subprocess.Popen(["/nonexistent/tool"])
    assert own_cgroup_path() == home
    assert not containment._SPAWN_LOCK.locked()
    assert box.is_empty()
    box.close()
    again = own_cgroups.new("again")
    with again.spawning():
        quick = subprocess.Popen(python("pass"))
    assert quick.wait(5) == 0
    again.close()
    assert not again.path.exists()


def test_a_cgroup_this_process_could_not_leave_is_never_killed(home_cgroup: Path) -> None:
    inside = home_cgroup / "attempt"
    inside.mkdir()
    box = CgroupBox(inside, home_cgroup / "removed-home")  # the way back is gone
    with box.spawning():
        sleeper = subprocess.Popen(python("import time; time.sleep(60)"))
    with pytest.raises(FileNotFoundError):
        box.is_empty()
    with pytest.raises(FileNotFoundError):
        box.signal(polite=False)
    with pytest.raises(FileNotFoundError):
        box.close()
    assert own_cgroup_path() == inside  # still in there: killing it would kill this test
    assert sleeper.poll() is None and inside.exists()
    join(home_cgroup)
    end_cgroup(inside)
    assert sleeper.wait(5) == -signal.SIGKILL
    assert not inside.exists()


def test_a_holder_removed_behind_toolruns_back_is_made_again(home_cgroup: Path) -> None:
    cgroups = Cgroups(home_cgroup)
    first = cgroups.new("a")
    first.close()
    cgroups.holder.rmdir()
    second = cgroups.new("b")
    assert second.path == cgroups.holder / "2-b"
    assert second.path.is_dir() and (second.path / "cgroup.kill").exists()
    second.close()


def test_no_room_for_another_cgroup_falls_back_to_a_process_group(
    home_cgroup: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cgroups = Cgroups(home_cgroup)
    cgroups.holder.mkdir()
    (home_cgroup / "cgroup.max.descendants").write_text("1")  # the holder, nothing more
    monkeypatch.setattr(containment, "_KIND", CGROUP)
    monkeypatch.setattr(containment, "_CGROUPS", cgroups)
    monkeypatch.setattr(containment, "_READY", None)
    monkeypatch.setattr(containment, "_READYING", None)
    box = containment.new_box("full")
    assert isinstance(box, GroupBox) and box.kind == GROUP
    sleeper = subprocess.Popen(python("import time; time.sleep(60)"), start_new_session=True)
    box.adopt(sleeper.pid)
    end(box, grace=2)
    assert sleeper.wait(5) == -signal.SIGTERM
    assert [p for p in cgroups.holder.iterdir() if p.is_dir()] == []  # no cgroup was made


def test_a_dead_toolruns_cgroups_are_ended_and_removed_and_the_living_ones_kept(
    home_cgroup: Path,
) -> None:
    living = subprocess.Popen(python("import time; time.sleep(60)"))
    try:
        dead_pid = living.pid  # a number in use, with another start time: a reused pid
        dead = home_cgroup / holder_name(dead_pid, 1)
        attempt = dead / "1-build" / "nested"
        attempt.mkdir(parents=True)
        leftover = subprocess.Popen(
            ["sh", "-c", f"echo $$ > {attempt}/cgroup.procs && exec sleep 60"]
        )
        deadline = time.monotonic() + 5
        while not cgroup_populated(attempt):
            assert time.monotonic() < deadline, "the leftover never joined its cgroup"
            time.sleep(0.01)
        live = home_cgroup / holder_name(living.pid, process_start_time(living.pid))
        (live / "1-running").mkdir(parents=True)
        foreign = home_cgroup / "someone-else"
        foreign.mkdir()
        Cgroups(home_cgroup).sweep()
        assert leftover.wait(5) == -signal.SIGKILL
        assert not dead.exists()
        assert (live / "1-running").is_dir() and foreign.is_dir()
        end_left_cgroup(live / "1-running")  # its toolrun lives: the holder stays
        assert not (live / "1-running").exists() and live.is_dir()
        left = home_cgroup / holder_name(dead_pid, 2) / "3-test"
        left.mkdir(parents=True)
        end_left_cgroup(left)  # its toolrun died: the holder goes with its last attempt
        assert not left.parent.exists()
        end_cgroup(home_cgroup / "never-made")  # nothing there: nothing to do
    finally:
        living.kill()
        living.wait()


# -- machines that give toolrun no cgroup -------------------------------------------------------


@pytest.mark.parametrize(
    "setup",
    [
        "umount /sys/fs/cgroup/unified",  # no cgroup v2 mounted
        "mount -o remount,bind,ro /sys/fs/cgroup/unified",  # mounted read-only
        "umount -l /proc",  # /proc unreadable
    ],
    ids=["no-cgroup2", "read-only", "no-proc"],
)
def test_a_machine_without_a_writable_cgroup_v2_uses_process_groups(
    setup: str, tmp_path: Path
) -> None:
    shown = subprocess.run(
        ["unshare", "-m", "sh", "-c", f'{setup} && exec "$@"', "sh", *VERSION],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=30,
    )
    assert shown.returncode == 0, shown.stderr
    assert GROUP_ONLY in shown.stdout


def test_a_toolrun_in_a_cgroup_without_room_for_its_holder_uses_process_groups(
    home_cgroup: Path, tmp_path: Path
) -> None:
    (home_cgroup / "cgroup.max.descendants").write_text("0")
    shown = subprocess.run(
        ["sh", "-c", f'echo $$ > {home_cgroup}/cgroup.procs && exec "$@"', "sh", *VERSION],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=30,
    )
    assert shown.returncode == 0, shown.stderr
    assert GROUP_ONLY in shown.stdout
    assert list(home_cgroup.glob("toolrun-*")) == []


def test_elsewhere_than_linux_process_groups_are_the_only_kind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TOOLRUN_CONTAINMENT", raising=False)
    monkeypatch.setattr(containment, "_KIND", None)
    monkeypatch.setattr(containment, "_CGROUPS", None)
    monkeypatch.setattr(sys, "platform", "darwin")  # another OS: the one thing mocked here
    assert containment.kind_in_force() == GROUP
    assert containment.describe_containment() == (
        "containment: process group and descendants (no cgroups on this system); "
        "a daemonising grandchild can escape"
    )
