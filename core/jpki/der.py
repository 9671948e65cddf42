"""Minimal strict DER reading and writing for the few ASN.1 values `cryptography` leaves to us."""

from __future__ import annotations

UTF8_STRING = 0x0C
PRINTABLE_STRING = 0x13
IA5_STRING = 0x16
BMP_STRING = 0x1E
SEQUENCE = 0x30
BIT_STRING = 0x03

_STRING_CODECS = {
    UTF8_STRING: "utf-8",
    PRINTABLE_STRING: "ascii",
    IA5_STRING: "ascii",
    BMP_STRING: "utf-16-be",
}


class DerError(ValueError):
    """Raised when bytes are not the strict DER that was expected."""


def encode_length(length: int) -> bytes:
    """Return the DER length octets for ``length`` (short form below 128, minimal long form above)."""
    if length < 0:
        raise ValueError("length must not be negative")
    if length < 0x80:
        return bytes([length])
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def encode_tlv(tag: int, content: bytes) -> bytes:
    """Return one DER element with a single-octet ``tag``."""
    return bytes([tag]) + encode_length(len(content)) + content


def encode_utf8_string(text: str) -> bytes:
    """Return ``text`` as a DER UTF8String."""
    return encode_tlv(UTF8_STRING, text.encode("utf-8"))


def read_tlv(data: bytes, offset: int = 0) -> tuple[int, bytes, int]:
    """Read one element at ``offset``; return (tag, content, offset after it). Rejects non-minimal lengths."""
    if offset + 2 > len(data):
        raise DerError("truncated element")
    tag = data[offset]
    if tag & 0x1F == 0x1F:
        raise DerError("multi-octet tags are not expected here")
    first = data[offset + 1]
    pos = offset + 2
    if first < 0x80:
        length = first
    elif first == 0x80:
        raise DerError("indefinite length is not DER")
    else:
        count = first & 0x7F
        if count > 4 or pos + count > len(data):
            raise DerError("length too long or truncated")
        body = data[pos : pos + count]
        if body[0] == 0:
            raise DerError("non-minimal length")
        length = int.from_bytes(body, "big")
        if length < 0x80:
            raise DerError("long form used for a short length")
        pos += count
    end = pos + length
    if end > len(data):
        raise DerError("truncated content")
    return tag, data[pos:end], end


def decode_string(data: bytes) -> str:
    """Decode exactly one DER character string (UTF8, Printable, IA5 or BMP) and nothing after it."""
    tag, content, end = read_tlv(data)
    if end != len(data):
        raise DerError("trailing bytes after the string")
    codec = _STRING_CODECS.get(tag)
    if codec is None:
        raise DerError(f"unexpected string tag 0x{tag:02x}")
    try:
        return content.decode(codec)
    except UnicodeDecodeError as exc:
        raise DerError("string content does not match its type") from exc
