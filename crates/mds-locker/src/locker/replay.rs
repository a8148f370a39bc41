//! What the journal must carry about clients, and putting it back after a restart (mds §6.6).
//!
//! Replay rebuilds metadata from EUpdates, but a client that re-sends a request after the
//! rank restarted must still be answered from the completed-request table rather than run the
//! request a second time. So the driver journals, with each client write, what the table
//! needs (`journaled_reply`), journals session opens and closes, and on replay hands both
//! back here (`replay_session`, `replay_completed`).
//!
//! Like Ceph's table, what survives a restart is "this request id succeeded" plus the inode it
//! created, if any: a re-sent create, mkdir, mknod or symlink is answered with the same inode
//! number, and any other re-sent write with a bare success (Ceph's traceless reply). The
//! in-memory table of a rank that did not restart still answers with the full original reply.

use crate::capability::{CompletedRequest, Session};
use crate::effects::{Op, ReplyData};
use crate::ids::{ClientId, Ino, ReqId};
use crate::journal::JournaledReply;
use crate::mutation::Phase;

use super::Locker;

impl Locker {
    /// For a request whose journal entry was just submitted: the reply the completed-request
    /// table will record once it is safe, or `None` when nothing will be recorded (internal
    /// mutations, reads, failures, requests of an evicted session).
    pub fn journaled_reply(&self, reqid: ReqId) -> Option<JournaledReply> {
        let m = self.requests.get(&reqid)?;
        let client = m.client?;
        if !matches!(m.phase, Phase::Committing(_)) || m.orphaned {
            return None;
        }
        let op = self.ops.get(&reqid)?;
        if !op.is_write() {
            return None;
        }
        let result = self.replies.get(&reqid)?.0;
        if result.is_err() {
            return None;
        }
        // A create that journals made its inode (an existing file opened by a non-O_EXCL
        // create journals nothing, so it never gets here).
        let creates =
            matches!(op, Op::Create { .. } | Op::Mkdir { .. } | Op::Mknod { .. } | Op::Symlink { .. });
        let created = if creates { result.ok().flatten() } else { None };
        Some(JournaledReply { client, reqid, result, created })
    }

    /// Replays a journaled session open (`true`) or close (mds §6.6 "re-registers ...
    /// sessions"). A close forgets the session and its completed-request table, as eviction
    /// does; re-opening an open session keeps it.
    pub fn replay_session(&mut self, client: ClientId, open: bool) {
        if open {
            let now = self.now_ms();
            self.sessions.entry(client).or_insert_with(|| Session::new(client, now));
        } else {
            self.sessions.remove(&client);
        }
    }

    /// Replays a journaled client request id into its session's completed-request table, so a
    /// re-sent copy is answered, not re-run. Returns `false` (and records nothing) when the
    /// client has no open session at this point of the log: its session closed, and with it
    /// the table, before the restart.
    pub fn replay_completed(&mut self, client: ClientId, reqid: ReqId, created: Option<Ino>) -> bool {
        let max = self.config().max_completed_requests;
        let Some(s) = self.sessions.get_mut(&client) else {
            return false;
        };
        s.add_completed(reqid, CompletedRequest { result: Ok(created), data: ReplyData::None }, max);
        true
    }
}
