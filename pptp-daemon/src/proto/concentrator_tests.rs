//! Tests of the concentrator core, on a simulated clock: one group per
//! limit, the ownership rules, and a seeded random driver over every way a
//! session ends.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use super::*;
use crate::proto::control::{CallInfo, ControlConnection, ControlEvent, ControlSettings};
use crate::proto::pool::PoolRange;

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn pool(range: &str) -> AddressPool {
    AddressPool::new(&[range.parse::<PoolRange>().unwrap()], &[])
}

/// Limits that bound nothing but what a test sets.
fn open_limits() -> Limits {
    Limits {
        max_sessions: 1000,
        calls_per_connection: 1000,
        connections_per_source: 1000,
        max_starting: 1000,
        connection_rate_per_source: 0,
        connection_burst_per_source: 0,
        sessions_per_user: 0,
        over_user_limit: UserLimitPolicy::Deny,
        auth_attempts: 3,
        setup_timeout: Duration::from_secs(30),
        write_timeout: Duration::from_secs(10),
    }
}

fn core(limits: Limits) -> Concentrator {
    Concentrator::new(limits, pool("198.19.0.0/24"), 0x5eed)
}

fn events(c: &mut Concentrator) -> Vec<Event> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

fn terminate(session: SessionId, reason: EndReason) -> Event {
    Event::Terminate { session, reason }
}

// ---- calls per connection (issue problem 1) ----

#[test]
fn one_connection_cannot_take_every_call_and_another_source_still_gets_one() {
    let limits = Limits {
        max_sessions: 10,
        calls_per_connection: 3,
        ..open_limits()
    };
    let mut c = core(limits);
    let t = Instant::now();
    let attacker = c.handle_connect(t, ip("198.18.0.66")).unwrap();
    // The attacker never authenticates, and asks for call after call.
    let taken: Vec<_> = (0..20)
        .map_while(|i| c.allocate_call(t, attacker, i).ok())
        .collect();
    assert_eq!(taken.len(), 3);
    assert_eq!(
        c.allocate_call(t, attacker, 99),
        Err(Refusal::ConnectionCalls)
    );
    assert_eq!(c.counters().refused(Refusal::ConnectionCalls), 2);

    let legit = c.handle_connect(t, ip("198.18.0.7")).unwrap();
    let s = c
        .allocate_call(t, legit, 1)
        .expect("another client still gets a call");
    assert_eq!(c.session(s).unwrap().source, ip("198.18.0.7"));

    // A released call gives the connection its share back.
    c.release(t, taken[0], EndReason::CallCleared).unwrap();
    assert!(c.allocate_call(t, attacker, 100).is_ok());
}

#[test]
fn the_server_bound_refuses_with_server_full() {
    let mut c = core(Limits {
        max_sessions: 2,
        ..open_limits()
    });
    let t = Instant::now();
    let a = c.handle_connect(t, ip("198.18.0.1")).unwrap();
    let b = c.handle_connect(t, ip("198.18.0.2")).unwrap();
    c.allocate_call(t, a, 1).unwrap();
    c.allocate_call(t, b, 1).unwrap();
    assert_eq!(c.allocate_call(t, b, 2), Err(Refusal::ServerFull));
    assert_eq!(
        c.allocate_call(t, ConnectionId(999), 2),
        Err(Refusal::UnknownConnection)
    );
}

// ---- connections per source ----

#[test]
fn connections_per_source_are_bounded_and_freed_on_disconnect() {
    let mut c = core(Limits {
        connections_per_source: 2,
        ..open_limits()
    });
    let t = Instant::now();
    let src = ip("198.18.1.1");
    let a = c.handle_connect(t, src).unwrap();
    let _b = c.handle_connect(t, src).unwrap();
    assert_eq!(c.handle_connect(t, src), Err(Refusal::SourceConnections));
    assert!(
        c.handle_connect(t, ip("198.18.1.2")).is_ok(),
        "other sources unaffected"
    );
    c.handle_disconnect(t, a);
    c.handle_disconnect(t, a);
    assert!(c.handle_connect(t, src).is_ok());
    assert_eq!(c.handle_connect(t, src), Err(Refusal::SourceConnections));
    assert_eq!(c.counters().refused(Refusal::SourceConnections), 2);
    assert_eq!(c.counters().live_connections, 3);
}

// ---- new connections per source per second ----

#[test]
fn the_source_rate_bucket_refills_on_the_simulated_clock() {
    let mut c = core(Limits {
        connection_rate_per_source: 2,
        connection_burst_per_source: 3,
        ..open_limits()
    });
    let t = Instant::now();
    let src = ip("198.18.2.1");
    for _ in 0..3 {
        let conn = c.handle_connect(t, src).unwrap();
        c.handle_disconnect(t, conn);
    }
    assert_eq!(c.handle_connect(t, src), Err(Refusal::SourceRate));
    assert!(
        c.handle_connect(t, ip("198.18.2.2")).is_ok(),
        "a bucket per source"
    );
    // Two tokens a second: one after 500 ms, not before.
    let at = |ms| t + Duration::from_millis(ms);
    assert_eq!(c.handle_connect(at(499), src), Err(Refusal::SourceRate));
    c.handle_connect(at(500), src).unwrap();
    assert_eq!(c.handle_connect(at(500), src), Err(Refusal::SourceRate));
    // A long pause refills to the burst, not beyond.
    let later = at(60_000);
    for _ in 0..3 {
        c.handle_connect(later, src).unwrap();
    }
    assert_eq!(c.handle_connect(later, src), Err(Refusal::SourceRate));
    assert_eq!(c.counters().refused(Refusal::SourceRate), 4);
}

#[test]
fn idle_source_buckets_are_forgotten_and_capped() {
    let mut c = core(Limits {
        connection_rate_per_source: 10,
        connection_burst_per_source: 10,
        ..open_limits()
    });
    let t = Instant::now();
    // Random-looking sources, each connecting once: more than the cap.
    let n = MAX_IDLE_SOURCES as u32 + 1000;
    for i in 0..n {
        let src = Ipv4Addr::from(0x0a00_0000 + i.wrapping_mul(2_654_435_761) % (1 << 24));
        let conn = c.handle_connect(t, src).unwrap();
        c.handle_disconnect(t, conn);
        assert!(c.tracked_sources() <= MAX_IDLE_SOURCES + 1);
    }
    assert!(
        c.tracked_sources() >= MAX_IDLE_SOURCES - 1,
        "not yet full again: kept"
    );
    // Once every bucket is full again (1 s for 10 tokens at 10/s) they go.
    c.handle_timeout(t + Duration::from_millis(999));
    assert!(c.tracked_sources() > 0);
    c.handle_timeout(t + Duration::from_secs(1));
    assert_eq!(c.tracked_sources(), 0);
    assert!(c.idle.is_empty());
}

