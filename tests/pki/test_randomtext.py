"""pki.randomtext: uniform characters of the alphabet, one read of the OS source for a usual string."""

from __future__ import annotations

import secrets
import string
from collections import Counter

import pytest

from pki.randomtext import random_text

ALPHANUMERIC = string.ascii_letters + string.digits


@pytest.mark.parametrize(("alphabet", "length"), [
    (ALPHANUMERIC, 10), (ALPHANUMERIC, 12), ("abcdefghjkmnpqrstuvwxyz23456789", 16), ("ab", 64), ("x", 3),
    (ALPHANUMERIC, 0),
])
def test_length_and_alphabet(alphabet, length):
    text = random_text(alphabet, length)
    assert len(text) == length and set(text) <= set(alphabet)


def test_one_read_of_the_os_source(monkeypatch):
    reads = []
    original = secrets.token_bytes
    monkeypatch.setattr(secrets, "token_bytes", lambda n: reads.append(n) or original(n))
    for _ in range(200):
        random_text(ALPHANUMERIC, 16)
    assert len(reads) == 200


def test_every_character_is_about_equally_likely():
    # 62 characters, 124,000 draws: ~2,000 each. A modulo without the skipped bytes would favour the first 8
    # characters by a quarter (5 byte values map to them, 4 to the others): ~2,420 against ~1,940.
    counts = Counter(random_text(ALPHANUMERIC, 124_000))
    assert set(counts) == set(ALPHANUMERIC)
    assert max(counts.values()) < 2_300 and min(counts.values()) > 1_700


@pytest.mark.parametrize("alphabet", ["", "x" * 257])
def test_an_alphabet_it_cannot_draw_from_is_refused(alphabet):
    with pytest.raises(ValueError, match="1 to 256"):
        random_text(alphabet, 4)
