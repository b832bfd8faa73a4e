# pragma version ~=0.4.3
"""
@title Whitelist: the hub registry
@notice Every hub a node may trust is listed here, keyed by its hub wallet. Only wallets
        made by the HubWalletFactory can register, so a listing proves the hub locked the
        factory's deposit under the factory's rules. Each wallet mirrors its own status
        here, and the DAO keeps a trusted list on top (the pre-trusted hubs of global trust).
"""

interface Factory:
    def is_wallet(wallet: address) -> bool: view

# Statuses, shared with HubWallet. UNKNOWN means never registered.
UNKNOWN: constant(uint8) = 0
REGISTERED: constant(uint8) = 1
IDLE: constant(uint8) = 2
SUSPECTED: constant(uint8) = 3
PUNISHED: constant(uint8) = 4

struct Hub:
    owner: address
    wallet: address
    name: String[64]
    multiaddrs: String[512]
    status: uint8
    registered_at: uint256
    updated_at: uint256

event FactorySet:
    factory: indexed(address)

event DaoChanged:
    old_dao: indexed(address)
    new_dao: indexed(address)

event HubRegistered:
    wallet: indexed(address)
    owner: indexed(address)
    name: String[64]
    multiaddrs: String[512]
    timestamp: uint256

event HubUpdated:
    wallet: indexed(address)
    name: String[64]
    multiaddrs: String[512]
    timestamp: uint256

event HubStatusChanged:
    wallet: indexed(address)
    old_status: uint8
    new_status: uint8
    timestamp: uint256

event TrustedChanged:
    wallet: indexed(address)
    trusted: bool
    timestamp: uint256

dao: public(address)
factory: public(address)
hubs: public(HashMap[address, Hub])
trusted: public(HashMap[address, bool])
hub_count: public(uint256)
hub_at: public(HashMap[uint256, address])


@deploy
def __init__(dao: address):
    assert dao != empty(address), "whitelist: zero DAO address"
    self.dao = dao


@external
def set_factory(factory: address):
    assert msg.sender == self.dao, "whitelist: caller is not the DAO"
    assert self.factory == empty(address), "whitelist: factory already set"
    assert factory != empty(address), "whitelist: zero factory address"
    self.factory = factory
    log FactorySet(factory=factory)


@external
def set_dao(new_dao: address):
    assert msg.sender == self.dao, "whitelist: caller is not the DAO"
    assert new_dao != empty(address), "whitelist: zero DAO address"
    log DaoChanged(old_dao=self.dao, new_dao=new_dao)
    self.dao = new_dao


@external
def register_hub(owner: address, name: String[64], multiaddrs: String[512]):
    assert self.factory != empty(address), "whitelist: factory not set"
    assert staticcall Factory(self.factory).is_wallet(msg.sender), "whitelist: not a factory wallet"
    assert len(name) > 0, "whitelist: empty hub name"
    hub: Hub = self.hubs[msg.sender]
    assert hub.status != PUNISHED, "whitelist: hub is punished"
    assert hub.status != REGISTERED, "whitelist: hub already registered"
    if hub.registered_at == 0:
        self.hub_at[self.hub_count] = msg.sender
        self.hub_count += 1
    old: uint8 = hub.status
    self.hubs[msg.sender] = Hub(
        owner=owner,
        wallet=msg.sender,
        name=name,
        multiaddrs=multiaddrs,
        status=REGISTERED,
        registered_at=block.timestamp,
        updated_at=block.timestamp,
    )
    log HubRegistered(
        wallet=msg.sender, owner=owner, name=name, multiaddrs=multiaddrs, timestamp=block.timestamp
    )
    log HubStatusChanged(
        wallet=msg.sender, old_status=old, new_status=REGISTERED, timestamp=block.timestamp
    )


@external
def update_hub(wallet: address, name: String[64], multiaddrs: String[512]):
    hub: Hub = self.hubs[wallet]
    assert hub.registered_at != 0, "whitelist: hub not registered"
    assert msg.sender == hub.owner, "whitelist: caller is not the hub owner"
    assert hub.status != PUNISHED, "whitelist: hub is punished"
    assert len(name) > 0, "whitelist: empty hub name"
    self.hubs[wallet].name = name
    self.hubs[wallet].multiaddrs = multiaddrs
    self.hubs[wallet].updated_at = block.timestamp
    log HubUpdated(wallet=wallet, name=name, multiaddrs=multiaddrs, timestamp=block.timestamp)


@external
def set_status(new_status: uint8):
    """The wallet reports its own state change; nobody else can speak for it."""
    hub: Hub = self.hubs[msg.sender]
    assert hub.registered_at != 0, "whitelist: hub not registered"
    assert new_status >= REGISTERED and new_status <= PUNISHED, "whitelist: bad status"
    self.hubs[msg.sender].status = new_status
    self.hubs[msg.sender].updated_at = block.timestamp
    log HubStatusChanged(
        wallet=msg.sender, old_status=hub.status, new_status=new_status, timestamp=block.timestamp
    )


@external
def set_trusted(wallet: address, is_trusted: bool):
    assert msg.sender == self.dao, "whitelist: caller is not the DAO"
    assert self.hubs[wallet].registered_at != 0, "whitelist: hub not registered"
    self.trusted[wallet] = is_trusted
    log TrustedChanged(wallet=wallet, trusted=is_trusted, timestamp=block.timestamp)


@view
@external
def owner_of(wallet: address) -> address:
    return self.hubs[wallet].owner


@view
@external
def status_of(wallet: address) -> uint8:
    return self.hubs[wallet].status
