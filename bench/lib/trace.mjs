// The `trace` scenario: a real editing trace (bench/traces/, 259,778 one-character
// edits of a LaTeX paper) replayed through the stock Yjs client (y-websocket's
// WebsocketProvider) against `collab serve`, on SQLite and on PostgreSQL. Phases,
// each on a document of its own, one database per run:
//
//  1. replay: the first `edits` transactions as fast as the writer's socket
//     drains; done when a fresh client holds the whole text. Replay time, server
//     CPU, the sockets the server closed (and their codes), the final text against
//     the trace's (through a fresh client and the server's own export), rows
//     written (all inserts into `updates`, counted by the database), then the log
//     rows before and after the compaction a clean shutdown does.
//  2. clean reopen: a fresh server on the same database opens that document.
//  3. kill 2 s after the last edit: edits at a steady rate for some seconds, then
//     nothing; 2 s after the last one `kill -9`; restart; which edits are gone.
//  4. kill during load: the replay at full speed, `kill -9` when half the edits
//     are made; restart; open time of the document (client: connect → synced;
//     server: its room load), and which edits are gone: of all made, of those
//     sent more than `margin` (several flush windows) before the kill, and of
//     those the server had relayed to a second client by then (must be none: what
//     the server relayed it had accepted; an edit it had not read yet is still the
//     client's, whose provider sends it again when it reconnects).
//
// Every wait is bounded; servers bind 127.0.0.1 on free ports; a run's servers
// and its PostgreSQL are stopped and its files removed, also on failure.

import fs from 'node:fs'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { performance } from 'node:perf_hooks'
import * as Y from 'yjs'
import { SERVERS, ROOT, startServer, cpuMicros, rssBytes } from './servers.mjs'
import { startPostgres, postgresAvailable, PG_SETTINGS } from './infra.mjs'
import { TextCursor } from './editingtrace.mjs'
import { Replayer, AcceptWatcher, openDocument, TEXT_NAME } from './replay.mjs'

const sleep = (ms) => new Promise(resolve => setTimeout(resolve, ms))
const rid = () => Math.random().toString(36).slice(2, 8)
const round = (x, d = 2) => x === null || x === undefined || !Number.isFinite(x) ? x : Math.round(x * 10 ** d) / 10 ** d

// migrated by the scenario before the first start; ready when the database answers.
// `limits: 'server'` keeps the server's own per-connection rate limits, which
// the harness otherwise lifts.
const entry = {
  ...SERVERS.collab,
  env (ctx) {
    const env = SERVERS.collab.env(ctx)
    if (ctx.limits === 'server') { delete env.COLLAB_MESSAGES_PER_SECOND; delete env.COLLAB_MAX_CONNECTIONS_PER_CLIENT }
    return env
  },
  prepare () {},
  ready: { http: '/readyz' }
}

const LOG_PROBLEM = /Traceback|ERROR|CRITICAL|WARNING|Error/
const LOG_EXPECTED = /COLLAB_AUTH_SECRET is not set/

// --- the databases -----------------------------------------------------------
// counts: { inserted_total (rows ever inserted into `updates`), log_rows,
// log_bytes, snapshot_bytes } of one document. SQLite reuses the rowid of a
// deleted last row, so a trigger the harness adds after migrating counts inserts;
// PostgreSQL's sequence of `updates.seq` never goes back.
const SQLITE_PY = `
import json, sqlite3, sys
path, cmd = sys.argv[1], sys.argv[2]
if cmd == "instrument":
    db = sqlite3.connect(path, timeout=30)
    db.executescript("""
        CREATE TABLE bench_rows_inserted (n INTEGER NOT NULL);
        INSERT INTO bench_rows_inserted VALUES (0);
        CREATE TRIGGER bench_count_inserts AFTER INSERT ON updates
        BEGIN UPDATE bench_rows_inserted SET n = n + 1; END;
    """)
    db.commit()
else:
    doc = sys.argv[3]
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    rows, size = db.execute("SELECT count(*), coalesce(sum(length(data)), 0) FROM updates WHERE doc_id = ?", (doc,)).fetchone()
    snap = db.execute("SELECT length(data) FROM snapshots WHERE doc_id = ?", (doc,)).fetchone()
    total = db.execute("SELECT n FROM bench_rows_inserted").fetchone()[0]
    print(json.dumps({"inserted_total": total, "log_rows": rows, "log_bytes": size, "snapshot_bytes": snap[0] if snap else 0}))
`

