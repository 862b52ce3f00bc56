// A small SMTP receiver on loopback for the tests that follow mailed links and codes.
// Not a test file: node's test runner only picks up files named *.test.js.
import net from 'node:net';

// 220 greeting, EHLO/HELO/MAIL/RCPT/DATA/RSET/NOOP/QUIT; every mail is kept as
// {rcpt: [addresses], text: headers + body with quoted-printable decoded}.
function qpDecode(text) {
  const joined = text.replace(/=\r?\n/g, '');
  const bytes = [];
  for (let i = 0; i < joined.length; i++) {
    const hex = joined.slice(i + 1, i + 3);
    if (joined[i] === '=' && /^[0-9A-Fa-f]{2}$/.test(hex)) {
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else {
      bytes.push(...Buffer.from(joined[i], 'utf8'));
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

export function startSmtpSink() {
  const mails = [];
  const server = net.createServer((socket) => {
    let buffer = '';
    let inData = false;
    let data = '';
    let rcpt = [];
    socket.write('220 sink.test ESMTP\r\n');
    socket.on('data', (chunk) => {
      buffer += chunk.toString('utf8');
      let at;
      while ((at = buffer.indexOf('\r\n')) >= 0) {
        const line = buffer.slice(0, at);
        buffer = buffer.slice(at + 2);
        if (inData) {
          if (line === '.') {
            inData = false;
            mails.push({ rcpt, text: qpDecode(data) });
            rcpt = [];
            data = '';
            socket.write('250 2.0.0 queued\r\n');
          } else {
            data += (line.startsWith('.') ? line.slice(1) : line) + '\n';
          }
          continue;
        }
        const verb = line.split(' ')[0].toUpperCase();
        if (verb === 'EHLO') socket.write('250-sink.test\r\n250 8BITMIME\r\n');
        else if (verb === 'MAIL') {
          rcpt = [];
          socket.write('250 2.1.0 ok\r\n');
        } else if (verb === 'RCPT') {
          rcpt.push(line.replace(/^RCPT TO:\s*/i, '').replace(/[<>]/g, '').trim());
          socket.write('250 2.1.5 ok\r\n');
        } else if (verb === 'DATA') {
          inData = true;
          socket.write('354 go ahead\r\n');
        } else if (verb === 'QUIT') {
          socket.end('221 2.0.0 bye\r\n');
        } else socket.write('250 2.0.0 ok\r\n');
      }
    });
    socket.on('error', () => {});
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve({ server, mails, port: server.address().port }));
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** How many mails `sink` has received for `to`. */
export function mailsTo(sink, to) {
  return sink.mails.filter((m) => m.rcpt.includes(to)).length;
}

/** Waits up to 10 s for the mail to `to` after the first `seenCount`; returns it. */
export async function nextMailTo(sink, to, seenCount = 0) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const matching = sink.mails.filter((m) => m.rcpt.includes(to));
    if (matching.length > seenCount) return matching[seenCount];
    if (Date.now() > deadline) throw new Error(`no mail to ${to} arrived`);
    await sleep(25);
  }
}
