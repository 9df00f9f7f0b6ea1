//! One call as the runtime drives it: its [`Call`], its RTP socket, its input
//! channel, the HTTP actions it starts, its audit records and its recording.
//!
//! A call has no task or timer of its own: a [`call_shard`](super::call_shard)
//! owns it with many others and gives it turns ([`CallTask::step`]): feed the
//! due timeout, the datagrams and the inputs that are ready, then carry out
//! every output — the turn every sans-IO machine here wants. RTP packets are
//! written into the shard's one send buffer and queued on the shard's
//! [`Egress`], which sends the whole pass's packets at once (a UDP send that
//! would block drops the packet: a late packet is worth nothing). `send_rtp`
//! is the one place where a call's RTP leaves it.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant as TokioInstant;
use tracing::{debug, info, warn, Instrument};

use crate::call::{Call, CallOutcome, Output};
use crate::ops::metrics::{OtpSendResult, OtpVerifyResult, RtpCounts, RtpRejectReason};
use crate::runtime::channels::{CallInput, SipIn};
use crate::runtime::egress::Egress;
use crate::runtime::ingress::{Clocks, RecvBatch};
use crate::runtime::labels;
use crate::runtime::ports::RtpPort;
use crate::runtime::recorder::Recorder;
use crate::runtime::shared::{Attempt, Shared};
use crate::vars::Vars;

/// Why a call gets a turn.
#[derive(Clone, Copy, Debug)]
pub(super) enum Turn {
    /// Its deadline is due.
    Timeout(Instant),
    /// Its socket or channel woke it (or it is new).
    Woken,
}

/// A call whose own next deadline is further away than this (or that has
/// none) still gets a turn this often, to read its socket.
const RX_EVERY: std::time::Duration = std::time::Duration::from_millis(20);

/// A deadline less than this before a datagram's receive time is taken as
/// simultaneous with it and fires after it: the call's turn for a packet
/// comes a little after the packet's deadline (the timer's granularity), and
/// a key that arrived in between can still change the packet that leaves in
/// that turn. Every DTMF and flow timer works on tens of milliseconds or
/// more; a deadline further back (after a stall) fires first.
const SAME_INSTANT: std::time::Duration = std::time::Duration::from_millis(2);

/// Whether a call's deadline fires before a datagram received at `received`
/// is handed over ([`SAME_INSTANT`]): only when it fell clearly before it.
fn fires_first(deadline: Instant, received: Instant) -> bool {
    deadline + SAME_INSTANT <= received
}

/// When a call's turn reads the rest of its socket after the one datagram it
/// read first ([`CallTask::read_rtp`]). A caller's packets come one packet time
/// (`ptime`, 20 ms unless the offer said otherwise) apart, and the phase lock
/// puts a call's deadline 1–11 ms after them (`media::phase_lock`), the turn a
/// few ms after its deadline: an ordinary turn has one datagram waiting,
/// younger than `ptime` less this. One that has waited that long may have its
/// successor behind it. And so may a datagram that came more than `ptime` and
/// this after the one before it: it was held up on the way (a jittery path, a
/// busy sender), and the next one, sent on time, can have caught up with it.
/// (A caller whose packets come faster than the call's packet time has
/// several datagrams per turn, and a turn that read several reads a whole
/// batch next time.)
const READ_ON_MARGIN: std::time::Duration = std::time::Duration::from_millis(1);

/// Whether a turn that has read one datagram, received `at` (`None`: no
/// receive time), should read the rest of its socket at `now`; `last_rx`: when
/// the datagram before it was received; `ptime`: the call's packet time
/// ([`READ_ON_MARGIN`]).
fn may_have_more(
    at: Option<Instant>,
    now: Instant,
    last_rx: Option<Instant>,
    ptime: std::time::Duration,
) -> bool {
    let queued_after = ptime.saturating_sub(READ_ON_MARGIN);
    let held_up_after = ptime + READ_ON_MARGIN;
    at.is_none_or(|at| {
        at + queued_after <= now || last_rx.is_none_or(|prev| at > prev + held_up_after)
    })
}