const sqlite = (dir) => {
  const file = path.join(dir, 'trace.db')
  const python = path.join(ROOT, '.venv', 'bin', 'python')
  const py = (...args) => {
    const r = spawnSync(python, ['-c', SQLITE_PY, file, ...args], { encoding: 'utf8', timeout: 60000 })
    if (r.status !== 0) throw new Error(`sqlite3 ${args[0]} failed: ${(r.stderr || '').slice(-800)}`)
    return args[0] === 'count' ? JSON.parse(r.stdout) : null
  }
  return {
    name: 'sqlite',
    label: 'SQLite',
    url: `sqlite+aiosqlite:///${file}`,
    pid: () => null,
    instrument: () => py('instrument'),
    counts: (doc) => py('count', doc),
    stop () {}
  }
}

const postgres = async (track) => {
  const pg = await startPostgres()
  track(pg.stop)
  const db = `trace_${rid()}`
  const url = pg.createDatabase(db)
  return {
    name: 'postgresql',
    label: `PostgreSQL (${Object.entries(PG_SETTINGS).filter(([k]) => k !== 'max_connections').map(([k, v]) => `${k}=${v}`).join(', ')})`,
    url,
    pid: pg.pid,
    instrument () {},
    counts (doc) {
      const [[rows, size, snap, total]] = pg.query(db, `SELECT (SELECT count(*) FROM updates WHERE doc_id = '${doc}'), (SELECT coalesce(sum(length(data)), 0) FROM updates WHERE doc_id = '${doc}'), (SELECT coalesce(max(length(data)), 0) FROM snapshots WHERE doc_id = '${doc}'), coalesce(pg_sequence_last_value(pg_get_serial_sequence('updates', 'seq')::regclass), 0)`)
      return { inserted_total: Number(total), log_rows: Number(rows), log_bytes: Number(size), snapshot_bytes: Number(snap) }
    },
    stop: pg.stop
  }
}

// --- the server ----------------------------------------------------------------
const wsBase = (h) => `ws://127.0.0.1:${h.port}/ws`

// Prometheus text → { name or name{labels}: value }; {} if it does not answer
const metrics = async (h) => {
  const m = {}
  try {
    const r = await fetch(`http://127.0.0.1:${h.port}/metrics`, { signal: AbortSignal.timeout(5000) })
    for (const line of (await r.text()).split('\n')) {
      const x = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})? (\S+)$/.exec(line)
      if (!x) continue
      m[x[1] + (x[2] || '')] = Number(x[3])
      if (x[2]) m[x[1]] = (m[x[1]] || 0) + Number(x[3])
    }
  } catch (e) {}
  return m
}
const delta = (m1, m0, k) => m1[k] === undefined ? null : round(m1[k] - (m0[k] || 0), 4)

const kill9 = async (h) => {
  process.kill(h.pid, 'SIGKILL')
  const t0 = performance.now()
  while (!h.exited()) {
    if (performance.now() - t0 > 10000) throw new Error(`server ${h.pid} still running 10 s after SIGKILL`)
    await sleep(2)
  }
}

// the server's own figures for opening `doc`: "room 'doc' loaded in X ms" (and
// "built in") at debug level
const loadLog = (h, doc) => {
  const log = h.log()
  const num = (what) => { const m = new RegExp(`room '${doc}' ${what} in ([\\d.]+) ms`).exec(log); return m ? Number(m[1]) : null }
  return { loaded_ms: num('loaded'), built_ms: num('built') }
}

const exportedText = async (h, doc) => {
  const r = await fetch(`http://127.0.0.1:${h.port}/api/documents/${doc}/update`, { signal: AbortSignal.timeout(30000) })
  if (r.status !== 200) throw new Error(`GET /api/documents/${doc}/update: ${r.status}`)
  const d = new Y.Doc()
  Y.applyUpdate(d, new Uint8Array(await r.arrayBuffer()))
  return d.getText(TEXT_NAME).toString()
}

const documentInfo = async (h, doc) => {
  try {
    const r = await fetch(`http://127.0.0.1:${h.port}/api/documents/${doc}`, { signal: AbortSignal.timeout(10000) })
    return r.status === 200 ? await r.json() : { status: r.status }
  } catch (e) { return { error: String(e.message || e) } }
}

