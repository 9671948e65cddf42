"""A reference client for the portal API: sign in with a virtual card file, submit a signed payload, sign out.

It uses only `cryptography` and `requests`, as a third-party app or a real card host would, and
does exactly what a real card does: sign SHA-256(origin) || SHA-256(nonce) with the user-
authentication key, and sign a JWS (RS256, x5c = signature certificate) with the signature key.

    python reference_client.py https://portal.example card.json 1234 ABC123
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC


def unlock(slot: dict, secret: str):
    """Derive the slot's AES key from the PIN or password and unwrap its PKCS#8 private key."""
    kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=base64.b64decode(slot["kdf"]["salt"]),
                     iterations=slot["kdf"]["iter"])
    key = kdf.derive(secret.encode())
    pkcs8 = AESGCM(key).decrypt(base64.b64decode(slot["wrap"]["iv"]), base64.b64decode(slot["wrappedKey"]), None)
    return serialization.load_der_private_key(pkcs8, password=None)


def b64url(data: bytes) -> str:
    """Unpadded base64url, as JWS uses."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def main(origin: str, card_path: str, pin: str, password: str) -> None:
    """Sign in, link the account with a signature, show who the portal says we are, and sign out."""
    card = json.load(open(card_path, encoding="utf-8"))
    api = origin + "/api/v1"

    # 1. Sign in: a one-time nonce, signed the Web eID v2 way with the user-authentication key.
    nonce = requests.post(f"{api}/auth/challenge", timeout=10).json()["nonce"]
    auth_key = unlock(card["auth"], pin)
    signed = hashlib.sha256(origin.encode()).digest() + hashlib.sha256(nonce.encode()).digest()
    token = {
        "unverifiedCertificate": card["auth"]["cert"],
        "algorithm": "RS256",
        "signature": base64.b64encode(auth_key.sign(signed, padding.PKCS1v15(), hashes.SHA256())).decode(),
        "format": "web-eid:1.0",
        "appVersion": "reference-client/1.0",
    }
    response = requests.post(f"{api}/auth/token", json={"authToken": token, "nonce": nonce}, timeout=10)
    response.raise_for_status()
    bearer = {"Authorization": "Bearer " + response.json()["access_token"]}

    # 2. A signed payload: a JWS over what the server asks us to sign, with the signature key.
    challenge = requests.post(f"{api}/identity/challenge", headers=bearer, timeout=10).json()
    sign_key = unlock(card["sign"], password.upper())
    cert = x509.load_der_x509_certificate(base64.b64decode(card["sign"]["cert"]))
    header = b64url(json.dumps({"alg": "RS256", "x5c": [card["sign"]["cert"]]}).encode())
    payload = b64url(json.dumps({"aud": challenge["aud"], "nonce": challenge["nonce"],
                                 "application": challenge["application"]}, ensure_ascii=False).encode())
    signature = sign_key.sign(f"{header}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
    jws = f"{header}.{payload}.{b64url(signature)}"
    linked = requests.post(f"{api}/identity", headers=bearer, timeout=10,
                           json={"signedApplication": jws, "nonce": challenge["nonce"]})
    linked.raise_for_status()

    me = requests.get(f"{api}/me", headers=bearer, timeout=10).json()

    # 3. Sign out when done: every bearer token of the account is refused from now on (401).
    requests.post(f"{api}/auth/sign-out", headers=bearer, timeout=10).raise_for_status()
    after = requests.get(f"{api}/me", headers=bearer, timeout=10).status_code
    print(json.dumps({"signed_in_as": me, "signature_certificate_serial": cert.serial_number,
                      "after_sign_out": after}, ensure_ascii=False))


if __name__ == "__main__":
    main(*sys.argv[1:5])
