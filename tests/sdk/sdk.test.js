// The official Stripe Node SDK, pointed at payd (host, port, protocol): the calls a
// merchant integration makes, with the answers it relies on.
'use strict';
const assert = require('node:assert/strict');
const http = require('node:http');
const Stripe = require('stripe');

const stripe = new Stripe(process.env.SDK_KEY, {
  host: '127.0.0.1',
  port: Number(process.env.SDK_PORT),
  protocol: 'https',
  maxNetworkRetries: 0,
});

const steps = [];
function step(name, fn) { steps.push({ name, fn }); }

step('create a card payment method', async () => {
  const pm = await stripe.paymentMethods.create({
    type: 'card',
    card: { number: '4242424242424242', exp_month: 12, exp_year: 2034, cvc: '123' },
  });
  assert.match(pm.id, /^pm_/);
  assert.equal(pm.card.last4, '4242');
  assert.equal(pm.card.brand, 'visa');
  assert.equal(pm.card.checks.cvc_check, 'unchecked');
  const again = await stripe.paymentMethods.retrieve(pm.id);
  assert.equal(again.card.fingerprint, pm.card.fingerprint);
});

step('manual capture: partial capture, then partial refund', async () => {
  let pi = await stripe.paymentIntents.create({
    amount: 5000, currency: 'usd', payment_method: 'pm_card_visa',
    capture_method: 'manual', confirm: true, metadata: { order: 'sdk-1' },
  });
  assert.equal(pi.status, 'requires_capture');
  assert.equal(pi.amount_capturable, 5000);
  assert.equal(pi.metadata.order, 'sdk-1');
  pi = await stripe.paymentIntents.capture(pi.id, { amount_to_capture: 3000 });
  assert.equal(pi.status, 'succeeded');
  assert.equal(pi.amount_received, 3000);
  const re = await stripe.refunds.create({ payment_intent: pi.id, amount: 1000 });
  assert.match(re.id, /^re_/);
  assert.equal(re.status, 'succeeded');
  const ch = await stripe.charges.retrieve(pi.latest_charge);
  assert.equal(ch.amount_captured, 3000);
  assert.equal(ch.amount_refunded, 1000);
  assert.equal(ch.refunded, false);
  await assert.rejects(stripe.refunds.create({ payment_intent: pi.id, amount: 2500 }),
    (e) => e.type === 'StripeInvalidRequestError' && e.statusCode === 400);
});

step('list with pagination', async () => {
  const ids = [];
  for (let i = 0; i < 5; i++) {
    const pi = await stripe.paymentIntents.create({ amount: 100 + i, currency: 'eur' });
    ids.push(pi.id);
  }
  const page1 = await stripe.paymentIntents.list({ limit: 3 });
  assert.equal(page1.object, 'list');
  assert.equal(page1.data.length, 3);
  assert.equal(page1.has_more, true);
  assert.deepEqual(page1.data.map((p) => p.id), ids.slice(2).reverse());
  const page2 = await stripe.paymentIntents.list({ limit: 2, starting_after: page1.data[2].id });
  assert.deepEqual(page2.data.map((p) => p.id), ids.slice(0, 2).reverse());
  const seen = [];
  for await (const pi of stripe.paymentIntents.list({ limit: 4 })) seen.push(pi.id);
  assert.ok(seen.length >= 6);
  assert.equal(new Set(seen).size, seen.length);
});

step('a decline is a StripeCardError', async () => {
  await assert.rejects(
    stripe.paymentIntents.create({ amount: 2000, currency: 'usd', payment_method: 'pm_card_chargeDeclinedInsufficientFunds', confirm: true }),
    (e) => {
      assert.equal(e.type, 'StripeCardError');
      assert.equal(e.statusCode, 402);
      assert.equal(e.code, 'card_declined');
      assert.equal(e.decline_code, 'insufficient_funds');
      assert.match(e.raw.payment_intent.id, /^pi_/);
      assert.equal(e.raw.payment_intent.status, 'requires_payment_method');
      return true;
    });
});

