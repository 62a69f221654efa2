"""Random text (generated usernames, passwords, name affixes) from one read of the operating system's source.

``"".join(secrets.choice(alphabet) for _ in range(n))`` reads the OS source once per character, and CPython
releases the GIL around each read (``getrandom``). In a process whose threads are busy (gunicorn's, the peer
connector's), every release is a wait to get the GIL back: an RA-mode SCEP enrollment made 30-odd of them for its
username and password, and a profile of the connector put 9% of its busy samples there. Here the bytes for a whole
string are read at once and mapped onto the alphabet without bias (bytes past the largest multiple of its length
are skipped). Pure: no Django.
"""

from __future__ import annotations

import secrets


def random_text(alphabet: str, length: int) -> str:
    """``length`` characters drawn uniformly and independently from ``alphabet`` (at most 256 characters)."""
    size = len(alphabet)
    if not 0 < size <= 256:
        raise ValueError("The alphabet must have 1 to 256 characters.")
    usable = 256 - 256 % size  # bytes below this map onto the alphabet evenly
    out: list[str] = []
    while len(out) < length:
        # Enough for the usual case in one read: at most 127 of 256 byte values are skipped (a 129-character
        # alphabet); for the alphanumeric ones used here, 4 to 28.
        for byte in secrets.token_bytes(2 * (length - len(out)) + 8):
            if byte < usable:
                out.append(alphabet[byte % size])
                if len(out) == length:
                    break
    return "".join(out)
