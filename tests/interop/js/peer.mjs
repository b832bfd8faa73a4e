// A js-libp2p gossipsub peer, the independent implementation our router is checked
// against (tests/interop/test_js_gossipsub.py). TCP on 127.0.0.1, Noise, Yamux,
// identify, gossipsub under StrictNoSign with message id = sha256(data), or with
// --sign under StrictSign with message id = from || seqno: the rules of
// docs/protocol.md (and go-libp2p-pubsub's defaults); with --sign --js-id, under
// StrictSign with js-libp2p's own default id (protobuf public key || seqno).
//
// Usage: node peer.mjs --topic T [--dial MULTIADDR/p2p/ID] [--publish N --prefix P]
//                      [--join-later] [--sign [--js-id]]
//
// Every line on stdout is one JSON object with an "event" field:
//   listening  {peer_id, addrs}            first line: where to dial it
//   connected / disconnected {peer}
//   subscribed {peer, topics}              a peer's subscription changed
//   graft / prune {peer, topic, direction} gossipsub's own control events
//   mesh       {topic, peers, protocols}   after every heartbeat, when it changed
//   message    {topic, from, author, data_hex, msg_id_hex}   one per delivered
//              message; from = the neighbour, author = the signer (--sign) or null
//   published  {data_hex, recipients}
//   idontwants {peers: {peer: [msg_id_hex, ...]}}
//   joined     {topic}                    after a {"subscribe": true} command
//   error      {message}
// Commands on stdin, one JSON object a line:
//   {"publish_hex": "..."}   publish these bytes on the topic
//   {"subscribe": true}      join the topic now (with --join-later: not at start)
//   {"mesh": true}           print the mesh now
//   {"idontwants": true}     print the IDONTWANT ids each peer sent us (still kept)
// It exits (status 0) when stdin closes or on SIGTERM/SIGINT. Logs go to stderr.

import { createHash } from 'node:crypto'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'

