//! Call shards: a few tokio tasks (one per CPU) that each drive many calls, with
//! one pacing clock per shard instead of one timer per call.
//!
//! A shard owns its calls ([`CallTask`]s). It keeps every call's next deadline
//! (packet, DTMF timer, flow timer…) in one heap and sleeps on a single tokio
//! timer until the earliest; when it wakes, it runs `handle_timeout(now)` for
//! every call that is due and sends all their packets in that one pass. Calls
//! still advance in their own sans-IO [`crate::call::Call`] with `now` passed
//! in; the shard decides nothing about a call.
//!
//! Input: each call has its own [`Waker`] (an index into the shard). A call's
//! input channel is polled with that waker, so when a SIP event or an action's
//! result arrives only that call is queued and serviced — the shard never
//! scans calls that have nothing to do. Its RTP socket is read in each of its
//! turns, which come at least every packet time ([`super::ingress`]): a
//! datagram wakes nobody.
//!
//! Isolation: a panic inside one call is caught, the call is dropped (its port
//! goes back to the pool) and the panic is handed to the call's
//! [`CallTask::run`] future, which resumes it, so the supervisor counts it
//! exactly as before and the other calls of the shard go on.

use std::any::Any;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::{poll_fn, Future};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant as TokioInstant, Sleep};
use tracing::Span;

use crate::call::CallOutcome;
use crate::media::PacingGrid;
use crate::runtime::call_task::{CallTask, Reported, Turn};
use crate::runtime::egress::Egress;
use crate::runtime::ingress::RecvBatch;

/// How a call's run ends, as the shard reports it to [`CallTask::run`].
pub type Finished = Result<CallOutcome, Box<dyn Any + Send + 'static>>;

/// A call handed to a shard: the task, its span, where to report its end.
type Admit = (CallTask, Span, oneshot::Sender<Finished>);

/// The grid every call's packet times are put on ([`PacingGrid`]): a shard
/// wakes for its calls' packets at most once per step (200 times a second)
/// whatever the number of calls, and sends a step's packets in one batch.
/// A call's first packet waits at most this long.
pub const PACING_STEP: Duration = Duration::from_millis(5);

/// This process's pacing grid (see [`PACING_STEP`]).
pub fn pacing_grid() -> PacingGrid {
    static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    PacingGrid {
        origin: *ORIGIN.get_or_init(|| TokioInstant::now().into_std()),
        step: PACING_STEP,
    }
}

/// Passes over ready calls and due timers before the shard yields to other tasks.
const ROUNDS: usize = 4;

/// The shards of one server. Calls are dealt round-robin.
pub struct Shards {
    senders: Vec<mpsc::UnboundedSender<Admit>>,
    next: AtomicUsize,
}

impl Shards {
    /// Start `n` shard tasks on the current tokio runtime. They end when this
    /// handle is dropped and their last call has ended.
    pub fn start(n: usize) -> Shards {
        let senders = (0..n.max(1))
            .map(|_| {
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(tokio::task::unconstrained(Shard::new(rx).run()));
                tx
            })
            .collect();
        Shards {
            senders,
            next: AtomicUsize::new(0),
        }
    }

