// Result table (markdown, also printed) and the headline metric per scenario.

import { clusterSummary } from './cluster.mjs'
import { GEN_BOUND_CPU_PCT, GEN_BOUND_LOOP_P99_MS } from './scenarios.mjs'

// headline metric per scenario family: [key, label, lower is better]
const HEADLINE = {
  fanout: ['server_cpu_us_per_delivery', 'CPU µs/upd', true],
  manydocs: ['rss_per_connection_kb', 'RSS/conn', true],
  saturation: ['max_edits_per_s', 'max edits/s', false],
  coldload: ['cold_open_ms', 'cold open', true],
  storeopen: ['open_ms', 'open ms', true],
  writes: ['transactions_per_s', 'write tx/s', true],
  cluster: ['max_delivered_per_s', 'max upd/s', false],
  trace: ['replay_s', 'replay s', true]
}
const family = (scenario) => scenario.split('-')[0]

export const headline = (results) => results.map(r => {
  const h = HEADLINE[family(r.scenario)]
  return { scenario: r.scenario, server: r.server, metric: h ? h[0] : null, value: h ? r[h[0]] ?? null : null, converged: r.converged ?? null, error: r.error ? String(r.error).split('\n')[0] : null }
})

const fmt = (v) => v === null || v === undefined ? '–' : typeof v === 'boolean' ? (v ? 'yes' : 'NO') : String(v)

const other = (r) => {
  const f = family(r.scenario)
  if (r.error) return `ERROR: ${String(r.error).split('\n')[0].slice(0, 80)}`
  const noisy = r.other_load_pct > 20 ? `; ⚠ other load ${r.other_load_pct}% CPU` : ''
  if (f === 'fanout') return `${r.edits_per_s} edits/s → ${r.clients} clients; ${fmt(r.server_writes_per_delivery)} writes/upd; connect ${r.connect_s}s${noisy}`
  if (f === 'manydocs') return `RSS ${r.server_rss_before_mb}→${r.server_rss_after_mb} MB = ${r.rss_per_connection_kb} KiB/conn; ${r.connects_per_s} conn/s; after close ${r.server_rss_after_close_mb} MB`
  if (f === 'saturation') {
    const common = r.common_rate_server_cpu_us_per_delivery != null ? `${r.common_rate_server_cpu_us_per_delivery} CPU µs/upd` : r.common_rate_missing
    return `${r.max_edits_per_s ? `max ${r.max_edits_per_s}` : `< ${r.steps && r.steps[0] ? r.steps[0].edits_per_s : '?'}`} edits/s with p99 ≤ ${r.p99_limit_ms} ms (stopped ${r.stopped}); at the common rate ${r.common_rate_per_writer}/writer: ${common}${noisy}`
  }
  if (f === 'coldload') return `${r.doc_chars} chars/${r.edits} edits: cold open ${r.cold_open_ms} ms, warm ${r.warm_open_ms} ms; ingest ${r.ingest_edits_per_s} edits/s${r.restarted ? '' : ' (no restart)'}`
  if (f === 'storeopen') return `${mb(r.snapshot_bytes)} MB snapshot + ${r.log_rows} log rows (${mb(r.log_bytes)} MB): Persistence.load ${r.open_ms} ms = DB read ${r.db_read_ms} + build ${r.build_ms} ms (median of ${r.runs}); raw pycrdt apply of the snapshot ${r.raw_apply_ms} ms`
  if (f === 'cluster') {
    if (!r.processes) return ''
    const split = r.processes > 1 && r.same_process_p99_ms !== undefined ? `; p99 same/cross process ${r.same_process_p99_ms}/${r.cross_process_p99_ms} ms` : ''
    const cpu = r.cpu === 'cap' ? `each process capped at ${r.cpu_share} of a core${r.throttled_pct_each ? ` (throttled ${r.throttled_pct_each.join('/')} % of the time)` : ''}` : 'sharing the machine, unpinned'
    return `${r.processes} process${r.processes > 1 ? `es + Redis, clients ${r.placement === 'by-doc' ? 'by document' : 'spread'}` : ''}, PostgreSQL, ${r.docs} docs × ${r.clients_per_doc} clients (${r.writers_per_doc} writers): max ${r.max_delivered_per_s} upd/s (${r.max_edits_per_s} edits/s) with p99 ≤ ${r.p99_limit_ms} ms${split}; ${cpu}; stopped ${r.stopped}${noisy}`
  }
  if (f === 'trace') return traceLine(r)
  if (f === 'writes') return `${r.edits_per_s} edits/s for ${r.window_s} s → ${r.rows_per_s} rows/s in ${r.transactions_per_s} transactions/s (${r.rows_per_transaction} rows each, ${r.edits_per_row} edits a row); stored text holds every edit: ${r.converged ? 'yes' : 'no'}`
  return ''
}

