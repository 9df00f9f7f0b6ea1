//! `sspr-ivr load`: a load caller built from the project's own UAC ([`Uac`]), for
//! more calls than sipp can drive on this machine (sipp costs about as much CPU per
//! call as the server).
//!
//! It keeps `--calls` calls up at once (starting new ones at `--rate` per second as
//! others end, until `--total` calls were placed). Every call, like a phone:
//! streams G.711 μ-law every 20 ms from the answer until the BYE (the speech of a
//! prompt, looped); presses `--keys` as RFC 4733 events in that stream, the first
//! `--first-key-ms` after the answer and then every `--key-gap-ms` (the events
//! replace the audio packets while a key is down, as phones do); recognises the
//! prompts it hears from the RTP payloads ([`Listener`]); and when the
//! server hangs up checks that it heard exactly the expected prompts (for the echo
//! flow and `100100#`: echo_intro, you_entered, 1 0 0 1 0 0, goodbye). A call fails
//! on a SIP error, a wrong or missing readback, or no BYE within `--call-timeout`.
//!
//! Built for one core: one thread and no async runtime; one SIP socket and a few
//! RTP sockets shared by all calls (the server sends each call's RTP to the port in
//! its SDP; we tell calls apart by the server's source port); packets go out with
//! `sendmmsg` and come in with `recvmmsg` ([`super::load_io`]); calls are paced by a
//! wheel of `--slot-us` slots over 20 ms (default 100 µs: 200 phases, so the server
//! sees packets arrive spread out as from independent phones, not in bursts). The server's packet timing is measured from the
//! kernel's receive timestamps, so the caller's own scheduling delay does not count
//! ([`super::load_report`]).

use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::load_io::{self, SendBatch};
use super::load_listen::{Listener, PromptIndex};
use super::load_report::{IntervalHistogram, Sampler};
use crate::codec::Codec;
use crate::media::rtp::{self, RtpHeader};
use crate::media::telephone_event::{self, EventPacket};
use crate::sip::message::{self, Datagram};
use crate::sip::uac::{Uac, UacEvent};
use crate::sip::{sdp, EndpointConfig, TokenRng, Transport};

#[derive(Clone, Debug, clap::Args)]
pub struct LoadArgs {
    /// Who to call, e.g. `sip:echo@127.0.0.1:5060` (UDP, IPv4 literal).
    pub uri: String,
    /// Calls up at once.
    #[arg(long, default_value_t = 100)]
    pub calls: usize,
    /// Calls placed in all [default: --calls].
    #[arg(long)]
    pub total: Option<usize>,
    /// New calls per second.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Keys to press (RFC 4733).
    #[arg(long, default_value = "100100#")]
    pub keys: String,
    /// First key this long after the answer (ms).
    #[arg(long, default_value_t = 8000)]
    pub first_key_ms: u64,
    /// Between the starts of two keys (ms).
    #[arg(long, default_value_t = 400)]
    pub key_gap_ms: u64,
    /// Prompts every call must hear, comma-separated, in order [default for the echo
    /// flow: echo_intro,you_entered, one digit_N per key before `#`, goodbye].
    #[arg(long, value_delimiter = ',')]
    pub expect: Vec<String>,
    /// The prompt whose speech the callers send (looped).
    #[arg(long, default_value = "welcome")]
    pub talk: String,
    /// Process id of the server: its CPU time and RSS are reported.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// RTP sockets shared by the calls.
    #[arg(long, default_value_t = 4)]
    pub rtp_sockets: usize,
    /// Pacing slot (µs, divides 20000): calls are spread over 20 ms in slots this
    /// long, and each slot's packets leave in one `sendmmsg`. Independent phones
    /// send at random phases; coarser slots deliver packets to the server in bursts,
    /// which lets it serve more calls per wake-up than it would in the field.
    #[arg(long, default_value_t = 100)]
    pub slot_us: u64,
    /// A call that has not been hung up by the server this long after its INVITE fails.
    #[arg(long, default_value_t = 60.0)]
    pub call_timeout: f64,
    /// Give up on the whole run after this many seconds.
    #[arg(long, default_value_t = 600.0)]
    pub timeout: f64,
    /// Caller number (From user).
    #[arg(long, default_value = "5550100199")]
    pub from: String,
    /// Local IP for SIP and RTP.
    #[arg(long, default_value = "127.0.0.1")]
    pub local_ip: Ipv4Addr,
}

