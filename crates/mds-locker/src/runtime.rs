//! A one-rank driver: the sans-I/O `Locker` wired to a real `mds-journal` `MdLog`.
//!
//! The Locker decides *what* to journal and *when* locks may go; this driver does the I/O in
//! between. It carries out `Effect::JournalSubmit` by `MdLog::submit` (through
//! `wire::to_log_event`), waits with `MdLog::wait_safe` for each entry in submission order,
//! and only then feeds `Event::JournalSafe` back. That is journal-before-unlock (mds §6.3):
//! the Locker releases non-rdlocks and emits the safe reply only from `JournalSafe`, and the
//! driver emits `JournalSafe` only after the device sync that covers the entry returned.
//!
//! Restart (`Rank::open`) replays the journal into a fresh cache (mds §6.6) through
//! `wire::apply_replayed`, so every change whose safe reply went out is present again.
//!
//! Sessions and the completed-request table survive a restart too (§6.6 "re-registers ...
//! client request ids ..., sessions"): a session that opens is journaled as an ESession
//! (open), an evicted one as an ESession (close), and each client write's EUpdate carries its
//! request id in `client_reqs` and the inode it created (see `wire`). Replay re-opens the
//! sessions and re-fills their tables, so a client that re-sends a request whose safe reply
//! it may have missed is answered from the table instead of running it twice. A request that
//! only got its early reply before the crash is not in the journal, and runs afresh.
//!
//! The driver is deliberately sequential (one `&mut self` at a time, waits in log order), so a
//! test that runs the same calls gets the same effects.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use mds_journal::{JournalConfig, JournalDevice, JournalError, LogPosition, MdLog};

use crate::effects::{ClientRequest, Effect, Event, Reply};
use crate::error::LockerError;
use crate::ids::{ClientId, JournalSeq, ReqId};
use crate::journal::JournaledReply;
use crate::locker::{Locker, LockerConfig};
use crate::wire::{self, WireError};

/// Why the driver stopped.
#[derive(Debug, thiserror::Error)]
pub enum RankError {
    /// The Locker refused an event.
    #[error(transparent)]
    Locker(#[from] LockerError),
    /// The journal failed (device error, closed); nothing more is acknowledged.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// An entry could not be mapped to or from a journal event.
    #[error(transparent)]
    Wire(#[from] WireError),
}

/// What replay found when the rank opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// EUpdates re-applied.
    pub updates: usize,
    /// Other events (subtree maps, …), read but not applied by this driver.
    pub other_events: usize,
    /// Client request ids found in replayed updates, in log order (mds §6.6: these are what
    /// the completed-request table must answer when clients re-send).
    pub client_reqs: Vec<(ClientId, ReqId)>,
    /// ESession events replayed (opens and closes).
    pub session_events: usize,
    /// Completed-request table entries restored (client request ids whose session was still
    /// open at that point of the log).
    pub completed_restored: usize,
}

/// One MDS rank: a `Locker` and its journal.
pub struct Rank {
    locker: Locker,
    log: MdLog,
    /// Submitted, not yet durable: (Locker seq, journal position). Session events the driver
    /// journals itself have no Locker seq.
    pending: VecDeque<(Option<JournalSeq>, LogPosition)>,
    /// Which client sent each request still in flight (the journal's request id needs it).
    clients: BTreeMap<ReqId, ClientId>,
}

impl Rank {
    /// A rank with a fresh journal on `dev` and the cache `Locker::new` builds.
    pub async fn create(
        dev: Arc<dyn JournalDevice>,
        jcfg: JournalConfig,
        lcfg: LockerConfig,
    ) -> Result<Rank, RankError> {
        let log = MdLog::create(dev, jcfg).await?;
        Ok(Rank { locker: Locker::new(lcfg), log, pending: VecDeque::new(), clients: BTreeMap::new() })
    }

    /// Opens the existing journal on `dev` and rebuilds the cache from it (mds §6.6): each
    /// replayed EUpdate's metablob is applied, in log order, to a fresh Locker's cache.
    pub async fn open(
        dev: Arc<dyn JournalDevice>,
        jcfg: JournalConfig,
        lcfg: LockerConfig,
    ) -> Result<(Rank, ReplayReport), RankError> {
        let (log, replay) = MdLog::open(dev, jcfg).await?;
        let mut locker = Locker::new(lcfg);
        let mut report = ReplayReport::default();
        for ev in &replay.events {
            if let Some((client, open)) = wire::session_change(&ev.event) {
                locker.replay_session(client, open);
                report.session_events += 1;
                continue;
            }
            match wire::from_log_event(&ev.event) {
                Ok(u) => {
                    wire::apply_replayed(locker.cache_mut(), &u)?;
                    report.updates += 1;
                    if let Some(r) = u.reqid {
                        report.client_reqs.push(r);
                    }
                    for c in wire::completed_requests(&ev.event) {
                        if locker.replay_completed(c.client, c.reqid, c.created) {
                            report.completed_restored += 1;
                        }
                    }
                }
                Err(WireError::NotUpdate(_)) => report.other_events += 1,
                Err(e) => return Err(e.into()),
            }
        }
        let rank = Rank { locker, log, pending: VecDeque::new(), clients: BTreeMap::new() };
        Ok((rank, report))
    }

