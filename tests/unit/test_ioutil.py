"""mlsec.ioutil: the one writer of user-named outputs and the one capped reader of inputs."""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import threading
from pathlib import Path

import pytest

from mlsec import ioutil
from mlsec.errors import KeyFileError, MlsecError, UsageError
from mlsec.ioutil import open_output, read_capped, write_output


@pytest.fixture
def null_device(tmp_path: Path) -> Path:
    """A character device to use as an output. As root it is a null device node made in tmp_path
    (c 1 3), never /dev/null itself: root could replace /dev/null for the whole machine if the
    code under test regressed. Others get /dev/null, which they cannot replace."""
    if os.geteuid() != 0:
        return Path("/dev/null")
    node = tmp_path / "null"
    os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    return node


@pytest.fixture(params=["unnamed", "named"])
def temp_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with O_TMPFILE (where the kernel has it) and with the named temp fallback."""
    if request.param == "named":
        monkeypatch.setattr(ioutil, "_open_unnamed", lambda directory: None)
    return str(request.param)


def test_new_file_appears_complete_with_its_mode(tmp_path: Path, temp_kind: str) -> None:
    out = tmp_path / "out.json"
    write_output(out, b"{}\n", mode=0o600)
    assert out.read_bytes() == b"{}\n"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_regular_file_is_replaced_only_with_overwrite(tmp_path: Path, temp_kind: str) -> None:
    out = tmp_path / "out"
    out.write_bytes(b"old")
    with pytest.raises(UsageError, match="already exists"):
        write_output(out, b"new", overwrite=False)
    assert out.read_bytes() == b"old"
    write_output(out, b"new")
    assert out.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()])
def test_a_failed_or_interrupted_write_leaves_nothing(
    tmp_path: Path, temp_kind: str, exc: BaseException
) -> None:
    out = tmp_path / "out"
    out.write_bytes(b"old")
    with pytest.raises(type(exc)), open_output(out) as f:
        f.write(b"partial" * 1000)
        raise exc
    assert out.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_unnamed_output_has_no_name_until_it_is_complete(tmp_path: Path) -> None:
    """With O_TMPFILE nothing has a name while data is written: a SIGKILL or a power cut at
    that moment leaves no file at all."""
    if ioutil._open_unnamed(tmp_path) is None:
        pytest.skip("this file system has no O_TMPFILE; the named fallback is tested elsewhere")
    out = tmp_path / "out"
    with open_output(out) as f:
        f.write(b"x" * 100_000)
        f.flush()
        assert list(tmp_path.iterdir()) == []
    assert out.read_bytes() == b"x" * 100_000


def test_a_character_device_is_written_in_place(null_device: Path) -> None:
    write_output(null_device, b"discarded")
    write_output(null_device, b"discarded", overwrite=False)  # a device is not a file to clobber
    assert stat.S_ISCHR(os.lstat(null_device).st_mode)


def test_fifo_is_written_in_place(tmp_path: Path) -> None:
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    write_output(fifo, b"through the pipe", overwrite=False)
    reader.join(timeout=30)
    assert got == [b"through the pipe"]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["out.fifo"]


def test_directory_and_socket_are_refused(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(UsageError, match="is a directory"):
        write_output(tmp_path / "d", b"x")
    with pytest.raises(UsageError, match="is a directory"):
        write_output(Path("."), b"x")
    sock_path = tmp_path / "s"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(sock_path))
        with pytest.raises(UsageError, match="is a socket"):
            write_output(sock_path, b"x")
        assert stat.S_ISSOCK(os.lstat(sock_path).st_mode)


def test_symlink_rules(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.write_bytes(b"old")
    link = tmp_path / "link"
    link.symlink_to(real)
    write_output(link, b"new")
    assert link.is_symlink() and real.read_bytes() == b"new"

    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    with pytest.raises(UsageError, match="dangling symlink"):
        write_output(dangling, b"x")
    assert not (tmp_path / "nowhere").exists()

    to_fifo = tmp_path / "to-fifo"
    os.mkfifo(tmp_path / "fifo")
    to_fifo.symlink_to(tmp_path / "fifo")
    got: list[bytes] = []
    reader = threading.Thread(
        target=lambda: got.append((tmp_path / "fifo").read_bytes()), daemon=True
    )
    reader.start()
    write_output(to_fifo, b"via link")  # how /dev/stdout -> /proc/self/fd/1 works
    reader.join(timeout=30)
    assert got == [b"via link"]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a link owned by another user")
def test_foreign_symlink_in_a_sticky_shared_directory_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    trap = shared / "out.json"
    trap.symlink_to(victim)
    os.lchown(trap, 12345, 12345)
    with pytest.raises(UsageError, match="owned by someone else"):
        write_output(trap, b"x")
    assert victim.read_bytes() == b"precious"


def test_missing_parent_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        write_output(tmp_path / "no" / "out", b"x")


def test_read_capped_bounds_devices_fifos_and_files(tmp_path: Path) -> None:
    with pytest.raises(MlsecError, match=r"^/dev/zero: larger than 1 KiB, not a key file$"):
        read_capped("/dev/zero", 1024, what="key file")
    exact = tmp_path / "exact"
    exact.write_bytes(b"a" * 1024)
    assert read_capped(exact, 1024) == b"a" * 1024
    exact.write_bytes(b"a" * 1025)
    with pytest.raises(KeyFileError, match="larger than"):
        read_capped(exact, 1024, error=KeyFileError)

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    def write(data: bytes) -> None:
        with contextlib.suppress(BrokenPipeError):  # the reader stopped at its cap, as it must
            fifo.write_bytes(data)

    def feed(data: bytes) -> threading.Thread:
        t = threading.Thread(target=write, args=(data,), daemon=True)
        t.start()
        return t

    t = feed(b"secret\n")
    assert read_capped(fifo, 1024) == b"secret\n"
    t.join(timeout=30)
    t = feed(b"z" * (1 << 20))  # more than the cap: refused without reading it all
    with pytest.raises(MlsecError, match="larger than"):
        read_capped(fifo, 4096)
    t.join(timeout=30)


def test_read_capped_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(MlsecError, match=r"nope: no such file$"):
        read_capped(tmp_path / "nope", 10)
    with pytest.raises(MlsecError, match=r"is a directory, not a policy$"):
        read_capped(tmp_path, 10, what="policy")


def test_file_descriptor_links_are_written_through_the_descriptor(tmp_path: Path) -> None:
    """/dev/stdout, /dev/fd/N and /proc/self/fd/N name a descriptor, whose target (pipe:[…]) is
    no path: the output goes through the descriptor, as a shell's `> /dev/stdout` does."""
    r, w = os.pipe()
    try:
        stdout_like = tmp_path / "stdout"
        stdout_like.symlink_to(f"/proc/self/fd/{w}")  # /dev/stdout -> /proc/self/fd/1
        write_output(stdout_like, b"one ", overwrite=False)
        write_output(f"/dev/fd/{w}", b"two")
        assert os.read(r, 100) == b"one two"
        assert stdout_like.is_symlink()
    finally:
        os.close(r)
        os.close(w)

    log = tmp_path / "log"
    log.write_bytes(b"kept\n")
    with open(log, "ab") as appending:  # `>> log`: the descriptor's O_APPEND is kept
        write_output(f"/proc/self/fd/{appending.fileno()}", b"added\n")
    assert log.read_bytes() == b"kept\nadded\n"