step('an idempotent retry returns the same payment', async () => {
  const key = `sdk-${Date.now()}-${Math.random()}`;
  const params = { amount: 777, currency: 'usd', payment_method: 'pm_card_mastercard', confirm: true };
  const a = await stripe.paymentIntents.create(params, { idempotencyKey: key });
  const b = await stripe.paymentIntents.create(params, { idempotencyKey: key });
  assert.equal(a.id, b.id);
  assert.equal(b.lastResponse.headers['idempotent-replayed'], 'true');
  const charges = await stripe.charges.list({ payment_intent: a.id });
  assert.equal(charges.data.length, 1);
  await assert.rejects(stripe.paymentIntents.create({ ...params, amount: 778 }, { idempotencyKey: key }),
    (e) => e.type === 'StripeIdempotencyError');
});

step('bad parameters name the param', async () => {
  await assert.rejects(stripe.paymentIntents.create({ amount: -5, currency: 'usd' }),
    (e) => e.type === 'StripeInvalidRequestError' && e.param === 'amount');
  await assert.rejects(stripe.paymentIntents.retrieve('pi_doesnotexist000000000000'),
    (e) => e.statusCode === 404 && e.code === 'resource_missing');
});

step('webhooks verify with constructEvent', async () => {
  let resolveEvent;
  const got = new Promise((r) => { resolveEvent = r; });
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      res.writeHead(200).end();
      resolveEvent({ body, sig: req.headers['stripe-signature'] });
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  try {
    const ep = await stripe.webhookEndpoints.create({
      url: `http://127.0.0.1:${server.address().port}/hook`,
      enabled_events: ['payment_intent.succeeded'],
    });
    assert.match(ep.secret, /^whsec_/);
    const pi = await stripe.paymentIntents.create({ amount: 1234, currency: 'usd', payment_method: 'pm_card_visa', confirm: true });
    const { body, sig } = await Promise.race([got, new Promise((_, j) => setTimeout(() => j(new Error('no webhook within 15 s')), 15000))]);
    const event = stripe.webhooks.constructEvent(body, sig, ep.secret);
    assert.equal(event.type, 'payment_intent.succeeded');
    assert.equal(event.data.object.id, pi.id);
    assert.throws(() => stripe.webhooks.constructEvent(body, sig, 'whsec_wrong'),
      (e) => e.type === 'StripeSignatureVerificationError');
    await stripe.webhookEndpoints.del(ep.id);
  } finally {
    server.close();
  }
});

step('expand: the latest charge and its intent as objects', async () => {
  const pi = await stripe.paymentIntents.create({
    amount: 2500, currency: 'usd', payment_method: 'pm_card_visa', confirm: true,
    expand: ['latest_charge', 'latest_charge.payment_intent'],
  });
  assert.equal(pi.latest_charge.object, 'charge');
  assert.equal(pi.latest_charge.amount_captured, 2500);
  assert.equal(pi.latest_charge.payment_intent.id, pi.id);
  const again = await stripe.paymentIntents.retrieve(pi.id, { expand: ['payment_method'] });
  assert.equal(again.payment_method.card.last4, '4242');
  await assert.rejects(stripe.paymentIntents.retrieve(pi.id, { expand: ['customer.nope'] }),
    (e) => e.type === 'StripeInvalidRequestError' && e.param === 'expand');
});

step('auto-pagination visits every object once while new ones are made', async () => {
  const before = new Set();
  for (let i = 0; i < 23; i++) before.add((await stripe.paymentIntents.create({ amount: 300 + i, currency: 'gbp' })).id);
  const seen = new Map();
  let made = 0;
  for await (const pi of stripe.paymentIntents.list({ limit: 5 })) {
    seen.set(pi.id, (seen.get(pi.id) || 0) + 1);
    if (made < 10) { made++; await stripe.paymentIntents.create({ amount: 999, currency: 'gbp' }); }
  }
  for (const id of before) assert.equal(seen.get(id), 1, `${id} visited ${seen.get(id) || 0} times`);
  for (const [id, n] of seen) assert.equal(n, 1, `${id} visited ${n} times`);
});

