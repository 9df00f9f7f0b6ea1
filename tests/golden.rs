//! Golden transcripts: every folder under `tests/golden/<case>/` holds a
//! `script.yaml` (what the caller types and when, how each action and
//! transfer answers, when the caller hangs up) and an `expected.txt` (the
//! time-stamped transcript: prompts played, actions called with their
//! non-secret inputs, secure on/off, audits, transfers, hangup). The runner
//! drives the real `Interpreter` over the shipped flows in virtual time.
//!
//! Regenerate on purpose only: `UPDATE_GOLDEN=1 cargo test --test golden`,
//! then review the diff. Besides the comparison, every case asserts that no
//! digit string the script marks `secret: true` appears in the transcript,
//! that deadlines are never in the past, and that the call ends outside the
//! secure segment.

#[path = "golden/catalog.rs"]
mod catalog;

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use sspr_ivr::duration;
use sspr_ivr::files::load_flow as load;
use sspr_ivr::flow::{Catalog, Command, Interpreter, Say, TimelineEvent};
use sspr_ivr::vars::{Value, Vars};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Script {
    /// `sspr` or `echo` (a file under `flows/`).
    flow: String,
    #[serde(default)]
    description: String,
    /// Presets (config flow variables), besides ani/dnis/call_id.
    #[serde(default)]
    vars: BTreeMap<String, String>,
    #[serde(default)]
    steps: Vec<Step>,
    /// Replies per action name, consumed in order.
    #[serde(default)]
    actions: BTreeMap<String, Vec<Reply>>,
    /// `accept` or `refuse`, consumed in order.
    #[serde(default)]
    transfers: Vec<String>,
}

/// One caller step, armed once the previous one has fired.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Step {
    /// Absolute time since the call started.
    #[serde(default)]
    at: Option<String>,
    /// Fire `delay` after the next Play containing this prompt starts.
    #[serde(default)]
    on_prompt: Option<String>,
    /// Fire this long after the previous step.
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    delay: Option<String>,
    #[serde(default)]
    digits: Option<String>,
    /// Gap between keys (default 250ms).
    #[serde(default)]
    gap: Option<String>,
    /// These digits are a PIN/OTP: they must never appear in the transcript.
    #[serde(default)]
    secret: bool,
    #[serde(default)]
    hangup: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reply {
    outcome: String,
    #[serde(default = "default_latency")]
    latency: String,
    #[serde(default)]
    outputs: BTreeMap<String, String>,
}

fn default_latency() -> String {
    "300ms".into()
}

fn dur(s: &str) -> Duration {
    duration::parse(s).unwrap_or_else(|e| panic!("{e}"))
}

/// How long the runner pretends each prompt lasts.
fn prompt_len(name: &str) -> Duration {
    if name.starts_with("digit_") {
        Duration::from_millis(400)
    } else if name == "hold_music" {
        Duration::from_secs(4)
    } else {
        Duration::from_secs(2)
    }
}

enum Due {
    Key(char),
    CallerHangup,
    PlayEnd(u64),
    ActionResult(u64, String, Vars),
    TransferResult(bool),
}

struct Sim {
    t0: Instant,
    now: Instant,
    out: String,
    /// Timed inputs, kept sorted by (time, insertion).
    due: Vec<(Instant, u64, Due)>,
    seq: u64,
    playing: Option<u64>,
    replies: BTreeMap<String, VecDeque<Reply>>,
    transfers: VecDeque<String>,
    catalog: Catalog,
    /// Prompts that started since the armed step was armed.
    started: Vec<(Instant, String)>,
}

impl Sim {
    fn at(&self, t: Instant) -> String {
        let d = t.duration_since(self.t0);
        format!("[{:>4}.{:03}]", d.as_secs(), d.subsec_millis())
    }

    fn log(&mut self, line: &str) {
        let stamp = self.at(self.now);
        let _ = writeln!(self.out, "{stamp} {line}");
    }

    fn schedule(&mut self, t: Instant, d: Due) {
        self.seq += 1;
        self.due.push((t, self.seq, d));
        self.due.sort_by_key(|(t, s, _)| (*t, *s));
    }