const PTIME: Duration = Duration::from_millis(20);
const TE_PT: u8 = 101;

/// The media half of an answered call.
struct Media {
    remote: SocketAddrV4,
    sock: usize,
    audio_pt: u8,
    te_pt: u8,
    ssrc: u32,
    seq: u16,
    ts: u32,
    next: Instant,
    talk_pos: usize,
    keys_sent: usize,
    /// Packets of the key press in progress.
    press: VecDeque<EventPacket>,
    listener: Listener,
    /// Last received audio packet: sequence number and kernel receive time (ns).
    last_rx: Option<(u16, u64)>,
    /// When the last key went down (realtime ns) until the next prompt starts.
    last_key_ns: Option<u64>,
}

struct LoadCall {
    uac: Uac,
    generation: u32,
    invited: Instant,
    answered: Option<Instant>,
    media: Option<Media>,
    bye_received: bool,
    hung_up: bool,
    failure: Option<String>,
}

/// Everything shared by the calls.
struct Bench {
    args: LoadArgs,
    index: Arc<PromptIndex>,
    talk: Vec<u8>,
    expect: Vec<String>,
    sip: UdpSocket,
    sip_local: SocketAddr,
    rtp: Vec<UdpSocket>,
    rtp_local: Vec<SocketAddrV4>,
    out: Vec<SendBatch>,
    calls: Vec<Option<LoadCall>>,
    free: Vec<usize>,
    generation: u32,
    by_call_id: HashMap<String, usize>,
    /// Server RTP source port -> (call slot, generation).
    by_port: HashMap<u16, (usize, u32)>,
    wheel: Vec<Vec<(usize, u32)>>,
    slot_us: u64,
    up: usize,
    steady: bool,
    intervals: IntervalHistogram,
    /// Last key down -> first packet of the next prompt.
    key_to_prompt: IntervalHistogram,
    ok: usize,
    failures: HashMap<String, usize>,
    example_failure: Option<String>,
    scratch: Vec<u8>,
}

fn default_expect(keys: &str) -> Vec<String> {
    let mut v = vec!["echo_intro".to_string(), "you_entered".to_string()];
    v.extend(keys.chars().take_while(|&c| c != '#').map(|c| match c {
        '*' => "star".to_string(),
        d => format!("digit_{d}"),
    }));
    v.push("goodbye".into());
    v
}

pub fn run(args: LoadArgs) -> anyhow::Result<bool> {
    if args.calls == 0 || args.rate <= 0.0 || args.rtp_sockets == 0 {
        bail!("--calls, --rate and --rtp-sockets must be positive");
    }
    for k in args.keys.chars() {
        telephone_event::digit_to_event(k)
            .with_context(|| format!("--keys: `{k}` is not a DTMF key"))?;
    }
    let target = message::uri_hostport(args.uri.trim())
        .and_then(message::hostport_addr)
        .with_context(|| format!("{}: the host must be an IP address", args.uri))?;
    if !target.is_ipv4() {
        bail!("{}: the load caller speaks IPv4 only", args.uri);
    }
    let cache = crate::files::embedded_prompts()?;
    let index = PromptIndex::new(&cache, Codec::Pcmu);
    let talk = cache
        .get(&args.talk)
        .with_context(|| format!("--talk {}: no such prompt", args.talk))?
        .encoded(Codec::Pcmu)
        .to_vec();
    let expect = if args.expect.is_empty() {
        default_expect(&args.keys)
    } else {
        args.expect.clone()
    };
    let sip = UdpSocket::bind((args.local_ip, 0))?;
    sip.set_nonblocking(true)?;
    let sip_local = sip.local_addr()?;
    let mut rtp = Vec::new();
    let mut rtp_local = Vec::new();
    for _ in 0..args.rtp_sockets {
        let s = load_io::bind(args.local_ip, 32 << 20)?;
        let SocketAddr::V4(a) = s.local_addr()? else {
            bail!("RTP socket is not IPv4");
        };
        rtp.push(s);
        rtp_local.push(a);
    }
    if args.slot_us == 0 || 20_000 % args.slot_us != 0 {
        bail!("--slot-us must divide 20000");
    }
    let slot_us = args.slot_us;
    let slots = (20_000 / slot_us) as usize;
    // Sleep to within microseconds of a slot, not the default 50 µs slack.
    // SAFETY: prctl(PR_SET_TIMERSLACK) takes a plain integer.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1u64, 0u64, 0u64, 0u64);
    }
    let mut b = Bench {
        out: (0..rtp.len()).map(|_| SendBatch::default()).collect(),
        args,
        index,
        talk,
        expect,
        sip,
        sip_local,
        rtp,
        rtp_local,
        calls: Vec::new(),
        free: Vec::new(),
        generation: 0,
        by_call_id: HashMap::new(),
        by_port: HashMap::new(),
        wheel: vec![Vec::new(); slots],
        slot_us,
        up: 0,
        steady: false,
        intervals: IntervalHistogram::default(),
        key_to_prompt: IntervalHistogram::default(),
        ok: 0,
        failures: HashMap::new(),
        example_failure: None,
        scratch: Vec::with_capacity(load_io::MAX_DATAGRAM),
    };
    b.drive()
}

