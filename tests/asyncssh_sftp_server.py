"""asyncssh's SFTP server on 127.0.0.1 for interop tests: run as a subprocess.

    python asyncssh_sftp_server.py WORKDIR

Writes a host key and an authorized client key (ed25519) into WORKDIR, listens
on a free port and prints "PORT <n>" once it accepts connections; the SFTP
root is the real file system (asyncssh's default SFTPServer).
"""

import asyncio
import sys
from pathlib import Path

import asyncssh


async def main(workdir: Path) -> None:
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    host_key.write_private_key(str(workdir / "host_key"))
    host_key.write_public_key(str(workdir / "host_key.pub"))
    client_key.write_private_key(str(workdir / "client_key"))
    client_key.write_public_key(str(workdir / "client_key.pub"))
    server = await asyncssh.listen(
        "127.0.0.1", 0, server_host_keys=[host_key],
        authorized_client_keys=str(workdir / "client_key.pub"), sftp_factory=True,
        allow_scp=False)
    port = server.sockets[0].getsockname()[1]
    print(f"PORT {port}", flush=True)
    await server.wait_closed()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
