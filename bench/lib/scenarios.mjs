// Benchmark scenarios. Each takes a running server handle (see servers.mjs)
// and options, and returns a plain result object.

import { performance, monitorEventLoopDelay } from 'node:perf_hooks'
import { spawnSync } from 'node:child_process'
import * as Y from 'yjs'
import { Peer, Tracker, connectAll, encodeSync, SYNC_UPDATE } from './client.mjs'
import { cpuMicros, rssBytes, cpuTimes, cpuBusyPct, writeSyscalls } from './servers.mjs'

const sleep = (ms) => new Promise(resolve => setTimeout(resolve, ms))
const rid = () => Math.random().toString(36).slice(2, 8)

export const percentile = (sorted, p) => {
  if (sorted.length === 0) return null
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p / 100 * sorted.length) - 1))
  return sorted[i]
}

const round = (x, d = 2) => x === null || x === undefined || !Number.isFinite(x) ? x : Math.round(x * 10 ** d) / 10 ** d

export const collectErrors = (peers, server) => {
  const errs = []
  for (const p of peers) for (const e of p.errors) errs.push(e)
  const uniq = [...new Set(errs)]
  const out = uniq.slice(0, 5)
  if (errs.length) out.unshift(`${errs.length} client error(s), ${uniq.length} distinct`)
  if (server.exited()) out.push(`server exited: ${JSON.stringify(server.exited())}`)
  return out
}

// Generate edits from `writers` at `rate` edits/s each until `stopAt`
// (performance.now() time). One scheduling tick per millisecond; writers are
// staggered. Returns a promise of the number of edits made.
export const driveWriters = (writers, rate, stopAt, str) => new Promise(resolve => {
  const period = 1000 / rate
  const t0 = performance.now()
  const next = writers.map((_, i) => t0 + i * period / writers.length)
  let edits = 0
  let skipped = 0
  const tick = () => {
    const now = performance.now()
    if (now >= stopAt) { resolve({ edits, skipped }); return }
    for (let i = 0; i < writers.length; i++) {
      if (next[i] < now - 1000) { // more than 1 s behind: the generator cannot keep up; do not burst
        const missed = Math.floor((now - next[i]) / period)
        skipped += missed
        next[i] += missed * period
      }
      while (next[i] <= now) {
        writers[i].edit(str)
        edits++
        next[i] += period
      }
    }
    setTimeout(tick, 1)
  }
  tick()
})

// Wait until every peer has the edits of every writer of its document (or the timeout passes).
export const drain = async (peers, writers, timeoutMs) => {
  const targets = writers.map(w => [w.doc.clientID, Y.getState(w.doc.store, w.doc.clientID), w.docName])
  const t0 = performance.now()
  for (;;) {
    let missing = 0
    for (const p of peers) {
      for (const [c, clock, docName] of targets) {
        if (c !== p.ownClientID && docName === p.docName && p.clockOf(c) < clock) missing++
      }
    }
    if (missing === 0) return { missing: 0, ms: performance.now() - t0 }
    if (performance.now() - t0 > timeoutMs) return { missing, ms: performance.now() - t0 }
    await sleep(50)
  }
}

