//! `dig` (Debian dnsutils, BIND 9.18) as the DNS client, and a parser for its default
//! output: the header (status, flags), the EDNS pseudo-section, the three record sections,
//! and whether it had to retry over TCP.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};

/// Longest one `dig` run may take (its own timeouts are shorter; this only stops a hang).
const DIG_PATIENCE: Duration = Duration::from_secs(20);

/// Options given before the caller's: one try of 3 s, so a lost reply fails fast and a
/// test's own options (given later) win.
const DEFAULT_OPTIONS: &[&str] = &["+tries=1", "+time=3"];

/// One resource record as dig prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Owner name, with the trailing dot, in the case the server sent.
    pub name: String,
    /// TTL in seconds.
    pub ttl: u32,
    /// Record type (`A`, `SRV`, ...).
    pub rtype: String,
    /// The data in presentation format (`10.0.0.1`, `0 100 80 web.ns.svc.cluster.local.`).
    pub data: String,
}

/// A reply as dig printed it (the last one, when dig retried over TCP).
#[derive(Debug, Clone, Default)]
pub struct DigReply {
    /// `NOERROR`, `NXDOMAIN`, `SERVFAIL`, `FORMERR`, `BADVERS`, ...
    pub status: String,
    /// Header flags (`qr`, `aa`, `tc`, `rd`, `ra`).
    pub flags: Vec<String>,
    /// The `; EDNS: ...` line of the OPT pseudo-section, when the reply had an OPT.
    pub edns: Option<String>,
    /// Answer section.
    pub answer: Vec<Record>,
    /// Authority section.
    pub authority: Vec<Record>,
    /// Additional section (without the OPT pseudo-record).
    pub additional: Vec<Record>,
    /// dig saw TC over UDP and asked again over TCP.
    pub retried_tcp: bool,
    /// `UDP` or `TCP`: how the printed reply came.
    pub transport: String,
    /// dig's whole output, for failure messages.
    pub text: String,
}

impl DigReply {
    /// The data of every answer record of type `rtype`.
    pub fn data(&self, rtype: &str) -> Vec<String> {
        self.answer
            .iter()
            .filter(|r| r.rtype == rtype)
            .map(|r| r.data.clone())
            .collect()
    }

    /// The sorted A and AAAA addresses of the answer.
    pub fn addresses(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .answer
            .iter()
            .filter(|r| r.rtype == "A" || r.rtype == "AAAA")
            .map(|r| r.data.clone())
            .collect();
        out.sort();
        out
    }

    /// The TTLs of the answer records of type `rtype`.
    pub fn ttls(&self, rtype: &str) -> Vec<u32> {
        self.answer
            .iter()
            .filter(|r| r.rtype == rtype)
            .map(|r| r.ttl)
            .collect()
    }

    /// Whether the header has `flag` (`aa`, `tc`, ...).
    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    /// The authority section's SOA records.
    pub fn soa(&self) -> Vec<&Record> {
        self.authority.iter().filter(|r| r.rtype == "SOA").collect()
    }
}

