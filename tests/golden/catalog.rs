//! The catalog the shipped flows are written against (shared by the golden
//! runner and the flow tests via `#[path]`): the prompt set under
//! `prompts/en/`, the four SSPR actions with their fixed outcome sets, and the
//! two transfer targets.

use std::collections::{BTreeMap, BTreeSet};

use sspr_ivr::flow::{ActionInfo, Catalog};

pub const PROMPTS: &[&str] = &[
    "welcome",
    "enter_employee_id",
    "please_wait",
    "code_sent_to_number",
    "code_sent_to_email",
    "code_sent_if_registered",
    "hold_music",
    "received_code_menu",
    "code_resent",
    "resend_limit",
    "enter_code",
    "code_incorrect",
    "code_expired",
    "too_many_attempts",
    "enter_new_pin",
    "confirm_new_pin",
    "pin_mismatch",
    "pin_too_simple",
    "pin_reused",
    "pin_reset_success",
    "account_locked",
    "transfer_agent",
    "backend_trouble",
    "helpdesk_number",
    "unknown_id",
    "rate_limited",
    "reset_unavailable",
    "invalid_employee_id",
    "thank_you",
    "line_not_secure",
    "goodbye",
    "no_input",
    "invalid_entry",
    "echo_intro",
    "you_entered",
];

fn action(outcomes: &[&str], secure: bool, inputs: &[&str], outputs: &[&str]) -> ActionInfo {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect();
    ActionInfo {
        outcomes: s(outcomes),
        secure,
        inputs: s(inputs),
        outputs: s(outputs),
    }
}

pub fn catalog() -> Catalog {
    let mut prompts: BTreeSet<String> = PROMPTS.iter().map(|p| p.to_string()).collect();
    prompts.extend((0..10).map(|d| format!("digit_{d}")));
    let mut actions = BTreeMap::new();
    actions.insert(
        "lookup_user".to_string(),
        action(
            &[
                "success",
                "not_found",
                "locked",
                "rate_limited",
                "timeout",
                "error",
            ],
            false,
            &["employee_id"],
            &["user_id", "mobile", "email", "factor", "status"],
        ),
    );
    actions.insert(
        "send_otp".to_string(),
        action(
            &["success", "rate_limited", "timeout", "error"],
            false,
            &["user_id", "mobile", "email", "factor"],
            &[],
        ),
    );
    actions.insert(
        "verify_otp".to_string(),
        action(
            &[
                "success",
                "invalid",
                "expired",
                "rate_limited",
                "timeout",
                "error",
            ],
            true,
            &["user_id", "otp"],
            &[],
        ),
    );
    actions.insert(
        "reset_pin".to_string(),
        action(
            &[
                "success",
                "too_simple",
                "reused",
                "locked",
                "timeout",
                "error",
                // Given by the runtime, not the backend (config::runtime_outcomes).
                "audit_unavailable",
            ],
            true,
            &["user_id", "new_pin"],
            &[],
        ),
    );
    Catalog {
        prompts,
        actions,
        transfer_targets: ["agent", "account_recovery"]
            .iter()
            .map(|t| t.to_string())
            .collect(),
    }
}
