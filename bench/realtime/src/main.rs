//! Realtime load client (issue 7):
//!
//! `basalt-bench-realtime HOST:PORT COLLECTION [--clients N] [--rate R] [--duration D]
//!  [--pid SERVER_PID] [--drain S] [--payload BYTES] [--threads T] [--writers W]
//!  [--connect-concurrency C]`
//!
//! 1. opens N SSE streams (`GET /api/realtime`), reads each `PB_CONNECT` clientId;
//! 2. subscribes every client to `COLLECTION/*` as a guest (`POST /api/realtime`, over a
//!    few keep-alive control connections);
//! 3. a writer creates R records per second for D seconds (`POST
//!    /api/collections/COLLECTION/records`, public createRule), each with `seq` (0..R*D)
//!    and `sent` (unix microseconds taken just before the request is written) number fields
//!    and a `title` of BYTES characters;
//! 4. every stream parses its events; latency = receive time - `sent`. Waits up to S
//!    seconds after the last create for the missing deliveries, then closes everything.
//!
//! Prints one line `RESULT {json}` (latency percentiles, counts, errors, the server's RSS
//! read from /proc/SERVER_PID/status before connecting, once all are subscribed, peak while
//! writing, and VmHWM). Client and writer share one clock (the same process).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};

type Sender = SendRequest<Full<Bytes>>;

struct Opts {
    addr: SocketAddr,
    collection: String,
    clients: usize,
    rate: f64,
    duration: f64,
    pid: Option<u32>,
    drain: f64,
    payload: usize,
    threads: usize,
    writers: usize,
    connect_concurrency: usize,
}

fn usage() -> ! {
    eprintln!(
        "usage: basalt-bench-realtime HOST:PORT COLLECTION [--clients N] [--rate R] \
         [--duration D] [--pid SERVER_PID] [--drain S] [--payload BYTES] [--threads T] \
         [--writers W] [--connect-concurrency C]"
    );
    std::process::exit(2)
}

fn num<T: std::str::FromStr>(v: &str) -> T {
    v.parse().unwrap_or_else(|_| usage())
}

fn parse_opts() -> Opts {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut pos = Vec::new();
    let mut o = Opts {
        addr: "127.0.0.1:8090".parse().unwrap(),
        collection: String::new(),
        clients: 1000,
        rate: 10.0,
        duration: 5.0,
        pid: None,
        drain: 10.0,
        payload: 100,
        threads: 2,
        writers: 4,
        connect_concurrency: 256,
    };
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        if let Some(flag) = a.strip_prefix("--") {
            let v = args.get(i + 1).unwrap_or_else(|| usage());
            match flag {
                "clients" => o.clients = num(v),
                "rate" => o.rate = num(v),
                "duration" => o.duration = num(v),
                "pid" => o.pid = Some(num(v)),
                "drain" => o.drain = num(v),
                "payload" => o.payload = num(v),
                "threads" => o.threads = num(v),
                "writers" => o.writers = num(v),
                "connect-concurrency" => o.connect_concurrency = num(v),
                _ => usage(),
            }
            i += 2;
        } else {
            pos.push(a.to_string());
            i += 1;
        }
    }
    if pos.len() != 2 || o.rate <= 0.0 || o.clients == 0 || o.writers == 0 {
        usage();
    }
    o.addr = pos[0].parse().unwrap_or_else(|_| usage());
    o.collection = pos[1].clone();
    o
}

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as u64
}

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the resulting soft limit.
fn raise_nofile() -> u64 {
    unsafe {
        let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return 0;
        }
        if r.rlim_cur < r.rlim_max {
            let want = libc::rlimit { rlim_cur: r.rlim_max, rlim_max: r.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                r.rlim_cur = r.rlim_max;
            }
        }
        r.rlim_cur as u64
    }
}

/// CPU seconds (user + system) used by this process so far.
fn self_cpu() -> f64 {
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        tv(u.ru_utime) + tv(u.ru_stime)
    }
}

