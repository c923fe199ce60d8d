//! A small RESP2/RESP3 client for tests that need the bytes on the wire: send exactly what
//! the test wrote (malformed frames, pipelines, inline commands), read replies one at a
//! time, and see when the other side closes. Written for the tests, independently of the
//! gateway's codec, so the two cannot share a bug.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// How long one reply (or the connect) may take before the read fails.
pub const REPLY_PATIENCE: Duration = Duration::from_secs(10);

/// Deepest nesting of aggregates accepted, so a hostile peer cannot recurse us to death.
const MAX_DEPTH: usize = 32;

/// One RESP value, RESP2 or RESP3.
#[derive(Debug, Clone, PartialEq)]
pub enum Resp {
    /// `+OK`.
    Simple(String),
    /// `-ERR ...` (RESP3 `!` blob errors too).
    Error(String),
    /// `:42`.
    Integer(i64),
    /// `$3\r\nabc`; `None` for the RESP2 null bulk `$-1`.
    Bulk(Option<Vec<u8>>),
    /// `*2 ...`; `None` for the RESP2 null array `*-1`.
    Array(Option<Vec<Resp>>),
    /// RESP3 `_`.
    Null,
    /// RESP3 `#t` / `#f`.
    Boolean(bool),
    /// RESP3 `,1.5` (kept as text: `inf`, `nan` and exponents are legal).
    Double(String),
    /// RESP3 `(` big number, as text.
    BigNumber(String),
    /// RESP3 `=` verbatim string: format (`txt`, `mkd`) and text.
    Verbatim(String, Vec<u8>),
    /// RESP3 `%` map, in wire order.
    Map(Vec<(Resp, Resp)>),
    /// RESP3 `~` set, in wire order.
    Set(Vec<Resp>),
    /// RESP3 `>` push (out-of-band message).
    Push(Vec<Resp>),
}

impl Resp {
    /// The text of a simple string, bulk string or verbatim string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Resp::Simple(s) => Some(s),
            Resp::Bulk(Some(b)) | Resp::Verbatim(_, b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// The error text, if this is an error.
    pub fn as_error(&self) -> Option<&str> {
        match self {
            Resp::Error(e) => Some(e),
            _ => None,
        }
    }

    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Resp::Integer(i) => Some(*i),
            _ => None,
        }
    }

    /// The elements of an array, set or push.
    pub fn as_array(&self) -> Option<&[Resp]> {
        match self {
            Resp::Array(Some(items)) | Resp::Set(items) | Resp::Push(items) => Some(items),
            _ => None,
        }
    }

    /// True for the RESP2 and RESP3 nulls.
    pub fn is_null(&self) -> bool {
        matches!(self, Resp::Null | Resp::Bulk(None) | Resp::Array(None))
    }
}

/// Encodes a command the way clients send it: an array of bulk strings.
pub fn encode_command<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        let arg = arg.as_ref();
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// One TCP connection speaking RESP.
pub struct RespConn {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    /// The address connected to.
    pub peer: SocketAddr,
}

impl std::fmt::Debug for RespConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RespConn")
            .field("peer", &self.peer)
            .finish()
    }
}

impl RespConn {
    /// Connects (bounded by [`REPLY_PATIENCE`]).
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<RespConn> {
        let stream = tokio::time::timeout(REPLY_PATIENCE, TcpStream::connect(addr))
            .await
            .with_context(|| format!("connecting to {addr} timed out"))?
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        let (read, writer) = stream.into_split();
        Ok(RespConn {
            reader: BufReader::new(read),
            writer,
            peer: addr,
        })
    }

    /// Connects and authenticates with `AUTH [user] password` when a password is given;
    /// fails if the server refuses.
    pub async fn connect_auth(
        addr: SocketAddr,
        user: Option<&str>,
        password: Option<&str>,
    ) -> anyhow::Result<RespConn> {
        let mut conn = RespConn::connect(addr).await?;
        if let Some(password) = password {
            let mut args = vec!["AUTH"];
            args.extend(user);
            args.push(password);
            let reply = conn.command(&args).await?;
            if let Some(err) = reply.as_error() {
                bail!("AUTH at {addr} refused: {err}");
            }
        }
        Ok(conn)
    }

