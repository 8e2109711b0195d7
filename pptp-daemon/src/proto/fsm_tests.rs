//! Tests of the RFC 1661 automaton, grouped by the rows of the state table
//! (docs/rfc1661-state-table.md): one module per event, each checking the
//! event in all ten states; then scenarios for the counters, identifier
//! matching and two automata talking to each other.

use super::*;
use crate::proto::test_support::{Sent, drain, pkt};

/// A protocol with one option, type 1, one octet: the peer's value 1 is
/// Acked, 2 is Nak'ed towards 1, anything else and any other type are
/// Rejected. Our request carries type 1 with `want`.
#[derive(Debug)]
struct TestProto {
    initial: Option<u8>,
    want: Option<u8>,
    required: bool,
    insist: bool,
    fail_judge: bool,
    resets: u32,
    hooks: Vec<&'static str>,
    peer_value: Option<u8>,
}

impl TestProto {
    fn new() -> Self {
        TestProto {
            initial: Some(1),
            want: Some(1),
            required: false,
            insist: false,
            fail_judge: false,
            resets: 0,
            hooks: Vec::new(),
            peer_value: None,
        }
    }
}

impl Negotiator for TestProto {
    fn name(&self) -> &'static str {
        "TEST"
    }

    fn reset(&mut self) {
        self.resets += 1;
        self.want = self.initial;
        self.peer_value = None;
    }

    fn write_request(&mut self, out: &mut Vec<u8>) {
        if let Some(v) = self.want {
            push_option(out, 1, &[v]).unwrap();
        }
    }

    fn judge(
        &mut self,
        option: RawOption<'_>,
        _reject_if_disagree: bool,
    ) -> Result<Verdict, String> {
        if self.fail_judge {
            return Err("test refusal".into());
        }
        Ok(match (option.kind, option.data) {
            (1, [1]) => Verdict::Ack,
            (1, [2]) => Verdict::Nak(vec![1]),
            _ => Verdict::Reject,
        })
    }

    fn missing_options(&mut self, request: &[RawOption<'_>], naks: &mut Vec<u8>) {
        if self.insist && !request.iter().any(|o| o.kind == 1) {
            push_option(naks, 1, &[1]).unwrap();
        }
    }

    fn peer_request_acked(&mut self, request: &[RawOption<'_>]) {
        self.peer_value = request
            .iter()
            .find(|o| o.kind == 1)
            .and_then(|o| o.data.first().copied());
    }

    fn handle_nak(&mut self, options: &[RawOption<'_>]) -> Result<(), String> {
        for o in options {
            if let (1, [v]) = (o.kind, o.data) {
                self.want = Some(*v);
            }
        }
        Ok(())
    }

    fn handle_reject(&mut self, options: &[RawOption<'_>]) -> Result<(), String> {
        if options.iter().any(|o| o.kind == 1) {
            if self.required {
                return Err("option 1 is required".into());
            }
            self.want = None;
        }
        Ok(())
    }

    fn this_layer_up(&mut self) {
        self.hooks.push("tlu");
    }
    fn this_layer_down(&mut self) {
        self.hooks.push("tld");
    }
    fn this_layer_started(&mut self) {
        self.hooks.push("tls");
    }
    fn this_layer_finished(&mut self) {
        self.hooks.push("tlf");
    }

    fn has_echo(&self) -> bool {
        true
    }
}

type TestFsm = Fsm<TestProto>;

fn new_fsm() -> TestFsm {
    Fsm::new(TestProto::new(), FsmConfig::default())
}

fn sent(f: &mut TestFsm) -> Vec<Sent> {
    drain(|| f.poll_transmit())
}

fn codes(f: &mut TestFsm) -> Vec<Code> {
    sent(f).into_iter().map(|(c, _, _)| c).collect()
}

fn events(f: &mut TestFsm) -> Vec<FsmEvent> {
    std::iter::from_fn(|| f.poll_event()).collect()
}

/// The automaton driven into `state` by real inputs, outputs drained.
fn at(state: State) -> (TestFsm, Instant) {
    let now = Instant::now();
    let mut f = new_fsm();
    let good_request = pkt(Code::ConfigureRequest, 0x40, &[1, 3, 1]);
    match state {
        State::Initial => {}
        State::Starting => f.open(now),
        State::Closed => f.up(now),
        State::ReqSent => {
            f.open(now);
            f.up(now);
        }
        State::AckRcvd => {
            let (g, _) = at(State::ReqSent);
            f = g;
            let ack = pkt(Code::ConfigureAck, f.request_id, &f.request.clone());
            f.handle_packet(now, &ack);
        }
        State::AckSent => {
            let (g, _) = at(State::ReqSent);
            f = g;
            f.handle_packet(now, &good_request);
        }
        State::Opened => {
            let (g, _) = at(State::AckRcvd);
            f = g;
            f.handle_packet(now, &good_request);
        }
        State::Closing => {
            let (g, _) = at(State::ReqSent);
            f = g;
            f.close(now, "admin");
        }
        State::Stopping => {
            let (g, _) = at(State::Opened);
            f = g;
            f.handle_packet(now, &pkt(Code::TerminateRequest, 0x41, &[]));
        }
        State::Stopped => {
            let (g, _) = at(State::ReqSent);
            f = g;
            f.handle_packet(now, &pkt(Code::CodeReject, 0x42, &[1, 1, 0, 4]));
        }
    }
    assert_eq!(f.state(), state, "setting up {state:?}");
    sent(&mut f);
    events(&mut f);
    f.proto_mut().hooks.clear();
    (f, now)
}

/// One cell of a row: what happens when the row's event hits `state`.
struct Cell {
    state: State,
    sent: &'static [Code],
    events: &'static [FsmEvent],
    next: State,
}

const fn cell(
    state: State,
    sent: &'static [Code],
    events: &'static [FsmEvent],
    next: State,
) -> Cell {
    Cell {
        state,
        sent,
        events,
        next,
    }
}

fn check_row(row: &str, cells: &[Cell], apply: impl Fn(&mut TestFsm, Instant)) {
    assert_eq!(cells.len(), 10, "row {row} must cover all ten states");
    for (c, s) in cells.iter().zip(State::ALL) {
        assert_eq!(c.state, s, "row {row}: cells in table order");
        let (mut f, now) = at(c.state);
        apply(&mut f, now);
        assert_eq!(
            codes(&mut f),
            c.sent,
            "row {row}, state {:?}: packets sent",
            c.state
        );
        assert_eq!(
            events(&mut f),
            c.events,
            "row {row}, state {:?}: actions",
            c.state
        );
        assert_eq!(
            f.state(),
            c.next,
            "row {row}, state {:?}: next state",
            c.state
        );
    }
}

use Code::{
    CodeReject as CJ, ConfigureAck as CA, ConfigureNak as CN, ConfigureReject as CRJ,
    ConfigureRequest as CR, EchoReply as ER, TerminateAck as TA, TerminateRequest as TR,
};
use FsmEvent::{Down as TLD, Finished as TLF, Started as TLS, Up as TLU};
use State::*;

mod row_up {
    use super::*;

    #[test]
    fn up() {
        check_row(
            "Up",
            &[
                cell(Initial, &[], &[], Closed),
                cell(Starting, &[CR], &[], ReqSent),
                cell(Closed, &[], &[], Closed),
                cell(Stopped, &[], &[], Stopped),
                cell(Closing, &[], &[], Closing),
                cell(Stopping, &[], &[], Stopping),
                cell(ReqSent, &[], &[], ReqSent),
                cell(AckRcvd, &[], &[], AckRcvd),
                cell(AckSent, &[], &[], AckSent),
                cell(Opened, &[], &[], Opened),
            ],
            |f, now| f.up(now),
        );
    }

    #[test]
    fn up_in_starting_initialises_the_restart_count() {
        let (mut f, now) = at(Starting);
        f.up(now);
        assert_eq!(f.restart_count, 9, "irc then one scr");
        assert_eq!(f.poll_timeout(), Some(now + Duration::from_secs(3)));
        assert_eq!(f.proto().resets, 1, "negotiation starts afresh");
    }
}

mod row_down {
    use super::*;

    #[test]
    fn down() {
        check_row(
            "Down",
            &[
                cell(Initial, &[], &[], Initial),
                cell(Starting, &[], &[], Starting),
                cell(Closed, &[], &[], Initial),
                cell(Stopped, &[], &[TLS], Starting),
                cell(Closing, &[], &[], Initial),
                cell(Stopping, &[], &[], Starting),
                cell(ReqSent, &[], &[], Starting),
                cell(AckRcvd, &[], &[], Starting),
                cell(AckSent, &[], &[], Starting),
                cell(Opened, &[], &[TLD], Starting),
            ],
            |f, now| f.down(now),
        );
    }

    #[test]
    fn down_stops_the_timer() {
        let (mut f, now) = at(ReqSent);
        f.down(now);
        assert_eq!(f.poll_timeout(), None);
    }
}

mod row_open {
    use super::*;

    #[test]
    fn open() {
        check_row(
            "Open",
            &[
                cell(Initial, &[], &[TLS], Starting),
                cell(Starting, &[], &[], Starting),
                cell(Closed, &[CR], &[], ReqSent),
                cell(Stopped, &[], &[], Stopped),
                cell(Closing, &[], &[], Stopping),
                cell(Stopping, &[], &[], Stopping),
                cell(ReqSent, &[], &[], ReqSent),
                cell(AckRcvd, &[], &[], AckRcvd),
                cell(AckSent, &[], &[], AckSent),
                cell(Opened, &[], &[], Opened),
            ],
            |f, now| f.open(now),
        );
    }
}

mod row_close {
    use super::*;

    #[test]
    fn close() {
        check_row(
            "Close",
            &[
                cell(Initial, &[], &[], Initial),
                cell(Starting, &[], &[TLF], Initial),
                cell(Closed, &[], &[], Closed),
                cell(Stopped, &[], &[], Closed),
                cell(Closing, &[], &[], Closing),
                cell(Stopping, &[], &[], Closing),
                cell(ReqSent, &[TR], &[], Closing),
                cell(AckRcvd, &[TR], &[], Closing),
                cell(AckSent, &[TR], &[], Closing),
                cell(Opened, &[TR], &[TLD], Closing),
            ],
            |f, now| f.close(now, "admin"),
        );
    }

    #[test]
    fn terminate_request_carries_the_reason_and_max_terminate() {
        let (mut f, now) = at(Opened);
        f.close(now, "going away");
        assert_eq!(f.restart_count, 1, "irc (Max-Terminate 2) then one str");
        let s = sent(&mut f);
        assert_eq!(s[0].0, TR);
        assert_eq!(s[0].2, b"going away");
        assert_eq!(f.close_reason(), Some("going away"));
        assert_eq!(f.proto().hooks, ["tld"]);
    }
}

mod row_timeout_plus {
    use super::*;

    #[test]
    fn timeout_plus() {
        check_row(
            "TO+",
            &[
                cell(Initial, &[], &[], Initial),
                cell(Starting, &[], &[], Starting),
                cell(Closed, &[], &[], Closed),
                cell(Stopped, &[], &[], Stopped),
                cell(Closing, &[TR], &[], Closing),
                cell(Stopping, &[TR], &[], Stopping),
                cell(ReqSent, &[CR], &[], ReqSent),
                cell(AckRcvd, &[CR], &[], ReqSent),
                cell(AckSent, &[CR], &[], AckSent),
                cell(Opened, &[], &[], Opened),
            ],
            |f, now| match f.poll_timeout() {
                Some(deadline) => {
                    f.restart_count = f.restart_count.max(1);
                    f.handle_timeout(deadline);
                }
                // No timer runs here: the event can only be injected.
                None => f.step(now, Event::TimeoutPlus),
            },
        );
    }

    #[test]
    fn timer_not_due_does_nothing() {
        let (mut f, now) = at(ReqSent);
        f.handle_timeout(now + Duration::from_millis(2999));
        assert!(codes(&mut f).is_empty());
        f.handle_timeout(now + Duration::from_secs(3));
        assert_eq!(codes(&mut f), [CR]);
    }
}

mod row_timeout_minus {
    use super::*;

    #[test]
    fn timeout_minus() {
        check_row(
            "TO-",
            &[
                cell(Initial, &[], &[], Initial),
                cell(Starting, &[], &[], Starting),
                cell(Closed, &[], &[], Closed),
                cell(Stopped, &[], &[], Stopped),
                cell(Closing, &[], &[TLF], Closed),
                cell(Stopping, &[], &[TLF], Stopped),
                cell(ReqSent, &[], &[TLF], Stopped),
                cell(AckRcvd, &[], &[TLF], Stopped),
                cell(AckSent, &[], &[TLF], Stopped),
                cell(Opened, &[], &[], Opened),
            ],
            |f, now| match f.poll_timeout() {
                Some(deadline) => {
                    f.restart_count = 0;
                    f.handle_timeout(deadline);
                }
                None => f.step(now, Event::TimeoutMinus),
            },
        );
    }
}

const GOOD: [u8; 3] = [1, 3, 1];
const BAD: [u8; 3] = [1, 3, 2];

mod row_rcr_good {
    use super::*;

    #[test]
    fn receive_configure_request_good() {
        check_row(
            "RCR+",
            &[
                cell(Initial, &[], &[], Initial),
                cell(Starting, &[], &[], Starting),
                cell(Closed, &[TA], &[], Closed),
                cell(Stopped, &[CR, CA], &[], AckSent),
                cell(Closing, &[], &[], Closing),
                cell(Stopping, &[], &[], Stopping),
                cell(ReqSent, &[CA], &[], AckSent),
                cell(AckRcvd, &[CA], &[TLU], Opened),
                cell(AckSent, &[CA], &[], AckSent),
                cell(Opened, &[CR, CA], &[TLD], AckSent),
            ],
            |f, now| f.handle_packet(now, &pkt(CR, 0x77, &GOOD)),
        );
    }

    #[test]
    fn ack_echoes_the_request_and_records_it() {
        let (mut f, now) = at(ReqSent);
        f.handle_packet(now, &pkt(CR, 0x77, &GOOD));
        assert_eq!(sent(&mut f), [(CA, 0x77, GOOD.to_vec())]);
        assert_eq!(f.proto().peer_value, Some(1));
    }

    #[test]
    fn stopped_starts_afresh() {
        let (mut f, now) = at(Stopped);
        let resets = f.proto().resets;
        f.handle_packet(now, &pkt(CR, 0x77, &GOOD));
        assert_eq!(f.proto().resets, resets + 1);
        assert_eq!(f.restart_count, 9, "irc then scr");
    }
}

mod row_rcr_bad {
    use super::*;

    #[test]
    fn receive_configure_request_bad() {
        check_row(
            "RCR-",
            &[
                cell(Initial, &[], &[], Initial),
                cell(Starting, &[], &[], Starting),
                cell(Closed, &[TA], &[], Closed),
                cell(Stopped, &[CR, CN], &[], ReqSent),
                cell(Closing, &[], &[], Closing),
                cell(Stopping, &[], &[], Stopping),
                cell(ReqSent, &[CN], &[], ReqSent),
                cell(AckRcvd, &[CN], &[], AckRcvd),
                cell(AckSent, &[CN], &[], ReqSent),
                cell(Opened, &[CR, CN], &[TLD], ReqSent),
            ],
            |f, now| f.handle_packet(now, &pkt(CR, 0x77, &BAD)),
        );
    }

    #[test]
    fn reject_wins_over_nak_and_echoes_raw_bytes() {
        let (mut f, now) = at(ReqSent);
        // Option 1 value 2 (Nak) and an unknown option 9 (Reject).
        f.handle_packet(now, &pkt(CR, 5, &[1, 3, 2, 9, 4, 0xaa, 0xbb]));
        assert_eq!(sent(&mut f), [(CRJ, 5, vec![9, 4, 0xaa, 0xbb])]);
        f.handle_packet(now, &pkt(CR, 6, &[1, 3, 2]));
        assert_eq!(sent(&mut f), [(CN, 6, vec![1, 3, 1])]);
    }

    #[test]
    fn missing_options_are_naked_in() {
        let (mut f, now) = at(ReqSent);
        f.proto_mut().insist = true;
        f.handle_packet(now, &pkt(CR, 5, &[]));
        assert_eq!(sent(&mut f), [(CN, 5, vec![1, 3, 1])]);
        assert_eq!(f.state(), ReqSent);
    }

    #[test]
    fn malformed_option_list_is_discarded() {
        let (mut f, now) = at(ReqSent);
        f.handle_packet(now, &pkt(CR, 5, &[1, 9, 1]));
        f.handle_packet(now, &pkt(CR, 5, &[1, 1]));
        assert!(sent(&mut f).is_empty());
        assert_eq!(f.state(), ReqSent);
    }

    #[test]
    fn a_judge_refusal_closes_with_its_reason() {
        let (mut f, now) = at(ReqSent);
        f.proto_mut().fail_judge = true;
        f.handle_packet(now, &pkt(CR, 5, &GOOD));
        assert_eq!(sent(&mut f), [(TR, 2, b"test refusal".to_vec())]);
        assert_eq!(f.state(), Closing);
        assert_eq!(f.close_reason(), Some("test refusal"));
    }
}

mod row_rca {
    use super::*;

    fn apply(f: &mut TestFsm, now: Instant) {
        if matches!(f.state(), AckRcvd | Opened) {
            // A matching reply was already processed: any Ack is stale...
            let ack = pkt(CA, f.request_id, &f.request.clone());
            f.handle_packet(now, &ack);
            assert!(codes(f).is_empty() && events(f).is_empty());
            // ... so the table's cell is reached by injection.
            f.step(now, Event::Rca);
        } else {
            let ack = pkt(CA, f.request_id, &f.request.clone());
            f.handle_packet(now, &ack);
        }
    }

    #[test]
    fn receive_configure_ack() {
        check_row(
            "RCA",
            &[
                cell(Initial, &[], &[], Initial),
                cell(Starting, &[], &[], Starting),
                cell(Closed, &[TA], &[], Closed),
                cell(Stopped, &[TA], &[], Stopped),
                cell(Closing, &[], &[], Closing),
                cell(Stopping, &[], &[], Stopping),
                cell(ReqSent, &[], &[], AckRcvd),
                cell(AckRcvd, &[CR], &[], ReqSent),
                cell(AckSent, &[], &[TLU], Opened),
                cell(Opened, &[CR], &[TLD], ReqSent),
            ],
            apply,
        );
    }

    #[test]
    fn rca_in_req_sent_initialises_the_restart_count() {
        let (mut f, now) = at(ReqSent);
        assert_eq!(f.restart_count, 9);
        apply(&mut f, now);
        assert_eq!(f.restart_count, 10);
        assert!(
            f.poll_timeout().is_some(),
            "the timer keeps running in Ack-Rcvd"
        );
    }

    #[test]
    fn wrong_identifier_or_options_are_discarded() {
        let (mut f, now) = at(ReqSent);
        let id = f.request_id;
        f.handle_packet(now, &pkt(CA, id.wrapping_add(1), &GOOD));
        f.handle_packet(now, &pkt(CA, id, &[1, 3, 9]));
        f.handle_packet(now, &pkt(CA, id, &[]));
        assert_eq!(f.state(), ReqSent);
        f.handle_packet(now, &pkt(CA, id, &GOOD));
        assert_eq!(f.state(), AckRcvd);
        // A duplicate of the Ack is not a crossed connection.
        f.handle_packet(now, &pkt(CA, id, &GOOD));
        assert_eq!(f.state(), AckRcvd);
        assert!(codes(&mut f).is_empty());
    }
}

mod row_rcn {
    use super::*;

    fn apply(f: &mut TestFsm, now: Instant) {
        let nak = pkt(CN, f.request_id, &[1, 3, 4]);
        if matches!(f.state(), AckRcvd | Opened) {
            f.handle_packet(now, &nak);
            assert!(codes(f).is_empty() && events(f).is_empty());
            f.step(now, Event::Rcn);
        } else {
            f.handle_packet(now, &nak);
        }
    }

    #[test]
    fn receive_configure_nak() {
        check_row(
            "RCN",
            &[
                cell(Initial, &[], &[], Initial),
                cell(Starting, &[], &[], Starting),
                cell(Closed, &[TA], &[], Closed),
                cell(Stopped, &[TA], &[], Stopped),
                cell(Closing, &[], &[], Closing),
                cell(Stopping, &[], &[], Stopping),
                cell(ReqSent, &[CR], &[], ReqSent),
                cell(AckRcvd, &[CR], &[], ReqSent),
                cell(AckSent, &[CR], &[], AckSent),
                cell(Opened, &[CR], &[TLD], ReqSent),
            ],
            apply,
        );
    }

    #[test]
    fn receive_configure_reject() {
        check_row(
            "RCN (Configure-Reject)",
            &[
                cell(Initial, &[], &[], Initial),
                cell(Starting, &[], &[], Starting),
                cell(Closed, &[TA], &[], Closed),
                cell(Stopped, &[TA], &[], Stopped),
                cell(Closing, &[], &[], Closing),
                cell(Stopping, &[], &[], Stopping),
                cell(ReqSent, &[CR], &[], ReqSent),
                cell(AckRcvd, &[CR], &[], ReqSent),
                cell(AckSent, &[CR], &[], AckSent),
                cell(Opened, &[CR], &[TLD], ReqSent),
            ],
            |f, now| {
                let rej = pkt(CRJ, f.request_id, &GOOD);
                if matches!(f.state(), AckRcvd | Opened) {
                    f.handle_packet(now, &rej);
                    assert!(codes(f).is_empty());
                    f.step(now, Event::Rcn);
                } else {
                    f.handle_packet(now, &rej);
                }
            },
        );
    }

    #[test]
    fn nak_adjusts_the_next_request_with_a_new_identifier() {
        let (mut f, now) = at(ReqSent);
        let id = f.request_id;
        f.handle_packet(now, &pkt(CN, id, &[1, 3, 4]));
        let s = sent(&mut f);
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].0, s[0].2.as_slice()), (CR, &[1, 3, 4][..]));
        assert_ne!(s[0].1, id);
        assert_eq!(f.restart_count, 9, "irc, scr");
    }

    #[test]
    fn reject_must_name_options_we_sent() {
        let (mut f, now) = at(ReqSent);
        let id = f.request_id;
        f.handle_packet(now, &pkt(CRJ, id, &[1, 3, 2]));
        f.handle_packet(now, &pkt(CRJ, id, &[9, 2]));
        f.handle_packet(now, &pkt(CN, id.wrapping_sub(1), &[1, 3, 4]));
        assert!(codes(&mut f).is_empty());
        f.handle_packet(now, &pkt(CRJ, id, &GOOD));
        let s = sent(&mut f);
        assert_eq!(
            (s[0].0, s[0].2.as_slice()),
            (CR, &[][..]),
            "re-sent without the option"
        );
    }

    #[test]
    fn reject_of_a_required_option_closes() {
        let (mut f, now) = at(ReqSent);
        f.proto_mut().required = true;
        f.handle_packet(now, &pkt(CRJ, f.request_id, &GOOD));
        assert_eq!(codes(&mut f), [TR]);
        assert_eq!(f.state(), Closing);
        assert_eq!(f.close_reason(), Some("option 1 is required"));
    }
}

