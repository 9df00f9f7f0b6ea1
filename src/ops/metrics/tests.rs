//! Tests across every area: the documented table, the exported names and labels, and that no
//! label value can come from the caller.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use super::*;

/// Parses `name{labels} value` sample lines into (name, labels) pairs.
fn samples(text: &str) -> Vec<(String, Vec<(String, String)>)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|line| {
            let head = line.rsplit_once(' ').map(|(h, _)| h).unwrap_or(line);
            match head.split_once('{') {
                Some((name, rest)) => {
                    let body = rest.trim_end_matches('}');
                    let labels = body
                        .split(',')
                        .filter(|kv| !kv.is_empty())
                        .filter_map(|kv| kv.split_once('='))
                        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
                        .collect();
                    (name.to_string(), labels)
                }
                None => (head.to_string(), Vec::new()),
            }
        })
        .collect()
}

fn exercise_everything(m: &Arc<Metrics>) {
    m.set_action_catalog([("lookup_user", ["found", "not_found"])]);
    let _g = m.call_started();
    for o in CallEnd::ALL {
        m.call_finished(*o);
    }
    for r in RejectReason::ALL {
        m.call_rejected(*r, 503);
    }
    m.call_panicked();
    for r in ResetResult::ALL {
        m.reset_finished(*r);
    }
    for r in OtpSendResult::ALL {
        m.otp_sent(*r);
    }
    for r in OtpVerifyResult::ALL {
        m.otp_verified(*r);
    }
    for t in DIGIT_SOURCES {
        m.dtmf_digit(t);
    }
    for meth in SipMethod::ALL {
        m.sip_requests_received(*meth, 1);
    }
    m.sip_responses_sent(200, 1);
    m.sip_parse_errors(1);
    m.sip_garbage_dropped(1);
    m.sip_retransmissions(1);
    m.sip_transactions_shed(1);
    for c in RtpCounter::ALL {
        m.rtp_add(*c, 1);
    }
    for r in RtpRejectReason::ALL {
        m.rtp_rejected(*r, 1);
    }
    let _open = m.tcp_opened();
    std::mem::forget(_open);
    for r in TcpCloseReason::ALL {
        m.tcp_closed(*r);
    }
    for r in AdminCloseReason::ALL {
        m.admin_closed(*r);
    }
    m.action_observed("lookup_user", "found", Duration::from_millis(40));
    m.audit_backlog(3);
    m.audit_delivered();
    m.audit_delivery_failed();
    m.audit_dead_lettered();
    m.audit_spool_state(false, 2);
    m.audit_spool_write_failed();
    m.reset_refused_audit_unavailable();
    m.config_reloaded(ReloadResult::Ok);
    m.registration_up("trunk1", true);
    for r in RegistrationResult::ALL {
        m.registration_attempt("trunk1", *r);
    }
    for a in UntrustedAnswer::ALL {
        m.untrusted_requests(*a, 1);
    }
}