// One measured load window over connected peers. Returns the metrics.
// `servers` (default [server]): every server process whose CPU and RSS count as
// the server's; `auxPids`: { name: pid } of other services (Redis, PostgreSQL)
// whose CPU is reported separately; `receiversPerEdit` (default: every other peer);
// `caps`: the servers' CPU budgets (cpucap.mjs), whose throttling is reported.
export const measureWindow = async ({ server, servers = [server], caps = [], auxPids = {}, receiversPerEdit, peers, writers, tracker, rate, warmupS, windowS, str, drainTimeoutMs }) => {
  const now0 = performance.now()
  const windowStart = now0 + warmupS * 1000
  const windowEnd = windowStart + windowS * 1000
  tracker.windowStart = windowStart
  tracker.windowEnd = windowEnd
  tracker.samples = []
  tracker.deliveredInWindow = 0
  tracker.editsInWindow = 0
  tracker.bucketMax = []
  tracker.samplesSame = []
  tracker.samplesCross = []
  const cpuAll = () => servers.map(s => cpuMicros(s.pid))
  const cpuAux = () => Object.fromEntries(Object.entries(auxPids).map(([k, pid]) => [k, pid ? cpuMicros(pid) : 0]))
  const driving = driveWriters(writers, rate, windowEnd, str)
  await sleep(Math.max(0, windowStart - performance.now()))
  const cpu0 = cpuAll()
  const writes0 = servers.map(s => writeSyscalls(s.pid))
  const aux0 = cpuAux()
  const thr0 = caps.map(c => c.stats())
  const sys0 = cpuTimes()
  const gen0 = process.cpuUsage()
  const eld = monitorEventLoopDelay({ resolution: 5 })
  eld.enable()
  const tA = performance.now()
  await sleep(Math.max(0, windowEnd - performance.now()))
  const tB = performance.now()
  const cpu1 = cpuAll()
  const writes1 = servers.map(s => writeSyscalls(s.pid))
  const aux1 = cpuAux()
  const thr1 = caps.map(c => c.stats())
  const sys1 = cpuTimes()
  const gen1 = process.cpuUsage(gen0)
  eld.disable()
  const { skipped } = await driving
  const rss = servers.reduce((sum, s) => sum + rssBytes(s.pid), 0)
  const dr = await drain(peers, writers, drainTimeoutMs)
  const wall = (tB - tA) / 1000
  const samples = Float64Array.from(tracker.samples).sort()
  const delivered = tracker.deliveredInWindow
  const serverCpuUsEach = cpu1.map((c, i) => c - cpu0[i])
  const serverCpuUs = serverCpuUsEach.reduce((a, b) => a + b, 0)
  const auxPct = Object.fromEntries(Object.keys(aux1).map(k => [k, round((aux1[k] - aux0[k]) / (wall * 1e6) * 100, 1)]))
  const editsPerS = tracker.editsInWindow / windowS
  const busy = cpuBusyPct(sys0, sys1)
  const serverPct = serverCpuUs / (wall * 1e6) * 100
  const genPct = (gen1.user + gen1.system) / (wall * 1e6) * 100
  // CPU used on the machine by neither the server nor the generator (nor the
  // kernel's network work, softirq): other programs disturbing the measurement
  let other = 0
  for (const [k, v] of Object.entries(busy)) if (/^cpu\d+$/.test(k)) other += v - (busy[k + '_softirq'] || 0)
  other -= serverPct + genPct
  for (const v of Object.values(auxPct)) other -= v
  const split = {}
  if (tracker.splitGroups) {
    const same = Float64Array.from(tracker.samplesSame).sort()
    const cross = Float64Array.from(tracker.samplesCross).sort()
    Object.assign(split, {
      same_process_samples: same.length,
      same_process_p50_ms: round(percentile(same, 50)),
      same_process_p99_ms: round(percentile(same, 99)),
      cross_process_samples: cross.length,
      cross_process_p50_ms: round(percentile(cross, 50)),
      cross_process_p99_ms: round(percentile(cross, 99))
    })
  }
  if (servers.length > 1) split.server_cpu_pct_each = serverCpuUsEach.map(c => round(c / (wall * 1e6) * 100, 1))
  // share of the window each capped server spent throttled (out of budget)
  if (caps.length) split.throttled_pct_each = thr1.map((t, i) => t && thr0[i] ? round((t.throttled_ms - thr0[i].throttled_ms) / (wall * 1e3) * 100, 1) : null)
  if (Object.keys(auxPct).length) {
    split.aux_cpu_pct = auxPct
    // CPU per delivered update of everything (servers + services + generator)
    const genUs = gen1.user + gen1.system
    const auxUs = Object.keys(aux1).reduce((sum, k) => sum + aux1[k] - aux0[k], 0)
    split.all_cpu_us_per_delivery = delivered ? round((serverCpuUs + auxUs + genUs) / delivered, 2) : null
  }
  return {
    edits_per_s: round(editsPerS, 1),
    expected_deliveries_per_s: round(editsPerS * (receiversPerEdit ?? (peers.length - 1)), 0),
    delivered_per_s: round(delivered / wall, 0),
    latency_samples: samples.length,
    p50_ms: round(percentile(samples, 50)),
    p90_ms: round(percentile(samples, 90)),
    p99_ms: round(percentile(samples, 99)),
    max_ms: round(samples.length ? samples[samples.length - 1] : null),
    server_cpu_pct: round(serverCpuUs / (wall * 1e6) * 100, 1),
    server_cpu_us_per_delivery: delivered ? round(serverCpuUs / delivered, 2) : null,
    server_writes_per_delivery: delivered ? round(writes1.reduce((sum, w, i) => sum + w - writes0[i], 0) / delivered, 3) : null,
    server_rss_mb: round(rss / 2 ** 20, 1),
    gen_cpu_pct: round((gen1.user + gen1.system) / (wall * 1e6) * 100, 1),
    gen_cpu_us_per_delivery: delivered ? round((gen1.user + gen1.system) / delivered, 2) : null,
    machine_cpu_busy_pct: busy,
    other_load_pct: round(other, 0),
    gen_loop_delay_p99_ms: round(eld.percentile(99) / 1e6),
    gen_skipped_edits: skipped,
    undelivered_after_drain: dr.missing,
    drain_ms: round(dr.ms, 0),
    // worst delivery latency (ms) of the edits sent in each 500 ms of the window: shows periodic stalls
    worst_latency_per_500ms: Array.from({ length: Math.ceil(windowS * 1000 / tracker.bucketMs) }, (_, i) => round(tracker.bucketMax[i] ?? null, 0)),
    ...split
  }
}

