'use strict'
// The original design's rules endpoint on Node/Fastify, the baseline of bench/bench_http.py.
//
// GET /perf/speculation/dynamic?seg=... answered one of two ways (--mode):
//   cached    the segment's answer built once at start (and again every 5 minutes, as the
//             original "refreshed every 5 min" acceptance line says), sent as a prebuilt JSON
//             string;
//   simulate  the original per-request Monte-Carlo simulation (Part 28, section 0.3/0.4 of the
//             design: flows.simulate.ts + perf.speculation.dynamic.ts), ported line by line:
//             the segment's edge rows -> adjacency (from -> [{to, p}]), 5000 walks of 3 steps
//             from a uniformly drawn start, hits counted, top 8 by hits, 2 prerender + 6
//             prefetch rules. The one change: the rows come from memory instead of a MariaDB
//             query (the baseline measures the HTTP path and the simulation, not a database).
// GET /health answers {"status":"ok"} (readiness probe of the bench).
//
// The flow graph: FLOWS_FILE, a JSON object {seg: [{from, to, count}, ...]} (bench_http.py
// writes kervan's bench graph there, so both servers rank the same edges); without it, a
// synthetic graph of the same size (2,000 pages, 10,000 edges, Pareto-distributed sources) per
// segment. `p` is the count normalised over the edges leaving the same page, as the design's
// flow_edges.p column holds.
//
//   npm ci && node server.js --port 8103 --mode cached
//
// Fastify's logger is off (its default); loopback only.

const fs = require('node:fs')
const Fastify = require('fastify')

const SEGMENTS = ['tr-m', 'de-d', 'en-d']
const PUBLIC_ORIGIN = process.env.PUBLIC_ORIGIN || 'https://example.com'

function arg (name, fallback) {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback
}

// mulberry32: a small seeded PRNG, only for the synthetic graph (the simulation itself uses
// Math.random, as the original does).
function mulberry32 (seed) {
  let a = seed >>> 0
  return function () {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function syntheticEdges (seg, seed, pages = 2000, edges = 10000) {
  const lang = seg.split('-')[0]
  const rnd = mulberry32(seed)
  const paths = ['/', `/${lang}/projects`]
  for (let i = 0; i < pages - 2; i++) paths.push(`/${lang}/p/${i}`)
  const rows = new Map()
  while (rows.size < edges) {
    const pareto = 1 / Math.pow(1 - rnd(), 1 / 1.1) // Python's random.paretovariate(1.1)
    const a = paths[Math.min(Math.floor(pareto) - 1, pages - 1)]
    const b = paths[Math.floor(rnd() * pages)]
    if (a !== b) rows.set(`${a}\n${b}`, { from: a, to: b, count: 1 + Math.floor(rnd() * 500) })
  }
  return [...rows.values()]
}

// The flow_edges rows of one segment: {seg, from, to, c, p}.
function toRows (seg, edges) {
  const totals = new Map()
  for (const e of edges) totals.set(e.from, (totals.get(e.from) || 0) + e.count)
  return edges.map((e) => ({ seg, from: e.from, to: e.to, c: e.count, p: e.count / totals.get(e.from) }))
}

function loadFlows () {
  const file = process.env.FLOWS_FILE
  const bySeg = new Map()
  if (file) {
    const data = JSON.parse(fs.readFileSync(file, 'utf8'))
    for (const [seg, edges] of Object.entries(data)) bySeg.set(seg, toRows(seg, edges))
  } else {
    SEGMENTS.forEach((seg, i) => bySeg.set(seg, toRows(seg, syntheticEdges(seg, i + 1))))
  }
  return bySeg
}

const FLOWS = loadFlows()

// ---- flows.simulate.ts, ported ----
async function selectEdges (seg) {
  // db.select().from(flowEdges).where(seg): every row of the segment, a fresh array per query.
  return (FLOWS.get(seg) || []).slice()
}

async function simulate ({ seg, starts, steps = 3, sims = 5000 }) {
  // Edges -> adjacency: from -> [{to,p}]
  const edges = await selectEdges(seg)
  const adj = new Map()
  for (const e of edges) {
    const a = adj.get(e.from) || []; a.push({ to: e.to, p: e.p }); adj.set(e.from, a)
  }
  const hits = new Map()
  function pick (arr) {
    const r = Math.random(); let acc = 0; for (const x of arr) { acc += x.p; if (r <= acc) return x.to } return arr[arr.length - 1].to
  }
  for (let s = 0; s < sims; s++) {
    let cur = starts[Math.floor(Math.random() * starts.length)]
    for (let i = 0; i < steps; i++) {
      const opts = adj.get(cur); if (!opts || !opts.length) break
      cur = pick(opts); hits.set(cur, (hits.get(cur) || 0) + 1)
    }
  }
  // The most likely targets -> the speculation set
  const ranked = [...hits.entries()].sort((a, b) => b[1] - a[1]).slice(0, 8).map(([to, n]) => ({ to, score: n / sims }))
  return ranked
}

// ---- perf.speculation.dynamic.ts, ported ----
async function rulesFor (seg) {
  const starts = ['/', '/' + seg.split('-')[0] + '/projects']
  const ranked = await simulate({ seg, starts })
  const prerender = ranked.slice(0, 2).map((r) => ({ source: 'document', where: { href_matches: PUBLIC_ORIGIN + r.to }, eagerness: 'moderate' }))
  const prefetch = ranked.slice(2, 8).map((r) => ({ source: 'document', where: { href_matches: PUBLIC_ORIGIN + r.to }, eagerness: 'eager' }))
  return { prerender, prefetch }
}

async function main () {
  const mode = arg('mode', 'cached')
  const port = Number(arg('port', '8103'))
  const host = arg('host', '127.0.0.1')
  if (mode !== 'cached' && mode !== 'simulate') throw new Error(`--mode must be cached or simulate, not ${mode}`)

  const cached = new Map()
  async function refresh () {
    for (const seg of FLOWS.keys()) cached.set(seg, JSON.stringify(await rulesFor(seg)))
  }
  if (mode === 'cached') {
    await refresh()
    setInterval(refresh, 5 * 60 * 1000).unref()
  }

  const app = Fastify({ logger: false })
  app.get('/health', async () => ({ status: 'ok' }))
  if (mode === 'simulate') {
    app.get('/perf/speculation/dynamic', async (req) => {
      const seg = String(req.query.seg || 'en-d')
      return rulesFor(seg)
    })
  } else {
    const empty = JSON.stringify({ prerender: [], prefetch: [] })
    app.get('/perf/speculation/dynamic', async (req, reply) => {
      const seg = String(req.query.seg || 'en-d')
      reply.type('application/json; charset=utf-8')
      return cached.get(seg) || empty
    })
  }
  await app.listen({ port, host })
  const stop = () => app.close().then(() => process.exit(0))
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
