"""Market orders: ASK (a supplier's slot) and BID (a consumer's demand), and their cancellation.

The fields follow SONM's market orders so that matching works as Market.OpenDeal
did: ask.price <= bid.price, ask.duration >= bid.duration, every ask benchmark >=
the bid's, the bid's network flags a subset of the ask's, counterparty, blacklist
and rating constraints. Resources (CPU cores, RAM, storage, GPU count and memory,
network in/out) are SONM benchmarks too; they are stored once, in the benchmark
vector, and exposed as named properties, so an order cannot say two different
things about its RAM.

An order's id is its EIP-712 digest: what its author signed, unique per (author,
nonce, content), and not forgeable. A cancellation names that id and must be signed
by the same author (checked where the order is known: the order store).
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from gossip import eip712
from gossip.eip712 import FieldSpec, SigningDomain, StructType
from gossip.messages import (
    UINT64_MAX,
    UINT256_MAX,
    ZERO_ADDRESS,
    FieldError,
    MessageKind,
    all_uints,
    check_address,
    check_bytes,
    check_signature,
    check_str,
    check_tuple,
    check_uint,
    check_window,
)


class Side(enum.IntEnum):
    ASK = 1  # a supplier offers a slot
    BID = 2  # a consumer asks for one


class NetworkType(enum.IntEnum):
    """Bit flags, so "the bid's needs are a subset of the ask's" is `bid & ~ask == 0`."""

    NONE = 0
    OUTBOUND = 1  # the task may open outbound connections
    INBOUND_OUTBOUND = 3  # ... and accept inbound ones (public ports)

    def covers(self, needed: NetworkType) -> bool:
        return needed & ~self == 0


# SONM's benchmark list, in its order; the wire carries one uint64 per entry, by index.
BENCHMARK_NAMES: tuple[str, ...] = (
    "cpu-sysbench-multi",
    "cpu-sysbench-single",
    "cpu-cores",
    "ram-size",  # bytes
    "storage-size",  # bytes
    "net-download",  # bits/s (network in)
    "net-upload",  # bits/s (network out)
    "gpu-count",
    "gpu-mem",  # bytes per GPU
    "gpu-eth-hashrate",  # hashes/s
    "gpu-cash-hashrate",
    "gpu-redshift",
    "cpu-cryptonight",
)
BENCHMARK_INDEX: dict[str, int] = {name: i for i, name in enumerate(BENCHMARK_NAMES)}

ORDER_MAX_DURATION_SECONDS = 10 * 365 * 24 * 3600
ORDER_MAX_VALIDITY_SECONDS = 31 * 24 * 3600
ORDER_MAX_PROPERTIES = 16
ORDER_MAX_PROPERTY_KEY_BYTES = 32
ORDER_MAX_PROPERTY_VALUE_BYTES = 128
ORDER_MAX_BLACKLIST = 64
RATING_MAX = 10_000  # basis points: 10000 = 100 %
_PROPERTY_KEY = re.compile(r"[a-z0-9][a-z0-9._-]*\Z")
COUNTRY_CODE = re.compile(r"[A-Z]{2}\Z")

PROPERTY_TYPE = StructType(
    "Property", (FieldSpec("key", "string", "key"), FieldSpec("value", "string", "value"))
)
ORDER_TYPE = StructType(
    "Order",
    (
        FieldSpec("author", "address", "author"),
        FieldSpec("side", "uint8", "side"),
        FieldSpec("pricePerHour", "uint256", "price_per_hour"),
        FieldSpec("duration", "uint64", "duration"),
        FieldSpec("benchmarks", "uint64[]", "benchmarks"),
        FieldSpec("network", "uint8", "network"),
        FieldSpec("properties", "Property[]", "properties"),
        FieldSpec("counterparty", "address", "counterparty"),
        FieldSpec("blacklist", "address[]", "blacklist"),
        FieldSpec("minRating", "uint16", "min_rating"),
        FieldSpec("geo", "string", "geo"),
        FieldSpec("nonce", "uint64", "nonce"),
        FieldSpec("validFrom", "uint64", "valid_from"),
        FieldSpec("validUntil", "uint64", "valid_until"),
    ),
    refs=(PROPERTY_TYPE,),
)
ORDER_CANCEL_TYPE = StructType(
    "OrderCancel",
    (
        FieldSpec("author", "address", "author"),
        FieldSpec("orderId", "bytes32", "order_id"),
        FieldSpec("nonce", "uint64", "nonce"),
        FieldSpec("validFrom", "uint64", "valid_from"),
        FieldSpec("validUntil", "uint64", "valid_until"),
    ),
)


@dataclass(frozen=True)
class Property:
    """A free-form label on an order (e.g. "os" = "linux"); keys are unique and sorted."""

    key: str
    value: str

    def validate(self, field: str = "property") -> None:
        check_str(f"{field}.key", self.key, ORDER_MAX_PROPERTY_KEY_BYTES)
        if not _PROPERTY_KEY.match(self.key):
            raise FieldError(f"{field}.key", "lowercase letters, digits, '.', '_', '-' only")
        check_str(f"{field}.value", self.value, ORDER_MAX_PROPERTY_VALUE_BYTES)


# Properties repeat from order to order ("os" = "linux"): one that passed
# `Property.validate` is remembered, so the next order carrying it skips the checks.
# Validity depends on the value alone (the exact str types are checked before the
# memo is read, so an equal str subclass is not taken for a known one). Bounded: a
# flood of new properties empties it, and costs what it cost without it.
_VALID_PROPERTIES: set[Property] = set()
_VALID_PROPERTIES_MAX = 4096


def _known_valid(prop: Property) -> bool:
    return type(prop.key) is str and type(prop.value) is str and prop in _VALID_PROPERTIES


def _remember_valid(prop: Property) -> None:
    if type(prop.key) is str and type(prop.value) is str:
        if len(_VALID_PROPERTIES) >= _VALID_PROPERTIES_MAX:
            _VALID_PROPERTIES.clear()
        _VALID_PROPERTIES.add(prop)


# The resources an order names as fields (Order.create's keywords, the API's body)
# and the benchmark that carries each one on the wire.
RESOURCE_BENCHMARKS: dict[str, str] = {
    "cpu_cores": "cpu-cores",
    "ram_bytes": "ram-size",
    "storage_bytes": "storage-size",
    "net_in_bps": "net-download",
    "net_out_bps": "net-upload",
    "gpu_count": "gpu-count",
    "gpu_mem_bytes": "gpu-mem",
}


def make_benchmarks(
    values: Mapping[str, int] | None = None, **resources: int | None
) -> tuple[int, ...]:
    """The benchmark vector from names: `make_benchmarks({"gpu-count": 2}, ram_bytes=2**30)`.

    A resource may be given by its field name (`ram_bytes`, see RESOURCE_BENCHMARKS)
    or by its benchmark name in `values`; None means not given. Given both ways with
    different values is a FieldError naming the benchmark, never a silent choice of
    one: the order says one thing about its RAM, and it is what its author meant.
    Unnamed benchmarks are 0 (no requirement for a bid, nothing offered for an ask).
    """
    vector = [0] * len(BENCHMARK_NAMES)
    values = values or {}
    for name, value in values.items():
        if name not in BENCHMARK_INDEX:
            raise FieldError(f"benchmarks.{name}", f"unknown benchmark; known: {BENCHMARK_NAMES}")
        vector[BENCHMARK_INDEX[name]] = check_uint(f"benchmarks.{name}", value, UINT64_MAX)
    for field, given in resources.items():
        if field not in RESOURCE_BENCHMARKS:
            raise FieldError(field, f"not a resource; known: {tuple(RESOURCE_BENCHMARKS)}")
        if given is None:
            continue
        name = RESOURCE_BENCHMARKS[field]
        checked = check_uint(field, given, UINT64_MAX)
        if name in values and values[name] != checked:
            raise FieldError(
                f"benchmarks.{name}",
                f"{values[name]} conflicts with {field} = {checked}: give the resource once",
            )
        vector[BENCHMARK_INDEX[name]] = checked
    return tuple(vector)


@dataclass(frozen=True)
class Order:
    author: bytes  # 20-byte address; the signer
    side: Side
    price_per_hour: int  # token base units (10^-18 SNM) per hour
    duration: int  # seconds the slot is offered / needed; 0 = spot (pay as you go)
    benchmarks: tuple[int, ...]  # len(BENCHMARK_NAMES) uint64 values, by index
    network: NetworkType
    properties: tuple[Property, ...]  # sorted by key, keys unique
    counterparty: bytes  # only deal with this address; ZERO_ADDRESS = anyone
    blacklist: tuple[bytes, ...]  # never deal with these addresses; sorted, unique
    min_rating: int  # the counterparty's rating must reach this, in basis points
    geo: str  # ISO 3166-1 alpha-2 country ("" = unspecified / anywhere)
    nonce: int  # unique per author
    valid_from: int  # unix seconds
    valid_until: int  # unix seconds
    signature: bytes = b""

    KIND: ClassVar[MessageKind] = MessageKind.ORDER
    EIP712_TYPE: ClassVar[StructType] = ORDER_TYPE
    # Each nonce once: an author has many live orders at the same time.
    MONOTONIC: ClassVar[bool] = False

    def validate(self) -> None:
        if not self._plainly_valid():
            self._validate_field_by_field()

    def _plainly_valid(self) -> bool:
        """The checks below as one expression, for the common order (known
        properties, no blacklist): every order is validated on every node before its
        signature is, so this is on the hot path. True only if every check below
        would pass; anything else, valid or not, goes through them one by one, which
        then names the field at fault."""
        author, counterparty, geo, sig = self.author, self.counterparty, self.geo, self.signature
        duration, rating, start, end = (
            self.duration,
            self.min_rating,
            self.valid_from,
            self.valid_until,
        )
        bench, props, price = self.benchmarks, self.properties, self.price_per_hour
        if not (
            type(author) is bytes
            and len(author) == 20
            and type(counterparty) is bytes
            and len(counterparty) == 20
            and type(self.side) is Side
            and type(self.network) is NetworkType
            and type(price) is int
            and 0 <= price <= UINT256_MAX
            and all_uints((duration, rating, self.nonce, start, end), UINT64_MAX)
            and duration <= ORDER_MAX_DURATION_SECONDS
            and rating <= RATING_MAX
            and start < end
            and end - start <= ORDER_MAX_VALIDITY_SECONDS
            and type(bench) is tuple
            and len(bench) == len(BENCHMARK_NAMES)
            and all_uints(bench, UINT64_MAX)
            and type(self.blacklist) is tuple
            and not self.blacklist
            and type(geo) is str
            and (not geo or COUNTRY_CODE.match(geo) is not None)
            and type(sig) is bytes
            and (not sig or (len(sig) == 65 and sig[64] in (27, 28)))
            and type(props) is tuple
            and len(props) <= ORDER_MAX_PROPERTIES
        ):
            return False
        previous = None
        for prop in props:
            if type(prop) is not Property or not _known_valid(prop):
                return False
            if previous is not None and not previous < prop.key:  # sorted, unique
                return False
            previous = prop.key
        return True

    def _validate_field_by_field(self) -> None:
        check_address("author", self.author)
        if not isinstance(self.side, Side):
            raise FieldError("side", f"1 (ASK) or 2 (BID) expected, got {self.side!r}")
        check_uint("price_per_hour", self.price_per_hour, UINT256_MAX)
        check_uint("duration", self.duration, ORDER_MAX_DURATION_SECONDS)
        bench = check_tuple("benchmarks", self.benchmarks, len(BENCHMARK_NAMES))
        if len(bench) != len(BENCHMARK_NAMES):
            raise FieldError(
                "benchmarks", f"exactly {len(BENCHMARK_NAMES)} values expected, got {len(bench)}"
            )
        if not all_uints(bench, UINT64_MAX):
            for i, value in enumerate(bench):
                check_uint(f"benchmarks.{BENCHMARK_NAMES[i]}", value, UINT64_MAX)
        if not isinstance(self.network, NetworkType):
            raise FieldError("network", f"0 (none), 1 (out) or 3 (in/out), got {self.network!r}")
        props = check_tuple("properties", self.properties, ORDER_MAX_PROPERTIES)
        for i, prop in enumerate(props):
            if not isinstance(prop, Property):
                raise FieldError(f"properties[{i}]", "a (key, value) pair expected")
            if not _known_valid(prop):
                prop.validate(f"properties[{i}]")
                _remember_valid(prop)
        keys = [p.key for p in self.properties]
        if keys != sorted(set(keys)):
            raise FieldError("properties", "keys must be unique and sorted")
        check_address("counterparty", self.counterparty)
        black = check_tuple("blacklist", self.blacklist, ORDER_MAX_BLACKLIST)
        for i, addr in enumerate(black):
            check_address(f"blacklist[{i}]", addr)
        if list(self.blacklist) != sorted(set(self.blacklist)):
            raise FieldError("blacklist", "addresses must be unique and sorted")
        check_uint("min_rating", self.min_rating, RATING_MAX)
        check_str("geo", self.geo, 2)
        if self.geo and not COUNTRY_CODE.match(self.geo):
            raise FieldError("geo", f"two capital letters (ISO 3166-1) or empty, got {self.geo!r}")
        check_uint("nonce", self.nonce, UINT64_MAX)
        check_window(self.valid_from, self.valid_until, ORDER_MAX_VALIDITY_SECONDS)
        check_signature("signature", self.signature)

    @classmethod
    def create(
        cls,
        *,
        author: bytes,
        side: Side,
        price_per_hour: int,
        duration: int,
        nonce: int,
        valid_from: int,
        valid_until: int,
        cpu_cores: int | None = None,
        ram_bytes: int | None = None,
        storage_bytes: int | None = None,
        gpu_count: int | None = None,
        gpu_mem_bytes: int | None = None,
        net_in_bps: int | None = None,
        net_out_bps: int | None = None,
        benchmarks: Mapping[str, int] | None = None,
        network: NetworkType = NetworkType.NONE,
        properties: Mapping[str, str] | None = None,
        counterparty: bytes = ZERO_ADDRESS,
        blacklist: tuple[bytes, ...] = (),
        min_rating: int = 0,
        geo: str = "",
    ) -> Order:
        """Build an unsigned order from named resources, sorting what must be sorted.

        A resource left None is not given (0 unless `benchmarks` names it); given
        both as a keyword and in `benchmarks` with different values is a FieldError.
        """
        bench = make_benchmarks(
            benchmarks,
            cpu_cores=cpu_cores,
            ram_bytes=ram_bytes,
            storage_bytes=storage_bytes,
            gpu_count=gpu_count,
            gpu_mem_bytes=gpu_mem_bytes,
            net_in_bps=net_in_bps,
            net_out_bps=net_out_bps,
        )
        order = cls(
            author=author,
            side=side,
            price_per_hour=price_per_hour,
            duration=duration,
            benchmarks=bench,
            network=network,
            properties=tuple(Property(k, v) for k, v in sorted((properties or {}).items())),
            counterparty=counterparty,
            blacklist=tuple(sorted(set(blacklist))),
            min_rating=min_rating,
            geo=geo,
            nonce=nonce,
            valid_from=valid_from,
            valid_until=valid_until,
        )
        order.validate()
        return order

    def benchmark(self, name: str) -> int:
        return self.benchmarks[BENCHMARK_INDEX[name]]

    @property
    def cpu_cores(self) -> int:
        return self.benchmark("cpu-cores")

    @property
    def ram_bytes(self) -> int:
        return self.benchmark("ram-size")

    @property
    def storage_bytes(self) -> int:
        return self.benchmark("storage-size")

    @property
    def gpu_count(self) -> int:
        return self.benchmark("gpu-count")

    @property
    def gpu_mem_bytes(self) -> int:
        return self.benchmark("gpu-mem")

    @property
    def net_in_bps(self) -> int:
        return self.benchmark("net-download")

    @property
    def net_out_bps(self) -> int:
        return self.benchmark("net-upload")

    @property
    def signer(self) -> bytes:
        return self.author

    @property
    def replay_key(self) -> bytes:
        return bytes([self.KIND]) + self.author

    @property
    def replay_number(self) -> int:
        return self.nonce

    def digest(self, domain: SigningDomain) -> bytes:
        return eip712.digest(domain, ORDER_TYPE, self)

    def order_id(self, domain: SigningDomain) -> bytes:
        """The order's id: its EIP-712 digest (32 bytes)."""
        return self.digest(domain)

    def signed(self, domain: SigningDomain, private_key: bytes) -> Order:
        return dataclasses.replace(
            self, signature=eip712.sign_digest(self.digest(domain), private_key)
        )


