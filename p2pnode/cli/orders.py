"""`sonm-p2p order ask|bid|cancel|explain` and `sonm-p2p orders`, through the node's
local API. An order's fields come from options or from a TOML/JSON file (`--file`)
whose keys are the options' names.

The command line speaks in units people use — prices in SNM (`0.25`), sizes like
`16GiB`, rates like `100Mbit`, durations like `2h` — and converts them to the base
units the wire carries (wei per hour, bytes, bit/s, seconds) before anything is
signed, so what the node signs is exactly what the table shows.
"""

from __future__ import annotations

import argparse
import decimal
import json
import re
import time
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from gossip.messages import UINT64_MAX, FieldError
from gossip.orders import BENCHMARK_INDEX, RESOURCE_BENCHMARKS, make_benchmarks
from p2pnode.cli.common import add_config_options, api_call, config_from_args
from p2pnode.errors import UserError

WEI_PER_SNM = 10**18
# what POST /orders and GET /orders take: 77 decimal digits, every one below 2^256
MAX_PRICE_WEI = 10**77 - 1
ID_SHOWN_MIN = 10  # "0x" and 8 hex digits: the shortest id prefix the table shows
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_RATE_UNITS = {"": 1, "bit": 1, "kbit": 10**3, "mbit": 10**6, "gbit": 10**9}
_TIME_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_QUANTITY = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*\Z")


# Arithmetic that never rounds: a product that does not fit exactly (too many digits,
# an exponent out of range) raises instead of quietly becoming a different number.
_EXACT = decimal.Context(
    prec=120,
    traps=[decimal.Inexact, decimal.InvalidOperation, decimal.Overflow, decimal.DivisionByZero],
)


def _quantity(option: str, text: str, units: dict[str, int], example: str) -> int:
    m = _QUANTITY.match(text)
    unit = m.group(2).lower() if m else ""
    if m is None or unit not in units:
        allowed = ", ".join(u for u in units if u)
        raise UserError(
            f"{option} {text!r}: expected a number with a unit ({allowed}), e.g. {example}"
        )
    try:
        value = _EXACT.multiply(Decimal(m.group(1)), units[unit])
    except decimal.DecimalException:
        raise UserError(f"{option} {text!r}: too many digits") from None
    if value != value.to_integral_value():
        raise UserError(f"{option} {text!r}: not a whole number of base units")
    if value > UINT64_MAX:
        raise UserError(f"{option} {text!r}: at most {UINT64_MAX} base units")
    return int(value)


def parse_size(option: str, text: str) -> int:
    """Bytes from `16GiB`, `500MB`, `1024`."""
    return _quantity(option, text, _SIZE_UNITS, "16GiB")


def parse_rate(option: str, text: str) -> int:
    """Bits per second from `100Mbit`, `1Gbit`, `5000`."""
    return _quantity(option, text, _RATE_UNITS, "100Mbit")


def parse_duration(option: str, text: str) -> int:
    """Seconds from `90s`, `30m`, `2h`, `1d`, `3600`."""
    return _quantity(option, text, _TIME_UNITS, "2h")


def parse_price(option: str, text: str) -> int:
    """Wei per hour from an SNM amount (`0.25`), or from `123wei`."""
    raw = text.strip().lower()
    try:
        if raw.endswith("wei"):
            value = _EXACT.plus(Decimal(raw[:-3]))
        else:
            value = _EXACT.multiply(Decimal(raw.removesuffix("snm")), WEI_PER_SNM)
        if not value.is_finite() or value < 0 or value != value.to_integral_value():
            raise UserError(f"{option} {text!r}: must be >= 0 and at most 18 decimals")
        if value > MAX_PRICE_WEI:
            raise UserError(f"{option} {text!r}: at most {MAX_PRICE_WEI} wei")
    except decimal.DecimalException:  # not a number, or not exactly a whole number of wei
        raise UserError(
            f"{option} {text!r}: expected an SNM amount like 0.25 or 10wei, "
            "exact to the wei and below 10^77 wei"
        ) from None
    return int(value)


