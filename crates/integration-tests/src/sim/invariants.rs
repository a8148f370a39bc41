//! The RBD invariants, one function each (STYLE.md §4). Each takes what the driver observed
//! after a step and returns the violation it finds; none does I/O, so each can be tested alone.

use super::Violation;
use super::model::ImageModel;

/// One write as the simulator saw it complete, with what held at the moment it was acknowledged.
#[derive(Debug, Clone)]
pub struct WriteAck {
    /// The writing client's gid.
    pub gid: u64,
    /// Byte offset in the image.
    pub off: u64,
    /// The bytes written.
    pub data: Vec<u8>,
    /// Whether the write returned success to the caller.
    pub accepted: bool,
    /// The cls lock holder (gid) read right after the write returned.
    pub owner_at_ack: Option<u64>,
    /// Whether the writer's address was blocklisted when the write returned.
    pub blocklisted_at_ack: bool,
}

/// rbd §6 (cls_lock EXCLUSIVE admits one locker), §1.7, §9 problem 2 (duplicate lock owners): at
/// most one holder on the header's `rbd_lock`, and at most one live handle that the OSD confirms
/// as owner (`is_exclusive_lock_owner`, §2.12), which must be that holder.
pub fn at_most_one_owner(step: u64, lockers: &[u64], live_owners: &[u64]) -> Result<(), Violation> {
    const NAME: &str = "at most one lock owner per image (rbd §6, §1.7, §9.2)";
    if lockers.len() > 1 {
        return Err(Violation { step, invariant: NAME, detail: format!("cls lockers {lockers:?}") });
    }
    if live_owners.len() > 1 {
        return Err(Violation { step, invariant: NAME, detail: format!("handles owning: {live_owners:?}") });
    }
    if let Some(h) = live_owners.first()
        && lockers.first() != Some(h)
    {
        return Err(Violation {
            step,
            invariant: NAME,
            detail: format!("handle client.{h} owns but the cls locker is {lockers:?}"),
        });
    }
    Ok(())
}

/// rbd §2.11 (writes need the lock), §2.13 (a blocklisted client's writes fail -EBLOCKLISTED):
/// a write acknowledged to its caller came from the lock owner of that moment, not blocklisted.
pub fn write_accepted_only_from_owner(step: u64, w: &WriteAck) -> Result<(), Violation> {
    if !w.accepted {
        return Ok(());
    }
    if w.blocklisted_at_ack {
        return Err(Violation {
            step,
            invariant: "no write accepted from a blocklisted client (rbd §2.13)",
            detail: format!("client.{} wrote {} bytes at {}", w.gid, w.data.len(), w.off),
        });
    }
    if w.owner_at_ack != Some(w.gid) {
        return Err(Violation {
            step,
            invariant: "no write accepted from a non-owner (rbd §2.11)",
            detail: format!(
                "client.{} wrote {} bytes at {} while the owner was {:?}",
                w.gid,
                w.data.len(),
                w.off,
                w.owner_at_ack
            ),
        });
    }
    Ok(())
}

fn first_difference(a: &[u8], b: &[u8]) -> String {
    match a.iter().zip(b).position(|(x, y)| x != y) {
        Some(i) => format!("first difference at +{i}: got {:#04x}, model {:#04x}", a[i], b[i]),
        None => format!("lengths differ: got {}, model {}", a.len(), b.len()),
    }
}

/// rbd §7 (one writer at a time makes the image a sequential history), §2.11 (reads need no
/// lock): what a live client reads equals the sequential model at the same point.
pub fn read_matches_model(
    step: u64,
    gid: u64,
    off: u64,
    got: &[u8],
    model: &ImageModel,
) -> Result<(), Violation> {
    let want = model.read(off, got.len().max(1) as u64);
    let want = if got.is_empty() { &want[..0] } else { want };
    if got == want {
        return Ok(());
    }
    Err(Violation {
        step,
        invariant: "image contents equal the sequential model (rbd §7, §2.11)",
        detail: format!("client.{gid} read {} bytes at {off}: {}", got.len(), first_difference(got, want)),
    })
}

