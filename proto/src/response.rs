//! Responses: decoding by (type, schema), and encoding for fake
//! servers and tests.

use bytes::Bytes;

use crate::encoding::Reader;
use crate::error::{Error, Malformed, ServerFailure};
use crate::request::NodeRole;
use crate::rows::RowsBatch;
use crate::value::Text;

/// Response type codes.
pub mod code {
    /// FAILURE: code and message.
    pub const FAILURE: u8 = 0;
    /// SERVER: one node (id and address).
    pub const SERVER: u8 = 1;
    /// WELCOME: answer to CLIENT.
    pub const WELCOME: u8 = 2;
    /// SERVERS: the node list.
    pub const SERVERS: u8 = 3;
    /// DB: answer to OPEN.
    pub const DB: u8 = 4;
    /// STMT: answer to PREPARE.
    pub const STMT: u8 = 5;
    /// RESULT: answer to EXEC / EXEC_SQL.
    pub const RESULT: u8 = 6;
    /// ROWS: answer to QUERY / QUERY_SQL.
    pub const ROWS: u8 = 7;
    /// EMPTY: answer with no content.
    pub const EMPTY: u8 = 8;
    /// FILES: answer to DUMP.
    pub const FILES: u8 = 9;
    /// METADATA: answer to DESCRIBE.
    pub const METADATA: u8 = 10;
}

/// The name of a response type, for error messages.
pub(crate) fn type_name(kind: u8) -> &'static str {
    match kind {
        code::FAILURE => "FAILURE",
        code::SERVER => "SERVER",
        code::WELCOME => "WELCOME",
        code::SERVERS => "SERVERS",
        code::DB => "DB",
        code::STMT => "STMT",
        code::RESULT => "RESULT",
        code::ROWS => "ROWS",
        code::EMPTY => "EMPTY",
        code::FILES => "FILES",
        code::METADATA => "METADATA",
        _ => "unknown",
    }
}

/// A node of the cluster as the server reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// Raft node id (0 in a LEADER reply means "no leader known").
    pub id: u64,
    /// The node's address, exactly as the cluster was configured with it.
    pub address: Text,
    /// The role, when the server reported it (CLUSTER format 1).
    pub role: Option<NodeRole>,
}

/// Outcome of EXEC / EXEC_SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecResult {
    /// SQLite's last inserted rowid on this connection (stale after non-inserting statements).
    pub last_insert_id: i64,
    /// Rows changed by the last statement (stale after statements that do not write).
    pub rows_affected: u64,
}

/// A prepared statement as the server described it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StmtInfo {
    /// Statement id (a slot index, reused after FINALIZE).
    pub id: u32,
    /// Number of parameters the statement takes.
    pub params: u64,
    /// Byte offset of the unparsed tail (STMT_WITH_OFFSET, servers >= 1.15 only).
    pub tail_offset: Option<u64>,
}

/// One file of a DUMP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// File name (the database, then its `-wal`).
    pub name: Text,
    /// Contents.
    pub data: Bytes,
}

/// A node's metadata (DESCRIBE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metadata {
    /// Failure domain.
    pub failure_domain: u64,
    /// Weight.
    pub weight: u64,
}

/// A decoded response.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Response {
    /// FAILURE.
    Failure(ServerFailure),
    /// SERVER (LEADER's answer).
    Server(NodeInfo),
    /// WELCOME (CLIENT's answer) with the heartbeat timeout in milliseconds.
    Welcome {
        /// Heartbeat timeout in milliseconds (carries no meaning on current servers).
        heartbeat_timeout_ms: u64,
    },
    /// SERVERS (CLUSTER's answer).
    Servers(Vec<NodeInfo>),
    /// DB (OPEN's answer).
    Db {
        /// Database id (always 0).
        id: u32,
    },
    /// STMT (PREPARE's answer).
    Stmt(StmtInfo),
    /// RESULT (EXEC's answer).
    Result(ExecResult),
    /// ROWS (one batch of QUERY's answer).
    Rows(RowsBatch),
    /// EMPTY.
    Empty,
    /// FILES (DUMP's answer).
    Files(Vec<File>),
    /// METADATA (DESCRIBE's answer).
    Metadata(Metadata),
}

/// What the decoder needs to know beyond the bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DecodeOptions {
    /// SERVERS entries carry a role (CLUSTER format 1 was asked).
    pub servers_with_roles: bool,
    /// Refuse ROWS batches with more columns.
    pub max_columns: u64,
}

