//! One dialled node: the protocol core over its stream, and the request plumbing every
//! handle on a node shares (a [`Connection`](crate::Connection) with its database, a
//! [`NodeClient`](crate::NodeClient) without one): deadlines, what breaks the handle,
//! abandoned requests, which failures are ambiguous, and the cluster requests.

use std::sync::Arc;
use std::time::Duration;

use dqlite_proto::{
    Connection as Core, Error as CoreError, File, Metadata, NodeInfo, NodeRole, Reply, RequestId,
    SendState,
};

use crate::config::Config;
use crate::driver::Driver;
use crate::error::{Error, Result};
use crate::runtime::{timeout, Runtime};
use crate::transport::BoxStream;

/// Whether a failed request may have taken effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Reads and requests without effect on data: never ambiguous.
    None,
    /// Writes (EXEC, EXEC_SQL, COMMIT, membership changes): ambiguous once sent, if the
    /// answer is lost.
    Write,
}

/// The request plumbing of one node handle.
pub(crate) struct Session<R: Runtime> {
    rt: R,
    wire: Driver<BoxStream>,
    address: String,
    config: Arc<Config>,
    /// The process that dialled (a forked child must not share the socket).
    pid: u32,
    /// Why the handle is unusable, once it is.
    broken: Option<Error>,
    /// A request whose caller went away before its answer arrived.
    inflight: Option<RequestId>,
    /// The node answered "not leader" (or "leadership lost") here.
    saw_not_leader: bool,
}

impl<R: Runtime> std::fmt::Debug for Session<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("address", &self.address)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl<R: Runtime> Session<R> {
    /// A session over a wire that completed (or queued) the handshake.
    pub(crate) fn new(
        rt: R,
        wire: Driver<BoxStream>,
        address: String,
        config: Arc<Config>,
    ) -> Self {
        Session {
            rt,
            wire,
            address,
            config,
            pid: std::process::id(),
            broken: None,
            inflight: None,
            saw_not_leader: false,
        }
    }

    pub(crate) fn rt(&self) -> &R {
        &self.rt
    }

    pub(crate) fn config(&self) -> &Arc<Config> {
        &self.config
    }

    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    /// True once a deadline, protocol error or closed socket made the handle unusable.
    pub(crate) fn is_broken(&self) -> bool {
        self.broken.is_some() || self.wire.core.error().is_some()
    }

    /// Checks, without waiting, that the server has not closed this idle handle.
    pub(crate) fn still_open(&mut self) -> bool {
        !self.is_broken() && self.wire.still_open()
    }

    /// Makes the handle unusable: every later request fails with `e`.
    pub(crate) fn break_with(&mut self, e: Error) {
        self.broken = Some(e);
    }

    pub(crate) fn saw_not_leader(&self) -> bool {
        self.saw_not_leader
    }

    /// Fails if the handle cannot be used (forked process, broken, poisoned core), and
    /// hands the answer of an abandoned request to the core to discard.
    pub(crate) fn check(&mut self) -> Result<()> {
        if std::process::id() != self.pid {
            return Err(Error::Forked {
                created_by: self.pid,
            });
        }
        if let Some(e) = &self.broken {
            return Err(e.clone());
        }
        if let Some(e) = self.wire.core.error() {
            return Err(Error::from(e.clone()));
        }
        if let Some(old) = self.inflight.take() {
            self.wire.core.abandon(old);
        }
        Ok(())
    }

    /// Queues a request through the core (nothing is sent until the next wait).
    pub(crate) fn queue(
        &mut self,
        f: impl FnOnce(&mut Core) -> Result<RequestId, CoreError>,
    ) -> Result<RequestId> {
        f(&mut self.wire.core).map_err(Error::from)
    }

    /// Gives up on request `id`: its answer (the rest of its rows) is discarded when it
    /// comes.
    pub(crate) fn abandon(&mut self, id: RequestId) {
        if self.inflight == Some(id) {
            self.inflight = None;
        }
        self.wire.core.abandon(id);
    }

    /// Waits for the next event of `id` within `limit`. A server failure is an error (and
    /// "not leader" is remembered); a deadline or a broken stream breaks the handle. While
    /// the request still owes more (a row stream's later batches), it stays in flight.
    pub(crate) async fn wait(&mut self, id: RequestId, limit: Duration) -> Result<Reply> {
        if let Some(e) = &self.broken {
            return Err(e.clone());
        }
        self.inflight = Some(id);
        let result = match timeout(&self.rt, limit, self.wire.next_event(id)).await {
            None => {
                let e = Error::Timeout("waiting for the server's answer");
                self.broken = Some(e.clone());
                Err(e)
            }
            Some(Err(e)) => {
                if e.breaks_connection() {
                    self.broken = Some(e.clone());
                }
                Err(e)
            }
            Some(Ok(ev)) => {
                let completes = ev.completes_request();
                match ev.reply {
                    Reply::Failure(f) => {
                        if f.is_not_leader() || f.is_leadership_lost() {
                            self.saw_not_leader = true;
                        }
                        Err(Error::Server(f))
                    }
                    reply if completes => Ok(reply),
                    // More batches follow: still owed.
                    reply => return Ok(reply),
                }
            }
        };
        self.inflight = None;
        result
    }

