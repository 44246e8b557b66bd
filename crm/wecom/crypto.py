"""WeCom callback crypto (WXBizMsgCrypt): sha1 signatures and AES-256-CBC with PKCS#7 padding to 32 bytes.

Plaintext = random(16) + len(msg) as 4-byte big-endian + msg + receiveid; IV = AESKey[:16];
AESKey = base64(EncodingAESKey + "="). The receiveid is the corpid (self-built apps) or the suite id.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import struct
import time
import xml.etree.ElementTree as ET

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK_SIZE = 32  # WeCom pads to 32 bytes, not AES's 16


class CallbackCryptoError(Exception):
    """A callback could not be verified or decrypted. `reason` is a short machine code for logs and responses."""

    def __init__(self, reason: str, message: str = "") -> None:
        self.reason = reason
        super().__init__(message or reason)


def signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    """msg_signature = sha1 of the four strings sorted and concatenated, lower-case hex."""
    parts = sorted([str(token), str(timestamp), str(nonce), str(encrypt)])
    return hashlib.sha1("".join(parts).encode()).hexdigest()


def pkcs7_pad(data: bytes, block_size: int = BLOCK_SIZE) -> bytes:
    pad = block_size - len(data) % block_size
    return data + bytes([pad]) * pad


def pkcs7_unpad(data: bytes, block_size: int = BLOCK_SIZE) -> bytes:
    if not data or len(data) % 16:
        raise CallbackCryptoError("bad_padding", "ciphertext length is not a multiple of the AES block")
    pad = data[-1]
    if pad < 1 or pad > block_size or data[-pad:] != bytes([pad]) * pad:
        raise CallbackCryptoError("bad_padding", "invalid PKCS#7 padding")
    return data[:-pad]


class WXBizMsgCrypt:
    """Sign, encrypt and decrypt WeCom callback messages for one (token, EncodingAESKey, receiveid)."""

    def __init__(self, token: str, encoding_aes_key: str, receive_id: str) -> None:
        if len(encoding_aes_key) != 43:
            raise ValueError("EncodingAESKey must be 43 characters")
        try:
            self.key = base64.b64decode(encoding_aes_key + "=", validate=True)
        except binascii.Error:
            raise ValueError("EncodingAESKey is not base64") from None
        if len(self.key) != 32:
            raise ValueError("EncodingAESKey must decode to 32 bytes")
        self.token = token
        self.receive_id = receive_id
        self.iv = self.key[:16]

    # --- primitives ------------------------------------------------------------------------------

    def encrypt(self, msg: str | bytes, receive_id: str | None = None, random_prefix: bytes | None = None) -> str:
        """Base64 ciphertext of `msg` for `receive_id` (ours by default)."""
        body = msg.encode() if isinstance(msg, str) else msg
        rid = (self.receive_id if receive_id is None else receive_id).encode()
        prefix = random_prefix if random_prefix is not None else os.urandom(16)
        plain = pkcs7_pad(prefix + struct.pack(">I", len(body)) + body + rid)
        encryptor = Cipher(algorithms.AES(self.key), modes.CBC(self.iv)).encryptor()
        return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()

    def decrypt(self, encrypted: str) -> tuple[bytes, str]:
        """(msg, receiveid) from the base64 ciphertext; raises CallbackCryptoError when it is not ours to read."""
        try:
            cipher_bytes = base64.b64decode(encrypted, validate=True)
        except (binascii.Error, ValueError):
            raise CallbackCryptoError("decrypt_failed", "Encrypt is not base64") from None
        if not cipher_bytes or len(cipher_bytes) % 16:
            raise CallbackCryptoError("decrypt_failed", "ciphertext length is not a multiple of the AES block")
        decryptor = Cipher(algorithms.AES(self.key), modes.CBC(self.iv)).decryptor()
        plain = pkcs7_unpad(decryptor.update(cipher_bytes) + decryptor.finalize())
        if len(plain) < 20:
            raise CallbackCryptoError("decrypt_failed", "plaintext too short")
        (length,) = struct.unpack(">I", plain[16:20])
        if 20 + length > len(plain):
            raise CallbackCryptoError("decrypt_failed", "message length exceeds plaintext")
        msg = plain[20 : 20 + length]
        try:
            receive_id = plain[20 + length :].decode()
        except UnicodeDecodeError:
            raise CallbackCryptoError("decrypt_failed", "receiveid is not text") from None
        return msg, receive_id

    def check_signature(self, msg_signature: str, timestamp: str, nonce: str, encrypt: str) -> None:
        expected = signature(self.token, timestamp, nonce, encrypt)
        # As bytes: compare_digest refuses str with non-ASCII characters (a TypeError, not a refusal).
        if not msg_signature or not hmac.compare_digest(expected.encode(), str(msg_signature).lower().encode()):
            raise CallbackCryptoError("bad_signature", "msg_signature does not match")

    def _decrypt_ours(self, encrypted: str) -> bytes:
        msg, receive_id = self.decrypt(encrypted)
        if not hmac.compare_digest(receive_id.encode(), self.receive_id.encode()):
            raise CallbackCryptoError("bad_receiveid", "receiveid is not ours")
        return msg

    # --- the two requests WeCom makes ------------------------------------------------------------

    def verify_url(self, msg_signature: str, timestamp: str, nonce: str, echostr: str) -> str:
        """GET URL verification: the plaintext echostr to answer with."""
        self.check_signature(msg_signature, timestamp, nonce, echostr)
        try:
            return self._decrypt_ours(echostr).decode()
        except UnicodeDecodeError:
            raise CallbackCryptoError("decrypt_failed", "echostr is not UTF-8") from None

    def decrypt_message(self, msg_signature: str, timestamp: str, nonce: str, post_body: str | bytes) -> str:
        """POST event: verify the envelope's Encrypt and return the decrypted event XML."""
        encrypt = extract_encrypt(post_body)
        self.check_signature(msg_signature, timestamp, nonce, encrypt)
        try:
            return self._decrypt_ours(encrypt).decode()
        except UnicodeDecodeError:
            raise CallbackCryptoError("decrypt_failed", "message is not UTF-8") from None

    def encrypt_message(self, reply: str, nonce: str | None = None, timestamp: str | None = None) -> str:
        """A passive encrypted reply envelope (also what a sender POSTs, with the signature in the query)."""
        nonce = nonce or secrets.token_hex(8)
        timestamp = timestamp or str(int(time.time()))
        encrypt = self.encrypt(reply)
        sig = signature(self.token, timestamp, nonce, encrypt)
        return (
            f"<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt><MsgSignature><![CDATA[{sig}]]></MsgSignature>"
            f"<TimeStamp>{timestamp}</TimeStamp><Nonce><![CDATA[{nonce}]]></Nonce></xml>"
        )


def extract_encrypt(post_body: str | bytes) -> str:
    """The <Encrypt> text of a callback envelope."""
    try:
        root = ET.fromstring(post_body)
    except ET.ParseError:
        raise CallbackCryptoError("bad_xml", "body is not XML") from None
    node = root.find("Encrypt")
    if node is None or not (node.text or "").strip():
        raise CallbackCryptoError("bad_xml", "no Encrypt element")
    return node.text.strip()
