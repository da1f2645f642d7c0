"""`python -m bench.sftp_clients [MB]`: paramiko against asyncssh, upload and download of the same bytes.

Both clients talk to the private OpenSSH sshd of the tests (tests/fixtures/sshd.py) on loopback with
the same Ed25519 key; each figure is the best of three. This is the measurement behind the choice of
client in walkme_dic/connectors/sftp.py.
"""

from __future__ import annotations

import asyncio
import io
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import asyncssh
import paramiko

from tests.fixtures.sshd import Sshd, running_sshd

CHUNK = 1024 * 1024


def paramiko_client(server: Sshd) -> paramiko.SFTPClient:
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect(server.host, server.port, server.username,
                   pkey=paramiko.Ed25519Key.from_private_key(io.StringIO(server.keys["ed25519"])),
                   look_for_keys=False, allow_agent=False)
    return client.open_sftp()


def paramiko_up(server: Sshd, source: Path, target: str) -> None:
    sftp = paramiko_client(server)
    with source.open("rb") as data, sftp.open(target, "wb") as remote:
        remote.set_pipelined(True)
        while chunk := data.read(CHUNK):
            remote.write(chunk)
    sftp.close()


def paramiko_down(server: Sshd, target: str, prefetch: bool) -> int:
    sftp = paramiko_client(server)
    total = 0
    with sftp.open(target, "rb") as remote:
        if prefetch:
            remote.prefetch()
        while chunk := remote.read(CHUNK):
            total += len(chunk)
    sftp.close()
    return total


async def _asyncssh(server: Sshd, action: Callable[[asyncssh.SFTPClient], object]) -> object:
    key = asyncssh.import_private_key(server.keys["ed25519"])
    async with asyncssh.connect(server.host, server.port, username=server.username, client_keys=[key],
                                known_hosts=None) as connection, connection.start_sftp_client() as sftp:
        return await action(sftp)  # type: ignore[misc]


def asyncssh_up(server: Sshd, source: Path, target: str) -> None:
    asyncio.run(_asyncssh(server, lambda sftp: sftp.put(str(source), target)))


def asyncssh_down(server: Sshd, target: str, local: Path) -> None:
    asyncio.run(_asyncssh(server, lambda sftp: sftp.get(target, str(local))))


def best(action: Callable[[], object], runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> int:
    megabytes = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    with running_sshd() as server:
        source = server.root / "source.bin"
        source.write_bytes(os.urandom(megabytes * 1_000_000))
        target = str(server.root / "target.bin")
        local = server.root / "local.bin"
        figures = {
            "paramiko upload (pipelined)": best(lambda: paramiko_up(server, source, target)),
            "asyncssh upload (put)": best(lambda: asyncssh_up(server, source, target)),
            "paramiko download (prefetch)": best(lambda: paramiko_down(server, target, prefetch=True)),
            "asyncssh download (get)": best(lambda: asyncssh_down(server, target, local)),
            "paramiko download (no prefetch)": best(lambda: paramiko_down(server, target, prefetch=False), runs=1),
        }
    for name, seconds in figures.items():
        print(f"{name:<34} {megabytes / seconds:8.1f} MB/s  ({seconds:.2f} s for {megabytes} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
