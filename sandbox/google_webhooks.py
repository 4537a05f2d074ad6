"""Google's webhooks, from Google's side: the signing keys, the keyset it publishes, the
handshake with a new subscriber, and signed notifications.

Each notification is signed as the Google Health API signs them: Tink's format, one prefix
byte (1), the key id as 4 big-endian bytes, then the DER ECDSA P-256 signature of the raw
body with SHA-256. The public half is served as a Tink JSON keyset, its EcdsaPublicKey
written as protobuf here, just as the app reads it (webhook_keys.py, which shares no code
with this).
"""

import base64
import json
import secrets

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

# Where Google publishes the keyset, below www.gstatic.com; here, below the stand-in.
KEYSET_PATH = "/googlehealthapi/webhooks/webhooks_public_keyset.json"
PUBLIC_KEY_TYPE = "type.googleapis.com/google.crypto.tink.EcdsaPublicKey"
# EcdsaParams: hash SHA256 (3), curve NIST_P256 (2), encoding DER (2).
ECDSA_PARAMS = bytes([0x08, 3, 0x10, 2, 0x18, 2])


def new_private_key():
    """A new P-256 key, as PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def length_delimited(field, data):
    """A protobuf field of wire type 2 (all here are shorter than 128 bytes)."""
    return bytes([field << 3 | 2, len(data)]) + data


def twos_complement(number):
    """A positive number, big-endian, in as few bytes as two's complement needs: a
    leading 0 byte whenever the top bit would be set."""
    return number.to_bytes(number.bit_length() // 8 + 1, "big")


def public_key_value(pem):
    """The base64 of the serialized EcdsaPublicKey of a private key: version 0 (left out,
    as proto3 does), its params, x and y."""
    numbers = serialization.load_pem_private_key(pem.encode(), None).public_key().public_numbers()
    message = (
        length_delimited(2, ECDSA_PARAMS)
        + length_delimited(3, twos_complement(numbers.x))
        + length_delimited(4, twos_complement(numbers.y))
    )
    return base64.b64encode(message).decode("ascii")


def keyset(keys):
    """The Tink JSON keyset of [(key id, PEM, status)], the newest enabled key primary."""
    enabled = [key_id for key_id, _, status in keys if status == "ENABLED"]
    return {
        "primaryKeyId": enabled[-1] if enabled else 0,
        "key": [
            {
                "keyId": key_id,
                "status": status,
                "outputPrefixType": "TINK",
                "keyData": {
                    "typeUrl": PUBLIC_KEY_TYPE,
                    "keyMaterialType": "ASYMMETRIC_PUBLIC",
                    "value": public_key_value(pem),
                },
            }
            for key_id, pem, status in keys
        ],
    }


def sign(key_id, pem, body):
    """The value of X-HEALTHAPI-SIGNATURE for `body`."""
    key = serialization.load_pem_private_key(pem.encode(), None)
    der = key.sign(body, ec.ECDSA(hashes.SHA256()))
    return base64.b64encode(bytes([1]) + key_id.to_bytes(4, "big") + der).decode("ascii")


def civil(moment):
    """A CivilDateTime to the nanosecond, so that two walks never make the same body."""
    return {
        "date": {"year": moment.year, "month": moment.month, "day": moment.day},
        "time": {
            "hours": moment.hour,
            "minutes": moment.minute,
            "seconds": moment.second,
            "nanos": moment.microsecond * 1000,
        },
    }


def notification(health_user_id, data_type, start, end):
    """A change of `data_type` ("steps", "sleep"), in the shape seen from Google (a single
    `data` object)."""
    body = {
        "data": {
            "healthUserId": health_user_id,
            "dataType": data_type,
            "operation": "UPSERT",
            "civilTimeInterval": {"start": civil(start), "end": civil(end)},
            "clientProvidedSubscriptionName": data_type,
        }
    }
    return json.dumps(body).encode()


def new_secret():
    """The whole Authorization value of a subscriber's deliveries."""
    return f"Bearer {secrets.token_urlsafe(24)}"