impl Bench {
    fn drive(&mut self) -> anyhow::Result<bool> {
        let total = self.args.total.unwrap_or(self.args.calls);
        let start = Instant::now();
        let deadline = start + Duration::from_secs_f64(self.args.timeout);
        let spacing = Duration::from_secs_f64(1.0 / self.args.rate);
        let mut next_start = start;
        let mut placed = 0usize;
        let mut sampler = Sampler::new(self.args.server_pid);
        let mut next_sample = start;
        let mut next_timers = start;
        let mut last_slot = 0u64;
        let mut last_ms = u64::MAX;
        let slots = self.wheel.len() as u64;
        let mut sip_buf = vec![0u8; 65_535];
        let mut rtp_in = load_io::recv_batch();
        println!(
            "# sspr-ivr load {} --calls {} --total {total} --rate {} --keys {} --first-key-ms {} \
             --key-gap-ms {}; expect {}",
            self.args.uri,
            self.args.calls,
            self.args.rate,
            self.args.keys,
            self.args.first_key_ms,
            self.args.key_gap_ms,
            self.expect.join(" ")
        );
        loop {
            let now = Instant::now();
            let live = self.calls.len() - self.free.len();
            if placed == total && live == 0 {
                break;
            }
            if now >= deadline {
                println!(
                    "run timeout: {live} calls still up after {} s",
                    self.args.timeout
                );
                for i in 0..self.calls.len() {
                    if self.calls[i].is_some() {
                        self.fail(i, "run timeout");
                        self.end(i);
                    }
                }
                break;
            }
            while placed < total
                && next_start <= now
                && self.calls.len() - self.free.len() < self.args.calls
            {
                self.place(now, placed)?;
                placed += 1;
                next_start += spacing;
            }
            if next_start < now {
                // Full: the next call starts when one ends, at the earliest.
                next_start = now;
            }
            let now_ms = (now - start).as_millis() as u64;
            let new_ms = now_ms != last_ms;
            last_ms = now_ms;
            if new_ms {
                self.read_sip(&mut sip_buf);
            }
            for s in 0..self.rtp.len() {
                if !new_ms {
                    break;
                }
                loop {
                    let n = match rtp_in.recv(self.rtp[s].as_raw_fd()) {
                        Ok(n) => n,
                        Err(e) => {
                            eprintln!("rtp receive: {e}");
                            0
                        }
                    };
                    for k in 0..n {
                        let Some(d) = rtp_in.get(k) else { continue };
                        if let SocketAddr::V4(from) = d.from {
                            self.on_rtp(d.data, from, load_io::epoch_ns(d.received));
                        }
                    }
                    if n < rtp_in.capacity() {
                        break;
                    }
                }
            }
            if now >= next_timers {
                next_timers = now + Duration::from_millis(50);
                self.timers(now);
            }
            // Media: every slot since the last pass, in order.
            let now_slot = (now - start).as_micros() as u64 / self.slot_us;
            let from = if last_slot == 0 {
                now_slot
            } else {
                (last_slot + 1).max(now_slot.saturating_sub(slots - 1))
            };
            for k in from..=now_slot {
                self.send_slot((k % slots) as usize, now);
            }
            last_slot = now_slot;
            for s in 0..self.rtp.len() {
                self.out[s].flush(&self.rtp[s]);
            }
            if now >= next_sample {
                next_sample += Duration::from_millis(250);
                sampler.sample(now, self.up);
                self.steady = self.up >= self.args.calls;
            }
            // Sleep to the next slot.
            let next = start + Duration::from_micros((now_slot + 1) * self.slot_us);
            let after = Instant::now();
            if next > after {
                std::thread::sleep(next - after);
            }
        }
        sampler.sample(Instant::now(), self.up);
        let failed: usize = self.failures.values().sum();
        let dropped: u64 = self.out.iter().map(|o| o.dropped).sum();
        println!(
            "calls: placed {placed}, ok {} (heard exactly the expected prompts and got BYE), failed {failed}",
            self.ok
        );
        if failed > 0 {
            let mut f: Vec<_> = self.failures.iter().collect();
            f.sort();
            println!("failures by reason: {f:?}");
            if let Some(e) = &self.example_failure {
                println!("first failure: {e}");
            }
        }
        print!("{}", sampler.report(self.args.calls));
        println!(
            "server -> caller RTP intervals (kernel receive time, steady window): {}",
            self.intervals.summary(PTIME.as_millis() as u64)
        );
        println!(
            "last key down -> first packet of the next prompt (all calls): {}",
            self.key_to_prompt.latency_summary()
        );
        println!("RTP datagrams the kernel refused to send: {dropped}");
        Ok(failed == 0 && placed == total)
    }

