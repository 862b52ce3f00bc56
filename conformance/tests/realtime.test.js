// Realtime through the SDK: subscribe/unsubscribe on `*` and on a record id, with
// options (filter, expand, fields), and who receives what (list/view rules, hidden
// fields). Node 20 has no EventSource; the `eventsource` package provides it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { EventSource } from 'eventsource';
import {
  CollectionTracker,
  USERS_COLLECTION_ID,
  createUserAndLogin,
  newClient,
  randomSuffix,
  superuserClient,
} from './helpers.js';

globalThis.EventSource = EventSource;

let su;
let tracker;
const postsName = `rt_posts_${randomSuffix()}`;
const notesName = `rt_notes_${randomSuffix()}`;
let alice;
let bob;
const clients = [];

/** A client whose realtime connection is closed after the file. */
function track(client) {
  clients.push(client);
  return client;
}

/** Collects the events of a subscription callback; `next()` waits for one. */
function collector() {
  const events = [];
  const waiters = [];
  return {
    events,
    push(event) {
      events.push(event);
      const waiter = waiters.shift();
      if (waiter) waiter();
    },
    async next(ms = 5000) {
      if (events.length > 0) return events.shift();
      await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no realtime event within ${ms} ms`)), ms);
        waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      return events.shift();
    },
  };
}

const settle = (ms = 600) => new Promise((resolve) => setTimeout(resolve, ms));

before(async () => {
  su = track(await superuserClient());
  tracker = new CollectionTracker(su);
  await tracker.create({
    name: postsName, type: 'base', listRule: '', viewRule: '', createRule: '', updateRule: '', deleteRule: '',
    fields: [{ name: 'title', type: 'text' }],
  });
  await tracker.create({
    name: notesName, type: 'base',
    listRule: 'owner = @request.auth.id', viewRule: 'owner = @request.auth.id',
    createRule: 'owner = @request.auth.id', updateRule: 'owner = @request.auth.id',
    fields: [
      { name: 'title', type: 'text' },
      { name: 'secret', type: 'text', hidden: true },
      { name: 'owner', type: 'relation', collectionId: USERS_COLLECTION_ID, maxSelect: 1 },
    ],
  });
  alice = await createUserAndLogin('rt_alice');
  bob = await createUserAndLogin('rt_bob');
  track(alice.client);
  track(bob.client);
});

after(async () => {
  for (const client of clients) {
    await client.realtime.unsubscribe().catch(() => {});
  }
  await tracker.cleanup();
  await su.collection('users').delete(alice.record.id).catch(() => {});
  await su.collection('users').delete(bob.record.id).catch(() => {});
});

test('subscribe to * receives create, update and delete; unsubscribe stops them', async () => {
  const guest = track(newClient());
  const got = collector();
  const unsubscribe = await guest.collection(postsName).subscribe('*', (e) => got.push(e));
  assert.equal(guest.realtime.isConnected, true);
  assert.match(guest.realtime.clientId, /^[A-Za-z0-9]{40}$/);

  const created = await su.collection(postsName).create({ title: 'first' });
  let event = await got.next();
  assert.equal(event.action, 'create');
  assert.deepEqual(event.record, created);

  const updated = await su.collection(postsName).update(created.id, { title: 'second' });
  event = await got.next();
  assert.equal(event.action, 'update');
  assert.deepEqual(event.record, updated);

  await su.collection(postsName).delete(created.id);
  event = await got.next();
  assert.equal(event.action, 'delete');
  assert.deepEqual(event.record, updated);

  await unsubscribe();
  await su.collection(postsName).create({ title: 'unheard' });
  await settle();
  assert.equal(got.events.length, 0, 'no event after unsubscribe');
});

test('subscribe to * with a filter receives only matching records', async () => {
  const guest = track(newClient());
  const got = collector();
  await guest.collection(postsName).subscribe('*', (e) => got.push(e), { filter: "title ~ 'yes'" });
  await su.collection(postsName).create({ title: 'no' });
  const wanted = await su.collection(postsName).create({ title: 'yes please' });
  const event = await got.next();
  assert.equal(event.action, 'create');
  assert.equal(event.record.id, wanted.id);
  await settle();
  assert.equal(got.events.length, 0);
  await guest.collection(postsName).unsubscribe('*');
});

test('subscribe to a record id with expand and fields, under the view rule', async () => {
  const note = await alice.client.collection(notesName).create({ title: 'mine', owner: alice.record.id });
  const options = { expand: 'owner', fields: 'id,title,expand.owner.email' };
  const asAlice = collector();
  const asBob = collector();
  const asGuest = collector();
  const guest = track(newClient());
  await alice.client.collection(notesName).subscribe(note.id, (e) => asAlice.push(e), options);
  await bob.client.collection(notesName).subscribe(note.id, (e) => asBob.push(e), options);
  await guest.collection(notesName).subscribe(note.id, (e) => asGuest.push(e));

  await alice.client.collection(notesName).update(note.id, { title: 'changed' });
  const event = await asAlice.next();
  assert.equal(event.action, 'update');
  assert.deepEqual(event.record, {
    id: note.id,
    title: 'changed',
    expand: { owner: { email: alice.email } },
  });
  await settle();
  assert.equal(asBob.events.length, 0, 'another user may not view it');
  assert.equal(asGuest.events.length, 0, 'a guest may not view it');

  // Unsubscribing one topic keeps the others of the same client.
  const other = collector();
  await alice.client.collection(notesName).subscribe('*', (e) => other.push(e));
  await alice.client.collection(notesName).unsubscribe(note.id);
  await alice.client.collection(notesName).update(note.id, { title: 'again' });
  const star = await other.next();
  assert.equal(star.record.title, 'again');
  await settle();
  assert.equal(asAlice.events.length, 0);
  await alice.client.collection(notesName).unsubscribe();
  await bob.client.collection(notesName).unsubscribe();
  await guest.collection(notesName).unsubscribe();
});

test('hidden fields reach superusers only; delete events carry the record as it was', async () => {
  const asSu = collector();
  const asAlice = collector();
  await su.collection(notesName).subscribe('*', (e) => asSu.push(e));
  await alice.client.collection(notesName).subscribe('*', (e) => asAlice.push(e));
  const note = await su.collection(notesName).create({ title: 't', secret: 's3cret', owner: alice.record.id });
  const suEvent = await asSu.next();
  assert.equal(suEvent.record.secret, 's3cret');
  const aliceEvent = await asAlice.next();
  assert.equal(aliceEvent.action, 'create');
  assert.equal('secret' in aliceEvent.record, false);
  assert.deepEqual(aliceEvent.record, await alice.client.collection(notesName).getOne(note.id));

  await alice.client.collection(notesName).update(note.id, { title: 'before delete' });
  await asSu.next();
  await asAlice.next();
  await su.collection(notesName).delete(note.id);
  const deleted = await asAlice.next();
  assert.equal(deleted.action, 'delete');
  assert.equal(deleted.record.title, 'before delete');
  await su.collection(notesName).unsubscribe();
  await alice.client.collection(notesName).unsubscribe();
});