const mb = (b) => typeof b === 'number' ? (b / 1e6).toFixed(2) : '?'
const ratio = (x, y) => typeof x === 'number' && typeof y === 'number' && y !== 0 ? Math.round(x / y * 1000) / 1000 : null

// The storage issue's numbers: fan-out with persistence on (collab) vs off
// (collab-nopersist), time to open a room from a snapshot + log, rows written.
export const storageSummary = (results) => {
  const persistence = []
  for (const off of results.filter(r => r.server === 'collab-nopersist' && family(r.scenario) === 'fanout')) {
    const on = results.find(r => r.server === 'collab' && r.scenario === off.scenario)
    if (!on) continue
    const throughput = ratio(on.delivered_per_s, off.delivered_per_s)
    persistence.push({
      scenario: off.scenario,
      on: { delivered_per_s: on.delivered_per_s, expected_per_s: on.expected_deliveries_per_s, p99_ms: on.p99_ms, server_cpu_us_per_delivery: on.server_cpu_us_per_delivery, other_load_pct: on.other_load_pct, error: on.error ?? null },
      off: { delivered_per_s: off.delivered_per_s, expected_per_s: off.expected_deliveries_per_s, p99_ms: off.p99_ms, server_cpu_us_per_delivery: off.server_cpu_us_per_delivery, other_load_pct: off.other_load_pct, error: off.error ?? null },
      throughput_on_off: throughput,
      p99_on_off: ratio(on.p99_ms, off.p99_ms),
      cpu_per_update_on_off: ratio(on.server_cpu_us_per_delivery, off.server_cpu_us_per_delivery),
      within_10pct: throughput === null ? null : throughput >= 0.9
    })
  }
  const open = results.filter(r => family(r.scenario) === 'storeopen').map(r => ({
    database: r.database, snapshot_bytes: r.snapshot_bytes, log_rows: r.log_rows, open_ms: r.open_ms ?? null, db_read_ms: r.db_read_ms ?? null, build_ms: r.build_ms ?? null, raw_apply_ms: r.raw_apply_ms ?? null, error: r.error ?? null
  }))
  const writes = results.filter(r => family(r.scenario) === 'writes').map(r => ({
    edits_per_s: r.edits_per_s, window_s: r.window_s, rows_per_s: r.rows_per_s ?? null, transactions_per_s: r.transactions_per_s ?? null, rows_per_transaction: r.rows_per_transaction ?? null, error: r.error ?? null
  }))
  return { persistence_on_off: persistence, open_from_snapshot_and_log: open, rows_written: writes }
}