    /// One shard per CPU the process may use.
    pub fn per_cpu() -> Shards {
        Shards::start(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// Hand a call to a shard; `done` receives its end. If the shard is gone
    /// (the runtime is shutting down), `done` is dropped.
    pub fn admit(&self, task: CallTask, span: Span, done: oneshot::Sender<Finished>) {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.senders.len();
        let _ = self.senders[i].send((task, span, done));
    }
}

/// Calls whose socket or channel woke, in the order they woke.
struct ReadyQueue {
    calls: Mutex<Vec<usize>>,
    shard: Mutex<Option<Waker>>,
}

/// The waker a call's socket and channel are polled with.
struct CallWaker {
    slot: usize,
    queued: AtomicBool,
    ready: Arc<ReadyQueue>,
}

impl Wake for CallWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.queued.swap(true, Ordering::AcqRel) {
            return;
        }
        lock(&self.ready.calls).push(self.slot);
        if let Some(w) = lock(&self.ready.shard).as_ref() {
            w.wake_by_ref();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct Slot {
    task: CallTask,
    span: Span,
    done: oneshot::Sender<Finished>,
    wake: Arc<CallWaker>,
    waker: Waker,
    /// The deadline this call has in the heap (entries that differ are stale).
    deadline: Option<Instant>,
    /// What the call has reported to the metrics so far.
    reported: Reported,
}

/// One shard: its calls, their deadlines, the buffers every call shares.
struct Shard {
    incoming: mpsc::UnboundedReceiver<Admit>,
    closed: bool,
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    live: usize,
    ready: Arc<ReadyQueue>,
    /// Taken from `ready` each pass (kept to reuse its allocation).
    woken: Vec<usize>,
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    rx: RecvBatch,
    tx_buf: Vec<u8>,
    /// The pass's outgoing packets, sent together at its end.
    egress: Egress,
}

impl Shard {
    fn new(incoming: mpsc::UnboundedReceiver<Admit>) -> Shard {
        Shard {
            incoming,
            closed: false,
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            ready: Arc::new(ReadyQueue {
                calls: Mutex::new(Vec::new()),
                shard: Mutex::new(None),
            }),
            woken: Vec::new(),
            timers: BinaryHeap::new(),
            rx: RecvBatch::new(),
            tx_buf: Vec::with_capacity(2048),
            egress: Egress::new(),
        }
    }

    async fn run(mut self) {
        let mut sleep = Box::pin(tokio::time::sleep(Duration::from_secs(3600)));
        poll_fn(|cx| self.poll(cx, sleep.as_mut())).await;
    }

    fn poll(&mut self, cx: &mut Context<'_>, mut sleep: Pin<&mut Sleep>) -> Poll<()> {
        {
            let mut w = lock(&self.ready.shard);
            if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *w = Some(cx.waker().clone());
            }
        }
        for _ in 0..ROUNDS {
            while !self.closed {
                match self.incoming.poll_recv(cx) {
                    Poll::Ready(Some(admit)) => self.admit(admit),
                    Poll::Ready(None) => self.closed = true,
                    Poll::Pending => break,
                }
            }
            if self.closed && self.live == 0 {
                return Poll::Ready(());
            }
            // Due deadlines first, then the calls that inputs woke.
            let now = TokioInstant::now().into_std();
            while let Some(&Reverse((t, slot))) = self.timers.peek() {
                if t > now {
                    break;
                }
                self.timers.pop();
                let due = self
                    .slots
                    .get_mut(slot)
                    .and_then(Option::as_mut)
                    .is_some_and(|s| s.deadline == Some(t));
                if due {
                    self.slots[slot].as_mut().expect("due slot").deadline = None;
                    self.service(slot, Turn::Timeout(now));
                }
            }
            std::mem::swap(&mut self.woken, &mut *lock(&self.ready.calls));
            let mut woken = std::mem::take(&mut self.woken);
            for slot in woken.drain(..) {
                self.service(slot, Turn::Woken);
            }
            self.woken = woken;
            self.egress.flush();
            let next = self.timers.peek().map(|Reverse((t, _))| *t);
            let next = next.map_or_else(
                || TokioInstant::now() + Duration::from_secs(3600),
                TokioInstant::from_std,
            );
            if sleep.deadline() != next {
                sleep.as_mut().reset(next);
            }
            if sleep.as_mut().poll(cx).is_pending() && lock(&self.ready.calls).is_empty() {
                return Poll::Pending;
            }
        }
        // Still busy after a few passes: let other tasks run, then go on.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn admit(&mut self, (task, span, done): Admit) {
        let slot = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        });
        let wake = Arc::new(CallWaker {
            slot,
            queued: AtomicBool::new(false),
            ready: self.ready.clone(),
        });
        let waker = Waker::from(wake.clone());
        self.slots[slot] = Some(Slot {
            task,
            span,
            done,
            wake,
            waker,
            deadline: None,
            reported: Reported::default(),
        });
        self.live += 1;
        // First turn: drain what the call has to say, arm its socket and channel.
        self.service(slot, Turn::Woken);
    }

    /// One turn of one call (its timeout, or what woke it), then its outputs;
    /// then its next deadline.
    fn service(&mut self, slot: usize, turn: Turn) {
        let Some(s) = self.slots.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let now = match turn {
            Turn::Timeout(now) => now,
            Turn::Woken => {
                s.wake.queued.store(false, Ordering::Release);
                TokioInstant::now().into_std()
            }
        };
        let bufs = (&mut self.rx, &mut self.tx_buf, &mut self.egress);
        let turn = {
            let _entered = s.span.enter();
            let mut cx = Context::from_waker(&s.waker);
            catch_unwind(AssertUnwindSafe(|| {
                s.task.step(&mut cx, turn, bufs, &mut s.reported)
            }))
        };
        let ended = match turn {
            Ok(None) => {
                let next = s.task.next_turn(now);
                if Some(next) != s.deadline {
                    s.deadline = Some(next);
                    self.timers.push(Reverse((next, slot)));
                }
                return;
            }
            Ok(Some(outcome)) => Ok(outcome),
            Err(panic) => Err(panic),
        };
        // Its last packets go before its socket does.
        self.egress.flush();
        let s = self.slots[slot].take().expect("live slot");
        self.free.push(slot);
        self.live -= 1;
        let Slot {
            task,
            span,
            done,
            reported,
            ..
        } = s;
        let finished = match ended {
            Ok(outcome) => {
                let _entered = span.enter();
                task.finish(outcome, reported);
                Ok(outcome)
            }
            Err(panic) => {
                drop(task);
                Err(panic)
            }
        };
        let _ = done.send(finished);
    }
}
