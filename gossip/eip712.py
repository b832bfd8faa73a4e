"""EIP-712 typed-data hashing, signing and recovery for the application messages.

Why typed data: an order or hub announcement signed this way is attributable to an
on-chain address, and a wallet can show a person what they sign. Why our own hasher:
eth-account's `encode_typed_data` re-parses the type description on every call
(~110 µs for an order here) and its recovery goes through more layers than needed
(~90 µs). Each struct type is described once (`StructType`), its type hash computed
once at import, and a per-field encoder list compiled once; hashing a message is then
a handful of keccak calls. Recovery uses libsecp256k1 through coincurve. The tests
check, message by message, that the digest equals eth-account's and that both
recoveries agree; benchmarks/sign_verify.py measures the two paths side by side.

Signatures are 65 bytes r || s || v with v in {27, 28}. A high-s signature (s > n/2)
is refused: it is a second valid encoding of the same signature (EIP-2), and
accepting it would let anyone re-encode a message under a new gossip message id.
"""

from __future__ import annotations

import operator
import struct as _struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import coincurve
from coincurve._libsecp256k1 import ffi as _ffi
from coincurve._libsecp256k1 import lib as _lib
from coincurve.context import GLOBAL_CONTEXT as _SECP_CTX
from coincurve.flags import EC_UNCOMPRESSED as _EC_UNCOMPRESSED

try:  # C keccak (safe-pysha3, pulled in by eth-tester's py-evm extra): ~0.8 µs a call
    from sha3 import keccak_256 as _keccak_256

    def keccak(data: bytes) -> bytes:
        return _keccak_256(data).digest()

except ImportError:  # pragma: no cover - pycryptodome is always there via eth-hash
    from Crypto.Hash import keccak as _pycryptodome_keccak

    def keccak(data: bytes) -> bytes:
        return _pycryptodome_keccak.new(digest_bits=256, data=data).digest()


SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HALF_N = SECP256K1_N // 2
DOMAIN_NAME = "sonm-p2p"
DOMAIN_VERSION = "1"
_KECCAK_EMPTY = keccak(b"")


class SignatureError(ValueError):
    """A signature is malformed or does not recover to a public key."""


@dataclass(frozen=True)
class FieldSpec:
    """One struct member: its EIP-712 name and type, and the Python attribute holding it."""

    name: str
    type: str
    attr: str


Encoder = Callable[[Any], bytes]


@dataclass(frozen=True)
class StructType:
    """An EIP-712 struct type, with the struct types it references (for encodeType)."""

    name: str
    fields: tuple[FieldSpec, ...]
    refs: tuple[StructType, ...] = ()
    _layout: list[_Layout] = field(default_factory=list, compare=False, repr=False)

    def _all_refs(self) -> dict[str, StructType]:
        found: dict[str, StructType] = {}
        stack = list(self.refs)
        while stack:
            t = stack.pop()
            if t.name not in found:
                found[t.name] = t
                stack.extend(t.refs)
        found.pop(self.name, None)
        return found

    def _member_sig(self) -> str:
        return f"{self.name}(" + ",".join(f"{f.type} {f.name}" for f in self.fields) + ")"

    @cached_property
    def encoded_type(self) -> str:
        """encodeType: the primary type, then referenced types sorted by name."""
        refs = self._all_refs()
        return self._member_sig() + "".join(refs[n]._member_sig() for n in sorted(refs))

    @cached_property
    def type_hash(self) -> bytes:
        return keccak(self.encoded_type.encode())

    def eip712_types(self) -> dict[str, list[dict[str, str]]]:
        """The `types` member eth-account's encode_typed_data expects (without the domain)."""
        out = {self.name: [{"name": f.name, "type": f.type} for f in self.fields]}
        for name, t in self._all_refs().items():
            out[name] = [{"name": f.name, "type": f.type} for f in t.fields]
        return out

    def hash_struct(self, obj: object) -> bytes:
        """hashStruct(obj) = keccak(typeHash || encodeData(obj)).

        encodeData is one struct.pack over the fields (compiled once per type, see
        _Layout): fixed-size members go in as they are, and only dynamic ones
        (strings, bytes, arrays, structs) and uint256 are converted in Python. It
        is on every validated message's path, next to the signature recovery."""
        layout = self._layout
        if not layout:
            layout.append(_Layout(self))
        return layout[0].hash(obj)

    def hash_struct_generic(self, obj: object) -> bytes:
        """The same, one encoder call per field (the reference for hash_struct)."""
        parts = [self.type_hash]
        parts.extend(_compile(f.type, self)(getattr(obj, f.attr)) for f in self.fields)
        return keccak(b"".join(parts))

    def to_eip712_value(self, obj: object) -> dict[str, Any]:
        """The message as the JSON-like dict eth-account takes (the reference path)."""
        return {f.name: _to_value(f.type, getattr(obj, f.attr), self) for f in self.fields}