const closeCodes = (closes) => {
  const out = {}
  for (const c of closes) out[c.code ?? 'client'] = (out[c.code ?? 'client'] || 0) + 1
  return out
}

// A reopened document against what the writer made before the kill at tKill.
const losses = (w, reopened, cursor, tKill, marginMs, watcher) => {
  const present = w.presentIn(reopened.doc)
  let inDoc = 0
  let firstLost = -1
  for (let i = 0; i < w.made; i++) {
    if (present[i]) inDoc++
    else if (firstLost < 0) firstLost = i
  }
  const prefix = firstLost < 0 ? w.made : firstLost
  const isPrefix = inDoc === prefix
  const lostAmong = (n) => { let l = 0; for (let i = 0; i < n; i++) if (!present[i]) l++; return l }
  const tOld = tKill - marginMs
  let sentOld = 0
  let lostSentOld = 0
  for (let i = 0; i < w.made; i++) if (w.sentAt[i] < tOld) { sentOld++; if (!present[i]) lostSentOld++ }
  const acceptedOld = w.acceptedCount(watcher.clockAt(tOld))
  return {
    sent: w.made,
    in_document: inDoc,
    lost: w.made - inDoc,
    first_lost_edit: firstLost < 0 ? null : firstLost,
    // the document is the trace's first `in_document` edits, and its text is theirs
    is_prefix: isPrefix,
    text_matches_trace: isPrefix ? reopened.text === cursor.at(prefix) : false,
    margin_s: marginMs / 1000,
    sent_before_margin: sentOld,
    lost_sent_before_margin: lostSentOld,
    accepted_at_kill: w.acceptedCount(watcher.clockAt(tKill)),
    accepted_before_margin: acceptedOld,
    lost_accepted_before_margin: lostAmong(acceptedOld)
  }
}

// --- the phases --------------------------------------------------------------
const replayPhase = async (h, db, trace, cursor, o, res) => {
  const doc = `trace-${rid()}`
  const n = o.traceEdits
  const w = new Replayer({ serverUrl: wsBase(h), docId: doc, trace, edits: n })
  try {
    await w.connect(o.connectTimeoutMs)
    const rows0 = db.counts(doc)
    const m0 = await metrics(h)
    const cpu0 = cpuMicros(h.pid)
    const t0 = performance.now()
    const run = await w.run({ to: n, deadline: t0 + o.traceTimeoutS * 1000 })
    if (run.timed_out) res.errors.push(`replay: ${w.made} of ${n} edits in the ${o.traceTimeoutS} s budget`)
    const expected = cursor.at(w.made)
    if (w.made === trace.txns.length && expected !== trace.endContent) throw new Error('the full replay\'s text is not the trace\'s endContent')
    // the server has it all when a fresh client gets the whole text
    const tCheck = performance.now()
    const check = await openDocument(wsBase(h), doc, { timeoutMs: o.traceDrainTimeoutMs, expected })
    const tDone = check.text_ok ? tCheck + check.complete_ms : null
    const cpu1 = cpuMicros(h.pid)
    const wall = ((tDone ?? performance.now()) - t0) / 1000
    Object.assign(res, {
      doc,
      edits_made: w.made,
      replay_s: tDone ? round(wall) : null,
      edits_per_s: tDone ? round(w.made / wall, 0) : null,
      client_send_s: round(run.seconds),
      waited_for_socket_s: round(run.waited_for_socket_s),
      offline_s: round(run.offline_s),
      server_cpu_s: round((cpu1 - cpu0) / 1e6),
      server_cpu_pct: round((cpu1 - cpu0) / (wall * 1e4), 1),
      server_cpu_us_per_edit: round((cpu1 - cpu0) / w.made, 1),
      server_rss_mb: round(rssBytes(h.pid) / 2 ** 20, 1),
      socket_closes: w.closes.length,
      close_codes: closeCodes(w.closes),
      closes: w.closes.slice(0, 20).map(c => ({ code: c.code, reason: c.reason, at_edit: c.at_edit, at_s: round((c.t - t0) / 1000) })),
      resyncs: w.syncs - 1,
      text_chars: expected.length,
      fresh_client_text_ok: check.text_ok,
      fresh_client_error: check.error
    })
    const exported = await exportedText(h, doc)
    res.export_text_ok = exported === expected
    res.final_text_ok = !!check.text_ok && res.export_text_ok && w.made === n
    await sleep(Math.max(1000, 10 * o.flushIntervalMs)) // several flush windows
    const rows1 = db.counts(doc)
    const m1 = await metrics(h)
    const info = await documentInfo(h, doc)
    Object.assign(res, {
      rows_written: rows1.inserted_total - rows0.inserted_total,
      write_transactions: delta(m1, m0, 'collab_flush_seconds_count'),
      compactions: delta(m1, m0, 'collab_snapshot_seconds_count'),
      server_throttled_s: delta(m1, m0, 'collab_throttled_seconds_total'),
      updates_received: delta(m1, m0, 'collab_updates_received_total'),
      log_rows_after_replay: rows1.log_rows,
      log_bytes_after_replay: rows1.log_bytes,
      snapshot_bytes_after_replay: rows1.snapshot_bytes,
      api_size_bytes: info.size_bytes ?? null,
      api_log_rows: info.log_rows ?? null
    })
    res.rows_per_edit = round(res.rows_written / w.made, 3)
    return { doc, expected }
  } finally {
    w.destroy()
  }
}

