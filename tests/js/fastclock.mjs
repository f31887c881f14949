// Preloaded into a client (node --import ./fastclock.mjs client.mjs ...) to run its clock
// CLOCK_SPEED times faster: Date.now, setTimeout and setInterval. y-websocket's 30 s
// silence timeout then passes in 30/CLOCK_SPEED s, so a test can hold it against a server
// whose intervals are divided by the same factor instead of waiting for real.
const speed = Number(process.env.CLOCK_SPEED)
if (!(speed > 0)) throw new Error(`CLOCK_SPEED must be a positive number, not ${process.env.CLOCK_SPEED}`)

const realNow = Date.now
const start = realNow()
Date.now = () => start + (realNow() - start) * speed
const { setTimeout: realSetTimeout, setInterval: realSetInterval } = globalThis
globalThis.setTimeout = (fn, ms = 0, ...args) => realSetTimeout(fn, ms / speed, ...args)
globalThis.setInterval = (fn, ms = 0, ...args) => realSetInterval(fn, ms / speed, ...args)
