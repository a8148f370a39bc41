//! Fencing a dead or hung RBD lock owner (rbd §1.6.3, §2.13, §7.5 row 3) across rados-store's
//! watch timeout and blocklist, rbd-exclusive-lock's break and rbd-ops' I/O path.

mod t10_dead_owner;
mod t20_hung_owner;
