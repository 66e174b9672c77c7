//! Requests: one function per message, appending a complete frame to
//! a write buffer, and a decoder for fake servers and tests.
//!
//! Encoding is crate-private: only [`Connection`](crate::Connection) produces request bytes,
//! which is what makes the requests that crash or wedge servers impossible to send (see
//! `docs/PROTOCOL.md#requests-that-crash-or-wedge-a-server`). Decoding, for test servers
//! reading what a client sent, is in the `server` module, behind the `server` feature.

use std::borrow::Cow;

use crate::encoding::{put_message, put_text, put_u32, put_u64, BodyTooLarge};
use crate::value::Value;

/// Request type codes.
pub mod code {
    /// LEADER: which node leads?
    pub const LEADER: u8 = 0;
    /// CLIENT: register a client id.
    pub const CLIENT: u8 = 1;
    /// OPEN: open a database.
    pub const OPEN: u8 = 3;
    /// PREPARE: prepare a statement.
    pub const PREPARE: u8 = 4;
    /// EXEC: run a prepared statement.
    pub const EXEC: u8 = 5;
    /// QUERY: run a prepared statement that yields rows.
    pub const QUERY: u8 = 6;
    /// FINALIZE: drop a prepared statement.
    pub const FINALIZE: u8 = 7;
    /// EXEC_SQL: run SQL text.
    pub const EXEC_SQL: u8 = 8;
    /// QUERY_SQL: run SQL text that yields rows.
    pub const QUERY_SQL: u8 = 9;
    /// INTERRUPT: marker after which an abandoned row stream is drained.
    pub const INTERRUPT: u8 = 10;
    /// ADD: add a node to the cluster.
    pub const ADD: u8 = 12;
    /// ASSIGN: change a node's role.
    pub const ASSIGN: u8 = 13;
    /// REMOVE: remove a node from the cluster.
    pub const REMOVE: u8 = 14;
    /// DUMP: fetch the database files.
    pub const DUMP: u8 = 15;
    /// CLUSTER: list the cluster's nodes.
    pub const CLUSTER: u8 = 16;
    /// TRANSFER: hand leadership to another node.
    pub const TRANSFER: u8 = 17;
    /// DESCRIBE: this node's failure domain and weight.
    pub const DESCRIBE: u8 = 18;
    /// WEIGHT: set this node's weight.
    pub const WEIGHT: u8 = 19;
}

/// Role of a node in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum NodeRole {
    /// Votes in elections and replicates.
    Voter,
    /// Replicates but does not vote.
    Standby,
    /// Neither votes nor replicates.
    Spare,
}

impl NodeRole {
    /// The wire code (0 voter, 1 standby, 2 spare).
    pub fn code(self) -> u64 {
        match self {
            NodeRole::Voter => 0,
            NodeRole::Standby => 1,
            NodeRole::Spare => 2,
        }
    }

    /// The role for a wire code.
    pub fn from_code(code: u64) -> Option<NodeRole> {
        match code {
            0 => Some(NodeRole::Voter),
            1 => Some(NodeRole::Standby),
            2 => Some(NodeRole::Spare),
            _ => None,
        }
    }
}

/// A request, as a fake server sees it after decoding.
///
/// Only the requests a client may send exist here: no CONNECT, no HEARTBEAT, DESCRIBE always
/// with format 0.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Request<'a> {
    /// LEADER.
    Leader,
    /// CLIENT with a client id.
    Client {
        /// Client id.
        id: u64,
    },
    /// OPEN a database by name.
    Open {
        /// Database name.
        name: Cow<'a, str>,
    },
    /// PREPARE a statement.
    Prepare {
        /// SQL text.
        sql: Cow<'a, str>,
    },
    /// EXEC a prepared statement.
    Exec {
        /// Statement id.
        stmt: u32,
        /// Parameters.
        params: Cow<'a, [Value]>,
    },
    /// QUERY a prepared statement.
    Query {
        /// Statement id.
        stmt: u32,
        /// Parameters.
        params: Cow<'a, [Value]>,
    },
    /// FINALIZE a prepared statement.
    Finalize {
        /// Statement id.
        stmt: u32,
    },
    /// EXEC_SQL.
    ExecSql {
        /// SQL text.
        sql: Cow<'a, str>,
        /// Parameters.
        params: Cow<'a, [Value]>,
    },
    /// QUERY_SQL.
    QuerySql {
        /// SQL text.
        sql: Cow<'a, str>,
        /// Parameters.
        params: Cow<'a, [Value]>,
    },
    /// INTERRUPT.
    Interrupt,
    /// ADD a node.
    Add {
        /// Node id.
        id: u64,
        /// Node address.
        address: Cow<'a, str>,
    },
    /// ASSIGN a role.
    Assign {
        /// Node id.
        id: u64,
        /// New role.
        role: NodeRole,
    },
    /// REMOVE a node.
    Remove {
        /// Node id.
        id: u64,
    },
    /// DUMP a database.
    Dump {
        /// Database name.
        name: Cow<'a, str>,
    },
    /// CLUSTER, with roles (format 1) or without (format 0).
    Cluster {
        /// Ask for roles too.
        with_roles: bool,
    },
    /// TRANSFER leadership.
    Transfer {
        /// Target node id.
        id: u64,
    },
    /// DESCRIBE (format 0).
    Describe,
    /// WEIGHT.
    Weight {
        /// New weight.
        weight: u64,
    },
}

