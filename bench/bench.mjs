#!/usr/bin/env node
// collab benchmark harness. Entry point: `bash bench/run [flags]` (see --help).
//
// Starts each server under test pinned to CPU 0 (the cluster scenario: see
// lib/cluster.mjs), runs the load generator in
// this process pinned to CPU 1, prints a table and writes
// bench/results/<stamp>.{json,md} (and latest.{json,md}).

import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { parseArgs } from 'node:util'
import { SERVERS, BENCH_DIR, ROOT, startServer, canPin, nproc, CPU_PIN } from './lib/servers.mjs'
import { fanout, manydocs, saturation, coldload, writerate, WRITES_ENV } from './lib/scenarios.mjs'
import { renderTable, renderStorage, storageSummary, renderSaturation, saturationSummary, renderHooks, hooksSummary, renderCluster, renderTrace, traceLine, traceSummary, headline, LEGEND } from './lib/report.mjs'
import { cluster, clusterSummary } from './lib/cluster.mjs'
import { clusterAvailable, postgresVersion, redisVersion, PG_SETTINGS } from './lib/infra.mjs'
import { traceScenario } from './lib/trace.mjs'
import { loadTrace, TRACE_FILE } from './lib/editingtrace.mjs'
import { cpuCapAvailable } from './lib/cpucap.mjs'
import { setTransport } from './lib/client.mjs'

const ALL_SCENARIOS = ['fanout', 'manydocs', 'saturation', 'coldload', 'storeopen', 'writes', 'cluster', 'trace']

const HELP = `usage: bash bench/run [options]

  --servers LIST      comma list of: ${Object.keys(SERVERS).join(", ")} (default: all installed)
  --scenarios LIST    comma list of: ${ALL_SCENARIOS.join(', ')} (default: all)
  --clients LIST      fan-out sizes (default 50,200,500,1000)
  --hooks-clients LIST  fan-out sizes also run as collab-hooks (a no-op on_change
                      hook installed), right after collab's run (default 500)
  --nopersist-clients LIST  fan-out sizes also run as collab-nopersist (persistence
                      idle), right after collab's run of that size (default 50,200)
  --writers N         writers per document (default 10)
  --rate R            edits/s per writer in fan-out (default 10)
  --warmup S          seconds of load before the window (default 2)
  --window S          measurement window in seconds (default 10)
  --full-receivers N  receivers with a full Y.Doc, checked for convergence (default 10)
  --docs N            documents in manydocs, 2 clients each (default 1000)
  --sat-clients N     clients in saturation (default 50)
  --sat-rates LIST    edits/s per writer, tried in rising order (default
                      10,20,50,100,150,200,300,400,500,600,700,800,1000,1200,1500;
                      --quick 10,50,200)
  --sat-common-rate R edits/s per writer at which every server's CPU µs per
                      delivered update is compared (default 200; added to
                      --sat-rates if missing)
  --cold-edits N      edits building the cold-load document (default 20000)
  --cold-bytes N      size of that text (default 1000000)
  --write-rate R      edits/s of the one writer in 'writes' (default 100)
  --write-window S    seconds of it (default 10)
  --store-bytes N     snapshot size in 'storeopen' (default 1700000)
  --store-rows N      log rows after it (default 5000)
  --store-runs N      timed opens, median reported (default 7)
  --cluster-docs N    documents in 'cluster' (default 100)
  --cluster-clients N clients per document in 'cluster' (default 4)
  --cluster-writers N writers per document in 'cluster' (default 1)
  --cluster-rates LIST  edits/s per writer in 'cluster', tried in order
                      (default 10,20,30,40,50,60,80,100,120,150,180,220)
  --cluster-processes LIST  collab processes per variant (default 1,2; >1 uses Redis)
  --cluster-placement LIST  with >1 process, where a document's clients go: spread
                      (alternating), by-doc (all on one, as a URL-hashing balancer)
                      (default spread,by-doc)
  --cluster-cpu LIST  cap (each server process held to --cluster-share of a core,
                      servers on CPU ${CPU_PIN.server}, generator on CPU ${CPU_PIN.generator}), shared (nothing
                      capped or pinned) (default cap,shared)
  --cluster-share F   the capped mode's budget per process, of one core (default 0.4)
  --trace-edits N     edits of the editing trace replayed in 'trace' (default all
                      259778; --quick 20000)
  --trace-databases LIST  sqlite, postgresql (default both; PostgreSQL is started
                      in a temp dir)
  --trace-kill-rate R edits/s before the kill 2 s after the last edit (default 200)
  --trace-kill-seconds S  seconds of those edits (default 5; --quick 3)
  --trace-kill-at F   the kill during load comes after this fraction of
                      --trace-edits (default 0.5)
  --trace-margin S    edits sent this long before a kill must survive it (default 0.5)
  --trace-limits MODE lifted (as every bench server: COLLAB_MESSAGES_PER_SECOND=100000)
                      or server (the server's own rate limits) (default lifted)
  --deflate           clients offer permessage-deflate (default off; on the ws client)
  --ws-client NAME    the peers' WebSocket client: raw (bench/lib/rawws.mjs, frames
                      read straight from the socket's chunks) or ws (the ws package)
                      (default raw)
  --no-pin            do not pin server/generator to CPUs ${CPU_PIN.server}/${CPU_PIN.generator}
  --quick             smoke run: small sizes, short windows
  --out DIR           results directory (default bench/results)
  --no-save           do not write result files
  -h, --help
`