// Saturation: the maximum (p99 ≤ limit), and the server CPU per delivered update at
// the common rate every server runs (less noisy than the maximum), with the
// generator's CPU and event-loop delay at the maximum step.
export const saturationSummary = (results) => {
  const runs = results.filter(r => family(r.scenario) === 'saturation')
  if (!runs.length) return null
  const base = runs.find(r => r.server === 'hocuspocus')
  return runs.map(r => ({
    server: r.server,
    max_edits_per_s: r.max_edits_per_s ?? null,
    max_rate_per_writer: r.max_rate_per_writer ?? null,
    stopped: r.stopped ?? null,
    common_rate_per_writer: r.common_rate_per_writer ?? null,
    common_rate_edits_per_s: r.common_rate_edits_per_s ?? null,
    common_rate_server_cpu_us_per_delivery: r.common_rate_server_cpu_us_per_delivery ?? null,
    common_rate_missing: r.common_rate_missing ?? null,
    common_rate_cpu_over_hocuspocus: base ? ratio(r.common_rate_server_cpu_us_per_delivery, base.common_rate_server_cpu_us_per_delivery) : null,
    gen_cpu_pct_at_max: r.gen_cpu_pct ?? null,
    gen_loop_delay_p99_ms_at_max: r.gen_loop_delay_p99_ms ?? null,
    generator_bound_at_max: r.max_generator_bound ?? null,
    steps: (r.steps || []).map(m => ({ rate_per_writer: m.rate_per_writer, attempt: m.attempt, edits_per_s: m.edits_per_s, p99_ms: m.p99_ms, server_cpu_us_per_delivery: m.server_cpu_us_per_delivery, gen_cpu_pct: m.gen_cpu_pct, gen_loop_delay_p99_ms: m.gen_loop_delay_p99_ms, passed: m.passed ?? null, generator_bound: m.generator_bound ?? null })),
    converged: r.converged ?? null,
    error: r.error ? String(r.error).split('\n')[0] : null
  }))
}

export const renderSaturation = (results) => {
  const rows = saturationSummary(results)
  if (!rows) return ''
  const table = (head, body) => [head, head.map(() => '---'), ...body].map(r => `| ${r.map(fmt).join(' | ')} |`).join('\n')
  const rate = rows.find(x => x.common_rate_per_writer !== null)
  const out = ['## Saturation\n']
  out.push(`Rising edits/s per writer until p99 > 100 ms or deliveries fall behind. **CPU µs/upd at the common rate**: server CPU per delivered update at ${rate ? rate.common_rate_per_writer : '?'} edits/s per writer, a step every server runs (less noisy than the maximum).\n`)
  out.push(table(['server', 'max edits/s (p99 ≤ 100 ms)', 'CPU µs/upd at the common rate', 'CPU / hocuspocus', 'gen CPU % at max', 'gen loop delay p99 ms at max'],
    rows.map(x => x.error && x.max_edits_per_s === null ? [x.server, `ERROR: ${x.error.slice(0, 80)}`, '–', '–', '–', '–'] : [x.server, `${x.max_edits_per_s}${x.generator_bound_at_max ? ' (generator-bound)' : ''}`, x.common_rate_server_cpu_us_per_delivery ?? `– (${x.common_rate_missing})`, x.common_rate_cpu_over_hocuspocus, x.gen_cpu_pct_at_max, x.gen_loop_delay_p99_ms_at_max])))
  const bound = rows.filter(x => x.generator_bound_at_max)
  if (bound.length) out.push(`\n**${bound.map(x => x.server).join(', ')}: the maximum was reached at a generator-bound step**, so the server's true maximum is higher than reported.`)
  out.push(`\n### Steps\n\n*generator-bound*: generator CPU > ${GEN_BOUND_CPU_PCT} % or its event-loop delay p99 > ${GEN_BOUND_LOOP_P99_MS} ms (the delay is a 5 ms timer's interval: about 6 ms when idle). A failed step is measured once more (attempt 2).\n`)
  out.push(table(['server', 'edits/s per writer', 'attempt', 'edits/s', 'p99 ms', 'srv CPU µs/upd', 'gen CPU %', 'gen loop delay p99 ms', 'passed', 'generator-bound'],
    rows.flatMap(x => x.steps.map(m => [x.server, m.rate_per_writer, m.attempt, m.edits_per_s, m.p99_ms, m.server_cpu_us_per_delivery, m.gen_cpu_pct, m.gen_loop_delay_p99_ms, m.passed, m.generator_bound ? 'GENERATOR-BOUND' : '']))))
  return out.join('\n')
}

// What an embedding host's on_change hook costs: collab vs collab-hooks, fan-out of
// the same size, run one after the other.
export const hooksSummary = (results) => results
  .filter(r => r.server === 'collab-hooks' && family(r.scenario) === 'fanout')
  .map(hooked => {
    const none = results.find(r => r.server === 'collab' && r.scenario === hooked.scenario)
    return none && {
      scenario: hooked.scenario,
      cpu_us_per_delivery_none: none.server_cpu_us_per_delivery,
      cpu_us_per_delivery_hook: hooked.server_cpu_us_per_delivery,
      cpu_hook_none: ratio(hooked.server_cpu_us_per_delivery, none.server_cpu_us_per_delivery),
      p99_ms_none: none.p99_ms,
      p99_ms_hook: hooked.p99_ms,
      error: hooked.error ?? none.error ?? null
    }
  })
  .filter(Boolean)