/// The parameter tuple layout: 1-byte count (schema 0) or 4-byte count (schema 1).
pub(crate) fn params_schema(params: &[Value]) -> u8 {
    u8::from(params.len() > usize::from(u8::MAX))
}

fn put_params(buf: &mut Vec<u8>, params: &[Value]) {
    if params.is_empty() {
        return;
    }
    let n = params.len();
    let count_len = if params_schema(params) == 0 {
        buf.push(n as u8);
        1
    } else {
        put_u32(buf, n as u32);
        4
    };
    buf.extend(params.iter().map(|p| p.param_type().code()));
    let header = (count_len + n + 7) & !7;
    buf.resize(buf.len() + header - count_len - n, 0);
    for p in params {
        p.encode(buf);
    }
}

const DB_ID: u64 = 0;

impl Request<'_> {
    /// Message type code.
    pub fn code(&self) -> u8 {
        match self {
            Request::Leader => code::LEADER,
            Request::Client { .. } => code::CLIENT,
            Request::Open { .. } => code::OPEN,
            Request::Prepare { .. } => code::PREPARE,
            Request::Exec { .. } => code::EXEC,
            Request::Query { .. } => code::QUERY,
            Request::Finalize { .. } => code::FINALIZE,
            Request::ExecSql { .. } => code::EXEC_SQL,
            Request::QuerySql { .. } => code::QUERY_SQL,
            Request::Interrupt => code::INTERRUPT,
            Request::Add { .. } => code::ADD,
            Request::Assign { .. } => code::ASSIGN,
            Request::Remove { .. } => code::REMOVE,
            Request::Dump { .. } => code::DUMP,
            Request::Cluster { .. } => code::CLUSTER,
            Request::Transfer { .. } => code::TRANSFER,
            Request::Describe => code::DESCRIBE,
            Request::Weight { .. } => code::WEIGHT,
        }
    }

    /// Appends this request as one frame. Callers (the connection) have validated text for
    /// NULs and parameter counts for the server. A body too long for a frame appends nothing.
    pub(crate) fn encode(&self, buf: &mut Vec<u8>) -> Result<(), BodyTooLarge> {
        let schema = match self {
            Request::Exec { params, .. }
            | Request::Query { params, .. }
            | Request::ExecSql { params, .. }
            | Request::QuerySql { params, .. } => params_schema(params),
            _ => 0,
        };
        put_message(buf, self.code(), schema, |b| match self {
            Request::Leader | Request::Interrupt | Request::Describe => put_u64(b, 0),
            Request::Client { id } | Request::Remove { id } | Request::Transfer { id } => {
                put_u64(b, *id)
            }
            Request::Weight { weight } => put_u64(b, *weight),
            Request::Open { name } => {
                put_text(b, name);
                put_u64(b, 0);
                put_text(b, "volatile");
            }
            Request::Prepare { sql } => {
                put_u64(b, DB_ID);
                put_text(b, sql);
            }
            Request::Exec { stmt, params } | Request::Query { stmt, params } => {
                put_u32(b, DB_ID as u32);
                put_u32(b, *stmt);
                put_params(b, params);
            }
            Request::Finalize { stmt } => {
                put_u32(b, DB_ID as u32);
                put_u32(b, *stmt);
            }
            Request::ExecSql { sql, params } | Request::QuerySql { sql, params } => {
                put_u64(b, DB_ID);
                put_text(b, sql);
                put_params(b, params);
            }
            Request::Add { id, address } => {
                put_u64(b, *id);
                put_text(b, address);
            }
            Request::Assign { id, role } => {
                put_u64(b, *id);
                put_u64(b, role.code());
            }
            Request::Dump { name } => put_text(b, name),
            Request::Cluster { with_roles } => put_u64(b, u64::from(*with_roles)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Text;
    use bytes::Bytes;

    fn hex(bytes: &[u8]) -> String {
        bytes
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn enc(r: &Request) -> Vec<u8> {
        let mut b = Vec::new();
        r.encode(&mut b).unwrap();
        b
    }

    #[test]
    fn leader_and_client_bodies_are_one_word() {
        assert_eq!(
            hex(&enc(&Request::Leader)),
            "01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"
        );
        assert_eq!(
            hex(&enc(&Request::Client { id: 0 })),
            "01 00 00 00 01 00 00 00 00 00 00 00 00 00 00 00"
        );
    }

    #[test]
    fn open_sends_the_name_zero_flags_and_the_volatile_vfs() {
        let b = enc(&Request::Open {
            name: "demo".into(),
        });
        assert_eq!(
            hex(&b),
            "04 00 00 00 03 00 00 00 64 65 6d 6f 00 00 00 00 00 00 00 00 00 00 00 00 \
             76 6f 6c 61 74 69 6c 65 00 00 00 00 00 00 00 00"
        );
    }

    #[test]
    fn exec_sql_with_integer_and_text_encodes_byte_for_byte() {
        let params = [Value::Integer(42), Value::Text(Text::from("hello"))];
        let b = enc(&Request::ExecSql {
            sql: "INSERT INTO kv VALUES (?, ?)".into(),
            params: Cow::Borrowed(&params),
        });
        assert_eq!(
            hex(&b),
            "08 00 00 00 08 00 00 00 00 00 00 00 00 00 00 00 \
             49 4e 53 45 52 54 20 49 4e 54 4f 20 6b 76 20 56 \
             41 4c 55 45 53 20 28 3f 2c 20 3f 29 00 00 00 00 \
             02 01 03 00 00 00 00 00 2a 00 00 00 00 00 00 00 \
             68 65 6c 6c 6f 00 00 00"
        );
    }

    #[test]
    fn query_sql_without_params_sends_no_tuple() {
        let b = enc(&Request::QuerySql {
            sql: "SELECT 1, NULL".into(),
            params: Cow::Borrowed(&[]),
        });
        assert_eq!(
            hex(&b),
            "03 00 00 00 09 00 00 00 00 00 00 00 00 00 00 00 \
             53 45 4c 45 43 54 20 31 2c 20 4e 55 4c 4c 00 00"
        );
    }

    #[test]
    fn param_tuples_pad_their_header_and_switch_to_a_4_byte_count_past_255() {
        let tuple = |params: &[Value]| {
            let mut b = Vec::new();
            put_params(&mut b, params);
            hex(&b)
        };
        assert_eq!(
            tuple(&[Value::Float(1.5)]),
            "01 02 00 00 00 00 00 00 00 00 00 00 00 00 f8 3f"
        );
        assert_eq!(
            tuple(&[Value::Blob(Bytes::from_static(&[1, 2, 3]))]),
            "01 04 00 00 00 00 00 00 03 00 00 00 00 00 00 00 01 02 03 00 00 00 00 00"
        );
        let eight = vec![Value::Integer(1); 8];
        assert!(tuple(&eight).starts_with("08 01 01 01 01 01 01 01 01 00 00 00 00 00 00 00 01 00"));
        // Schema 1 for more than 255 parameters: 4-byte count.
        let many = vec![Value::Null; 256];
        let mut b = Vec::new();
        put_params(&mut b, &many);
        assert_eq!(&b[..6], &[0, 1, 0, 0, 5, 5]);
        assert_eq!(b.len(), 264 + 256 * 8);
    }

    #[test]
    fn unixtime_param_travels_as_integer_and_booleans_as_words() {
        let mut b = Vec::new();
        put_params(
            &mut b,
            &[Value::UnixTime(7), Value::Boolean(true), Value::Null],
        );
        assert_eq!(
            hex(&b),
            "03 01 0b 05 00 00 00 00 07 00 00 00 00 00 00 00 \
             01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"
        );
    }

    #[test]
    fn every_request_round_trips() {
        let params = vec![Value::Integer(-1), Value::Text("x".into()), Value::Null];
        let reqs = [
            Request::Leader,
            Request::Client { id: 9 },
            Request::Open { name: "db".into() },
            Request::Prepare {
                sql: "SELECT 1".into(),
            },
            Request::Exec {
                stmt: 3,
                params: params.clone().into(),
            },
            Request::Query {
                stmt: 4,
                params: Vec::new().into(),
            },
            Request::Finalize { stmt: 5 },
            Request::ExecSql {
                sql: "x".into(),
                params: params.clone().into(),
            },
            Request::QuerySql {
                sql: "y".into(),
                params: vec![Value::Null; 300].into(),
            },
            Request::Interrupt,
            Request::Add {
                id: 2,
                address: "127.0.0.1:1".into(),
            },
            Request::Assign {
                id: 2,
                role: NodeRole::Spare,
            },
            Request::Remove { id: 2 },
            Request::Dump { name: "db".into() },
            Request::Cluster { with_roles: true },
            Request::Transfer { id: 3 },
            Request::Describe,
            Request::Weight { weight: 7 },
        ];
        for req in reqs {
            let b = enc(&req);
            let words = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
            assert!(words > 0);
            assert_eq!(b.len(), 8 + 8 * words);
            let body = Bytes::copy_from_slice(&b[8..]);
            assert_eq!(Request::decode(b[4], b[5], body).unwrap(), req);
        }
    }
}
