// @hocuspocus/server for the benchmark: in memory, no extensions, bound to
// 127.0.0.1:$PORT. The idle timeout is raised because the benchmark's
// receivers send nothing after the handshake (real providers send awareness).
import { Server } from '@hocuspocus/server'

const server = new Server({
  address: '127.0.0.1',
  port: Number(process.env.PORT || 1234),
  timeout: 10 * 60 * 1000,
  quiet: true
})
await server.listen()
console.log(`hocuspocus listening on 127.0.0.1:${server.address.port}`)
