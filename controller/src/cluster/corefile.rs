//! The CoreDNS hook of `dns.mode=stub` (DESIGN.md §7): a server block for the cluster zone
//! that forwards it to corridor-dns, added to the Corefile between marker comments so it
//! is found again, replaced when its target changes, and removed leaving every other line
//! exactly as it was.
//!
//! Why a server block of its own: CoreDNS hands a query to the server block with the
//! most specific zone that contains it, on the port it arrived at. A `cluster.local:53`
//! block therefore takes every cluster.local query away from `.:53`, whose `kubernetes`
//! plugin (which also claims cluster.local) no longer sees them; nothing in the existing
//! blocks needs to change, and removing the block gives them back.
//!
//! Why not the reverse zones (`in-addr.arpa`, `ip6.arpa`): rewriting changes forward
//! answers only. The `kubernetes` plugin keeps answering PTR queries for Service and pod
//! IPs truthfully (an address Service's ClusterIP names that Service), and claiming the
//! reverse zones would route every reverse lookup, the internet's included, through
//! corridor-dns for nothing, widening what an outage of corridor-dns could break.
//!
//! The block is put first in the Corefile: its lines end with their own newlines, so
//! removing them gives back the original byte for byte, whatever the last line ends with.

use std::net::SocketAddr;

/// First line of the block (what follows the marker is for humans reading the ConfigMap).
pub const BEGIN_MARKER: &str = "# corridor: begin";
/// Last line of the block.
pub const END_MARKER: &str = "# corridor: end";
/// Port CoreDNS serves when a server block names none.
const DEFAULT_DNS_PORT: u16 = 53;
/// Upstream queries in flight the block's `forward` allows, as kubeadm's default Corefile
/// sets for its own `forward`: past it CoreDNS answers REFUSED instead of growing memory.
const MAX_CONCURRENT: u32 = 1000;

/// Why a Corefile cannot be edited.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CorefileError {
    /// A begin marker without an end marker: the block's extent is unknown.
    #[error(
        "line {line}: {BEGIN_MARKER:?} without a following {END_MARKER:?}; fix the Corefile by hand"
    )]
    Unterminated {
        /// 1-based line of the begin marker.
        line: usize,
    },
    /// An end marker without a begin marker.
    #[error(
        "line {line}: {END_MARKER:?} without a preceding {BEGIN_MARKER:?}; fix the Corefile by hand"
    )]
    StrayEnd {
        /// 1-based line of the end marker.
        line: usize,
    },
    /// Another server block already serves the zone on that port: CoreDNS refuses to
    /// load two, so adding ours would break the next CoreDNS restart.
    #[error(
        "the Corefile already has a server block for {zone} on port {port} ({key:?}); \
         remove it or use dns.mode=replace"
    )]
    ZoneTaken {
        /// The zone.
        zone: String,
        /// The port.
        port: u16,
        /// The server block key found.
        key: String,
    },
    /// The zone is not a DNS domain.
    #[error("{0:?} is not a DNS zone like cluster.local")]
    InvalidZone(String),
}

/// The Corefile with the forwarding block for `zone` to `target`: added first when there is
/// none, replaced where it is when it differs, unchanged when it is already there.
pub fn add_stub(corefile: &str, zone: &str, target: SocketAddr) -> Result<String, CorefileError> {
    let zone = normalize_zone(zone)
        .filter(|z| z != ".")
        .ok_or_else(|| CorefileError::InvalidZone(zone.to_string()))?;
    let lines: Vec<&str> = corefile.split_inclusive('\n').collect();
    let regions = regions(&lines)?;
    let outside: Vec<&str> = outside(&lines, &regions);
    let keys = server_keys(&outside);
    let port = keys
        .iter()
        .find(|k| k.zone == ".")
        .map_or(DEFAULT_DNS_PORT, |k| k.port);
    if let Some(k) = keys.iter().find(|k| k.zone == zone && k.port == port) {
        return Err(CorefileError::ZoneTaken {
            zone,
            port,
            key: k.text.clone(),
        });
    }
    let block = render(&zone, port, target);
    let Some(first) = regions.first() else {
        return Ok(format!("{block}{corefile}"));
    };
    let mut out = String::with_capacity(corefile.len() + block.len());
    for (i, line) in lines.iter().enumerate() {
        if i == first.start {
            out.push_str(&block);
        }
        if !regions.iter().any(|r| r.contains(i)) {
            out.push_str(line);
        }
    }
    Ok(out)
}

