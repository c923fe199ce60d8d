//! The bodies of Corridor's fuzz targets, as plain functions so that they also build and
//! run as ordinary code (`cargo test` in this crate replays every seed through them).
//!
//! Each function must return normally for any input: a panic, an abort or a hang is a bug
//! in the decoder it drives.

use corridor_controller::{
    admission::Admission,
    resources::parse_document,
    store::Store,
    translate::{TranslateOptions, translate},
};
use corridor_gateway::model::meta_route::MetaRouteConfig;
use corridor_gateway::model::{
    ModelError,
    cluster::{Cluster, Endpoints},
    listener::Listener,
    route::RouteConfig,
};
use corridor_proto::aeraki::meta_protocol_proxy::config::route::v1alpha::RouteConfiguration as PbMetaRouteConfiguration;
use corridor_proto::envoy::config::{
    cluster::v3::Cluster as PbCluster, endpoint::v3::ClusterLoadAssignment,
    listener::v3::Listener as PbListener, route::v3::RouteConfiguration,
};
use corridor_proto::type_url;
use prost::Message;
use serde::Deserialize;

/// The resource types of the `xds_resources` target, by the value of its first byte
/// (modulo the count).
pub const XDS_TYPES: [&str; 5] = ["listener", "route", "cluster", "endpoint", "meta_route"];
/// The type URLs of [`XDS_TYPES`], in the same order.
pub const XDS_TYPE_URLS: [&str; 5] = [
    type_url::LISTENER,
    type_url::ROUTE,
    type_url::CLUSTER,
    type_url::ENDPOINT,
    type_url::META_ROUTE,
];

/// Manifest bytes → UTF-8 → YAML documents → objects → store → admission → translation,
/// as the controller's manifests-directory source chains them.
pub fn manifests(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // A file with a document that does not parse contributes nothing (the real source
    // keeps what the file produced before, which here is nothing).
    let mut docs = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        match serde_yaml_ng::Value::deserialize(doc) {
            Ok(v) => docs.push(v),
            Err(_) => return,
        }
    }
    let mut store = Store::default();
    for object in docs.into_iter().flat_map(parse_document).flatten() {
        store.insert(object);
    }
    let opts = TranslateOptions::default();
    let mut admission = Admission::default();
    admission.admit(&mut store, &opts, &|_| String::new());
    let _ = admission.rejections();
    let snapshot = translate(&store, &opts);
    // Whatever the controller serves, the gateway must accept: a rejection here would be
    // a NACK in production.
    for (tag, url) in XDS_TYPE_URLS.into_iter().enumerate() {
        for (name, resource) in snapshot.get(url).iter().flat_map(|t| &t.resources) {
            if let Err(e) = convert(tag, &resource.body.value) {
                panic!("the gateway rejects {url} {name:?} made by the controller: {e}");
            }
        }
    }
}

/// First byte picks the resource type, the rest is its protobuf encoding: decode it and
/// convert it into the gateway's model.
pub fn xds_resources(data: &[u8]) {
    let _ = convert_xds(data);
}

/// The body of [`xds_resources`], returning why the gateway would reject the resource
/// (the decoder's or the model's error, as it would appear in a NACK).
pub fn convert_xds(data: &[u8]) -> Result<(), String> {
    let Some((&kind, body)) = data.split_first() else {
        return Err("empty input".to_string());
    };
    convert(usize::from(kind), body)
}

