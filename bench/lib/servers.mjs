// Servers under test: pluggable entries.
//
// An entry is { name, description, available(), prepare(ctx), command(ctx),
// ready, url(port, docId), framing, version() }.
//   prepare(ctx)  – optional one-off set-up (e.g. `collab migrate`), may throw
//   command(ctx)  – { cmd, args, env, cwd } of the server process; it must bind
//                   127.0.0.1:ctx.port
//   ready         – { http: '/path' } (poll until 200) or { tcp: true }
//   framing       – how y-protocols messages are put on the wire
//
// To add a server (e.g. @hocuspocus/server or pycrdt-websocket) add an entry
// here; scenarios need nothing else.

import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'

const here = path.dirname(fileURLToPath(import.meta.url))
export const BENCH_DIR = path.resolve(here, '..')
export const ROOT = path.resolve(BENCH_DIR, '..')

// Standard y-websocket framing: one y-protocols message per frame, the
// document is named by the URL.
export const yWebsocketFraming = {
  name: 'y-websocket',
  onOpen: () => [],
  wrap: (_doc, msg) => msg,
  unwrap: (buf) => buf
}

// Hocuspocus framing: every message starts with the document name (varString);
// the client authenticates first (Auth/Token, any token when the server has no
// onAuthenticate hook); SyncReply (4) is a sync message; SyncStatus (8),
// Ping/Pong and 'Authenticated' are dropped.
const hocuspocusFraming = {
  name: 'hocuspocus',
  onOpen: (doc) => {
    const enc = encoding.createEncoder()
    encoding.writeVarString(enc, doc)
    encoding.writeVarUint(enc, 2) // Auth
    encoding.writeVarUint(enc, 0) // Token
    encoding.writeVarString(enc, 'bench')
    return [encoding.toUint8Array(enc)]
  },
  wrap: (doc, msg) => {
    const enc = encoding.createEncoder()
    encoding.writeVarString(enc, doc)
    encoding.writeUint8Array(enc, msg)
    return encoding.toUint8Array(enc)
  },
  unwrap: (buf) => {
    const dec = decoding.createDecoder(buf)
    decoding.readVarString(dec)
    const start = dec.pos
    const type = decoding.readVarUint(dec)
    if (type === 4) { // SyncReply -> Sync
      const out = new Uint8Array(buf.length - dec.pos + 1)
      out[0] = 0
      out.set(buf.subarray(dec.pos), 1)
      return out
    }
    if (type === 0 || type === 1 || type === 3) return buf.subarray(start)
    if (type === 2 && decoding.readVarUint(dec) === 1) return buf.subarray(start) // permission denied
    return null
  }
}

const readJSON = (p) => { try { return JSON.parse(fs.readFileSync(p, 'utf8')) } catch (e) { return null } }

const collabBin = () => process.env.COLLAB_BIN || path.join(ROOT, '.venv', 'bin', 'collab')