export const makePeers = ({ server, doc, n, writers, full, tracker, deflate, isolated = false, deferred = false }) => {
  const framing = server.entry.framing
  const url = server.url(doc)
  const peers = []
  for (let i = 0; i < n; i++) {
    const kind = i < writers ? 'writer' : i < writers + full ? 'full' : 'count'
    peers.push(new Peer({ url, docName: doc, framing, tracker, kind, deflate, isolated, deferred }))
  }
  return peers
}

// Everyone's text equal, and a fresh client gets the same text from the server;
// isolated writers' edits (their own text alone) are all in it.
const convergence = async (server, doc, peers, deflate) => {
  for (const p of peers) p.settle()
  const docPeers = peers.filter(p => p.doc && !p.isolated)
  const ref = docPeers[0].text.toString()
  let mismatched = docPeers.filter(p => p.text.toString() !== ref).length
  const isolated = peers.filter(p => p.isolated)
  if (isolated.length && isolated.reduce((sum, p) => sum + p.text.length, 0) !== ref.length) mismatched++
  const fresh = new Peer({ url: server.url(doc), docName: doc, framing: server.entry.framing, kind: 'full', deflate })
  let freshOk = false
  try {
    await fresh.connect(30000)
    freshOk = fresh.text.toString() === ref
  } catch (e) {
    fresh.errors.push(String(e.message || e))
  }
  fresh.close()
  if (!freshOk) mismatched++
  return { converged: mismatched === 0, checked_docs: docPeers.length + 1, mismatched, text_chars: ref.length, fresh_errors: fresh.errors }
}

// ---------------------------------------------------------------------------
// (1) fan-out: one document, N clients, W writers × R edits/s.
// Connects every peer; on failure records why in `res`, closes them all and returns false.
const connectOrFail = async (peers, res, server, o) => {
  try {
    await connectAll(peers, o.connectBatch, o.connectTimeoutMs)
    return true
  } catch (e) {
    res.error = `connect failed: ${e.message}`
    res.errors = collectErrors(peers, server)
    peers.forEach(p => p.close())
    return false
  }
}

export const fanout = async (server, o) => {
  const doc = `fanout-${o.clients}-${rid()}`
  const tracker = new Tracker()
  const n = o.clients
  const w = Math.min(o.writers, n)
  const full = Math.min(o.fullReceivers, n - w)
  const peers = makePeers({ server, doc, n, writers: w, full, tracker, deflate: o.deflate })
  const writers = peers.slice(0, w)
  const res = { scenario: `fanout-${n}`, server: server.entry.name, clients: n, writers: w, rate_per_writer: o.rate, full_receivers: full, warmup_s: o.warmup, window_s: o.window }
  const t0 = performance.now()
  const cpuC0 = cpuMicros(server.pid)
  if (!await connectOrFail(peers, res, server, o)) return res
  res.connect_s = round((performance.now() - t0) / 1000)
  res.server_cpu_us_per_connect = round((cpuMicros(server.pid) - cpuC0) / n, 0)
  Object.assign(res, await measureWindow({ server, peers, writers, tracker, rate: o.rate, warmupS: o.warmup, windowS: o.window, str: 'abcd', drainTimeoutMs: o.drainTimeoutMs }))
  Object.assign(res, await convergence(server, doc, peers, o.deflate))
  res.converged = res.converged && res.undelivered_after_drain === 0
  res.errors = collectErrors(peers, server)
  peers.forEach(p => p.close())
  return res
}

