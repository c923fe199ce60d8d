//! Gateway target ports: every meshed (service, port) gets its own port on the gateway
//! pods, taken from a configurable range (DESIGN.md §2).
//!
//! The allocator holds no state of its own between passes: the allocation lives on the
//! gateway address Services (annotation [`super::PORTS_ANNOTATION`]), and each pass
//! rebuilds the allocator from the Services the API holds. A port is therefore free again
//! only once no address Service names it any more, that is, after garbage collection.

use std::{collections::BTreeMap, collections::BTreeSet, fmt, str::FromStr};

use serde::Serialize;

use crate::{addressing::fnv1a, store::ObjectKey};

/// Default range of gateway target ports (DESIGN.md §2): 40,000 ports, above the ports
/// services commonly listen on and above the gateway's own (15000–15021), so a listener
/// for a meshed port never clashes with the gateway's admin, metrics or readiness ports.
pub const DEFAULT_PORT_RANGE: &str = "20000-59999";

/// Errors of port ranges, allocation and the ports annotation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    /// Not `first-last` with `0 < first <= last`.
    #[error("{0:?} is not a port range like 20000-59999 (first-last, 1 <= first <= last <= 65535)")]
    InvalidRange(String),
    /// Every port of the range is taken.
    #[error(
        "no free gateway port for {service} port {port}: all {size} ports of {range} are taken \
         (widen --gateway-ports, or opt services out with the label corridor.io/mesh=disabled)"
    )]
    Exhausted {
        /// The service that could not be meshed.
        service: ObjectKey,
        /// Its port that found no gateway port.
        port: u16,
        /// The range.
        range: PortRange,
        /// Number of ports in the range.
        size: u32,
    },
    /// The ports annotation does not parse.
    #[error("annotation {annotation}: {reason}", annotation = super::PORTS_ANNOTATION)]
    Annotation {
        /// Why.
        reason: String,
    },
}

/// An inclusive range of TCP ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    first: u16,
    last: u16,
}

impl PortRange {
    /// The range `first..=last`; port 0 is not a port.
    pub fn new(first: u16, last: u16) -> Result<Self, PortError> {
        if first == 0 || first > last {
            return Err(PortError::InvalidRange(format!("{first}-{last}")));
        }
        Ok(Self { first, last })
    }

    /// First port.
    pub fn first(&self) -> u16 {
        self.first
    }

    /// Last port (included).
    pub fn last(&self) -> u16 {
        self.last
    }

    /// Number of ports.
    pub fn size(&self) -> u32 {
        u32::from(self.last) - u32::from(self.first) + 1
    }

    /// True when `port` lies in the range.
    pub fn contains(&self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }

    /// The `index`-th port, wrapping around.
    fn nth(&self, index: u64) -> u16 {
        // The remainder is below size() <= 65535, so the sum stays a port number.
        (u32::from(self.first) + (index % u64::from(self.size())) as u32) as u16
    }
}

impl Default for PortRange {
    fn default() -> Self {
        Self {
            first: 20000,
            last: 59999,
        }
    }
}

impl FromStr for PortRange {
    type Err = PortError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || PortError::InvalidRange(s.to_string());
        let (first, last) = s.trim().split_once('-').ok_or_else(invalid)?;
        let first: u16 = first.trim().parse().map_err(|_| invalid())?;
        let last: u16 = last.trim().parse().map_err(|_| invalid())?;
        Self::new(first, last).map_err(|_| invalid())
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

impl Serialize for PortRange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Hands out unique ports of a range. Build one per pass, [`PortAllocator::claim`] every
/// port the existing address Services hold, then [`PortAllocator::allocate`] the rest.
#[derive(Debug, Clone)]
pub struct PortAllocator {
    range: PortRange,
    taken: BTreeSet<u16>,
}

impl PortAllocator {
    /// An allocator with every port of `range` free.
    pub fn new(range: PortRange) -> Self {
        Self {
            range,
            taken: BTreeSet::new(),
        }
    }

    /// The range ports come from.
    pub fn range(&self) -> PortRange {
        self.range
    }

    /// Marks `port` taken (an existing address Service holds it). False when it already
    /// was, or lies outside the range (then it is not the allocator's to track).
    pub fn claim(&mut self, port: u16) -> bool {
        self.range.contains(port) && self.taken.insert(port)
    }

    /// True when `port` is taken.
    pub fn is_taken(&self, port: u16) -> bool {
        self.taken.contains(&port)
    }

    /// Number of free ports.
    pub fn free(&self) -> u32 {
        // taken only ever holds ports of the range, so it is at most size().
        self.range.size() - self.taken.len() as u32
    }

    /// The port `service`'s `port` asks for first: a hash of `namespace/name/port`, so
    /// that the same service gets the same port on every controller as long as nothing
    /// else sits there.
    pub fn preferred(&self, service: &ObjectKey, port: u16) -> u16 {
        let hash = fnv1a(format!("{}/{}/{port}", service.namespace, service.name).as_bytes());
        self.range.nth(hash)
    }