    /// Writes `bytes` as they are.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.writer
            .write_all(bytes)
            .await
            .with_context(|| format!("writing to {}", self.peer))
    }

    /// Sends one command (an array of bulk strings) without waiting for its reply.
    pub async fn send<A: AsRef<[u8]>>(&mut self, args: &[A]) -> anyhow::Result<()> {
        self.send_raw(&encode_command(args)).await
    }

    /// Sends one command and reads its reply.
    pub async fn command<A: AsRef<[u8]>>(&mut self, args: &[A]) -> anyhow::Result<Resp> {
        self.send(args).await?;
        self.read_reply().await
    }

    /// Reads one reply; fails on EOF, on a malformed reply or after [`REPLY_PATIENCE`].
    pub async fn read_reply(&mut self) -> anyhow::Result<Resp> {
        match self.read_reply_or_eof().await? {
            Some(reply) => Ok(reply),
            None => bail!("{} closed the connection", self.peer),
        }
    }

    /// Reads one reply, or `None` if the peer closed the connection cleanly before one.
    pub async fn read_reply_or_eof(&mut self) -> anyhow::Result<Option<Resp>> {
        let peer = self.peer;
        tokio::time::timeout(REPLY_PATIENCE, read_value(&mut self.reader, 0))
            .await
            .with_context(|| format!("no reply from {peer} within {REPLY_PATIENCE:?}"))?
            .with_context(|| format!("reading a reply from {peer}"))
    }

    /// Reads replies until the peer closes the connection and returns them; fails if it
    /// is still open after [`REPLY_PATIENCE`] (e.g. to check "error reply, then closed").
    pub async fn read_until_closed(&mut self) -> anyhow::Result<Vec<Resp>> {
        let mut replies = Vec::new();
        while let Some(reply) = self.read_reply_or_eof().await? {
            replies.push(reply);
        }
        Ok(replies)
    }
}

/// Reads one line without its CRLF; `None` on EOF before any byte.
async fn read_line<R: AsyncBufReadExt + Unpin>(reader: &mut R) -> anyhow::Result<Option<String>> {
    let mut line = Vec::new();
    if reader.read_until(b'\n', &mut line).await? == 0 {
        return Ok(None);
    }
    if !line.ends_with(b"\r\n") {
        bail!(
            "line not terminated by CRLF: {:?}",
            String::from_utf8_lossy(&line)
        );
    }
    line.truncate(line.len() - 2);
    Ok(Some(String::from_utf8(line).context("line is not UTF-8")?))
}

async fn read_exact<R: AsyncReadExt + Unpin>(
    reader: &mut R,
    len: usize,
) -> anyhow::Result<Vec<u8>> {
    let mut body = vec![0; len + 2];
    reader
        .read_exact(&mut body)
        .await
        .context("truncated bulk")?;
    if !body.ends_with(b"\r\n") {
        bail!("bulk of {len} bytes not followed by CRLF");
    }
    body.truncate(len);
    Ok(body)
}

