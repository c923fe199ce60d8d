//! W3C trace context: the gateway's own span of each traced request.
//!
//! An incoming `traceparent` (HTTP header, Dubbo attachment, Thrift THeader header) is
//! continued: the gateway's span keeps its trace id, records the caller's span as its
//! parent, and the upstream gets a `traceparent` naming the gateway's span. A request
//! without one starts a new trace when `--trace-sampling` is above zero (sampled at that
//! rate); otherwise nothing is traced and no tracing work is done. Framed and unframed
//! Thrift have no headers: they neither bring nor carry a trace.

use std::fmt;
use std::time::SystemTime;

use rand::Rng;

use super::otlp::Exporter;

/// The attribute and header name, the same in every protocol.
pub const TRACEPARENT: &str = "traceparent";

/// The only `traceparent` version written; later versions are read by their first four
/// fields, as the W3C spec asks.
const VERSION: &str = "00";
/// Length of a version-00 `traceparent`: `00-` + 32 + `-` + 16 + `-` + 2.
const TRACEPARENT_LEN: usize = 55;
/// The `sampled` bit of the trace flags.
const SAMPLED: u8 = 0x01;

/// A `traceparent` as received: the caller's trace and span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parent {
    /// The trace.
    pub trace_id: [u8; 16],
    /// The caller's span.
    pub span_id: [u8; 8],
    /// Trace flags (bit 0: sampled).
    pub flags: u8,
}

impl Parent {
    /// Reads a `traceparent` value; `None` when it is malformed, of the forbidden
    /// version `ff`, or names an all-zero trace or span (the spec says to ignore it then,
    /// and start afresh).
    pub fn parse(value: &[u8]) -> Option<Parent> {
        if value.len() < TRACEPARENT_LEN {
            return None;
        }
        let version = hex_byte(&value[0..2])?;
        // Version 00 has exactly these fields; a later one may append `-...`.
        let exact = version == 0 && value.len() != TRACEPARENT_LEN;
        let open_end = value.len() > TRACEPARENT_LEN && value[TRACEPARENT_LEN] != b'-';
        if version == 0xff || exact || open_end {
            return None;
        }
        if value[2] != b'-' || value[35] != b'-' || value[52] != b'-' {
            return None;
        }
        let mut trace_id = [0u8; 16];
        let mut span_id = [0u8; 8];
        hex_into(&value[3..35], &mut trace_id)?;
        hex_into(&value[36..52], &mut span_id)?;
        let flags = hex_byte(&value[53..55])?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(Parent {
            trace_id,
            span_id,
            flags,
        })
    }
}

/// The gateway's span of one request.
#[derive(Debug, Clone)]
pub struct Span {
    /// The trace (the caller's, or a new one).
    pub trace_id: [u8; 16],
    /// This span.
    pub span_id: [u8; 8],
    /// The caller's span, when the request brought a `traceparent`.
    pub parent_id: Option<[u8; 8]>,
    /// Whether the trace is sampled (the caller's decision, or `--trace-sampling`'s).
    pub sampled: bool,
    /// When the request arrived, for the exported span.
    pub start: SystemTime,
}

impl Span {
    /// The `traceparent` to send upstream: this trace, this span as the parent.
    pub fn traceparent(&self) -> String {
        let flags = if self.sampled { SAMPLED } else { 0 };
        format!(
            "{VERSION}-{}-{}-{flags:02x}",
            Hex(&self.trace_id),
            Hex(&self.span_id)
        )
    }

    /// The trace id in hex, as the access log shows it.
    pub fn trace_id_hex(&self) -> Hex<'_> {
        Hex(&self.trace_id)
    }
}

/// Lower-case hex of a byte string, formatted without allocating.
#[derive(Debug, Clone, Copy)]
pub struct Hex<'a>(pub &'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Starts spans and hands finished sampled ones to the exporter.
#[derive(Debug, Default)]
pub struct Tracer {
    /// Share of requests without a `traceparent` that start a sampled trace, 0.0 to 1.0.
    sampling: f64,
    /// The OTLP exporter, with `--otlp-endpoint`.
    exporter: Option<Exporter>,
}

