//! The JSON-lines trace (docs/trace-format.md): one line per event, so a failing seed can be
//! inspected or diffed against another run with ordinary text tools.

use std::io::Write;

use serde_json::{Value, json};

/// An optional sink for trace events; a disabled trace costs nothing but a branch.
#[derive(Default)]
pub struct Trace {
    out: Option<Box<dyn Write>>,
    last_owner: Option<Option<u64>>,
}

impl Trace {
    /// A trace that writes to `out`.
    pub fn to_writer(out: Box<dyn Write>) -> Trace {
        Trace { out: Some(out), last_owner: None }
    }

    fn emit(&mut self, v: Value) {
        if let Some(out) = self.out.as_mut() {
            // A trace is a debugging aid: losing it must not change the run's verdict.
            let _ = writeln!(out, "{v}");
        }
    }

    /// Emits one event built by the caller (the MDS half's lock, request and fault events).
    pub fn event(&mut self, v: Value) {
        self.emit(v);
    }

    /// Emits `lock_owner` when the owner differs from the last one emitted (`None` = unlocked).
    pub fn owner(&mut self, step: u64, image: &str, owner: Option<u64>) {
        if self.last_owner == Some(owner) {
            return;
        }
        self.last_owner = Some(owner);
        let owner = owner.map(|g| format!("client.{g}"));
        self.emit(json!({"step": step, "ev": "lock_owner", "image": image, "owner": owner}));
    }

    /// Emits one `write` event: `accepted` is whether the write was acknowledged to the caller.
    pub fn write(&mut self, step: u64, image: &str, client: u64, accepted: bool) {
        let client = format!("client.{client}");
        self.emit(
            json!({"step": step, "ev": "write", "image": image, "client": client, "accepted": accepted}),
        );
    }

    /// Flushes the sink at the end of a run.
    pub fn finish(&mut self) {
        if let Some(out) = self.out.as_mut() {
            let _ = out.flush();
        }
    }
}