#[test]
fn every_documented_metric_is_exposed_with_its_type_and_help() {
    let m = Arc::new(Metrics::new());
    exercise_everything(&m);
    let text = m.encode();
    assert!(text.ends_with("# EOF\n"), "{text}");
    for MetricDoc { name, kind, help } in families() {
        // Counters are described without the `_total` suffix in OpenMetrics.
        let family = name.strip_suffix("_total").unwrap_or(name);
        assert!(
            text.contains(&format!("# TYPE {family} {kind}\n")),
            "missing TYPE for {name}:\n{text}"
        );
        assert!(
            text.contains(&format!("# HELP {family} {help}.\n")),
            "missing HELP for {name}"
        );
        let sample = if *kind == "histogram" {
            format!("{name}_count")
        } else {
            name.to_string()
        };
        assert!(
            samples(&text).iter().any(|(n, _)| *n == sample),
            "no sample for {name}"
        );
    }
    // Nothing exposed that is not documented, and nothing documented twice.
    let documented: BTreeSet<&str> = families().map(|d| d.name).collect();
    assert_eq!(
        documented.len(),
        families().count(),
        "a family listed twice"
    );
    for (name, _) in samples(&text) {
        let base = ["_bucket", "_count", "_sum", "_created"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(&name);
        assert!(
            documented.contains(name.as_str()) || documented.contains(base),
            "undocumented metric {name}"
        );
        assert!(name.starts_with("sspr_ivr_"), "{name}");
    }
}

#[test]
fn expected_names_and_labels() {
    let m = Arc::new(Metrics::new());
    m.set_action_catalog([("lookup_user", vec!["found".to_string()])]);
    m.call_finished(CallEnd::CallerHangup);
    m.call_finished(CallEnd::CallerHangup);
    m.call_rejected(RejectReason::Draining, 503);
    m.reset_finished(ResetResult::MismatchExhausted);
    m.dtmf_digit(crate::media::DigitSource::Rfc4733);
    m.sip_requests_received(SipMethod::from_name("invite"), 2);
    m.sip_responses_sent(486, 1);
    m.sip_responses_sent(42, 1);
    m.action_observed("lookup_user", "found", Duration::from_millis(30));
    m.otp_verified(OtpVerifyResult::Invalid);
    m.config_reloaded(ReloadResult::Rejected);
    m.rtp_observed(RtpCounts {
        sent: 50,
        lost: 2,
        ..RtpCounts::default()
    });
    let text = m.encode();
    for expected in [
        "sspr_ivr_calls_finished_total{outcome=\"caller_hangup\"} 2\n",
        "sspr_ivr_call_setup_rejections_total{reason=\"draining\",status=\"503\"} 1\n",
        "sspr_ivr_resets_total{result=\"mismatch_exhausted\"} 1\n",
        "sspr_ivr_dtmf_digits_total{transport=\"rfc4733\"} 1\n",
        "sspr_ivr_sip_requests_received_total{method=\"INVITE\"} 2\n",
        "sspr_ivr_sip_responses_sent_total{code=\"486\"} 1\n",
        "sspr_ivr_sip_responses_sent_total{code=\"other\"} 1\n",
        "sspr_ivr_action_duration_seconds_bucket{le=\"0.05\",action=\"lookup_user\",outcome=\"found\"} 1\n",
        "sspr_ivr_action_duration_seconds_bucket{le=\"0.025\",action=\"lookup_user\",outcome=\"found\"} 0\n",
        "sspr_ivr_action_duration_seconds_count{action=\"lookup_user\",outcome=\"found\"} 1\n",
        "sspr_ivr_otp_verifications_total{result=\"invalid\"} 1\n",
        "sspr_ivr_config_reloads_total{result=\"rejected\"} 1\n",
        "sspr_ivr_rtp_packets_sent_total 50\n",
        "sspr_ivr_rtp_packets_lost_total 2\n",
        "sspr_ivr_build_info{version=\"",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
}

/// Every label value that can appear is one of the enums' fixed strings, a configured
/// action name/outcome, `other`, a version, a status code or a histogram bound — whatever
/// strings callers pass in.
#[test]
fn only_allowed_label_values_can_be_produced() {
    let m = Arc::new(Metrics::new());
    exercise_everything(&m);
    // Hostile inputs: caller-like data where strings are accepted.
    let ani = "+15551234567";
    let digits = "123456";
    let call_id = "a84b4c76e66710@pc33.example.com";
    for s in [ani, digits, call_id, "lookup_user\"} 1\n# EOF", "\u{0}"] {
        m.action_observed(s, "found", Duration::from_millis(1));
        m.action_observed("lookup_user", s, Duration::from_millis(1));
        m.sip_requests_received(SipMethod::from_name(s), 1);
        m.reset_finished(ResetResult::from_audit(s));
    }
    m.sip_responses_sent(u16::MAX, 1);
    m.call_rejected(RejectReason::Other, 0);

    let mut allowed: BTreeSet<String> = BTreeSet::new();
    macro_rules! allow {
        ($($t:ty),*) => {$(for v in <$t>::ALL { allowed.insert(v.as_str().to_string()); })*};
    }
    allow!(
        CallEnd,
        RejectReason,
        ResetResult,
        OtpSendResult,
        OtpVerifyResult,
        RtpRejectReason,
        TcpCloseReason,
        AdminCloseReason,
        SipMethod,
        ReloadResult,
        RegistrationResult,
        UntrustedAnswer
    );
    for v in [
        "trunk1",
        "lookup_user",
        "found",
        "not_found",
        "timeout",
        "error",
        OTHER,
    ] {
        allowed.insert(v.to_string());
    }
    for s in DIGIT_SOURCES {
        allowed.insert(media::digit_source_label(s).to_string());
    }
    allowed.insert(env!("CARGO_PKG_VERSION").to_string());
    for b in ACTION_BUCKETS {
        allowed.insert(format!("{b:?}"));
    }
    allowed.insert("+Inf".to_string());

    let text = m.encode();
    for secret in [ani, digits, call_id, "pc33"] {
        assert!(!text.contains(secret), "caller data in metrics: {secret}");
    }
    for (name, labels) in samples(&text) {
        for (key, value) in labels {
            let ok = allowed.contains(&value)
                || ((key == "status" || key == "code")
                    && value.parse::<u16>().is_ok_and(|c| (100..=699).contains(&c)));
            assert!(ok, "unexpected label {key}={value:?} on {name}");
        }
    }
    assert!(text.contains("action=\"other\",outcome=\"other\"} "));
    assert!(text.contains("action=\"lookup_user\",outcome=\"other\"} "));
}
