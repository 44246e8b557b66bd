"""The simulator's WXBizMsgCrypt against WeCom's published vectors (wecom-api.md §9) and the independent copy."""

from tests.wecom_sim.conftest import independent_decrypt, independent_signature
from wecom_sim import crypto

FULL_ENCRYPT = (
    "EUCt7xMcNiyASzZj0Hjc5yDjFQrCum6AfQ3ntHiUzjGQ51xieKmbvtrZ40/EcB2W/W8yH0n4Lqx48gJl/T9HD/R309I0P/r5pIZucK3lyEn48FYMr4"
    "YdE0QdL2jIJ3xkcXUr6uzefzCxG6lMvwpAJaOyVCzN7sRRw47njfxy5EIqU6R9ZBhlTzfdnhhOhK/nTwzrZX3SoGlXFA9OBeZ6ru1NWpXFk76x9DU"
    "Me0lcxPPiUqK8ctnQcYXSGUHVqC6DfG7E7mab0OmruNN8cBZY5d3dYOBA4OgaH55Q0AJmUpdT8vNiXpXx+6TxT3TIjySXpDrHVyrsb772aYywgg/N"
    "u4kUmGkALwFZlzhjNegR7wDwb9lr4ERXsSSS8JZ8lbBmaQ3F2Tq584xoPj5rIhXAF734ynm4no1g+SdHiNqR328="
)
FULL_KEY = "cD0d7jx4tYvVtzqrmh3Dm3QFCXe6f8SlHoMtMh3qQEP"


def test_signature_vector():
    echostr = "6KmUQuPVu7UhjyVqRdbo5SfcRqaHvbUlKSHFvBV2ZuR6TIlKsygcfeSd1GDplg1C5KSKr6UPHCaC/nIX3ZNt9w=="
    assert crypto.signature("kjr2TKI8umCBfVF3wAHk8JiPwma5VBme", "1583940690", "VHh7ymSeb0jc4lSb",
                            echostr) == "1ba3cb09c0d2c2b3ed6900d37f91a6efae6cb011"


def test_full_post_vector_signature_and_decrypt():
    assert crypto.signature("kz7Yx62CH8SaLN", "1583995625", "1584392382",
                            FULL_ENCRYPT) == "f265ae551b1932727204c3d707628d01376a6940"
    msg, receiveid = crypto.decrypt(FULL_KEY, FULL_ENCRYPT)
    assert receiveid == b"ww6a112864f8022910"
    assert msg.startswith(b"<xml><ToUserName><![CDATA[ww6a112864f8022910]]>") and b"x123" in msg


def test_encrypt_round_trip_with_independent_implementation_pads_to_32():
    key = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
    for size in (0, 1, 11, 12, 31, 32, 100):
        msg = "<xml>" + "x" * size + "</xml>"
        encrypted = crypto.encrypt(key, msg, "wwcorp")
        assert len(__import__("base64").b64decode(encrypted)) % 32 == 0
        assert independent_decrypt(key, encrypted) == (msg, "wwcorp")
        assert crypto.decrypt(key, encrypted) == (msg.encode(), b"wwcorp")
    assert independent_signature("a", "b", "c", "d") == crypto.signature("a", "b", "c", "d")