export const renderHooks = (results) => {
  const rows = hooksSummary(results)
  if (!rows.length) return ''
  const head = ['scenario', 'CPU µs/upd, no hook', 'CPU µs/upd, on_change', 'hook/none', 'p99 ms, no hook', 'p99 ms, on_change']
  return ['### Hooks on the hot path: collab vs collab-hooks (a no-op on_change), fan-out\n',
    ...[head, head.map(() => '---'), ...rows.map(h => [h.scenario, h.cpu_us_per_delivery_none, h.cpu_us_per_delivery_hook, h.cpu_hook_none, h.p99_ms_none, h.p99_ms_hook])]
      .map(r => `| ${r.map(fmt).join(' | ')} |`)].join('\n')
}

export const renderStorage = (results) => {
  const s = storageSummary(results)
  const out = []
  const table = (head, rows) => [head, head.map(() => '---'), ...rows].map(r => `| ${r.map(fmt).join(' | ')} |`).join('\n')
  if (s.persistence_on_off.length) {
    out.push('### Persistence on (collab) vs off (collab-nopersist), fan-out; goal: on ≥ 90 % of off\n')
    out.push(table(['scenario', 'upd/s on', 'upd/s off', 'on/off', 'p99 ms on', 'p99 ms off', 'CPU µs/upd on', 'CPU µs/upd off', 'CPU on/off', 'within 10 %'],
      s.persistence_on_off.map(p => [p.scenario, p.on.delivered_per_s, p.off.delivered_per_s, p.throughput_on_off, p.on.p99_ms, p.off.p99_ms, p.on.server_cpu_us_per_delivery, p.off.server_cpu_us_per_delivery, p.cpu_per_update_on_off, p.within_10pct])))
  }
  if (s.open_from_snapshot_and_log.length) {
    out.push('\n### Open a room from a snapshot + log (Persistence.load; median)\n')
    out.push(table(['database', 'snapshot MB', 'log rows', 'open ms', 'DB read ms', 'build ms', 'raw apply of snapshot ms'],
      s.open_from_snapshot_and_log.map(d => d.error ? [d.database, mb(d.snapshot_bytes), d.log_rows, `ERROR: ${String(d.error).slice(0, 80)}`, '–', '–', '–'] : [d.database, mb(d.snapshot_bytes), d.log_rows, d.open_ms, d.db_read_ms, d.build_ms, d.raw_apply_ms])))
  }
  if (s.rows_written.length) {
    out.push('\n### Rows written (collab serve, SQLite, flush every 100 ms, no compaction)\n')
    out.push(table(['edits/s', 'seconds', 'rows/s', 'transactions/s', 'rows/transaction'],
      s.rows_written.map(w => w.error ? [w.edits_per_s, w.window_s, `ERROR: ${String(w.error).slice(0, 80)}`, '–', '–'] : [w.edits_per_s, w.window_s, w.rows_per_s, w.transactions_per_s, w.rows_per_transaction])))
  }
  return out.length ? '## Storage\n\n' + out.join('\n') : ''
}

// --- the editing trace (trace-sqlite, trace-postgresql)
const codes = (c) => c && Object.keys(c).length ? Object.entries(c).map(([k, v]) => `${v}× ${k}`).join(', ') : 'none'

