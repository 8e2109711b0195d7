//! The userspace data path: GRE frames of sessions that are not on the XDP
//! path (and every control frame) from the raw GRE socket, and packets the
//! kernel routes to the TUN device, towards their sessions.

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use super::{Call, CallInput, Shared};
use crate::{
    dataplane::{
        frame::{self, BUFFER_LEN, Framing, HEADROOM, Received},
        mss,
        tun::{TunReader, TunWriter},
    },
    wire::{ipv4, ppp},
};

/// Receives every GRE frame that reaches userspace: data of sessions on
/// the userspace path (decrypted when MPPE) goes to the TUN device, control
/// frames to their session task.
pub(super) async fn gre_receive(shared: Arc<Shared>, mut tun: TunWriter) {
    let mut buf = vec![0u8; 65536];
    loop {
        let (src, offset, len) = match shared.gre.recv_range(&mut buf).await {
            Ok((src, _, range)) => (src, range.start, range.len()),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                shared.stats.gre_malformed.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            Err(e) => {
                tracing::warn!("GRE receive: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        shared.stats.gre_rx.fetch_add(1, Ordering::Relaxed);
        let frame_bytes = &buf[offset..offset + len];
        let header = match frame::parse_gre(frame_bytes) {
            Ok(h) => h,
            Err(e) => {
                shared.stats.gre_malformed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%src, "dropped GRE frame: {e}");
                continue;
            }
        };
        let Some(call) = shared.call(src, header.call_id) else {
            shared
                .stats
                .gre_unknown_call
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%src, call_id = header.call_id, "GRE for an unknown call");
            continue;
        };
        let slot = u32::from(call.call_id);
        let mut in_order = true;
        if let Some(seq) = header.seq {
            let before = shared.seq.rx_highest(slot).ok().flatten();
            in_order = before.is_none_or(|b| (seq.wrapping_sub(b) as i32) > 0);
            let _ = shared.seq.record_rx(slot, seq);
        }
        let start = offset + header.header_len();
        let end = start + usize::from(header.payload_len);
        let data = call.data();
        let opened = {
            let mut decryptor = data
                .as_ref()
                .and_then(|d| d.decryptor.as_ref())
                .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()));
            frame::open(&mut buf, start, end, decryptor.as_deref_mut())
        };
        match opened {
            Ok(Received::AckOnly) => {}
            Ok(Received::Control {
                protocol,
                start,
                end,
            }) => {
                if call
                    .input
                    .try_send(CallInput::Frame(protocol, buf[start..end].to_vec()))
                    .is_err()
                {
                    shared
                        .stats
                        .control_queue_full
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(Received::Ipv4 {
                start,
                end,
                encrypted,
            }) => {
                let Some(data) = data else {
                    shared.stats.gre_dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                // Clear data of a userspace-only session must come in
                // order (as in the kernel's PPTP driver); MPPE has its own
                // coherency count, and XDP sessions deliver out of order too.
                if !encrypted && !data.xdp && !in_order {
                    shared.stats.gre_late.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let packet = &mut buf[start..end];
                if ipv4::Packet::new_checked(&*packet).map(|p| p.src_addr()) != Ok(data.client) {
                    shared.stats.spoofed.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                if let Some(m) = data.mss {
                    mss::clamp(packet, m);
                }
                call.counters.rx_packets.fetch_add(1, Ordering::Relaxed);
                call.counters
                    .rx_bytes
                    .fetch_add(packet.len() as u64, Ordering::Relaxed);
                if let Err(e) = tun.send(packet).await {
                    tracing::debug!("TUN write: {e}");
                }
            }
            Err(e) => {
                shared.stats.gre_dropped.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(peer = %src, call_id = call.call_id, "dropped frame: {e}");
                if let frame::DropReason::Mppe(d) = &e
                    && d.needs_reset_request()
                {
                    let _ = call.input.try_send(CallInput::MppeResetNeeded);
                }
            }
        }
    }
}

/// Reads packets the kernel routed to the TUN device and sends each to its
/// client's session over GRE.
pub(super) async fn tun_receive(shared: Arc<Shared>, mut tun: TunReader) {
    let mut buf = vec![0u8; BUFFER_LEN];
    loop {
        let n = match tun.recv(&mut buf[HEADROOM..]).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!("TUN read: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        shared.stats.tun_rx.fetch_add(1, Ordering::Relaxed);
        let end = HEADROOM + n;
        // IPv6 and the like (no IPV6CP here), and malformed packets.
        let Ok(packet) = ipv4::Packet::new_checked(&buf[HEADROOM..end]) else {
            continue;
        };
        let dst = packet.dst_addr();
        let Some(call) = shared.client(dst) else {
            shared.stats.tun_no_session.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let Some(data) = call.data() else {
            shared.stats.tun_no_session.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        if n > usize::from(data.mtu) {
            shared.stats.tun_too_big.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if let Some(m) = data.mss {
            mss::clamp(&mut buf[HEADROOM..end], m);
        }
        let sealed = {
            let mut enc = data
                .encryptor
                .as_ref()
                .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()));
            frame::seal(&mut buf, HEADROOM, end, enc.as_deref_mut())
        };
        let Ok((start, protocol)) = sealed else {
            continue;
        };
        let header = shared.gre_header(&call, true);
        let Ok(begin) = frame::prepend(&mut buf, start, end, header, data.framing.ppp(protocol))
        else {
            continue;
        };
        call.counters.tx_packets.fetch_add(1, Ordering::Relaxed);
        call.counters
            .tx_bytes
            .fetch_add(n as u64, Ordering::Relaxed);
        shared.send_gre(&call, &buf[begin..end]).await;
    }
}

/// Frames a PPP control packet of a call and sends it.
pub async fn send_control(
    shared: &Shared,
    call: &Call,
    framing: Framing,
    protocol: u16,
    payload: &[u8],
) {
    let mut buf = vec![0u8; HEADROOM + payload.len()];
    buf[HEADROOM..].copy_from_slice(payload);
    let header = shared.gre_header(call, true);
    let ppp = framing.ppp(ppp::Protocol::from(protocol));
    match frame::prepend(&mut buf, HEADROOM, HEADROOM + payload.len(), header, ppp) {
        Ok(begin) => shared.send_gre(call, &buf[begin..]).await,
        Err(e) => tracing::warn!(call_id = call.call_id, "cannot frame a PPP packet: {e}"),
    }
}