# fixed-size members packed as they are: 32-byte words, big-endian, left-padded
_UINT_WORD = "24xQ"  # uint8 .. uint64
_ADDRESS_WORD = "12x20s"
_BYTES32_WORD = "32s"
_UINT64_MAX = 2**64 - 1
_UINT64_ARRAYS: dict[int, _struct.Struct] = {}


def _uint64_array(values: Sequence[int]) -> bytes:
    """encodeData of a uint64[] member: keccak of its words, packed in one call."""
    if not values:
        return _KECCAK_EMPTY
    n = len(values)
    packer = _UINT64_ARRAYS.get(n)
    if packer is None:
        packer = _struct.Struct(">" + _UINT_WORD * n)
        if n <= 64:
            _UINT64_ARRAYS[n] = packer
    try:
        return keccak(packer.pack(*values))
    except (_struct.error, TypeError):  # not uint64s (never validated): word by word
        return keccak(b"".join(_enc_uint(v) for v in values))


class _Layout:
    """A struct type's encodeData as one struct.pack: the type hash, then a word
    per member. `convert` lists the members that need Python first (index, encoder).
    A value that does not fit its word (a message that was never validated) falls
    back to the generic path, so the answer is always hash_struct_generic's."""

    __slots__ = ("convert", "getter", "owner", "packer", "sized")

    def __init__(self, owner: StructType) -> None:
        self.owner = owner
        fmt = [">32s"]
        convert: list[tuple[int, Encoder]] = []
        sized: list[tuple[int, int]] = []  # (index, length) of bytes members
        for i, f in enumerate(owner.fields):
            t = f.type
            if t.startswith("uint") and not t.endswith("[]") and int(t[4:] or 256) <= 64:
                fmt.append(_UINT_WORD)
            elif t == "address":
                fmt.append(_ADDRESS_WORD)
                sized.append((i, 20))
            elif t == "bytes32":
                fmt.append(_BYTES32_WORD)
                sized.append((i, 32))
            else:
                fmt.append(_BYTES32_WORD)
                convert.append((i, _uint64_array if t == "uint64[]" else _compile(t, owner)))
        self.packer = _struct.Struct("".join(fmt))
        self.convert = tuple(convert)
        self.sized = tuple(sized)
        attrs = [f.attr for f in owner.fields]
        getter = operator.attrgetter(*attrs)
        self.getter: Callable[[object], tuple[Any, ...]] = (
            getter if len(attrs) > 1 else (lambda obj: (getter(obj),))
        )

    def hash(self, obj: object) -> bytes:
        values = list(self.getter(obj))
        for i, n in self.sized:  # struct's "20s" would pad or cut a wrong length
            v = values[i]
            if type(v) is not bytes or len(v) != n:
                return self.owner.hash_struct_generic(obj)
        for i, enc in self.convert:
            values[i] = enc(values[i])
        try:
            return keccak(self.packer.pack(self.owner.type_hash, *values))
        except (_struct.error, TypeError, ValueError):
            return self.owner.hash_struct_generic(obj)


def _find_ref(owner: StructType, name: str) -> StructType:
    if name == owner.name:
        return owner
    refs = owner._all_refs()
    if name not in refs:
        raise ValueError(f"{owner.name} references undeclared struct type {name}")
    return refs[name]


def _enc_uint(v: int) -> bytes:
    return v.to_bytes(32, "big")


def _enc_address(v: bytes) -> bytes:
    return b"\x00" * 12 + v


def _enc_bytes(v: bytes) -> bytes:
    return keccak(v) if v else _KECCAK_EMPTY


def _enc_string(v: str) -> bytes:
    return keccak(v.encode()) if v else _KECCAK_EMPTY


