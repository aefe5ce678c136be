// js-libp2p (libp2p + @libp2p/kad-dht, npm) as a peer of the IPFS interop matrix.
//
// Hosts --nodes N libp2p nodes on 127.0.0.1 (TCP + noise + yamux, identify, ping, kad-dht)
// and speaks the IPFS line protocol of the dht-interop crate (src/ipfs.rs). Each node dials
// the loopback seed (--bootstrap, a multiaddr ending in /p2p/<id>) and the first node of
// this process; nothing else is ever dialed first.
//
// Stock configuration but for what a loopback network needs (PROTOCOL-NOTES.md):
// - clientMode: false (a server: js starts as a client until it sees a public address,
//   which never happens on loopback);
// - peerInfoMapper: passthroughMapper (the default drops private and loopback addresses);
// - the connection manager's inbound limits raised (5 connections a second and 10 pending
//   per IP by default: every peer here is 127.0.0.1).
// Versions are pinned by package.json and package-lock.json.

// libp2p 3.x calls Promise.withResolvers, which Node 20 lacks (its packages declare
// node >= 22): the standard's few lines, installed before libp2p is loaded.
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function withResolvers () {
    let resolve, reject
    const promise = new this((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}

const readline = await import('node:readline')
const { createLibp2p } = await import('libp2p')
const { tcp } = await import('@libp2p/tcp')
const { noise } = await import('@chainsafe/libp2p-noise')
const { yamux } = await import('@chainsafe/libp2p-yamux')
const { identify } = await import('@libp2p/identify')
const { ping } = await import('@libp2p/ping')
const { kadDHT, passthroughMapper } = await import('@libp2p/kad-dht')
const { multiaddr } = await import('@multiformats/multiaddr')
const { CID } = await import('multiformats/cid')
const Digest = await import('multiformats/hashes/digest')

const TIMEOUT_MS = 25000
// A join ends within the 30 s the runner waits for `ready`, found peers or not.
const JOIN_TIMEOUT_MS = 10000
// The CID codec of raw bytes: a provider key is the CID's multihash, whatever its codec.
const RAW = 0x55

function parseArgs () {
  const args = { nodes: 2, bootstrap: null }
  const argv = process.argv.slice(2)
  for (let i = 0; i < argv.length; i += 2) {
    if (argv[i] === '--nodes') args.nodes = Math.max(1, parseInt(argv[i + 1], 10) || 2)
    else if (argv[i] === '--bootstrap') args.bootstrap = argv[i + 1]
    else {
      console.error(`unknown argument ${argv[i]}`)
      process.exit(2)
    }
  }
  if (args.bootstrap != null && !args.bootstrap.startsWith('/ip4/127.')) {
    console.error('the bootstrap must be a loopback multiaddr')
    process.exit(2)
  }
  return args
}

async function startNode () {
  return createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionManager: {
      inboundConnectionThreshold: 10000,
      maxIncomingPendingConnections: 1000
    },
    services: {
      identify: identify(),
      ping: ping(),
      dht: kadDHT({ clientMode: false, peerInfoMapper: passthroughMapper })
    }
  })
}

