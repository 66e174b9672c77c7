//! Target `requests`: the request decoder that fake servers and the connection target trust.

use bytes::Bytes;
use dqlite_proto::server::{Header, Request, WORD};

use super::{as_sent, tracing};

/// The request with its parameters as the client sends them (see [`as_sent`]).
fn sent_form(mut req: Request<'static>) -> Request<'static> {
    if let Request::Exec { params, .. }
    | Request::Query { params, .. }
    | Request::ExecSql { params, .. }
    | Request::QuerySql { params, .. } = &mut req
    {
        *params = as_sent(params).into();
    }
    req
}

/// Layout: `[kind] [schema] [body...]`. `Request::decode` never panics and fails only with a
/// typed error; a decoded request has the type asked for, and encoding it as the client would
/// and decoding that frame again gives the same request (compared by `Debug`, so NaN floats
/// compare equal, with `UnixTime` parameters sent as INTEGER), in a frame of whole words whose header names the same type.
pub fn requests(data: &[u8]) {
    let [kind, schema, body @ ..] = data else {
        return;
    };
    let decoded = Request::decode(*kind, *schema, Bytes::copy_from_slice(body));
    trace!("requests: kind {kind} schema {schema} -> {decoded:?}");
    let Ok(req) = decoded else {
        return;
    };
    assert_eq!(req.code(), *kind, "decoded {req:?} from type {kind}");
    let mut frame = Vec::new();
    if req.encode_frame(&mut frame).is_err() {
        // Only a body over the frame limit is refused, and a fuzz input is far below it.
        panic!("re-encoding {req:?} was refused");
    }
    let Some(head) = frame.first_chunk::<WORD>() else {
        panic!("re-encoding {req:?} gave {} bytes", frame.len());
    };
    let h = Header::decode(*head);
    assert_eq!(h.kind, *kind, "re-encoded header type");
    assert_eq!(
        h.body_len() as usize,
        frame.len() - WORD,
        "re-encoded header length"
    );
    let again = Request::decode(h.kind, h.schema, Bytes::copy_from_slice(&frame[WORD..]))
        .unwrap_or_else(|e| panic!("re-encoded {req:?} does not decode: {e}"));
    assert_eq!(
        format!("{:?}", sent_form(again)),
        format!("{:?}", sent_form(req)),
        "round trip"
    );
}
