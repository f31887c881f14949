// Minimal Yjs wire-protocol clients for load generation.
//
// The clients speak the y-websocket protocol (y-protocols sync + awareness)
// themselves instead of using WebsocketProvider, so that hundreds of them fit
// in one generator process:
//
//  * Writer    – owns a Y.Doc, makes small inserts into the Y.Text 'bench',
//                records (clientID, clock after the edit) -> send time.
//  * FullPeer  – owns a Y.Doc and applies every update (used for the
//                convergence check: its text must equal the writers' text).
//  * CountPeer – no Y.Doc: only decodes the update metadata (which client
//                ranges it contains) to track its state vector. Cheap.
//
// Every peer tracks, per writer, how far its state vector has advanced and
// turns that into delivery-latency samples through the shared Tracker.
//
// Framing is pluggable (see servers.mjs): framing.wrap(docName, payload) turns
// a y-protocols message into what goes on the wire, framing.unwrap(buf)
// does the reverse (returns null for frames to ignore).

import WebSocket from 'ws'
import { RawWebSocket } from './rawws.mjs'
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import { performance } from 'node:perf_hooks'

export const MSG_SYNC = 0
export const MSG_AWARENESS = 1
export const MSG_AUTH = 2
export const MSG_QUERY_AWARENESS = 3
export const SYNC_STEP1 = 0
export const SYNC_STEP2 = 1
export const SYNC_UPDATE = 2

const EMPTY_UPDATE = Y.encodeStateAsUpdate(new Y.Doc())
const EMPTY_SV = Y.encodeStateVector(new Y.Doc())

export const encodeSync = (syncType, payload) => {
  const enc = encoding.createEncoder()
  encoding.writeVarUint(enc, MSG_SYNC)
  encoding.writeVarUint(enc, syncType)
  encoding.writeVarUint8Array(enc, payload)
  return encoding.toUint8Array(enc)
}

// Which WebSocket client the peers use: 'raw' (rawws.mjs, the default: cheaper per
// message, so that the generator is less often what limits a step) or 'ws'.
// permessage-deflate always takes 'ws'.
let transport = 'raw'
export const setTransport = (name) => {
  if (name !== 'raw' && name !== 'ws') throw new Error(`unknown WebSocket client ${name}`)
  transport = name
}

// ---------------------------------------------------------------------------
// Update-metadata cache: a server broadcasts the very same bytes to every
// peer, so parse each distinct (small) update once.
const metaCache = new Map()
const META_CACHE_MAX = 20000
export const updateMeta = (payload) => {
  if (payload.length > 512) return Y.parseUpdateMeta(payload)
  const key = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('latin1')
  let m = metaCache.get(key)
  if (m === undefined) {
    m = Y.parseUpdateMeta(payload)
    if (metaCache.size >= META_CACHE_MAX) metaCache.clear()
    metaCache.set(key, m)
  }
  return m
}

// ---------------------------------------------------------------------------
// Tracker: shared bookkeeping of edits (by writer) and deliveries (by peer).
export class Tracker {
  constructor () {
    this.writers = new Map() // clientID -> { clocks: number[], times: number[] }
    this.windowStart = Infinity
    this.windowEnd = Infinity
    this.samples = [] // latency (ms) of deliveries of edits sent inside the window
    this.deliveredInWindow = 0
    this.deliveredTotal = 0
    this.editsInWindow = 0
    this.bucketMs = 500
    this.bucketMax = [] // worst latency of edits sent in each 500 ms of the window
    // the cluster scenario: latency samples also split by whether the receiving
    // peer is on the writer's server process (`group`) or on another one
    this.splitGroups = false
    this.samplesSame = []
    this.samplesCross = []
  }

  registerWriter (clientID, group = 0) {
    const w = { clientID, group, clocks: [], times: [] }
    this.writers.set(clientID, w)
    return w
  }

  recordEdit (w, clock, t) {
    w.clocks.push(clock)
    w.times.push(t)
    if (t >= this.windowStart && t < this.windowEnd) this.editsInWindow++
  }

  // A peer's state vector for `clientID` advanced to `clock` at time `now`.
  // `cursor` is the peer's Map clientID -> index into the writer's edits.
  // `group` is the receiving peer's (its server process, in the cluster scenario).
  advance (cursors, clientID, clock, now, group = 0) {
    const w = this.writers.get(clientID)
    if (w === undefined) return
    let i = cursors.get(clientID) || 0
    const { clocks, times } = w
    const ws = this.windowStart
    const we = this.windowEnd
    const inWin = now >= ws && now < we
    const split = this.splitGroups ? (w.group === group ? this.samplesSame : this.samplesCross) : null
    while (i < clocks.length && clocks[i] <= clock) {
      const t = times[i]
      if (t >= ws && t < we) {
        const lat = now - t
        this.samples.push(lat)
        if (split !== null) split.push(lat)
        const b = Math.floor((t - ws) / this.bucketMs)
        if (!(this.bucketMax[b] >= lat)) this.bucketMax[b] = lat
      }
      if (inWin) this.deliveredInWindow++
      this.deliveredTotal++
      i++
    }
    cursors.set(clientID, i)
  }
}