const { values: a } = parseArgs({
  options: {
    servers: { type: 'string' },
    scenarios: { type: 'string' },
    clients: { type: 'string' },
    'nopersist-clients': { type: 'string' },
    'hooks-clients': { type: 'string' },
    'write-rate': { type: 'string' },
    'write-window': { type: 'string' },
    'store-bytes': { type: 'string' },
    'store-rows': { type: 'string' },
    'store-runs': { type: 'string' },
    'cluster-docs': { type: 'string' },
    'cluster-clients': { type: 'string' },
    'cluster-writers': { type: 'string' },
    'cluster-rates': { type: 'string' },
    'cluster-processes': { type: 'string' },
    'cluster-placement': { type: 'string' },
    'cluster-cpu': { type: 'string' },
    'cluster-share': { type: 'string' },
    writers: { type: 'string' },
    rate: { type: 'string' },
    warmup: { type: 'string' },
    window: { type: 'string' },
    'full-receivers': { type: 'string' },
    docs: { type: 'string' },
    'sat-clients': { type: 'string' },
    'sat-rates': { type: 'string' },
    'sat-common-rate': { type: 'string' },
    'cold-edits': { type: 'string' },
    'cold-bytes': { type: 'string' },
    'trace-edits': { type: 'string' },
    'trace-databases': { type: 'string' },
    'trace-kill-rate': { type: 'string' },
    'trace-kill-seconds': { type: 'string' },
    'trace-kill-at': { type: 'string' },
    'trace-margin': { type: 'string' },
    'trace-limits': { type: 'string' },
    deflate: { type: 'boolean', default: false },
    'ws-client': { type: 'string', default: 'raw' },
    'no-pin': { type: 'boolean', default: false },
    quick: { type: 'boolean', default: false },
    out: { type: 'string' },
    'no-save': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false }
  }
})
if (a.help) { process.stdout.write(HELP); process.exit(0) }