// ---------------------------------------------------------------------------
// (2) many documents: D docs × 2 clients; server RSS per connection.
export const manydocs = async (server, o) => {
  const D = o.docs
  const res = { scenario: `manydocs-${D}`, server: server.entry.name, docs: D, connections: 2 * D }
  const framing = server.entry.framing
  const prefix = `many-${rid()}`
  // warm the server's code paths with one document first
  {
    const warm = [0, 1].map(() => new Peer({ url: server.url(`${prefix}-warm`), docName: `${prefix}-warm`, framing, kind: 'count', deflate: o.deflate }))
    try { await connectAll(warm, 2, o.connectTimeoutMs) } catch (e) {}
    warm.forEach(p => p.close())
  }
  await sleep(1000)
  const rss0 = rssBytes(server.pid)
  const cpu0 = cpuMicros(server.pid)
  const pairs = []
  const peers = []
  for (let i = 0; i < D; i++) {
    const doc = `${prefix}-${i}`
    const a = new Peer({ url: server.url(doc), docName: doc, framing, kind: 'count', deflate: o.deflate })
    const b = new Peer({ url: server.url(doc), docName: doc, framing, kind: 'count', deflate: o.deflate })
    pairs.push([a, b, doc])
    peers.push(a, b)
  }
  const t0 = performance.now()
  if (!await connectOrFail(peers, res, server, o)) return res
  const connectS = (performance.now() - t0) / 1000
  const cpu1 = cpuMicros(server.pid)
  // one small edit per document, from a, must reach b
  const targets = []
  for (const [a, , doc] of pairs) {
    const d = new Y.Doc()
    d.getText('bench').insert(0, `hello ${doc}`)
    targets.push([d.clientID, Y.getState(d.store, d.clientID)])
    a.send(encodeSync(SYNC_UPDATE, Y.encodeStateAsUpdate(d)))
  }
  const tE = performance.now()
  let missing = D
  while (performance.now() - tE < o.drainTimeoutMs) {
    missing = 0
    for (let i = 0; i < D; i++) if (pairs[i][1].clockOf(targets[i][0]) < targets[i][1]) missing++
    if (missing === 0) break
    await sleep(50)
  }
  const editMs = performance.now() - tE
  await sleep(2000)
  const rss1 = rssBytes(server.pid)
  res.connect_s = round(connectS)
  res.connects_per_s = round(2 * D / connectS, 0)
  res.server_cpu_us_per_connect = round((cpu1 - cpu0) / (2 * D), 0)
  res.one_edit_per_doc_ms = round(editMs, 0)
  res.undelivered = missing
  res.converged = missing === 0
  res.server_rss_before_mb = round(rss0 / 2 ** 20, 1)
  res.server_rss_after_mb = round(rss1 / 2 ** 20, 1)
  res.server_rss_mb = res.server_rss_after_mb
  res.rss_per_connection_kb = round((rss1 - rss0) / (2 * D) / 1024, 1)
  res.errors = collectErrors(peers, server)
  peers.forEach(p => p.close())
  await sleep(3000)
  res.server_rss_after_close_mb = round(rssBytes(server.pid) / 2 ** 20, 1)
  return res
}

