"""PKIOperation (RFC 8894 section 3.3): parse and verify, pick the responder, decrypt, run the message type,
answer a CertRep. A message that was understood well enough gets a CertRep (FAILURE with its failInfo when
refused); bytes that are no SCEP message, or a request no CA of this alias can answer, get a plain HTTP error.
"""

from __future__ import annotations

import logging

from cryptography import x509
from django.db import transaction

from cryptotokens.errors import CryptoTokenError
from pki import audit, metrics

from . import approvals, enrollment, transactions
from . import messages as m
from .models import ScepAlias
from .operations import (
    Responder,
    ScepHttpError,
    ScepResponse,
    WrongRecipient,
    get_cert,
    get_crl,
    is_rsa,
    responder_for,
)

logger = logging.getLogger("protocols.scep")
CONTENT_TYPE = "application/x-pki-message"
RSA_NEEDED = "SCEP decrypts requests with the CA's key, which must be RSA; give the alias an RSA RA key pair."


def _reply(alias: ScepAlias, responder: Responder, message: m.PkiMessage, status: m.PkiStatus, *,
           envelope: m.DecryptedEnvelope | None = None, certs: list[x509.Certificate] | None = None,
           crls: list[x509.CertificateRevocationList] | None = None,
           fail_info: m.FailInfo | None = None) -> ScepResponse:
    metrics.count_scep_response(alias.name, status.name, fail_info.name if fail_info is not None else "")
    body = m.build_cert_rep(
        signer_cert=responder.cert, signer_key=responder.key, status=status, request=message, envelope=envelope,
        fail_info=fail_info, issued_certs=certs or (), crls=crls or (),
        allow_legacy_digest=alias.allow_legacy_digest, extra_certs_in_signed_data=responder.extra_certs,
    )
    return ScepResponse(200, CONTENT_TYPE, body)


def _failure(alias: ScepAlias, responder: Responder | None, message: m.PkiMessage,
             failure: m.ScepFailure) -> ScepResponse:
    logger.info("SCEP %s: %s (transaction %s): FAILURE %s: %s", alias.name, _type_name(message),
                message.transaction_id, failure.fail_info.name, failure.text)
    if responder is None:
        raise ScepHttpError(400, f"Refused: {failure.text}")
    return _reply(alias, responder, message, m.PkiStatus.FAILURE, fail_info=failure.fail_info)


def _type_name(message: m.PkiMessage) -> str:
    t = message.message_type
    return t.name if isinstance(t, m.MessageType) else str(t)


def pki_operation(alias: ScepAlias, body: bytes) -> ScepResponse:
    """Answer one PKIOperation body (DER pkiMessage)."""
    responder: Responder | None = None
    try:
        message = m.parse_pki_message(body, max_size=alias.max_body_size)
    except m.ScepMessageError as exc:
        raise ScepHttpError(400, f"Not a SCEP message: {exc}") from None
    except m.ScepFailure as failure:
        if failure.message is None or failure.message.signer_certificate is None:
            raise ScepHttpError(400, f"Refused: {failure.text}") from None
        try:
            responder, _ = responder_for(alias, failure.message)
        except WrongRecipient as wrong:
            responder = wrong.responder
        return _failure(alias, responder, failure.message, failure)
    if not message.is_request:
        raise ScepHttpError(400, "A CertRep is not a request.")
    try:
        responder, named = responder_for(alias, message)
    except WrongRecipient as wrong:
        if message.message_type in (m.MessageType.PKCS_REQ, m.MessageType.RENEWAL_REQ):
            audit.record_failure("SCEP_ENROLLMENT", f"scep:{alias.name}", wrong.text, object_type="endentity",
                                 details={"interface": "scep", "transaction": message.transaction_id})
        return _failure(alias, wrong.responder, message, wrong)
    if responder is None:
        raise ScepHttpError(404, "No CA of this alias can answer the request.")
    try:
        return _handle(alias, responder, named, message)
    except m.ScepFailure as failure:
        return _failure(alias, responder, message, failure)


def _decrypt(alias: ScepAlias, responder: Responder, named: bool, message: m.PkiMessage) -> m.DecryptedEnvelope:
    if not is_rsa(responder.key):
        raise m.BadAlg(RSA_NEEDED)
    try:
        return m.decrypt_envelope(message, responder.key, responder.cert, allow_des=alias.allow_des)
    except m.BadMessageCheck:
        if not named:  # encrypted to a certificate that is no CA (or RA) of this alias
            raise m.BadCertId("The request is not encrypted to a CA certificate of this alias.") from None
        raise
    except CryptoTokenError as exc:
        # The key cannot decrypt here (a KMS signing key, an HSM key without CKA_DECRYPT, the HSM offline):
        # the server's state, not the client's fault, and the same for every request until an admin acts.
        logger.error("SCEP alias %s: the responder key cannot decrypt: %s", alias.name, exc)
        raise ScepHttpError(503, f"The CA or RA key of this alias cannot decrypt requests: {exc}") from None


