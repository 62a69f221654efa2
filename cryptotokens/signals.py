"""Signals the crypto token layer sends; the CA core listens and writes them to the audit log
(this app sits below the core and does not import it)."""

from django.dispatch import Signal

# kwargs: event_type (str), actor (str), token (CryptoToken | None), outcome ("SUCCESS"|"FAILURE"), details (dict)
crypto_token_event = Signal()