// Some of js-libp2p's dependencies (it-queue, under the peer store's locks) call
// Promise.withResolvers, which Node 20 lacks (it arrived in Node 22). Provide it
// before they load, hence the dynamic imports below.
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function withResolvers () {
    let resolve, reject
    const promise = new this((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}

const { gossipsub } = await import('@chainsafe/libp2p-gossipsub')
const { noise } = await import('@chainsafe/libp2p-noise')
const { yamux } = await import('@chainsafe/libp2p-yamux')
const { identify } = await import('@libp2p/identify')
const { tcp } = await import('@libp2p/tcp')
const { multiaddr } = await import('@multiformats/multiaddr')
const { createLibp2p } = await import('libp2p')

const { values: args } = parseArgs({
  options: {
    topic: { type: 'string' },
    dial: { type: 'string' },
    publish: { type: 'string', default: '0' },
    prefix: { type: 'string', default: 'js-' },
    'join-later': { type: 'boolean', default: false },
    sign: { type: 'boolean', default: false },
    'js-id': { type: 'boolean', default: false },
    'ready-timeout': { type: 'string', default: '10' }
  }
})
if (args.topic == null) {
  process.stderr.write('peer.mjs: --topic is required\n')
  process.exit(2)
}
const topic = args.topic
const publishCount = Number.parseInt(args.publish, 10)

function emit (event, fields = {}) {
  process.stdout.write(JSON.stringify({ event, ...fields }) + '\n')
}

const hex = (bytes) => Buffer.from(bytes).toString('hex')
const sha256 = (data) => new Uint8Array(createHash('sha256').update(data).digest())

// StrictSign id as go-libp2p-pubsub and we compute it: the author's peer id bytes
// then the 8-byte seqno. (js-libp2p's own default puts the protobuf public key
// where the peer id goes: ids that would differ from ours on the wire.)
function fromSeqnoId (msg) {
  const seqno = Buffer.from(msg.sequenceNumber.toString(16).padStart(16, '0'), 'hex')
  return new Uint8Array(Buffer.concat([msg.from.toMultihash().bytes, seqno]))
}

const node = await createLibp2p({
  addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  services: {
    identify: identify(),
    pubsub: gossipsub({
      globalSignaturePolicy: args.sign ? 'StrictSign' : 'StrictNoSign',
      // with --js-id: no msgIdFn, so gossipsub takes its own StrictSign default
      ...(args.sign && args['js-id']
        ? {}
        : { msgIdFn: args.sign ? fromSeqnoId : (msg) => sha256(msg.data) }),
      fallbackToFloodsub: false,
      emitSelf: false
    })
  }
})
const pubsub = node.services.pubsub

let stopping = false
async function stop (code = 0) {
  if (stopping) return
  stopping = true
  try {
    await node.stop()
  } catch (err) {
    process.stderr.write(`peer.mjs: stop failed: ${err}\n`)
  }
  process.exit(code)
}
process.on('SIGTERM', () => { stop(0) })
process.on('SIGINT', () => { stop(0) })

node.addEventListener('peer:connect', (evt) => emit('connected', { peer: evt.detail.toString() }))
node.addEventListener('peer:disconnect', (evt) => emit('disconnected', { peer: evt.detail.toString() }))
pubsub.addEventListener('subscription-change', (evt) => {
  emit('subscribed', {
    peer: evt.detail.peerId.toString(),
    topics: evt.detail.subscriptions.map((s) => ({ topic: s.topic, subscribe: s.subscribe }))
  })
})
for (const kind of ['graft', 'prune']) {
  pubsub.addEventListener(`gossipsub:${kind}`, (evt) => {
    const { peerId, topic: t, direction } = evt.detail
    emit(kind, { peer: peerId.toString(), topic: t, direction })
  })
}
pubsub.addEventListener('gossipsub:message', (evt) => {
  const { propagationSource, msgId, msg } = evt.detail
  emit('message', {
    topic: msg.topic,
    from: propagationSource.toString(),
    author: msg.type === 'signed' ? msg.from.toString() : null,
    data_hex: hex(msg.data),
    msg_id_hex: hex(Buffer.from(msgId, 'base64'))
  })
})

function meshState () {
  const peers = pubsub.getMeshPeers(topic).map(String).sort()
  const protocols = {}
  for (const p of pubsub.getPeers()) {
    const s = pubsub.streamsOutbound.get(p.toString())
    if (s != null) protocols[p.toString()] = s.protocol
  }
  return { topic, peers, protocols }
}
let lastMesh = ''
pubsub.addEventListener('gossipsub:heartbeat', () => {
  const state = meshState()
  const key = JSON.stringify(state)
  if (key !== lastMesh) {
    lastMesh = key
    emit('mesh', state)
  }
})

async function publish (data) {
  try {
    const res = await pubsub.publish(topic, data)
    emit('published', {
      data_hex: hex(data),
      recipients: res.recipients.map(String)
    })
  } catch (err) {
    emit('error', { message: `publish failed: ${err.message ?? err}` })
  }
}

if (!args['join-later']) pubsub.subscribe(topic)
emit('listening', {
  peer_id: node.peerId.toString(),
  addrs: node.getMultiaddrs().map(String)
})

if (args.dial != null) {
  try {
    await node.dial(multiaddr(args.dial))
  } catch (err) {
    emit('error', { message: `dial failed: ${err.message ?? err}` })
  }
}

if (publishCount > 0) {
  // Publish once a peer is in our mesh for the topic, so the messages go through
  // the mesh rather than being refused for want of peers.
  const deadline = Date.now() + Number(args['ready-timeout']) * 1000
  while (pubsub.getMeshPeers(topic).length === 0 && Date.now() < deadline && !stopping) {
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  for (let i = 0; i < publishCount; i++) {
    await publish(new TextEncoder().encode(`${args.prefix}${i}`))
  }
}

const lines = createInterface({ input: process.stdin })
lines.on('line', (line) => {
  if (line.trim() === '') return
  let cmd
  try {
    cmd = JSON.parse(line)
  } catch (err) {
    emit('error', { message: `bad command: ${line}` })
    return
  }
  if (typeof cmd.publish_hex === 'string') {
    publish(Buffer.from(cmd.publish_hex, 'hex'))
  } else if (cmd.subscribe === true) {
    // joining GRAFTs known subscribers at once: this side sends the first GRAFT
    pubsub.subscribe(topic)
    emit('joined', { topic })
  } else if (cmd.mesh === true) {
    emit('mesh', meshState())
  } else if (cmd.idontwants === true) {
    // gossipsub keeps no counter of these; its per-peer map is the record
    const peers = {}
    for (const [peer, ids] of pubsub.idontwants) {
      peers[peer] = [...ids.keys()].map((id) => hex(Buffer.from(id, 'base64')))
    }
    emit('idontwants', { peers })
  } else {
    emit('error', { message: `unknown command: ${line}` })
  }
})
lines.on('close', () => { stop(0) })