const list = (s) => s.split(',').map(x => x.trim()).filter(Boolean)
const nums = (s) => list(s).map(Number)
const q = a.quick
const o = {
  clients: a.clients ? nums(a.clients) : (q ? [20, 50] : [50, 200, 500, 1000]),
  writers: Number(a.writers || (q ? 5 : 10)),
  rate: Number(a.rate || 10),
  warmup: Number(a.warmup || (q ? 1 : 2)),
  window: Number(a.window || (q ? 3 : 10)),
  fullReceivers: Number(a['full-receivers'] || (q ? 5 : 10)),
  docs: Number(a.docs || (q ? 100 : 1000)),
  satClients: Number(a['sat-clients'] || (q ? 20 : 50)),
  satRates: a['sat-rates'] ? nums(a['sat-rates']) : (q ? [10, 50, 200] : [10, 20, 50, 100, 150, 200, 300, 400, 500, 600, 700, 800, 1000, 1200, 1500]),
  satCommonRate: Number(a['sat-common-rate'] || 200),
  satWarmup: q ? 0.5 : 1,
  satWindow: q ? 2 : 5,
  satP99Ms: 100,
  satMaxS: q ? 30 : 240, // 14 steps of ~7 s, each possibly twice
  coldEdits: Number(a['cold-edits'] || (q ? 2000 : 20000)),
  coldBytes: Number(a['cold-bytes'] || (q ? 100000 : 1000000)),
  coldOpens: 4,
  nopersistClients: a['nopersist-clients'] ? nums(a['nopersist-clients']) : (q ? [20, 50] : [50, 200]),
  hooksClients: a['hooks-clients'] ? nums(a['hooks-clients']) : (q ? [50] : [500]),
  writeRate: Number(a['write-rate'] || 100),
  writeWindow: Number(a['write-window'] || (q ? 3 : 10)),
  storeBytes: Number(a['store-bytes'] || (q ? 500000 : 1700000)),
  storeRows: Number(a['store-rows'] || (q ? 1000 : 5000)),
  storeRuns: Number(a['store-runs'] || (q ? 3 : 7)),
  storeTimeoutMs: 300000,
  clusterDocs: Number(a['cluster-docs'] || (q ? 20 : 100)),
  clusterClients: Number(a['cluster-clients'] || 4),
  clusterWriters: Number(a['cluster-writers'] || 1),
  clusterRates: a['cluster-rates'] ? nums(a['cluster-rates']) : (q ? [20, 60, 120] : [10, 20, 30, 40, 50, 60, 80, 100, 120, 150, 180, 220]),
  clusterProcesses: a['cluster-processes'] ? nums(a['cluster-processes']) : [1, 2],
  clusterPlacements: a['cluster-placement'] ? a['cluster-placement'].split(',').map(x => x.trim()).filter(Boolean) : ['spread', 'by-doc'],
  clusterCpu: a['cluster-cpu'] ? list(a['cluster-cpu']) : ['cap', 'shared'],
  clusterShare: Number(a['cluster-share'] || 0.4),
  clusterMaxS: q ? 25 : 150,
  coldTimeoutMs: 120000,
  coldOpenTimeoutMs: 20000,
  connectBatch: 50,
  connectTimeoutMs: 30000,
  drainTimeoutMs: 30000,
  traceEdits: a['trace-edits'] ? Number(a['trace-edits']) : (q ? 20000 : null), // null: the whole trace
  traceDatabases: a['trace-databases'] ? list(a['trace-databases']) : ['sqlite', 'postgresql'],
  traceKillRate: Number(a['trace-kill-rate'] || 200),
  traceKillSeconds: Number(a['trace-kill-seconds'] || (q ? 3 : 5)),
  traceKillAt: Number(a['trace-kill-at'] || 0.5),
  traceMarginMs: Number(a['trace-margin'] || 0.5) * 1000,
  traceLimits: a['trace-limits'] || 'lifted',
  traceTimeoutS: q ? 300 : 1200,
  traceDrainTimeoutMs: 120000,
  traceOpenTimeoutMs: 60000,
  flushIntervalMs: 100, // COLLAB_FLUSH_INTERVAL's default
  deflate: a.deflate,
  wsClient: a['ws-client']
}
const scenarios = a.scenarios ? list(a.scenarios) : ALL_SCENARIOS
for (const s of scenarios) if (!ALL_SCENARIOS.includes(s)) { console.error(`unknown scenario ${s}`); process.exit(2) }
for (const c of o.clusterCpu) if (!['cap', 'shared'].includes(c)) { console.error(`unknown --cluster-cpu ${c}`); process.exit(2) }
if (!(o.satCommonRate > 0) || !o.satRates.every(r => r > 0)) { console.error('--sat-rates and --sat-common-rate must be positive numbers'); process.exit(2) }
if (!(o.clusterShare > 0 && o.clusterShare <= 1)) { console.error('--cluster-share must be in (0, 1]'); process.exit(2) }
for (const d of o.traceDatabases) if (!['sqlite', 'postgresql'].includes(d)) { console.error(`unknown --trace-databases ${d}`); process.exit(2) }
if (!['raw', 'ws'].includes(o.wsClient)) { console.error(`unknown --ws-client ${o.wsClient}`); process.exit(2) }
setTransport(o.wsClient)
if (!['lifted', 'server'].includes(o.traceLimits)) { console.error(`unknown --trace-limits ${o.traceLimits}`); process.exit(2) }
if (o.traceEdits !== null && !(Number.isInteger(o.traceEdits) && o.traceEdits > 0)) { console.error('--trace-edits must be a positive integer'); process.exit(2) }
if (!(o.traceKillAt > 0 && o.traceKillAt <= 1) || !(o.traceKillRate > 0) || !(o.traceKillSeconds > 0) || !(o.traceMarginMs >= 0)) { console.error('bad --trace-kill-* or --trace-margin'); process.exit(2) }