/// Runs `dig @<server> -p <port> <DEFAULT_OPTIONS> <args>`. Fails when dig exits non-zero
/// (no reply: timed out, refused) or prints no header.
pub async fn dig(server: SocketAddr, args: &[&str]) -> anyhow::Result<DigReply> {
    let mut cmd = tokio::process::Command::new("dig");
    cmd.arg(format!("@{}", server.ip()))
        .args(["-p", &server.port().to_string()])
        .args(DEFAULT_OPTIONS)
        .args(args)
        .kill_on_drop(true);
    let output = tokio::time::timeout(DIG_PATIENCE, cmd.output())
        .await
        .with_context(|| format!("dig {args:?} ran longer than {DIG_PATIENCE:?}"))?
        .context("running dig (is dnsutils installed? tests/run installs it)")?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        bail!(
            "dig {args:?} against {server} failed ({}): {text}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    parse(&text).with_context(|| format!("dig {args:?} against {server}"))
}

/// Parses dig's default output; when it holds several replies (a TCP retry), the last.
pub fn parse(text: &str) -> anyhow::Result<DigReply> {
    let mut reply = DigReply {
        retried_tcp: text.contains(";; Truncated, retrying in TCP mode."),
        text: text.to_string(),
        ..DigReply::default()
    };
    let mut section = "";
    for line in text.lines() {
        let line = line.trim_end();
        if let Some(rest) = line.strip_prefix(";; ->>HEADER<<-") {
            // A new reply starts: forget an earlier (truncated) one.
            reply.answer.clear();
            reply.authority.clear();
            reply.additional.clear();
            reply.edns = None;
            reply.status = field(rest, "status:").unwrap_or_default();
        } else if let Some(rest) = line.strip_prefix(";; flags:") {
            let flags = rest.split(';').next().unwrap_or("");
            reply.flags = flags.split_whitespace().map(str::to_string).collect();
        } else if let Some(rest) = line.strip_prefix("; EDNS:") {
            reply.edns = Some(rest.trim().to_string());
        } else if let Some(rest) = line.strip_prefix(";; SERVER:") {
            reply.transport = rest
                .rsplit('(')
                .next()
                .unwrap_or("")
                .trim_end_matches(')')
                .to_string();
        } else if line.starts_with(";; ") && line.ends_with(" SECTION:") {
            section = line.trim_start_matches(";; ").trim_end_matches(" SECTION:");
        } else if line.is_empty() {
            section = "";
        } else if !line.starts_with(';') {
            let record = record(line).with_context(|| format!("bad record line {line:?}"))?;
            match section {
                "ANSWER" => reply.answer.push(record),
                "AUTHORITY" => reply.authority.push(record),
                "ADDITIONAL" => reply.additional.push(record),
                _ => {}
            }
        }
    }
    if reply.status.is_empty() {
        bail!("no reply header in dig's output:\n{text}");
    }
    Ok(reply)
}

/// `key: VALUE,` inside a header line.
fn field(line: &str, key: &str) -> Option<String> {
    let start = line.find(key)? + key.len();
    let value = line[start..].trim_start();
    Some(
        value
            .split([',', ' '])
            .next()
            .unwrap_or_default()
            .to_string(),
    )
}

fn record(line: &str) -> anyhow::Result<Record> {
    let mut words = line.split_whitespace();
    let (Some(name), Some(ttl), Some(_class), Some(rtype)) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        bail!("fewer than four fields");
    };
    Ok(Record {
        name: name.to_string(),
        ttl: ttl.parse().context("TTL")?,
        rtype: rtype.to_string(),
        data: words.collect::<Vec<_>>().join(" "),
    })
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn keeps_the_reply_after_a_tcp_retry() {
        let text = ";; Truncated, retrying in TCP mode.\n\
            ;; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 1\n\
            ;; flags: qr aa rd; QUERY: 1, ANSWER: 2, AUTHORITY: 0, ADDITIONAL: 1\n\
            \n\
            ;; OPT PSEUDOSECTION:\n\
            ; EDNS: version: 0, flags:; udp: 1232\n\
            ;; QUESTION SECTION:\n\
            ;db.ns.svc.cluster.local.\tIN\tA\n\
            \n\
            ;; ANSWER SECTION:\n\
            db.ns.svc.cluster.local. 30\tIN\tA\t10.0.0.2\n\
            db.ns.svc.cluster.local. 30\tIN\tA\t10.0.0.1\n\
            \n\
            ;; SERVER: 127.0.0.1#5353(127.0.0.1) (TCP)\n";
        let reply = parse(text).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(reply.status, "NOERROR");
        assert_eq!(reply.flags, ["qr", "aa", "rd"]);
        assert!(reply.retried_tcp);
        assert_eq!(reply.transport, "TCP");
        assert_eq!(reply.addresses(), ["10.0.0.1", "10.0.0.2"]);
        assert_eq!(reply.ttls("A"), [30, 30]);
        assert_eq!(reply.edns.as_deref(), Some("version: 0, flags:; udp: 1232"));
    }

    #[test]
    fn no_header_is_an_error() {
        assert!(parse(";; connection timed out; no servers could be reached\n").is_err());
    }
}