// ---- max-starting ----

#[test]
fn max_starting_frees_up_on_network_up_and_on_release() {
    let mut c = core(Limits {
        max_starting: 2,
        ..open_limits()
    });
    let t = Instant::now();
    let a = c.handle_connect(t, ip("198.18.3.1")).unwrap();
    let b = c.handle_connect(t, ip("198.18.3.2")).unwrap();
    assert_eq!(
        c.handle_connect(t, ip("198.18.3.3")),
        Err(Refusal::Starting)
    );
    // A connection's first call takes its slot over.
    let a1 = c.allocate_call(t, a, 1).unwrap();
    assert_eq!(c.counters().starting, 2);
    assert_eq!(c.allocate_call(t, a, 2), Err(Refusal::Starting));
    // Network up frees the slot.
    c.handle_network_up(t, a1);
    assert_eq!(c.counters().starting, 1);
    let a2 = c.allocate_call(t, a, 2).unwrap();
    assert_eq!(c.counters().starting, 2);
    assert_eq!(
        c.handle_connect(t, ip("198.18.3.3")),
        Err(Refusal::Starting)
    );
    // Release of a starting session frees it too; network up twice or
    // after release changes nothing.
    c.release(t, a2, EndReason::NegotiationFailed).unwrap();
    c.handle_network_up(t, a2);
    c.handle_network_up(t, a1);
    assert_eq!(c.counters().starting, 1);
    let d = c.handle_connect(t, ip("198.18.3.3")).unwrap();
    // And a disconnect frees a connection that never had a call.
    c.handle_disconnect(t, b);
    c.handle_disconnect(t, d);
    assert_eq!(c.counters().starting, 0);
    assert_eq!(c.counters().refused(Refusal::Starting), 3);
}

// ---- sessions per user ----

fn call(c: &mut Concentrator, t: Instant, src: &str) -> SessionId {
    let conn = c.handle_connect(t, ip(src)).unwrap();
    c.allocate_call(t, conn, 1).unwrap()
}

#[test]
fn sessions_per_user_deny() {
    let mut c = core(Limits {
        sessions_per_user: 1,
        over_user_limit: UserLimitPolicy::Deny,
        ..open_limits()
    });
    let t = Instant::now();
    let s1 = call(&mut c, t, "198.18.4.1");
    let s2 = call(&mut c, t, "198.18.4.2");
    let s3 = call(&mut c, t, "198.18.4.3");
    c.handle_authenticated(t, s1, "alice").unwrap();
    assert_eq!(
        c.handle_authenticated(t, s2, "alice"),
        Err(Refusal::UserSessions)
    );
    assert_eq!(c.session(s2).unwrap().user, None);
    c.handle_authenticated(t, s3, "bob").unwrap();
    assert!(events(&mut c).is_empty(), "deny ends nobody");
    c.release(t, s1, EndReason::CallCleared).unwrap();
    c.handle_authenticated(t, s2, "alice").unwrap();
    assert_eq!(c.counters().refused(Refusal::UserSessions), 1);
}

#[test]
fn sessions_per_user_replace_ends_the_oldest() {
    let mut c = core(Limits {
        sessions_per_user: 2,
        over_user_limit: UserLimitPolicy::Replace,
        ..open_limits()
    });
    let t = Instant::now();
    let s: Vec<_> = (0..4)
        .map(|i| call(&mut c, t + Duration::from_secs(i), &format!("198.18.5.{i}")))
        .collect();
    let later = t + Duration::from_secs(10);
    c.handle_authenticated(later, s[1], "alice").unwrap();
    c.handle_authenticated(later, s[0], "alice").unwrap();
    assert!(events(&mut c).is_empty());
    c.handle_authenticated(later, s[2], "alice").unwrap();
    // The oldest by start, not by authentication.
    assert_eq!(events(&mut c), [terminate(s[0], EndReason::Replaced)]);
    assert_eq!(c.session(s[0]).unwrap().state, SessionState::Ending);
    // A session already ending does not count: the next one replaces s[1].
    c.handle_authenticated(later, s[3], "alice").unwrap();
    assert_eq!(events(&mut c), [terminate(s[1], EndReason::Replaced)]);
    for id in [s[0], s[1]] {
        c.release(later, id, EndReason::Replaced).unwrap();
    }
    assert_eq!(c.counters().ended(EndReason::Replaced), 2);
    assert_eq!(c.users["alice"], [s[2], s[3]]);
    // A session on its way out authenticates nobody and replaces nobody.
    let s4 = call(&mut c, later, "198.18.5.9");
    c.terminate(s4, EndReason::AdminReset);
    assert_eq!(
        c.handle_authenticated(later, s4, "alice"),
        Err(Refusal::UnknownSession)
    );
    assert_eq!(events(&mut c), [terminate(s4, EndReason::AdminReset)]);
}

#[test]
fn reauthentication_as_another_user_is_refused() {
    let mut c = core(open_limits());
    let t = Instant::now();
    let s = call(&mut c, t, "198.18.6.1");
    c.handle_authenticated(t, s, "alice").unwrap();
    c.handle_authenticated(t, s, "alice").unwrap();
    assert_eq!(
        c.handle_authenticated(t, s, "mallory"),
        Err(Refusal::UserChanged)
    );
    assert_eq!(c.session(s).unwrap().user.as_deref(), Some("alice"));
    assert!(!c.users.contains_key("mallory"));
    assert_eq!(c.users["alice"], [s], "counted once");
    c.release(t, s, EndReason::CallCleared).unwrap();
    assert_eq!(
        c.handle_authenticated(t, s, "alice"),
        Err(Refusal::UnknownSession)
    );
    assert!(c.users.is_empty());
}

// ---- new limits (reload) ----

/// Sessions up (authenticated, network up) for `users`, one connection each.
fn sessions_up(c: &mut Concentrator, t: Instant, users: &[&str]) -> Vec<SessionId> {
    users
        .iter()
        .enumerate()
        .map(|(i, user)| {
            let s = call(c, t, &format!("198.18.7.{}", i + 1));
            c.handle_authenticated(t, s, user).unwrap();
            c.allocate_address(s, None, &|_| true).unwrap();
            c.handle_network_up(t, s);
            s
        })
        .collect()
}

fn all_up(c: &Concentrator, sessions: &[SessionId]) -> bool {
    sessions
        .iter()
        .all(|&s| c.session(s).is_some_and(|e| e.state == SessionState::Up))
}

