//! Data integrity under lock movement (rbd §2.11, §5, §7): random writes, discards, snapshots,
//! resizes and rollbacks from three clients against an in-memory model. Seeded; the seed is
//! printed, and `RBD_OPS_SEED=<n>` replays one run.

mod common;

use common::{Env, OBJ, guarded};
use rbd_ops::{Image, RbdError};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Model {
    head: Vec<u8>,
    snaps: Vec<(String, Vec<u8>)>,
}

fn resize_model(v: &mut Vec<u8>, size: u64) {
    v.resize(size as usize, 0);
}

async fn check_head(img: &Image, model: &Model, seed: u64, step: usize) {
    let got = img.read_at(0, model.head.len() as u64).await.expect("read");
    assert!(got == model.head, "seed {seed} step {step}: head differs from the model");
}

async fn run(seed: u64) {
    let env = Env::new().await;
    let start = 3 * OBJ + 123;
    env.create_default("img", start).await;
    let clients = [env.open("img").await, env.open("img").await, env.open("img").await];
    let mut rng = Rng(seed | 1);
    let mut model = Model { head: vec![0; start as usize], snaps: Vec::new() };
    for step in 0..40 {
        let c = &clients[rng.below(3) as usize];
        let size = model.head.len() as u64;
        match rng.below(10) {
            0..=4 => {
                let off = rng.below(size);
                let len = 1 + rng.below(OBJ + OBJ / 2);
                let data: Vec<u8> = (0..len).map(|_| rng.next() as u8 | 1).collect();
                let n = c.write_at(off, &data).await.expect("write") as u64;
                assert_eq!(n, len.min(size - off));
                model.head[off as usize..(off + n) as usize].copy_from_slice(&data[..n as usize]);
            }
            5 => {
                let off = rng.below(size);
                let n = c.discard(off, 1 + rng.below(2 * OBJ)).await.expect("discard");
                model.head[off as usize..(off + n) as usize].fill(0);
            }
            6 => {
                let name = format!("s{step}");
                c.snap_create(&name).await.expect("snap_create");
                model.snaps.push((name, model.head.clone()));
            }
            7 => {
                let new = OBJ / 2 + rng.below(5 * OBJ);
                c.resize(new).await.expect("resize");
                resize_model(&mut model.head, new);
            }
            8 if !model.snaps.is_empty() => {
                let (name, data) = model.snaps[rng.below(model.snaps.len() as u64) as usize].clone();
                match c.snap_rollback(&name).await {
                    Ok(()) => model.head = data,
                    // Another live client owns the lock: rollback is not forwarded (rbd §5.2).
                    Err(RbdError::ReadOnly(_)) => {}
                    Err(e) => panic!("seed {seed} step {step}: rollback: {e}"),
                }
            }
            _ => c.flush().await.expect("flush"),
        }
        check_head(&clients[rng.below(3) as usize], &model, seed, step).await;
    }
    for (name, data) in &model.snaps {
        let snap = env.open_snap("img", name).await;
        assert_eq!(snap.size(), data.len() as u64, "seed {seed}: snapshot {name} size");
        let got = snap.read_at(0, data.len() as u64).await.unwrap();
        assert!(got == *data, "seed {seed}: snapshot {name} differs from the model");
        snap.close().await;
    }
    for c in &clients {
        c.close().await;
    }
}

#[tokio::test(start_paused = true)]
async fn s7_data_integrity_against_model() {
    guarded(async {
        let seeds: Vec<u64> = match std::env::var("RBD_OPS_SEED") {
            Ok(s) => vec![s.parse().expect("RBD_OPS_SEED must be a number")],
            Err(_) => (1..=12).map(|i| 0x9e37_79b9_7f4a_7c15u64.wrapping_mul(i)).collect(),
        };
        for seed in seeds {
            eprintln!("rbd-ops integrity seed {seed}");
            run(seed).await;
        }
    })
    .await;
}