    /// Takes a port for `service`'s `port`: the preferred one, else the next free one
    /// after it (wrapping around the range).
    pub fn allocate(&mut self, service: &ObjectKey, port: u16) -> Result<u16, PortError> {
        if self.free() == 0 {
            return Err(PortError::Exhausted {
                service: service.clone(),
                port,
                range: self.range,
                size: self.range.size(),
            });
        }
        let start = u64::from(self.preferred(service, port) - self.range.first);
        // A free port exists, so the probe ends within size() steps.
        let found = (0..u64::from(self.range.size()))
            .map(|step| self.range.nth(start + step))
            .find(|p| !self.taken.contains(p))
            .unwrap_or(self.range.first);
        self.taken.insert(found);
        Ok(found)
    }

    /// Gives back a port taken in this pass for a service that then could not be meshed
    /// after all (it has no address Service yet, so nothing else can refer to the port).
    pub fn release(&mut self, port: u16) {
        self.taken.remove(&port);
    }
}

/// The ports annotation's value: `{"<original port>": <gateway port>, ...}`, keys in
/// numeric order.
pub fn encode_ports(ports: &BTreeMap<u16, u16>) -> String {
    // serde_json writes integer map keys as strings, in the map's (numeric) order.
    serde_json::to_string(ports).unwrap_or_else(|_| "{}".to_string())
}

/// Parses the ports annotation.
pub fn decode_ports(text: &str) -> Result<BTreeMap<u16, u16>, PortError> {
    let ports: BTreeMap<u16, u16> =
        serde_json::from_str(text).map_err(|e| PortError::Annotation {
            reason: format!("{text:?}: {e} (expected a JSON object like {{\"80\": 20417}})"),
        })?;
    if let Some((original, gateway)) = ports.iter().find(|(o, g)| **o == 0 || **g == 0) {
        return Err(PortError::Annotation {
            reason: format!("{text:?}: port 0 ({original} -> {gateway}) is not a port"),
        });
    }
    Ok(ports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_parses_and_rejects_nonsense() {
        let r: PortRange = DEFAULT_PORT_RANGE.parse().unwrap();
        assert_eq!(r, PortRange::default());
        assert_eq!((r.first(), r.last(), r.size()), (20000, 59999, 40000));
        assert_eq!(r.to_string(), "20000-59999");
        assert!(r.contains(20000) && r.contains(59999) && !r.contains(60000));
        for bad in ["", "20000", "5-4", "0-10", "1-65536", "a-b", "-5"] {
            assert!(bad.parse::<PortRange>().is_err(), "{bad:?}");
        }
        assert_eq!("7-7".parse::<PortRange>().unwrap().size(), 1);
    }

    #[test]
    fn annotation_round_trips_in_numeric_order() {
        let ports = BTreeMap::from([(9080, 20417), (80, 31000), (443, 20001)]);
        let text = encode_ports(&ports);
        assert_eq!(text, r#"{"80":31000,"443":20001,"9080":20417}"#);
        assert_eq!(decode_ports(&text).unwrap(), ports);
        assert!(decode_ports("[]").is_err());
        assert!(decode_ports(r#"{"http": 20000}"#).is_err());
        assert!(decode_ports(r#"{"80": 70000}"#).is_err());
        assert!(decode_ports(r#"{"80": 0}"#).is_err());
    }

    #[test]
    fn preferred_port_is_stable_and_probing_skips_taken_ports() {
        let range = PortRange::new(100, 109).unwrap();
        let svc = ObjectKey::new("default", "reviews");
        let mut a = PortAllocator::new(range);
        let first = a.allocate(&svc, 9080).unwrap();
        assert_eq!(first, a.preferred(&svc, 9080));
        // Pinned: the hash decides ports that live on in the cluster across upgrades.
        let hash = fnv1a(b"default/reviews/9080");
        assert_eq!(u64::from(first), 100 + hash % 10);
        // The same port asked again (another port of the same hash) probes onwards.
        let second = a.allocate(&svc, 9080).unwrap();
        assert_eq!(second, if first == 109 { 100 } else { first + 1 });
        // Claims: out of range ports are not tracked; a taken port is not claimed twice.
        assert!(!a.claim(99));
        assert!(!a.claim(first));
        assert_eq!(a.free(), 8);
        a.release(first);
        assert!(!a.is_taken(first));
        assert_eq!(a.free(), 9);
    }

    #[test]
    fn exhaustion_names_the_service() {
        let mut a = PortAllocator::new(PortRange::new(7000, 7001).unwrap());
        let svc = ObjectKey::new("shop", "cart");
        let got: BTreeSet<u16> =
            [a.allocate(&svc, 1).unwrap(), a.allocate(&svc, 2).unwrap()].into();
        assert_eq!(got, BTreeSet::from([7000, 7001]));
        let err = a.allocate(&svc, 3).unwrap_err();
        assert!(matches!(
            err,
            PortError::Exhausted {
                port: 3,
                size: 2,
                ..
            }
        ));
        let text = err.to_string();
        assert!(
            text.contains("shop/cart port 3") && text.contains("7000-7001"),
            "{text}"
        );
    }
}