#[test]
fn a_lowered_max_sessions_ends_nobody_and_refuses_new_sessions() {
    let mut c = core(Limits {
        max_sessions: 3,
        ..open_limits()
    });
    let t = Instant::now();
    let up = sessions_up(&mut c, t, &["alice", "bob", "carol"]);
    c.set_limits(Limits {
        max_sessions: 1,
        ..open_limits()
    });
    c.handle_timeout(t + Duration::from_secs(60));
    assert!(events(&mut c).is_empty(), "nobody is ended");
    assert!(all_up(&c, &up));
    let conn = c.handle_connect(t, ip("198.18.7.9")).unwrap();
    assert_eq!(c.allocate_call(t, conn, 1), Err(Refusal::ServerFull));
    // Still full with one session left: the new bound is one.
    c.release(t, up[0], EndReason::CallCleared).unwrap();
    c.release(t, up[1], EndReason::CallCleared).unwrap();
    assert_eq!(c.allocate_call(t, conn, 2), Err(Refusal::ServerFull));
    c.release(t, up[2], EndReason::CallCleared).unwrap();
    assert!(c.allocate_call(t, conn, 3).is_ok());
}

#[test]
fn a_lowered_sessions_per_user_ends_nobody_and_refuses_the_users_next_login() {
    let mut c = core(open_limits());
    let t = Instant::now();
    let up = sessions_up(&mut c, t, &["alice", "alice", "bob"]);
    c.set_limits(Limits {
        sessions_per_user: 1,
        over_user_limit: UserLimitPolicy::Deny,
        ..open_limits()
    });
    assert!(events(&mut c).is_empty(), "nobody is ended");
    assert!(all_up(&c, &up));
    let next = call(&mut c, t, "198.18.7.20");
    assert_eq!(
        c.handle_authenticated(t, next, "alice"),
        Err(Refusal::UserSessions)
    );
    assert_eq!(
        c.handle_authenticated(t, next, "bob"),
        Err(Refusal::UserSessions)
    );
    c.handle_authenticated(t, next, "carol").unwrap();
    assert!(events(&mut c).is_empty());
    assert!(all_up(&c, &up));
    // Back under the new limit: alice may log in again.
    c.release(t, up[0], EndReason::CallCleared).unwrap();
    let again = call(&mut c, t, "198.18.7.21");
    assert_eq!(
        c.handle_authenticated(t, again, "alice"),
        Err(Refusal::UserSessions),
        "one live session is the new limit"
    );
    c.release(t, up[1], EndReason::CallCleared).unwrap();
    c.handle_authenticated(t, again, "alice").unwrap();
}

#[test]
fn lowered_connection_bounds_end_nobody_and_refuse_what_comes_next() {
    let mut c = core(open_limits());
    let t = Instant::now();
    let src = ip("198.18.7.30");
    let conn = c.handle_connect(t, src).unwrap();
    let _second = c.handle_connect(t, src).unwrap();
    let calls: Vec<_> = (0..3)
        .map(|i| c.allocate_call(t, conn, i).unwrap())
        .collect();
    c.set_limits(Limits {
        calls_per_connection: 1,
        connections_per_source: 1,
        ..open_limits()
    });
    assert!(events(&mut c).is_empty(), "nobody is ended");
    assert!(calls.iter().all(|&s| c.session(s).is_some()));
    assert_eq!(c.allocate_call(t, conn, 9), Err(Refusal::ConnectionCalls));
    assert_eq!(c.handle_connect(t, src), Err(Refusal::SourceConnections));
    // Raised again: admitted again.
    c.set_limits(open_limits());
    assert!(c.allocate_call(t, conn, 9).is_ok());
    assert!(c.handle_connect(t, src).is_ok());
}

// ---- addresses ----

#[test]
fn address_allowed_predicate_and_one_address_per_session() {
    let mut c = Concentrator::new(open_limits(), pool("198.19.0.8/29"), 1);
    let t = Instant::now();
    let s1 = call(&mut c, t, "198.18.7.1");
    let s2 = call(&mut c, t, "198.18.7.2");
    // pppd's address column: only 198.19.0.12 for this user.
    let only_12 = |a: Ipv4Addr| a == ip("198.19.0.12");
    assert_eq!(
        c.allocate_address(s1, None, &only_12),
        Ok(ip("198.19.0.12"))
    );
    assert_eq!(
        c.allocate_address(s1, None, &|_| true),
        Ok(ip("198.19.0.12")),
        "asking again returns the same"
    );
    assert_eq!(c.pool().in_use(), 1);
    assert_eq!(
        c.allocate_address(s2, None, &only_12),
        Err(PoolError::Exhausted(6))
    );
    assert_eq!(
        c.allocate_address(s2, None, &|_| true),
        Ok(ip("198.19.0.9"))
    );
    let released = c.release(t, s1, EndReason::CallCleared).unwrap();
    assert_eq!(released.address, Some(ip("198.19.0.12")));
    assert!(!c.pool().is_in_use(ip("198.19.0.12")));
    assert_eq!(
        c.allocate_address(s1, None, &|_| true),
        Err(PoolError::UnknownSession)
    );
}

#[test]
fn static_addresses_conflict_and_must_be_allowed() {
    let mut c = core(open_limits());
    let t = Instant::now();
    let s1 = call(&mut c, t, "198.18.8.1");
    let s2 = call(&mut c, t, "198.18.8.2");
    let fixed = ip("198.19.0.77");
    assert_eq!(
        c.allocate_address(s1, Some(fixed), &|a| a != fixed),
        Err(PoolError::NotAllowed(fixed))
    );
    assert_eq!(c.session(s1).unwrap().address, None);
    assert_eq!(c.allocate_address(s1, Some(fixed), &|_| true), Ok(fixed));
    assert_eq!(
        c.allocate_address(s2, Some(fixed), &|_| true),
        Err(PoolError::StaticInUse(fixed))
    );
    c.release(t, s1, EndReason::PeerTerminate).unwrap();
    assert_eq!(c.allocate_address(s2, Some(fixed), &|_| true), Ok(fixed));
}

#[test]
fn a_huge_pool_constructs_without_materialising_addresses() {
    // 0.0.0.0/1: two billion addresses (issue problem 8's pool half).
    let mut c = Concentrator::new(open_limits(), pool("0.0.0.0/1"), 3);
    assert_eq!(c.pool().size(), (1 << 31) - 2);
    let t = Instant::now();
    let s = call(&mut c, t, "198.18.9.1");
    assert_eq!(c.allocate_address(s, None, &|_| true), Ok(ip("0.0.0.1")));
}

// ---- ownership ----

