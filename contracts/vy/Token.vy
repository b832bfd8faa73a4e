# pragma version ~=0.4.3
"""
@title SNM token
@notice ERC-20 with 18 decimals. The deployer (the DAO in the devnet) may mint, so that
        test networks can fund consumers and hubs; a production deployment renounces
        minting by passing the minter role to the zero address.
"""

event Transfer:
    sender: indexed(address)
    receiver: indexed(address)
    value: uint256

event Approval:
    owner: indexed(address)
    spender: indexed(address)
    value: uint256

event MinterChanged:
    old_minter: indexed(address)
    new_minter: indexed(address)

name: public(String[32])
symbol: public(String[8])
decimals: public(constant(uint8)) = 18

totalSupply: public(uint256)
balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])
minter: public(address)


@deploy
def __init__(initial_supply: uint256):
    self.name = "SONM Token"
    self.symbol = "SNM"
    self.minter = msg.sender
    self.balanceOf[msg.sender] = initial_supply
    self.totalSupply = initial_supply
    log Transfer(sender=empty(address), receiver=msg.sender, value=initial_supply)


@internal
def _transfer(sender: address, receiver: address, amount: uint256):
    assert receiver != empty(address), "token: transfer to zero address"
    assert self.balanceOf[sender] >= amount, "token: insufficient balance"
    self.balanceOf[sender] -= amount
    self.balanceOf[receiver] += amount
    log Transfer(sender=sender, receiver=receiver, value=amount)


@external
def transfer(receiver: address, amount: uint256) -> bool:
    self._transfer(msg.sender, receiver, amount)
    return True


@external
def transferFrom(sender: address, receiver: address, amount: uint256) -> bool:
    allowed: uint256 = self.allowance[sender][msg.sender]
    assert allowed >= amount, "token: insufficient allowance"
    if allowed != max_value(uint256):
        self.allowance[sender][msg.sender] = allowed - amount
    self._transfer(sender, receiver, amount)
    return True


@external
def approve(spender: address, amount: uint256) -> bool:
    assert spender != empty(address), "token: approve to zero address"
    self.allowance[msg.sender][spender] = amount
    log Approval(owner=msg.sender, spender=spender, value=amount)
    return True


@external
def mint(receiver: address, amount: uint256):
    assert msg.sender == self.minter, "token: caller is not the minter"
    assert receiver != empty(address), "token: mint to zero address"
    self.totalSupply += amount
    self.balanceOf[receiver] += amount
    log Transfer(sender=empty(address), receiver=receiver, value=amount)


@external
def set_minter(new_minter: address):
    assert msg.sender == self.minter, "token: caller is not the minter"
    log MinterChanged(old_minter=self.minter, new_minter=new_minter)
    self.minter = new_minter