/// Decodes `body` as the resource type `XDS_TYPES[tag % 5]` and converts it.
fn convert(tag: usize, body: &[u8]) -> Result<(), String> {
    fn decode_and<P: Message + Default, M>(
        body: &[u8],
        to_model: impl FnOnce(&P) -> Result<M, ModelError>,
    ) -> Result<(), String> {
        let pb = P::decode(body).map_err(|e| e.to_string())?;
        to_model(&pb).map(drop).map_err(|e| e.to_string())
    }
    match tag % XDS_TYPES.len() {
        0 => decode_and(body, |pb: &PbListener| Listener::try_from(pb)),
        1 => decode_and(body, |pb: &RouteConfiguration| RouteConfig::try_from(pb)),
        2 => decode_and(body, |pb: &PbCluster| Cluster::try_from(pb)),
        3 => decode_and(body, |pb: &ClusterLoadAssignment| Endpoints::try_from(pb)),
        _ => decode_and(body, |pb: &PbMetaRouteConfiguration| {
            MetaRouteConfig::try_from(pb)
        }),
    }
}

/// First byte: transport (even UDP, odd TCP); the rest: one DNS message as it would arrive
/// on that transport. It goes through corridor-dns's request path (hickory's decoder, the
/// zone, the response encoder) against a small cluster; any response must itself be a
/// well-formed DNS message answering the same ID.
pub fn dns_request(data: &[u8]) {
    use hickory_server::net::xfer::Protocol;
    use hickory_server::proto::op::Message;
    use hickory_server::proto::serialize::binary::{BinDecodable, BinDecoder};

    let Some((&transport, message)) = data.split_first() else {
        return;
    };
    let protocol = if transport % 2 == 0 {
        Protocol::Udp
    } else {
        Protocol::Tcp
    };
    let (runtime, handler) = dns::fixture();
    let src = std::net::SocketAddr::from(([127, 0, 0, 1], 5300));
    let Some(reply) = runtime.block_on(handler.answer_raw(message, src, protocol)) else {
        return;
    };
    let mut decoder = BinDecoder::new(&reply);
    let parsed = match Message::read(&mut decoder) {
        Ok(m) => m,
        Err(e) => panic!("corridor-dns produced a response that does not parse: {e}"),
    };
    assert!(
        decoder.is_empty(),
        "{} bytes of trailing junk after the response",
        decoder.len()
    );
    if message.len() >= 2 {
        assert_eq!(
            parsed.metadata.id,
            u16::from_be_bytes([message[0], message[1]])
        );
    }
    if protocol == Protocol::Udp {
        assert!(reply.len() <= usize::from(corridor_dns::server::MAX_UDP_PAYLOAD));
    }
}

mod dns {
    use std::sync::OnceLock;

    use corridor_dns::server::{Handler, sample};

    /// One runtime and one handler for every input (building them per input would
    /// dominate the fuzzer's time): the sample cluster, no upstreams.
    pub fn fixture() -> &'static (tokio::runtime::Runtime, Handler) {
        static FIXTURE: OnceLock<(tokio::runtime::Runtime, Handler)> = OnceLock::new();
        FIXTURE.get_or_init(|| {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => panic!("cannot build a runtime: {e}"),
            };
            (runtime, sample::handler(true))
        })
    }
}

/// Bytes of a Dubbo stream through the gateway's Dubbo codec ([`codec_stream`]).
pub fn dubbo_codec(data: &[u8]) {
    use corridor_gateway::codec::dubbo::peer;
    // The echo backend's and load client's readers see the same frames: they may refuse
    // them, never panic.
    codec_stream(
        &corridor_gateway::codec::dubbo::DubboCodec::default(),
        data,
        |frame| {
            let _ = peer::read_invocation(frame);
            let _ = peer::read_answer(frame);
        },
    );
}

/// Bytes of a Thrift stream (any transport and protocol) through the gateway's Thrift
/// codec ([`codec_stream`]).
pub fn thrift_codec(data: &[u8]) {
    use corridor_gateway::codec::thrift::peer;
    codec_stream(
        &corridor_gateway::codec::thrift::ThriftCodec::default(),
        data,
        |frame| {
            let _ = peer::string_field(frame, 0);
            let _ = peer::string_field(frame, 1);
        },
    );
}