    fn drain(&mut self, it: &mut Interpreter) {
        let commands: Vec<Command> = std::iter::from_fn(|| it.poll_command()).collect();
        self.log_commands(commands);
    }

    fn log_commands(&mut self, commands: Vec<Command>) {
        for c in commands {
            match c {
                Command::Play {
                    id,
                    items,
                    barge_in,
                } => {
                    let mut total = Duration::ZERO;
                    let mut names = Vec::new();
                    for i in &items {
                        match (i, i.prompt_name()) {
                            (Say::Silence(d), _) => {
                                total += *d;
                                names.push(format!("<silence {}ms>", d.as_millis()));
                            }
                            (_, Some(p)) => {
                                self.started.push((self.now + total, p.clone()));
                                total += prompt_len(&p);
                                names.push(p);
                            }
                            (_, None) => {}
                        }
                    }
                    let flag = if barge_in { " (barge-in)" } else { "" };
                    self.log(&format!("PLAY {}{flag}", names.join(" ")));
                    self.playing = Some(id);
                    self.schedule(self.now + total, Due::PlayEnd(id));
                }
                Command::StopPlayback => {
                    if self.playing.take().is_some() {
                        self.log("STOP");
                    }
                }
                Command::RunAction { id, action, vars } => {
                    let inputs = self
                        .catalog
                        .actions
                        .get(&action)
                        .map(|a| a.inputs.clone())
                        .unwrap_or_default();
                    let shown: Vec<String> = inputs
                        .iter()
                        .map(|i| match vars.get(i) {
                            // Phone numbers: only the last four digits, as everywhere.
                            Some(Value::Plain(p)) if p.starts_with('+') => {
                                format!("{i}=...{}", sspr_ivr::template::last4_of(p))
                            }
                            Some(Value::Plain(p)) => format!("{i}={p}"),
                            Some(Value::Secret(_)) => format!("{i}=***"),
                            None => format!("{i}=-"),
                        })
                        .collect();
                    self.log(&format!("ACTION {action} {}", shown.join(" ")));
                    let reply = self
                        .replies
                        .get_mut(&action)
                        .and_then(VecDeque::pop_front)
                        .unwrap_or_else(|| {
                            panic!("script has no (more) replies for action `{action}`")
                        });
                    let mut outputs = Vars::new();
                    for (k, v) in &reply.outputs {
                        outputs.set_plain(k.clone(), v.clone());
                    }
                    let t = self.now + dur(&reply.latency);
                    self.schedule(t, Due::ActionResult(id, reply.outcome.clone(), outputs));
                }
                Command::Transfer { target, reason } => {
                    self.log(&format!("TRANSFER {target} reason={reason}"));
                    let reply = self
                        .transfers
                        .pop_front()
                        .unwrap_or_else(|| panic!("script has no transfer reply"));
                    let accepted = match reply.as_str() {
                        "accept" => true,
                        "refuse" => false,
                        other => panic!("transfer reply `{other}`: accept or refuse"),
                    };
                    self.schedule(
                        self.now + Duration::from_millis(200),
                        Due::TransferResult(accepted),
                    );
                }
                Command::Hangup => self.log("HANGUP"),
                Command::Audit { result, reason } => {
                    self.log(&format!("AUDIT result={result} reason={reason}"))
                }
                Command::Secure(on) => self.log(if on { "SECURE on" } else { "SECURE off" }),
                Command::KeyGuard(on) => {
                    self.log(if on { "KEY GUARD on" } else { "KEY GUARD off" })
                }
                Command::Timeline(ev) => match ev {
                    TimelineEvent::StateEntered { state, .. } => {
                        self.log(&format!("  state {state}"))
                    }
                    TimelineEvent::DigitsCollected { var, shown } => {
                        self.log(&format!("  collected {var}={shown}"))
                    }
                    TimelineEvent::NoInput { state, attempt } => {
                        self.log(&format!("  no-input {state} #{attempt}"))
                    }
                    TimelineEvent::NoMatch { state, attempt } => {
                        self.log(&format!("  no-match {state} #{attempt}"))
                    }
                    TimelineEvent::Mismatch { state, attempt } => {
                        self.log(&format!("  mismatch {state} #{attempt}"))
                    }
                    TimelineEvent::CounterExceeded { counter, state } => {
                        self.log(&format!("  counter {counter} exceeded at {state}"))
                    }
                    TimelineEvent::Escape { from } => self.log(&format!("  escape from {from}")),
                    TimelineEvent::EntryRestarted { state } => {
                        self.log(&format!("  restart {state}"))
                    }
                    TimelineEvent::ActionFinished {
                        action,
                        outcome,
                        latency,
                    } => self.log(&format!(
                        "  {action} -> {outcome} ({} ms)",
                        latency.as_millis()
                    )),
                    TimelineEvent::TransferResult { accepted } => self.log(if accepted {
                        "  transfer accepted"
                    } else {
                        "  transfer refused"
                    }),
                    TimelineEvent::FlowError { state, message } => {
                        self.log(&format!("  FLOW ERROR at {state}: {message}"))
                    }
                    TimelineEvent::MediaNotSecure { state } => {
                        self.log(&format!("  media not secure for {state}"))
                    }
                    TimelineEvent::PromptPlayed { .. }
                    | TimelineEvent::ActionStarted { .. }
                    | TimelineEvent::TransferRequested { .. }
                    | TimelineEvent::Hangup { .. } => {}
                },
            }
        }
    }
}