    fn place(&mut self, now: Instant, n: usize) -> anyhow::Result<()> {
        let slot = self.free.pop().unwrap_or_else(|| {
            self.calls.push(None);
            self.calls.len() - 1
        });
        let rtp_local = self.rtp_local[slot % self.rtp_local.len()];
        let offer = sdp::offer(
            SocketAddr::V4(rtp_local),
            &[Codec::Pcmu],
            TE_PT,
            20,
            n as u64,
        );
        let uac = Uac::new(
            now,
            EndpointConfig::new(
                self.sip_local,
                concat!("sspr-ivr-load/", env!("CARGO_PKG_VERSION")),
            ),
            &self.args.uri,
            &self.args.from,
            offer,
            TokenRng::from_seed(rand::random()),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        self.generation = self.generation.wrapping_add(1);
        self.by_call_id.insert(uac.call_id().to_string(), slot);
        self.calls[slot] = Some(LoadCall {
            uac,
            generation: self.generation,
            invited: now,
            answered: None,
            media: None,
            bye_received: false,
            hung_up: false,
            failure: None,
        });
        self.pump(slot, now);
        Ok(())
    }

    fn read_sip(&mut self, buf: &mut [u8]) {
        loop {
            let (n, from) = match self.sip.recv_from(buf) {
                Ok(x) => x,
                Err(_) => return,
            };
            let data = &buf[..n];
            let Ok(Datagram::Message(m)) = message::parse(data) else {
                continue;
            };
            let Some(&slot) = m
                .message
                .header("Call-ID")
                .and_then(|id| self.by_call_id.get(id.trim()))
            else {
                continue;
            };
            let now = Instant::now();
            if let Some(c) = self.calls[slot].as_mut() {
                c.uac.handle_datagram(now, Transport::Udp, from, data);
            }
            self.pump(slot, now);
        }
    }

    /// Send what the UAC wants sent and act on its events.
    fn pump(&mut self, slot: usize, now: Instant) {
        let mut ended = false;
        loop {
            let Some(c) = self.calls[slot].as_mut() else {
                return;
            };
            while let Some(t) = c.uac.poll_transmit() {
                let _ = self.sip.send_to(&t.payload, t.destination);
            }
            let Some(ev) = c.uac.poll_event() else { break };
            match ev {
                UacEvent::Answered { sdp: answer } => self.answered(slot, now, &answer),
                UacEvent::Failed(code) => self.fail(slot, &format!("SIP {code}")),
                UacEvent::ByeReceived { .. } => {
                    c.bye_received = true;
                    let heard = c
                        .media
                        .as_ref()
                        .map(|m| m.listener.heard.clone())
                        .unwrap_or_default();
                    if heard != self.expect {
                        self.fail(slot, &format!("readback: heard {}", heard.join(" ")));
                    }
                }
                UacEvent::Terminated => ended = true,
                _ => {}
            }
        }
        if ended {
            if let Some(c) = &self.calls[slot] {
                if !c.bye_received && !c.hung_up {
                    self.fail(slot, "ended without the server's BYE");
                }
            }
            self.end(slot);
        }
    }

    fn answered(&mut self, slot: usize, now: Instant, answer: &str) {
        let neg = sdp::parse(answer)
            .map_err(|e| e.to_string())
            .and_then(|o| sdp::negotiate(&o, &[Codec::Pcmu]).map_err(|e| e.to_string()));
        let (neg, remote) = match neg {
            Ok(n) => match n.remote {
                SocketAddr::V4(r) => (n, r),
                SocketAddr::V6(_) => return self.fail(slot, "answer SDP: IPv6 media"),
            },
            Err(e) => return self.fail(slot, &format!("answer SDP: {e}")),
        };
        let sock = slot % self.rtp.len();
        let Some(c) = self.calls[slot].as_mut() else {
            return;
        };
        c.answered = Some(now);
        self.up += 1;
        self.by_port.insert(remote.port(), (slot, c.generation));
        c.media = Some(Media {
            remote,
            sock,
            audio_pt: neg.audio_pt,
            te_pt: neg.telephone_event_pt.unwrap_or(TE_PT),
            ssrc: rand::random(),
            seq: rand::random(),
            ts: rand::random(),
            next: now,
            talk_pos: 0,
            keys_sent: 0,
            press: VecDeque::new(),
            listener: Listener::default(),
            last_rx: None,
            last_key_ns: None,
        });
        // Calls spread evenly over the 20 ms, as independent phones are.
        let phase = slot % self.wheel.len();
        self.wheel[phase].push((slot, c.generation));
    }

    fn fail(&mut self, slot: usize, why: &str) {
        if let Some(c) = self.calls[slot].as_mut() {
            if c.failure.is_none() {
                c.failure = Some(why.to_string());
                let reason = why.split(':').next().unwrap_or(why).to_string();
                *self.failures.entry(reason).or_default() += 1;
                if self.example_failure.is_none() {
                    self.example_failure = Some(format!("{}: {why}", c.uac.call_id()));
                }
                if !c.hung_up && !c.bye_received {
                    c.hung_up = true;
                    c.uac.hangup(Instant::now());
                }
            }
        }
    }

    fn end(&mut self, slot: usize) {
        let Some(c) = self.calls[slot].take() else {
            return;
        };
        self.by_call_id.remove(c.uac.call_id());
        if let Some(m) = &c.media {
            if self.by_port.get(&m.remote.port()).map(|x| x.1) == Some(c.generation) {
                self.by_port.remove(&m.remote.port());
            }
        }
        if c.answered.is_some() {
            self.up -= 1;
        }
        if c.failure.is_none() && c.bye_received {
            self.ok += 1;
        }
        self.free.push(slot);
    }

    fn timers(&mut self, now: Instant) {
        let limit = Duration::from_secs_f64(self.args.call_timeout);
        for slot in 0..self.calls.len() {
            let Some(c) = self.calls[slot].as_mut() else {
                continue;
            };
            if c.uac.poll_timeout().is_some_and(|t| t <= now) {
                c.uac.handle_timeout(now);
            }
            let late = now - c.invited > limit;
            let stuck = now - c.invited > limit * 2;
            if late {
                self.fail(slot, "no BYE from the server in time");
            }
            if stuck {
                self.end(slot);
                continue;
            }
            self.pump(slot, now);
        }
    }

    fn on_rtp(&mut self, data: &[u8], from: SocketAddrV4, at_ns: u64) {
        let Some(&(slot, generation)) = self.by_port.get(&from.port()) else {
            return;
        };
        let steady = self.steady;
        let Some(c) = self.calls[slot]
            .as_mut()
            .filter(|c| c.generation == generation)
        else {
            return;
        };
        let Some(m) = c.media.as_mut() else { return };
        let Ok(pkt) = rtp::parse(data) else { return };
        if pkt.header.payload_type != m.audio_pt {
            return;
        }
        let seq = pkt.header.sequence;
        if let Some((last_seq, last_at)) = m.last_rx {
            if steady {
                if seq == last_seq.wrapping_add(1) {
                    self.intervals.add(at_ns.saturating_sub(last_at));
                } else {
                    self.intervals.gaps += 1;
                }
            }
        }
        m.last_rx = Some((seq, at_ns));
        let before = m.listener.heard.len();
        m.listener.push(&self.index, pkt.payload, at_ns);
        if m.listener.heard.len() > before {
            if let Some(key_ns) = m.last_key_ns.take() {
                self.key_to_prompt
                    .add(m.listener.last_start_ns.saturating_sub(key_ns));
            }
        }
    }

    /// Send the packets due for the calls in wheel slot `i`.
    fn send_slot(&mut self, i: usize, now: Instant) {
        let mut k = 0;
        while k < self.wheel[i].len() {
            let (slot, generation) = self.wheel[i][k];
            let alive = self.calls[slot].as_ref().is_some_and(|c| {
                c.generation == generation && !c.bye_received && !c.hung_up && c.media.is_some()
            });
            if !alive {
                self.wheel[i].swap_remove(k);
                continue;
            }
            k += 1;
            let Some(c) = self.calls[slot].as_mut() else {
                continue;
            };
            let answered = c.answered.unwrap_or(now);
            let Some(m) = c.media.as_mut() else { continue };
            while m.next <= now {
                m.next += PTIME;
                // The next key goes down once its time has come and the last is up.
                let keys = self.args.keys.as_bytes();
                if m.press.is_empty() && m.keys_sent < keys.len() {
                    let due = answered
                        + Duration::from_millis(
                            self.args.first_key_ms + self.args.key_gap_ms * m.keys_sent as u64,
                        );
                    if due <= now {
                        let sender = telephone_event::Sender::new(m.te_pt, 20);
                        if let Ok(p) = sender.and_then(|s| {
                            s.press(
                                keys[m.keys_sent] as char,
                                m.ssrc,
                                0,
                                m.ts,
                                Duration::from_millis(100),
                            )
                        }) {
                            m.press.extend(p);
                        }
                        m.keys_sent += 1;
                        if m.keys_sent == keys.len() {
                            m.last_key_ns = Some(realtime_ns());
                        }
                    }
                }
                self.scratch.clear();
                m.seq = m.seq.wrapping_add(1);
                let built = if let Some(mut ev) = m.press.pop_front() {
                    ev.header.sequence = m.seq;
                    rtp::append(&ev.header, &ev.payload, &mut self.scratch)
                } else {
                    let header = RtpHeader {
                        payload_type: m.audio_pt,
                        marker: false,
                        sequence: m.seq,
                        timestamp: m.ts,
                        ssrc: m.ssrc,
                    };
                    let t = &self.talk;
                    let end = (m.talk_pos + 160).min(t.len());
                    let r = rtp::append(&header, &t[m.talk_pos..end], &mut self.scratch);
                    m.talk_pos = if end == t.len() { 0 } else { end };
                    r
                };
                m.ts = m.ts.wrapping_add(160);
                if built.is_ok() {
                    self.out[m.sock].push(&self.rtp[m.sock], m.remote, &self.scratch);
                }
            }
        }
    }
}

/// The realtime clock in ns, the clock of the kernel's receive timestamps.
fn realtime_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_echo_readback_is_derived_from_the_keys() {
        assert_eq!(
            default_expect("100100#"),
            [
                "echo_intro",
                "you_entered",
                "digit_1",
                "digit_0",
                "digit_0",
                "digit_1",
                "digit_0",
                "digit_0",
                "goodbye"
            ]
        );
        assert_eq!(default_expect("7*")[2..4], ["digit_7", "star"]);
    }
}