/// Cuts `data` into messages as a connection would, and for each message checks what
/// the proxy relies on: an empty edit writes the bytes unchanged; a new request id reads
/// back as that id; an attribute set where the codec says it can be reads back; a local
/// reply to a request is a response with the request's id. A stream that fails to decode
/// may produce an error reply, which must itself decode. Every frame is also handed to
/// `also` (more readers of the same frames).
pub fn codec_stream(
    codec: &dyn corridor_gateway::codec::Codec,
    data: &[u8],
    also: impl Fn(&corridor_gateway::codec::Frame),
) {
    use bytes::BytesMut;
    use corridor_gateway::codec::{Edit, MessageType};
    use corridor_gateway::policy::reject::{Reject, RejectKind};

    let decode_one = |bytes: &[u8]| {
        let mut buf = BytesMut::from(bytes);
        match codec.decode(&mut buf) {
            Ok(Some(frame)) => frame,
            other => panic!(
                "{}: our own output does not decode: {other:?}",
                codec.name()
            ),
        }
    };
    let mut buf = BytesMut::from(data);
    loop {
        let frame = match codec.decode(&mut buf) {
            Ok(Some(f)) => f,
            Ok(None) => return,
            Err(e) => {
                if let Some(reply) = codec.error_reply(&buf, &e) {
                    let _ = decode_one(&reply);
                }
                return;
            }
        };
        also(&frame);
        let md = &frame.metadata;
        let mut out = BytesMut::new();
        if let Err(e) = codec.encode(&frame, &Edit::default(), &mut out) {
            panic!(
                "{}: an unchanged frame cannot be written back: {e}",
                codec.name()
            );
        }
        assert_eq!(
            &out[..],
            &frame.bytes[..],
            "{}: an empty edit changed the bytes",
            codec.name()
        );

        // Thrift seqids are 32 bits: use an id every codec can carry.
        let id = md.request_id.wrapping_add(1) & 0x7fff_ffff;
        let mut edit = Edit {
            request_id: Some(id),
            set: Vec::new(),
        };
        if codec.can_mutate(md) {
            edit.set
                .push(("x-corridor-fuzz".to_string(), "1".to_string()));
        }
        let mut out = BytesMut::new();
        if codec.encode(&frame, &edit, &mut out).is_ok() {
            let again = decode_one(&out);
            assert_eq!(
                again.metadata.request_id,
                id,
                "{}: the new id did not stick",
                codec.name()
            );
            assert_eq!(again.metadata.message_type, md.message_type);
            if !edit.set.is_empty() && md.message_type == MessageType::Request {
                assert_eq!(
                    again.metadata.get("x-corridor-fuzz"),
                    Some("1"),
                    "{}: the edit was lost",
                    codec.name()
                );
            }
        }
        if md.message_type == MessageType::Request {
            let error = Reject::new(RejectKind::NoRoute, "no route (fuzz)");
            let reply = decode_one(&codec.local_reply(md, &error));
            assert_eq!(reply.metadata.message_type, MessageType::Response);
            assert_eq!(
                reply.metadata.request_id,
                md.request_id,
                "{}: local reply under another id",
                codec.name()
            );
        }
        if md.message_type == MessageType::Heartbeat
            && let Some(pong) = codec.heartbeat_reply(md)
        {
            assert_eq!(
                decode_one(&pong).metadata.message_type,
                MessageType::HeartbeatResponse
            );
        }
    }
}

/// Bytes of a stream through the gateway's RESP decoders (issue 5), both the client side
/// (commands) and the server side (replies). The first byte sets how the stream arrives:
/// its low four bits the bytes per read (1 to 16), bit 4 a small size limit (256 bytes)
/// instead of 1 MiB.
///
/// Checks: a stream decodes to the same commands or values however it is cut into reads,
/// and fails in both cases or in neither; every command and value written back by the
/// encoder decodes to itself; a decode error's reply is one RESP error; the command
/// table, arity check, key positions and slots take any command.
pub fn redis_resp(data: &[u8]) {
    let Some((&knobs, stream)) = data.split_first() else {
        return;
    };
    let read_size = usize::from(knobs & 0x0f) + 1;
    let max = if knobs & 0x10 != 0 { 256 } else { 1 << 20 };
    redis::commands(stream, read_size, max);
    redis::values(stream, read_size, max);
}