// --- pinning: decide before pinning ourselves (nproc honours affinity)
const cpus = nproc()
const pin = !a['no-pin'] && canPin()
o.clusterPin = pin
// our CPU list before pinning: the cluster scenario unpins the generator again
const ownCpus = (sh0 => (/:\s*([\d,-]+)\s*$/.exec(sh0) || [])[1] || null)((spawnSync('taskset', ['-c', '-p', String(process.pid)], { encoding: 'utf8' }).stdout || '').trim())
if (pin) spawnSync('taskset', ['-a', '-p', '-c', CPU_PIN.generator, String(process.pid)], { stdio: 'ignore' })

// --- servers
const wanted = a.servers ? list(a.servers) : Object.keys(SERVERS)
const servers = []
const skipped = {}
for (const name of wanted) {
  const e = SERVERS[name]
  if (!e) { console.error(`unknown server ${name}; known: ${Object.keys(SERVERS).join(', ')}`); process.exit(2) }
  const why = e.available()
  if (why) {
    skipped[name] = why
    console.error(`! skipping ${name}: ${why}`)
    if (a.servers) process.exitCode = 1
  } else servers.push(e)
}
if (servers.length === 0) { console.error('no server to benchmark'); process.exit(1) }

// the cluster scenario's CPU modes, in words
function clusterCpuText () {
  return o.clusterCpu.map(c => c === 'cap' ? `capped (${o.clusterShare} of a core per server process${pin ? `, servers on CPU ${CPU_PIN.server}, generator on CPU ${CPU_PIN.generator}` : ''}; PostgreSQL and Redis unpinned)` : 'shared (nothing capped or pinned)').join(', then ')
}

// --- machine info
const sh = (cmd, args) => { try { return (spawnSync(cmd, args, { encoding: 'utf8', timeout: 10000 }).stdout || '').trim() } catch (e) { return '' } }
const pkgVersion = (p) => { try { return JSON.parse(fs.readFileSync(path.join(BENCH_DIR, 'node_modules', p, 'package.json'), 'utf8')).version } catch (e) { return null } }
const machine = {
  date: new Date().toISOString(),
  nproc: cpus,
  cpu_model: (os.cpus()[0] || {}).model,
  mem_gib: Math.round(os.totalmem() / 2 ** 30),
  kernel: sh('uname', ['-srm']),
  node: process.version,
  python: sh(path.join(BENCH_DIR, '..', '.venv', 'bin', 'python'), ['--version']) || sh('python3', ['--version']),
  client_packages: Object.fromEntries(['yjs', 'y-protocols', 'lib0', 'ws', '@y/websocket-server'].map(p => [p, pkgVersion(p)])),
  servers: Object.fromEntries(servers.map(s => [s.name, s.version()])),
  pinned: pin ? { server_cpu: CPU_PIN.server, generator_cpu: CPU_PIN.generator } : false,
  ulimit_n: sh('bash', ['-c', 'ulimit -n']),
  ...(scenarios.includes('cluster') ? { postgresql: postgresVersion(), redis: redisVersion() } : {}),
  ...(scenarios.includes('trace') && !scenarios.includes('cluster') ? { postgresql: postgresVersion() } : {}),
  git_commit: sh('git', ['-C', path.join(BENCH_DIR, '..'), 'rev-parse', '--short', 'HEAD']) || null
}
console.log(`# collab bench  ${machine.date}`)
console.log(`  ${machine.nproc} CPUs (${machine.cpu_model}), ${machine.kernel}, node ${machine.node}, ${machine.python}`)
console.log(`  pinning: ${pin ? `server on CPU ${CPU_PIN.server}, generator on CPU ${CPU_PIN.generator}` : 'off'}${scenarios.includes('cluster') ? `; cluster: ${clusterCpuText()}` : ''}`)
for (const [k, v] of Object.entries(machine.servers)) console.log(`  ${k}: ${v}`)
console.log(`  options: ${JSON.stringify(o)}`)