impl Response {
    /// Decodes a response body of type `kind` and revision `schema`.
    pub(crate) fn decode(
        kind: u8,
        schema: u8,
        body: Bytes,
        opts: DecodeOptions,
    ) -> Result<Response, Error> {
        let bad_schema = Malformed::UnknownSchema { kind, schema };
        if schema != 0 && !(kind == code::STMT && schema == 1) {
            return Err(bad_schema.into());
        }
        if kind == code::ROWS {
            return Ok(Response::Rows(RowsBatch::decode(body, opts.max_columns)?));
        }
        let mut r = Reader::new(body);
        let resp = match kind {
            code::FAILURE => {
                let code = r.u64("failure code")?;
                let message = r.text("failure message")?.into();
                Response::Failure(ServerFailure { code, message })
            }
            code::SERVER => Response::Server(NodeInfo {
                id: r.u64("node id")?,
                address: r.text("node address")?,
                role: None,
            }),
            code::WELCOME => Response::Welcome {
                heartbeat_timeout_ms: r.u64("heartbeat timeout")?,
            },
            code::SERVERS => {
                let n = r.u64("node count")?;
                let min_entry = if opts.servers_with_roles { 24 } else { 16 };
                let n = checked_count(n, r.remaining() / min_entry, "node")?;
                let mut nodes = Vec::with_capacity(n);
                for _ in 0..n {
                    let id = r.u64("node id")?;
                    let address = r.text("node address")?;
                    let role = if opts.servers_with_roles {
                        let code = r.u64("node role")?;
                        Some(NodeRole::from_code(code).ok_or(Malformed::BadCount {
                            field: "node role",
                            count: code,
                        })?)
                    } else {
                        None
                    };
                    nodes.push(NodeInfo { id, address, role });
                }
                Response::Servers(nodes)
            }
            code::DB => Response::Db {
                id: r.u32_pair("db id")?.0,
            },
            code::STMT => {
                let (_, id) = r.u32_pair("db/stmt id")?;
                let params = r.u64("param count")?;
                let tail_offset = if schema == 1 {
                    Some(r.u64("tail offset")?)
                } else {
                    None
                };
                Response::Stmt(StmtInfo {
                    id,
                    params,
                    tail_offset,
                })
            }
            code::RESULT => Response::Result(ExecResult {
                last_insert_id: r.u64("last insert id")? as i64,
                rows_affected: r.u64("rows affected")?,
            }),
            code::EMPTY => {
                r.u64("empty")?;
                Response::Empty
            }
            code::FILES => {
                let n = r.u64("file count")?;
                let n = checked_count(n, r.remaining() / 16, "file")?;
                let mut files = Vec::with_capacity(n);
                for _ in 0..n {
                    let name = r.text("file name")?;
                    let size = r.u64("file size")?;
                    let size = usize::try_from(size)
                        .map_err(|_| Malformed::Truncated { field: "file data" })?;
                    let data = r.bytes_padded(size, "file data")?;
                    files.push(File { name, data });
                }
                Response::Files(files)
            }
            code::METADATA => Response::Metadata(Metadata {
                failure_domain: r.u64("failure domain")?,
                weight: r.u64("weight")?,
            }),
            other => return Err(Malformed::UnknownType(other).into()),
        };
        r.finish()?;
        Ok(resp)
    }
}