/// Undo a datagram socket's `connect`: it takes datagrams from anyone again.
/// Only for a socket bound to a port it chose, as the RTP pool's are: one whose
/// port the kernel picked (bound to port 0) loses it here.
fn disconnect(socket: &std::net::UdpSocket) -> std::io::Result<()> {
    // SAFETY: plain data; all-zero with the family set is `AF_UNSPEC`'s address.
    let mut addr: libc::sockaddr = unsafe { std::mem::zeroed() };
    addr.sa_family = libc::AF_UNSPEC as libc::sa_family_t;
    // SAFETY: a valid socket and an address of the length given.
    let r = unsafe {
        libc::connect(
            socket.as_raw_fd(),
            &addr,
            std::mem::size_of::<libc::sockaddr>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// How often a live call adds its RTP counters to the metrics (and once more at its end).
const RTP_REPORT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// What one call has reported to the metrics so far (its shard keeps it).
#[derive(Default)]
pub(super) struct Reported {
    /// Datagrams the trust check dropped (untrusted source, not latched).
    pub rejected: (u64, u64),
    /// The RTP counters as last reported.
    pub rtp: RtpCounts,
    /// When the RTP counters are next reported.
    pub next_rtp: Option<Instant>,
    /// The time of the call's last turn (no datagram is handed over earlier).
    pub last_turn: Option<Instant>,
    /// The last turn read more than one datagram: this one reads a whole
    /// batch at once ([`CallTask::read_rtp`]).
    pub rx_burst: bool,
    /// When the last datagram read was received.
    pub last_rx: Option<Instant>,
    /// The peer the call's socket is `connect`ed to ([`CallTask::follow_peer`]).
    pub connected: Option<SocketAddr>,
    /// A `connect` failed: this call's socket stays unconnected.
    pub connect_failed: bool,
}

pub struct CallTask {
    pub call: Call,
    pub rtp: RtpPort,
    pub rx: mpsc::UnboundedReceiver<CallInput>,
    pub tx: mpsc::UnboundedSender<CallInput>,
    pub sip: mpsc::UnboundedSender<SipIn>,
    pub shared: Arc<Shared>,
    pub recorder: Option<Recorder>,
    pub ani: String,
    /// The key of this call's per-caller attempt limit: the ANI, or one of its
    /// own for a withheld number (`security.withheld_callers`).
    pub limit_key: String,
    pub flow_name: String,
    pub flow_version: String,
}

fn now() -> Instant {
    TokioInstant::now().into_std()
}

impl CallTask {
    /// Run the call to its end: hand it to a shard and wait. The caller
    /// instruments this future with the call's span
    /// ([`crate::ops::logging::call_span`]); the shard enters that span for
    /// every turn of the call. A panic inside the call resumes here.
    pub async fn run(self) -> CallOutcome {
        let (done, ended) = oneshot::channel();
        let shared = self.shared.clone();
        shared.shards().admit(self, tracing::Span::current(), done);
        match ended.await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            // The shard is gone: the runtime is shutting down.
            Err(_) => CallOutcome::Shutdown,
        }
    }

    /// One turn (see the module docs): `Some` when the call has ended.
    /// Every turn first reads the call's socket ([`super::ingress`]): each
    /// datagram is handed over at its kernel receive time, after the call's
    /// deadlines that fell before it. Then the turn's own deadline, then (for
    /// `Turn::Woken`) the channel, read with `cx`, which carries the call's own
    /// waker: it stays armed with it until it has something. `reported`: what
    /// this call has told the metrics so far (RTP counters go out live, every
    /// second).
    pub(super) fn step(
        &mut self,
        cx: &mut Context<'_>,
        turn: Turn,
        bufs: (&mut RecvBatch, &mut Vec<u8>, &mut Egress),
        reported: &mut Reported,
    ) -> Option<CallOutcome> {
        let (rx, tx_buf, egress) = bufs;
        let turn_now = match turn {
            Turn::Timeout(now) => now,
            Turn::Woken => now(),
        };
        self.read_rtp(cx, rx, turn_now, reported);
        self.catch_up(turn_now);
        if let Turn::Woken = turn {
            self.read_channel(cx);
        }
        self.follow_peer(turn_now, reported);
        self.send_rtp(tx_buf, egress, reported.connected);
        let t = now();
        match reported.next_rtp {
            Some(next) if t < next => {}
            Some(_) => {
                self.report_rtp(&mut reported.rtp);
                reported.next_rtp = Some(t + RTP_REPORT_EVERY);
            }
            None => reported.next_rtp = Some(t + RTP_REPORT_EVERY),
        }
        self.drain_outputs()
    }

    /// When the call next needs a turn: its own deadline, and at least every
    /// [`RX_EVERY`] so that its socket is read even while it has none.
    pub(super) fn next_turn(&self, now: Instant) -> Instant {
        let poll = now + RX_EVERY;
        self.call.poll_timeout().map_or(poll, |t| t.min(poll))
    }

    /// What the socket holds (one batch; a full batch asks for another turn
    /// after the other calls'), each datagram at its receive time.
    fn read_rtp(
        &mut self,
        cx: &mut Context<'_>,
        rx: &mut RecvBatch,
        now: Instant,
        reported: &mut Reported,
    ) {
        // Receive times are kept between the last turn and this one: the call
        // never sees time go backwards.
        let mut floor = reported.last_turn.map_or(now, |t| t.min(now));
        reported.last_turn = Some(now);
        let fd = self.rtp.socket.as_raw_fd();
        // One datagram first (the usual turn has exactly one), the rest only
        // when there may be more: the last turn found several, or the one just
        // read has waited long enough that another may have come after it, or
        // it came late after the one before and the next may have caught up.
        let read = |rx: &mut RecvBatch| {
            if reported.rx_burst {
                rx.recv(fd)
            } else {
                rx.recv_one(fd)
            }
        };
        let mut first = read(rx);
        if first
            .as_ref()
            .is_err_and(|e| e.raw_os_error() == Some(libc::ECONNREFUSED))
        {
            // A connected socket's peer port was closed (an ICMP error for one
            // of our packets): the kernel reports it once, on this read, and
            // the datagrams behind it are still there.
            first = read(rx);
        }
        if let Err(e) = first {
            debug!(error = %e, "rtp receive error");
            return;
        }
        if rx.is_empty() {
            reported.rx_burst = false;
            return;
        }
        let clocks = Clocks::new(self::now());
        if !reported.rx_burst {
            let at = rx
                .get(0)
                .and_then(|d| d.received)
                .map(|t| clocks.to_monotonic(t));
            if may_have_more(at, clocks.mono(), reported.last_rx, self.call.ptime()) {
                if let Err(e) = rx.recv_more(fd) {
                    debug!(error = %e, "rtp receive error");
                }
            }
        }
        let n = rx.len();
        reported.rx_burst = n > 1;
        if let Some(t) = rx.get(n - 1).and_then(|d| d.received) {
            reported.last_rx = Some(clocks.to_monotonic(t));
        }
        for i in 0..n {
            let Some(d) = rx.get(i) else {
                continue;
            };
            let at = d
                .received
                .map_or(now, |t| clocks.to_monotonic(t))
                .clamp(floor, now);
            floor = at;
            if self.call.poll_timeout().is_some_and(|t| fires_first(t, at)) {
                self.call.handle_timeout(at);
            }
            self.call.handle_rtp(at, d.from, d.data);
        }
        self.report_rejected(&mut reported.rejected);
        if n == rx.capacity() {
            // More may be waiting: come back for them after the other calls' turns.
            cx.waker().wake_by_ref();
        }
    }

    /// The inputs that are ready on the call's channel.
    fn read_channel(&mut self, cx: &mut Context<'_>) {
        loop {
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(CallInput::Sip(ev))) => self.call.handle_sip(now(), ev),
                Poll::Ready(Some(CallInput::ActionDone {
                    id,
                    outcome,
                    outputs,
                })) => self.call.handle_action_result(now(), id, &outcome, outputs),
                Poll::Ready(Some(CallInput::Terminate(outcome))) => {
                    self.call.terminate(now(), outcome)
                }
                Poll::Ready(None) => {
                    self.call.terminate(now(), CallOutcome::Shutdown);
                    break;
                }
                Poll::Pending => break,
            }
        }
    }

    /// Fire the call's deadline if it is due by `now` (a deadline that passed
    /// before an input arrived fires first: after a stall, a burst of
    /// datagrams must not overtake the DTMF and flow timers that were due
    /// between them).
    fn catch_up(&mut self, now: Instant) {
        if self.call.poll_timeout().is_some_and(|t| t <= now) {
            self.call.handle_timeout(now);
        }
    }

    /// Every packet the call has ready, each built into `buf` and queued on
    /// the shard's egress (sent at the end of the shard's pass); without an
    /// address when the socket is connected to where it goes.
    fn send_rtp(&mut self, buf: &mut Vec<u8>, egress: &mut Egress, connected: Option<SocketAddr>) {
        let fd = self.rtp.socket.as_raw_fd();
        while let Some(to) = self.call.poll_transmit(buf) {
            egress.push(fd, (connected != Some(to)).then_some(to), buf);
        }
    }

    /// Keep the call's socket `connect`ed to its caller while the caller's
    /// address holds steady ([`Call::rtp_peer`]), and unconnected otherwise.
    /// Connected, the kernel keeps the route for the call's sends (a tenth
    /// less per packet, BENCHMARKS.md §17) and drops every other sender's
    /// datagrams itself, without waking the call: a stranger spraying the port
    /// costs the server no wake-up and no read (BENCHMARKS.md §17: a spray that
    /// took 4–10 % of a core took 0–4 %). Unconnected before the caller's first valid
    /// packet (the trust check picks it, and counts what it refuses), and once
    /// the caller has been quiet long enough that it may come back from
    /// another port (NAT rebinding), which a connected socket would never
    /// hear. A socket bound to a wildcard address is never connected (the
    /// kernel would bind it to one local address), nor one on a port the
    /// kernel picked ([`disconnect`] would lose it); nor, after a failure, is
    /// this call's.
    fn follow_peer(&mut self, now: Instant, reported: &mut Reported) {
        if reported.connect_failed || self.call.is_ended() {
            // (An ended call's socket is closed in a moment anyway.)
            return;
        }
        let peer = self.call.rtp_peer(now);
        let local = self.rtp.local;
        if peer == reported.connected || local.ip().is_unspecified() || local.port() == 0 {
            return;
        }
        let sock = socket2::SockRef::from(&self.rtp.socket);
        let done = match peer {
            Some(to) => sock.connect(&socket2::SockAddr::from(to)),
            None => disconnect(&self.rtp.socket),
        };
        match done {
            Ok(()) => {
                match peer {
                    Some(to) => debug!(peer = %to, "rtp socket connected to the caller"),
                    None => debug!("rtp socket unconnected: the caller is quiet"),
                }
                reported.connected = peer;
            }
            Err(e) => {
                debug!(error = %e, "rtp socket left unconnected");
                reported.connect_failed = true;
                reported.connected = None;
                let _ = disconnect(&self.rtp.socket);
            }
        }
    }

    /// The call has ended: its counters to the metrics, its recording closed,
    /// its dialog forgotten. Dropping `self` frees its RTP port.
    pub(super) fn finish(mut self, outcome: CallOutcome, mut reported: Reported) {
        self.report_rtp(&mut reported.rtp);
        if let Some(rec) = self.recorder.take() {
            rec.finish();
        }
        let _ = self.sip.send(SipIn::CallGone(self.call.key().clone()));
        // `caller_reason` is left out when the caller gave none.
        info!(
            outcome = outcome.as_str(),
            caller_reason = self.call.caller_reason(),
            "call ended"
        );
    }

    /// Carry out every pending output; `Some` when the call has ended.
    fn drain_outputs(&mut self) -> Option<CallOutcome> {
        while let Some(out) = self.call.poll_output() {
            match out {
                Output::Sip(cmd) => {
                    let _ = self.sip.send(SipIn::Command(cmd));
                }
                Output::RunAction { id, action, vars } => self.start_action(id, action, vars),
                Output::Audit { result, reason } => {
                    self.shared.audit(
                        &result,
                        &reason,
                        &self.ani,
                        &self.call.key().0,
                        &self.flow_name,
                        &self.flow_version,
                    );
                }
                Output::Record(block) => match &mut self.recorder {
                    Some(rec) => {
                        let dropped = rec.frames(block);
                        if dropped > 0 {
                            self.shared.metrics.recording_frames_dropped(dropped);
                        }
                    }
                    None => block.recycle(),
                },
                Output::Timeline(ev) => {
                    debug!(event = ?ev, "timeline");
                    if let Some(rec) = &mut self.recorder {
                        rec.timeline(&ev);
                    }
                }
                Output::DigitHeard(source) => self.shared.metrics.dtmf_digit(source),
                Output::Ended(outcome) => return Some(outcome),
            }
        }
        None
    }

    /// Datagrams the media trust dropped, to the metrics as they happen: an attack
    /// on a call's port shows while it lasts.
    /// Adds what the RTP counters gained since the last report.
    fn report_rtp(&self, reported: &mut RtpCounts) {
        let now = labels::rtp_counts(&self.call.media_stats());
        if now != *reported {
            self.shared.metrics.rtp_observed(now.since(reported));
            // Loss can go down (a late packet); what was reported stays reported.
            let lost = reported.lost.max(now.lost);
            *reported = RtpCounts { lost, ..now };
        }
    }

    fn report_rejected(&self, reported: &mut (u64, u64)) {
        let now = self.call.rtp_rejected();
        if now != *reported {
            let m = &self.shared.metrics;
            m.rtp_rejected(RtpRejectReason::UntrustedSource, now.0 - reported.0);
            m.rtp_rejected(RtpRejectReason::NotLatched, now.1 - reported.1);
            *reported = now;
        }
    }

    fn start_action(&self, id: u64, action: String, vars: Vars) {
        let shared = self.shared.clone();
        let limit_key = self.limit_key.clone();
        let executor = self.shared.executor();
        let (otp_actions, guarded) = {
            let loaded = self.shared.loaded();
            let sec = &loaded.config.security;
            (
                (sec.otp_send_action.clone(), sec.otp_verify_action.clone()),
                sec.reset_action.as_deref() == Some(action.as_str()),
            )
        };
        let tx = self.tx.clone();
        let metrics = self.shared.metrics.clone();
        let span = tracing::Span::current();
        // Fail closed: the reset request goes out only after its write-ahead
        // audit record is on disk.
        let write_ahead = guarded.then(|| {
            let facts = crate::audit::CallFacts {
                ani: &self.ani,
                call_id: &self.call.key().0,
                flow: &self.flow_name,
                flow_version: &self.flow_version,
            };
            let trail = self.shared.audit_trail.clone();
            (trail.started(&facts, &action), trail)
        });
        tokio::spawn(
            async move {
                // The cross-call limits (possibly in Redis) come first; a store
                // that does not answer refuses the attempt (fail closed).
                let refused = match shared.admit_attempt(&action, &limit_key, &vars).await {
                    Attempt::Admitted => None,
                    Attempt::Refused => Some(crate::actions::budget::RATE_LIMITED),
                    Attempt::Unavailable => Some(crate::actions::OUTCOME_ERROR),
                };
                if let Some(outcome) = refused {
                    let _ = tx.send(CallInput::ActionDone {
                        id,
                        outcome: outcome.into(),
                        outputs: Vars::new(),
                    });
                    return;
                }
                if let Some((record, trail)) = write_ahead {
                    if !trail.write_ahead(record).await {
                        let _ = tx.send(CallInput::ActionDone {
                            id,
                            outcome: crate::audit::AUDIT_UNAVAILABLE.into(),
                            outputs: Vars::new(),
                        });
                        return;
                    }
                }
                let result = executor.run(&action, &vars).await;
                metrics.action_observed(&action, &result.outcome, result.latency);
                if action == otp_actions.0 {
                    metrics.otp_sent(OtpSendResult::from_outcome(&result.outcome));
                } else if action == otp_actions.1 {
                    metrics.otp_verified(OtpVerifyResult::from_outcome(&result.outcome));
                }
                if result.outcome == "error" || result.outcome == "timeout" {
                    warn!(action = %action, outcome = %result.outcome, "data action failed");
                }
                let _ = tx.send(CallInput::ActionDone {
                    id,
                    outcome: result.outcome,
                    outputs: result.outputs,
                });
            }
            .instrument(span),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// What `follow_peer` relies on, over IPv4 and IPv6: a socket connected
    /// to its caller takes nobody else's datagrams (the kernel drops them,
    /// they are not queued for later), and once unconnected it takes anyone's
    /// again, from its same port.
    #[test]
    fn a_connected_socket_hears_only_its_peer_until_unconnected() {
        for ip in ["127.0.0.1", "[::1]"] {
            let bind = |port: u16| {
                let s = std::net::UdpSocket::bind(format!("{ip}:{port}")).unwrap();
                s.set_read_timeout(Some(Duration::from_millis(500)))
                    .unwrap();
                s
            };
            // The call's socket on a port of its own choosing, as the RTP
            // pool binds them (a port the kernel picked is given up).
            let free = bind(0).local_addr().unwrap().port();
            let (call, caller, stranger) = (bind(free), bind(0), bind(0));
            let port = call.local_addr().unwrap();
            let mut buf = [0u8; 16];
            call.connect(caller.local_addr().unwrap()).unwrap();
            stranger.send_to(b"stranger", port).unwrap();
            caller.send_to(b"caller", port).unwrap();
            let (n, from) = call.recv_from(&mut buf).unwrap();
            assert_eq!(
                (&buf[..n], from),
                (&b"caller"[..], caller.local_addr().unwrap())
            );
            disconnect(&call).unwrap();
            assert_eq!(call.local_addr().unwrap(), port, "{ip}: the port stays");
            stranger.send_to(b"later", port).unwrap();
            let (n, from) = call.recv_from(&mut buf).unwrap();
            assert_eq!(
                (&buf[..n], from),
                (&b"later"[..], stranger.local_addr().unwrap()),
                "{ip}: the stranger's first datagram was dropped, not queued"
            );
        }
    }

    #[test]
    fn a_turn_reads_on_only_when_another_datagram_may_be_waiting() {
        let t = Instant::now();
        let ms = Duration::from_millis;
        let more = |at, now, last, ptime| may_have_more(at, now, last, ms(ptime));
        // An ordinary turn: the caller's packet came 20 ms after the one
        // before and 6 ms ago; the next is not due for 14 ms.
        assert!(!more(Some(t + ms(34)), t + ms(40), Some(t + ms(14)), 20));
        assert!(!more(Some(t + ms(35)), t + ms(40), Some(t + ms(14)), 20));
        // It has waited long enough for the next to have come.
        assert!(more(Some(t + ms(21)), t + ms(40), Some(t + ms(1)), 20));
        // It was held up on the way (25 ms after the one before): the next,
        // sent on time, may be right behind it.
        assert!(more(Some(t + ms(39)), t + ms(40), Some(t + ms(14)), 20));
        // Nothing to go by: the first datagram of a call, or no receive time.
        assert!(more(Some(t + ms(39)), t + ms(40), None, 20));
        assert!(more(None, t + ms(40), Some(t + ms(14)), 20));
        // A trunk on 30 ms: its packets 30 ms apart are ordinary (with the
        // 20 ms rule every turn read on, one more syscall per packet), and
        // so is one that has waited 25 ms; one 35 ms after the one before, or
        // waiting 29 ms, may have the next behind it.
        assert!(!more(Some(t + ms(44)), t + ms(50), Some(t + ms(14)), 30));
        assert!(!more(Some(t + ms(25)), t + ms(50), Some(t), 30));
        assert!(more(Some(t + ms(49)), t + ms(50), Some(t + ms(14)), 30));
        assert!(more(Some(t + ms(21)), t + ms(50), Some(t + ms(1)), 30));
        // A 10 ms caller: 15 ms after the one before is held up.
        assert!(!more(Some(t + ms(34)), t + ms(36), Some(t + ms(24)), 10));
        assert!(more(Some(t + ms(39)), t + ms(40), Some(t + ms(24)), 10));
    }

    #[test]
    fn a_deadline_fires_before_a_datagram_only_when_clearly_earlier() {
        let t = Instant::now();
        let ms = Duration::from_millis;
        // A packet deadline the turn came 1 ms late for, and a key's packet that
        // arrived in between: the key goes first and can shape that packet.
        assert!(!fires_first(t, t + ms(1)));
        assert!(!fires_first(t, t + SAME_INSTANT - Duration::from_micros(1)));
        assert!(
            !fires_first(t + ms(5), t),
            "a later deadline never fires first"
        );
        // After a stall: a timer that fell well before the datagram fires first.
        assert!(fires_first(t, t + SAME_INSTANT));
        assert!(fires_first(t, t + ms(40)));
    }
}
