// Tabs of one browser: N stock WebsocketProviders of one document in one process, with
// their BroadcastChannel on (y-websocket's default), so that each sends the server the
// awareness of the others as well as its own. Driven by the Python tests through JSON
// lines on stdin/stdout.
//
//   node tabs.mjs <serverUrl e.g. ws://127.0.0.1:PORT/ws> <docId>
//
// Commands (one JSON object per line on stdin):
//   {"cmd": "open"}                                        open a tab, the next index,
//                                                          with the local state
//                                                          {"user": {"name": "tab <i>"}}
//   {"cmd": "presence", "tab": i, "state": {...} | null}   set tab i's local state
//   {"cmd": "close", "tab": i}                             destroy tab i's provider
//   {"cmd": "state"}                                       print every tab's state
//   {"cmd": "exit"}                                        destroy them all and exit
// Events printed (one JSON object per line): state ({"tabs": [{clientID, status,
// open, synced, closes: [close codes while open], seen:
// [client ids]}]}), error.
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'
import readline from 'node:readline'

const [serverUrl, docId] = process.argv.slice(2)
const emit = (event) => process.stdout.write(JSON.stringify(event) + '\n')

const tabs = []
const open = () => {
  const doc = new Y.Doc()
  const provider = new WebsocketProvider(serverUrl, docId, doc, {
    WebSocketPolyfill: WebSocket,
    maxBackoffTime: 500
  })
  provider.awareness.setLocalState({ user: { name: `tab ${tabs.length}` } })
  const tab = { doc, provider, closes: [], open: true }
  provider.on('connection-close', (ev) => { if (tab.open) tab.closes.push(ev?.code ?? 'local') })
  tabs.push(tab)
}

const rl = readline.createInterface({ input: process.stdin })
rl.on('line', (line) => {
  const command = JSON.parse(line)
  const tab = tabs[command.tab]
  switch (command.cmd) {
    case 'open':
      open()
      break
    case 'presence':
      tab.provider.awareness.setLocalState(command.state)
      break
    case 'close':
      tab.open = false
      tab.provider.destroy()
      break
    case 'state':
      emit({
        event: 'state',
        tabs: tabs.map(({ doc, provider, closes, open }) => ({
          clientID: doc.clientID,
          open,
          status: provider.wsconnected ? 'connected' : 'disconnected',
          synced: provider.synced,
          closes,
          seen: [...provider.awareness.getStates().keys()]
        }))
      })
      break
    case 'exit':
      for (const { provider } of tabs) provider.destroy()
      setTimeout(() => process.exit(0), 50)
      break
    default:
      emit({ event: 'error', message: `unknown command ${command.cmd}` })
  }
})
rl.on('close', () => {
  for (const { provider } of tabs) provider.destroy()
  process.exit(0)
})
