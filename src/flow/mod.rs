//! (placeholder: filled in by the flow work)
