//! MPPE throughput on one core (RFC 3078): encryption and decryption of
//! 64- and 1400-octet packets with 128-bit keys, stateless (a key change
//! per packet: one SHA-1 and two RC4 key schedules) and stateful (a key
//! change every 256 packets); then the key work per state that the XDP
//! fast path's preparer writes (`dataplane/mppe_prep.rs`).
//!
//! `cargo bench -p pptp-daemon --bench mppe` (set `AYA_BUILD_SKIP=1` where
//! the eBPF toolchain is missing). `MPPE_BENCH_SECS` sets the time per
//! case (default 1).

use std::{
    hint::black_box,
    time::{Duration, Instant},
};

use pptp_daemon::{
    auth::MppeMaterial,
    mppe::{
        KeyLength, MppeParams,
        cipher::MppeCipher,
        keys::{KeySchedule, StartKey, rc4_permutation},
    },
};

fn material() -> MppeMaterial {
    MppeMaterial::V2 {
        master_send_key: [0x8b; 16],
        master_recv_key: [0xd5; 16],
    }
}

struct Figures {
    packets: u64,
    elapsed: Duration,
}

impl Figures {
    fn print(&self, what: &str, size: usize) {
        let secs = self.elapsed.as_secs_f64();
        let pps = self.packets as f64 / secs;
        let mbps = pps * size as f64 / 1e6;
        println!("{what:<28} {size:>5} B  {pps:>12.0} packets/s  {mbps:>9.1} MB/s");
    }
}

/// Runs `step` in batches until `budget` has passed.
fn measure(budget: Duration, mut step: impl FnMut()) -> Figures {
    const BATCH: u64 = 256;
    let start = Instant::now();
    let mut packets = 0;
    loop {
        for _ in 0..BATCH {
            step();
        }
        packets += BATCH;
        let elapsed = start.elapsed();
        if elapsed >= budget {
            return Figures { packets, elapsed };
        }
    }
}

fn main() {
    let budget = std::env::var("MPPE_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .map_or(Duration::from_secs(1), Duration::from_secs_f64);
    println!("MPPE throughput on one core, 128-bit keys ({budget:?} per case)");
    for stateless in [true, false] {
        let mode = if stateless { "stateless" } else { "stateful" };
        for size in [64usize, 1400] {
            let params = MppeParams {
                key_length: KeyLength::Bits128,
                stateless,
            };
            let mut sender = MppeCipher::new(&material(), params);
            let plain = vec![0x45u8; size];
            let mut wire = vec![0u8; size + 2];
            let figures = measure(budget, || {
                sender
                    .encryptor
                    .encrypt(black_box(&plain), &mut wire)
                    .expect("buffer fits");
                black_box(&wire);
            });
            figures.print(&format!("{mode} encrypt"), size);

            // Decrypt a stream that a matching encryptor produces; sealing
            // is done ahead, in chunks, outside the measured time.
            let peer = MppeMaterial::V2 {
                master_send_key: [0xd5; 16],
                master_recv_key: [0x8b; 16],
            };
            let mut receiver = MppeCipher::new(&peer, params);
            let mut sender = MppeCipher::new(&material(), params);
            const CHUNK: usize = 4096;
            let mut sealed = vec![vec![0u8; size + 2]; CHUNK];
            let mut out = vec![0u8; size];
            let mut packets = 0u64;
            let mut elapsed = Duration::ZERO;
            while elapsed < budget {
                for p in sealed.iter_mut() {
                    receiver_feed(&mut sender, &plain, p);
                }
                let start = Instant::now();
                for p in &sealed {
                    receiver
                        .decryptor
                        .decrypt(black_box(p), &mut out)
                        .expect("in order");
                    black_box(&out);
                }
                elapsed += start.elapsed();
                packets += CHUNK as u64;
            }
            Figures { packets, elapsed }.print(&format!("{mode} decrypt"), size);
        }
    }
    // What the XDP fast path's preparer (dataplane/mppe_prep.rs) does per
    // prepared state: a key change and the RC4 permutation of the key,
    // the two key schedules one after the other and interleaved.
    let start = StartKey::new(&[0x8b; 16], KeyLength::Bits128).expect("16 octets");
    let mut schedule = KeySchedule::new(&start);
    let figures = measure(budget, || {
        schedule.change_key();
        black_box(rc4_permutation(black_box(schedule.session_key())));
    });
    figures.print("prepared states, apart", 256);
    let figures = measure(budget, || {
        black_box(schedule.permutation_then_change());
    });
    figures.print("prepared states, paired", 256);
}

fn receiver_feed(sender: &mut MppeCipher, plain: &[u8], out: &mut [u8]) {
    sender.encryptor.encrypt(plain, out).expect("buffer fits");
}