// ---------------------------------------------------------------------------
// (3) saturation: N clients, rising edit rate until p99 > limit (or
// deliveries fall behind).
// A step is generator-bound when the generator's CPU or its event-loop delay
// (p99 of a 5 ms timer's interval: about 6 ms when idle) is above these.
export const GEN_BOUND_CPU_PCT = 90
export const GEN_BOUND_LOOP_P99_MS = 20
export const saturation = async (server, o) => {
  const doc = `sat-${rid()}`
  const tracker = new Tracker()
  const n = o.satClients
  const w = Math.min(o.writers, n)
  const full = Math.min(2, n - w)
  // writers that apply nobody's updates, and full peers that apply theirs only at the
  // convergence check: the generator's core must not be the limit
  const peers = makePeers({ server, doc, n, writers: w, full, tracker, deflate: o.deflate, isolated: true, deferred: true })
  const writers = peers.slice(0, w)
  const res = { scenario: `saturation-${n}`, server: server.entry.name, clients: n, writers: w, p99_limit_ms: o.satP99Ms, steps: [] }
  if (!await connectOrFail(peers, res, server, o)) return res
  let best = null
  const tEnd = performance.now() + o.satMaxS * 1000
  const okStep = (m) => m.p99_ms !== null && m.p99_ms <= o.satP99Ms && m.delivered_per_s >= 0.9 * m.expected_deliveries_per_s && m.undelivered_after_drain === 0
  // the common rate is a step of every server's climb, so their CPU per update compares at one load
  const rates = [...new Set([...o.satRates, o.satCommonRate])].sort((x, y) => x - y)
  res.rates_per_writer = rates
  for (const rate of rates) {
    if (performance.now() > tEnd) { res.stopped = 'time budget'; break }
    // a step that fails is measured once more (one latency spike should not end the climb)
    let m
    for (let attempt = 0; attempt < 2; attempt++) {
      m = await measureWindow({ server, peers, writers, tracker, rate, warmupS: o.satWarmup, windowS: o.satWindow, str: 'ab', drainTimeoutMs: Math.min(o.drainTimeoutMs, 15000) })
      m.attempt = attempt + 1
      m.passed = okStep(m)
      // the generator, not the server, may be what limits this step
      m.generator_bound = m.gen_cpu_pct > GEN_BOUND_CPU_PCT || m.gen_loop_delay_p99_ms > GEN_BOUND_LOOP_P99_MS
      for (const p of peers) p.settle() // between windows, untimed
      res.steps.push({ rate_per_writer: rate, ...m })
      if (o.onStep) o.onStep(res.steps[res.steps.length - 1])
      if (m.passed || m.undelivered_after_drain > 0) break
    }
    const step = res.steps[res.steps.length - 1]
    if (!okStep(m)) { res.stopped = `at ${m.edits_per_s} edits/s: p99 ${m.p99_ms} ms, delivered ${m.delivered_per_s}/s of ${m.expected_deliveries_per_s}/s expected`; break }
    best = step
  }
  if (best) {
    res.max_edits_per_s = best.edits_per_s
    res.delivered_per_s = best.delivered_per_s
    res.p50_ms = best.p50_ms
    res.p99_ms = best.p99_ms
    res.server_cpu_pct = best.server_cpu_pct
    res.server_cpu_us_per_delivery = best.server_cpu_us_per_delivery
    res.gen_cpu_pct = best.gen_cpu_pct
    res.gen_loop_delay_p99_ms = best.gen_loop_delay_p99_ms
    res.max_rate_per_writer = best.rate_per_writer
    res.max_generator_bound = best.generator_bound
    res.other_load_pct = best.other_load_pct
    res.server_rss_mb = best.server_rss_mb
  } else {
    res.max_edits_per_s = 0
  }
  if (!res.stopped) res.stopped = 'highest rate reached'
  // server CPU per delivered update at the common rate (the last attempt of that step counts)
  const common = res.steps.filter(s => s.rate_per_writer === o.satCommonRate).pop()
  res.common_rate_per_writer = o.satCommonRate
  if (common && okStep(common)) {
    res.common_rate_edits_per_s = common.edits_per_s
    res.common_rate_p99_ms = common.p99_ms
    res.common_rate_server_cpu_pct = common.server_cpu_pct
    res.common_rate_server_cpu_us_per_delivery = common.server_cpu_us_per_delivery
    res.common_rate_gen_cpu_pct = common.gen_cpu_pct
  } else {
    res.common_rate_server_cpu_us_per_delivery = null
    res.common_rate_missing = common ? `failed at the common rate: p99 ${common.p99_ms} ms, delivered ${common.delivered_per_s}/s of ${common.expected_deliveries_per_s}/s` : `not reached (stopped ${res.stopped})`
  }
  const c = await convergence(server, doc, peers, o.deflate)
  res.converged = c.converged
  res.errors = collectErrors(peers, server)
  peers.forEach(p => p.close())
  return res
}

