//! The test vectors (testdata/README.md says how each file was made) and what each
//! must decode to.

use super::super::protocol::Protocol;
use super::super::transport::Transport;
use crate::codec::{MessageType, ResponseStatus};

/// (file stem, transport, protocol, message type, seqid, method, response status).
pub(super) type Expected = (
    &'static str,
    &'static str,
    Transport,
    Protocol,
    MessageType,
    i32,
    &'static str,
    ResponseStatus,
);

macro_rules! vector {
    ($name:literal) => {
        (
            $name,
            include_str!(concat!("../testdata/thrift-", $name, ".hex")),
        )
    };
}

pub(super) const VECTORS: &[(&str, &str)] = &[
    vector!("framed-binary-add-request"),
    vector!("framed-binary-add-reply"),
    vector!("framed-binary-exception"),
    vector!("framed-binary-oneway"),
    vector!("framed-compact-add-request"),
    vector!("framed-compact-add-reply"),
    vector!("framed-lax-binary-add-reply"),
    vector!("header-binary-add-request"),
    vector!("header-binary-rich-oneway"),
    vector!("header-compact-add-request"),
    vector!("header-compact-exception"),
    vector!("unframed-binary-rich-request"),
    vector!("unframed-compact-declared-exception-reply"),
    vector!("unframed-compact-exception"),
    vector!("unframed-compact-rich-request"),
    vector!("unframed-lax-binary-add-request"),
];

use MessageType::{Oneway, Request, Response};
use Protocol::{Binary, Compact, LaxBinary};
use ResponseStatus::{Error, Ok as Fine};
use Transport::{Framed, Header, Unframed};

#[rustfmt::skip]
pub(super) const EXPECTED: &[Expected] = &[
    ("framed-binary-add-request", "", Framed, Binary, Request, 7, "add", Fine),
    // The shared reply file carries no frame length: it reads as unframed.
    ("framed-binary-add-reply", "", Unframed, Binary, Response, 7, "add", Fine),
    ("framed-binary-exception", "", Framed, Binary, Response, 12, "nope", Error),
    ("framed-binary-oneway", "", Framed, Binary, Oneway, 11, "ping", Fine),
    ("framed-compact-add-request", "", Framed, Compact, Request, 7, "add", Fine),
    ("framed-compact-add-reply", "", Framed, Compact, Response, 7, "add", Fine),
    ("framed-lax-binary-add-reply", "", Framed, LaxBinary, Response, 31, "add", Fine),
    ("header-binary-add-request", "user=alice", Header, Binary, Request, 21, "add", Fine),
    ("header-binary-rich-oneway", "k=v", Header, Binary, Oneway, 24, "rich", Fine),
    ("header-compact-add-request", "env=canary", Header, Compact, Request, 22, "add", Fine),
    ("header-compact-exception", "", Header, Compact, Response, 23, "nope", Error),
    ("unframed-binary-rich-request", "", Unframed, Binary, Request, 300, "rich", Fine),
    ("unframed-compact-declared-exception-reply", "", Unframed, Compact, Response, 9, "add", Error),
    ("unframed-compact-exception", "", Unframed, Compact, Response, -5, "nope", Error),
    ("unframed-compact-rich-request", "", Unframed, Compact, Request, 70000, "rich", Fine),
    ("unframed-lax-binary-add-request", "", Unframed, LaxBinary, Request, 31, "add", Fine),
];

pub(super) fn unhex(s: &str) -> Vec<u8> {
    let s = s.trim();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

pub(super) fn bytes_of(name: &str) -> Vec<u8> {
    let (_, hex) = VECTORS.iter().find(|(n, _)| *n == name).unwrap();
    unhex(hex)
}
