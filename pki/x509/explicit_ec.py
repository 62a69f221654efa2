"""Explicit EC domain parameters (ICAO CSCA/DS certificates), and re-encoding a public key with them.

Some ePassport profiles want the subject public key with the curve written out (specifiedCurve)
instead of its OID. The parameters below are the standard curves' (SEC 2, RFC 5639) as the DER
SpecifiedECDomain that ``openssl ecparam -param_enc explicit`` prints for each.
"""

from __future__ import annotations

from asn1crypto import keys

SPECIFIED_DOMAINS: dict[str, bytes] = {
    "secp256r1": bytes.fromhex(
        "3081f7020101302c06072a8648ce3d0101022100ffffffff00000001000000000000000000000000ffffffffffffffff"
        "ffffffff305b0420ffffffff00000001000000000000000000000000fffffffffffffffffffffffc04205ac635d8aa3a"
        "93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b031500c49d360886e704936a6678e1139d26b7819f7e"
        "900441046b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c2964fe342e2fe1a7f9b8ee7eb4a"
        "7c0f9e162bce33576b315ececbb6406837bf51f5022100ffffffff00000000ffffffffffffffffbce6faada7179e84f3"
        "b9cac2fc632551020101"
    ),
    "secp384r1": bytes.fromhex(
        "30820157020101303c06072a8648ce3d0101023100ffffffffffffffffffffffffffffffffffffffffffffffffffffff"
        "fffffffffeffffffff0000000000000000ffffffff307b0430ffffffffffffffffffffffffffffffffffffffffffffff"
        "fffffffffffffffffeffffffff0000000000000000fffffffc0430b3312fa7e23ee7e4988e056be3f82d19181d9c6efe"
        "8141120314088f5013875ac656398d8a2ed19d2a85c8edd3ec2aef031500a335926aa319a27a1d00896a6773a4827acd"
        "ac73046104aa87ca22be8b05378eb1c71ef320ad746e1d3b628ba79b9859f741e082542a385502f25dbf55296c3a545e"
        "3872760ab73617de4a96262c6f5d9e98bf9292dc29f8f41dbd289a147ce9da3113b5f0b8c00a60b1ce1d7e819d7a431d"
        "7c90ea0e5f023100ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77a"
        "ecec196accc52973020101"
    ),
    "secp521r1": bytes.fromhex(
        "308201c3020101304d06072a8648ce3d0101024201ffffffffffffffffffffffffffffffffffffffffffffffffffffff"
        "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff30819f044201ffffffff"
        "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
        "fffffffffffffffffffffffffc04420051953eb9618e1c9a1f929a21a0b68540eea2da725b99b315f3b8b489918ef109"
        "e156193951ec7e937b1652c0bd3bb1bf073573df883d2c34f1ef451fd46b503f00031500d09e8800291cb85396cc6717"
        "393284aaa0da64ba0481850400c6858e06b70404e9cd9e3ecb662395b4429c648139053fb521f828af606b4d3dbaa14b"
        "5e77efe75928fe1dc127a2ffa8de3348b3c1856a429bf97e7e31c2e5bd66011839296a789a3bc0045c8a5fb42c7d1bd9"
        "98f54449579b446817afbd17273e662c97ee72995ef42640c550b9013fad0761353c7086a272c24088be94769fd16650"
        "024201fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffa51868783bf2f966b7fcc0148"
        "f709a5d03bb5c9b8899c47aebb6fb71e91386409020101"
    ),
    "brainpoolP256r1": bytes.fromhex(
        "3081e0020101302c06072a8648ce3d0101022100a9fb57dba1eea9bc3e660a909d838d726e3bf623d52620282013481d"
        "1f6e5377304404207d5a0975fc2c3057eef67530417affe7fb8055c126dc5c6ce94a4b44f330b5d9042026dc5c6ce94a"
        "4b44f330b5d9bbd77cbf958416295cf7e1ce6bccdc18ff8c07b60441048bd2aeb9cb7e57cb2c4b482ffc81b7afb9de27"
        "e1e3bd23c23a4453bd9ace3262547ef835c3dac4fd97f8461a14611dc9c27745132ded8e545c1d54c72f046997022100"
        "a9fb57dba1eea9bc3e660a909d838d718c397aa3b561a6f7901e0e82974856a7020101"
    ),
    "brainpoolP384r1": bytes.fromhex(
        "30820140020101303c06072a8648ce3d01010231008cb91e82a3386d280f5d6f7e50e641df152f7109ed5456b412b1da"
        "197fb71123acd3a729901d1a71874700133107ec53306404307bc382c63d8c150c3c72080ace05afa0c2bea28e4fb227"
        "87139165efba91f90f8aa5814a503ad4eb04a8c7dd22ce2826043004a8c7dd22ce28268b39b55416f0447c2fb77de107"
        "dcd2a62e880ea53eeb62d57cb4390295dbc9943ab78696fa504c110461041d1c64f068cf45ffa2a63a81b7c13f6b8847"
        "a3e77ef14fe3db7fcafe0cbd10e8e826e03436d646aaef87b2e247d4af1e8abe1d7520f9c2a45cb1eb8e95cfd55262b7"
        "0b29feec5864e19c054ff99129280e4646217791811142820341263c53150231008cb91e82a3386d280f5d6f7e50e641"
        "df152f7109ed5456b31f166e6cac0425a7cf3ab6af6b7fc3103b883202e9046565020101"
    ),
    "brainpoolP512r1": bytes.fromhex(
        "308201a2020101304c06072a8648ce3d0101024100aadd9db8dbe9c48b3fd4e6ae33c9fc07cb308db3b3c9d20ed6639c"
        "ca703308717d4d9b009bc66842aecda12ae6a380e62881ff2f2d82c68528aa6056583a48f330818404407830a3318b60"
        "3b89e2327145ac234cc594cbdd8d3df91610a83441caea9863bc2ded5d5aa8253aa10a2ef1c98b9ac8b57f1117a72bf2"
        "c7b9e7c1ac4d77fc94ca04403df91610a83441caea9863bc2ded5d5aa8253aa10a2ef1c98b9ac8b57f1117a72bf2c7b9"
        "e7c1ac4d77fc94cadc083e67984050b75ebae5dd2809bd638016f7230481810481aee4bdd82ed9645a21322e9c4c6a93"
        "85ed9f70b5d916c1b43b62eef4d0098eff3b1f78e2d0d48d50d1687b93b97d5f7c6d5047406a5e688b352209bcb9f822"
        "7dde385d566332ecc0eabfa9cf7822fdf209f70024a57b1aa000c55b881f8111b2dcde494a5f485e5bca4bd88a2763ae"
        "d1ca2b2fa8f0540678cd1e0f3ad80892024100aadd9db8dbe9c48b3fd4e6ae33c9fc07cb308db3b3c9d20ed6639cca70"
        "330870553e5c414ca92619418661197fac10471db1d381085ddaddb58796829ca90069020101"
    ),
}

