//! What a running cluster says about itself, asked over the wire with the blocking driver:
//! who leads, who votes, and waiting until it is ready for tests.

use std::thread;
use std::time::{Duration, Instant};

use dqlite_proto::{NodeInfo, NodeRole};

use crate::harness::Cluster;
use dqlite_blocking::BlockingConn;

/// How long a cluster may take to elect a leader and promote its voters.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

impl Cluster {
    /// Index of the node that is leader now, as confirmed by the leader itself (it names its
    /// own address), or `None`.
    pub fn leader(&self) -> Option<usize> {
        for i in 0..self.size() {
            let Ok(mut c) = BlockingConn::connect_with(
                &self.db_address(i).to_string(),
                dqlite_proto::Config::default(),
                Duration::from_secs(2),
            ) else {
                continue;
            };
            let Ok(info) = c.leader() else { continue };
            if info.address.is_empty() {
                continue;
            }
            let Some(j) = self.index_of(&info.address) else {
                continue;
            };
            if j == i {
                return Some(i);
            }
            // Confirm with the node named.
            let confirmed = BlockingConn::connect_with(
                info.address.as_str(),
                dqlite_proto::Config::default(),
                Duration::from_secs(2),
            )
            .ok()
            .and_then(|mut c| c.leader().ok())
            .is_some_and(|l| l.address == info.address);
            if confirmed {
                return Some(j);
            }
        }
        None
    }

    /// The node that node `i` names as leader when asked (LEADER on a connection of its
    /// own), if it answers and names one of this cluster's nodes. Unlike
    /// [`leader`](Self::leader) it asks nobody else, so during a partition it tells what
    /// each side believes.
    pub fn leader_named_by(&self, i: usize) -> Option<usize> {
        let mut c = BlockingConn::connect_with(
            &self.db_address(i).to_string(),
            dqlite_proto::Config::default(),
            Duration::from_secs(2),
        )
        .ok()?;
        let info = c.leader().ok()?;
        self.index_of(&info.address)
    }

    /// The membership as the leader reports it.
    pub fn members(&self) -> Option<Vec<NodeInfo>> {
        let leader = self.leader()?;
        let mut c = BlockingConn::connect(&self.db_address(leader).to_string()).ok()?;
        c.cluster().ok()
    }

    /// Node index of a db address, if it is one of this cluster's.
    pub fn index_of(&self, address: &str) -> Option<usize> {
        (0..self.size()).find(|&i| self.db_address(i).to_string() == address)
    }

    /// Asks the leader (node `leader`) to hand leadership to another voter; returns that
    /// voter's address.
    pub fn transfer_leadership(&self, leader: usize) -> Result<String, String> {
        let target = self
            .members()
            .and_then(|m| {
                m.into_iter().find(|n| {
                    n.role == Some(NodeRole::Voter) && self.index_of(&n.address) != Some(leader)
                })
            })
            .ok_or("no other voter to transfer to")?;
        let mut c = BlockingConn::connect(&self.db_address(leader).to_string())
            .map_err(|e| e.to_string())?;
        c.call(|p| p.transfer(target.id))
            .map_err(|e| e.to_string())?;
        Ok(target.address.to_string())
    }

    /// Waits until a leader is elected and at least `voters` nodes vote; returns the leader's
    /// index. Panics with the node logs after [`READY_TIMEOUT`].
    pub fn wait_ready(&self, voters: usize) -> usize {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(leader) = self.leader() {
                let voting = self.members().map_or(0, |m| {
                    m.iter().filter(|n| n.role == Some(NodeRole::Voter)).count()
                });
                if voting >= voters {
                    return leader;
                }
            }
            if Instant::now() > deadline {
                let logs: Vec<String> = (0..self.size()).map(|i| self.log_tail(i, 20)).collect();
                panic!(
                    "cluster not ready ({voters} voters and a leader) within {READY_TIMEOUT:?}:\n{}",
                    logs.join("\n---\n")
                );
            }
            thread::sleep(Duration::from_millis(200));
        }
    }
}
