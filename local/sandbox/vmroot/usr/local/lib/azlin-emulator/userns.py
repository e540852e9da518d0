"""`python userns.py COMMAND...`: run COMMAND as root of a new user namespace in which IDs
0-65535 are this machine's 0-65535. Files keep their owners; capabilities hold only inside the
namespace (no modules or devices), and mounts made before it are locked. util-linux's
`unshare --map-users` needs newuidmap, which Debian does not install by default, hence this.

The child dies with this process (parent-death signal), so a VM never outlives the emulator."""

from __future__ import annotations

import ctypes
import os
import signal
import sys

CLONE_NEWUSER = 0x10000000
PR_SET_PDEATHSIG = 1
ID_MAP = "0 0 65536\n"


def main(command: list[str]) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    ready_read, ready_write = os.pipe()
    go_read, go_write = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(ready_read)
        os.close(go_write)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if libc.unshare(CLONE_NEWUSER) != 0:
            os.write(2, f"unshare(CLONE_NEWUSER): {os.strerror(ctypes.get_errno())}\n".encode())
            os._exit(1)
        os.write(ready_write, b"1")
        os.read(go_read, 1)  # the parent writes our ID maps meanwhile
        os.setgid(0)
        os.setuid(0)
        os.execvp(command[0], command)
    os.close(ready_write)
    os.close(go_read)
    if os.read(ready_read, 1) == b"1":
        for name, text in (("uid_map", ID_MAP), ("setgroups", "allow\n"), ("gid_map", ID_MAP)):
            with open(f"/proc/{child}/{name}", "w") as mapping:
                mapping.write(text)
    os.write(go_write, b"1")
    while True:  # as PID 1, also reap the orphans handed to us
        pid, status = os.wait()
        if pid == child:
            return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