/// The pieces of [`redis_resp`].
mod redis {
    use bytes::BytesMut;
    use corridor_gateway::redis::command;
    use corridor_gateway::redis::resp::{
        Command, CommandDecoder, RespError, Value, ValueDecoder, encode,
    };
    use corridor_gateway::redis::slot;

    /// The client side: commands.
    pub(super) fn commands(stream: &[u8], read_size: usize, max: usize) {
        let (commands, error) = read_commands(stream, read_size, max);
        let (whole, whole_error) = read_commands(stream, stream.len().max(1), max);
        assert_eq!(
            commands, whole,
            "commands depend on how the stream was read"
        );
        assert_eq!(
            error.is_some(),
            whole_error.is_some(),
            "{error:?} / {whole_error:?}"
        );
        for command in &commands {
            check_command(command, max);
        }
        if let Some(e) = error {
            match read_values(&encoded(&e.reply()), 1, 1 << 20) {
                (values, None) => assert!(
                    matches!(&values[..], [v] if v.is_error()),
                    "{e:?}: the reply is not one error"
                ),
                (_, Some(e2)) => panic!("{e:?}: the reply does not decode: {e2:?}"),
            }
        }
    }

    /// The server side: replies.
    pub(super) fn values(stream: &[u8], read_size: usize, max: usize) {
        let (values, error) = read_values(stream, read_size, max);
        let (whole, whole_error) = read_values(stream, stream.len().max(1), max);
        assert_eq!(values, whole, "values depend on how the stream was read");
        assert_eq!(
            error.is_some(),
            whole_error.is_some(),
            "{error:?} / {whole_error:?}"
        );
        // The proxy takes flat replies as their bytes first: the same replies, the
        // same error.
        let mut decoder = ValueDecoder::new(max);
        let (forwarded, forwarded_error) = read_all(stream, read_size, |buf| {
            match decoder.take_flat(buf) {
                Some(wire) => {
                    let mut again = BytesMut::from(&wire[..]);
                    match ValueDecoder::new(wire.len()).decode(&mut again) {
                        Ok(Some(v)) if again.is_empty() => Ok(Some(v)),
                        other => panic!("flat bytes {wire:?} do not decode alone: {other:?}"),
                    }
                }
                None => decoder.decode(buf),
            }
        });
        assert_eq!(forwarded, values, "flat replies change what is read");
        assert_eq!(forwarded_error.is_some(), error.is_some());
        for v in &values {
            let (again, e) = read_values(&encoded(v), 1, max);
            assert_eq!(e, None, "{v:?} written back does not decode");
            assert_eq!(
                again,
                std::slice::from_ref(v),
                "{v:?} written back decodes differently"
            );
            // RESP2 forms can be longer (`_` becomes `$-1`): no limit for them.
            let resp2 = v.clone().into_resp2();
            let (again, e) = read_values(&encoded(&resp2), 7, usize::MAX);
            assert!(
                e.is_none() && again.len() == 1,
                "{resp2:?} (RESP2) does not decode: {e:?}"
            );
        }
    }

    /// Every command of `stream` read `read_size` bytes at a time, and the error that
    /// ended it, if one did.
    fn read_commands(
        stream: &[u8],
        read_size: usize,
        max: usize,
    ) -> (Vec<Command>, Option<RespError>) {
        let mut decoder = CommandDecoder::new(max);
        read_all(stream, read_size, |buf| decoder.decode(buf))
    }

