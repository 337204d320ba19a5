//! Puts the send reports of each peer's messages back in the order the messages were queued.
//!
//! A peer's writer writes its messages one after the other and answers each on its own
//! channel; the driver waits for those answers all together, and they may wake it in any
//! order. The responder must see them in write order: a message's blocks are reported sent
//! before a later message's terminal status completes the response (data-transfer counts a
//! block's bytes only while the transfer is still running).

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

/// The reports of each peer, released in the order their messages were queued.
#[derive(Debug)]
pub(super) struct ReportOrder<P, R> {
    peers: HashMap<P, PeerReports<R>>,
}

#[derive(Debug)]
struct PeerReports<R> {
    /// The sequence number the next queued message gets.
    issued: u64,
    /// The sequence number of the next report to release.
    next: u64,
    /// Reports that came before an earlier message's.
    early: BTreeMap<u64, R>,
}

impl<P: Eq + Hash + Clone, R> ReportOrder<P, R> {
    pub(super) fn new() -> Self {
        ReportOrder {
            peers: HashMap::new(),
        }
    }

    /// A message to `peer` was queued: its sequence number, to give back with its report.
    pub(super) fn issue(&mut self, peer: &P) -> u64 {
        let reports = self.peers.entry(peer.clone()).or_insert(PeerReports {
            issued: 0,
            next: 0,
            early: BTreeMap::new(),
        });
        let sequence = reports.issued;
        reports.issued += 1;
        sequence
    }

    /// The report of message `sequence` to `peer` came: the reports now due, in queue order
    /// (empty while an earlier message of the peer has no report yet).
    pub(super) fn arrived(&mut self, peer: &P, sequence: u64, report: R) -> Vec<R> {
        let Some(reports) = self.peers.get_mut(peer) else {
            return vec![report];
        };
        reports.early.insert(sequence, report);
        let mut due = Vec::new();
        while let Some(report) = reports.early.remove(&reports.next) {
            due.push(report);
            reports.next += 1;
        }
        if reports.next == reports.issued {
            self.peers.remove(peer);
        }
        due
    }

    /// How many peers have messages without a released report.
    #[cfg(test)]
    fn peers(&self) -> usize {
        self.peers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_come_out_in_queue_order_per_peer() {
        let mut order = ReportOrder::new();
        let a: Vec<u64> = (0..3).map(|_| order.issue(&"a")).collect();
        let b = order.issue(&"b");
        assert_eq!(a, [0, 1, 2]);
        assert_eq!(b, 0);
        // The last message's report wakes the driver first: held until the others come.
        assert!(order.arrived(&"a", 2, "a2").is_empty());
        // Another peer is not held back by the first.
        assert_eq!(order.arrived(&"b", b, "b0"), ["b0"]);
        assert_eq!(order.arrived(&"a", 0, "a0"), ["a0"]);
        assert_eq!(order.arrived(&"a", 1, "a1"), ["a1", "a2"]);
        assert_eq!(order.peers(), 0, "a peer with nothing pending is forgotten");
    }

    #[test]
    fn a_peer_starts_again_after_being_forgotten() {
        let mut order = ReportOrder::new();
        let first = order.issue(&1);
        assert_eq!(order.arrived(&1, first, 'x'), ['x']);
        let second = order.issue(&1);
        assert_eq!(second, 0);
        assert_eq!(order.arrived(&1, second, 'y'), ['y']);
    }

    #[test]
    fn a_report_for_an_unknown_peer_is_released_at_once() {
        let mut order: ReportOrder<u8, u8> = ReportOrder::new();
        assert_eq!(order.arrived(&7, 3, 9), [9]);
    }
}