/// A `/proc/PID/status` value in kB (0 when unknown).
fn status_kb(pid: Option<u32>, key: &str) -> u64 {
    let Some(pid) = pid else { return 0 };
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status")) else { return 0 };
    s.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// CPU seconds (user + system, all threads) used by process `pid` so far (0 when unknown).
fn proc_cpu(pid: Option<u32>) -> f64 {
    let Some(pid) = pid else { return 0.0 };
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    let Some((_, rest)) = s.rsplit_once(')') else { return 0.0 };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / hz.max(1.0)
}

async fn open(addr: SocketAddr) -> Result<Sender, String> {
    let s = TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
    let _ = s.set_nodelay(true);
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(send)
}

fn request(o: &Opts, method: Method, path: &str, body: Option<String>) -> Request<Full<Bytes>> {
    let b = Request::builder()
        .method(method)
        .uri(path)
        .header("host", o.addr.to_string());
    match body {
        Some(json) => b
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(json)))
            .unwrap(),
        None => b
            .header("accept", "text/event-stream")
            .body(Full::new(Bytes::new()))
            .unwrap(),
    }
}

/// The number after `"key":` in a compact JSON text.
fn json_number(data: &[u8], key: &[u8]) -> Option<f64> {
    let at = find(data, key)? + key.len();
    let rest = &data[at..];
    let end = rest
        .iter()
        .position(|c| !matches!(c, b'0'..=b'9' | b'.' | b'-' | b'+' | b'e' | b'E'))
        .unwrap_or(rest.len());
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// What one stream saw.
#[derive(Default)]
struct SubStats {
    /// Delivery latency of every first delivery of a record, microseconds.
    lat_us: Vec<u32>,
    /// seq -> seen.
    seen: Vec<bool>,
    duplicates: u64,
    /// Events that were not a create of this benchmark's records.
    other_events: u64,
    /// The stream ended (or failed) before the benchmark closed it.
    ended_early: bool,
    error: Option<String>,
}

struct Shared {
    /// Unique deliveries so far (all streams).
    delivered: AtomicU64,
    /// Unix micros of the latest delivery.
    last_delivery_us: AtomicU64,
}

/// One subscriber: opens the stream, hands its clientId over, then reads events until
/// told to stop.
async fn subscriber(
    o: Arc<Opts>,
    gate: Arc<Semaphore>,
    id_tx: oneshot::Sender<Result<String, String>>,
    mut stop: watch::Receiver<bool>,
    shared: Arc<Shared>,
) -> SubStats {
    let mut st = SubStats::default();
    let mut id_tx = Some(id_tx);
    let permit = gate.acquire_owned().await.unwrap();
    let mut permit = Some(permit);
    let started = async {
        let mut send = open(o.addr).await?;
        let resp = send
            .send_request(request(&o, Method::GET, "/api/realtime", None))
            .await
            .map_err(|e| format!("GET /api/realtime: {e}"))?;
        if resp.status() != 200 {
            return Err(format!("GET /api/realtime -> {}", resp.status()));
        }
        Ok::<_, String>((send, resp.into_body()))
    };
    let (_send, mut body) =
        match tokio::time::timeout(Duration::from_secs(60), started).await {
            Ok(Ok(x)) => x,
            Ok(Err(e)) => {
                let _ = id_tx.take().unwrap().send(Err(e));
                return st;
            }
            Err(_) => {
                let _ = id_tx.take().unwrap().send(Err("connect timeout (60 s)".into()));
                return st;
            }
        };
    let mut buf: Vec<u8> = Vec::with_capacity(512);
    let connect_deadline = tokio::time::sleep(Duration::from_secs(60));
    tokio::pin!(connect_deadline);
    loop {
        let frame = tokio::select! {
            f = body.frame() => f,
            _ = stop.changed() => break,
            _ = &mut connect_deadline, if id_tx.is_some() => {
                let _ = id_tx.take().unwrap().send(Err("no PB_CONNECT within 60 s".into()));
                return st;
            }
        };
        let t = now_us();
        let data = match frame {
            Some(Ok(f)) => match f.into_data() {
                Ok(d) => d,
                Err(_) => continue,
            },
            Some(Err(e)) => {
                st.error = Some(format!("stream: {e}"));
                st.ended_early = true;
                break;
            }
            None => {
                st.ended_early = true;
                break;
            }
        };
        buf.extend_from_slice(&data);
        let mut start = 0;
        while let Some(p) = find(&buf[start..], b"\n\n") {
            let msg = &buf[start..start + p];
            start += p + 2;
            let (mut event, mut payload): (&[u8], &[u8]) = (b"", b"");
            for line in msg.split(|&c| c == b'\n') {
                if let Some(v) = line.strip_prefix(b"event:") {
                    event = v;
                } else if let Some(v) = line.strip_prefix(b"data:") {
                    payload = v;
                }
            }
            if event == b"PB_CONNECT" {
                let key = b"\"clientId\":\"";
                let id = find(payload, key).and_then(|at| {
                    let rest = &payload[at + key.len()..];
                    let end = rest.iter().position(|&c| c == b'"')?;
                    String::from_utf8(rest[..end].to_vec()).ok()
                });
                if let Some(tx) = id_tx.take() {
                    let _ = tx.send(id.ok_or_else(|| "PB_CONNECT without clientId".to_string()));
                    permit.take();
                }
                continue;
            }
            let (Some(seq), Some(sent), true) = (
                json_number(payload, b"\"seq\":"),
                json_number(payload, b"\"sent\":"),
                find(payload, b"\"action\":\"create\"").is_some(),
            ) else {
                st.other_events += 1;
                continue;
            };
            let seq = seq as usize;
            if seq >= st.seen.len() {
                st.seen.resize(seq + 1, false);
            }
            if st.seen[seq] {
                st.duplicates += 1;
                continue;
            }
            st.seen[seq] = true;
            st.lat_us.push(t.saturating_sub(sent as u64).min(u32::MAX as u64) as u32);
            shared.delivered.fetch_add(1, Ordering::Relaxed);
            shared.last_delivery_us.fetch_max(t, Ordering::Relaxed);
        }
        buf.drain(..start);
    }
    if let Some(tx) = id_tx.take() {
        let _ = tx.send(Err(st.error.clone().unwrap_or_else(|| "stream ended before PB_CONNECT".into())));
        st.ended_early = false; // counted as a connect error instead
    }
    st
}

/// Subscribes the given clients to `COLLECTION/*` over one keep-alive connection
/// (reopened on failure). Returns the indexes that got a 204 and the errors.
async fn subscribe_all(o: Arc<Opts>, ids: Vec<(usize, String)>) -> (Vec<usize>, Vec<String>) {
    let mut ok = Vec::new();
    let mut errors = Vec::new();
    let mut send: Option<Sender> = None;
    let topic = format!("{}/*", o.collection);
    for (idx, id) in ids {
        let body = format!("{{\"clientId\":\"{id}\",\"subscriptions\":[\"{topic}\"]}}");
        let mut last = String::new();
        let mut done = false;
        for _attempt in 0..2 {
            if send.as_ref().is_none_or(|s| s.is_closed()) {
                send = match open(o.addr).await {
                    Ok(s) => Some(s),
                    Err(e) => {
                        last = e;
                        continue;
                    }
                };
            }
            let s = send.as_mut().unwrap();
            if s.ready().await.is_err() {
                send = None;
                continue;
            }
            match s.send_request(request(&o, Method::POST, "/api/realtime", Some(body.clone()))).await {
                Ok(resp) => {
                    let status = resp.status();
                    let text = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                    if status == 204 {
                        ok.push(idx);
                    } else {
                        last = format!("POST /api/realtime -> {status}: {}", String::from_utf8_lossy(&text));
                    }
                    done = true;
                    break;
                }
                Err(e) => {
                    last = format!("POST /api/realtime: {e}");
                    send = None;
                }
            }
        }
        if !done || !last.is_empty() {
            errors.push(last);
        }
    }
    (ok, errors)
}

/// Creates records from the queue; returns (created seqs, errors, create latencies in us).
async fn writer(
    o: Arc<Opts>,
    queue: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<usize>>>,
    first_send: Arc<AtomicU64>,
) -> (Vec<usize>, Vec<String>, Vec<u32>) {
    let path = format!("/api/collections/{}/records", o.collection);
    let title = "x".repeat(o.payload);
    let (mut created, mut errors, mut lat) = (Vec::new(), Vec::new(), Vec::new());
    let mut send: Option<Sender> = None;
    loop {
        let Some(seq) = queue.lock().await.recv().await else { break };
        if send.as_ref().is_none_or(|s| s.is_closed()) {
            send = match open(o.addr).await {
                Ok(s) => Some(s),
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
        }
        let s = send.as_mut().unwrap();
        if s.ready().await.is_err() {
            send = None;
            errors.push("writer connection closed".into());
            continue;
        }
        let sent = now_us();
        first_send.fetch_min(sent, Ordering::Relaxed);
        let body = format!("{{\"seq\":{seq},\"sent\":{sent},\"title\":\"{title}\"}}");
        match s.send_request(request(&o, Method::POST, &path, Some(body))).await {
            Ok(resp) => {
                let status = resp.status();
                let text = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                lat.push((now_us() - sent).min(u32::MAX as u64) as u32);
                if status.is_success() {
                    created.push(seq);
                } else {
                    errors.push(format!("create -> {status}: {}", String::from_utf8_lossy(&text)));
                }
            }
            Err(e) => {
                send = None;
                errors.push(format!("create: {e}"));
            }
        }
    }
    (created, errors, lat)
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Distinct error messages with counts, the most frequent first (at most 5).
fn summarize_errors(errors: &[String]) -> String {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for e in errors {
        let e: String = e.chars().take(200).collect();
        match counts.iter_mut().find(|(k, _)| *k == e) {
            Some((_, n)) => *n += 1,
            None => counts.push((e, 1)),
        }
    }
    counts.sort_by(|a, b| b.1.cmp(&a.1));
    let items: Vec<String> = counts
        .iter()
        .take(5)
        .map(|(e, n)| format!("{{\"count\":{n},\"error\":{}}}", json_str(e)))
        .collect();
    format!("[{}]", items.join(","))
}

fn main() {
    let o = Arc::new(parse_opts());
    let nofile = raise_nofile();
    if nofile < o.clients as u64 + 64 {
        eprintln!("warning: RLIMIT_NOFILE is {nofile}, below {} clients + 64", o.clients);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(o.threads)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(o, nofile));
}

async fn run(o: Arc<Opts>, nofile: u64) {
    let cpu0 = self_cpu();
    let rss_before = status_kb(o.pid, "VmRSS");
    let shared = Arc::new(Shared { delivered: AtomicU64::new(0), last_delivery_us: AtomicU64::new(0) });
    let (stop_tx, stop_rx) = watch::channel(false);
    let gate = Arc::new(Semaphore::new(o.connect_concurrency.max(1)));

    // 1. N streams, each up to its PB_CONNECT.
    let t_connect = Instant::now();
    let mut tasks = Vec::with_capacity(o.clients);
    let mut id_rx = Vec::with_capacity(o.clients);
    for _ in 0..o.clients {
        let (tx, rx) = oneshot::channel();
        id_rx.push(rx);
        tasks.push(tokio::spawn(subscriber(o.clone(), gate.clone(), tx, stop_rx.clone(), shared.clone())));
    }
    let mut ids = Vec::new();
    let mut connect_errors = Vec::new();
    for (i, rx) in id_rx.into_iter().enumerate() {
        match rx.await {
            Ok(Ok(id)) => ids.push((i, id)),
            Ok(Err(e)) => connect_errors.push(e),
            Err(_) => connect_errors.push("subscriber task ended".into()),
        }
    }
    let connect_s = t_connect.elapsed().as_secs_f64();

    // 2. Subscriptions, over a few keep-alive connections.
    let t_sub = Instant::now();
    let k = 8.min(ids.len()).max(1);
    let mut chunks: Vec<Vec<(usize, String)>> = vec![Vec::new(); k];
    for (j, x) in ids.into_iter().enumerate() {
        chunks[j % k].push(x);
    }
    let subs: Vec<_> = chunks.into_iter().map(|c| tokio::spawn(subscribe_all(o.clone(), c))).collect();
    let mut subscribed = vec![false; o.clients];
    let mut subscribe_errors = Vec::new();
    for h in subs {
        let (ok, errs) = h.await.unwrap();
        for i in ok {
            subscribed[i] = true;
        }
        subscribe_errors.extend(errs);
    }
    let n_subscribed = subscribed.iter().filter(|&&x| x).count();
    let subscribe_s = t_sub.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_connected = status_kb(o.pid, "VmRSS");

    // 3. RSS sampler while writing and draining.
    let peak = Arc::new(AtomicU64::new(rss_connected));
    let sampler = {
        let (peak, pid, mut stop) = (peak.clone(), o.pid, stop_rx.clone());
        tokio::spawn(async move {
            loop {
                peak.fetch_max(status_kb(pid, "VmRSS"), Ordering::Relaxed);
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    _ = stop.changed() => break,
                }
            }
        })
    };

    // 4. The writer: R creates per second for D seconds.
    let total = (o.rate * o.duration).round() as usize;
    let (qtx, qrx) = mpsc::unbounded_channel();
    let queue = Arc::new(tokio::sync::Mutex::new(qrx));
    let first_send = Arc::new(AtomicU64::new(u64::MAX));
    let writers: Vec<_> = (0..o.writers)
        .map(|_| tokio::spawn(writer(o.clone(), queue.clone(), first_send.clone())))
        .collect();
    let t_write = Instant::now();
    let (server_cpu0, client_cpu0) = (proc_cpu(o.pid), self_cpu());
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / o.rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for seq in 0..total {
        tick.tick().await;
        let _ = qtx.send(seq);
    }
    drop(qtx);
    let mut created = Vec::new();
    let mut create_errors = Vec::new();
    let mut create_lat = Vec::new();
    for h in writers {
        let (c, e, l) = h.await.unwrap();
        created.extend(c);
        create_errors.extend(e);
        create_lat.extend(l);
    }
    let write_s = t_write.elapsed().as_secs_f64();
    let expected = (created.len() * n_subscribed) as u64;

    // 5. Drain: wait for the missing deliveries (bounded).
    let drain_deadline = Instant::now() + Duration::from_secs_f64(o.drain);
    while shared.delivered.load(Ordering::Relaxed) < expected && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let server_cpu_write = proc_cpu(o.pid) - server_cpu0;
    let client_cpu_write = self_cpu() - client_cpu0;
    let rss_end = status_kb(o.pid, "VmRSS");
    let hwm = status_kb(o.pid, "VmHWM");
    let _ = stop_tx.send(true);
    let _ = sampler.await;

    // 6. Merge.
    let mut is_created = vec![false; total];
    for &s in &created {
        is_created[s] = true;
    }
    let mut lat = Vec::new();
    let (mut delivered, mut duplicates, mut other, mut ended_early, mut unexpected) = (0u64, 0, 0, 0, 0u64);
    let mut stream_errors = Vec::new();
    let mut per_client_min = u64::MAX;
    for (i, h) in tasks.into_iter().enumerate() {
        let st = h.await.unwrap();
        duplicates += st.duplicates;
        other += st.other_events;
        if st.ended_early {
            ended_early += 1;
            stream_errors.push(st.error.clone().unwrap_or_else(|| "stream closed by the server".into()));
        }
        let mut got = 0u64;
        for (seq, &seen) in st.seen.iter().enumerate() {
            if seen {
                if seq < total && is_created[seq] {
                    got += 1;
                } else {
                    unexpected += 1;
                }
            }
        }
        if subscribed[i] {
            per_client_min = per_client_min.min(got);
        }
        delivered += got;
        lat.extend(st.lat_us);
    }
    lat.sort_unstable();
    create_lat.sort_unstable();
    let first = first_send.load(Ordering::Relaxed);
    let last = shared.last_delivery_us.load(Ordering::Relaxed);
    let window_s = if last > first && first != u64::MAX { (last - first) as f64 / 1e6 } else { 0.0 };
    let delivered_per_s = if window_s > 0.0 { delivered as f64 / window_s } else { 0.0 };
    let mean_ms = if lat.is_empty() { 0.0 } else { lat.iter().map(|&x| x as f64).sum::<f64>() / lat.len() as f64 / 1000.0 };
    let client_cpu = self_cpu() - cpu0;
    let mut all_conn_errors = connect_errors.clone();
    all_conn_errors.extend(subscribe_errors.iter().cloned());
    all_conn_errors.extend(stream_errors.iter().cloned());
    println!(
        "RESULT {{\"clients\":{},\"connected\":{},\"subscribed\":{},\"rate\":{},\"duration\":{},\
         \"planned\":{},\"created\":{},\"create_errors\":{},\"write_s\":{:.3},\
         \"create_p50_ms\":{:.3},\"create_p99_ms\":{:.3},\
         \"expected\":{},\"delivered\":{},\"missing\":{},\"duplicates\":{},\"unexpected\":{},\
         \"other_events\":{},\"min_per_client\":{},\
         \"p50_ms\":{:.3},\"p90_ms\":{:.3},\"p99_ms\":{:.3},\"max_ms\":{:.3},\"mean_ms\":{:.3},\
         \"window_s\":{:.3},\"delivered_per_s\":{:.1},\
         \"connect_errors\":{},\"subscribe_errors\":{},\"streams_ended_early\":{},\
         \"connect_s\":{:.3},\"subscribe_s\":{:.3},\
         \"rss_before_kb\":{},\"rss_connected_kb\":{},\"rss_peak_kb\":{},\"rss_end_kb\":{},\"hwm_kb\":{},\
         \"client_cpu_s\":{:.3},\"server_cpu_write_s\":{:.3},\"client_cpu_write_s\":{:.3},\"nofile\":{},\"errors\":{}}}",
        o.clients, o.clients - connect_errors.len(), n_subscribed, o.rate, o.duration,
        total, created.len(), create_errors.len(), write_s,
        pct(&create_lat, 50.0), pct(&create_lat, 99.0),
        expected, delivered, expected.saturating_sub(delivered), duplicates, unexpected,
        other, if per_client_min == u64::MAX { 0 } else { per_client_min },
        pct(&lat, 50.0), pct(&lat, 90.0), pct(&lat, 99.0), pct(&lat, 100.0), mean_ms,
        window_s, delivered_per_s,
        connect_errors.len(), subscribe_errors.len(), ended_early,
        connect_s, subscribe_s,
        rss_before, rss_connected, peak.load(Ordering::Relaxed), rss_end, hwm,
        client_cpu, server_cpu_write, client_cpu_write, nofile,
        summarize_errors(&[all_conn_errors, create_errors].concat()),
    );
    // The streams' connection tasks may still be running; exit without waiting for them.
    std::process::exit(0);
}