// ---------------------------------------------------------------------------
export class Peer {
  /**
   * @param {object} o
   * @param {string} o.url websocket url
   * @param {string} o.docName
   * @param {object} o.framing
   * @param {Tracker} [o.tracker]
   * @param {'count'|'full'|'writer'} o.kind
   * @param {boolean} [o.deflate]
   * @param {number} [o.group] which server process it talks to (cluster scenario)
   * @param {boolean} [o.editAtStart] writers insert at position 0 instead of at a
   *   random position (no position search in a long text: cheaper for the generator)
   * @param {boolean} [o.isolated] writers only: do not apply the others' updates, only
   *   track their state vector as counting receivers do; the writer's Y.Doc holds its
   *   own edits alone (cheaper for the generator; convergence is checked on 'full' peers)
   * @param {boolean} [o.deferred] 'full' peers only: keep what arrives, tracked as
   *   counting receivers do, and apply it to the Y.Doc at settle() (before the
   *   convergence check), not while the load runs (cheaper for the generator)
   */
  constructor ({ url, docName, framing, tracker = null, kind = 'count', deflate = false, group = 0, editAtStart = false, isolated = false, deferred = false }) {
    this.group = group
    this.isolated = isolated && kind === 'writer'
    this.deferred = deferred && kind === 'full'
    this.backlog = [] // deferred peers: the updates received, to apply at settle()
    this.editAtStart = editAtStart
    this.url = url
    this.docName = docName
    this.framing = framing
    this.tracker = tracker
    this.kind = kind
    this.deflate = deflate
    this.sv = new Map() // clientID -> clock (count peers only)
    this.cursors = new Map()
    this.pending = [] // count peers: updates whose ranges do not connect yet
    this.synced = false
    this.closed = false
    this.errors = []
    this.bytesIn = 0
    this.msgsIn = 0
    this.doc = null
    this.text = null
    this.writerState = null
    this.onSynced = null
    this.ownClientID = -1
    this.waiters = [] // [clientID, clock, resolve]
    if (kind === 'full' || kind === 'writer') {
      this.doc = new Y.Doc()
      this.text = this.doc.getText('bench')
      this.ownClientID = this.doc.clientID
    }
    if (kind === 'writer') {
      this.writerState = tracker.registerWriter(this.doc.clientID, group)
      this.doc.on('update', (update, origin) => {
        if (origin !== 'remote' && this.ws && this.ws.readyState === WebSocket.OPEN) {
          this.send(encodeSync(SYNC_UPDATE, update))
        }
      })
    }
  }

  connect (timeoutMs = 30000) {
    return new Promise((resolve, reject) => {
      let done = false
      const finish = (err) => {
        if (done) return
        done = true
        clearTimeout(timer)
        if (err) reject(err)
        else resolve(this)
      }
      const timer = setTimeout(() => finish(new Error(`sync timeout after ${timeoutMs} ms (${this.url})`)), timeoutMs)
      this.onSynced = () => finish()
      const ws = transport === 'raw' && !this.deflate
        ? new RawWebSocket(this.url, { handshakeTimeout: timeoutMs })
        : new WebSocket(this.url, { perMessageDeflate: this.deflate, handshakeTimeout: timeoutMs })
      this.ws = ws
      ws.on('open', () => {
        for (const m of this.framing.onOpen(this.docName)) ws.send(m)
        const sv = this.doc ? Y.encodeStateVector(this.doc) : EMPTY_SV
        this.send(encodeSync(SYNC_STEP1, sv))
      })
      ws.on('message', (data) => this.onMessage(data))
      ws.on('error', (e) => { this.errors.push(String(e.message || e)); finish(e) })
      ws.on('close', (code, reason) => {
        this.closed = true
        if (!this.closingOnPurpose) this.errors.push(`closed by server: code ${code} ${reason}`)
        finish(new Error(`closed before sync: code ${code} ${reason}`))
      })
    })
  }

  send (msg) {
    this.ws.send(this.framing.wrap(this.docName, msg))
  }

  close () {
    this.closingOnPurpose = true
    if (this.ws) {
      try { this.ws.terminate() } catch (e) {}
    }
  }