#[test]
fn release_is_exactly_once_even_through_a_stale_id_whose_call_id_was_reused() {
    let mut c = core(open_limits());
    let t = Instant::now();
    let conn = c.handle_connect(t, ip("198.18.10.1")).unwrap();
    let mut old: HashMap<u16, SessionId> = HashMap::new();
    let (stale, fresh) = loop {
        let s = c.allocate_call(t, conn, 1).unwrap();
        if let Some(&prev) = old.get(&s.call_id()) {
            break (prev, s);
        }
        old.insert(s.call_id(), s);
        assert!(c.release(t, s, EndReason::CallCleared).is_some());
        assert!(c.release(t, s, EndReason::CallCleared).is_none());
    };
    assert_eq!(stale.call_id(), fresh.call_id());
    assert_ne!(stale, fresh);
    let before = c.counters().clone();
    assert_eq!(c.session(stale), None);
    assert!(!c.terminate(stale, EndReason::AdminReset));
    assert_eq!(c.release(t, stale, EndReason::AdminReset), None);
    assert_eq!(c.counters(), &before, "a stale release changes nothing");
    assert!(c.is_call_live(fresh.call_id()));
    assert!(c.session(fresh).is_some());
}

#[test]
fn disconnect_asks_to_end_its_sessions_once_and_is_idempotent() {
    let mut c = core(open_limits());
    let t = Instant::now();
    let conn = c.handle_connect(t, ip("198.18.11.1")).unwrap();
    c.handle_connection_established(t, conn);
    assert!(c.is_established(conn));
    let s1 = c.allocate_call(t, conn, 1).unwrap();
    let s2 = c.allocate_call(t, conn, 2).unwrap();
    let s3 = c.allocate_call(t, conn, 3).unwrap();
    assert!(c.terminate(s1, EndReason::AdminReset));
    assert!(!c.terminate(s1, EndReason::AdminReset), "once");
    c.release(t, s3, EndReason::CallCleared).unwrap();
    c.handle_disconnect(t, conn);
    c.handle_disconnect(t, conn);
    assert_eq!(
        events(&mut c),
        [
            terminate(s1, EndReason::AdminReset),
            terminate(s2, EndReason::ControlClosed)
        ]
    );
    // The sessions live on until released; their call IDs stay taken.
    assert!(c.is_call_live(s2.call_id()));
    assert_eq!(c.allocate_call(t, conn, 4), Err(Refusal::UnknownConnection));
    c.release(t, s1, EndReason::AdminReset).unwrap();
    c.release(t, s2, EndReason::ControlClosed).unwrap();
    assert_eq!(c.live_call_ids(), 0);
    assert_eq!(c.counters().live_connections, 0);
}

#[test]
fn terminations_of_released_sessions_are_not_delivered() {
    let mut c = core(open_limits());
    let t = Instant::now();
    let s1 = call(&mut c, t, "198.18.12.1");
    let s2 = call(&mut c, t, "198.18.12.2");
    c.terminate_all(EndReason::Shutdown);
    c.terminate_all(EndReason::Shutdown);
    c.release(t, s1, EndReason::CallCleared).unwrap();
    assert_eq!(events(&mut c), [terminate(s2, EndReason::Shutdown)]);
}

#[test]
fn sessions_stuck_in_setup_time_out() {
    let mut c = core(Limits {
        setup_timeout: Duration::from_secs(30),
        ..open_limits()
    });
    let t = Instant::now();
    assert_eq!(c.poll_timeout(), None);
    let s1 = call(&mut c, t, "198.18.13.1");
    let s2 = call(&mut c, t + Duration::from_secs(5), "198.18.13.2");
    assert_eq!(c.poll_timeout(), Some(t + Duration::from_secs(30)));
    c.handle_network_up(t + Duration::from_secs(1), s1);
    assert_eq!(c.poll_timeout(), Some(t + Duration::from_secs(35)));
    c.handle_timeout(t + Duration::from_secs(34));
    assert!(events(&mut c).is_empty());
    c.handle_timeout(t + Duration::from_secs(35));
    assert_eq!(events(&mut c), [terminate(s2, EndReason::SetupTimeout)]);
    assert_eq!(c.poll_timeout(), None);
    assert_eq!(c.session(s1).unwrap().state, SessionState::Up);
}

#[test]
fn a_setup_timeout_that_overflows_instant_means_no_deadline() {
    let mut c = core(Limits {
        setup_timeout: Duration::MAX,
        ..open_limits()
    });
    let t = Instant::now();
    let s = call(&mut c, t, "198.18.13.9");
    assert_eq!(c.poll_timeout(), None);
    assert!(c.release(t, s, EndReason::CallCleared).is_some());
}

#[test]
fn the_control_connection_adapter_never_frees_a_call_id_a_session_owns() {
    let core = Arc::new(Mutex::new(Concentrator::new(
        Limits {
            calls_per_connection: 2,
            ..open_limits()
        },
        pool("198.19.0.0/24"),
        9,
    )));
    let t = Instant::now();
    let conn = core
        .lock()
        .unwrap()
        .handle_connect(t, ip("198.18.14.1"))
        .unwrap();
    let mut calls: Box<dyn CallIdAllocator + Send> =
        Box::new(ConnectionCalls::new(core.clone(), conn));
    let id = calls.allocate().unwrap();
    let _second = calls.allocate().unwrap();
    assert_eq!(
        calls.allocate(),
        None,
        "calls per connection through the adapter"
    );
    let session = core.lock().unwrap().session_by_call(id).unwrap();
    assert!(core.lock().unwrap().set_peer_call_id(session, 77));
    assert_eq!(
        core.lock().unwrap().session(session).unwrap().peer_call_id,
        77
    );

    // The control connection forgets the call (Call-Clear-Request, TCP
    // close, its task dropped): the Call ID stays with the session.
    calls.release(id);
    calls.release(id);
    let mut c = core.lock().unwrap();
    assert!(c.is_call_live(id));
    assert_eq!(
        events(&mut c),
        [terminate(session, EndReason::ControlClosed)]
    );
    // Only the concentrator's release frees it.
    c.release(t, session, EndReason::CallCleared).unwrap();
    assert!(!c.is_call_live(id));
    assert_eq!(c.counters().ended(EndReason::CallCleared), 1);
    drop(c);

    // Another connection's adapter cannot end this connection's sessions.
    let other = core
        .lock()
        .unwrap()
        .handle_connect(t, ip("198.18.14.2"))
        .unwrap();
    let mut foreign = ConnectionCalls::new(core.clone(), other);
    foreign.release(_second);
    let mut c = core.lock().unwrap();
    assert!(events(&mut c).is_empty());
}

