//! Property test: random object, xattr and omap operations (single and compound) against a
//! trivially correct in-test model, compared after every step.
//!
//! The model restates the OSD rules the embedded backend claims to follow (see `WriteOpKind`'s
//! docs): writes create, truncate/zero on a missing object are no-ops, removes/omap removals on
//! a missing object are -ENOENT, extents past the size limit are -EFBIG, and a compound op is all
//! or nothing. On failure proptest prints the minimal failing case and records its seed under
//! `proptest-regressions/`, so the run can be replayed.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use rados_store::error::errno;
use rados_store::{Cluster, ClusterConfig, IoCtx, SimClock, WriteOp};

const MAX_SIZE: u64 = 64;
const OIDS: [&str; 3] = ["obj.a", "obj.b", "obj.c"];
const KEYS: [&str; 5] = ["a", "b", "c", "d", "e"];

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct MObj {
    data: Vec<u8>,
    xattrs: BTreeMap<String, Vec<u8>>,
    omap: BTreeMap<String, Vec<u8>>,
}

#[derive(Debug, Clone)]
enum Op {
    Write(u64, Vec<u8>),
    WriteFull(Vec<u8>),
    Append(Vec<u8>),
    Truncate(u64),
    Zero(u64, u64),
    Remove,
    Create(bool),
    SetXattr(String, Vec<u8>),
    RmXattr(String),
    OmapSet(Vec<(String, Vec<u8>)>),
    OmapRm(Vec<String>),
    OmapClear,
}

#[derive(Debug, Clone)]
enum Step {
    Compound(usize, Vec<Op>),
    Read(usize, u64, u64),
    OmapPage(usize, String, u64),
}

fn key() -> impl Strategy<Value = String> {
    prop::sample::select(KEYS.to_vec()).prop_map(str::to_owned)
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..12)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..70u64, bytes()).prop_map(|(o, d)| Op::Write(o, d)),
        bytes().prop_map(Op::WriteFull),
        bytes().prop_map(Op::Append),
        (0..70u64).prop_map(Op::Truncate),
        (0..70u64, 0..20u64).prop_map(|(o, l)| Op::Zero(o, l)),
        Just(Op::Remove),
        any::<bool>().prop_map(Op::Create),
        (key(), bytes()).prop_map(|(k, v)| Op::SetXattr(k, v)),
        key().prop_map(Op::RmXattr),
        prop::collection::vec((key(), bytes()), 0..3).prop_map(Op::OmapSet),
        prop::collection::vec(key(), 0..3).prop_map(Op::OmapRm),
        Just(Op::OmapClear),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..OIDS.len(), prop::collection::vec(op(), 1..2)).prop_map(|(o, v)| Step::Compound(o, v)),
        3 => (0..OIDS.len(), prop::collection::vec(op(), 2..5)).prop_map(|(o, v)| Step::Compound(o, v)),
        1 => (0..OIDS.len(), 0..70u64, 0..20u64).prop_map(|(o, off, len)| Step::Read(o, off, len)),
        1 => (0..OIDS.len(), prop::sample::select(vec!["", "a", "b", "c", "e"]), 0..4u64)
            .prop_map(|(o, s, m)| Step::OmapPage(o, s.to_owned(), m)),
    ]
}

/// The model of one op: the OSD rules, written as plainly as possible.
fn model_apply(obj: &mut Option<MObj>, op: &Op) -> Result<(), i32> {
    let fits = |end: Option<u64>| end.is_some_and(|e| e <= MAX_SIZE);
    match op {
        Op::Write(off, d) => {
            if !fits(off.checked_add(d.len() as u64)) {
                return Err(errno::EFBIG);
            }
            let o = obj.get_or_insert_with(MObj::default);
            let end = *off as usize + d.len();
            if o.data.len() < end {
                o.data.resize(end, 0);
            }
            o.data[*off as usize..end].copy_from_slice(d);
        }
        Op::WriteFull(d) => {
            if !fits(Some(d.len() as u64)) {
                return Err(errno::EFBIG);
            }
            obj.get_or_insert_with(MObj::default).data = d.clone();
        }
        Op::Append(d) => {
            let size = obj.as_ref().map_or(0, |o| o.data.len() as u64);
            if !fits(Some(size + d.len() as u64)) {
                return Err(errno::EFBIG);
            }
            obj.get_or_insert_with(MObj::default).data.extend_from_slice(d);
        }
        Op::Truncate(s) => {
            if !fits(Some(*s)) {
                return Err(errno::EFBIG);
            }
            if let Some(o) = obj {
                o.data.resize(*s as usize, 0);
            }
        }
        Op::Zero(off, len) => {
            if !fits(off.checked_add(*len)) {
                return Err(errno::EFBIG);
            }
            if let Some(o) = obj {
                for i in *off..off + len {
                    if let Some(b) = o.data.get_mut(i as usize) {
                        *b = 0;
                    }
                }
            }
        }
        Op::Remove => {
            if obj.take().is_none() {
                return Err(errno::ENOENT);
            }
        }
        Op::Create(excl) => {
            if obj.is_some() && *excl {
                return Err(errno::EEXIST);
            }
            obj.get_or_insert_with(MObj::default);
        }
        Op::SetXattr(k, v) => {
            obj.get_or_insert_with(MObj::default).xattrs.insert(k.clone(), v.clone());
        }
        Op::RmXattr(k) => {
            obj.as_mut().ok_or(errno::ENOENT)?.xattrs.remove(k);
        }
        Op::OmapSet(kv) => {
            let o = obj.get_or_insert_with(MObj::default);
            for (k, v) in kv {
                o.omap.insert(k.clone(), v.clone());
            }
        }
        Op::OmapRm(keys) => {
            let o = obj.as_mut().ok_or(errno::ENOENT)?;
            for k in keys {
                o.omap.remove(k);
            }
        }
        Op::OmapClear => obj.as_mut().ok_or(errno::ENOENT)?.omap.clear(),
    }
    Ok(())
}