export const traceLine = (r) => {
  if (r.error && r.replay_s === undefined) return `ERROR: ${String(r.error).split('\n')[0].slice(0, 120)}`
  const k2 = r.kill_2s || {}
  const kl = r.kill_load || {}
  return `${r.edits_made ?? '?'}/${r.edits} edits in ${r.replay_s ?? '–'} s (${r.edits_per_s ?? '–'}/s), final text ${r.final_text_ok ? 'ok' : 'WRONG'}, ` +
    `srv CPU ${r.server_cpu_s} s, closes: ${codes(r.close_codes)}; rows ${r.rows_written} (log ${r.log_rows_after_replay} → ${r.log_rows_after_compaction ?? '–'} after compaction); ` +
    `kill 2 s after: ${k2.lost ?? '–'}/${k2.sent ?? '–'} lost; kill during load: ${kl.in_document ?? '–'}/${kl.sent ?? '–'} kept, ${kl.lost_sent_before_margin ?? '–'} lost of ${kl.sent_before_margin ?? '–'} sent > ${kl.margin_s ?? '–'} s before; ` +
    `open after kill ${kl.open_synced_ms ?? '–'} ms${r.error ? `; ERROR: ${String(r.error).split('\n')[0].slice(0, 80)}` : ''}`
}

export const traceSummary = (results) => {
  const runs = results.filter(r => family(r.scenario) === 'trace')
  return runs.length ? runs.map(r => ({
    database: r.database ?? r.scenario,
    edits: r.edits ?? null,
    replay_s: r.replay_s ?? null,
    edits_per_s: r.edits_per_s ?? null,
    server_cpu_s: r.server_cpu_s ?? null,
    close_codes: r.close_codes ?? null,
    final_text_ok: r.final_text_ok ?? null,
    rows_written: r.rows_written ?? null,
    log_rows_after_replay: r.log_rows_after_replay ?? null,
    log_rows_after_compaction: r.log_rows_after_compaction ?? null,
    clean_open_ms: r.clean_reopen ? r.clean_reopen.synced_ms : null,
    open_after_kill_ms: r.open_after_kill_ms ?? null,
    open_after_kill_server_ms: r.kill_load ? r.kill_load.server_load_ms ?? null : null,
    edits_lost_kill_2s: r.edits_lost_kill_2s ?? null,
    edits_lost_kill_load_old: r.edits_lost_kill_load_old ?? null,
    converged: r.converged ?? null,
    error: r.error ? String(r.error).split('\n')[0] : null
  })) : null
}

export const renderTrace = (results) => {
  const runs = results.filter(r => family(r.scenario) === 'trace')
  if (!runs.length) return ''
  const table = (head, rows) => [head, head.map(() => '---'), ...rows].map(r => `| ${r.map(fmt).join(' | ')} |`).join('\n')
  const db = (r) => r.database ?? r.scenario
  const out = ['## Editing trace (trace): a real document replayed through the stock Yjs client\n']
  const t = runs.find(r => r.trace)
  if (t) out.push(`\`${t.trace}\` (bench/traces/, CC BY 4.0): ${t.edits} one-character edits, each its own Yjs transaction on a \`WebsocketProvider\`, as fast as its socket drains; server rate limits ${t.limits}.\n`)
  out.push('### Replay\n')
  out.push(table(['database', 'edits', 'replay s', 'edits/s', 'srv CPU s', 'srv CPU µs/edit', 'socket closes (codes)', 'final text = trace', 'rows written', 'rows/edit', 'write tx', 'log rows after replay', 'log rows after compaction', 'snapshot KB', 'reopen after clean stop ms'],
    runs.map(r => r.replay_s === undefined && r.error ? [db(r), `ERROR: ${String(r.error).split('\n')[0].slice(0, 80)}`, '–', '–', '–', '–', '–', '–', '–', '–', '–', '–', '–', '–', '–'] : [
      db(r), `${r.edits_made}/${r.edits}`, r.replay_s, r.edits_per_s, r.server_cpu_s, r.server_cpu_us_per_edit, `${r.socket_closes} (${codes(r.close_codes)})`, r.final_text_ok, r.rows_written, r.rows_per_edit, r.write_transactions,
      r.log_rows_after_replay, r.log_rows_after_compaction, typeof r.snapshot_bytes === 'number' ? Math.round(r.snapshot_bytes / 1024) : null, r.clean_reopen ? r.clean_reopen.synced_ms : null])))
  out.push('\n### kill -9\n')
  const k = (r, key) => r[key] || {}
  out.push(table(['database', 'kill', 'edits sent', 'in s', 'relayed by server at kill', 'in reopened doc', 'lost', 'sent > margin before kill', 'of those lost', 'relayed by server > margin before', 'of those lost', 'reopened = trace prefix', 'restart ready ms', 'open after kill ms (client synced)', 'server room load ms'],
    runs.flatMap(r => [['kill_2s', `2 s after the last edit (${k(r, 'kill_2s').rate ?? '?'} edits/s)`], ['kill_load', 'during the full-speed replay']].map(([key, what]) => {
      const x = k(r, key)
      if (x.sent === undefined) return [db(r), what, x.open_error ? `ERROR: ${x.open_error}` : '–', x.send_s, '–', '–', '–', '–', '–', '–', '–', '–', x.restart_ready_ms, x.open_synced_ms, x.server_load_ms]
      // a load shorter than the margin leaves nothing to check against it: say so
      const short = x.sent_before_margin === 0 ? ' (load < margin)' : ''
      return [db(r), what, x.sent, x.send_s, x.accepted_at_kill, x.in_document, x.lost, `${x.sent_before_margin}${short}`, x.lost_sent_before_margin, x.accepted_before_margin, x.lost_accepted_before_margin, x.is_prefix && x.text_matches_trace, x.restart_ready_ms, x.open_synced_ms, x.server_load_ms ?? x.loaded_ms]
    })).filter(Boolean)))
  return out.join('\n')
}

