"""Parameters of the reputation core: frozen dataclasses, each with `validate()`.

Errors name the parameter and its bound (TrustParamsError), so a bad config
line is found from the message alone. Times are seconds, weights are in
"uniform-trust units": a peer whose trust equals the average counts 1.0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from reputation.errors import TrustParamsError

DAY = 24 * 3600


def _in(name: str, value: float, lo: float, hi: float, *, lo_open: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise TrustParamsError(name, f"a number expected, got {value!r}")
    if (value <= lo if lo_open else value < lo) or value > hi:
        left = "(" if lo_open else "["
        raise TrustParamsError(name, f"must be in {left}{lo}, {hi}], got {value}")


def _int_in(name: str, value: int, lo: int, hi: int) -> None:
    if type(value) is not int:
        raise TrustParamsError(name, f"an integer expected, got {value!r}")
    _in(name, value, lo, hi)


@dataclass(frozen=True)
class StatusParams:
    """When hearsay and evidence move a hub's status."""

    checked_weight: float = 1.0  # trust-weighted positive answers needed for CHECKED
    suspect_weight: float = 1.0  # trust-weighted negative answers needed for SUSPECTED
    outweigh_ratio: float = 1.0  # one side must exceed the other times this
    min_positive_answers: int = 2  # distinct answerers with weight behind a CHECKED
    answer_ttl_s: float = 7 * DAY  # answers stored longer ago no longer count
    evidence_ttl_s: float = 14 * DAY  # answers about older evidence no longer count
    payment_tolerance: float = 0.02  # a payment this much short still matches (rounding, fees)
    payment_grace_s: float = 3600.0  # after a payday, how long before a missing payment counts
    # what a "BAD" with a checked proof of a missed first payday weighs in a warning,
    # at least, however little we trust its answerer (`ReputationCore.check_proof`)
    proof_weight: float = 1.0

    def validate(self) -> None:
        _in("checked_weight", self.checked_weight, 0.0, 1e6, lo_open=True)
        _in("suspect_weight", self.suspect_weight, 0.0, 1e6, lo_open=True)
        _in("outweigh_ratio", self.outweigh_ratio, 1.0, 100.0)
        _int_in("min_positive_answers", self.min_positive_answers, 1, 1000)
        _in("answer_ttl_s", self.answer_ttl_s, 60.0, 365 * DAY)
        _in("evidence_ttl_s", self.evidence_ttl_s, 60.0, 365 * DAY)
        _in("payment_tolerance", self.payment_tolerance, 0.0, 0.5)
        _in("payment_grace_s", self.payment_grace_s, 0.0, 30 * DAY)
        _in("proof_weight", self.proof_weight, 0.0, 1e6)