fn to_write_op(ops: &[Op]) -> WriteOp {
    ops.iter().fold(WriteOp::new(), |w, op| match op {
        Op::Write(o, d) => w.write(*o, d.clone()),
        Op::WriteFull(d) => w.write_full(d.clone()),
        Op::Append(d) => w.append(d.clone()),
        Op::Truncate(s) => w.truncate(*s),
        Op::Zero(o, l) => w.zero(*o, *l),
        Op::Remove => w.remove(),
        Op::Create(e) => w.create(*e),
        Op::SetXattr(k, v) => w.setxattr(k.clone(), v.clone()),
        Op::RmXattr(k) => w.rmxattr(k.clone()),
        Op::OmapSet(kv) => w.omap_set(kv.clone()),
        Op::OmapRm(keys) => w.omap_rm_keys(keys.clone()),
        Op::OmapClear => w.omap_clear(),
    })
}

async fn real_state(io: &IoCtx, oid: &str) -> Option<MObj> {
    match io.read(oid, 0, 0).await {
        Err(e) if e.errno() == errno::ENOENT => None,
        Err(e) => panic!("read {oid}: {e}"),
        Ok(data) => Some(MObj {
            data,
            xattrs: io.getxattrs(oid).await.unwrap(),
            omap: io.omap_get_vals(oid, "", 100).await.unwrap().0,
        }),
    }
}

fn errno_of<T>(r: &rados_store::Result<T>) -> Result<(), i32> {
    r.as_ref().map(|_| ()).map_err(|e| e.errno())
}

async fn run(steps: Vec<Step>) -> Result<(), TestCaseError> {
    let config = ClusterConfig { max_object_size: MAX_SIZE, ..ClusterConfig::default() };
    let cluster = Cluster::with_clock(Arc::new(SimClock::new()), config);
    cluster.create_pool("p").unwrap();
    let io = cluster.connect().ioctx("p", "ns").unwrap();
    let mut model: Vec<Option<MObj>> = vec![None; OIDS.len()];
    for (i, step) in steps.iter().enumerate() {
        match step {
            Step::Compound(o, ops) => {
                let mut scratch = model[*o].clone();
                let want = ops.iter().try_for_each(|op| model_apply(&mut scratch, op));
                if want.is_ok() {
                    model[*o] = scratch;
                }
                let got = io.operate_write(OIDS[*o], &to_write_op(ops)).await;
                prop_assert_eq!(errno_of(&got), want, "step {}: {:?}", i, step);
            }
            Step::Read(o, off, len) => {
                let got = io.read(OIDS[*o], *off, *len).await;
                match &model[*o] {
                    None => prop_assert_eq!(errno_of(&got), Err(errno::ENOENT)),
                    Some(m) => {
                        let size = m.data.len() as u64;
                        let start = (*off).min(size) as usize;
                        let end = if *len == 0 { size } else { (off + len).min(size) } as usize;
                        prop_assert_eq!(got.unwrap(), m.data[start..end].to_vec(), "step {}", i);
                    }
                }
            }
            Step::OmapPage(o, after, max) => {
                let got = io.omap_get_vals(OIDS[*o], after, *max).await;
                match &model[*o] {
                    None => prop_assert_eq!(errno_of(&got), Err(errno::ENOENT)),
                    Some(m) => {
                        let tail: Vec<_> =
                            m.omap.iter().filter(|(k, _)| k.as_str() > after.as_str()).collect();
                        let page: BTreeMap<String, Vec<u8>> = tail
                            .iter()
                            .take(*max as usize)
                            .map(|(k, v)| ((*k).clone(), (*v).clone()))
                            .collect();
                        let more = tail.len() > *max as usize;
                        prop_assert_eq!(got.unwrap(), (page, more), "step {}", i);
                    }
                }
            }
        }
        for (o, oid) in OIDS.iter().enumerate() {
            prop_assert_eq!(&real_state(&io, oid).await, &model[o], "after step {}: {:?}", i, step);
        }
        let listed = io.list_objects().await.unwrap();
        let expect: Vec<&str> =
            OIDS.iter().zip(&model).filter(|(_, m)| m.is_some()).map(|(o, _)| *o).collect();
        prop_assert_eq!(listed, expect);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn objects_and_omap_match_the_model(steps in prop::collection::vec(step(), 1..30)) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(run(steps))?;
    }
}
