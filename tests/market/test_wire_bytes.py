"""The exact bytes of one frame of every kind on `/sonm/deal/1`, `/sonm/task/1` and
`/sonm/worker/1`, signed with a fixed key in a fixed domain: the encoders may be
reorganised, the bytes a peer sees may not change (docs/market.md and
docs/workers.md describe them)."""

from __future__ import annotations

from typing import Any

import pytest

from gossip.eip712 import SigningDomain, address_of_key
from p2pnode.executor.spec import BlobInput, InputFile, TaskSpec
from p2pnode.market import dealwire as d
from p2pnode.market import taskwire as t
from p2pnode.worker import wire as w

DOMAIN = SigningDomain(chain_id=31337)
KEY = bytes(range(1, 33))
ME = address_of_key(KEY)
OTHER = bytes(range(20))
ID32 = bytes(range(32))
SPEC = t.pack_spec(
    TaskSpec(
        image="localhost/busybox:latest",
        command=("sh", "-c", "echo hi"),
        env=(("A", "1"),),
        inputs=(InputFile(path="in/a.txt", content=b"abc", mode=0o644),),
        blobs=(BlobInput(path="in/b.bin", sha256=ID32, size=5, mode=0o600),),
    )
)


def _messages() -> dict[str, tuple[Any, Any]]:
    """name -> (wire module, message), signed ones signed with KEY."""
    signed: list[tuple[Any, Any]] = [
        (d, d.DealRequest(ME, ID32, ID32[::-1], 7, 1_000)),
        (d, d.DealReply(ME, ID32, OTHER, 1, 1_100, "ok")),
        (d, d.DealProposed(ME, ID32, 42)),
        (d, d.DealVerdict(ME, 42, 0, "no slot")),
        (t, t.TaskStart(ME, 42, SPEC, 1_000)),
        (t, t.TaskAnswer(ME, 42, 1, "")),
        (t, t.LogsRequest(ME, 42, 1, 10, 5, 3, 4, 1_000)),
        (t, t.ResultsRequest(ME, 42, 1_000)),
        (t, t.BlobRequest(ME, 42, ID32, 1_000)),
        (w, w.OfferRequest(ME, 3, 1_000)),
        (w, w.Offer(ME, OTHER, OTHER, 3 * 10**21, 3600, 1, "")),
        (w, w.JoinRequest(ME, OTHER, OTHER, "/ip4/127.0.0.1/tcp/1", b"{}", 5, 60, 3, 1_000)),
        (w, w.LeaveNotice(ME, OTHER, OTHER, 4, 1_000)),
        (w, w.HubAnswer(ME, OTHER, ID32, 1, 900, "")),
        (
            w,
            w.TaskOrder(
                ME, OTHER, 42, OTHER, SPEC, 2, 2**30, 0, 1, ("GPU-1", "GPU-2"), 2_000, 1_000
            ),
        ),
        (w, w.LogsOrder(ME, OTHER, 42, 1, 10, 1_000)),
        (w, w.ResultsOrder(ME, OTHER, 42, 1_000)),
        (w, w.StopOrder(ME, OTHER, 42, 1_000)),
        (w, w.WorkerAnswer(ME, OTHER, 42, 0, "busy")),
    ]
    unsigned: list[tuple[Any, Any]] = [
        (t, t.LogRecord(int(t.LogStream.STDERR), 12, b"line\n")),
        (t, t.ResultsHeader(b'{"r":1}', 1234)),
        (t, t.BlobHeader(5)),
        (t, t.BlobRefused("not offered")),
    ]
    out = {}
    for mod, msg in signed:
        out[f"{mod.PROTOCOL_ID} {type(msg).__name__}"] = (mod, mod.sign(msg, DOMAIN, KEY))
    for mod, msg in unsigned:
        out[f"{mod.PROTOCOL_ID} {type(msg).__name__}"] = (mod, msg)
    return out


