// The client side of the `trace` scenario, all stock Yjs: a Replayer applies a
// trace's transactions to a Y.Doc synced by y-websocket's WebsocketProvider (over
// `ws`), one Yjs transaction per trace transaction, and keeps a ledger of each
// edit (when it went to the socket, the clock its insert ends at, the items it
// deleted), so that a document reopened later can be checked edit by edit.
//
// An AcceptWatcher is a second, plain client (client.mjs's counting peer) on the
// same document: the server sends it an edit only once it has applied it, so its
// view of the writer's clock over time says which edits the server had accepted
// when (a lower bound: a delete is known accepted once a later insert is).

import WebSocket from 'ws'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { performance } from 'node:perf_hooks'
import { Peer } from './client.mjs'
import { yWebsocketFraming } from './servers.mjs'

export const TEXT_NAME = 'text'
const HIGH_WATER = 64 * 1024 // bytes queued on the writer's socket before it waits
const YIELD_EVERY = 256 // edits between turns of the event loop (incoming frames, timers)

const sleep = (ms) => new Promise(resolve => setTimeout(resolve, ms))
const turn = () => new Promise(resolve => setImmediate(resolve))

// a stock provider; no BroadcastChannel, which would sync two providers in this
// one process past the server
const provide = (serverUrl, docId, doc) => new WebsocketProvider(serverUrl, docId, doc, { WebSocketPolyfill: WebSocket, disableBc: true })

const closeOf = (ev, at) => ({ code: ev ? ev.code : null, reason: ev ? String(ev.reason || '') : 'closed by the client (watchdog or disconnect)', ...at })

export class Replayer {
  constructor ({ serverUrl, docId, trace, edits }) {
    this.trace = trace
    this.edits = edits
    this.doc = new Y.Doc()
    this.text = this.doc.getText(TEXT_NAME)
    this.clientID = this.doc.clientID
    this.made = 0
    this.sentAt = new Float64Array(edits).fill(NaN) // performance.now() the edit was handed to the socket
    this.insEnd = new Int32Array(edits).fill(-1) // the writer's clock after the edit's inserts (-1: none)
    this.delOff = new Int32Array(edits + 1) // edit i deleted delClock/delLen[delOff[i] .. delOff[i + 1])
    this.delClock = []
    this.delLen = []
    this.unsentFrom = -1 // first edit made while the socket was down
    this.closes = []
    this.syncs = 0
    this.doc.on('afterTransaction', (tr) => {
      if (!tr.local) return
      for (const items of tr.deleteSet.clients.values()) {
        for (const it of items) { this.delClock.push(it.clock); this.delLen.push(it.len) }
      }
    })
    this.provider = provide(serverUrl, docId, this.doc)
    this.provider.on('connection-close', (ev) => this.closes.push(closeOf(ev, { at_edit: this.made, t: performance.now() })))
    this.provider.on('sync', (synced) => {
      if (!synced) return
      this.syncs++
      // edits made offline go out in the answer to the server's sync step 1, now
      if (this.unsentFrom >= 0) {
        const now = performance.now()
        for (let i = this.unsentFrom; i < this.made; i++) if (Number.isNaN(this.sentAt[i])) this.sentAt[i] = now
        this.unsentFrom = -1
      }
    })
  }

  connected () { return this.provider.wsconnected }

  async connect (timeoutMs) {
    const t0 = performance.now()
    while (!this.provider.synced) {
      if (performance.now() - t0 > timeoutMs) throw new Error(`writer not synced after ${timeoutMs} ms`)
      await sleep(5)
    }
  }

  // bytes the writer's socket has not yet handed to the kernel
  backlog () {
    const ws = this.provider.ws
    return ws ? ws.bufferedAmount : 0
  }

  apply (i) {
    const text = this.text
    let inserts = false
    this.doc.transact(() => {
      for (const [pos, del, ins] of this.trace.txns[i]) {
        if (del) text.delete(pos, del)
        if (ins) { text.insert(pos, ins); inserts = true }
      }
    })
    this.delOff[i + 1] = this.delClock.length
    if (inserts) this.insEnd[i] = Y.getState(this.doc.store, this.clientID)
    if (this.provider.wsconnected) this.sentAt[i] = performance.now()
    else if (this.unsentFrom < 0) this.unsentFrom = i
    this.made = i + 1
  }

