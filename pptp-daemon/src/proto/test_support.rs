//! What the tests of the PPP automata share: building a control-protocol
//! packet (RFC 1661 section 5) and reading back what an automaton sent.

use crate::wire::cp::{Code, Packet, Repr};

/// A sent packet: code, identifier, data.
pub type Sent = (Code, u8, Vec<u8>);

/// A control-protocol packet with `code`, identifier `id` and `data`.
pub fn pkt(code: Code, id: u8, data: &[u8]) -> Vec<u8> {
    Repr {
        code,
        identifier: id,
        data,
    }
    .to_vec()
    .expect("a test packet fits")
}

/// The code, identifier and data of one sent packet.
pub fn decode(bytes: &[u8]) -> Sent {
    let p = Packet::new_checked(bytes).expect("the automaton sent a well-formed packet");
    (p.code(), p.identifier(), p.data().to_vec())
}

/// Every packet `poll` yields until it yields none, decoded.
pub fn drain(mut poll: impl FnMut() -> Option<Vec<u8>>) -> Vec<Sent> {
    std::iter::from_fn(&mut poll).map(|b| decode(&b)).collect()
}
