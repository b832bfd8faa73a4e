"""Validation verdicts shared by the router and the application validators.

Only REJECT penalises the sender (P4 in the score); IGNORE drops the message
without blame, which is what an expired-but-honest or not-yet-verifiable message
deserves. This mirrors libp2p pubsub's ValidationAccept/Reject/Ignore.
"""

from __future__ import annotations

import enum


class ValidationResult(enum.Enum):
    ACCEPT = "accept"
    REJECT = "reject"
    IGNORE = "ignore"