/// rbd §5.6 (snapshot create quiesces and blocks writes, so a snapshot is a point in the write
/// history): a snapshot reads as the model did when it was taken.
pub fn snapshot_matches_model(
    step: u64,
    name: &str,
    got: &[u8],
    model: &ImageModel,
) -> Result<(), Violation> {
    let Some(want) = model.snaps.get(name) else {
        return Err(Violation {
            step,
            invariant: "snapshot contents equal the model at snapshot time (rbd §5.6)",
            detail: format!("snapshot {name} exists but the model never saw it succeed"),
        });
    };
    if got == want.as_slice() {
        return Ok(());
    }
    Err(Violation {
        step,
        invariant: "snapshot contents equal the model at snapshot time (rbd §5.6)",
        detail: format!("snapshot {name}: {}", first_difference(got, want)),
    })
}

/// rbd §2.13, §7.5: crashes, hangs and lock breaks never lose an acknowledged write. `got` is the
/// head as a fresh client reads it; each acknowledged write's bytes that no later acknowledged
/// write replaced (those still in the model) must be there.
pub fn acknowledged_writes_survive(
    step: u64,
    acked: &[WriteAck],
    got: &[u8],
    model: &ImageModel,
) -> Result<(), Violation> {
    for w in acked.iter().filter(|w| w.accepted) {
        for (i, byte) in w.data.iter().enumerate() {
            let at = w.off as usize + i;
            let (Some(m), Some(g)) = (model.head.get(at), got.get(at)) else { continue };
            if m == byte && g != m {
                return Err(Violation {
                    step,
                    invariant: "every acknowledged write survives (rbd §2.13, §7.5)",
                    detail: format!("client.{}'s write at {} lost at byte {at}", w.gid, w.off),
                });
            }
        }
    }
    if got != model.head.as_slice() {
        return Err(Violation {
            step,
            invariant: "image contents equal the sequential model (rbd §7, §2.11)",
            detail: format!("fresh client: {}", first_difference(got, &model.head)),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(gid: u64, owner: Option<u64>, blocklisted: bool) -> WriteAck {
        WriteAck {
            gid,
            off: 0,
            data: vec![1],
            accepted: true,
            owner_at_ack: owner,
            blocklisted_at_ack: blocklisted,
        }
    }

    #[test]
    fn owner_checks_catch_two_owners_and_a_stray_handle() {
        assert!(at_most_one_owner(0, &[1], &[1]).is_ok());
        assert!(at_most_one_owner(0, &[], &[]).is_ok());
        assert!(at_most_one_owner(0, &[1, 2], &[]).is_err());
        assert!(at_most_one_owner(0, &[1], &[1, 2]).is_err());
        assert!(at_most_one_owner(0, &[1], &[2]).is_err());
    }

    #[test]
    fn write_gate_checks_owner_and_blocklist() {
        assert!(write_accepted_only_from_owner(0, &ack(1, Some(1), false)).is_ok());
        assert!(write_accepted_only_from_owner(0, &ack(1, Some(2), false)).is_err());
        assert!(write_accepted_only_from_owner(0, &ack(1, None, false)).is_err());
        assert!(write_accepted_only_from_owner(0, &ack(1, Some(1), true)).is_err());
        let mut rejected = ack(1, None, true);
        rejected.accepted = false;
        assert!(write_accepted_only_from_owner(0, &rejected).is_ok());
    }

    #[test]
    fn lost_write_is_reported() {
        let mut m = ImageModel::new(4);
        m.write(0, &[1]);
        let w = ack(7, Some(7), false);
        assert!(acknowledged_writes_survive(0, std::slice::from_ref(&w), &[1, 0, 0, 0], &m).is_ok());
        let e = acknowledged_writes_survive(0, &[w], &[0, 0, 0, 0], &m).unwrap_err();
        assert!(e.detail.contains("client.7"), "{e}");
        assert!(read_matches_model(0, 1, 0, &[1, 0], &m).is_ok());
        assert!(read_matches_model(0, 1, 0, &[0, 0], &m).is_err());
    }
}