mod row_rtr {
    use super::*;

    #[test]
    fn receive_terminate_request() {
        check_row(
            "RTR",
            &[
                cell(Initial, &[], &[], Initial),
                cell(Starting, &[], &[], Starting),
                cell(Closed, &[TA], &[], Closed),
                cell(Stopped, &[TA], &[], Stopped),
                cell(Closing, &[TA], &[], Closing),
                cell(Stopping, &[TA], &[], Stopping),
                cell(ReqSent, &[TA], &[], ReqSent),
                cell(AckRcvd, &[TA], &[], ReqSent),
                cell(AckSent, &[TA], &[], ReqSent),
                cell(Opened, &[TA], &[TLD], Stopping),
            ],
            |f, now| f.handle_packet(now, &pkt(TR, 0x33, b"bye")),
        );
    }

    #[test]
    fn opened_zeroes_the_restart_count_and_waits() {
        let (mut f, now) = at(Opened);
        f.handle_packet(now, &pkt(TR, 0x33, &[]));
        assert_eq!(sent(&mut f), [(TA, 0x33, vec![])]);
        assert_eq!(f.restart_count, 0);
        let deadline = f.poll_timeout().expect("zrc starts the timer");
        f.handle_timeout(deadline);
        assert_eq!(events(&mut f), [TLD, TLF]);
        assert_eq!(f.state(), Stopped);
    }
}