_BY_LOWER_NAME = {name.lower(): der for name, der in SPECIFIED_DOMAINS.items()}


class ExplicitECError(ValueError):
    """The key is not an EC key on a curve with known explicit parameters."""


def explicit_public_key_info(spki_der: bytes) -> bytes:
    """The SubjectPublicKeyInfo ``spki_der`` (named curve) with the curve's explicit parameters instead."""
    info = keys.PublicKeyInfo.load(spki_der)
    algorithm = info["algorithm"]
    if algorithm["algorithm"].native != "ec":
        raise ExplicitECError("explicit parameters apply to EC keys only")
    params = algorithm["parameters"]
    if params.name != "named":
        return spki_der  # already explicit (or implicit): leave it as it is
    name = params.chosen.native
    domain = _BY_LOWER_NAME.get(name.lower())  # asn1crypto spells brainpool in lower case
    if domain is None:
        raise ExplicitECError(f"no explicit parameters known for curve {name}")
    specified = keys.SpecifiedECDomain.load(domain)
    new_info = keys.PublicKeyInfo({
        "algorithm": keys.PublicKeyAlgorithm({
            "algorithm": "ec",
            "parameters": keys.ECDomainParameters(name="specified", value=specified),
        }),
        "public_key": info["public_key"].copy(),
    })
    return new_info.dump(force=True)


def is_explicit(spki_der: bytes) -> bool:
    """True when an EC SubjectPublicKeyInfo carries explicit (specified) curve parameters."""
    info = keys.PublicKeyInfo.load(spki_der)
    return info["algorithm"]["algorithm"].native == "ec" and info["algorithm"]["parameters"].name == "specified"





def resign_with_explicit_key(cert_der: bytes, sign) -> bytes:
    """The certificate ``cert_der`` with its EC subject key re-encoded with explicit parameters, signed
    again over the changed TBSCertificate by ``sign(tbs_bytes) -> signature`` (same algorithm)."""
    from asn1crypto import x509 as asn1_x509

    from . import der

    cert = asn1_x509.Certificate.load(cert_der)
    tbs = cert["tbs_certificate"]
    spki = tbs["subject_public_key_info"].dump()
    tbs["subject_public_key_info"] = keys.PublicKeyInfo.load(explicit_public_key_info(spki))
    tbs_der = tbs.dump()  # only the changed field is re-encoded; the others keep their bytes
    return der.sequence(tbs_der + cert["signature_algorithm"].dump() + der.bit_string(sign(tbs_der)))
