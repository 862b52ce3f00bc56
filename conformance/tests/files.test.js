// File fields: multipart uploads through the SDK (File/Blob values + @jsonPayload),
// replace / append / prepend / remove, validation codes, serving via /api/files
// (headers, download, thumbs, ranges), protected files with file tokens, and
// cleanup when the record is deleted.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import zlib from 'node:zlib';
import {
  CollectionTracker,
  USERS_COLLECTION_ID,
  assertFieldError,
  createUserAndLogin,
  expectError,
  newClient,
  randomSuffix,
  superuserClient,
} from './helpers.js';

// ---------------------------------------------------------------- a tiny PNG encoder

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32 (IEEE 802.3, reflected, as PNG chunks use it). */
function crc32(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function pngChunk(type, data) {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const typeAndData = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(typeAndData));
  return Buffer.concat([length, typeAndData, crc]);
}

/** A valid 8-bit RGB PNG of `width` x `height` with a colour gradient (`seed` varies it). */
function makePng(width, height, seed = 0) {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // colour type: truecolour RGB
  // compression, filter and interlace methods stay 0
  const stride = 1 + width * 3;
  const raw = Buffer.alloc(height * stride);
  for (let y = 0; y < height; y++) {
    raw[y * stride] = 0; // filter type None
    for (let x = 0; x < width; x++) {
      const p = y * stride + 1 + x * 3;
      raw[p] = (x * 6 + seed) & 0xff;
      raw[p + 1] = (y * 8) & 0xff;
      raw[p + 2] = (128 + seed * 7) & 0xff;
    }
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', header),
    pngChunk('IDAT', zlib.deflateSync(raw)),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

/** Width and height from a PNG's IHDR chunk (bytes 16..24, big-endian). */
function pngSize(bytes) {
  assert.ok(bytes.length >= 24, `too short for a PNG: ${bytes.length} bytes`);
  assert.deepEqual([...bytes.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a],
    'PNG signature');
  assert.equal(bytes.subarray(12, 16).toString('ascii'), 'IHDR');
  return { width: bytes.readUInt32BE(16), height: bytes.readUInt32BE(20) };
}

// ---------------------------------------------------------------- fixtures

const CSP = "default-src 'none'; media-src 'self'; style-src 'unsafe-inline'; sandbox";
const OWNER_RULE = '@request.auth.id != "" && owner = @request.auth.id';
const IMAGE_MAX_SIZE = 20000;
const name = `files_${randomSuffix()}`;

const PNG = makePng(40, 30);
const PNG_2 = makePng(40, 30, 9);
const TEXT = Buffer.from('hello from a plain text file\n');
const HTML = Buffer.from('<!DOCTYPE html><html><body><p>not rendered inline</p></body></html>');
const SECRET = Buffer.from('top secret contents\n');

let su;
let tracker;
let guest;
let alice; // owner of the records, passes the view rule
let bob; // another user, fails the view rule
let collection;

function pngFile(filename = 'My Photo.PNG', bytes = PNG) {
  return new File([bytes], filename, { type: 'image/png' });
}
function textFile(filename = 'Notes File.txt', bytes = TEXT) {
  return new File([bytes], filename, { type: 'text/plain' });
}
function htmlFile(filename = 'page.html', bytes = HTML) {
  return new File([bytes], filename, { type: 'text/html' });
}

/** `<snake_base>_<10 random [a-z0-9]>.<ext>` for a given base and extension. */
function storedNameRe(base, ext) {
  return new RegExp(`^${base}_[a-z0-9]{10}\\.${ext}$`);
}

/** A record of the test collection, owned by alice and created by her through the SDK. */
function createOwned(data) {
  return alice.client.collection(name).create({ owner: alice.record.id, ...data });
}

/** GET a URL; returns {status, headers, bytes}. */
async function fetchBytes(url, headers = {}) {
  const res = await fetch(url, { headers });
  return { status: res.status, headers: res.headers, bytes: Buffer.from(await res.arrayBuffer()) };
}

async function assertNotFound(url, message = "The requested resource wasn't found.") {
  const res = await fetchBytes(url);
  assert.equal(res.status, 404, `${url}: ${res.bytes.toString()}`);
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  const body = JSON.parse(res.bytes.toString());
  assert.deepEqual(body, { data: {}, message, status: 404 });
}

before(async () => {
  su = await superuserClient();
  tracker = new CollectionTracker(su);
  guest = newClient();
  alice = await createUserAndLogin('alice');
  bob = await createUserAndLogin('bob');
  collection = await tracker.create({
    name,
    type: 'base',
    listRule: OWNER_RULE,
    viewRule: OWNER_RULE,
    createRule: '@request.auth.id != ""',
    updateRule: OWNER_RULE,
    deleteRule: OWNER_RULE,
    fields: [
      { name: 'title', type: 'text' },
      { name: 'meta', type: 'json' },
      { name: 'owner', type: 'relation', collectionId: USERS_COLLECTION_ID, maxSelect: 1 },
      {
        name: 'image',
        type: 'file',
        maxSelect: 1,
        maxSize: IMAGE_MAX_SIZE,
        mimeTypes: ['image/png', 'text/plain'],
        thumbs: ['50x50', '20x0'],
      },
      { name: 'docs', type: 'file', maxSelect: 3, maxSize: 100000 },
      { name: 'secret', type: 'file', maxSelect: 1, protected: true },
    ],
  });
});

after(async () => {
  await tracker.cleanup();
  for (const user of [alice, bob]) {
    if (user) await su.collection('users').delete(user.record.id).catch(() => {});
  }
});

// ---------------------------------------------------------------- collection

test('collection: file field options are stored and returned', async () => {
  const fetched = await su.collections.getOne(name);
  const byName = Object.fromEntries(fetched.fields.map((f) => [f.name, f]));
  for (const f of [byName.image, byName.docs, byName.secret]) {
    assert.equal(f.type, 'file');
    assert.match(f.id, /^file\d+$/);
  }
  assert.equal(byName.image.maxSelect, 1);
  assert.equal(byName.image.maxSize, IMAGE_MAX_SIZE);
  assert.deepEqual(byName.image.mimeTypes, ['image/png', 'text/plain']);
  assert.deepEqual(byName.image.thumbs, ['50x50', '20x0']);
  assert.equal(byName.image.protected, false);
  assert.equal(byName.docs.maxSelect, 3);
  assert.equal(byName.secret.protected, true);
  assert.equal(byName.secret.maxSize, 0);
  assert.deepEqual(fetched.fields, collection.fields);
});

test('collection: mimeTypes and thumbs left out are empty arrays, not null', async () => {
  const fetched = await su.collections.getOne(name);
  const byName = Object.fromEntries(fetched.fields.map((f) => [f.name, f]));
  for (const field of ['docs', 'secret']) {
    assert.deepEqual(byName[field].mimeTypes, [], `${field}.mimeTypes`);
    assert.deepEqual(byName[field].thumbs, [], `${field}.thumbs`);
  }
});

// ---------------------------------------------------------------- uploads

test('create: the SDK sends FormData with @jsonPayload; stored names follow <snake>_<random>.<ext>', async () => {
  const client = newClient();
  client.authStore.save(alice.client.authStore.token, alice.client.authStore.record);
  let sentBody;
  client.beforeSend = (url, options) => {
    sentBody = options.body;
    return { url, options };
  };
  const rec = await client.collection(name).create({
    title: 'with files',
    meta: { nested: [1, 2, { ok: true }] },
    owner: alice.record.id,
    image: pngFile(),
    docs: [textFile(), htmlFile()],
    secret: textFile('Secret Plan.txt', SECRET),
  });
  assert.ok(sentBody instanceof FormData, 'the SDK must switch to multipart for File values');
  assert.ok(sentBody.has('@jsonPayload'), 'non-file values travel in @jsonPayload');
  assert.equal(sentBody.getAll('docs').length, 2);

  assert.equal(rec.title, 'with files');
  assert.deepEqual(rec.meta, { nested: [1, 2, { ok: true }] });
  assert.equal(rec.owner, alice.record.id);
  assert.match(rec.image, storedNameRe('my_photo', 'PNG'));
  assert.ok(Array.isArray(rec.docs));
  assert.equal(rec.docs.length, 2);
  assert.match(rec.docs[0], storedNameRe('notes_file', 'txt'));
  assert.match(rec.docs[1], storedNameRe('page', 'html'));
  assert.match(rec.secret, storedNameRe('secret_plan', 'txt'));
  const again = await alice.client.collection(name).getOne(rec.id);
  assert.deepEqual(again, rec);
});

test('create: name normalisation edge cases (multi-part extensions, short bases, no extension)', async () => {
  const R = '[a-z0-9]{10}';
  const cases = [
    // [uploaded name, bytes, expected stored name]
    ['archive.tar.gz', TEXT, new RegExp(`^archive_${R}\\.tar\\.gz$`)],
    // the last two dot segments are the extension, whatever they are
    ['report.final.v2.TXT', TEXT, new RegExp(`^report_final_${R}\\.v2\\.TXT$`)],
    ['x.longer.txt', TEXT, new RegExp(`^x${R}_${R}\\.longer\\.txt$`)],
    // a base shorter than 3 characters is padded with 10 random characters
    ['ab.txt', TEXT, new RegExp(`^ab${R}_${R}\\.txt$`)],
    ['.hidden', TEXT, new RegExp(`^${R}_${R}\\.hidden$`)],
    // the extension keeps its case; the base is snake_cased
    ['CamelCase Name.Txt', TEXT, new RegExp(`^camel_case_name_${R}\\.Txt$`)],
    // no extension: one is derived from the detected content type
    ['photo', PNG, new RegExp(`^photo_${R}\\.png$`)],
    ['notes', TEXT, new RegExp(`^notes_${R}\\.txt$`)],
  ];
  const rec = await su.collection(name).create({
    docs: cases.slice(0, 3).map(([n, bytes]) => new File([bytes], n)),
  });
  const rec2 = await su.collection(name).create({
    docs: cases.slice(3, 6).map(([n, bytes]) => new File([bytes], n)),
  });
  const rec3 = await su.collection(name).create({
    docs: cases.slice(6).map(([n, bytes]) => new File([bytes], n)),
  });
  const stored = [...rec.docs, ...rec2.docs, ...rec3.docs];
  assert.equal(stored.length, cases.length);
  cases.forEach(([uploaded, , re], i) => assert.match(stored[i], re, `${uploaded} -> ${stored[i]}`));
});

test('create: empty file fields are "" (single) and [] (multiple)', async () => {
  const rec = await createOwned({ title: 'no files' });
  assert.equal(rec.image, '');
  assert.deepEqual(rec.docs, []);
  assert.equal(rec.secret, '');
});

test('update: uploading a new single file replaces the old one, whose URL then 404s', async () => {
  const rec = await createOwned({ image: pngFile() });
  const updated = await alice.client.collection(name).update(rec.id, {
    title: 'replaced',
    image: pngFile('second.png', PNG_2),
  });
  assert.equal(updated.title, 'replaced');
  assert.match(updated.image, storedNameRe('second', 'png'));
  const res = await fetchBytes(guest.files.getURL(updated, updated.image));
  assert.equal(res.status, 200);
  assert.ok(res.bytes.equals(PNG_2), 'the new file is served');
  await assertNotFound(guest.files.getURL(rec, rec.image));
});

test('update: setting a single file field to null clears it', async () => {
  const rec = await createOwned({ image: pngFile() });
  const updated = await alice.client.collection(name).update(rec.id, { image: null });
  assert.equal(updated.image, '');
  await assertNotFound(guest.files.getURL(rec, rec.image));
});

test('update: docs+ appends, +docs prepends, docs- removes by stored name', async () => {
  const rec = await createOwned({ docs: [textFile('first.txt', Buffer.from('first'))] });
  const [first] = rec.docs;

  const appended = await alice.client.collection(name).update(rec.id, {
    'docs+': textFile('second.txt', Buffer.from('second')),
  });
  assert.equal(appended.docs.length, 2);
  assert.equal(appended.docs[0], first);
  assert.match(appended.docs[1], storedNameRe('second', 'txt'));

  const prepended = await alice.client.collection(name).update(rec.id, {
    '+docs': textFile('zeroth.txt', Buffer.from('zeroth')),
  });
  assert.equal(prepended.docs.length, 3);
  assert.match(prepended.docs[0], storedNameRe('zeroth', 'txt'));
  assert.deepEqual(prepended.docs.slice(1), appended.docs);

  const removed = await alice.client.collection(name).update(rec.id, { 'docs-': [first] });
  assert.deepEqual(removed.docs, [prepended.docs[0], appended.docs[1]]);
  await assertNotFound(guest.files.getURL(rec, first));
  for (const [file, text] of [[removed.docs[0], 'zeroth'], [removed.docs[1], 'second']]) {
    const res = await fetchBytes(guest.files.getURL(removed, file));
    assert.equal(res.status, 200);
    assert.equal(res.bytes.toString(), text);
  }

  // removing a name that is not stored is a no-op
  const noop = await alice.client.collection(name).update(rec.id, { 'docs-': ['nothere_abcdefghij.txt'] });
  assert.deepEqual(noop.docs, removed.docs);
});

test('update: the existing names can be re-sent in a new order', async () => {
  const rec = await createOwned({ docs: [textFile('a.txt', Buffer.from('a')), textFile('b.txt', Buffer.from('b'))] });
  const updated = await alice.client.collection(name).update(rec.id, { docs: [rec.docs[1], rec.docs[0]] });
  assert.deepEqual(updated.docs, [rec.docs[1], rec.docs[0]]);
});

// ---------------------------------------------------------------- validation

test('validation: a file over maxSize is validation_file_size_limit; exactly maxSize is fine', async () => {
  const err = await expectError(
    createOwned({ image: textFile('big.txt', Buffer.alloc(IMAGE_MAX_SIZE + 1, 0x61)) }),
    400,
  );
  assert.equal(err.response.message, 'Failed to create record.');
  assertFieldError(err, 'image', 'validation_file_size_limit');
  assert.deepEqual(err.response.data.image.params, { file: 'big.txt', maxSize: IMAGE_MAX_SIZE });
  assert.deepEqual(Object.keys(err.response.data), ['image']);

  const ok = await createOwned({ image: textFile('big.txt', Buffer.alloc(IMAGE_MAX_SIZE, 0x61)) });
  assert.match(ok.image, storedNameRe('big', 'txt'));
});

test('validation: a mime type outside mimeTypes is validation_invalid_mime_type', async () => {
  const err = await expectError(createOwned({ image: htmlFile() }), 400);
  assertFieldError(err, 'image', 'validation_invalid_mime_type');
  assert.deepEqual(Object.keys(err.response.data), ['image']);
});

test('validation: more files than maxSelect is validation_too_many_files (create and docs+)', async () => {
  const four = ['1', '2', '3', '4'].map((n) => textFile(`${n}.txt`, Buffer.from(n)));
  const err = await expectError(createOwned({ docs: four }), 400);
  assertFieldError(err, 'docs', 'validation_too_many_files');
  assert.deepEqual(err.response.data.docs.params, { maxSelect: 3 });

  const rec = await createOwned({ docs: four.slice(0, 2) });
  const upd = await expectError(
    alice.client.collection(name).update(rec.id, { 'docs+': four.slice(2) }),
    400,
  );
  assert.equal(upd.response.message, 'Failed to update record.');
  assertFieldError(upd, 'docs', 'validation_too_many_files');
  const unchanged = await alice.client.collection(name).getOne(rec.id);
  assert.deepEqual(unchanged.docs, rec.docs);
});

test('validation: a file name that is not stored on the record is validation_invalid_file', async () => {
  const rec = await createOwned({ docs: [textFile()], image: pngFile() });
  const err = await expectError(
    alice.client.collection(name).update(rec.id, { docs: [rec.docs[0], 'nope_abcdefghij.txt'] }),
    400,
  );
  assertFieldError(err, 'docs', 'validation_invalid_file');
  assert.deepEqual(err.response.data.docs.params, { invalidFiles: ['nope_abcdefghij.txt'] });

  const single = await expectError(
    alice.client.collection(name).update(rec.id, { image: 'nope.png' }),
    400,
  );
  assertFieldError(single, 'image', 'validation_invalid_file');
  assert.deepEqual(single.response.data.image.params, { invalidFiles: ['nope.png'] });

  // a name stored on another record is not valid either
  const other = await createOwned({ docs: [textFile()] });
  const foreign = await expectError(
    alice.client.collection(name).update(rec.id, { docs: other.docs }),
    400,
  );
  assertFieldError(foreign, 'docs', 'validation_invalid_file');
});

// ---------------------------------------------------------------- serving

let served; // a record with a PNG image and text/html docs, created once for the serving tests

async function servedRecord() {
  if (!served) {
    served = await createOwned({ image: pngFile(), docs: [textFile(), htmlFile()] });
  }
  return served;
}

test('serve: a PNG comes back byte for byte, inline, with the sandbox headers', async () => {
  const rec = await servedRecord();
  const url = guest.files.getURL(rec, rec.image);
  assert.equal(url, `${guest.baseURL}/api/files/${rec.collectionId}/${rec.id}/${rec.image}`);
  const res = await fetchBytes(url);
  assert.equal(res.status, 200);
  assert.ok(res.bytes.equals(PNG), 'served bytes equal the upload');
  assert.equal(res.headers.get('content-type'), 'image/png');
  assert.equal(res.headers.get('content-length'), String(PNG.length));
  assert.equal(res.headers.get('content-disposition'), `inline; filename="${rec.image}"`);
  assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
  assert.equal(res.headers.get('content-security-policy'), CSP);
  assert.equal(res.headers.get('accept-ranges'), 'bytes');
  assert.equal(res.headers.get('cache-control'), 'max-age=2592000, stale-while-revalidate=86400');
});

test('serve: the collection name works in place of its id', async () => {
  const rec = await servedRecord();
  const res = await fetchBytes(`${guest.baseURL}/api/files/${name}/${rec.id}/${rec.image}`);
  assert.equal(res.status, 200);
  assert.ok(res.bytes.equals(PNG));
});

test('serve: .txt and .html files are attachments with their text content types', async () => {
  const rec = await servedRecord();
  for (const [file, bytes, type] of [
    [rec.docs[0], TEXT, 'text/plain; charset=utf-8'],
    [rec.docs[1], HTML, 'text/html; charset=utf-8'],
  ]) {
    const res = await fetchBytes(guest.files.getURL(rec, file));
    assert.equal(res.status, 200);
    assert.ok(res.bytes.equals(bytes), `${file}: body`);
    assert.equal(res.headers.get('content-type'), type);
    assert.equal(res.headers.get('content-disposition'), `attachment; filename="${file}"`);
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(res.headers.get('content-security-policy'), CSP);
  }
});

test('serve: {download: true} forces an attachment for a PNG', async () => {
  const rec = await servedRecord();
  const url = guest.files.getURL(rec, rec.image, { download: true });
  assert.match(url, /\?download=true$/);
  const res = await fetchBytes(url);
  assert.equal(res.status, 200);
  assert.ok(res.bytes.equals(PNG));
  assert.equal(res.headers.get('content-type'), 'image/png');
  assert.equal(res.headers.get('content-disposition'), `attachment; filename="${rec.image}"`);
});

test('serve: thumb=100x100 on a PNG is a 100x100 PNG', async () => {
  const rec = await servedRecord();
  const res = await fetchBytes(guest.files.getURL(rec, rec.image, { thumb: '100x100' }));
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'image/png');
  assert.deepEqual(pngSize(res.bytes), { width: 100, height: 100 });
  assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
  assert.equal(res.headers.get('content-security-policy'), CSP);
});

test('serve: a thumb is served under the name <size>_<stored name>', async () => {
  const rec = await servedRecord();
  for (const thumb of ['100x100', '50x50']) {
    const res = await fetchBytes(guest.files.getURL(rec, rec.image, { thumb }));
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-disposition'), `inline; filename="${thumb}_${rec.image}"`);
  }
  const download = await fetchBytes(guest.files.getURL(rec, rec.image, { thumb: '50x50', download: true }));
  assert.equal(download.status, 200);
  assert.deepEqual(pngSize(download.bytes), { width: 50, height: 50 });
  assert.equal(download.headers.get('content-disposition'), `attachment; filename="50x50_${rec.image}"`);
});

test('serve: thumbs listed on the field are made (50x50 crop, 20x0 keeps the ratio)', async () => {
  const rec = await servedRecord();
  const crop = await fetchBytes(guest.files.getURL(rec, rec.image, { thumb: '50x50' }));
  assert.equal(crop.status, 200);
  assert.deepEqual(pngSize(crop.bytes), { width: 50, height: 50 });
  const ratio = await fetchBytes(guest.files.getURL(rec, rec.image, { thumb: '20x0' }));
  assert.equal(ratio.status, 200);
  assert.deepEqual(pngSize(ratio.bytes), { width: 20, height: 15 });
});

test('serve: a thumb size not in the field list returns the original bytes', async () => {
  const rec = await servedRecord();
  for (const thumb of ['33x33', '200x200', 'nonsense']) {
    const res = await fetchBytes(guest.files.getURL(rec, rec.image, { thumb }));
    assert.equal(res.status, 200, thumb);
    assert.ok(res.bytes.equals(PNG), `${thumb}: original bytes`);
    assert.equal(res.headers.get('content-disposition'), `inline; filename="${rec.image}"`);
  }
});

test('serve: 100x100 is available on a field without thumbs, other sizes are not', async () => {
  const rec = await createOwned({ docs: [pngFile('in docs.png')] });
  const thumb = await fetchBytes(guest.files.getURL(rec, rec.docs[0], { thumb: '100x100' }));
  assert.equal(thumb.status, 200);
  assert.deepEqual(pngSize(thumb.bytes), { width: 100, height: 100 });
  const other = await fetchBytes(guest.files.getURL(rec, rec.docs[0], { thumb: '50x50' }));
  assert.equal(other.status, 200);
  assert.ok(other.bytes.equals(PNG));
});

test('serve: a thumb of a non-image file is the original file', async () => {
  const rec = await servedRecord();
  const res = await fetchBytes(guest.files.getURL(rec, rec.docs[0], { thumb: '100x100' }));
  assert.equal(res.status, 200);
  assert.ok(res.bytes.equals(TEXT));
  assert.equal(res.headers.get('content-type'), 'text/plain; charset=utf-8');
});

test('serve: Range requests get 206 with Content-Range', async () => {
  const rec = await servedRecord();
  const url = guest.files.getURL(rec, rec.image);
  const head = await fetchBytes(url, { Range: 'bytes=0-9' });
  assert.equal(head.status, 206);
  assert.equal(head.bytes.length, 10);
  assert.ok(head.bytes.equals(PNG.subarray(0, 10)));
  assert.equal(head.headers.get('content-range'), `bytes 0-9/${PNG.length}`);
  assert.equal(head.headers.get('content-length'), '10');
  assert.equal(head.headers.get('content-type'), 'image/png');

  const tail = await fetchBytes(url, { Range: 'bytes=-4' });
  assert.equal(tail.status, 206);
  assert.ok(tail.bytes.equals(PNG.subarray(PNG.length - 4)));
  assert.equal(tail.headers.get('content-range'), `bytes ${PNG.length - 4}-${PNG.length - 1}/${PNG.length}`);

  const past = await fetchBytes(url, { Range: `bytes=${PNG.length + 100}-` });
  assert.equal(past.status, 416);
  assert.equal(past.headers.get('content-range'), `bytes */${PNG.length}`);
});

test('serve: a name the record does not hold, or an unknown record, is 404', async () => {
  const rec = await servedRecord();
  await assertNotFound(guest.files.getURL(rec, 'missing_abcdefghij.png'));
  await assertNotFound(guest.files.getURL({ ...rec, id: 'abcdefghij12345' }, rec.image));
});

test('serve: an unknown collection is 404 "Missing or invalid collection context."', async () => {
  const rec = await servedRecord();
  await assertNotFound(
    guest.files.getURL({ ...rec, collectionId: 'nosuchcollection' }, rec.image),
    'Missing or invalid collection context.',
  );
});

test('serve: an unprotected file is public even when the view rule hides the record', async () => {
  const rec = await servedRecord();
  await expectError(guest.collection(name).getOne(rec.id), 404);
  await expectError(bob.client.collection(name).getOne(rec.id), 404);
  const res = await fetchBytes(guest.files.getURL(rec, rec.image));
  assert.equal(res.status, 200);
  assert.ok(res.bytes.equals(PNG));
});

// ---------------------------------------------------------------- protected files

test('protected: without a token the file is 404', async () => {
  const rec = await createOwned({ secret: textFile('classified.txt', SECRET) });
  await assertNotFound(guest.files.getURL(rec, rec.secret));
  // the regular auth token in the Authorization header does not count either
  const res = await fetchBytes(guest.files.getURL(rec, rec.secret), {
    Authorization: alice.client.authStore.token,
  });
  assert.equal(res.status, 404);
});

test('protected: a file token of a user who passes the view rule gets the file', async () => {
  const rec = await createOwned({ secret: textFile('classified.txt', SECRET) });
  const token = await alice.client.files.getToken();
  assert.equal(typeof token, 'string');
  assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/);
  const payload = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString());
  assert.equal(payload.type, 'file');
  assert.equal(payload.id, alice.record.id);
  assert.equal(payload.collectionId, USERS_COLLECTION_ID);

  const url = guest.files.getURL(rec, rec.secret, { token });
  assert.match(url, /\?token=/);
  const res = await fetchBytes(url);
  assert.equal(res.status, 200);
  assert.ok(res.bytes.equals(SECRET));
  assert.equal(res.headers.get('content-disposition'), `attachment; filename="${rec.secret}"`);
  assert.equal(res.headers.get('content-security-policy'), CSP);
});