mod row_rta {
    use super::*;

    #[test]
    fn receive_terminate_ack() {
        check_row(
            "RTA",
            &[
                cell(Initial, &[], &[], Initial),
                cell(Starting, &[], &[], Starting),
                cell(Closed, &[], &[], Closed),
                cell(Stopped, &[], &[], Stopped),
                cell(Closing, &[], &[TLF], Closed),
                cell(Stopping, &[], &[TLF], Stopped),
                cell(ReqSent, &[], &[], ReqSent),
                cell(AckRcvd, &[], &[], ReqSent),
                cell(AckSent, &[], &[], AckSent),
                cell(Opened, &[CR], &[TLD], ReqSent),
            ],
            |f, now| f.handle_packet(now, &pkt(TA, 0x33, &[])),
        );
    }
}

mod row_ruc {
    use super::*;

    #[test]
    fn receive_unknown_code() {
        check_row(
            "RUC",
            &[
                cell(Initial, &[], &[], Initial),
                cell(Starting, &[], &[], Starting),
                cell(Closed, &[CJ], &[], Closed),
                cell(Stopped, &[CJ], &[], Stopped),
                cell(Closing, &[CJ], &[], Closing),
                cell(Stopping, &[CJ], &[], Stopping),
                cell(ReqSent, &[CJ], &[], ReqSent),
                cell(AckRcvd, &[CJ], &[], AckRcvd),
                cell(AckSent, &[CJ], &[], AckSent),
                cell(Opened, &[CJ], &[], Opened),
            ],
            |f, now| f.handle_packet(now, &pkt(Code::Unknown(0x30), 0x33, &[1, 2])),
        );
    }

