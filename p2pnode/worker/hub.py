"""A hub's side of its workers: it announces itself, answers offers, joins and
leaves over `/sonm/worker/1`, keeps the registry, runs the tasks of slots held by
remote workers there, and pays its workers from the hub wallet.

Tasks on a remote worker (the `RemoteRunner` the tasks service calls):
- start: the consumer's spec and the slot's limits go to the worker in a TaskOrder
  signed by the hub; the worker's executor runs it; which worker holds which deal
  is written before the order is sent, so logs, results and the stop find it after
  a restart.
- logs: the worker's LogRecord frames are checked and passed to the consumer as
  they come.
- results: the hub fetches the archive and the receipt the worker signed, checks
  that signature (the worker's account, this deal) and the archive's sha256, and
  countersigns the same fields as the deal's supplier. The consumer verifies the
  hub's signature exactly as for a task the hub ran itself; the worker's receipt
  is kept next to the archive (`worker-receipt.json`), the hub's evidence of what
  its worker did.

Payouts: every `workers.payout_period` each worker is paid what it earned since
the last payout (pay per hour x hours joined) with HubWallet.transfer; the
contract credits the worker (who claims) less the lock fee. Each payout is
written down before its transaction is sent and settled by its receipt
(payouts.py), so a crash never pays a period twice nor loses it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio
from libp2p.custom_types import TProtocol
from multiaddr import Multiaddr

from gossip.eip712 import SigningDomain
from gossip.hubs import HubAnnouncement
from gossip.topics import HUBS_TOPIC
from p2pnode.errors import RemoteError, UserError
from p2pnode.executor import Receipt, verify_receipt
from p2pnode.hardware.bench import scores_from, with_scores
from p2pnode.hardware.record import HardwareRecord, HardwareRecordError
from p2pnode.market import taskwire
from p2pnode.market.dealstore import DealRow
from p2pnode.market.dealsvc import MarketService
from p2pnode.market.slots import LOCAL_WORKER, Slot
from p2pnode.market.tasksvc import _read_some
from p2pnode.worker import link, wire
from p2pnode.worker.payouts import HubPayouts
from p2pnode.worker.registry import Member, WorkerRegistry, worker_id

log = logging.getLogger(__name__)

READ_CHUNK = 64 * 1024


@dataclass(frozen=True)
class HubWorkerParams:
    pay_per_hour: int = 0  # 0: no remote workers taken
    payout_period: float = 3600.0
    max_workers: int = 64
    max_pending_joins: int = 8
    announce_interval: float = 60.0
    announce_validity: int = 3600
    stream_timeout: float = 15.0
    max_inbound_streams: int = 64
    max_results_bytes: int = 2**34

    def validate(self) -> None:
        if self.pay_per_hour < 0:
            raise ValueError(f"pay_per_hour = {self.pay_per_hour}: allowed >= 0")
        for name in ("payout_period", "announce_interval", "stream_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} = {getattr(self, name)}: must be > 0")
        for name in ("max_workers", "max_pending_joins", "max_inbound_streams"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} = {getattr(self, name)}: must be >= 1")
        if not self.announce_interval * 2 <= self.announce_validity:
            raise ValueError(
                f"announce_validity = {self.announce_validity}: allowed >= 2 x announce_interval"
            )


class WorkerRefused(RemoteError):
    """The worker answered no, with its reason (not retried)."""


class WorkerUnreachable(RemoteError):
    """The stream to the worker failed before its answer (tried again, a few times)."""


ATTEMPTS = 3  # a task order, a results fetch: the first stream may die under load


class HubWorkers:
    def __init__(
        self,
        host: Any,
        market: MarketService,
        registry: WorkerRegistry,
        *,
        domain: SigningDomain,
        private_key: bytes,
        address: bytes,
        wallet: str,
        data_dir: Path,
        params: HubWorkerParams,
        publish: Callable[[str, bytes], Any] | None = None,
        addrs: Callable[[], list[str]] = list,
        name: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        params.validate()
        self.host = host
        self.market = market
        self.registry = registry
        self.domain = domain
        self._key = private_key
        self.address = address
        self.wallet = wallet
        self.wallet_bytes = bytes.fromhex(wallet[2:])
        self.data_dir = data_dir
        self.params = params
        self._publish = publish
        self._addrs = addrs
        self.name = name
        self.clock = clock
        self._inbound = 0
        self._pending_joins = 0
        self.payouts = HubPayouts(
            registry,
            wallet=wallet,
            connect=self._chain_and_account,
            chain_call=market.chain_call,
            clock=clock,
        )
        self._results_locks: dict[int, trio.Lock] = {}
        self.counters: dict[str, int] = {
            "offers": 0,
            "joins": 0,
            "joins_refused": 0,
            "leaves": 0,
            "bad_messages": 0,
            "tasks_forwarded": 0,
            "announcements": 0,
        }
        market.remote_hardware = self._hardware_of
        market.remote_scores = self._scores_of

    # -- what the API and metrics read -------------------------------------------

    def stats(self) -> dict[str, float]:
        out = {k: float(v) for k, v in self.counters.items()}
        out.update({k: float(v) for k, v in self.payouts.counters.items()})
        out["joined_workers"] = float(self.registry.count_active())
        out["pending_joins"] = float(self._pending_joins)
        return out

    def workers(self) -> dict[str, Any]:
        now = self.clock()
        members = self.registry.members()
        return {
            "hub_wallet": self.wallet,
            "pay_per_hour": str(self.params.pay_per_hour),
            "payout_period": self.params.payout_period,
            "workers": [m.to_json(now) for m in members],
            "payouts": self.registry.payouts(100),
        }

    def _hardware_of(self, worker: str) -> HardwareRecord | None:
        member = self.registry.active(worker)
        return member.hardware if member is not None else None

    def _scores_of(self, worker: str) -> dict[str, int]:
        member = self.registry.active(worker)
        return dict(member.scores) if member is not None else {}

    # -- the service -----------------------------------------------------------------

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        self.host.set_stream_handler(TProtocol(wire.PROTOCOL_ID), self._handle_stream)
        self.payouts.load()
        try:  # a payout sent before a crash is settled before anything is paid again
            await self.payouts.reconcile()
        except Exception as exc:  # the chain is down: the payout loop tries again
            log.warning("workers: reconciling payouts at start-up: %s", exc)
        async with trio.open_nursery() as nursery:
            if self._publish is not None:
                nursery.start_soon(self._announce_loop)
            nursery.start_soon(self._payout_loop)
            task_status.started()

    # -- announcements -----------------------------------------------------------------

    async def _announce_loop(self) -> None:
        assert self._publish is not None
        while True:
            try:
                await self.announce()
            except Exception as exc:  # no peer yet, or a full disk: try at the next turn
                log.debug("workers: announcing the hub: %s", exc)
            await trio.sleep(self.params.announce_interval)

    async def announce(self) -> None:
        """A signed HubAnnouncement on the hubs topic: workers hear of this hub."""
        assert self._publish is not None
        from gossip import codec

        now = int(self.clock())
        addrs = tuple(a for a in self._addrs()[:8])
        ann = HubAnnouncement(
            owner=self.address,
            wallet=self.wallet_bytes,
            peer_id=self.host.get_id().to_bytes(),
            multiaddrs=addrs,
            name=self.name[:64],
            description=f"pays {self.params.pay_per_hour} wei per hour joined",
            sequence=int(self.clock() * 1000),
            valid_from=now,
            valid_until=now + self.params.announce_validity,
        ).signed(self.domain, self._key)
        await self._publish(HUBS_TOPIC, codec.encode(ann))
        self.counters["announcements"] += 1

    # -- /sonm/worker/1: offers, joins, leaves -------------------------------------------

    async def _handle_stream(self, stream: Any) -> None:
        if self._inbound >= self.params.max_inbound_streams:
            await link.close(stream, reset=True)
            return
        self._inbound += 1
        try:
            await self._serve(stream)
        except (RemoteError, trio.TooSlowError) as exc:
            self.counters["bad_messages"] += 1
            log.info("workers: stream refused: %s", exc)
        except Exception as exc:
            log.debug("workers: stream failed: %s", exc)
        finally:
            self._inbound -= 1
            await link.close(stream)

    async def _serve(self, stream: Any) -> None:
        reader = wire.reader(wire.HUB_REQUESTS)
        try:
            msg = await link.read_message(
                stream, reader, self.domain, wire.HUB_REQUESTS, self.params.stream_timeout
            )
        except RemoteError as exc:  # oversized, malformed, unsigned, mis-signed
            self.counters["bad_messages"] += 1
            await self._answer(stream, bytes(20), bytes(32), False, 0, str(exc))
            return
        why = wire.check_window(msg.valid_until, self.clock())
        if isinstance(msg, wire.OfferRequest):
            self.counters["offers"] += 1
            await self._offer(stream, msg, why)
            return
        ref = wire.digest(self.domain, msg)
        if why is None and (msg.hub != self.address or msg.wallet != self.wallet_bytes):
            why = "addressed to another hub"
        if why is not None:
            self.counters["joins_refused"] += 1
            await self._answer(stream, msg.worker, ref, False, 0, why)
            return
        if isinstance(msg, wire.LeaveNotice):
            await self._leave(stream, msg, ref)
            return
        if self._pending_joins >= self.params.max_pending_joins:
            self.counters["joins_refused"] += 1
            await self._answer(stream, msg.worker, ref, False, 0, "too many joins pending")
            return
        self._pending_joins += 1
        try:
            await self._join(stream, msg, ref, str(stream.muxed_conn.peer_id.to_base58()))
        finally:
            self._pending_joins -= 1

    def _offer_terms(self) -> tuple[bool, str]:
        if self.params.pay_per_hour <= 0:
            return False, "this hub takes no workers (workers.pay_per_hour is 0)"
        if self.registry.count_active() >= self.params.max_workers:
            return False, f"this hub has {self.params.max_workers} workers, its most"
        return True, "open"

    async def _offer(self, stream: Any, msg: wire.OfferRequest, why: str | None) -> None:
        ok, reason = self._offer_terms()
        if why is not None:
            ok, reason = False, why
        offer = wire.Offer(
            hub=self.address,
            wallet=self.wallet_bytes,
            worker=msg.worker,
            pay_per_hour=self.params.pay_per_hour,
            payout_period=max(1, int(self.params.payout_period)),
            open=int(ok),
            reason=wire.reason_text(reason),
        )
        await stream.write(wire.frame(wire.sign(offer, self.domain, self._key)))

    def _check_join(self, msg: wire.JoinRequest) -> tuple[str | None, str]:
        """Why the join is refused (None: accepted) and the record's JSON."""
        ok, reason = self._offer_terms()
        if not ok:
            return reason, ""
        if msg.pay_per_hour != self.params.pay_per_hour:
            return f"this hub pays {self.params.pay_per_hour} per hour, not {msg.pay_per_hour}", ""
        if msg.payout_period != max(1, int(self.params.payout_period)):
            return f"this hub pays every {int(self.params.payout_period)} s", ""
        if self.registry.active(worker_id(msg.worker)) is not None:
            return "already joined", ""
        try:
            names = [p.name for p in Multiaddr(msg.addr).protocols()]
        except Exception:
            names = []
        if names not in (["ip4", "tcp"], ["ip6", "tcp"], ["dns4", "tcp"]):
            return "addr: allowed /ip4/<ip>/tcp/<port>", ""
        try:
            data = json.loads(msg.hardware)
            record = HardwareRecord.from_dict(data)
            scores = scores_from(data)
        except (ValueError, HardwareRecordError) as exc:
            return f"hardware: {exc}", ""
        if record.cpu.cores_logical < 1 or record.memory.total_bytes < 1:
            return "hardware: no CPU cores or no memory", ""
        return None, json.dumps(with_scores(record, scores), sort_keys=True)

    async def _join(self, stream: Any, msg: wire.JoinRequest, ref: bytes, peer: str) -> None:
        why, record_json = self._check_join(msg)
        if why is not None:
            self.counters["joins_refused"] += 1
            await self._answer(stream, msg.worker, ref, False, 0, why)
            return
        now = int(self.clock())
        answer = wire.sign(
            wire.HubAnswer(self.address, msg.worker, ref, 1, now, "joined"), self.domain, self._key
        )
        member = self.registry.join(
            worker_id(msg.worker),
            peer_id=peer,
            addr=msg.addr,
            hardware_json=record_json,
            pay_per_hour=msg.pay_per_hour,
            payout_period=msg.payout_period,
            at=float(now),
            request=wire.encode(msg),
            answer=wire.encode(answer),
        )
        self.payouts.schedule(member, member.payday_after(now))
        self.counters["joins"] += 1
        log.info("workers: worker %s joined (peer %s)", member.worker, peer)
        self.market.forget_worker(member.worker)  # its planner is rebuilt on its record
        await stream.write(wire.frame(answer))

    async def _leave(self, stream: Any, msg: wire.LeaveNotice, ref: bytes) -> None:
        wid = worker_id(msg.worker)
        member = self.registry.leave(wid, self.clock())
        if member is None:
            await self._answer(stream, msg.worker, ref, False, 0, "not joined")
            return
        self.market.forget_worker(wid)
        self.counters["leaves"] += 1
        log.info("workers: worker %s left", wid)
        assert member.left_at is not None
        await self._answer(stream, msg.worker, ref, True, int(member.left_at), "left")
        # what it earned up to now is paid at once, not a period later
        self.payouts.schedule(member, self.clock())

    async def _answer(
        self, stream: Any, worker: bytes, ref: bytes, ok: bool, at: int, reason: str
    ) -> None:
        msg = wire.HubAnswer(self.address, worker, ref, int(ok), at, wire.reason_text(reason))
        await stream.write(wire.frame(wire.sign(msg, self.domain, self._key)))

    # -- tasks on remote workers (tasksvc.RemoteRunner) -----------------------------------

    def holds(self, row: DealRow) -> bool:
        if self.registry.worker_of_deal(row.deal_id) is not None:
            return True
        slot = self.market.find_slot(row.slot_id) if row.slot_id else None
        return slot is not None and slot.worker != LOCAL_WORKER

    def placed(self, deal_id: int) -> tuple[str, bool] | None:
        worker = self.registry.worker_of_deal(deal_id)
        return None if worker is None else (worker, self.registry.started(deal_id))

    def _member_of_deal(self, row: DealRow) -> Member:
        wid = self.registry.worker_of_deal(row.deal_id)
        if wid is None:
            raise UserError(f"deal {row.deal_id} has no task on a worker")
        member = self.registry.latest(wid)
        if member is None:
            raise UserError(f"deal {row.deal_id}'s worker is unknown")
        return member

    def _sign(self, msg: Any) -> Any:
        return wire.sign(msg, self.domain, self._key)

    async def _order(
        self, member: Member, msg: Any, timeout: float
    ) -> tuple[wire.WorkerAnswer, Any, Any]:
        """Send an order, read the worker's answer; (answer, stream, reader) with the
        stream still open for what follows the answer."""
        try:
            stream = await link.open_stream(
                self.host, member.peer_id, member.addr, self.params.stream_timeout
            )
        except (RemoteError, trio.TooSlowError, OSError) as exc:
            raise WorkerUnreachable(f"worker {member.worker} unreachable: {exc}") from None
        except Exception as exc:  # libp2p's own errors: no stream, no connection
            why = f"{type(exc).__name__}: {exc}"
            raise WorkerUnreachable(f"worker {member.worker} unreachable: {why}") from None
        reader = wire.reader()
        try:
            await stream.write(wire.frame(self._sign(msg)))
            answer = await link.read_message(
                stream, reader, self.domain, (wire.WorkerAnswer,), timeout
            )
        except trio.TooSlowError:
            await link.close(stream)
            raise WorkerUnreachable(
                f"worker {member.worker} did not answer in {timeout} s"
            ) from None
        except wire.WorkerWireError:
            await link.close(stream)
            raise
        except Exception as exc:  # the stream died (EOF, reset) before the answer
            await link.close(stream)
            why = f"{type(exc).__name__}: {exc}"
            raise WorkerUnreachable(f"worker {member.worker}: stream failed: {why}") from None
        except BaseException:
            await link.close(stream)
            raise
        if worker_id(answer.worker) != member.worker or answer.hub != self.address:
            await link.close(stream)
            raise RemoteError("the answer is not from the deal's worker to this hub")
        if not answer.ok:
            await link.close(stream)
            raise WorkerRefused(f"worker: {answer.reason}")
        return answer, stream, reader

    async def _retry(self, what: str, attempt: Callable[[], Any]) -> Any:
        """`attempt()` again while the worker is unreachable, up to ATTEMPTS times;
        the worker takes a repeated order for the same deal as the same order."""
        for i in range(ATTEMPTS):
            try:
                return await attempt()
            except WorkerUnreachable as exc:
                if i + 1 == ATTEMPTS:
                    raise
                log.info("workers: %s: %s; trying again", what, exc)
                await trio.sleep(1.0 + i)
        raise AssertionError("unreachable")

    async def start(self, row: DealRow, slot: Slot, msg: taskwire.TaskStart) -> str:
        member = self.registry.active(slot.worker)
        if member is None:
            raise UserError(f"slot {slot.slot_id}'s worker has left this hub")
        taskwire.unpack_spec(msg.spec)  # a malformed spec is refused here, with its field
        order = wire.TaskOrder(
            hub=self.address,
            worker=bytes.fromhex(member.worker[2:]),
            deal_id=row.deal_id,
            consumer=msg.consumer,
            spec=msg.spec,
            cpu_cores=slot.cpu_cores,
            ram_bytes=slot.ram_bytes,
            storage_bytes=slot.storage_bytes,
            network=int(slot.network),
            gpu_uuids=slot.gpu_uuids,
            ends_at=int(row.end_time),
            valid_until=int(self.clock()) + 60,
        )
        if self.registry.started(row.deal_id):
            raise UserError(f"a task for deal {row.deal_id} exists already")
        self.registry.assign(row.deal_id, member.worker, row.consumer, self.clock())

        async def attempt() -> wire.WorkerAnswer:
            # the worker checks the image and creates the container before it answers
            answer, stream, _ = await self._order(member, order, self.params.stream_timeout + 60)
            await link.close(stream)
            return answer

        answer = await self._retry(f"deal {row.deal_id}: task order", attempt)
        self.registry.mark_started(row.deal_id)
        self.counters["tasks_forwarded"] += 1
        return f"started on worker {member.worker}: {answer.reason}"

    async def logs(self, row: DealRow, msg: taskwire.LogsRequest) -> AsyncIterator[bytes]:
        member = self._member_of_deal(row)
        order = wire.LogsOrder(
            self.address,
            bytes.fromhex(member.worker[2:]),
            row.deal_id,
            msg.follow,
            msg.tail,
            int(self.clock()) + 60,
        )
        _, stream, reader = await self._retry(
            f"deal {row.deal_id}: logs",
            lambda: self._order(member, order, self.params.stream_timeout),
        )
        timeout = None if msg.follow else self.params.stream_timeout
        # the worker sends each stream from its start: a consumer resuming at a byte
        # offset gets only what lies past it (`since` is not applied to remote logs)
        resume = {
            int(taskwire.LogStream.STDOUT): msg.from_stdout,
            int(taskwire.LogStream.STDERR): msg.from_stderr,
        }
        try:
            while True:
                try:
                    frames = await _read_some(stream, reader, timeout)
                except (RemoteError, trio.TooSlowError):
                    raise
                except Exception as exc:  # the stream died mid-way
                    raise WorkerUnreachable(f"worker logs: {type(exc).__name__}: {exc}") from None
                for data in frames:
                    record = taskwire.decode(data, self.domain, expect=(taskwire.LogRecord,))
                    if record.stream == taskwire.LogStream.END:
                        yield taskwire.frame(record)
                        return
                    kept = resume_at(record, resume)
                    if kept is not None:
                        yield taskwire.frame(kept)
        finally:
            await link.close(stream)

    def _results_dir(self, deal_id: int) -> Path:
        return self.data_dir / "workers" / "results" / taskwire.task_id_of(deal_id)

    async def results(self, row: DealRow) -> tuple[Receipt, Path]:
        """The worker's results, fetched once, checked, countersigned and kept."""
        lock = self._results_locks.setdefault(row.deal_id, trio.Lock())
        async with lock:
            where = self._results_dir(row.deal_id)
            archive, signed = where / "results.tar", where / "receipt.json"
            if archive.exists() and signed.exists():
                return Receipt.from_dict(json.loads(signed.read_text())), archive
            return await self._retry(
                f"deal {row.deal_id}: results", lambda: self._fetch_results(row, where)
            )

    async def _fetch_results(self, row: DealRow, where: Path) -> tuple[Receipt, Path]:
        member = self._member_of_deal(row)
        worker = bytes.fromhex(member.worker[2:])
        order = wire.ResultsOrder(self.address, worker, row.deal_id, int(self.clock()) + 60)
        _, stream, reader = await self._order(member, order, self.params.stream_timeout)
        where.mkdir(mode=0o700, parents=True, exist_ok=True)
        part = where / "results.tar.part"
        try:
            data = (await _read_some(stream, reader, self.params.stream_timeout, at_most=1))[0]
            header = taskwire.decode(data, self.domain, expect=(taskwire.ResultsHeader,))
            try:
                theirs = Receipt.from_dict(json.loads(header.receipt))
            except (ValueError, TypeError) as exc:
                raise RemoteError(f"worker receipt: not valid JSON: {exc}") from None
            verify_receipt(theirs, domain=self.domain, supplier=worker, deal_id=row.deal_id)
            size = header.size
            if size != theirs.results_bytes or size > self.params.max_results_bytes:
                raise RemoteError(f"worker results: {size} bytes, receipt {theirs.results_bytes}")
            digest = hashlib.sha256()
            got = 0
            with open(part, "wb") as fh:
                rest = reader.pending()
                while True:
                    if rest:
                        if got + len(rest) > size:
                            raise RemoteError("worker results: more bytes than announced")
                        fh.write(rest)
                        digest.update(rest)
                        got += len(rest)
                    if got == size:
                        break
                    try:
                        with trio.fail_after(self.params.stream_timeout):
                            rest = await stream.read(READ_CHUNK)
                    except (trio.TooSlowError, Exception) as exc:
                        why = f"{type(exc).__name__}: {exc}"
                        raise WorkerUnreachable(
                            f"worker results: stream failed after {got} of {size} bytes: {why}"
                        ) from None
                    if not rest:
                        raise WorkerUnreachable(
                            f"worker results: ended after {got} of {size} bytes"
                        )
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        finally:
            await link.close(stream)
        verify_receipt(  # the archive is what the worker signed for
            theirs,
            domain=self.domain,
            supplier=worker,
            deal_id=row.deal_id,
            results_sha256=digest.digest(),
        )
        ours = dataclasses.replace(theirs, supplier=self.address, signature=b"").signed(
            self.domain, self._key
        )
        (where / "worker-receipt.json").write_text(json.dumps(theirs.to_dict(), indent=2))
        archive = where / "results.tar"
        part.replace(archive)
        (where / "receipt.json").write_text(json.dumps(ours.to_dict(), indent=2))
        log.info("workers: deal %d: results from worker %s checked", row.deal_id, member.worker)
        return ours, archive

    async def stop(self, deal_id: int) -> bool:
        row = self.market.store.deal(deal_id)
        if row is None:
            return False
        try:
            member = self._member_of_deal(row)
            order = wire.StopOrder(
                self.address, bytes.fromhex(member.worker[2:]), deal_id, int(self.clock()) + 60
            )

            async def attempt() -> None:
                _, stream, _ = await self._order(member, order, self.params.stream_timeout)
                await link.close(stream)

            await self._retry(f"deal {deal_id}: stop", attempt)
        except (UserError, RemoteError, OSError) as exc:
            log.info("workers: deal %d: stop not passed to its worker: %s", deal_id, exc)
            return False
        return True

    # -- payouts ---------------------------------------------------------------------

    async def _payout_loop(self) -> None:
        # a quarter period (at most 5 s): a payout goes out soon after its payday
        tick = min(self.params.payout_period / 4, 5.0)
        while True:
            await trio.sleep(tick)
            try:
                await self.pay_due()
            except Exception as exc:  # a chain hiccup must not stop the node
                log.warning("workers: payouts failed: %s", exc)

    def _chain_and_account(self) -> tuple[Any, Any] | None:
        system, account = self.market.system, self.market.account
        if system is None or account is None:
            return None
        return system.wallet(self.wallet), account

    async def pay_due(self) -> int:
        """Pay every worker whose payout time has come what it is owed; how many paid."""
        return await self.payouts.pay_due()


def resume_at(record: taskwire.LogRecord, resume: dict[int, int]) -> taskwire.LogRecord | None:
    """The part of a worker's log record at or past the consumer's resume offset for
    its stream (None when all of it lies before); an empty record (where a stream
    starts) moves up to the resume offset."""
    start = resume.get(record.stream, 0)
    if start <= record.offset:
        return record
    if not record.data:
        return taskwire.LogRecord(record.stream, start, b"")
    if record.offset + len(record.data) <= start:
        return None
    return taskwire.LogRecord(record.stream, start, record.data[start - record.offset :])