def parse_pairs(option: str, items: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"{option} {item!r}: expected KEY=VALUE")
        out[key] = value
    return out


def format_snm(wei: int) -> str:
    text = f"{Decimal(wei) / WEI_PER_SNM:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def format_size(n: int) -> str:
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.4g}{unit}"
    return f"{n}B"


def format_duration(s: int) -> str:
    if s == 0:
        return "spot"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size and s % size == 0:
            return f"{s // size}{unit}"
    return f"{s}s"


# --- the API ----------------------------------------------------------------------------


# --- commands ---------------------------------------------------------------------------


def register(subparsers: Any) -> None:
    order = subparsers.add_parser("order", help="place or cancel a market order")
    sub = order.add_subparsers(dest="order_command", metavar="ACTION", required=True)
    for side, what in (("ask", "offer a slot (supplier)"), ("bid", "ask for resources (consumer)")):
        p = sub.add_parser(side, help=f"sign and publish a {side.upper()}: {what}")
        add_config_options(p)
        _order_options(p)
        p.set_defaults(func=cmd_place, side=side)
    cancel = sub.add_parser("cancel", help="cancel one of this node's orders")
    add_config_options(cancel)
    cancel.add_argument(
        "order_id", help="0x-prefixed order id, or a prefix of it as `orders` shows it"
    )
    cancel.add_argument("--json", action="store_true", help="print the raw JSON")
    cancel.set_defaults(func=cmd_cancel)
    explain = sub.add_parser(
        "explain", help="why a BID does or does not match: what each constraint rules out"
    )
    add_config_options(explain)
    explain.add_argument("order_id", help="the BID's 0x id, or a prefix of it as `orders` shows")
    explain.add_argument("--json", action="store_true", help="print the raw JSON")
    explain.set_defaults(func=cmd_explain)

    orders = subparsers.add_parser("orders", help="list the orders this node has seen")
    add_config_options(orders)
    orders.add_argument("--side", choices=("ask", "bid"))
    orders.add_argument("--author", metavar="ADDRESS")
    orders.add_argument("--min-price", metavar="SNM", help="per hour")
    orders.add_argument("--max-price", metavar="SNM", help="per hour")
    orders.add_argument("--min-cpu", type=int, metavar="CORES")
    orders.add_argument("--min-ram", metavar="SIZE", help="e.g. 8GiB")
    orders.add_argument("--min-storage", metavar="SIZE")
    orders.add_argument("--min-gpus", type=int, metavar="N")
    orders.add_argument("--min-gpu-mem", metavar="SIZE")
    orders.add_argument("--network", choices=("none", "out", "in/out"))
    orders.add_argument("--geo", metavar="CC", help="ISO country code, e.g. DE")
    orders.add_argument("--own", action="store_true", help="only this node's orders")
    orders.add_argument("--all", action="store_true", help="include cancelled and expired")
    orders.add_argument("--sort", choices=("price", "-price", "received"), default="price")
    orders.add_argument("--limit", type=int, default=100)
    orders.add_argument("--json", action="store_true", help="print the raw JSON")
    orders.set_defaults(func=cmd_list)


# What an option left out means; the defaults apply after --file, so a file's value
# stands unless the same option is also typed.
_DEFAULTS: dict[str, Any] = {
    "duration": "0",
    "network": "none",
    "min_rating": 0.0,
    "geo": "",
    "valid_for": "1d",
}


