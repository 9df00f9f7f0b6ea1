//! (placeholder: filled in by the actions work)
