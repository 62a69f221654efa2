"""OCSP responder (RFC 6960) for the local CAs."""
