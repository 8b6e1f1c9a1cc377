// BullMQ (Node) side of the issue-10 comparison: the same two-step workload as our worker.
//
//   node worker.js enqueue   -- adds N "authorize" jobs (LOGINS_FILE, one LoginId a line)
//   node worker.js work      -- one process, two Workers: authorize -> chained detail job
//
// authorize: POST {FLINKS_BASE_URL}/Authorize; 200 -> add a "detail" job from the worker;
// 401 -> completed as "reauth" (what our worker records). detail: POST /GetAccountsDetail.
// Jobs are removed on completion (ours deletes the payload on ack, too). `work` prints
// "ready" once both Workers exist and a JSON line once every job is settled, then idles
// until killed, so the driver can read its RSS and CPU time.
'use strict';
const fs = require('fs');
const { Queue, Worker } = require('bullmq');

const url = new URL(process.env.REDIS_URL || 'redis://127.0.0.1:6379');
const connection = { host: url.hostname, port: Number(url.port || 6379), maxRetriesPerRequest: null };
const prefix = process.env.BULL_PREFIX || 'bench-bull';
const base = process.env.FLINKS_BASE_URL;
const concurrency = Number(process.env.CONCURRENCY || 32);
const opts = { removeOnComplete: true, removeOnFail: true };

async function post(path, body) {
  const r = await fetch(base + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: r.status, body: await r.json() };
}

async function enqueue() {
  const q = new Queue('authorize', { connection, prefix });
  const ids = fs.readFileSync(process.env.LOGINS_FILE, 'utf8').split('\n').filter(Boolean);
  for (let i = 0; i < ids.length; i += 1000) {
    await q.addBulk(ids.slice(i, i + 1000).map((LoginId) => ({ name: 'authorize', data: { LoginId }, opts })));
  }
  await q.close();
  console.log(JSON.stringify({ enqueued: ids.length }));
}

async function work() {
  const n = Number(process.env.N);
  const detailQueue = new Queue('detail', { connection, prefix });
  let authDone = 0, detailDone = 0, chained = 0, reauth = 0, failed = 0;
  let t0 = 0;
  const maybeDone = () => {
    if (authDone === n && detailDone === chained) {
      const elapsed = (performance.now() - t0) / 1000;
      console.log(JSON.stringify({ elapsed, authorize: authDone, detail: detailDone, reauth, failed }));
    }
  };
  const authorize = new Worker('authorize', async (job) => {
    const r = await post('/Authorize', { LoginId: job.data.LoginId, MostRecentCached: true });
    if (r.status === 200) {
      chained += 1;
      await detailQueue.add('detail', { LoginId: job.data.LoginId, RequestId: r.body.RequestId }, opts);
      return 'chained';
    }
    if (r.status === 401) { reauth += 1; return 'reauth'; }
    throw new Error(`authorize HTTP ${r.status}`);
  }, { connection, prefix, concurrency, autorun: false });
  const detail = new Worker('detail', async (job) => {
    const r = await post('/GetAccountsDetail', { RequestId: job.data.RequestId });
    if (r.status !== 200) throw new Error(`detail HTTP ${r.status}`);
    return r.body.Accounts ? r.body.Accounts.length : 0;
  }, { connection, prefix, concurrency, autorun: false });
  authorize.on('completed', () => { authDone += 1; maybeDone(); });
  authorize.on('failed', () => { authDone += 1; failed += 1; maybeDone(); });
  detail.on('completed', () => { detailDone += 1; maybeDone(); });
  detail.on('failed', () => { detailDone += 1; failed += 1; maybeDone(); });
  await authorize.waitUntilReady();
  await detail.waitUntilReady();
  console.log('ready');
  t0 = performance.now();
  authorize.run();
  detail.run();
}

(process.argv[2] === 'enqueue' ? enqueue() : work()).catch((e) => { console.error(e); process.exit(1); });