impl Tracer {
    /// A tracer sampling `percent` (0 to 100) of new traces, exporting through
    /// `exporter`.
    pub fn new(percent: f64, exporter: Option<Exporter>) -> Tracer {
        Tracer {
            sampling: (percent / 100.0).clamp(0.0, 1.0),
            exporter,
        }
    }

    /// The span of a request that brought `incoming` (its `traceparent`, if any): the
    /// caller's trace continued, a new trace when sampling is on, else none.
    pub fn start(&self, incoming: Option<&[u8]>) -> Option<Span> {
        let parent = incoming.and_then(Parent::parse);
        if parent.is_none() && self.sampling <= 0.0 {
            return None;
        }
        let mut rng = rand::rng();
        let span_id = nonzero_span_id(&mut rng);
        Some(match parent {
            Some(p) => Span {
                trace_id: p.trace_id,
                span_id,
                parent_id: Some(p.span_id),
                sampled: p.flags & SAMPLED != 0,
                start: SystemTime::now(),
            },
            None => {
                let mut trace_id = [0u8; 16];
                while trace_id == [0; 16] {
                    rng.fill(&mut trace_id);
                }
                Span {
                    trace_id,
                    span_id,
                    parent_id: None,
                    sampled: self.sampling >= 1.0 || rng.random_bool(self.sampling),
                    start: SystemTime::now(),
                }
            }
        })
    }

    /// The exporter, when spans are exported.
    pub fn exporter(&self) -> Option<&Exporter> {
        self.exporter.as_ref()
    }
}

fn nonzero_span_id(rng: &mut impl Rng) -> [u8; 8] {
    let mut id = [0u8; 8];
    while id == [0; 8] {
        rng.fill(&mut id);
    }
    id
}

fn hex_nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        // Upper case is invalid in traceparent.
        _ => None,
    }
}

fn hex_byte(two: &[u8]) -> Option<u8> {
    Some(hex_nibble(*two.first()?)? << 4 | hex_nibble(*two.get(1)?)?)
}

fn hex_into(hex: &[u8], out: &mut [u8]) -> Option<()> {
    for (i, b) in out.iter_mut().enumerate() {
        *b = hex_byte(hex.get(2 * i..2 * i + 2)?)?;
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_traceparent_is_continued_with_a_new_span() {
        let tracer = Tracer::new(0.0, None);
        let span = tracer.start(Some(GOOD.as_bytes())).unwrap();
        assert_eq!(
            Hex(&span.trace_id).to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(
            span.parent_id,
            Some([0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7])
        );
        assert!(span.sampled);
        let out = span.traceparent();
        assert!(
            out.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "{out}"
        );
        assert!(out.ends_with("-01"), "{out}");
        assert_ne!(&out[36..52], "00f067aa0ba902b7", "a new parent id");
        assert_eq!(Parent::parse(out.as_bytes()).unwrap().span_id, span.span_id);
    }

    #[test]
    fn the_callers_sampling_decision_is_kept() {
        let unsampled = GOOD.replace("-01", "-00");
        let span = Tracer::new(100.0, None)
            .start(Some(unsampled.as_bytes()))
            .unwrap();
        assert!(!span.sampled);
        assert!(span.traceparent().ends_with("-00"));
    }

    #[test]
    fn no_traceparent_starts_a_trace_only_when_sampling() {
        assert!(Tracer::new(0.0, None).start(None).is_none());
        let span = Tracer::new(100.0, None).start(None).unwrap();
        assert!(span.sampled && span.parent_id.is_none());
        assert_ne!(span.trace_id, [0; 16]);
    }

    #[test]
    fn malformed_traceparents_are_ignored() {
        let bad = [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ];
        for b in bad {
            assert_eq!(Parent::parse(b.as_bytes()), None, "{b:?}");
        }
        // A later version may carry more fields.
        let future = GOOD.replacen("00", "01", 1) + "-what-comes-next";
        assert!(Parent::parse(future.as_bytes()).is_some());
    }
}