/// Passes bytes both ways until neither end has anything to send.
fn pump(now: Instant, server: &mut ControlConnection, client: &mut ControlConnection) {
    loop {
        let mut moved = false;
        while let Some(bytes) = server.poll_transmit() {
            client.handle_bytes(now, &bytes);
            moved = true;
        }
        while let Some(bytes) = client.poll_transmit() {
            server.handle_bytes(now, &bytes);
            moved = true;
        }
        if !moved {
            break;
        }
    }
}

#[test]
fn a_call_cleared_on_the_control_connection_keeps_its_call_id_until_release() {
    // Issue problem 3 at the core level: the control connection forgetting
    // a call must not free the Call ID while the session still lives.
    let core = Arc::new(Mutex::new(core(Limits {
        calls_per_connection: 4,
        ..open_limits()
    })));
    let t = Instant::now();
    let conn = core
        .lock()
        .unwrap()
        .handle_connect(t, ip("198.18.15.1"))
        .unwrap();
    let calls = Box::new(ConnectionCalls::new(core.clone(), conn));
    let mut server = ControlConnection::server(ControlSettings::default(), calls, t);
    let mut client = ControlConnection::client(ControlSettings::default(), t);
    pump(t, &mut server, &mut client);
    assert!(server.is_established());
    client.open_call(t, 7).unwrap();
    client.open_call(t, 8).unwrap();
    pump(t, &mut server, &mut client);
    let connected: Vec<CallInfo> = std::iter::from_fn(|| server.poll_event())
        .filter_map(|e| match e {
            ControlEvent::CallConnected(info) => Some(info),
            _ => None,
        })
        .collect();
    assert_eq!(connected.len(), 2);
    let mut c = core.lock().unwrap();
    let sessions: Vec<SessionId> = connected
        .iter()
        .map(|info| {
            let s = c.session_by_call(info.our_call_id).unwrap();
            assert!(c.set_peer_call_id(s, info.peer_call_id));
            s
        })
        .collect();
    assert_eq!(c.session(sessions[0]).unwrap().peer_call_id, 7);
    assert_eq!(c.counters().sessions_started, 2);
    drop(c);

    // Call-Clear-Request: the control connection ends the call.
    client.clear_call(t, 7).unwrap();
    pump(t, &mut server, &mut client);
    assert!(
        std::iter::from_fn(|| server.poll_event())
            .any(|e| matches!(e, ControlEvent::CallEnded { .. }))
    );
    let mut c = core.lock().unwrap();
    assert!(
        c.is_call_live(sessions[0].call_id()),
        "still owned by the session"
    );
    assert_eq!(
        events(&mut c),
        [terminate(sessions[0], EndReason::ControlClosed)]
    );
    drop(c);

    // The connection's task dies (dropped without closing).
    drop(server);
    let mut c = core.lock().unwrap();
    assert!(c.is_call_live(sessions[1].call_id()));
    assert_eq!(
        events(&mut c),
        [terminate(sessions[1], EndReason::ControlClosed)]
    );
    // The glue's teardown releases each, once; then the IDs are free.
    c.handle_disconnect(t, conn);
    assert!(c.release(t, sessions[0], EndReason::CallCleared).is_some());
    assert!(c.release(t, sessions[1], EndReason::TaskFailed).is_some());
    assert!(c.release(t, sessions[1], EndReason::TaskFailed).is_none());
    assert_eq!(c.live_call_ids(), 0);
    assert!(events(&mut c).is_empty());
}

#[test]
fn a_flapping_source_cannot_grow_the_idle_queue_without_bound() {
    let mut c = core(Limits {
        connection_rate_per_source: 1,
        connection_burst_per_source: u32::MAX,
        ..open_limits()
    });
    let t = Instant::now();
    // One idle bucket at the front of the queue that takes ages to refill,
    // then a source that connects and disconnects again and again: each
    // time it goes idle it queues an entry behind the first.
    let first = c.handle_connect(t, ip("198.18.16.1")).unwrap();
    c.handle_disconnect(t, first);
    let src = ip("198.18.16.2");
    let mut now = t;
    for _ in 0..(2 * MAX_IDLE_SOURCES + 100) {
        now += Duration::from_micros(1);
        let conn = c.handle_connect(now, src).unwrap();
        c.handle_disconnect(now, conn);
        assert!(c.idle.len() <= 2 * MAX_IDLE_SOURCES + 1);
    }
    assert!(c.tracked_sources() <= 2);
    assert_eq!(c.idle_sources, c.tracked_sources());
}

// ---- random interleavings of every way a session ends ----

/// xorshift64*: deterministic per seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> Option<T> {
        (!items.is_empty()).then(|| items[self.below(items.len())])
    }
}

/// What the test knows of one session.
#[derive(Default)]
struct Model {
    /// Every session ever created, with the number of successful releases.
    released: HashMap<SessionId, u32>,
    /// Terminations delivered, per session.
    terminated: HashMap<SessionId, u32>,
    /// Terminations the glue still has to act on.
    pending: Vec<(SessionId, EndReason)>,
    ended: [u64; EndReason::ALL.len()],
    connections: Vec<ConnectionId>,
    /// Call IDs the test took out of the concentrator's pool.
    reserved: usize,
}

impl Model {
    fn live(&self) -> Vec<SessionId> {
        let mut v: Vec<_> = self
            .released
            .iter()
            .filter(|&(_, &n)| n == 0)
            .map(|(&s, _)| s)
            .collect();
        v.sort_unstable_by_key(|s| (s.call_id, s.generation));
        v
    }

    fn all(&self) -> Vec<SessionId> {
        let mut v: Vec<_> = self.released.keys().copied().collect();
        v.sort_unstable_by_key(|s| (s.call_id, s.generation));
        v
    }
}

fn release_checked(
    c: &mut Concentrator,
    m: &mut Model,
    now: Instant,
    s: SessionId,
    reason: EndReason,
) {
    let was_live = m.released[&s] == 0;
    let entry = c.session(s).cloned();
    let got = c.release(now, s, reason);
    assert_eq!(
        got.is_some(),
        was_live,
        "release of {s:?} (live: {was_live})"
    );
    if let Some(r) = got {
        let e = entry.expect("a live session has an entry");
        assert_eq!(
            (
                r.session,
                r.call_id,
                r.address,
                r.user,
                r.source,
                r.connection,
                r.reason
            ),
            (
                s,
                s.call_id,
                e.address,
                e.user,
                e.source,
                e.connection,
                reason
            )
        );
        *m.released.get_mut(&s).unwrap() += 1;
        m.ended[reason.index()] += 1;
        m.pending.retain(|&(p, _)| p != s);
    }
}

