// A minimal WebSocket client (RFC 6455) over a raw TCP socket, for the load
// generator's peers: it reads frames straight out of each chunk the socket
// gives, without `ws`'s stream machinery per frame, so that one generator
// process can receive several hundred thousand messages a second. The servers
// under test see the same traffic either way: one binary message per frame,
// masked client frames, pings answered, a close answered.
//
// It offers what bench/lib/client.mjs uses of `ws`'s WebSocket: on('open' |
// 'message' | 'error' | 'close'), send(bytes), readyState, terminate(). A
// message's bytes are a view of the socket's chunk, valid during the 'message'
// callback (as `ws`'s often are). No extensions (permessage-deflate runs on `ws`).

import net from 'node:net'
import crypto from 'node:crypto'

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'
const CONNECTING = 0
const OPEN = 1
const CLOSED = 3

export class RawWebSocket {
  constructor (url, { handshakeTimeout = 30000 } = {}) {
    const u = new URL(url)
    if (u.protocol !== 'ws:') throw new Error(`RawWebSocket: ws:// only, not ${u.protocol}`)
    this.readyState = CONNECTING
    this.handlers = { open: null, message: null, error: null, close: null }
    this.answer = null // the handshake answer's bytes, until it is whole
    this.rest = null // chunks of an incomplete frame
    this.restLength = 0
    this.need = 0 // bytes the incomplete frame needs, from its first
    this.fragments = null // payloads of a fragmented message, until its last frame
    this.closeSent = false
    this.closeEmitted = false
    this.key = crypto.randomBytes(16).toString('base64')
    const port = Number(u.port || 80)
    const socket = net.connect({ host: u.hostname, port, noDelay: true })
    this.socket = socket
    this.timer = setTimeout(() => this.fail(new Error(`handshake timeout after ${handshakeTimeout} ms`)), handshakeTimeout)
    socket.on('connect', () => {
      socket.write(
        `GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\n` +
        `Connection: Upgrade\r\nSec-WebSocket-Key: ${this.key}\r\nSec-WebSocket-Version: 13\r\n\r\n`
      )
    })
    socket.on('data', (chunk) => {
      if (this.readyState === CONNECTING) this.handshake(chunk)
      else this.frames(chunk)
    })
    socket.on('error', (e) => this.fail(e))
    socket.on('close', () => this.emitClose(1006, ''))
  }

  on (event, fn) {
    if (!(event in this.handlers)) throw new Error(`RawWebSocket: no event ${event}`)
    this.handlers[event] = fn
    return this
  }

  handshake (chunk) {
    const data = this.answer === null ? chunk : Buffer.concat([this.answer, chunk])
    const end = data.indexOf('\r\n\r\n')
    if (end < 0) {
      if (data.length > 65536) this.fail(new Error('handshake answer too long'))
      else this.answer = data
      return
    }
    this.answer = null
    const head = data.subarray(0, end).toString('latin1')
    const [status, ...lines] = head.split('\r\n')
    if (!/^HTTP\/1\.1 101 /.test(status)) {
      this.fail(new Error(`unexpected server response: ${status.split(' ')[1] ?? status}`))
      return
    }
    const accept = crypto.createHash('sha1').update(this.key + GUID).digest('base64')
    const got = lines.find(l => /^sec-websocket-accept:/i.test(l))
    if (!got || got.slice(got.indexOf(':') + 1).trim() !== accept) {
      this.fail(new Error('invalid Sec-WebSocket-Accept'))
      return
    }
    clearTimeout(this.timer)
    this.readyState = OPEN
    if (this.handlers.open) this.handlers.open()
    if (end + 4 < data.length && this.readyState === OPEN) this.frames(data.subarray(end + 4))
  }

