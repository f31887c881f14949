// The `cluster` scenario (scale-out, issues #6 and #9): the same many-document
// load against (a) one `collab serve` process and two processes sharing one
// database and a Redis bus (COLLAB_REDIS_URL), with each document's clients
// (b) spread over both processes alternately (the writer of document d on
// process d mod 2), so about half of the deliveries cross processes (a load
// balancer with no affinity: the worst case), or
// (c) all on one process chosen by document (a load balancer hashing the URL,
// e.g. nginx `hash $request_uri consistent`: updates still go through Redis,
// but nobody else applies them). Both variants use one throwaway PostgreSQL cluster (a fresh
// database each), so only the process count (and Redis, which only (b) needs)
// differs.
//
// Load: D documents × C clients, W writers each (the writers are clients 0..W-1,
// so with two processes writer 0 is on process 0 and writer 1 on process 1); the
// other clients are counting receivers (no Y.Doc: they decode update headers
// only, see client.mjs), the cheapest receiver the generator has, so the
// servers rather than the generator run out of CPU first. Edit rate per writer
// rises step by step (like `saturation`) until p99 > the limit or deliveries
// fall behind. Convergence: afterwards both writers of every document hold the
// same text, and a fresh client on every process gets that text.
//
// CPU, two modes, every variant in each:
// - 'cap': each server process gets the same fixed budget, `share` of one core
//   (a cgroup CPU quota, see cpucap.mjs), as replicas of a fixed size get, and
//   the servers are pinned to CPU 0, the generator to CPU 1 (PostgreSQL and
//   Redis float). What a second process adds is then a second budget, which
//   is the question scale-out asks.
// - 'shared': nothing capped or pinned; two servers, Redis, PostgreSQL and the
//   generator share the machine's cores. On 2 cores one process and the
//   generator already fill them, so this measures the machine as much as the
//   servers; it is reported beside the capped mode.

import fs from 'node:fs'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { SERVERS, startServer } from './servers.mjs'
import { Peer, Tracker, connectAll } from './client.mjs'
import { measureWindow } from './scenarios.mjs'
import { startPostgres, startRedis, PG_SETTINGS } from './infra.mjs'
import { makeCpuCap } from './cpucap.mjs'

const sleep = (ms) => new Promise(resolve => setTimeout(resolve, ms))
const rid = () => Math.random().toString(36).slice(2, 8)
const round = (x, d = 2) => x === null || x === undefined || !Number.isFinite(x) ? x : Math.round(x * 10 ** d) / 10 ** d

// collab on PostgreSQL; migrated by the first process only; ready when /readyz
// says the database (and Redis, when set) answer
const clusterEntry = {
  ...SERVERS.collab,
  prepare (ctx) { if (ctx.migrate) SERVERS.collab.prepare.call(this, ctx) },
  ready: { http: '/readyz' }
}

const LOG_PROBLEM = /Traceback|ERROR|CRITICAL|WARNING|Error/

// expected at start-up of a bench server without authentication
const LOG_EXPECTED = /COLLAB_AUTH_SECRET is not set/

const logProblems = (handle, max = 20) => handle.log().split('\n').filter(l => LOG_PROBLEM.test(l) && !LOG_EXPECTED.test(l)).slice(0, max)

const clientErrors = (peers) => {
  const errs = []
  for (const p of peers) for (const e of p.errors) errs.push(e)
  const uniq = [...new Set(errs)]
  const out = uniq.slice(0, 5)
  if (errs.length) out.unshift(`${errs.length} client error(s), ${uniq.length} distinct`)
  return out
}

// Writers' texts equal per document, and a fresh client on every process gets it.
const checkConvergence = async (handles, docs, framing, timeoutMs) => {
  let mismatched = 0
  const problems = []
  for (const { doc, writers } of docs) {
    const ref = writers[0].text.toString()
    for (const w of writers.slice(1)) {
      if (w.text.toString() !== ref) { mismatched++; if (problems.length < 5) problems.push(`${doc}: writers differ (${ref.length} vs ${w.text.length} chars)`) }
    }
    for (let i = 0; i < handles.length; i++) {
      const fresh = new Peer({ url: handles[i].url(doc), docName: doc, framing, kind: 'full' })
      try {
        await fresh.connect(timeoutMs)
        // what the server sent in sync step 2 may be followed by nothing: compare now
        if (fresh.text.toString() !== ref) { mismatched++; if (problems.length < 5) problems.push(`${doc}: fresh client on process ${i} got ${fresh.text.length} chars, writers have ${ref.length}`) }
      } catch (e) {
        mismatched++
        if (problems.length < 5) problems.push(`${doc}: fresh client on process ${i}: ${e.message}`)
      }
      fresh.close()
    }
  }
  return { mismatched, problems }
}