// ---------------------------------------------------------------------------
// (4) cold load: a ~1 MB text built from K edits; time from open to synced
// after a server restart (cold), then with the document in memory (warm).
export const coldload = async (server, o, restart) => {
  const doc = `cold-${rid()}`
  const framing = server.entry.framing
  const res = { scenario: `coldload-${o.coldEdits}`, server: server.entry.name, edits: o.coldEdits }
  const tracker = new Tracker()
  const loader = new Peer({ url: server.url(doc), docName: doc, framing, kind: 'writer', tracker, deflate: o.deflate })
  const watcher = new Peer({ url: server.url(doc), docName: doc, framing, kind: 'count', deflate: o.deflate })
  await connectAll([loader, watcher], 2, o.connectTimeoutMs)
  const chunk = 'x'.repeat(Math.max(1, Math.round(o.coldBytes / o.coldEdits)))
  const t0 = performance.now()
  for (let i = 0; i < o.coldEdits; i++) {
    loader.edit(chunk)
    if (i % 500 === 499) await new Promise(resolve => setImmediate(resolve)) // let the socket flush
  }
  const target = Y.getState(loader.doc.store, loader.doc.clientID)
  const expected = loader.text.toString()
  while (watcher.clockOf(loader.doc.clientID) < target && performance.now() - t0 < o.coldTimeoutMs) await sleep(50)
  res.ingest_s = round((performance.now() - t0) / 1000)
  res.ingest_edits_per_s = round(o.coldEdits / res.ingest_s, 0)
  res.doc_chars = expected.length
  res.update_bytes = Y.encodeStateAsUpdate(loader.doc).length
  if (watcher.clockOf(loader.doc.clientID) < target) {
    res.error = `ingest incomplete after ${o.coldTimeoutMs} ms`
    res.errors = collectErrors([loader, watcher], server)
    loader.close(); watcher.close()
    return res
  }
  res.errors = collectErrors([loader, watcher], server)
  loader.close(); watcher.close()
  await sleep(500)
  const tS = performance.now()
  if (server.entry.settle) await server.entry.settle(server.ctx)
  res.settle_s = round((performance.now() - tS) / 1000, 1)
  const restarted = await restart()
  if (restarted) server = restarted
  res.restarted = !!restarted
  const opens = []
  let ok = true
  // "open" = from the socket's creation until the client holds the whole
  // document (its state vector reaches the loader's clock), which may be after
  // sync step 2 if a server answers before it has loaded the document.
  const step2 = []
  for (let i = 0; i < o.coldOpens; i++) {
    const p = new Peer({ url: server.url(doc), docName: doc, framing, kind: 'full', deflate: o.deflate })
    const t = performance.now()
    try {
      const whole = p.waitForClock(loader.doc.clientID, target)
      await p.connect(o.coldTimeoutMs)
      step2.push(p.syncedAt - t)
      const tw = await Promise.race([whole, sleep(o.coldOpenTimeoutMs).then(() => null)])
      if (tw === null) throw new Error(`document incomplete ${o.coldOpenTimeoutMs} ms after open (has ${p.clockOf(loader.doc.clientID)} of ${target} clock)`)
      opens.push(tw - t)
      if (p.text.toString() !== expected) { ok = false; res.errors.push(`open ${i}: text differs`) }
    } catch (e) {
      ok = false
      res.errors.push(`open ${i}: ${e.message}`)
      p.close()
      break
    }
    p.close()
    await sleep(200)
  }
  res.cold_step2_ms = round(step2[0], 1)
  res.cold_open_ms = round(opens[0], 1)
  res.warm_open_ms = opens.length > 1 ? round(opens.slice(1).sort((a, b) => a - b)[Math.floor((opens.length - 1) / 2)], 1) : null
  res.converged = ok && opens.length === o.coldOpens
  res.server_rss_mb = round(rssBytes(server.pid) / 2 ** 20, 1)
  return { res, server }
}