fn run_case(dir: &Path) -> (String, Vec<String>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script: Script = serde_yaml::from_str(
        &std::fs::read_to_string(dir.join("script.yaml")).expect("script.yaml"),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let flow = Arc::new(
        load(&root.join(format!("flows/{}.yaml", script.flow))).unwrap_or_else(|e| panic!("{e}")),
    );
    let secrets: Vec<String> = script
        .steps
        .iter()
        .filter(|s| s.secret)
        .filter_map(|s| s.digits.as_ref().map(|d| d.replace('#', "")))
        .collect();
    let mut vars = Vars::new();
    vars.set_plain("ani", "+15550100123");
    vars.set_plain("dnis", "reset");
    vars.set_plain("call_id", "golden-call");
    for (k, v) in &script.vars {
        vars.set_plain(k.clone(), v.clone());
    }
    let t0 = Instant::now();
    let mut sim = Sim {
        t0,
        now: t0,
        out: String::new(),
        due: Vec::new(),
        seq: 0,
        playing: None,
        replies: script
            .actions
            .into_iter()
            .map(|(k, v)| (k, v.into()))
            .collect(),
        transfers: script.transfers.into(),
        catalog: catalog::catalog(),
        started: Vec::new(),
    };
    if !script.description.is_empty() {
        let _ = writeln!(sim.out, "# {}", script.description.trim());
    }
    let mut it = Interpreter::new(t0, flow, vars);
    sim.drain(&mut it);
    let mut steps: VecDeque<Step> = script.steps.into();
    let mut armed_at = t0;
    let limit = t0 + Duration::from_secs(1800);
    while !it.is_finished() {
        // Arm the next caller step when its time is known.
        if let Some(step) = steps.front() {
            let delay = step.delay.as_deref().map(dur).unwrap_or_default();
            let when = if let Some(a) = &step.at {
                Some(t0 + dur(a))
            } else if let Some(a) = &step.after {
                Some(armed_at + dur(a))
            } else if let Some(p) = &step.on_prompt {
                sim.started
                    .iter()
                    .find(|(t, n)| n == p && *t >= armed_at)
                    .map(|(t, _)| *t + delay)
            } else {
                panic!("a step needs `at`, `after` or `on_prompt`");
            };
            if let Some(when) = when {
                let step = steps.pop_front().expect("front");
                let when = when.max(sim.now);
                if let Some(d) = &step.digits {
                    let gap = step
                        .gap
                        .as_deref()
                        .map(dur)
                        .unwrap_or(Duration::from_millis(250));
                    for (i, k) in d.chars().enumerate() {
                        sim.schedule(when + gap * i as u32, Due::Key(k));
                    }
                    armed_at = when + gap * d.chars().count().saturating_sub(1) as u32;
                } else {
                    armed_at = when;
                }
                if step.hangup {
                    sim.schedule(when, Due::CallerHangup);
                }
                sim.started.retain(|(t, _)| *t >= armed_at);
                continue;
            }
        }
        let timer = it.poll_timeout();
        if let Some(t) = timer {
            assert!(t >= sim.now, "deadline in the past");
        }
        let next_due = sim.due.first().map(|(t, _, _)| *t);
        let next = match (timer, next_due) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) => a,
            (None, Some(b)) => b,
            (None, None) => panic!("{}: the call is stuck waiting for nothing", dir.display()),
        };
        assert!(
            next <= limit,
            "{}: virtual time ran past 30 minutes",
            dir.display()
        );
        sim.now = next;
        if next_due == Some(next) {
            let (_, _, d) = sim.due.remove(0);
            match d {
                Due::Key(k) => {
                    // A digit is hidden when it lands in the secure segment or
                    // is guarded as a possible secret (before or after it).
                    let hidden_before = it.is_secure() || it.is_guarding_keys();
                    it.handle_digit(sim.now, k);
                    let commands: Vec<Command> = std::iter::from_fn(|| it.poll_command()).collect();
                    let hidden = hidden_before
                        || it.is_secure()
                        || it.is_guarding_keys()
                        || commands
                            .iter()
                            .any(|c| matches!(c, Command::Secure(true) | Command::KeyGuard(true)));
                    // `#` and `*` end or restart an entry and are never part
                    // of a value: shown, so the keypad rows stay readable.
                    if hidden && k.is_ascii_digit() {
                        sim.log("caller presses (hidden)");
                    } else {
                        sim.log(&format!("caller presses {k}"));
                    }
                    sim.log_commands(commands);
                }
                Due::CallerHangup => {
                    sim.log("caller hangs up");
                    it.handle_hangup(sim.now);
                }
                Due::PlayEnd(id) => {
                    if sim.playing == Some(id) {
                        sim.playing = None;
                        it.handle_play_finished(sim.now, id);
                    }
                }
                Due::ActionResult(id, outcome, outputs) => {
                    it.handle_action_result(sim.now, id, &outcome, outputs)
                }
                Due::TransferResult(ok) => it.handle_transfer_result(sim.now, ok),
            }
        } else {
            it.handle_timeout(sim.now);
        }
        sim.drain(&mut it);
    }
    assert!(
        it.poll_timeout().is_none(),
        "finished interpreter still wants a timer"
    );
    assert!(
        !it.is_secure(),
        "{}: call ended inside the secure segment",
        dir.display()
    );
    assert!(
        steps.is_empty(),
        "{}: {} caller steps never fired",
        dir.display(),
        steps.len()
    );
    (sim.out, secrets)
}

fn cases() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/golden")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("script.yaml").is_file())
        .collect();
    v.sort();
    v
}

#[test]
fn golden_transcripts() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let cases = cases();
    assert!(
        cases.len() >= 12,
        "expected at least 12 golden cases, found {}",
        cases.len()
    );
    let mut failures = Vec::new();
    for dir in cases {
        let (transcript, secrets) = run_case(&dir);
        if std::env::var_os("GOLDEN_DEBUG").is_some() {
            eprintln!("==== {}\n{transcript}", dir.display());
        }
        for s in &secrets {
            assert!(!s.is_empty());
            assert!(
                !transcript.contains(s.as_str()),
                "{}: secret digits appear in the transcript",
                dir.display()
            );
        }
        let expected_path = dir.join("expected.txt");
        if update {
            std::fs::write(&expected_path, &transcript).expect("write expected.txt");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if expected != transcript {
            failures.push(format!(
                "{}: transcript differs (UPDATE_GOLDEN=1 to regenerate, then review)\n--- expected\n{expected}\n--- actual\n{transcript}",
                dir.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
