//! The tokio layer: sockets, timers, tasks, files. It feeds the sans-IO
//! machines (`sip::Endpoint`, `call::Call`) and carries out what they ask;
//! it decides nothing about protocol or flow.

pub mod bound;
pub mod call_shard;
pub mod call_task;
pub mod channels;
pub mod dial;
pub mod dial_link;
pub mod egress;
pub mod ingress;
pub mod labels;
pub mod load;
pub mod load_io;
pub mod load_listen;
pub mod load_report;
pub mod ports;
pub mod recorder;
pub mod registration;
pub mod server;
pub mod shared;
pub mod sip_task;
pub mod state;
pub mod tcp;
pub mod tls;
