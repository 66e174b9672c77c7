//! The server side of the wire, for fake servers, fuzz targets and tests (feature `server`).
//!
//! A client never needs this module: [`Connection`](crate::Connection) encodes requests and
//! turns replies into [`Reply`](crate::Reply) events. What is here reads requests the way a
//! server does and writes replies and frames byte for byte, so that tests can play the server
//! without one. It follows the wire format, not semver: it may change in any release.

pub use crate::encoding::{BodyTooLarge, Header, WORD};
pub use crate::frame::{Deframer, Frame};
pub use crate::request::{code as request_code, Request};
pub use crate::response::{code as response_code, Response};

use std::borrow::Cow;

use bytes::Bytes;

use crate::encoding::{put_blob, put_message, put_text, put_u32, put_u64, Reader};
use crate::error::{Error, Malformed};
use crate::limits::Limits;
use crate::request::NodeRole;
use crate::response::{DecodeOptions, StmtInfo};
use crate::rows::{RowsBatch, DONE, PART};
use crate::value::{Value, ValueType};

/// Decodes one reply frame as a client would see it, with the default limits
/// ([`Connection`](crate::Connection) does this internally with its own settings).
pub fn decode_response(frame: Frame, servers_with_roles: bool) -> Result<Response, Error> {
    let opts = DecodeOptions {
        servers_with_roles,
        max_columns: Limits::default().max_columns,
    };
    Response::decode(frame.header.kind, frame.header.schema, frame.body, opts)
}

impl Request<'_> {
    /// Appends this request as one complete frame, byte for byte as the client sends it
    /// (for fuzz targets and tests that check the decoder against the encoder).
    pub fn encode_frame(&self, buf: &mut Vec<u8>) -> Result<(), BodyTooLarge> {
        self.encode(buf)
    }

    /// Decodes a request body (for fake servers and tests). Unknown, forbidden or malformed
    /// requests are errors.
    pub fn decode(kind: u8, schema: u8, body: Bytes) -> Result<Request<'static>, Malformed> {
        let mut r = Reader::new(body);
        let req = match kind {
            request_code::LEADER => {
                r.u64("leader")?;
                Request::Leader
            }
            request_code::CLIENT => Request::Client {
                id: r.u64("client id")?,
            },
            request_code::OPEN => {
                let name = r.text("db name")?;
                r.u64("open flags")?;
                r.text("vfs")?;
                Request::Open {
                    name: Cow::Owned(name.into()),
                }
            }
            request_code::PREPARE => {
                r.u64("db id")?;
                Request::Prepare {
                    sql: Cow::Owned(r.text("sql")?.into()),
                }
            }
            request_code::EXEC | request_code::QUERY => {
                let (_, stmt) = r.u32_pair("db/stmt id")?;
                let params = Cow::Owned(decode_params(&mut r, schema)?);
                if kind == request_code::EXEC {
                    Request::Exec { stmt, params }
                } else {
                    Request::Query { stmt, params }
                }
            }
            request_code::FINALIZE => Request::Finalize {
                stmt: r.u32_pair("db/stmt id")?.1,
            },
            request_code::EXEC_SQL | request_code::QUERY_SQL => {
                r.u64("db id")?;
                let sql = Cow::Owned(r.text("sql")?.into());
                let params = Cow::Owned(decode_params(&mut r, schema)?);
                if kind == request_code::EXEC_SQL {
                    Request::ExecSql { sql, params }
                } else {
                    Request::QuerySql { sql, params }
                }
            }
            request_code::INTERRUPT => {
                r.u64("db id")?;
                Request::Interrupt
            }
            request_code::ADD => Request::Add {
                id: r.u64("node id")?,
                address: Cow::Owned(r.text("address")?.into()),
            },
            request_code::ASSIGN => {
                let id = r.u64("node id")?;
                let role = NodeRole::from_code(r.u64("role")?).ok_or(Malformed::BadCount {
                    field: "role",
                    count: 0,
                })?;
                Request::Assign { id, role }
            }
            request_code::REMOVE => Request::Remove {
                id: r.u64("node id")?,
            },
            request_code::DUMP => Request::Dump {
                name: Cow::Owned(r.text("db name")?.into()),
            },
            request_code::CLUSTER => Request::Cluster {
                with_roles: r.u64("format")? == 1,
            },
            request_code::TRANSFER => Request::Transfer {
                id: r.u64("node id")?,
            },
            request_code::DESCRIBE => {
                if r.u64("format")? != 0 {
                    return Err(Malformed::UnknownSchema { kind, schema });
                }
                Request::Describe
            }
            request_code::WEIGHT => Request::Weight {
                weight: r.u64("weight")?,
            },
            _ => return Err(Malformed::UnknownType(kind)),
        };
        r.finish()?;
        Ok(req)
    }
}

