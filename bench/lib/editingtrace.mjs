// A recorded editing trace (bench/traces/): its transactions, and the text after
// any prefix of them, replayed on a plain string.
//
// Format (Joseph Gentle's editing-traces): {startContent, endContent, txns:
// [{patches: [[position, deleted, inserted], ...]}]}; applying every patch in
// order to startContent gives endContent. Positions count Unicode code points,
// Y.Text counts UTF-16 units: the two agree only without astral characters,
// which is checked on load.

import fs from 'node:fs'
import path from 'node:path'
import zlib from 'node:zlib'
import { BENCH_DIR } from './servers.mjs'

export const TRACE_FILE = path.join(BENCH_DIR, 'traces', 'automerge-paper.json.gz')

const ASTRAL = /[\uD800-\uDFFF]/

// { name, startContent, endContent, txns: [[[pos, del, ins], ...], ...] };
// throws if replaying it does not give its own endContent
export const loadTrace = (file = TRACE_FILE) => {
  const raw = JSON.parse(zlib.gunzipSync(fs.readFileSync(file)).toString('utf8'))
  const trace = {
    name: path.basename(file).replace(/\.json(\.gz)?$/, ''),
    startContent: raw.startContent,
    endContent: raw.endContent,
    txns: raw.txns.map(t => t.patches)
  }
  if (ASTRAL.test(trace.startContent) || ASTRAL.test(trace.endContent) || trace.txns.some(ps => ps.some(p => ASTRAL.test(p[2])))) {
    throw new Error(`${file}: astral characters (code point and UTF-16 positions differ); not supported`)
  }
  const end = new TextCursor(trace).at(trace.txns.length)
  if (end !== trace.endContent) throw new Error(`${file}: replaying the trace does not give its endContent`)
  return trace
}

// The text after the first k transactions; moving forward is incremental.
export class TextCursor {
  constructor (trace) {
    this.trace = trace
    this.k = 0
    this.text = trace.startContent
  }

  at (k) {
    if (k < this.k) {
      this.k = 0
      this.text = this.trace.startContent
    }
    const { txns } = this.trace
    let s = this.text
    for (let i = this.k; i < k; i++) {
      for (const [pos, del, ins] of txns[i]) s = s.slice(0, pos) + ins + s.slice(pos + del)
    }
    this.text = s
    this.k = k
    return s
  }
}
