# pragma version ~=0.4.3
"""
@title Deals registry
@notice A consumer proposes a deal to a registered hub and escrows price x duration in
        SNM; the hub's owner accepts, which starts the clock. After the end anyone may
        close and the hub wallet gets the whole escrow. The consumer may close early: the
        hub gets price x elapsed seconds and the consumer the rest, exact to the wei.
        If the DAO has banned the hub by then, the consumer gets everything back.
        Prices are in token wei per second so that the pro-rata split has no rounding.
"""

interface IERC20:
    def transfer(receiver: address, amount: uint256) -> bool: nonpayable
    def transferFrom(sender: address, receiver: address, amount: uint256) -> bool: nonpayable

interface IWhitelist:
    def owner_of(wallet: address) -> address: view
    def status_of(wallet: address) -> uint8: view

HUB_REGISTERED: constant(uint8) = 1
HUB_PUNISHED: constant(uint8) = 4

UNKNOWN: constant(uint8) = 0
PENDING: constant(uint8) = 1
ACCEPTED: constant(uint8) = 2
CLOSED: constant(uint8) = 3

struct Deal:
    consumer: address
    hub: address
    price: uint256
    duration: uint256
    escrow: uint256
    status: uint8
    proposed_at: uint256
    start_time: uint256
    end_time: uint256
    paid: uint256
    refunded: uint256
    order_ref: bytes32

event DealProposed:
    deal_id: indexed(uint256)
    consumer: indexed(address)
    hub: indexed(address)
    price: uint256
    duration: uint256
    escrow: uint256
    order_ref: bytes32
    timestamp: uint256

event DealAccepted:
    deal_id: indexed(uint256)
    hub: indexed(address)
    start_time: uint256
    end_time: uint256

event DealClosed:
    deal_id: indexed(uint256)
    hub: indexed(address)
    paid: uint256
    refunded: uint256
    preterm: bool
    timestamp: uint256

token: public(address)
whitelist: public(address)
deals: public(HashMap[uint256, Deal])
deal_count: public(uint256)


@deploy
def __init__(token: address, whitelist: address):
    assert token != empty(address), "deals: zero token address"
    assert whitelist != empty(address), "deals: zero whitelist address"
    self.token = token
    self.whitelist = whitelist


@external
def propose(hub: address, price: uint256, duration: uint256, order_ref: bytes32) -> uint256:
    assert staticcall IWhitelist(self.whitelist).status_of(hub) == HUB_REGISTERED, "deals: hub is not registered"
    assert price > 0, "deals: zero price"
    assert duration > 0, "deals: zero duration"
    escrow: uint256 = price * duration
    deal_id: uint256 = self.deal_count + 1
    self.deal_count = deal_id
    self.deals[deal_id] = Deal(
        consumer=msg.sender,
        hub=hub,
        price=price,
        duration=duration,
        escrow=escrow,
        status=PENDING,
        proposed_at=block.timestamp,
        start_time=0,
        end_time=0,
        paid=0,
        refunded=0,
        order_ref=order_ref,
    )
    assert extcall IERC20(self.token).transferFrom(msg.sender, self, escrow), "deals: escrow failed"
    log DealProposed(
        deal_id=deal_id,
        consumer=msg.sender,
        hub=hub,
        price=price,
        duration=duration,
        escrow=escrow,
        order_ref=order_ref,
        timestamp=block.timestamp,
    )
    return deal_id


@external
def cancel(deal_id: uint256):
    deal: Deal = self.deals[deal_id]
    assert deal.status == PENDING, "deals: deal is not pending"
    assert msg.sender == deal.consumer, "deals: caller is not the consumer"
    self.deals[deal_id].status = CLOSED
    self.deals[deal_id].refunded = deal.escrow
    assert extcall IERC20(self.token).transfer(deal.consumer, deal.escrow), "deals: refund failed"
    log DealClosed(
        deal_id=deal_id, hub=deal.hub, paid=0, refunded=deal.escrow, preterm=True,
        timestamp=block.timestamp
    )


@external
def accept(deal_id: uint256):
    deal: Deal = self.deals[deal_id]
    assert deal.status == PENDING, "deals: deal is not pending"
    assert msg.sender == staticcall IWhitelist(self.whitelist).owner_of(deal.hub), "deals: caller is not the hub owner"
    assert staticcall IWhitelist(self.whitelist).status_of(deal.hub) == HUB_REGISTERED, "deals: hub is not registered"
    end_time: uint256 = block.timestamp + deal.duration
    self.deals[deal_id].status = ACCEPTED
    self.deals[deal_id].start_time = block.timestamp
    self.deals[deal_id].end_time = end_time
    log DealAccepted(deal_id=deal_id, hub=deal.hub, start_time=block.timestamp, end_time=end_time)


@external
def close(deal_id: uint256):
    deal: Deal = self.deals[deal_id]
    assert deal.status == ACCEPTED, "deals: deal is not accepted"
    paid: uint256 = deal.escrow
    refunded: uint256 = 0
    preterm: bool = False
    if block.timestamp < deal.end_time:
        assert msg.sender == deal.consumer, "deals: deal has not ended"
        paid = deal.price * (block.timestamp - deal.start_time)
        refunded = deal.escrow - paid
        preterm = True
    if staticcall IWhitelist(self.whitelist).status_of(deal.hub) == HUB_PUNISHED:
        # a banned hub's wallet is frozen for good: the payment would be lost there
        paid = 0
        refunded = deal.escrow
    self.deals[deal_id].status = CLOSED
    self.deals[deal_id].paid = paid
    self.deals[deal_id].refunded = refunded
    if paid > 0:
        assert extcall IERC20(self.token).transfer(deal.hub, paid), "deals: payment failed"
    if refunded > 0:
        assert extcall IERC20(self.token).transfer(deal.consumer, refunded), "deals: refund failed"
    log DealClosed(
        deal_id=deal_id, hub=deal.hub, paid=paid, refunded=refunded, preterm=preterm,
        timestamp=block.timestamp
    )
