//! `flow_yaml` (flow text through parser, validator and graph printers) and `flow_run`
//! (the interpreter over a shipped flow with a random caller and random backends).

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;

use sspr_ivr::flow::model::AttemptMark;
use sspr_ivr::flow::{self, Catalog, Command, Flow, Interpreter, TimelineEvent};
use sspr_ivr::vars::{Value, Vars};

use super::{assert_deadline, t0, KEYS, MAX_TIMER_STEPS};

#[path = "../../../tests/golden/catalog.rs"]
mod catalog;

/// The catalog the shipped flows are written against (as `tests/golden.rs`).
pub fn shipped_catalog() -> &'static Catalog {
    static C: OnceLock<Catalog> = OnceLock::new();
    C.get_or_init(catalog::catalog)
}

fn shipped_flow(name: &str) -> Arc<Flow> {
    static SSPR: OnceLock<Arc<Flow>> = OnceLock::new();
    static ECHO: OnceLock<Arc<Flow>> = OnceLock::new();
    let cell = if name == "echo" { &ECHO } else { &SSPR };
    cell.get_or_init(|| {
        // The main crate's root, whether compiled into the fuzz crate or the tests.
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let root = if root.join("flows").is_dir() {
            root.to_path_buf()
        } else {
            root.join("..")
        };
        let path = root.join("flows").join(format!("{name}.yaml"));
        Arc::new(sspr_ivr::files::load_flow(&path).unwrap_or_else(|e| panic!("{e}")))
    })
    .clone()
}

/// `flow_yaml`: flow text → parser → validator (against the shipped catalog) →
/// graph printers; a flow the validator passes is also run with a fixed caller.
pub fn flow_yaml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("fuzz.yaml");
    let Ok(flow) = flow::model::parse(text, path) else {
        return;
    };
    let diags = flow::validate(&flow, path, shipped_catalog());
    for d in &diags {
        let _ = d.to_string();
    }
    let _ = flow::to_dot(&flow);
    let _ = flow::to_mermaid(&flow);
    if diags.is_empty() {
        let ops = [
            FlowOp::Digit(1),
            FlowOp::PlayFinished,
            FlowOp::Digit(11),
            FlowOp::ActionResult {
                outcome: 0,
                outputs: 0xff,
            },
            FlowOp::AdvanceToDeadline,
            FlowOp::PlayFinished,
            FlowOp::TransferResult(false),
            FlowOp::AdvanceToDeadline,
            FlowOp::Advance(60_000),
        ];
        let _ = run_flow(Arc::new(flow), Vars::new(), &ops, false);
    }
}

/// One caller/runtime input to the interpreter.
#[derive(Arbitrary, Clone, Debug)]
pub enum FlowOp {
    /// A key: index into `0123456789*#ABCD`.
    Digit(u8),
    /// The last `Play` finished.
    PlayFinished,
    /// A play id `n` before the last one finished (stale or bogus ids).
    PlayFinishedStale(u8),
    /// The running action answers: outcome index into its outcome set (one past the
    /// end is an outcome the flow does not know); `outputs` bits choose outputs.
    ActionResult {
        outcome: u8,
        outputs: u8,
    },
    /// An action result for an id nobody asked for.
    ActionResultStale(u8),
    TransferResult(bool),
    Hangup,
    /// Jump to the next deadline and fire it.
    AdvanceToDeadline,
    /// Let this many milliseconds pass, firing deadlines when due.
    Advance(u16),
    /// A spurious wake-up: `handle_timeout(now)` with nothing due.
    SpuriousTimeout,
}

#[derive(Arbitrary, Clone, Debug)]
pub struct FlowRunInput {
    pub echo: bool,
    pub enumeration_safe: bool,
    pub ops: Vec<FlowOp>,
}

/// `flow_run`: the interpreter over `flows/sspr.yaml` or `flows/echo.yaml` with a
/// random caller and random backends.
pub fn flow_run(input: &FlowRunInput) {
    flow_run_report(input);
}

/// What one `flow_run` went through (so tests can check that seeds reach deep).
#[derive(Clone, Debug, Default)]
pub struct FlowReport {
    pub states: Vec<String>,
    pub audits: Vec<(String, String)>,
    pub secure_segments: u32,
    pub transfers: Vec<String>,
    /// Secret values checked against the logged commands.
    pub secrets_checked: usize,
}

/// [`flow_run`], returning what happened.
pub fn flow_run_report(input: &FlowRunInput) -> FlowReport {
    let flow = shipped_flow(if input.echo { "echo" } else { "sspr" });
    let mut vars = Vars::new();
    vars.set_plain("ani", "+15551234567");
    vars.set_plain("dnis", "sspr");
    vars.set_plain("call_id", "fuzz-call");
    vars.set_plain(
        "enumeration_safe",
        if input.enumeration_safe {
            "true"
        } else {
            "false"
        },
    );
    run_flow(flow, vars, &input.ops, true)
}