    /// One request, one reply, within the request timeout; failures classified.
    pub(crate) async fn call(
        &mut self,
        effect: Effect,
        f: impl FnOnce(&mut Core) -> Result<RequestId, CoreError>,
    ) -> Result<Reply> {
        self.check()?;
        self.request(effect, f).await
    }

    /// [`call`](Self::call) for a caller that has just run [`check`](Self::check).
    pub(crate) async fn request(
        &mut self,
        effect: Effect,
        f: impl FnOnce(&mut Core) -> Result<RequestId, CoreError>,
    ) -> Result<Reply> {
        let id = self.queue(f)?;
        let result = self.wait(id, self.config.request_timeout).await;
        result.map_err(|e| self.classify(e, id, effect))
    }

    /// A request answered by EMPTY.
    pub(crate) async fn call_empty(
        &mut self,
        effect: Effect,
        f: impl FnOnce(&mut Core) -> Result<RequestId, CoreError>,
    ) -> Result<()> {
        match self.call(effect, f).await? {
            Reply::Empty => Ok(()),
            other => Err(unexpected(other, "EMPTY")),
        }
    }

    /// Marks write failures whose outcome cannot be known as ambiguous: the answer was
    /// lost after the request went out, or the leader lost leadership while applying it.
    pub(crate) fn classify(&self, e: Error, id: RequestId, effect: Effect) -> Error {
        if effect != Effect::Write {
            return e;
        }
        let lost_after_send = matches!(
            e,
            Error::Connection(_) | Error::Protocol(_) | Error::Timeout(_)
        ) && self.wire.core.send_state(id) != SendState::Unsent;
        let leadership_lost = e
            .server_failure()
            .is_some_and(dqlite_proto::ServerFailure::is_leadership_lost);
        if lost_after_send || leadership_lost {
            Error::Ambiguous(Box::new(e))
        } else {
            e
        }
    }

    /// Sends what is still queued (within the request timeout) and drops the stream.
    pub(crate) async fn close(mut self) {
        if self.broken.is_none() {
            let limit = self.config.request_timeout;
            let _ = timeout(&self.rt, limit, self.wire.flush()).await;
        }
    }

    /// Sends what is queued (the handshake) within the request timeout.
    pub(crate) async fn flush(&mut self) -> Result<()> {
        match timeout(&self.rt, self.config.request_timeout, self.wire.flush()).await {
            None => Err(Error::Timeout("sending the handshake")),
            Some(r) => r,
        }
    }

    /// Turns a "not leader" failure of OPEN into [`Error::NotLeader`], naming the leader as
    /// the node knows it (asked with LEADER within the request timeout). Other errors pass
    /// through.
    pub(crate) async fn explain_open_failure(&mut self, e: Error) -> Error {
        let failure = match &e {
            Error::Server(f) if f.is_not_leader() => f.clone(),
            _ => return e,
        };
        // Asking is best effort: without an answer the error names no leader.
        let leader = self.leader().await.ok().flatten();
        Error::NotLeader {
            address: self.address.clone(),
            leader,
            failure,
        }
    }

    // ----- cluster requests ----------------------------------------------------------------

    pub(crate) async fn leader(&mut self) -> Result<Option<NodeInfo>> {
        match self.call(Effect::None, |p| p.leader()).await? {
            Reply::Leader(n) if n.id == 0 && n.address.is_empty() => Ok(None),
            Reply::Leader(n) => Ok(Some(n)),
            other => Err(unexpected(other, "SERVER")),
        }
    }

    pub(crate) async fn cluster(&mut self) -> Result<Vec<NodeInfo>> {
        match self.call(Effect::None, |p| p.cluster(true)).await? {
            Reply::Nodes(n) => Ok(n),
            other => Err(unexpected(other, "SERVERS")),
        }
    }

    pub(crate) async fn add_node(&mut self, id: u64, address: &str) -> Result<()> {
        self.call_empty(Effect::Write, |p| p.add(id, address)).await
    }

    pub(crate) async fn assign(&mut self, id: u64, role: NodeRole) -> Result<()> {
        self.call_empty(Effect::Write, |p| p.assign(id, role)).await
    }

    pub(crate) async fn remove_node(&mut self, id: u64) -> Result<()> {
        self.call_empty(Effect::Write, |p| p.remove(id)).await
    }

    pub(crate) async fn transfer_leadership(&mut self, id: u64) -> Result<()> {
        self.call_empty(Effect::Write, |p| p.transfer(id)).await
    }

    pub(crate) async fn describe(&mut self) -> Result<Metadata> {
        match self.call(Effect::None, |p| p.describe()).await? {
            Reply::Metadata(m) => Ok(m),
            other => Err(unexpected(other, "METADATA")),
        }
    }

    pub(crate) async fn set_weight(&mut self, weight: u64) -> Result<()> {
        self.call_empty(Effect::None, |p| p.weight(weight)).await
    }

    pub(crate) async fn dump(&mut self, name: &str) -> Result<Vec<File>> {
        match self.call(Effect::None, |p| p.dump(name)).await? {
            Reply::Files(f) => Ok(f),
            other => Err(unexpected(other, "FILES")),
        }
    }
}

/// A reply of the wrong kind for its request: the server broke the protocol.
pub(crate) fn unexpected(reply: Reply, expected: &'static str) -> Error {
    let got = reply.message_type();
    Error::Protocol(CoreError::Unexpected { expected, got })
}
