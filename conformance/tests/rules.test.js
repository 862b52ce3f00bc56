// API rules matrix: guest / owner / other user / superuser against owner-based,
// locked (null) and open ("") rules; filter restrictions for non-superusers.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  CollectionTracker,
  USERS_COLLECTION_ID,
  createUserAndLogin,
  customRecordId,
  expectError,
  newClient,
  randomSuffix,
  superuserClient,
} from './helpers.js';

const OWNER_RULE = 'owner = @request.auth.id';
const suffix = randomSuffix();
const owned = `owned_${suffix}`;
const locked = `locked_${suffix}`;
const open = `open_${suffix}`;

let su;
let tracker;
let guest;
let alice; // the owner
let bob; // another user
const rec = {}; // seeded records of `owned`: a1, a2 (alice), b1 (bob), n1 (no owner)
let lockedRec;

before(async () => {
  su = await superuserClient();
  tracker = new CollectionTracker(su);
  await tracker.create({
    name: owned,
    type: 'base',
    listRule: OWNER_RULE,
    viewRule: OWNER_RULE,
    createRule: `@request.auth.id != "" && ${OWNER_RULE}`,
    updateRule: OWNER_RULE,
    deleteRule: OWNER_RULE,
    fields: [
      { name: 'title', type: 'text' },
      { name: 'owner', type: 'relation', collectionId: USERS_COLLECTION_ID, maxSelect: 1 },
      { name: 'secret', type: 'text', hidden: true },
    ],
  });
  await tracker.create({
    name: locked,
    type: 'base',
    listRule: null,
    viewRule: null,
    createRule: null,
    updateRule: null,
    deleteRule: null,
    fields: [{ name: 'title', type: 'text' }],
  });
  await tracker.create({
    name: open,
    type: 'base',
    listRule: '',
    viewRule: '',
    createRule: '',
    updateRule: '',
    deleteRule: '',
    fields: [
      { name: 'title', type: 'text' },
      { name: 'secret', type: 'text', hidden: true },
    ],
  });

  guest = newClient();
  alice = await createUserAndLogin('alice');
  bob = await createUserAndLogin('bob');

  rec.a1 = await su.collection(owned).create({ title: 'a1 apple', owner: alice.record.id, secret: 's-a1' });
  rec.a2 = await su.collection(owned).create({ title: 'a2 banana', owner: alice.record.id, secret: 's-a2' });
  rec.b1 = await su.collection(owned).create({ title: 'b1 apple', owner: bob.record.id, secret: 's-b1' });
  rec.n1 = await su.collection(owned).create({ title: 'n1 orphan', secret: 's-n1' });
  lockedRec = await su.collection(locked).create({ title: 'locked one' });
});

after(async () => {
  await tracker.cleanup();
  for (const user of [alice, bob]) {
    if (user) await su.collection('users').delete(user.record.id).catch(() => {});
  }
});

async function listTitles(client, options = {}) {
  const list = await client.collection(owned).getList(1, 50, { sort: 'title', ...options });
  return list.items.map((r) => r.title);
}

// ---------------------------------------------------------------- list

test('list: the owner sees only their own records', async () => {
  assert.deepEqual(await listTitles(alice.client), ['a1 apple', 'a2 banana']);
  assert.deepEqual(await listTitles(bob.client), ['b1 apple']);
});

test('list: the rule is ANDed with the client filter and totals count only visible rows', async () => {
  const list = await alice.client.collection(owned).getList(1, 50, { filter: 'title ~ "apple"' });
  assert.deepEqual(list.items.map((r) => r.title), ['a1 apple']);
  assert.equal(list.totalItems, 1);
  const none = await bob.client.collection(owned).getList(1, 50, { filter: 'title ~ "banana"' });
  assert.deepEqual(none.items, []);
  assert.equal(none.totalItems, 0);
});

test('list: a superuser sees every record regardless of the rule', async () => {
  assert.deepEqual(await listTitles(su), ['a1 apple', 'a2 banana', 'b1 apple', 'n1 orphan']);
});