fn drain(c: &mut Concentrator, m: &mut Model) {
    while let Some(Event::Terminate { session, reason }) = c.poll_event() {
        assert_eq!(m.released[&session], 0, "termination of a released session");
        let n = m.terminated.entry(session).or_default();
        *n += 1;
        assert_eq!(*n, 1, "terminate delivered twice for {session:?}");
        m.pending.push((session, reason));
    }
}

/// Every invariant that must hold between any two inputs.
fn check(c: &Concentrator, m: &Model) {
    let live = m.live();
    assert_eq!(c.sessions.len(), live.len());
    assert_eq!(c.counters.live_sessions, live.len());
    assert_eq!(
        c.call_ids.live(),
        live.len() + m.reserved,
        "one Call ID per live session"
    );
    for s in &live {
        assert!(c.session(*s).is_some(), "{s:?} lost from the registry");
    }
    for s in m.released.iter().filter(|&(_, &n)| n > 0).map(|(s, _)| s) {
        assert!(c.session(*s).is_none(), "{s:?} released but still there");
    }
    let mut addresses = HashSet::new();
    for (_, e) in c.sessions() {
        if let Some(a) = e.address {
            assert!(addresses.insert(a), "{a} held by two sessions");
            assert!(c.pool.is_in_use(a));
        }
    }
    assert_eq!(c.pool.in_use(), addresses.len(), "no address leaked");
    assert_eq!(
        c.counters.sessions_started,
        c.counters.ended_total() + live.len() as u64
    );
    assert_eq!(c.counters.sessions_ended, m.ended);
    let starting = c.connections.values().filter(|x| x.starting).count()
        + c.sessions.values().filter(|e| e.starting).count();
    assert_eq!(c.counters.starting, starting);
    assert_eq!(
        c.deadlines.len(),
        c.sessions.values().filter(|e| e.deadline.is_some()).count()
    );
    assert_eq!(c.counters.live_connections, c.connections.len());
    let per_source: u32 = c.sources.values().map(|s| s.connections).sum();
    assert_eq!(per_source as usize, c.connections.len());
    let users: usize = c.users.values().map(Vec::len).sum();
    assert_eq!(
        users,
        c.sessions.values().filter(|e| e.user.is_some()).count()
    );
    for (conn, x) in &c.connections {
        assert!(x.sessions.len() <= c.limits.calls_per_connection as usize);
        for s in &x.sessions {
            assert_eq!(c.session(*s).map(|e| e.connection), Some(*conn));
        }
    }
}

/// What one run exercised, so the driver is known to reach every path.
#[derive(Default)]
struct Coverage {
    started: u64,
    double_releases: u64,
    /// Releases through a stale SessionId whose Call ID a live session holds.
    stale_reused: u64,
    terminations: HashMap<EndReason, u64>,
    ended: [u64; EndReason::ALL.len()],
    addresses: u64,
    refusals: [u64; Refusal::ALL.len()],
}

