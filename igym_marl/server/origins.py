"""The web origins allowed to open WebSockets, checked before the server stack is imported."""
from __future__ import annotations

import re


def check_origins(origins) -> tuple[str, ...]:
    """--allow-origin values: scheme://host[:port], nothing else."""
    out = []
    for o in origins or ():
        if not isinstance(o, str) or not re.fullmatch(r"https?://[A-Za-z0-9.\-\[\]:]+", o.rstrip("/")):
            raise ValueError(f"allow_origin={o!r} is not an origin; allowed: scheme://host[:port], "
                             f"e.g. http://localhost:3000")
        out.append(o.rstrip("/"))
    return tuple(out)
