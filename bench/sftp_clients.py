"""`python -m bench.sftp_clients [MB]`: paramiko against asyncssh, upload and download of the same bytes.

Both clients talk to the private OpenSSH sshd of the tests (tests/fixtures/sshd.py) on loopback with
the same Ed25519 key; each figure is the best of three. This is the measurement behind the choice of
client in walkme_dic/connectors/sftp.py. First it reads the file through our SftpStore (prefetch) at
10 ms per MiB, a consumer far slower than the network, and prints how much the peak RSS grew: the
prefetched answers must wait in the SSH channel, not pile up in memory.
"""

from __future__ import annotations

import asyncio
import io
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

import asyncssh
import paramiko

from tests.fixtures.sshd import Sshd, running_sshd
from walkme_dic.api.connection import SftpProvider
from walkme_dic.connectors.sftp import SftpStore

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


def slow_read_rss_growth(server: Sshd, name: str) -> tuple[int, float]:
    """(bytes read, MB the peak RSS grew) reading ``name`` (in the server's folder) with SftpStore, 10 ms per MiB."""
    spec = SftpProvider.model_validate({"host": server.host, "port": server.port, "username": server.username,
                                        "path": str(server.root), "hostKeys": server.known_hosts.splitlines(),
                                        "auth": {"secretRef": {"name": "bench"}}})
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    total = 0
    with SftpStore(spec, {"privateKey": server.keys["ed25519"]}).open_read(name) as stream:
        while chunk := stream.read(CHUNK):
            total += len(chunk)
            time.sleep(0.01)
    return total, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024


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
        with source.open("wb") as out:
            for _ in range(megabytes):
                out.write(os.urandom(1_000_000))
        read, growth = slow_read_rss_growth(server, source.name)
        print(f"SftpStore read of {read / 1e6:.0f} MB at 10 ms per MiB: peak RSS grew by {growth:.1f} MB")
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