fn run(seed: u64, steps: usize, cov: &mut Coverage) {
    let mut rng = Rng::new(seed);
    let limits = Limits {
        max_sessions: if seed.is_multiple_of(3) { 5 } else { 12 },
        calls_per_connection: 3,
        connections_per_source: 3,
        max_starting: if seed.is_multiple_of(3) { 20 } else { 6 },
        connection_rate_per_source: 4,
        connection_burst_per_source: 4,
        sessions_per_user: 2,
        over_user_limit: if seed.is_multiple_of(2) {
            UserLimitPolicy::Replace
        } else {
            UserLimitPolicy::Deny
        },
        auth_attempts: 3,
        setup_timeout: Duration::from_secs(20),
        write_timeout: Duration::from_secs(10),
    };
    let range: PoolRange = "198.19.0.0/28".parse().unwrap();
    let pool = AddressPool::new(&[range], &[ip("198.19.0.1")]);
    let mut c = Concentrator::new(limits.clone(), pool, seed);
    let mut m = Model::default();
    if seed % 20 == 1 {
        // Leave few Call IDs free, so that released ones come back soon
        // and stale SessionIds name Call IDs that live sessions hold.
        let free = 24;
        while c.call_ids.live() < CallIdPool::MAX_CAPACITY - free {
            c.call_ids.allocate().unwrap();
        }
        m.reserved = c.call_ids.live();
    }
    let mut now = Instant::now();
    let sources: Vec<Ipv4Addr> = (1..=6).map(|i| Ipv4Addr::new(198, 18, 0, i)).collect();
    let users = ["alice", "bob", "carol", "dave"];
    let statics = [None, Some(ip("198.19.0.5")), Some(ip("198.18.200.1"))];
    let even = |a: Ipv4Addr| a.octets()[3].is_multiple_of(2);
    let any = |_: Ipv4Addr| true;

    for _ in 0..steps {
        now += Duration::from_millis(rng.below(300) as u64);
        let live = m.live();
        let all = m.all();
        // Mostly a live session, sometimes any (released ones included).
        let target = if rng.below(4) == 0 {
            rng.pick(&all)
        } else {
            rng.pick(&live)
        };
        match rng.below(16) {
            0 | 1 => {
                // A few connections from one source at once, some closed
                // at once (refused Start-Control-Connection, scanners).
                let src = rng.pick(&sources).unwrap();
                for _ in 0..=rng.below(4) {
                    if let Ok(conn) = c.handle_connect(now, src) {
                        if rng.below(2) == 0 {
                            c.handle_disconnect(now, conn);
                        } else {
                            m.connections.push(conn);
                        }
                    }
                }
            }
            2 => {
                if let Some(conn) = rng.pick(&m.connections) {
                    c.handle_connection_established(now, conn);
                }
            }
            3 | 4 => {
                let conn = rng.pick(&m.connections).unwrap_or(ConnectionId(0));
                if let Ok(s) = c.allocate_call(now, conn, rng.below(65536) as u16) {
                    assert!(m.released.insert(s, 0).is_none(), "SessionId reused");
                }
            }
            5 => {
                if let Some(s) = target {
                    let user = rng.pick(&users).unwrap();
                    let _ = c.handle_authenticated(now, s, user);
                }
            }
            6 => {
                if let Some(s) = target {
                    let st = rng.pick(&statics).unwrap();
                    let allowed: &dyn Fn(Ipv4Addr) -> bool =
                        if rng.below(3) == 0 { &even } else { &any };
                    let before = c.session(s).and_then(|e| e.address);
                    match c.allocate_address(s, st, allowed) {
                        Ok(a) => {
                            cov.addresses += u64::from(before.is_none());
                            assert!(before.is_none_or(|b| b == a), "one address per session");
                            assert_eq!(c.session(s).unwrap().address, Some(a));
                        }
                        Err(_) => assert!(before.is_none()),
                    }
                }
            }
            7 => {
                if let Some(s) = target {
                    c.handle_network_up(now, s);
                }
            }
            8 | 9 => {
                // Any way a session ends, also twice and through stale IDs.
                if let Some(s) = target {
                    let reason = EndReason::ALL[rng.below(EndReason::ALL.len())];
                    if m.released[&s] > 0 {
                        cov.double_releases += 1;
                        cov.stale_reused += u64::from(c.is_call_live(s.call_id));
                    }
                    release_checked(&mut c, &mut m, now, s, reason);
                }
            }
            10 | 11 => {
                // The glue acts on a termination it was asked for.
                if !m.pending.is_empty() {
                    let (s, reason) = m.pending[rng.below(m.pending.len())];
                    release_checked(&mut c, &mut m, now, s, reason);
                }
            }
            12 => {
                if let Some(conn) = rng.pick(&m.connections) {
                    c.handle_disconnect(now, conn);
                    if rng.below(2) == 0 {
                        m.connections.retain(|&x| x != conn);
                    }
                }
            }
            13 => {
                if let Some(s) = rng.pick(&live) {
                    let reason = EndReason::ALL[rng.below(EndReason::ALL.len())];
                    let was_ending = c.session(s).unwrap().state == SessionState::Ending;
                    assert_eq!(c.terminate(s, reason), !was_ending);
                }
            }
            14 => {
                if rng.below(8) == 0 {
                    c.terminate_all(EndReason::Shutdown);
                } else {
                    c.handle_timeout(now);
                }
            }
            _ => {
                // Reload with another single-session policy.
                let mut l = limits.clone();
                l.sessions_per_user = rng.below(3) as u32;
                l.over_user_limit = if rng.below(2) == 0 {
                    UserLimitPolicy::Replace
                } else {
                    UserLimitPolicy::Deny
                };
                c.set_limits(l);
            }
        }
        let pending = m.pending.len();
        drain(&mut c, &mut m);
        for &(_, reason) in &m.pending[pending..] {
            *cov.terminations.entry(reason).or_default() += 1;
        }
        check(&c, &m);
    }

    // Shut down: every session is asked to end, the glue releases each.
    c.terminate_all(EndReason::Shutdown);
    for conn in m.connections.clone() {
        c.handle_disconnect(now, conn);
    }
    drain(&mut c, &mut m);
    let mut asked: Vec<_> = m.pending.iter().map(|&(s, _)| s).collect();
    asked.sort_unstable_by_key(|s| (s.call_id, s.generation));
    assert_eq!(asked, m.live(), "every live session was asked to end, once");
    while let Some(&(s, reason)) = m.pending.first() {
        release_checked(&mut c, &mut m, now, s, reason);
        check(&c, &m);
    }
    for s in m.all() {
        assert_eq!(m.released[&s], 1, "{s:?} released exactly once");
        assert!(c.release(now, s, EndReason::TaskFailed).is_none());
    }
    assert!(c.sessions.is_empty());
    assert!(c.users.is_empty());
    assert!(c.connections.is_empty());
    assert!(c.deadlines.is_empty());
    assert_eq!(c.pool.in_use(), 0);
    assert_eq!(c.pool.free(), 13);
    assert_eq!(c.call_ids.live(), m.reserved);
    assert_eq!(c.counters.starting, 0);
    assert_eq!(c.counters.sessions_started, m.released.len() as u64);
    assert_eq!(c.counters.sessions_started, c.counters.ended_total());
    assert_eq!(c.counters.sessions_ended, m.ended);
    assert!(events(&mut c).is_empty());
    cov.started += c.counters.sessions_started;
    for (total, n) in cov.ended.iter_mut().zip(c.counters.sessions_ended) {
        *total += n;
    }
    for (total, n) in cov.refusals.iter_mut().zip(c.counters.refusals) {
        *total += n;
    }
    c.handle_timeout(now + Duration::from_secs(3600));
    assert_eq!(c.tracked_sources(), 0, "idle buckets forgotten");
}

#[test]
fn random_interleavings_release_everything_exactly_once() {
    let mut cov = Coverage::default();
    for seed in 1..=200 {
        run(seed, 400, &mut cov);
    }
    // The driver reaches every path it claims to.
    assert!(cov.started > 4000, "{} sessions", cov.started);
    assert!(cov.double_releases > 500);
    assert!(cov.stale_reused > 15, "{} stale releases", cov.stale_reused);
    assert!(cov.addresses > 500);
    for reason in EndReason::ALL {
        assert!(
            cov.ended[reason.index()] > 0,
            "no session ended by {reason}"
        );
    }
    for reason in [
        EndReason::Replaced,
        EndReason::ControlClosed,
        EndReason::SetupTimeout,
        EndReason::Shutdown,
        EndReason::AdminReset,
    ] {
        assert!(
            cov.terminations.get(&reason).is_some_and(|&n| n > 0),
            "no {reason} termination"
        );
    }
    for refusal in [
        Refusal::SourceConnections,
        Refusal::SourceRate,
        Refusal::Starting,
        Refusal::ConnectionCalls,
        Refusal::ServerFull,
        Refusal::UserSessions,
        Refusal::UnknownSession,
        Refusal::UnknownConnection,
    ] {
        assert!(
            cov.refusals[refusal.index()] > 0,
            "never refused: {refusal}"
        );
    }
}

// ---- session deadline (RADIUS Session-Timeout, CoA) ----

#[test]
fn a_session_deadline_ends_the_session_with_session_timeout() {
    let mut c = core(open_limits());
    let t = Instant::now();
    let s1 = call(&mut c, t, "198.18.14.1");
    let s2 = call(&mut c, t, "198.18.14.2");
    c.handle_network_up(t, s1);
    c.handle_network_up(t, s2);
    assert_eq!(c.poll_timeout(), None);
    let secs = |n| t + Duration::from_secs(n);
    assert!(c.set_session_deadline(secs(1), s1, Some(secs(100))));
    assert!(c.set_session_deadline(secs(1), s2, Some(secs(200))));
    assert_eq!(c.poll_timeout(), Some(secs(100)));
    // A CoA moves s1's deadline earlier; the old one is gone.
    assert!(c.set_session_deadline(secs(2), s1, Some(secs(10))));
    assert_eq!(c.session(s1).unwrap().session_deadline, Some(secs(10)));
    assert_eq!(c.poll_timeout(), Some(secs(10)));
    c.handle_timeout(secs(9));
    assert!(events(&mut c).is_empty());
    c.handle_timeout(secs(10));
    assert_eq!(events(&mut c), [terminate(s1, EndReason::SessionTimeout)]);
    assert_eq!(c.session(s1).unwrap().state, SessionState::Ending);
    // Ending: no new deadline; the next timer is s2's.
    assert!(!c.set_session_deadline(secs(11), s1, Some(secs(12))));
    assert_eq!(c.poll_timeout(), Some(secs(200)));
    c.release(secs(11), s1, EndReason::SessionTimeout).unwrap();
    assert_eq!(c.counters().ended(EndReason::SessionTimeout), 1);
    // Cleared: s2 never times out; releasing it leaves no timer.
    assert!(c.set_session_deadline(secs(12), s2, None));
    assert_eq!(c.poll_timeout(), None);
    c.handle_timeout(secs(300));
    assert!(events(&mut c).is_empty());
}