test('list: a guest matches only records whose owner is empty (empty/null folding)', async () => {
  // For a guest @request.auth.id is "", and `owner = ""` also matches an
  // empty relation, so the owner-less record is visible to guests.
  assert.deepEqual(await listTitles(guest), ['n1 orphan']);
});

// ---------------------------------------------------------------- view

test('view: the owner can view their record', async () => {
  const got = await alice.client.collection(owned).getOne(rec.a1.id);
  assert.equal(got.title, 'a1 apple');
  assert.equal(got.owner, alice.record.id);
});

test('view: another user and a guest get 404 for a record the rule does not match', async () => {
  for (const client of [bob.client, guest]) {
    const err = await expectError(client.collection(owned).getOne(rec.a1.id), 404);
    assert.equal(err.response.message, "The requested resource wasn't found.");
    assert.deepEqual(err.response.data, {});
  }
});

test('view: a superuser can view any record', async () => {
  assert.equal((await su.collection(owned).getOne(rec.b1.id)).title, 'b1 apple');
});

// ---------------------------------------------------------------- create

test('create: a user may create a record they own', async () => {
  const created = await alice.client.collection(owned).create({ title: 'alice new', owner: alice.record.id });
  assert.equal(created.owner, alice.record.id);
  assert.equal((await su.collection(owned).getOne(created.id)).title, 'alice new');
  await su.collection(owned).delete(created.id);
});

test('create: a failing create rule is 400 "Failed to create record." with empty data', async () => {
  const forOther = await expectError(
    alice.client.collection(owned).create({ title: 'for bob', owner: bob.record.id }),
    400,
  );
  assert.equal(forOther.response.message, 'Failed to create record.');
  assert.deepEqual(forOther.response.data, {});
  const asGuest = await expectError(guest.collection(owned).create({ title: 'guest' }), 400);
  assert.equal(asGuest.response.message, 'Failed to create record.');
  assert.deepEqual(asGuest.response.data, {});
  const count = await su.collection(owned).getList(1, 1, { filter: 'title = "for bob" || title = "guest"' });
  assert.equal(count.totalItems, 0, 'nothing was created');
});

test('create: a superuser may create a record for anyone', async () => {
  const created = await su.collection(owned).create({ title: 'su made', owner: bob.record.id });
  assert.equal(created.owner, bob.record.id);
  await su.collection(owned).delete(created.id);
});

// ---------------------------------------------------------------- update / delete

test('update: the owner can update; another user and a guest get 404', async () => {
  const updated = await alice.client.collection(owned).update(rec.a2.id, { title: 'a2 banana' });
  assert.equal(updated.title, 'a2 banana');
  for (const client of [bob.client, guest]) {
    const err = await expectError(client.collection(owned).update(rec.a2.id, { title: 'hacked' }), 404);
    assert.deepEqual(err.response.data, {});
  }
  assert.equal((await su.collection(owned).getOne(rec.a2.id)).title, 'a2 banana');
});

test('delete: another user and a guest get 404 and the record survives', async () => {
  for (const client of [bob.client, guest]) {
    const err = await expectError(client.collection(owned).delete(rec.a1.id), 404);
    assert.deepEqual(err.response.data, {});
  }
  assert.equal((await su.collection(owned).getOne(rec.a1.id)).id, rec.a1.id);
});

test('delete: the owner can delete their own record', async () => {
  const temp = await su.collection(owned).create({ title: 'temp', owner: alice.record.id });
  assert.equal(await alice.client.collection(owned).delete(temp.id), true);
  await expectError(su.collection(owned).getOne(temp.id), 404);
});

test('update and delete: a superuser bypasses the rule', async () => {
  const temp = await su.collection(owned).create({ title: 'temp2', owner: bob.record.id });
  const updated = await su.collection(owned).update(temp.id, { title: 'temp2 edited' });
  assert.equal(updated.title, 'temp2 edited');
  assert.equal(await su.collection(owned).delete(temp.id), true);
});

// ---------------------------------------------------------------- null rules

