// Throwaway services for the `cluster` scenario: a PostgreSQL cluster and a
// redis-server, each on a free port on 127.0.0.1, under the scenario's tmpdir.
//
// PostgreSQL: Debian's /usr/lib/postgresql/<newest>/bin (`initdb`, `pg_ctl`), run
// as the `postgres` user through `runuser` when the harness runs as root (as
// tests/support.py does), trust authentication, and for a benchmark
// fsync=off, synchronous_commit=off, full_page_writes=off: commits cost no disk
// flush (reported in the output). Redis: `redis-server --save "" --appendonly no`.
//
// Every start has a bounded wait; stop() is idempotent and never throws.

import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { freePort } from './servers.mjs'

const sleep = (ms) => new Promise(resolve => setTimeout(resolve, ms))

export const PG_SETTINGS = { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off', max_connections: '200' }

const pgBinDir = () => {
  const base = '/usr/lib/postgresql'
  let versions = []
  try { versions = fs.readdirSync(base).filter(v => fs.existsSync(path.join(base, v, 'bin', 'pg_ctl'))) } catch (e) {}
  versions.sort((a, b) => Number(a) - Number(b))
  return versions.length ? path.join(base, versions[versions.length - 1], 'bin') : null
}

const redisBin = () => ['/usr/bin/redis-server', '/usr/local/bin/redis-server'].find(p => fs.existsSync(p)) || null

const isRoot = () => typeof process.geteuid === 'function' && process.geteuid() === 0
const asPostgres = (args) => isRoot() ? ['runuser', ['-u', 'postgres', '--', ...args]] : [args[0], args.slice(1)]

// null when PostgreSQL can be started, else why not
export const postgresAvailable = () => {
  if (!pgBinDir()) return 'PostgreSQL not installed (/usr/lib/postgresql/*/bin/pg_ctl)'
  if (isRoot() && spawnSync('id', ['-u', 'postgres']).status !== 0) return 'running as root but there is no `postgres` user to run PostgreSQL as'
  return null
}

// null when both are available, else why not
export const clusterAvailable = () => {
  const noPg = postgresAvailable()
  if (noPg) return noPg
  if (!redisBin()) return 'redis-server not installed'
  return null
}

export const postgresVersion = () => {
  const bin = pgBinDir()
  if (!bin) return null
  return (spawnSync(path.join(bin, 'postgres'), ['--version'], { encoding: 'utf8', timeout: 10000 }).stdout || '').trim()
}

export const redisVersion = () => {
  const bin = redisBin()
  if (!bin) return null
  return (spawnSync(bin, ['--version'], { encoding: 'utf8', timeout: 10000 }).stdout || '').trim().split(' ').slice(0, 3).join(' ')
}

const run = (argv, what, timeout = 60000) => {
  const [cmd, args] = asPostgres(argv)
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout })
  if (r.status !== 0) throw new Error(`${what} failed (exit ${r.status}${r.signal ? ' ' + r.signal : ''}): ${((r.stderr || '') + (r.stdout || '')).slice(-1500)}`)
  return r.stdout
}

// Start PostgreSQL in a fresh directory of its own under the system tmpdir (the
// postgres user must reach it: the harness's own tmpdir is private); returns
// { port, pid(), url(db), createDatabase(name), query(db, sql), log(), stop() }.
// stop() removes it.
export const startPostgres = async () => {
  const bin = pgBinDir()
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'collab-bench-pg-'))
  const data = path.join(root, 'data')
  if (isRoot()) {
    const uid = parseInt(spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).stdout, 10)
    const gid = parseInt(spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout, 10)
    fs.chownSync(root, uid, gid)
  }
  try {
    run([path.join(bin, 'initdb'), '-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8'], 'initdb')
  } catch (e) {
    fs.rmSync(root, { recursive: true, force: true })
    throw e
  }
  const port = await freePort()
  const opts = `-p ${port} -k ${root} -c listen_addresses=127.0.0.1 ` + Object.entries(PG_SETTINGS).map(([k, v]) => `-c ${k}=${v}`).join(' ')
  const logPath = path.join(root, 'log')
  let started = false
  const stop = () => {
    if (!started) return
    started = false
    const [cmd, args] = asPostgres([path.join(bin, 'pg_ctl'), '-D', data, '-m', 'immediate', '-w', '-t', '30', 'stop'])
    spawnSync(cmd, args, { timeout: 40000 })
    fs.rmSync(root, { recursive: true, force: true })
  }
  try {
    started = true
    run([path.join(bin, 'pg_ctl'), '-D', data, '-o', opts, '-l', logPath, '-w', '-t', '60', 'start'], 'pg_ctl start', 70000)
  } catch (e) {
    stop()
    throw e
  }
  const pid = () => { try { return parseInt(fs.readFileSync(path.join(data, 'postmaster.pid'), 'utf8').split('\n')[0], 10) } catch (e) { return null } }
  return {
    port,
    pid,
    url: (db) => `postgresql+asyncpg://postgres@127.0.0.1:${port}/${db}`,
    createDatabase (name) {
      run([path.join(bin, 'psql'), '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-qc', `CREATE DATABASE "${name}"`], `CREATE DATABASE ${name}`)
      return this.url(name)
    },
    // rows of one statement, tab-separated fields
    query (db, sql) {
      const out = run([path.join(bin, 'psql'), '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', db, '-XAtqF', '\t', '-c', sql], 'psql')
      return out.split('\n').filter(Boolean).map(line => line.split('\t'))
    },
    log: () => { try { return fs.readFileSync(logPath, 'utf8') } catch (e) { return '' } },
    stop
  }
}

const redisPing = (port) => new Promise(resolve => {
  const s = net.connect({ host: '127.0.0.1', port })
  let buf = ''
  s.once('connect', () => s.write('PING\r\n'))
  s.on('data', (d) => { buf += d; if (buf.includes('\r\n')) { s.destroy(); resolve(buf.startsWith('+PONG')) } })
  s.once('error', () => resolve(false))
  s.setTimeout(1000, () => { s.destroy(); resolve(false) })
})

// Start redis-server in dir/redis; returns { port, pid, url, log(), exited(), stop() }.
export const startRedis = async (dir, timeoutMs = 15000) => {
  const root = path.join(dir, 'redis')
  fs.mkdirSync(root, { recursive: true })
  const port = await freePort()
  const logPath = path.join(root, 'log')
  const fd = fs.openSync(logPath, 'a')
  const child = spawn(redisBin(), ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', root, '--daemonize', 'no'], { cwd: root, stdio: ['ignore', fd, fd] })
  fs.closeSync(fd)
  let exited = null
  child.on('exit', (code, sig) => { exited = { code, sig } })
  const log = () => { try { return fs.readFileSync(logPath, 'utf8') } catch (e) { return '' } }
  const stop = async () => {
    if (exited) return
    const gone = new Promise(resolve => child.once('exit', resolve))
    child.kill('SIGKILL')
    await Promise.race([gone, sleep(5000)])
  }
  const t0 = Date.now()
  while (!await redisPing(port)) {
    if (exited) throw new Error(`redis-server exited ${JSON.stringify(exited)}:\n${log().slice(-1500)}`)
    if (Date.now() - t0 > timeoutMs) { await stop(); throw new Error(`redis-server not ready after ${timeoutMs} ms:\n${log().slice(-1500)}`) }
    await sleep(50)
  }
  return { port, pid: child.pid, url: `redis://127.0.0.1:${port}/0`, log, exited: () => exited, stop }
}