    #[test]
    fn code_reject_carries_the_packet_cut_to_the_mru() {
        let (mut f, now) = at(Opened);
        let unknown = pkt(Code::Unknown(0x30), 0x33, &[7; 200]);
        f.handle_packet(now, &unknown);
        assert_eq!(sent(&mut f)[0].2, unknown);
        f.set_max_packet_len(100);
        f.handle_packet(now, &unknown);
        assert_eq!(sent(&mut f)[0].2, &unknown[..96]);
    }

    #[test]
    fn protocol_reject_is_unknown_to_protocols_without_it() {
        let (mut f, now) = at(Opened);
        f.handle_packet(now, &pkt(Code::ProtocolReject, 1, &[0x80, 0x57]));
        assert_eq!(codes(&mut f), [CJ]);
        for code in [12, 13, 14, 15] {
            f.handle_packet(now, &pkt(Code::from(code), 1, &[]));
            assert_eq!(codes(&mut f), [CJ], "code {code}");
        }
    }
}

mod row_rxj_plus {
    use super::*;

    #[test]
    fn receive_permitted_reject() {
        check_row(
            "RXJ+",
            &[
                cell(Initial, &[], &[], Initial),
                cell(Starting, &[], &[], Starting),
                cell(Closed, &[], &[], Closed),
                cell(Stopped, &[], &[], Stopped),
                cell(Closing, &[], &[], Closing),
                cell(Stopping, &[], &[], Stopping),
                cell(ReqSent, &[], &[], ReqSent),
                cell(AckRcvd, &[], &[], ReqSent),
                cell(AckSent, &[], &[], AckSent),
                cell(Opened, &[], &[], Opened),
            ],
            // Code-Reject of Identification (code 12): permitted.
            |f, now| f.handle_packet(now, &pkt(CJ, 0x33, &[12, 1, 0, 8, 0, 0, 0, 0])),
        );
    }
}