// --- run
const stamp = machine.date.replace(/[:.]/g, '-').replace('T', '_').slice(0, 19)
const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'collab-bench-'))
const results = []
let current = null
const stoppers = new Set() // the cluster scenario's processes (each stop is idempotent)
const cleanup = async () => {
  if (current) { try { await current.stop() } catch (e) {} current = null }
  for (const stop of stoppers) { try { await stop() } catch (e) {} }
  stoppers.clear()
}
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, async () => { await cleanup(); fs.rmSync(tmpRoot, { recursive: true, force: true }); process.exit(130) })

const summarize = (r) => {
  const bits = []
  for (const k of ['delivered_per_s', 'p50_ms', 'p99_ms', 'server_cpu_us_per_delivery', 'server_writes_per_delivery', 'rss_per_connection_kb', 'max_edits_per_s', 'cold_open_ms', 'warm_open_ms', 'rows_per_s', 'transactions_per_s', 'converged', 'error']) {
    if (r[k] !== undefined) bits.push(`${k}=${r[k]}`)
  }
  return bits.join(' ')
}

const runOne = async (entry, scenario, fn, env) => {
  const ctx = { tmpdir: fs.mkdtempSync(path.join(tmpRoot, `${entry.name}-${scenario}-`)), env }
  if (scenario === 'coldload') ctx.persistDir = path.join(ctx.tmpdir, 'persist')
  const t0 = Date.now()
  process.stdout.write(`- ${entry.name} / ${scenario} ... `)
  let r
  try {
    current = await startServer(entry, ctx, { pin })
    r = await fn(current, ctx)
  } catch (e) {
    r = { scenario, server: entry.name, error: String(e.stack || e).slice(0, 2000) }
  }
  if (current && current.exited()) {
    r.error = (r.error ? r.error + '; ' : '') + `server exited ${JSON.stringify(current.exited())}`
    r.server_log_tail = current.log().slice(-2000)
  }
  if (current && /Traceback|Error|ERROR/.test(current.log())) {
    r.server_log_errors = current.log().split('\n').filter(l => /Traceback|Error|ERROR/.test(l)).slice(0, 10)
  }
  await cleanup()
  r.elapsed_s = Math.round((Date.now() - t0) / 100) / 10
  console.log(`${summarize(r)}  (${r.elapsed_s}s)`)
  if (r.errors && r.errors.length) console.log(`    errors: ${r.errors.join(' | ')}`)
  if (r.server_log_errors) console.log(`    server log: ${r.server_log_errors.slice(0, 3).join(' | ')}`)
  results.push(r)
}

