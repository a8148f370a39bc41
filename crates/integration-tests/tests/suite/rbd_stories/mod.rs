//! The RBD seed story (rbd §7) through rbd-ops, rbd-exclusive-lock and rados-store together.

mod t10_seed_story;
