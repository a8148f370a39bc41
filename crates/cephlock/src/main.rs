//! `cephlock`: the command line for people who want to see, measure and inspect Ceph's locking.

fn main() {}