#[test]
fn a_released_session_leaves_no_deadline_behind() {
    let mut c = core(open_limits());
    let t = Instant::now();
    let s1 = call(&mut c, t, "198.18.14.1");
    c.handle_network_up(t, s1);
    assert!(c.set_session_deadline(t, s1, Some(t + Duration::from_secs(5))));
    c.release(t, s1, EndReason::AdminReset).unwrap();
    assert_eq!(c.poll_timeout(), None);
    // A new session on the same Call ID is not ended by the old deadline.
    let s2 = call(&mut c, t, "198.18.14.1");
    c.handle_network_up(t, s2);
    c.handle_timeout(t + Duration::from_secs(6));
    assert!(events(&mut c).is_empty());
    assert!(!c.set_session_deadline(t, s1, Some(t)), "stale id");
}

// ---- Idle-Timeout (RADIUS) ----

#[test]
fn an_idle_session_ends_with_idle_timeout_and_traffic_keeps_it() {
    let mut c = core(open_limits());
    let t = Instant::now();
    let s1 = call(&mut c, t, "198.18.15.1");
    let s2 = call(&mut c, t, "198.18.15.2");
    c.handle_network_up(t, s1);
    c.handle_network_up(t, s2);
    let secs = |n| t + Duration::from_secs(n);
    assert!(c.set_idle_timeout(t, s1, Some(Duration::from_secs(10))));
    assert!(c.set_idle_timeout(t, s2, Some(Duration::from_secs(10))));
    let mut watched = c.idle_watched();
    watched.sort_by_key(|s| s.call_id());
    let mut want = [s1, s2];
    want.sort_by_key(|s| s.call_id());
    assert_eq!(watched, want);
    assert_eq!(c.poll_timeout(), Some(secs(10)));
    // s1 carries traffic at 5 s; s2 does not.
    c.handle_activity(secs(1), s1, 0);
    c.handle_activity(secs(1), s2, 0);
    c.handle_activity(secs(5), s1, 3);
    c.handle_activity(secs(5), s2, 0);
    c.handle_timeout(secs(9));
    assert!(events(&mut c).is_empty());
    c.handle_timeout(secs(10));
    assert_eq!(events(&mut c), [terminate(s2, EndReason::IdleTimeout)]);
    assert_eq!(c.idle_watched(), [s1]);
    assert_eq!(c.poll_timeout(), Some(secs(15)));
    // The same count again is no activity.
    c.handle_activity(secs(12), s1, 3);
    c.handle_timeout(secs(14));
    assert!(events(&mut c).is_empty());
    c.handle_timeout(secs(15));
    assert_eq!(events(&mut c), [terminate(s1, EndReason::IdleTimeout)]);
    c.release(secs(16), s1, EndReason::IdleTimeout).unwrap();
    c.release(secs(16), s2, EndReason::IdleTimeout).unwrap();
    assert_eq!(c.counters().ended(EndReason::IdleTimeout), 2);
    assert!(c.idle_watched().is_empty());
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn an_idle_timeout_can_be_cleared_and_is_released_with_the_session() {
    let mut c = core(open_limits());
    let t = Instant::now();
    let s1 = call(&mut c, t, "198.18.15.1");
    c.handle_network_up(t, s1);
    assert!(c.set_idle_timeout(t, s1, Some(Duration::from_secs(1))));
    assert!(c.set_idle_timeout(t, s1, None));
    c.handle_timeout(t + Duration::from_secs(5));
    assert!(events(&mut c).is_empty());
    assert!(c.set_idle_timeout(t, s1, Some(Duration::from_secs(1))));
    c.release(t, s1, EndReason::AdminReset).unwrap();
    assert!(c.idle_watched().is_empty());
    assert!(
        !c.set_idle_timeout(t, s1, Some(Duration::from_secs(1))),
        "stale id"
    );
}

// ---- setups and failed setups (ctl stat) ----

#[test]
fn setups_are_counted_per_minute_and_failures_per_reason() {
    let mut c = core(open_limits());
    let t = Instant::now();
    let ok1 = call(&mut c, t, "198.18.9.1");
    let ok2 = call(&mut c, t, "198.18.9.2");
    let failed = call(&mut c, t, "198.18.9.3");
    c.handle_network_up(t + Duration::from_secs(1), ok1);
    assert_eq!(
        c.session(ok1).unwrap().up_since,
        Some(t + Duration::from_secs(1))
    );
    // Up twice counts once.
    c.handle_network_up(t + Duration::from_secs(2), ok1);
    c.handle_network_up(t + Duration::from_secs(30), ok2);
    assert_eq!(c.counters().sessions_up, 2);
    assert_eq!(c.setups_last_minute(t + Duration::from_secs(30)), 2);
    // A minute after the first, only the second is in the window.
    assert_eq!(c.setups_last_minute(t + Duration::from_secs(62)), 1);
    assert_eq!(c.setups_last_minute(t + Duration::from_secs(200)), 0);
    // A session that never came up is a failed setup; one that did is not.
    c.release(t, failed, EndReason::AuthFailed).unwrap();
    c.release(t, ok1, EndReason::AdminReset).unwrap();
    // Terminated (ending) before coming up: still a failed setup.
    let ending = call(&mut c, t, "198.18.9.4");
    assert!(c.terminate(ending, EndReason::AdminReset));
    c.release(t, ending, EndReason::AdminReset).unwrap();
    let k = c.counters();
    assert_eq!(k.setup_failed(EndReason::AuthFailed), 1);
    assert_eq!(k.setup_failed(EndReason::AdminReset), 1);
    assert_eq!(k.ended(EndReason::AdminReset), 2);
    assert_eq!(k.setup_failures.iter().sum::<u64>(), 2);
}
