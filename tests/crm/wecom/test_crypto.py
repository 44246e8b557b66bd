"""WXBizMsgCrypt against WeCom's published vectors (from go-workwx's tests) and round trips."""

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm.wecom.crypto import CallbackCryptoError, WXBizMsgCrypt, extract_encrypt, pkcs7_pad, pkcs7_unpad, signature

SIG_TOKEN = "kjr2TKI8umCBfVF3wAHk8JiPwma5VBme"
SIG_ECHOSTR = "6KmUQuPVu7UhjyVqRdbo5SfcRqaHvbUlKSHFvBV2ZuR6TIlKsygcfeSd1GDplg1C5KSKr6UPHCaC/nIX3ZNt9w=="

POST_TOKEN = "kz7Yx62CH8SaLN"
POST_AES_KEY = "cD0d7jx4tYvVtzqrmh3Dm3QFCXe6f8SlHoMtMh3qQEP"
POST_CORP = "ww6a112864f8022910"
POST_ENCRYPT = (
    "EUCt7xMcNiyASzZj0Hjc5yDjFQrCum6AfQ3ntHiUzjGQ51xieKmbvtrZ40/EcB2W/W8yH0n4Lqx48gJl/T9HD/R309I0P/r5pIZucK3lyEn48FYMr"
    "4YdE0QdL2jIJ3xkcXUr6uzefzCxG6lMvwpAJaOyVCzN7sRRw47njfxy5EIqU6R9ZBhlTzfdnhhOhK/nTwzrZX3SoGlXFA9OBeZ6ru1NWpXFk76x9DU"
    "Me0lcxPPiUqK8ctnQcYXSGUHVqC6DfG7E7mab0OmruNN8cBZY5d3dYOBA4OgaH55Q0AJmUpdT8vNiXpXx+6TxT3TIjySXpDrHVyrsb772aYywgg/Nu"
    "4kUmGkALwFZlzhjNegR7wDwb9lr4ERXsSSS8JZ8lbBmaQ3F2Tq584xoPj5rIhXAF734ynm4no1g+SdHiNqR328="
)
POST_BODY = (
    f"<xml><ToUserName><![CDATA[{POST_CORP}]]></ToUserName><Encrypt><![CDATA[{POST_ENCRYPT}]]></Encrypt>"
    "<AgentID><![CDATA[1000002]]></AgentID></xml>"
)
POST_MSG = (
    "<xml><ToUserName><![CDATA[ww6a112864f8022910]]></ToUserName><FromUserName><![CDATA[foobar]]></FromUserName>"
    "<CreateTime>1583995625</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[x123]]></Content>"
    "<MsgId>2018405441</MsgId><AgentID>1000002</AgentID></xml>"
)


def test_signature_vector():
    assert (
        signature(SIG_TOKEN, "1583940690", "VHh7ymSeb0jc4lSb", SIG_ECHOSTR)
        == "1ba3cb09c0d2c2b3ed6900d37f91a6efae6cb011"
    )


def test_full_post_vector_decrypts_with_pad_13():
    crypt = WXBizMsgCrypt(POST_TOKEN, POST_AES_KEY, POST_CORP)
    assert signature(POST_TOKEN, "1583995625", "1584392382", POST_ENCRYPT) == "f265ae551b1932727204c3d707628d01376a6940"
    xml = crypt.decrypt_message("f265ae551b1932727204c3d707628d01376a6940", "1583995625", "1584392382", POST_BODY)
    assert xml == POST_MSG
    # The raw plaintext's last byte is the PKCS#7/32 pad, 13 for this vector.
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    decryptor = Cipher(algorithms.AES(crypt.key), modes.CBC(crypt.iv)).decryptor()
    raw = decryptor.update(base64.b64decode(POST_ENCRYPT)) + decryptor.finalize()
    assert raw[-1] == 13


def test_vector_with_wrong_receiveid_refused():
    crypt = WXBizMsgCrypt(POST_TOKEN, POST_AES_KEY, "ww0000000000000000")
    with pytest.raises(CallbackCryptoError) as exc:
        crypt.decrypt_message("f265ae551b1932727204c3d707628d01376a6940", "1583995625", "1584392382", POST_BODY)
    assert exc.value.reason == "bad_receiveid"