/// A count read from the wire, refused when more entries than `fit` could follow.
fn checked_count(n: u64, fit: usize, field: &'static str) -> Result<usize, Malformed> {
    usize::try_from(n)
        .ok()
        .filter(|&v| v <= fit)
        .ok_or(Malformed::BadCount { field, count: n })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(hex: &str) -> (u8, u8, Bytes) {
        let v: Vec<u8> = hex
            .split_whitespace()
            .map(|h| u8::from_str_radix(h, 16).unwrap())
            .collect();
        let words = u32::from_le_bytes([v[0], v[1], v[2], v[3]]) as usize;
        assert_eq!(v.len(), 8 + words * 8, "test vector length");
        (v[4], v[5], Bytes::copy_from_slice(&v[8..]))
    }

    const OPTS: DecodeOptions = DecodeOptions {
        servers_with_roles: true,
        max_columns: 1000,
    };

    fn decode(hex: &str) -> Result<Response, Error> {
        let (k, s, b) = frame(hex);
        Response::decode(k, s, b, OPTS)
    }

    #[test]
    fn server_reply_names_the_leader_or_nobody() {
        let r = decode(
            "03 00 00 00 01 00 00 00 a5 bd e3 a2 c8 c3 d6 e5 31 32 37 2e 30 2e 30 2e 31 3a 39 30 30 32 00 00",
        )
        .unwrap();
        let Response::Server(n) = r else {
            panic!("{r:?}")
        };
        assert_eq!(n.id, 0xe5d6c3c8a2e3bda5);
        assert_eq!(n.address, "127.0.0.1:9002");
        let none =
            decode("02 00 00 00 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00")
                .unwrap();
        assert_eq!(
            none,
            Response::Server(NodeInfo {
                id: 0,
                address: Text::from(""),
                role: None
            })
        );
    }

    #[test]
    fn welcome_db_empty_result() {
        assert_eq!(
            decode("01 00 00 00 02 00 00 00 98 3a 00 00 00 00 00 00").unwrap(),
            Response::Welcome {
                heartbeat_timeout_ms: 15000
            }
        );
        assert_eq!(
            decode("01 00 00 00 04 00 00 00 00 00 00 00 00 00 00 00").unwrap(),
            Response::Db { id: 0 }
        );
        assert_eq!(
            decode("01 00 00 00 08 00 00 00 00 00 00 00 00 00 00 00").unwrap(),
            Response::Empty
        );
        assert_eq!(
            decode("02 00 00 00 06 00 00 00 01 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00")
                .unwrap(),
            Response::Result(ExecResult {
                last_insert_id: 1,
                rows_affected: 1
            })
        );
    }

    #[test]
    fn not_leader_failure_decodes_and_needs_its_message() {
        let r = decode(
            "03 00 00 00 00 00 00 00 0a 28 00 00 00 00 00 00 6e 6f 74 20 6c 65 61 64 65 72 00 00 00 00 00 00",
        )
        .unwrap();
        let Response::Failure(f) = r else { panic!() };
        assert!(f.is_not_leader());
        assert_eq!(f.message, "not leader");
        // FAILURE without a message is malformed.
        assert!(decode("01 00 00 00 00 00 00 00 0a 28 00 00 00 00 00 00").is_err());
    }

    #[test]
    fn stmt_decodes_its_offset_only_under_schema_1() {
        assert_eq!(
            decode("03 00 00 00 05 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 09 00 00 00 00 00 00 00")
                .unwrap(),
            Response::Stmt(StmtInfo { id: 0, params: 0, tail_offset: Some(9) })
        );
        assert_eq!(
            decode("02 00 00 00 05 00 00 00 00 00 00 00 03 00 00 00 02 00 00 00 00 00 00 00")
                .unwrap(),
            Response::Stmt(StmtInfo {
                id: 3,
                params: 2,
                tail_offset: None
            })
        );
        // Schema 2 does not exist.
        assert!(
            decode("02 00 00 00 05 02 00 00 00 00 00 00 03 00 00 00 02 00 00 00 00 00 00 00")
                .is_err()
        );
    }

    #[test]
    fn servers_both_formats() {
        let nodes = vec![
            NodeInfo {
                id: 1,
                address: "127.0.0.1:1".into(),
                role: Some(NodeRole::Voter),
            },
            NodeInfo {
                id: 2,
                address: "127.0.0.1:2".into(),
                role: Some(NodeRole::Spare),
            },
        ];
        let mut b = Vec::new();
        Response::Servers(nodes.clone())
            .encode(&mut b)
            .expect("a reply fits in a frame");
        let body = Bytes::copy_from_slice(&b[8..]);
        assert_eq!(
            Response::decode(3, 0, body, OPTS).unwrap(),
            Response::Servers(nodes)
        );
        let plain = vec![NodeInfo {
            id: 1,
            address: "a".into(),
            role: None,
        }];
        let mut b = Vec::new();
        Response::Servers(plain.clone())
            .encode(&mut b)
            .expect("a reply fits in a frame");
        let body = Bytes::copy_from_slice(&b[8..]);
        let opts = DecodeOptions {
            servers_with_roles: false,
            ..OPTS
        };
        assert_eq!(
            Response::decode(3, 0, body, opts).unwrap(),
            Response::Servers(plain)
        );
        // A node count that cannot fit is refused before allocating.
        assert!(decode("01 00 00 00 03 00 00 00 ff ff ff ff ff ff ff ff").is_err());
    }

    #[test]
    fn files_and_metadata() {
        let files = vec![
            File {
                name: "db".into(),
                data: Bytes::from(vec![7u8; 4096]),
            },
            File {
                name: "db-wal".into(),
                data: Bytes::new(),
            },
        ];
        let mut b = Vec::new();
        Response::Files(files.clone())
            .encode(&mut b)
            .expect("a reply fits in a frame");
        let body = Bytes::copy_from_slice(&b[8..]);
        assert_eq!(
            Response::decode(9, 0, body, OPTS).unwrap(),
            Response::Files(files)
        );
        assert_eq!(
            decode("02 00 00 00 0a 00 00 00 00 00 00 00 00 00 00 00 07 00 00 00 00 00 00 00")
                .unwrap(),
            Response::Metadata(Metadata {
                failure_domain: 0,
                weight: 7
            })
        );
    }

    #[test]
    fn unknown_type_and_trailing_bytes() {
        assert!(matches!(
            decode("01 00 00 00 0b 00 00 00 00 00 00 00 00 00 00 00"),
            Err(Error::Malformed(Malformed::UnknownType(11)))
        ));
        assert!(matches!(
            decode("02 00 00 00 08 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"),
            Err(Error::Malformed(Malformed::TrailingBytes(8)))
        ));
    }
}