export const SERVERS = {
  collab: {
    name: 'collab',
    description: 'collab serve (Python, Starlette + uvicorn + pycrdt), SQLite database',
    available: () => fs.existsSync(collabBin()) ? null : `${collabBin()} not found (run \`make run\` or pip install the project into .venv first)`,
    env: (ctx) => ({
      ...process.env,
      COLLAB_DATABASE_URL: `sqlite+aiosqlite:///${path.join(ctx.tmpdir, 'bench.db')}`,
      // Every simulated client comes from 127.0.0.1 and writers go up to 800 edits/s:
      // lift the per-address and per-connection abuse limits out of the way.
      COLLAB_MAX_CONNECTIONS_PER_CLIENT: '100000',
      COLLAB_MESSAGES_PER_SECOND: '100000',
      ...(ctx.env || {}) // per-scenario settings (e.g. the write-rate scenario's)
    }),
    prepare (ctx) {
      const r = spawnSync(collabBin(), ['migrate'], { env: this.env(ctx), cwd: ctx.tmpdir, encoding: 'utf8', timeout: 120000 })
      if (r.status !== 0) throw new Error(`collab migrate failed (exit ${r.status}): ${(r.stderr || '') + (r.stdout || '')}`.slice(0, 2000))
    },
    command (ctx) {
      return { cmd: collabBin(), args: ['serve', '--host', '127.0.0.1', '--port', String(ctx.port)], env: this.env(ctx), cwd: ctx.tmpdir }
    },
    ready: { http: '/healthz' },
    url: (port, doc) => `ws://127.0.0.1:${port}/ws/${doc}`,
    framing: yWebsocketFraming,
    version () {
      const py = path.join(ROOT, '.venv', 'bin', 'python')
      const r = spawnSync(py, ['-c', 'import importlib.metadata as m\nfor p in ("collab","pycrdt","starlette","uvicorn","websockets","sqlalchemy"):\n  try: print(p, m.version(p))\n  except Exception: pass'], { encoding: 'utf8', timeout: 30000 })
      return (r.stdout || '').trim().split('\n').filter(Boolean).join(', ')
    }
  },
  'y-websocket': {
    name: 'y-websocket',
    description: '@y/websocket-server 0.1.1 (Node reference server, in memory)',
    available: () => fs.existsSync(path.join(BENCH_DIR, 'node_modules/@y/websocket-server/src/server.js')) ? null : 'bench/node_modules missing (npm ci in bench/)',
    prepare () {},
    command (ctx) {
      return {
        cmd: process.execPath,
        args: [path.join(BENCH_DIR, 'node_modules/@y/websocket-server/src/server.js')],
        env: { ...process.env, HOST: '127.0.0.1', PORT: String(ctx.port), ...(ctx.persistDir ? { YPERSISTENCE: ctx.persistDir } : {}) },
        cwd: ctx.tmpdir
      }
    },
    ready: { tcp: true },
    // y-leveldb writes each update asynchronously, long after it was broadcast:
    // before a restart wait until the LevelDB directory stops changing
    async settle (ctx, maxMs = 60000) {
      if (!ctx.persistDir) return
      const t0 = Date.now()
      let last = ''
      let stableSince = Date.now()
      while (Date.now() - t0 < maxMs) {
        let sig = ''
        try { for (const f of fs.readdirSync(ctx.persistDir).sort()) { const st = fs.statSync(path.join(ctx.persistDir, f)); sig += `${f}:${st.size}:${st.mtimeMs};` } } catch (e) {}
        if (sig !== last) { last = sig; stableSince = Date.now() } else if (Date.now() - stableSince >= 2000) return
        await sleep(250)
      }
    },
    url: (port, doc) => `ws://127.0.0.1:${port}/ws/${doc}`,
    framing: yWebsocketFraming,
    version () {
      const p = readJSON(path.join(BENCH_DIR, 'node_modules/@y/websocket-server/package.json'))
      return `@y/websocket-server ${p ? p.version : '?'}, node ${process.version}`
    }
  }
}

// collab with persistence idle during the window: the same server and SQLite
// database, but nothing is flushed or compacted for an hour. Run right after
// collab's own fan-out run of the same size, for the persistence on/off ratio.
export const NOPERSIST_ENV = {
  COLLAB_FLUSH_INTERVAL: '3600',
  COLLAB_MAX_WRITE_LAG: '7200', // must exceed the flush interval
  COLLAB_SNAPSHOT_INTERVAL: '3600',
  COLLAB_SNAPSHOT_THRESHOLD: '100000000'
}
SERVERS['collab-nopersist'] = {
  ...SERVERS.collab,
  name: 'collab-nopersist',
  description: 'collab serve with persistence off during the window (flush and snapshot every 3600 s)',
  variantOf: 'collab',
  variantSizes: 'nopersistClients',
  scenarios: ['fanout'],
  env (ctx) { return { ...SERVERS.collab.env(ctx), ...NOPERSIST_ENV } },
  version () { return `as collab, with ${Object.entries(NOPERSIST_ENV).map(([k, v]) => `${k}=${v}`).join(' ')}` }
}

// collab with an embedding host's on_change hook installed (a no-op), run right after
// collab's own fan-out run of the same size: what hooks cost on the hot path.
SERVERS['collab-hooks'] = {
  ...SERVERS.collab,
  name: 'collab-hooks',
  description: 'collab serve --hooks with a no-op on_change hook (bench/servers/collab_hooks.py)',
  variantOf: 'collab',
  variantSizes: 'hooksClients',
  scenarios: ['fanout'],
  env (ctx) { return { ...SERVERS.collab.env(ctx), PYTHONPATH: path.join(ROOT, 'bench', 'servers') } },
  command (ctx) {
    const base = SERVERS.collab.command.call(this, ctx)
    return { ...base, args: [...base.args, '--hooks', 'collab_hooks:hooks'] }
  },
  version () { return 'as collab, with a no-op on_change hook (collab serve --hooks collab_hooks:hooks)' }
}

SERVERS.hocuspocus = {
  name: 'hocuspocus',
  description: '@hocuspocus/server (Node, in memory, no extensions)',
  scenarios: ['fanout', 'manydocs', 'saturation'], // no persistence: nothing survives the cold-load restart
  available: () => fs.existsSync(path.join(BENCH_DIR, 'node_modules/@hocuspocus/server/package.json')) ? null : 'bench/node_modules missing (npm ci in bench/)',
  prepare () {},
  command (ctx) {
    return { cmd: process.execPath, args: [path.join(BENCH_DIR, 'servers/hocuspocus.mjs')], env: { ...process.env, PORT: String(ctx.port) }, cwd: ctx.tmpdir }
  },
  ready: { tcp: true },
  url: (port) => `ws://127.0.0.1:${port}/`,
  framing: hocuspocusFraming,
  version () {
    const p = readJSON(path.join(BENCH_DIR, 'node_modules/@hocuspocus/server/package.json'))
    return `@hocuspocus/server ${p ? p.version : '?'}, node ${process.version}`
  }
}

