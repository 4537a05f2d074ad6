"""The keys that sign Google Health's webhook notifications, and the check of a signature.

Google publishes its public keys as a Tink keyset: JSON, each key with its id, its status
and an `EcdsaPublicKey` message serialized as protobuf. That message is small (a version,
three numbers that name the algorithm, and the point's x and y), so it is read by hand
below rather than with Google's protobuf and Tink packages, which would be two large
dependencies for twenty lines. The cryptography itself is never done by hand: the
`cryptography` package checks the ECDSA signature.

A signature is Tink's: one prefix byte (1), the signing key's id as 4 big-endian bytes,
then the ECDSA P-256 signature over the raw body with SHA-256, DER-encoded.
"""

import base64
import binascii
import logging

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

log = logging.getLogger("webhooks")

KEYSET_URL = "https://www.gstatic.com/googlehealthapi/webhooks/webhooks_public_keyset.json"
KEYSET = "Google's webhook keyset"  # for the log
PUBLIC_KEY_TYPE = "type.googleapis.com/google.crypto.tink.EcdsaPublicKey"
TINK_PREFIX = 0x01
# Tink's names for the parameters of an EcdsaPublicKey: the only ones that verify here.
SHA256, NIST_P256 = 3, 2
DER, IEEE_P1363 = 2, 1


class SignatureRefused(Exception):
    """The signature does not hold: missing, malformed, by an unknown key, or wrong."""


# --- Reading the keyset ----------------------------------------------------------------


def read_fields(data):
    """{field number: [values]} of a protobuf message: varints as ints, length-delimited
    fields as bytes. Any other wire type is refused, as nothing in this message uses one."""
    fields, at = {}, 0
    while at < len(data):
        tag, at = read_varint(data, at)
        number, wire_type = tag >> 3, tag & 7
        if wire_type == 0:
            value, at = read_varint(data, at)
        elif wire_type == 2:
            length, at = read_varint(data, at)
            if at + length > len(data):
                raise ValueError("a field runs past the end")
            value, at = data[at : at + length], at + length
        else:
            raise ValueError(f"wire type {wire_type}")
        fields.setdefault(number, []).append(value)
    return fields


def read_varint(data, at):
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise ValueError("a varint runs past the end")
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at, shift = at + 1, shift + 7
        if not byte & 0x80:
            return value, at


def public_key(value):
    """(key, signature encoding) from the base64 of a serialized EcdsaPublicKey: field 1
    version (proto3 leaves out a 0), 2 params (1 hash, 2 curve, 3 encoding), 3 x, 4 y. x and
    y are big-endian in minimal two's complement, so 33 bytes when the top bit is set."""
    fields = read_fields(base64.b64decode(value, validate=True))
    params = read_fields(fields[2][-1])
    hash_type, curve, encoding = (params.get(n, [0])[-1] for n in (1, 2, 3))
    if hash_type != SHA256 or curve != NIST_P256 or encoding not in (DER, IEEE_P1363):
        raise ValueError(f"not ECDSA P-256 with SHA-256: {hash_type}, {curve}, {encoding}")
    # A coordinate is never negative, so reading the bytes unsigned takes the minimal
    # two's complement (a leading 0x00) and a plain 32 bytes alike.
    x, y = (int.from_bytes(fields[n][-1], "big") for n in (3, 4))
    return ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key(), encoding


def enabled_keys(keyset):
    """{key id: (key, encoding)} of a keyset's ENABLED ECDSA keys; any other is skipped."""
    keys = {}
    listed = keyset.get("key") if isinstance(keyset, dict) else None
    for entry in listed if isinstance(listed, list) else []:
        try:
            data = entry["keyData"]
            if entry["status"] != "ENABLED" or data["typeUrl"] != PUBLIC_KEY_TYPE:
                continue
            if entry.get("outputPrefixType", "TINK") != "TINK":
                continue  # the signatures carry the key id only in Tink's own prefix
            keys[int(entry["keyId"])] = public_key(data["value"])
        except (
            KeyError,
            TypeError,
            ValueError,
            IndexError,
            AttributeError,
            binascii.Error,
        ) as error:
            log.warning("A key of Google's webhook keyset was skipped: %r", error)
    return keys


def verify(keys, signature, body):
    """Check a Tink signature (base64, standard or URL-safe) over `body` with `keys`; the
    key id it was made with (`keys`, the keyset's published_keys.PublishedKeys). Raises
    SignatureRefused, or published_keys.KeysUnavailable."""
    if not signature or not body:
        raise SignatureRefused("no signature" if not signature else "a signature with no body")
    try:
        text = signature.strip().replace("-", "+").replace("_", "/")
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureRefused("the signature is not base64") from None
    if len(raw) < 6 or raw[0] != TINK_PREFIX:
        raise SignatureRefused("the signature does not start with Tink's prefix")
    key_id = int.from_bytes(raw[1:5], "big")
    found = keys.key(key_id)
    if found is None:
        raise SignatureRefused(f"key id {key_id} is not an enabled key of the keyset")
    key, encoding = found
    der = raw[5:]
    if encoding == IEEE_P1363:  # r and s side by side, 32 bytes each
        if len(der) != 64:
            raise SignatureRefused("the signature has the wrong length")
        der = encode_dss_signature(int.from_bytes(der[:32]), int.from_bytes(der[32:]))
    try:
        key.verify(der, body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        raise SignatureRefused(f"the signature does not match (key id {key_id})") from None
    return key_id