test('protected: a user who fails the view rule gets 404 even with their own file token', async () => {
  const rec = await createOwned({ secret: textFile('classified.txt', SECRET) });
  const token = await bob.client.files.getToken();
  await assertNotFound(guest.files.getURL(rec, rec.secret, { token }));
});

test('protected: an auth token is not accepted as a file token', async () => {
  const rec = await createOwned({ secret: textFile('classified.txt', SECRET) });
  await assertNotFound(guest.files.getURL(rec, rec.secret, { token: alice.client.authStore.token }));
});

test('protected: a superuser file token opens any protected file', async () => {
  const rec = await createOwned({ secret: textFile('classified.txt', SECRET) });
  const token = await su.files.getToken();
  const res = await fetchBytes(guest.files.getURL(rec, rec.secret, { token }));
  assert.equal(res.status, 200);
  assert.ok(res.bytes.equals(SECRET));
});

test('protected: getToken() as a guest is 401', async () => {
  const err = await expectError(guest.files.getToken(), 401);
  assert.equal(err.response.message, 'The request requires valid record authorization token.');
  assert.deepEqual(err.response.data, {});
});

// ---------------------------------------------------------------- delete

test('delete: after the record is deleted its file URLs are 404', async () => {
  const rec = await createOwned({
    image: pngFile(),
    docs: [textFile()],
    secret: textFile('classified.txt', SECRET),
  });
  const token = await alice.client.files.getToken();
  const urls = [
    guest.files.getURL(rec, rec.image),
    guest.files.getURL(rec, rec.image, { thumb: '100x100' }),
    guest.files.getURL(rec, rec.docs[0]),
    guest.files.getURL(rec, rec.secret, { token }),
  ];
  for (const url of urls) assert.equal((await fetchBytes(url)).status, 200, url);
  assert.equal(await alice.client.collection(name).delete(rec.id), true);
  for (const url of urls) await assertNotFound(url);
});
