//! How raft messages leave a member: the [`Transport`] trait, its no-peer implementation,
//! and (for tests) an in-memory network that drops, delays, duplicates and partitions.
//!
//! Invariants:
//! - `send` never blocks the raft driver: a transport queues or drops. Raft tolerates
//!   loss, reordering and duplication (it retransmits), so a transport may do all three.
//! - Incoming messages reach a member through [`super::Store::step`]; a transport never
//!   touches the store otherwise.

use raft::prelude::Message;

/// Carries raft messages from this member to its peers.
pub trait Transport: Send + Sync + 'static {
    /// Queues `msgs` for delivery (each names its recipient in `to`). Never blocks.
    fn send(&self, msgs: Vec<Message>);
}

/// A single member: there is nobody to send to.
pub struct NoPeers;

impl Transport for NoPeers {
    fn send(&self, msgs: Vec<Message>) {
        if !msgs.is_empty() {
            tracing::warn!(count = msgs.len(), "raft messages for peers, but this member has no transport");
        }
    }
}

#[cfg(test)]
pub(crate) mod mem {
    //! An in-memory network between in-process members (raft-rs `harness/src/network.rs`
    //! style), with seeded, reproducible faults.

    use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
    use std::sync::{Arc, Condvar, Mutex};
    use std::time::{Duration, Instant};

    use raft::prelude::Message;

    use super::Transport;
    use crate::store::Store;

    /// What the network does to each message.
    #[derive(Clone, Copy, Debug, Default)]
    pub(crate) struct Faults {
        /// Probability a message is dropped.
        pub drop: f64,
        /// Probability a message is delivered twice.
        pub duplicate: f64,
        /// Each message is delayed by up to this much (uniformly), so messages reorder.
        pub max_delay: Duration,
    }

    struct Queued {
        at: Instant,
        seq: u64,
        msg: Message,
    }
    impl PartialEq for Queued {
        fn eq(&self, o: &Self) -> bool {
            (self.at, self.seq) == (o.at, o.seq)
        }
    }
    impl Eq for Queued {}
    impl PartialOrd for Queued {
        fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
            Some(self.cmp(o))
        }
    }
    impl Ord for Queued {
        // Min-heap on delivery time.
        fn cmp(&self, o: &Self) -> std::cmp::Ordering {
            (o.at, o.seq).cmp(&(self.at, self.seq))
        }
    }

    #[derive(Default)]
    struct State {
        members: HashMap<u64, Store>,
        queue: BinaryHeap<Queued>,
        seq: u64,
        rng: u64,
        faults: Faults,
        /// Members cut off: no message to or from them is delivered.
        isolated: HashSet<u64>,
        /// Directed links cut: (from, to).
        cut: HashSet<(u64, u64)>,
        delivered: BTreeMap<&'static str, u64>,
        stopped: bool,
    }

    impl State {
        fn random(&mut self) -> f64 {
            // xorshift64*: reproducible from the seed, no dependency.
            self.rng ^= self.rng >> 12;
            self.rng ^= self.rng << 25;
            self.rng ^= self.rng >> 27;
            (self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// The network; each member gets a [`MemTransport`] from [`MemNetwork::transport`].
    #[derive(Clone)]
    pub(crate) struct MemNetwork {
        state: Arc<(Mutex<State>, Condvar)>,
    }

    impl MemNetwork {
        pub(crate) fn new(seed: u64, faults: Faults) -> MemNetwork {
            let state = State { rng: seed.max(1), faults, ..State::default() };
            let net = MemNetwork { state: Arc::new((Mutex::new(state), Condvar::new())) };
            let n = net.clone();
            std::thread::Builder::new().name("mem-network".into()).spawn(move || n.deliver()).expect("network thread");
            net
        }

        pub(crate) fn transport(&self, from: u64) -> Arc<MemTransport> {
            Arc::new(MemTransport { from, net: self.clone() })
        }

        /// Messages to `id` go to `store` from now on (None: nowhere, as if it were down).
        pub(crate) fn attach(&self, id: u64, store: Option<Store>) {
            let mut s = self.state.0.lock().expect("net");
            match store {
                Some(st) => s.members.insert(id, st),
                None => s.members.remove(&id),
            };
        }

        pub(crate) fn set_faults(&self, faults: Faults) {
            self.state.0.lock().expect("net").faults = faults;
        }

        /// Cuts `id` off from everyone (both directions), or heals it.
        pub(crate) fn isolate(&self, id: u64, isolated: bool) {
            let mut s = self.state.0.lock().expect("net");
            if isolated { s.isolated.insert(id) } else { s.isolated.remove(&id) };
        }

        /// Cuts (or heals) the directed link from → to.
        pub(crate) fn cut(&self, from: u64, to: u64, cut: bool) {
            let mut s = self.state.0.lock().expect("net");
            if cut { s.cut.insert((from, to)) } else { s.cut.remove(&(from, to)) };
        }

        /// How many messages of each kind were delivered.
        pub(crate) fn delivered(&self) -> BTreeMap<&'static str, u64> {
            self.state.0.lock().expect("net").delivered.clone()
        }

        pub(crate) fn stop(&self) {
            self.state.0.lock().expect("net").stopped = true;
            self.state.1.notify_all();
        }

        fn enqueue(&self, from: u64, msgs: Vec<Message>) {
            let mut s = self.state.0.lock().expect("net");
            let now = Instant::now();
            for msg in msgs {
                if s.isolated.contains(&from) || s.isolated.contains(&msg.to) || s.cut.contains(&(from, msg.to)) {
                    continue;
                }
                let f = s.faults;
                if s.random() < f.drop {
                    continue;
                }
                let copies = if s.random() < f.duplicate { 2 } else { 1 };
                for _ in 0..copies {
                    let delay = f.max_delay.mul_f64(s.random());
                    s.seq += 1;
                    let seq = s.seq;
                    s.queue.push(Queued { at: now + delay, seq, msg: msg.clone() });
                }
            }
            self.state.1.notify_all();
        }

        fn deliver(&self) {
            let (lock, cv) = &*self.state;
            let mut s = lock.lock().expect("net");
            loop {
                if s.stopped {
                    return;
                }
                let now = Instant::now();
                match s.queue.peek().map(|q| q.at) {
                    Some(at) if at <= now => {
                        let q = s.queue.pop().expect("peeked");
                        // Partitions made after sending still cut messages in flight.
                        if s.isolated.contains(&q.msg.from) || s.isolated.contains(&q.msg.to) || s.cut.contains(&(q.msg.from, q.msg.to)) {
                            continue;
                        }
                        if let Some(store) = s.members.get(&q.msg.to).cloned() {
                            *s.delivered.entry(kind(&q.msg)).or_default() += 1;
                            drop(s);
                            store.step(q.msg);
                            s = lock.lock().expect("net");
                        }
                    }
                    Some(at) => s = cv.wait_timeout(s, at - now).expect("net").0,
                    None => s = cv.wait(s).expect("net"),
                }
            }
        }
    }

    fn kind(m: &Message) -> &'static str {
        use raft::prelude::MessageType as T;
        match m.get_msg_type() {
            T::MsgSnapshot => "snapshot",
            T::MsgAppend => "append",
            T::MsgHeartbeat => "heartbeat",
            T::MsgRequestVote | T::MsgRequestPreVote => "vote",
            _ => "other",
        }
    }

    /// One member's end of a [`MemNetwork`].
    pub(crate) struct MemTransport {
        from: u64,
        net: MemNetwork,
    }

    impl Transport for MemTransport {
        fn send(&self, msgs: Vec<Message>) {
            self.net.enqueue(self.from, msgs);
        }
    }
}