// after a clean restart: a fresh client opens the replayed document
const reopenPhase = async (h, doc, expected, o) => {
  const m0 = await metrics(h)
  const open = await openDocument(wsBase(h), doc, { timeoutMs: o.traceOpenTimeoutMs, expected })
  const m1 = await metrics(h)
  return {
    synced_ms: round(open.synced_ms, 1),
    complete_ms: round(open.complete_ms, 1),
    text_ok: open.text_ok,
    server_load_ms: m1.collab_room_load_seconds_sum !== undefined ? round(delta(m1, m0, 'collab_room_load_seconds_sum') * 1000, 1) : null,
    ...loadLog(h, doc),
    ...(open.error ? { error: open.error } : {})
  }
}

// edits to `to` (at `rate`/s, or as fast as the socket drains: null), then kill -9:
// `afterMs` after the last edit, or at once; a new server opens the document
const killPhase = async (h, start, trace, cursor, o, { to, rate, afterMs }) => {
  const doc = `trace-kill-${rid()}`
  const watcher = new AcceptWatcher(h.url(doc), doc)
  const w = new Replayer({ serverUrl: wsBase(h), docId: doc, trace, edits: to })
  let killed = false
  try {
    await watcher.connect(o.connectTimeoutMs)
    watcher.watched = w.clientID
    await w.connect(o.connectTimeoutMs)
    const t0 = performance.now()
    const run = await w.run({ to, rate, deadline: t0 + o.traceTimeoutS * 1000 })
    if (afterMs) await sleep(Math.max(0, w.sentAt[w.made - 1] + afterMs - performance.now()))
    const closesBefore = w.closes.length
    const tKill = performance.now()
    await kill9(h) // before the clients go: their leaving would make the server write
    killed = true
    w.destroy()
    watcher.close()
    const h2 = await start({ debug: true })
    const m0 = await metrics(h2)
    const open = await openDocument(wsBase(h2), doc, { timeoutMs: o.traceOpenTimeoutMs, settleMs: 500 })
    const m1 = await metrics(h2)
    const out = {
      rate: rate ?? 'as fast as the socket drains',
      send_s: round(run.seconds),
      kill_after_last_edit_s: round((tKill - w.sentAt[w.made - 1]) / 1000, 3),
      socket_closes_before_kill: closesBefore,
      close_codes_before_kill: closeCodes(w.closes.slice(0, closesBefore)),
      restart_ready_ms: round(h2.ready_ms, 0),
      open_synced_ms: round(open.synced_ms, 1),
      server_load_ms: m1.collab_room_load_seconds_sum !== undefined ? round(delta(m1, m0, 'collab_room_load_seconds_sum') * 1000, 1) : null,
      ...loadLog(h2, doc),
      ...(open.error ? { open_error: open.error } : losses(w, open, cursor, tKill, o.traceMarginMs, watcher))
    }
    return { out, server: h2 }
  } finally {
    if (!killed) { w.destroy(); watcher.close() }
  }
}