struct FlowRun {
    flow: Arc<Flow>,
    it: Interpreter,
    now: Instant,
    /// Secure state as told by the command stream.
    secure: bool,
    last_play: Option<u64>,
    action: Option<(u64, String)>,
    audits_in_attempt: u32,
    check_audits: bool,
    finished_seen: bool,
    report: FlowReport,
    /// Debug text of every logged command so far.
    log: Vec<String>,
    secrets: Vec<String>,
}

impl FlowRun {
    fn drain(&mut self) {
        let was_finished = self.finished_seen;
        while let Some(c) = self.it.poll_command() {
            assert!(!was_finished, "command after the call finished: {c:?}");
            // Everything but audio and actions is logged by the runtime.
            if !matches!(c, Command::Play { .. } | Command::StopPlayback) {
                let line = format!("{c:?}");
                self.check_secrets_absent(&line);
                self.log.push(line);
            }
            match c {
                Command::Secure(on) => {
                    assert_ne!(on, self.secure, "redundant Secure({on})");
                    self.secure = on;
                    self.report.secure_segments += u32::from(on);
                }
                Command::Timeline(TimelineEvent::DigitsCollected { var, shown }) => {
                    if self.secure {
                        assert!(
                            !shown.chars().any(|c| c.is_ascii_digit()),
                            "digits of `{var}` shown in a secure segment"
                        );
                    }
                }
                Command::Timeline(TimelineEvent::StateEntered { state, secure }) => {
                    assert_eq!(secure, self.secure, "state `{state}` entered out of step");
                    let begins = self
                        .flow
                        .states
                        .get(&state)
                        .is_some_and(|s| s.attempt == Some(AttemptMark::Begin));
                    if begins {
                        self.audits_in_attempt = 0;
                    }
                    self.report.states.push(state);
                }
                Command::Timeline(_) => {}
                Command::Audit { result, reason } => {
                    self.audits_in_attempt += 1;
                    self.report.audits.push((result.clone(), reason.clone()));
                    if self.check_audits {
                        assert!(
                            self.audits_in_attempt <= 1,
                            "second audit ({result}/{reason}) in one reset attempt"
                        );
                    }
                }
                Command::Play { id, items, .. } => {
                    assert!(!items.is_empty(), "empty Play");
                    self.last_play = Some(id);
                }
                Command::StopPlayback | Command::KeyGuard(_) => {}
                Command::RunAction { id, action, vars } => {
                    if !self.secure {
                        assert!(
                            vars.iter().all(|(_, v)| !v.is_secret()),
                            "action `{action}` outside a secure state got a secret"
                        );
                    }
                    self.action = Some((id, action));
                }
                Command::Transfer { target, .. } => {
                    assert!(!self.secure, "transfer while secure");
                    self.report.transfers.push(target);
                }
                Command::Hangup => {
                    assert!(!self.secure, "hangup while secure");
                    self.finished_seen = true;
                }
            }
        }
        self.learn_secrets();
        assert_eq!(self.it.is_secure(), self.secure, "is_secure() out of step");
        if self.finished_seen {
            assert!(
                self.it.is_finished(),
                "Hangup sent but interpreter not finished"
            );
        }
        if self.it.is_finished() {
            self.finished_seen = true;
            assert!(!self.secure, "finished inside a secure segment");
            assert_eq!(self.it.poll_timeout(), None, "finished but wants a wake-up");
        }
        assert_deadline("interpreter", self.it.poll_timeout(), self.now);
    }

    /// Secret values (PIN, OTP) the interpreter holds that cannot be told apart from
    /// plain data (at least 6 characters, not inside any plain variable): once one
    /// is known, no logged command may contain it, before or after.
    fn learn_secrets(&mut self) {
        let plain: Vec<&str> = self
            .it
            .vars()
            .iter()
            .filter_map(|(_, v)| v.as_plain())
            .collect();
        let mut new = Vec::new();
        for (_, v) in self.it.vars().iter() {
            if let Value::Secret(s) = v {
                let s = s.expose();
                if s.len() >= 6
                    && !plain.iter().any(|p| p.contains(s))
                    && !self.secrets.iter().any(|k| k == s)
                {
                    new.push(s.to_string());
                }
            }
        }
        for s in new {
            for line in &self.log {
                assert!(
                    !line.contains(&s),
                    "a secret the caller typed appears in a logged command: {line}"
                );
            }
            self.secrets.push(s);
        }
    }

