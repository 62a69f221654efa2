"""RSA keys from a per-process pool instead of a fresh prime search, for set-up code that makes the same keys in
every test (``init``'s ManagementCA and admin credentials): ``with pooled_rsa_keys(): ...``.

Inside the block the n-th ``rsa.generate_private_key(e, size)`` call returns the n-th pooled key of that size
(generated on first use), so the keys of one block are distinct as before, and the next block gets the same
ones again. Only key generation is replaced: everything done with the key (certificates, PKCS#12 keystores,
signatures) runs as usual.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterator

from cryptography.hazmat.primitives.asymmetric import rsa

_generate = rsa.generate_private_key
_pool: dict[tuple[int, int], list[rsa.RSAPrivateKey]] = defaultdict(list)


@contextlib.contextmanager
def pooled_rsa_keys() -> Iterator[None]:
    used: dict[tuple[int, int], int] = defaultdict(int)

    def generate(public_exponent: int, key_size: int, backend=None) -> rsa.RSAPrivateKey:
        spec = (public_exponent, key_size)
        keys = _pool[spec]
        if used[spec] == len(keys):
            keys.append(_generate(public_exponent=public_exponent, key_size=key_size))
        used[spec] += 1
        return keys[used[spec] - 1]

    rsa.generate_private_key = generate
    try:
        yield
    finally:
        rsa.generate_private_key = _generate