mod row_rxj_minus {
    use super::*;

    #[test]
    fn receive_catastrophic_reject() {
        check_row(
            "RXJ-",
            &[
                cell(Initial, &[], &[], Initial),
                cell(Starting, &[], &[], Starting),
                cell(Closed, &[], &[TLF], Closed),
                cell(Stopped, &[], &[TLF], Stopped),
                cell(Closing, &[], &[TLF], Closed),
                cell(Stopping, &[], &[TLF], Stopped),
                cell(ReqSent, &[], &[TLF], Stopped),
                cell(AckRcvd, &[], &[TLF], Stopped),
                cell(AckSent, &[], &[TLF], Stopped),
                cell(Opened, &[TR], &[TLD], Stopping),
            ],
            // Code-Reject of Configure-Request: catastrophic.
            |f, now| f.handle_packet(now, &pkt(CJ, 0x33, &[1, 1, 0, 4])),
        );
    }

    #[test]
    fn protocol_rejected_by_peer_is_catastrophic() {
        let (mut f, now) = at(AckSent);
        f.protocol_rejected_by_peer(now);
        assert_eq!(events(&mut f), [TLF]);
        assert_eq!(f.state(), Stopped);
        assert_eq!(
            f.close_reason(),
            Some("the peer rejected TEST (Protocol-Reject)")
        );
    }

