"""Checks of the files and folders a command will write, made before any work starts.

Writability is tested by doing it: creating the file (or a probe file in the folder) and
removing what the check itself created, so a path that passes here can be written later
(``os.access`` says yes to /proc and to read-only mounts it cannot see through).
"""

from __future__ import annotations

import os
from pathlib import Path


def check_output_file(path: str, flag: str) -> str | None:
    """None if `path` can be written as a file, else the reason, naming `flag`. Creates its folder."""
    p = Path(path)
    if p.is_dir():
        return f"{flag} {path}: is a folder; give a file path"
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return f"{flag} {path}: cannot create its folder ({e.strerror})"
    existed = p.exists()
    try:
        with open(p, "a"):
            pass
    except OSError as e:
        return f"{flag} {path}: cannot be written ({e.strerror})"
    if not existed:
        try:
            p.unlink()
        except OSError:
            pass
    return None


def check_output_dir(path: str, flag: str) -> str | None:
    """None if files can be written in the folder `path`, else the reason, naming `flag`. Folders the
    check had to create are removed again."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        return f"{flag} {path}: is a file; give a folder"
    created = [a for a in (p, *p.parents) if not a.exists()]
    try:
        try:
            p.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            return f"{flag} {path}: cannot create the folder ({e.strerror})"
        probe = p / f".write-check-{os.getpid()}"
        try:
            with open(probe, "w"):
                pass
            probe.unlink()
        except OSError as e:
            return f"{flag} {path}: files cannot be written in it ({e.strerror})"
        return None
    finally:
        for a in created:  # deepest first
            try:
                a.rmdir()
            except OSError:
                pass