/* the dispute of a payment with Stripe's dispute test card, once it reaches status */
async function disputeOf(pi, status) {
  for (let i = 0; i < 120; i++) {
    const list = await stripe.disputes.list({ payment_intent: pi });
    if (list.data.length > 0 && list.data[0].status === status) return list.data[0];
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no dispute of ${pi} in status ${status}`);
}

step('disputes: one won, one lost, the balance after each', async () => {
  const total = async () => {
    const b = await stripe.balance.retrieve();
    return [...b.available, ...b.pending].filter((x) => x.currency === 'usd').reduce((s, x) => s + x.amount, 0);
  };
  const b0 = await total();
  const won = await stripe.paymentIntents.create({ amount: 4000, currency: 'usd', payment_method: 'pm_card_createDispute', confirm: true });
  let d = await disputeOf(won.id, 'needs_response');
  assert.equal(d.amount, 4000);
  assert.equal((await stripe.charges.retrieve(d.charge)).disputed, true);
  d = await stripe.disputes.update(d.id, { evidence: { uncategorized_text: 'winning_evidence' } });
  assert.equal(d.status, 'under_review');
  await disputeOf(won.id, 'won');
  const net = 4000 - Math.floor((4000 * 29 + 500) / 1000) - 30;
  assert.equal(await total() - b0, net);
  const lost = await stripe.paymentIntents.create({ amount: 1000, currency: 'usd', payment_method: 'pm_card_createDispute', confirm: true });
  d = await disputeOf(lost.id, 'needs_response');
  d = await stripe.disputes.close(d.id);
  assert.equal(d.status, 'lost');
  assert.equal(await total() - b0, net + (1000 - Math.floor((1000 * 29 + 500) / 1000) - 30) - 1000 - 1500);
});

step('a balance report run gives a CSV file', async () => {
  const end = Math.floor(Date.now() / 1000);
  let run = await stripe.reporting.reportRuns.create({
    report_type: 'balance.summary.1', parameters: { interval_start: end - 3600, interval_end: end, currency: 'usd' },
  });
  assert.equal(run.status, 'pending');
  for (let i = 0; i < 100 && run.status === 'pending'; i++) {
    await new Promise((r) => setTimeout(r, 100));
    run = await stripe.reporting.reportRuns.retrieve(run.id);
  }
  assert.equal(run.status, 'succeeded');
  assert.equal(run.result.object, 'file');
  const file = await stripe.files.retrieve(run.result.id);
  assert.equal(file.purpose, 'finance_report_run');
  const types = await stripe.reporting.reportTypes.list();
  assert.ok(types.data.some((t) => t.id === 'balance_change_from_activity.itemized.1'));
});

step('Stripe-Version is answered', async () => {
  const versioned = new Stripe(process.env.SDK_KEY, {
    host: '127.0.0.1', port: Number(process.env.SDK_PORT), protocol: 'https', apiVersion: '2023-10-16',
  });
  const pi = await versioned.paymentIntents.create({ amount: 100, currency: 'usd' });
  assert.equal(pi.lastResponse.headers['stripe-version'], '2023-10-16');
});

step('customers: create, retrieve, update, list by email (auto-paginated), delete', async () => {
  const email = `sdk.${Date.now()}@example.com`;
  const cus = await stripe.customers.create({
    email, name: 'Sdk Person', phone: '+15555550100',
    address: { line1: '1 Main St', city: 'Springfield', country: 'US' }, metadata: { crm: '7' },
  });
  assert.match(cus.id, /^cus_/);
  assert.equal(cus.email, email);
  assert.equal(cus.address.city, 'Springfield');
  const up = await stripe.customers.update(cus.id, { name: 'Sdk Renamed', metadata: { tier: 'gold' } });
  assert.equal(up.name, 'Sdk Renamed');
  assert.equal(up.email, email);
  assert.equal(up.metadata.crm, '7');
  assert.equal((await stripe.customers.retrieve(cus.id)).phone, '+15555550100');
  const found = await stripe.customers.list({ email: email.toUpperCase() });
  assert.deepEqual(found.data.map((c) => c.id), [cus.id]);
  assert.equal(found.data[0].name, 'Sdk Renamed');
  const tagged = new Set([cus.id]);
  for (let i = 0; i < 4; i++) tagged.add((await stripe.customers.create({ email, name: `Page ${i}` })).id);
  const seen = new Map();
  for await (const c of stripe.customers.list({ email, limit: 2 })) seen.set(c.id, (seen.get(c.id) || 0) + 1);
  for (const id of tagged) assert.equal(seen.get(id), 1, `${id} visited ${seen.get(id) || 0} times`);
  assert.equal(seen.size, tagged.size);
  const del = await stripe.customers.del(cus.id);
  assert.equal(del.deleted, true);
  assert.equal((await stripe.customers.retrieve(cus.id)).deleted, true);
  await assert.rejects(stripe.customers.retrieve('cus_doesnotexist0000'),
    (e) => e.type === 'StripeInvalidRequestError' && e.statusCode === 404 && e.param === 'id');
});

step('a saved card: setup_future_usage, an off-session payment, attach and detach', async () => {
  const cus = await stripe.customers.create({ email: `saver.${Date.now()}@example.com` });
  const first = await stripe.paymentIntents.create({
    amount: 1200, currency: 'usd', customer: cus.id, payment_method: 'pm_card_visa',
    setup_future_usage: 'off_session', confirm: true, expand: ['customer'],
  });
  assert.equal(first.status, 'succeeded');
  assert.equal(first.customer.id, cus.id);
  assert.equal(first.setup_future_usage, 'off_session');
  const saved = await stripe.customers.listPaymentMethods(cus.id);
  assert.deepEqual(saved.data.map((p) => p.id), [first.payment_method]);
  const later = await stripe.paymentIntents.create({
    amount: 800, currency: 'usd', customer: cus.id, payment_method: first.payment_method,
    off_session: true, confirm: true,
  });
  assert.equal(later.status, 'succeeded');

  const pm = await stripe.paymentMethods.create({
    type: 'card', card: { number: '5555555555554444', exp_month: 12, exp_year: 2034, cvc: '123' },
  });
  const attached = await stripe.paymentMethods.attach(pm.id, { customer: cus.id });
  assert.equal(attached.customer, cus.id);
  const cards = await stripe.paymentMethods.list({ customer: cus.id, type: 'card' });
  assert.equal(cards.data.length, 2);
  const detached = await stripe.paymentMethods.detach(pm.id);
  assert.equal(detached.customer, null);
  await assert.rejects(stripe.paymentMethods.attach(pm.id, { customer: cus.id }),
    (e) => e.type === 'StripeInvalidRequestError' && e.code === 'payment_method_unexpected_state');
  await assert.rejects(stripe.paymentIntents.create({
    amount: 500, currency: 'usd', payment_method: 'pm_card_visa', setup_future_usage: 'on_session', confirm: true,
  }), (e) => e.type === 'StripeInvalidRequestError' && e.param === 'customer');
});

step('search: paymentIntents.search auto-paginated (each once, newest first), charges and customers, errors', async () => {
  const tag = `s${Date.now()}`;
  const made = [];
  for (let i = 0; i < 7; i++) {
    made.push((await stripe.paymentIntents.create({
      amount: 3000 + i, currency: i % 2 ? 'eur' : 'usd', metadata: { tag, n: String(i) },
      ...(i === 3 ? { payment_method: 'pm_card_visa', confirm: true } : {}),
    })).id);
  }
  const first = await stripe.paymentIntents.search({ query: `metadata['tag']:'${tag}'`, limit: 3 });
  assert.equal(first.object, 'search_result');
  assert.equal(first.url, '/v1/payment_intents/search');
  assert.equal(first.data.length, 3);
  assert.equal(first.has_more, true);
  assert.equal(typeof first.next_page, 'string');
  const seen = [];
  for await (const pi of stripe.paymentIntents.search({ query: `metadata['tag']:'${tag}'`, limit: 2 })) seen.push(pi.id);
  assert.deepEqual(seen, [...made].reverse());
  const some = await stripe.paymentIntents.search({
    query: `metadata['tag']:'${tag}' AND currency:'eur' AND -amount:3005`,
  });
  assert.deepEqual(some.data.map((p) => p.amount), [3003, 3001]);
  const either = await stripe.paymentIntents.search({ query: `amount:3006 OR amount:3000` });
  assert.deepEqual(either.data.map((p) => p.id), [made[6], made[0]]);
  const ch = await stripe.charges.search({ query: `amount:3003 status:'succeeded'`, expand: ['data.payment_intent'] });
  assert.equal(ch.data.length, 1);
  assert.equal(ch.data[0].payment_intent.id, made[3]);
  const email = `search.${tag}@example.com`;
  const cus = await stripe.customers.create({ email, name: 'Searched' });
  const found = await stripe.customers.search({ query: `email:'${email}'` });
  assert.deepEqual(found.data.map((c) => c.id), [cus.id]);
  assert.equal(found.data[0].name, 'Searched');
  await assert.rejects(stripe.paymentIntents.search({ query: 'status:succeeded' }),
    (e) => e.type === 'StripeInvalidRequestError' && e.statusCode === 400 && e.param === 'query');
  await assert.rejects(stripe.customers.search({ query: `email~'search'` }),
    (e) => e.type === 'StripeInvalidRequestError' && e.param === 'query' && /encrypted/.test(e.message));
  await assert.rejects(stripe.paymentIntents.search({ query: 'amount>0', page: 'nope' }),
    (e) => e.type === 'StripeInvalidRequestError' && e.param === 'page');
});

step('setup intents: a card saved, charged off-session; a decline, a cancel, the list', async () => {
  const cus = await stripe.customers.create({ name: 'Setup Sdk' });
  let si = await stripe.setupIntents.create({ customer: cus.id, usage: 'off_session', metadata: { k: 'v' } });
  assert.match(si.id, /^seti_/);
  assert.ok(si.client_secret.startsWith(`${si.id}_secret_`));
  assert.equal(si.status, 'requires_payment_method');
  si = await stripe.setupIntents.confirm(si.id, { payment_method: 'pm_card_visa', expand: ['payment_method'] });
  assert.equal(si.status, 'succeeded');
  assert.equal(si.payment_method.customer, cus.id);
  const saved = await stripe.customers.listPaymentMethods(cus.id);
  assert.deepEqual(saved.data.map((p) => p.id), [si.payment_method.id]);
  const later = await stripe.paymentIntents.create({
    amount: 1200, currency: 'usd', customer: cus.id, payment_method: si.payment_method.id,
    off_session: true, confirm: true,
  });
  assert.equal(later.status, 'succeeded');

  const declined = await stripe.setupIntents.create({ customer: cus.id });
  await assert.rejects(stripe.setupIntents.confirm(declined.id, { payment_method: 'pm_card_chargeDeclined' }),
    (e) => e.type === 'StripeCardError' && e.code === 'card_declined' && e.raw.setup_intent.id === declined.id);
  const after = await stripe.setupIntents.retrieve(declined.id);
  assert.equal(after.status, 'requires_payment_method');
  assert.equal(after.last_setup_error.code, 'card_declined');
  const canceled = await stripe.setupIntents.cancel(declined.id, { cancellation_reason: 'abandoned' });
  assert.equal(canceled.status, 'canceled');
  await assert.rejects(stripe.setupIntents.update(declined.id, { description: 'late' }),
    (e) => e.type === 'StripeInvalidRequestError' && e.code === 'setup_intent_unexpected_state');
  const seen = [];
  for await (const s of stripe.setupIntents.list({ customer: cus.id, limit: 1 })) seen.push(s.id);
  assert.deepEqual(seen, [declined.id, si.id]);
});

(async () => {
  let failed = 0;
  for (const s of steps) {
    try {
      await s.fn();
      console.log(`ok   ${s.name}`);
    } catch (e) {
      failed++;
      console.log(`FAIL ${s.name}\n${e.stack || e}`);
    }
  }
  console.log(`${steps.length - failed}/${steps.length} SDK checks passed`);
  process.exit(failed ? 1 : 0);
})();