  frames (chunk) {
    let data = chunk
    if (this.rest !== null) { // an incomplete frame: wait for all of it before copying
      this.rest.push(chunk)
      this.restLength += chunk.length
      if (this.restLength < this.need) return
      data = Buffer.concat(this.rest, this.restLength)
      this.rest = null
    }
    let off = 0
    const n = data.length
    let need = 0
    while (off < n) {
      need = off + 2
      if (need > n) break
      const b0 = data[off]
      const b1 = data[off + 1]
      let len = b1 & 0x7f
      let at = off + 2
      if (len === 126) {
        need = at + 2
        if (need > n) break
        len = data.readUInt16BE(at)
        at += 2
      } else if (len === 127) {
        need = at + 8
        if (need > n) break
        len = Number(data.readBigUInt64BE(at))
        at += 8
      }
      const masked = (b1 & 0x80) !== 0
      need = at + (masked ? 4 : 0) + len
      if (need > n) break
      let payload
      if (masked) { // servers do not mask, but a frame that is masked is still read right
        const mask = data.subarray(at, at + 4)
        payload = Buffer.from(data.subarray(at + 4, at + 4 + len))
        for (let i = 0; i < len; i++) payload[i] ^= mask[i & 3]
        at += 4
      } else {
        payload = data.subarray(at, at + len)
      }
      off = at + len
      this.frame(b0 & 0x80, b0 & 0x0f, payload)
      if (this.readyState === CLOSED) return
    }
    if (off < n) {
      this.rest = [data.subarray(off)] // each 'data' chunk is a buffer of its own
      this.restLength = n - off
      this.need = need - off
    }
  }

  frame (fin, opcode, payload) {
    if (opcode === 0x2 || opcode === 0x1) {
      if (fin) {
        if (this.handlers.message) this.handlers.message(payload)
      } else {
        this.fragments = [Buffer.from(payload)]
      }
    } else if (opcode === 0x0) {
      if (this.fragments === null) return this.fail(new Error('continuation frame without a message'))
      this.fragments.push(Buffer.from(payload))
      if (fin) {
        const whole = Buffer.concat(this.fragments)
        this.fragments = null
        if (this.handlers.message) this.handlers.message(whole)
      }
    } else if (opcode === 0x9) {
      this.write(0xa, payload)
    } else if (opcode === 0x8) {
      const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1005
      const reason = payload.length > 2 ? payload.subarray(2).toString('utf8') : ''
      if (!this.closeSent) this.write(0x8, payload.subarray(0, 2))
      this.closeSent = true
      this.socket.end()
      this.emitClose(code, reason)
    }
    // pong (0xA): nothing to do
  }

  send (bytes) {
    if (this.readyState !== OPEN) return
    this.write(0x2, bytes)
  }

  write (opcode, bytes) {
    const len = bytes.length
    const head = len < 126 ? 6 : len < 65536 ? 8 : 14
    const frame = Buffer.allocUnsafe(head + len)
    frame[0] = 0x80 | opcode
    if (len < 126) {
      frame[1] = 0x80 | len
    } else if (len < 65536) {
      frame[1] = 0x80 | 126
      frame.writeUInt16BE(len, 2)
    } else {
      frame[1] = 0x80 | 127
      frame.writeBigUInt64BE(BigInt(len), 2)
    }
    const m = head - 4
    const key = (Math.random() * 0x100000000) >>> 0
    frame.writeUInt32BE(key, m)
    for (let i = 0; i < len; i++) frame[head + i] = bytes[i] ^ frame[m + (i & 3)]
    this.socket.write(frame)
  }

  terminate () {
    clearTimeout(this.timer)
    this.socket.destroy()
    this.emitClose(1006, '')
  }

  fail (e) {
    clearTimeout(this.timer)
    if (this.readyState === CLOSED) return
    if (this.handlers.error) this.handlers.error(e)
    this.socket.destroy()
    this.emitClose(1006, '')
  }

  emitClose (code, reason) {
    clearTimeout(this.timer)
    this.readyState = CLOSED
    if (this.closeEmitted) return
    this.closeEmitted = true
    if (this.handlers.close) this.handlers.close(code, reason)
  }
}
