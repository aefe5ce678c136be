// bittorrent-dht (webtorrent, npm) as an interop peer.
//
// Hosts --nodes N DHT instances on 127.0.0.1 and speaks the line protocol of the
// dht-interop crate (see its src/lib.rs). Each instance gets the loopback seed as its
// only bootstrap node (the package's default is the public routers). ed25519 comes
// from node's own crypto module, so the lockfile holds bittorrent-dht and its
// dependencies only.
import crypto from 'node:crypto'
import readline from 'node:readline'
import DHT from 'bittorrent-dht'

const TIMEOUT_MS = 20000
const PKCS8_SEED_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex')
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')

function privateKey (seed) {
  return crypto.createPrivateKey({ key: Buffer.concat([PKCS8_SEED_PREFIX, seed]), format: 'der', type: 'pkcs8' })
}

function publicKey (seed) {
  const der = crypto.createPublicKey(privateKey(seed)).export({ format: 'der', type: 'spki' })
  return der.subarray(der.length - 32)
}

function verify (sig, msg, k) {
  try {
    const key = crypto.createPublicKey({ key: Buffer.concat([SPKI_PREFIX, k]), format: 'der', type: 'spki' })
    return crypto.verify(null, msg, key, sig)
  } catch (e) {
    return false
  }
}

function sha1 (buf) {
  return crypto.createHash('sha1').update(buf).digest()
}

function withTimeout (promise) {
  return Promise.race([
    promise,
    new Promise((resolve) => setTimeout(() => resolve('err timeout'), TIMEOUT_MS))
  ])
}

function parseArgs () {
  const args = { nodes: 3, bootstrap: null }
  const argv = process.argv.slice(2)
  for (let i = 0; i < argv.length; i += 2) {
    if (argv[i] === '--nodes') args.nodes = Math.max(1, parseInt(argv[i + 1], 10))
    else if (argv[i] === '--bootstrap') args.bootstrap = argv[i + 1]
    else { console.error('unknown argument ' + argv[i]); process.exit(2) }
  }
  if (args.bootstrap && !args.bootstrap.startsWith('127.')) {
    console.error('the bootstrap must be a loopback address')
    process.exit(2)
  }
  return args
}

function listen (dht) {
  return new Promise((resolve) => dht.listen(0, '127.0.0.1', () => resolve(dht.address().port)))
}

function run (dht, words) {
  const hex = (i) => Buffer.from(words[i], 'hex')
  const salt = (i) => (words[i] === '-' ? null : hex(i))
  switch (words[0]) {
    case 'put_immutable':
      return new Promise((resolve) => dht.put({ v: hex(1) }, (err, hash, n) => {
        resolve(err ? 'err ' + err.message : n > 0 ? 'ok ' + hash.toString('hex') : 'err no node stored it')
      }))
    case 'get_immutable':
      return new Promise((resolve) => dht.get(hex(1), { cache: false }, (err, res) => {
        if (err) return resolve('err ' + err.message)
        resolve(res && Buffer.isBuffer(res.v) ? 'ok ' + res.v.toString('hex') : 'none')
      }))
    case 'put_mutable': {
      const seed = hex(1)
      const key = privateKey(seed)
      const seq = parseInt(words[3], 10)
      const opts = { k: publicKey(seed), seq, v: hex(4), sign: (buf) => crypto.sign(null, buf, key) }
      const s = salt(2)
      if (s) opts.salt = s
      return new Promise((resolve) => dht.put(opts, (err, hash, n) => {
        resolve(err ? 'err ' + err.message : n > 0 ? 'ok ' + seq : 'err no node stored it')
      }))
    }
    case 'get_mutable': {
      const k = hex(1)
      const s = salt(2)
      const target = sha1(s ? Buffer.concat([k, s]) : k)
      const opts = { cache: false }
      if (s) opts.salt = s
      return new Promise((resolve) => dht.get(target, opts, (err, res) => {
        if (err) return resolve('err ' + err.message)
        resolve(res && Buffer.isBuffer(res.v) ? 'ok ' + res.seq + ' ' + res.v.toString('hex') : 'none')
      }))
    }
    case 'announce':
      return new Promise((resolve) => dht.announce(hex(1), parseInt(words[2], 10), (err) => {
        resolve(err ? 'err ' + err.message : 'ok')
      }))
    case 'get_peers': {
      const ports = new Set()
      const ih = hex(1)
      const onPeer = (peer, infoHash) => { if (infoHash.equals(ih)) ports.add(peer.port) }
      dht.on('peer', onPeer)
      return new Promise((resolve) => dht.lookup(ih, (err) => {
        dht.removeListener('peer', onPeer)
        if (err) return resolve('err ' + err.message)
        const list = [...ports].sort((a, b) => a - b)
        resolve(list.length ? 'ok ' + list.join(',') : 'none')
      }))
    }
    default:
      return Promise.resolve('err unknown command ' + words[0])
  }
}

async function main () {
  const args = parseArgs()
  const nodes = []
  const ports = []
  for (let i = 0; i < args.nodes; i++) {
    const bootstrap = []
    if (args.bootstrap) bootstrap.push(args.bootstrap)
    if (ports.length) bootstrap.push('127.0.0.1:' + ports[0])
    // bootstrap: false when there is nothing to join: never the public routers.
    const dht = new DHT({ bootstrap: bootstrap.length ? bootstrap : false, verify, host: false })
    dht.on('error', (e) => console.error('dht error: ' + e.message))
    dht.on('warning', () => {})
    ports.push(await listen(dht))
    nodes.push(dht)
  }
  console.log('ready ' + ports.map((p) => '127.0.0.1:' + p).join(' '))
  const dht = nodes[0]
  const rl = readline.createInterface({ input: process.stdin })
  // One command at a time, in order.
  let chain = Promise.resolve()
  rl.on('line', (line) => {
    const words = line.trim().split(/\s+/)
    if (!words[0]) return
    if (words[0] === 'quit') {
      for (const n of nodes) n.destroy()
      process.exit(0)
    }
    chain = chain.then(async () => {
      let reply
      try {
        reply = await withTimeout(run(dht, words))
      } catch (e) {
        reply = 'err ' + e.message
      }
      console.log(reply)
    })
  })
  rl.on('close', () => {
    chain.then(() => {
      for (const n of nodes) n.destroy()
      process.exit(0)
    })
  })
}

main()