function sleep (ms) {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

// Dials the seeds and waits for a first entry in the routing table (js adds a peer
// only after identify said kad and ping answered). The lookup of its own id that
// fills the table is the runner's `refresh`: run at once by ten nodes of one process,
// whose noise handshakes share one thread, it takes longer than a start may.
async function join (node, seeds) {
  for (const seed of seeds) {
    try {
      await node.dial(multiaddr(seed), { signal: AbortSignal.timeout(JOIN_TIMEOUT_MS) })
    } catch (err) {
      console.error(`js-libp2p: dial ${seed}: ${err.message}`)
    }
  }
  const dht = node.services.dht
  for (let i = 0; i < 100 && seeds.length > 0 && dht.routingTable.size === 0; i++) await sleep(100)
}

async function lookup (dht, key) {
  const ids = []
  for await (const ev of dht.getClosestPeers(key, { signal: AbortSignal.timeout(TIMEOUT_MS) })) {
    if (ev.name === 'FINAL_PEER') ids.push(ev.peer.id.toString())
  }
  return ids
}

function cidOf (multihash) {
  return CID.createV1(RAW, Digest.decode(multihash))
}

function fromHex (s) {
  if (!/^([0-9a-fA-F]{2})*$/.test(s)) throw new Error(`bad hex ${s}`)
  return Uint8Array.from(Buffer.from(s, 'hex'))
}

const hex = (b) => Buffer.from(b).toString('hex')

async function run (nodes, words) {
  const dht = nodes[0].services.dht
  const signal = AbortSignal.timeout(TIMEOUT_MS)
  switch (words[0]) {
    case 'refresh': {
      await Promise.all(nodes.map((n) => lookup(n.services.dht, n.peerId.toMultihash().bytes)))
      return 'ok'
    }
    case 'closest': {
      const ids = await lookup(dht, fromHex(words[1]))
      return ids.length > 0 ? `ok ${ids.join(',')}` : 'none'
    }
    case 'put_record': {
      let acks = 0
      for await (const ev of dht.put(fromHex(words[1]), fromHex(words[2]), { signal })) {
        // PUT_VALUE replies echo the record; a reply with another value comes back
        // as a QUERY_ERROR right after its PEER_RESPONSE.
        if (ev.name === 'PEER_RESPONSE' && ev.messageName === 'PUT_VALUE') acks++
        if (ev.name === 'QUERY_ERROR' && ev.error?.message === 'Value not put correctly') acks--
      }
      return acks > 0 ? `ok ${acks}` : 'err no server acknowledged the put'
    }
    case 'get_record': {
      try {
        for await (const ev of dht.get(fromHex(words[1]), { signal })) {
          if (ev.name === 'VALUE') return `ok ${hex(ev.value)}`
        }
      } catch (err) {
        if (err.name !== 'NotFoundError') throw err
      }
      return 'none'
    }
    case 'provide': {
      let sent = 0
      for await (const ev of dht.provide(cidOf(fromHex(words[1])), { signal })) {
        if (ev.name === 'PEER_RESPONSE' && ev.messageName === 'ADD_PROVIDER') sent++
      }
      return sent > 0 ? `ok ${sent}` : 'err sent to no peer'
    }
    case 'providers': {
      const ids = new Set()
      for await (const ev of dht.findProviders(cidOf(fromHex(words[1])), { signal })) {
        if (ev.name === 'PROVIDER') for (const p of ev.providers) ids.add(p.id.toString())
      }
      return ids.size > 0 ? `ok ${[...ids].join(',')}` : 'none'
    }
    case 'holds_record': {
      // What this process's nodes keep in their own datastores (kad-dht's internals:
      // getLocal also validates the record, as a GET_VALUE answer would).
      const held = []
      for (const [i, n] of nodes.entries()) {
        try {
          await n.services.dht.contentFetching.getLocal(fromHex(words[1]))
          held.push(i)
        } catch {}
      }
      return held.length > 0 ? `ok ${held.join(',')}` : 'none'
    }
    case 'holds_provider': {
      const cid = cidOf(fromHex(words[1]))
      const held = []
      for (const [i, n] of nodes.entries()) {
        const provs = await n.services.dht.providers.getProviders(cid)
        if (provs.some((p) => p.toString() === words[2])) held.push(i)
      }
      return held.length > 0 ? `ok ${held.join(',')}` : 'none'
    }
    default:
      return `err unknown command ${JSON.stringify(words[0] ?? '')}`
  }
}

const args = parseArgs()
const nodes = []
for (let i = 0; i < args.nodes; i++) nodes.push(await startNode())
const addrs = nodes.map((n) => n.getMultiaddrs().find((a) => a.toString().startsWith('/ip4/127.')).toString())
const seeds = args.bootstrap != null ? [args.bootstrap] : []
await Promise.all(nodes.map((n, i) => join(n, i === 0 ? seeds : [...seeds, addrs[0]])))
process.stdout.write(`ready ${addrs.join(' ')}\n`)

let queue = Promise.resolve()
const rl = readline.createInterface({ input: process.stdin })
async function shutdown () {
  await Promise.all(nodes.map((n) => n.stop().catch(() => {})))
  process.exit(0)
}
rl.on('line', (line) => {
  const words = line.trim().split(/\s+/)
  if (words[0] === 'quit') {
    queue = queue.then(shutdown)
    return
  }
  // One command at a time, replies in order.
  queue = queue.then(async () => {
    let reply
    try {
      reply = await run(nodes, words)
    } catch (err) {
      reply = `err ${String(err.message ?? err).replace(/\n/g, ' ')}`
    }
    process.stdout.write(reply + '\n')
  })
})
rl.on('close', () => { queue = queue.then(shutdown) })