  onMessage (data) {
    const now = performance.now()
    this.msgsIn++
    this.bytesIn += data.length
    const msg = this.framing.unwrap(data)
    if (msg === null) return
    const dec = decoding.createDecoder(msg)
    const type = decoding.readVarUint(dec)
    if (type === MSG_SYNC) {
      const syncType = decoding.readVarUint(dec)
      const payload = decoding.readVarUint8Array(dec)
      if (syncType === SYNC_STEP1) {
        const reply = this.doc ? Y.encodeStateAsUpdate(this.doc, payload) : EMPTY_UPDATE
        this.send(encodeSync(SYNC_STEP2, reply))
      } else if (syncType === SYNC_STEP2 || syncType === SYNC_UPDATE) {
        this.applyRemote(payload, now)
        if (syncType === SYNC_STEP2 && !this.synced) {
          this.synced = true
          this.syncedAt = now
          if (this.onSynced) this.onSynced()
        }
      }
    } else if (type === MSG_AUTH) {
      const t = decoding.readVarUint(dec)
      this.errors.push(`auth message ${t}: ${t === 0 ? decoding.readVarString(dec) : ''}`)
    }
    // awareness / query-awareness: ignored
  }

  applyRemote (payload, now) {
    this.applyRemote1(payload, now)
    if (this.waiters.length) {
      this.waiters = this.waiters.filter(([c, clock, resolve]) => {
        if (this.clockOf(c) >= clock) { resolve(now); return false }
        return true
      })
    }
  }

  // resolves (with the performance.now() time) once this peer has clientID's edits up to clock
  waitForClock (clientID, clock) {
    if (this.clockOf(clientID) >= clock) return Promise.resolve(performance.now())
    return new Promise(resolve => this.waiters.push([clientID, clock, resolve]))
  }

  applyRemote1 (payload, now) {
    const meta = updateMeta(payload)
    if (this.deferred) this.backlog.push(Buffer.from(payload))
    if (this.doc && !this.isolated && !this.deferred) {
      Y.applyUpdate(this.doc, payload, 'remote')
      if (this.tracker) {
        for (const client of meta.to.keys()) {
          if (client === this.ownClientID) continue
          this.tracker.advance(this.cursors, client, Y.getState(this.doc.store, client), now, this.group)
        }
      }
      return
    }
    if (this.applyMeta(meta, now)) {
      // a gap may have been filled: retry pending ones
      let progressed = true
      while (progressed && this.pending.length > 0) {
        progressed = false
        this.pending = this.pending.filter(m => {
          if (this.applyMeta(m, now)) { progressed = true; return false }
          return true
        })
      }
    }
  }

  // count peers: advance the state vector if every range of the update connects
  applyMeta (meta, now) {
    for (const [client, from] of meta.from) {
      if (from > (this.sv.get(client) || 0)) {
        this.pending.push(meta)
        return false
      }
    }
    for (const [client, to] of meta.to) {
      if (to > (this.sv.get(client) || 0)) {
        this.sv.set(client, to)
        if (this.tracker) this.tracker.advance(this.cursors, client, to, now, this.group)
      }
    }
    return true
  }

  clockOf (clientID) {
    if (this.deferred) return this.sv.get(clientID) || 0
    if (this.doc && (!this.isolated || clientID === this.ownClientID)) return Y.getState(this.doc.store, clientID)
    return this.sv.get(clientID) || 0
  }

  // deferred peers: apply what was kept, in the order it came
  settle () {
    if (!this.deferred) return
    for (let i = 0; i < this.backlog.length; i += 5000) {
      Y.applyUpdate(this.doc, Y.mergeUpdates(this.backlog.slice(i, i + 5000)), 'remote')
    }
    this.backlog = []
  }

  // writers: one small insert at a random position (or at the start)
  edit (str) {
    const pos = this.editAtStart ? 0 : Math.floor(Math.random() * (this.text.length + 1))
    const t = performance.now()
    this.text.insert(pos, str)
    this.tracker.recordEdit(this.writerState, Y.getState(this.doc.store, this.doc.clientID), t)
  }
}

// Connect peers in batches (so the server is not SYN-flooded); returns after
// all are synced. Throws on the first failure. The first peer of each document
// connects before the others (pycrdt-websocket 0.16 leaves the second of two
// peers that join a new room at the same time unsynced).
export const connectAll = async (peers, batch = 50, timeoutMs = 30000) => {
  const seen = new Set()
  const first = []
  const rest = []
  for (const p of peers) {
    if (seen.has(p.url)) rest.push(p)
    else { seen.add(p.url); first.push(p) }
  }
  for (const group of [first, rest]) {
    for (let i = 0; i < group.length; i += batch) {
      await Promise.all(group.slice(i, i + batch).map(p => p.connect(timeoutMs)))
    }
  }
}
