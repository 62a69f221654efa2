"""Which address the throttles count: X-Forwarded-For only from a trusted proxy (the TLS proxy of a deployment,
or the nginx that `make run` puts in front, with or without PKI_BEHIND_TLS_PROXY), never from anyone else."""

import pytest
from django.test import RequestFactory

from pki.auth.throttle import client_address


@pytest.mark.parametrize(("behind_tls", "trusted", "peer", "forwarded", "expected"), [
    (False, [], "127.0.0.1", "203.0.113.9", "127.0.0.1"),             # nobody trusted: the peer
    (False, ["127.0.0.1"], "127.0.0.1", "203.0.113.9", "203.0.113.9"),  # make run's nginx
    (False, ["127.0.0.1"], "198.51.100.7", "203.0.113.9", "198.51.100.7"),  # a client sending the header itself
    (True, ["10.0.0.0/8"], "10.1.2.3", "1.2.3.4, 203.0.113.9", "203.0.113.9"),  # the proxy's own, last entry
    (True, ["10.0.0.0/8"], "10.1.2.3", "not-an-address", "10.1.2.3"),
])
def test_forwarded_address_only_from_a_trusted_proxy(settings, behind_tls, trusted, peer, forwarded, expected):
    settings.PKI_BEHIND_TLS_PROXY = behind_tls
    settings.PKI_TRUSTED_PROXIES = trusted
    request = RequestFactory().get("/", REMOTE_ADDR=peer, HTTP_X_FORWARDED_FOR=forwarded)
    assert client_address(request) == expected


def test_forwarded_client_certificates_still_need_the_tls_proxy(settings):
    from pki.auth.clientcert import _trusted_peer

    settings.PKI_BEHIND_TLS_PROXY = False
    settings.PKI_TRUSTED_PROXIES = ["127.0.0.1"]
    assert not _trusted_peer(RequestFactory().get("/", REMOTE_ADDR="127.0.0.1"))
