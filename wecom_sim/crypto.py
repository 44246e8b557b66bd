"""WXBizMsgCrypt as Tencent's server does it: AES-256-CBC, IV = key[:16], PKCS#7 to 32, sha1 signatures.

The simulator carries its own copy on purpose (it stands for Tencent); tests hold it against WeCom's vectors."""

from __future__ import annotations

import base64
import hashlib
import os
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 32


def aes_key(encoding_aes_key: str) -> bytes:
    key = base64.b64decode(encoding_aes_key + "=")
    if len(key) != 32:
        raise ValueError("EncodingAESKey must decode to 32 bytes")
    return key


def signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    return hashlib.sha1("".join(sorted([token, str(timestamp), str(nonce), encrypt])).encode()).hexdigest()


def encrypt(encoding_aes_key: str, msg: str | bytes, receiveid: str, random16: bytes | None = None) -> str:
    key = aes_key(encoding_aes_key)
    body = msg.encode() if isinstance(msg, str) else msg
    plain = (random16 or os.urandom(16)) + struct.pack(">I", len(body)) + body + receiveid.encode()
    pad = BLOCK - len(plain) % BLOCK
    plain += bytes([pad]) * pad
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()


def decrypt(encoding_aes_key: str, encrypted: str) -> tuple[bytes, bytes]:
    """-> (msg, receiveid)."""
    key = aes_key(encoding_aes_key)
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    plain = decryptor.update(base64.b64decode(encrypted)) + decryptor.finalize()
    pad = plain[-1]
    if not 1 <= pad <= BLOCK:
        raise ValueError("bad padding")
    plain = plain[:-pad]
    (length,) = struct.unpack(">I", plain[16:20])
    return plain[20 : 20 + length], plain[20 + length :]
