//! Shared test driver: one Locker, helpers to build a namespace and issue requests, and an
//! invariant check after every event (STYLE.md §4).
#![allow(dead_code)]

use lock_sm::{LockState, LockType};
use mds_locker::cache::{InodeData, S_IFDIR, S_IFREG};
use mds_locker::{
    ClientCapMessage, ClientCapOp, ClientRequest, DentryId, Effect, Event, InodeId, JournalSeq, LockId,
    LockOp, Locker, LockerConfig, Op, ReqId, Transition,
};

pub struct H {
    pub l: Locker,
}

impl H {
    /// A Locker recording transitions, with sessions for clients 1, 2 and 3.
    pub fn new() -> H {
        H::with_config(LockerConfig { record_transitions: true, ..LockerConfig::default() })
    }

    /// A Locker with `cfg`, with sessions for clients 1, 2 and 3.
    pub fn with_config(cfg: LockerConfig) -> H {
        let mut h = H { l: Locker::new(cfg) };
        for c in 1..=3 {
            h.ev(Event::SessionOpen { client: c });
        }
        h.l.take_transitions();
        h
    }

    pub fn check(&self) {
        if let Err(v) = mds_locker::invariants::check_all(&self.l) {
            if std::env::var("MDS_DEBUG").is_ok() {
                for i in self.l.cache().inode_ids() {
                    let n = self.l.cache().inode(i).unwrap();
                    if !n.caps().is_empty() {
                        eprintln!(
                            "{} loner {:?} want {:?} caps {:?}",
                            n.ino(),
                            n.loner(),
                            n.want_loner(),
                            n.caps()
                        );
                    }
                }
            }
            panic!(
                "invariants violated: {v:#?}\nlocks: {:#}",
                self.l.dump_locks(mds_locker::LockFilter::Active)
            );
        }
    }

    pub fn ev(&mut self, e: Event) -> Vec<Effect> {
        let fx = self.l.handle(e).expect("event refused");
        self.check();
        fx
    }

    pub fn file(&mut self, name: &str) -> (DentryId, InodeId) {
        let root = self.l.cache().root();
        let data = InodeData { mode: S_IFREG | 0o644, nlink: 1, version: 1, ..InodeData::default() };
        self.l.cache_mut().create_committed(root, name, data)
    }

    pub fn dir(&mut self, name: &str) -> (DentryId, InodeId) {
        let root = self.l.cache().root();
        let data = InodeData { mode: S_IFDIR | 0o755, nlink: 1, version: 1, ..InodeData::default() };
        self.l.cache_mut().create_committed(root, name, data)
    }

    pub fn req(&mut self, reqid: u64, client: u64, locks: Vec<LockOp>, journal: bool) -> Vec<Effect> {
        self.ev(Event::Request(ClientRequest {
            reqid: ReqId(reqid),
            client,
            op: Op::LockSet { locks, journal },
        }))
    }

    pub fn finish(&mut self, reqid: u64) -> Vec<Effect> {
        self.ev(Event::FinishRequest { reqid: ReqId(reqid) })
    }

    pub fn safe(&mut self, seq: u64) -> Vec<Effect> {
        self.ev(Event::JournalSafe { upto: JournalSeq(seq) })
    }

    pub fn state(&self, id: LockId) -> LockState {
        self.l.lock(id).unwrap().state()
    }

    pub fn open_cap(&mut self, client: u64, inode: InodeId, wanted: u32) -> Vec<Effect> {
        let ino = self.l.cache().inode(inode).unwrap().ino();
        let fx = self.l.open_cap(client, ino, wanted).unwrap();
        self.check();
        fx
    }

    /// The client acknowledges everything sent so far, keeping `pending`.
    pub fn ack(&mut self, client: u64, inode: InodeId) -> Vec<Effect> {
        let n = self.l.cache().inode(inode).unwrap();
        let cap = n.caps().get(&client).unwrap();
        let msg = ClientCapMessage {
            client,
            ino: n.ino(),
            op: ClientCapOp::Update,
            seq: cap.last_sent(),
            caps: cap.pending(),
            wanted: cap.wanted(),
        };
        self.ev(Event::ClientCaps(msg))
    }

    pub fn held(&self, reqid: u64, id: LockId) -> Option<u8> {
        self.l.request(ReqId(reqid)).and_then(|m| m.held().get(&id).copied())
    }

    /// The state walk of one lock among the recorded transitions.
    pub fn walk(&mut self, id: LockId) -> Vec<LockState> {
        let t: Vec<Transition> = self.l.take_transitions();
        let mut out = Vec::new();
        for tr in t.into_iter().filter(|t| t.lock == id) {
            if out.is_empty() {
                out.push(tr.from);
            }
            out.push(tr.to);
        }
        out
    }
}

pub fn ino_lock(i: InodeId, t: LockType) -> LockId {
    LockId::inode(i, t)
}

pub fn dn_lock(d: DentryId) -> LockId {
    LockId::dentry(d, LockType::Dn)
}

/// Only the reply, journal and cap effects (drops informational wake-ups).
pub fn essential(fx: &[Effect]) -> Vec<Effect> {
    fx.iter().filter(|e| !matches!(e, Effect::Woken { .. })).cloned().collect()
}

pub fn journal_seq(fx: &[Effect]) -> u64 {
    fx.iter()
        .find_map(|e| match e {
            Effect::JournalSubmit { seq, .. } => Some(seq.0),
            _ => None,
        })
        .expect("no journal submit")
}
