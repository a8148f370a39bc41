//! Cost of the table-driven predicates.
//!
//! The Locker evaluates these on every lock request and every cap issue, so they should stay a
//! few nanoseconds each: a table lookup and a handful of compares. Each iteration sweeps every
//! (machine, state) pair; the reported throughput is in calls, so time per element is time per
//! call.

// criterion_group! generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lock_sm::predicates::{CapsWho, LockCtx, can_rdlock, can_wrlock, gcaps_allowed};
use lock_sm::{GatherState, LockState, Machine, gather_finished};

/// Every (machine, state) pair, including states a class has no row for.
fn pairs() -> Vec<(Machine, LockState)> {
    Machine::ALL.iter().flat_map(|m| LockState::ALL.iter().map(move |s| (*m, *s))).collect()
}

fn bench_predicates(c: &mut Criterion) {
    let pairs = pairs();
    let ctx = LockCtx { is_auth: true, xlock_by_client: Some(4), excl_client: Some(7) };
    let mut group = c.benchmark_group("predicates");
    group.throughput(Throughput::Elements(pairs.len() as u64));

    group.bench_function("can_rdlock", |b| {
        b.iter(|| {
            let mut n = 0u32;
            for &(m, s) in &pairs {
                n += u32::from(can_rdlock(black_box(m), black_box(s), black_box(&ctx), black_box(Some(4))));
            }
            n
        })
    });

    group.bench_function("can_wrlock", |b| {
        b.iter(|| {
            let mut n = 0u32;
            for &(m, s) in &pairs {
                n += u32::from(can_wrlock(black_box(m), black_box(s), black_box(&ctx), black_box(Some(7))));
            }
            n
        })
    });

    group.bench_function("gcaps_allowed", |b| {
        b.iter(|| {
            let mut acc = 0u32;
            for &(m, s) in &pairs {
                acc ^= gcaps_allowed(
                    black_box(m),
                    black_box(s),
                    black_box(s),
                    black_box(CapsWho::Any),
                    black_box(true),
                    black_box(false),
                );
            }
            acc
        })
    });

    let st = GatherState {
        is_auth: true,
        gather_set_empty: true,
        rdlocks: 1,
        wrlocks: 0,
        xlocks: 0,
        leases: 0,
        flushing: false,
        loner_issued: 0x24,
        other_issued: 0x04,
        xlocker_issued: 0,
        any_client_holds_fb: false,
    };
    group.bench_function("gather_finished", |b| {
        b.iter(|| {
            let mut n = 0u32;
            for &(m, s) in &pairs {
                n += u32::from(gather_finished(black_box(m), black_box(s), black_box(&st)));
            }
            n
        })
    });

    group.finish();
}

criterion_group!(benches, bench_predicates);
criterion_main!(benches);