GOLDEN: dict[str, str] = {
    "/sonm/deal/1 DealProposed": (
        "7f960301c4146370ef2f4db3611d657b90667de398a2cc2a370cc420000102030405060708090a0b"
        "0c0d0e0f101112131415161718191a1b1c1d1e1f2ac441c732dbe2b81a09614a0d8bcaa20ba37199"
        "c832e153ffc49acca7999f735fbd1508d2174e71770da69e59e0251cdb5ec9a24aa0dab818ea5b5a"
        "a107e587c4db5e1b"
    ),
    "/sonm/deal/1 DealReply": (
        "9b01990201c4146370ef2f4db3611d657b90667de398a2cc2a370cc420000102030405060708090a"
        "0b0c0d0e0f101112131415161718191a1b1c1d1e1fc414000102030405060708090a0b0c0d0e0f10"
        "11121301cd044ca26f6bc441ba769b207e1133b36e3155ed166484c49ad730d7a7c5c2ad1ad4b7b6"
        "5584367a402e4b0f575da14493c7fc4e0e74d8297373d8d7dde56d8c6a1233aded2eb48e1b"
    ),
    "/sonm/deal/1 DealRequest": (
        "a401980101c4146370ef2f4db3611d657b90667de398a2cc2a370cc420000102030405060708090a"
        "0b0c0d0e0f101112131415161718191a1b1c1d1e1fc4201f1e1d1c1b1a191817161514131211100f"
        "0e0d0c0b0a0908070605040302010007cd03e8c44171685caf473273a03969120b14493dbec2ed52"
        "9662ced5802e0227f1bdb7d2fe16025cde982d196b49c39c480cac481c194ff8c8a418820444b7df"
        "b3102a23ae1b"
    ),
    "/sonm/deal/1 DealVerdict": (
        "66970401c4146370ef2f4db3611d657b90667de398a2cc2a370c2a00a76e6f20736c6f74c441907d"
        "61866afe9cd1a9099170fb08fbc69a8881a0d290e9b49e623cb0ade5d4c54b4c4bb4426758efec78"
        "c9dc2530c6e9a8fbca0a9c1f2e4da442812cc5668b021c"
    ),
    "/sonm/task/1 BlobHeader": ("0493080105"),
    "/sonm/task/1 BlobRefused": ("0f930901ab6e6f74206f666665726564"),
    "/sonm/task/1 BlobRequest": (
        "8201970701c4146370ef2f4db3611d657b90667de398a2cc2a370c2ac42000010203040506070809"
        "0a0b0c0d0e0f101112131415161718191a1b1c1d1e1fcd03e8c441c99d71f62d4165e4c029d24df7"
        "e84c92db6146d83a69e15991addaa9cff43930444d16c8d29e61667508975f7e35690a25c4e2bfee"
        "b74075acb01778712c0d481c"
    ),
    "/sonm/task/1 LogRecord": ("0c950501010cc4056c696e650a"),
    "/sonm/task/1 LogsRequest": (
        "659b0301c4146370ef2f4db3611d657b90667de398a2cc2a370c2a010a050304cd03e8c4413c539e"
        "0d0d03fe91175300dbceb4bc458d6f86972747ae335b19e48d6c23e77d7424e0fd73eca916a64fd6"
        "de726da63c5af47fe9a4bdf9b8ee5a8524e9a089db1c"
    ),
    "/sonm/task/1 ResultsHeader": ("0f940601c4077b2272223a317dcd04d2"),
    "/sonm/task/1 ResultsRequest": (
        "60960401c4146370ef2f4db3611d657b90667de398a2cc2a370c2acd03e8c441baef4f4cb46a3294"
        "3c87735bd77f8cc78aeab1097f81e67fa8a6bf336b2d121c7bb6a453e795d760322abeb60fab5fe4"
        "5efedf5ee3f3e57de4a88d13e8df06011c"
    ),
    "/sonm/task/1 TaskAnswer": (
        "5f970201c4146370ef2f4db3611d657b90667de398a2cc2a370c2a01a0c441c20084cae1328052b4"
        "c03f7b43d5a2b3a8317b556d5ae921ac67b22be36e2e6a668840465de02a4b63ba67452466c24934"
        "50036872032910967afefe07a8ff921b"
    ),
    "/sonm/task/1 TaskStart": (
        "dc01970101c4146370ef2f4db3611d657b90667de398a2cc2a370c2ac47a97b86c6f63616c686f73"
        "742f62757379626f783a6c617465737493a27368a22d63a76563686f2068699192a141a131a52f77"
        "6f726b909193a8696e2f612e747874c403616263cd01a49194a8696e2f622e62696ec42000010203"
        "0405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f05cd0180cd03e8c441eee22b"
        "0c538dcde8591d6f586a7dab95dd165828d98696712fbceb2e89c9834f337fc85d6e0f3e7b4241a7"
        "8a8247c342100a14bf5d70f2c5695930176b5f668e1c"
    ),
    "/sonm/worker/1 HubAnswer": (
        "9901990501c4146370ef2f4db3611d657b90667de398a2cc2a370cc414000102030405060708090a"
        "0b0c0d0e0f10111213c420000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c"
        "1d1e1f01cd0384a0c4414ba326e1953d2fda2fde05f8e3afe90b952150934d92a75ab76af43a8838"
        "1105428bfb8699f45924a346ccc6b99be0b1e3b94e83a3b6022bcec49939e7775f3a1c"
    ),
    "/sonm/worker/1 JoinRequest": (
        "a9019c0301c4146370ef2f4db3611d657b90667de398a2cc2a370cc414000102030405060708090a"
        "0b0c0d0e0f10111213c414000102030405060708090a0b0c0d0e0f10111213b42f6970342f313237"
        "2e302e302e312f7463702f31c4027b7dc401053c03cd03e8c441c361788245f3ad2cd5f35a2af1d8"
        "45a4ef316468d8abc770393b399de1333a59249a5f8d373df4e84f4ea8754e22acc8ac05ab310e65"
        "538403eba86cf30edcc41c"
    ),
    "/sonm/worker/1 LeaveNotice": (
        "8c01980401c4146370ef2f4db3611d657b90667de398a2cc2a370cc414000102030405060708090a"
        "0b0c0d0e0f10111213c414000102030405060708090a0b0c0d0e0f1011121304cd03e8c4418c4d29"
        "ed3c33751244386065a2d3a34bb759491a8c1e6e39f4763e3de934a3753c07107292a0e02e8aac53"
        "f889973f2d7213c30802b772165f3aef00fcabf5f21b"
    ),
    "/sonm/worker/1 LogsOrder": (
        "78990701c4146370ef2f4db3611d657b90667de398a2cc2a370cc414000102030405060708090a0b"
        "0c0d0e0f101112132a010acd03e8c441bdc65ecfdaa0721a0ed9009444bd6f539979907e8c57c39f"
        "1b44021cd126dd947a95087be643099b5b9015b7e5aef88f8a3bb9bfad8041056f361ac939c81275"
        "1b"
    ),
    "/sonm/worker/1 Offer": (
        "98019a0201c4146370ef2f4db3611d657b90667de398a2cc2a370cc414000102030405060708090a"
        "0b0c0d0e0f10111213c414000102030405060708090a0b0c0d0e0f10111213c409a2a15d09519be0"
        "0000cd0e1001a0c441674037d46a00b3ff18228bc2b79dab59da5e8bc84d4c758c02194142366f30"
        "bd3cb6183b3a36a4ae748250659d8512e18dbf71402d8f866088942ba3b6daca3e1c"
    ),
    "/sonm/worker/1 OfferRequest": (
        "60960101c4146370ef2f4db3611d657b90667de398a2cc2a370c03cd03e8c441d3ebc2da13648312"
        "0d449e081f4d691a8719f2d0834302aa1ecda4d209acd572267a774139996b78a5d25480b6e6b2a6"
        "2fba112bed0dbaeed2bb4efe2c7d72cd1c"
    ),
    "/sonm/worker/1 ResultsOrder": (
        "76970801c4146370ef2f4db3611d657b90667de398a2cc2a370cc414000102030405060708090a0b"
        "0c0d0e0f101112132acd03e8c4418386b4e3d5a8c8e0e21dd5df2bbd44383ce15e6c9d696edfc2c6"
        "0722cc7ccf272f6321e750b79b35514e8b49506f7a92d0fc601a451d3411bbcc63ffad42a2af1c"
    ),
    "/sonm/worker/1 StopOrder": (
        "76970901c4146370ef2f4db3611d657b90667de398a2cc2a370cc414000102030405060708090a0b"
        "0c0d0e0f101112132acd03e8c44109a427e5a25228a0fa252e52e453f52747df43a8f8e3bd1d891a"
        "fbb297d601d02c5bd74651a85e14cee75c5ffd598ce069f726b8a4a1e4ec37633540a3c2ae3c1b"
    ),
    "/sonm/worker/1 TaskOrder": (
        "a0029f0601c4146370ef2f4db3611d657b90667de398a2cc2a370cc414000102030405060708090a"
        "0b0c0d0e0f101112132ac414000102030405060708090a0b0c0d0e0f10111213c47a97b86c6f6361"
        "6c686f73742f62757379626f783a6c617465737493a27368a22d63a76563686f2068699192a141a1"
        "31a52f776f726b909193a8696e2f612e747874c403616263cd01a49194a8696e2f622e62696ec420"
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f05cd018002ce4000"
        "0000000192a54750552d31a54750552d32cd07d0cd03e8c441cd6485318449d046be5acd6d37e061"
        "e8a32cc42e7f6f745038ca1aecf19081133bdeac516ebf202c031efc1f32777653b40dd5586d4aa5"
        "02101fca2563f66f171b"
    ),
    "/sonm/worker/1 WorkerAnswer": (
        "79980a01c4146370ef2f4db3611d657b90667de398a2cc2a370cc414000102030405060708090a0b"
        "0c0d0e0f101112132a00a462757379c441daf6119f8fb296eefd7b91c3397125e6dea351e568a5f3"
        "dce71cd528145784ef1a3ee60344febb688f3beb1ad4e1a5c4c96746f239e1f5fbf9e90c3a577df9"
        "491b"
    ),
}


def test_every_kind_is_pinned() -> None:
    kinds = {f"{m.PROTOCOL_ID} {c.__name__}" for m in (d, t, w) for c in m._CLASSES.values()}
    assert kinds == set(_messages()) == set(GOLDEN)


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_frame_bytes_are_pinned(name: str) -> None:
    mod, msg = _messages()[name]
    framed = mod.frame(msg)
    assert framed.hex() == GOLDEN[name]
    payload = mod.encode(msg)
    assert framed.endswith(payload)
    expect = type(msg) if mod is d else (type(msg),)
    assert mod.decode(payload, DOMAIN, expect=expect) == msg
