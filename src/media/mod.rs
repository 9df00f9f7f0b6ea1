//! (placeholder: filled in by the media work)