    /// The Locker, for dumps and assertions.
    pub fn locker(&self) -> &Locker {
        &self.locker
    }

    /// The journal.
    pub fn log(&self) -> &MdLog {
        &self.log
    }

    /// Locker entries submitted but not yet reported safe (session events the driver
    /// journals on its own are not counted, though `wait_safe` waits for them too).
    pub fn unsafe_entries(&self) -> usize {
        self.pending.iter().filter(|(seq, _)| seq.is_some()).count()
    }

    /// Feeds one event and carries out its journal effects at once (submit, flush). Returns
    /// every effect (journal ones included) for the caller to deliver; nothing becomes safe
    /// here, so the only replies are early (unsafe) ones and errors.
    ///
    /// A session that opens is journaled (ESession open) before anything the client does can
    /// be, so replay always meets the session before its requests.
    pub fn handle(&mut self, ev: Event) -> Result<Vec<Effect>, RankError> {
        let opens = match &ev {
            Event::Request(ClientRequest { reqid, client, .. }) => {
                self.clients.insert(*reqid, *client);
                None
            }
            Event::SessionOpen { client } if !self.locker.sessions().any(|s| s.client() == *client) => {
                Some(*client)
            }
            _ => None,
        };
        let fx = self.locker.handle(ev)?;
        if let Some(client) = opens {
            self.submit_session(client, true)?;
            self.log.flush();
        }
        self.execute(&fx)?;
        Ok(fx)
    }

    fn submit_session(&mut self, client: ClientId, open: bool) -> Result<(), RankError> {
        let pos = self.log.submit(wire::session_event(client, open))?;
        self.pending.push_back((None, pos));
        Ok(())
    }

    fn execute(&mut self, fx: &[Effect]) -> Result<(), RankError> {
        for e in fx {
            match e {
                Effect::JournalSubmit { seq, entry } => {
                    let client = self.clients.get(&entry.reqid).copied();
                    let created =
                        self.locker.journaled_reply(entry.reqid).and_then(|r: JournaledReply| r.created);
                    let event = wire::to_log_event_with_created(entry, self.locker.cache(), client, created)?;
                    let pos = self.log.submit(event)?;
                    self.pending.push_back((Some(*seq), pos));
                }
                Effect::JournalFlush => self.log.flush(),
                Effect::Reply(Reply { reqid, safe: true, .. }) => {
                    self.clients.remove(reqid);
                }
                // Ceph journals the close of a killed session; replay then drops the session
                // and its completed-request table, as the eviction did.
                Effect::Evicted { client } => {
                    self.submit_session(*client, false)?;
                    self.log.flush();
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Waits until every submitted entry is durable, feeding `JournalSafe` to the Locker one
    /// entry at a time in log order (entries the Locker submits meanwhile, e.g. for woken
    /// waiters, are waited for too). Returns the effects, safe replies included.
    pub async fn wait_safe(&mut self) -> Result<Vec<Effect>, RankError> {
        let mut out = Vec::new();
        while let Some((seq, pos)) = self.pending.front().copied() {
            self.log.wait_safe(&pos).await?;
            self.pending.pop_front();
            let Some(seq) = seq else { continue };
            let fx = self.locker.handle(Event::JournalSafe { upto: seq })?;
            self.execute(&fx)?;
            out.extend(fx);
        }
        Ok(out)
    }

    /// Runs one client request to completion: feeds it, journals what it submits, waits until
    /// durable, and returns the replies in the order the Locker sent them (an early reply,
    /// then the safe one; or a single error reply).
    pub async fn request(&mut self, req: ClientRequest) -> Result<Vec<Reply>, RankError> {
        let mut fx = self.handle(Event::Request(req))?;
        fx.extend(self.wait_safe().await?);
        Ok(fx
            .into_iter()
            .filter_map(|e| match e {
                Effect::Reply(r) => Some(r),
                _ => None,
            })
            .collect())
    }

    /// Flushes and closes the journal (a clean shutdown).
    pub async fn close(self) -> Result<(), RankError> {
        self.log.close().await?;
        Ok(())
    }

    /// Stops the journal without flushing, as a crash would: whatever was not safe may be lost.
    pub async fn abandon(self) {
        self.log.abandon().await;
    }
}