    fn check_secrets_absent(&self, line: &str) {
        for s in &self.secrets {
            assert!(
                !line.contains(s.as_str()),
                "a secret the caller typed appears in a logged command: {line}"
            );
        }
    }

    fn fire_until(&mut self, to: Instant) {
        for _ in 0..MAX_TIMER_STEPS {
            match self.it.poll_timeout() {
                Some(d) if d <= to => {
                    self.now = self.now.max(d);
                    self.it.handle_timeout(self.now);
                    self.drain();
                }
                _ => {
                    self.now = to;
                    return;
                }
            }
        }
        panic!("interpreter deadlines never settle");
    }

    fn op(&mut self, op: &FlowOp) {
        match op {
            FlowOp::Digit(k) => {
                let d = char::from(KEYS[usize::from(k % 16)]);
                self.it.handle_digit(self.now, d);
            }
            FlowOp::PlayFinished => {
                if let Some(id) = self.last_play {
                    self.it.handle_play_finished(self.now, id);
                }
            }
            FlowOp::PlayFinishedStale(n) => {
                let id = self.last_play.unwrap_or(0).wrapping_sub(u64::from(*n) + 1);
                self.it.handle_play_finished(self.now, id);
            }
            FlowOp::ActionResult { outcome, outputs } => {
                let Some((id, name)) = self.action.take() else {
                    return;
                };
                let info = shipped_catalog().actions.get(&name);
                let outcomes = info.map(|i| i.outcomes.clone()).unwrap_or_default();
                let idx = usize::from(*outcome) % (outcomes.len() + 1);
                let outcome = outcomes.get(idx).map_or("no_such_outcome", String::as_str);
                let mut vars = Vars::new();
                if let Some(info) = info {
                    for (i, name) in info.outputs.iter().enumerate() {
                        if outputs & (1 << (i % 8)) != 0 {
                            vars.set_plain(name.clone(), output_value(name, *outputs));
                        }
                    }
                }
                self.it.handle_action_result(self.now, id, outcome, vars);
            }
            FlowOp::ActionResultStale(n) => {
                let id = self
                    .action
                    .as_ref()
                    .map_or(0, |(id, _)| *id)
                    .wrapping_add(u64::from(*n) + 1);
                self.it
                    .handle_action_result(self.now, id, "success", Vars::new());
            }
            FlowOp::TransferResult(accepted) => {
                self.it.handle_transfer_result(self.now, *accepted);
            }
            FlowOp::Hangup => self.it.handle_hangup(self.now),
            FlowOp::AdvanceToDeadline => {
                if let Some(d) = self.it.poll_timeout() {
                    self.fire_until(d);
                }
            }
            FlowOp::Advance(ms) => {
                let to = self.now + Duration::from_millis(u64::from(*ms));
                self.fire_until(to);
            }
            FlowOp::SpuriousTimeout => self.it.handle_timeout(self.now),
        }
        self.drain();
    }
}

fn output_value(name: &str, bits: u8) -> String {
    match name {
        "mobile" => "+15557654321".into(),
        "email" => "j.doe@example.com".into(),
        "factor" if bits & 0x80 != 0 => "email".into(),
        "factor" => "sms".into(),
        "status" if bits & 0x40 != 0 => "LOCKED_OUT".into(),
        "status" => "ACTIVE".into(),
        _ => "00u1fuzz".into(),
    }
}

/// Drive one call through `flow` with `ops`, checking the invariants after every
/// input, then hang up and check the call ended cleanly.
fn run_flow(flow: Arc<Flow>, vars: Vars, ops: &[FlowOp], check_audits: bool) -> FlowReport {
    let now = t0();
    let it = Interpreter::new(now, flow.clone(), vars);
    let mut run = FlowRun {
        flow,
        it,
        now,
        secure: false,
        last_play: None,
        action: None,
        audits_in_attempt: 0,
        check_audits,
        finished_seen: false,
        report: FlowReport::default(),
        log: Vec::new(),
        secrets: Vec::new(),
    };
    run.drain();
    for op in ops.iter().take(1024) {
        run.op(op);
    }
    // The caller hangs up (or already has): the call must end outside the secure
    // segment, and nothing may follow.
    let finished_before = run.finished_seen;
    run.it.handle_hangup(run.now);
    if finished_before {
        assert!(
            run.it.poll_command().is_none(),
            "hangup after the call finished produced commands"
        );
    }
    run.drain();
    assert!(
        run.it.is_finished(),
        "not finished after the caller hung up"
    );
    assert!(!run.secure, "call ended inside a secure segment");
    run.report.secrets_checked = run.secrets.len();
    run.report
}
