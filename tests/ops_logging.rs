//! Logging from an integration test's point of view: `Capture` sees every level with the call
//! span, and secrets stay masked.

use sspr_ivr::ops::logging::{self, Capture};
use sspr_ivr::secret::Secret;
use tracing::Instrument;

#[tokio::test]
async fn call_task_lines_carry_call_id_and_never_the_pin() {
    for capture in [Capture::new(), Capture::json()] {
        let _guard = capture.set_default();
        let pin = Secret::new("918273");
        let task = async move {
            tracing::trace!(digits = ?pin, len = pin.len(), "pin collected");
            tracing::debug!(pin = %pin, "calling reset_pin");
            tracing::info!("reset done");
        }
        .instrument(logging::call_span("c0ffee@10.0.0.1"));
        // current-thread runtime: the spawned task runs on this thread, under the capture.
        tokio::spawn(task).await.expect("task");

        let lines = capture.lines();
        let event_lines: Vec<_> = lines
            .iter()
            .filter(|l| {
                l.contains("pin collected") || l.contains("reset_pin") || l.contains("reset done")
            })
            .collect();
        assert_eq!(event_lines.len(), 3, "{lines:#?}");
        for line in event_lines {
            assert!(line.contains("c0ffee@10.0.0.1"), "{line}");
        }
        capture.assert_never_logged("918273");
    }
}