test('null rules: every action is 403 for guests and users', async () => {
  const actions = [
    ['list', (c) => c.collection(locked).getList(1, 10)],
    ['view', (c) => c.collection(locked).getOne(lockedRec.id)],
    ['create', (c) => c.collection(locked).create({ title: 'nope' })],
    ['update', (c) => c.collection(locked).update(lockedRec.id, { title: 'nope' })],
    ['delete', (c) => c.collection(locked).delete(lockedRec.id)],
  ];
  for (const client of [guest, alice.client]) {
    for (const [action, call] of actions) {
      const err = await expectError(call(client), 403);
      assert.equal(err.response.message, 'Only superusers can perform this action.', action);
      assert.deepEqual(err.response.data, {});
    }
  }
  assert.equal((await su.collection(locked).getOne(lockedRec.id)).title, 'locked one');
});

test('null rules: the 403 comes before the record lookup (unknown ids are 403 too)', async () => {
  await expectError(guest.collection(locked).getOne(customRecordId()), 403);
  await expectError(alice.client.collection(locked).delete(customRecordId()), 403);
});

test('null rules: a superuser can list, create, update and delete', async () => {
  const created = await su.collection(locked).create({ title: 'su only' });
  const list = await su.collection(locked).getList(1, 10);
  assert.equal(list.totalItems, 2);
  assert.equal((await su.collection(locked).update(created.id, { title: 'su edited' })).title, 'su edited');
  assert.equal(await su.collection(locked).delete(created.id), true);
});

// ---------------------------------------------------------------- empty rules

test('empty rules: a guest can list, view, create, update and delete', async () => {
  const created = await guest.collection(open).create({ title: 'from guest' });
  assert.equal(created.title, 'from guest');
  const list = await guest.collection(open).getList(1, 10, { filter: `id = "${created.id}"` });
  assert.equal(list.totalItems, 1);
  assert.equal((await guest.collection(open).getOne(created.id)).title, 'from guest');
  assert.equal((await guest.collection(open).update(created.id, { title: 'guest edit' })).title, 'guest edit');
  assert.equal(await guest.collection(open).delete(created.id), true);
  await expectError(guest.collection(open).getOne(created.id), 404);
});

test('empty rules: users can do everything too', async () => {
  const created = await bob.client.collection(open).create({ title: 'from bob' });
  assert.equal((await alice.client.collection(open).update(created.id, { title: 'alice edit' })).title, 'alice edit');
  assert.equal(await alice.client.collection(open).delete(created.id), true);
});

// ---------------------------------------------------------------- hidden fields

test('hidden fields are omitted for users and guests but returned to superusers', async () => {
  const mine = await alice.client.collection(owned).getOne(rec.a1.id);
  assert.ok(!('secret' in mine), 'hidden field not output to the owner');
  const asSu = await su.collection(owned).getOne(rec.a1.id);
  assert.equal(asSu.secret, 's-a1');
});

test('hidden fields sent by a non-superuser are silently ignored', async () => {
  const created = await guest.collection(open).create({ title: 'sneaky', secret: 'guest-value' });
  assert.ok(!('secret' in created));
  assert.equal((await su.collection(open).getOne(created.id)).secret, '');
  await su.collection(open).delete(created.id);
});

test('filtering or sorting on a hidden field is 400 for non-superusers', async () => {
  const filterErr = await expectError(
    alice.client.collection(owned).getList(1, 10, { filter: 'secret = "s-a1"' }),
    400,
  );
  assert.deepEqual(filterErr.response.data, {});
  await expectError(guest.collection(open).getList(1, 10, { filter: 'secret != ""' }), 400);
  await expectError(alice.client.collection(owned).getList(1, 10, { sort: 'secret' }), 400);
});

test('a superuser may filter on a hidden field', async () => {
  const list = await su.collection(owned).getList(1, 10, { filter: 'secret = "s-a1"' });
  assert.deepEqual(list.items.map((r) => r.title), ['a1 apple']);
});

// ---------------------------------------------------------------- @request / @collection in filters

test('a non-superuser filter using @request.auth.id is 403', async () => {
  const err = await expectError(
    alice.client.collection(owned).getList(1, 10, { filter: 'owner = @request.auth.id' }),
    403,
  );
  assert.equal(err.response.message, 'Only superusers can filter by @request.');
  assert.deepEqual(err.response.data, {});
  const guestErr = await expectError(
    guest.collection(open).getList(1, 10, { filter: '@request.auth.id = ""' }),
    403,
  );
  assert.equal(guestErr.response.message, 'Only superusers can filter by @request.');
});

