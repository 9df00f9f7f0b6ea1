//! sspr-ivr: a standalone SIP IVR server with a self-service password reset
//! flow. Protocol and flow logic are sans-IO state machines (`sip`, `media`,
//! `flow`, `call`), driven by a thin tokio layer (`runtime`). See the README
//! and `docs/` for the architecture.
pub mod actions;
pub mod admission;
pub mod audit;
pub mod call;
pub mod caller;
pub mod cli;
pub mod codec;
pub mod config;
pub mod demo;
pub mod duration;
pub mod files;
pub mod findings;
pub mod flow;
pub mod media;
pub mod ops;
pub mod runtime;
pub mod secret;
pub mod sip;
pub mod template;
pub mod vars;
pub mod yaml_path;