// Scale-out: 1 vs 2 collab processes, the same load, per CPU mode.
export const renderCluster = (results) => {
  const c = clusterSummary(results)
  if (!c) return ''
  const out = ['## Scale-out: 1 vs 2 collab processes (cluster)\n']
  out.push('Same load on each: documents × clients, rising edits/s per writer. With 2 processes, *spread*: each document\'s clients alternate between them, its writer on process d mod 2 (updates cross through Redis), as behind a load balancer without affinity; *by document*: each document\'s clients on one process, as behind one hashing the URL (a room no other process has open publishes nothing). PostgreSQL (fsync off) for all.\n')
  if (c.capped) {
    out.push(`### Each process capped at ${c.capped.cpu_share} of a core (servers on one CPU, generator on the other)\n`)
    out.push('Every server process gets the same budget (a cgroup CPU quota), as replicas of a fixed size do: a second process is a second budget. PostgreSQL and Redis are not capped.\n')
    out.push(renderMode(c.capped, results))
  }
  if (c.shared) {
    out.push(`\n### Sharing the machine: nothing capped or pinned\n`)
    out.push('The servers, Redis, PostgreSQL and the generator share the cores. On a machine where one process and the generator already fill them, a second process has no CPU to add.\n')
    out.push(renderMode(c.shared, results))
  }
  return out.join('\n')
}