/// Reads one value; `None` on a clean EOF before its first byte.
fn read_value<'a, R: AsyncBufReadExt + Unpin + Send>(
    reader: &'a mut R,
    depth: usize,
) -> std::pin::Pin<Box<dyn Future<Output = anyhow::Result<Option<Resp>>> + Send + 'a>> {
    Box::pin(async move {
        if depth > MAX_DEPTH {
            bail!("replies nested deeper than {MAX_DEPTH}");
        }
        let Some(line) = read_line(reader).await? else {
            return Ok(None);
        };
        let mut chars = line.chars();
        let kind = chars.next().context("empty line")?;
        let rest = chars.as_str();
        let len = || -> anyhow::Result<i64> {
            rest.parse()
                .with_context(|| format!("bad length in {line:?}"))
        };
        let value = match kind {
            '+' => Resp::Simple(rest.to_string()),
            '-' => Resp::Error(rest.to_string()),
            ':' => Resp::Integer(len()?),
            '_' => Resp::Null,
            '#' => Resp::Boolean(rest == "t"),
            ',' => Resp::Double(rest.to_string()),
            '(' => Resp::BigNumber(rest.to_string()),
            '$' | '!' | '=' => match usize::try_from(len()?) {
                Err(_) if kind == '$' => Resp::Bulk(None),
                Err(_) => bail!("negative length in {line:?}"),
                Ok(n) => {
                    let body = read_exact(reader, n).await?;
                    match kind {
                        '$' => Resp::Bulk(Some(body)),
                        '!' => Resp::Error(String::from_utf8_lossy(&body).into_owned()),
                        _ => {
                            let (format, text) = body.split_at(body.len().min(4));
                            let format = String::from_utf8_lossy(format)
                                .trim_end_matches(':')
                                .to_string();
                            Resp::Verbatim(format, text.to_vec())
                        }
                    }
                }
            },
            '*' | '~' | '>' | '%' | '|' => {
                let Ok(n) = usize::try_from(len()?) else {
                    if kind == '*' {
                        return Ok(Some(Resp::Array(None)));
                    }
                    bail!("negative length in {line:?}");
                };
                let count = if matches!(kind, '%' | '|') { n * 2 } else { n };
                let mut items = Vec::with_capacity(count.min(1024));
                for _ in 0..count {
                    items.push(
                        read_value(reader, depth + 1)
                            .await?
                            .context("EOF inside an aggregate")?,
                    );
                }
                match kind {
                    '*' => Resp::Array(Some(items)),
                    '~' => Resp::Set(items),
                    '>' => Resp::Push(items),
                    '%' => Resp::Map(pairs(items)),
                    // An attribute annotates the reply that follows it: tests want the reply.
                    _ => return read_value(reader, depth + 1).await,
                }
            }
            other => bail!("unknown RESP type byte {other:?} in {line:?}"),
        };
        Ok(Some(value))
    })
}

fn pairs(items: Vec<Resp>) -> Vec<(Resp, Resp)> {
    let mut items = items.into_iter();
    let mut out = Vec::new();
    while let (Some(k), Some(v)) = (items.next(), items.next()) {
        out.push((k, v));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn try_parse(bytes: &[u8]) -> anyhow::Result<Option<Resp>> {
        let mut reader = BufReader::new(bytes);
        read_value(&mut reader, 0).await
    }

    async fn parse(bytes: &[u8]) -> Option<Resp> {
        try_parse(bytes).await.unwrap_or_else(|e| panic!("{e:#}"))
    }

    #[tokio::test]
    async fn parses_resp2_and_resp3_values() {
        let bulk = |s: &str| Resp::Bulk(Some(s.as_bytes().to_vec()));
        assert_eq!(parse(b"+OK\r\n").await, Some(Resp::Simple("OK".into())));
        assert_eq!(parse(b"$-1\r\n").await, Some(Resp::Bulk(None)));
        assert_eq!(parse(b"*-1\r\n").await, Some(Resp::Array(None)));
        assert_eq!(
            parse(b"*2\r\n$3\r\nfoo\r\n:-7\r\n").await,
            Some(Resp::Array(Some(vec![bulk("foo"), Resp::Integer(-7)])))
        );
        assert_eq!(
            parse(b"%1\r\n+server\r\n$5\r\nredis\r\n").await,
            Some(Resp::Map(vec![(
                Resp::Simple("server".into()),
                bulk("redis")
            )]))
        );
        assert_eq!(
            parse(b"!3\r\nERR\r\n").await,
            Some(Resp::Error("ERR".into()))
        );
        assert_eq!(
            parse(b"=8\r\ntxt:abcd\r\n").await,
            Some(Resp::Verbatim("txt".into(), b"abcd".to_vec()))
        );
        assert_eq!(
            parse(b"|1\r\n+k\r\n+v\r\n:1\r\n").await,
            Some(Resp::Integer(1))
        );
        assert_eq!(parse(b"").await, None);
    }

    #[tokio::test]
    async fn rejects_malformed_replies() {
        assert!(try_parse(b"?x\r\n").await.is_err());
        assert!(try_parse(b"$5\r\nab\r\n").await.is_err());
        assert!(try_parse(b"*2\r\n:1\r\n").await.is_err());
        assert!(try_parse(b"+OK\n").await.is_err());
    }

    #[test]
    fn encodes_commands_as_bulk_arrays() {
        assert_eq!(
            encode_command(&["GET", "k"]),
            b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
        );
    }
}