const pyvenvPython = path.join(BENCH_DIR, '.pyvenv', 'bin', 'python')
SERVERS['pycrdt-websocket'] = {
  name: 'pycrdt-websocket',
  description: 'pycrdt-websocket WebsocketServer under uvicorn (Python, in memory)',
  scenarios: ['fanout', 'manydocs', 'saturation'], // in memory: nothing survives the cold-load restart
  available: () => fs.existsSync(pyvenvPython) && spawnSync(pyvenvPython, ['-c', 'import pycrdt.websocket'], { timeout: 30000 }).status === 0 ? null : 'bench/.pyvenv with pycrdt-websocket missing (bash bench/run installs it)',
  prepare () {},
  command (ctx) {
    return { cmd: pyvenvPython, args: [path.join(BENCH_DIR, 'servers/pycrdt_websocket_server.py')], env: { ...process.env, PORT: String(ctx.port) }, cwd: ctx.tmpdir }
  },
  ready: { tcp: true },
  url: (port, doc) => `ws://127.0.0.1:${port}/ws/${doc}`,
  framing: yWebsocketFraming,
  version () {
    const r = spawnSync(pyvenvPython, ['-c', 'import importlib.metadata as m\nfor p in ("pycrdt-websocket","pycrdt","uvicorn","websockets"):\n  print(p, m.version(p))'], { encoding: 'utf8', timeout: 30000 })
    return (r.stdout || '').trim().split('\n').filter(Boolean).join(', ')
  }
}

// ---------------------------------------------------------------------------
export const freePort = () => new Promise((resolve, reject) => {
  const s = net.createServer()
  s.on('error', reject)
  s.listen(0, '127.0.0.1', () => {
    const { port } = s.address()
    s.close(() => resolve(port))
  })
})

const sleep = (ms) => new Promise(resolve => setTimeout(resolve, ms))

const tcpOk = (port) => new Promise(resolve => {
  const s = net.connect({ host: '127.0.0.1', port })
  s.once('connect', () => { s.destroy(); resolve(true) })
  s.once('error', () => resolve(false))
  s.setTimeout(1000, () => { s.destroy(); resolve(false) })
})

const httpOk = async (port, p) => {
  try {
    const r = await fetch(`http://127.0.0.1:${port}${p}`, { signal: AbortSignal.timeout(2000) })
    return r.status === 200
  } catch (e) { return false }
}

export const CPU_PIN = { server: '0', generator: '1' }
export const nproc = () => { try { return parseInt(spawnSync('nproc', { encoding: 'utf8' }).stdout, 10) || 1 } catch (e) { return 1 } }
export const canPin = () => nproc() >= 2 && spawnSync('taskset', ['-c', '0', 'true']).status === 0

// Start a server; returns a handle { pid, port, url(doc), stop(), log() }.
// `cap`: a CPU budget from cpucap.mjs, entered before the server starts.
export const startServer = async (entry, ctx, { pin = true, cap = null, readyTimeoutMs = 60000 } = {}) => {
  ctx.port = ctx.port || await freePort()
  fs.mkdirSync(ctx.tmpdir, { recursive: true })
  entry.prepare(ctx)
  const c = entry.command(ctx)
  const pinned = pin ? { cmd: 'taskset', args: ['-c', CPU_PIN.server, c.cmd, ...c.args] } : c
  const { cmd, args } = cap ? cap.wrap(pinned.cmd, pinned.args) : pinned
  const logPath = path.join(ctx.tmpdir, `${entry.name}.log`)
  const logFd = fs.openSync(logPath, 'a')
  const child = spawn(cmd, args, { env: c.env, cwd: c.cwd, stdio: ['ignore', logFd, logFd] })
  fs.closeSync(logFd)
  let exited = null
  child.on('exit', (code, sig) => { exited = { code, sig } })
  const log = () => { try { return fs.readFileSync(logPath, 'utf8') } catch (e) { return '' } }
  const t0 = Date.now()
  for (;;) {
    if (exited) throw new Error(`${entry.name} exited during start-up (${JSON.stringify(exited)}):\n${log().slice(-3000)}`)
    const ok = entry.ready.http ? await httpOk(ctx.port, entry.ready.http) : await tcpOk(ctx.port)
    if (ok) break
    if (Date.now() - t0 > readyTimeoutMs) {
      child.kill('SIGKILL')
      throw new Error(`${entry.name} not ready after ${readyTimeoutMs} ms:\n${log().slice(-3000)}`)
    }
    await sleep(100)
  }
  return {
    entry,
    ctx,
    pid: child.pid,
    port: ctx.port,
    url: (doc) => entry.url(ctx.port, doc),
    exited: () => exited,
    log,
    async stop () {
      if (exited) return
      const gone = new Promise(resolve => child.once('exit', resolve))
      child.kill('SIGTERM')
      // collab writes its rooms for up to COLLAB_SHUTDOWN_TIMEOUT (10 s) before exiting
      const t = await Promise.race([gone.then(() => true), sleep(15000).then(() => false)])
      if (!t) { child.kill('SIGKILL'); await gone }
    }
  }
}