// --- one database ------------------------------------------------------------
const runDatabase = async (db, trace, o, { tmpdir, track }) => {
  const res = {
    scenario: `trace-${db.name}`,
    server: 'collab',
    database: db.label,
    trace: trace.name,
    edits: o.traceEdits,
    limits: o.traceLimits === 'server' ? 'the server\'s own (COLLAB_MESSAGES_PER_SECOND etc. unset)' : 'lifted as in every bench run (COLLAB_MESSAGES_PER_SECOND=100000)',
    errors: []
  }
  const handles = []
  let n = 0
  const start = async ({ debug = false } = {}) => {
    const ctx = { tmpdir: path.join(tmpdir, `server-${n++}`), limits: o.traceLimits, env: { COLLAB_DATABASE_URL: db.url, ...(debug ? { COLLAB_LOG_LEVEL: 'debug' } : {}) } }
    const t0 = performance.now()
    const h = await startServer(entry, ctx, { pin: o.tracePin })
    h.ready_ms = performance.now() - t0
    handles.push(h)
    track(() => h.stop())
    return h
  }
  const cursor = new TextCursor(trace)
  try {
    SERVERS.collab.prepare.call(entry, { tmpdir, env: { COLLAB_DATABASE_URL: db.url } })
    db.instrument()
    // 1. replay, then a clean shutdown, which compacts
    let h = await start()
    const { doc, expected } = await replayPhase(h, db, trace, cursor, o, res)
    await h.stop()
    const rows2 = db.counts(doc)
    res.log_rows_after_compaction = rows2.log_rows
    res.snapshot_bytes = rows2.snapshot_bytes
    // 2. reopen after the clean shutdown
    h = await start({ debug: true })
    res.clean_reopen = await reopenPhase(h, doc, expected, o)
    // 3. kill -9 2 s after the last of some edits at a steady rate
    const k2 = await killPhase(h, start, trace, cursor, o, { to: Math.min(o.traceEdits, Math.round(o.traceKillRate * o.traceKillSeconds)), rate: o.traceKillRate, afterMs: 2000 })
    res.kill_2s = k2.out
    // 4. kill -9 in the middle of the full-speed replay
    const kl = await killPhase(k2.server, start, trace, cursor, o, { to: Math.max(1, Math.floor(o.traceEdits * o.traceKillAt)), rate: null, afterMs: 0 })
    res.kill_load = kl.out
    await kl.server.stop()
  } catch (e) {
    res.error = String(e.stack || e).slice(0, 2000)
  } finally {
    for (const h of handles) { try { await h.stop() } catch (e) {} }
  }
  const problems = handles.flatMap(h => h.log().split('\n').filter(l => LOG_PROBLEM.test(l) && !LOG_EXPECTED.test(l)))
  if (problems.length) res.server_log_errors = [...new Set(problems.map(l => l.replace(/^\S+ \S+ /, '')))].slice(0, 10)
  const k2 = res.kill_2s || {}
  const kl = res.kill_load || {}
  res.open_after_kill_ms = kl.open_synced_ms ?? null
  res.edits_lost_kill_2s = k2.lost ?? null
  res.edits_lost_kill_load_old = kl.lost_accepted_before_margin ?? null
  // no failure hidden: the final text, the clean reopen, no edit lost 2 s after
  // the last one, none that the server had relayed more than the margin before a
  // kill during load
  res.converged = !res.error && res.final_text_ok === true && res.clean_reopen?.text_ok === true &&
    k2.lost === 0 && k2.text_matches_trace === true && kl.lost_accepted_before_margin === 0 && kl.text_matches_trace === true
  if (!res.errors.length) delete res.errors
  return res
}

// Each of o.traceDatabases in turn; onResult(r) for each.
export const traceScenario = async (o, trace, { tmpdir, track, onResult }) => {
  for (const name of o.traceDatabases) {
    const t0 = Date.now()
    const dir = fs.mkdtempSync(path.join(tmpdir, `trace-${name}-`))
    let r
    if (name === 'postgresql' && postgresAvailable()) {
      r = { scenario: 'trace-postgresql', server: 'collab', error: `not run: ${postgresAvailable()}` }
    } else {
      let db = null
      try {
        db = name === 'sqlite' ? sqlite(dir) : await postgres(track)
        r = await runDatabase(db, trace, o, { tmpdir: dir, track })
      } catch (e) {
        r = { scenario: `trace-${name}`, server: 'collab', error: String(e.stack || e).slice(0, 2000) }
      } finally {
        if (db) db.stop()
        fs.rmSync(dir, { recursive: true, force: true })
      }
    }
    r.elapsed_s = Math.round((Date.now() - t0) / 100) / 10
    onResult(r)
  }
}
