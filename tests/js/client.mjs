// A stock Yjs client, driven by the Python tests through JSON lines on stdin/stdout:
// y-websocket's WebsocketProvider with `ws` as its WebSocket, a Y.Doc and awareness.
//
//   node client.mjs <serverUrl e.g. ws://127.0.0.1:PORT/ws> <docId> [token]
//
// Commands (one JSON object per line on stdin):
//   {"cmd": "insert", "text": "...", "index"?: n}   insert into Y.Text "text"
//   {"cmd": "type", "text": "..."}                   append it one character per update,
//                                                    as fast as it can; prints "typed"
//   {"cmd": "presence", "state": {...} | null}      set the local awareness state
//   {"cmd": "state"}                                 print text + awareness + status
//   {"cmd": "dump"}                                  print the whole document as a v1
//                                                    update (base64)
//   {"cmd": "server", "url": "ws://HOST:PORT/ws"}    reconnect there from now on (a load
//                                                    balancer sending it elsewhere)
//   {"cmd": "exit"}                                   destroy the provider and exit
// Events printed (one JSON object per line): status, synced, close, state, update, dump,
// typed.
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'
import readline from 'node:readline'

const [serverUrl, docId, token] = process.argv.slice(2)
const doc = new Y.Doc()
const text = doc.getText('text')
const provider = new WebsocketProvider(serverUrl, docId, doc, {
  WebSocketPolyfill: WebSocket,
  params: token ? { token } : {},
  disableBc: true,
  maxBackoffTime: 500
})
const emit = (event) => process.stdout.write(JSON.stringify(event) + '\n')
const snapshot = () => ({
  event: 'state',
  text: text.toString(),
  clientID: doc.clientID,
  status: provider.wsconnected ? 'connected' : 'disconnected',
  synced: provider.synced,
  awareness: Object.fromEntries(
    [...provider.awareness.getStates()].filter(([id]) => id !== doc.clientID)
  ),
  connections: provider.connections ?? null
})

let connections = 0
provider.on('status', ({ status }) => {
  if (status === 'connected') connections += 1
  provider.connections = connections
  emit({ event: 'status', status })
})
provider.on('sync', (synced) => emit({ event: 'synced', synced }))
provider.on('connection-close', (ev) => emit({ event: 'close', code: ev?.code ?? null }))
text.observe(() => emit({ event: 'update', length: text.length }))

const rl = readline.createInterface({ input: process.stdin })
rl.on('line', (line) => {
  const command = JSON.parse(line)
  switch (command.cmd) {
    case 'insert':
      text.insert(command.index ?? text.length, command.text)
      break
    case 'type':
      for (const char of command.text) text.insert(text.length, char)
      emit({ event: 'typed' })
      break
    case 'presence':
      provider.awareness.setLocalState(command.state)
      break
    case 'state':
      emit(snapshot())
      break
    case 'dump':
      emit({ event: 'dump', update: Buffer.from(Y.encodeStateAsUpdate(doc)).toString('base64') })
      break
    case 'server':
      provider.serverUrl = command.url
      break
    case 'exit':
      provider.destroy()
      setTimeout(() => process.exit(0), 50)
      break
    default:
      emit({ event: 'error', message: `unknown command ${command.cmd}` })
  }
})
rl.on('close', () => { provider.destroy(); process.exit(0) })
