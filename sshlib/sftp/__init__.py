"""Sans-IO SFTP v3 client core (draft-ietf-secsh-filexfer-02 plus OpenSSH's extensions).

`core` frames requests and parses replies, `attrs` encodes file attributes,
`policy` holds the pipelining plans and `ops` every client operation as a
generator the front-ends (sshlib.sync.sftp, sshlib.aio.sftp) drive.
"""

from .attrs import SFTPAttributes, SFTPName, SFTPVFSAttributes
from .core import SFTPCore

__all__ = ["SFTPAttributes", "SFTPName", "SFTPVFSAttributes", "SFTPCore"]