/// Reads a parameter tuple (absent tuple = no parameters).
fn decode_params(r: &mut Reader, schema: u8) -> Result<Vec<Value>, Malformed> {
    if r.is_empty() {
        return Ok(Vec::new());
    }
    let word = r
        .peek_u64()
        .ok_or(Malformed::Truncated { field: "params" })?;
    let (n, count_len) = match schema {
        0 => ((word & 0xff) as usize, 1),
        1 => ((word & 0xffff_ffff) as usize, 4),
        _ => return Err(Malformed::UnknownSchema { kind: 0, schema }),
    };
    let header_len = (count_len + n + 7) & !7;
    if header_len > r.remaining() || n > r.remaining() / 8 {
        return Err(Malformed::BadCount {
            field: "params",
            count: n as u64,
        });
    }
    let header = r.bytes_padded(header_len, "params header")?;
    let types = header.get(count_len..count_len + n).unwrap_or_default();
    let mut out = Vec::with_capacity(n);
    for &t in types {
        let ty = ValueType::from_code(t).ok_or(Malformed::UnknownValueType(t))?;
        out.push(Value::decode(ty, r)?);
    }
    Ok(out)
}

impl Response {
    /// The response type code.
    pub fn code(&self) -> u8 {
        match self {
            Response::Failure(_) => response_code::FAILURE,
            Response::Server(_) => response_code::SERVER,
            Response::Welcome { .. } => response_code::WELCOME,
            Response::Servers(_) => response_code::SERVERS,
            Response::Db { .. } => response_code::DB,
            Response::Stmt(_) => response_code::STMT,
            Response::Result(_) => response_code::RESULT,
            Response::Rows(_) => response_code::ROWS,
            Response::Empty => response_code::EMPTY,
            Response::Files(_) => response_code::FILES,
            Response::Metadata(_) => response_code::METADATA,
        }
    }

    /// Appends this response as one complete frame (for fake servers and tests).
    pub fn encode(&self, buf: &mut Vec<u8>) -> Result<(), BodyTooLarge> {
        let schema = match self {
            Response::Stmt(StmtInfo {
                tail_offset: Some(_),
                ..
            }) => 1,
            _ => 0,
        };
        put_message(buf, self.code(), schema, |b| match self {
            Response::Failure(f) => {
                put_u64(b, f.code);
                put_text(b, &f.message);
            }
            Response::Server(n) => {
                put_u64(b, n.id);
                put_text(b, &n.address);
            }
            Response::Welcome {
                heartbeat_timeout_ms,
            } => put_u64(b, *heartbeat_timeout_ms),
            Response::Servers(nodes) => {
                put_u64(b, nodes.len() as u64);
                for n in nodes {
                    put_u64(b, n.id);
                    put_text(b, &n.address);
                    if let Some(role) = n.role {
                        put_u64(b, role.code());
                    }
                }
            }
            Response::Db { id } => {
                put_u32(b, *id);
                put_u32(b, 0);
            }
            Response::Stmt(s) => {
                put_u32(b, 0);
                put_u32(b, s.id);
                put_u64(b, s.params);
                if let Some(off) = s.tail_offset {
                    put_u64(b, off);
                }
            }
            Response::Result(r) => {
                put_u64(b, r.last_insert_id as u64);
                put_u64(b, r.rows_affected);
            }
            Response::Rows(batch) => batch.encode_body(b),
            Response::Empty => put_u64(b, 0),
            Response::Files(files) => {
                put_u64(b, files.len() as u64);
                for f in files {
                    put_text(b, &f.name);
                    put_blob(b, &f.data);
                }
            }
            Response::Metadata(m) => {
                put_u64(b, m.failure_domain);
                put_u64(b, m.weight);
            }
        })
    }
}

impl RowsBatch {
    /// Appends this batch as a ROWS message body (for fake servers and tests).
    pub fn encode_body(&self, buf: &mut Vec<u8>) {
        put_u64(buf, self.columns.len() as u64);
        for c in &self.columns {
            put_text(buf, c);
        }
        let hdr_len = (self.columns.len().div_ceil(2) + 7) & !7;
        for row in self.rows() {
            let start = buf.len();
            buf.resize(start + hdr_len, 0);
            for (i, v) in row.iter().enumerate() {
                let code = v.value_type().code() << (4 * (i % 2));
                if let Some(b) = buf.get_mut(start + i / 2) {
                    *b |= code;
                }
            }
            for v in row {
                v.encode(buf);
            }
        }
        put_u64(buf, if self.last { DONE } else { PART });
    }
}