def _enc_bool(v: bool) -> bytes:
    return _enc_uint(1 if v else 0)


def _compile(type_name: str, owner: StructType) -> Encoder:
    if type_name.endswith("[]"):
        inner = _compile(type_name[:-2], owner)

        def enc_array(values: Sequence[Any]) -> bytes:
            if not values:
                return _KECCAK_EMPTY
            return keccak(b"".join(inner(v) for v in values))

        if type_name[:-2] in _ATOMIC:
            return enc_array
        return _bounded_cache(enc_array)  # arrays of structs (an order's properties)
    if type_name.startswith("uint"):
        return _enc_uint
    if type_name == "address":
        return _enc_address
    if type_name == "bytes":
        return _enc_bytes
    if type_name == "string":
        return _enc_short_string
    if type_name == "bool":
        return _enc_bool
    if type_name == "bytes32":
        return lambda v: bytes(v)
    return _cached_struct_hash(_find_ref(owner, type_name))


# Nested structs and arrays of them (an order's properties) and short strings (a
# country code) repeat from message to message: their encodings are kept, a
# bounded number per encoder, keyed by the value itself (frozen dataclasses,
# tuples of them, strs: equal values, equal encoding; a str never equals a
# non-str, so an ill-typed value is never answered from the cache).
# Each saves a keccak and the Python around it on every validated message.
_NESTED_CACHE_SIZE = 4096
_SHORT_STRING = 64  # longer strings (hub descriptions) are rarely repeated: not kept
_ATOMIC = frozenset({"address", "bool", "bytes", "bytes32", "string"}) | {
    f"uint{n}" for n in range(8, 257, 8)
}


class _Kept:
    """An encoder whose answers are kept, at most _NESTED_CACHE_SIZE of them."""

    __slots__ = ("cache", "encode")

    def __init__(self, encode: Encoder) -> None:
        self.encode = encode
        self.cache: dict[Any, bytes] = {}

    def __call__(self, value: Any) -> bytes:
        cache = self.cache
        try:
            h = cache.get(value)
        except TypeError:  # unhashable (a list from a caller): not kept
            return self.encode(value)
        if h is None:
            h = self.encode(value)
            if len(cache) >= _NESTED_CACHE_SIZE:
                cache.clear()  # whole: cheap, and a flood of new values cannot grow it
            cache[value] = h
        return h


def _bounded_cache(encode: Encoder) -> _Kept:
    return _Kept(encode)


def _cached_struct_hash(struct: StructType) -> Encoder:
    return _bounded_cache(struct.hash_struct)


_enc_string_cached = _bounded_cache(_enc_string)


def _enc_short_string(v: str) -> bytes:
    return _enc_string_cached(v) if len(v) <= _SHORT_STRING else _enc_string(v)


def _to_value(type_name: str, value: Any, owner: StructType) -> Any:
    if type_name.endswith("[]"):
        return [_to_value(type_name[:-2], v, owner) for v in value]
    if type_name == "address":
        return "0x" + bytes(value).hex()
    if type_name.startswith(("uint", "bytes", "string", "bool")):
        return value
    return _find_ref(owner, type_name).to_eip712_value(value)


DOMAIN_TYPE = StructType(
    "EIP712Domain",
    (
        FieldSpec("name", "string", "name"),
        FieldSpec("version", "string", "version"),
        FieldSpec("chainId", "uint256", "chain_id"),
    ),
)


@dataclass(frozen=True)
class SigningDomain:
    """Who the signature is for: this protocol, this version, this chain.

    The chain id keeps an order signed for a test chain from being valid on the real
    one. There is no verifyingContract: the messages travel over gossip, not to a
    contract.
    """

    chain_id: int
    name: str = DOMAIN_NAME
    version: str = DOMAIN_VERSION

    def validate(self) -> None:
        if type(self.chain_id) is not int or not 1 <= self.chain_id < 2**256:
            raise ValueError(f"chain_id: must be in [1, 2**256), got {self.chain_id!r}")
        if not self.name or len(self.name) > 64:
            raise ValueError("name: 1 to 64 characters")
        if not self.version or len(self.version) > 16:
            raise ValueError("version: 1 to 16 characters")

    @cached_property
    def separator(self) -> bytes:
        return DOMAIN_TYPE.hash_struct(self)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "chainId": self.chain_id}