    #[test]
    fn empty_code_reject_is_discarded() {
        let (mut f, now) = at(Opened);
        f.handle_packet(now, &pkt(CJ, 0x33, &[]));
        assert_eq!(f.state(), Opened);
    }
}

mod row_rxr {
    use super::*;

    #[test]
    fn receive_echo_or_discard() {
        check_row(
            "RXR",
            &[
                cell(Initial, &[], &[], Initial),
                cell(Starting, &[], &[], Starting),
                cell(Closed, &[], &[], Closed),
                cell(Stopped, &[], &[], Stopped),
                cell(Closing, &[], &[], Closing),
                cell(Stopping, &[], &[], Stopping),
                cell(ReqSent, &[], &[], ReqSent),
                cell(AckRcvd, &[], &[], AckRcvd),
                cell(AckSent, &[], &[], AckSent),
                cell(Opened, &[ER], &[], Opened),
            ],
            |f, now| f.handle_packet(now, &pkt(Code::EchoRequest, 0x33, &[0, 0, 0, 0, 1])),
        );
    }

    #[test]
    fn echo_reply_and_discard_request_are_silent() {
        let (mut f, now) = at(Opened);
        f.handle_packet(now, &pkt(Code::EchoReply, 1, &[0, 0, 0, 0]));
        f.handle_packet(now, &pkt(Code::DiscardRequest, 2, &[0, 0, 0, 0]));
        assert!(codes(&mut f).is_empty());
        f.handle_packet(now, &pkt(Code::EchoRequest, 3, &[0, 0, 0, 0, 9]));
        assert_eq!(sent(&mut f), [(ER, 3, vec![0, 0, 0, 0, 9])]);
    }
}

