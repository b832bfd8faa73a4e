# pragma version ~=0.4.3
"""
@title HubWallet
@notice A hub's treasury under rules every node can check. Registration freezes the
        factory's deposit. Paying a miner credits the miner (who then claims) and locks a
        lock-fee share of the payment for the payout period; `payday` pays the locked
        share to the DAO and unlocks the wallet for the next period. The DAO can suspect a
        hub (all funds blocked), rehabilitate it, or, after the waiting period, ban it:
        the whole balance goes to the DAO and the owner is locked out for good.
"""

interface IERC20:
    def balanceOf(owner: address) -> uint256: view
    def transfer(receiver: address, amount: uint256) -> bool: nonpayable

interface IWhitelist:
    def register_hub(owner: address, name: String[64], multiaddrs: String[512]): nonpayable
    def set_status(new_status: uint8): nonpayable

MAX_BPS: constant(uint256) = 10000

CREATED: constant(uint8) = 0
REGISTERED: constant(uint8) = 1
IDLE: constant(uint8) = 2
SUSPECTED: constant(uint8) = 3
PUNISHED: constant(uint8) = 4

event Registered:
    owner: indexed(address)
    deposit: uint256
    timestamp: uint256

event StatusChanged:
    old_status: uint8
    new_status: uint8
    timestamp: uint256

event MinerPaid:
    miner: indexed(address)
    amount: uint256
    payout: uint256
    lock_fee: uint256
    timestamp: uint256

event Claimed:
    miner: indexed(address)
    amount: uint256
    timestamp: uint256

event Payday:
    to_dao: uint256
    next_payday: uint256
    timestamp: uint256

event Withdrawn:
    receiver: indexed(address)
    amount: uint256
    timestamp: uint256

event Banned:
    to_dao: uint256
    timestamp: uint256

owner: public(address)
token: public(address)
whitelist: public(address)
dao: public(address)
factory: public(address)
deposit: public(uint256)
lock_bps: public(uint256)
payout_period: public(uint256)
waiting_period: public(uint256)

status: public(uint8)
frozen_funds: public(uint256)
locked_funds: public(uint256)
owed_total: public(uint256)
owed: public(HashMap[address, uint256])
next_payday: public(uint256)
suspected_at: public(uint256)
status_before_suspect: public(uint8)
payout_count: public(uint256)
paid_total: public(uint256)


@deploy
def __init__(
    owner: address,
    token: address,
    whitelist: address,
    dao: address,
    deposit: uint256,
    lock_bps: uint256,
    payout_period: uint256,
    waiting_period: uint256,
):
    self.owner = owner
    self.token = token
    self.whitelist = whitelist
    self.dao = dao
    self.factory = msg.sender
    self.deposit = deposit
    self.lock_bps = lock_bps
    self.payout_period = payout_period
    self.waiting_period = waiting_period
    self.status = CREATED


@view
@internal
def _available() -> uint256:
    balance: uint256 = staticcall IERC20(self.token).balanceOf(self)
    committed: uint256 = self.frozen_funds + self.locked_funds + self.owed_total
    if balance <= committed:
        return 0
    return balance - committed


@view
@external
def available() -> uint256:
    """Tokens the owner may still pay out or withdraw."""
    return self._available()


@internal
def _set_status(new_status: uint8):
    log StatusChanged(old_status=self.status, new_status=new_status, timestamp=block.timestamp)
    self.status = new_status
    extcall IWhitelist(self.whitelist).set_status(new_status)


@external
def register(name: String[64], multiaddrs: String[512]):
    assert msg.sender == self.owner, "wallet: caller is not the owner"
    assert self.status == CREATED or self.status == IDLE, "wallet: cannot register in this state"
    assert self._available() >= self.deposit, "wallet: balance below the deposit"
    self.frozen_funds = self.deposit
    self.next_payday = block.timestamp + self.payout_period
    log StatusChanged(old_status=self.status, new_status=REGISTERED, timestamp=block.timestamp)
    self.status = REGISTERED
    extcall IWhitelist(self.whitelist).register_hub(self.owner, name, multiaddrs)
    log Registered(owner=self.owner, deposit=self.deposit, timestamp=block.timestamp)