// One variant: `n` collab processes (n > 1: with Redis) on a fresh database of
// `pg`; `cpu` 'cap' or 'shared' (see above). `pinGenerator(true)` pins the
// harness to the generator's CPU, `pinGenerator(false)` undoes it.
const runVariant = async (n, placement, cpu, o, { pg, tmpdir, track, pinGenerator }) => {
  const byDoc = n > 1 && placement === 'by-doc'
  const capped = cpu === 'cap'
  const res = {
    scenario: `cluster-${capped ? '' : 'shared-'}${n}p${byDoc ? '-bydoc' : ''}`,
    server: 'collab',
    processes: n,
    placement: n > 1 ? placement : 'one process',
    cpu,
    cpu_share: capped ? o.clusterShare : null,
    docs: o.clusterDocs,
    clients_per_doc: o.clusterClients,
    writers_per_doc: o.clusterWriters,
    connections: o.clusterDocs * o.clusterClients,
    database: `PostgreSQL (${Object.entries(PG_SETTINGS).map(([k, v]) => `${k}=${v}`).join(', ')})`,
    bus: n > 1 ? 'Redis pub/sub' : 'none',
    pinning: capped && o.clusterPin ? 'servers on CPU 0, generator on CPU 1' : 'none',
    p99_limit_ms: o.satP99Ms,
    steps: []
  }
  const handles = []
  const caps = []
  let redis = null
  let peers = []
  try {
    const dbUrl = pg.createDatabase(`bench_${n}p_${rid()}`)
    if (n > 1) {
      redis = await startRedis(tmpdir)
      track(redis.stop)
    }
    for (let i = 0; i < n; i++) {
      const ctx = {
        tmpdir: path.join(tmpdir, `collab-${n}p-${i}`),
        migrate: i === 0,
        env: { COLLAB_DATABASE_URL: dbUrl, ...(redis ? { COLLAB_REDIS_URL: redis.url } : {}) }
      }
      const cap = capped ? makeCpuCap(`${n}p-${i}-${rid()}`, o.clusterShare) : null
      if (cap) caps.push(cap)
      const h = await startServer(clusterEntry, ctx, { pin: capped && o.clusterPin, cap })
      handles.push(h)
      track(() => h.stop())
      if (cap) track(() => cap.remove()) // after the stop: also on Ctrl-C
    }
    if (capped && o.clusterPin) pinGenerator(true)
    // peers: document d's client i talks to process (d + i) % n (spread) or d % n (by-doc)
    const tracker = new Tracker()
    tracker.splitGroups = n > 1 && !byDoc
    const framing = clusterEntry.framing
    const prefix = `cluster-${rid()}`
    const docs = []
    const writers = []
    for (let d = 0; d < o.clusterDocs; d++) {
      const doc = `${prefix}-${d}`
      const mine = []
      for (let i = 0; i < o.clusterClients; i++) {
        const group = byDoc ? d % n : (d + i) % n
        const kind = i < o.clusterWriters ? 'writer' : 'count'
        const p = new Peer({ url: handles[group].url(doc), docName: doc, framing, tracker, kind, group, editAtStart: true, deflate: o.deflate })
        mine.push(p)
        peers.push(p)
        if (kind === 'writer') writers.push(p)
      }
      docs.push({ doc, writers: mine.filter(p => p.kind === 'writer') })
    }
    const t0 = performance.now()
    try {
      await connectAll(peers, o.connectBatch, o.connectTimeoutMs)
    } catch (e) {
      res.error = `connect failed: ${e.message}`
      return res
    }
    res.connect_s = round((performance.now() - t0) / 1000)
    const auxPids = { postgres: pg.pid(), ...(redis ? { redis: redis.pid } : {}) }
    const okStep = (m) => m.p99_ms !== null && m.p99_ms <= o.satP99Ms && m.delivered_per_s >= 0.9 * m.expected_deliveries_per_s && m.undelivered_after_drain === 0
    const tEnd = performance.now() + o.clusterMaxS * 1000
    let best = null
    for (const rate of o.clusterRates) {
      if (performance.now() > tEnd) { res.stopped = 'time budget'; break }
      let m
      for (let attempt = 0; attempt < 2; attempt++) {
        m = await measureWindow({ server: handles[0], servers: handles, caps, auxPids, receiversPerEdit: o.clusterClients - 1, peers, writers, tracker, rate, warmupS: o.satWarmup, windowS: o.satWindow, str: 'ab', drainTimeoutMs: Math.min(o.drainTimeoutMs, 15000) })
        m.attempt = attempt + 1
        res.steps.push({ rate_per_writer: rate, ...m })
        if (okStep(m) || m.undelivered_after_drain > 0 || handles.some(h => h.exited())) break
      }
      const step = res.steps[res.steps.length - 1]
      if (!okStep(m)) {
        res.stopped = `at ${m.edits_per_s} edits/s: p99 ${m.p99_ms} ms, delivered ${m.delivered_per_s}/s of ${m.expected_deliveries_per_s}/s expected${m.undelivered_after_drain ? `, ${m.undelivered_after_drain} undelivered after drain` : ''}`
        break
      }
      best = step
    }
    if (!res.stopped) res.stopped = 'highest rate reached'
    if (best) {
      for (const k of ['edits_per_s', 'delivered_per_s', 'p50_ms', 'p99_ms', 'server_cpu_pct', 'server_cpu_us_per_delivery', 'gen_cpu_pct', 'other_load_pct', 'server_rss_mb', 'server_cpu_pct_each', 'throttled_pct_each', 'aux_cpu_pct', 'gen_cpu_us_per_delivery', 'all_cpu_us_per_delivery', 'same_process_p50_ms', 'same_process_p99_ms', 'cross_process_p50_ms', 'cross_process_p99_ms']) {
        if (best[k] !== undefined) res[k] = best[k]
      }
      res.max_edits_per_s = best.edits_per_s
      res.max_delivered_per_s = best.delivered_per_s
      res.max_rate_per_writer = best.rate_per_writer
    } else {
      res.max_edits_per_s = 0
      res.max_delivered_per_s = 0
    }
    // undelivered after the last step's drain = lost (or very late) updates
    const last = res.steps[res.steps.length - 1]
    res.undelivered_after_drain = last ? last.undelivered_after_drain : null
    const c = await checkConvergence(handles, docs, framing, o.connectTimeoutMs)
    res.convergence_problems = c.problems
    res.converged = c.mismatched === 0 && res.undelivered_after_drain === 0
    res.errors = clientErrors(peers)
    return res
  } catch (e) {
    res.error = String(e.stack || e).slice(0, 2000)
    return res
  } finally {
    pinGenerator(false)
    peers.forEach(p => p.close())
    for (const [i, h] of handles.entries()) {
      if (h.exited()) {
        res.error = (res.error ? res.error + '; ' : '') + `process ${i} exited ${JSON.stringify(h.exited())}`
        res.server_log_tail = h.log().slice(-2000)
      }
    }
    await sleep(200)
    await Promise.all(handles.map(h => h.stop().catch(() => {})))
    // the logs once stopped: shutdown problems (e.g. final writes) count too
    const problems = handles.map(h => logProblems(h))
    if (problems.some(p => p.length)) res.server_log_errors = problems.flatMap((p, i) => p.map(l => `[process ${i}] ${l}`)).slice(0, 20)
    if (redis) await redis.stop()
    caps.forEach(c => c.remove())
  }
}

