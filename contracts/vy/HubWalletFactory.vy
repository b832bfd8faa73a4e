# pragma version ~=0.4.3
"""
@title HubWalletFactory
@notice Makes hub wallets from one blueprint with the same rules for every hub (deposit,
        lock fee, payout period, waiting period before a ban), and remembers which
        addresses it made: the Whitelist admits only those.
"""

MAX_BPS: constant(uint256) = 10000

event WalletCreated:
    owner: indexed(address)
    wallet: indexed(address)
    index: uint256
    timestamp: uint256

blueprint: public(address)
token: public(address)
whitelist: public(address)
dao: public(address)
deposit: public(uint256)
lock_bps: public(uint256)
payout_period: public(uint256)
waiting_period: public(uint256)

is_wallet: public(HashMap[address, bool])
wallet_count: public(uint256)
wallet_at: public(HashMap[uint256, address])


@deploy
def __init__(
    blueprint: address,
    token: address,
    whitelist: address,
    dao: address,
    deposit: uint256,
    lock_bps: uint256,
    payout_period: uint256,
    waiting_period: uint256,
):
    assert blueprint != empty(address), "factory: zero blueprint address"
    assert token != empty(address), "factory: zero token address"
    assert whitelist != empty(address), "factory: zero whitelist address"
    assert dao != empty(address), "factory: zero DAO address"
    assert deposit > 0, "factory: deposit must be positive"
    assert lock_bps <= MAX_BPS, "factory: lock_bps above 10000"
    assert payout_period > 0, "factory: payout period must be positive"
    self.blueprint = blueprint
    self.token = token
    self.whitelist = whitelist
    self.dao = dao
    self.deposit = deposit
    self.lock_bps = lock_bps
    self.payout_period = payout_period
    self.waiting_period = waiting_period


@external
def create() -> address:
    wallet: address = create_from_blueprint(
        self.blueprint,
        msg.sender,
        self.token,
        self.whitelist,
        self.dao,
        self.deposit,
        self.lock_bps,
        self.payout_period,
        self.waiting_period,
    )
    self.is_wallet[wallet] = True
    self.wallet_at[self.wallet_count] = wallet
    log WalletCreated(
        owner=msg.sender, wallet=wallet, index=self.wallet_count, timestamp=block.timestamp
    )
    self.wallet_count += 1
    return wallet