const renderMode = (m, results) => {
  const table = (head, rows) => [head, head.map(() => '---'), ...rows].map(r => `| ${r.map(fmt).join(' | ')} |`).join('\n')
  const out = []
  const label = (r) => r.processes > 1 ? `${r.processes}, ${r.placement === 'by-doc' ? 'by document' : 'spread'}` : String(r.processes)
  const split = (r, k) => r.processes > 1 && r.placement !== 'by-doc' ? `${fmt(results.find(x => x.scenario === r.scenario)[`${k}_p50_ms`])}/${fmt(r[`${k}_p99_ms`])}` : '–'
  out.push(table(['processes', 'max delivered upd/s (p99 ≤ 100 ms)', 'edits/s', 'edits/s per writer', 'p50 ms', 'p99 ms', 'same-process p50/p99 ms', 'cross-process p50/p99 ms', 'stopped', 'converged'],
    m.runs.map(r => r.error ? [label(r), `ERROR: ${String(r.error).slice(0, 80)}`, '–', '–', '–', '–', '–', '–', '–', r.converged] : [label(r), r.max_delivered_per_s, r.max_edits_per_s, r.max_rate_per_writer, r.p50_ms, r.p99_ms, split(r, 'same_process'), split(r, 'cross_process'), r.stopped, r.converged])))
  if (m.common_rate_per_writer !== null) {
    const { one_process: one, two_processes: two, two_processes_by_doc: twoByDoc } = m.at_common_rate
    const each = (x) => x.server_cpu_pct_each ? `${x.server_cpu_pct} (${x.server_cpu_pct_each.join(' + ')})` : x.server_cpu_pct
    out.push(`\n#### At a common rate: ${m.common_rate_per_writer} edits/s per writer (${m.common_rate_sustained_by_both ? 'the highest all sustained' : 'the lowest step: not sustained by all'})\n`)
    out.push(table(['processes', 'edits/s', 'delivered upd/s', 'p50 ms', 'p99 ms', 'same-process p50/p99 ms', 'cross-process p50/p99 ms', 'srv CPU % (sum)', ...(m.cpu === 'cap' ? ['throttled % of time'] : []), 'srv CPU µs/upd', 'all CPU µs/upd', 'gen CPU %', 'other load %'],
      [['1', one], ['2, spread', two], ['2, by document', twoByDoc]].filter(([, x]) => x).map(([n, x]) => [n, x.edits_per_s, x.delivered_per_s, x.p50_ms, x.p99_ms, n === '2, spread' ? `${fmt(x.same_process_p50_ms)}/${fmt(x.same_process_p99_ms)}` : '–', n === '2, spread' ? `${fmt(x.cross_process_p50_ms)}/${fmt(x.cross_process_p99_ms)}` : '–', each(x), ...(m.cpu === 'cap' ? [x.throttled_pct_each ? x.throttled_pct_each.join(' / ') : '–'] : []), x.server_cpu_us_per_delivery, x.all_cpu_us_per_delivery, x.gen_cpu_pct, `${x.other_load_pct}${x.other_load_pct > 20 ? ' ⚠' : ''}`])))
  }
  const goal = m.cpu === 'cap' ? ' (goal of issue #9: > 1)' : ''
  if (m.throughput_two_over_one !== null) out.push(`\n**2 processes (spread) / 1 process, max delivered upd/s: ${m.throughput_two_over_one}×**${goal}`)
  if (m.throughput_two_by_doc_over_one !== null) out.push(`\n**2 processes (by document) / 1 process, max delivered upd/s: ${m.throughput_two_by_doc_over_one}×**${goal}`)
  return out.join('\n')
}

export const renderTable = (results, serverNames) => {
  const head = ['scenario', 'server', 'delivered upd/s', 'p50 ms', 'p99 ms', 'converged', 'srv CPU %', 'srv CPU µs/upd', 'gen CPU %', 'srv RSS MB', 'details']
  const withRatio = serverNames.length > 1 && serverNames.includes('collab')
  if (withRatio) head.push('vs collab')
  const rows = [head, head.map(() => '---')]
  for (const r of results) {
    const row = [r.scenario, r.server, r.delivered_per_s, r.p50_ms, r.p99_ms, r.converged, r.server_cpu_pct, r.server_cpu_us_per_delivery, r.gen_cpu_pct, r.server_rss_mb, other(r)].map(fmt)
    if (withRatio) {
      const h = HEADLINE[family(r.scenario)]
      const base = results.find(x => x.server === 'collab' && x.scenario === r.scenario)
      let cell = '–'
      if (h && base && r.server !== 'collab' && typeof r[h[0]] === 'number' && typeof base[h[0]] === 'number' && base[h[0]] !== 0) {
        cell = `${(r[h[0]] / base[h[0]]).toFixed(2)}× ${h[1]}`
      } else if (r.server === 'collab') cell = '1×'
      row.push(cell)
    }
    rows.push(row)
  }
  return rows.map(r => `| ${r.join(' | ')} |`).join('\n')
}