test('a non-superuser filter using @collection. is 403', async () => {
  const err = await expectError(
    alice.client.collection(owned).getList(1, 10, { filter: `@collection.${open}.title ?= "x"` }),
    403,
  );
  assert.equal(err.response.message, 'Only superusers can filter by @collection.');
  assert.deepEqual(err.response.data, {});
});

test('a non-superuser sort using @request is 403 as well', async () => {
  await expectError(alice.client.collection(owned).getList(1, 10, { sort: '@request.auth.id' }), 403);
});

test('a superuser may use @request.auth and @collection in filters', async () => {
  const list = await su.collection(owned).getList(1, 10, {
    filter: '@request.auth.id != "" && owner = ""',
  });
  assert.deepEqual(list.items.map((r) => r.title), ['n1 orphan']);
  const viaCollection = await su.collection(owned).getList(1, 10, {
    filter: `@collection.${locked}.title ?= "locked one" && title ~ "b1"`,
  });
  assert.deepEqual(viaCollection.items.map((r) => r.title), ['b1 apple']);
});

// ---------------------------------------------------------------- users collection rules

test('the default users rules let a user see only themselves', async () => {
  const list = await alice.client.collection('users').getList(1, 50);
  assert.deepEqual(list.items.map((u) => u.id), [alice.record.id]);
  assert.equal(list.items[0].email, alice.email, 'own email is visible');
  await expectError(alice.client.collection('users').getOne(bob.record.id), 404);
  await expectError(guest.collection('users').getOne(bob.record.id), 404);
});

test('a user created by a guest hides email, password and tokenKey in the create response', async () => {
  const email = `visible_${randomSuffix()}@example.com`;
  const created = await guest.collection('users').create({
    email, password: 'password-123', passwordConfirm: 'password-123',
  });
  try {
    assert.equal(created.collectionId, USERS_COLLECTION_ID);
    assert.equal(created.emailVisibility, false);
    assert.equal(created.verified, false);
    assert.ok(!('email' in created), 'email key is omitted when not visible');
    assert.ok(!('password' in created));
    assert.ok(!('tokenKey' in created));
    const asSu = await su.collection('users').getOne(created.id);
    assert.equal(asSu.email, email, 'superusers see the email');
  } finally {
    await su.collection('users').delete(created.id);
  }
});

test('creating a user with mismatched passwordConfirm fails on passwordConfirm', async () => {
  const err = await expectError(
    guest.collection('users').create({
      email: `mismatch_${randomSuffix()}@example.com`, password: 'password-123', passwordConfirm: 'other-pass-1',
    }),
    400,
  );
  assert.equal(err.response.data.passwordConfirm.code, 'validation_values_mismatch');
});

test('creating a user with a duplicate email fails with validation_not_unique on email', async () => {
  const err = await expectError(
    guest.collection('users').create({
      email: alice.email, password: 'password-123', passwordConfirm: 'password-123',
    }),
    400,
  );
  assert.equal(err.response.data.email.code, 'validation_not_unique');
});

test('creating a user with a short password or no email fails on those fields', async () => {
  const short = await expectError(
    guest.collection('users').create({
      email: `short_${randomSuffix()}@example.com`, password: 'short', passwordConfirm: 'short',
    }),
    400,
  );
  assert.equal(short.response.message, 'Failed to create record.');
  assert.equal(short.response.data.password.code, 'validation_min_text_constraint');
  const noEmail = await expectError(
    guest.collection('users').create({ password: 'password-123', passwordConfirm: 'password-123' }),
    400,
  );
  assert.equal(noEmail.response.data.email.code, 'validation_required');
});

test('a guest listing users under the default rule gets an empty list, not an error', async () => {
  const list = await guest.collection('users').getList(1, 10);
  assert.deepEqual(list.items, []);
  assert.equal(list.totalItems, 0);
  assert.equal(list.totalPages, 0);
});