def digest(domain: SigningDomain, struct: StructType, obj: object) -> bytes:
    """The 32 bytes that get signed: keccak(0x1901 || domainSeparator || hashStruct(obj))."""
    return keccak(b"\x19\x01" + domain.separator + struct.hash_struct(obj))


def full_message(domain: SigningDomain, struct: StructType, obj: object) -> dict[str, Any]:
    """The complete typed-data document, as a wallet or eth-account would take it."""
    types: dict[str, Any] = {"EIP712Domain": DOMAIN_TYPE.eip712_types()["EIP712Domain"]}
    types.update(struct.eip712_types())
    return {
        "types": types,
        "primaryType": struct.name,
        "domain": domain.as_dict(),
        "message": struct.to_eip712_value(obj),
    }


# --- signing and recovery ----------------------------------------------------------------


def sign_digest(message_digest: bytes, private_key: bytes) -> bytes:
    """Sign 32 bytes with a secp256k1 key; returns r || s || v, v in {27, 28}, low s."""
    if len(message_digest) != 32:
        raise ValueError("digest must be 32 bytes")
    sig = coincurve.PrivateKey(private_key).sign_recoverable(message_digest, hasher=None)
    return sig[:64] + bytes([sig[64] + 27])


def address_of_key(private_key: bytes) -> bytes:
    """The 20-byte Ethereum address of a private key."""
    pub = coincurve.PrivateKey(private_key).public_key.format(compressed=False)
    return keccak(pub[1:])[12:]


_N_BYTES = SECP256K1_N.to_bytes(32, "big")
_HALF_N_BYTES = _HALF_N.to_bytes(32, "big")
_ZERO32 = bytes(32)


def _split(signature: bytes) -> tuple[bytes, int]:
    if len(signature) != 65:
        raise SignatureError(f"signature must be 65 bytes, got {len(signature)}")
    v = signature[64]
    if v not in (27, 28):
        raise SignatureError(f"recovery byte v must be 27 or 28, got {v}")
    # 32-byte big-endian words compare as the numbers they encode
    r = signature[:32]
    s = signature[32:64]
    if r == _ZERO32 or r >= _N_BYTES:
        raise SignatureError("r out of range")
    if s == _ZERO32 or s > _HALF_N_BYTES:
        raise SignatureError("s out of range or high (non-canonical, EIP-2)")
    return signature[:64], v - 27


def recover_address(message_digest: bytes, signature: bytes) -> bytes:
    """Who signed `message_digest`: the 20-byte address, via libsecp256k1 (~35 µs here).

    The one function every verifier calls; raises SignatureError for a malformed or
    unrecoverable signature.
    """
    rs, recid = _split(signature)
    if type(message_digest) is not bytes or len(message_digest) != 32:
        raise SignatureError("digest must be 32 bytes")
    # libsecp256k1 through coincurve's cffi bindings, called directly: the same three
    # calls as PublicKey.from_signature_and_message(...).format(False), less its
    # Python layers (~5 µs). cffi releases the GIL around each call; the context is
    # only read, so threads may share it.
    ctx = _SECP_CTX.ctx
    sig = _ffi.new("secp256k1_ecdsa_recoverable_signature *")
    if not _lib.secp256k1_ecdsa_recoverable_signature_parse_compact(ctx, sig, rs, recid):
        raise SignatureError("signature does not recover: unparseable r, s")
    pub = _ffi.new("secp256k1_pubkey *")
    if not _lib.secp256k1_ecdsa_recover(ctx, pub, sig, message_digest):
        raise SignatureError("signature does not recover: no public key")
    out = _ffi.new("unsigned char[65]")
    out_len = _ffi.new("size_t *", 65)
    _lib.secp256k1_ec_pubkey_serialize(ctx, out, out_len, pub, _EC_UNCOMPRESSED)
    return keccak(_ffi.buffer(out, 65)[1:])[12:]


def recover_address_eth_account(full: dict[str, Any], signature: bytes) -> bytes:
    """The same answer through eth-account end to end (reference and baseline only)."""
    from eth_account import Account
    from eth_account.messages import encode_typed_data

    _split(signature)
    signable = encode_typed_data(full_message=full)
    return bytes.fromhex(Account.recover_message(signable, signature=signature)[2:])