def _order_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--file",
        metavar="PATH",
        help="the order's fields from a .toml or .json file; keys as the options below "
        "(price, cpu, ram, bench = {NAME = VALUE}, ...); an option typed as well wins",
    )
    p.add_argument("--price", metavar="SNM", help="per hour, e.g. 0.25 (required)")
    p.add_argument("--duration", help="e.g. 2h, 1d; 0 = spot (default)")
    p.add_argument("--cpu", type=int, metavar="CORES")
    p.add_argument("--ram", metavar="SIZE", help="e.g. 16GiB")
    p.add_argument("--storage", metavar="SIZE")
    p.add_argument("--gpus", type=int, metavar="N")
    p.add_argument("--gpu-mem", metavar="SIZE", help="per GPU")
    p.add_argument("--net-in", metavar="RATE", help="download, e.g. 100Mbit")
    p.add_argument("--net-out", metavar="RATE", help="upload")
    p.add_argument("--network", choices=("none", "out", "in/out"))
    p.add_argument(
        "--bench",
        action="append",
        metavar="NAME=VALUE",
        help="a benchmark; a resource's name (ram-size, gpu-count, ...) sets that resource",
    )
    p.add_argument("--prop", action="append", metavar="KEY=VALUE", help="a property")
    p.add_argument("--counterparty", metavar="ADDRESS", help="only deal with this address")
    p.add_argument("--blacklist", action="append", metavar="ADDRESS", help="never deal with")
    p.add_argument("--min-rating", type=float, metavar="PERCENT")
    p.add_argument("--geo", metavar="CC", help="ISO country code, e.g. DE")
    p.add_argument("--valid-for", help="how long the order stands, e.g. 6h")
    p.add_argument("--json", action="store_true", help="print the raw JSON")


# --file keys: the option's name (dashes or underscores) -> (attribute, kind)
_FILE_KEYS: dict[str, tuple[str, str]] = {
    "price": ("price", "amount"),
    "duration": ("duration", "quantity"),
    "cpu": ("cpu", "int"),
    "ram": ("ram", "quantity"),
    "storage": ("storage", "quantity"),
    "gpus": ("gpus", "int"),
    "gpu-mem": ("gpu_mem", "quantity"),
    "net-in": ("net_in", "quantity"),
    "net-out": ("net_out", "quantity"),
    "network": ("network", "network"),
    "bench": ("bench", "table"),
    "prop": ("prop", "table"),
    "counterparty": ("counterparty", "str"),
    "blacklist": ("blacklist", "list"),
    "min-rating": ("min_rating", "number"),
    "geo": ("geo", "str"),
    "valid-for": ("valid_for", "quantity"),
}