@dataclass(frozen=True)
class PollParams:
    """Trust polling: our own question rate, and the caps on what peers make us hold."""

    questions_per_round: int = 4  # how many hubs we ask about per poll round
    question_ttl_s: int = 600  # validity window of our questions; answers after it are late
    max_answers_per_question: int = 64  # answers kept per question of ours
    max_untrusted_answers_per_question: int = 8  # of them from peers we give no weight
    max_outstanding: int = 256  # our questions still waiting for answers
    max_answers_per_hub: int = 128  # answers with weight kept per hub (lowest evicted)
    max_untrusted_answers_per_hub: int = 32  # answers without weight per hub (oldest evicted)
    max_hubs: int = 4096  # hubs we keep answers about
    window_s: float = 3600.0  # rate-limit window
    questions_per_window: int = 120  # questions one peer may send us per window
    answers_per_window: int = 1200  # answers one peer may send us per window
    rows_per_window: int = 30  # local trust rows one truster may publish per window
    max_rows: int = 2048  # trusters whose rows we keep (the least trusted evicted)
    max_tracked_peers: int = 20_000  # peers with a rate-limit counter
    max_seen: int = 100_000  # remembered message ids (dedupe)
    max_clock_skew_s: int = 300  # how far in the future a message's window may start

    def validate(self) -> None:
        _int_in("questions_per_round", self.questions_per_round, 1, 10_000)
        _int_in("question_ttl_s", self.question_ttl_s, 10, DAY)
        _int_in("max_answers_per_question", self.max_answers_per_question, 1, 10_000)
        _int_in(
            "max_untrusted_answers_per_question",
            self.max_untrusted_answers_per_question,
            0,
            self.max_answers_per_question,
        )
        _int_in("max_outstanding", self.max_outstanding, 1, 1_000_000)
        _int_in("max_answers_per_hub", self.max_answers_per_hub, 1, 100_000)
        _int_in("max_untrusted_answers_per_hub", self.max_untrusted_answers_per_hub, 0, 100_000)
        _int_in("max_hubs", self.max_hubs, 1, 10_000_000)
        _in("window_s", self.window_s, 1.0, 7 * DAY)
        _int_in("questions_per_window", self.questions_per_window, 1, 1_000_000)
        _int_in("answers_per_window", self.answers_per_window, 1, 10_000_000)
        _int_in("rows_per_window", self.rows_per_window, 1, 100_000)
        _int_in("max_rows", self.max_rows, 0, 1_000_000)
        _int_in("max_tracked_peers", self.max_tracked_peers, 1, 10_000_000)
        _int_in("max_seen", self.max_seen, 1, 100_000_000)
        _int_in("max_clock_skew_s", self.max_clock_skew_s, 0, 3600)


@dataclass(frozen=True)
class TrustParams:
    """Local trust (what our own evidence says of each answerer) and how weights combine."""

    contradiction_penalty: float = 4.0  # one contradiction undoes this many agreements
    local_share: float = 0.5  # weight = share x local + (1 - share) x global (uniform units)
    max_local_peers: int = 20_000  # answerers we keep agree/contradict counts for

    def validate(self) -> None:
        _in("contradiction_penalty", self.contradiction_penalty, 0.0, 1e6)
        _in("local_share", self.local_share, 0.0, 1.0)
        _int_in("max_local_peers", self.max_local_peers, 1, 10_000_000)


@dataclass(frozen=True)
class EigenTrustParams:
    """Global trust: t = (1 - alpha) C^T t + alpha p, iterated to `epsilon` (L1)."""

    alpha: float = 0.15  # share of trust that always flows back to pre-trusted peers
    epsilon: float = 1e-9  # L1 change below which the vector has converged
    max_iterations: int = 500
    credibility: bool = True  # weight each peer's feedback by its similarity to ours

    def validate(self) -> None:
        _in("alpha", self.alpha, 0.0, 1.0)
        _in("epsilon", self.epsilon, 0.0, 1.0, lo_open=True)
        _int_in("max_iterations", self.max_iterations, 1, 100_000)


@dataclass(frozen=True)
class ScoreFeedParams:
    """Global trust -> the gossip score's app-specific value (P5, before its weight)."""

    per_unit: float = 10.0  # score per uniform-trust unit: 10x average trust reaches 100
    cap: float = 200.0  # no peer's trust is worth more than this
    floor: float = 0.0  # what a peer nobody trusts gets (0: no bonus, no penalty)

    def validate(self) -> None:
        _in("per_unit", self.per_unit, 0.0, 1e6, lo_open=True)
        _in("cap", self.cap, 0.0, 1e6, lo_open=True)
        _in("floor", self.floor, -1e6, 0.0)


@dataclass(frozen=True)
class ReputationParams:
    status: StatusParams = StatusParams()
    poll: PollParams = PollParams()
    trust: TrustParams = TrustParams()
    eigentrust: EigenTrustParams = EigenTrustParams()
    score: ScoreFeedParams = ScoreFeedParams()

    def validate(self) -> None:
        self.status.validate()
        self.poll.validate()
        self.trust.validate()
        self.eigentrust.validate()
        self.score.validate()
