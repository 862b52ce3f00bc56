#!/usr/bin/env python3
"""Summarize `perf script -F tid,ip,sym --no-inline` output (from a --call-graph dwarf
recording) read on stdin: self time by leaf symbol, inclusive time by symbol (each symbol
counted once per sample), and a coarse breakdown by component.

    perf script -i X.data -F tid,ip,sym --no-inline | python3 bench/perf_fold.py [TOP]
"""

import collections
import re
import sys

# Component of a sample = the first of these (checked leaf -> root) that a frame matches.
# Order matters: the SQLite engine under rusqlite is "sqlite", bcrypt is "bcrypt", etc.
COMPONENTS = [
    ("bcrypt", re.compile(r"bcrypt|blowfish|Blowfish")),
    ("sqlite: prepare/compile SQL", re.compile(r"^sqlite3(LockAndPrepare|Prepare|RunParser|Parser|"
                                                r"WhereBegin|Select|ExprCode|CodeVerify|Vdbe(Make|Finish))")),
    ("sqlite: fsync/WAL write", re.compile(r"^(fsync|fdatasync|__libc_fsync|unixSync|sqlite3WalFrames|walWrite)")),
    ("sqlite: execute", re.compile(r"^(sqlite3|pcache|btree|vdbe|balance|moveTo|getAndInitPage|"
                                   r"accessPayload|walFindFrame|unixRead|pager|insertCell|fillInCell|"
                                   r"dropCell|clearCell|sqlite3_step|sqlite3_reset|sqlite3_column|"
                                   r"sqlite3_bind|sqlite3_finalize|sqlite3_exec)")),
    ("rusqlite glue (statement cache, binds, rows)", re.compile(r"^(rusqlite|hashlink|lru)")),
    ("JSON (serde_json)", re.compile(r"serde_json|serde::")),
    ("basalt-sql (SQL text, filter compile)", re.compile(r"basalt_sql|basalt_filter")),
    ("basalt-schema (validate, coerce)", re.compile(r"basalt_schema")),
    ("basalt-store-sqlite (jobs, values)", re.compile(r"basalt_store")),
    ("basalt-core (services, rules, auth, export)", re.compile(r"basalt_core")),
    ("basalt-http (extractors, bodies, responses)", re.compile(r"basalt_http")),
    ("JWT", re.compile(r"jsonwebtoken|hmac|sha2")),
    ("channels / wake-ups (crossbeam, oneshot)", re.compile(r"crossbeam|tokio::sync::oneshot")),
    ("HTTP (hyper, axum, tower)", re.compile(r"hyper|axum|tower|http::")),
    ("tokio runtime / scheduling", re.compile(r"tokio::")),
]

TID_LINE = re.compile(r"^\s*(\d+)\s*$")
FRAME = re.compile(r"^\s+([0-9a-f]+)\s+(.*)$")


def clean(sym):
    sym = re.sub(r"\+0x[0-9a-f]+$", "", sym)
    sym = sym.replace("{{closure}}", "{closure}")
    return sym


def main():
    top = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    samples = []
    cur = None
    for line in sys.stdin:
        line = line.rstrip("\n")
        if not line.strip():
            if cur:
                samples.append(cur)
            cur = None
            continue
        m = FRAME.match(line)
        if m and cur is not None:
            addr, sym = m.groups()
            kernel = addr.startswith("ffffffff")
            cur.append(("[k] " if kernel else "") + clean(sym))
        else:
            cur = []
    if cur:
        samples.append(cur)
    n = len(samples)
    if not n:
        print("no samples")
        return
    self_c = collections.Counter(s[0] for s in samples if s)
    incl = collections.Counter()
    comp = collections.Counter()
    for s in samples:
        for f in set(s):
            incl[f] += 1
        kernel_leaf = bool(s) and s[0].startswith("[k] ")
        name = None
        for f in s:
            if f.startswith("[k] "):
                continue
            for cname, rx in COMPONENTS:
                if rx.search(f):
                    name = cname
                    break
            if name:
                break
        if name is None:
            name = "other (libc, std, unknown)"
        if kernel_leaf and name in ("HTTP (hyper, axum, tower)", "tokio runtime / scheduling",
                                    "other (libc, std, unknown)"):
            name = "kernel: sockets, epoll, futex, scheduling"
        comp[name] += 1
    print(f"{n} samples")
    print("\n== by component (first matching frame from the leaf; kernel time under "
          "HTTP/tokio counted as kernel) ==")
    for k, v in comp.most_common():
        print(f"{100 * v / n:6.1f}%  {k}")
    print(f"\n== self time, top {top} symbols ==")
    for k, v in self_c.most_common(top):
        print(f"{100 * v / n:6.1f}%  {k[:150]}")
    print(f"\n== inclusive time, top {2 * top} symbols (runtime/std plumbing omitted) ==")
    skip = re.compile(r"^(std::|core::|tokio::runtime|<core::|start_thread|clone3|"
                      r"<std::|<alloc::boxed|__rust|<tokio::runtime|<futures_util|"
                      r"futures_util::|<core::pin|\[k\] (entry_SYSCALL|do_syscall))")
    shown = 0
    for k, v in incl.most_common():
        if skip.search(k):
            continue
        print(f"{100 * v / n:6.1f}%  {k[:150]}")
        shown += 1
        if shown >= 2 * top:
            break


if __name__ == "__main__":
    main()
