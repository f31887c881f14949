// A fixed CPU budget per server process, for the `cluster` scenario: each collab
// process runs in its own cgroup with a CFS quota (e.g. 40 % of one core), the way
// replicas of a fixed size run (one container or VM each). Without it, two
// servers, Redis, PostgreSQL and the generator share the machine's cores, and
// on 2 cores one process plus the generator already fill them, so the scenario
// would measure the machine rather than what a second process adds.
//
// cgroup v1 (`/sys/fs/cgroup/cpu`, cpu.cfs_quota_us) or v2 (cpu.max, with the cpu
// controller enabled in the root's subtree_control); needs root. The process
// enters its cgroup before it execs the server (a `sh` wrapper writes its own pid
// to cgroup.procs), so the budget holds from its first instruction, and its
// children inherit it.

import fs from 'node:fs'
import path from 'node:path'

const V1 = '/sys/fs/cgroup/cpu'
const V2 = '/sys/fs/cgroup'

// period of the quota: short, so a throttled process waits milliseconds, not
// the 100 ms of the default period
const PERIOD_US = 10000

const flavour = () => {
  try {
    if (fs.readFileSync(path.join(V2, 'cgroup.subtree_control'), 'utf8').split(/\s+/).includes('cpu')) return 'v2'
  } catch (e) {}
  if (fs.existsSync(path.join(V1, 'cpu.cfs_quota_us'))) return 'v1'
  return null
}

// null when a capped cgroup can be made here, else why not
export const cpuCapAvailable = () => {
  const f = flavour()
  if (!f) return 'no cgroup cpu controller (cgroup v1 cpu, or v2 with cpu in subtree_control)'
  const probe = path.join(f === 'v1' ? V1 : V2, `collab-bench-probe-${process.pid}`)
  try {
    fs.mkdirSync(probe)
    fs.rmdirSync(probe)
    return null
  } catch (e) {
    return `cannot create a cgroup (${e.code || e.message}; needs root)`
  }
}

// A cgroup holding `share` of one core (0 < share ≤ 1). wrap(cmd, args) returns
// the command that enters the cgroup and execs cmd; stats() the cumulative
// throttling; remove() deletes the cgroup once its processes have exited.
export const makeCpuCap = (name, share) => {
  const f = flavour()
  const dir = path.join(f === 'v1' ? V1 : V2, `collab-bench-${name}-${process.pid}`)
  fs.mkdirSync(dir)
  const quota = Math.max(1000, Math.round(share * PERIOD_US))
  if (f === 'v1') {
    fs.writeFileSync(path.join(dir, 'cpu.cfs_period_us'), String(PERIOD_US))
    fs.writeFileSync(path.join(dir, 'cpu.cfs_quota_us'), String(quota))
  } else {
    fs.writeFileSync(path.join(dir, 'cpu.max'), `${quota} ${PERIOD_US}`)
  }
  const procs = path.join(dir, 'cgroup.procs')
  return {
    share,
    wrap: (cmd, args) => ({ cmd: 'sh', args: ['-c', 'echo $$ > "$0" && exec "$@"', procs, cmd, ...args] }),
    // { periods, throttled, throttled_ms } so far
    stats () {
      const out = {}
      try {
        for (const line of fs.readFileSync(path.join(dir, 'cpu.stat'), 'utf8').split('\n')) {
          const [k, v] = line.split(' ')
          out[k] = Number(v)
        }
      } catch (e) { return null }
      return f === 'v1'
        ? { periods: out.nr_periods, throttled: out.nr_throttled, throttled_ms: out.throttled_time / 1e6 }
        : { periods: out.nr_periods, throttled: out.nr_throttled, throttled_ms: out.throttled_usec / 1e3 }
    },
    remove () {
      try { fs.rmdirSync(dir) } catch (e) {}
    }
  }
}
