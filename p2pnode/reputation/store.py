"""The reputation core's state in SQLite: statuses with their reasons, agreements,
evidence, answers and the trust tables, so a restart (or a kill -9) keeps them.

The driver writes what an input changed as soon as the core has taken it (the
hubs it touched, the local trust table when it moved), in one transaction, so
nothing the core accepted is only in memory for longer than one handler.
Amounts are uint256: kept as decimal text. Question ids, the dedupe set and
the rate-limit counters are not kept: after a restart, late answers to our old
questions are dropped as unsolicited and a peer's rate window starts afresh.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from p2pnode.storage import Storage
from reputation import messages
from reputation.agreement import AgreementProof
from reputation.core import ReputationCore, StoredAnswer
from reputation.errors import RemoteTrustError
from reputation.evidence import Agreement, AgreementLedger, Verdict
from reputation.messages import TrustRow
from reputation.state import MAX_HISTORY, HubRecord, HubStatus, Reason, Transition

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS rep_hubs (
        hub BLOB PRIMARY KEY,
        status INTEGER NOT NULL,
        suspicion TEXT,
        owner BLOB,
        peer_id BLOB,
        name TEXT NOT NULL DEFAULT '',
        last_polled REAL
    )""",
    """CREATE TABLE IF NOT EXISTS rep_transitions (
        hub BLOB NOT NULL,
        seq INTEGER NOT NULL,
        at REAL NOT NULL,
        source INTEGER NOT NULL,
        target INTEGER NOT NULL,
        reason TEXT NOT NULL,
        detail TEXT NOT NULL,
        PRIMARY KEY (hub, seq)
    )""",
    """CREATE TABLE IF NOT EXISTS rep_ledgers (
        hub BLOB NOT NULL,
        worker BLOB NOT NULL,
        pay_per_hour TEXT NOT NULL,
        period INTEGER NOT NULL,
        start REAL NOT NULL,
        end_at REAL,
        judged INTEGER NOT NULL,
        settled_paid TEXT NOT NULL,
        pending TEXT NOT NULL,
        payments_seen INTEGER NOT NULL,
        total_paid TEXT NOT NULL,
        PRIMARY KEY (hub, worker)
    )""",
    "CREATE TABLE IF NOT EXISTS rep_facts (hub BLOB PRIMARY KEY, facts TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS rep_answers (
        hub BLOB NOT NULL,
        answerer BLOB NOT NULL,
        verdict INTEGER NOT NULL,
        payments_seen INTEGER NOT NULL,
        avg_reward TEXT NOT NULL,
        period_s INTEGER NOT NULL,
        last_seen REAL NOT NULL,
        at REAL NOT NULL,
        tested INTEGER NOT NULL,
        PRIMARY KEY (hub, answerer)
    )""",
    """CREATE TABLE IF NOT EXISTS rep_local_trust (
        peer BLOB PRIMARY KEY, agreed INTEGER NOT NULL, contradicted INTEGER NOT NULL
    )""",
    "CREATE TABLE IF NOT EXISTS rep_global_trust (peer BLOB PRIMARY KEY, units REAL NOT NULL)",
    """CREATE TABLE IF NOT EXISTS rep_payments (
        hub BLOB NOT NULL,
        worker BLOB NOT NULL,
        amount TEXT NOT NULL,
        at REAL NOT NULL,
        block INTEGER NOT NULL,
        PRIMARY KEY (hub, worker, block, at, amount)
    )""",
    """CREATE TABLE IF NOT EXISTS rep_deals_judged (
        deal_id INTEGER PRIMARY KEY, outcome TEXT NOT NULL
    )""",
    "CREATE TABLE IF NOT EXISTS rep_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    # our agreements as their hubs countersigned them (reputation/agreement.py), sent
    # with a "BAD" about a missed first payday
    """CREATE TABLE IF NOT EXISTS rep_own_proofs (
        hub BLOB NOT NULL, worker BLOB NOT NULL, proof BLOB NOT NULL, PRIMARY KEY (hub, worker)
    )""",
    # other nodes' local trust rows as they came (canonical frames, signatures checked)
    """CREATE TABLE IF NOT EXISTS rep_rows (truster BLOB PRIMARY KEY, frame BLOB NOT NULL)""",
    # answers that came with a proof that checked: the start of the answerer's agreement
    """CREATE TABLE IF NOT EXISTS rep_answer_proofs (
        hub BLOB NOT NULL, answerer BLOB NOT NULL, proof_start REAL NOT NULL,
        PRIMARY KEY (hub, answerer)
    )""",
)

MAX_PAYMENT_ROWS = 100_000  # payments kept for display; the oldest go first


@dataclass
class HubMeta:
    """What the announcements told us about a hub besides its status."""

    owner: bytes | None = None
    peer_id: bytes | None = None
    name: str = ""


class ReputationStore:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        storage.migrate("reputation", _SCHEMA)
        self.writes = 0

    # -- loading ---------------------------------------------------------------------------

    def load_into(self, core: ReputationCore) -> dict[bytes, HubMeta]:
        """Restore everything kept into a fresh core; returns the hubs' announcement facts."""
        db = self._storage.connection
        with self._storage.lock:
            hubs = db.execute(
                "SELECT hub, status, suspicion, owner, peer_id, name, last_polled FROM rep_hubs"
            ).fetchall()
            transitions = db.execute(
                "SELECT hub, at, source, target, reason, detail FROM rep_transitions "
                "ORDER BY hub, seq"
            ).fetchall()
            ledgers = db.execute(
                "SELECT hub, worker, pay_per_hour, period, start, end_at, judged, settled_paid, "
                "pending, payments_seen, total_paid FROM rep_ledgers"
            ).fetchall()
            facts = db.execute("SELECT hub, facts FROM rep_facts").fetchall()
            answers = db.execute(
                "SELECT hub, answerer, verdict, payments_seen, avg_reward, period_s, last_seen, "
                "at, tested FROM rep_answers ORDER BY at"
            ).fetchall()
            local = db.execute("SELECT peer, agreed, contradicted FROM rep_local_trust").fetchall()
            own_proofs = db.execute("SELECT hub, worker, proof FROM rep_own_proofs").fetchall()
            row_frames = db.execute("SELECT frame FROM rep_rows").fetchall()
            proven = {
                (bytes(h), bytes(a)): float(t)
                for h, a, t in db.execute(
                    "SELECT hub, answerer, proof_start FROM rep_answer_proofs"
                ).fetchall()
            }
            glob = db.execute("SELECT peer, units FROM rep_global_trust").fetchall()
        meta: dict[bytes, HubMeta] = {}
        history: dict[bytes, deque[Transition]] = {}
        for hub, at, source, target, reason, detail in transitions:
            history.setdefault(bytes(hub), deque(maxlen=MAX_HISTORY)).append(
                Transition(at, HubStatus(source), HubStatus(target), Reason[reason], detail)
            )
        for hub, status, suspicion, owner, peer_id, name, last_polled in hubs:
            h = bytes(hub)
            rec = HubRecord(h, HubStatus(status))
            rec.suspicion = Reason[suspicion] if suspicion else None
            rec.history = history.get(h, deque(maxlen=MAX_HISTORY))
            core.records[h] = rec
            if last_polled is not None:
                core.last_polled[h] = float(last_polled)
            meta[h] = HubMeta(
                bytes(owner) if owner else None, bytes(peer_id) if peer_id else None, name
            )
        st = core.params.status
        core.evidence.load(
            [
                AgreementLedger(
                    Agreement(bytes(w), bytes(h), int(rate), int(period), start, end),
                    st.payment_grace_s,
                    st.payment_tolerance,
                    judged,
                    int(settled),
                    [(float(a), int(b)) for a, b in json.loads(pending)],
                    seen,
                    int(total),
                )
                for h, w, rate, period, start, end, judged, settled, pending, seen, total in ledgers
            ],
            {bytes(h): json.loads(f) for h, f in facts},
        )
        core.local.load({bytes(p): (a, c) for p, a, c in local})
        core.set_global_trust({bytes(p): float(u) for p, u in glob})
        for hub, who, verdict, seen, avg, period, last_seen, at, tested in answers:
            h, a = bytes(hub), bytes(who)
            proof_start = proven.get((h, a))
            core.answers.setdefault(h, {})[a] = StoredAnswer(
                h,
                a,
                Verdict(verdict),
                seen,
                int(avg),
                period,
                last_seen,
                at,
                bool(tested),
                proof_start,
            )
            untrusted = core._untrusted.setdefault(h, {})
            if core.weight(a) <= 0 and proof_start is None:
                untrusted[a] = None
        for (frame,) in row_frames:
            try:
                row = messages.decode(bytes(frame))
            except RemoteTrustError:  # checked when it came; a damaged file loses one row
                continue
            if isinstance(row, TrustRow):
                core.accept_row(row)
        for h, w, blob in own_proofs:
            key = (bytes(h), bytes(w))
            if key in core.evidence.ledgers:
                core.own_proofs[key] = AgreementProof.from_bytes(bytes(blob))
        return meta

    def judged_deals(self) -> set[int]:
        with self._storage.lock:
            rows = self._storage.connection.execute("SELECT deal_id FROM rep_deals_judged")
            return {int(r[0]) for r in rows.fetchall()}

    def meta(self, key: str) -> str | None:
        with self._storage.lock:
            row = self._storage.connection.execute(
                "SELECT value FROM rep_meta WHERE key = ?", (key,)
            ).fetchone()
        return None if row is None else str(row[0])

    def payments(self, hub: bytes, limit: int = 100) -> list[tuple[bytes, int, float]]:
        """The newest payments seen from `hub`'s wallet: (worker, amount, at)."""
        with self._storage.lock:
            rows = self._storage.connection.execute(
                "SELECT worker, amount, at FROM rep_payments WHERE hub = ? ORDER BY at DESC "
                "LIMIT ?",
                (hub, limit),
            ).fetchall()
        return [(bytes(w), int(a), float(t)) for w, a, t in rows]

    def payment_totals(self) -> dict[bytes, tuple[int, int]]:
        """Per hub: (payments seen, total amount)."""
        with self._storage.lock:
            rows = self._storage.connection.execute(
                "SELECT hub, COUNT(*), GROUP_CONCAT(amount) FROM rep_payments GROUP BY hub"
            ).fetchall()
        return {
            bytes(h): (int(n), sum(int(a) for a in (s or "").split(",") if a)) for h, n, s in rows
        }

    # -- writing ---------------------------------------------------------------------------

    def save(
        self,
        core: ReputationCore,
        hubs: Iterable[bytes],
        meta: Mapping[bytes, HubMeta],
        *,
        local: bool = False,
        global_trust: Mapping[bytes, float] | None = None,
        payments: Iterable[tuple[bytes, bytes, int, float, int]] = (),
        deals: Iterable[tuple[int, str]] = (),
        kv: Mapping[str, str] | None = None,
        rows: Iterable[tuple[bytes, bytes]] = (),
    ) -> None:
        """Write the given hubs' rows (and the tables named) in one transaction."""
        db = self._storage.connection
        with self._storage.lock:
            db.execute("BEGIN")
            try:
                for hub in dict.fromkeys(hubs):
                    self._save_hub(core, hub, meta.get(hub))
                if local:
                    db.execute("DELETE FROM rep_local_trust")
                    db.executemany(
                        "INSERT INTO rep_local_trust VALUES (?, ?, ?)",
                        [(p, a, c) for p, (a, c) in core.local.table().items()],
                    )
                if global_trust is not None:
                    db.execute("DELETE FROM rep_global_trust")
                    db.executemany(
                        "INSERT INTO rep_global_trust VALUES (?, ?)", list(global_trust.items())
                    )
                pay = [(h, w, str(a), t, b) for h, w, a, t, b in payments]
                if pay:
                    db.executemany("INSERT OR IGNORE INTO rep_payments VALUES (?, ?, ?, ?, ?)", pay)
                    db.execute(
                        "DELETE FROM rep_payments WHERE rowid IN (SELECT rowid FROM rep_payments "
                        "ORDER BY at DESC LIMIT -1 OFFSET ?)",
                        (MAX_PAYMENT_ROWS,),
                    )
                db.executemany(
                    "INSERT OR REPLACE INTO rep_deals_judged VALUES (?, ?)",
                    list(deals),
                )
                for key, value in (kv or {}).items():
                    db.execute("INSERT OR REPLACE INTO rep_meta VALUES (?, ?)", (key, value))
                rows = list(rows)
                if rows:
                    db.executemany("INSERT OR REPLACE INTO rep_rows VALUES (?, ?)", rows)
                    self._prune_rows(core)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        self.writes += 1

    def _prune_rows(self, core: ReputationCore) -> None:
        """Rows the core evicted stay on disk until there are twice as many as it keeps."""
        db = self._storage.connection
        (count,) = db.execute("SELECT COUNT(*) FROM rep_rows").fetchone()
        if count <= 2 * max(1, core.params.poll.max_rows):
            return
        gone = [
            (t,)
            for (t,) in db.execute("SELECT truster FROM rep_rows").fetchall()
            if bytes(t) not in core.rows
        ]
        db.executemany("DELETE FROM rep_rows WHERE truster = ?", gone)

    def _save_hub(self, core: ReputationCore, hub: bytes, meta: HubMeta | None) -> None:
        db = self._storage.connection
        rec = core.records.get(hub)
        if rec is not None:
            m = meta or HubMeta()
            db.execute(
                "INSERT OR REPLACE INTO rep_hubs VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    hub,
                    int(rec.status),
                    rec.suspicion.name if rec.suspicion else None,
                    m.owner,
                    m.peer_id,
                    m.name,
                    core.last_polled.get(hub),
                ),
            )
            db.execute("DELETE FROM rep_transitions WHERE hub = ?", (hub,))
            db.executemany(
                "INSERT INTO rep_transitions VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (hub, i, t.at, int(t.source), int(t.target), t.reason.name, t.detail)
                    for i, t in enumerate(rec.history)
                ],
            )
        for (h, worker), lg in core.evidence.ledgers.items():
            if h != hub:
                continue
            a = lg.agreement
            proof = core.own_proofs.get((h, worker))
            if proof is not None:
                db.execute(
                    "INSERT OR REPLACE INTO rep_own_proofs VALUES (?, ?, ?)",
                    (hub, worker, proof.to_bytes()),
                )
            db.execute(
                "INSERT OR REPLACE INTO rep_ledgers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    hub,
                    worker,
                    str(a.pay_per_hour),
                    a.payout_period_s,
                    a.start,
                    a.end,
                    lg.judged,
                    str(lg.settled_paid),
                    json.dumps([[at, str(amount)] for at, amount in lg.pending]),
                    lg.payments_seen,
                    str(lg.total_paid),
                ),
            )
        facts = core.evidence.facts_table().get(hub)
        if facts is not None:
            db.execute("INSERT OR REPLACE INTO rep_facts VALUES (?, ?)", (hub, json.dumps(facts)))
        db.execute("DELETE FROM rep_answers WHERE hub = ?", (hub,))
        db.executemany(
            "INSERT INTO rep_answers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    hub,
                    a.answerer,
                    int(a.verdict),
                    a.payments_seen,
                    str(a.avg_reward),
                    a.period_s,
                    a.last_seen,
                    a.at,
                    int(a.tested),
                )
                for a in core.answers.get(hub, {}).values()
            ],
        )
        db.execute("DELETE FROM rep_answer_proofs WHERE hub = ?", (hub,))
        db.executemany(
            "INSERT INTO rep_answer_proofs VALUES (?, ?, ?)",
            [
                (hub, a.answerer, a.proof_start)
                for a in core.answers.get(hub, {}).values()
                if a.proof_start is not None
            ],
        )
