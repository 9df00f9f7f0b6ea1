//! The server-transaction budget: how many transactions, and how many bytes, the
//! endpoint keeps at once (`max_server_transactions`, `max_server_transaction_bytes`).
//!
//! A finished transaction (a final response sent; for an INVITE, a non-2xx or the
//! ACKed 2xx) only absorbs retransmissions until its timer (J, H/I, L) fires, up to
//! 32 s on UDP. A flood of requests that are all refused would otherwise pile them up;
//! so when a new transaction finds no room, the oldest finished ones are dropped
//! first (a late retransmission of theirs is then treated as new and answered
//! again). If the live ones alone fill the budget, a new INVITE is answered `503`
//! with `Retry-After`, statelessly, and a new non-INVITE request is answered but not
//! kept. A finished transaction keeps no request body.

use super::super::transaction::ServerTransaction;
use super::Endpoint;

/// Bytes a transaction holds: its request (headers, body, and the parsed copies of
/// the headers it was validated into) and its last response.
pub(super) fn footprint(tx: &ServerTransaction) -> usize {
    let headers: usize = tx
        .request
        .msg
        .headers
        .iter()
        .map(|h| h.name.len() + h.value.len() + 4)
        .sum();
    const FIXED: usize = 512;
    FIXED + 2 * headers + tx.request.msg.body.len() + tx.last_response.as_ref().map_or(0, Vec::len)
}

impl Endpoint {
    /// Room for one more transaction of about `size` bytes, dropping the oldest
    /// finished ones if need be. False when the live ones fill the budget.
    pub(super) fn make_room(&mut self, size: usize) -> bool {
        while self.servers.len() >= self.config.max_server_transactions
            || self.server_bytes + size > self.config.max_server_transaction_bytes
        {
            let Some(id) = self.finished.pop_front() else {
                return false;
            };
            self.remove_server(id);
        }
        true
    }

    /// The transaction got its final response: it may go first when room is needed,
    /// and it needs its request body no more.
    pub(super) fn finish_server(&mut self, id: u64) {
        if let Some(tx) = self.servers.get_mut(&id) {
            tx.request.msg.body = Vec::new();
            self.finished.push_back(id);
        }
        self.recount(id);
        // Transactions also end by their timers: forget those now and then, so the
        // queue stays about as long as the table.
        if self.finished.len() > 2 * self.servers.len() + 64 {
            let servers = &self.servers;
            self.finished.retain(|id| servers.contains_key(id));
        }
    }

    /// Count a transaction's bytes again after it changed.
    pub(super) fn recount(&mut self, id: u64) {
        if let Some(tx) = self.servers.get_mut(&id) {
            let size = footprint(tx);
            self.server_bytes = self.server_bytes - tx.size + size;
            tx.size = size;
        }
    }
}