@external
def transfer(miner: address, amount: uint256):
    assert msg.sender == self.owner, "wallet: caller is not the owner"
    assert self.status == REGISTERED, "wallet: hub is not registered"
    assert miner != empty(address), "wallet: zero miner address"
    assert amount > 0, "wallet: zero amount"
    assert self._available() >= amount, "wallet: insufficient available funds"
    lock_fee: uint256 = amount * self.lock_bps // MAX_BPS
    payout: uint256 = amount - lock_fee
    self.locked_funds += lock_fee
    self.owed[miner] += payout
    self.owed_total += payout
    self.payout_count += 1
    self.paid_total += payout
    log MinerPaid(
        miner=miner, amount=amount, payout=payout, lock_fee=lock_fee, timestamp=block.timestamp
    )


@external
def claim():
    amount: uint256 = self.owed[msg.sender]
    assert amount > 0, "wallet: nothing owed"
    assert self.status != SUSPECTED and self.status != PUNISHED, "wallet: funds are blocked"
    self.owed[msg.sender] = 0
    self.owed_total -= amount
    assert extcall IERC20(self.token).transfer(msg.sender, amount), "wallet: token transfer failed"
    log Claimed(miner=msg.sender, amount=amount, timestamp=block.timestamp)


@external
def payday():
    assert self.status == REGISTERED or self.status == IDLE, "wallet: funds are blocked"
    assert block.timestamp >= self.next_payday, "wallet: payout period not over"
    amount: uint256 = self.locked_funds
    self.locked_funds = 0
    self.next_payday = block.timestamp + self.payout_period
    if amount > 0:
        assert extcall IERC20(self.token).transfer(self.dao, amount), "wallet: token transfer failed"
    log Payday(to_dao=amount, next_payday=self.next_payday, timestamp=block.timestamp)


@external
def unregister():
    assert msg.sender == self.owner, "wallet: caller is not the owner"
    assert self.status == REGISTERED, "wallet: hub is not registered"
    assert self.locked_funds == 0, "wallet: lock fees pending, call payday first"
    self.frozen_funds = 0
    self._set_status(IDLE)


@external
def withdraw(receiver: address, amount: uint256):
    assert msg.sender == self.owner, "wallet: caller is not the owner"
    assert self.status != SUSPECTED and self.status != PUNISHED, "wallet: funds are blocked"
    assert receiver != empty(address), "wallet: zero receiver address"
    assert amount > 0, "wallet: zero amount"
    assert self._available() >= amount, "wallet: insufficient available funds"
    assert extcall IERC20(self.token).transfer(receiver, amount), "wallet: token transfer failed"
    log Withdrawn(receiver=receiver, amount=amount, timestamp=block.timestamp)


@external
def suspect():
    assert msg.sender == self.dao, "wallet: caller is not the DAO"
    assert self.status == REGISTERED or self.status == IDLE, "wallet: cannot suspect in this state"
    self.status_before_suspect = self.status
    self.suspected_at = block.timestamp
    self._set_status(SUSPECTED)


@external
def rehab():
    assert msg.sender == self.dao, "wallet: caller is not the DAO"
    assert self.status == SUSPECTED, "wallet: hub is not suspected"
    self.suspected_at = 0
    self._set_status(self.status_before_suspect)


@external
def ban():
    assert msg.sender == self.dao, "wallet: caller is not the DAO"
    assert self.status == SUSPECTED, "wallet: hub is not suspected"
    assert block.timestamp >= self.suspected_at + self.waiting_period, "wallet: waiting period not over"
    amount: uint256 = staticcall IERC20(self.token).balanceOf(self)
    self.frozen_funds = 0
    self.locked_funds = 0
    self.owed_total = 0
    self._set_status(PUNISHED)
    if amount > 0:
        assert extcall IERC20(self.token).transfer(self.dao, amount), "wallet: token transfer failed"
    log Banned(to_dao=amount, timestamp=block.timestamp)