  // Apply the next edits up to `to`: with `rate` null as fast as the socket
  // drains (waiting while more than HIGH_WATER bytes are queued), otherwise at
  // `rate` edits/s. While the socket is down (the server closed it; the provider
  // reconnects) nothing is applied. Stops at `deadline` (performance.now()).
  async run ({ to, rate = null, deadline }) {
    const from = this.made
    const t0 = performance.now()
    let waitedS = 0
    let offlineS = 0
    let timedOut = false
    let i = from
    while (i < to) {
      if (performance.now() > deadline) { timedOut = true; break }
      if (!this.provider.wsconnected) {
        const tw = performance.now()
        while (!this.provider.wsconnected && performance.now() < deadline) await sleep(5)
        offlineS += (performance.now() - tw) / 1000
        continue
      }
      if (rate === null) {
        this.apply(i++)
        if (i % YIELD_EVERY === 0) {
          if (this.backlog() > HIGH_WATER) {
            const tw = performance.now()
            while (this.backlog() > HIGH_WATER / 4 && this.provider.wsconnected && performance.now() < deadline) await sleep(1)
            waitedS += (performance.now() - tw) / 1000
          } else await turn()
        }
      } else {
        const now = performance.now()
        while (i < to && t0 + (i - from) * 1000 / rate <= now) this.apply(i++)
        await sleep(1)
      }
    }
    return { made: this.made - from, seconds: (performance.now() - t0) / 1000, waited_for_socket_s: waitedS, offline_s: offlineS, timed_out: timedOut }
  }

  // Which of the edits made `doc` holds: an insert when the doc's clock for the
  // writer covers it, a delete when every item it deleted is deleted there.
  presentIn (doc) {
    const clock = Y.getState(doc.store, this.clientID)
    const ds = Y.createDeleteSetFromStructStore(doc.store)
    const present = new Uint8Array(this.made)
    for (let i = 0; i < this.made; i++) {
      let ok = this.insEnd[i] < 0 || this.insEnd[i] <= clock
      for (let d = this.delOff[i]; ok && d < this.delOff[i + 1]; d++) {
        for (let c = this.delClock[d]; ok && c < this.delClock[d] + this.delLen[d]; c++) ok = Y.isDeleted(ds, Y.createID(this.clientID, c))
      }
      present[i] = ok ? 1 : 0
    }
    return present
  }

  // edits [0, n) known accepted by the server once its view of the writer's clock reached `clock`
  acceptedCount (clock) {
    let n = 0
    for (let i = 0; i < this.made; i++) if (this.insEnd[i] >= 0 && this.insEnd[i] <= clock) n = i + 1
    return n
  }

  // edits whose sentAt is before t
  sentBefore (t) {
    let n = 0
    for (let i = 0; i < this.made; i++) if (this.sentAt[i] < t) n++
    return n
  }

  destroy () { this.provider.destroy() }
}

// The second client: the writer's clock as the server relays it, over time.
export class AcceptWatcher extends Peer {
  constructor (url, docId) {
    super({ url, docName: docId, framing: yWebsocketFraming, kind: 'count' })
    this.watched = null
    this.samples = [] // [t, clock, t, clock, ...]
    this.last = 0
  }

  applyRemote1 (payload, now) {
    super.applyRemote1(payload, now)
    if (this.watched === null) return
    const c = this.clockOf(this.watched)
    if (c > this.last) { this.last = c; this.samples.push(now, c) }
  }

  // the writer's clock the server had relayed by time t
  clockAt (t) {
    let c = 0
    for (let i = 0; i < this.samples.length && this.samples[i] <= t; i += 2) c = this.samples[i + 1]
    return c
  }
}

// A fresh stock client opens the document: ms from creating the provider until
// synced (sync step 2 received); then until its text equals `expected` (if given)
// or `settleMs` more, for anything the server sends after step 2. Returns the
// document, its text and the timings; the provider is destroyed.
export const openDocument = async (serverUrl, docId, { timeoutMs = 30000, expected = null, settleMs = 500 } = {}) => {
  const doc = new Y.Doc()
  const text = doc.getText(TEXT_NAME)
  const closes = []
  const t0 = performance.now()
  let syncedAt = null
  const provider = provide(serverUrl, docId, doc)
  provider.on('sync', (s) => { if (s && syncedAt === null) syncedAt = performance.now() })
  provider.on('connection-close', (ev) => closes.push(closeOf(ev, {})))
  const res = { doc, synced_ms: null, complete_ms: null, text: null, text_ok: null, closes }
  try {
    while (syncedAt === null && performance.now() - t0 < timeoutMs) await sleep(1)
    if (syncedAt === null) { res.error = `not synced after ${timeoutMs} ms`; return res }
    res.synced_ms = syncedAt - t0
    if (expected !== null) {
      const same = () => text.length === expected.length && text.toString() === expected
      while (!same() && performance.now() - t0 < timeoutMs) await sleep(10)
      res.text_ok = same()
      if (res.text_ok) res.complete_ms = performance.now() - t0
    } else await sleep(settleMs)
    return res
  } finally {
    provider.destroy()
    res.text = text.toString()
  }
}