@dataclass(frozen=True)
class OrderCancel:
    """The author withdraws an order before its window ends."""

    author: bytes  # 20-byte address; the signer, and the cancelled order's author
    order_id: bytes  # 32 bytes: the cancelled order's id
    nonce: int  # unique per author among cancellations
    valid_from: int
    valid_until: int  # should reach the order's own valid_until, so late joiners learn it
    signature: bytes = b""

    KIND: ClassVar[MessageKind] = MessageKind.ORDER_CANCEL
    EIP712_TYPE: ClassVar[StructType] = ORDER_CANCEL_TYPE
    MONOTONIC: ClassVar[bool] = False

    def validate(self) -> None:
        check_address("author", self.author)
        check_bytes("order_id", self.order_id, 32, 32)
        check_uint("nonce", self.nonce, UINT64_MAX)
        check_window(self.valid_from, self.valid_until, ORDER_MAX_VALIDITY_SECONDS)
        check_signature("signature", self.signature)

    @property
    def signer(self) -> bytes:
        return self.author

    @property
    def replay_key(self) -> bytes:
        return bytes([self.KIND]) + self.author

    @property
    def replay_number(self) -> int:
        return self.nonce

    def digest(self, domain: SigningDomain) -> bytes:
        return eip712.digest(domain, ORDER_CANCEL_TYPE, self)

    def signed(self, domain: SigningDomain, private_key: bytes) -> OrderCancel:
        return dataclasses.replace(
            self, signature=eip712.sign_digest(self.digest(domain), private_key)
        )