export const LEGEND = `## Columns

- **delivered upd/s**: (edit, receiving client) deliveries per second during the window; an edit counts as delivered to a client when that client's state vector for the writer reaches the edit's clock.
- **p50/p99 ms**: delivery latency (send → state vector reached) of the edits sent inside the window, over all receiving clients.
- **converged**: every edit reached every client after the drain, every full Y.Doc client has the same text as the writers, and a client connecting afterwards gets that text from the server.
- **srv CPU %** / **µs/upd**: user+system CPU of the server process (and its children) from /proc/PID/stat over the window, as % of one core and per delivered update.
- **gen CPU %**: CPU of the load generator over the window (100 % = its whole core: the generator, not the server, may be the bottleneck).
- **⚠ other load**: CPU time used on the machine by other programs during the window (busy time from /proc/stat minus server, generator and softirq); above 20 % of a core the numbers are disturbed.
- **srv RSS MB**: VmRSS of the server process (and children) after the window.
- **collab-nopersist**: collab with \`COLLAB_FLUSH_INTERVAL=3600 COLLAB_SNAPSHOT_INTERVAL=3600 COLLAB_SNAPSHOT_THRESHOLD=100000000\` (nothing written during the window), run right after collab's run of the same size; the Storage section gives the on/off ratios (throughput: on/off ≥ 0.9 is the goal).
- **storeopen-DB**: \`bench/storage_bench.py\`: a snapshot (a Y.Text built from many random-position edits, written by \`SqlStore.append\` + \`compact\`) plus log rows (real incremental updates of the same document, appended 10 at a time) in a fresh migrated database; **open ms** = \`Persistence(store).load(doc_id)\`, **DB read** = \`store.load\`, **build** = \`state.build_doc\`, **raw apply** = one pycrdt \`apply_update\` of the snapshot alone; medians.
- **writes-R**: one client doing R edits/s against \`collab serve\` (SQLite, default 100 ms flush, compaction off); rows in \`updates\` afterwards per second, and distinct \`created_at\` values (one per flush transaction) per second; the rows, applied in order, must give a text holding every edit (group commit merges a flush's edits into one row).
- **cluster-Np**: N \`collab serve\` processes (N > 1: with \`COLLAB_REDIS_URL\`, a throwaway redis-server) on one throwaway PostgreSQL (fsync, synchronous_commit and full_page_writes off), each process held to a fixed share of one core by a cgroup CPU quota, servers on CPU 0 and generator on CPU 1 (\`cluster-shared-Np\`: nothing capped or pinned); documents × clients, the clients of a document alternating between the processes, its writer on process d mod N (\`-bydoc\`: all on one process, chosen by document); **throttled**: share of the window a capped process spent out of budget; edits/s per writer rising until p99 > 100 ms or deliveries fall behind. **delivered upd/s**, p50/p99 and CPU are those of the highest step that passed; **srv CPU** sums the processes; same-/cross-process latency splits the samples by whether the receiving client is on the writer's process. **all CPU µs/upd**: servers + Redis + PostgreSQL + generator CPU per delivered update (on 2 cores, 2 × 10⁶ / this bounds the throughput). The Scale-out section compares the variants.
- **trace-DB**: \`bench/traces/automerge-paper.json.gz\` replayed by one y-websocket \`WebsocketProvider\` (each edit its own transaction on Y.Text 'text', the provider's socket kept under 64 KiB queued) against \`collab serve\` on that database. **replay s**: first edit until a fresh client holds the whole text; **final text = trace**: that client's text and the server's export (\`GET /api/documents/{id}/update\`) both equal the trace's text after those edits (its \`endContent\` for the whole trace); **socket closes**: closes of the writer's socket during the replay, by close code (the provider reconnects; edits pause meanwhile); **rows written**: rows inserted into \`updates\` during the replay (a counting trigger on SQLite, the \`seq\` sequence on PostgreSQL); **write tx**: flushes (\`collab_flush_seconds_count\`); **log rows after compaction**: after a clean shutdown. **kill -9**: on a fresh document, either edits at a steady rate then \`kill -9\` 2 s after the last, or \`kill -9\` when half the edits are made at full speed; a new server on the same database; a fresh client opens the document (**open after kill**: provider created → synced; **server room load**: \`collab_room_load_seconds\`); each edit made is checked in the reopened document (an insert by the writer's clock, a delete by the delete set); **sent > margin before kill** (0.5 s, five flush windows) must all be there; **relayed by server**: edits a second client had received from the server by then (the server had accepted them).
- **vs collab**: the scenario's headline metric (fan-out: CPU µs/upd; manydocs: RSS per connection; saturation: max edits/s; cold load: cold open time) of that server divided by collab's.
`
