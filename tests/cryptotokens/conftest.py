"""SoftHSM2 fixtures for the PKCS#11 crypto token tests: a private token directory per test process and a
fresh token per test.

python-pkcs11 loads a module once per process and SoftHSM2 reads SOFTHSM2_CONF when it is loaded, so the
configuration is set once per test process (``tmp_path_factory`` gives each xdist worker its own) before
the first load. SoftHSM2 reads its token directory at C_Initialize: after ``softhsm2-util`` adds a token,
the module is re-initialized so this process sees it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
PIN = "1234"
SO_PIN = "87654321"


@dataclass
class SoftHSM:
    """The SoftHSM2 of this test process."""

    module: str
    root: Path

    def init_token(self, label: str, pin: str = PIN) -> None:
        """Initialize a token in the first free slot and make this process see it."""
        from cryptotokens.backends import pkcs11 as p11_backend

        out = subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", pin,
                              "--so-pin", SO_PIN], capture_output=True, text=True, env=os.environ)
        assert out.returncode == 0, f"softhsm2-util --init-token failed: {out.stdout}{out.stderr}"
        p11_backend.reinitialize_library(self.module)

    def import_key(self, label: str, key: Any, alias: str, key_id: bytes, pin: str = PIN) -> None:
        """Put ``key`` on the token ``label`` with ``softhsm2-util --import`` (a PKCS#8 file, as an operator moves a
        key made elsewhere onto the HSM): outside this project's code, with its own label and CKA_ID."""
        from cryptography.hazmat.primitives import serialization

        path = self.root / f"import-{secrets.token_hex(4)}.pem"
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        try:
            out = subprocess.run(["softhsm2-util", "--import", str(path), "--token", label, "--label", alias,
                                  "--id", key_id.hex(), "--pin", pin], capture_output=True, text=True, env=os.environ)
        finally:
            path.unlink()
        assert out.returncode == 0, f"softhsm2-util --import failed: {out.stdout}{out.stderr}"

    def slot_of(self, label: str) -> tuple[int, int]:
        """(slot id, index among slots holding a token) of the token ``label``."""
        import pkcs11

        for index, slot in enumerate(pkcs11.lib(self.module).get_slots(token_present=True)):
            if slot.get_token().label == label:
                return slot.slot_id, index
        raise AssertionError(f"no SoftHSM2 token labelled {label}")

    @contextlib.contextmanager
    def session(self, label: str, pin: str = PIN) -> Iterator[Any]:
        """A logged-in session of the test's own, after the crypto token layer logged out (a process has
        one login per token)."""
        import pkcs11

        from cryptotokens.backends import pkcs11 as p11_backend

        p11_backend.clear_sessions()
        session = pkcs11.lib(self.module).get_token(token_label=label).open(user_pin=pin, rw=True)
        try:
            yield session
        finally:
            session.close()

    def finalize_under_the_process(self) -> None:
        """C_Finalize through the module's own symbol, behind python-pkcs11's back: what a lost network
        HSM connection looks like to the process (every session and login is gone)."""
        rv = ctypes.CDLL(self.module).C_Finalize(None)
        assert rv == 0, f"C_Finalize returned {rv:#x}"


_loaded_hsm: list[SoftHSM] = []  # the one SoftHSM2 of this process (other test packages import the fixture too)


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory) -> Iterator[SoftHSM]:
    """SoftHSM2 with a token directory of this test process; fails (never skips) when it is missing."""
    if _loaded_hsm:  # set up already, through this fixture imported into another test module
        yield _loaded_hsm[0]
        return
    if not os.path.isfile(SOFTHSM_MODULE) or shutil.which("softhsm2-util") is None:
        raise AssertionError(f"SoftHSM2 is not installed ({SOFTHSM_MODULE}, softhsm2-util): install the Debian "
                             "packages softhsm2 and libsofthsm2 (scripts/install-test-deps.sh does).")
    import pkcs11

    root = tmp_path_factory.mktemp("softhsm")
    conf = root / "softhsm2.conf"
    if SOFTHSM_MODULE in getattr(pkcs11, "_loaded", {}):
        raise AssertionError("SoftHSM2 was loaded before its test configuration was set: a test loaded it "
                             "without the softhsm fixture.")
    (root / "tokens").mkdir()
    conf.write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    try:
        pkcs11.lib(SOFTHSM_MODULE)  # load it now, with this configuration, and fail loudly if it cannot load
    except Exception as exc:
        raise AssertionError(f"SoftHSM2 cannot be loaded from {SOFTHSM_MODULE}: {exc}") from exc
    _loaded_hsm.append(SoftHSM(SOFTHSM_MODULE, root))
    yield _loaded_hsm[0]
    if previous is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = previous


@pytest.fixture
def hsm_label(softhsm) -> Iterator[str]:
    """A freshly initialized SoftHSM2 token of this test; yields its label and logs out afterwards."""
    from cryptotokens import services
    from cryptotokens.backends import pkcs11 as p11_backend

    label = "t" + secrets.token_hex(6)
    softhsm.init_token(label)
    yield label
    p11_backend.clear_sessions()
    services.clear_key_cache()


@pytest.fixture
def hsm_settings(settings):
    """The PKCS#11 settings of the tests: SoftHSM2 under the name the token properties store."""
    settings.PKCS11_LIBRARIES = {"SoftHSM2": SOFTHSM_MODULE}
    settings.PKCS11_ATTRIBUTE_FILES = {}
    return settings


@pytest.fixture
def hsm_token_factory(db, actor, hsm_label, hsm_settings) -> Callable:
    """``hsm_token_factory(name=..., token_type=..., reference_type=..., reference=..., pin=...)`` creates a
    PKCS#11 crypto token through the service, on this test's SoftHSM2 token by default."""
    from cryptotokens import services

    counter = {"n": 0}

    def make(name: str | None = None, token_type: str = "PKCS11CryptoToken", reference_type: str = "SLOT_LABEL",
             reference: str | None = None, pin: str = PIN, properties: dict | None = None, **kw):
        counter["n"] += 1
        props = {"library": "SoftHSM2", "reference_type": reference_type,
                 "reference": hsm_label if reference is None else reference, **(properties or {})}
        return services.create_token(actor, name=name or f"hsm{counter['n']}", token_type=token_type,
                                     auth_code=pin, properties=props, **kw)

    return make


@pytest.fixture
def hsm_token(hsm_token_factory):
    return hsm_token_factory("HsmToken", auto_activate=True)