// 'storeopen': no server; collab's SqlStore + Persistence.load in bench/storage_bench.py
const storeOpen = () => {
  const py = path.join(ROOT, '.venv', 'bin', 'python')
  const args = [path.join(BENCH_DIR, 'storage_bench.py'), '--json', '--snapshot-bytes', String(o.storeBytes), '--log-rows', String(o.storeRows), '--runs', String(o.storeRuns)]
  const t0 = Date.now()
  process.stdout.write(`- collab / storeopen (${o.storeBytes} B snapshot + ${o.storeRows} log rows${process.env.BENCH_POSTGRES_URL ? ', SQLite and PostgreSQL' : ', SQLite; BENCH_POSTGRES_URL unset: no PostgreSQL'}) ... `)
  const r = spawnSync(pin ? 'taskset' : py, pin ? ['-c', CPU_PIN.server, py, ...args] : args, { cwd: ROOT, encoding: 'utf8', timeout: o.storeTimeoutMs, env: process.env })
  const elapsed = Math.round((Date.now() - t0) / 100) / 10
  let out = null
  try { out = JSON.parse((r.stdout || '').trim().split('\n').pop()) } catch (e) {}
  if (!out) {
    const res = { scenario: 'storeopen-sqlite', server: 'collab', error: `storage_bench.py failed (exit ${r.status}${r.signal ? ' ' + r.signal : ''}): ${(r.stderr || '').slice(-1500)}`, elapsed_s: elapsed }
    console.log(`error  (${elapsed}s)`)
    results.push(res)
    return
  }
  const { databases, ...common } = out
  const bits = []
  for (const d of databases) {
    const res = { scenario: `storeopen-${d.database}`, server: 'collab', ...common, ...d, elapsed_s: elapsed }
    if (!d.error) {
      res.open_ms = d.load.median_ms
      res.db_read_ms = d.db_read.median_ms
      res.build_ms = d.build.median_ms
      res.raw_apply_ms = common.raw_apply_snapshot.median_ms
    }
    bits.push(d.error ? `${d.database}: ERROR ${d.error}` : `${d.database}: open_ms=${res.open_ms} db_read_ms=${res.db_read_ms} build_ms=${res.build_ms}`)
    results.push(res)
  }
  console.log(`${bits.join('; ')} raw_apply_ms=${common.raw_apply_snapshot.median_ms}  (${elapsed}s)`)
}

// 'cluster': 1 vs 2 collab processes (+ Redis) on PostgreSQL, each capped, then
// sharing the machine
const runCluster = async () => {
  const why = clusterAvailable()
  if (why) {
    console.log(`- collab / cluster: ${why}; skipped`)
    results.push({ scenario: 'cluster', server: 'collab', error: `not run: ${why}` })
    return
  }
  const noCap = o.clusterCpu.includes('cap') ? cpuCapAvailable() : null
  if (noCap) {
    console.log(`- collab / cluster, capped: ${noCap}; skipped`)
    results.push({ scenario: 'cluster-capped', server: 'collab', error: `not run: ${noCap}` })
    o.clusterCpu = o.clusterCpu.filter(c => c !== 'cap')
    if (!o.clusterCpu.length) return
  }
  console.log(`- collab / cluster: ${o.clusterDocs} docs × ${o.clusterClients} clients (${o.clusterWriters} writers each), processes ${o.clusterProcesses.join(' vs ')}, PostgreSQL with ${Object.entries(PG_SETTINGS).filter(([k]) => k !== 'max_connections').map(([k, v]) => `${k}=${v}`).join(' ')}; ${clusterCpuText()}`)
  // PostgreSQL and Redis start unpinned; the capped variants pin the generator
  const affinity = (cpus) => { if (pin && cpus) spawnSync('taskset', ['-a', '-p', '-c', cpus, String(process.pid)], { stdio: 'ignore' }) }
  affinity(ownCpus)
  try {
    await cluster(o, {
      tmpdir: fs.mkdtempSync(path.join(tmpRoot, 'cluster-')),
      track: (stop) => stoppers.add(stop),
      pinGenerator: (on) => affinity(on ? CPU_PIN.generator : ownCpus),
      onResult: (r) => {
        const bits = [`max_delivered_per_s=${r.max_delivered_per_s}`, `p50_ms=${r.p50_ms}`, `p99_ms=${r.p99_ms}`]
        if (r.processes > 1 && r.placement !== 'by-doc') bits.push(`same/cross p99_ms=${r.same_process_p99_ms}/${r.cross_process_p99_ms}`)
        bits.push(`converged=${r.converged}`)
        if (r.error) bits.push(`error=${String(r.error).split('\n')[0]}`)
        console.log(`  - ${r.cpu === 'cap' ? 'capped' : 'shared'}, ${r.processes} process(es)${r.processes > 1 ? `, ${r.placement}` : ''}: ${bits.join(' ')} (stopped ${r.stopped})  (${r.elapsed_s}s)`)
        if (r.errors && r.errors.length) console.log(`    errors: ${r.errors.join(' | ')}`)
        if (r.server_log_errors) console.log(`    server log: ${r.server_log_errors.slice(0, 5).join(' | ')}`)
        results.push(r)
      }
    })
  } catch (e) {
    results.push({ scenario: 'cluster', server: 'collab', error: String(e.stack || e).slice(0, 2000) })
    console.log(`  error: ${String(e.message || e).split('\n')[0]}`)
  } finally {
    await cleanup()
    if (pin) spawnSync('taskset', ['-a', '-p', '-c', CPU_PIN.generator, String(process.pid)], { stdio: 'ignore' })
  }
}

