//! A hand-made connection to a store's owner socket, speaking the protocol as the client
//! library does: to send what only a client process sends (its automatic resend keys), or
//! what no client library would (attacks).
#![allow(dead_code)]

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::Path;

use mqlite::remote::protocol::{
    decode, put_frame, read_frame, Hello, Request, Response, ResponseFrame, Welcome,
    FORMAT_VERSION, PROTOCOL_VERSION,
};
use mqlite::{Message, MessageId};

/// The hello of a client of `dir` speaking `protocol`.
pub fn hello(dir: &Path, protocol: u32) -> Vec<u8> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(dir).unwrap();
    Hello {
        protocol,
        format: FORMAT_VERSION,
        pid: std::process::id(),
        dir: (m.dev(), m.ino()),
    }
    .encode()
    .to_vec()
}

/// A connection to the owner of `dir`, welcomed.
pub fn client(dir: &Path) -> UnixStream {
    let mut c = UnixStream::connect(dir.join("owner.sock")).unwrap();
    c.write_all(&hello(dir, PROTOCOL_VERSION)).unwrap();
    let w = Welcome::read(&mut c).unwrap();
    assert!(w.refusal.is_none(), "{:?}", w.refusal);
    c
}

/// One request and its whole answer (the parts of a split one joined).
pub fn call(c: &mut UnixStream, id: u64, req: Request) -> Response {
    let mut b = Vec::new();
    put_frame(&mut b, &(id, req)).unwrap();
    c.write_all(&b).unwrap();
    let mut whole: Option<Response> = None;
    loop {
        assert!(read_frame(c, &mut b).unwrap(), "the owner hung up");
        let (rid, more, r): ResponseFrame = decode(&b).unwrap();
        assert_eq!(rid, id);
        match &mut whole {
            None => whole = Some(r),
            Some(w) => assert!(w.extend(r)),
        }
        if !more {
            return whole.unwrap();
        }
    }
}

/// A publish as a client process makes it (its message carrying the client's automatic key),
/// on a fresh connection, as after a reconnection.
pub fn publish(dir: &Path, topic: &str, message: Message) -> MessageId {
    let req = Request::Publish {
        topic: topic.into(),
        message,
    };
    match call(&mut client(dir), 1, req) {
        Response::Published { id, .. } => id,
        r => panic!("{r:?}"),
    }
}

/// A batch publish as a client process makes it.
pub fn publish_batch(dir: &Path, topic: &str, messages: Vec<Message>) -> Vec<MessageId> {
    let req = Request::PublishBatch {
        topic: topic.into(),
        messages,
    };
    match call(&mut client(dir), 1, req) {
        Response::Ids(ids) => ids,
        r => panic!("{r:?}"),
    }
}