/// The Corefile without Corridor's block (every copy of it); other lines untouched.
pub fn remove_stub(corefile: &str) -> Result<String, CorefileError> {
    let lines: Vec<&str> = corefile.split_inclusive('\n').collect();
    let regions = regions(&lines)?;
    Ok(outside(&lines, &regions).concat())
}

/// The block, every line ending with a newline.
fn render(zone: &str, port: u16, target: SocketAddr) -> String {
    let to = match target {
        SocketAddr::V4(v4) if v4.port() == DEFAULT_DNS_PORT => v4.ip().to_string(),
        other => other.to_string(),
    };
    format!(
        "{BEGIN_MARKER} (managed by corridor-controller: {zone} is answered by corridor-dns; removed on uninstall)\n\
         {zone}:{port} {{\n    errors\n    forward . {to} {{\n        max_concurrent {MAX_CONCURRENT}\n    }}\n}}\n\
         {END_MARKER}\n"
    )
}

/// Lines `start..=end` of one marked block.
#[derive(Debug, Clone, Copy)]
struct Region {
    start: usize,
    end: usize,
}

impl Region {
    fn contains(&self, line: usize) -> bool {
        (self.start..=self.end).contains(&line)
    }
}

fn regions(lines: &[&str]) -> Result<Vec<Region>, CorefileError> {
    let mut out = Vec::new();
    let mut open = None;
    for (i, line) in lines.iter().enumerate() {
        let text = line.trim();
        if text.starts_with(BEGIN_MARKER) {
            if let Some(start) = open {
                return Err(CorefileError::Unterminated { line: start + 1 });
            }
            open = Some(i);
        } else if text == END_MARKER {
            let start = open.take().ok_or(CorefileError::StrayEnd { line: i + 1 })?;
            out.push(Region { start, end: i });
        }
    }
    match open {
        Some(start) => Err(CorefileError::Unterminated { line: start + 1 }),
        None => Ok(out),
    }
}

fn outside<'a>(lines: &[&'a str], regions: &[Region]) -> Vec<&'a str> {
    lines
        .iter()
        .enumerate()
        .filter(|(i, _)| !regions.iter().any(|r| r.contains(*i)))
        .map(|(_, l)| *l)
        .collect()
}

/// A server block key: `zone[:port]`, maybe with a `dns://` scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ServerKey {
    text: String,
    zone: String,
    port: u16,
}

/// The keys of every top-level server block (snippets and other transports left out).
/// Enough of Caddyfile syntax for that: `#` comments, quoted tokens, braces as tokens.
fn server_keys(lines: &[&str]) -> Vec<ServerKey> {
    let mut keys = Vec::new();
    let mut pending = Vec::new();
    let mut depth = 0usize;
    for line in lines {
        for token in tokens(line) {
            match token.as_str() {
                "{" => {
                    if depth == 0 {
                        keys.extend(pending.drain(..).filter_map(|t: String| parse_key(&t)));
                    }
                    depth += 1;
                }
                "}" => depth = depth.saturating_sub(1),
                _ if depth == 0 => pending.push(token),
                _ => {}
            }
        }
        // A directive at the top level (`import`) ends at its line; keys continue only
        // with a trailing comma, which parse_key tolerates either way.
        if depth == 0 && pending.first().is_some_and(|t| t == "import") {
            pending.clear();
        }
    }
    keys
}

fn tokens(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '#' {
            break;
        } else if c == '"' || c == '`' {
            chars.next();
            out.push(chars.by_ref().take_while(|&d| d != c).collect());
        } else {
            let mut token = String::new();
            while let Some(&d) = chars.peek() {
                if d.is_whitespace() {
                    break;
                }
                token.push(d);
                chars.next();
            }
            out.push(token);
        }
    }
    out
}

fn parse_key(text: &str) -> Option<ServerKey> {
    let trimmed = text.trim_end_matches(',');
    if trimmed.starts_with('(') {
        return None;
    }
    let rest = match trimmed.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("dns") => rest,
        Some(_) => return None,
        None => trimmed,
    };
    let (zone, port) = match rest.rsplit_once(':') {
        Some((zone, port)) => (zone, port.parse().ok()?),
        None => (rest, DEFAULT_DNS_PORT),
    };
    Some(ServerKey {
        text: text.to_string(),
        zone: normalize_zone(zone)?,
        port,
    })
}

/// Lower case, without the trailing dot; `.` is the root. `None` unless a DNS name.
fn normalize_zone(zone: &str) -> Option<String> {
    let lower = zone.trim().to_ascii_lowercase();
    if lower == "." {
        return Some(lower);
    }
    let name = lower.strip_suffix('.').unwrap_or(&lower);
    let valid = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    valid.then(|| name.to_string())
}

#[cfg(test)]
pub(crate) mod tests;