def read_order_file(path: str, side: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The option values a .toml/.json order file gives, and for each the label its
    errors carry (`BID.toml: ram`). Unknown keys and values of the wrong type are
    one-line errors naming the key."""
    where = Path(path)
    try:
        text = where.read_bytes()
    except OSError as exc:
        raise UserError(f"--file {path}: {exc.strerror or exc}") from None
    name = where.name
    try:
        if where.suffix.lower() == ".toml":
            raw: Any = tomllib.loads(text.decode("utf-8"))
        elif where.suffix.lower() == ".json":
            raw = json.loads(text)
        else:
            raise UserError(f"--file {path}: expected a .toml or .json file")
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{name}: not valid {where.suffix[1:].upper()}: {exc}") from None
    if not isinstance(raw, dict):
        raise UserError(f"{name}: expected a table of fields at the top")
    values: dict[str, Any] = {}
    labels: dict[str, str] = {}
    for key, value in raw.items():
        norm = str(key).replace("_", "-")
        label = f"{name}: {key}"
        if norm == "side":
            if value != side:
                raise UserError(f"{label}: {value!r}, but this command places a {side}")
            continue
        if norm not in _FILE_KEYS:
            allowed = ", ".join(["side", *_FILE_KEYS])
            raise UserError(f"{name}: unknown key {key!r} (allowed: {allowed})")
        attr, kind = _FILE_KEYS[norm]
        values[attr] = _file_value(label, kind, value)
        labels[attr] = label
    return values, labels


def _file_value(label: str, kind: str, value: Any) -> Any:
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if kind == "int":
        if not is_int:
            raise UserError(f"{label}: {value!r}: expected a whole number")
        return value
    if kind in ("quantity", "amount"):
        if is_int:
            return str(value)
        if isinstance(value, str):
            return value
        hint = ' (write it as a string, e.g. "0.25")' if kind == "amount" else ""
        raise UserError(f"{label}: {value!r}: expected a string like the option takes{hint}")
    if kind == "number":
        if is_int or isinstance(value, float):
            return float(value)
        raise UserError(f"{label}: {value!r}: expected a number")
    if kind == "network":
        if value not in ("none", "out", "in/out"):
            raise UserError(f"{label}: {value!r}: expected none, out or in/out")
        return value
    if kind == "str":
        if not isinstance(value, str):
            raise UserError(f"{label}: {value!r}: expected a string")
        return value
    if kind == "list":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise UserError(f"{label}: {value!r}: expected a list of strings")
        return value
    # a table: NAME = VALUE, as the repeatable option's NAME=VALUE items
    if not isinstance(value, dict):
        raise UserError(f"{label}: {value!r}: expected a table of NAME = VALUE")
    items = []
    for k, v in value.items():
        if isinstance(v, bool) or not isinstance(v, (int, str)):
            raise UserError(f"{label}.{k}: {v!r}: expected a whole number or a string")
        items.append(f"{k}={v}")
    return items


def _with_file(args: argparse.Namespace) -> tuple[argparse.Namespace, dict[str, str]]:
    """Options typed, else the file's values, else the defaults; and the error label
    of each value that came from the file."""
    merged = argparse.Namespace(**vars(args))
    labels: dict[str, str] = {}
    path = getattr(args, "file", None)
    if path:
        values, file_labels = read_order_file(path, args.side)
        for attr, value in values.items():
            current = getattr(merged, attr, None)
            if current is None:
                setattr(merged, attr, value)
                labels[attr] = file_labels[attr]
            elif attr in ("bench", "prop", "blacklist"):  # repeatable: the file's, then typed
                setattr(merged, attr, [*value, *current])
    for attr, value in _DEFAULTS.items():
        if getattr(merged, attr, None) is None:
            setattr(merged, attr, value)
    if getattr(merged, "price", None) is None:
        raise UserError("--price is required (as an option, or `price` in --file)")
    return merged, labels


def order_body(args: argparse.Namespace) -> dict[str, Any]:
    """The POST /orders body from the command line (and --file), in base units.

    A resource may come from its own option (`--ram 16GiB`) or from `--bench
    ram-size=...`; the order model decides (given once: that value; given twice
    and different: an error naming both), so the value signed is the one typed.
    """
    args, labels = _with_file(args)

    def opt(attr: str) -> str:
        return labels.get(attr) or "--" + attr.replace("_", "-")

    benches: dict[str, int] = {}
    for name, value in parse_pairs(opt("bench"), args.bench).items():
        try:
            benches[name] = int(value)
        except ValueError:
            raise UserError(f"{opt('bench')} {name}={value!r}: expected a whole number") from None
    if not 0 <= args.min_rating <= 100:
        raise UserError(f"{opt('min_rating')} {args.min_rating}: allowed 0..100 (percent)")

    def given(parse: Any, attr: str) -> int | None:
        text = getattr(args, attr)
        return None if text is None else int(parse(opt(attr), text))

    resources = {
        "cpu_cores": args.cpu,
        "ram_bytes": given(parse_size, "ram"),
        "storage_bytes": given(parse_size, "storage"),
        "gpu_count": args.gpus,
        "gpu_mem_bytes": given(parse_size, "gpu_mem"),
        "net_in_bps": given(parse_rate, "net_in"),
        "net_out_bps": given(parse_rate, "net_out"),
    }
    try:
        vector = make_benchmarks(benches, **resources)
    except FieldError as exc:
        raise UserError(f"{opt('bench')} {exc}") from None
    named = set(RESOURCE_BENCHMARKS.values())
    return {
        "side": args.side,
        "price_per_hour": str(parse_price(opt("price"), args.price)),
        "duration": parse_duration(opt("duration"), args.duration),
        **{f: vector[BENCHMARK_INDEX[b]] for f, b in RESOURCE_BENCHMARKS.items()},
        "benchmarks": {b: v for b, v in benches.items() if b not in named},
        "network": args.network,
        "properties": parse_pairs(opt("prop"), args.prop),
        "counterparty": args.counterparty,
        "blacklist": args.blacklist or [],
        "min_rating": round(args.min_rating * 100),
        "geo": args.geo,
        "valid_for": parse_duration(opt("valid_for"), args.valid_for),
    }


def _print_result(console: Console, result: dict[str, Any], verb: str) -> None:
    order = result["order"]
    console.print(f"{verb} {order['side'].upper()} [bold]{order['order_id']}[/bold]")
    if result["published"]:
        console.print("published on /sonm/orders/1")
    else:
        console.print(
            f"[yellow]not published yet[/yellow] ({result.get('publish_error')}); "
            "the node will re-send it when peers appear"
        )


def cmd_place(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    result = api_call(config, "POST", "/orders", body=order_body(args))
    console = Console()
    if args.json:
        console.print_json(data=result)
    else:
        _print_result(console, result, "placed")
    return 0


_FULL_ID = re.compile(r"0[xX][0-9a-fA-F]{64}\Z")
_ID_PREFIX = re.compile(r"0[xX][0-9a-fA-F]{1,63}\Z")


def resolve_order_id(config: Any, text: str) -> str:
    """A full id as given; a prefix (as the orders table shows) resolved among this
    node's own orders, the only ones it can cancel, if exactly one starts with it."""
    text = text.strip()
    if _FULL_ID.match(text):
        return text
    if not _ID_PREFIX.match(text):
        raise UserError(f"order id {text!r}: expected 0x and hex digits (a full id or a prefix)")
    params = {"own": "true", "include_cancelled": "true", "include_expired": "true"}
    listed = api_call(config, "GET", "/orders", params={**params, "limit": 10_000})
    ids = [o["order_id"] for o in listed["orders"]]
    matches = [i for i in ids if i.lower().startswith(text.lower())]
    if not matches:
        raise UserError(f"order id {text}: no order of this node's starts with it")
    if len(matches) > 1:
        raise UserError(
            f"order id {text}: {len(matches)} of this node's orders start with it; give more digits"
        )
    return str(matches[0])


def short_ids(ids: list[str]) -> dict[str, str]:
    """For each id the shortest prefix (at least ID_SHOWN_MIN characters) no other id
    in the list shares, so what the table shows can be typed back into the CLI.

    In sorted order an id shares its longest prefix with a neighbour, so two
    comparisons per id suffice."""
    ordered = sorted(set(ids), key=str.lower)

    def common(a: str, b: str) -> int:
        n = 0
        for x, y in zip(a.lower(), b.lower(), strict=False):
            if x != y:
                break
            n += 1
        return n

    shown: dict[str, str] = {}
    for k, full in enumerate(ordered):
        shared = max(
            common(full, ordered[k - 1]) if k > 0 else 0,
            common(full, ordered[k + 1]) if k + 1 < len(ordered) else 0,
        )
        shown[full] = full[: max(ID_SHOWN_MIN, shared + 1)]
    return shown


def cmd_cancel(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    order_id = resolve_order_id(config, args.order_id)
    result = api_call(config, "POST", f"/orders/{order_id}/cancel")
    console = Console()
    if args.json:
        console.print_json(data=result)
    else:
        _print_result(console, result, "cancelled")
    return 0


def explain_table(data: dict[str, Any]) -> Table:
    """One row a constraint, those that rule ASKs out first (the likeliest answer to
    "why no match?" on top), then those that rule none out."""
    table = Table(title=f"BID {data['bid_id']}: {data['total']} ASKs, {data['matching']} match")
    table.add_column("constraint")
    table.add_column("rules out", justify="right")
    table.add_column("alone", justify="right")
    ranked = sorted(data["constraints"], key=lambda c: -c["ruled_out"])
    for c in ranked:
        table.add_row(c["name"], str(c["ruled_out"]), str(c["only"]))
    return table


def cmd_explain(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    order_id = resolve_order_id(config, args.order_id)
    data = api_call(config, "GET", f"/orders/{order_id}/explain")
    console = Console()
    if args.json:
        console.print_json(data=data)
        return 0
    console.print(explain_table(data))
    console.print("'alone': ASKs that fail this constraint and no other")
    w = data["winner"]
    if w is None:
        console.print("no ASK wins")
    else:
        console.print(
            f"wins: [bold]{w['order_id']}[/bold] by {w['author']} "
            f"at {format_snm(int(w['price_per_hour']))} SNM/h"
        )
    return 0


def list_params(args: argparse.Namespace) -> dict[str, Any]:
    def size(option: str, value: str | None) -> int | None:
        return parse_size(option, value) if value is not None else None

    def price(option: str, value: str | None) -> str | None:
        return str(parse_price(option, value)) if value is not None else None

    return {
        "side": args.side,
        "author": args.author,
        "min_price": price("--min-price", args.min_price),
        "max_price": price("--max-price", args.max_price),
        "min_cpu_cores": args.min_cpu,
        "min_ram_bytes": size("--min-ram", args.min_ram),
        "min_storage_bytes": size("--min-storage", args.min_storage),
        "min_gpu_count": args.min_gpus,
        "min_gpu_mem_bytes": size("--min-gpu-mem", args.min_gpu_mem),
        "network": args.network,
        "geo": args.geo,
        "own": "true" if args.own else None,
        "include_cancelled": "true" if args.all else None,
        "include_expired": "true" if args.all else None,
        "sort": args.sort,
        "limit": args.limit,
    }


def orders_table(data: dict[str, Any], now: float) -> Table:
    table = Table(title=f"{data['count']} orders")
    for name, justify in (
        ("id", "left"),
        ("side", "left"),
        ("price/h SNM", "right"),
        ("duration", "right"),
        ("cpu", "right"),
        ("ram", "right"),
        ("gpu", "right"),
        ("storage", "right"),
        ("net", "left"),
        ("geo", "left"),
        ("author", "left"),
        ("expires in", "right"),
        ("state", "left"),
    ):
        table.add_column(name, justify=justify, no_wrap=name == "id")  # type: ignore[arg-type]
    ids = short_ids([o["order_id"] for o in data["orders"]])
    for o in data["orders"]:
        gpu = f"{o['gpu_count']}x{format_size(o['gpu_mem_bytes'])}" if o["gpu_count"] else "-"
        left = o["valid_until"] - now
        state = "cancelled" if o["cancelled"] else ("expired" if left < 0 else "open")
        if o["own"]:
            state += ", own" + ("" if o["published"] else ", unsent")
        table.add_row(
            ids[o["order_id"]],
            o["side"].upper(),
            format_snm(int(o["price_per_hour"])),
            format_duration(o["duration"]),
            str(o["cpu_cores"]),
            format_size(o["ram_bytes"]),
            gpu,
            format_size(o["storage_bytes"]),
            o["network"],
            o["geo"] or "-",
            o["author"][:10] + "…",
            format_duration(max(0, int(left))) if left > 0 else "-",
            state,
        )
    return table


def cmd_list(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    data = api_call(config, "GET", "/orders", params=list_params(args))
    console = Console()
    if args.json:
        console.print_json(data=data)
    else:
        console.print(orders_table(data, time.time()))
    return 0