// 'trace': a real editing trace through the stock Yjs client, on SQLite and PostgreSQL
const runTrace = async () => {
  let trace
  try {
    trace = loadTrace(TRACE_FILE)
  } catch (e) {
    results.push({ scenario: 'trace', server: 'collab', error: String(e.message || e) })
    console.log(`- collab / trace: ${e.message}`)
    return
  }
  if (o.traceEdits === null || o.traceEdits > trace.txns.length) o.traceEdits = trace.txns.length
  console.log(`- collab / trace: ${trace.name}, ${o.traceEdits} of ${trace.txns.length} edits, on ${o.traceDatabases.join(' and ')}; rate limits ${o.traceLimits}`)
  try {
    await traceScenario({ ...o, tracePin: pin }, trace, {
      tmpdir: fs.mkdtempSync(path.join(tmpRoot, 'trace-')),
      track: (stop) => stoppers.add(stop),
      onResult: (r) => {
        console.log(`  - ${r.database || r.scenario}: ${traceLine(r)}  (${r.elapsed_s}s)`)
        if (r.errors && r.errors.length) console.log(`    errors: ${r.errors.join(' | ')}`)
        if (r.server_log_errors) console.log(`    server log: ${r.server_log_errors.slice(0, 5).join(' | ')}`)
        results.push(r)
      }
    })
  } finally {
    await cleanup()
  }
}

const selected = new Set(servers.map(s => s.name))
for (const scenario of scenarios) {
  if (scenario === 'trace') {
    if (!selected.has('collab')) { console.log('- trace: collab only, not selected, skipped'); continue }
    await runTrace()
    continue
  }
  if (scenario === 'cluster') {
    if (!selected.has('collab')) { console.log('- cluster: collab only, not selected, skipped'); continue }
    await runCluster()
    continue
  }
  if (scenario === 'storeopen' || scenario === 'writes') {
    if (!selected.has('collab')) { console.log(`- ${scenario}: collab only, not selected, skipped`); continue }
    if (scenario === 'storeopen') storeOpen()
    else await runOne(SERVERS.collab, `writes-${o.writeRate}`, (srv, ctx) => writerate(srv, o, path.join(ctx.tmpdir, 'bench.db'), path.join(ROOT, '.venv', 'bin', 'python')), WRITES_ENV)
    continue
  }
  for (const entry of servers) {
    if (entry.scenarios && !entry.scenarios.includes(scenario)) { if (!entry.variantOf) console.log(`- ${entry.name} / ${scenario}: not supported, skipped`); continue }
    if (scenario === 'fanout') {
      // a variant (collab-nopersist) runs right after its base server's run of the same size
      if (entry.variantOf && selected.has(entry.variantOf)) continue
      const variants = servers.filter(v => v.variantOf === entry.name)
      for (const n of o.clients) {
        await runOne(entry, `fanout-${n}`, (srv) => fanout(srv, { ...o, clients: n }))
        for (const v of variants) if (o[v.variantSizes].includes(n)) await runOne(v, `fanout-${n}`, (srv) => fanout(srv, { ...o, clients: n }))
      }
    } else if (scenario === 'manydocs') {
      await runOne(entry, 'manydocs', (srv) => manydocs(srv, o))
    } else if (scenario === 'saturation') {
      let first = true
      const onStep = (m) => {
        process.stdout.write(`${first ? '\n' : ''}    ${m.rate_per_writer}/writer = ${m.edits_per_s} edits/s${m.attempt > 1 ? ` (attempt ${m.attempt})` : ''}: p99 ${m.p99_ms} ms, delivered ${m.delivered_per_s}/s of ${m.expected_deliveries_per_s}/s, srv CPU ${m.server_cpu_pct} % = ${m.server_cpu_us_per_delivery} µs/upd, gen CPU ${m.gen_cpu_pct} %, gen loop p99 ${m.gen_loop_delay_p99_ms} ms${m.generator_bound ? ', GENERATOR-BOUND' : ''}${m.passed ? '' : ', failed'}\n`)
        first = false
      }
      await runOne(entry, 'saturation', (srv) => saturation(srv, { ...o, onStep }))
    } else if (scenario === 'coldload') {
      await runOne(entry, 'coldload', async (srv, ctx) => {
        const restart = async () => {
          await cleanup()
          ctx.port = undefined
          current = await startServer(entry, ctx, { pin })
          return current
        }
        const { res } = await coldload(srv, o, restart)
        return res
      })
    }
  }
}
fs.rmSync(tmpRoot, { recursive: true, force: true })