    /// Every value of `stream` read `read_size` bytes at a time, and the error that
    /// ended it, if one did.
    fn read_values(stream: &[u8], read_size: usize, max: usize) -> (Vec<Value>, Option<RespError>) {
        let mut decoder = ValueDecoder::new(max);
        read_all(stream, read_size, |buf| decoder.decode(buf))
    }

    /// Feeds `stream` to `decode` `read_size` bytes at a time, as a connection would.
    fn read_all<T>(
        stream: &[u8],
        read_size: usize,
        mut decode: impl FnMut(&mut BytesMut) -> Result<Option<T>, RespError>,
    ) -> (Vec<T>, Option<RespError>) {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for chunk in stream.chunks(read_size) {
            buf.extend_from_slice(chunk);
            loop {
                match decode(&mut buf) {
                    Ok(Some(x)) => out.push(x),
                    Ok(None) => break,
                    Err(e) => return (out, Some(e)),
                }
            }
        }
        (out, None)
    }

    fn encoded(v: &Value) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode(v, &mut out);
        out.to_vec()
    }

    /// What the proxy does with a decoded command, short of sending it: written back as
    /// RESP it decodes to the same arguments at its own size; table look-up, arity, keys
    /// and their slots never fail on it.
    fn check_command(command: &Command, max: usize) {
        assert!(!command.args.is_empty(), "an empty command came out");
        let mut wire = BytesMut::new();
        command.encode(&mut wire);
        let again = match CommandDecoder::new(wire.len().max(max)).decode(&mut wire) {
            Ok(Some(c)) if wire.is_empty() => c,
            other => panic!("{command:?} written back does not decode alone: {other:?}"),
        };
        assert_eq!(again.args, command.args);
        assert_eq!(again, Command::new(command.args.clone()));
        // Wire bytes kept by the fast path are forwarded as they are: they must be
        // exactly what encoding the arguments writes.
        if let Some(kept) = &command.wire {
            let mut encoded = BytesMut::new();
            command.encode(&mut encoded);
            assert_eq!(kept[..], encoded[..], "{command:?}");
        }
        assert_eq!(command.name_upper().len(), command.name().len());
        let Some(info) = command::lookup(command.name()) else {
            let _ = command::unknown_command(&command.args);
            return;
        };
        assert!(info.name.as_bytes().eq_ignore_ascii_case(command.name()));
        if command::check_arity(info, command.args.len()).is_err() {
            return;
        }
        if let Ok(keys) = command::key_indices(info, &command.args) {
            for i in keys {
                assert!(
                    slot::slot(&command.args[i]) < slot::SLOTS,
                    "key {i} of {command:?}"
                );
            }
        }
    }
}

/// `corefile`: the bytes (UTF-8, lossily) as the Corefile in the `coredns` ConfigMap, which
/// anyone with access to kube-system may have edited by hand. Adding Corridor's block must
/// either refuse with an error or give a Corefile from which removing the block gives back
/// the input byte for byte; adding again must change nothing; removing from any input must
/// not panic, and removing twice must equal removing once.
pub fn corefile(data: &[u8]) {
    use corridor_controller::cluster::corefile::{add_stub, remove_stub};
    let text = String::from_utf8_lossy(data);
    let target = std::net::SocketAddr::from(([10, 96, 0, 53], 53));
    if let Ok(added) = add_stub(&text, "cluster.local", target) {
        assert_eq!(
            add_stub(&added, "cluster.local", target).as_deref(),
            Ok(added.as_str()),
            "adding twice changed the Corefile"
        );
        let removed = remove_stub(&added).expect("our own block is removable");
        if remove_stub(&text).as_deref() == Ok(&*text) {
            assert_eq!(
                removed, text,
                "removing the block did not give back the input"
            );
        }
    }
    if let Ok(once) = remove_stub(&text) {
        assert_eq!(
            remove_stub(&once).as_deref(),
            Ok(once.as_str()),
            "removing is not idempotent"
        );
    }
}