def _handle(alias: ScepAlias, responder: Responder, named: bool, message: m.PkiMessage) -> ScepResponse:
    if message.digest_algorithm == "md5" and not alias.allow_legacy_digest:
        # SHA-1 stays accepted everywhere (as in EJBCA); MD5 only where the alias allows legacy digests.
        raise m.BadAlg("MD5 is a legacy digest this alias does not allow.")
    inner = _decrypt(alias, responder, named, message)
    # Before anything is written: a reply that could not be encrypted to the requester would report FAILURE
    # for a certificate already issued (and a spent enrollment code).
    m.check_reply_recipient(message.signer_certificate, inner)
    kind = message.message_type
    ca_cert = responder.ca.certificate
    if kind in (m.MessageType.PKCS_REQ, m.MessageType.RENEWAL_REQ):
        cert = _pkcs_req(alias, responder, message, inner.content)
        if cert is None:
            return _reply(alias, responder, message, m.PkiStatus.PENDING)
        certs = [cert] + ([ca_cert] if alias.include_ca else [])
        return _reply(alias, responder, message, m.PkiStatus.SUCCESS, envelope=inner, certs=certs)
    if kind == m.MessageType.CERT_POLL:
        m.parse_issuer_and_subject(inner.content)  # well-formed; the transaction and its key identify the request
        state, cert = _cert_poll(alias, message)
        if state == "pending":
            return _reply(alias, responder, message, m.PkiStatus.PENDING)
        certs = [cert] + ([ca_cert] if alias.include_ca else [])
        return _reply(alias, responder, message, m.PkiStatus.SUCCESS, envelope=inner, certs=certs)
    if kind == m.MessageType.GET_CERT:
        row = get_cert(inner.content)
        return _reply(alias, responder, message, m.PkiStatus.SUCCESS, envelope=inner, certs=[row.certificate])
    if kind == m.MessageType.GET_CRL:
        crl = get_crl(inner.content)
        return _reply(alias, responder, message, m.PkiStatus.SUCCESS, envelope=inner, crls=[crl])
    raise m.BadRequest(f"Message type {_type_name(message)} is not supported.")


def _pkcs_req(alias: ScepAlias, responder: Responder, message: m.PkiMessage, content: bytes) -> x509.Certificate | None:
    """PKCSReq/RenewalReq within its transaction's state: a replayed nonce is refused, a re-sent request gets the
    certificate of its first copy, a new one is enrolled and its certificate recorded, in one database
    transaction. None: PENDING (waiting for approval)."""
    identity = transactions.request_identity(message, content)
    if identity is None:  # not a readable request: the enrollment refuses it with its own failInfo
        return enrollment.pkcs_req(alias, responder, message, content).certificate
    # The checks that write nothing the enrollment needs (the request; in RA mode the challenge too), before the
    # transaction: on SQLite it holds the database's only write lock, which every other enrollment waits for.
    enroll = enrollment.prepare(alias, responder, message, content)
    refused: m.ScepFailure | None = None
    doomed: m.ScepFailure | None = None
    # A refusal's audit events are written even when its transaction rolls back (below).
    with audit.failures_outlive_rollback():
        try:
            with transaction.atomic():
                claim = transactions.claim(alias, message.transaction_id, message.sender_nonce, *identity)
                if claim.answer_id is not None:
                    logger.info("SCEP %s: transaction %s sent again: the certificate issued to it", alias.name,
                                message.transaction_id)
                    return transactions.answer(claim)
                try:
                    cert = enroll().certificate
                except m.ScepFailure as failure:
                    if transaction.get_rollback():
                        # Refused after the enrollment wrote without a savepoint of its own (RA mode): the whole
                        # transaction rolls back, the claim and the nonce with it.
                        doomed = failure
                        raise
                    # Committed, not rolled back: a wrong enrollment code's count stays (and the nonce is spent).
                    refused = failure
                    if claim.new:
                        transactions.release(claim.pk)
                else:
                    if cert is not None:  # a new request in an existing transaction: its answer from now on
                        transactions.record(claim.pk, cert, None if claim.new else identity[1])
        except m.ScepFailure as failure:
            if failure is doomed:  # the message was processed: a replay of it is still one
                transactions.spend_nonce(message.sender_nonce)
            raise
    if refused is not None:
        raise refused
    return cert


def _cert_poll(alias: ScepAlias, message: m.PkiMessage) -> tuple[str, x509.Certificate | None]:
    """CertPoll (GetCertInitial): ("pending", None) or ("issued", certificate), for the requester only: the
    transaction must exist and the poll be signed by its request key. Anyone else gets badCertId, whether the
    transaction exists or not."""
    poller = transactions.signer_key_hash(message)
    refused: m.ScepFailure | None = None
    with transaction.atomic():
        row = transactions.locked(alias, message.transaction_id)
        owner = row.request_key if row is not None else approvals.request_key(alias, message.transaction_id)
        if poller is None or owner != poller:
            raise m.BadCertId("No request of this transactionID and signer key.")
        if row is not None and row.certificate_id is not None:
            return "issued", row.certificate.certificate
        try:
            state, cert = approvals.poll(alias, message.transaction_id)
        except m.ScepFailure as failure:
            refused = failure  # committed: the failed issuance's audit event stays
        else:
            if state == "rejected":
                refused = m.BadRequest("The request was rejected by an approver.")
            elif state == "none":
                refused = m.BadCertId("No request of this transactionID and signer key.")
            elif state == "issued" and row is not None:
                transactions.record(row.pk, cert)
    if refused is not None:
        raise refused
    return state, cert