mod counters {
    use super::*;

    #[test]
    fn a_peer_that_never_answers_gets_max_configure_requests() {
        let (mut f, _) = at(Starting);
        let mut now = Instant::now();
        f.up(now);
        let mut requests = sent(&mut f);
        while let Some(deadline) = f.poll_timeout() {
            now = deadline;
            f.handle_timeout(now);
            requests.extend(sent(&mut f));
        }
        assert_eq!(requests.len(), 10, "Max-Configure");
        assert!(
            requests.iter().all(|r| r.0 == CR && r.1 == requests[0].1),
            "retransmissions keep the identifier"
        );
        assert_eq!(events(&mut f), [TLF]);
        assert_eq!(f.state(), Stopped);
        assert_eq!(f.close_reason(), Some("no answer to 10 Configure-Requests"));
    }

    #[test]
    fn max_terminate_requests_then_closed() {
        let (mut f, now) = at(Opened);
        f.close(now, "bye");
        let mut requests = codes(&mut f);
        while let Some(deadline) = f.poll_timeout() {
            f.handle_timeout(deadline);
            requests.extend(codes(&mut f));
        }
        assert_eq!(requests, [TR, TR], "Max-Terminate");
        assert_eq!(events(&mut f), [TLD, TLF]);
        assert_eq!(f.state(), Closed);
    }