// Runs every variant (o.clusterCpu × o.clusterProcesses × o.clusterPlacements);
// returns their results.
export const cluster = async (o, { tmpdir, track, onResult, pinGenerator }) => {
  fs.mkdirSync(tmpdir, { recursive: true })
  const out = []
  const pg = await startPostgres()
  track(pg.stop)
  try {
    const shapes = o.clusterProcesses.flatMap(n => n > 1 ? o.clusterPlacements.map(p => [n, p]) : [[n, 'spread']])
    const variants = o.clusterCpu.flatMap(cpu => shapes.map(([n, p]) => [n, p, cpu]))
    for (const [n, placement, cpu] of variants) {
      const t0 = Date.now()
      const r = await runVariant(n, placement, cpu, o, { pg, tmpdir, track, pinGenerator })
      r.elapsed_s = Math.round((Date.now() - t0) / 100) / 10
      out.push(r)
      if (onResult) onResult(r)
    }
  } finally {
    pg.stop()
  }
  return out
}

// The comparison per CPU mode: max delivered/s (p99 ≤ limit) of each variant,
// the ratios, and p50/p99 of all at the highest rate per writer all sustained
// (the lowest rate when one sustained none). `two_beats_one` is the capped
// mode's verdict (the shared mode's when only that ran).
export const clusterSummary = (results) => {
  const runs = results.filter(r => /^cluster-(shared-)?\d+p(-bydoc)?$/.test(r.scenario))
  if (!runs.length) return null
  const capped = compare(runs.filter(r => r.cpu === 'cap'))
  const shared = compare(runs.filter(r => r.cpu !== 'cap'))
  const main = capped || shared
  return { capped, shared, two_beats_one: main ? main.two_beats_one : null }
}