// ---------------------------------------------------------------------------
// /proc sampling of a process and its descendants (a server may fork workers).
const CLK_TCK = (() => { try { return parseInt(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout, 10) || 100 } catch (e) { return 100 } })()

const readStat = (pid) => {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    const rest = s.slice(s.lastIndexOf(')') + 2).split(' ')
    // rest[0] is field 3 (state); utime = field 14, stime = field 15, ppid = field 4,
    // cutime/cstime = fields 16/17 (children it has waited for: PostgreSQL's ended backends)
    return { ppid: parseInt(rest[1], 10), utime: parseInt(rest[11], 10), stime: parseInt(rest[12], 10), cutime: parseInt(rest[13], 10), cstime: parseInt(rest[14], 10) }
  } catch (e) { return null }
}

const descendants = (pid) => {
  const all = []
  let pids = []
  try { pids = fs.readdirSync('/proc').filter(d => /^\d+$/.test(d)).map(Number) } catch (e) {}
  const children = new Map()
  for (const p of pids) {
    const st = readStat(p)
    if (!st) continue
    if (!children.has(st.ppid)) children.set(st.ppid, [])
    children.get(st.ppid).push(p)
  }
  const stack = [pid]
  while (stack.length) {
    const p = stack.pop()
    all.push(p)
    for (const c of children.get(p) || []) stack.push(c)
  }
  return all
}

// CPU time (µs, user+system) of pid and its descendants, live or waited for
export const cpuMicros = (pid) => {
  let ticks = 0
  for (const p of descendants(pid)) {
    const st = readStat(p)
    if (st) ticks += st.utime + st.stime + st.cutime + st.cstime
  }
  return ticks * 1e6 / CLK_TCK
}

// the sum over pid and its descendants of a number in one of their /proc files
const sumOfProc = (pid, file, pattern) => {
  let n = 0
  for (const p of descendants(pid)) {
    try {
      const m = pattern.exec(fs.readFileSync(`/proc/${p}/${file}`, 'utf8'))
      if (m) n += parseInt(m[1], 10)
    } catch (e) {}
  }
  return n
}

// write-class system calls (write, writev, send…: /proc/PID/io's syscw) made by pid and
// its descendants: a server's writes per delivered update, which its CPU per update
// mostly follows (each is a pass through the kernel's TCP stack), without CPU time's noise
export const writeSyscalls = (pid) => sumOfProc(pid, 'io', /^syscw:\s+(\d+)$/m)

// resident set size (bytes) of pid and its descendants
export const rssBytes = (pid) => sumOfProc(pid, 'status', /VmRSS:\s+(\d+)\s+kB/) * 1024

// per-CPU busy/total jiffies from /proc/stat: { cpu0: {busy, total, steal, softirq}, ... }
export const cpuTimes = () => {
  const out = {}
  try {
    for (const line of fs.readFileSync('/proc/stat', 'utf8').split('\n')) {
      const m = /^(cpu\d+)\s+(.*)$/.exec(line)
      if (!m) continue
      const [user, nice, system, idle, iowait, irq, softirq, steal] = m[2].split(/\s+/).map(Number)
      const total = user + nice + system + idle + iowait + irq + softirq + (steal || 0)
      out[m[1]] = { busy: total - idle - iowait, total, steal: steal || 0, softirq, sys: system }
    }
  } catch (e) {}
  return out
}

// busy % per CPU between two cpuTimes() samples
export const cpuBusyPct = (a, b) => {
  const out = {}
  for (const k of Object.keys(b)) {
    if (!a[k]) continue
    const dt = b[k].total - a[k].total
    out[k] = dt > 0 ? Math.round((b[k].busy - a[k].busy) / dt * 1000) / 10 : null
    const st = b[k].steal - a[k].steal
    if (st > 0 && dt > 0) out[k + '_steal'] = Math.round(st / dt * 1000) / 10
    const si = b[k].softirq - a[k].softirq
    if (si > 0 && dt > 0) out[k + '_softirq'] = Math.round(si / dt * 1000) / 10
  }
  return out
}