// ---------------------------------------------------------------------------
// (5) write rate (collab only): one writer at `o.writeRate` edits/s for
// `o.writeWindow` s against a collab server started with compaction off
// (WRITES_ENV), then the rows of the `updates` table are counted in the SQLite
// file while the server still runs (at shutdown it would compact them away).
// Every flush writes one room's queued updates in one transaction with one
// `created_at`, so distinct `created_at` values = write transactions; group commit
// merges a flush's updates into one row. The rows are applied to a document, whose
// text must hold every edit.
export const WRITES_ENV = { COLLAB_SNAPSHOT_THRESHOLD: '100000000', COLLAB_SNAPSHOT_INTERVAL: '3600' }

const COUNT_ROWS_PY = `
import json, sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True, timeout=30)
q = "SELECT count(*), count(DISTINCT created_at), coalesce(sum(length(data)), 0), min(created_at), max(created_at) FROM updates WHERE doc_id = ?"
out = dict(zip(["rows", "transactions", "bytes", "first", "last"], db.execute(q, (sys.argv[2],)).fetchone()))
from pycrdt import Doc, Text
doc = Doc()
for (data,) in db.execute("SELECT data FROM updates WHERE doc_id = ? ORDER BY seq", (sys.argv[2],)):
    doc.apply_update(data)
out["stored_chars"] = len(str(doc.get("bench", type=Text)))
print(json.dumps(out))
`

export const writerate = async (server, o, dbPath, python) => {
  const doc = `writes-${rid()}`
  const tracker = new Tracker()
  const peers = makePeers({ server, doc, n: 2, writers: 1, full: 0, tracker, deflate: o.deflate })
  const res = { scenario: `writes-${o.writeRate}`, server: server.entry.name, edits_per_s_target: o.writeRate, window_s: o.writeWindow, settings: { ...WRITES_ENV } }
  try {
    await connectAll(peers, 2, o.connectTimeoutMs)
  } catch (e) {
    res.error = `connect failed: ${e.message}`
    res.errors = collectErrors(peers, server)
    peers.forEach(p => p.close())
    return res
  }
  const count = () => {
    const r = spawnSync(python, ['-c', COUNT_ROWS_PY, dbPath, doc], { encoding: 'utf8', timeout: 60000 })
    if (r.status !== 0) throw new Error(`counting rows failed: ${(r.stderr || '').slice(-500)}`)
    return JSON.parse(r.stdout)
  }
  const before = count() // anything the connect itself wrote
  const cpu0 = cpuMicros(server.pid)
  const t0 = performance.now()
  const { edits } = await driveWriters([peers[0]], o.writeRate, t0 + o.writeWindow * 1000, 'ab')
  const seconds = (performance.now() - t0) / 1000
  const cpuUs = cpuMicros(server.pid) - cpu0
  const dr = await drain(peers, [peers[0]], o.drainTimeoutMs)
  await sleep(1000) // ≥ several flush intervals: every accepted edit is written
  const after = count()
  const rows = after.rows - before.rows
  const tx = after.transactions - before.transactions
  res.edits = edits
  res.edits_per_s = round(edits / seconds, 1)
  res.rows_written = rows
  res.rows_per_s = round(rows / seconds, 1)
  res.transactions = tx
  res.transactions_per_s = round(tx / seconds, 1)
  res.rows_per_transaction = tx ? round(rows / tx, 1) : null
  res.bytes_written = after.bytes - before.bytes
  res.first_row_at = after.first
  res.last_row_at = after.last
  res.server_cpu_pct = round(cpuUs / (seconds * 1e6) * 100, 1)
  res.undelivered_after_drain = dr.missing
  res.edits_per_row = rows ? round(edits / rows, 1) : null
  res.stored_chars = after.stored_chars
  res.converged = dr.missing === 0 && after.stored_chars === edits * 'ab'.length
  if (after.stored_chars !== edits * 'ab'.length) res.error = `the stored rows hold ${after.stored_chars} characters of ${edits * 'ab'.length}`
  res.server_rss_mb = round(rssBytes(server.pid) / 2 ** 20, 1)
  res.errors = collectErrors(peers, server)
  peers.forEach(p => p.close())
  return res
}