const compare = (runs) => {
  if (!runs.length) return null
  const one = runs.find(r => r.processes === 1)
  const two = runs.find(r => r.processes === 2 && r.placement !== 'by-doc')
  const twoByDoc = runs.find(r => r.processes === 2 && r.placement === 'by-doc')
  const stepAt = (r, rate) => r && r.steps ? [...r.steps].reverse().find(s => s.rate_per_writer === rate) || null : null
  let common = null
  let commonSustained = false
  if (one && two && one.steps && two.steps && one.steps.length && two.steps.length) {
    const rates = [...new Set(one.steps.map(s => s.rate_per_writer))].filter(x => two.steps.some(s => s.rate_per_writer === x))
    const both = rates.filter(x => x <= (one.max_rate_per_writer ?? -1) && x <= (two.max_rate_per_writer ?? -1) && (!twoByDoc || x <= (twoByDoc.max_rate_per_writer ?? -1)))
    common = both.length ? Math.max(...both) : (rates.length ? Math.min(...rates) : null)
    commonSustained = both.length > 0
  }
  const at = (r) => {
    const s = common === null ? null : stepAt(r, common)
    return s ? { edits_per_s: s.edits_per_s, delivered_per_s: s.delivered_per_s, p50_ms: s.p50_ms, p99_ms: s.p99_ms, same_process_p50_ms: s.same_process_p50_ms ?? null, same_process_p99_ms: s.same_process_p99_ms ?? null, cross_process_p50_ms: s.cross_process_p50_ms ?? null, cross_process_p99_ms: s.cross_process_p99_ms ?? null, server_cpu_pct: s.server_cpu_pct, server_cpu_pct_each: s.server_cpu_pct_each ?? null, throttled_pct_each: s.throttled_pct_each ?? null, server_cpu_us_per_delivery: s.server_cpu_us_per_delivery, gen_cpu_pct: s.gen_cpu_pct, all_cpu_us_per_delivery: s.all_cpu_us_per_delivery ?? null, other_load_pct: s.other_load_pct } : null
  }
  const over = (x) => one && x && one.max_delivered_per_s ? round(x.max_delivered_per_s / one.max_delivered_per_s, 3) : null
  const ratio = over(two)
  const ratioByDoc = over(twoByDoc)
  return {
    cpu: runs[0].cpu,
    cpu_share: runs[0].cpu_share ?? null,
    runs: runs.map(r => ({ scenario: r.scenario, processes: r.processes, placement: r.placement ?? null, max_delivered_per_s: r.max_delivered_per_s ?? null, max_edits_per_s: r.max_edits_per_s ?? null, max_rate_per_writer: r.max_rate_per_writer ?? null, p50_ms: r.p50_ms ?? null, p99_ms: r.p99_ms ?? null, same_process_p99_ms: r.same_process_p99_ms ?? null, cross_process_p99_ms: r.cross_process_p99_ms ?? null, stopped: r.stopped ?? null, converged: r.converged ?? null, error: r.error ? String(r.error).split('\n')[0] : null })),
    common_rate_per_writer: common,
    common_rate_sustained_by_both: commonSustained,
    at_common_rate: { one_process: at(one), two_processes: at(two), two_processes_by_doc: at(twoByDoc) },
    throughput_two_over_one: ratio,
    throughput_two_by_doc_over_one: ratioByDoc,
    two_beats_one: ratio === null && ratioByDoc === null ? null : Math.max(ratio ?? 0, ratioByDoc ?? 0) > 1
  }
}
