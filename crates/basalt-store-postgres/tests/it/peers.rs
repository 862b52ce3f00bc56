//! The LISTEN/NOTIFY link between nodes: notes reach the other node in order (large ones
//! through `_events`), a node never gets its own, equal notes are not folded, and the
//! link reconnects by itself (saying so) after its connections are terminated.

use std::time::{Duration, Instant};

use basalt_store_postgres::{MAX_INLINE, PeerSignal, PgOptions, PgPeers, PgStore};
use tokio::sync::mpsc::Receiver;

use crate::Fresh;

fn small() -> PgOptions {
    PgOptions {
        pool_size: 1,
        ..PgOptions::default()
    }
}

/// The next signal within `wait`, polled without a runtime.
fn next(signals: &mut Receiver<PeerSignal>, wait: Duration) -> Option<PeerSignal> {
    let deadline = Instant::now() + wait;
    loop {
        if let Ok(signal) = signals.try_recv() {
            return Some(signal);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn connected(signals: &mut Receiver<PeerSignal>) {
    assert_eq!(
        next(signals, Duration::from_secs(10)),
        Some(PeerSignal::Connected)
    );
}

fn note(signals: &mut Receiver<PeerSignal>) -> String {
    match next(signals, Duration::from_secs(5)) {
        Some(PeerSignal::Note(note)) => note,
        other => panic!("expected a note, got {other:?}"),
    }
}

/// One node's link: the sending half and what it receives.
type Link = (PgPeers, Receiver<PeerSignal>);

/// Two nodes on one database; both listeners are up when this returns.
fn two_nodes() -> (Fresh, PgStore, Link, Link) {
    let fresh = Fresh::with(small());
    let other = PgStore::connect(&fresh.db.url, small()).expect("second store");
    let mut a = fresh.store.peers();
    let mut b = other.peers();
    connected(&mut a.1);
    connected(&mut b.1);
    (fresh, other, a, b)
}

#[test]
fn notes_reach_the_other_node_in_order_and_never_their_sender() {
    let (fresh, other, (a, mut a_in), (b, mut b_in)) = two_nodes();
    let large = format!("{{\"big\":\"{}\"}}", "y".repeat(3 * MAX_INLINE));
    let sent = [
        "{\"t\":\"schema\"}".to_owned(),
        "{\"t\":\"schema\"}".to_owned(),
        large.clone(),
        "after the large one".to_owned(),
    ];
    for text in &sent {
        a.send(text.clone());
    }
    for expected in &sent {
        assert_eq!(&note(&mut b_in), expected);
    }
    b.send("from b".to_owned());
    assert_eq!(note(&mut a_in), "from b");
    // Neither node got its own notes.
    assert_eq!(next(&mut a_in, Duration::from_millis(300)), None);
    assert_eq!(next(&mut b_in, Duration::from_millis(300)), None);
    let stats = a.stats();
    assert_eq!((stats.sent, stats.sent_large, stats.dropped), (4, 1, 0));
    assert_eq!(b.stats().received, 4);
    let rows = crate::Fresh::with_url_count(&fresh.db.url, "SELECT count(*) FROM \"_events\"");
    assert_eq!(rows, 1);
    a.close();
    b.close();
    drop(other);
}

#[test]
fn the_link_reconnects_by_itself_and_says_so() {
    let (fresh, other, (a, mut a_in), (b, mut b_in)) = two_nodes();
    assert!(fresh.db.terminate_backends() >= 4);
    // Both listeners come back and announce it; notes flow again both ways.
    connected(&mut a_in);
    connected(&mut b_in);
    a.send("after".to_owned());
    assert_eq!(note(&mut b_in), "after");
    b.send("back".to_owned());
    assert_eq!(note(&mut a_in), "back");
    assert_eq!(a.stats().listener_connections, 2);
    assert_eq!(a.stats().dropped, 0);
    a.close();
    b.close();
    drop(other);
}
