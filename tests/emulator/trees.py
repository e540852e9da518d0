"""Build awkward home directories inside sandbox VMs and take their exact manifests there, so tests
can compare trees by path, type, mode, owner, size, content checksum, link target and hard-link
group. Both programs run with the VM's own python3, as root, through a Run Command."""

from __future__ import annotations

from typing import Any

# argv: ROOT FILES OWNER. Dotfiles, nested dirs, symlinks (relative, absolute, dangling), hard
# links, names with spaces, a newline and non-ASCII, restrictive modes, a large file.
BUILD = r"""
import os, sys, pwd, random
root, count, owner = sys.argv[1], int(sys.argv[2]), pwd.getpwnam(sys.argv[3])
random.seed(7)
os.makedirs(root, exist_ok=True)
def put(rel, data, mode=0o644):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)
for i in range(count):
    put(f"projects/p{i % 37}/src/file {i}.txt", f"line {i}\n".encode() * (i % 50 + 1))
put(".bashrc", b"export PS1='$ '\n")
put(".config/tool/settings.json", b'{"a": 1}\n')
put(".ssh/id_ed25519", b"PRIVATE\n", 0o600)
put(".ssh/authorized_keys", b"ssh-ed25519 AAAAvm own@vm\n", 0o600)
put("notes/résumé 日本 final.md", "Unicode ✓\n".encode())
put("notes/line\nbreak", b"newline in the name\n")
put("secret/only-me", b"x" * 100, 0o600)
os.chmod(os.path.join(root, "secret"), 0o700)
put("big.bin", random.randbytes(8 * 1024 * 1024))
os.link(os.path.join(root, "notes/résumé 日本 final.md"), os.path.join(root, "notes/hard link"))
os.symlink("notes/résumé 日本 final.md", os.path.join(root, "relative-link"))
os.symlink("/etc/hostname", os.path.join(root, "absolute-link"))
os.symlink("nowhere/at/all", os.path.join(root, "dangling-link"))
for folder, dirs, files in os.walk(root):
    for name in dirs + files + [""]:
        os.lchown(os.path.join(folder, name), owner.pw_uid, owner.pw_gid)
"""

# argv: ROOT OUT. Writes one JSON object per entry, sorted, to OUT (Run Command output keeps only
# 4 KB) and prints the manifest's SHA-256 and entry count. Hard links share a group (first path).
MANIFEST = r"""
import hashlib, json, os, stat, sys
root, out = sys.argv[1], sys.argv[2]
top = os.lstat(root)
entries, first_path = [{"path": ".", "mode": stat.filemode(top.st_mode), "uid": top.st_uid, "gid": top.st_gid}], {}
for folder, dirs, files in os.walk(root):
    if folder == root:  # the service's directory on a share (its lock) is no file of the home
        dirs[:] = [d for d in dirs if d != ".azlin-storage"]
    for name in sorted(dirs + files):
        path = os.path.join(folder, name)
        rel = os.path.relpath(path, root)
        info = os.lstat(path)
        entry = {"path": rel, "mode": stat.filemode(info.st_mode), "uid": info.st_uid, "gid": info.st_gid}
        if stat.S_ISLNK(info.st_mode):
            entry["target"] = os.readlink(path)
        elif stat.S_ISREG(info.st_mode):
            with open(path, "rb") as f:
                entry["sha256"] = hashlib.sha256(f.read()).hexdigest()
            entry["size"] = info.st_size
            if info.st_nlink > 1:
                entry["linkGroup"] = first_path.setdefault((info.st_dev, info.st_ino), rel)
        entries.append(entry)
entries.sort(key=lambda e: e["path"])
text = json.dumps(entries, indent=0)
with open(out, "w") as f:
    f.write(text)
print(hashlib.sha256(text.encode()).hexdigest(), len(entries))
"""


def python(program: str, *arguments: str) -> str:
    """A shell script running `program` with the VM's python3; arguments are variable names."""
    names = " ".join(f'"${name}"' for name in arguments)
    return f"python3 - {names} <<'PYTHON'\n{program}\nPYTHON\n"


def digest(view: dict[str, Any]) -> tuple[str, int]:
    """(manifest SHA-256, entries) from a MANIFEST run."""
    assert view["exitCode"] == 0, view["error"]
    sha, count = view["output"].split()
    return sha, int(count)
