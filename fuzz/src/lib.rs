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
use corridor_gateway::model::{
    ModelError,
    cluster::{Cluster, Endpoints},
    listener::Listener,
    route::RouteConfig,
};
use corridor_proto::envoy::config::{
    cluster::v3::Cluster as PbCluster, endpoint::v3::ClusterLoadAssignment,
    listener::v3::Listener as PbListener, route::v3::RouteConfiguration,
};
use corridor_proto::type_url;
use prost::Message;
use serde::Deserialize;

/// The resource types of the `xds_resources` target, by the value of its first byte
/// (modulo the count).
pub const XDS_TYPES: [&str; 4] = ["listener", "route", "cluster", "endpoint"];
/// The type URLs of [`XDS_TYPES`], in the same order.
pub const XDS_TYPE_URLS: [&str; 4] = [
    type_url::LISTENER,
    type_url::ROUTE,
    type_url::CLUSTER,
    type_url::ENDPOINT,
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

/// Decodes `body` as the resource type `XDS_TYPES[tag % 4]` and converts it.
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
        _ => decode_and(body, |pb: &ClusterLoadAssignment| Endpoints::try_from(pb)),
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
    let protocol = if transport % 2 == 0 { Protocol::Udp } else { Protocol::Tcp };
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
    assert!(decoder.is_empty(), "{} bytes of trailing junk after the response", decoder.len());
    if message.len() >= 2 {
        assert_eq!(parsed.metadata.id, u16::from_be_bytes([message[0], message[1]]));
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
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(r) => r,
                Err(e) => panic!("cannot build a runtime: {e}"),
            };
            (runtime, sample::handler(true))
        })
    }
}