// --- report
const table = renderTable(results, servers.map(s => s.name))
const storage = renderStorage(results)
const saturationMd = renderSaturation(results)
const clusterMd = renderCluster(results)
const traceMd = renderTrace(results)
const hooksMd = renderHooks(results)
console.log('')
console.log(table)
if (saturationMd) console.log('\n' + saturationMd)
if (storage) console.log('\n' + storage)
if (hooksMd) console.log('\n' + hooksMd)
if (clusterMd) console.log('\n' + clusterMd)
if (traceMd) console.log('\n' + traceMd)
const failed = results.filter(r => r.error || r.converged === false)
if (failed.length) {
  console.log(`\n${failed.length} run(s) failed or did not converge: ${failed.map(r => `${r.server}/${r.scenario}`).join(', ')}`)
  process.exitCode = 1
}
if (!a['no-save']) {
  const outDir = path.resolve(a.out || path.join(BENCH_DIR, 'results'))
  fs.mkdirSync(outDir, { recursive: true })
  const json = JSON.stringify({ machine, options: o, scenarios, skipped_servers: skipped, headline: headline(results), saturation: saturationSummary(results), storage: storageSummary(results), hooks: hooksSummary(results), cluster: clusterSummary(results), trace: traceSummary(results), results }, null, 2) + '\n'
  const md = `# collab benchmark, ${machine.date}\n\n` +
    `- machine: ${machine.nproc} CPUs (${machine.cpu_model}), ${machine.mem_gib} GiB, ${machine.kernel}\n` +
    `- node ${machine.node}, ${machine.python}; client packages: ${Object.entries(machine.client_packages).map(([k, v]) => `${k} ${v}`).join(', ')}\n` +
    Object.entries(machine.servers).map(([k, v]) => `- ${k}: ${v}\n`).join('') +
    `- pinning: ${pin ? `server on CPU ${CPU_PIN.server}, load generator on CPU ${CPU_PIN.generator}` : 'off'}${scenarios.includes('cluster') ? `; cluster scenario: ${clusterCpuText()}` : ''}${o.deflate ? '; permessage-deflate offered' : ''}; peers' WebSocket client: ${o.deflate ? 'ws' : o.wsClient}\n` +
    (machine.postgresql ? `- cluster: ${machine.postgresql} (fsync=off, synchronous_commit=off, full_page_writes=off), ${machine.redis} (no persistence)\n` : '') +
    `- options: \`${JSON.stringify(o)}\`\n\n` +
    table + '\n\n' + (saturationMd ? saturationMd + '\n\n' : '') + (storage ? storage + '\n\n' : '') + (hooksMd ? hooksMd + '\n\n' : '') + (clusterMd ? clusterMd + '\n\n' : '') + (traceMd ? traceMd + '\n\n' : '') + LEGEND
  for (const name of [stamp, 'latest']) {
    fs.writeFileSync(path.join(outDir, `${name}.json`), json)
    fs.writeFileSync(path.join(outDir, `${name}.md`), md)
  }
  console.log(`\nresults: ${path.relative(process.cwd(), path.join(outDir, stamp + '.json'))} (.md), latest.{json,md}`)
}
process.exit(process.exitCode ?? 0)
