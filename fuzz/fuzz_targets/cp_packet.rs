#![no_main]
//! Arbitrary bytes as a PPP control-protocol packet (RFC 1661 section 5):
//! parse, re-emit, re-parse; options as LCP, IPCP and CCP options, each
//! re-emitted byte for byte; code-specific bodies likewise. Then the same
//! bytes go through the LCP, IPCP and CCP automata, which must not panic.

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use pptp_daemon::{
    config::Config,
    proto::{
        ccp::Ccp,
        fsm::FsmConfig,
        ipcp::{Ipcp, IpcpOptions, IpcpPolicy},
        lcp::{Lcp, magic_source},
    },
    wire::{
        ccp::CcpOption,
        cp::{Code, MagicBody, Options, ProtocolReject, Repr, TimeRemaining, push_option},
        ipcp::IpcpOption,
        lcp::LcpOption,
    },
};

fn check_codecs(data: &[u8]) {
    let Ok(repr) = Repr::parse_bytes(data) else {
        return;
    };
    let bytes = repr.to_vec().expect("a parsed packet re-emits");
    assert_eq!(
        bytes[..],
        data[..bytes.len()],
        "re-emitted bytes differ (padding aside)"
    );
    assert_eq!(Repr::parse_bytes(&bytes).expect("re-parses"), repr);

    match repr.code {
        Code::ConfigureRequest
        | Code::ConfigureAck
        | Code::ConfigureNak
        | Code::ConfigureReject => {
            let Ok(options) = Options::collect_all(repr.data) else {
                return;
            };
            let mut raw = Vec::new();
            for o in &options {
                push_option(&mut raw, o.kind, o.data).expect("a parsed option re-emits");
            }
            assert_eq!(raw, repr.data);
            for o in &options {
                let whole = o.to_vec();
                if let Ok(l) = LcpOption::parse(*o) {
                    let mut v = Vec::new();
                    l.push_to(&mut v).expect("LCP option re-emits");
                    assert_eq!(v, whole, "LCP {l:?}");
                }
                if let Ok(i) = IpcpOption::parse(*o) {
                    let mut v = Vec::new();
                    i.push_to(&mut v).expect("IPCP option re-emits");
                    assert_eq!(v, whole, "IPCP {i:?}");
                }
                if let Ok(c) = CcpOption::parse(*o) {
                    let mut v = Vec::new();
                    c.push_to(&mut v).expect("CCP option re-emits");
                    assert_eq!(v, whole, "CCP {c:?}");
                }
            }
        }
        Code::ProtocolReject => {
            if let Ok(p) = ProtocolReject::parse(repr.data) {
                assert_eq!(p.to_vec(), repr.data);
            }
        }
        Code::EchoRequest | Code::EchoReply | Code::DiscardRequest | Code::Identification => {
            if let Ok(m) = MagicBody::parse(repr.data) {
                assert_eq!(m.to_vec(), repr.data);
            }
        }
        Code::TimeRemaining => {
            if let Ok(t) = TimeRemaining::parse(repr.data) {
                let mut v = vec![0; t.buffer_len()];
                t.emit(&mut v).expect("Time-Remaining re-emits");
                assert_eq!(v, repr.data);
            }
        }
        _ => {}
    }
}

fn check_automata(data: &[u8]) {
    let now = Instant::now();
    let config = Config::default();
    let fsm = FsmConfig::default();

    let mut lcp = Lcp::new(config.lcp_policy(), fsm.clone(), magic_source(1));
    lcp.open(now);
    lcp.up(now);
    lcp.handle_packet(now, data);
    lcp.handle_timeout(now + Duration::from_secs(3));
    while lcp.poll_transmit().is_some() {}

    let mut options = IpcpOptions::new(IpcpPolicy::Server {
        local_address: config.ppp.local_address,
        dns: vec![[198, 18, 0, 53].into()],
        nbns: vec![],
    });
    options.set_assigned_address([198, 19, 0, 2].into());
    let mut ipcp = Ipcp::new(options, fsm.clone());
    ipcp.open(now);
    ipcp.up(now);
    ipcp.handle_packet(now, data);
    while ipcp.poll_transmit().is_some() {}

    let mut ccp = Ccp::new(config.mppe_policy(), fsm);
    ccp.open(now);
    ccp.up(now);
    ccp.handle_packet(now, data);
    while ccp.poll_transmit().is_some() {}
}

fuzz_target!(|data: &[u8]| {
    check_codecs(data);
    check_automata(data);
});