@pytest.mark.parametrize(
    ("sig", "ts", "nonce"),
    [
        ("f265ae551b1932727204c3d707628d01376a6941", "1583995625", "1584392382"),
        ("f265ae551b1932727204c3d707628d01376a6940", "1583995626", "1584392382"),
        ("f265ae551b1932727204c3d707628d01376a6940", "1583995625", "1584392383"),
        ("", "1583995625", "1584392382"),
    ],
)
def test_tampered_signature_refused(sig, ts, nonce):
    crypt = WXBizMsgCrypt(POST_TOKEN, POST_AES_KEY, POST_CORP)
    with pytest.raises(CallbackCryptoError) as exc:
        crypt.decrypt_message(sig, ts, nonce, POST_BODY)
    assert exc.value.reason == "bad_signature"


def test_verify_url_round_trip():
    crypt = WXBizMsgCrypt("tok", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "wwcorp")
    echostr = crypt.encrypt("1234567890123456789")
    sig = signature("tok", "1700000000", "n1", echostr)
    assert crypt.verify_url(sig, "1700000000", "n1", echostr) == "1234567890123456789"


def test_encrypt_message_envelope_round_trip():
    crypt = WXBizMsgCrypt(POST_TOKEN, POST_AES_KEY, POST_CORP)
    envelope = crypt.encrypt_message("<xml><A>é</A></xml>", nonce="abc", timestamp="1700000000")
    encrypt = extract_encrypt(envelope)
    sig = signature(POST_TOKEN, "1700000000", "abc", encrypt)
    assert crypt.decrypt_message(sig, "1700000000", "abc", envelope) == "<xml><A>é</A></xml>"


@given(st.binary(max_size=200))
def test_pkcs7_32_round_trip(data):
    padded = pkcs7_pad(data)
    assert len(padded) % 32 == 0 and 1 <= padded[-1] <= 32
    assert pkcs7_unpad(padded) == data


@given(st.text(max_size=300), st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=40))
def test_encrypt_decrypt_round_trip(msg, receive_id):
    crypt = WXBizMsgCrypt(POST_TOKEN, POST_AES_KEY, receive_id)
    assert crypt.decrypt(crypt.encrypt(msg)) == (msg.encode(), receive_id)


@pytest.mark.parametrize(
    "bad", ["not base64!!", base64.b64encode(b"x" * 15).decode(), base64.b64encode(b"x" * 32).decode()]
)
def test_garbage_ciphertext_refused(bad):
    crypt = WXBizMsgCrypt(POST_TOKEN, POST_AES_KEY, POST_CORP)
    with pytest.raises(CallbackCryptoError):
        crypt.decrypt(bad)


def test_bad_envelope_refused():
    crypt = WXBizMsgCrypt(POST_TOKEN, POST_AES_KEY, POST_CORP)
    for body in ["", "<xml>", "<xml><Encrypt></Encrypt></xml>", "plain text"]:
        with pytest.raises(CallbackCryptoError):
            crypt.decrypt_message("x", "1", "1", body)


def test_signature_vector_over_post_body():
    body = (
        "fyVN9BUnH6xNl0/VCHTCg6XGxxvoFdyZ7VQbAbBcQ79dVccYvdIyJYZSMMhkPy8LPaoe+V27qjoQ553fXavmrPOgxzHrKKf3YIu63pB4/nN0LY4S"
        "+GzUFi/LLFj1TI1sOh0q2jT5u1nYz5G3HFNLd3DFUvJVLtZl8mVMwUOzBpzKZhhmCvIJLVlvym9tt+VYwG06MSbmnf9AzYFKhm1BIy+95Q824il"
        "Y6Wy8l+vkFqEdASl2k83jMXvlkVRSB3hmNptWTbq8ygDdLtkCyA4UEiZvfTskqqVkbYwLptRl/1F+DVL9SH/TWt2j3dCm4rzY5jQG+fA+2xh2Kk+"
        "OrVgafqtQCfhjq8C38A2IwCcg2BONKk8s5ijFxQoszmXvJQ3zLYbjzRWQ40xhryDyPNNse7/slKVW2QMBEUPNOxUcX9k="
    )
    assert signature(POST_TOKEN, "1583995625", "1584392382", body) == "a44d1b7dc3dc4b02edd99dc32afa6a26be7c92f6"