    #[test]
    fn configurable_counters() {
        let config = FsmConfig {
            restart_interval: Duration::from_millis(500),
            max_configure: 3,
            max_terminate: 1,
            max_failure: 2,
        };
        let mut f = Fsm::new(TestProto::new(), config);
        let mut now = Instant::now();
        f.open(now);
        f.up(now);
        let mut n = codes(&mut f).len();
        while let Some(deadline) = f.poll_timeout() {
            now = deadline;
            f.handle_timeout(now);
            n += codes(&mut f).len();
        }
        assert_eq!(n, 3);
    }

    #[test]
    fn naks_turn_into_rejects_after_max_failure() {
        let (mut f, now) = at(ReqSent);
        let mut replies = Vec::new();
        for id in 0..7 {
            f.handle_packet(now, &pkt(CR, id, &BAD));
            replies.extend(codes(&mut f));
        }
        assert_eq!(replies, [CN, CN, CN, CN, CN, CRJ, CRJ]);
        // An Ack resets the count.
        f.handle_packet(now, &pkt(CR, 8, &GOOD));
        assert_eq!(codes(&mut f), [CA]);
        f.handle_packet(now, &pkt(CR, 9, &BAD));
        assert_eq!(codes(&mut f), [CN]);
    }

    #[test]
    fn naks_received_beyond_max_failure_count_as_rejects() {
        let (mut f, now) = at(ReqSent);
        for value in 10..15u8 {
            f.handle_packet(now, &pkt(CN, f.request_id, &[1, 3, value]));
            let s = sent(&mut f);
            assert_eq!(s[0].2, [1, 3, value], "Nak {value} applied");
        }
        f.handle_packet(now, &pkt(CN, f.request_id, &[1, 3, 99]));
        let s = sent(&mut f);
        assert_eq!(
            (s[0].0, s[0].2.as_slice()),
            (CR, &[][..]),
            "sixth Nak: option dropped"
        );
    }

    #[test]
    fn a_required_option_naked_forever_closes() {
        let (mut f, now) = at(ReqSent);
        f.proto_mut().required = true;
        for value in 10..16u8 {
            f.handle_packet(now, &pkt(CN, f.request_id, &[1, 3, value]));
        }
        assert_eq!(f.state(), Closing);
        assert_eq!(f.close_reason(), Some("option 1 is required"));
    }
}

mod pairs {
    use super::*;

    /// Delivers everything each automaton sends to the other until quiet.
    fn exchange(a: &mut TestFsm, b: &mut TestFsm, now: Instant) {
        for _ in 0..100 {
            let from_a: Vec<_> = std::iter::from_fn(|| a.poll_transmit()).collect();
            let from_b: Vec<_> = std::iter::from_fn(|| b.poll_transmit()).collect();
            if from_a.is_empty() && from_b.is_empty() {
                return;
            }
            for p in from_a {
                b.handle_packet(now, &p);
            }
            for p in from_b {
                a.handle_packet(now, &p);
            }
        }
        panic!("no quiescence");
    }

    #[test]
    fn two_automata_open_and_close() {
        let now = Instant::now();
        let mut a = new_fsm();
        let mut b = new_fsm();
        b.proto_mut().initial = Some(2); // b starts with a value a Naks
        for f in [&mut a, &mut b] {
            f.open(now);
            f.up(now);
        }
        exchange(&mut a, &mut b, now);
        assert_eq!((a.state(), b.state()), (Opened, Opened));
        assert_eq!(a.proto().peer_value, Some(1), "b adopted a's Nak");
        a.close(now, "done");
        exchange(&mut a, &mut b, now);
        assert_eq!(a.state(), Closed);
        assert_eq!(b.state(), Stopping, "b waits one restart interval");
        let deadline = b.poll_timeout().unwrap();
        b.handle_timeout(deadline);
        assert_eq!(b.state(), Stopped);
        assert_eq!(events(&mut b), [TLS, TLU, TLD, TLF]);
        assert_eq!(b.close_reason(), Some("the peer terminated TEST"));
    }

    #[test]
    fn renegotiation_from_opened() {
        let now = Instant::now();
        let mut a = new_fsm();
        let mut b = new_fsm();
        for f in [&mut a, &mut b] {
            f.open(now);
            f.up(now);
        }
        exchange(&mut a, &mut b, now);
        assert_eq!((a.state(), b.state()), (Opened, Opened));
        // b's lower layer bounces: it starts over and a follows.
        b.down(now);
        b.up(now);
        exchange(&mut a, &mut b, now);
        assert_eq!((a.state(), b.state()), (Opened, Opened));
        assert_eq!(events(&mut a), [TLS, TLU, TLD, TLU]);
    }
}
